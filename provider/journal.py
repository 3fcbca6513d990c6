"""The provider's journal: one SQLite row per job it has seen, and the block cursor.

Every step the daemon takes is written here before and after it touches the chain, so a restart
(even after ``kill -9``) knows what it was doing and can ask the chain how far it got. The chain
is the truth; the journal says which jobs to ask about.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import event
from sqlmodel import Field, Session, SQLModel, col, create_engine, select


class Stage(enum.StrEnum):
    SEEN = "seen"            # posted; not yet decided
    SKIPPED = "skipped"      # not for us (reason says why); final
    CLAIMED = "claimed"      # our claim is on-chain
    COMPUTED = "computed"    # outputs published; root known
    SUBMITTED = "submitted"  # our result is on-chain; following it to the end
    FINALIZED = "finalized"  # paid; final
    REJECTED = "rejected"    # audit failed, collateral slashed; final
    LOST = "lost"            # another provider got it, or it ended without us; final
    FAILED = "failed"        # we could not finish it (reason says why); final


ACTIVE = (Stage.SEEN, Stage.CLAIMED, Stage.COMPUTED, Stage.SUBMITTED)


class JobRecord(SQLModel, table=True):
    __tablename__ = "provider_jobs"

    job_id: int = Field(primary_key=True)
    stage: Stage = Field(index=True)
    reason: str = ""
    spec_cid: str = ""
    output_cid: str = ""
    result_root: str = ""
    claim_tx: str = ""
    submit_tx: str = ""
    num_tasks: int = 0
    price_wei: str = "0"  # wei amounts overflow SQLite's 64-bit integers
    earned_wei: str = "0"
    attempts: int = 0
    retry_at: float = 0.0
    updated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class Cursor(SQLModel, table=True):
    __tablename__ = "provider_cursor"

    name: str = Field(primary_key=True)
    block: int


_TABLES = ("provider_jobs", "provider_cursor")


class Journal:
    """The journal in ``path`` (SQLite, WAL mode so the status command reads while the daemon writes)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 30})
        event.listen(self.engine, "connect", _pragmas)
        SQLModel.metadata.create_all(self.engine, tables=[SQLModel.metadata.tables[name] for name in _TABLES])

    def close(self) -> None:
        self.engine.dispose()

    def cursor(self) -> int | None:
        with Session(self.engine) as session:
            row = session.get(Cursor, "job_posted")
            return None if row is None else row.block

    def record_posted(self, job_ids: list[tuple[int, str, int, int]], up_to_block: int) -> None:
        """New jobs (id, spec CID, tasks, price) and the cursor, in one transaction: none lost, none twice."""
        with Session(self.engine) as session:
            for job_id, spec_cid, num_tasks, price in job_ids:
                if session.get(JobRecord, job_id) is None:
                    session.add(JobRecord(job_id=job_id, stage=Stage.SEEN, spec_cid=spec_cid, num_tasks=num_tasks,
                                          price_wei=str(price)))
            cursor = session.get(Cursor, "job_posted") or Cursor(name="job_posted", block=up_to_block)
            cursor.block = up_to_block
            session.add(cursor)
            session.commit()

    def get(self, job_id: int) -> JobRecord | None:
        with Session(self.engine) as session:
            return session.get(JobRecord, job_id)

    def active(self) -> list[JobRecord]:
        with Session(self.engine) as session:
            query = select(JobRecord).where(col(JobRecord.stage).in_(ACTIVE)).order_by(col(JobRecord.job_id))
            return list(session.exec(query))

    def all(self) -> list[JobRecord]:
        with Session(self.engine) as session:
            return list(session.exec(select(JobRecord).order_by(col(JobRecord.job_id))))

    def update(self, job_id: int, **changes: object) -> JobRecord:
        with Session(self.engine) as session:
            record = session.get(JobRecord, job_id)
            if record is None:
                raise KeyError(job_id)
            for key, value in changes.items():
                setattr(record, key, value)
            record.updated_at = datetime.now(UTC)
            session.add(record)
            session.commit()
            session.refresh(record)
            return record


def _pragmas(connection: object, _: object) -> None:
    cursor = connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


