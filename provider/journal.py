"""The provider's journal: one SQLite row per job it has seen, and the block cursor.

Every step the daemon takes is written here before and after it touches the chain, so a restart
(even after ``kill -9``) knows what it was doing and can ask the chain how far it got. The chain
is the truth; the journal says which jobs to ask about.

Columns added after a journal was created are added to it when it is opened (``marketplace.journal``),
so an operator's existing journal keeps working across upgrades.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from pathlib import Path

from sqlmodel import Field, SQLModel

from marketplace.journal import SqliteJournal


class Stage(enum.StrEnum):
    SEEN = "seen"            # posted; not yet decided
    SKIPPED = "skipped"      # not for us (reason says why); final
    CLAIMED = "claimed"      # our claim is on-chain (an Open confidential job waits here for its key)
    RELEASING = "releasing"  # an Open confidential job's key never came or does not open: giving the claim back
    COMPUTED = "computed"    # outputs published; root known
    SUBMITTED = "submitted"  # our result is on-chain; following it to the end
    REVEALING = "revealing"  # a verifier demanded the sampled outputs; putting them on-chain
    APPEALING = "appealing"  # the verdict is fail; re-checking our outputs before challenging it
    FINALIZED = "finalized"  # paid; final
    REJECTED = "rejected"    # audit failed, collateral slashed; final
    LOST = "lost"            # another provider got it, or it ended without us; final
    FAILED = "failed"        # we could not finish it (reason says why); final


# After the submission: the job is ours and on-chain, and the daemon follows it to its end.
FOLLOWING = (Stage.SUBMITTED, Stage.REVEALING, Stage.APPEALING)
ACTIVE = (Stage.SEEN, Stage.CLAIMED, Stage.RELEASING, Stage.COMPUTED, *FOLLOWING)
FINAL = (Stage.SKIPPED, Stage.FINALIZED, Stage.REJECTED, Stage.LOST, Stage.FAILED)


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
    reveal_tx: str = ""
    challenge_tx: str = ""
    release_tx: str = ""  # an Open confidential job's claim given back (``releaseClaim``)
    appeal: str = ""  # once decided: whether we challenged a failed verdict, and why
    republished: str = ""  # the last audit event ("draw-N", "challenge") our outputs were re-added to the store for
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
    block_hash: str = ""  # of ``block`` when recorded: a reorg under the cursor shows as another hash


class Journal(SqliteJournal[JobRecord]):
    """The provider's journal in ``path``."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, JobRecord, Cursor, "job_posted")

    def record_posted(self, jobs: list[tuple[int, str, int, int]], up_to_block: int, up_to_hash: str = "") -> None:
        """New jobs (id, spec CID, tasks, price) and the cursor, in one transaction: none lost, none twice."""
        self.add_new((JobRecord(job_id=job_id, stage=Stage.SEEN, spec_cid=spec_cid, num_tasks=num_tasks,
                                price_wei=str(price)) for job_id, spec_cid, num_tasks, price in jobs), up_to_block,
                     up_to_hash)

