"""``webi`` starts without its heavy libraries (issue 16): help, and the one-line error of ``run``.

Each case runs in a fresh interpreter, imports ``marketplace.cli.main`` as the console script does,
builds the help of a command (typer reads every command's signature for that) and lists which of
the libraries below got imported. They load when a command that needs them runs, never at start-up:
web3 and eth_account alone took over a second. No timing here (``scripts/bench_cli.py`` measures).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

# pydantic is not here: typer itself builds its parameter coercion on it when a group resolves a command.
HEAVY = ("web3", "eth_account", "eth_utils", "eth_abi", "torch", "transformers", "sqlalchemy", "sqlmodel",
         "fastapi", "uvicorn", "requests", "httpx", "marketplace.client", "marketplace.chain.client")

PROBE = """
import json, sys
from typer.testing import CliRunner
from marketplace.cli.main import app

result = CliRunner().invoke(app, sys.argv[1:], env={"COLUMNS": "200"})
heavy = sorted(name for name in sys.modules if any(name == top or name.startswith(top + ".") for top in HEAVY))
print(json.dumps({"exit_code": result.exit_code, "output": result.output, "heavy": heavy}))
"""

TRANSLATE = """
import json, sys
from marketplace.chain.library_errors import gist, translate

error = ValueError("Unknown format '0x12', attempted to normalize to '0x12'")
translated = translate(error)
heavy = sorted(name for name in sys.modules if any(name == top or name.startswith(top + ".") for top in HEAVY))
print(json.dumps({"translated": str(translated), "kind": type(translated).__name__,
                  "gist": gist(RuntimeError("first line\\nsecond")), "heavy": heavy}))
"""


def fresh(code: str, *args: str) -> dict[str, Any]:
    """``code`` run by a new interpreter (nothing imported yet); its one line of JSON."""
    done = subprocess.run([sys.executable, "-c", f"HEAVY = {HEAVY!r}\n{code}", *args], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.mark.parametrize(("args", "shown"), [
    (["--help"], "devnet"),
    (["job", "--help"], "status"),
    (["job", "post", "--help"], "--sample-tasks"),
    (["job", "status", "--help"], "--watch"),
    (["provider", "--help"], "register"),
    (["verifier", "--help"], "register"),
    (["devnet", "--help"], "lifecycle"),
    (["devnet", "lifecycle", "--help"], "--run-dir"),
    (["wallet", "--help"], "balance"),
    (["store", "--help"], "add"),
    (["audit", "--help"], "--reexecute"),
])
def test_help_imports_no_heavy_library(args: list[str], shown: str) -> None:
    probe = fresh(PROBE, *args)
    assert probe["exit_code"] == 0, probe["output"]
    assert "Usage:" in probe["output"] and shown in probe["output"]
    assert probe["heavy"] == [], f"webi {' '.join(args)} imported {probe['heavy']} at start-up"


def test_errors_translate_without_loading_web3() -> None:
    """``run`` translates every failure: a bad address (from eth_utils) and an unknown error still read as one
    line, and asking does not import web3 or requests (no error of theirs can exist before they load)."""
    probe = fresh(TRANSLATE)
    assert probe["kind"] == "ArgumentError"
    assert "'0x12' is not an Ethereum address" in probe["translated"]
    assert probe["gist"] == "RuntimeError: first line"
    assert probe["heavy"] == []
