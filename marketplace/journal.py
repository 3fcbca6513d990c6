"""A daemon's journal in SQLite: one row per job it follows, and the block its event scan reached.

Shared by the provider and the verifier daemons, each with its own record table. New jobs and the
cursor are written in one transaction, so a crash between them neither loses a job nor counts it
twice; WAL mode lets a status command read while the daemon writes. Columns added to a record
after a journal was created are added to it when it is opened (with their defaults), so a daemon
upgraded in place resumes its old journal. Two processes may open a new journal at once (the daemon
starting while a status command reads it): the schema is created under a lock file beside it, since
SQLite's ``CREATE TABLE`` after SQLAlchemy's "does it exist?" check is not atomic.

The cursor keeps the hash of its block too. A chain that no longer has that block reorganized under
the scan: ``scan_start`` then rescans from ``REORG_REWIND_BLOCKS`` before it, since the replaced blocks
can hold events (a resubmitted result, a new draw) at numbers the scan had passed. Rescanning is
harmless: a job already journaled is never added twice.
"""

from __future__ import annotations

import fcntl
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy import Engine, event, inspect, text
from sqlmodel import Session, SQLModel, col, create_engine, select
from web3.exceptions import BlockNotFound

if TYPE_CHECKING:
    from marketplace.chain.client import ChainClient

Record = TypeVar("Record", bound=SQLModel)
log = logging.getLogger(__name__)
# How far back a scan starts again after a reorg under its cursor.
# @dev Warning: assumes no reorg is deeper than this: on Ethereum a block 64 slots deep is final (two
# epochs); a devnet restarted from an older state (scripts/chaos.py) rewinds at most tens of blocks.
REORG_REWIND_BLOCKS = 128


class SqliteJournal(Generic[Record]):
    """Rows of ``record`` (a SQLModel table with ``job_id``, ``stage`` and ``updated_at``) plus a cursor row
    of ``cursor`` (a table with ``name`` and ``block``) named ``cursor_name``."""

    def __init__(self, path: Path, record: type[Record], cursor: type[Any], cursor_name: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 30})
        event.listen(self.engine, "connect", _pragmas)
        tables = [SQLModel.metadata.tables[str(table.__tablename__)] for table in (record, cursor)]
        with path.with_name(path.name + ".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            SQLModel.metadata.create_all(self.engine, tables=tables)
            for model in (record, cursor):
                _add_columns(self.engine, model)
        self._record = record
        self._cursor = cursor
        self._cursor_name = cursor_name

    def close(self) -> None:
        self.engine.dispose()

    def cursor(self) -> int | None:
        with Session(self.engine) as session:
            row = session.get(self._cursor, self._cursor_name)
            return None if row is None else int(row.block)

    def cursor_hash(self) -> str:
        """The hash of the cursor's block when it was recorded ("" for a cursor an older WEBI wrote)."""
        with Session(self.engine) as session:
            row = session.get(self._cursor, self._cursor_name)
            return "" if row is None else str(row.block_hash)

    def scan_start(self, client: ChainClient, from_block: int) -> int:
        """The first block the next scan reads: the one after the cursor, or ``REORG_REWIND_BLOCKS`` before the
        cursor when the chain's block at the cursor is no longer the one recorded (a reorg)."""
        cursor = self.cursor()
        if cursor is None:
            return from_block
        recorded = self.cursor_hash()
        if recorded and block_hash(client, cursor) != recorded:
            start = max(from_block, cursor - REORG_REWIND_BLOCKS)
            log.warning("the chain reorganized under block %d: scanning again from block %d", cursor, start)
            return start
        return cursor + 1

    def scan_window(self, client: ChainClient, from_block: int, head: int) -> tuple[int, str] | None:
        """Where the next event scan up to ``head`` starts, and ``head``'s hash to record with the cursor
        after it; None when there is nothing new to scan. The hash is read before the scan, so a reorg
        during the scan shows at the next one."""
        start = self.scan_start(client, from_block)
        if head < start:
            return None
        return start, block_hash(client, head)

    def add_new(self, records: Iterable[Record], up_to_block: int, up_to_hash: str = "") -> None:
        """Adds the records not yet journaled and moves the cursor to ``up_to_block`` (whose hash is
        ``up_to_hash``), atomically."""
        with Session(self.engine) as session:
            for record in records:
                if session.get(self._record, record.job_id) is None:  # type: ignore[attr-defined]
                    session.add(record)
            cursor = session.get(self._cursor, self._cursor_name) or self._cursor(name=self._cursor_name,
                                                                                  block=up_to_block)
            cursor.block, cursor.block_hash = up_to_block, up_to_hash
            session.add(cursor)
            session.commit()

    def get(self, job_id: int) -> Record | None:
        with Session(self.engine) as session:
            return session.get(self._record, job_id)

    def all(self) -> list[Record]:
        with Session(self.engine) as session:
            job_id = col(self._record.job_id)  # type: ignore[attr-defined]
            return list(session.exec(select(self._record).order_by(job_id)))

    def in_stages(self, stages: Iterable[object]) -> list[Record]:
        with Session(self.engine) as session:
            record = self._record
            query = select(record).where(col(record.stage).in_(list(stages)))  # type: ignore[attr-defined]
            return list(session.exec(query.order_by(col(record.job_id))))  # type: ignore[attr-defined]

    def due(self, stages: Iterable[object], *, ignore_backoff: bool = False) -> list[Record]:
        """The records in ``stages`` whose backoff has run out (all of them with ``ignore_backoff``)."""
        now = time.time()
        return [record for record in self.in_stages(stages)
                if ignore_backoff or record.retry_at <= now]  # type: ignore[attr-defined]

    def back_off(self, record: Record, error: object, *, base_s: float, max_doublings: int, max_s: float) -> float:
        """Records a failed attempt and schedules the next one, doubling the wait each time; returns it."""
        attempts: int = record.attempts  # type: ignore[attr-defined]
        delay: float = min(max_s, base_s * 2 ** min(attempts, max_doublings))
        self.update(record.job_id, attempts=attempts + 1, retry_at=time.time() + delay,  # type: ignore[attr-defined]
                    reason=str(error)[:500])
        return delay

    def update(self, job_id: int, **changes: object) -> Record:
        with Session(self.engine) as session:
            record = session.get(self._record, job_id)
            if record is None:
                raise KeyError(job_id)
            for key, value in changes.items():
                setattr(record, key, value)
            record.updated_at = datetime.now(UTC)
            session.add(record)
            session.commit()
            session.refresh(record)
            return record


def block_hash(client: ChainClient, number: int) -> str:
    """Block ``number``'s hash in hex ("" where the chain has no such block, as after a rewind below it)."""
    try:
        block = client.w3.eth.get_block(number)
    except BlockNotFound:  # a chain rewound below it
        return ""
    found = block.get("hash") if block else None
    return bytes(found).hex() if found else ""


def _pragmas(connection: object, _: object) -> None:
    cursor = connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _add_columns(engine: Engine, model: type[SQLModel]) -> None:
    """Adds the model's columns that an older journal file lacks (``create_all`` adds tables only)."""
    table = model.__table__  # type: ignore[attr-defined]
    present = {column["name"] for column in inspect(engine).get_columns(table.name)}
    missing = [column for column in table.columns if column.name not in present]
    if not missing:
        return
    with engine.begin() as connection:
        for column in missing:
            default = column.default.arg if column.default is not None and not callable(column.default.arg) else ""
            kind = column.type.compile(dialect=engine.dialect)
            literal = str(default).replace("'", "''")
            connection.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind} "
                                    f"NOT NULL DEFAULT '{literal}'"))
