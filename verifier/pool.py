"""A bounded pool of audit workers that always takes the most valuable waiting audit first.

A verifier is drawn for jobs of every size; each audit has its own deadline, and one that misses
it costs the verifier stake. Audits are therefore taken by audit fee (highest first), then by
deadline (soonest first), and the order is decided each time a worker becomes free, not when a
job arrives: a paid job drawn while a flood of dust jobs waits goes ahead of all of them.

Jobs are identified by id; a job is offered at most once while it waits or runs, so the daemon's
pass can offer every open audit each time without doubling any. The work function handles its
own errors and journal; the pool only schedules. Without ``start()`` (a single ``step()`` of the
daemon), ``run_pending()`` does the waiting work in the caller's thread, in the same order.
"""

from __future__ import annotations

import heapq
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass(order=True, frozen=True)
class Priority:
    """Sorts the most valuable audit first: the highest fee, then the soonest deadline, then the job id."""

    negative_fee: int
    deadline: int
    job_id: int

    @classmethod
    def of(cls, job_id: int, audit_fee: int, deadline: int) -> Priority:
        return cls(-audit_fee, deadline, job_id)


@dataclass
class AuditPool:
    work: Callable[[int], None]
    workers: int
    stopping: threading.Event
    _waiting: list[Priority] = field(default_factory=list, repr=False)
    _queued: set[int] = field(default_factory=set, repr=False)
    _running: set[int] = field(default_factory=set, repr=False)
    _changed: threading.Condition = field(default_factory=threading.Condition, repr=False)
    _threads: list[threading.Thread] = field(default_factory=list, repr=False)

    def offer(self, job_id: int, audit_fee: int, deadline: int) -> bool:
        """Queues the audit of ``job_id`` unless it is already waiting or running; whether it was queued."""
        return bool(self.offer_all([(job_id, audit_fee, deadline)]))

    def offer_all(self, audits: list[tuple[int, int, int]]) -> int:
        """Queues every (job id, audit fee, deadline) at once, so that no worker takes one of them before
        the most valuable is there too (a pass offers what it found together); how many were new."""
        queued = 0
        with self._changed:
            for job_id, audit_fee, deadline in audits:
                if job_id in self._queued or job_id in self._running:
                    continue
                heapq.heappush(self._waiting, Priority.of(job_id, audit_fee, deadline))
                self._queued.add(job_id)
                queued += 1
            self._changed.notify_all()
        return queued

    def busy(self, job_id: int) -> bool:
        """Whether ``job_id`` waits or runs here (then the daemon's pass leaves it alone)."""
        with self._changed:
            return job_id in self._queued or job_id in self._running

    def pending(self) -> list[int]:
        """The waiting jobs, in the order they will be taken."""
        with self._changed:
            return [priority.job_id for priority in sorted(self._waiting)]

    def start(self) -> None:
        for number in range(self.workers):
            thread = threading.Thread(target=self._serve, name=f"webi-audit-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def join(self, timeout: float | None = None) -> None:
        """Waits for the workers after ``stopping`` is set (each finishes the audit it is on)."""
        with self._changed:
            self._changed.notify_all()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    @property
    def started(self) -> bool:
        return bool(self._threads)

    def run_pending(self) -> None:
        """Does every waiting audit in this thread, most valuable first (when no workers run)."""
        while not self.stopping.is_set():
            job_id = self._take(block=False)
            if job_id is None:
                return
            self._do(job_id)

    def _serve(self) -> None:
        while not self.stopping.is_set():
            job_id = self._take(block=True)
            if job_id is not None:
                self._do(job_id)

    def _take(self, *, block: bool) -> int | None:
        with self._changed:
            while not self._waiting:
                if not block or self.stopping.is_set():
                    return None
                self._changed.wait(timeout=1.0)
            job_id = heapq.heappop(self._waiting).job_id
            self._queued.discard(job_id)
            self._running.add(job_id)
            return job_id

    def _do(self, job_id: int) -> None:
        try:
            self.work(job_id)
        except Exception:  # the work function handles its own errors; this keeps the worker alive
            log.exception("audit of job %d: unexpected error", job_id)
        finally:
            with self._changed:
                self._running.discard(job_id)
                self._changed.notify_all()
