"""A short sample of the chaos runs (3, a fixed seed): every fault kind is injected and nothing breaks.

The seed fixes which faults come and when (after the posts); the daemons' timing is the machine's, and
the checks must hold whatever it is. ``python scripts/chaos.py --runs 50`` is the full figure (README).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_three_chaos_runs_inject_every_fault_kind_and_break_nothing(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "chaos.py"), "--runs", "3", "--seed", "1",
                             "--outage-s", "10", "--json", "--keep", str(tmp_path / "runs")],
                            capture_output=True, text=True, timeout=1_500)
    figures = json.loads(result.stdout)
    assert figures["violations"] == [], result.stderr[-4_000:]
    assert result.returncode == 0
    assert figures["runs"] == 3 and figures["jobs"] == 15
    assert set(figures["faults"]) == {"kill-provider", "kill-verifier", "kill-node", "rpc-outage", "reorg"}
    assert all(count > 0 for count in figures["faults"].values()), figures["faults"]
    assert sum(figures["faults"].values()) == 9


def test_bad_arguments_are_refused_with_a_reason() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "chaos.py"), "--runs", "0"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "--runs and --parallel must be at least 1" in result.stderr
