"""The JobMarket protocol in Python: states, transitions, value types and audit derivation.

This module mirrors ``contracts/src/JobMarket.sol``; the contract is the source of truth and the
tests check that both agree. Daemons use the pure functions here to learn, from chain data
alone, whether a job is audited, by whom and on which tasks, without trusting any server.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from eth_abi.abi import encode
from eth_utils.crypto import keccak

BPS = 10_000
SEED_HORIZON = 256
MAX_SAMPLE_TASKS = 64
MAX_VERIFIER_PROBES = 8
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"


class JobState(IntEnum):
    """A job's state; values match the Solidity enum."""

    NONE = 0
    OPEN = 1
    CLAIMED = 2
    SUBMITTED = 3
    FINALIZED = 4
    CANCELLED = 5
    REJECTED = 6


class Role(IntEnum):
    PROVIDER = 0
    VERIFIER = 1


class CreditKind(IntEnum):
    """Why a balance was credited (the ``Credited`` ledger event)."""

    PROVIDER_PAYMENT = 0
    VERIFIER_FEE = 1
    PROTOCOL_FEE = 2
    REFUND = 3
    SLASH_COMPENSATION = 4


# Every transition the contract allows, with the function that makes it.
TRANSITIONS: dict[tuple[JobState, JobState], str] = {
    (JobState.NONE, JobState.OPEN): "postJob",
    (JobState.OPEN, JobState.CANCELLED): "cancelJob",
    (JobState.OPEN, JobState.CLAIMED): "claimJob",
    (JobState.CLAIMED, JobState.OPEN): "reclaimExpired",
    (JobState.CLAIMED, JobState.SUBMITTED): "submitResult",
    (JobState.SUBMITTED, JobState.FINALIZED): "finalize or submitVerdict(passed)",
    (JobState.SUBMITTED, JobState.REJECTED): "submitVerdict(failed)",
}

TERMINAL_STATES = frozenset({JobState.FINALIZED, JobState.CANCELLED, JobState.REJECTED})
LIVE_STATES = frozenset({JobState.OPEN, JobState.CLAIMED, JobState.SUBMITTED})


def is_allowed(before: JobState, after: JobState) -> bool:
    """Whether the contract can move a job from ``before`` to ``after`` in one call."""
    return (before, after) in TRANSITIONS


@dataclass(frozen=True)
class JobRequest:
    """What a requester posts; mirrors ``IJobMarket.JobRequest``. Fixed for the job's life."""

    spec_cid: str
    num_tasks: int
    price: int
    claim_by: int
    exec_window: int
    sample_rate_bps: int
    sample_tasks: int

    def as_tuple(self) -> tuple[Any, ...]:
        return (
            self.spec_cid,
            self.num_tasks,
            self.price,
            self.claim_by,
            self.exec_window,
            self.sample_rate_bps,
            self.sample_tasks,
        )


@dataclass(frozen=True)
class JobTerms:
    """A job's terms as committed at posting (``IJobMarket.JobTerms``); only their hash is stored.

    Every call that needs them takes them back; they come from the ``JobPosted`` event.
    """

    requester: str
    price: int
    num_tasks: int
    claim_by: int
    exec_window: int
    sample_rate_bps: int
    sample_tasks: int
    protocol_fee_bps: int
    verifier_fee_bps: int
    collateral_bps: int
    audit_window: int

    def as_tuple(self) -> tuple[Any, ...]:
        return (self.requester, self.price, self.num_tasks, self.claim_by, self.exec_window, self.sample_rate_bps,
                self.sample_tasks, self.protocol_fee_bps, self.verifier_fee_bps, self.collateral_bps,
                self.audit_window)

    @classmethod
    def from_event(cls, args: Any) -> JobTerms:
        """From the decoded ``terms`` argument of a ``JobPosted`` event."""
        return cls(args["requester"], args["price"], args["numTasks"], args["claimBy"], args["execWindow"],
                   args["sampleRateBps"], args["sampleTasks"], args["protocolFeeBps"], args["verifierFeeBps"],
                   args["collateralBps"], args["auditWindow"])

    def hash(self) -> bytes:
        """``keccak256(abi.encode(terms))``, the value the contract stores."""
        types = ["address", "uint96", "uint32", "uint40", "uint24", "uint16", "uint16", "uint16", "uint16", "uint16",
                 "uint32"]
        return keccak(encode(["(" + ",".join(types) + ")"], [self.as_tuple()]))

    @property
    def collateral(self) -> int:
        return self.price * self.collateral_bps // BPS

    def split(self, audited: bool) -> Split:
        """How a settled job's price is divided; the provider takes the rounding remainder."""
        protocol_fee = self.price * self.protocol_fee_bps // BPS
        verifier_fee = self.price * self.verifier_fee_bps // BPS if audited else 0
        return Split(provider=self.price - protocol_fee - verifier_fee, verifier=verifier_fee, protocol=protocol_fee)


@dataclass(frozen=True)
class JobStatus:
    """A job's mutable state (``IJobMarket.JobStatus``) and its stored terms hash."""

    state: JobState
    provider: str
    stamp: int
    seed_block: int
    verifier_count: int
    terms_hash: bytes

    @classmethod
    def from_call(cls, raw: tuple[Any, ...]) -> JobStatus:
        (state, provider, stamp, seed_block, verifier_count), terms_hash = raw
        return cls(JobState(state), provider, stamp, seed_block, verifier_count, bytes(terms_hash))


@dataclass(frozen=True)
class Terms:
    """Protocol terms that jobs posted from now on commit to."""

    protocol_fee_bps: int
    verifier_fee_bps: int
    collateral_bps: int
    audit_window: int

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.protocol_fee_bps, self.verifier_fee_bps, self.collateral_bps, self.audit_window)


@dataclass(frozen=True)
class Split:
    provider: int
    verifier: int
    protocol: int


@dataclass(frozen=True)
class Params:
    """Network-wide parameters that do not bind running jobs."""

    min_provider_stake: int
    min_verifier_stake: int
    unstake_cooldown: int
    min_sample_rate_bps: int
    max_sample_rate_bps: int

    def as_tuple(self) -> tuple[int, int, int, int, int]:
        return (self.min_provider_stake, self.min_verifier_stake, self.unstake_cooldown, self.min_sample_rate_bps,
                self.max_sample_rate_bps)


@dataclass(frozen=True)
class Stake:
    stake: int
    locked: int
    unlock_at: int
    entry: int
    unbonding: int

    @property
    def free(self) -> int:
        return self.stake - self.locked


@dataclass(frozen=True)
class Audit:
    audited: bool
    verifier: str
    seed: bytes


def audit_seed(seed_block_hash: bytes, job_id: int) -> bytes:
    """``keccak256(abi.encode(blockhash(seedBlock), jobId))``, as the contract derives it."""
    return keccak(encode(["bytes32", "uint256"], [seed_block_hash, job_id]))


def is_sampled(seed: bytes, sample_rate_bps: int) -> bool:
    """Whether the seed falls inside the job's audit rate (before verifier eligibility)."""
    return int.from_bytes(seed, "big") % BPS < sample_rate_bps


def verifier_start(seed: bytes, verifier_count: int) -> int:
    """The first verifier entry the contract probes for a sampled job."""
    return int.from_bytes(keccak(encode(["bytes32", "uint256"], [seed, 0])), "big") % verifier_count


def sampled_task_indices(seed: bytes, num_tasks: int, sample_tasks: int) -> list[int]:
    """The task indices an audit re-executes, drawn exactly as ``JobMarket.sampledTasks``."""
    want = min(sample_tasks, num_tasks)
    if want == num_tasks:
        return list(range(num_tasks))
    found: list[int] = []
    for draw in range(1, 4 * want + 1):
        if len(found) == want:
            break
        candidate = int.from_bytes(keccak(encode(["bytes32", "uint256"], [seed, draw])), "big") % num_tasks
        if candidate not in found:
            found.append(candidate)
    return found


@dataclass(frozen=True)
class VerifierEntry:
    """An entry of the contract's append-only verifier list."""

    account: str
    exit_at: int


def audit_assignment(seed: bytes, terms: JobTerms, status: JobStatus,
                     entries: Sequence[VerifierEntry]) -> Audit:
    """Whether a submitted job is audited and by whom, exactly as ``JobMarket._assignment``.

    ``entries`` is the verifier list (at least ``status.verifier_count`` long); entries added after
    the submission are never looked at, so a later list gives the same answer.
    """
    count = status.verifier_count
    if not is_sampled(seed, terms.sample_rate_bps) or count == 0:
        return Audit(False, ZERO_ADDRESS, seed)
    start = verifier_start(seed, count)
    for k in range(min(count, MAX_VERIFIER_PROBES)):
        entry = entries[(start + k) % count]
        present = entry.exit_at == 0 or entry.exit_at > status.stamp
        if present and entry.account not in (status.provider, terms.requester):
            return Audit(True, entry.account, seed)
    return Audit(False, ZERO_ADDRESS, seed)
