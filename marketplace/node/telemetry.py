"""Providers' live telemetry on the node: signed heartbeats checked, rate-limited, kept for an hour, bounded.

A heartbeat is stored only when all of these hold, in this order (the first that fails is the answer):

- its body is at most ``MAX_BYTES`` (413) and a well-formed ``SignedHeartbeat`` (422), for this deployment (422);
- it is fresh, ``max_skew_s`` at most from the node's clock (409 when older, 422 when ahead), and newer than the
  provider's last stored one (409): a heartbeat captured on the wire cannot be played to this node again;
- it comes at least ``min_interval_s`` after the last stored one by its own clock (429, with Retry-After);
- the address it names is a registered provider with stake (403): an address with no stake cannot fill the
  node's memory;
- its signature recovers to the provider it names (401): nobody paints another provider online.

Only stored heartbeats count against the rate limit, so a flood of forged ones under a provider's address cannot
silence it. The history is bounded: one point per ``step_s`` (the latest in it) over ``window_s``, per registered
provider, each of at most ``MAX_GPUS`` cards, for at most ``max_providers`` providers (past it, the one heard
from least recently is forgotten); a provider silent for ``window_s`` is forgotten. It lives in memory:
a restarted node shows every provider offline until its next heartbeat, which is what they are to it.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from marketplace.heartbeat import Heartbeat, SignedHeartbeat

T = TypeVar("T")


@dataclass(frozen=True)
class TelemetryLimits:
    min_interval_s: float = 2.0  # the daemon sends every 5 s by default
    max_skew_s: float = 30.0
    offline_after_s: float = 20.0  # about four missed heartbeats at the default interval
    window_s: float = 3_600.0
    step_s: float = 10.0
    max_providers: int = 1_000  # tracked at once; past it, the one heard from least recently is forgotten


@dataclass(frozen=True)
class Point:
    received_at: float  # the node's clock
    heartbeat: Heartbeat

    def as_dict(self) -> dict[str, Any]:
        beat = self.heartbeat
        return {"received_at": round(self.received_at, 3), "sent_at_ms": beat.sent_at_ms,
                "jobs_running": beat.jobs_running, "tasks_per_s": beat.tasks_per_s,
                "gpus": [gpu.model_dump() for gpu in beat.gpus]}


class HeartbeatError(Exception):
    """Why a heartbeat was not stored, with the HTTP status that says so."""

    def __init__(self, status: int, detail: str, retry_after_s: float | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.retry_after_s = status, detail, retry_after_s


@dataclass
class Telemetry:
    chain_id: int
    market: str
    registered: Callable[[str], bool]  # a provider with stake, as the indexer last saw it
    limits: TelemetryLimits = field(default_factory=TelemetryLimits)
    clock: Callable[[], float] = time.time
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _last: dict[str, Point] = field(default_factory=dict, repr=False)  # the last stored heartbeat, by provider
    _history: dict[str, deque[Point]] = field(default_factory=dict, repr=False)
    _versions: dict[str, int] = field(default_factory=dict, repr=False)  # never reset: a key for cached views
    # By provider: its latest view, that view's history and what ``derived`` made of it.
    _views: dict[str, tuple[tuple[int, int], dict[str, Any]]] = field(default_factory=dict, repr=False)
    _swept_at: float = field(default=0.0, repr=False)

    def accept(self, signed: SignedHeartbeat) -> Point:
        """Stores ``signed`` or raises ``HeartbeatError``; never both.

        The signature is recovered last, once every cheaper check has passed, so a forged heartbeat costs the node
        an ECDSA recovery only when it names a registered provider, is fresh and is spaced from the last one.
        """
        beat = signed.heartbeat
        if beat.chain_id != self.chain_id or beat.market.lower() != self.market.lower():
            raise HeartbeatError(422, f"a heartbeat for chain {beat.chain_id} market {beat.market}; this node "
                                      f"serves chain {self.chain_id} market {self.market}")
        age = self.clock() - beat.sent_at_ms / 1000
        if age > self.limits.max_skew_s:
            raise HeartbeatError(409, f"a stale heartbeat: sent {age:.0f} s ago, and the node takes them up to "
                                      f"{self.limits.max_skew_s:.0f} s old (a replay, or the provider's clock is "
                                      "behind the node's)")
        if -age > self.limits.max_skew_s:
            raise HeartbeatError(422, f"a heartbeat from {-age:.0f} s in the future: the provider's clock is ahead "
                                      "of the node's")
        with self._lock:
            self._check_order(beat)
        if not self.registered(beat.provider):
            raise HeartbeatError(403, f"{beat.provider} is not a registered provider with stake on this chain")
        if signed.signer() != beat.provider:
            raise HeartbeatError(401, f"the signature is not {beat.provider}'s over this heartbeat")
        with self._lock:
            self._check_order(beat)  # again: another request for the provider may have been stored meanwhile
            now = self.clock()  # read under the lock, so one provider's points are in order
            point = Point(now, beat)
            if beat.provider not in self._last and len(self._last) >= self.limits.max_providers:
                self._forget(min(self._last, key=lambda provider: self._last[provider].received_at))
            self._last[beat.provider] = point
            self._versions[beat.provider] = self._versions.get(beat.provider, 0) + 1
            self._record(point)
            self._sweep(now)
        return point

    def _check_order(self, beat: Heartbeat) -> None:
        """No replay (newer than the last stored) and the rate limit (spaced from it), by the heartbeats' own clock."""
        last = self._last.get(beat.provider)
        if last is None:
            return
        previous = last.heartbeat.sent_at_ms
        if beat.sent_at_ms <= previous:
            raise HeartbeatError(409, f"a replayed heartbeat: sent at {beat.sent_at_ms} ms, not after the last "
                                      f"stored one ({previous} ms)")
        wait = (previous + self.limits.min_interval_s * 1000 - beat.sent_at_ms) / 1000
        if wait > 0:
            raise HeartbeatError(429, f"heartbeats from {beat.provider} come too fast: at most one every "
                                      f"{self.limits.min_interval_s:g} s", retry_after_s=wait)

    def snapshot(self, provider: str) -> dict[str, Any]:
        """What the dashboard and ``webi provider status`` show: online or not, the last heartbeat, the last hour.

        ``view`` names this history (heartbeats stored, step of the clock): what ``derived`` makes of it stays
        good until the view moves. The history list is shared between snapshots of one view: read it, do not
        change it.
        """
        now = self.clock()
        with self._lock:
            last = self._last.get(provider)
            view = (self._versions.get(provider, 0), int(now // self.limits.step_s))
            cached = self._views.get(provider)
            if cached is not None and cached[0] == view:
                history = cached[1]["history"]
            else:
                history = [point.as_dict() for point in self._history.get(provider, ())
                           if now - point.received_at <= self.limits.window_s]
                if provider in self._last:
                    self._views[provider] = (view, {"history": history})
        seen = last.received_at if last is not None else None
        return {"provider": provider, "now": round(now, 3),
                "online": seen is not None and now - seen <= self.limits.offline_after_s,
                "last_seen": None if seen is None else round(seen, 3),
                "offline_after_s": self.limits.offline_after_s, "window_s": self.limits.window_s,
                "view": list(view), "latest": None if last is None else last.as_dict(), "history": history}

    def derived(self, snapshot: dict[str, Any], name: str, make: Callable[[dict[str, Any]], T]) -> T:
        """``make(snapshot)``, computed once per view of its provider and kept beside that view's history (so
        the JSON and the charts of a page that many readers poll are built once a step, and forgotten with it)."""
        provider, view = snapshot["provider"], tuple(snapshot["view"])
        with self._lock:
            cached = self._views.get(provider)
            if cached is not None and cached[0] == view and name in cached[1]:
                return cast(T, cached[1][name])
        value = make(snapshot)
        with self._lock:
            cached = self._views.get(provider)
            if cached is not None and cached[0] == view:
                cached[1][name] = value
        return value

    def tracked(self) -> int:
        with self._lock:
            return len(self._last)

    def _record(self, point: Point) -> None:
        step = self.limits.step_s
        history = self._history.get(point.heartbeat.provider)
        if history is None:
            history = self._history[point.heartbeat.provider] = deque(maxlen=math.ceil(self.limits.window_s / step) + 1)
        if history and history[-1].received_at // step == point.received_at // step:
            history[-1] = point  # one point a step: the latest
        else:
            history.append(point)

    def _sweep(self, now: float) -> None:
        """Forgets providers silent for the whole window (at most once a step: the sweep walks every provider)."""
        if now - self._swept_at < self.limits.step_s:
            return
        self._swept_at = now
        for provider in [p for p, point in self._last.items() if now - point.received_at > self.limits.window_s]:
            self._forget(provider)

    def _forget(self, provider: str) -> None:
        del self._last[provider]
        self._history.pop(provider, None)
        self._views.pop(provider, None)
