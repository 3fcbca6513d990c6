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
  contradicts is named (``ContradictedPass``: who passed it, which tasks failed). A confidential job
  that no key of the auditor's opens is left out (``NotReexecutedError``) and counted in ``skipped``,
  never failed: a clean audit stays clean.

Every verdict a panel overturned is named too (``OverturnedVerdict``), with what it cost its verifier.

Balance checks need the whole history: starting at a later block leaves them out, and the report
says so.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Engine

from marketplace.audit.checks import (
    Checker,
    CheckTally,
    Discrepancy,
    credit_text,
    difference,
    slash_text,
)
from marketplace.audit.database import check_database
from marketplace.audit.findings import (
    ContradictedPass,
    OverturnedVerdict,
    TaskVerdict,
    contradicted_passes,
    overturned_verdicts,
)
from marketplace.audit.prior import start_at
from marketplace.audit.settlement import expected_settlement, expected_verdict
from marketplace.audit.summary import AccountSummary, JobSummary, account_summaries, job_summaries
from marketplace.chain.client import ChainClient
from marketplace.chain.deployment import Protocol
from marketplace.errors import WebiError
from marketplace.history import ChainState, JobView, fetch_events
from marketplace.indexer.indexer import decoder_for, first_block
from marketplace.protocol import (
    ZERO_ADDRESS,
    Audit,
    CreditKind,
    JobState,
    Panel,
    Role,
    Verdict,
    sampled_task_indices,
)

log = logging.getLogger(__name__)

__all__ = ["AuditReport", "Auditor", "Discrepancy", "NotReexecutedError", "Reexecutor"]

# (job, task indices) -> one verdict per task; provided by verifier.reexecute.
Reexecutor = Callable[[JobView, list[int]], list[TaskVerdict]]


class NotReexecutedError(WebiError):
    """A re-executor cannot judge this job through nobody's fault (a confidential job, and no key of the
    auditor's opens it): the job is left out of re-execution and the report says why, as no failed verdict.
    ``reason`` is short and shared by such jobs ("no key"), so the report can count them."""

    def __init__(self, job_id: int, reason: str) -> None:
        super().__init__(f"job {job_id} not re-executed: {reason}")
        self.job_id, self.reason = job_id, reason


@dataclass
class AuditReport:
    """What one audit checked and found. ``checks`` lists every kind of check that ran, with its
    count and failures; ``accounts`` and ``jobs`` are the books as replayed; ``skipped`` says, in
    sentences, what a late start could not check."""

    chain_id: int
    market: str
    token: str
    from_block: int
    to_block: int
    events: int
    balance_checks: bool = True
    checks: list[CheckTally] = field(default_factory=list)
    discrepancies: list[Discrepancy] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    accounts: list[AccountSummary] = field(default_factory=list)
    jobs: list[JobSummary] = field(default_factory=list)
    reexecuted: list[TaskVerdict] = field(default_factory=list)
    overturned: list[OverturnedVerdict] = field(default_factory=list)
    contradicted: list[ContradictedPass] = field(default_factory=list)
    totals: dict[str, str] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        """No discrepancy, and every re-executed task passed."""
        return not self.discrepancies and all(verdict.passed for verdict in self.reexecuted)

    @property
    def checks_run(self) -> int:
        """Comparisons made, of every kind."""
        return sum(tally.count for tally in self.checks)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["clean"] = self.clean
        data["checks_run"] = self.checks_run
        for tally, item in zip(self.checks, data["checks"], strict=True):
            item["passed"] = tally.passed
        return data


class Auditor:
    """Audits ``protocol`` from ``from_block`` (default: the token's creation) to the chain's head;
    ``database`` is an indexer database to check too, ``reexecutor`` what re-runs sampled tasks."""

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
        """Replays the events up to the chain's head, runs every check and returns what they found.

        From a later block, the fold starts from the chain's state just before it (``prior.py``):
        the jobs the range touches that were posted before it are carried in, so their settlement
        checks still run; the balance checks, which need every account, are left out.
        """
        to_block = int(self.client.w3.eth.block_number)
        decoder = decoder_for(self.protocol.deployment)
        events = list(fetch_events(self.client, decoder, self.from_block, to_block))
        check = Checker(to_block)
        skipped: list[str] = []
        stakes_known = balances_known = True
        if self.whole_history:
            state = ChainState()
        else:
            start = start_at(self.protocol, decoder, self.from_block, events, check)
            state, stakes_known, skipped = start.state, start.stakes_known, start.skipped
            balances_known = start.known
        for event in events:
            state.apply(event)
        accounts = sorted(set(state.balances) | set(state.credits) | {account for account, _ in state.stakes})
        if self.whole_history:
            self._balances(state, accounts, check)
        skipped += self._jobs(state, check, stakes_known)
        if self.database is not None:
            check_database(self.database, state, events, check, from_block=self.from_block,
                           whole_history=self.whole_history, accounts_known=stakes_known and balances_known)
        report = AuditReport(
            self.client.chain_id,
            self.protocol.market.address,
            self.protocol.token.address,
            self.from_block,
            to_block,
            state.events,
            balance_checks=self.whole_history,
            checks=list(check.tallies.values()),
            discrepancies=check.discrepancies,
            skipped=skipped,
            accounts=account_summaries(state, accounts, self.protocol.market.address, check.discrepancies),
            jobs=job_summaries(state, check.discrepancies),
            overturned=overturned_verdicts(state),
            totals=_totals(state),
        )
        if reexecute and self.reexecutor is not None:
            report.reexecuted = self._reexecute(state, reexecute, random.Random(seed), report.skipped)
            report.contradicted = contradicted_passes(state, report.reexecuted)
        return report

    # ───────────────────────────────────────────── checks

    def _balances(self, state: ChainState, accounts: list[str], check: Checker) -> None:
        token, market = self.protocol.token, self.protocol.market
        views = market.contract.functions
        block = check.block
        for account in accounts:
            check.equal("token balance", account, state.balances.get(account, 0),
                        int(self.client.call(token.contract.functions.balanceOf(account), block)), account=account)
            check.equal("withdrawable credits", account, state.credits.get(account, 0),
                        int(self.client.call(views.credits(account), block)), account=account)
        for (account, role), view in sorted(state.stakes.items()):
            function = views.providerStake if role == Role.PROVIDER else views.verifierStake
            stake, locked, _, duties, unbonding = self.client.call(function(account), block)
            subject = f"{account} as {role.name.lower()}"
            check.equal("stake", subject, view.stake, int(stake), account=account)
            check.equal("locked collateral", subject, view.locked, int(locked), account=account)
            check.equal("unbonding stake", subject, view.unbonding, int(unbonding), account=account)
            if role == Role.VERIFIER:
                check.equal("verifier duties", subject, view.duties, int(duties), account=account)
                check.equal("draw weight", subject, view.weight,
                            int(self.client.call(views.verifierWeight(account), block)), account=account)
                secret = "0x" + bytes(self.client.call(views.secretOf(account), block)).hex()
                check.equal("secret commitment", subject, view.secret_hash or "0x" + "00" * 32, secret,
                            account=account)
        # The market's own numbers: counted against its row of the accounts table.
        here = market.address
        verifiers = [view for (_, role), view in state.stakes.items() if role == Role.VERIFIER]
        check.equal("total draw weight", here, sum(view.weight for view in verifiers),
                    int(self.client.call(views.totalVerifierWeight(), block)), account=here)
        check.equal("verifiers in the draw", here, sum(1 for view in verifiers if view.weight),
                    int(self.client.call(views.verifierCount(), block)), account=here)
        if state.owner is not None:
            check.equal("owner", here, state.owner, str(self.client.call(views.owner(), block)), account=here)
        if state.treasury is not None:
            check.equal("treasury", here, state.treasury, str(self.client.call(views.treasury(), block)),
                        account=here)
        check.equal("protocol fees", here, state.protocol_fees, int(self.client.call(views.protocolFees(), block)),
                    account=here)
        check.equal("burned", here, state.burned, int(self.client.call(views.burned(), block)), account=here)
        check.equal("total supply", token.address, sum(state.balances.values()),
                    int(self.client.call(token.contract.functions.totalSupply(), block)))
        held = state.staked + sum(state.credits.values()) + state.protocol_fees + state.escrow + state.bonds
        held += state.burned
        check.equal("market holdings = stakes + unbonding + credits + fees + escrow + bonds + burned", here, held,
                    state.balances.get(here, 0), account=here)

    def _jobs(self, state: ChainState, check: Checker, stakes_known: bool) -> list[str]:
        """Every job against the contract's views, and its settlement against the rules; returns the
        sentences for the settlement checks it had to skip (stakes unknown at a late start)."""
        views = self.protocol.market.contract.functions
        skipped = []
        for job in state.jobs.values():
            job_id, subject = job.job_id, f"job {job.job_id}"
            status, _ = self.client.call(views.getJob(job_id), check.block)
            check.equal("job state", subject, job.state.name, JobState(status[0]).name, job_id=job_id)
            audit = Audit.from_call(tuple(self.client.call(views.auditOf(job_id), check.block)))
            check.equal("drawn verifier", subject, job.verifier or ZERO_ADDRESS, audit.verifier, job_id=job_id)
            check.equal("verdict", subject, (job.verdict or Verdict.NONE).name, audit.verdict.name, job_id=job_id)
            check.equal("draws", subject, job.draws, audit.draws, job_id=job_id)
            if job.challenge is not None:
                panel = Panel.from_call(tuple(self.client.call(views.panelOf(job_id), check.block)))
                check.equal("challenger", subject, job.challenge.challenger, panel.challenger, job_id=job_id)
                check.equal("challenge bond", subject, job.challenge.bond, panel.bond, job_id=job_id)
                check.equal("panel", subject, job.challenge.members, list(panel.members), job_id=job_id)
            if job.state in (JobState.FINALIZED, JobState.REJECTED):
                final = expected_verdict(job)
                check.equal("final verdict", subject, final.name, (job.verdict or Verdict.NONE).name, job_id=job_id)
            unknown = None if stakes_known else _unknown_before_start(job)
            if unknown is not None:
                skipped.append(f"job {job_id}: {unknown} is unknown (the node keeps no state before block "
                               f"{self.from_block}): its settlement checks were skipped")
                continue
            try:
                expected = expected_settlement(job)
            except ValueError as error:
                check.fail("settlement split", subject, "known network parameters", str(error), job_id=job_id)
                continue
            found = Counter((credit.account, credit.kind.name, credit.amount) for credit in job.credits)
            check.equal("settlement split", subject, *difference(Counter(expected.credits), found, credit_text),
                        job_id=job_id)
            check.equal("burned", subject, expected.burned, job.burned, job_id=job_id)
            slashes = Counter(
                (slash.account, slash.role.name.lower(), slash.from_stake, slash.from_unbonding)
                for slash in job.slashes
            )
            check.equal("slashes", subject, *difference(Counter(expected.slashes), slashes, slash_text),
                        job_id=job_id)
        return skipped

    def _reexecute(self, state: ChainState, count: int, chooser: random.Random,
                   skipped: list[str]) -> list[TaskVerdict]:
        """``count`` of the tasks that audits sampled in finalized jobs, chosen at random; a job the
        re-executor cannot open (``NotReexecutedError``) is counted in ``skipped``, not failed."""
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
        left_out: dict[str, list[int]] = {}
        for job, indices in by_job.values():
            try:
                verdicts += self.reexecutor(job, sorted(indices))
            except NotReexecutedError as error:
                left_out.setdefault(error.reason, []).append(job.job_id)
        for reason, job_ids in left_out.items():
            noun = "job" if len(job_ids) == 1 else "jobs"
            skipped.append(f"{len(job_ids)} confidential {noun} not re-executed: {reason} "
                           f"({', '.join(map(str, sorted(job_ids)))})")
        return verdicts



def _totals(state: ChainState) -> dict[str, str]:
    """Wei held and moved, as the replay counts them (over its blocks, from its start's state)."""
    return {
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


def _unknown_before_start(job: JobView) -> str | None:
    """What the settlement of ``job`` depends on that a late start without the chain's state before
    it cannot know, if anything (``prior.py``)."""
    if any(penalty.role == Role.VERIFIER for penalty in job.penalties):
        return "the stake a verifier's slash is a share of"
    if any(penalty.params is None for penalty in job.penalties):
        return "the network parameters its penalty depends on"
    if job.state == JobState.FINALIZED and job.settled_treasury is None:
        return "the treasury its protocol fee went to"
    return None


def _bytes(value: str) -> bytes:
    return bytes.fromhex(value.removeprefix("0x"))
