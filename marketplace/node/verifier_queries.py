"""Read-side queries about verifiers: stake, weight in the draw, track record, slashes and earnings.

A verifier's word is worth what it risks and what it has done: the pages built from these show its
stake and its share of the draw (the weight applied at the last sync phase, ``WeightChanged``), the
audits it submitted and how many a panel overturned, the panels it sat on, every slash with its
cause, and what it earned (audit fees, panel fees, rewards). The figures come from the indexer's
``verifiers`` table (the fold's ``VerifierRecord``), its stake rows and its ledger.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from marketplace.indexer.models import AccountRow, BlockRow, EventRow, JobRow, LedgerRow, StakeRow, VerifierRow
from marketplace.protocol import Role

# What a verifier earns for its work; a returned bond is not earnings.
EARNING_KINDS = ("verifier_fee", "panel_fee", "reward")


class VerifierQueries:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def verifiers(self) -> list[dict[str, Any]]:
        """Every registered verifier, heaviest in the draw first."""
        with Session(self.engine) as session:
            stakes = list(session.execute(select(StakeRow).where(StakeRow.role == "verifier")).scalars())
            addresses = [stake.account for stake in stakes]
            records = {
                row.address: row
                for row in session.execute(select(VerifierRow).where(VerifierRow.address.in_(addresses))).scalars()  # type: ignore[attr-defined]
            }
            earned = {
                row.address: json.loads(row.earned)
                for row in session.execute(select(AccountRow).where(AccountRow.address.in_(addresses))).scalars()  # type: ignore[attr-defined]
            }
        total = sum(int(stake.weight) for stake in stakes)
        summaries = [
            _summary(stake, records.get(stake.account), earned.get(stake.account, {}), total) for stake in stakes
        ]
        return sorted(summaries, key=lambda item: (-int(item["weight"]), -int(item["stake"]), item["registered_block"]))

    def verifier(self, address: str) -> dict[str, Any] | None:
        """One verifier's summary with its audits, panel seats, slashes and earnings over time."""
        with Session(self.engine) as session:
            stake = (
                session.execute(
                    select(StakeRow).where(func.lower(StakeRow.account) == address.lower(), StakeRow.role == "verifier")
                )
                .scalars()
                .first()
            )
            if stake is None:
                return None
            account = stake.account
            weights: list[str] = list(
                session.execute(select(StakeRow.weight).where(StakeRow.role == "verifier")).scalars()
            )
            total = sum(int(weight) for weight in weights)
            record = session.get(VerifierRow, account)
            row = session.get(AccountRow, account)
            judged = list(
                session.execute(
                    select(JobRow).where(JobRow.verifier == account).order_by(JobRow.job_id.desc())  # type: ignore[attr-defined]
                ).scalars()
            )
            challenged = list(
                session.execute(
                    select(JobRow)
                    .where(JobRow.challenge.like(f"%{account}%"))  # type: ignore[union-attr]
                    .order_by(JobRow.job_id.desc())  # type: ignore[attr-defined]
                ).scalars()
            )
            slashed = list(
                session.execute(
                    select(EventRow)
                    .where(EventRow.name == "Slashed", EventRow.account == account)
                    .order_by(EventRow.block_number, EventRow.log_index)
                ).scalars()
            )
            slashed_jobs = {
                job.job_id: job
                for job in session.execute(
                    select(JobRow).where(JobRow.job_id.in_({event.job_id for event in slashed}))  # type: ignore[attr-defined]
                ).scalars()
            }
            payments = list(
                session.execute(
                    select(LedgerRow)
                    .where(LedgerRow.account == account, LedgerRow.kind.in_(EARNING_KINDS))  # type: ignore[attr-defined]
                    .order_by(LedgerRow.block_number, LedgerRow.log_index)
                ).scalars()
            )
            blocks = {event.block_number for event in slashed} | {payment.block_number for payment in payments}
            times = {
                int(number): int(timestamp)
                for number, timestamp in session.execute(
                    select(BlockRow.number, BlockRow.timestamp).where(BlockRow.number.in_(blocks))  # type: ignore[attr-defined]
                ).all()
            }
        summary = _summary(stake, record, json.loads(row.earned) if row else {}, total)
        summary["audits"] = [_audit(job) for job in judged if json.loads(job.audit)["verifier_verdict"]]
        summary["panels"] = [
            panel for panel in (_seat(job, account) for job in challenged) if panel is not None
        ]
        summary["slashes"] = [_slash(event, slashed_jobs.get(event.job_id or -1), times) for event in slashed]
        summary["slashes"] = [slash for slash in summary["slashes"] if slash["role"] == "verifier"]
        summary["earnings"] = []
        cumulative = 0
        for payment in payments:
            cumulative += int(payment.amount)
            summary["earnings"].append(
                {
                    "time": times.get(payment.block_number),
                    "job_id": payment.job_id,
                    "kind": payment.kind,
                    "amount": payment.amount,
                    "cumulative": str(cumulative),
                }
            )
        summary["credits"] = row.credits if row else "0"
        return summary


def _summary(stake: StakeRow, record: VerifierRow | None, earned: dict[str, str], total: int) -> dict[str, Any]:
    verdicts: dict[str, int] = json.loads(record.verdicts) if record else {}
    return {
        "address": stake.account,
        "stake": stake.stake,
        "unbonding": stake.unbonding,
        "weight": stake.weight,
        "weight_share": round(int(stake.weight) / total, 4) if total else None,
        "duties": stake.duties,
        "slashed": stake.slashed,
        "registered_block": stake.registered_block,
        "draws": record.draws if record else 0,
        "audits_done": record.audits if record else 0,
        "verdicts": {kind: verdicts.get(kind, 0) for kind in ("pass", "fail", "inconclusive")},
        "missed": record.missed if record else 0,
        "reveal_demands": record.reveal_demands if record else 0,
        "challenged": record.challenged if record else 0,
        "overturned": record.overturned if record else 0,
        "upheld": record.upheld if record else 0,
        "panels_sat": record.panels if record else 0,
        "seats": record.seats if record else 0,
        "votes": record.votes if record else 0,
        "missed_votes": record.missed_votes if record else 0,
        "earned": {kind: earned.get(kind, "0") for kind in EARNING_KINDS},
        "earned_total": str(sum(int(earned.get(kind, "0")) for kind in EARNING_KINDS)),
    }


def _outcome(challenge: dict[str, Any] | None) -> str | None:
    if challenge is None:
        return None
    if challenge["open"]:
        return "pending"
    if not challenge["members"]:
        return "dismissed"
    return "upheld" if challenge["upheld"] else "overturned"


def _audit(job: JobRow) -> dict[str, Any]:
    challenge = json.loads(job.challenge) if job.challenge else None
    return {
        "job_id": job.job_id,
        "state": job.state,
        "verdict": json.loads(job.audit)["verifier_verdict"],
        "final_verdict": job.verdict if job.state in ("finalized", "rejected") else None,
        "challenger": job.challenger,
        "challenge": _outcome(challenge),
    }


def _seat(job: JobRow, account: str) -> dict[str, Any] | None:
    challenge = json.loads(job.challenge or "{}")
    seats = challenge.get("members", []).count(account)
    if not seats:
        return None
    return {
        "job_id": job.job_id,
        "seats": seats,
        "vote": challenge["votes"].get(account),
        "outcome": challenge["outcome"],
        "challenge": _outcome(challenge),
    }


def _slash(event: EventRow, job: JobRow | None, times: dict[int, int]) -> dict[str, Any]:
    args = json.loads(event.args)
    role = Role(int(args["role"])).name.lower()
    causes = {
        (slash["tx_hash"], slash["account"], slash["role"]): slash["cause"]
        for slash in (json.loads(job.audit).get("slashes", []) if job else [])
    }
    return {
        "job_id": event.job_id,
        "role": role,
        "amount": str(int(args["fromStake"]) + int(args["fromUnbonding"])),
        "from_unbonding": str(args["fromUnbonding"]),
        "cause": causes.get((event.tx_hash, event.account, role)),
        "block_number": event.block_number,
        "time": times.get(event.block_number),
        "tx_hash": event.tx_hash,
    }
