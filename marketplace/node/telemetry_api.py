"""``POST /v1/heartbeats`` (a provider daemon's signed telemetry) and ``GET /v1/providers/{address}/telemetry``.

Every refusal is a 4xx with ``{"detail": "one sentence"}`` (``telemetry`` says which and why) and stores nothing.
The body is read in chunks up to ``MAX_BYTES``, so a client that lies about (or omits) its length cannot make the
node buffer more than that.
"""

from __future__ import annotations

import json

from eth_utils.address import is_address, to_checksum_address
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from marketplace.heartbeat import MAX_BYTES, SignedHeartbeat
from marketplace.indexer.models import StakeRow
from marketplace.node.telemetry import HeartbeatError, Telemetry


class Stored(BaseModel):
    provider: str
    received_at: float = Field(description="the node's clock, Unix seconds")
    next_after_ms: int = Field(description="the earliest sent_at_ms of the next heartbeat the node will take")


class Problem(BaseModel):
    detail: str


def provider_stake(engine: Engine, address: str) -> tuple[str, int] | None:
    """A registered provider's address as the chain spells it and its stake, as the indexer last saw them."""
    with Session(engine) as session:
        row = session.execute(select(StakeRow).where(func.lower(StakeRow.account) == address.lower(),
                                                     StakeRow.role == "provider")  # type: ignore[arg-type]
                              ).scalars().first()
        return None if row is None else (row.account, int(row.stake))


def staked_provider(engine: Engine, address: str) -> bool:
    """A registered provider whose stake is not all withdrawn: the only addresses whose heartbeats are kept."""
    found = provider_stake(engine, address)
    return found is not None and found[1] > 0


def telemetry_router(telemetry: Telemetry) -> APIRouter:
    router = APIRouter()
    problems: dict[int | str, dict[str, object]] = {
        status: {"model": Problem, "description": why} for status, why in (
            (401, "the signature is not the named provider's"), (403, "not a registered provider with stake"),
            (409, "replayed or stale"), (413, f"over {MAX_BYTES:,} bytes"),
            (422, "malformed, for another deployment, or from the future"), (429, "too soon after the last one"))}

    @router.post("/heartbeats", summary="A provider daemon's signed heartbeat: its GPUs, jobs running, tasks/s",
                 responses=problems, status_code=202)
    async def heartbeat(request: Request) -> JSONResponse:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BYTES:
                return _refuse(HeartbeatError(413, f"a heartbeat is at most {MAX_BYTES:,} bytes"))
        try:
            signed = SignedHeartbeat.model_validate(json.loads(body))
        except (ValueError, RecursionError) as error:  # ValidationError is a ValueError
            return _refuse(HeartbeatError(422, _sentence(error)))
        try:
            point = await run_in_threadpool(telemetry.accept, signed)
        except HeartbeatError as refused:
            return _refuse(refused)
        next_after = point.heartbeat.sent_at_ms + int(telemetry.limits.min_interval_s * 1000)
        stored = Stored(provider=point.heartbeat.provider, received_at=point.received_at, next_after_ms=next_after)
        return JSONResponse(stored.model_dump(), 202)

    @router.get("/providers/{address}/telemetry",
                summary="A provider's live telemetry: online or not, its last heartbeat, the last hour's points",
                responses={422: {"model": Problem}})
    async def provider_telemetry(address: str) -> Response:
        if not is_address(address):
            return JSONResponse({"detail": f"{address!r} is not an address (0x and 40 hex digits)"}, 422)
        return Response(await run_in_threadpool(encoded, to_checksum_address(address)), media_type="application/json")

    def encoded(provider: str) -> bytes:
        """The snapshot as JSON, its history encoded once a view (an hour of 16 GPUs is about 0.9 MB of it)."""
        snapshot = telemetry.snapshot(provider)
        history = telemetry.derived(snapshot, "history.json",
                                    lambda view: json.dumps(view["history"], separators=(",", ":")).encode())
        head = json.dumps({name: value for name, value in snapshot.items() if name != "history"},
                          separators=(",", ":")).encode()
        return head[:-1] + b',"history":' + history + b"}"

    return router


def _refuse(refused: HeartbeatError) -> JSONResponse:
    headers = {} if refused.retry_after_s is None else {"Retry-After": str(max(1, round(refused.retry_after_s + 0.5)))}
    return JSONResponse({"detail": refused.detail}, refused.status, headers)


def _sentence(error: Exception) -> str:
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        return f"not a signed heartbeat: {where}: {first['msg']}"
    if isinstance(error, RecursionError):
        return "not a signed heartbeat: the JSON nests too deep"
    return f"not a signed heartbeat: the body is not JSON ({error})"
