"""The verifier's journal: one SQLite row per submitted job it has looked at, and its block cursor.

An audit's evidence CID and verdict are written before the verdict transaction, so a restart
resubmits the same verdict instead of redoing the work (and the chain refuses a second one anyway).
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from pathlib import Path

from sqlmodel import Field, SQLModel

from marketplace.journal import SqliteJournal


class AuditStage(enum.StrEnum):
    WAITING = "waiting"        # submitted; seed block not yet mined, or not yet looked at
    CHECKED = "checked"        # evidence stored, verdict decided, not yet on-chain
    VERDICT = "verdict"        # our verdict is on-chain; final
    NOT_OURS = "not-ours"      # not audited, or assigned to another verifier; final
    MISSED = "missed"          # the audit window closed first; final
    CLOSED = "closed"          # the job left Submitted without us (finalized, rejected); final


OPEN = (AuditStage.WAITING, AuditStage.CHECKED)


class AuditRecord(SQLModel, table=True):
    __tablename__ = "verifier_audits"

    job_id: int = Field(primary_key=True)
    stage: AuditStage = Field(index=True)
    output_cid: str = ""
    result_root: str = ""
    evidence_cid: str = ""
    passed: bool | None = None
    reason: str = ""
    verdict_tx: str = ""
    attempts: int = 0
    retry_at: float = 0.0
    updated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class AuditCursor(SQLModel, table=True):
    __tablename__ = "verifier_cursor"

    name: str = Field(primary_key=True)
    block: int


class AuditJournal(SqliteJournal[AuditRecord]):
    """The verifier's journal in ``path``."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, AuditRecord, AuditCursor, "result_submitted")

    def record_submitted(self, jobs: list[tuple[int, str, str]], up_to_block: int) -> None:
        """New submissions (job id, output CID, root hex) and the cursor, in one transaction."""
        self.add_new((AuditRecord(job_id=job_id, stage=AuditStage.WAITING, output_cid=output_cid, result_root=root)
                      for job_id, output_cid, root in jobs), up_to_block)
