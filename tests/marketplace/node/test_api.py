"""The node's REST API over real HTTP, with its indexer following the devnet."""

from __future__ import annotations

import json

import httpx
from eth_account.signers.local import LocalAccount

from marketplace.chain.deployment import WEI
from tests.conftest import Chain
from tests.support.history import rejected_job, settle_history
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
    node.caught_up(chain.block_number())
    with httpx.Client(base_url=f"{node.url}/v1") as api:
        first = api.get("/jobs").json()
        assert [job["job_id"] for job in first["items"]] == [rejected, history.open]  # page size 2, newest first
        second = api.get("/jobs", params={"cursor": first["next_cursor"]}).json()
        assert [job["job_id"] for job in second["items"]] == [history.cancelled, history.finalized]
        assert second["next_cursor"] is None
        finalized = api.get("/jobs", params={"state": "finalized", "provider": provider.address.lower()}).json()[
            "items"
        ]
        assert [job["job_id"] for job in finalized] == [history.finalized]
        assert api.get("/jobs", params={"state": "lost"}).status_code == 422

        detail = api.get(f"/jobs/{rejected}").json()
        assert [step["event"] for step in detail["timeline"]] == [
            "JobPosted",
            "JobClaimed",
            "ResultSubmitted",
            "VerdictSubmitted",
        ]
        assert detail["verdict"]["passed"] is False and detail["verdict"]["verifier"] == verifier.address
        assert {(entry["account"], entry["kind"]) for entry in detail["ledger"]} == {
            (requester.address, "refund"),
            (verifier.address, "verifier_fee"),
            (requester.address, "slash_compensation"),
        }
        assert detail["spec"] == {"error": "not in this node's store"}
        assert api.get("/jobs/999").status_code == 404

        page = api.get(f"/providers/{provider.address}").json()
        stake = chain.market.provider_stake(provider.address)
        assert int(page["stake"]) == stake.stake and page["metadata"]["gpus"][0]["name"] == "NVIDIA H100 80GB HBM3"
        assert page["success_rate"] == 0.5 and page["jobs_by_state"] == {"finalized": 1, "rejected": 1}
        assert int(page["earned"]) > 0 and page["earnings"][-1]["cumulative"] == page["earned"]
        assert [item["address"] for item in api.get("/providers").json()["items"]] == [provider.address]
        assert api.get(f"/providers/{requester.address}").status_code == 404

        ledger = api.get("/ledger", params={"account": provider.address, "limit": 10}).json()["items"]
        assert [entry["kind"] for entry in ledger] == ["withdrawn", "provider_payment"]
        assert int(ledger[0]["amount"]) == -int(ledger[1]["amount"]) and ledger[0]["tx_hash"].startswith("0x")

        stats = api.get("/stats").json()
        assert stats["jobs"] == 4 and stats["jobs_by_state"]["rejected"] == 1
        assert int(stats["escrow"]) == 7 * WEI and stats["providers"] == 1 and stats["verifiers"] == 1
        assert int(stats["slashed_to_requesters"]) > 0

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
