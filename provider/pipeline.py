"""The daemon's two work stages, each on its own thread, so the GPU does not wait on the store or the chain.

A job's **compute** stage reads its inputs (when the claim did not already) and runs the inference; its
**publish** stage stores the output manifest, computes the Merkle root and journals the job as computed. The
compute thread hands a job to the publish thread and is free at once for the next claimed job, while the loop's
thread claims, submits and follows jobs in between (``ProviderDaemon.step``). So for back-to-back jobs the
inference of one overlaps the publication of the one before, its submission, and the next claim.

Crash safety is the journal's, as before: a job is ``computed`` only once its outputs are stored and its root
is journaled, so a kill at any point of either stage leaves it ``claimed``, and the restarted daemon computes
it again (same outputs, same CID) and submits it once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Pipeline:
    wake: threading.Event  # set whenever a stage ends: the loop submits a computed job without waiting a poll
    _compute: ThreadPoolExecutor | None = field(default=None, repr=False)
    _publish: ThreadPoolExecutor | None = field(default=None, repr=False)
    _computing: tuple[int, Future[None]] | None = field(default=None, repr=False)
    _publishing: dict[int, Future[None]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def computing(self) -> int | None:
        """The job in the compute stage (the thread takes one at a time), or None when it is free."""
        return self._computing[0] if self._computing is not None else None

    def holds(self, job_id: int) -> bool:
        """Whether ``job_id`` is in either stage: the loop leaves it alone until it ends."""
        with self._lock:
            return self.computing == job_id or job_id in self._publishing

    def stage_ended(self) -> bool:
        """Whether a stage ended that ``ended`` has not taken in: the loop has a job to submit or to start."""
        with self._lock:
            publishing = any(future.done() for future in self._publishing.values())
        return publishing or (self._computing is not None and self._computing[1].done())

    def start(self, job_id: int, compute: Callable[[], Any], publish: Callable[[Any], None]) -> None:
        """Computes ``job_id`` on the compute thread, then publishes what it returned on the publish thread."""
        if self._computing is not None:
            raise RuntimeError(f"job {self._computing[0]} is still computing")
        if self._compute is None:
            self._compute = ThreadPoolExecutor(1, thread_name_prefix="webi-compute")
            self._publish = ThreadPoolExecutor(1, thread_name_prefix="webi-publish")
        publisher = self._publish
        assert publisher is not None

        def stage() -> None:
            result = compute()
            with self._lock:  # in the publish stage before the compute stage ends: never in neither
                future = self._publishing[job_id] = publisher.submit(publish, result)
            future.add_done_callback(lambda _: self.wake.set())

        future = self._compute.submit(stage)
        self._computing = (job_id, future)
        future.add_done_callback(lambda _: self.wake.set())

    def ended(self) -> list[tuple[int, BaseException]]:
        """Takes in the stages that ended; the failures among them, by job (a success is journaled already)."""
        failures = []
        if self._computing is not None and self._computing[1].done():
            job_id, future = self._computing
            self._computing = None
            if future.exception() is not None:
                failures.append((job_id, future.exception()))
        with self._lock:
            done = [(job_id, future) for job_id, future in self._publishing.items() if future.done()]
            for job_id, _ in done:
                del self._publishing[job_id]
        failures += [(job_id, future.exception()) for job_id, future in done if future.exception() is not None]
        return [(job_id, error) for job_id, error in failures if error is not None]

    def close(self) -> None:
        """Lets the job computing and every job publishing finish (each journals its end), then ends the threads."""
        if self._compute is not None:
            self._compute.shutdown(wait=True)  # first: a job it ends is handed to the publish thread
            self._compute = None
        if self._publish is not None:
            self._publish.shutdown(wait=True)
            self._publish = None
