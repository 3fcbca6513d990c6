"""``marketplace.node.explain``: foreign or broken documents never break a job's page."""

from __future__ import annotations

from typing import Any

from marketplace.chain.deployment import WEI
from marketplace.node.explain import unclaimed, verdict_reasons
from marketplace.protocol import Stake
from marketplace.provider_offers import ProviderOffer

PROVIDER = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"


def open_job(**terms: Any) -> dict[str, Any]:
    return {
        "posted_at": 1_000,
        "timeline": [{"event": "JobPosted", "time": 1_000}],
        "spec": {"task": "embed"},
        "terms": {"price": str(16 * WEI), "numTasks": 16, "claimBy": 9_000, "minProviderStake": 0,
                  "collateralBps": 5_000, "allowlistRoot": "0x" + "00" * 32, **terms},
    }


def stake(amount: int, locked: int = 0) -> Stake:
    return Stake(amount, locked, 0, 0, 0)


def test_evidence_that_is_not_webi_evidence_says_so() -> None:
    assert verdict_reasons(None) is None
    assert verdict_reasons({"error": "not in this node's store"}) == {"error": "not in this node's store"}
    assert verdict_reasons({"kind": "something-else", "checks": []}) == {"error": "not a WEBI evidence document"}
    assert verdict_reasons({"kind": "webi-audit-evidence", "checks": "all fine"}) == {
        "error": "not a WEBI evidence document"}
    odd = verdict_reasons({"kind": "webi-panel-evidence", "checks": [7, {"index": 1, "outcome": "fail"}],
                           "outcomes": "many"})
    assert odd is not None and odd["tasks"] == [{"index": 1, "outcome": "fail", "reason": ""}]
    assert odd["outcomes"] == {}


def test_published_floors_that_are_not_amounts_are_ignored() -> None:
    for floor in ("cheap", "-1", "NaN", "Infinity", None, ["1"]):
        metadata = {"tasks": "embed", "price_floor": {"embed": floor}}
        offer = ProviderOffer.from_metadata(PROVIDER, stake(1_000 * WEI), metadata)
        assert unclaimed(open_job(), [offer], 1_060)["reasons"] == [], floor
    offer = ProviderOffer.from_metadata(PROVIDER, stake(1_000 * WEI), {"price_floor": {"embed": "1.5"}})
    assert [r["reason"] for r in unclaimed(open_job(), [offer], 1_060)["reasons"]] == [
        "asks at least 1.5 WEBI per embed task; this job pays 1 WEBI per task"]


def test_the_wait_counts_from_the_last_expired_claim_and_the_contracts_own_refusals() -> None:
    job = open_job(allowlistRoot="0x" + "ab" * 32)
    job["timeline"].append({"event": "ClaimExpired", "time": 4_000})
    offer = ProviderOffer.from_metadata(PROVIDER, stake(100 * WEI, 95 * WEI), None)  # 5 WEBI free, a claim locks 8
    wait = unclaimed(job, [offer], 4_000 + 5 * 60 + 59)
    assert (wait["since"], wait["minutes"], wait["closed"]) == (4_000, 5, False)
    assert [r["reason"] for r in wait["reasons"]] == [
        "only providers on the job's allowlist may claim it",
        "has 5 WEBI of stake free, under the 8 WEBI of collateral a claim locks"]
    assert unclaimed(job, [offer], None)["minutes"] is None and unclaimed(job, [], 9_001)["closed"]
