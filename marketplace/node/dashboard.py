"""The web dashboard: server-rendered pages over the same queries as the REST API.

Pages work without JavaScript; a few lines of it refresh the overview's figures and show times
in the reader's time zone.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from marketplace.chain.deployment import Deployment
from marketplace.node.api import STATES
from marketplace.node.queries import Queries
from marketplace.node.verifier_queries import VerifierQueries
from marketplace.units import webi


def short(address: str | None) -> str:
    return "—" if not address else f"{address[:6]}…{address[-4:]}"


def when(timestamp: int | None) -> str:
    return "—" if not timestamp else datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def earnings_chart(points: list[dict[str, Any]], width: int = 600, height: int = 160) -> str:
    """Cumulative earnings as an inline SVG step line (no chart library)."""
    if not points:
        return ""
    values = [int(point["cumulative"]) for point in points]
    top = max(values) or 1
    step = width / max(1, len(values))
    coordinates = [f"0,{height}"]
    for index, value in enumerate(values):
        y = height - value / top * (height - 10)
        coordinates += [f"{index * step:.1f},{coordinates[-1].split(',')[1]}", f"{index * step:.1f},{y:.1f}"]
    coordinates.append(f"{width},{coordinates[-1].split(',')[1]}")
    return (
        f'<svg class="chart" role="img" aria-label="cumulative earnings: {webi(values[-1])} WEBI" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}">'
        f'<polyline fill="none" stroke="#2563eb" stroke-width="2" points="{" ".join(coordinates)}"/></svg>'
    )


def dashboard_router(queries: Queries, verifiers: VerifierQueries, deployment: Deployment) -> APIRouter:
    templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
    templates.env.filters.update(webi=webi, short=short, when=when)
    router = APIRouter()

    def page(request: Request, name: str, **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, name, {"deployment": deployment, **context})

    @router.get("/", response_class=HTMLResponse)
    async def overview(request: Request) -> HTMLResponse:
        stats = await run_in_threadpool(queries.stats)
        recent = await run_in_threadpool(queries.jobs, limit=10)
        return page(request, "overview.html", stats=stats, jobs=recent.items)

    @router.get("/jobs", response_class=HTMLResponse)
    async def jobs(request: Request, state: str | None = None, cursor: int | None = None) -> HTMLResponse:
        state = state if state in STATES else None
        found = await run_in_threadpool(queries.jobs, state=state, cursor=cursor)
        return page(request, "jobs.html", jobs=found.items, next_cursor=found.next_cursor, state=state, states=STATES)

    @router.get("/jobs/{job_id}", response_class=HTMLResponse)
    async def job(request: Request, job_id: int) -> HTMLResponse:
        found = await run_in_threadpool(queries.job, job_id)
        if found is None:
            raise HTTPException(404, f"no job {job_id} indexed")
        return page(request, "job.html", job=found)

    @router.get("/providers", response_class=HTMLResponse)
    async def providers(request: Request) -> HTMLResponse:
        return page(request, "providers.html", providers=await run_in_threadpool(queries.providers))

    @router.get("/providers/{address}", response_class=HTMLResponse)
    async def provider(request: Request, address: str) -> HTMLResponse:
        found = await run_in_threadpool(queries.provider, address)
        if found is None:
            raise HTTPException(404, f"{address} is not a registered provider")
        return page(request, "provider.html", provider=found, chart=earnings_chart(found["earnings"]))

    @router.get("/verifiers", response_class=HTMLResponse)
    async def verifier_list(request: Request) -> HTMLResponse:
        return page(request, "verifiers.html", verifiers=await run_in_threadpool(verifiers.verifiers))

    @router.get("/verifiers/{address}", response_class=HTMLResponse)
    async def verifier(request: Request, address: str) -> HTMLResponse:
        found = await run_in_threadpool(verifiers.verifier, address)
        if found is None:
            raise HTTPException(404, f"{address} is not a registered verifier")
        return page(request, "verifier.html", verifier=found, chart=earnings_chart(found["earnings"]))

    @router.get("/ledger", response_class=HTMLResponse)
    async def ledger(request: Request, account: str | None = None, cursor: str | None = None) -> HTMLResponse:
        found = await run_in_threadpool(queries.ledger, account=account or None, cursor=cursor or None)
        return page(request, "ledger.html", entries=found.items, next_cursor=found.next_cursor, account=account or "")

    return router
