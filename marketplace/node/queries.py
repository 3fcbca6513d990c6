"""Read-side queries over the indexer's tables, shared by the REST API and the dashboard.

Everything here is a plain read in one short session: the indexer writes in its own transactions
and SQLite's WAL lets both run at once.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from marketplace.errors import ContentNotFoundError, WebiError
from marketplace.indexer.models import (
    MAX_INTEGER,
    AccountRow,
    BlockRow,
    EventRow,
    JobRow,
    LedgerRow,
    StakeRow,
    fits_integer,
)
from marketplace.node.explain import unclaimed, verdict_reasons
from marketplace.node.ledger import Page, block_times, daily_earnings, ledger_dict, ledger_page
from marketplace.node.timeline import JobContext, describe
from marketplace.output_json import parse_document
from marketplace.protocol import LIVE_STATES as LIVE_JOB_STATES
from marketplace.protocol import Confidentiality, Stake, sampled_task_indices
from marketplace.provider_offers import ProviderOffer
from marketplace.storage.cid import Cid
from marketplace.storage.store import ContentStore

MAX_DOCUMENT = 1024 * 1024  # spec and metadata documents are small; larger ones are not shown inline
LIVE_STATES = frozenset(state.name.lower() for state in LIVE_JOB_STATES)  # the jobs whose escrow the market holds


def job_dict(row: JobRow) -> dict[str, Any]:
    return {
        "job_id": row.job_id,
        "state": row.state,
        "requester": row.requester,
        "provider": row.provider,
        "verifier": row.verifier,
        "verdict": row.verdict,
        "challenger": row.challenger,
        "spec_cid": row.spec_cid,
        "price": row.price,
        "audit_fee": row.audit_fee,
        "num_tasks": row.num_tasks,
        "sample_tasks": row.sample_tasks,
        "collateral": row.collateral,
        "output_cid": row.output_cid,
        "result_root": row.result_root,
        "evidence_cid": row.evidence_cid,
        "sample_seed": row.sample_seed,
        "bond": row.bond,
        "burned": row.burned,
        "posted_block": row.posted_block,
        "posted_at": row.posted_at,
        "updated_block": row.updated_block,
        "confidential": confidentiality(row),
    }


def confidentiality(row: JobRow) -> str | None:
    """``"open"`` or ``"directed"`` for a confidential job (its contents are ciphertext: pages show
    CIDs, never values), ``None`` for a public one."""
    level = int(json.loads(row.terms).get("confidentiality", 0))
    return None if level == Confidentiality.PUBLIC else Confidentiality(level).name.lower()


class Queries:
    def __init__(self, engine: Engine, store: ContentStore | None = None, page_size: int = 50) -> None:
        self.engine = engine
        self.store = store
        self.page_size = page_size

    # ───────────────────────────────────────────── jobs

    def jobs(
        self,
        *,
        state: str | None = None,
        requester: str | None = None,
        provider: str | None = None,
        verifier: str | None = None,
        cursor: int | None = None,
        limit: int | None = None,
    ) -> Page:
        """Newest first; ``cursor`` is the last job id of the previous page."""
        limit = limit or self.page_size
        query = select(JobRow).order_by(JobRow.job_id.desc()).limit(limit + 1)  # type: ignore[attr-defined]
        if state:
            query = query.where(JobRow.state == state)
        if requester:
            query = query.where(func.lower(JobRow.requester) == requester.lower())
        if provider:
            query = query.where(func.lower(JobRow.provider) == provider.lower())
        if verifier:
            query = query.where(func.lower(JobRow.verifier) == verifier.lower())
        if cursor is not None:  # a cursor past any id is the first page
            query = query.where(JobRow.job_id < min(cursor, MAX_INTEGER))
        with Session(self.engine) as session:
            rows = list(session.execute(query).scalars())
        more = len(rows) > limit
        rows = rows[:limit]
        return Page([job_dict(row) for row in rows], str(rows[-1].job_id) if more else None)

    def job(self, job_id: int) -> dict[str, Any] | None:
        if not fits_integer(job_id):
            return None
        with Session(self.engine) as session:
            row = session.get(JobRow, job_id)
            if row is None:
                return None
            events = list(
                session.execute(
                    select(EventRow)
                    .where(EventRow.job_id == job_id)
                    .order_by(EventRow.block_number, EventRow.log_index)
                ).scalars()
            )
            ledger = list(
                session.execute(
                    select(LedgerRow)
                    .where(LedgerRow.job_id == job_id)
                    .order_by(LedgerRow.block_number, LedgerRow.log_index)
                ).scalars()
            )
            times = block_times(session, {event.block_number for event in events})
        detail = job_dict(row)
        detail["terms"] = json.loads(row.terms)
        audit = json.loads(row.audit)
        challenge = json.loads(row.challenge) if row.challenge else None
        context = JobContext.of(audit, challenge, row.requester)
        detail["timeline"] = [  # in block order; credits are the ledger entries below
            {
                "event": event.name,
                "summary": describe(event.name, args, event.tx_hash, context),
                "block_number": event.block_number,
                "log_index": event.log_index,
                "tx_hash": event.tx_hash,
                "time": times.get(event.block_number),
                "args": args,
            }
            for event, args in ((event, json.loads(event.args)) for event in events)
            if event.name != "Credited"
        ]
        detail["ledger"] = [ledger_dict(entry, times) for entry in ledger]
        detail["spec"] = self.document(row.spec_cid)
        evidence = self.document(row.evidence_cid)
        detail["outputs"] = {"cid": row.output_cid, "result_root": row.result_root} if row.output_cid else None
        detail["audit"] = {
            "verifier": row.verifier,
            "verdict": row.verdict,
            "final": row.state in ("finalized", "rejected"),
            "verifier_verdict": audit["verifier_verdict"],
            "evidence_cid": row.evidence_cid,
            "evidence": evidence,
            "reasons": verdict_reasons(evidence),
            "sample_seed": row.sample_seed,
            "sampled_tasks": (
                sampled_task_indices(bytes.fromhex(row.sample_seed.removeprefix("0x")), row.num_tasks, row.sample_tasks)
                if row.sample_seed
                else None
            ),
            "draws": audit["draws"],
            "missed": audit["missed"],
            "reveal_by": audit["reveal_by"],
            "revealed_tasks": audit["revealed_tasks"],
        }
        detail["slashes"] = audit.get("slashes", [])
        detail["challenge"] = challenge
        detail["unclaimed"] = unclaimed(detail, self._offers(), self._chain_time()) if row.state == "open" else None
        return detail

    def latest_job_id(self) -> int | None:
        """The newest job indexed (``None`` before the first), for a page about a job that is not."""
        with Session(self.engine) as session:
            latest = session.execute(select(func.max(JobRow.job_id))).scalar()
        return None if latest is None else int(latest)

    def _offers(self) -> list[ProviderOffer]:
        """Every provider with a stake, with its registration metadata (what it published about its terms)."""
        with Session(self.engine) as session:
            stakes = list(session.execute(select(StakeRow).where(StakeRow.role == "provider")).scalars())
        return [
            ProviderOffer.from_metadata(
                stake.account,
                Stake(int(stake.stake), int(stake.locked), stake.unlock_at, stake.duties, int(stake.unbonding)),
                self.document(stake.metadata_cid),
            )
            for stake in stakes
            if stake.stake != "0"
        ]

    def _chain_time(self) -> int | None:
        """The timestamp of the latest block the indexer kept (it keeps each scan's last): the chain's now."""
        with Session(self.engine) as session:
            row = session.execute(select(BlockRow.timestamp).order_by(BlockRow.number.desc()).limit(1)).first()  # type: ignore[attr-defined]
        return None if row is None else int(row[0])

    # ───────────────────────────────────────────── providers

    def providers(self) -> list[dict[str, Any]]:
        with Session(self.engine) as session:
            stakes = list(
                session.execute(
                    select(StakeRow).where(StakeRow.role == "provider").order_by(StakeRow.registered_block)
                ).scalars()
            )
            counts: dict[str, Counter[str]] = {}
            for provider, state, count in session.execute(
                select(JobRow.provider, JobRow.state, func.count())
                .where(JobRow.provider.is_not(None))  # type: ignore[union-attr]
                .group_by(JobRow.provider, JobRow.state)
            ).all():
                counts.setdefault(provider, Counter())[state] = count
            expired = dict(
                session.execute(
                    select(EventRow.account, func.count())
                    .where(EventRow.name == "ClaimExpired")
                    .group_by(EventRow.account)
                ).all()
            )
            earned = {
                row.address: json.loads(row.earned)
                for row in session.execute(
                    select(AccountRow).where(AccountRow.address.in_([stake.account for stake in stakes]))
                ).scalars()
            }  # type: ignore[attr-defined]
        return [
            self._provider_summary(
                stake,
                counts.get(stake.account, Counter()),
                int(expired.get(stake.account, 0)),
                earned.get(stake.account, {}),
            )
            for stake in stakes
        ]

    def provider(self, address: str) -> dict[str, Any] | None:
        with Session(self.engine) as session:
            stake = (
                session.execute(
                    select(StakeRow).where(func.lower(StakeRow.account) == address.lower(), StakeRow.role == "provider")
                )
                .scalars()
                .first()
            )
            if stake is None:
                return None
            jobs = list(
                session.execute(
                    select(JobRow).where(JobRow.provider == stake.account).order_by(JobRow.job_id.desc())
                ).scalars()
            )  # type: ignore[attr-defined]
            expired = session.execute(
                select(func.count())
                .select_from(EventRow)
                .where(EventRow.name == "ClaimExpired", EventRow.account == stake.account)
            ).one()[0]
            account = session.get(AccountRow, stake.account)
            payments = list(
                session.execute(
                    select(LedgerRow)
                    .where(LedgerRow.account == stake.account, LedgerRow.kind == "provider_payment")
                    .order_by(LedgerRow.block_number, LedgerRow.log_index)
                ).scalars()
            )
            claims = {
                event.job_id: event.block_number
                for event in session.execute(
                    select(EventRow).where(EventRow.name == "JobClaimed", EventRow.account == stake.account)
                ).scalars()
            }
            submits = {
                event.job_id: event.block_number
                for event in session.execute(
                    select(EventRow).where(EventRow.name == "ResultSubmitted", EventRow.account == stake.account)
                ).scalars()
            }
            times = block_times(session, {*claims.values(), *submits.values(), *(p.block_number for p in payments)})
        summary = self._provider_summary(
            stake, Counter(job.state for job in jobs), int(expired), json.loads(account.earned) if account else {}
        )
        summary["jobs"] = [job_dict(job) for job in jobs]
        summary["earnings"] = []
        total = 0
        for payment in payments:
            total += int(payment.amount)
            summary["earnings"].append(
                {
                    "time": times.get(payment.block_number),
                    "job_id": payment.job_id,
                    "amount": payment.amount,
                    "cumulative": str(total),
                }
            )
        summary["earnings_daily"] = daily_earnings(summary["earnings"], self._chain_time())
        summary["throughput"] = [
            {
                "job_id": job.job_id,
                "num_tasks": job.num_tasks,
                "seconds": times[submits[job.job_id]] - times[claims[job.job_id]],
            }
            for job in jobs
            if job.job_id in submits
            and job.job_id in claims
            and claims[job.job_id] in times
            and submits[job.job_id] in times
        ]
        summary["metadata"] = self.document(stake.metadata_cid) if stake.metadata_cid else None
        summary["credits"] = account.credits if account else "0"
        return summary

    def _provider_summary(
        self, stake: StakeRow, states: Counter[str], expired: int, earned: dict[str, str]
    ) -> dict[str, Any]:
        settled = states.get("finalized", 0) + states.get("rejected", 0) + expired
        return {
            "address": stake.account,
            "stake": stake.stake,
            "locked": stake.locked,
            "unbonding": stake.unbonding,
            "slashed": stake.slashed,
            "metadata_cid": stake.metadata_cid,
            "registered_block": stake.registered_block,
            "jobs_by_state": dict(states),
            "claims_expired": expired,
            "success_rate": round(states.get("finalized", 0) / settled, 4) if settled else None,
            "earned": earned.get("provider_payment", "0"),
        }

    # ───────────────────────────────────────────── ledger and stats

    def ledger(
        self,
        *,
        account: str | None = None,
        job_id: int | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page:
        """Credits, withdrawals and stake slashes, newest first (``ledger.ledger_page``)."""
        return ledger_page(self.engine, limit or self.page_size, account=account, job_id=job_id, cursor=cursor)

    def stats(self) -> dict[str, Any]:
        with Session(self.engine) as session:
            states = dict(session.execute(select(JobRow.state, func.count()).group_by(JobRow.state)).all())
            jobs = session.execute(
                select(JobRow.state, JobRow.price, JobRow.audit_fee, JobRow.bond, JobRow.burned)
            ).all()
            stakes = session.execute(select(StakeRow.role, StakeRow.stake, StakeRow.slashed)).all()
            kinds: Counter[str] = Counter()
            for kind, amount in session.execute(select(LedgerRow.kind, LedgerRow.amount)).all():
                kinds[kind] += int(amount)
            events = session.execute(select(func.count()).select_from(EventRow)).one()[0]
            named = dict(
                session.execute(
                    select(EventRow.name, func.count())
                    .where(EventRow.name.in_(("VerdictSubmitted", "Challenged")))  # type: ignore[attr-defined]
                    .group_by(EventRow.name)
                ).all()
            )
            resolved = [
                json.loads(args)
                for args in session.execute(select(EventRow.args).where(EventRow.name == "ChallengeResolved")).scalars()
            ]
        roles = Counter(role for role, stake, _ in stakes if stake != "0")
        return {
            "jobs": sum(states.values()),
            "jobs_by_state": states,
            "escrow": str(sum(int(price) + int(fee) for state, price, fee, _, _ in jobs if state in LIVE_STATES)),
            "bonds": str(sum(int(bond) for state, _, _, bond, _ in jobs if state == "challenged" and bond)),
            "burned": str(sum(int(burned) for *_, burned in jobs)),
            "slashed": str(sum(int(slashed) for _, _, slashed in stakes)),
            "providers": roles.get("provider", 0),
            "verifiers": roles.get("verifier", 0),
            "paid_to_providers": str(kinds["provider_payment"]),
            "verifier_fees": str(kinds["verifier_fee"]),
            "protocol_fees": str(kinds["protocol_fee"]),
            "refunds": str(kinds["refund"]),
            "rewards": str(kinds["reward"]),
            "panel_fees": str(kinds["panel_fee"]),
            "bond_refunds": str(kinds["bond_refund"]),
            "audits": int(named.get("VerdictSubmitted", 0)),  # verdicts submitted: one a job at most
            "challenged": int(named.get("Challenged", 0)),
            "overturned": sum(1 for args in resolved if not args["upheld"]),
            "challenges_open": int(named.get("Challenged", 0)) - len(resolved),
            "events": events,
        }

    # ───────────────────────────────────────────── helpers

    def document(self, cid: str | None) -> dict[str, Any] | None:
        """A small JSON document from the node's store, or why it cannot be shown."""
        if not cid or self.store is None:
            return None
        try:
            value = parse_document(self.store.read_bytes(Cid.parse(cid), limit=MAX_DOCUMENT))
            return value if isinstance(value, dict) else {"value": value}
        except ContentNotFoundError:
            return {"error": "not in this node's store"}
        except (WebiError, ValueError) as error:  # a bad or foreign document must not break the page
            return {"error": str(error)}
