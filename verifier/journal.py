"""The verifier's journal: one SQLite row per submitted job it has looked at, and its block cursor.

An audit's evidence CID and verdict are written before the verdict transaction, so a restart
resubmits the same verdict instead of redoing the work (the secret it reveals is derived from the
key, and the chain refuses a second verdict anyway). A record also notes which draw of the job
the evidence belongs to: after a missed deadline the job is drawn again, from a new seed, and
any earlier sample is void.

A demand for outputs that could not be fetched is a stage of its own (``demanded``): a restart
follows the demand (the provider's reveal, or ``failUnrevealed`` once it is overdue) instead of
demanding again. ``unavailable_since`` holds the chain time the outputs were first missing, so the
grace before a demand survives restarts too.

Audits run on several threads (``verifier.pool``): every write goes through one lock, so that two
read-modify-write updates never interleave, and each thread's session has its own connection.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlmodel import Field, Session, SQLModel

from marketplace.journal import SqliteJournal

if TYPE_CHECKING:
    from marketplace.chain.market import JobMarket
    from marketplace.errors import ContractError

log = logging.getLogger(__name__)


class AuditStage(enum.StrEnum):
    WAITING = "waiting"        # submitted; no verifier drawn yet (we lock the seed), or not yet looked at
    CHECKED = "checked"        # drawn to us; evidence stored, verdict decided, not yet on-chain
    DEMANDED = "demanded"      # outputs unavailable past the grace: demandReveal sent; awaiting the reveal
    VERDICT = "verdict"        # our verdict is on-chain; following it through the challenge window
    SETTLED = "settled"        # the job settled after our verdict (finalized or rejected); final
    NOT_OURS = "not-ours"      # another verifier was drawn (reopened if it misses its deadline)
    MISSED = "missed"          # our verdict deadline passed first (reopened when the job is redrawn)
    CLOSED = "closed"          # the job left Submitted without our verdict; final


OPEN = (AuditStage.WAITING, AuditStage.CHECKED, AuditStage.DEMANDED, AuditStage.VERDICT)
# What a redraw (``VerifierMissed``) sends back to WAITING: the job is in the draw again.
REOPENED_BY_REDRAW = (AuditStage.WAITING, AuditStage.CHECKED, AuditStage.DEMANDED, AuditStage.NOT_OURS,
                      AuditStage.MISSED)


class AuditRecord(SQLModel, table=True):
    __tablename__ = "verifier_audits"

    job_id: int = Field(primary_key=True)
    stage: AuditStage = Field(index=True)
    output_cid: str = ""
    result_root: str = ""
    draw: int = 0  # the job's draw count (``Audit.draws``) the evidence was made for
    evidence_cid: str = ""
    passed: bool | None = None  # whether the provider is paid: a pass or an inconclusive verdict
    verdict: str = ""  # "pass", "fail" or "inconclusive" (``Verdict`` names), once decided
    unavailable_since: int = 0  # chain time the outputs were first found unavailable (0: never)
    reason: str = ""
    verdict_tx: str = ""
    attempts: int = 0
    retry_at: float = 0.0
    updated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class AuditCursor(SQLModel, table=True):
    __tablename__ = "verifier_cursor"

    name: str = Field(primary_key=True)
    block: int
    block_hash: str = ""  # of ``block`` when recorded: a reorg under the cursor shows as another hash


class AuditJournal(SqliteJournal[AuditRecord]):
    """The verifier's journal in ``path``."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, AuditRecord, AuditCursor, "result_submitted")
        self._writing = threading.RLock()

    def update(self, job_id: int, **changes: object) -> AuditRecord:
        with self._writing:
            return super().update(job_id, **changes)

    def end(self, record: AuditRecord, stage: AuditStage, reason: str, **changes: object) -> AuditRecord:
        """Moves ``record`` to ``stage`` for ``reason`` (journaled, cut to 500 characters, and logged)."""
        updated = self.update(record.job_id, stage=stage, reason=reason[:500], **changes)
        log.info("audit of job %d: %s (%s)", record.job_id, stage.value, reason)
        return updated

    def back_off(self, record: AuditRecord, error: object, *, base_s: float, max_doublings: int,
                 max_s: float) -> float:
        with self._writing:
            current = self.get(record.job_id) or record  # the attempts another thread counted meanwhile
            return super().back_off(current, error, base_s=base_s, max_doublings=max_doublings, max_s=max_s)

    def record_events(self, submitted: list[tuple[int, str, str]], redrawn: Iterable[int], up_to_block: int,
                      up_to_hash: str = "") -> None:
        """New submissions (job id, output CID, root hex), jobs whose verifier missed its deadline
        (back in the draw), and the cursor, in one transaction: none lost, none twice."""
        with self._writing, Session(self.engine) as session:
            for job_id, output_cid, root in submitted:
                if session.get(AuditRecord, job_id) is None:
                    session.add(AuditRecord(job_id=job_id, stage=AuditStage.WAITING, output_cid=output_cid,
                                            result_root=root))
            session.flush()
            for job_id in redrawn:
                record = session.get(AuditRecord, job_id)
                if record is not None and record.stage in REOPENED_BY_REDRAW:
                    record.stage, record.evidence_cid, record.passed = AuditStage.WAITING, "", None
                    record.verdict, record.unavailable_since = "", 0
                    record.attempts, record.retry_at, record.reason = 0, 0.0, "redrawn after a missed deadline"
                    record.updated_at = datetime.now(UTC)
                    session.add(record)
            cursor = session.get(AuditCursor, "result_submitted") or AuditCursor(name="result_submitted",
                                                                                 block=up_to_block)
            cursor.block, cursor.block_hash = up_to_block, up_to_hash
            session.add(cursor)
            session.commit()


def wait_for_redraw(market: JobMarket, journal: AuditJournal, job_id: int, error: ContractError) -> bool:
    """Whether ``error`` (refusing our verdict or reveal demand) means that nobody is drawn now: a reorg took
    away the draw that named us. The record then waits for the next draw, which may name us again, rather
    than ending "missed": only a ``VerifierMissed`` reopens a missed record, and none comes for a draw the
    chain no longer has, so the job would stay submitted."""
    if error.name != "NotAssignedVerifier" or market.audit_of(job_id).drawn:
        return False
    log.warning("job %d: the draw that named us is gone from the chain; waiting for the next", job_id)
    journal.update(job_id, stage=AuditStage.WAITING, evidence_cid="", passed=None, verdict="",
                   reason="the draw is gone from the chain (a reorg)")
    return True
