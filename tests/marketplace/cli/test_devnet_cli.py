"""`webi devnet up|status|down|lifecycle` as a user runs them: real processes, real anvil."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from web3 import Web3

from marketplace.chain.devnet import Anvil, free_port
from tests.support.waiting import wait_for

WEBI = [sys.executable, "-m", "marketplace.cli"]


def webi(*args: str, home: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "WEBI_HOME": str(home), "COLUMNS": "200", **(env or {})}
    return subprocess.run([*WEBI, *args], capture_output=True, text=True, env=environment, timeout=120, check=False)


def test_devnet_up_status_down(tmp_path: Path) -> None:
    """Every file goes under $WEBI_HOME (the deployment too, never into the checkout), and the devnet makes
    blocks on its own: an audit needs blocks after the submission even when nobody sends a transaction."""
    home = tmp_path / "home"
    try:
        started = webi("devnet", "up", home=home)
        assert started.returncode == 0, started.stderr
        state = json.loads((home / "devnet.json").read_text())
        assert "devnet up" in started.stdout
        assert json.loads((home / "deployments" / "31337.json").read_text())["chain_id"] == 31337
        again = webi("devnet", "up", home=home)
        assert "already running" in again.stdout
        status = webi("devnet", "status", home=home)
        assert status.returncode == 0, status.stderr
        assert "JobMarket" in status.stdout and "chain 31337" in status.stdout
        for row in ("protocol 2.5 %", "collateral", "challenge 1 h", "task price 0.05 WEBI", "slashes", "timelock"):
            assert row in status.stdout, status.stdout
        first = Web3(Web3.HTTPProvider(state["rpc_url"])).eth.block_number
        wait_for(lambda: Web3(Web3.HTTPProvider(state["rpc_url"])).eth.block_number > first + 1, timeout=30,
                 what="blocks mined with no transaction sent")
    finally:
        stopped = webi("devnet", "down", home=home)
    assert stopped.returncode == 0
    assert "stopped" in stopped.stdout
    assert not (home / "devnet.json").exists()
    with pytest.raises(OSError):
        os.kill(state["pid"], 0)


def test_status_without_devnet_says_what_to_do(tmp_path: Path) -> None:
    result = webi("devnet", "status", home=tmp_path)
    assert result.returncode == 1
    assert "webi devnet up" in result.stderr


def test_unreachable_rpc_url_is_one_clear_line(tmp_path: Path) -> None:
    result = webi("--rpc-url", f"http://127.0.0.1:{free_port()}", "devnet", "status", home=tmp_path)
    assert result.returncode == 1
    assert "cannot reach the chain" in result.stderr
    assert "Traceback" not in result.stderr


def test_lifecycle_runs_every_path_and_balances_the_books(tmp_path: Path) -> None:
    result = webi("devnet", "lifecycle", "--run-dir", str(tmp_path / "run"), home=tmp_path)
    assert result.returncode == 0, result.stderr
    for expected in ("FINALIZED", "REJECTED", "CANCELLED", "books balance", "verifier fee", "panel fee",
                     "bond refund", "reward", "slashed", "burned", "a panel of 3 voted pass", "slashed 1 %"):
        assert expected in result.stdout
    assert (tmp_path / "run" / "anvil.log").exists()


def test_lifecycle_against_an_existing_chain(tmp_path: Path) -> None:
    with Anvil() as anvil:
        result = webi("--rpc-url", anvil.rpc_url, "devnet", "lifecycle", "--run-dir", str(tmp_path / "run"),
                      home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"using the chain at {anvil.rpc_url}" in result.stdout
    assert "books balance" in result.stdout
