"""The node's REST API over real HTTP, with its indexer following the devnet."""

from __future__ import annotations

import json

import httpx
from eth_account.signers.local import LocalAccount

from marketplace.chain.deployment import WEI
from tests.conftest import Chain
from tests.support.history import challenged_job, panel_accounts, rejected_job, settle_history
from tests.support.node import Node

GPU_FACTS = {
    "kind": "webi-provider",
    "version": 1,
    "gpus": [
        {
            "index": 0,
            "name": "NVIDIA H100 80GB HBM3",
            "uuid": "GPU-1",
            "memory_bytes": 85_520_809_984,
            "driver_version": "580.65",
            "cuda_version": "13.0",
        }
    ],
}


def test_jobs_providers_ledger_and_stats(
    chain: Chain, node: Node, requester: LocalAccount, provider: LocalAccount, verifier: LocalAccount
) -> None:
    metadata = str(node.store.add_bytes(json.dumps(GPU_FACTS).encode()).cid)
    history = settle_history(chain, requester, provider, verifier, metadata)
    rejected = rejected_job(chain, requester, provider, verifier)
    challenged = challenged_job(chain, requester, provider, verifier)
    panel = {account.address for account in panel_accounts()}
    node.caught_up(chain.block_number())
    with httpx.Client(base_url=f"{node.url}/v1") as api:
        first = api.get("/jobs").json()
        assert [job["job_id"] for job in first["items"]] == [challenged, rejected]  # page size 2, newest first
        second = api.get("/jobs", params={"cursor": first["next_cursor"]}).json()
        assert [job["job_id"] for job in second["items"]] == [history.open, history.cancelled]
        third = api.get("/jobs", params={"cursor": second["next_cursor"]}).json()
        assert [job["job_id"] for job in third["items"]] == [history.finalized] and third["next_cursor"] is None
        finalized = api.get("/jobs", params={"state": "finalized", "provider": provider.address.lower()}).json()
        assert [job["job_id"] for job in finalized["items"]] == [challenged, history.finalized]
        by_verifier = api.get("/jobs", params={"verifier": verifier.address, "limit": 10}).json()["items"]
        assert [(job["job_id"], job["verdict"]) for job in by_verifier] == [
            (challenged, "pass"), (rejected, "fail"), (history.finalized, "pass")]
        assert api.get("/jobs", params={"state": "lost"}).status_code == 422
        assert api.get("/jobs", params={"state": "challenged"}).json()["items"] == []

        detail = api.get(f"/jobs/{rejected}").json()
        assert [step["event"] for step in detail["timeline"]] == [
            "JobPosted",
            "JobClaimed",
            "ResultSubmitted",
            "VerifierDrawn",
            "VerdictSubmitted",
            "JobSettled",
            "Slashed",
            "Burned",
        ]
        assert "sample_rate_bps" not in detail and detail["terms"]["auditFee"] == str(50 * WEI)
        audit = detail["audit"]
        assert audit["verifier"] == verifier.address and audit["verdict"] == "fail" and audit["final"] is True
        sample_seed = chain.market.audit_of(rejected).secret  # the sample seed, once the secret is revealed
        assert audit["sample_seed"] == "0x" + sample_seed.hex() and audit["draws"] == 1
        assert audit["sampled_tasks"] == chain.market.sample_of(sample_seed, 16, 4)
        assert detail["challenge"] is None
        assert {(entry["account"], entry["kind"]) for entry in detail["ledger"]} == {
            (requester.address, "refund"),
            (verifier.address, "verifier_fee"),
            (verifier.address, "reward"),
        }
        assert detail["spec"] == {"error": "not in this node's store"}
        assert api.get("/jobs/999").status_code == 404

        detail = api.get(f"/jobs/{challenged}").json()
        challenge = detail["challenge"]
        assert challenge["challenger"] == provider.address and int(challenge["bond"]) == 150 * WEI
        assert set(challenge["members"]) == panel and challenge["votes"] == {member: "pass" for member in panel}
        assert challenge["outcome"] == "pass" and challenge["upheld"] is False and challenge["open"] is False
        assert detail["audit"]["verdict"] == "pass" and detail["audit"]["verifier_verdict"] == "fail"
        assert detail["challenger"] == provider.address and int(detail["burned"]) == 315 * WEI
        assert sorted(entry["kind"] for entry in detail["ledger"]) == [
            "bond_refund", "panel_fee", "panel_fee", "panel_fee", "protocol_fee", "provider_payment", "refund",
            "reward"]
        assert "Slashed" in [step["event"] for step in detail["timeline"]]

        page = api.get(f"/providers/{provider.address}").json()
        stake = chain.market.provider_stake(provider.address)
        assert int(page["stake"]) == stake.stake and page["metadata"]["gpus"][0]["name"] == "NVIDIA H100 80GB HBM3"
        assert page["success_rate"] == 0.6667 and page["jobs_by_state"] == {"finalized": 2, "rejected": 1}
        assert int(page["slashed"]) == 50 * WEI
        assert int(page["earned"]) > 0 and page["earnings"][-1]["cumulative"] == page["earned"]
        assert [item["address"] for item in api.get("/providers").json()["items"]] == [provider.address]
        assert api.get(f"/providers/{requester.address}").status_code == 404

        ledger = api.get("/ledger", params={"account": provider.address, "limit": 10}).json()["items"]
        assert [entry["kind"] for entry in ledger] == [
            "provider_payment", "bond_refund", "reward", "withdrawn", "provider_payment"]
        assert int(ledger[3]["amount"]) == -int(ledger[4]["amount"]) and ledger[3]["tx_hash"].startswith("0x")

        stats = api.get("/stats").json()
        assert stats["jobs"] == 5 and stats["jobs_by_state"] == {
            "finalized": 2, "rejected": 1, "cancelled": 1, "open": 1}
        assert int(stats["escrow"]) == 7 * WEI + 7 * WEI // 2  # price plus audit fee of the open job
        assert stats["providers"] == 1 and stats["verifiers"] == 2 and stats["bonds"] == "0"
        assert int(stats["burned"]) == chain.market.burned() == 360 * WEI
        assert int(stats["panel_fees"]) == 150 * WEI and int(stats["rewards"]) == 40 * WEI
        assert "slashed_to_requesters" not in stats

    health = httpx.get(f"{node.url}/healthz").json()
    assert health["lag"] == 0 and health["events"] == stats["events"]
    metrics = httpx.get(f"{node.url}/metrics").text
    assert f"webi_node_indexed_block {float(health['indexed_block'])}" in metrics
    assert "/v1/jobs/{job_id}" in httpx.get(f"{node.url}/openapi.json").json()["paths"]


def test_the_store_routes_are_served_by_the_node(node: Node) -> None:
    added = httpx.post(
        f"{node.url}/api/v0/add", params={"cid-version": 1}, files={"file": ("hello.txt", b"hello world\n")}
    ).json()
    assert added["Hash"] == "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
    assert httpx.get(f"{node.url}/ipfs/{added['Hash']}").content == b"hello world\n"
