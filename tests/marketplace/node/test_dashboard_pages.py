"""The dashboard's pages as served (no JavaScript): unknown ids, CID links, a verdict's reasons, slashes
in the ledger, and why an open job waits."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime

import httpx
from eth_account.signers.local import LocalAccount

from marketplace.chain.deployment import WEI
from marketplace.protocol import Role, Verdict
from tests.conftest import OUTPUT_CID, SPEC_CID, Chain
from tests.marketplace.node.test_api import GPU_FACTS
from tests.support.history import eventful_history, settle_history
from tests.support.node import Node

PAGE = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}  # what a browser sends


def text(page: str) -> str:
    """What a reader without JavaScript reads: the body without tags, whitespace collapsed."""
    body = page.split("<body>", 1)[-1].split("<script>", 1)[0]
    blocks = re.sub(r"</?(?:td|th|tr|li|p|h\d|br|div|table|ul|ol|header|nav|main)\b[^>]*>", " ", body)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", "", blocks))).strip()


def utc(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def test_unknown_ids_get_a_page_for_browsers_and_json_for_the_api(
    chain: Chain, node: Node, requester: LocalAccount, provider: LocalAccount, verifier: LocalAccount
) -> None:
    history = settle_history(chain, requester, provider, verifier)
    node.caught_up(chain.block_number())
    with httpx.Client(base_url=node.url, headers=PAGE) as client:
        for path, message in (
            ("/jobs/999", f"no job 999 on this chain (the latest is {history.open})"),
            ("/jobs/abc", f"no job abc on this chain (the latest is {history.open})"),
            (f"/providers/{requester.address}", f"no provider {requester.address} on this chain"),
            (f"/verifiers/{provider.address}", f"no verifier {provider.address} on this chain"),
        ):
            reply = client.get(path)
            assert reply.status_code == 404 and reply.headers["content-type"].startswith("text/html"), path
            assert message in text(reply.text), path
            assert '<a class="brand" href="/">WEBI</a>' in reply.text  # the site's header, to go on from
        api = client.get("/v1/jobs/999", headers={"Accept": "*/*"})
        assert api.status_code == 404 and api.json() == {"detail": "no job 999 indexed"}
        assert client.get(f"/v1/providers/{requester.address}").json()["detail"].endswith("not a registered provider")
        asked = client.get("/jobs/999", headers={"Accept": "application/json"})  # a client that wants JSON
        assert asked.status_code == 404 and asked.json()["detail"].startswith("no job 999 on this chain")


def test_a_fresh_chain_says_no_job_was_posted(node: Node, chain: Chain) -> None:
    node.caught_up(chain.block_number())
    reply = httpx.get(f"{node.url}/jobs/1", headers=PAGE)
    assert reply.status_code == 404 and "no job 1 on this chain (none has been posted yet)" in text(reply.text)


def test_cids_link_to_the_gateway_and_the_verdict_shows_its_reasons(
    chain: Chain, node: Node, requester: LocalAccount, provider: LocalAccount, verifier: LocalAccount
) -> None:
    evidence = {
        "kind": "webi-audit-evidence", "version": 2, "verdict": "fail", "rule": "per task: the rule",
        "outputs_source": "store", "outcomes": {"pass": 1, "fail": 1, "inconclusive": 0},
        "checks": [{"index": 3, "outcome": "pass", "reason": "cosine 0.9999 within 0.999"},
                   {"index": 7, "outcome": "fail", "reason": "cosine 0.12 under 0.999 against both references"}],
    }
    cid = str(node.store.add_bytes(json.dumps(evidence).encode()).cid)
    chain.register(provider, Role.PROVIDER)
    chain.register(verifier, Role.VERIFIER)
    job = chain.submitted_job(requester, provider)
    chain.verdict(verifier, job, Verdict.FAIL, evidence=cid)
    node.caught_up(chain.block_number())
    page = httpx.get(f"{node.url}/jobs/{job}", headers=PAGE).text
    for linked in (SPEC_CID, OUTPUT_CID, cid):
        assert f'<a class="mono cid" href="/ipfs/{linked}">{linked}</a>' in page
    assert httpx.get(f"{node.url}/ipfs/{cid}").json() == evidence  # the link opens the document itself
    read = text(page)
    said = "The evidence says fail: 1 fail, 0 inconclusive, 1 pass; outputs read from the store."
    assert f"Why the verdict {said}" in read
    assert "7 fail cosine 0.12 under 0.999 against both references" in read
    assert "3 pass cosine 0.9999 within 0.999" in read


def test_evidence_the_node_lacks_says_so(
    chain: Chain, node: Node, requester: LocalAccount, provider: LocalAccount, verifier: LocalAccount
) -> None:
    chain.register(provider, Role.PROVIDER)
    chain.register(verifier, Role.VERIFIER)
    job = chain.submitted_job(requester, provider)
    chain.verdict(verifier, job, Verdict.PASS)  # evidence: a CID this node's store does not hold
    node.caught_up(chain.block_number())
    read = text(httpx.get(f"{node.url}/jobs/{job}", headers=PAGE).text)
    assert f"The evidence {OUTPUT_CID} cannot be shown: not in this node's store." in read


def test_every_kind_of_stake_slash_is_in_the_ledger_with_its_reason(
    chain: Chain,
    node: Node,
    requester: LocalAccount,
    provider: LocalAccount,
    verifier: LocalAccount,
    stranger: LocalAccount,
) -> None:
    eventful_history(chain, requester, provider, verifier, stranger)
    node.caught_up(chain.block_number())
    with httpx.Client(base_url=node.url) as client:
        entries = client.get("/v1/ledger", params={"limit": 500}).json()["items"]
        slashes = [entry for entry in entries if entry["kind"] == "slashed"]
        assert {(entry["role"], entry["reason"]) for entry in slashes} == {
            ("provider", "expired claim"), ("provider", "failed audit"), ("verifier", "missed verdict"),
            ("verifier", "overturned verdict"), ("verifier", "missed vote")}
        assert all(int(entry["amount"]) < 0 and entry["job_id"] is not None for entry in slashes)
        # The ledger's slashes add up to what the stakes lost.
        for role in ("provider", "verifier"):
            for item in client.get(f"/v1/{role}s").json()["items"]:
                taken = -sum(int(e["amount"]) for e in slashes if e["account"] == item["address"] and e["role"] == role)
                assert taken == int(item["slashed"]), (role, item["address"])
        # Credits are as before: the slashes come in beside them, never instead.
        credits = [entry for entry in entries if entry["kind"] != "slashed"]
        assert credits and all(entry["role"] is None and entry["reason"] is None for entry in credits)
        keys = [(entry["block_number"], entry["log_index"]) for entry in entries]
        assert keys == sorted(keys, reverse=True) and len(set(keys)) == len(keys)
        # Paging walks the merged list, 2 at a time, without losing or repeating an entry.
        walked, cursor = [], None
        while True:
            page = client.get("/v1/ledger", params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
            walked += [(entry["block_number"], entry["log_index"]) for entry in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert walked == keys
        overturned = next(entry for entry in slashes if entry["reason"] == "overturned verdict")
        before = entries[entries.index(overturned) - 1]  # the dashboard pages with the same cursor
        params = {"account": overturned["account"], "cursor": f"{before['block_number']}:{before['log_index']}"}
        read = text(client.get("/ledger", params=params, headers=PAGE).text)
        assert f"#{overturned['job_id']} verifier stake slashed -500 overturned verdict" in read


def test_an_open_job_says_how_long_it_waited_and_why_providers_pass_it_by(
    chain: Chain, node: Node, requester: LocalAccount, provider: LocalAccount
) -> None:
    terms = {**GPU_FACTS, "tasks": ["embed"], "price_floor": {"generate": "2.5", "embed": "0.1"}}
    metadata = str(node.store.add_bytes(json.dumps(terms).encode()).cid)
    chain.approve(provider)
    chain.market.register(provider, Role.PROVIDER, 1_000 * WEI, metadata)
    spec = str(node.store.add_bytes(json.dumps({"task": "generate", "model": "gpt2"}).encode()).cid)
    job = chain.post(requester, spec_cid=spec, price=16 * WEI, min_provider_stake=2_000 * WEI)
    claim_by = chain.market.terms_of(job).claim_by
    chain.increase_time(12 * 60)
    chain.mine()
    node.caught_up(chain.block_number())
    read = text(httpx.get(f"{node.url}/jobs/{job}", headers=PAGE).text)
    assert f"no provider has claimed it in 12 min (claim window closes at {utc(claim_by)})" in read
    short = f"{provider.address[:6]}…{provider.address[-4:]}"
    assert f"{short} does not serve generate tasks (it serves embed)" in read
    assert f"{short} asks at least 2.5 WEBI per generate task; this job pays 1 WEBI per task" in read
    assert f"{short} stakes 1,000 WEBI, under this job's minimum of 2,000 WEBI" in read
    api = httpx.get(f"{node.url}/v1/jobs/{job}").json()["unclaimed"]
    assert api["minutes"] == 12 and api["task"] == "generate" and len(api["reasons"]) == 3

    chain.increase_time(claim_by - chain.now() + 1)
    chain.mine()
    node.caught_up(chain.block_number())
    read = text(httpx.get(f"{node.url}/jobs/{job}", headers=PAGE).text)
    assert f"no provider claimed it: the claim window closed at {utc(claim_by)}" in read


def test_an_open_job_on_a_chain_without_providers_says_so(chain: Chain, node: Node, requester: LocalAccount) -> None:
    job = chain.post(requester)
    node.caught_up(chain.block_number())
    read = text(httpx.get(f"{node.url}/jobs/{job}", headers=PAGE).text)
    assert "no provider has claimed it in 0 min" in read and "no provider is registered on this chain" in read
