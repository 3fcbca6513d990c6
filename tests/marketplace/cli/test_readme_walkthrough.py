"""The README's by-hand walk-through, run as written: a newcomer's path through every part of WEBI.

The block between ``<!-- by-hand:start -->`` and ``<!-- by-hand:end -->`` is run by bash in a fresh
folder, as one session, with three settings a person would not set: a tiny model
(``WEBI_EXAMPLE_TINY=1``), the node on a free port (``WEBI_NODE_PORT``, ``WEBI_STORE``), and a trap that
stops whatever the block started if it fails half-way. Nothing in the block itself is changed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from marketplace.chain.devnet import free_port

ROOT = Path(__file__).resolve().parents[3]
CLEANUP = ("trap 'kill $(jobs -p) 2>/dev/null || true; webi devnet down >/dev/null 2>&1 || true' EXIT\n"
           "set -euo pipefail\n")


def walkthrough() -> str:
    """The README's by-hand block, as bash."""
    text = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- by-hand:start -->\n```bash\n(.*?)```\n<!-- by-hand:end -->", text, re.DOTALL)
    assert match, "README.md has no by-hand block"
    return match.group(1)


@pytest.mark.slow
def test_the_readme_by_hand_path_runs_as_written(tmp_path: Path) -> None:
    home, port = tmp_path / "home", free_port()
    script = tmp_path / "walkthrough.sh"
    script.write_text(CLEANUP + walkthrough())
    env = {**os.environ, "WEBI_HOME": str(home), "WEBI_EXAMPLE_TINY": "1", "WEBI_NODE_PORT": str(port),
           "WEBI_STORE": f"http://127.0.0.1:{port}", "COLUMNS": "200",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("WEBI_RPC_URL", None)
    process = subprocess.Popen(["bash", str(script)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=480)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail("the walk-through did not finish in 480 s:\n" + output + _logs(tmp_path))
    finally:
        _stop_devnet(home)
    assert process.returncode == 0, output + _logs(tmp_path)
    assert "posted job 1" in output, output
    assert "finalized" in output.lower(), output
    results = (tmp_path / "work" / "results.jsonl").read_text().splitlines()
    assert len(results) == 16 and all("embedding" in json.loads(line) for line in results)
    assert "not final" in output, output  # results in the challenge window carry a warning
    assert "Traceback" not in output, output
    assert not (home / "devnet.json").exists()  # `webi devnet down` ran


def _logs(folder: Path) -> str:
    return "".join(f"\n--- {log.name}\n{log.read_text()[-3000:]}" for log in sorted(folder.glob("*.log")))


def _stop_devnet(home: Path) -> None:
    """The devnet runs in its own session (detached): kill it by pid if the block did not."""
    state = home / "devnet.json"
    if state.is_file():
        with contextlib.suppress(OSError, ValueError, KeyError):
            os.kill(json.loads(state.read_text())["pid"], signal.SIGKILL)
