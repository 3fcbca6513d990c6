"""The books as the replay rebuilt them, one row per account and per job, for the report's tables.

A reader checks an audit by looking up the accounts and jobs they know: what each holds, what each
job paid and to whom, and how many discrepancies concern it. Amounts are wei as decimal strings
(JSON cannot carry 2^96 as a number); the HTML shows them in WEBI.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from marketplace.audit.checks import Discrepancy
from marketplace.history import ChainState, JobView
from marketplace.protocol import LIVE_STATES, JobState, Role, Verdict


@dataclass(frozen=True)
class StakeSummary:
    """One of an account's stakes, as replayed."""

    role: str  # provider or verifier
    stake: str
    locked: str
    unbonding: str
    slashed: str  # taken by slashes the replay saw


@dataclass(frozen=True)
class AccountSummary:
    """One account as replayed: its roles, token balance, withdrawable credits and stakes."""

    address: str
    roles: list[str]
    balance: str
    credits: str
    stakes: list[StakeSummary]
    earned: dict[str, str]  # credited by kind, over the replayed blocks
    discrepancies: int


@dataclass(frozen=True)
class CreditSummary:
    """One ``Credited`` event of a job."""

    account: str
    kind: str
    amount: str


@dataclass(frozen=True)
class JobSummary:
    """One job as replayed: its parties, price, verdict, how it settled and what it moved.

    ``partial_since`` is set for a job posted before the replay's first block: its credits, burns
    and slashes are those from that block on.
    """

    job_id: int
    state: str
    requester: str
    provider: str | None
    verifier: str | None
    price: str
    audit_fee: str
    verdict: str | None
    settlement: str
    credits: list[CreditSummary]
    burned: str
    slashed: str
    partial_since: int | None
    discrepancies: int


def account_summaries(
    state: ChainState, accounts: list[str], market: str, discrepancies: list[Discrepancy]
) -> list[AccountSummary]:
    """A row for each of ``accounts`` (sorted as given), with the discrepancies that name it."""
    counts = Counter(item.account for item in discrepancies if item.account is not None)
    requesters = {job.requester for job in state.jobs.values()}
    challengers = {job.challenge.challenger for job in state.jobs.values() if job.challenge is not None}
    members = {member for job in state.jobs.values() if job.challenge is not None for member in job.challenge.members}
    rows = []
    for address in accounts:
        roles = [name for name, holds in (
            ("market", address == market),
            ("provider", (address, Role.PROVIDER) in state.stakes),
            ("verifier", (address, Role.VERIFIER) in state.stakes),
            ("requester", address in requesters),
            ("challenger", address in challengers),
            ("panel member", address in members),
            ("treasury", address == state.treasury),
            ("owner", address == state.owner),
        ) if holds]
        stakes = [
            StakeSummary(role.name.lower(), str(view.stake), str(view.locked), str(view.unbonding), str(view.slashed))
            for role in (Role.PROVIDER, Role.VERIFIER)
            if (view := state.stakes.get((address, role))) is not None
        ]
        earned = {kind.name.lower(): str(amount) for (account, kind), amount in sorted(state.earned.items())
                  if account == address and amount}
        rows.append(AccountSummary(address, roles, str(state.balances.get(address, 0)),
                                   str(state.credits.get(address, 0)), stakes, earned, counts[address]))
    return rows


def job_summaries(state: ChainState, discrepancies: list[Discrepancy]) -> list[JobSummary]:
    """A row for each job the replay saw, by id, with the discrepancies that name it."""
    counts = Counter(item.job_id for item in discrepancies if item.job_id is not None)
    return [
        JobSummary(
            job.job_id,
            job.state.name.lower(),
            job.requester,
            job.provider,
            job.verifier,
            str(job.price),
            str(job.audit_fee),
            job.verdict.name.lower() if job.verdict else None,
            settlement(job),
            [CreditSummary(credit.account, credit.kind.name.lower(), str(credit.amount)) for credit in job.credits],
            str(job.burned),
            str(sum(slash.amount for slash in job.slashes)),
            job.partial_since,
            counts[job.job_id],
        )
        for job in sorted(state.jobs.values(), key=lambda item: item.job_id)
    ]


def settlement(job: JobView) -> str:
    """How the job's escrow went, in words."""
    if job.state == JobState.CANCELLED:
        return "cancelled: price and audit fee refunded"
    if job.state in LIVE_STATES:
        return "escrowed (not settled)"
    by = "the panel's verdict" if job.overturned else "the verifier's verdict"
    if job.state == JobState.REJECTED:
        return f"rejected by {by}: price refunded, provider's collateral slashed"
    verdict = "inconclusive" if job.verdict == Verdict.INCONCLUSIVE else "pass"
    return f"paid on {by} ({verdict})"
