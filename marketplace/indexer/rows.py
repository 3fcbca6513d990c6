"""The indexer's rows: the fold's records and the raw events as the tables store them.

Amounts become decimal strings (they pass SQLite's 2^63 and JavaScript's 2^53), details JSON;
``event_of`` reads a stored event back for the fold.
"""

from __future__ import annotations

import json
from typing import Any

from marketplace.history import ChainEvent, ChainState
from marketplace.history.views import ChallengeView, JobView, StakeView, VerifierRecord
from marketplace.indexer.models import EventRow
from marketplace.protocol import CreditKind

# The event argument that names the account an event row is filed under (first found wins).
_ACCOUNT_ARGS = ("account", "requester", "provider", "verifier", "challenger", "member", "from", "treasury")


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


def job_row(job: JobView, posted_at: int) -> dict[str, Any]:
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
        "audit": json.dumps(plain_json(audit_json(job))),
        "challenge": json.dumps(plain_json(challenge_json(challenge))) if challenge else None,
        "terms": json.dumps(plain_json(job.terms)),
        "posted_block": job.posted_block,
        "posted_at": posted_at,
        "updated_block": job.updated_block,
    }

def account_row(state: ChainState, address: str) -> dict[str, Any]:
    earned = {
        kind.name.lower(): str(amount)
        for (account, kind), amount in state.earned.items()
        if account == address
    }
    return {
        "address": address,
        "balance": str(state.balances.get(address, 0)),
        "credits": str(state.credits.get(address, 0)),
        "earned": json.dumps(earned),
    }


def stake_row(view: StakeView) -> dict[str, Any]:
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
        "weight": str(view.weight),
        "metadata_cid": view.metadata_cid,
        "registered_block": view.registered_block,
    }


def verifier_row(record: VerifierRecord) -> dict[str, Any]:
    return {
        "address": record.account,
        "draws": record.draws,
        "verdicts": json.dumps(record.verdicts, sort_keys=True),
        "audits": record.audits,
        "missed": record.missed,
        "reveal_demands": record.reveal_demands,
        "challenged": record.challenged,
        "overturned": record.overturned,
        "upheld": record.upheld,
        "panels": record.panels,
        "seats": record.seats,
        "votes": record.votes,
        "missed_votes": record.missed_votes,
    }


def audit_json(job: JobView) -> dict[str, Any]:
    return {
        "draws": job.draws,
        "seed": job.seed,
        "deadline": job.audit_deadline,
        "missed": job.missed,
        "verifier_verdict": job.audit_verdict.name.lower() if job.audit_verdict else None,
        "reveal_by": job.reveal_by,
        "revealed_tasks": job.revealed_tasks,
        "rearms": job.rearms,
        "slashes": [
            {
                "account": slash.account,
                "role": slash.role.name.lower(),
                "cause": slash.cause.value if slash.cause else None,
                "from_stake": str(slash.from_stake),
                "from_unbonding": str(slash.from_unbonding),
                "tx_hash": slash.tx_hash,
            }
            for slash in job.slashes
        ],
    }


def challenge_json(challenge: ChallengeView) -> dict[str, Any]:
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


def event_row(event: ChainEvent) -> dict[str, Any]:
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
        "args": json.dumps(plain_json(stored_args(event))),
    }


def stored_args(event: ChainEvent) -> dict[str, Any]:
    """The arguments as the events table keeps them: a ``KeyReleased``'s wrapped key as its length only.

    The bytes are ciphertext (harmless) and stay on-chain for whoever they were wrapped to; the fold
    does not read them, and rows (and the dashboard's event lists) stay small without them.
    """
    if event.name != "KeyReleased" or "wrappedKey" not in event.args:
        return event.args
    args = {key: value for key, value in event.args.items() if key != "wrappedKey"}
    wrapped = event.args["wrappedKey"]
    args["wrappedKeyLength"] = (len(wrapped) - 2) // 2 if isinstance(wrapped, str) else len(wrapped)
    return args


def event_of(row: EventRow) -> ChainEvent:
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


def ledger_row(event: ChainEvent) -> dict[str, Any] | None:
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
