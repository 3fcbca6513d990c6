"""What the contract must have done for one settled job: its credits, burns and slashes, re-derived.

The auditor compares these with what the events say happened. The rules are the design's ("Money"
and "Challenges and panels" in docs/DESIGN.md): a pass or inconclusive pays the provider, the
treasury and the verifier; a fail refunds the price, pays the verifier and slashes the provider's
collateral (a reward to whoever proved the fault, the rest burned); a challenge upheld pays its bond
to the panel's majority, one overturned slashes the first verifier (the panel takes up to the bond,
the challenger its bond back and a reward, the rest burned) and refunds the audit fee, one undecided
(a tie, no vote) or dismissed (nobody eligible) returns the bond.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from marketplace.history import JobView
from marketplace.history.views import SlashCause
from marketplace.protocol import BPS, CreditKind, JobState, Role, Verdict

# Who called reclaimExpired or redrawVerifier is not in their events; the reward credit names it.
CALLER = "the caller"


@dataclass
class Settlement:
    """What the contract must have done for one job: credits (account, kind, amount), the total it
    burned, and slashes (account, role, from stake, from unbonding)."""

    credits: list[tuple[str, str, int]] = field(default_factory=list)
    burned: int = 0
    slashes: list[tuple[str, str, int, int]] = field(default_factory=list)


def expected_verdict(job: JobView) -> Verdict:
    """The verdict a settled job must have settled by: the drawn verifier's, unless a panel's
    majority contradicted it; FAIL when the provider let a reveal demand expire (no verdict)."""
    first = job.audit_verdict
    if first is None:
        return Verdict.FAIL
    challenge = job.challenge
    if challenge is None or challenge.dismissed:
        return first
    outcome, _ = challenge.tally()
    return first if outcome in (Verdict.NONE, first) else outcome


def expected_settlement(job: JobView) -> Settlement:
    """What the contract must have credited, burned and slashed for ``job``, from its terms, its
    events and the stakes and parameters in force when each penalty arose (``Penalty``).

    Raises ``ValueError`` when the fold never saw the network parameters a penalty depends on.
    """
    result = Settlement()
    challenge = job.challenge

    def credit(account: str | None, kind: CreditKind, amount: int) -> None:
        if amount:
            result.credits.append((account or "nobody", kind.name, amount))

    def reward(prover: str | None, amount: int, params: dict[str, Any]) -> None:
        paid = 0 if prover is None else amount * int(params["rewardBps"]) // BPS  # as the contract's _reward
        credit(prover, CreditKind.REWARD, paid)
        result.burned += amount - paid

    def pay_panel(amount: int) -> None:
        assert challenge is not None
        outcome, winners = challenge.tally()
        majority = [member for member in challenge.members if challenge.votes.get(member) == outcome]
        if not winners or not majority:
            return
        share = amount // winners
        remainder = amount - share * winners
        for member in majority:
            credit(member, CreditKind.PANEL_FEE, share + remainder)
            remainder = 0

    # A member holding several panel seats is slashed once a seat it left unvoted, one after the
    # other in the same transaction: each slash takes its share of what the previous ones left.
    taken: dict[tuple[str, str], tuple[int, int]] = {}
    for penalty in job.penalties:
        params = penalty.params
        if params is None:
            raise ValueError(f"network parameters unknown at the {penalty.cause.value} of {penalty.account}")
        if penalty.role == Role.PROVIDER:
            amount = job.terms_collateral
            from_stake = amount
        else:
            bps = params["verifierSlashBps"] if penalty.cause == SlashCause.OVERTURNED else params["noShowSlashBps"]
            before_stake, before_unbonding = taken.get((penalty.account, penalty.tx_hash), (0, 0))
            stake, unbonding = penalty.stake - before_stake, penalty.unbonding - before_unbonding
            amount = (stake + unbonding) * int(bps) // BPS
            from_stake = min(amount, stake)
            taken[(penalty.account, penalty.tx_hash)] = (before_stake + from_stake,
                                                         before_unbonding + amount - from_stake)
        if amount:
            result.slashes.append((penalty.account, penalty.role.name.lower(), from_stake, amount - from_stake))
        if penalty.cause in (SlashCause.EXPIRED_CLAIM, SlashCause.MISSED_VERDICT):
            caller = next(
                (c.account for c in job.credits if c.tx_hash == penalty.tx_hash and c.kind == CreditKind.REWARD),
                CALLER,
            )
            reward(caller, amount, params)
        elif penalty.cause == SlashCause.MISSED_VOTE:
            result.burned += amount
        elif penalty.cause == SlashCause.OVERTURNED:
            assert challenge is not None
            panel_pay = min(amount, challenge.bond)
            pay_panel(panel_pay)
            reward(challenge.challenger, amount - panel_pay, params)
        else:  # FAILED_AUDIT: whoever proved the fault takes the reward
            prover = challenge.challenger if challenge is not None and job.overturned else job.verifier
            reward(prover, amount, params)

    if job.state == JobState.CANCELLED:
        credit(job.requester, CreditKind.REFUND, job.escrow)
    elif job.state in (JobState.FINALIZED, JobState.REJECTED):
        if challenge is not None:
            outcome, _ = challenge.tally()
            if challenge.dismissed or outcome == Verdict.NONE or job.overturned:
                credit(challenge.challenger, CreditKind.BOND_REFUND, challenge.bond)
            else:
                pay_panel(challenge.bond)
        if job.verdict == Verdict.FAIL:
            credit(job.requester, CreditKind.REFUND, job.price)
        else:
            protocol_fee = job.bps_of_price("protocolFeeBps")
            credit(job.provider, CreditKind.PROVIDER_PAYMENT, job.price - protocol_fee)
            credit(job.settled_treasury or "the treasury", CreditKind.PROTOCOL_FEE, protocol_fee)
        if job.overturned:
            credit(job.requester, CreditKind.REFUND, job.audit_fee)
        else:
            credit(job.verifier, CreditKind.VERIFIER_FEE, job.audit_fee)
    return result
