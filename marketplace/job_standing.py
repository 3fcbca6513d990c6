"""How far a job's outputs can be trusted: final, provisional (in the audit or challenge window), or rejected.

A Merkle check proves only that the outputs are the ones the provider committed, not that they are right:
a job whose audit failed has outputs that rebuild the root and are wrong. ``Client.results`` and
``webi job results`` therefore ask this module first: a rejected job's outputs are refused (unless forced,
and then loudly), a job still in its audit or challenge window gets a "not final" warning, and only a
finalized job's outputs are presented as good.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from marketplace.chain.market import JobMarket
from marketplace.errors import WebiError
from marketplace.job_views import JobInfo
from marketplace.protocol import JobState, Verdict


class RejectedResultsError(WebiError):
    """The job's audit failed: its outputs are the ones proven wrong (``force=True`` reads them anyway)."""


class Standing(StrEnum):
    FINAL = "final"
    PROVISIONAL = "provisional"
    REJECTED = "rejected"


@dataclass(frozen=True)
class ResultStanding:
    """A job's outputs' standing, with the verdict behind it and where its evidence is."""

    job_id: int
    standing: Standing
    verdict: Verdict
    evidence_cid: str | None  # the failing (or provisional) verdict's evidence document, when one was published
    reason: str  # in words: why rejected, or what it is still waiting for

    def refusal(self) -> str:
        """The one-line refusal of a rejected job's outputs (``RejectedResultsError``)."""
        evidence = f"evidence {self.evidence_cid}" if self.evidence_cid else "no evidence document"
        return (f"job {self.job_id} was rejected (verdict {self.verdict.name.lower()}: {self.reason}; {evidence}): "
                "its outputs are the ones the audit found wrong; --force writes them anyway")

    def warning(self) -> str:
        """The warning that goes with outputs that are written although not final, or rejected and forced."""
        if self.standing == Standing.REJECTED:
            evidence = f" (evidence {self.evidence_cid})" if self.evidence_cid else ""
            return (f"these outputs FAILED their audit: job {self.job_id} was rejected, verdict "
                    f"{self.verdict.name.lower()}{evidence}: {self.reason}. Do not use them as results.")
        return f"not final: job {self.job_id} {self.reason}; the outputs may still be rejected"


def result_standing(market: JobMarket, info: JobInfo) -> ResultStanding:
    """The standing of ``info``'s outputs; reads the verdict's events only when the job failed or is audited."""
    failed = info.state == JobState.REJECTED or (info.verdict == Verdict.FAIL and info.state != JobState.FINALIZED)
    if info.state == JobState.FINALIZED:
        return ResultStanding(info.job_id, Standing.FINAL, info.verdict, None, "final")
    evidence, overturned = _verdict_record(market, info.job_id) if failed or info.verdict != Verdict.NONE else (
        None, False)
    if failed:
        if overturned:
            reason = "a challenge panel overturned the verifier's verdict to fail"
        elif evidence is None:
            reason = "the provider did not reveal the sampled outputs when the verifier asked"
        elif info.state == JobState.REJECTED:
            reason = f"verifier {info.verifier} re-executed sampled tasks and they did not match"
        else:
            reason = (f"verifier {info.verifier} re-executed sampled tasks and they did not match (provisional: the "
                      f"challenge window ends at {_utc(info.deadline)})")
        return ResultStanding(info.job_id, Standing.REJECTED, Verdict.FAIL, evidence, reason)
    if info.state == JobState.SUBMITTED:
        reason = "is still in its audit: no verdict yet"
    elif info.state == JobState.AUDITED:
        reason = (f"has a provisional {info.verdict.name.lower()} verdict; its challenge window ends at "
                  f"{_utc(info.deadline)}")
    elif info.state == JobState.CHALLENGED:
        reason = f"is challenged: a panel is re-deciding its {info.verdict.name.lower()} verdict"
    else:
        reason = f"is {info.state.name.lower()}: no results yet"
    return ResultStanding(info.job_id, Standing.PROVISIONAL, info.verdict, evidence, reason)


def _utc(timestamp: int | None) -> str:
    return datetime.fromtimestamp(timestamp or 0, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _verdict_record(market: JobMarket, job_id: int) -> tuple[str | None, bool]:
    """The evidence CID of the job's last verdict (None without one), and whether a panel overturned it."""
    events = market.contract.events
    verdicts = events.VerdictSubmitted().get_logs(from_block=market.from_block, argument_filters={"jobId": job_id})
    evidence = (str(verdicts[-1]["args"]["evidenceCid"]) or None) if verdicts else None
    resolved = events.ChallengeResolved().get_logs(from_block=market.from_block, argument_filters={"jobId": job_id})
    overturned = bool(resolved) and not bool(resolved[-1]["args"]["upheld"])
    return evidence, overturned


__all__ = ["RejectedResultsError", "ResultStanding", "Standing", "result_standing"]
