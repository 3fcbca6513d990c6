"""What a demo run ended with: each job's verdict, challenge and final state, the books, the audit.

``DemoOutcome.summary()`` is the one JSON document ``webi demo --json`` prints: every amount in
wei (integers), every account by its cast key (``marketplace.demo.cast``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from marketplace.chain.deployment import Protocol
from marketplace.client import Client
from marketplace.demo.cast import GENERATOR, VERIFIER
from marketplace.demo.ledger import Ledger
from marketplace.errors import WebiError
from marketplace.groups.merge import GroupIncompleteError
from marketplace.output_json import parse_document
from marketplace.protocol import Verdict
from marketplace.storage.cid import Cid

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChallengeOutcome:
    challenger: str
    bond: int
    panel: list[str]  # one entry a seat: a member drawn twice holds two
    outcome: str  # "upheld", "overturned", "dismissed" (nobody could sit), or "open"
    verdict: str  # the verdict the job settled by ("" while open)


@dataclass(frozen=True)
class JobOutcome:
    job_id: int
    task: str
    provider: str
    verifier: str  # who gave the first verdict ("" if none came)
    verdict: str  # the first verdict: pass, fail, inconclusive; "none" if no verdict came
    state: str  # the final state: finalized, rejected, ...
    reason: str  # the first verifier's evidence, in a line
    challenge: ChallengeOutcome | None = None
    confidentiality: str = "public"  # or "open", "directed": inputs and outputs sealed (``marketplace.sealed``)

    @property
    def passed(self) -> bool | None:
        return None if self.verdict == "none" else self.verdict == "pass"


@dataclass(frozen=True)
class ConfidentialOutcome:
    """The demo's confidential job, and what its sealing cost in wall time.

    ``confidential_extra_s`` is its wall time from the start of its post (sealing and uploads included) to
    its verdict, minus the same for ``twin``: the public job of the same task, model and number of inputs,
    posted in the same run to the same provider. Verdicts, not finalization, end the span: the demo
    fast-forwards the challenge window for every job at once, so finalization times say nothing about either.
    """

    job_id: int
    mode: str  # "open"
    verdict: str
    state: str
    twin: int  # the public twin's job id
    wall_s: float  # post to verdict
    twin_wall_s: float
    confidential_extra_s: float
    # The same difference up to the results' commitment: the key's release and the sealing, without the wait
    # for the verifier's draw (which can hide them: the twin's verdict waits for the verifier to join the draw).
    submit_extra_s: float


@dataclass(frozen=True)
class ShardOutcome:
    """One shard of the demo's job group: a job of its own, claimed by whichever provider took it."""

    index: int
    job_id: int
    num_tasks: int
    price: int  # wei: the shard's share of the group's price
    provider: str  # the claimant's cast key ("" if none claimed it)
    verifier: str
    verdict: str
    state: str


@dataclass(frozen=True)
class GroupOutcome:
    """The demo's job group: one embed job cut into shards, built by several providers, merged into one result."""

    group_id: int
    num_tasks: int
    shards: list[ShardOutcome]
    merged_tasks: int  # outputs in the merged result, each shard checked against its own root
    merged_final: bool  # every shard finalized: the merged result is verified and final

    @property
    def providers(self) -> dict[str, int]:
        """Shards built by each provider."""
        counts: dict[str, int] = {}
        for shard in self.shards:
            counts[shard.provider] = counts.get(shard.provider, 0) + 1
        return counts

    @property
    def finalized(self) -> bool:
        return self.merged_final and self.merged_tasks == self.num_tasks \
            and all(shard.state == "finalized" for shard in self.shards)


@dataclass(frozen=True)
class DemoOutcome:
    run_dir: Path
    dashboard: str
    cheater: bool
    lazy_verifier: bool
    jobs: list[JobOutcome]
    ledger: Ledger
    audit_clean: bool
    labels: dict[str, str]
    confidential: ConfidentialOutcome | None = None
    group: GroupOutcome | None = None

    @property
    def conserved(self) -> bool:
        return self.ledger.conserved

    @property
    def cheater_rejected(self) -> bool:
        """The cheating provider's job was rejected and its collateral slashed."""
        cheats = [job for job in self.jobs if job.provider == GENERATOR]
        return bool(cheats) and all(job.state == "rejected" for job in cheats) \
            and self.ledger.slashed.get(GENERATOR, 0) > 0

    @property
    def lazy_verifier_slashed(self) -> bool:
        """A panel overturned the lazy verifier's pass and its stake was slashed."""
        return self.ledger.slashed.get(VERIFIER, 0) > 0 and any(
            job.challenge is not None and job.challenge.outcome == "overturned" and job.verifier == VERIFIER
            for job in self.jobs)

    @property
    def ok(self) -> bool:
        """Everything the run set out to show happened, the books balance and the audit is clean."""
        shown = (not self.cheater or self.cheater_rejected) and (not self.lazy_verifier or self.lazy_verifier_slashed)
        shown = shown and (self.confidential is None or self.confidential.state == "finalized")
        shown = shown and (self.group is None or self.group.finalized)
        return shown and self.conserved and self.audit_clean

    def summary(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "run_dir": str(self.run_dir),
            "dashboard": self.dashboard,
            "web_app": f"{self.dashboard}/app",
            "jobs": [asdict(job) for job in self.jobs],
            "credits": self.ledger.credits,
            "slashed": self.ledger.slashed,
            "bonds": {"paid": self.ledger.bonds_paid, "refunded": self.ledger.bonds_refunded},
            "burned": self.ledger.burned,
            "net": self.ledger.net,
            "labels": self.labels,
            "audit_clean": self.audit_clean,
            "conserved": self.conserved,
            "confidential": None if self.confidential is None else asdict(self.confidential),
            "group": None if self.group is None else {**asdict(self.group), "providers": self.group.providers},
        }
        if self.cheater:
            document["cheater_rejected"] = self.cheater_rejected
        if self.lazy_verifier:
            document["lazy_verifier_slashed"] = self.lazy_verifier_slashed
        return document


def job_outcome(protocol: Protocol, client: Client, job_id: int, task: str, provider: str,
                keys: dict[str, str]) -> JobOutcome:
    """One job's outcome from its events; ``keys`` maps lower-case addresses to cast keys."""
    market = protocol.market
    state = market.get_job(job_id).state.name.lower()
    confidentiality = market.posted(job_id).terms.confidentiality.name.lower()

    def logs(event: str) -> list[Any]:
        found = getattr(market.contract.events, event)().get_logs(from_block=market.from_block,
                                                                   argument_filters={"jobId": job_id})
        return list(found)

    verdicts = logs("VerdictSubmitted")
    if not verdicts:
        return JobOutcome(job_id, task, provider, "", "none", state, "no verdict", None, confidentiality)
    args = verdicts[-1]["args"]
    verdict = Verdict(args["verdict"])
    verifier = keys.get(str(args["verifier"]).lower(), str(args["verifier"]))
    return JobOutcome(job_id, task, provider, verifier, verdict.name.lower(), state,
                      _reason(client, str(args["evidenceCid"])), _challenge(logs, keys), confidentiality)


def group_outcome(client: Client, group_id: int, keys: dict[str, str]) -> GroupOutcome:
    """The group's shards as they ended, and its merged result (``Client.groups.results``: every shard's outputs
    checked against its own on-chain root, in input order)."""
    view = client.groups.status(group_id)

    def name(address: str | None) -> str:
        return "" if address is None else keys.get(address.lower(), address)

    shards = [ShardOutcome(shard.index, shard.job.job_id, shard.num_tasks, shard.job.price, name(shard.job.provider),
                           name(shard.job.verifier), shard.job.verdict.name.lower(), shard.job.state.name.lower())
              for shard in view.shards]
    try:
        merged = client.groups.results(group_id)
    except GroupIncompleteError as error:  # a shard failed or has no results: the summary says so, the demo fails
        log.warning("%s", error)
        return GroupOutcome(group_id, view.total, shards, 0, False)
    return GroupOutcome(group_id, view.total, shards, len(merged.outputs), merged.final)


def _reason(client: Client, evidence_cid: str) -> str:
    """The first failed task's reason; for a pass, the reason every task shares (a lazy pass says so)."""
    try:
        evidence = parse_document(client.store.read_bytes(Cid.parse(evidence_cid), limit=1024**2))
    except (WebiError, ValueError):
        return "evidence document unavailable"
    checks = evidence.get("checks", [])
    failed = [check for check in checks if not check.get("passed")]
    if failed:
        return f"task {failed[0].get('index')}: {failed[0].get('reason')}"
    reasons = {str(check.get("reason")) for check in checks}
    return reasons.pop() if len(reasons) == 1 else "every sampled task within tolerance"


def _challenge(logs: Callable[[str], list[Any]], keys: dict[str, str]) -> ChallengeOutcome | None:
    challenged = logs("Challenged")
    if not challenged:
        return None

    def name(address: object) -> str:
        return keys.get(str(address).lower(), str(address))

    args = challenged[-1]["args"]
    drawn = logs("PanelDrawn")
    panel = [name(member) for member in drawn[-1]["args"]["members"]] if drawn else []
    resolved = logs("ChallengeResolved")
    if not resolved:
        outcome, verdict = "open", ""
    else:
        result = resolved[-1]["args"]
        outcome = ("upheld" if result["upheld"] else "overturned") if drawn else "dismissed"
        verdict = Verdict(result["verdict"]).name.lower()
    return ChallengeOutcome(name(args["challenger"]), int(args["bond"]), panel, outcome, verdict)


def to_json(outcome: DemoOutcome) -> str:
    """The summary as one line of JSON."""
    return json.dumps(outcome.summary(), sort_keys=True)
