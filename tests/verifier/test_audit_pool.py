"""The audit pool: the most valuable waiting audit goes first, whenever it arrives; no job twice; bounded."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from tests.support.waiting import wait_for
from verifier.pool import AuditPool


class Gate:
    """Work that records the order jobs start in and runs each only once the test releases it."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.released: dict[int, threading.Event] = {}
        self.lock = threading.Lock()

    def __call__(self, job_id: int) -> None:
        with self.lock:
            self.started.append(job_id)
            event = self.released.setdefault(job_id, threading.Event())
        assert event.wait(timeout=30), f"job {job_id} never released"

    def release(self, job_id: int) -> None:
        with self.lock:
            self.released.setdefault(job_id, threading.Event()).set()


@contextmanager
def serving(gate: Gate, workers: int, offers: tuple[tuple[int, int, int], ...] = ()) -> Iterator[AuditPool]:
    """A started pool over ``gate``; ``offers`` (job, fee, deadline) are queued before any worker runs."""
    stopping = threading.Event()
    pool = AuditPool(gate, workers, stopping)
    for job_id, fee, deadline in offers:
        pool.offer(job_id, audit_fee=fee, deadline=deadline)
    pool.start()
    try:
        yield pool
    finally:
        stopping.set()
        for job_id in range(100):
            gate.release(job_id)
        pool.join(timeout=30)


def test_a_paid_audit_offered_during_a_dust_flood_goes_next() -> None:
    gate = Gate()
    with serving(gate, workers=1) as pool:
        for job_id in range(1, 6):  # dust: the minimum fee, deadlines in posting order
            pool.offer(job_id, audit_fee=1, deadline=1_000 + job_id)
        wait_for(lambda: gate.started == [1], what="the first dust audit to start")
        assert pool.offer(9, audit_fee=1_000, deadline=5_000)  # paid, later deadline, offered last
        assert pool.pending() == [9, 2, 3, 4, 5]
        for job_id in (1, 9, 2, 3, 4, 5):
            gate.release(job_id)
        wait_for(lambda: len(gate.started) == 6, what="every audit to start")
    assert gate.started == [1, 9, 2, 3, 4, 5]


def test_equal_fees_go_by_deadline_and_a_job_is_never_queued_twice() -> None:
    gate = Gate()
    with serving(gate, workers=1) as pool:
        pool.offer(1, audit_fee=5, deadline=100)
        wait_for(lambda: gate.started == [1], what="the first audit")
        assert not pool.offer(1, audit_fee=5, deadline=100), "running already"
        assert pool.busy(1)
        pool.offer(2, audit_fee=5, deadline=300)
        pool.offer(3, audit_fee=5, deadline=200)
        assert not pool.offer(3, audit_fee=5, deadline=200), "waiting already"
        assert pool.pending() == [3, 2]
        for job_id in (1, 2, 3):
            gate.release(job_id)
        wait_for(lambda: len(gate.started) == 3 and not pool.busy(2), what="the rest")
    assert gate.started == [1, 3, 2]


def test_no_more_audits_run_at_once_than_workers() -> None:
    gate = Gate()
    with serving(gate, workers=2, offers=tuple((job_id, job_id, 0) for job_id in range(1, 5))) as pool:
        wait_for(lambda: len(gate.started) == 2, what="two audits to start")
        assert sorted(gate.started) == [3, 4] and pool.pending() == [2, 1], "the two most valuable, and no third"
        gate.release(4)
        wait_for(lambda: len(gate.started) == 3, what="a third once a worker is free")
        assert gate.started[2] == 2


def test_without_workers_run_pending_does_the_work_in_order() -> None:
    done: list[int] = []
    pool = AuditPool(done.append, 2, threading.Event())
    for job_id, fee in ((1, 1), (2, 7), (3, 3)):
        pool.offer(job_id, audit_fee=fee, deadline=0)
    pool.run_pending()
    assert done == [2, 3, 1] and not pool.busy(1) and pool.pending() == []


def test_a_failing_audit_does_not_stop_its_worker() -> None:
    done: list[int] = []

    def work(job_id: int) -> None:
        if job_id == 1:
            raise RuntimeError("broken")
        done.append(job_id)

    stopping = threading.Event()
    pool = AuditPool(work, 1, stopping)
    pool.start()
    try:
        pool.offer(1, audit_fee=9, deadline=0)
        pool.offer(2, audit_fee=1, deadline=0)
        wait_for(lambda: done == [2], what="the next audit after a failure")
    finally:
        stopping.set()
        pool.join(timeout=30)
