# ruff: noqa: N802  (handlers are named _on_<contract>_<Event>, after the Solidity events)
"""What the event log says the protocol holds: jobs, audits, challenges, stakes, credits, burns.

``ChainState.apply`` folds one decoded event at a time, mirroring the contracts in
``contracts/src`` (every value movement there emits an event, by design: ``Credited`` for each
credit, ``Slashed`` for each stake reduction, ``Burned`` for each burn). The indexer keeps one of
these in memory and writes it to SQL; the auditor builds one from the chain alone, compares it with
the contracts' views and re-derives each job's settlement from the snapshots kept here.

The fold describes; it does not judge. Where the auditor needs to know what a stake or the
network parameters were at the moment of a penalty (a slash is a share of the stake at that
moment), the fold keeps a snapshot (``Penalty``) taken when the event that causes the penalty
arrives, before the ``Slashed`` event that carries it out.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from marketplace.history.events import ChainEvent
from marketplace.history.views import (
    ChallengeView,
    Credit,
    JobView,
    Penalty,
    SlashCause,
    SlashView,
    StakeView,
    VerifierRecord,
)
from marketplace.protocol import LIVE_STATES, ZERO_ADDRESS, CreditKind, JobState, Role, Verdict

# Re-exported: the records were defined here before they had a module of their own.
__all__ = [
    "ChainState",
    "ChallengeView",
    "Credit",
    "JobView",
    "Penalty",
    "SlashCause",
    "SlashView",
    "StakeView",
    "VerifierRecord",
    "params_dict",
]

# Job events that say what a Slashed event in the same transaction is for.
_CAUSE_EVENTS = frozenset({"ClaimExpired", "VerifierMissed", "ChallengeResolved", "JobSettled"})


@dataclass
class ChainState:
    """The fold of every WEBI event so far. ``last`` is the (block, log index) of the last one applied."""

    jobs: dict[int, JobView] = field(default_factory=dict)
    stakes: dict[tuple[str, Role], StakeView] = field(default_factory=dict)
    credits: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    earned: dict[tuple[str, CreditKind], int] = field(default_factory=lambda: defaultdict(int))
    protocol_fees: int = 0
    burned: int = 0
    balances: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    treasury: str | None = None
    owner: str | None = None
    pending_owner: str | None = None
    verifiers: dict[str, VerifierRecord] = field(default_factory=dict)
    # Job groups (``GroupPosted``): group id -> its shards' job ids, re-posts appended, in posting order.
    groups: dict[int, list[int]] = field(default_factory=dict)
    terms: dict[str, Any] | None = None
    params: dict[str, Any] | None = None
    last: tuple[int, int] = (-1, -1)
    events: int = 0

    def apply(self, event: ChainEvent) -> None:
        """Folds ``event``; events must come in chain order, each once."""
        if event.key <= self.last:
            raise ValueError(f"event {event.key} is not after {self.last}: events must be applied in order, once")
        self.last = event.key
        self.events += 1
        handler = getattr(self, f"_on_{event.contract}_{event.name}", None)
        if handler is not None:
            handler(event, event.args)

    @property
    def escrow(self) -> int:
        """WEBI held for jobs not yet settled: every live job's price plus audit fee."""
        return sum(job.escrow for job in self.jobs.values() if job.state in LIVE_STATES)

    @property
    def bonds(self) -> int:
        """WEBI held as challenge bonds not yet resolved."""
        return sum(job.challenge.bond for job in self.jobs.values() if job.challenge and job.challenge.open)

    @property
    def staked(self) -> int:
        """Every stake, unbonding or not (both are in the contract)."""
        return sum(view.stake + view.unbonding for view in self.stakes.values())

    def stake(self, account: str, role: Role) -> StakeView:
        return self.stakes.setdefault((account, role), StakeView(account, role))

    def record(self, verifier: str) -> VerifierRecord:
        """``verifier``'s track record (created at its first draw, seat or verdict)."""
        return self.verifiers.setdefault(verifier, VerifierRecord(verifier))

    # ───────────────────────────────────────────── token

    def _on_token_Transfer(self, _: ChainEvent, args: dict[str, Any]) -> None:
        if args["from"] != ZERO_ADDRESS:
            self.balances[args["from"]] -= int(args["value"])
        self.balances[args["to"]] += int(args["value"])

    # ───────────────────────────────────────────── staking

    def _on_market_Registered(self, event: ChainEvent, args: dict[str, Any]) -> None:
        view = self.stake(args["account"], Role(args["role"]))
        view.stake = int(args["amount"])
        view.metadata_cid = str(args["metadataCid"])
        view.registered_block = event.block_number

    def _on_market_MetadataUpdated(self, _: ChainEvent, args: dict[str, Any]) -> None:
        self.stake(args["account"], Role(args["role"])).metadata_cid = str(args["metadataCid"])

    def _on_market_StakeAdded(self, _: ChainEvent, args: dict[str, Any]) -> None:
        self.stake(args["account"], Role(args["role"])).stake += int(args["amount"])

    def _on_market_UnstakeRequested(self, _: ChainEvent, args: dict[str, Any]) -> None:
        view = self.stake(args["account"], Role(args["role"]))
        view.stake -= int(args["amount"])
        view.unbonding += int(args["amount"])
        view.unlock_at = int(args["unlockAt"])

    def _on_market_StakeWithdrawn(self, _: ChainEvent, args: dict[str, Any]) -> None:
        self.stake(args["account"], Role(args["role"])).unbonding -= int(args["amount"])

    def _on_market_WeightChanged(self, _: ChainEvent, args: dict[str, Any]) -> None:
        self.stake(args["verifier"], Role.VERIFIER).weight = int(args["weight"])

    def _on_market_SecretCommitted(self, _: ChainEvent, args: dict[str, Any]) -> None:
        self.stake(args["verifier"], Role.VERIFIER).secret_hash = str(args["secretHash"])

    def _on_market_Slashed(self, event: ChainEvent, args: dict[str, Any]) -> None:
        role = Role(args["role"])
        view = self.stake(args["account"], role)
        from_stake, from_unbonding = int(args["fromStake"]), int(args["fromUnbonding"])
        view.stake -= from_stake
        view.unbonding -= from_unbonding
        view.slashed += from_stake + from_unbonding
        job = self.jobs.get(int(args["jobId"]))
        if job is None:
            return
        job.slashes.append(SlashView(view.account, role, _cause(job, event, view.account, role), from_stake,
                                     from_unbonding, event.tx_hash))

    # ───────────────────────────────────────────── jobs

    def _on_market_JobPosted(self, event: ChainEvent, args: dict[str, Any]) -> None:
        job_id = int(args["jobId"])
        self.jobs[job_id] = JobView(
            job_id,
            args["requester"],
            str(args["specCid"]),
            dict(args["terms"]),
            event.block_number,
            event.tx_hash,
            updated_block=event.block_number,
            context=(event.tx_hash, event.name),
        )

    def _job(self, event: ChainEvent, state: JobState | None = None) -> JobView | None:
        """The event's job, marked as updated (``None`` for a job posted before the fold started)."""
        job = self.jobs.get(int(event.args["jobId"]))
        if job is None:
            return None
        job.updated_block = event.block_number
        job.context = (event.tx_hash, event.name)
        if state is not None:
            job.state = state
        return job

    def _penalty(self, event: ChainEvent, job: JobView, account: str, role: Role, cause: SlashCause) -> None:
        view = self.stake(account, role)
        job.penalties.append(Penalty(account, role, cause, view.stake, view.unbonding, event.tx_hash, self.params))

    def _on_market_GroupPosted(self, _: ChainEvent, args: dict[str, Any]) -> None:
        """A group moves no value (each shard's ``JobPosted`` does): only which jobs belong together."""
        first = int(args["firstJobId"])
        self.groups.setdefault(int(args["groupId"]), []).extend(range(first, first + int(args["shards"])))

    def _on_market_JobCancelled(self, event: ChainEvent, _: dict[str, Any]) -> None:
        self._job(event, JobState.CANCELLED)

    def _on_market_JobClaimed(self, event: ChainEvent, args: dict[str, Any]) -> None:
        job = self._job(event, JobState.CLAIMED)
        if job is None:
            return
        job.provider, job.collateral, job.deadline = args["provider"], int(args["collateral"]), int(args["deadline"])
        self.stake(job.provider, Role.PROVIDER).locked += job.collateral

    def _on_market_ClaimExpired(self, event: ChainEvent, args: dict[str, Any]) -> None:
        job = self._job(event, JobState.OPEN)
        if job is None:
            return
        self.stake(args["provider"], Role.PROVIDER).locked -= job.collateral
        self._penalty(event, job, args["provider"], Role.PROVIDER, SlashCause.EXPIRED_CLAIM)
        job.expirations += 1
        job.provider, job.collateral, job.deadline = None, 0, None

    def _on_market_ClaimReleased(self, event: ChainEvent, args: dict[str, Any]) -> None:
        """An Open job's claimant gave the claim back, unslashed: the job is open again."""
        job = self._job(event, JobState.OPEN)
        if job is None:
            return
        self.stake(args["provider"], Role.PROVIDER).locked -= job.collateral
        job.released_claims += 1
        job.provider, job.collateral, job.deadline = None, 0, None

    def _on_market_KeyReleased(self, event: ChainEvent, args: dict[str, Any]) -> None:
        """A confidential job's key, wrapped to one party (the bytes are not kept: they are on-chain)."""
        job = self._job(event)
        if job is None:
            return
        job.key_releases.append((str(args["from"]), str(args["to"]), event.block_number))

    def _on_market_ResultSubmitted(self, event: ChainEvent, args: dict[str, Any]) -> None:
        job = self._job(event, JobState.SUBMITTED)
        if job is None:
            return
        job.output_cid, job.result_root, job.seed_block = (
            str(args["outputCid"]),
            args["resultRoot"],
            int(args["seedBlock"]),
        )

    def _on_market_SeedRearmed(self, event: ChainEvent, args: dict[str, Any]) -> None:
        job = self._job(event)
        if job is None:
            return
        job.rearms += 1
        if job.challenge is not None and job.state == JobState.CHALLENGED:
            job.challenge.seed_block = int(args["seedBlock"])
        else:
            job.seed_block = int(args["seedBlock"])

    def _on_market_VerifierDrawn(self, event: ChainEvent, args: dict[str, Any]) -> None:
        job = self._job(event)
        if job is None:
            return
        job.verifier, job.seed, job.audit_deadline = args["verifier"], str(args["seed"]), int(args["deadline"])
        job.draws += 1
        job.seed_block = None
        self.stake(job.verifier, Role.VERIFIER).duties += 1
        self.record(job.verifier).draws += 1

    def _on_market_VerifierMissed(self, event: ChainEvent, args: dict[str, Any]) -> None:
        job = self._job(event)
        if job is None:
            return
        verifier = args["verifier"]
        self.stake(verifier, Role.VERIFIER).duties -= 1
        self._penalty(event, job, verifier, Role.VERIFIER, SlashCause.MISSED_VERDICT)
        job.missed.append(verifier)
        self.record(verifier).missed += 1
        job.verifier = job.seed = job.audit_deadline = job.sample_seed = None
        job.reveal_by = None
        job.seed_block = int(args["seedBlock"])

    def _on_market_RevealDemanded(self, event: ChainEvent, args: dict[str, Any]) -> None:
        job = self._job(event)
        if job is None:
            return
        job.sample_seed, job.reveal_by = str(args["sampleSeed"]), int(args["revealBy"])
        self.record(args["verifier"]).reveal_demands += 1

    def _on_market_OutputsRevealed(self, event: ChainEvent, args: dict[str, Any]) -> None:
        job = self._job(event)
        if job is None:
            return
        job.revealed_tasks = [int(index) for index in args["taskIndices"]]

    def _on_market_VerdictSubmitted(self, event: ChainEvent, args: dict[str, Any]) -> None:
        job = self._job(event, JobState.AUDITED)
        if job is None:
            return
        job.verifier = args["verifier"]
        job.audit_verdict = job.verdict = Verdict(int(args["verdict"]))
        verdicts = self.record(job.verifier).verdicts
        verdicts[job.audit_verdict.name.lower()] = verdicts.get(job.audit_verdict.name.lower(), 0) + 1
        job.evidence_cid, job.sample_seed = str(args["evidenceCid"]), str(args["sampleSeed"])

    def _on_market_Challenged(self, event: ChainEvent, args: dict[str, Any]) -> None:
        job = self._job(event, JobState.CHALLENGED)
        if job is None:
            return
        job.challenge = ChallengeView(args["challenger"], int(args["bond"]), int(args["seedBlock"]))
        if job.verifier is not None:
            self.record(job.verifier).challenged += 1

    def _on_market_PanelDrawn(self, event: ChainEvent, args: dict[str, Any]) -> None:
        job = self._job(event)
        if job is None or job.challenge is None:
            return
        challenge = job.challenge
        challenge.members = [str(member) for member in args["members"]]
        challenge.commit_by, challenge.reveal_by = int(args["commitBy"]), int(args["revealBy"])
        challenge.seed_block = None
        for member in challenge.members:
            self.stake(member, Role.VERIFIER).duties += 1
            self.record(member).seats += 1
        for member in set(challenge.members):
            self.record(member).panels += 1

    def _on_market_VoteCommitted(self, event: ChainEvent, args: dict[str, Any]) -> None:
        job = self._job(event)
        if job is not None and job.challenge is not None:
            job.challenge.committed.append(args["member"])

    def _on_market_VoteRevealed(self, event: ChainEvent, args: dict[str, Any]) -> None:
        job = self._job(event)
        if job is not None and job.challenge is not None:
            job.challenge.votes[args["member"]] = Verdict(int(args["vote"]))
            self.record(args["member"]).votes += 1

    def _on_market_ChallengeResolved(self, event: ChainEvent, args: dict[str, Any]) -> None:
        job = self._job(event)
        if job is None or job.challenge is None:
            return
        challenge = job.challenge
        challenge.outcome, challenge.upheld, challenge.open = Verdict(int(args["verdict"])), bool(args["upheld"]), False
        # Noted before the Slashed events this resolution makes, so the stakes are those they take a share of.
        for member in challenge.members:
            self.stake(member, Role.VERIFIER).duties -= 1
            if member not in challenge.votes:
                self._penalty(event, job, member, Role.VERIFIER, SlashCause.MISSED_VOTE)
                self.record(member).missed_votes += 1
        if job.verifier is not None:
            record = self.record(job.verifier)
            if challenge.upheld:
                record.upheld += 1
            else:
                record.overturned += 1
                self._penalty(event, job, job.verifier, Role.VERIFIER, SlashCause.OVERTURNED)

    def _on_market_JobSettled(self, event: ChainEvent, args: dict[str, Any]) -> None:
        verdict = Verdict(int(args["verdict"]))
        job = self._job(event, JobState.REJECTED if verdict == Verdict.FAIL else JobState.FINALIZED)
        if job is None:
            return
        job.verdict = verdict
        job.settled_params, job.settled_treasury = self.params, self.treasury
        if job.provider is not None:
            self.stake(job.provider, Role.PROVIDER).locked -= job.collateral
            if verdict == Verdict.FAIL:
                self._penalty(event, job, job.provider, Role.PROVIDER, SlashCause.FAILED_AUDIT)
        if job.verifier is not None:
            self.stake(job.verifier, Role.VERIFIER).duties -= 1

    # ───────────────────────────────────────────── ledger

    def _on_market_Credited(self, event: ChainEvent, args: dict[str, Any]) -> None:
        kind, amount, account = CreditKind(args["kind"]), int(args["amount"]), args["account"]
        if kind == CreditKind.PROTOCOL_FEE:
            self.protocol_fees += amount
        else:
            self.credits[account] += amount
        self.earned[(account, kind)] += amount
        job = self.jobs.get(int(args["jobId"]))
        if job is not None:
            job.credits.append(Credit(account, kind, amount, event.tx_hash))

    def _on_market_Burned(self, _: ChainEvent, args: dict[str, Any]) -> None:
        amount = int(args["amount"])
        self.burned += amount
        job = self.jobs.get(int(args["jobId"]))
        if job is not None:
            job.burned += amount

    def _on_market_Withdrawn(self, _: ChainEvent, args: dict[str, Any]) -> None:
        self.credits[args["account"]] -= int(args["amount"])

    def _on_market_ProtocolFeesWithdrawn(self, _: ChainEvent, args: dict[str, Any]) -> None:
        self.protocol_fees -= int(args["amount"])

    # ───────────────────────────────────────────── governance

    def _on_market_TermsUpdated(self, _: ChainEvent, args: dict[str, Any]) -> None:
        self.terms = dict(args["terms"])

    def _on_market_ParamsUpdated(self, _: ChainEvent, args: dict[str, Any]) -> None:
        self.params = dict(args["params"])

    def _on_market_TreasuryUpdated(self, _: ChainEvent, args: dict[str, Any]) -> None:
        self.treasury = args["treasury"]

    def _on_market_OwnershipTransferStarted(self, _: ChainEvent, args: dict[str, Any]) -> None:
        self.pending_owner = args["newOwner"]

    def _on_market_OwnershipTransferred(self, _: ChainEvent, args: dict[str, Any]) -> None:
        self.owner, self.pending_owner = args["newOwner"], None


def _cause(job: JobView, event: ChainEvent, account: str, role: Role) -> SlashCause | None:
    """What a ``Slashed`` event is for: the job's last own event in the same transaction says it."""
    tx_hash, name = job.context
    if tx_hash != event.tx_hash or name not in _CAUSE_EVENTS:
        return None
    if name == "ClaimExpired":
        return SlashCause.EXPIRED_CLAIM
    if name == "VerifierMissed":
        return SlashCause.MISSED_VERDICT
    if name == "JobSettled":
        return SlashCause.FAILED_AUDIT
    # ChallengeResolved: the contradicted verifier, or a member that did not reveal its vote.
    return SlashCause.OVERTURNED if role == Role.VERIFIER and account == job.verifier else SlashCause.MISSED_VOTE


def params_dict(params: Any) -> dict[str, Any]:
    """``protocol.Params`` as the ``ParamsUpdated`` event's dict (for a fold that starts after it)."""
    names = ("minProviderStake", "minVerifierStake", "minTaskPrice", "unstakeCooldown", "revealWindow",
             "voteWindow", "verifierSlashBps", "noShowSlashBps", "rewardBps")
    return dict(zip(names, params.as_tuple(), strict=True))

