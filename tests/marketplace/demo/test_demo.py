"""``webi demo`` end to end with tiny models: real anvil, node, provider and verifier processes."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from rich.console import Console

from marketplace.chain.deployment import WEI
from marketplace.demo.run import JOB_PRICE_WEI, SAMPLE_TASKS, STAKE_WEBI, DemoOptions, run_demo
from marketplace.protocol import BPS
from tests.support.models import build_bundle
from tests.support.waiting import wait_for


def test_the_cheater_is_slashed_the_honest_paid_and_the_books_balance(tmp_path: Path) -> None:
    embed = build_bundle("embed", tmp_path / "tiny-embed")
    output = io.StringIO()
    outcome = run_demo(
        DemoOptions(tmp_path / "run", cheater=True, embed_model=embed, keep_running=False, timeout_s=300),
        Console(file=output, width=200),
    )
    states = {job.task: job.state for job in outcome.jobs}
    assert states == {"embed": "finalized", "generate": "rejected"}, output.getvalue()
    rejected = next(job for job in outcome.jobs if job.task == "generate")
    assert rejected.verdict == "fail" and rejected.passed is False and "logits behind" in rejected.reason
    assert "fast-forwarding the 1 h challenge window" in output.getvalue()

    # The embed job: 24 tasks, 4 re-executed at 2x the per-task price; the generate job: 8 tasks, 4 re-executed.
    embed_fee = JOB_PRICE_WEI * SAMPLE_TASKS * 20_000 // (24 * BPS)
    generate_fee = JOB_PRICE_WEI * SAMPLE_TASKS * 20_000 // (8 * BPS)
    protocol_fee, collateral = JOB_PRICE_WEI * 250 // BPS, JOB_PRICE_WEI // 2
    reward = collateral * 1_000 // BPS  # to the verifier that proved the fault; the rest is burned
    assert outcome.credits[("provider (embed)", "provider payment")] == JOB_PRICE_WEI - protocol_fee
    assert outcome.credits[("treasury", "protocol fee")] == protocol_fee
    assert outcome.credits[("verifier", "verifier fee")] == embed_fee + generate_fee
    assert outcome.credits[("verifier", "reward")] == reward
    assert outcome.credits[("requester", "refund")] == JOB_PRICE_WEI
    assert outcome.cheater_slashed_wei == collateral and outcome.burned_wei == collateral - reward
    assert outcome.net["provider (generate, CHEATER)"] == -collateral
    assert outcome.net["requester"] == -JOB_PRICE_WEI - embed_fee - generate_fee
    assert outcome.net["verifier"] == embed_fee + generate_fee + reward
    assert outcome.net["market contract"] == collateral - reward
    assert outcome.conserved and sum(outcome.net.values()) == 0
    assert outcome.audit_clean
    assert collateral < STAKE_WEBI * WEI
    for log in ("anvil", "node", "provider-embed", "provider-generate", "verifier"):
        assert (tmp_path / "run" / f"{log}.log").stat().st_size > 0
    assert "books balance" in output.getvalue() and "webi audit: clean" in output.getvalue()
    assert not _answers(outcome.dashboard), "the node must be stopped when the demo ends"


def test_ctrl_c_stops_every_process_the_demo_started(tmp_path: Path) -> None:
    embed = build_bundle("embed", tmp_path / "tiny-embed")
    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "marketplace.cli",
            "demo",
            "--run-dir",
            str(tmp_path / "run"),
            "--embed-model",
            str(embed),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200", "WEBI_HOME": str(tmp_path)},
    )
    lines: list[str] = []
    try:
        assert demo.stdout is not None
        for line in demo.stdout:
            lines.append(line)
            if "press Ctrl-C" in line:
                break
        dashboard = next(line.split("dashboard: ")[1].split()[0] for line in lines if "dashboard: " in line)
        assert _answers(dashboard), "".join(lines)
        children = _children(demo.pid)
        assert len(children) >= 5  # anvil, node, two providers, verifier
        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=60) == 130
        wait_for(lambda: not any(_alive(pid) for pid in children), timeout=30, what="every child process to stop")
        assert not _answers(dashboard)
    finally:
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
