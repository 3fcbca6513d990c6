"""The pipelined daemon: the next job's inference runs while the last job's outputs are published and before it is
submitted, and every job is still claimed and submitted once."""

from __future__ import annotations

import threading

from eth_account.signers.local import LocalAccount

from marketplace.protocol import JobState
from provider.journal import Stage
from tests.conftest import Chain
from tests.provider.test_daemon import running, stage_of
from tests.support.jobs import Market
from tests.support.waiting import wait_for


def test_the_next_job_computes_while_the_last_one_publishes(chain: Chain, market: Market, config_for,
                                                            requester: LocalAccount, provider: LocalAccount) -> None:
    points: list[tuple[str, int]] = []
    second_ran = threading.Event()
    overlapped: list[bool] = []

    def hook(point: str, job_id: int) -> None:
        points.append((point, job_id))
        if point == "ran" and points[0][1] != job_id:
            second_ran.set()
        if point == "publishing" and not overlapped:  # the first publication waits for the next inference
            overlapped.append(second_ran.wait(timeout=120))

    with running(config_for(provider, max_claims=2), provider, hook=hook) as daemon:
        daemon.throughput.record("embed", 10_000, 1.0)  # measured: both jobs may be held at once
        jobs = [market.post(requester, "embed") for _ in range(2)]
        wait_for(lambda: all(stage_of(daemon, job) == Stage.SUBMITTED for job in jobs), timeout=180,
                 what="both submitted")
    assert overlapped == [True], points  # a serial daemon would have waited here in vain
    first = points[0][1]
    second = next(job for job in jobs if job != first)
    assert points.index(("computing", second)) < points.index(("submit-sent", first))
    assert points.index(("ran", second)) < points.index(("computed", first))
    events = chain.market.contract.events
    for job in jobs:
        assert len(events.JobClaimed().get_logs(from_block=0, argument_filters={"jobId": job})) == 1
        assert len(events.ResultSubmitted().get_logs(from_block=0, argument_filters={"jobId": job})) == 1
        assert chain.market.get_job(job).state == JobState.SUBMITTED
