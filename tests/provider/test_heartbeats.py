"""The daemon's heartbeat sender against a real node (on a clock the test sets), and `webi provider status`
showing the node's live view and earnings a day in the terminal."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from marketplace.chain.devnet import Devnet
from marketplace.protocol import Role
from marketplace.units import webi
from provider.config import load_config
from provider.gpu import GpuSample
from provider.heartbeats import HeartbeatSender, Pulse
from provider.status_view import sparkline
from tests.conftest import Chain
from tests.support.history import settle_history
from tests.support.jobs import provider_config
from tests.support.servers import free_port
from tests.support.telemetry import TelemetryNode
from tests.support.waiting import wait_for

SAMPLE = GpuSample(index=0, utilization_pct=93, memory_used_bytes=12 * 1024**3, memory_total_bytes=24 * 1024**3,
                   temperature_c=71, power_w=288.0, other_processes_memory_bytes=0)


class OneGpu:
    def __init__(self, sample: GpuSample = SAMPLE) -> None:
        self.sample = sample

    def samples(self) -> list[GpuSample]:
        return [self.sample]


def sender(node: TelemetryNode, account: LocalAccount, url: str | None = None) -> HeartbeatSender:
    return HeartbeatSender(url or node.url, account, node.chain.client.chain_id, node.chain.market.address, OneGpu(),
                           lambda: Pulse(jobs_running=2, tasks_per_s=12.5), interval_s=5.0, clock=node.clock)


def test_the_sender_signs_what_the_daemon_does_and_the_node_shows_it(
        telemetry_node: TelemetryNode, chain: Chain, provider: LocalAccount) -> None:
    chain.register(provider, Role.PROVIDER)
    telemetry_node.caught_up()
    beats = sender(telemetry_node, provider)
    with httpx.Client() as client:
        assert beats.beat(client) == 5.0
        telemetry_node.clock.now += 5.0
        beats.beat(client)
    assert beats.sent == 2
    shown = telemetry_node.telemetry(provider.address)
    assert shown["online"] is True
    latest = shown["latest"]
    assert latest["jobs_running"] == 2 and latest["tasks_per_s"] == 12.5  # type: ignore[index]
    assert latest["gpus"][0]["utilization_pct"] == 93 and latest["gpus"][0]["power_w"] == 288.0  # type: ignore[index]
    threaded = sender(telemetry_node, provider)  # in its own thread, as `webi provider run` starts it
    telemetry_node.clock.now += 5.0
    threaded.start()
    wait_for(lambda: threaded.sent >= 1, timeout=10, what="the thread's first heartbeat")
    threaded.stop()
    assert threaded._thread is not None and not threaded._thread.is_alive()


def test_a_refused_or_unreachable_heartbeat_is_logged_once_and_the_sender_goes_on(
        telemetry_node: TelemetryNode, stranger: LocalAccount, caplog: pytest.LogCaptureFixture) -> None:
    unregistered = sender(telemetry_node, stranger)
    with caplog.at_level(logging.WARNING, logger="provider.heartbeats"), httpx.Client() as client:
        for _ in range(3):
            telemetry_node.clock.now += 5.0
            assert unregistered.beat(client) == 5.0
        nowhere = sender(telemetry_node, stranger, url=f"http://127.0.0.1:{free_port()}")
        nowhere.beat(client)
        nowhere.beat(client)
    messages = [record.getMessage() for record in caplog.records]
    assert sum("not a registered provider" in message for message in messages) == 1, messages
    assert sum("unreachable" in message for message in messages) == 1, messages
    assert unregistered.sent == 0 and telemetry_node.telemetry(stranger.address)["latest"] is None


class FlakyGpus:
    """NVML as it fails: a call that raises, then a card reporting 255 degrees (its "not available")."""

    def __init__(self) -> None:
        self.calls = 0

    def samples(self) -> list[GpuSample]:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("NVML_ERROR_GPU_IS_LOST")
        return [SAMPLE, GpuSample(1, 10, 0, 1, 255, 0.0, 0)]


def test_nothing_a_gpu_reports_stops_the_heartbeat(telemetry_node: TelemetryNode, chain: Chain,
                                                   provider: LocalAccount, caplog: pytest.LogCaptureFixture) -> None:
    chain.register(provider, Role.PROVIDER)
    telemetry_node.caught_up()
    beats = sender(telemetry_node, provider)
    beats.gpus = FlakyGpus()
    with caplog.at_level(logging.WARNING, logger="provider.heartbeats"), httpx.Client() as client:
        beats.beat(client)  # NVML raised: a heartbeat without GPU readings
        telemetry_node.clock.now += 10.0  # the next step of the history
        beats.beat(client)  # GPU 1 out of range: left out, GPU 0 sent
    assert beats.sent == 2
    history = telemetry_node.telemetry(provider.address)["history"]
    assert [len(point["gpus"]) for point in history] == [0, 1]  # type: ignore[union-attr, index]
    messages = " ".join(record.getMessage() for record in caplog.records)
    assert "NVML_ERROR_GPU_IS_LOST" in messages and "GPU 1's reading is out of range" in messages

    def broken() -> Pulse:
        raise ZeroDivisionError("a bug in the daemon's pulse")

    crashing = sender(telemetry_node, provider)
    crashing.pulse = broken
    crashing.start()
    wait_for(lambda: any("ZeroDivisionError" in record.getMessage() for record in caplog.records), timeout=10,
             what="the failed beat to be logged")
    assert crashing._thread is not None and crashing._thread.is_alive()  # the thread goes on
    crashing.stop()


def test_a_hostile_or_broken_node_gets_a_sentence_not_a_traceback() -> None:
    from provider.status_view import NodeView, live_part

    odd = NodeView({"online": True, "last_seen": "soon", "now": 1.0, "latest": None, "history": []})
    assert "malformed" in str(live_part(odd))
    gpu = {**SAMPLE.__dict__, "utilization_pct": "[red]x"}
    marked = {"online": True, "last_seen": 0.0, "now": 1.0, "history": [],
              "latest": {"jobs_running": 0, "tasks_per_s": 0.0, "gpus": [gpu]}}
    assert "malformed" in str(live_part(NodeView(marked)))  # a string where a number belongs: refused


def test_the_config_sends_heartbeats_to_the_store_node_unless_told_otherwise(tmp_path: Path) -> None:
    base = {"rpc_url": "http://127.0.0.1:8545", "keystore": tmp_path / "k.json", "state_dir": tmp_path}
    assert load_config(None, {**base, "store": "http://node:8000"}).heartbeat_url() == "http://node:8000"
    assert load_config(None, {**base, "store": str(tmp_path)}).heartbeat_url() is None  # a directory store
    assert load_config(None, {**base, "store": str(tmp_path), "node_url": "http://n"}).heartbeat_url() == "http://n"
    assert load_config(None, {**base, "heartbeats": False}).heartbeat_url() is None
    assert sparkline([0, 50, 100], 100) == "▁▅█" and sparkline([], 100) == ""


def test_status_shows_the_live_view_and_earnings_a_day(
        telemetry_node: TelemetryNode, chain: Chain, devnet: Devnet, deployments: Path, tmp_path: Path,
        requester: LocalAccount, provider: LocalAccount, verifier: LocalAccount) -> None:
    settle_history(chain, requester, provider, verifier)
    telemetry_node.caught_up()
    with httpx.Client() as client:
        sender(telemetry_node, provider).beat(client)
    telemetry_node.clock.now += 3.0
    config = provider_config(tmp_path, provider, devnet.anvil.rpc_url, str(tmp_path / "store"), deployments)

    def status(*args: str) -> str:
        env = {**os.environ, "WEBI_HOME": str(tmp_path / "home"), "COLUMNS": "160"}
        done = subprocess.run([sys.executable, "-m", "marketplace.cli", "provider", "status", "-c", str(config),
                               *args], capture_output=True, text=True, env=env, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    shown = status("--node", telemetry_node.url)
    assert "● online · last heartbeat 3 s ago · 2 jobs running · 12.5 tasks/s" in shown
    assert "93 %" in shown and "12.0 / 24.0 GiB" in shown and "71 °C" in shown and "288 W" in shown
    earned = int(httpx.get(f"{telemetry_node.url}/v1/providers/{provider.address}").json()["earned"])
    assert earned > 0 and "earnings a day, from the chain" in shown
    today = [line for line in shown.splitlines() if webi(earned) in line and "█" in line]
    assert len(today) == 1 and "█" * 30 in today[0]  # the best day fills the bar; 13 days of nothing before it
    assert "no node configured" in status()  # a directory store and no node_url: the rest still shows
    watched = status("--node", telemetry_node.url, "--watch", "--interval", "0.5", "--refreshes", "2")
    assert "● online" in watched
