"""A job's stored events in words, for its timeline on the API and the dashboard.

The events are the record (``/v1/jobs/{id}`` returns each with its arguments); a person reading a
job's history wants to see at a glance who drew whom, what the verdict was, who challenged it, how
the panel voted, what was demanded and revealed, who was slashed for what and what was burned.
Each sentence is built from the event's own arguments, plus what the fold inferred and the event
does not carry: why a stake was slashed (``SlashCause``, from the job's other events in the same
transaction) and whether a challenge was dismissed (no panel could be drawn).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from marketplace.protocol import Role, Verdict
from marketplace.units import webi


@dataclass(frozen=True)
class JobContext:
    """What the sentences need beyond an event's arguments: the fold's slash causes, keyed by
    (transaction, account, role), the job's panel (empty when nobody was eligible), and its requester
    (who released a confidential job's key: the requester or the provider)."""

    causes: dict[tuple[str, str, str], str] = field(default_factory=dict)
    panel: tuple[str, ...] = ()
    requester: str = ""

    @classmethod
    def of(cls, audit: dict[str, Any], challenge: dict[str, Any] | None, requester: str = "") -> JobContext:
        """From a job row's ``audit`` and ``challenge`` JSON (and its requester)."""
        causes = {
            (slash["tx_hash"], slash["account"], slash["role"]): slash["cause"]
            for slash in audit.get("slashes", [])
            if slash.get("cause")
        }
        return cls(causes, tuple(challenge["members"]) if challenge else (), requester)


def describe(name: str, args: dict[str, Any], tx_hash: str, context: JobContext) -> str:
    """One sentence for a job event; the event's name for one this module does not know."""
    sentence = _SENTENCES.get(name)
    return name if sentence is None else sentence(args, tx_hash, context)


def _time(value: Any) -> str:
    return datetime.fromtimestamp(int(value), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _verdict(value: Any) -> str:
    return Verdict(int(value)).name.lower()


def _posted(args: dict[str, Any], _: str, __: JobContext) -> str:
    terms = args["terms"]
    return (
        f"posted by {args['requester']}: {terms['numTasks']} tasks for {webi(terms['price'])} WEBI plus an audit "
        f"fee of {webi(terms['auditFee'])} WEBI"
    )


def _slashed(args: dict[str, Any], tx_hash: str, context: JobContext) -> str:
    role = Role(int(args["role"])).name.lower()
    amount = int(args["fromStake"]) + int(args["fromUnbonding"])
    cause = context.causes.get((tx_hash, args["account"], role))
    unbonding = f" ({webi(args['fromUnbonding'])} of it unbonding)" if int(args["fromUnbonding"]) else ""
    return f"{role} {args['account']} slashed {webi(amount)} WEBI{unbonding}" + (f": {cause}" if cause else "")


def _resolved(args: dict[str, Any], _: str, context: JobContext) -> str:
    verdict = _verdict(args["verdict"])
    if not args["upheld"]:
        return f"challenge resolved: the panel overturned the verdict, {verdict} stands; the verifier is slashed"
    if not context.panel:
        return f"challenge dismissed: nobody was eligible to judge, {verdict} stands and the bond is returned"
    return f"challenge resolved: the verdict is upheld, {verdict} stands"


def _key_released(args: dict[str, Any], _: str, context: JobContext) -> str:
    """Who released a confidential job's key to whom; the wrapped key itself is never shown (the
    events table keeps only its length)."""
    sender = "the requester" if context.requester and args["from"] == context.requester else "the provider"
    return f"{sender} released the key to {args['to']}"


_Sentence = Callable[[dict[str, Any], str, JobContext], str]

_SENTENCES: dict[str, _Sentence] = {
    "JobPosted": _posted,
    "JobCancelled": lambda a, _, __: "cancelled: the escrow is credited back to the requester",
    "JobClaimed": lambda a, _, __: (
        f"claimed by {a['provider']}, {webi(a['collateral'])} WEBI collateral locked, result due by "
        f"{_time(a['deadline'])}"
    ),
    "ClaimExpired": lambda a, _, __: (
        f"the claim of {a['provider']} expired ({webi(a['slashed'])} WEBI of collateral slashed): open again"
    ),
    "ResultSubmitted": lambda a, _, __: (
        f"result submitted by {a['provider']}: outputs {a['outputCid']}, root {a['resultRoot']}"
    ),
    "KeyReleased": _key_released,
    "ClaimReleased": lambda a, _, __: (
        f"{a['provider']} gave its claim back: its key did not arrive or did not open "
        f"({webi(a['collateral'])} WEBI collateral unlocked, unslashed): open again"
    ),
    "SeedRearmed": lambda a, _, __: f"draw re-armed: the seed is now block {a['seedBlock']}",
    "VerifierDrawn": lambda a, _, __: f"verifier {a['verifier']} drawn, verdict due by {_time(a['deadline'])}",
    "VerifierMissed": lambda a, _, __: (
        f"verifier {a['verifier']} missed its deadline; a new draw is armed at block {a['seedBlock']}"
    ),
    "RevealDemanded": lambda a, _, __: (
        f"verifier {a['verifier']} demands the sampled outputs on-chain by {_time(a['revealBy'])}"
    ),
    "OutputsRevealed": lambda a, _, __: (
        "the provider revealed the outputs of tasks " + ", ".join(str(i) for i in a["taskIndices"]) + " on-chain"
    ),
    "VerdictSubmitted": lambda a, _, __: (
        f"verdict {_verdict(a['verdict'])} by {a['verifier']}, evidence {a['evidenceCid']}"
    ),
    "Challenged": lambda a, _, __: f"challenged by {a['challenger']} with a bond of {webi(a['bond'])} WEBI",
    "PanelDrawn": lambda a, _, __: (
        f"panel drawn: {', '.join(a['members'])}; votes committed by {_time(a['commitBy'])}, revealed by "
        f"{_time(a['revealBy'])}"
    ),
    "VoteCommitted": lambda a, _, __: f"panel member {a['member']} committed its vote",
    "VoteRevealed": lambda a, _, __: f"panel member {a['member']} voted {_verdict(a['vote'])}",
    "ChallengeResolved": _resolved,
    "JobSettled": lambda a, _, __: f"settled {_verdict(a['verdict'])}: " + (
        "rejected, the price refunded to the requester" if int(a["verdict"]) == Verdict.FAIL else "the provider paid"
    ),
    "Slashed": _slashed,
    "Burned": lambda a, _, __: f"{webi(a['amount'])} WEBI burned (kept by the contract for good)",
}
