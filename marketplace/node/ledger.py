"""The ledger a person reads: every credit, every withdrawal and every stake slash, newest first.

Credits and withdrawals are the indexer's ``ledger`` table (what the auditor sums against the
credits); a slash reduces a stake, not a withdrawable balance, so it stays out of that table and is
read here from its ``Slashed`` event, with the cause the fold inferred (kept in the job's audit
JSON). Both are keyed by (block, log index), so one cursor pages through the two at once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, and_, func, or_, select
from sqlalchemy.orm import Session
from sqlmodel import col

from marketplace.indexer.models import MAX_INTEGER, BlockRow, EventRow, JobRow, LedgerRow, fits_integer
from marketplace.protocol import Role

SLASHED = "slashed"  # the kind a stake slash is listed under


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


def ledger_dict(row: LedgerRow, times: dict[int, int]) -> dict[str, Any]:
    """A credit or a withdrawal (negative); ``role`` and ``reason`` are a slash's only."""
    return {
        "block_number": row.block_number,
        "log_index": row.log_index,
        "tx_hash": row.tx_hash,
        "account": row.account,
        "job_id": row.job_id,
        "kind": row.kind,
        "amount": row.amount,
        "time": times.get(row.block_number),
        "role": None,
        "reason": None,
    }


def slash_dict(event: EventRow, times: dict[int, int], causes: dict[tuple[str, str, str], str]) -> dict[str, Any]:
    """A ``Slashed`` event as a ledger entry: the amount taken (stake and unbonding) as a negative."""
    args = json.loads(event.args)
    role = Role(int(args["role"])).name.lower()
    amount = int(args["fromStake"]) + int(args["fromUnbonding"])
    return {
        "block_number": event.block_number,
        "log_index": event.log_index,
        "tx_hash": event.tx_hash,
        "account": args["account"],
        "job_id": event.job_id,
        "kind": SLASHED,
        "amount": str(-amount),
        "time": times.get(event.block_number),
        "role": role,
        "reason": causes.get((event.tx_hash, args["account"], role)),
    }


def block_times(session: Session, numbers: set[int]) -> dict[int, int]:
    """Block number → timestamp, for the blocks the indexer kept."""
    if not numbers:
        return {}
    query = select(col(BlockRow.number), col(BlockRow.timestamp)).where(col(BlockRow.number).in_(numbers))
    rows = session.execute(query)
    return {int(number): int(timestamp) for number, timestamp in rows.all()}


def ledger_page(
    engine: Engine, limit: int, *, account: str | None = None, job_id: int | None = None, cursor: str | None = None
) -> Page:
    """Newest first; ``cursor`` is ``block:log_index`` of the previous page's last entry."""
    credits = select(LedgerRow).order_by(col(LedgerRow.block_number).desc(), col(LedgerRow.log_index).desc())
    slashes = select(EventRow).where(col(EventRow.name) == "Slashed", col(EventRow.contract) == "market")
    slashes = slashes.order_by(col(EventRow.block_number).desc(), col(EventRow.log_index).desc())
    if account:
        credits = credits.where(func.lower(LedgerRow.account) == account.lower())
        slashes = slashes.where(func.lower(EventRow.account) == account.lower())
    if job_id is not None and not fits_integer(job_id):
        return Page([], None)  # no row has such an id
    if job_id is not None:
        credits = credits.where(col(LedgerRow.job_id) == job_id)
        slashes = slashes.where(col(EventRow.job_id) == job_id)
    if cursor:
        block, index = (min(int(part), MAX_INTEGER) for part in cursor.split(":", 1))  # past any row: page one
        for table in (LedgerRow, EventRow):
            before = or_(
                col(table.block_number) < block,
                and_(col(table.block_number) == block, col(table.log_index) < index),
            )
            if table is LedgerRow:
                credits = credits.where(before)
            else:
                slashes = slashes.where(before)
    with Session(engine) as session:
        found: list[LedgerRow | EventRow] = [
            *session.execute(credits.limit(limit + 1)).scalars(),
            *session.execute(slashes.limit(limit + 1)).scalars(),
        ]
        rows = sorted(found, key=lambda row: (row.block_number, row.log_index), reverse=True)[: limit + 1]
        times = block_times(session, {row.block_number for row in rows})
        causes = _causes(session, {row.job_id for row in rows if isinstance(row, EventRow) and row.job_id is not None})
    more = len(rows) > limit
    rows = rows[:limit]
    items = [slash_dict(row, times, causes) if isinstance(row, EventRow) else ledger_dict(row, times) for row in rows]
    return Page(items, f"{rows[-1].block_number}:{rows[-1].log_index}" if more else None)


def _causes(session: Session, job_ids: set[int]) -> dict[tuple[str, str, str], str]:
    """(transaction, account, role) → why the fold says a stake was slashed, for these jobs' slashes."""
    if not job_ids:
        return {}
    causes: dict[tuple[str, str, str], str] = {}
    for audit in session.execute(select(col(JobRow.audit)).where(col(JobRow.job_id).in_(job_ids))).scalars():
        for slash in json.loads(audit).get("slashes", []):
            if slash.get("cause"):
                causes[(slash["tx_hash"], slash["account"], slash["role"])] = slash["cause"]
    return causes


DAY_S = 86_400


def daily_earnings(payments: list[dict[str, Any]], now: int | None, days: int = 14) -> list[dict[str, Any]]:
    """Payments summed by UTC day, from the chain's block times: the last ``days`` days up to the chain's ``now``
    (the latest block indexed; the last payment's day before there is one), each day present, zero or not."""
    timed = [(int(payment["time"]), int(payment["amount"])) for payment in payments if payment.get("time")]
    end = now if now is not None else max((at for at, _ in timed), default=None)
    if end is None:
        return []
    last_day = end // DAY_S
    totals = {day: 0 for day in range(last_day - days + 1, last_day + 1)}
    for at, amount in timed:
        if at // DAY_S in totals:
            totals[at // DAY_S] += amount
    return [{"day": datetime.fromtimestamp(day * DAY_S, UTC).date().isoformat(), "amount": str(amount)}
            for day, amount in totals.items()]
