"""The daemon's heartbeats: its GPUs' telemetry, jobs running and tasks/s, signed, to the node every few seconds.

They run in their own thread beside the daemon, so a slow or absent node never holds up a job, and a job never
holds up the heartbeat (the dashboard shows a busy provider online). The node refuses a heartbeat it cannot use
(``marketplace.node.telemetry``); the sender logs why once, not at every beat, and keeps trying: a provider that
registers later, or a node that comes back, starts showing it without a restart.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import httpx
from eth_account.signers.local import LocalAccount
from pydantic import ValidationError

from marketplace.heartbeat import GpuReading, reading, sign_heartbeat
from provider.gpu import GpuSample

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pulse:
    """What the daemon is doing now: jobs claimed and not yet computed, and the last computed job's tasks/s."""

    jobs_running: int = 0
    tasks_per_s: float = 0.0


class Samples(Protocol):
    def samples(self) -> list[GpuSample]: ...


@dataclass
class HeartbeatSender:
    node_url: str
    account: LocalAccount
    chain_id: int
    market: str
    gpus: Samples
    pulse: Callable[[], Pulse]
    interval_s: float = 5.0
    timeout_s: float = 5.0
    clock: Callable[[], float] = time.time
    stopping: threading.Event = field(default_factory=threading.Event)
    sent: int = 0  # heartbeats the node stored
    _last_ms: int = field(default=0, repr=False)
    _last_problem: str | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def beat(self, client: httpx.Client) -> float:
        """Sends one heartbeat; the seconds until the next (longer after a refusal that says to wait)."""
        sent_at = max(int(self.clock() * 1000), self._last_ms + 1)  # strictly increasing, as the node demands
        pulse = self.pulse()
        signed = sign_heartbeat(self.account, chain_id=self.chain_id, market=self.market, sent_at_ms=sent_at,
                                gpus=self._readings(), jobs_running=max(0, min(10_000, pulse.jobs_running)),
                                tasks_per_s=round(max(0.0, min(1e9, pulse.tasks_per_s)), 3))
        self._last_ms = sent_at
        try:
            response = client.post(f"{self.node_url.rstrip('/')}/v1/heartbeats", json=signed.model_dump())
        except httpx.HTTPError as error:
            self._problem(f"the node at {self.node_url} is unreachable ({type(error).__name__}); retrying")
            return self.interval_s
        if response.status_code == 202:
            self.sent += 1
            if self._last_problem is not None:
                log.info("heartbeats reach the node at %s again", self.node_url)
                self._last_problem = None
            return self.interval_s
        if response.status_code == 404:
            self._problem(f"{self.node_url} takes no heartbeats (not a WEBI node?): the dashboard shows this "
                          "provider offline; set node_url in the provider config")
            return max(self.interval_s, 60.0)
        detail = _detail(response)
        self._problem(f"the node refused a heartbeat ({response.status_code}): {detail}")
        if response.status_code == 429:
            retry = response.headers.get("retry-after", "")
            return max(self.interval_s, min(300.0, float(retry))) if retry.isdecimal() else self.interval_s
        return self.interval_s

    def run(self) -> None:
        """Beats until ``stop()``: nothing a beat raises ends the thread (the provider would look offline)."""
        with httpx.Client(timeout=self.timeout_s) as client:
            while not self.stopping.is_set():
                try:
                    wait = self.beat(client)
                except Exception as error:  # a bug or an odd reading must not silence the heartbeat for good
                    self._problem(f"a heartbeat failed: {type(error).__name__}: {error}")
                    wait = self.interval_s
                self.stopping.wait(wait)

    def _readings(self) -> list[GpuReading]:
        """Each GPU NVML reports in bounds; a reading NVML cannot give (or gives out of range) leaves that GPU out."""
        try:
            samples = self.gpus.samples()
        except Exception as error:  # NVML errors: a lost GPU, a reading the card does not support
            self._problem(f"no GPU readings for the heartbeat: {type(error).__name__}: {error}")
            return []
        readings = []
        for sample in samples:
            try:
                readings.append(reading(sample))
            except ValueError as error:  # pydantic's ValidationError: e.g. 255 degrees, NVML's "not available"
                self._problem(f"GPU {sample.index}'s reading is out of range, left out: {error.errors()[0]['msg']}"
                              if isinstance(error, ValidationError) else f"GPU {sample.index}: {error}")
        return readings

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="webi-heartbeats", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout_s + 1)

    def _problem(self, message: str) -> None:
        if message != self._last_problem:  # once per change, not once per beat
            log.warning("%s", message)
            self._last_problem = message


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    return str(body.get("detail", body) if isinstance(body, dict) else body)[:300]
