"""What a requester reads about a job before and after posting it: the quote, the state, a challenge.

Plain frozen dataclasses built by ``marketplace.Client`` from the chain's views; the CLI renders
them and ``as_dict`` gives their JSON form (amounts as decimal strings: they exceed 2^53).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from marketplace.errors import ConfigError
from marketplace.protocol import JobState, Terms, Verdict


class RequestRefusedError(ConfigError):
    """The contract would refuse this job as asked (a price over a cap, terms past the requester's bounds);
    nothing was uploaded or spent."""


@dataclass(frozen=True)
class JobQuote:
    """What posting a job costs under the terms in force, and the bounds the request holds them to."""

    num_tasks: int
    sample_tasks: int  # tasks the audit re-executes: min(k, N)
    price: int
    audit_fee: int
    terms: Terms
    max_protocol_fee_bps: int
    max_verifier_fee_bps: int
    min_collateral_bps: int

    @property
    def escrow(self) -> int:
        """What the post pulls from the requester: the price plus the audit fee."""
        return self.price + self.audit_fee


@dataclass(frozen=True)
class JobInfo:
    """A job as the chain sees it now."""

    job_id: int
    state: JobState
    requester: str
    provider: str | None
    spec_cid: str
    price: int
    num_tasks: int
    output_cid: str | None
    result_root: str | None
    audit_fee: int = 0
    verifier: str | None = None  # the drawn verifier, once drawn
    verdict: Verdict = Verdict.NONE  # provisional while audited, final once settled
    deadline: int | None = None  # the verdict's deadline once drawn; the end of the challenge window once audited
    reveal_by: int | None = None  # a pending reveal demand's deadline
    challenger: str | None = None  # once challenged
    bond: int = 0
    panel_seats: int = 0  # once the panel is drawn
    panel_committed: int = 0
    panel_revealed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "state": self.state.name.lower(),
            "requester": self.requester,
            "provider": self.provider,
            "spec_cid": self.spec_cid,
            "price": str(self.price),
            "audit_fee": str(self.audit_fee),
            "num_tasks": self.num_tasks,
            "output_cid": self.output_cid,
            "result_root": self.result_root,
            "verifier": self.verifier,
            "verdict": None if self.verdict == Verdict.NONE else self.verdict.name.lower(),
            "deadline": self.deadline,
            "reveal_by": self.reveal_by,
            "challenger": self.challenger,
            "bond": str(self.bond),
            "panel": {"seats": self.panel_seats, "committed": self.panel_committed, "revealed": self.panel_revealed},
        }


@dataclass(frozen=True)
class ChallengeInfo:
    """A challenge just made: the verdict it disputes, the bond pulled, and the panel's timeline."""

    job_id: int
    challenger: str
    verdict: Verdict
    bond: int
    panel_seed_block: int  # anyone's drawPanel works once this block exists
    vote_window: int  # seconds from the draw to commit votes, then as long again to reveal them
    approved: bool  # whether an approval transaction was needed for the bond
    tx_hash: str

    def as_dict(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "challenger": self.challenger, "verdict": self.verdict.name.lower(),
                "bond": str(self.bond), "panel_seed_block": self.panel_seed_block, "vote_window": self.vote_window,
                "approved": self.approved, "tx_hash": self.tx_hash}


__all__ = ["ChallengeInfo", "JobInfo", "JobQuote", "RequestRefusedError"]
