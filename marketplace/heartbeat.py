"""A provider daemon's heartbeat: its live GPU telemetry, signed by its account, for the node's dashboard.

The node shows what a heartbeat says only when the provider's key signed it, so a stranger cannot paint a
provider online (or its GPUs idle) on the dashboard. The signature is EIP-191 ``personal_sign`` over a
canonical message naming the deployment (chain id and market address), so a heartbeat for one deployment
is worthless on another::

    {"heartbeat": {"provider": "0x...", "chain_id": 31337, "market": "0x...", "sent_at_ms": ..., "gpus": [...],
                   "jobs_running": 1, "tasks_per_s": 61.5}, "signature": "0x..."}

The message: ``b"WEBI heartbeat v1\\n"`` + the heartbeat as JSON with sorted keys and no spaces, UTF-8, every
field present (``gpus: []`` too) and ``power_w`` and ``tasks_per_s`` as floats (``400.0``, not ``400``): what
Python's ``json.dumps(..., sort_keys=True, separators=(",", ":"))`` writes of the model, which the node rebuilds
from the parsed body to check the signature (a signer in another language must write the same bytes).
``sent_at_ms`` orders one provider's heartbeats: the node keeps only increasing ones (no replay) and spaces
them (a rate limit), so a heartbeat captured on the wire cannot be played to that node again. It names the
deployment, not the node: played to another node of the same deployment within 30 s, it repeats the provider's
own figures there, which is harmless.

The figures are the provider's own: the signature says who claims them, not that they are true (the chain's
record of claims and submissions is that). A cheat gains nothing from them: no payment depends on them.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_utils.address import is_checksum_address, to_checksum_address
from pydantic import BaseModel, ConfigDict, Field, field_validator

MESSAGE_PREFIX = b"WEBI heartbeat v1\n"
MAX_GPUS = 16  # a heartbeat from a bigger machine lists its first 16 cards
MAX_BYTES = 8 * 1024  # a signed heartbeat of 16 GPUs is about 3 KiB
Ratio = Annotated[float, Field(ge=0, le=1e9, allow_inf_nan=False)]


class GpuReading(BaseModel):
    """One GPU at the moment the heartbeat was sent (``provider.gpu.GpuSample`` without other processes' use)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    index: Annotated[int, Field(ge=0, lt=1024)]
    utilization_pct: Annotated[int, Field(ge=0, le=100)]
    memory_used_bytes: Annotated[int, Field(ge=0, le=2**50)]
    memory_total_bytes: Annotated[int, Field(ge=0, le=2**50)]
    temperature_c: Annotated[int, Field(ge=-50, le=200)]
    power_w: Annotated[float, Field(ge=0, le=100_000, allow_inf_nan=False)]


class Heartbeat(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: str = Field(description="the provider's address, checksummed")
    chain_id: Annotated[int, Field(ge=1, lt=2**63)]
    market: str = Field(description="the deployment's JobMarket, checksummed")
    sent_at_ms: Annotated[int, Field(ge=0, lt=2**53)]
    gpus: Annotated[list[GpuReading], Field(max_length=MAX_GPUS)] = []
    jobs_running: Annotated[int, Field(ge=0, le=10_000)] = 0
    tasks_per_s: Ratio = 0.0

    @field_validator("provider", "market")
    @classmethod
    def _checksummed(cls, value: str) -> str:
        if not is_checksum_address(value):
            raise ValueError("must be a checksummed address (EIP-55)")
        return value

    @field_validator("gpus")
    @classmethod
    def _one_reading_a_gpu(cls, gpus: list[GpuReading]) -> list[GpuReading]:
        if len({gpu.index for gpu in gpus}) != len(gpus):
            raise ValueError("each GPU index at most once")
        return gpus

    def message(self) -> bytes:
        return MESSAGE_PREFIX + json.dumps(self.model_dump(mode="json"), sort_keys=True,
                                           separators=(",", ":")).encode()


class SignedHeartbeat(BaseModel):
    """What the daemon POSTs to ``/v1/heartbeats``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    heartbeat: Heartbeat
    signature: Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{130}$")]

    def signer(self) -> str | None:
        """The checksummed address that signed the heartbeat, or None where the bytes are no valid signature."""
        try:
            return str(Account.recover_message(encode_defunct(self.heartbeat.message()), signature=self.signature))
        except Exception:  # eth_account raises unrelated types (ValueError, BadSignature, ...) for bad bytes
            return None


def sign_heartbeat(account: LocalAccount, *, chain_id: int, market: str, sent_at_ms: int,
                   gpus: list[GpuReading] | None = None, jobs_running: int = 0,
                   tasks_per_s: float = 0.0) -> SignedHeartbeat:
    heartbeat = Heartbeat(provider=account.address, chain_id=chain_id, market=to_checksum_address(market),
                          sent_at_ms=sent_at_ms, gpus=(gpus or [])[:MAX_GPUS], jobs_running=jobs_running,
                          tasks_per_s=tasks_per_s)
    signed = account.sign_message(encode_defunct(heartbeat.message()))
    return SignedHeartbeat(heartbeat=heartbeat, signature="0x" + bytes(signed.signature).hex())


def reading(sample: Any) -> GpuReading:
    """A heartbeat's reading of a ``provider.gpu.GpuSample`` (clamped: NVML reports 0..100 %, but a driver may not)."""
    return GpuReading(index=sample.index, utilization_pct=max(0, min(100, int(sample.utilization_pct))),
                      memory_used_bytes=int(sample.memory_used_bytes),
                      memory_total_bytes=int(sample.memory_total_bytes),
                      temperature_c=int(sample.temperature_c), power_w=float(sample.power_w))
