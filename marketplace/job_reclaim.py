"""Reclaiming an expired claim, checked before anything is sent: a claimed job whose result deadline passed.

``reclaimExpired`` (``JobMarket.sol``) slashes the provider's collateral, credits ``rewardBps`` of it to the
caller, burns the rest and opens the job again. Anyone may call it; ``Client.reclaim`` asks the chain's views
the contract's questions first (claimed? deadline passed?) so that a refused reclaim costs no gas and says
why in words, and words a refusal that races the checks the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from web3.logs import DISCARD
from web3.types import TxReceipt

from marketplace.chain.market import JobMarket
from marketplace.errors import ContractError, WebiError
from marketplace.protocol import CreditKind, JobState, JobTerms


class ReclaimError(WebiError):
    """A reclaim the contract would refuse (or refused): the job is not claimed, or its claim has not expired."""


@dataclass(frozen=True)
class ReclaimInfo:
    """A reclaim just made: whose claim expired, what was slashed, what the caller was credited."""

    job_id: int
    provider: str
    slashed: int
    reward: int  # credited to the caller (``webi wallet balance``; withdrawn with the other credits)
    tx_hash: str

    def as_dict(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "provider": self.provider, "slashed": str(self.slashed),
                "reward": str(self.reward), "tx_hash": self.tx_hash}


@dataclass(frozen=True)
class Reclaimable:
    """What the checks read: the job's terms and the expired claim's provider and deadline."""

    job_id: int
    terms: JobTerms
    provider: str
    deadline: int

    def outcome(self, market: JobMarket, receipt: TxReceipt, caller: str) -> ReclaimInfo:
        """What the mined reclaim did, from its events: the collateral slashed and the caller's reward."""
        events = market.contract.events
        expired = events.ClaimExpired().process_receipt(receipt, errors=DISCARD)
        credited = events.Credited().process_receipt(receipt, errors=DISCARD)
        reward = sum(int(e["args"]["amount"]) for e in credited
                     if e["args"]["account"] == caller and int(e["args"]["kind"]) == CreditKind.REWARD)
        slashed = int(expired[0]["args"]["slashed"]) if expired else 0
        return ReclaimInfo(self.job_id, self.provider, slashed, reward, receipt["transactionHash"].to_0x_hex())

    def explain(self, error: ContractError) -> WebiError:
        """A clear message for the contract's refusals of this reclaim; other errors pass through."""
        if error.name == "WrongState":
            return ReclaimError(wrong_state(self.job_id, JobState(int(error.args_by_name.get("have", 0)))))
        if error.name == "SubmitDeadlineNotReached":
            return ReclaimError(not_expired(self.job_id, self.provider, self.deadline, None))
        return error


def check_reclaim(market: JobMarket, job_id: int) -> Reclaimable:
    """The job, when its claim can be reclaimed now; ``ReclaimError`` saying why not otherwise."""
    terms = market.terms_of(job_id)
    status = market.get_job(job_id)
    if status.state != JobState.CLAIMED:
        raise ReclaimError(wrong_state(job_id, status.state))
    now = market.client.timestamp()
    if now <= status.stamp:
        raise ReclaimError(not_expired(job_id, status.provider, status.stamp, now))
    return Reclaimable(job_id, terms, status.provider, status.stamp)


def wrong_state(job_id: int, state: JobState) -> str:
    words = {
        JobState.OPEN: "open: nobody holds a claim on it",
        JobState.SUBMITTED: "submitted: its provider delivered in time, there is no claim to reclaim",
        JobState.AUDITED: "audited: its provider delivered in time, there is no claim to reclaim",
        JobState.CHALLENGED: "challenged: its provider delivered in time, there is no claim to reclaim",
        JobState.FINALIZED: "finalized: it is settled",
        JobState.REJECTED: "rejected: it is settled",
        JobState.CANCELLED: "cancelled: it is settled",
    }
    return f"job {job_id} is {words.get(state, 'not claimed')}; only an expired claim can be reclaimed"


def not_expired(job_id: int, provider: str, deadline: int, now: int | None) -> str:
    when = datetime.fromtimestamp(deadline, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    left = f" (in {max(deadline - now, 0) // 60} min {max(deadline - now, 0) % 60} s)" if now is not None else ""
    return (f"job {job_id}: the claim of {provider} runs until {when}{left}; it can be reclaimed once that has "
            "passed on the chain's clock")


__all__ = ["ReclaimError", "ReclaimInfo", "Reclaimable", "check_reclaim"]
