"""The auditor: trusts nothing but the chain, and says exactly what disagrees.

It fetches every WEBI event from the token's creation block (or ``from_block``), folds them with
``ChainState`` and checks:

- every balance, credit, stake, unbonding amount, locked collateral, verifier duty count, draw
  weight and secret commitment it rebuilt against ``balanceOf``, ``credits``, ``providerStake``,
  ``verifierStake``, ``verifierWeight`` and ``secretOf``; the draw's total weight and size against
  ``totalVerifierWeight`` and ``verifierCount``; the protocol fees against ``protocolFees``; the
  burned total against ``burned``; the owner and the treasury; the total supply against the sum of
  balances;
- conservation, exactly: the market's own token balance equals stakes + unbonding stakes + credits
  + protocol fees + the escrow of live jobs (price + audit fee) + open challenge bonds + burned;
- every job's state, drawn verifier, verdict and challenge against ``getJob``, ``auditOf`` and
  ``panelOf``;
- every job's settlement re-derived from its terms and its events (``expected_settlement``): each
  slash (collateral, or a share of a verifier's stake at the time), each credit (payment and fees
  on pass or inconclusive; refund, audit fee and the reward/burn split of the collateral on fail;
  bond refunds, panel fees and rewards on challenges) and each burn, against what the contract did;
- optionally, an indexer database (``--db``): each job, stake, account and ledger row against the
  replay, which catches a wrong or forged row;
- optionally, ``reexecute`` tasks that audits sampled in finalized jobs (the sample follows from the
  ``VerdictSubmitted`` event's sample seed), through a re-executor the verifier package provides
  (the marketplace package runs no models itself); a job paid on a PASS that re-execution
  contradicts is named (``ContradictedPass``: who passed it, which tasks failed).

Every verdict a panel overturned is named too (``OverturnedVerdict``), with what it cost its verifier.

Balance checks need the whole history: starting at a later block leaves them out, and the report
says so.
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from web3.exceptions import Web3RPCError

from marketplace.audit.findings import (
    ContradictedPass,
    OverturnedVerdict,
    TaskVerdict,
    contradicted_passes,
    overturned_verdicts,
)
from marketplace.audit.settlement import expected_settlement, expected_verdict
from marketplace.chain.client import ChainClient
from marketplace.chain.deployment import Protocol
from marketplace.errors import ChainError
from marketplace.history import ChainState, JobView, fetch_events
from marketplace.history.state import params_dict
from marketplace.indexer.indexer import decoder_for, first_block
from marketplace.indexer.models import AccountRow, JobRow, LedgerRow, StakeRow
from marketplace.protocol import (
    ZERO_ADDRESS,
    Audit,
    CreditKind,
    JobState,
    Panel,
    Params,
    Role,
    Verdict,
    sampled_task_indices,
)

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class Discrepancy:
    """One disagreement: what was checked, what the replay says, what the other side says."""

    check: str
    subject: str
    expected: str
    found: str

    def __str__(self) -> str:
        return f"{self.check} [{self.subject}]: expected {self.expected}, found {self.found}"


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
    overturned: list[OverturnedVerdict] = field(default_factory=list)
    contradicted: list[ContradictedPass] = field(default_factory=list)
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
        state = ChainState() if self.whole_history else self._state_before(self.from_block)
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
        report.overturned = overturned_verdicts(state)
        if reexecute and self.reexecutor is not None:
            report.reexecuted = self._reexecute(state, reexecute, random.Random(seed))
            report.contradicted = contradicted_passes(state, report.reexecuted)
        report.totals = {
            "escrow": str(state.escrow),
            "bonds": str(state.bonds),
            "burned": str(state.burned),
            "protocol_fees": str(state.protocol_fees),
            "credits": str(sum(state.credits.values())),
            "stakes": str(sum(view.stake for view in state.stakes.values())),
            "unbonding": str(sum(view.unbonding for view in state.stakes.values())),
            "slashed": str(sum(view.slashed for view in state.stakes.values())),
            **{
                kind.name.lower(): str(sum(amount for (_, k), amount in state.earned.items() if k == kind))
                for kind in CreditKind
            },
        }
        return report

    def _state_before(self, block: int) -> ChainState:
        """A fold that starts at ``block`` with the parameters and treasury in force before it (the
        settlement checks need them); the latest ones where the node keeps no state that old."""
        market = self.protocol.market.contract.functions
        at: int | str = max(block - 1, 0)
        try:
            params = Params(*self.client.call(market.params(), at))
        except (ChainError, Web3RPCError, ValueError) as error:
            log.warning("no state at block %s (%s): using the latest parameters", at, error)
            at = "latest"
            params = Params(*self.client.call(market.params(), at))
        return ChainState(params=params_dict(params), treasury=str(self.client.call(market.treasury(), at)))

    # ───────────────────────────────────────────── checks

    def _balances(self, state: ChainState, accounts: list[str], check: _Checker) -> None:
        token, market = self.protocol.token, self.protocol.market
        views = market.contract.functions
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
                int(self.client.call(views.credits(account), block)),
            )
        for (account, role), view in sorted(state.stakes.items()):
            function = views.providerStake if role == Role.PROVIDER else views.verifierStake
            stake, locked, _, duties, unbonding = self.client.call(function(account), block)
            subject = f"{account} as {role.name.lower()}"
            check.equal("stake", subject, view.stake, int(stake))
            check.equal("locked collateral", subject, view.locked, int(locked))
            check.equal("unbonding stake", subject, view.unbonding, int(unbonding))
            if role == Role.VERIFIER:
                check.equal("verifier duties", subject, view.duties, int(duties))
                check.equal("draw weight", subject, view.weight,
                            int(self.client.call(views.verifierWeight(account), block)))
                secret = "0x" + bytes(self.client.call(views.secretOf(account), block)).hex()
                check.equal("secret commitment", subject, view.secret_hash or "0x" + "00" * 32, secret)
        verifiers = [view for (_, role), view in state.stakes.items() if role == Role.VERIFIER]
        check.equal("total draw weight", market.address, sum(view.weight for view in verifiers),
                    int(self.client.call(views.totalVerifierWeight(), block)))
        check.equal("verifiers in the draw", market.address, sum(1 for view in verifiers if view.weight),
                    int(self.client.call(views.verifierCount(), block)))
        if state.owner is not None:
            check.equal("owner", market.address, state.owner, str(self.client.call(views.owner(), block)))
        if state.treasury is not None:
            check.equal("treasury", market.address, state.treasury, str(self.client.call(views.treasury(), block)))
        check.equal(
            "protocol fees", market.address, state.protocol_fees, int(self.client.call(views.protocolFees(), block))
        )
        check.equal("burned", market.address, state.burned, int(self.client.call(views.burned(), block)))
        check.equal(
            "total supply",
            token.address,
            sum(state.balances.values()),
            int(self.client.call(token.contract.functions.totalSupply(), block)),
        )
        held = state.staked + sum(state.credits.values()) + state.protocol_fees + state.escrow + state.bonds
        held += state.burned
        check.equal(
            "market holdings = stakes + unbonding + credits + fees + escrow + bonds + burned",
            market.address,
            held,
            state.balances.get(market.address, 0),
        )

    def _jobs(self, state: ChainState, check: _Checker) -> None:
        views = self.protocol.market.contract.functions
        for job in state.jobs.values():
            subject = f"job {job.job_id}"
            status, _ = self.client.call(views.getJob(job.job_id), check.block)
            check.equal("job state", subject, job.state.name, JobState(status[0]).name)
            audit = Audit.from_call(tuple(self.client.call(views.auditOf(job.job_id), check.block)))
            check.equal("drawn verifier", subject, job.verifier or ZERO_ADDRESS, audit.verifier)
            check.equal("verdict", subject, (job.verdict or Verdict.NONE).name, audit.verdict.name)
            check.equal("draws", subject, job.draws, audit.draws)
            if job.challenge is not None:
                panel = Panel.from_call(tuple(self.client.call(views.panelOf(job.job_id), check.block)))
                check.equal("challenger", subject, job.challenge.challenger, panel.challenger)
                check.equal("challenge bond", subject, job.challenge.bond, panel.bond)
                check.equal("panel", subject, job.challenge.members, list(panel.members))
            if job.state in (JobState.FINALIZED, JobState.REJECTED):
                final = expected_verdict(job)
                check.equal("final verdict", subject, final.name, (job.verdict or Verdict.NONE).name)
            try:
                expected = expected_settlement(job)
            except ValueError as error:
                check.fail("settlement split", subject, "known network parameters", str(error))
                continue
            found = Counter((credit.account, credit.kind.name, credit.amount) for credit in job.credits)
            check.equal("settlement split", subject, *_difference(Counter(expected.credits), found, _credit_text))
            check.equal("burned", subject, expected.burned, job.burned)
            slashes = Counter(
                (slash.account, slash.role.name.lower(), slash.from_stake, slash.from_unbonding)
                for slash in job.slashes
            )
            check.equal("slashes", subject, *_difference(Counter(expected.slashes), slashes, _slash_text))

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
                ("verifier", job.verifier, row.verifier),
                ("verdict", job.verdict.name.lower() if job.verdict else None, row.verdict),
                ("challenger", job.challenge.challenger if job.challenge else None, row.challenger),
                ("burned", str(job.burned), row.burned),
            ):
                check.equal(f"database job {name}", f"job {job.job_id}", mine, theirs)
        for job_id in jobs:
            check.fail("database job row", f"job {job_id}", "no such job on-chain", "a row")
        for (account, role), view in state.stakes.items():
            row = stakes.get((account, role.name.lower()))
            subject = f"{account} as {role.name.lower()}"
            check.equal("database stake", subject, str(view.stake), row.stake if row else None)
            check.equal("database unbonding", subject, str(view.unbonding), row.unbonding if row else None)
        for address, row in accounts.items():
            check.equal("database balance", address, str(state.balances.get(address, 0)), row.balance)
            check.equal("database credits", address, str(state.credits.get(address, 0)), row.credits)
        credited = sum(amount for (_, _), amount in state.earned.items())
        check.equal(
            "database ledger credits", "ledger", credited, sum(int(row.amount) for row in ledger if int(row.amount) > 0)
        )

    def _reexecute(self, state: ChainState, count: int, chooser: random.Random) -> list[TaskVerdict]:
        """``count`` of the tasks that audits sampled in finalized jobs, chosen at random."""
        assert self.reexecutor is not None
        sampled = [
            (job, index)
            for job in state.jobs.values()
            if job.state == JobState.FINALIZED and job.output_cid and job.sample_seed
            for index in sampled_task_indices(_bytes(job.sample_seed), job.num_tasks, job.sample_tasks)
        ]
        by_job: dict[int, tuple[JobView, set[int]]] = {}
        for job, index in chooser.sample(sampled, min(count, len(sampled))):
            by_job.setdefault(job.job_id, (job, set()))[1].add(index)
        verdicts = []
        for job, indices in by_job.values():
            verdicts += self.reexecutor(job, sorted(indices))
        return verdicts


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


def _bytes(value: str) -> bytes:
    return bytes.fromhex(value.removeprefix("0x"))


def _difference(expected: Counter[Any], found: Counter[Any], text: Callable[[Any], str]) -> tuple[str, str]:
    """Both sides of a comparison of multisets, as the entries that differ (and how many agree)."""
    agree = sum((expected & found).values())
    suffix = f" ({agree} more agree)" if agree else ""

    def side(entries: Counter[Any]) -> str:
        return "; ".join(f"{count}x {text(entry)}" for entry, count in sorted(entries.items())) or "none"

    return side(expected - found) + suffix, side(found - expected) + suffix


def _credit_text(entry: tuple[str, str, int]) -> str:
    account, kind, amount = entry
    return f"{kind} {amount} to {account}"


def _slash_text(entry: tuple[str, str, int, int]) -> str:
    account, role, stake, unbonding = entry
    return f"{account} as {role}: {stake} from stake + {unbonding} from unbonding"
