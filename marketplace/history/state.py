# ruff: noqa: N802  (handlers are named _on_<contract>_<Event>, after the Solidity events)
"""What the event log says the protocol holds: jobs, stakes, credits, fees, token balances.

``ChainState.apply`` folds one decoded event at a time, mirroring ``JobMarket.sol`` (every value
movement there emits an event, by design). The indexer keeps one of these in memory and writes it
to SQL; the auditor builds one from the chain alone and compares it with the contracts' views.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from marketplace.history.events import ChainEvent
from marketplace.protocol import BPS, LIVE_STATES, ZERO_ADDRESS, CreditKind, JobState, Role


@dataclass
class JobView:
    """A job as its events describe it."""

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
    verifier: str | None = None
    passed: bool | None = None
    evidence_cid: str | None = None
    updated_block: int = 0
    expirations: int = 0
    credits: list[tuple[str, CreditKind, int]] = field(default_factory=list)

    @property
    def price(self) -> int:
        return int(self.terms["price"])

    @property
    def num_tasks(self) -> int:
        return int(self.terms["numTasks"])

    def bps_of_price(self, name: str) -> int:
        return self.price * int(self.terms[name]) // BPS


@dataclass
class StakeView:
    account: str
    role: Role
    stake: int = 0
    locked: int = 0
    unbonding: int = 0
    unlock_at: int = 0
    metadata_cid: str = ""
    registered_block: int = 0


@dataclass
class ChainState:
    """The fold of every WEBI event so far. ``last`` is the (block, log index) of the last one applied."""

    jobs: dict[int, JobView] = field(default_factory=dict)
    stakes: dict[tuple[str, Role], StakeView] = field(default_factory=dict)
    credits: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    earned: dict[tuple[str, CreditKind], int] = field(default_factory=lambda: defaultdict(int))
    protocol_fees: int = 0
    balances: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    treasury: str | None = None
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
        """WEBI held for jobs not yet settled: every live job's price."""
        return sum(job.price for job in self.jobs.values() if job.state in LIVE_STATES)

    def stake(self, account: str, role: Role) -> StakeView:
        return self.stakes.setdefault((account, role), StakeView(account, role))

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

    def _on_market_StakeAdded(self, _: ChainEvent, args: dict[str, Any]) -> None:
        self.stake(args["account"], Role(args["role"])).stake += int(args["amount"])

    def _on_market_UnstakeRequested(self, _: ChainEvent, args: dict[str, Any]) -> None:
        view = self.stake(args["account"], Role(args["role"]))
        view.stake -= int(args["amount"])
        view.unbonding += int(args["amount"])
        view.unlock_at = int(args["unlockAt"])

    def _on_market_StakeWithdrawn(self, _: ChainEvent, args: dict[str, Any]) -> None:
        self.stake(args["account"], Role(args["role"])).unbonding -= int(args["amount"])

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
        )

    def _job(self, event: ChainEvent, state: JobState | None = None) -> JobView:
        job = self.jobs[int(event.args["jobId"])]
        job.updated_block = event.block_number
        if state is not None:
            job.state = state
        return job

    def _on_market_JobCancelled(self, event: ChainEvent, _: dict[str, Any]) -> None:
        self._job(event, JobState.CANCELLED)

    def _on_market_JobClaimed(self, event: ChainEvent, args: dict[str, Any]) -> None:
        job = self._job(event, JobState.CLAIMED)
        job.provider, job.collateral, job.deadline = args["provider"], int(args["collateral"]), int(args["deadline"])
        self.stake(job.provider, Role.PROVIDER).locked += job.collateral

    def _on_market_ClaimExpired(self, event: ChainEvent, args: dict[str, Any]) -> None:
        job = self._job(event, JobState.OPEN)
        view = self.stake(args["provider"], Role.PROVIDER)
        view.locked -= job.collateral
        view.stake -= int(args["slashed"])
        job.expirations += 1
        job.provider, job.collateral, job.deadline = None, 0, None

    def _on_market_ResultSubmitted(self, event: ChainEvent, args: dict[str, Any]) -> None:
        job = self._job(event, JobState.SUBMITTED)
        job.output_cid, job.result_root, job.seed_block = (
            str(args["outputCid"]),
            args["resultRoot"],
            int(args["seedBlock"]),
        )

    def _on_market_SeedLocked(self, event: ChainEvent, _: dict[str, Any]) -> None:
        self._job(event)

    def _on_market_VerdictSubmitted(self, event: ChainEvent, args: dict[str, Any]) -> None:
        passed = bool(args["passed"])
        job = self._job(event, JobState.FINALIZED if passed else JobState.REJECTED)
        job.verifier, job.passed, job.evidence_cid = args["verifier"], passed, str(args["evidenceCid"])
        assert job.provider is not None
        view = self.stake(job.provider, Role.PROVIDER)
        view.locked -= job.collateral
        if not passed:
            view.stake -= job.collateral

    def _on_market_JobFinalized(self, event: ChainEvent, _: dict[str, Any]) -> None:
        job = self._job(event, JobState.FINALIZED)
        assert job.provider is not None
        self.stake(job.provider, Role.PROVIDER).locked -= job.collateral

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
            job.credits.append((account, kind, amount))

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
