"""The fold's records: what the event log says about one job, challenge, stake, slash or verifier.

Plain dataclasses the fold (``ChainState`` in ``state.py``) fills in and the indexer, the node and
the auditor read. They describe; they do not judge: where the auditor needs the stake or the
parameters in force when a penalty arose, the fold keeps a ``Penalty`` snapshot here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, NamedTuple

from marketplace.protocol import BPS, Confidentiality, CreditKind, JobState, JobTerms, Role, Verdict


class SlashCause(Enum):
    """Why a stake was reduced; the fold tells from the job event that came first in the same transaction."""

    EXPIRED_CLAIM = "expired claim"  # reclaimExpired: the provider's collateral
    FAILED_AUDIT = "failed audit"  # a settlement by a fail verdict: the provider's collateral
    MISSED_VERDICT = "missed verdict"  # redrawVerifier: noShowSlashBps of the drawn verifier's stake
    MISSED_VOTE = "missed vote"  # resolveChallenge: noShowSlashBps of a panel member that did not reveal
    OVERTURNED = "overturned verdict"  # resolveChallenge: verifierSlashBps of the contradicted verifier


class Credit(NamedTuple):
    """One ``Credited`` event of a job."""

    account: str
    kind: CreditKind
    amount: int
    tx_hash: str


@dataclass(frozen=True)
class SlashView:
    """One ``Slashed`` event, with the cause the fold inferred."""

    account: str
    role: Role
    cause: SlashCause | None
    from_stake: int
    from_unbonding: int
    tx_hash: str

    @property
    def amount(self) -> int:
        return self.from_stake + self.from_unbonding


@dataclass(frozen=True)
class Penalty:
    """A penalty the protocol owes, noted when the event that causes it arrives.

    ``stake`` and ``unbonding`` are the account's amounts at that moment, ``params`` the network
    parameters in force (``None`` when the fold has not seen them): together they fix what the
    ``Slashed`` event that follows in transaction ``tx_hash`` must take.
    """

    account: str
    role: Role
    cause: SlashCause
    stake: int
    unbonding: int
    tx_hash: str
    params: dict[str, Any] | None


@dataclass
class ChallengeView:
    """A job's challenge and panel as their events describe them."""

    challenger: str
    bond: int
    seed_block: int | None = None
    members: list[str] = field(default_factory=list)  # in draw order (the contract's order)
    commit_by: int | None = None
    reveal_by: int | None = None
    committed: list[str] = field(default_factory=list)
    votes: dict[str, Verdict] = field(default_factory=dict)
    outcome: Verdict | None = None  # the ChallengeResolved verdict
    upheld: bool | None = None
    open: bool = True  # the bond is held by the contract until the challenge is resolved

    @property
    def dismissed(self) -> bool:
        """Resolved without a panel: nobody was eligible to judge."""
        return not self.open and not self.members

    def tally(self) -> tuple[Verdict, int]:
        """The verdict with strictly most revealed votes and its count; NONE on a tie or no vote
        (exactly as the contract's ``_tally``)."""
        counts = [0] * 4
        for member in self.members:
            vote = self.votes.get(member)
            if vote is not None:
                counts[int(vote)] += 1
        outcome, votes = Verdict.NONE, 0
        for value in (Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE):
            if counts[value] > votes:
                votes, outcome = counts[value], value
            elif counts[value] == votes:
                outcome = Verdict.NONE
        return (Verdict.NONE, 0) if votes == 0 else (outcome, votes)


@dataclass
class JobView:
    """A job as its events describe it.

    ``verifier`` is the drawn verifier (``None`` before the draw and again after a missed
    deadline); ``audit_verdict`` is its (provisional) verdict; ``verdict`` is the job's verdict:
    the provisional one while audited or challenged, then the final one (``JobSettled``).
    """

    job_id: int
    requester: str
    spec_cid: str
    terms: dict[str, Any]
    posted_block: int
    posted_tx: str
    state: JobState = JobState.OPEN
    provider: str | None = None
    collateral: int = 0
    deadline: int | None = None
    output_cid: str | None = None
    result_root: str | None = None
    seed_block: int | None = None
    rearms: int = 0
    verifier: str | None = None
    draws: int = 0
    seed: str | None = None
    audit_deadline: int | None = None
    missed: list[str] = field(default_factory=list)
    reveal_by: int | None = None
    revealed_tasks: list[int] | None = None
    sample_seed: str | None = None
    audit_verdict: Verdict | None = None
    verdict: Verdict | None = None
    evidence_cid: str | None = None
    challenge: ChallengeView | None = None
    expirations: int = 0
    # Confidential jobs: each KeyReleased as (from, to, block), and the claims given back (ClaimReleased).
    key_releases: list[tuple[str, str, int]] = field(default_factory=list)
    released_claims: int = 0
    updated_block: int = 0
    burned: int = 0
    credits: list[Credit] = field(default_factory=list)
    slashes: list[SlashView] = field(default_factory=list)
    penalties: list[Penalty] = field(default_factory=list)
    settled_params: dict[str, Any] | None = None
    settled_treasury: str | None = None
    context: tuple[str, str] = ("", "")  # (tx hash, name) of the job's last own event: what a slash is for
    # Set by a fold that began after the job was posted (an audit from a later block): its credits,
    # burns, slashes and penalties before that block are not in this view.
    partial_since: int | None = None

    @property
    def price(self) -> int:
        return int(self.terms["price"])

    @property
    def confidentiality(self) -> Confidentiality:
        return Confidentiality(int(self.terms.get("confidentiality", 0)))

    @property
    def num_tasks(self) -> int:
        return int(self.terms["numTasks"])

    @property
    def sample_tasks(self) -> int:
        return int(self.terms["sampleTasks"])

    @property
    def audit_fee(self) -> int:
        return int(self.terms["auditFee"])

    @property
    def escrow(self) -> int:
        """What the requester escrowed: the price plus the audit fee."""
        return self.price + self.audit_fee

    @property
    def terms_collateral(self) -> int:
        """The collateral a claim locks, from the terms (``collateral`` is what the claim event said)."""
        return self.bps_of_price("collateralBps")

    @property
    def overturned(self) -> bool:
        """A panel contradicted the drawn verifier's verdict."""
        return self.challenge is not None and self.challenge.upheld is False

    def bps_of_price(self, name: str) -> int:
        return self.price * int(self.terms[name]) // BPS

    def job_terms(self) -> JobTerms:
        """The terms as ``protocol.JobTerms`` (what every contract call about this job takes back)."""
        t = self.terms
        return JobTerms(
            t["requester"], int(t["price"]), int(t["numTasks"]), int(t["claimBy"]), int(t["execWindow"]),
            int(t["sampleTasks"]), int(t["protocolFeeBps"]), int(t["verifierFeeBps"]), int(t["collateralBps"]),
            int(t["auditWindow"]), int(t["challengeWindow"]), int(t["auditFee"]), int(t["minProviderStake"]),
            bytes.fromhex(str(t["allowlistRoot"]).removeprefix("0x")),
            Confidentiality(int(t.get("confidentiality", 0))), int(t.get("keyWindow", 0)),
        )


@dataclass
class StakeView:
    account: str
    role: Role
    stake: int = 0
    locked: int = 0
    unbonding: int = 0
    unlock_at: int = 0
    duties: int = 0  # verifiers: audits and panels open
    secret_hash: str | None = None  # verifiers: the current audit-secret commitment
    slashed: int = 0  # lifetime total taken by Slashed events
    metadata_cid: str = ""
    registered_block: int = 0

    weight: int = 0  # verifiers: the weight in the draw, as last applied in a sync phase (WeightChanged)


@dataclass
class VerifierRecord:
    """A verifier's track record, as the events tell it: what the dashboard's verifier pages show.

    ``verdicts`` counts its own verdicts by kind; ``challenged`` the ones challenged, ``overturned``
    those a panel contradicted (each cost it ``verifierSlashBps`` of its stake), ``upheld`` those
    that stood (a panel's majority, a tie, no vote, or nobody eligible to judge). Panel ``seats``
    count each seat (a member drawn twice holds two), ``votes`` each reveal, ``missed_votes`` each
    seat left unrevealed at the resolution (each a no-show slash).
    """

    account: str
    draws: int = 0
    verdicts: dict[str, int] = field(default_factory=dict)  # pass / fail / inconclusive -> count
    missed: int = 0  # audit deadlines missed (redrawVerifier)
    reveal_demands: int = 0
    challenged: int = 0
    overturned: int = 0
    upheld: int = 0
    panels: int = 0  # challenges it sat on
    seats: int = 0
    votes: int = 0
    missed_votes: int = 0

    @property
    def audits(self) -> int:
        """Verdicts submitted."""
        return sum(self.verdicts.values())
