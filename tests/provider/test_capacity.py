"""A provider holds several claims, but only within its measured throughput and ``max_claims``."""

from __future__ import annotations

import threading
from pathlib import Path

from eth_account.signers.local import LocalAccount

from marketplace.protocol import JobState
from provider.capacity import Held, Limits, Throughput, refusal
from provider.journal import Journal, Stage
from tests.conftest import Chain
from tests.provider.test_daemon import running, stage_of
from tests.support.jobs import Market
from tests.support.waiting import wait_for

NOW = 1_000_000
LIMITS = Limits(max_claims=3, safety=1.0, job_overhead_s=0.0)


def held(job_id: int, tasks: int, deadline_in: int, task: str = "embed") -> Held:
    return Held(job_id, tasks, task, NOW + deadline_in)


def test_jobs_fit_when_each_finishes_by_its_deadline_earliest_deadline_first() -> None:
    rates: dict[str, float | None] = {"embed": 100.0}
    # 1,000 tasks due in 20 s, then 1,000 due in 30 s: 10 s and 20 s, both in time.
    assert refusal([held(1, 1_000, 30)], held(2, 1_000, 20), now=NOW, rates=rates, limits=LIMITS) is None
    # A third of 1,500 due in 25 s fits its own deadline but, computed before job 1, makes job 1 late.
    refused = refusal([held(1, 1_000, 30), held(2, 1_000, 20)], held(3, 1_500, 25), now=NOW, rates=rates,
                      limits=LIMITS)
    assert refused == "job 1: 1,000 tasks at 100 tasks/s measured would finish 5 s after its deadline behind 2 " \
                      "held jobs"


def test_a_faster_provider_may_take_what_a_slower_one_may_not() -> None:
    job = held(7, 4_096, 60)
    assert refusal([], job, now=NOW, rates={"embed": 100.0}, limits=LIMITS) is None
    slow = refusal([], job, now=NOW, rates={"embed": 50.0}, limits=LIMITS)
    assert slow is not None and "would finish 22 s after its deadline" in slow


def test_the_safety_factor_and_the_overhead_count() -> None:
    limits = Limits(max_claims=3, safety=2.0, job_overhead_s=5.0)
    # 1,000 tasks at 100 a second: 10 s, doubled, plus 5 s = 25 s against a 24 s window.
    assert refusal([], held(1, 1_000, 24), now=NOW, rates={"embed": 100.0}, limits=limits) is not None
    assert refusal([], held(1, 1_000, 25), now=NOW, rates={"embed": 100.0}, limits=limits) is None


def test_max_claims_and_the_unmeasured_first_job() -> None:
    rates: dict[str, float | None] = {"embed": 1e6, "generate": None}
    two = [held(1, 1, 600), held(2, 1, 600)]
    assert refusal(two, held(3, 1, 600), now=NOW, rates=rates, limits=Limits(max_claims=2)) == \
        "already holding 2 jobs not computed yet (max_claims 2): waiting for one to finish"
    # Never measured: the first job is taken (its run measures it), a second waits for it.
    assert refusal([], held(4, 100, 60, "generate"), now=NOW, rates=rates, limits=LIMITS) is None
    assert "no throughput measured yet for generate" in str(
        refusal([held(4, 10, 600, "generate")], held(5, 1, 600), now=NOW, rates=rates, limits=LIMITS))


def test_a_huge_first_job_of_a_task_never_measured_is_not_claimed() -> None:
    """The greedy requester's trap: 100,000 tasks of a type the provider never ran, the shortest window and the
    best price, so the provider claims it first, misses the deadline, and the requester's Sybil reclaims the
    collateral's reward. An unmeasured task is estimated at a slow CPU's assumed rate."""
    rates: dict[str, float | None] = {"embed": None}
    refused = refusal([], held(1, 10**5, 60), now=NOW, rates=rates, limits=LIMITS)
    assert refused == "job 1: 100,000 tasks at 50 tasks/s assumed (never measured) would finish 1940 s after its " \
                      "deadline"
    assert refusal([], held(2, 2_000, 60), now=NOW, rates=rates, limits=LIMITS) is None  # 40 s at 50 a second


def test_the_measured_throughput_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    Journal(path).close()
    first = Throughput(path)
    assert first.tasks_per_s("embed") is None
    first.record("embed", 300, 2.0)
    first.record("embed", 100, 2.0)
    first.record("embed", 0, 1.0)  # nothing ran: not a measurement
    first.close()
    again = Throughput(path)
    assert again.tasks_per_s("embed") == 100.0 and again.tasks_per_s("generate") is None
    again.close()


def test_a_daemon_holds_two_claims_at_once_and_no_more(chain: Chain, market: Market, config_for,
                                                       requester: LocalAccount, provider: LocalAccount) -> None:
    release = threading.Event()
    blocked: list[int] = []

    def hook(point: str, job_id: int) -> None:
        if point == "inputs-read" and not blocked:  # the first computation waits until the test lets it go
            blocked.append(job_id)
            assert release.wait(timeout=120)

    config = config_for(provider, max_claims=2)
    with running(config, provider, hook=hook) as daemon:
        daemon.throughput.record("embed", 10_000, 1.0)  # measured: fast enough for all of them
        jobs = [market.post(requester, "embed") for _ in range(3)]
        wait_for(lambda: [chain.market.get_job(job).state for job in jobs[:2]] == [JobState.CLAIMED] * 2,
                 what="two claims held at once")
        wait_for(lambda: "max_claims 2" in (daemon.journal.get(jobs[2]) or _Empty()).reason,
                 what="the third refused for now")
        assert chain.market.get_job(jobs[2]).state == JobState.OPEN
        release.set()
        wait_for(lambda: all(stage_of(daemon, job) == Stage.SUBMITTED for job in jobs), timeout=120,
                 what="all three submitted")
        assert len(daemon.runtime.resident()) == 1  # one model, loaded once for every job of it


def test_a_job_the_measured_throughput_cannot_finish_in_time_is_not_claimed(
    chain: Chain, market: Market, config_for, requester: LocalAccount, provider: LocalAccount,
) -> None:
    with running(config_for(provider), provider) as daemon:
        daemon.throughput.record("embed", 1, 100.0)  # 0.01 tasks a second: 8 tasks take 20 minutes
        job_id = market.post(requester, "embed", exec_window=600)
        wait_for(lambda: "after its deadline" in ((daemon.journal.get(job_id) or _Empty()).reason),
                 what="the refusal journaled")
        assert chain.market.get_job(job_id).state == JobState.OPEN and stage_of(daemon, job_id) == Stage.SEEN


class _Empty:
    reason = ""
