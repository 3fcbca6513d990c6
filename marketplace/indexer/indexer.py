"""The indexer: the WEBI contracts' events into SQL, confirmed, reorg-safe, idempotent, resumable.

Each step first checks that the last block it indexed is still on the chain (by hash); if not, it
walks back through the blocks it stored to the newest one the chain still has, deletes everything
after it and folds the remaining events again. Then it scans from its cursor to ``head -
confirmations`` in chunks, one transaction per chunk: events, ledger rows, block hashes, the
projections the chunk touched and the cursor commit together, so a crash leaves either all of a
chunk or none of it, and a restart resumes from the cursor.

The fold (``ChainState``) lives in memory and is rebuilt from the stored events at start-up; at
the event counts of a young network that takes well under a second per 100,000 events.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, delete, insert, select, tuple_
from sqlalchemy.orm import Session

from marketplace.chain.artifacts import load_artifact
from marketplace.chain.client import ChainClient
from marketplace.chain.deployment import Deployment
from marketplace.errors import WebiError
from marketplace.history import ChainEvent, ChainState, EventDecoder, fetch_events
from marketplace.history.state import ChallengeView, JobView, StakeView
from marketplace.indexer.models import AccountRow, BlockRow, CursorRow, EventRow, JobRow, LedgerRow, StakeRow
from marketplace.protocol import CreditKind, Role

log = logging.getLogger(__name__)

CURSOR = "webi"
# The event argument that names the account an event row is filed under (first found wins).
_ACCOUNT_ARGS = ("account", "requester", "provider", "verifier", "challenger", "member", "from", "treasury")
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


def plain_json(value: Any) -> Any:
    """JSON-safe for JavaScript too: integers past 2^53 become strings."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**53 else str(value)
    if isinstance(value, dict):
        return {key: plain_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain_json(item) for item in value]
    return value


class Indexer:
    """Follows one deployment into ``engine``'s database."""

    def __init__(
        self, engine: Engine, client: ChainClient, deployment: Deployment, *, confirmations: int = 0, chunk: int = 2_000
    ) -> None:
        self.engine = engine
        self.client = client
        self.deployment = deployment
        self.confirmations = confirmations
        self.chunk = chunk
        self.decoder = decoder_for(deployment)
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

    def run(self, stop: threading.Event, interval: float = 1.0) -> None:
        """Steps until ``stop`` is set; a failing step is logged and retried after ``interval``."""
        while not stop.is_set():
            try:
                self.step()
            except (WebiError, OSError, ValueError) as error:
                log.warning("indexer step failed, retrying: %s", error)
            except Exception as error:  # the node keeps serving; the failure is visible in /healthz
                log.exception("indexer step failed: %s", error)
            stop.wait(interval)

    # ───────────────────────────────────────────── start-up and reorgs

    def _load(self) -> tuple[int, str]:
        with Session(self.engine) as session:
            self._times = {row.number: row.timestamp for row in session.execute(select(BlockRow)).scalars()}
            for row in session.execute(select(EventRow).order_by(EventRow.block_number, EventRow.log_index)).scalars():
                self.state.apply(_event_of(row))
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
            for table in (JobRow, StakeRow, AccountRow):
                session.execute(delete(table))  # type: ignore[call-overload]
            self._set_cursor(session, number, block_hash)
        self.state = ChainState()
        self._times = {key: value for key, value in self._times.items() if key <= number}
        self.cursor = self._load()
        with Session(self.engine) as session, session.begin():
            self._write_projections(session, self.state.jobs, self.state.stakes, self._all_accounts())
        self.reorgs += 1
        self.version += 1

    # ───────────────────────────────────────────── ingest

    def _ingest(self, start: int, end: int) -> bool:
        events = list(fetch_events(self.client, self.decoder, start, end, chunk=self.chunk))
        numbers = sorted({event.block_number for event in events} | {end})
        blocks = self._blocks(numbers)
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
                session.execute(insert(EventRow), params=[_row_of(event) for event in events])  # type: ignore[call-overload]
                ledger = [row for row in map(_ledger_of, events) if row is not None]
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
    ) -> None:
        accounts = sorted(accounts)
        if jobs:
            session.execute(delete(JobRow).where(JobRow.job_id.in_(list(jobs))))  # type: ignore[attr-defined]
            session.execute(insert(JobRow), params=[self._job_row(job) for job in jobs.values()])  # type: ignore[call-overload]
        if stakes:
            keys = [(account, role.name.lower()) for account, role in stakes]
            session.execute(delete(StakeRow).where(tuple_(StakeRow.account, StakeRow.role).in_(keys)))  # type: ignore[call-overload]
            session.execute(insert(StakeRow), params=[_stake_row(view) for view in stakes.values()])  # type: ignore[call-overload]
        if accounts:
            session.execute(delete(AccountRow).where(AccountRow.address.in_(accounts)))  # type: ignore[attr-defined]
            session.execute(insert(AccountRow), params=[self._account_row(address) for address in accounts])  # type: ignore[call-overload]

    def _job_row(self, job: JobView) -> dict[str, Any]:
        challenge = job.challenge
        return {
            "job_id": job.job_id,
            "state": job.state.name.lower(),
            "requester": job.requester,
            "provider": job.provider,
            "verifier": job.verifier,
            "spec_cid": job.spec_cid,
            "price": str(job.price),
            "audit_fee": str(job.audit_fee),
            "num_tasks": job.num_tasks,
            "sample_tasks": job.sample_tasks,
            "collateral": str(job.collateral),
            "output_cid": job.output_cid,
            "result_root": job.result_root,
            "verdict": job.verdict.name.lower() if job.verdict else None,
            "evidence_cid": job.evidence_cid,
            "sample_seed": job.sample_seed,
            "challenger": challenge.challenger if challenge else None,
            "bond": str(challenge.bond) if challenge else None,
            "burned": str(job.burned),
            "audit": json.dumps(plain_json(_audit_json(job))),
            "challenge": json.dumps(plain_json(_challenge_json(challenge))) if challenge else None,
            "terms": json.dumps(plain_json(job.terms)),
            "posted_block": job.posted_block,
            "posted_at": self._times.get(job.posted_block, 0),
            "updated_block": job.updated_block,
        }

    def _account_row(self, address: str) -> dict[str, Any]:
        earned = {
            kind.name.lower(): str(amount)
            for (account, kind), amount in self.state.earned.items()
            if account == address
        }
        return {
            "address": address,
            "balance": str(self.state.balances.get(address, 0)),
            "credits": str(self.state.credits.get(address, 0)),
            "earned": json.dumps(earned),
        }


def _stake_row(view: StakeView) -> dict[str, Any]:
    return {
        "account": view.account,
        "role": view.role.name.lower(),
        "stake": str(view.stake),
        "locked": str(view.locked),
        "unbonding": str(view.unbonding),
        "unlock_at": view.unlock_at,
        "duties": view.duties,
        "secret_hash": view.secret_hash,
        "slashed": str(view.slashed),
        "metadata_cid": view.metadata_cid,
        "registered_block": view.registered_block,
    }


def _audit_json(job: JobView) -> dict[str, Any]:
    return {
        "draws": job.draws,
        "seed": job.seed,
        "deadline": job.audit_deadline,
        "missed": job.missed,
        "verifier_verdict": job.audit_verdict.name.lower() if job.audit_verdict else None,
        "reveal_by": job.reveal_by,
        "revealed_tasks": job.revealed_tasks,
        "rearms": job.rearms,
    }


def _challenge_json(challenge: ChallengeView) -> dict[str, Any]:
    return {
        "challenger": challenge.challenger,
        "bond": str(challenge.bond),
        "members": challenge.members,
        "committed": challenge.committed,
        "votes": {member: vote.name.lower() for member, vote in challenge.votes.items()},
        "commit_by": challenge.commit_by,
        "reveal_by": challenge.reveal_by,
        "outcome": challenge.outcome.name.lower() if challenge.outcome else None,
        "upheld": challenge.upheld,
        "open": challenge.open,
    }


def _row_of(event: ChainEvent) -> dict[str, Any]:
    account = next((event.args[key] for key in _ACCOUNT_ARGS if key in event.args), None)
    return {
        "block_number": event.block_number,
        "log_index": event.log_index,
        "block_hash": event.block_hash,
        "tx_hash": event.tx_hash,
        "contract": event.contract,
        "name": event.name,
        "job_id": event.job_id if event.contract == "market" else None,
        "account": account,
        "args": json.dumps(plain_json(event.args)),
    }


def _event_of(row: EventRow) -> ChainEvent:
    args = json.loads(row.args)
    return ChainEvent(row.block_number, row.block_hash, row.tx_hash, row.log_index, row.contract, row.name, _ints(args))


def _ints(value: Any) -> Any:
    """Undoes ``plain_json`` for the fold: decimal strings back to integers (CIDs and hex stay strings)."""
    if isinstance(value, dict):
        return {key: _ints(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_ints(item) for item in value]
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value


def _ledger_of(event: ChainEvent) -> dict[str, Any] | None:
    base = {"block_number": event.block_number, "log_index": event.log_index, "tx_hash": event.tx_hash}
    if event.name == "Credited":
        return {
            **base,
            "account": event.args["account"],
            "job_id": int(event.args["jobId"]),
            "kind": CreditKind(event.args["kind"]).name.lower(),
            "amount": str(event.args["amount"]),
        }
    if event.name == "Withdrawn":
        return {
            **base,
            "account": event.args["account"],
            "job_id": None,
            "kind": "withdrawn",
            "amount": str(-int(event.args["amount"])),
        }
    if event.name == "ProtocolFeesWithdrawn":
        return {
            **base,
            "account": event.args["treasury"],
            "job_id": None,
            "kind": "protocol_fees_withdrawn",
            "amount": str(-int(event.args["amount"])),
        }
    return None
