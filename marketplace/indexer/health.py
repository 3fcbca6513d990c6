"""What the indexer last heard from the chain, kept so that ``/healthz`` can tell the truth without asking it.

A health check that called the RPC itself would hang with a hung RPC; instead the indexer records,
as it polls, when the chain last answered, how its last poll ended and a short history of its lag.
``/healthz`` reads that record (``ChainWatch.snapshot``) and judges it with the pure functions here,
so the same judgement is testable with a made-up clock.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import requests

from marketplace.errors import ChainUnreachableError

# Samples of lag kept at most: enough for the trend window at any sane poll interval, and small.
MAX_SAMPLES = 256
# An error is shown on one line of at most this many characters (a web3 error can carry a whole reply).
MAX_ERROR_CHARS = 300


@dataclass(frozen=True)
class LagSample:
    at: float  # monotonic seconds
    lag: int  # head less the last block indexed, when the poll ended


@dataclass(frozen=True)
class WatchSnapshot:
    """One consistent reading of a ``ChainWatch``; monotonic times share the watch's clock."""

    watching_since: float | None  # when the polling started (None before the indexer thread runs)
    last_answer_at: float | None  # the chain's last answer to the indexer
    last_answer_time: datetime | None  # the same moment on the wall clock, for people
    polls: int  # polls finished, failed or not
    error: str | None  # why the last poll failed; None when it succeeded
    unreachable: bool  # the last poll failed because the chain refused or did not answer in time
    samples: tuple[LagSample, ...]
    window_s: float


def one_line(error: BaseException) -> str:
    """The error's first line, capped, or its type when it has no message."""
    lines = str(error).strip().splitlines()
    text = lines[0].strip() if lines else type(error).__name__
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def is_unreachable(error: BaseException) -> bool:
    """Whether ``error`` says the chain is not there (refused, timed out), rather than that it refused a request.

    A batch request goes around ``TimedHTTPProvider``'s translation, so the raw ``requests`` errors count too.
    """
    return isinstance(error, ChainUnreachableError | requests.ConnectionError | requests.Timeout)


def lag_growing(samples: Sequence[LagSample], now: float, window_s: float) -> bool:
    """Whether the newest lag is larger than the lag ``window_s`` seconds ago.

    "Ago" is the newest sample at or before the window's start, or the oldest one kept when the history
    is younger than the window. A window rather than the previous poll: on a chain with 12 s blocks and a
    1 s poll, a stuck indexer's lag moves once in twelve polls.
    """
    if len(samples) < 2:
        return False
    start = now - window_s
    base = samples[0]
    for sample in samples:
        if sample.at > start:
            break
        base = sample
    return samples[-1].lag > base.lag


class ChainWatch:
    """The indexer's record of its polls; written by the indexer thread, read by request threads.

    ``clock`` (monotonic seconds) and ``wall`` are parameters so that tests can drive time.
    """

    def __init__(
        self,
        *,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.window_s = window_s
        self.clock = clock
        self.wall = wall
        self._lock = threading.Lock()
        self._watching_since: float | None = None
        self._answer_at: float | None = None
        self._answer_time: datetime | None = None
        self._poll_start: float | None = None
        self._polls = 0
        self._error: str | None = None
        self._unreachable = False
        self._samples: deque[LagSample] = deque(maxlen=MAX_SAMPLES)

    def begin(self) -> None:
        """A poll starts (the first one starts the watch)."""
        with self._lock:
            self._poll_start = self.clock()
            if self._watching_since is None:
                self._watching_since = self._poll_start

    def answered(self) -> None:
        """The chain answered a request: it is reachable now."""
        now, wall = self.clock(), self.wall()
        with self._lock:
            self._answer_at, self._answer_time = now, wall

    def ended(self, lag: int, error: BaseException | None = None) -> None:
        """The poll ended, with the lag it left and, when it failed, why.

        A failed poll adds a lag sample only when the chain answered during it (the head is fresh);
        otherwise the head, and so the lag, is what an earlier poll saw.
        """
        now = self.clock()
        with self._lock:
            self._polls += 1
            self._error = None if error is None else one_line(error)
            self._unreachable = error is not None and is_unreachable(error)
            fresh = error is None or (
                self._answer_at is not None and self._poll_start is not None and self._answer_at >= self._poll_start
            )
            if fresh:
                self._samples.append(LagSample(now, lag))
                self._prune(now)

    def snapshot(self) -> WatchSnapshot:
        with self._lock:
            return WatchSnapshot(
                watching_since=self._watching_since,
                last_answer_at=self._answer_at,
                last_answer_time=self._answer_time,
                polls=self._polls,
                error=self._error,
                unreachable=self._unreachable,
                samples=tuple(self._samples),
                window_s=self.window_s,
            )

    def _prune(self, now: float) -> None:
        """Drops samples older than the window, keeping the newest of them as the window's baseline."""
        start = now - self.window_s
        while len(self._samples) > 1 and self._samples[1].at <= start:
            self._samples.popleft()
