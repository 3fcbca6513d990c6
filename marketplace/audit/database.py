"""``webi audit --db``: an indexer database, row by row, against the replay of the chain.

The indexer's tables are projections of the events, so each row has one right value: the jobs,
stakes and accounts tables against the fold, and the ledger against the ``Credited``, ``Withdrawn``
and ``ProtocolFeesWithdrawn`` events themselves (a ledger row's key is the log that made it). A
forged row is named: its table, its key (for the ledger, the transaction hash and log index), its
job, the column, and the database's value against the chain's. A total is never what is compared:
a forged credit offset by a forged debit would pass it.

With a later ``--from-block`` only what the replay knows is compared: the jobs it saw, the
accounts and stakes it read at its start, the ledger rows of its blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from marketplace.audit.checks import Checker, DatabaseRow
from marketplace.history import ChainEvent, ChainState
from marketplace.indexer.models import AccountRow, JobRow, LedgerRow, StakeRow
from marketplace.protocol import CreditKind
from marketplace.units import webi


@dataclass(frozen=True)
class LedgerEntry:
    """A ledger row as the chain's event says it must be."""

    block_number: int
    log_index: int
    tx_hash: str
    account: str
    job_id: int | None
    kind: str
    amount: str  # positive for credits, negative for withdrawals


def ledger_entries(events: list[ChainEvent]) -> list[LedgerEntry]:
    """The ledger the events make: each credit, each withdrawal of credits or of protocol fees."""
    entries = []
    for event in events:
        if event.contract != "market":
            continue
        args = event.args
        if event.name == "Credited":
            account, job_id = args["account"], int(args["jobId"])
            kind, amount = CreditKind(args["kind"]).name.lower(), int(args["amount"])
        elif event.name == "Withdrawn":
            account, job_id, kind, amount = args["account"], None, "withdrawn", -int(args["amount"])
        elif event.name == "ProtocolFeesWithdrawn":
            account, job_id, kind, amount = args["treasury"], None, "protocol_fees_withdrawn", -int(args["amount"])
        else:
            continue
        entries.append(LedgerEntry(event.block_number, event.log_index, event.tx_hash, account, job_id, kind,
                                   str(amount)))
    return entries


def check_database(
    engine: Engine,
    state: ChainState,
    events: list[ChainEvent],
    check: Checker,
    *,
    from_block: int,
    whole_history: bool,
    accounts_known: bool,
) -> None:
    """Every row of the indexer database in ``engine`` that the replay can vouch for, against it."""
    with Session(engine) as session:
        jobs = {row.job_id: row for row in session.execute(select(JobRow)).scalars()}
        stakes = {(row.account, row.role): row for row in session.execute(select(StakeRow)).scalars()}
        accounts = {row.address: row for row in session.execute(select(AccountRow)).scalars()}
        ledger = [row for row in session.execute(select(LedgerRow)).scalars()
                  if from_block <= row.block_number <= check.block]
    _jobs(state, jobs, check, from_block, whole_history)
    if accounts_known:
        _stakes_and_accounts(state, stakes, accounts, check, whole_history)
    _ledger(ledger_entries(events), ledger, check)


def _jobs(state: ChainState, rows: dict[int, JobRow], check: Checker, from_block: int, whole_history: bool) -> None:
    for job in state.jobs.values():
        row = rows.pop(job.job_id, None)
        subject = f"jobs row {job.job_id}"
        if row is None:
            check.fail("database job row", subject, "a row", "none", job_id=job.job_id,
                       row=DatabaseRow("jobs", str(job.job_id)))
            continue
        fields: list[tuple[str, str, object, object]] = [
            ("state", "state", job.state.name.lower(), row.state),
            ("price", "price", str(job.price), row.price),
            ("requester", "requester", job.requester, row.requester),
            ("provider", "provider", job.provider, row.provider),
            ("output CID", "output_cid", job.output_cid, row.output_cid),
            ("verifier", "verifier", job.verifier, row.verifier),
            ("verdict", "verdict", job.verdict.name.lower() if job.verdict else None, row.verdict),
            ("challenger", "challenger", job.challenge.challenger if job.challenge else None, row.challenger),
        ]
        if job.partial_since is None:  # a job carried into a late start has only the burns from its start
            fields.append(("burned", "burned", str(job.burned), row.burned))
        for name, column, mine, theirs in fields:
            check.equal(f"database job {name}", f"job {job.job_id}", mine, theirs, job_id=job.job_id,
                        row=DatabaseRow("jobs", str(job.job_id), column))
    for job_id, row in rows.items():
        # A late start saw only the jobs its blocks touched; one posted in them must be in the replay.
        if whole_history or from_block <= row.posted_block <= check.block:
            check.fail("database job row", f"job {job_id}", "no such job on-chain", "a row", job_id=job_id,
                       row=DatabaseRow("jobs", str(job_id)))


def _stakes_and_accounts(
    state: ChainState,
    stakes: dict[tuple[str, str], StakeRow],
    accounts: dict[str, AccountRow],
    check: Checker,
    whole_history: bool,
) -> None:
    for (account, role), view in state.stakes.items():
        row = stakes.pop((account, role.name.lower()), None)
        key = f"{account}/{role.name.lower()}"
        subject = f"{account} as {role.name.lower()}"
        check.equal("database stake", subject, str(view.stake), row.stake if row else None, account=account,
                    row=DatabaseRow("stakes", key, "stake"))
        check.equal("database unbonding", subject, str(view.unbonding), row.unbonding if row else None,
                    account=account, row=DatabaseRow("stakes", key, "unbonding"))
    if whole_history:
        for (account, role_name), row in stakes.items():
            if row.stake != "0" or row.unbonding != "0":
                check.fail("database stake", f"{account} as {role_name}", "no stake on-chain",
                           f"{webi(row.stake)} WEBI staked, {webi(row.unbonding)} unbonding", account=account,
                           row=DatabaseRow("stakes", f"{account}/{role_name}"))
    known = set(state.balances) | set(state.credits) | {account for account, _ in state.stakes}
    for address, account_row in accounts.items():
        if not whole_history and address not in known:
            continue  # the replay read only the accounts its blocks name
        check.equal("database balance", address, str(state.balances.get(address, 0)), account_row.balance,
                    account=address, row=DatabaseRow("accounts", address, "balance"))
        check.equal("database credits", address, str(state.credits.get(address, 0)), account_row.credits,
                    account=address, row=DatabaseRow("accounts", address, "credits"))


def _ledger(entries: list[LedgerEntry], rows: list[LedgerRow], check: Checker) -> None:
    """Row by row, keyed by the log that made it: a changed column, a row missing, a row no event made."""
    stored = {(row.block_number, row.log_index): row for row in rows}
    for entry in entries:
        key = f"{entry.tx_hash}:{entry.log_index}"
        subject = f"ledger row {key} (block {entry.block_number}, job {entry.job_id}, {entry.kind})"
        row = stored.pop((entry.block_number, entry.log_index), None)
        if row is None:
            check.fail("database ledger row", subject, _entry_text(entry), "none", job_id=entry.job_id,
                       account=entry.account, row=DatabaseRow("ledger", key))
            continue
        for column, mine, theirs in (
            ("tx_hash", entry.tx_hash, row.tx_hash),
            ("account", entry.account, row.account),
            ("job_id", entry.job_id, row.job_id),
            ("kind", entry.kind, row.kind),
            ("amount", entry.amount, row.amount),
        ):
            check.equal(f"database ledger {column}", subject, mine, theirs, job_id=entry.job_id,
                        account=entry.account, row=DatabaseRow("ledger", key, column))
    for (block, log_index), row in sorted(stored.items()):
        key = f"{row.tx_hash}:{log_index}"
        check.fail(
            "database ledger row",
            f"ledger row {key} (block {block}, job {row.job_id}, {row.kind})",
            "no such event on-chain",
            f"{row.kind} {row.amount} wei ({_signed_webi(row.amount)} WEBI) to {row.account}",
            job_id=row.job_id,
            account=row.account,
            row=DatabaseRow("ledger", key),
        )


def _entry_text(entry: LedgerEntry) -> str:
    return f"{entry.kind} {entry.amount} wei ({_signed_webi(entry.amount)} WEBI) to {entry.account}"


def _signed_webi(amount: str) -> str:
    value = int(amount)
    return ("-" if value < 0 else "") + webi(abs(value))

