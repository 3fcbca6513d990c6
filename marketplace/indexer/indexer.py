"""The indexer: the WEBI contracts' events into SQL, confirmed, reorg-safe, idempotent, resumable.

Each step first checks that the last block it indexed is still on the chain (by hash); if not, it
walks back through the blocks it stored to the newest one the chain still has, deletes everything
after it and folds the remaining events again. Then it scans from its cursor to ``head -
confirmations`` in chunks, one transaction per chunk: events, ledger rows, block hashes, the
projections the chunk touched and the cursor commit together, so a crash leaves either all of a
chunk or none of it, and a restart resumes from the cursor.

The fold (``ChainState``) lives in memory and is rebuilt from the stored events at start-up; at
the event counts of a young network that takes well under a second per 100,000 events.

Every answer from the chain and every poll's outcome go to a ``ChainWatch`` (``health.py``), which
``/healthz`` reads instead of asking the chain itself.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Engine, delete, insert, select, tuple_
from sqlalchemy.orm import Session
from web3.exceptions import Web3RPCError

from marketplace.chain.artifacts import load_artifact
from marketplace.chain.client import ChainClient
from marketplace.chain.deployment import Deployment
from marketplace.errors import WebiError
from marketplace.history import ChainEvent, ChainState, EventDecoder, fetch_events
from marketplace.history.views import JobView, StakeView, VerifierRecord
from marketplace.indexer.health import ChainWatch, one_line
from marketplace.indexer.models import (
    AccountRow,
    BlockRow,
    CursorRow,
    EventRow,
    JobRow,
    LedgerRow,
    StakeRow,
    VerifierRow,
)
from marketplace.indexer.rows import account_row, event_of, event_row, job_row, ledger_row, stake_row, verifier_row
from marketplace.protocol import Role

log = logging.getLogger(__name__)

CURSOR = "webi"
# Event arguments that name stakers whose stake rows an event may change.
_STAKER_ARGS = ("account", "provider", "verifier", "member", "challenger")


@dataclass(frozen=True)
class IndexerProgress:
    block: int  # last block indexed
    head: int  # chain head when the step started
    events: int  # events indexed in all
    reorgs: int  # rewinds since start


def decoder_for(deployment: Deployment) -> EventDecoder:
    return EventDecoder(
        {
            deployment.market: ("market", load_artifact("JobMarket").abi),
            deployment.token: ("token", load_artifact("WebiToken").abi),
        }
    )


def first_block(client: ChainClient, deployment: Deployment) -> int:
    """The block where the token's history starts (its mint, in its constructor), a block or more before
    the market's. Recorded at deployment; for older deployment files, the token's first log up to the
    market's block (logs, unlike historical state, are kept by pruned nodes and anvil alike)."""
    if deployment.token_block is not None:
        return deployment.token_block
    logs = client.w3.eth.get_logs({"address": deployment.token, "fromBlock": 0,  # type: ignore[typeddict-item]
                                   "toBlock": deployment.block})
    return min((int(log["blockNumber"]) for log in logs), default=deployment.block)


class Indexer:
    """Follows one deployment into ``engine``'s database."""

    def __init__(
        self,
        engine: Engine,
        client: ChainClient,
        deployment: Deployment,
        *,
        confirmations: int = 0,
        chunk: int = 2_000,
        watch: ChainWatch | None = None,
    ) -> None:
        self.engine = engine
        self.client = client
        self.deployment = deployment
        self.confirmations = confirmations
        self.chunk = chunk
        self.decoder = decoder_for(deployment)
        self.watch = watch or ChainWatch()
        self.reorgs = 0
        self.version = 0  # moves after every commit: readers cache what they computed until it does
        self.head = 0
        self.state = ChainState()
        self._times: dict[int, int] = {}
        self._lock = threading.Lock()
        self.cursor = self._load()

    # ───────────────────────────────────────────── public

    def step(self) -> IndexerProgress:
        """Catches up with the confirmed head once (rewinding first if the chain reorganized)."""
        with self._lock:
            self.head = int(self.client.w3.eth.block_number)
            self.watch.answered()
            self._check_reorg()
            target = self.head - self.confirmations
            while self.cursor[0] < target:
                end = min(self.cursor[0] + self.chunk, target)
                if not self._ingest(self.cursor[0] + 1, end):
                    break  # the chain moved under the scan: the next step rewinds
                if end < target:
                    log.info("indexed to block %d of %d (%d events)", end, target, self.state.events)
            return self.progress()

    def progress(self) -> IndexerProgress:
        return IndexerProgress(self.cursor[0], self.head, self.state.events, self.reorgs)

    def lag(self) -> int:
        return max(0, self.head - self.cursor[0])

    def poll(self) -> bool:
        """One step, its outcome recorded in ``watch``; a failure is logged (once while it repeats), not raised."""
        before = self.watch.snapshot().error
        self.watch.begin()
        try:
            self.step()
        except (WebiError, OSError, ValueError, Web3RPCError) as error:
            self.watch.ended(self.lag(), error)
            if one_line(error) != before:
                log.warning("indexer step failed, retrying: %s", error)
            return False
        except Exception as error:  # the node keeps serving; the failure is visible in /healthz
            self.watch.ended(self.lag(), error)
            if one_line(error) != before:
                log.exception("indexer step failed: %s", error)
            return False
        self.watch.ended(self.lag())
        if before is not None:
            log.info("indexer steps succeed again (the last failure: %s)", before)
        return True

    def run(self, stop: threading.Event, interval: float = 1.0) -> None:
        """Polls until ``stop`` is set; a failing step is retried after ``interval``."""
        while not stop.is_set():
            self.poll()
            stop.wait(interval)

    # ───────────────────────────────────────────── start-up and reorgs

    def _load(self) -> tuple[int, str]:
        with Session(self.engine) as session:
            self._times = {row.number: row.timestamp for row in session.execute(select(BlockRow)).scalars()}
            for row in session.execute(select(EventRow).order_by(EventRow.block_number, EventRow.log_index)).scalars():
                self.state.apply(event_of(row))
            cursor = session.get(CursorRow, CURSOR)
        if cursor is not None:
            return cursor.block_number, cursor.block_hash
        start = first_block(self.client, self.deployment)
        return start - 1, ""

    def _chain_hash(self, number: int) -> str | None:
        block = self.client.w3.eth.get_block(number) if number <= self.head else None
        return None if block is None else block["hash"].to_0x_hex()

    def _check_reorg(self) -> None:
        number, known = self.cursor
        if not known or self._chain_hash(number) == known:
            return
        with Session(self.engine) as session:
            rows = session.execute(
                select(BlockRow).where(BlockRow.number < number).order_by(BlockRow.number.desc())
            ).scalars()  # type: ignore[attr-defined]
            ancestor = next(((row.number, row.hash) for row in rows if self._chain_hash(row.number) == row.hash), None)
        if ancestor is None:
            start = first_block(self.client, self.deployment)
            ancestor = (start - 1, "")
        log.warning("chain reorganized below block %d: rewinding to block %d", number, ancestor[0])
        self._rewind(*ancestor)

    def _rewind(self, number: int, block_hash: str) -> None:
        with Session(self.engine) as session, session.begin():
            for table, column in (
                (EventRow, EventRow.block_number),
                (LedgerRow, LedgerRow.block_number),
                (BlockRow, BlockRow.number),
            ):
                session.execute(delete(table).where(column > number))  # type: ignore[call-overload]
            for table in (JobRow, StakeRow, AccountRow, VerifierRow):
                session.execute(delete(table))  # type: ignore[call-overload]
            self._set_cursor(session, number, block_hash)
        self.state = ChainState()
        self._times = {key: value for key, value in self._times.items() if key <= number}
        self.cursor = self._load()
        with Session(self.engine) as session, session.begin():
            self._write_projections(session, self.state.jobs, self.state.stakes, self._all_accounts(),
                                    self.state.verifiers)
        self.reorgs += 1
        self.version += 1

    # ───────────────────────────────────────────── ingest

    def _ingest(self, start: int, end: int) -> bool:
        events = list(fetch_events(self.client, self.decoder, start, end, chunk=self.chunk))
        self.watch.answered()
        numbers = sorted({event.block_number for event in events} | {end})
        blocks = self._blocks(numbers)
        self.watch.answered()
        if any(blocks[event.block_number][0] != event.block_hash for event in events):
            return False
        for event in events:
            self.state.apply(event)
        jobs = {event.job_id for event in events if event.job_id is not None and event.contract == "market"}
        stakes = self._stakers(events, jobs)
        accounts = {
            value
            for event in events
            for key, value in event.args.items()
            if key in ("account", "from", "to", "treasury") and isinstance(value, str)
        }
        with Session(self.engine) as session, session.begin():
            if events:
                session.execute(insert(EventRow), params=[event_row(event) for event in events])  # type: ignore[call-overload]
                ledger = [row for row in map(ledger_row, events) if row is not None]
                if ledger:
                    session.execute(insert(LedgerRow), params=ledger)  # type: ignore[call-overload]
            new_blocks = [
                {"number": n, "hash": blocks[n][0], "timestamp": blocks[n][1]} for n in numbers if n not in self._times
            ]
            if new_blocks:
                session.execute(insert(BlockRow), params=new_blocks)  # type: ignore[call-overload]
            self._times.update({n: blocks[n][1] for n in numbers})
            self._write_projections(
                session,
                {i: self.state.jobs[i] for i in jobs if i in self.state.jobs},
                {key: self.state.stakes[key] for key in stakes if key in self.state.stakes},
                accounts,
                {a: self.state.verifiers[a] for a, r in stakes if r == Role.VERIFIER and a in self.state.verifiers},
            )
            self._set_cursor(session, end, blocks[end][0])
        self.cursor = (end, blocks[end][0])
        if events:
            self.version += 1
        return True

    def _blocks(self, numbers: list[int]) -> dict[int, tuple[str, int]]:
        """Hash and timestamp of each block, in batched JSON-RPC requests."""
        found: dict[int, tuple[str, int]] = {}
        w3 = self.client.w3
        for offset in range(0, len(numbers), 500):
            part = numbers[offset : offset + 500]
            with w3.batch_requests() as batch:
                for number in part:
                    batch.add(w3.eth.get_block(number))
                replies = batch.execute()
            for number, block in zip(part, replies, strict=True):
                found[number] = (block["hash"].to_0x_hex(), int(block["timestamp"]))
        return found

    def _stakers(self, events: list[ChainEvent], jobs: set[int]) -> set[tuple[str, Role]]:
        """The stake rows ``events`` may have changed: stakers they name, and the parties of the jobs
        they touch (a settlement names only the job, yet releases collateral and verifier duties)."""
        named = {
            str(value)
            for event in events
            if event.contract == "market"
            for key, value in event.args.items()
            if key in _STAKER_ARGS
        }
        named |= {str(member) for event in events if event.name == "PanelDrawn" for member in event.args["members"]}
        for job in (self.state.jobs[i] for i in jobs if i in self.state.jobs):
            named |= {party for party in (job.provider, job.verifier) if party}
            named |= set(job.missed)
            if job.challenge is not None:
                named |= set(job.challenge.members)
        return {(account, role) for account in named for role in Role if (account, role) in self.state.stakes}

    def _set_cursor(self, session: Session, number: int, block_hash: str) -> None:
        cursor = session.get(CursorRow, CURSOR) or CursorRow(name=CURSOR, block_number=number, block_hash=block_hash)
        cursor.block_number, cursor.block_hash = number, block_hash
        session.add(cursor)

    # ───────────────────────────────────────────── projections

    def _all_accounts(self) -> set[str]:
        return set(self.state.balances) | set(self.state.credits) | {account for account, _ in self.state.earned}

    def _write_projections(
        self,
        session: Session,
        jobs: dict[int, JobView],
        stakes: dict[tuple[str, Role], StakeView],
        accounts: Iterable[str],
        verifiers: dict[str, VerifierRecord],
    ) -> None:
        accounts = sorted(accounts)
        if jobs:
            session.execute(delete(JobRow).where(JobRow.job_id.in_(list(jobs))))  # type: ignore[attr-defined]
            rows = [job_row(job, self._times.get(job.posted_block, 0)) for job in jobs.values()]
            session.execute(insert(JobRow), params=rows)  # type: ignore[call-overload]
        if stakes:
            keys = [(account, role.name.lower()) for account, role in stakes]
            session.execute(delete(StakeRow).where(tuple_(StakeRow.account, StakeRow.role).in_(keys)))  # type: ignore[call-overload]
            session.execute(insert(StakeRow), params=[stake_row(view) for view in stakes.values()])  # type: ignore[call-overload]
        if accounts:
            session.execute(delete(AccountRow).where(AccountRow.address.in_(accounts)))  # type: ignore[attr-defined]
            session.execute(insert(AccountRow), params=[account_row(self.state, address) for address in accounts])  # type: ignore[call-overload]
        if verifiers:
            session.execute(delete(VerifierRow).where(VerifierRow.address.in_(list(verifiers))))  # type: ignore[attr-defined]
            session.execute(insert(VerifierRow), params=[verifier_row(record) for record in verifiers.values()])  # type: ignore[call-overload]
