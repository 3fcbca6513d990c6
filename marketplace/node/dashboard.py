"""The web dashboard: server-rendered pages over the same queries as the REST API.

Pages work without JavaScript: every time is rendered in UTC inside a ``<time>`` whose ``datetime``
is ISO 8601, which a few lines of script rewrite in the reader's zone (leaving the server's text
wherever the browser cannot read the date); the overview's figures refresh from ``/v1/stats``.
A page for an id the chain does not have is an HTML 404 with the site's header (JSON for a client
that asks only for JSON); the ``/v1`` API answers JSON as always.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from marketplace.chain.deployment import Deployment
from marketplace.node.api import STATES
from marketplace.node.queries import Queries
from marketplace.node.verifier_queries import VerifierQueries
from marketplace.units import webi


def short(address: str | None) -> str:
    return "—" if not address else f"{address[:6]}…{address[-4:]}"


def when(timestamp: int | None) -> str:
    return "—" if not timestamp else datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def moment(timestamp: int | None) -> Markup:
    """A ``<time>`` for a chain timestamp: UTC text for readers without JavaScript, ISO 8601 for the script."""
    if not timestamp:
        return Markup("—")
    iso = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return Markup('<time datetime="{}">{}</time>').format(iso, when(timestamp))


def ipfs(cid: str | None) -> Markup:
    """A CID as a link to this node's own gateway (the document may not be in its store: the gateway says so)."""
    if not cid:
        return Markup("—")
    return Markup('<a class="mono cid" href="/ipfs/{}">{}</a>').format(quote(cid, safe=""), cid)


def wants_json(request: Request) -> bool:
    """A client that asks for JSON and not for a page (browsers send ``text/html``)."""
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


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
    templates.env.filters.update(webi=webi, short=short, when=when, moment=moment, ipfs=ipfs)
    router = APIRouter()

    def page(request: Request, name: str, **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, name, {"deployment": deployment, **context})

    def not_found(request: Request, message: str, back: str, back_text: str) -> Response:
        if wants_json(request):
            return JSONResponse({"detail": message}, status_code=404)
        return templates.TemplateResponse(
            request,
            "not_found.html",
            {"deployment": deployment, "message": message, "back": back, "back_text": back_text},
            status_code=404,
        )

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
    async def job(request: Request, job_id: str) -> Response:
        found = await run_in_threadpool(queries.job, int(job_id)) if job_id.isdecimal() else None
        if found is None:
            latest = await run_in_threadpool(queries.latest_job_id)
            which = f"the latest is {latest}" if latest is not None else "none has been posted yet"
            return not_found(request, f"no job {job_id} on this chain ({which})", "/jobs", "All jobs")
        return page(request, "job.html", job=found)

    @router.get("/providers", response_class=HTMLResponse)
    async def providers(request: Request) -> HTMLResponse:
        return page(request, "providers.html", providers=await run_in_threadpool(queries.providers))

    @router.get("/providers/{address}", response_class=HTMLResponse)
    async def provider(request: Request, address: str) -> Response:
        found = await run_in_threadpool(queries.provider, address)
        if found is None:
            message = f"no provider {address} on this chain: it never registered as one"
            return not_found(request, message, "/providers", "Registered providers")
        return page(request, "provider.html", provider=found, chart=earnings_chart(found["earnings"]))

    @router.get("/verifiers", response_class=HTMLResponse)
    async def verifier_list(request: Request) -> HTMLResponse:
        return page(request, "verifiers.html", verifiers=await run_in_threadpool(verifiers.verifiers))

    @router.get("/verifiers/{address}", response_class=HTMLResponse)
    async def verifier(request: Request, address: str) -> Response:
        found = await run_in_threadpool(verifiers.verifier, address)
        if found is None:
            message = f"no verifier {address} on this chain: it never registered as one"
            return not_found(request, message, "/verifiers", "Registered verifiers")
        return page(request, "verifier.html", verifier=found, chart=earnings_chart(found["earnings"]))

    @router.get("/ledger", response_class=HTMLResponse)
    async def ledger(request: Request, account: str | None = None, cursor: str | None = None) -> HTMLResponse:
        found = await run_in_threadpool(queries.ledger, account=account or None, cursor=cursor or None)
        return page(request, "ledger.html", entries=found.items, next_cursor=found.next_cursor, account=account or "")

    return router
