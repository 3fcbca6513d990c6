"""REST under ``/v1``: jobs, providers, the ledger and network stats, read from the indexer's tables.

Amounts are decimal strings of wei (they pass 2^53); addresses match case-insensitively. Lists
are newest first and paginate with an opaque ``cursor``: pass back ``next_cursor`` for the next page.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.concurrency import run_in_threadpool

from marketplace.node.queries import Queries

STATES = ("open", "claimed", "submitted", "finalized", "cancelled", "rejected")
Limit = Annotated[int | None, Query(ge=1, le=500, description="Page size (default: the node's).")]


def api_router(queries: Queries) -> APIRouter:
    router = APIRouter()

    @router.get("/jobs", summary="Jobs, newest first")
    async def jobs(
        state: Annotated[str | None, Query(pattern="^(" + "|".join(STATES) + ")$")] = None,
        requester: str | None = None,
        provider: str | None = None,
        cursor: Annotated[int | None, Query(ge=0)] = None,
        limit: Limit = None,
    ) -> dict[str, Any]:
        page = await run_in_threadpool(
            queries.jobs, state=state, requester=requester, provider=provider, cursor=cursor, limit=limit
        )
        return {"items": page.items, "next_cursor": page.next_cursor}

    @router.get("/jobs/{job_id}", summary="One job: timeline, spec, outputs, verdict, ledger entries")
    async def job(job_id: int) -> dict[str, Any]:
        found = await run_in_threadpool(queries.job, job_id)
        if found is None:
            raise HTTPException(404, f"no job {job_id} indexed")
        return found

    @router.get("/providers", summary="Registered providers with stake, success rate and earnings")
    async def providers() -> dict[str, Any]:
        return {"items": await run_in_threadpool(queries.providers)}

    @router.get("/providers/{address}", summary="One provider: stake, history, success rate, earnings, GPU facts")
    async def provider(address: str) -> dict[str, Any]:
        found = await run_in_threadpool(queries.provider, address)
        if found is None:
            raise HTTPException(404, f"{address} is not a registered provider")
        return found

    @router.get("/ledger", summary="Credits and withdrawals, newest first")
    async def ledger(
        account: str | None = None,
        job_id: int | None = None,
        cursor: Annotated[str | None, Query(pattern=r"^\d+:\d+$")] = None,
        limit: Limit = None,
    ) -> dict[str, Any]:
        page = await run_in_threadpool(queries.ledger, account=account, job_id=job_id, cursor=cursor, limit=limit)
        return {"items": page.items, "next_cursor": page.next_cursor}

    @router.get("/stats", summary="Network totals")
    async def stats() -> dict[str, Any]:
        return await run_in_threadpool(queries.stats)

    return router
