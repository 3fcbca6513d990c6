"""REST under ``/v1``: jobs, job groups, providers, verifiers, the ledger and network stats, read from the
indexer's tables; a group's merged results read the chain and the node's store (``group_results``).

The ledger lists stake slashes (kind ``slashed``, with role and reason) among credits and withdrawals.

Amounts are decimal strings of wei (they pass 2^53); addresses match case-insensitively. Lists
are newest first and paginate with an opaque ``cursor``: pass back ``next_cursor`` for the next page.
Encoded responses are cached until the indexer next commits (``ResponseCache``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from marketplace.errors import ChainError
from marketplace.node.cache import ResponseCache
from marketplace.node.group_queries import GroupQueries
from marketplace.node.group_results import GroupResults, MergeRefusedError
from marketplace.node.queries import Queries
from marketplace.node.verifier_queries import VerifierQueries
from marketplace.protocol import JobState

# In the order a job moves through them, the exits last.
STATES = tuple(
    state.name.lower()
    for state in (JobState.OPEN, JobState.CLAIMED, JobState.SUBMITTED, JobState.AUDITED, JobState.CHALLENGED,
                  JobState.FINALIZED, JobState.REJECTED, JobState.CANCELLED)
)
# "block:log_index" of the last entry a page showed; 20 digits hold any uint64 (int() refuses past 4,300).
LEDGER_CURSOR = r"^\d{1,20}:\d{1,20}$"
Limit = Annotated[int | None, Query(ge=1, le=500, description="Page size (default: the node's).")]


def api_router(queries: Queries, verifiers: VerifierQueries, cache: ResponseCache, groups: GroupQueries,
               results: GroupResults) -> APIRouter:
    router = APIRouter()

    async def cached(request: Request, compute: Callable[[], Any], missing: str = "not found") -> Response:
        key = request.url.path + "?" + "&".join(sorted(f"{k}={v}" for k, v in request.query_params.multi_items()))
        body = cache.get(key)
        if body is None:
            version = cache.version()
            value = await run_in_threadpool(compute)
            if value is None:
                raise HTTPException(404, missing)
            body = cache.put(key, version, value)
        return Response(body, media_type="application/json")

    @router.get("/jobs", summary="Jobs, newest first")
    async def jobs(
        request: Request,
        state: Annotated[str | None, Query(pattern="^(" + "|".join(STATES) + ")$")] = None,
        requester: str | None = None,
        provider: str | None = None,
        verifier: str | None = None,
        cursor: Annotated[int | None, Query(ge=0)] = None,
        limit: Limit = None,
    ) -> Response:
        def compute() -> dict[str, Any]:
            page = queries.jobs(
                state=state, requester=requester, provider=provider, verifier=verifier, cursor=cursor, limit=limit
            )
            return {"items": page.items, "next_cursor": page.next_cursor}

        return await cached(request, compute)

    @router.get("/jobs/{job_id}", summary="One job: timeline, spec, outputs, audit, challenge, ledger entries, group")
    async def job(request: Request, job_id: int) -> Response:
        def compute() -> dict[str, Any] | None:
            found = queries.job(job_id)
            if found is not None:
                found["group_id"] = groups.group_of(job_id)
            return found

        return await cached(request, compute, f"no job {job_id} indexed")

    @router.get("/groups/{group_id}", summary="One job group: its shards, who holds them, tasks verified over time")
    async def group(request: Request, group_id: int) -> Response:
        return await cached(request, lambda: groups.group(group_id), f"no job group {group_id} on this chain")

    @router.get(
        "/groups/{group_id}/results",
        summary="A job group's merged outputs (JSONL, input order), each shard checked against its on-chain root",
        response_class=Response,
        responses={200: {"content": {"application/x-ndjson": {}}}, 404: {"description": "no such group"},
                   409: {"description": "not merged: the shards named have no results, failed, or do not match"}},
    )
    async def group_results(group_id: int) -> Response:
        found = await run_in_threadpool(groups.group, group_id)
        if found is None:
            raise HTTPException(404, f"no job group {group_id} on this chain")
        sealed = [shard["index"] for shard in found["shard_states"] if shard["confidential"]]
        if sealed:
            return JSONResponse({"detail": f"group {group_id} is confidential: its outputs open only with its "
                                 f"requester's key (`webi job results g{group_id} --wallet ...`)",
                                 "group_id": group_id, "reason": "confidential", "shards": sealed}, status_code=403)
        try:
            body = await run_in_threadpool(results.jsonl, group_id)
        except MergeRefusedError as refused:
            return JSONResponse({"detail": str(refused), "group_id": group_id, "reason": refused.reason,
                                 "shards": refused.shards}, status_code=409)
        except ChainError as error:
            raise HTTPException(503, f"the chain cannot be read to check group {group_id}'s roots: {error}") from None
        return Response(body, media_type="application/x-ndjson")

    @router.get("/providers", summary="Registered providers with stake, success rate and earnings")
    async def providers(request: Request) -> Response:
        return await cached(request, lambda: {"items": queries.providers()})

    @router.get("/providers/{address}", summary="One provider: stake, history, success rate, earnings, GPU facts")
    async def provider(request: Request, address: str) -> Response:
        return await cached(request, lambda: queries.provider(address), f"{address} is not a registered provider")

    @router.get("/verifiers", summary="Registered verifiers: stake, weight in the draw, audits, overturns, earnings")
    async def verifier_list(request: Request) -> Response:
        return await cached(request, lambda: {"items": verifiers.verifiers()})

    @router.get("/verifiers/{address}", summary="One verifier: its audits, panel seats, slashes and earnings")
    async def verifier(request: Request, address: str) -> Response:
        return await cached(request, lambda: verifiers.verifier(address), f"{address} is not a registered verifier")

    @router.get("/ledger", summary="Credits, withdrawals and stake slashes, newest first")
    async def ledger(
        request: Request,
        account: str | None = None,
        job_id: int | None = None,
        cursor: Annotated[str | None, Query(pattern=LEDGER_CURSOR)] = None,
        limit: Limit = None,
    ) -> Response:
        def compute() -> dict[str, Any]:
            page = queries.ledger(account=account, job_id=job_id, cursor=cursor, limit=limit)
            return {"items": page.items, "next_cursor": page.next_cursor}

        return await cached(request, compute)

    @router.get("/stats", summary="Network totals")
    async def stats(request: Request) -> Response:
        return await cached(request, queries.stats)

    return router
