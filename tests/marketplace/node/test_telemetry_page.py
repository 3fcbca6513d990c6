"""A provider's live telemetry and daily earnings on its dashboard page, in real headless Chromium: the charts
draw the heartbeats, follow new ones without a reload, and the page turns offline when they stop."""

from __future__ import annotations

import re

import httpx
from eth_account.signers.local import LocalAccount
from playwright.sync_api import Browser, expect

from marketplace.chain.deployment import WEI
from tests.conftest import Chain
from tests.marketplace.node.test_dashboard_pages import PAGE, text
from tests.support.browser import skip_without_chromium
from tests.support.history import settle_history
from tests.support.telemetry import GPU, TelemetryNode

skip_without_chromium()


def test_live_gpu_charts_follow_the_heartbeats_and_earnings_show_a_bar_a_day(
        browser: Browser, chain: Chain, telemetry_node: TelemetryNode, requester: LocalAccount,
        provider: LocalAccount, verifier: LocalAccount) -> None:
    node = telemetry_node
    settle_history(chain, requester, provider, verifier)  # a job paid today
    chain.increase_time(86_400)
    second = chain.submitted_job(requester, provider, price=3 * WEI)  # and one paid a day later
    chain.verdict(verifier, second, True)
    chain.settle(second)
    node.caught_up()
    earnings = httpx.get(f"{node.url}/v1/providers/{provider.address}").json()
    days = earnings["earnings_daily"]
    assert len(days) == 14 and sum(int(day["amount"]) > 0 for day in days) == 2
    assert sum(int(day["amount"]) for day in days) == int(earnings["earned"])

    page_url = f"{node.url}/providers/{provider.address}"
    assert "Offline · no heartbeat since this node started" in text(httpx.get(page_url, headers=PAGE).text)
    for utilization in (20, 50, 87):
        assert node.post(node.beat(provider, gpus=[GPU.model_copy(update={"utilization_pct": utilization})]))\
            .status_code == 202
        node.clock.now += 10.0
    page = browser.new_page()
    page.goto(page_url)
    live = page.locator("#live")
    expect(live.locator(".status.online")).to_have_text("● Online")
    charts = live.locator("figure.live-chart")
    expect(charts).to_have_count(4)
    utilization_chart = live.locator('figure[data-metric="utilization"] svg')
    expect(utilization_chart).to_have_attribute("data-points", "3")
    expect(utilization_chart).to_have_attribute("aria-label", re.compile(r"GPU 0 87\.0 %"))
    points = utilization_chart.locator("polyline.gpu0").get_attribute("points") or ""
    heights = [float(pair.split(",")[1]) for pair in points.split()]
    assert len(heights) == 3 and heights[0] > heights[1] > heights[2]  # 20 %, 50 %, 87 %: higher up each time
    assert page.locator("#earnings-daily rect.day").count() == 14
    bars = page.locator("#earnings-daily svg")
    expect(bars).to_have_attribute("aria-label", re.compile(r"earnings a day, .* in all"))

    # A new heartbeat shows without a reload; silence turns the page offline.
    assert node.post(node.beat(provider, gpus=[GPU.model_copy(update={"utilization_pct": 5})])).status_code == 202
    expect(utilization_chart).to_have_attribute(
        "data-points", "4", timeout=15_000)
    expect(live.locator('figure[data-metric="utilization"] svg')).to_have_attribute(
        "aria-label", re.compile(r"GPU 0 5\.0 %"))
    node.clock.now += 30.0
    expect(live.locator(".status.offline")).to_have_text("○ Offline", timeout=15_000)
    assert page.url == page_url  # never reloaded
