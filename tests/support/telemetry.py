"""A marketplace node on a clock the test sets, and signed heartbeats for it (``marketplace.heartbeat``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from marketplace.chain.devnet import Devnet
from marketplace.heartbeat import GpuReading, SignedHeartbeat, sign_heartbeat
from marketplace.node import NodeSettings, create_node_app
from tests.conftest import Chain
from tests.support.servers import serve
from tests.support.waiting import wait_for

EPOCH = 1_900_000_000.0
GPU = GpuReading(index=0, utilization_pct=87, memory_used_bytes=30 * 1024**3, memory_total_bytes=80 * 1024**3,
                 temperature_c=64, power_w=412.5)


@dataclass
class Clock:
    now: float = EPOCH

    def __call__(self) -> float:
        return self.now


@dataclass
class TelemetryNode:
    url: str
    clock: Clock
    chain: Chain

    def beat(self, account: LocalAccount, offset_s: float = 0.0, **fields: object) -> SignedHeartbeat:
        values: dict[str, object] = {"chain_id": self.chain.client.chain_id, "market": self.chain.market.address,
                                     "sent_at_ms": int((self.clock.now + offset_s) * 1000), "gpus": [GPU],
                                     "jobs_running": 1, "tasks_per_s": 61.5}
        values.update(fields)
        return sign_heartbeat(account, **values)  # type: ignore[arg-type]

    def post(self, signed: SignedHeartbeat | dict[str, object]) -> httpx.Response:
        body = signed.model_dump() if isinstance(signed, SignedHeartbeat) else signed
        return httpx.post(f"{self.url}/v1/heartbeats", json=body)

    def caught_up(self) -> None:
        head = self.chain.block_number()
        wait_for(lambda: httpx.get(f"{self.url}/healthz").json()["indexed_block"] >= head, timeout=30,
                 what=f"the node to index block {head}")

    def telemetry(self, address: str) -> dict[str, object]:
        response = httpx.get(f"{self.url}/v1/providers/{address}/telemetry")
        assert response.status_code == 200, response.text
        return dict(response.json())


@pytest.fixture
def telemetry_node(tmp_path: Path, devnet: Devnet, deployments: Path, chain: Chain) -> Iterator[TelemetryNode]:
    settings = NodeSettings(rpc_url=devnet.anvil.rpc_url, deployments_dir=deployments,
                            database=str(tmp_path / "node" / "index.db"), store_dir=tmp_path / "node" / "store",
                            poll_interval_s=0.05)
    clock = Clock()
    with serve(create_node_app(settings, clock=clock), lifespan="on") as url:
        yield TelemetryNode(url, clock, chain)
