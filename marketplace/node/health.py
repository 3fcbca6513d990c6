"""``/healthz``: whether the node's chain answers and whether its indexer keeps up, from what the indexer last saw.

``status`` is ``down`` (HTTP 503) when the chain is unreachable: the indexer's last poll failed because
the RPC refused or timed out, or nothing has come back from it for ``stale_after_s`` (a hung RPC is
reported within that bound, before the request's own timeout). It is ``degraded`` (HTTP 200) when the
chain answers but the last poll failed for another reason, the lag is growing, or no poll has finished
yet; ``ok`` otherwise. ``reasons`` says what is wrong in sentences a person can act on. The report is
built from a ``WatchSnapshot``: the route never waits on the chain.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field

from marketplace.indexer import IndexerProgress
from marketplace.indexer.health import WatchSnapshot, lag_growing

Status = Literal["ok", "degraded", "down"]


class ChainHealth(BaseModel):
    reachable: bool
    error: str | None = Field(description="Why the chain counts as unreachable; None when it answers.")
    last_success: str | None = Field(description="When the chain last answered the indexer (ISO 8601, UTC).")
    seconds_since_success: float | None


class IndexerHealth(BaseModel):
    indexed_block: int
    head: int = Field(description="The chain head at the indexer's last successful head request.")
    lag: int
    lag_growing: bool = Field(description="The lag now is larger than window_s seconds ago.")
    window_s: float
    error: str | None = Field(description="Why the indexer's last poll failed, when the chain itself answered.")
    polls: int


class Health(BaseModel):
    """``/healthz``; the top-level block, head, lag, events and reorgs are kept for older readers."""

    status: Status
    reasons: list[str]
    chain: ChainHealth
    indexer: IndexerHealth
    chain_id: int
    market: str
    indexed_block: int
    head: int
    lag: int
    events: int
    reorgs: int


def health_report(
    progress: IndexerProgress,
    watch: WatchSnapshot,
    now: float,
    *,
    stale_after_s: float,
    rpc_url: str,
    chain_id: int,
    market: str,
) -> Health:
    """The node's health at monotonic time ``now`` (the watch's clock)."""
    since = None if watch.last_answer_at is None else max(0.0, now - watch.last_answer_at)
    last_success = None
    if watch.last_answer_time is not None:
        last_success = watch.last_answer_time.isoformat(timespec="milliseconds")
    # Without any answer yet, the watch's start stands in: the node reached the chain to build itself.
    silent = since if since is not None else (
        None if watch.watching_since is None else max(0.0, now - watch.watching_since))
    shown = redacted(rpc_url)
    error = None if watch.error is None else watch.error.replace(rpc_url, shown)
    chain_error: str | None = None
    if error is not None and watch.unreachable:
        chain_error = error
    elif silent is not None and silent > stale_after_s:
        chain_error = (f"the chain at {shown} has not answered for {silent:.0f} s "
                       f"(more than {stale_after_s:g} s): check that the node is running and not stuck")
    lag = max(0, progress.head - progress.block)
    growing = lag_growing(watch.samples, now, watch.window_s)
    indexer_error = error if error is not None and not watch.unreachable else None

    reasons: list[str] = []
    if chain_error is not None:
        reasons.append(chain_error)
    if indexer_error is not None:
        reasons.append(f"the indexer's last poll failed: {indexer_error}")
    if growing:
        reasons.append(f"the indexer is {lag} blocks behind the chain and falling further behind "
                       f"(over the last {watch.window_s:g} s)")
    if watch.polls == 0 and chain_error is None:
        reasons.append("the indexer has not finished its first poll yet")
    status: Status = "down" if chain_error is not None else "degraded" if reasons else "ok"
    return Health(
        status=status,
        reasons=reasons,
        chain=ChainHealth(reachable=chain_error is None, error=chain_error, last_success=last_success,
                          seconds_since_success=None if since is None else round(since, 3)),
        indexer=IndexerHealth(indexed_block=progress.block, head=progress.head, lag=lag, lag_growing=growing,
                              window_s=watch.window_s, error=indexer_error, polls=watch.polls),
        chain_id=chain_id,
        market=market,
        indexed_block=progress.block,
        head=progress.head,
        lag=lag,
        events=progress.events,
        reorgs=progress.reorgs,
    )


def redacted(url: str) -> str:
    """``url`` without credentials, path or query (a hosted RPC's URL often carries its API key)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    hidden = "/…" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{host}{hidden}" if parts.scheme else url
