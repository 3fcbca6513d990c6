"""The dashboard in real headless Chromium (Debian's; Playwright downloads no browser): what a person sees."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING

import httpx
from eth_account.signers.local import LocalAccount

from marketplace.chain.devnet import mine
from marketplace.protocol import Role
from tests.conftest import Chain
from tests.marketplace.node.test_api import GPU_FACTS
from tests.support.browser import skip_without_chromium
from tests.support.history import challenged_job, group_history, rejected_job, settle_history
from tests.support.node import Node

if TYPE_CHECKING:
    from playwright.sync_api import Browser

skip_without_chromium()


def test_a_person_follows_a_job_a_provider_and_the_ledger(
    browser: Browser, chain: Chain, node: Node, requester: LocalAccount, provider: LocalAccount, verifier: LocalAccount
) -> None:
    from playwright.sync_api import expect

    metadata = str(node.store.add_bytes(json.dumps(GPU_FACTS).encode()).cid)
    history = settle_history(chain, requester, provider, verifier, metadata)
    rejected = rejected_job(chain, requester, provider, verifier)
    challenged = challenged_job(chain, requester, provider, verifier)
    node.caught_up(chain.block_number())
    page = browser.new_page()

    page.goto(node.url)
    expect(page.get_by_role("heading", name="Network overview")).to_be_visible()
    expect(page.locator("[data-stat=jobs]")).to_have_text("5")
    expect(page.locator("[data-stat=escrow]")).to_have_text("10.5")  # the open job: price 7, audit fee 3.5
    # 9 of a slashed collateral, 423 of an overturned verifier's slash
    expect(page.locator("[data-stat=burned]")).to_have_text("432")
    expect(page.locator("[data-stat=challenged]")).to_have_text("1")
    expect(page.locator("[data-stat=overturned]")).to_have_text("1")
    expect(page.get_by_text("Audit rate")).to_have_count(0)
    expect(page.locator("time").first).not_to_have_text("Invalid Date")  # times in the reader's zone

    page.get_by_role("link", name="Jobs", exact=True).click()
    page.get_by_label("State").select_option("rejected")
    expect(page).to_have_url(f"{node.url}/jobs?state=rejected")
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(1)
    expect(rows).to_contain_text("fail")
    rows.get_by_role("link", name=f"#{rejected}").click()

    expect(page.get_by_role("heading", name=f"Job #{rejected}")).to_contain_text("rejected")
    expect(page.locator("ol.timeline li")).to_have_count(8)
    expect(page.locator("ol.timeline li").nth(4)).to_contain_text("VerdictSubmitted · block")
    expect(page.locator("ol.timeline li").nth(4)).to_contain_text(f"verdict fail by {verifier.address}")
    expect(page.locator("ol.timeline li.Slashed")).to_contain_text(f"provider {provider.address} slashed 10 WEBI")
    expect(page.locator("table.slashes tbody tr")).to_contain_text(["failed audit"])
    expect(page.get_by_role("row", name=re.compile(r"^Verdict "))).to_contain_text("fail: provider slashed")
    expect(page.get_by_role("row", name=re.compile(r"^Verifier "))).to_contain_text(verifier.address)
    expect(page.get_by_role("row", name=re.compile(r"^Audit "))).to_contain_text("4 of 16 tasks re-executed: tasks")

    page.goto(f"{node.url}/jobs/{challenged}")
    expect(page.get_by_role("heading", name="Challenge")).to_be_visible()
    expect(page.get_by_role("row", name=re.compile(r"^Outcome "))).to_contain_text("overturned: pass")
    expect(page.get_by_role("row", name=re.compile(r"^Verdict "))).to_contain_text("overturned the verifier's fail")
    expect(page.locator("table.panel tbody tr")).to_have_count(3)
    expect(page.locator("table.panel tbody tr td:nth-child(3)")).to_have_text(["pass", "pass", "pass"])
    expect(page.locator("ol.timeline li.Slashed")).to_contain_text("slashed 500 WEBI: overturned verdict")

    page.get_by_role("link", name=verifier.address).first.click()
    expect(page.get_by_role("heading", name=f"Verifier {verifier.address}")).to_be_visible()
    expect(page.locator(".card", has_text="Audits done").locator("b")).to_have_text("3")
    expect(page.locator(".card", has_text="Overturned").locator("b")).to_have_text("1")
    expect(page.locator(".card", has_text="Slashed").locator("b")).to_have_text("500")
    expect(page.locator("table.audits tbody tr td:nth-child(4)")).to_have_text(["overturned", "—", "—"])
    expect(page.locator("table.slashes tbody tr")).to_have_count(1)
    expect(page.locator("table.slashes tbody tr")).to_contain_text("overturned verdict")
    expect(page.get_by_role("img", name="cumulative earnings")).to_be_visible()
    page.get_by_role("link", name="Verifiers", exact=True).click()
    expect(page.locator("table.verifiers tbody tr")).to_have_count(2)
    # Both weigh 1,000 in the draw: the verifier's slash applies to its weight at the next sync phase.
    expect(page.locator("table.verifiers tbody tr", has_text=verifier.address)).to_contain_text("50.0 %")
    page.go_back()
    page.go_back()

    page.locator("td.mono a", has_text=provider.address).first.click()
    expect(page.get_by_role("heading", name=f"Provider {provider.address}")).to_be_visible()
    expect(page.get_by_role("cell", name="NVIDIA H100 80GB HBM3")).to_be_visible()
    expect(page.get_by_role("img", name="cumulative earnings")).to_be_visible()
    expect(page.locator(".card", has_text="Success rate")).to_contain_text("66.7 %")
    expect(page.locator(".card", has_text="Slashed").locator("b")).to_have_text("10")  # one collateral

    page.get_by_role("link", name="Ledger").click()
    page.get_by_label("Account").fill(provider.address)
    page.get_by_role("button", name="Filter").click()
    kinds = page.locator("tbody tr td:nth-child(4)")
    expect(kinds).to_have_text(["provider_payment", "bond_refund"])  # the node's page size is 2
    expect(page.locator("tbody tr").first).to_contain_text("0x")
    page.get_by_role("link", name="Older entries").click()
    expect(kinds).to_have_text(["reward", "provider stake slashed"])  # the rejected job's collateral
    expect(page.locator("tbody tr").nth(1)).to_contain_text("-10")
    expect(page.locator("tbody tr").nth(1)).to_contain_text("failed audit")
    assert history.finalized != rejected


TOKYO = timezone(timedelta(hours=9))


def _posted_at_a_known_time(chain: Chain, requester: LocalAccount, provider: LocalAccount) -> tuple[int, int]:
    """A job posted (and claimed, submitted) in a block whose timestamp the test fixes: the next
    whole hour at least an hour ahead of the chain. Its id and that timestamp."""
    moment = (chain.now() // 3600 + 2) * 3600
    chain.approve(requester)
    chain.client.w3.provider.make_request("evm_setNextBlockTimestamp", [moment])  # type: ignore[arg-type]
    job = chain.market.post_job(requester, chain.request(claim_by=moment + 3_600))
    chain.market.claim_job(provider, job)
    return job, moment


def test_times_read_in_the_readers_zone_and_in_utc_without_javascript(
    browser: Browser, chain: Chain, node: Node, requester: LocalAccount, provider: LocalAccount, verifier: LocalAccount
) -> None:
    chain.register(provider, Role.PROVIDER)
    job, moment = _posted_at_a_known_time(chain, requester, provider)
    mine(chain.client)
    node.caught_up(chain.block_number())
    utc = datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    local = datetime.fromtimestamp(moment, TOKYO)
    tokyo = f"{local:%b} {local.day}, {local.year}, {local:%H:%M:%S} GMT+9"  # en-US, 24 h, the zone named
    context = browser.new_context(timezone_id="Asia/Tokyo", locale="en-US")
    page = context.new_page()
    for path in ("/", f"/jobs/{job}", f"/providers/{provider.address}"):
        page.goto(f"{node.url}{path}")
        text = page.evaluate("document.body.innerText")
        assert "Invalid Date" not in text, path
        assert tokyo in text, (path, text)
        assert page.locator("time", has_text=tokyo).first.get_attribute("title") == utc
        served = httpx.get(f"{node.url}{path}").text  # what a reader without JavaScript sees
        assert f'<time datetime="{datetime.fromtimestamp(moment, UTC):%Y-%m-%dT%H:%M:%SZ}">{utc}</time>' in served
    context.close()


def test_every_page_fits_a_390_px_phone(
    browser: Browser, chain: Chain, node: Node, requester: LocalAccount, provider: LocalAccount, verifier: LocalAccount
) -> None:
    metadata = str(node.store.add_bytes(json.dumps(GPU_FACTS).encode()).cid)
    history = settle_history(chain, requester, provider, verifier, metadata)
    rejected = rejected_job(chain, requester, provider, verifier)
    group = group_history(chain, requester, provider, verifier, node.store)  # before the judge joins the draw
    challenged = challenged_job(chain, requester, provider, verifier)
    node.caught_up(chain.block_number())
    page = browser.new_page(viewport={"width": 390, "height": 844})
    paths = ["/", "/jobs", f"/jobs/{history.open}", f"/jobs/{rejected}", f"/jobs/{challenged}", "/providers",
             f"/providers/{provider.address}", "/verifiers", f"/verifiers/{verifier.address}", "/ledger",
             f"/groups/{group.group_id}", "/jobs/999"]
    for path in paths:
        page.goto(f"{node.url}{path}")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
        # The header wraps: every link in it whole and on the screen.
        for box in page.locator("header a").evaluate_all("links => links.map(a => a.getBoundingClientRect().right)"):
            assert box <= 390, path
    page.goto(f"{node.url}/groups/{group.group_id}")
    assert page.locator("h1").inner_text().startswith(f"Job group #{group.group_id}")  # the page, not a 404
    page.goto(f"{node.url}/ledger")
    table = page.locator("main .scroll").first  # the wide table scrolls inside its own box
    assert table.evaluate("box => box.scrollWidth > box.clientWidth")
