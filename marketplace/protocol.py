"""The JobMarket protocol in Python: states, transitions, value types, and the audit derivations.

This module mirrors ``contracts/src`` (``IJobMarket`` and the contracts that implement it); the
contract is the source of truth and the tests check that both agree. Daemons use the pure
functions here to learn, from chain data alone, which tasks an audit re-executes and what a vote
commits to, without trusting any server.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from eth_abi.abi import encode
from eth_utils.crypto import keccak

from marketplace.job_limits import MAX_SAMPLE_TASKS as MAX_SAMPLE_TASKS
from marketplace.results import MerkleTree

BPS = 10_000
SEED_HORIZON = 256
# The work an audit re-runs is worth at most the price cap over this (``JobMarket.SAMPLE_VALUE_DIVISOR``).
SAMPLE_VALUE_DIVISOR = 80
PANEL_SIZE = 3
# Verifier weights change only in the first SYNC_BLOCKS blocks of every EPOCH_BLOCKS (see
# ``JobMarket.syncVerifier``); a draw never spans such a block.
EPOCH_BLOCKS = 32
SYNC_BLOCKS = 4
MAX_FEE_BPS = 2_000
MAX_VERIFIER_FEE_BPS = 50_000
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
ZERO_HASH = b"\x00" * 32


class JobState(IntEnum):
    """A job's state; values match the Solidity enum."""

    NONE = 0
    OPEN = 1
    CLAIMED = 2
    SUBMITTED = 3
    FINALIZED = 4
    CANCELLED = 5
    REJECTED = 6
    AUDITED = 7
    CHALLENGED = 8


class Role(IntEnum):
    PROVIDER = 0
    VERIFIER = 1


class Verdict(IntEnum):
    """An audit's verdict; values match the Solidity enum."""

    NONE = 0
    PASS = 1
    FAIL = 2
    INCONCLUSIVE = 3

    @classmethod
    def of(cls, value: Verdict | bool) -> Verdict:
        """A verdict from a bool (passed or not), for callers that only know pass and fail."""
        if isinstance(value, Verdict):
            return value
        return cls.PASS if value else cls.FAIL


class Confidentiality(IntEnum):
    """How a job's content is protected and its key released; values match the Solidity enum.

    ``DIRECTED``: the spec wraps the key to each allowlisted provider. ``OPEN``: the requester
    releases it on-chain (``releaseKey``) to whoever claims, within the job's key window.
    """

    PUBLIC = 0
    DIRECTED = 1
    OPEN = 2


MIN_KEY_WINDOW = 60
MAX_KEY_WINDOW = 86_400
MAX_WRAPPED_KEY = 1024


class CreditKind(IntEnum):
    """Why a balance was credited (the ``Credited`` ledger event)."""

    PROVIDER_PAYMENT = 0
    VERIFIER_FEE = 1
    PROTOCOL_FEE = 2
    REFUND = 3
    REWARD = 4
    PANEL_FEE = 5
    BOND_REFUND = 6


# Every transition the contract allows, with the function that makes it.
TRANSITIONS: dict[tuple[JobState, JobState], str] = {
    (JobState.NONE, JobState.OPEN): "postJob",
    (JobState.OPEN, JobState.CANCELLED): "cancelJob",
    (JobState.OPEN, JobState.CLAIMED): "claimJob",
    (JobState.CLAIMED, JobState.OPEN): "reclaimExpired or releaseClaim (an Open job's key)",
    (JobState.CLAIMED, JobState.SUBMITTED): "submitResult",
    (JobState.SUBMITTED, JobState.AUDITED): "submitVerdict",
    (JobState.SUBMITTED, JobState.REJECTED): "failUnrevealed or redrawVerifier (unanswered reveal demand)",
    (JobState.AUDITED, JobState.FINALIZED): "finalize (pass or inconclusive)",
    (JobState.AUDITED, JobState.REJECTED): "finalize (fail)",
    (JobState.AUDITED, JobState.CHALLENGED): "challenge",
    (JobState.CHALLENGED, JobState.FINALIZED): "resolveChallenge or drawPanel (nobody eligible)",
    (JobState.CHALLENGED, JobState.REJECTED): "resolveChallenge or drawPanel (nobody eligible)",
}

TERMINAL_STATES = frozenset({JobState.FINALIZED, JobState.CANCELLED, JobState.REJECTED})
LIVE_STATES = frozenset({JobState.OPEN, JobState.CLAIMED, JobState.SUBMITTED, JobState.AUDITED,
                         JobState.CHALLENGED})


def is_allowed(before: JobState, after: JobState) -> bool:
    """Whether the contract can move a job from ``before`` to ``after`` in one call."""
    return (before, after) in TRANSITIONS


@dataclass(frozen=True)
class JobRequest:
    """What a requester posts; mirrors ``IJobMarket.JobRequest``. Fixed for the job's life.

    The gating fields limit who may claim; the bounds make the post revert if the protocol terms in
    force are worse than the requester accepted (the SDK sets them to the terms it read).
    """

    spec_cid: str
    num_tasks: int
    price: int
    claim_by: int
    exec_window: int
    sample_tasks: int
    min_provider_stake: int = 0
    allowlist_root: bytes = ZERO_HASH
    max_protocol_fee_bps: int = MAX_FEE_BPS
    max_verifier_fee_bps: int = MAX_VERIFIER_FEE_BPS
    min_collateral_bps: int = 0
    confidentiality: Confidentiality = field(default_factory=lambda: Confidentiality.PUBLIC)
    key_window: int = 0

    def as_tuple(self) -> tuple[Any, ...]:
        return (
            self.spec_cid,
            self.num_tasks,
            self.price,
            self.claim_by,
            self.exec_window,
            self.sample_tasks,
            self.min_provider_stake,
            self.allowlist_root,
            self.max_protocol_fee_bps,
            self.max_verifier_fee_bps,
            self.min_collateral_bps,
            int(self.confidentiality),
            self.key_window,
        )

    def escrow(self, terms: Terms) -> int:
        """What posting under ``terms`` pulls from the requester: the price plus the audit fee."""
        return self.price + audit_fee(self.price, self.num_tasks, self.sample_tasks, terms.verifier_fee_bps)


_TERMS_TYPES = ["address", "uint96", "uint32", "uint40", "uint24", "uint16", "uint16", "uint16", "uint16", "uint32",
                "uint32", "uint96", "uint96", "bytes32", "uint8", "uint32"]


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
    sample_tasks: int
    protocol_fee_bps: int
    verifier_fee_bps: int
    collateral_bps: int
    audit_window: int
    challenge_window: int
    audit_fee: int
    min_provider_stake: int
    allowlist_root: bytes
    confidentiality: Confidentiality = field(default_factory=lambda: Confidentiality.PUBLIC)
    key_window: int = 0

    def as_tuple(self) -> tuple[Any, ...]:
        return (self.requester, self.price, self.num_tasks, self.claim_by, self.exec_window, self.sample_tasks,
                self.protocol_fee_bps, self.verifier_fee_bps, self.collateral_bps, self.audit_window,
                self.challenge_window, self.audit_fee, self.min_provider_stake, self.allowlist_root,
                int(self.confidentiality), self.key_window)

    @property
    def confidential(self) -> bool:
        return self.confidentiality != Confidentiality.PUBLIC

    @classmethod
    def from_event(cls, args: Any) -> JobTerms:
        """From the decoded ``terms`` argument of a ``JobPosted`` event."""
        return cls(args["requester"], args["price"], args["numTasks"], args["claimBy"], args["execWindow"],
                   args["sampleTasks"], args["protocolFeeBps"], args["verifierFeeBps"], args["collateralBps"],
                   args["auditWindow"], args["challengeWindow"], args["auditFee"], args["minProviderStake"],
                   bytes(args["allowlistRoot"]), Confidentiality(args["confidentiality"]), args["keyWindow"])

    def hash(self) -> bytes:
        """``keccak256(abi.encode(terms))``, the value the contract stores."""
        return keccak(encode(["(" + ",".join(_TERMS_TYPES) + ")"], [self.as_tuple()]))

    @property
    def collateral(self) -> int:
        return self.price * self.collateral_bps // BPS

    @property
    def escrow(self) -> int:
        return self.price + self.audit_fee

    @property
    def bond(self) -> int:
        """What a challenge of this job's verdict pulls from the challenger."""
        return PANEL_SIZE * self.audit_fee

    def split(self) -> Split:
        """How a paid job's escrow is divided (pass or inconclusive, verifier not contradicted)."""
        protocol_fee = self.price * self.protocol_fee_bps // BPS
        return Split(provider=self.price - protocol_fee, verifier=self.audit_fee, protocol=protocol_fee)


@dataclass(frozen=True)
class JobStatus:
    """A job's mutable state (``IJobMarket.JobStatus``) and its stored terms hash."""

    state: JobState
    provider: str
    stamp: int
    seed_block: int
    terms_hash: bytes

    @classmethod
    def from_call(cls, raw: tuple[Any, ...]) -> JobStatus:
        (state, provider, stamp, seed_block), terms_hash = raw
        return cls(JobState(state), provider, stamp, seed_block, bytes(terms_hash))


@dataclass(frozen=True)
class Audit:
    """A job's audit record (``IJobMarket.Audit``).

    ``secret`` is the drawn verifier's commitment until it reveals its secret; from then on
    (``revealed``) it is the sample seed that picks the re-executed tasks.
    """

    verifier: str
    deadline: int
    verdict: Verdict
    draws: int
    reveal_by: int
    seed: bytes
    secret: bytes

    @property
    def drawn(self) -> bool:
        return self.verifier != ZERO_ADDRESS

    @property
    def revealed(self) -> bool:
        """Whether ``secret`` holds the sample seed (a reveal demand or the verdict opened it)."""
        return self.reveal_by != 0 or self.verdict is not Verdict.NONE

    @property
    def reveal_pending(self) -> bool:
        """A reveal demand the provider has not answered yet."""
        return self.reveal_by > 1

    @classmethod
    def from_call(cls, raw: tuple[Any, ...]) -> Audit:
        verifier, deadline, verdict, draws, reveal_by, seed, secret = raw
        return cls(str(verifier), int(deadline), Verdict(verdict), int(draws), int(reveal_by), bytes(seed),
                   bytes(secret))


@dataclass(frozen=True)
class Panel:
    """A job's challenge and panel (``IJobMarket.Panel``); ``members[:size]`` are drawn."""

    challenger: str
    bond: int
    seed_block: int
    commit_by: int
    reveal_by: int
    size: int
    members: tuple[str, ...]
    commits: tuple[bytes, ...]
    votes: tuple[Verdict, ...]

    @classmethod
    def from_call(cls, raw: tuple[Any, ...]) -> Panel:
        challenger, bond, seed_block, commit_by, reveal_by, size, members, commits, votes = raw
        return cls(str(challenger), int(bond), int(seed_block), int(commit_by), int(reveal_by), int(size),
                   tuple(str(m) for m in members[:size]), tuple(bytes(c) for c in commits[:size]),
                   tuple(Verdict(v) for v in votes[:size]))


@dataclass(frozen=True)
class Terms:
    """Protocol terms that jobs posted from now on commit to."""

    protocol_fee_bps: int
    verifier_fee_bps: int
    collateral_bps: int
    audit_window: int
    challenge_window: int

    def as_tuple(self) -> tuple[int, int, int, int, int]:
        return (self.protocol_fee_bps, self.verifier_fee_bps, self.collateral_bps, self.audit_window,
                self.challenge_window)


@dataclass(frozen=True)
class Split:
    provider: int
    verifier: int
    protocol: int


@dataclass(frozen=True)
class Params:
    """Network-wide parameters (``IJobMarket.Params``)."""

    min_provider_stake: int
    min_verifier_stake: int
    min_task_price: int
    unstake_cooldown: int
    reveal_window: int
    vote_window: int
    verifier_slash_bps: int
    no_show_slash_bps: int
    reward_bps: int

    def as_tuple(self) -> tuple[int, ...]:
        return (self.min_provider_stake, self.min_verifier_stake, self.min_task_price, self.unstake_cooldown,
                self.reveal_window, self.vote_window, self.verifier_slash_bps, self.no_show_slash_bps,
                self.reward_bps)

    @property
    def max_price(self) -> int:
        """The most a job may cost (``PriceAboveMaximum``): the least slash a drawn verifier can suffer."""
        return self.min_verifier_stake * self.verifier_slash_bps // BPS

    @property
    def max_sample_value(self) -> int:
        """The most the sampled work of a job may be worth (``SampleValueAboveMaximum``)."""
        return self.max_price // SAMPLE_VALUE_DIVISOR

    def check_request(self, price: int, num_tasks: int, sample_tasks: int) -> None:
        """``ValueError`` naming the bound when ``postJob`` would refuse a job's price for these terms."""
        if num_tasks < 1:
            raise ValueError("a job needs at least one task")
        if price < num_tasks * self.min_task_price:
            raise ValueError(f"a price of {price} wei is below the minimum of {num_tasks * self.min_task_price} wei "
                             f"({self.min_task_price} wei a task)")
        if price > self.max_price:
            raise ValueError(f"a price of {price} wei is above the cap of {self.max_price} wei a job: split the "
                             "inputs into several jobs")
        sampled = min(sample_tasks, num_tasks)
        if price * sampled * SAMPLE_VALUE_DIVISOR > self.max_price * num_tasks:
            raise ValueError(f"the {sampled} sampled tasks are worth {price * sampled // num_tasks} wei, above the "
                             f"cap of {self.max_sample_value} wei (a lazy audit must not save more than it risks): "
                             "lower the price or sample_tasks, or post more tasks a job")


@dataclass(frozen=True)
class Stake:
    stake: int
    locked: int
    unlock_at: int
    duties: int
    unbonding: int

    @property
    def free(self) -> int:
        return self.stake - self.locked


def in_sync_phase(block_number: int) -> bool:
    """Whether verifier weights may change in block ``block_number``."""
    return block_number % EPOCH_BLOCKS < SYNC_BLOCKS


def next_sync_block(block_number: int) -> int:
    """The first block at or after ``block_number`` in which verifier weights may change."""
    if in_sync_phase(block_number):
        return block_number
    return block_number - block_number % EPOCH_BLOCKS + EPOCH_BLOCKS


def audit_fee(price: int, num_tasks: int, sample_tasks: int, verifier_fee_bps: int) -> int:
    """The audit fee a job escrows on top of its price, exactly as ``JobMarket.auditFee``."""
    sampled = min(sample_tasks, num_tasks)
    return price * sampled * verifier_fee_bps // (num_tasks * BPS)


def draw_seed(block_hash: bytes, job_id: int, draws: int) -> bytes:
    """``keccak256(abi.encode(blockhash(seedBlock), jobId, draws))``: the seed of a verifier draw."""
    return keccak(encode(["bytes32", "uint256", "uint256"], [block_hash, job_id, draws]))


def secret_hash(secret: bytes) -> bytes:
    """The commitment a verifier publishes for ``secret``: ``keccak256(abi.encode(secret))``."""
    return keccak(encode(["bytes32"], [secret]))


def sample_seed(seed: bytes, secret: bytes) -> bytes:
    """``keccak256(abi.encode(seed, secret))``: the seed that picks an audit's tasks."""
    return keccak(encode(["bytes32", "bytes32"], [seed, secret]))


def audit_secret(key: bytes, chain_id: int, market: str, index: int) -> bytes:
    """A verifier's ``index``-th audit secret, derived from its account key with HMAC-SHA256.

    Deterministic, so a restarted daemon finds every secret it committed to; unpredictable to
    anyone without the key. The chain and market are mixed in so that no secret is reused across
    deployments.
    """
    message = b"webi-audit-secret" + chain_id.to_bytes(32, "big") + bytes.fromhex(market.removeprefix("0x")) \
        + index.to_bytes(32, "big")
    return hmac.new(key, message, hashlib.sha256).digest()


def find_audit_secret(key: bytes, chain_id: int, market: str, commitment: bytes, *, limit: int = 100_000) -> bytes:
    """The secret behind ``commitment`` among the first ``limit`` derived from ``key``."""
    for index in range(limit):
        secret = audit_secret(key, chain_id, market, index)
        if secret_hash(secret) == commitment:
            return secret
    raise LookupError(f"no audit secret of this key hashes to 0x{commitment.hex()}")


def sampled_task_indices(sample_seed_: bytes, num_tasks: int, sample_tasks: int) -> list[int]:
    """The task indices an audit re-executes, drawn exactly as ``JobMarket.sampleOf``."""
    want = min(sample_tasks, num_tasks)
    if want == num_tasks:
        return list(range(num_tasks))
    found: list[int] = []
    for draw in range(1, 4 * want + 1):
        if len(found) == want:
            break
        candidate = int.from_bytes(keccak(encode(["bytes32", "uint256"], [sample_seed_, draw])), "big") % num_tasks
        if candidate not in found:
            found.append(candidate)
    return found


def vote_commitment(job_id: int, member: str, vote: Verdict, salt: bytes) -> bytes:
    """What a panel member commits to: ``keccak256(abi.encode(jobId, member, vote, salt))``."""
    return keccak(encode(["uint256", "address", "uint8", "bytes32"], [job_id, member, int(vote), salt]))


def allowlist_leaf(account: str) -> bytes:
    """``keccak256(bytes.concat(keccak256(abi.encode(account))))``: OpenZeppelin's double-hashed leaf."""
    return keccak(keccak(encode(["address"], [account])))


@dataclass(frozen=True)
class Allowlist:
    """The providers a requester lets claim a job, as an OpenZeppelin-compatible Merkle tree.

    The same sorted-pair tree as a job's result commitment (``results.MerkleTree``), over leaves
    sorted so that the root does not depend on the order the accounts are given in.
    """

    accounts: tuple[str, ...]
    _tree: MerkleTree = field(init=False, repr=False, compare=False)
    _leaves: list[bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.accounts:
            raise ValueError("an allowlist names at least one provider")
        leaves = sorted(allowlist_leaf(a) for a in self.accounts)
        object.__setattr__(self, "_leaves", leaves)
        object.__setattr__(self, "_tree", MerkleTree.of_leaves(leaves))

    @property
    def root(self) -> bytes:
        return self._tree.root

    def proof(self, account: str) -> list[bytes]:
        """The proof that lets ``account`` claim; raises ``KeyError`` when it is not listed."""
        try:
            index = self._leaves.index(allowlist_leaf(account))
        except ValueError:
            raise KeyError(f"{account} is not in the allowlist") from None
        return self._tree.proof(index)
