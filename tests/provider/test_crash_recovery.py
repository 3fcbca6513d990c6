"""``kill -9`` at every stage of a job, then a restart: one claim, one submission, the job audited and finalized.

The daemon runs in its own process (``tests.support.provider_process``), as ``webi provider run``
would; the test reads its SQLite journal to see where it is.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from marketplace.chain.deployment import WEI
from marketplace.chain.devnet import Devnet
from marketplace.protocol import Role
from provider.journal import Journal, Stage
from tests.conftest import Chain
from tests.support.epochs import wait_drawn
from tests.support.jobs import Market, StoreNode, audit_by_hand, provider_config
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]


def SLOW(crash_at: str) -> Any:  # noqa: N802 - reads as a marker
    """A kill point run with `-m slow` only: the default run keeps one point per stage of the daemon."""
    return pytest.param(crash_at, marks=pytest.mark.slow)


def start(config: Path, log: Path, crash_at: str | None = None) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "tests.support.provider_process", str(config)]
    if crash_at:
        command += ["--crash-at", crash_at]
    with log.open("ab") as out:
        return subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


def journal_stage(state: Path, job_id: int) -> Stage | None:
    for path in state.glob("journal-*.sqlite"):
        journal = Journal(path)  # may race the daemon creating it: the journal's schema lock serializes them
        try:
            record = journal.get(job_id)
            return None if record is None else record.stage
        finally:
            journal.close()
    return None


@pytest.mark.parametrize("crash_at", [
    SLOW("claim-sent"), SLOW("claimed"), "computed", SLOW("submit-sent"), SLOW("submitted")])
def test_kill_9_then_restart_finishes_the_job_once(chain: Chain, market: Market, devnet: Devnet,
                                                   store_node: StoreNode, deployments: Path, tmp_path: Path,
                                                   requester, provider, verifier, crash_at: str) -> None:
    chain.register(provider, Role.PROVIDER, 10_000 * WEI)
    chain.register(verifier, Role.VERIFIER)
    config = provider_config(tmp_path, provider, devnet.anvil.rpc_url, store_node.url, deployments)
    state, log = config.parent / "state", tmp_path / "provider.log"
    job_id = market.post(requester, "generate")
    crashing = start(config, log, crash_at)
    assert crashing.wait(timeout=120) == -signal.SIGKILL, log.read_text()

    restarted = start(config, log)
    try:
        wait_for(lambda: journal_stage(state, job_id) == Stage.SUBMITTED, timeout=120,
                 what=f"the result after a crash at {crash_at}")
        audit_by_hand(chain, verifier, job_id)  # the restarted daemon draws the verifier, then finalizes
        wait_for(lambda: journal_stage(state, job_id) == Stage.FINALIZED, timeout=60, what="finalization")
    finally:
        restarted.send_signal(signal.SIGTERM)
        exit_code = restarted.wait(timeout=60)
    assert exit_code == 0, log.read_text()  # SIGTERM: the step in progress finishes, then a clean exit
    events = chain.market.contract.events
    assert len(events.JobClaimed().get_logs(from_block=0, argument_filters={"jobId": job_id})) == 1
    assert len(events.ResultSubmitted().get_logs(from_block=0, argument_filters={"jobId": job_id})) == 1
    assert chain.market.credits(provider.address) > 0
    assert f"crashing at {crash_at} of job {job_id}" in log.read_text()


@pytest.mark.parametrize("crash_at", [SLOW("ran"), "publishing"])
def test_kill_9_inside_the_pipeline_then_restart_finishes_both_jobs_once(
        chain: Chain, market: Market, devnet: Devnet, store_node: StoreNode, deployments: Path, tmp_path: Path,
        requester, provider, verifier, crash_at: str) -> None:
    """Two jobs in flight: a kill between the inference and the stored outputs, or while the outputs are stored
    and the next job computes, leaves each claimed or computed; the restart computes what it must, once each."""
    chain.register(provider, Role.PROVIDER, 10_000 * WEI)
    chain.register(verifier, Role.VERIFIER)
    config = provider_config(tmp_path, provider, devnet.anvil.rpc_url, store_node.url, deployments)
    state, log = config.parent / "state", tmp_path / "provider.log"
    jobs = [market.post(requester, "embed"), market.post(requester, "embed")]
    crashing = start(config, log, crash_at)
    assert crashing.wait(timeout=120) == -signal.SIGKILL, log.read_text()

    restarted = start(config, log)
    try:
        for job_id in jobs:
            wait_for(lambda job_id=job_id: journal_stage(state, job_id) == Stage.SUBMITTED, timeout=120,
                     what=f"job {job_id}'s result after a crash at {crash_at}")
    finally:
        restarted.send_signal(signal.SIGTERM)
        exit_code = restarted.wait(timeout=60)
    assert exit_code == 0, log.read_text()
    events = chain.market.contract.events
    for job_id in jobs:
        assert len(events.JobClaimed().get_logs(from_block=0, argument_filters={"jobId": job_id})) == 1
        assert len(events.ResultSubmitted().get_logs(from_block=0, argument_filters={"jobId": job_id})) == 1
    assert f"crashing at {crash_at} of job" in log.read_text()


@pytest.mark.parametrize("crash_at", [SLOW("revealing"), "reveal-sent"])
def test_kill_9_while_answering_a_reveal_demand_then_restart_reveals_once(
        chain: Chain, market: Market, devnet: Devnet, store_node: StoreNode, deployments: Path, tmp_path: Path,
        requester, provider, verifier, crash_at: str) -> None:
    """The reveal is journaled (``revealing``) before it is sent: a restart answers the demand, or, when the
    transaction went through before the crash, sees that it did and sends nothing."""
    chain.register(provider, Role.PROVIDER, 10_000 * WEI)
    chain.register(verifier, Role.VERIFIER)
    config = provider_config(tmp_path, provider, devnet.anvil.rpc_url, store_node.url, deployments)
    state, log = config.parent / "state", tmp_path / "provider.log"
    job_id = market.post(requester, "embed")
    crashing = start(config, log, crash_at)
    try:
        wait_for(lambda: journal_stage(state, job_id) == Stage.SUBMITTED, timeout=120, what="the result")
        wait_drawn(chain, job_id)
        secret, next_hash = chain.open_secret(verifier, job_id)
        chain.market.demand_reveal(verifier, job_id, secret, next_hash)
        assert crashing.wait(timeout=120) == -signal.SIGKILL, log.read_text()
    finally:
        if crashing.poll() is None:
            crashing.kill()
    restarted = start(config, log)
    try:
        wait_for(lambda: chain.market.audit_of(job_id).reveal_by == 1, timeout=120, what="the reveal")
        wait_for(lambda: journal_stage(state, job_id) == Stage.SUBMITTED, timeout=60, what="the journal caught up")
    finally:
        restarted.send_signal(signal.SIGTERM)
        exit_code = restarted.wait(timeout=60)
    assert exit_code == 0, log.read_text()
    revealed = chain.market.contract.events.OutputsRevealed().get_logs(from_block=0, argument_filters={"jobId": job_id})
    assert len(revealed) == 1
    assert list(revealed[0]["args"]["taskIndices"]) == chain.market.sampled_tasks(job_id)
    assert f"crashing at {crash_at} of job {job_id}" in log.read_text()
