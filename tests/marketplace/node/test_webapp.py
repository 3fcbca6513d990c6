"""The web app in real headless Chromium with a test wallet over anvil (``tests/support/wallet.js``): a requester
posts a job, watches it, downloads and verifies the results; the provider cashes out. Then what a person sees
for each way it can go wrong. Every step leaves a screenshot under the test's temporary folder."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from marketplace.chain.deployment import WEI
from marketplace.chain.devnet import Devnet
from marketplace.node import NodeSettings, create_node_app
from marketplace.protocol import JobState, Role, Verdict
from marketplace.results import MerkleTree, output_manifest, parse_output_manifest
from marketplace.storage.cid import Cid
from marketplace.storage.local import LocalStore
from provider.config import load_config
from tests.conftest import Chain
from tests.provider.test_daemon import running
from tests.support.browser import skip_without_chromium, wallet_context
from tests.support.jobs import TEXTS, audit_by_hand, provider_config
from tests.support.node import Node
from tests.support.servers import serve

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

skip_without_chromium()


class Screens:
    """Numbered screenshots of each step, in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.count = 0

    def __call__(self, page: Page, name: str) -> Path:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 0
        return path


@pytest.fixture
def screens(tmp_path: Path) -> Screens:
    return Screens(tmp_path / "screens")


@pytest.fixture
def model(node: Node, bundles: dict[str, Path]) -> str:
    """A tiny embed model in the node's store: the form takes it by CID."""
    return str(node.store.add_path(bundles["embed"], recursive=True).cid)


def webi_text(wei: int) -> str:
    """An amount as the page writes it (viem's formatUnits: no trailing zeros)."""
    text = f"{Decimal(wei) / 10**18:f}"
    return (text.rstrip("0").rstrip(".") if "." in text else text) + " WEBI"


def inputs_file(folder: Path, texts: list[str], name: str = "inputs.jsonl") -> Path:
    path = folder / name
    path.write_text("".join(json.dumps({"text": text}) + "\n" for text in texts))
    return path


def connect(page: Page, url: str) -> None:
    from playwright.sync_api import expect

    page.goto(url)
    page.get_by_role("button", name="Connect Test Wallet").click()
    expect(page.locator("#wallet-status")).to_contain_text("Connected: ")


def fill_job(page: Page, model: str | None, inputs: Path, price: str, sample: int = 4) -> None:
    """Fills the form; ``model`` None: the model folder was chosen already."""
    from playwright.sync_api import expect

    if model is not None:
        page.get_by_label("Model CID").fill(model)
    page.get_by_label("Inputs: a JSONL file").set_input_files(inputs)
    expect(page.locator("#inputs-facts")).to_contain_text(f"{len(inputs.read_text().splitlines())} inputs")
    page.get_by_label("Price for the whole job, in WEBI").fill(price)
    page.get_by_label("Audit level").fill(str(sample))


def test_a_requester_posts_watches_and_verifies_a_job_and_the_provider_cashes_out(
    browser: Browser, chain: Chain, devnet: Devnet, node: Node, deployments: Path, model: str, requester: LocalAccount,
    provider: LocalAccount, verifier: LocalAccount, tmp_path: Path, screens: Screens,
) -> None:
    from playwright.sync_api import expect

    chain.register(verifier, Role.VERIFIER)
    chain.register(provider, Role.PROVIDER, 10_000 * WEI)
    config = load_config(provider_config(tmp_path, provider, devnet.anvil.rpc_url, node.url, deployments))
    chain_id = chain.client.chain_id
    context = wallet_context(browser, rpc_url=devnet.anvil.rpc_url, account=requester.address, chain_id=chain_id)
    page = context.new_page()
    before = chain.protocol.token.balance_of(requester.address)
    with running(config, provider):
        connect(page, f"{node.url}/app")
        screens(page, "connected")
        expect(page.locator("#balance")).to_have_text(webi_text(before))
        fill_job(page, model, inputs_file(tmp_path, TEXTS), "10")
        expect(page.locator("#cost")).to_contain_text("You pay")
        screens(page, "form")
        page.get_by_role("button", name="Post the job").click()
        posted = page.locator("#posted-job")
        expect(posted).to_be_visible(timeout=60_000)
        screens(page, "posted")
        job_id = int(str(posted.get_attribute("href")).rsplit("/", 1)[1])
        posted_job = chain.market.posted(job_id)
        terms = chain.market.terms_of(job_id)
        assert (posted_job.terms.requester, terms.price, terms.num_tasks) == (requester.address, 10 * WEI, len(TEXTS))
        assert chain.protocol.token.balance_of(requester.address) == before - terms.escrow  # the permit's escrow
        posted.click()
        expect(page.locator("h1")).to_have_text(f"Job #{job_id}")
        expect(page.locator("#wallet-status")).to_contain_text("Connected: ")  # the tab's wallet, without a prompt
        audit_by_hand(chain, verifier, job_id)
        expect(page.locator("#job-state")).to_have_text("finalized (pass)", timeout=120_000)
        expect(page.locator("#job-timeline")).to_contain_text("submitted")
        screens(page, "finalized")
        page.get_by_role("button", name="Download and verify the results").click()
        verified = page.locator("#verified")
        expect(verified).to_contain_text(f"Verified: all {len(TEXTS)} outputs rebuild the Merkle root")
        assert verified.get_attribute("data-verified") == "true"
        root = "0x" + chain.market.result_root(job_id).hex()
        expect(verified).to_contain_text(root)
        with page.expect_download() as download:
            page.get_by_role("link", name="Save the verified results").click()
        saved = Path(download.value.path()).read_bytes()
        assert MerkleTree(parse_output_manifest(saved, len(TEXTS))).root.hex() == root[2:]
        screens(page, "verified")
    context.close()

    earned = chain.market.credits(provider.address)
    assert earned > 0
    held = chain.protocol.token.balance_of(provider.address)
    owner = wallet_context(browser, rpc_url=devnet.anvil.rpc_url, account=provider.address, chain_id=chain_id)
    page = owner.new_page()
    connect(page, f"{node.url}/app/provider")
    expect(page.locator("#earnings")).to_have_text(webi_text(earned))
    screens(page, "provider")
    page.get_by_role("button", name="Withdraw earnings").click()
    expect(page.locator("#message")).to_have_text("Done: you withdrew your earnings.", timeout=30_000)
    expect(page.locator("#earnings")).to_have_text("0 WEBI")
    screens(page, "withdrawn")
    assert chain.market.credits(provider.address) == 0
    assert chain.protocol.token.balance_of(provider.address) == held + earned
    stake = chain.market.provider_stake(provider.address).stake
    page.get_by_label("Add stake, in WEBI").fill("5")
    page.get_by_role("button", name="Add stake").click()
    expect(page.locator("#message")).to_have_text("Done: you added the stake.", timeout=30_000)
    assert chain.market.provider_stake(provider.address).stake == stake + 5 * WEI
    expect(page.locator("#stake-total")).to_have_text(webi_text(stake + 5 * WEI))
    page.get_by_label("Unstake, in WEBI").fill("5")
    page.get_by_role("button", name="Request unstake").click()
    expect(page.locator("#message")).to_have_text("Done: you requested the unstake.", timeout=30_000)
    assert chain.market.provider_stake(provider.address).unbonding == 5 * WEI
    expect(page.locator("#stake-unbonding")).to_contain_text("5 WEBI, withdrawable from ")
    screens(page, "staked")
    owner.close()


def test_a_requester_posts_a_job_group_of_shards_approved_and_posted_in_one_transaction(
    browser: Browser, chain: Chain, devnet: Devnet, node: Node, model: str, requester: LocalAccount, tmp_path: Path,
    screens: Screens,
) -> None:
    from playwright.sync_api import expect

    context = wallet_context(browser, rpc_url=devnet.anvil.rpc_url, account=requester.address,
                             chain_id=chain.client.chain_id)
    page = context.new_page()
    connect(page, f"{node.url}/app")
    fill_job(page, model, inputs_file(tmp_path, TEXTS), "10", sample=2)
    page.get_by_label("Shards: 1 posts one job").fill("3")
    expect(page.locator("#cost")).to_contain_text("2 re-executed tasks in each of 3 shards")
    before = chain.protocol.token.balance_of(requester.address)
    page.get_by_role("button", name="Post the job").click()
    posted = page.locator("#posted-job")
    expect(posted).to_be_visible(timeout=60_000)
    expect(page.locator("#post-steps")).to_contain_text("approve the market to take")
    screens(page, "group-posted")
    group_id = int(str(posted.get_attribute("href")).rsplit("/", 1)[1])
    [event] = chain.market.contract.events.GroupPosted().get_logs(from_block=0, argument_filters={"groupId": group_id})
    first, count = event["args"]["firstJobId"], event["args"]["shards"]
    assert (event["args"]["requester"], count) == (requester.address, 3)
    jobs = [chain.market.posted(first + index) for index in range(count)]
    assert [job.terms.num_tasks for job in jobs] == [3, 3, 2] and sum(job.terms.price for job in jobs) == 10 * WEI
    assert chain.protocol.token.balance_of(requester.address) == before - sum(job.terms.escrow for job in jobs)
    for index, job in enumerate(jobs):
        spec = json.loads(node.store.read_bytes(Cid.parse(job.spec_cid)))
        assert (spec["shard"]["index"], spec["shard"]["count"], spec["shard"]["total"]) == (index, 3, len(TEXTS))
    node.caught_up(chain.block_number())
    posted.click()
    expect(page.locator("h1")).to_contain_text(f"Job group #{group_id}")
    screens(page, "group-page")
    context.close()


def test_no_wallet_a_locked_one_and_the_wrong_chain_are_told(
    browser: Browser, chain: Chain, devnet: Devnet, node: Node, requester: LocalAccount, screens: Screens,
) -> None:
    from playwright.sync_api import expect

    bare = browser.new_page()
    bare.goto(f"{node.url}/app")
    expect(bare.locator("#wallet-status")).to_contain_text("No browser wallet found")
    screens(bare, "no-wallet")
    bare.close()

    locked = wallet_context(browser, rpc_url=devnet.anvil.rpc_url, account=requester.address,
                            chain_id=chain.client.chain_id, locked=True)
    page = locked.new_page()
    page.goto(f"{node.url}/app")
    page.get_by_role("button", name="Connect Test Wallet").click()
    expect(page.locator("#message")).to_have_text(
        "The wallet gave no account: it may be locked. Unlock it, then connect again.")
    screens(page, "locked")
    locked.close()

    wrong = wallet_context(browser, rpc_url=devnet.anvil.rpc_url, account=requester.address,
                           chain_id=chain.client.chain_id, wallet_chain_id=1)
    page = wrong.new_page()
    page.goto(f"{node.url}/app")
    page.get_by_role("button", name="Connect Test Wallet").click()
    status = page.locator("#wallet-status")
    expect(status).to_contain_text(f"Wrong network: the wallet is on chain 1, and this node's market is on chain "
                                   f"{chain.client.chain_id}")
    expect(page.locator("#account")).to_be_hidden()
    screens(page, "wrong-chain")
    page.get_by_role("button", name=f"Switch the wallet to chain {chain.client.chain_id}").click()
    expect(status).to_contain_text("Connected: ")
    expect(page.locator("#account")).to_be_visible()
    screens(page, "switched")
    wrong.close()


def test_a_rejected_signature_too_little_webi_and_a_revert_are_told_and_nothing_is_posted(
    browser: Browser, chain: Chain, devnet: Devnet, node: Node, model: str, requester: LocalAccount,
    stranger: LocalAccount, tmp_path: Path, screens: Screens,
) -> None:
    from playwright.sync_api import expect

    chain_id = chain.client.chain_id
    inputs = inputs_file(tmp_path, TEXTS)
    first = chain.market.next_job_id()
    refusing = wallet_context(browser, rpc_url=devnet.anvil.rpc_url, account=requester.address, chain_id=chain_id,
                              reject=("eth_signTypedData_v4",))
    page = refusing.new_page()
    connect(page, f"{node.url}/app")
    fill_job(page, model, inputs, "10")
    page.get_by_role("button", name="Post the job").click()
    expect(page.locator("#message")).to_have_text(
        "You rejected the request in your wallet: nothing was signed or sent.", timeout=30_000)
    screens(page, "rejected")
    refusing.close()

    token = chain.protocol.token
    token.transfer(stranger, requester.address, token.balance_of(stranger.address))  # a wallet with no WEBI
    poor = wallet_context(browser, rpc_url=devnet.anvil.rpc_url, account=stranger.address, chain_id=chain_id)
    page = poor.new_page()
    connect(page, f"{node.url}/app")
    fill_job(page, model, inputs, "10")
    page.get_by_role("button", name="Post the job").click()
    expect(page.locator("#message")).to_contain_text("Too little WEBI: this job needs ")
    expect(page.locator("#message")).to_contain_text("and the wallet holds 0 WEBI.")
    screens(page, "too-little")
    poor.close()

    greedy = wallet_context(browser, rpc_url=devnet.anvil.rpc_url, account=requester.address, chain_id=chain_id)
    page = greedy.new_page()
    connect(page, f"{node.url}/app")
    fill_job(page, model, inputs, "100")  # 4 sampled of 8 tasks worth 50 WEBI: over what a verifier can back
    page.get_by_role("button", name="Post the job").click()
    expect(page.locator("#message")).to_contain_text("The contract refused: SampleValueAboveMaximum(",
                                                     timeout=30_000)
    screens(page, "reverted")
    greedy.close()
    assert chain.market.next_job_id() == first  # nothing was posted


@pytest.fixture
def small_node(tmp_path: Path, devnet: Devnet, deployments: Path) -> Iterator[Node]:
    """A node that takes at most 512 bytes of inputs from the web app."""
    settings = NodeSettings(rpc_url=devnet.anvil.rpc_url, deployments_dir=deployments,
                            database=str(tmp_path / "small" / "index.db"), store_dir=tmp_path / "small" / "store",
                            poll_interval_s=0.05, max_inputs_bytes=512)
    with serve(create_node_app(settings), lifespan="on") as url:
        yield Node(url, settings, LocalStore(settings.store_dir))


def test_a_malformed_or_too_large_input_file_is_refused_before_any_upload(
    browser: Browser, chain: Chain, devnet: Devnet, small_node: Node, requester: LocalAccount, tmp_path: Path,
    screens: Screens,
) -> None:
    from playwright.sync_api import expect

    context = wallet_context(browser, rpc_url=devnet.anvil.rpc_url, account=requester.address,
                             chain_id=chain.client.chain_id)
    page = context.new_page()
    connect(page, f"{small_node.url}/app")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": unquoted}\n')
    page.get_by_label("Inputs: a JSONL file").set_input_files(bad)
    expect(page.locator("#message")).to_have_text(
        "The input file is malformed: line 2 of the input file is not JSON. Nothing was uploaded.")
    screens(page, "malformed")
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"text": ""}\n')
    page.get_by_label("Inputs: a JSONL file").set_input_files(empty)
    expect(page.locator("#message")).to_contain_text('line 1 of the input file must be a non-empty string')
    blanks = tmp_path / "blanks.jsonl"
    blanks.write_text('"one"\r\n\n  \n{"text": "two"}\n\n')  # blank lines and CRLF, as the CLI and the node take them
    page.get_by_label("Inputs: a JSONL file").set_input_files(blanks)
    expect(page.locator("#inputs-facts")).to_have_text(f"2 inputs, {blanks.stat().st_size} bytes")
    large = inputs_file(tmp_path, [f"text {index:04d} " + "x" * 40 for index in range(20)], "large.jsonl")
    page.get_by_label("Inputs: a JSONL file").set_input_files(large)
    expect(page.locator("#message")).to_have_text(
        f"The input file is {large.stat().st_size:,} bytes: this node takes at most 512 bytes of inputs. "
        "Split the job.")
    screens(page, "too-large")
    context.close()
    assert small_node.store.pins() == []  # nothing reached the node's store


def test_the_bundle_and_every_app_page_are_served_and_fit_a_360_px_phone(
    browser: Browser, chain: Chain, devnet: Devnet, node: Node, requester: LocalAccount, screens: Screens,
) -> None:
    from playwright.sync_api import expect

    context = wallet_context(browser, rpc_url=devnet.anvil.rpc_url, account=requester.address,
                             chain_id=chain.client.chain_id, viewport={"width": 360, "height": 780})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    for path in ("/app", "/app/jobs/1", "/app/provider"):
        page.goto(f"{node.url}{path}")
        page.get_by_role("button", name="Connect Test Wallet").wait_for()
        served = httpx.get(f"{node.url}{path}").text
        assert 'src="http' not in served and "<script src=\"/static/app.js\"></script>" in served  # no CDN
        assert page.evaluate("document.documentElement.scrollWidth") <= 360, path
        # Every control is labelled: a name a screen reader reads out.
        unnamed = page.evaluate("""[...document.querySelectorAll('main input, main select, main button')]
            .filter(el => !el.closest('[hidden]') && !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                    && !(el.tagName === 'BUTTON' && el.textContent.trim()))
            .map(el => el.id || el.outerHTML)""")
        assert unnamed == [], (path, unnamed)
        screens(page, path.strip("/").replace("/", "-"))
    assert errors == []
    assert {url.split("/")[2] for url in requests} <= {node.url.split("/")[2], devnet.anvil.rpc_url.split("/")[2]}
    # From the keyboard alone: Tab to the wallet's button, Enter connects.
    page.goto(f"{node.url}/app")
    page.get_by_role("button", name="Connect Test Wallet").wait_for()
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "Connect Test Wallet":
            break
    page.keyboard.press("Enter")
    expect(page.locator("#wallet-status")).to_contain_text("Connected: ")
    context.close()


def test_a_requester_uploads_a_model_folder_cancels_an_open_job_and_challenges_a_pass(
    browser: Browser, chain: Chain, devnet: Devnet, node: Node, bundles: dict[str, Path], requester: LocalAccount,
    provider: LocalAccount, verifier: LocalAccount, tmp_path: Path, screens: Screens,
) -> None:
    from playwright.sync_api import expect

    chain.register(verifier, Role.VERIFIER)
    chain.register(provider, Role.PROVIDER)
    context = wallet_context(browser, rpc_url=devnet.anvil.rpc_url, account=requester.address,
                             chain_id=chain.client.chain_id)
    page = context.new_page()
    inputs = inputs_file(tmp_path, TEXTS)

    def post_from_folder() -> int:
        connect(page, f"{node.url}/app")
        page.get_by_label("upload a folder").check()
        page.get_by_label("Model folder").set_input_files(bundles["embed"])
        fill_job(page, None, inputs, "10")
        if chain.market.next_job_id() > 1:  # a job of this task and size exists: its price is suggested
            expect(page.locator("#price-hint")).to_contain_text("Suggested: 10 WEBI (1.25 WEBI a task, the median of 1")
            page.get_by_label("Price for the whole job, in WEBI").fill("")
            page.get_by_role("button", name="Use the suggested price").click()
            expect(page.get_by_label("Price for the whole job, in WEBI")).to_have_value("10")
        page.get_by_role("button", name="Post the job").click()
        posted = page.locator("#posted-job")
        expect(posted).to_be_visible(timeout=60_000)
        expect(page.locator("#post-steps")).to_contain_text("uploading the model folder")
        job_id = int(str(posted.get_attribute("href")).rsplit("/", 1)[1])
        posted.click()
        expect(page.locator("#wallet-status")).to_contain_text("Connected: ")
        return job_id

    cancelled = post_from_folder()
    spec = json.loads(node.store.read_bytes(Cid.parse(chain.market.posted(cancelled).spec_cid)))
    assert spec["model"] == str(node.store.add_path(bundles["embed"], recursive=True).cid)  # the folder's CID
    page.get_by_role("button", name="Cancel the job (refund)").click()
    expect(page.locator("#message")).to_have_text("Done: cancel sent and mined.", timeout=30_000)
    expect(page.locator("#job-state")).to_have_text("cancelled", timeout=30_000)
    assert chain.market.get_job(cancelled).state is JobState.CANCELLED
    assert chain.market.credits(requester.address) == chain.market.terms_of(cancelled).escrow  # refunded
    screens(page, "cancelled")

    passed = post_from_folder()
    outputs = [f"output {index}".encode() for index in range(len(TEXTS))]
    chain.market.claim_job(provider, passed)
    chain.market.submit_result(provider, passed, str(node.store.add_bytes(output_manifest(outputs)).cid),
                               MerkleTree(outputs).root)
    chain.verdict(verifier, passed, Verdict.PASS)
    expect(page.locator("#job-state")).to_have_text("audited (pass)", timeout=30_000)
    page.get_by_role("button", name="Challenge the verdict").click()
    expect(page.locator("#job-state")).to_have_text("challenged (pass)", timeout=30_000)
    assert chain.market.get_job(passed).state is JobState.CHALLENGED
    assert chain.market.panel_of(passed).challenger == requester.address
    screens(page, "challenged")
    context.close()
