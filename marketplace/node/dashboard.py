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
from typing import Annotated, Any
from urllib.parse import quote

from eth_utils.address import to_checksum_address
from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from marketplace.chain.deployment import Deployment
from marketplace.node.api import LEDGER_CURSOR, STATES
from marketplace.node.group_queries import GroupQueries
from marketplace.node.queries import Queries
from marketplace.node.telemetry import Telemetry
from marketplace.node.telemetry_api import provider_stake
from marketplace.node.telemetry_charts import earnings_bars, gpu_charts
from marketplace.node.verifier_queries import VerifierQueries
from marketplace.signed_capacity import verified_capacity
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


def progress_chart(group: dict[str, Any], width: int = 600, height: int = 160) -> Markup:
    """Tasks verified against time as an inline SVG step line, from the group's first post to now."""
    points, total = group["progress"], max(1, group["total_tasks"])
    start = group["posted_at"] or 0
    end = max([group["now"], start + 1, *(point["time"] for point in points)])

    def x(when: int) -> float:
        return float((when - start) / (end - start) * width)

    def y(tasks: int) -> float:
        return float(height - tasks / total * (height - 10))

    coordinates, level = [f"0,{height}"], float(height)
    for point in points:
        at = x(point["time"])
        coordinates += [f"{at:.1f},{level:.1f}", f"{at:.1f},{y(point['tasks_verified']):.1f}"]
        level = y(point["tasks_verified"])
    coordinates.append(f"{width},{level:.1f}")
    label = f"{group['tasks_verified']} of {group['total_tasks']} tasks verified, {when(start)} to {when(end)}"
    return Markup(
        '<svg class="chart" role="img" aria-label="{}" viewBox="0 0 {} {}" width="{}" height="{}">'
        '<line x1="0" y1="10" x2="{}" y2="10" stroke="#d1d5db" stroke-dasharray="4"/>'
        '<polyline fill="none" stroke="#15803d" stroke-width="2" points="{}"/></svg>'
    ).format(label, width, height, width, height, width, " ".join(coordinates))


def group_milestones(group: dict[str, Any]) -> list[dict[str, Any]]:
    """Every shard's milestones in time order (ties in shard order), for the page's table."""
    rows = [{"time": at, "shard": shard["index"], "job_id": shard["job_id"], "milestone": name}
            for shard in group["shard_states"] for name, at in shard["milestones"].items()]
    return sorted(rows, key=lambda row: (row["time"], row["shard"]))


def dashboard_router(queries: Queries, verifiers: VerifierQueries, groups: GroupQueries,
                     deployment: Deployment, telemetry: Telemetry) -> APIRouter:
    templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
    templates.env.filters.update(webi=webi, short=short, when=when, moment=moment, ipfs=ipfs)
    router = APIRouter()

    def live_view(provider: str) -> tuple[dict[str, Any], list[Markup]]:
        """The provider's snapshot and its charts, drawn once a view however many readers poll the page."""
        live = telemetry.snapshot(provider)
        return live, telemetry.derived(live, "charts", gpu_charts)

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
        number = _number(job_id)
        found = None if number is None else await run_in_threadpool(queries.job, number)
        if found is None:
            latest = await run_in_threadpool(queries.latest_job_id)
            which = f"the latest is {latest}" if latest is not None else "none has been posted yet"
            return not_found(request, f"no job {job_id} on this chain ({which})", "/jobs", "All jobs")
        return page(request, "job.html", job=found, group_id=await run_in_threadpool(groups.group_of, found["job_id"]))

    @router.get("/groups/{group_id}", response_class=HTMLResponse)
    async def group(request: Request, group_id: str) -> Response:
        number = _number(group_id)
        found = None if number is None else await run_in_threadpool(groups.group, number)
        if found is None:
            message = f"no job group {group_id} on this chain (a group's id is its first shard's job id)"
            return not_found(request, message, "/jobs", "All jobs")
        return page(request, "group.html", group=found, chart=progress_chart(found),
                    milestones=group_milestones(found))

    @router.get("/providers", response_class=HTMLResponse)
    async def providers(request: Request) -> HTMLResponse:
        return page(request, "providers.html", providers=await run_in_threadpool(queries.providers))

    @router.get("/providers/{address}", response_class=HTMLResponse)
    async def provider(request: Request, address: str) -> Response:
        found = await run_in_threadpool(queries.provider, address)
        if found is None:
            message = f"no provider {address} on this chain: it never registered as one"
            return not_found(request, message, "/providers", "Registered providers")
        capacity = verified_capacity(found["metadata"], found["address"], deployment.chain_id)
        live, charts = await run_in_threadpool(live_view, to_checksum_address(found["address"]))
        return page(request, "provider.html", provider=found, chart=earnings_chart(found["earnings"]),
                    bars=earnings_bars(found["earnings_daily"]), live=live, charts=charts,
                    capacity=capacity, capacity_tasks=sorted({task for device in (capacity or {}).get("devices", [])
                                                              for task in device.get("tasks_per_s", {})}))

    @router.get("/providers/{address}/live", response_class=HTMLResponse)
    async def provider_live(request: Request, address: str) -> Response:
        """The provider page's live part alone, which its script re-fetches."""
        found = await run_in_threadpool(provider_stake, queries.engine, address)
        if found is None:
            return HTMLResponse("<p class=\"muted\">Not a registered provider.</p>", status_code=404)
        live, charts = await run_in_threadpool(live_view, to_checksum_address(found[0]))
        return templates.TemplateResponse(request, "_live.html", {"live": live, "charts": charts})

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
    async def ledger(request: Request, account: str | None = None,
                     cursor: Annotated[str | None, Query(pattern=f"{LEDGER_CURSOR}|^$")] = None) -> HTMLResponse:
        found = await run_in_threadpool(queries.ledger, account=account or None, cursor=cursor or None)
        return page(request, "ledger.html", entries=found.items, next_cursor=found.next_cursor, account=account or "")

    return router


def _number(text: str) -> int | None:
    """A job's or a group's id from a URL: decimal digits, at most a uint64's 20 (``int()`` refuses past 4,300)."""
    return int(text) if text.isdecimal() and len(text) <= 20 else None
