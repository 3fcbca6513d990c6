"""A provider's live GPU charts (the last hour of heartbeats) and daily earnings bars, as inline SVG.

Server-rendered like the dashboard's other charts (no chart library, readable without JavaScript: each chart's
``aria-label`` and caption say the latest figures); the provider page re-fetches the live part every few seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from marketplace.units import webi

COLOURS = ("#2563eb", "#15803d", "#b45309", "#7c3aed", "#be123c", "#0e7490", "#4d7c0f", "#a21caf")


@dataclass(frozen=True)
class Metric:
    key: str
    title: str
    unit: str
    value: Callable[[dict[str, Any]], float]  # from one GPU reading
    ceiling: Callable[[list[float]], float]  # the chart's top, from every value shown


METRICS = (
    Metric("utilization", "GPU utilization", "%", lambda gpu: float(gpu["utilization_pct"]), lambda _: 100.0),
    Metric("memory", "Memory in use", "GiB", lambda gpu: gpu["memory_used_bytes"] / 1024**3,
           lambda values: max([*values, 1.0])),
    Metric("temperature", "Temperature", "°C", lambda gpu: float(gpu["temperature_c"]),
           lambda values: max([*values, 100.0])),
    Metric("power", "Power", "W", lambda gpu: float(gpu["power_w"]), lambda values: max([*values, 1.0]) * 1.1),
)


def gpu_charts(snapshot: dict[str, Any], width: int = 520, height: int = 120) -> list[Markup]:
    """One chart a metric, a line a GPU, over the snapshot's window ending at its ``now``; none without GPUs."""
    history = snapshot["history"]
    gpus = sorted({gpu["index"] for point in history for gpu in point["gpus"]})
    if not gpus:
        return []
    end, span = snapshot["now"], snapshot["window_s"]
    latest = {gpu["index"]: gpu for gpu in (snapshot["latest"] or {}).get("gpus", [])}
    charts = []
    for metric in METRICS:
        series = {index: [(point["received_at"], metric.value(gpu)) for point in history for gpu in point["gpus"]
                          if gpu["index"] == index] for index in gpus}
        top = metric.ceiling([value for line in series.values() for _, value in line]) or 1.0
        lines = []
        for index, line in series.items():
            coordinates = " ".join(f"{(at - end + span) / span * width:.1f},{height - value / top * (height - 6):.1f}"
                                   for at, value in line)
            lines.append(Markup('<polyline class="gpu{}" fill="none" stroke="{}" stroke-width="2" points="{}"/>')
                         .format(index, COLOURS[index % len(COLOURS)], coordinates))
        now_text = ", ".join(f"GPU {index} {metric.value(latest[index]):,.1f} {metric.unit}"
                             for index in gpus if index in latest) or "no reading now"
        label = f"{metric.title}, last hour: {now_text}"
        charts.append(Markup(
            '<figure class="live-chart" data-metric="{}"><figcaption>{}</figcaption>'
            '<svg class="chart" role="img" aria-label="{}" data-points="{}" viewBox="0 0 {} {}" width="{}" height="{}">'
            '<rect width="{}" height="{}" fill="#fff" stroke="#e5e7eb"/>{}</svg></figure>'
        ).format(metric.key, label, label, len(history), width, height, width, height, width, height,
                 Markup("").join(lines)))
    return charts


def earnings_bars(days: list[dict[str, Any]], width: int = 600, height: int = 140) -> Markup:
    """Daily earnings (``ledger.daily_earnings``) as bars, each titled with its day and amount."""
    if not days:
        return Markup("")
    amounts = [int(day["amount"]) for day in days]
    top = max(amounts) or 1
    slot = width / len(days)
    bars = Markup("").join(
        Markup('<rect class="day" x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="#2563eb">'
               '<title>{}: {} WEBI</title></rect>').format(
            index * slot + 1, height - amount / top * (height - 10), max(1.0, slot - 2), amount / top * (height - 10),
            day["day"], webi(amount))
        for index, (day, amount) in enumerate(zip(days, amounts, strict=True)))
    label = f"earnings a day, {days[0]['day']} to {days[-1]['day']}: {webi(sum(amounts))} WEBI in all"
    return Markup('<svg class="chart bars" role="img" aria-label="{}" viewBox="0 0 {} {}" width="{}" height="{}">'
                  '<line x1="0" y1="{}" x2="{}" y2="{}" stroke="#9ca3af"/>{}</svg>').format(
        label, width, height, width, height, height, width, height, bars)
