"""What ``webi provider status`` shows: the stake, the node's live view of this provider (online or not, each GPU
with its last hour of utilization, jobs running, tasks/s), earnings a day from the chain, and the journal's jobs.

The live part comes from the node the heartbeats go to (``GET /v1/providers/{address}/telemetry`` and
``/v1/providers/{address}``), so the terminal shows what the dashboard shows; without a node it says why and
shows the rest. ``--watch`` redraws it in place (rich ``Live``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from marketplace.units import webi
from provider.journal import JobRecord

SPARKS = "▁▂▃▄▅▆▇█"
BAR_WIDTH = 30


@dataclass(frozen=True)
class NodeView:
    """The node's view of one provider; ``problem`` says why there is none."""

    telemetry: dict[str, Any] | None = None
    provider: dict[str, Any] | None = None
    problem: str | None = None


def read_node(node_url: str | None, address: str, timeout_s: float = 5.0) -> NodeView:
    if node_url is None:
        return NodeView(problem="no node configured (set node_url in the provider config): no live view")
    base = node_url.rstrip("/")
    try:
        with httpx.Client(timeout=timeout_s) as client:
            telemetry = client.get(f"{base}/v1/providers/{address}/telemetry")
            provider = client.get(f"{base}/v1/providers/{address}")
    except httpx.HTTPError as error:
        return NodeView(problem=f"the node at {node_url} is unreachable ({type(error).__name__}): no live view")
    if telemetry.status_code != 200:
        return NodeView(problem=f"{node_url} has no telemetry for this provider ({telemetry.status_code}; "
                                "not a WEBI node?)")
    try:
        shown, summary = telemetry.json(), provider.json() if provider.status_code == 200 else None
    except ValueError:
        return NodeView(problem=f"{node_url} answered with something that is not JSON: no live view")
    if not isinstance(shown, dict) or not isinstance(summary, dict | None):
        return NodeView(problem=f"{node_url} answered with JSON of another shape: no live view")
    return NodeView(shown, summary)


def sparkline(values: list[float], top: float, width: int = 30) -> str:
    """The last ``width`` values as block characters, 0 to ``top``."""
    if not values:
        return ""
    shown = values[-width:]
    return "".join(SPARKS[min(len(SPARKS) - 1, int(max(0.0, value) / (top or 1) * len(SPARKS)))] for value in shown)


def live_part(view: NodeView, now: float | None = None) -> RenderableType:
    if view.telemetry is None:
        return Text(view.problem or "no live view", style="yellow")
    try:
        return _live(view.telemetry, now)
    except (KeyError, TypeError, ValueError, AttributeError) as error:  # a node's JSON is not ours to trust
        return Text(f"the node's telemetry is malformed ({type(error).__name__}: {error}): no live view",
                    style="yellow")


def _live(telemetry: dict[str, Any], now: float | None) -> RenderableType:
    now = telemetry.get("now", time.time()) if now is None else now
    if telemetry["online"]:
        head = Text.assemble(("● online", "bold green"), f" · last heartbeat {now - telemetry['last_seen']:.0f} s ago")
    elif telemetry["last_seen"] is not None:
        head = Text.assemble(("○ offline", "bold"), f" · no heartbeat for {now - telemetry['last_seen']:.0f} s")
    else:
        head = Text.assemble(("○ offline", "bold"), " · no heartbeat since the node started")
    latest = telemetry.get("latest")
    if latest is None:
        return head
    head.append(f" · {latest['jobs_running']} jobs running · {latest['tasks_per_s']:,.1f} tasks/s (last job)")
    if not latest["gpus"]:
        return Group(head, Text("no GPU readings: the provider runs on the CPU", style="dim"))
    table = Table("GPU", "use", "memory", "temp", "power", "use, last hour", title="live", title_justify="left")
    for gpu in latest["gpus"]:
        history = [float(reading["utilization_pct"]) for point in telemetry["history"]
                   for reading in point["gpus"] if reading["index"] == gpu["index"]]
        cells = (f"{int(gpu['index'])}", f"{int(gpu['utilization_pct'])} %",
                 f"{gpu['memory_used_bytes'] / 1024**3:,.1f} / {gpu['memory_total_bytes'] / 1024**3:,.1f} GiB",
                 f"{int(gpu['temperature_c'])} °C", f"{float(gpu['power_w']):,.0f} W", sparkline(history, 100.0))
        table.add_row(*(Text(cell) for cell in cells))  # Text: never rich markup from the node
    return Group(head, table)


def earnings_part(view: NodeView) -> RenderableType | None:
    days = (view.provider or {}).get("earnings_daily") or []
    if not days:
        return None
    try:
        amounts = [max(0, int(day["amount"])) for day in days]
        labels = [str(day["day"])[:10] for day in days]
    except (KeyError, TypeError, ValueError):
        return Text("the node's earnings a day are malformed", style="yellow")
    top = max(amounts) or 1
    table = Table("day (UTC)", "earned (WEBI)", "", title="earnings a day, from the chain", title_justify="left")
    for label, amount in zip(labels, amounts, strict=True):
        table.add_row(Text(label), webi(amount), "█" * round(amount / top * BAR_WIDTH))
    return table


def jobs_part(records: list[JobRecord]) -> Table:
    table = Table("job", "stage", "tasks", "earned (WEBI)", "note")
    for record in records:
        table.add_row(str(record.job_id), record.stage.value, str(record.num_tasks),
                      webi(int(record.earned_wei)), record.reason[:60])
    return table


def status_view(summary: str, view: NodeView, records: list[JobRecord]) -> Group:
    parts: list[RenderableType] = [Text(summary), live_part(view)]
    earnings = earnings_part(view)
    if earnings is not None:
        parts.append(earnings)
    parts.append(jobs_part(records))
    return Group(*parts)
