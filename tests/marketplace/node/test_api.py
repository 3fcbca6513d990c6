"""The node's REST API over real HTTP, with its indexer following the devnet."""

from __future__ import annotations

import json

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from marketplace.chain.deployment import WEI
from marketplace.protocol import BPS, PANEL_SIZE
from tests.conftest import Chain
from tests.support.history import challenged_job, eventful_history, panel_accounts, rejected_job, settle_history
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


@pytest.mark.parametrize("node", ["sqlite", "postgresql"], indirect=True)
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
        summaries = {step["event"]: step["summary"] for step in detail["timeline"]}
        assert summaries["VerdictSubmitted"].startswith(f"verdict fail by {verifier.address}")
        assert summaries["Slashed"] == f"provider {provider.address} slashed 10 WEBI: failed audit"
        assert summaries["Burned"].startswith("9 WEBI burned")  # the collateral less the verifier's 10 % reward
        slashes = [(slash["account"], slash["cause"]) for slash in detail["slashes"]]
        assert slashes == [(provider.address, "failed audit")]
        assert "sample_rate_bps" not in detail and detail["terms"]["auditFee"] == str(10 * WEI)
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
        assert challenge["challenger"] == provider.address and int(challenge["bond"]) == 30 * WEI
        assert set(challenge["members"]) == panel and challenge["votes"] == {member: "pass" for member in panel}
        assert challenge["outcome"] == "pass" and challenge["upheld"] is False and challenge["open"] is False
        assert detail["audit"]["verdict"] == "pass" and detail["audit"]["verifier_verdict"] == "fail"
        assert detail["challenger"] == provider.address and int(detail["burned"]) == 423 * WEI
        assert sorted(entry["kind"] for entry in detail["ledger"]) == [
            "bond_refund", "panel_fee", "panel_fee", "panel_fee", "protocol_fee", "provider_payment", "refund",
            "reward"]
        summaries = [step["summary"] for step in detail["timeline"]]
        assert [member for member in panel if f"panel member {member} voted pass" in summaries] == list(panel)
        assert f"verifier {verifier.address} slashed 500 WEBI: overturned verdict" in summaries

        page = api.get(f"/providers/{provider.address}").json()
        stake = chain.market.provider_stake(provider.address)
        assert int(page["stake"]) == stake.stake and page["metadata"]["gpus"][0]["name"] == "NVIDIA H100 80GB HBM3"
        assert page["success_rate"] == 0.6667 and page["jobs_by_state"] == {"finalized": 2, "rejected": 1}
        assert int(page["slashed"]) == 10 * WEI
        assert int(page["earned"]) > 0 and page["earnings"][-1]["cumulative"] == page["earned"]
        assert [item["address"] for item in api.get("/providers").json()["items"]] == [provider.address]
        assert api.get(f"/providers/{requester.address}").status_code == 404

        ledger = api.get("/ledger", params={"account": provider.address, "limit": 10}).json()["items"]
        assert [entry["kind"] for entry in ledger] == [
            "provider_payment", "bond_refund", "reward", "slashed", "withdrawn", "provider_payment"]
        assert int(ledger[4]["amount"]) == -int(ledger[5]["amount"]) and ledger[4]["tx_hash"].startswith("0x")
        slash = ledger[3]  # the rejected job's collateral: a stake slash, listed with its cause
        assert (slash["job_id"], slash["role"], slash["reason"], slash["amount"]) == (
            rejected, "provider", "failed audit", str(-10 * WEI))

        stats = api.get("/stats").json()
        assert stats["jobs"] == 5 and stats["jobs_by_state"] == {
            "finalized": 2, "rejected": 1, "cancelled": 1, "open": 1}
        assert int(stats["escrow"]) == 7 * WEI + 7 * WEI // 2  # price plus audit fee of the open job
        assert stats["providers"] == 1 and stats["verifiers"] == 2 and stats["bonds"] == "0"
        assert int(stats["burned"]) == chain.market.burned() == 432 * WEI
        assert int(stats["panel_fees"]) == 30 * WEI and int(stats["rewards"]) == 48 * WEI
        assert "slashed_to_requesters" not in stats
        # Three verdicts; one challenged, and the panel overturned it.
        assert (stats["audits"], stats["challenged"], stats["overturned"], stats["challenges_open"]) == (3, 1, 1, 0)

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


@pytest.mark.parametrize("node", ["sqlite", "postgresql"], indirect=True)
def test_timelines_and_verifier_pages_follow_every_path_of_the_protocol(
    chain: Chain,
    node: Node,
    requester: LocalAccount,
    provider: LocalAccount,
    verifier: LocalAccount,
    stranger: LocalAccount,
) -> None:
    history = eventful_history(chain, requester, provider, verifier, stranger)
    judge = panel_accounts()[0].address
    market = chain.market
    node.caught_up(chain.block_number())
    with httpx.Client(base_url=f"{node.url}/v1") as api:
        revealed = api.get(f"/jobs/{history.revealed}").json()["timeline"]
        keys = [(step["block_number"], step["log_index"]) for step in revealed]
        assert keys == sorted(keys) and len(set(keys)) == len(keys)  # block order, each event once
        assert [step["event"] for step in revealed] == [
            "JobPosted", "JobClaimed", "ClaimExpired", "Slashed", "Burned", "JobClaimed", "ResultSubmitted",
            "VerifierDrawn", "VerifierMissed", "Slashed", "Burned", "VerifierDrawn", "RevealDemanded",
            "OutputsRevealed", "VerdictSubmitted", "JobSettled"]
        told = [step["summary"] for step in revealed]
        assert told[3] == f"provider {provider.address} slashed 10 WEBI: expired claim"
        assert told[9] == f"verifier {verifier.address} slashed 10 WEBI: missed verdict"  # 1 % of 1,000
        assert told[12].startswith(f"verifier {verifier.address} demands the sampled outputs on-chain by ")
        sampled = market.sample_of(market.audit_of(history.revealed).secret, 16, 4)
        assert told[13] == "the provider revealed the outputs of tasks " + ", ".join(map(str, sampled)) + " on-chain"

        confidential = api.get(f"/jobs/{history.confidential}").json()
        assert confidential["confidential"] == "open"
        assert api.get(f"/jobs/{history.revealed}").json()["confidential"] is None
        words = {step["event"]: step["summary"] for step in confidential["timeline"]}
        back = api.get(f"/jobs/{history.given_back}").json()["timeline"]
        given_back = {step["event"]: step["summary"] for step in back}
        assert given_back["ClaimReleased"].startswith(f"{provider.address} gave its claim back: its key did not arrive")
        released = [step for step in confidential["timeline"] if step["event"] == "KeyReleased"]
        assert [step["summary"] for step in released] == [
            f"the requester released the key to {provider.address}",
            f"the provider released the key to {verifier.address}"]
        assert all("wrappedKey" not in step["args"] for step in released)  # its length only
        assert words["OutputsRevealed"].startswith("the provider revealed the outputs of tasks ")

        unrevealed = [step["event"] for step in api.get(f"/jobs/{history.unrevealed}").json()["timeline"]]
        assert unrevealed[3:] == ["SeedRearmed", "VerifierDrawn", "RevealDemanded", "JobSettled", "Slashed", "Burned"]
        dismissed = api.get(f"/jobs/{history.dismissed}").json()["timeline"]
        assert dismissed[-2]["summary"].startswith("challenge dismissed: nobody was eligible to judge")
        overturned = api.get(f"/jobs/{history.overturned}").json()["timeline"]
        assert [step["event"] for step in overturned][-8:] == [
            "Challenged", "PanelDrawn", "VoteCommitted", "VoteRevealed", "ChallengeResolved", "Slashed", "Burned",
            "JobSettled"]
        assert overturned[-4]["summary"].startswith("challenge resolved: the panel overturned the verdict, pass")
        unvoted = api.get(f"/jobs/{history.unvoted}").json()
        missed = [step["summary"] for step in unvoted["timeline"] if step["event"] == "Slashed"]
        assert len(missed) == PANEL_SIZE and all(text.endswith(": missed vote") for text in missed)
        assert all("of it unbonding" in text for text in missed)  # it had asked to unstake everything

        listed = api.get("/verifiers").json()["items"]
        assert [item["address"] for item in listed] == [verifier.address, judge]  # heaviest in the draw first
        for item in listed:
            stake = market.verifier_stake(item["address"])
            assert (int(item["stake"]), int(item["unbonding"]), int(item["weight"])) == (
                stake.stake, stake.unbonding, market.verifier_weight(item["address"]))
        assert listed[0]["weight_share"] == 1.0 and listed[1]["weight_share"] == 0.0  # the judge left the draw

        mine = api.get(f"/verifiers/{verifier.address.lower()}").json()
        assert mine["audits_done"] == 7 and mine["verdicts"] == {"pass": 4, "fail": 2, "inconclusive": 1}
        assert (mine["draws"], mine["missed"], mine["reveal_demands"]) == (9, 1, 3)
        assert (mine["challenged"], mine["overturned"], mine["upheld"]) == (4, 1, 3)
        assert [(audit["job_id"], audit["challenge"]) for audit in mine["audits"]] == [
            (history.group.finalized, None), (history.confidential, None), (history.unvoted, "upheld"),
            (history.upheld, "upheld"),
            (history.overturned, "overturned"),
            (history.dismissed, "dismissed"), (history.revealed, None)]  # no verdict on the unrevealed job
        assert [(slash["job_id"], slash["cause"], int(slash["amount"])) for slash in mine["slashes"]] == [
            (history.revealed, "missed verdict", 10 * WEI), (history.overturned, "overturned verdict", 500 * WEI)]
        assert int(mine["slashed"]) == 510 * WEI and mine["panels"] == []
        # Seven audit fees (none for the overturned verdict) and a reward of the 10 WEBI collateral of each fail that
        # stood: 10 % on the unrevealed job, 20 % on the upheld one (governance raised rewardBps in between).
        assert mine["earned"] == {"verifier_fee": str(70 * WEI), "panel_fee": "0", "reward": str(3 * WEI)}
        assert mine["earnings"][-1]["cumulative"] == mine["earned_total"] == str(73 * WEI)

        theirs = api.get(f"/verifiers/{judge}").json()
        assert theirs["audits_done"] == 0 and (theirs["panels_sat"], theirs["seats"]) == (3, 3 * PANEL_SIZE)
        assert [(seat["job_id"], seat["seats"], seat["vote"], seat["challenge"]) for seat in theirs["panels"]] == [
            (history.unvoted, PANEL_SIZE, None, "upheld"), (history.upheld, PANEL_SIZE, "fail", "upheld"),
            (history.overturned, PANEL_SIZE, "pass", "overturned")]
        assert (theirs["votes"], theirs["missed_votes"]) == (2, PANEL_SIZE)
        left, taken = 1_000 * WEI, []
        for _ in range(PANEL_SIZE):  # each missed seat takes 1 % of what the previous slash left
            taken.append(left * market.params().no_show_slash_bps // BPS)
            left -= taken[-1]
        assert [int(slash["amount"]) for slash in theirs["slashes"]] == taken
        assert theirs["earned"]["panel_fee"] == str(2 * 30 * WEI)  # the bond, on both decided panels
        assert api.get(f"/verifiers/{provider.address}").status_code == 404
    assert httpx.get(f"{node.url}/verifiers/{provider.address}").status_code == 404  # the dashboard's page too
    assert httpx.get(f"{node.url}/verifiers/{judge}").status_code == 200
