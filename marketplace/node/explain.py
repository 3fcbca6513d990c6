"""Why a job stands where it does, in words for its page: the verdict's reasons and an open job's wait.

A verdict's reasons are in its evidence document (``verifier/evidence.py``: for each sampled task
the outcome and why), which the node may or may not hold; a page shows them when it does and says
why not when it does not. An open job nobody claims is the question a requester asks first: the
page says how long it has waited and until when it can be claimed, and, where the registered
providers published their terms in their registration metadata (``tasks`` they serve,
``price_floor`` in WEBI per task by task type, read as ``marketplace.provider_offers`` reads them
for the CLI), which of them would not take it and why, plus
what the contract itself would refuse (too small a stake, too little free for the collateral, an
allowlist). These are the providers' published words, not a proof: a provider may run other terms.
"""

from __future__ import annotations

from typing import Any

from marketplace.protocol import BPS
from marketplace.provider_offers import ProviderOffer
from marketplace.units import webi

EVIDENCE_KINDS = frozenset({"webi-audit-evidence", "webi-panel-evidence", "webi-watch-evidence"})
NO_ALLOWLIST = "0x" + "00" * 32


def verdict_reasons(evidence: dict[str, Any] | None) -> dict[str, Any] | None:
    """The evidence document's verdict, rule and per-task outcomes with their reasons; ``None`` without
    evidence, ``{"error": ...}`` when the document is missing or not WEBI evidence."""
    if evidence is None:
        return None
    if "error" in evidence:
        return {"error": str(evidence["error"])}
    checks = evidence.get("checks")
    if evidence.get("kind") not in EVIDENCE_KINDS or not isinstance(checks, list):
        return {"error": "not a WEBI evidence document"}
    tasks = [
        {"index": check.get("index"), "outcome": check.get("outcome"), "reason": check.get("reason") or ""}
        for check in checks
        if isinstance(check, dict)
    ]
    return {
        "verdict": evidence.get("verdict"),
        "rule": evidence.get("rule"),
        "outputs_source": evidence.get("outputs_source"),
        "outcomes": evidence.get("outcomes") if isinstance(evidence.get("outcomes"), dict) else {},
        "tasks": tasks,
    }


def unclaimed(job: dict[str, Any], offers: list[ProviderOffer], now: int | None) -> dict[str, Any]:
    """An open job's wait: since when (posted, or its last claim expired), the minutes waited at the
    chain's latest indexed block ``now``, the claim window, and the reasons the providers published."""
    opened = [step["time"] for step in job["timeline"] if step["event"] in ("JobPosted", "ClaimExpired")]
    since = opened[-1] if opened and opened[-1] is not None else job["posted_at"]
    terms = job["terms"]
    claim_by = int(terms["claimBy"])
    spec = job.get("spec")
    task = spec.get("task") if isinstance(spec, dict) and isinstance(spec.get("task"), str) else None
    reasons: list[dict[str, Any]] = []
    if str(terms.get("allowlistRoot", NO_ALLOWLIST)) not in (NO_ALLOWLIST, "0"):
        reasons.append({"provider": None, "reason": "only providers on the job's allowlist may claim it"})
    if not offers:
        reasons.append({"provider": None, "reason": "no provider is registered on this chain"})
    for offer in offers:
        reasons += [{"provider": offer.address, "reason": reason} for reason in _refusals(offer, job, task)]
    return {
        "since": since,
        "minutes": max(0, (now - since) // 60) if now is not None and since is not None else None,
        "claim_by": claim_by,
        "closed": now is not None and now > claim_by,
        "task": task,
        "reasons": reasons,
    }


def _refusals(offer: ProviderOffer, job: dict[str, Any], task: str | None) -> list[str]:
    terms = job["terms"]
    price, tasks_count = int(terms["price"]), max(1, int(terms["numTasks"]))
    per_task = price // tasks_count
    reasons = []
    stake, free = offer.stake.stake, offer.stake.free
    minimum = int(terms.get("minProviderStake", 0))
    if stake < minimum:
        reasons.append(f"stakes {webi(stake)} WEBI, under this job's minimum of {webi(minimum)} WEBI")
    collateral = price * int(terms.get("collateralBps", 0)) // BPS
    if free < collateral:
        reasons.append(
            f"has {webi(free)} WEBI of stake free, under the {webi(collateral)} WEBI of collateral a claim locks"
        )
    if task and offer.serves(task) is False:
        served = ", ".join(sorted(offer.tasks or ())) or "none"
        reasons.append(f"does not serve {task} tasks (it serves {served})")
    floor = offer.price_floor_wei.get(task) if task else None
    if floor is not None and per_task < floor:
        reasons.append(
            f"asks at least {webi(floor)} WEBI per {task} task; this job pays {webi(per_task)} WEBI per task"
        )
    return reasons
