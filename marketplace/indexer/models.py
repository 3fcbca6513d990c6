"""The indexer's tables. Raw events are the record; the other tables are projections of them.

Token amounts reach 2^96 and SQLite integers stop at 2^63, so amounts are stored as decimal strings
and summed in Python (the projections already hold the sums the API needs).
"""

from __future__ import annotations

from sqlmodel import Field, SQLModel

# The widest integer a column holds (SQLite's INTEGER, PostgreSQL's BIGINT). A request's id or cursor past it
# names no row, and must never reach a query: sqlite3 refuses to bind it (OverflowError).
MAX_INTEGER = 2**63 - 1


def fits_integer(value: int) -> bool:
    """Whether ``value`` fits an integer column, so that it may be bound in a query."""
    return -MAX_INTEGER - 1 <= value <= MAX_INTEGER


class EventRow(SQLModel, table=True):
    __tablename__ = "events"

    block_number: int = Field(primary_key=True)
    log_index: int = Field(primary_key=True)
    block_hash: str
    tx_hash: str
    contract: str
    name: str = Field(index=True)
    job_id: int | None = Field(default=None, index=True)
    account: str | None = Field(default=None, index=True)
    args: str  # JSON, big integers as strings


class BlockRow(SQLModel, table=True):
    """Blocks the indexer has seen (those with events, and each scan's last): reorgs are found by hash."""

    __tablename__ = "blocks"

    number: int = Field(primary_key=True)
    hash: str
    timestamp: int


class CursorRow(SQLModel, table=True):
    __tablename__ = "cursor"

    name: str = Field(primary_key=True)
    block_number: int
    block_hash: str


class JobRow(SQLModel, table=True):
    """A job as its events describe it. ``verdict`` is the provisional one while audited or
    challenged, then the final one; ``audit`` and ``challenge`` hold the details as JSON."""

    __tablename__ = "jobs"

    job_id: int = Field(primary_key=True)
    state: str = Field(index=True)
    requester: str = Field(index=True)
    provider: str | None = Field(default=None, index=True)
    verifier: str | None = Field(default=None, index=True)
    spec_cid: str
    price: str
    audit_fee: str
    num_tasks: int
    sample_tasks: int
    collateral: str
    output_cid: str | None = None
    result_root: str | None = None
    verdict: str | None = None  # pass, fail, inconclusive
    evidence_cid: str | None = None
    sample_seed: str | None = None
    challenger: str | None = Field(default=None, index=True)
    bond: str | None = None
    burned: str = "0"
    audit: str  # JSON: draws, seed, missed verifiers, reveal demand, the verifier's own verdict, slashes
    challenge: str | None = None  # JSON: challenger, bond, panel, votes, outcome
    terms: str  # JSON
    posted_block: int
    posted_at: int
    updated_block: int


class StakeRow(SQLModel, table=True):
    __tablename__ = "stakes"

    account: str = Field(primary_key=True)
    role: str = Field(primary_key=True)
    stake: str
    locked: str
    unbonding: str
    unlock_at: int
    duties: int = 0
    secret_hash: str | None = None
    slashed: str = "0"
    weight: str = "0"  # verifiers: the weight in the draw, as last applied in a sync phase
    metadata_cid: str
    registered_block: int


class VerifierRow(SQLModel, table=True):
    """A verifier's track record (``history.VerifierRecord``): draws, verdicts, challenges, panel seats."""

    __tablename__ = "verifiers"

    address: str = Field(primary_key=True)
    draws: int = 0
    verdicts: str = "{}"  # JSON {pass|fail|inconclusive: count}
    audits: int = 0  # verdicts submitted
    missed: int = 0
    reveal_demands: int = 0
    challenged: int = 0
    overturned: int = 0
    upheld: int = 0
    panels: int = 0
    seats: int = 0
    votes: int = 0
    missed_votes: int = 0


class AccountRow(SQLModel, table=True):
    """Per address: WEBI held (token balance), withdrawable credits, and lifetime earnings by kind."""

    __tablename__ = "accounts"

    address: str = Field(primary_key=True)
    balance: str
    credits: str
    earned: str  # JSON {kind: amount}


class LedgerRow(SQLModel, table=True):
    """The ledger: every credit (``Credited``) and every withdrawal, in chain order."""

    __tablename__ = "ledger"

    block_number: int = Field(primary_key=True)
    log_index: int = Field(primary_key=True)
    tx_hash: str
    account: str = Field(index=True)
    job_id: int | None = Field(default=None, index=True)
    kind: str
    amount: str  # positive for credits, negative for withdrawals
