"""``webi demo`` end to end with tiny models: real anvil, node, provider and verifier processes.

Both scenarios run the CLI as a process with ``--json`` and check the books against amounts computed
here from the contract's rules (the default terms and parameters of a fresh devnet) and the jobs'
terms: an honest verifier catching a cheat, then a lazy verifier passing it, caught by a watchtower
and slashed by a panel. The first also checks that Ctrl-C stops every process the demo started.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from marketplace.chain.deployment import WEI
from marketplace.demo.options import GENERATE_TASKS, JOB_PRICE_WEI, SAMPLE_TASKS, STAKE_WEBI
from marketplace.protocol import BPS, PANEL_SIZE
from tests.support.models import build_bundle
from tests.support.waiting import wait_for

CORPUS_TASKS = 24
# The devnet's default terms and parameters (``deploy_devnet``), as the contract applies them.
VERIFIER_FEE_BPS, PROTOCOL_FEE_BPS, COLLATERAL_BPS = 20_000, 250, 5_000
REWARD_BPS, VERIFIER_SLASH_BPS = 1_000, 5_000

EMBED_FEE = JOB_PRICE_WEI * SAMPLE_TASKS * VERIFIER_FEE_BPS // (CORPUS_TASKS * BPS)
GENERATE_FEE = JOB_PRICE_WEI * SAMPLE_TASKS * VERIFIER_FEE_BPS // (GENERATE_TASKS * BPS)
PROTOCOL_FEE = JOB_PRICE_WEI * PROTOCOL_FEE_BPS // BPS
COLLATERAL = JOB_PRICE_WEI * COLLATERAL_BPS // BPS
COLLATERAL_REWARD = COLLATERAL * REWARD_BPS // BPS  # to whoever proved the fault; the rest is burned


def _demo(tmp_path: Path, *flags: str) -> subprocess.Popen[str]:
    """``webi demo --json`` with tiny models; its stderr (progress, tables, logs) goes to demo.stderr."""
    embed = build_bundle("embed", tmp_path / "tiny-embed")
    with (tmp_path / "demo.stderr").open("w") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "marketplace.cli", "demo", "--json", "--timeout", "300", "--run-dir",
             str(tmp_path / "run"), "--embed-model", str(embed), *flags],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, "COLUMNS": "200", "WEBI_HOME": str(tmp_path)},
        )


def test_the_cheater_is_slashed_the_honest_paid_the_books_balance_and_ctrl_c_stops_everything(
        tmp_path: Path) -> None:
    demo = _demo(tmp_path, "--cheater")
    try:
        assert demo.stdout is not None
        line = demo.stdout.readline()  # the summary, printed before the demo serves the dashboard
        log = (tmp_path / "demo.stderr").read_text()
        assert line, log
        summary = json.loads(line)
        jobs = {job["task"]: job for job in summary["jobs"]}
        assert {task: job["state"] for task, job in jobs.items()} == {"embed": "finalized", "generate": "rejected"}
        assert jobs["generate"]["verdict"] == "fail" and "logits behind" in jobs["generate"]["reason"]
        assert jobs["generate"]["verifier"] == "verifier" and jobs["generate"]["challenge"] is None
        assert jobs["embed"]["verdict"] == "pass" and jobs["embed"]["provider"] == "provider-embed"

        assert summary["credits"] == {
            "provider-embed": {"provider payment": JOB_PRICE_WEI - PROTOCOL_FEE},
            "treasury": {"protocol fee": PROTOCOL_FEE},
            "verifier": {"verifier fee": EMBED_FEE + GENERATE_FEE, "reward": COLLATERAL_REWARD},
            "requester": {"refund": JOB_PRICE_WEI},
        }
        assert summary["slashed"] == {"provider-generate": COLLATERAL}
        assert summary["bonds"] == {"paid": {}, "refunded": {}}
        assert summary["burned"] == COLLATERAL - COLLATERAL_REWARD
        assert summary["net"] == {
            "requester": -JOB_PRICE_WEI - EMBED_FEE - GENERATE_FEE,
            "provider-embed": JOB_PRICE_WEI - PROTOCOL_FEE,
            "provider-generate": -COLLATERAL,
            "verifier": EMBED_FEE + GENERATE_FEE + COLLATERAL_REWARD,
            "treasury": PROTOCOL_FEE,
            "market": COLLATERAL - COLLATERAL_REWARD,
        }
        assert summary["conserved"] and summary["audit_clean"] and summary["cheater_rejected"]
        assert "lazy_verifier_slashed" not in summary
        assert "fast-forwarding the 1 h challenge window" in log and "books balance" in log
        assert "webi audit: clean" in log and "cheater slashed" in log
        for name in ("anvil", "node", "provider-embed", "provider-generate", "verifier"):
            assert (tmp_path / "run" / f"{name}.log").stat().st_size > 0

        # Still serving: Ctrl-C stops every process it started.
        assert _answers(summary["dashboard"])
        children = _children(demo.pid)
        assert len(children) >= 5  # anvil, node, two providers, verifier
        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=60) == 130
        wait_for(lambda: not any(_alive(pid) for pid in children), timeout=30, what="every child process to stop")
        assert not _answers(summary["dashboard"])
        assert demo.stdout.read() == "", "stdout holds the JSON document alone"
    finally:
        _stop(demo)


def test_a_lazy_pass_is_challenged_by_the_watchtower_and_overturned_by_the_panel(tmp_path: Path) -> None:
    demo = _demo(tmp_path, "--lazy-verifier", "--exit")
    try:
        stdout, _ = demo.communicate(timeout=600)
    finally:
        _stop(demo)
    log = (tmp_path / "demo.stderr").read_text()
    assert demo.returncode == 0, log
    summary: dict[str, Any] = json.loads(stdout)  # the whole of stdout: one JSON document
    jobs = {job["task"]: job for job in summary["jobs"]}
    generate, embed = jobs["generate"], jobs["embed"]
    assert generate["verifier"] == "verifier" and generate["verdict"] == "pass", log
    assert "lazy verifier" in generate["reason"]
    assert generate["state"] == "rejected"
    assert generate["challenge"] == {"challenger": "watchtower", "bond": PANEL_SIZE * GENERATE_FEE,
                                     "panel": ["panel-verifier"] * PANEL_SIZE, "outcome": "overturned",
                                     "verdict": "fail"}
    assert embed["verdict"] == "pass" and embed["state"] == "finalized" and embed["challenge"] is None

    bond = PANEL_SIZE * GENERATE_FEE
    lazy_slash = STAKE_WEBI * WEI * VERIFIER_SLASH_BPS // BPS  # half the lazy verifier's stake
    panel_pay = min(lazy_slash, bond)  # to the majority, here one member on every seat
    challenge_reward = (lazy_slash - panel_pay) * REWARD_BPS // BPS
    assert summary["credits"] == {
        "provider-embed": {"provider payment": JOB_PRICE_WEI - PROTOCOL_FEE},
        "treasury": {"protocol fee": PROTOCOL_FEE},
        "verifier": {"verifier fee": EMBED_FEE},  # the overturned audit's fee goes back to the requester
        "requester": {"refund": JOB_PRICE_WEI + GENERATE_FEE},
        "watchtower": {"reward": challenge_reward + COLLATERAL_REWARD, "bond refund": bond},
        "panel-verifier": {"panel fee": panel_pay},
    }
    assert summary["slashed"] == {"provider-generate": COLLATERAL, "verifier": lazy_slash}
    assert summary["bonds"] == {"paid": {"watchtower": bond}, "refunded": {"watchtower": bond}}
    burned = (lazy_slash - panel_pay - challenge_reward) + (COLLATERAL - COLLATERAL_REWARD)
    assert summary["burned"] == burned
    assert summary["net"] == {
        "requester": -JOB_PRICE_WEI - EMBED_FEE,
        "provider-embed": JOB_PRICE_WEI - PROTOCOL_FEE,
        "provider-generate": -COLLATERAL,
        "verifier": EMBED_FEE - lazy_slash,
        "watchtower": challenge_reward + COLLATERAL_REWARD,
        "panel-verifier": panel_pay,
        "treasury": PROTOCOL_FEE,
        "market": burned,
    }
    assert summary["cheater_rejected"] is True and summary["lazy_verifier_slashed"] is True
    assert summary["conserved"] and summary["audit_clean"]
    assert "LAZY verifier" in (tmp_path / "run" / "verifier.log").read_text()
    assert "challenged" in (tmp_path / "run" / "watchtower.log").read_text()
    assert "lazy verifier slashed" in log
    assert not _answers(summary["dashboard"]), "the node must be stopped when the demo ends"


def _stop(demo: subprocess.Popen[str]) -> None:
    if demo.poll() is None:
        demo.kill()
        demo.wait()
    if demo.stdout is not None:
        demo.stdout.close()


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _children(pid: int) -> list[int]:
    found = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(value) for value in found.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")
