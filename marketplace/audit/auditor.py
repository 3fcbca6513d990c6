"""The auditor: trusts nothing but the chain, and says exactly what disagrees.

It fetches every WEBI event from the token's creation block (or ``from_block``), folds them with
``ChainState`` and checks:

- every balance, credit and stake it rebuilt against ``balanceOf``, ``credits``, ``providerStake``
  and ``verifierStake``; the protocol fees against ``protocolFees``; the total supply against the
  sum of balances; the market's own token balance against escrow + stakes + credits + fees;
- every job's state against ``getJob``;
- every settlement's split (payment, fees, refund, slash) against the job's posted terms;
- optionally, an indexer database (``--db``): each job, stake, account and ledger row against the
  replay, which catches a wrong or forged row;
- optionally, ``reexecute`` random tasks of finalized jobs, through a re-executor the verifier
  package provides (the marketplace package runs no models itself).

Balance checks need the whole history: starting at a later block leaves them out, and the report
says so.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from marketplace.chain.client import ChainClient
from marketplace.chain.deployment import Protocol
from marketplace.history import ChainState, JobView, fetch_events
from marketplace.indexer.indexer import decoder_for, first_block
from marketplace.indexer.models import AccountRow, JobRow, LedgerRow, StakeRow
from marketplace.protocol import CreditKind, JobState, Role


@dataclass(frozen=True)
class Discrepancy:
    """One disagreement: what was checked, what the replay says, what the other side says."""

    check: str
    subject: str
    expected: str
    found: str

    def __str__(self) -> str:
        return f"{self.check} [{self.subject}]: expected {self.expected}, found {self.found}"


@dataclass(frozen=True)
class TaskVerdict:
    job_id: int
    index: int
    passed: bool
    reason: str


# (job, task indices) -> one verdict per task; provided by verifier.reexecute.
Reexecutor = Callable[[JobView, list[int]], list[TaskVerdict]]


@dataclass
class AuditReport:
    chain_id: int
    market: str
    token: str
    from_block: int
    to_block: int
    events: int
    jobs: int
    accounts: int
    checks: int = 0
    balance_checks: bool = True
    discrepancies: list[Discrepancy] = field(default_factory=list)
    reexecuted: list[TaskVerdict] = field(default_factory=list)
    totals: dict[str, str] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not self.discrepancies and all(verdict.passed for verdict in self.reexecuted)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["clean"] = self.clean
        return data


class Auditor:
    def __init__(
        self,
        protocol: Protocol,
        *,
        from_block: int | None = None,
        database: Engine | None = None,
        reexecutor: Reexecutor | None = None,
    ) -> None:
        self.protocol = protocol
        self.client: ChainClient = protocol.market.client
        genesis = first_block(self.client, protocol.deployment)
        self.from_block = genesis if from_block is None else from_block
        self.whole_history = self.from_block <= genesis
        self.database = database
        self.reexecutor = reexecutor

    def run(self, *, reexecute: int = 0, seed: int | None = None) -> AuditReport:
        to_block = int(self.client.w3.eth.block_number)
        state = ChainState()
        for event in fetch_events(self.client, decoder_for(self.protocol.deployment), self.from_block, to_block):
            state.apply(event)
        accounts = sorted(set(state.balances) | set(state.credits) | {account for account, _ in state.stakes})
        report = AuditReport(
            self.client.chain_id,
            self.protocol.market.address,
            self.protocol.token.address,
            self.from_block,
            to_block,
            state.events,
            len(state.jobs),
            len(accounts),
            balance_checks=self.whole_history,
        )
        check = _Checker(report, to_block)
        if self.whole_history:
            self._balances(state, accounts, check)
        self._jobs(state, check)
        if self.database is not None:
            self._database(state, check)
        if reexecute and self.reexecutor is not None:
            report.reexecuted = self._reexecute(state, reexecute, random.Random(seed))
        report.totals = {
            "escrow": str(state.escrow),
            "protocol_fees": str(state.protocol_fees),
            "credits": str(sum(state.credits.values())),
            "stakes": str(sum(view.stake + view.unbonding for view in state.stakes.values())),
            **{
                kind.name.lower(): str(sum(amount for (_, k), amount in state.earned.items() if k == kind))
                for kind in CreditKind
            },
        }
        return report

    # ───────────────────────────────────────────── checks

    def _balances(self, state: ChainState, accounts: list[str], check: _Checker) -> None:
        token, market = self.protocol.token, self.protocol.market
        block = check.block
        for account in accounts:
            check.equal(
                "token balance",
                account,
                state.balances.get(account, 0),
                int(self.client.call(token.contract.functions.balanceOf(account), block)),
            )
            check.equal(
                "withdrawable credits",
                account,
                state.credits.get(account, 0),
                int(self.client.call(market.contract.functions.credits(account), block)),
            )
        for (account, role), view in sorted(state.stakes.items()):
            function = (
                market.contract.functions.providerStake
                if role == Role.PROVIDER
                else market.contract.functions.verifierStake
            )
            stake, locked, _, _, unbonding = self.client.call(function(account), block)
            subject = f"{account} as {role.name.lower()}"
            check.equal("stake", subject, view.stake, int(stake))
            check.equal("locked collateral", subject, view.locked, int(locked))
            check.equal("unbonding stake", subject, view.unbonding, int(unbonding))
        check.equal(
            "protocol fees",
            market.address,
            state.protocol_fees,
            int(self.client.call(market.contract.functions.protocolFees(), block)),
        )
        check.equal(
            "total supply",
            token.address,
            sum(state.balances.values()),
            int(self.client.call(token.contract.functions.totalSupply(), block)),
        )
        held = (
            state.escrow
            + sum(view.stake + view.unbonding for view in state.stakes.values())
            + sum(state.credits.values())
            + state.protocol_fees
        )
        check.equal(
            "market holdings = escrow + stakes + credits + fees",
            market.address,
            held,
            state.balances.get(market.address, 0),
        )

    def _jobs(self, state: ChainState, check: _Checker) -> None:
        market = self.protocol.market
        for job in state.jobs.values():
            status, _ = self.client.call(market.contract.functions.getJob(job.job_id), check.block)
            check.equal("job state", f"job {job.job_id}", job.state.name, JobState(status[0]).name)
            expected = Counter(expected_credits(job, state))
            found = Counter((account, kind.name, amount) for account, kind, amount in job.credits)
            check.equal("settlement split", f"job {job.job_id}", _credits_text(expected), _credits_text(found))

    def _database(self, state: ChainState, check: _Checker) -> None:
        assert self.database is not None
        with Session(self.database) as session:
            jobs = {row.job_id: row for row in session.execute(select(JobRow)).scalars()}
            stakes = {(row.account, row.role): row for row in session.execute(select(StakeRow)).scalars()}
            accounts = {row.address: row for row in session.execute(select(AccountRow)).scalars()}
            ledger = [row for row in session.execute(select(LedgerRow)).scalars() if row.block_number <= check.block]
        for job in state.jobs.values():
            row = jobs.pop(job.job_id, None)
            if row is None:
                check.fail("database job row", f"job {job.job_id}", "a row", "none")
                continue
            for name, mine, theirs in (
                ("state", job.state.name.lower(), row.state),
                ("price", str(job.price), row.price),
                ("requester", job.requester, row.requester),
                ("provider", job.provider, row.provider),
                ("output CID", job.output_cid, row.output_cid),
                ("verdict", job.passed, row.passed),
            ):
                check.equal(f"database job {name}", f"job {job.job_id}", mine, theirs)
        for job_id in jobs:
            check.fail("database job row", f"job {job_id}", "no such job on-chain", "a row")
        for (account, role), view in state.stakes.items():
            row = stakes.get((account, role.name.lower()))
            check.equal(
                "database stake", f"{account} as {role.name.lower()}", str(view.stake), row.stake if row else None
            )
        for address, row in accounts.items():
            check.equal("database balance", address, str(state.balances.get(address, 0)), row.balance)
            check.equal("database credits", address, str(state.credits.get(address, 0)), row.credits)
        credited = sum(amount for (_, _), amount in state.earned.items())
        check.equal(
            "database ledger credits", "ledger", credited, sum(int(row.amount) for row in ledger if int(row.amount) > 0)
        )

    def _reexecute(self, state: ChainState, count: int, chooser: random.Random) -> list[TaskVerdict]:
        assert self.reexecutor is not None
        finalized = [job for job in state.jobs.values() if job.state == JobState.FINALIZED and job.output_cid]
        picks = [
            (job, chooser.randrange(job.num_tasks))
            for job in (chooser.choice(finalized) for _ in range(count if finalized else 0))
        ]
        by_job: dict[int, tuple[JobView, set[int]]] = {}
        for job, index in picks:
            by_job.setdefault(job.job_id, (job, set()))[1].add(index)
        verdicts = []
        for job, indices in by_job.values():
            verdicts += self.reexecutor(job, sorted(indices))
        return verdicts


def expected_credits(job: JobView, state: ChainState) -> list[tuple[str, str, int]]:
    """The credits the contract must have made for ``job``, from its terms and events alone."""
    treasury = state.treasury or ""
    price, credits = job.price, []
    protocol_fee, verifier_fee = job.bps_of_price("protocolFeeBps"), job.bps_of_price("verifierFeeBps")
    collateral = job.bps_of_price("collateralBps")
    # Each expired claim slashed the provider's collateral to the requester.
    credits += [(job.requester, CreditKind.SLASH_COMPENSATION.name, collateral)] * job.expirations
    if job.state == JobState.CANCELLED:
        credits.append((job.requester, CreditKind.REFUND.name, price))
    elif job.state == JobState.FINALIZED and job.provider:
        fee = verifier_fee if job.passed else 0
        credits.append((job.provider, CreditKind.PROVIDER_PAYMENT.name, price - protocol_fee - fee))
        if job.passed and job.verifier:
            credits.append((job.verifier, CreditKind.VERIFIER_FEE.name, fee))
        credits.append((treasury, CreditKind.PROTOCOL_FEE.name, protocol_fee))
    elif job.state == JobState.REJECTED and job.verifier:
        credits += [
            (job.requester, CreditKind.REFUND.name, price),
            (job.verifier, CreditKind.VERIFIER_FEE.name, verifier_fee),
            (job.requester, CreditKind.SLASH_COMPENSATION.name, collateral - verifier_fee),
        ]
    return [entry for entry in credits if entry[2]]


class _Checker:
    def __init__(self, report: AuditReport, block: int) -> None:
        self.report = report
        self.block = block

    def equal(self, check: str, subject: str, expected: Any, found: Any) -> None:
        self.report.checks += 1
        if expected != found:
            self.report.discrepancies.append(Discrepancy(check, subject, _text(expected), _text(found)))

    def fail(self, check: str, subject: str, expected: str, found: str) -> None:
        self.report.checks += 1
        self.report.discrepancies.append(Discrepancy(check, subject, expected, found))


def _text(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else value


def _credits_text(credits: Counter[tuple[str, str, int]]) -> str:
    return (
        "; ".join(
            f"{count}x {kind} {amount} to {account}" for (account, kind, amount), count in sorted(credits.items())
        )
        or "none"
    )
