"""The requester's challenge, checked before anything is spent: who may, when, and in which state.

``Client.challenge`` asks the chain's views the questions the contract will ask (``Disputes.challenge``:
an audited job, within its challenge window, by the side the verdict harms or a staked verifier
outside the job) so that a refused challenge costs no gas and no approval, and says why in words;
a refusal that races these checks comes back as the contract's custom error and is worded the same.
"""

from __future__ import annotations

from dataclasses import dataclass

from marketplace.chain.market import JobMarket
from marketplace.errors import ContractError, WebiError
from marketplace.protocol import Audit, JobState, JobTerms, Verdict


class ChallengeError(WebiError):
    """A challenge the contract would refuse (or refused): not entitled, window closed, wrong state, no bond."""


@dataclass(frozen=True)
class Challengeable:
    """What the checks read: the job's terms, its audit and its provider, for the challenge call."""

    job_id: int
    caller: str
    terms: JobTerms
    audit: Audit
    provider: str

    def explain(self, error: ContractError) -> WebiError:
        """A clear message for the contract's refusals of this challenge; other errors pass through."""
        args = error.args_by_name
        if error.name == "WrongState":
            return ChallengeError(wrong_state(self.job_id, JobState(int(args.get("have", 0)))))
        if error.name == "DeadlinePassed":
            return ChallengeError(window_closed(self.job_id, int(args.get("deadline", self.audit.deadline)), None))
        if error.name == "NotEntitledToChallenge":
            return ChallengeError(self.not_entitled())
        return error

    def not_entitled(self) -> str:
        verdict = self.audit.verdict
        harmed = ("its provider", self.provider) if verdict == Verdict.FAIL else ("its requester", self.terms.requester)
        return (f"job {self.job_id}: {self.caller} may not challenge its {verdict.name.lower()} verdict: only "
                f"{harmed[0]} {harmed[1]} or a staked verifier outside the job may")


def check_challenge(market: JobMarket, job_id: int, caller: str) -> Challengeable:
    """The job, when ``caller`` may challenge its verdict now; ``ChallengeError`` saying why not otherwise."""
    terms = market.terms_of(job_id)
    status = market.get_job(job_id)
    if status.state != JobState.AUDITED:
        raise ChallengeError(wrong_state(job_id, status.state))
    audit = market.audit_of(job_id)
    now = market.client.timestamp()
    if now > audit.deadline:
        raise ChallengeError(window_closed(job_id, audit.deadline, now))
    job = Challengeable(job_id, caller, terms, audit, status.provider)
    if not _may_challenge(market, job):
        raise ChallengeError(job.not_entitled())
    return job


def _may_challenge(market: JobMarket, job: Challengeable) -> bool:
    """``Disputes._mayChallenge``: the side the verdict harms, or a staked verifier outside the job."""
    if job.caller == (job.provider if job.audit.verdict == Verdict.FAIL else job.terms.requester):
        return True
    parties = (job.audit.verifier, job.provider, job.terms.requester)
    return job.caller not in parties and market.verifier_stake(job.caller).stake > 0


def wrong_state(job_id: int, state: JobState) -> str:
    return (f"job {job_id} is {state.name.lower()}: only a provisional verdict (an audited job, within its "
            "challenge window) can be challenged")


def window_closed(job_id: int, deadline: int, now: int | None) -> str:
    chain_time = f" (chain time {now})" if now is not None else ""
    return (f"job {job_id}: the challenge window closed at {deadline}{chain_time}; the verdict becomes final when "
            "anyone calls finalize")


__all__ = ["ChallengeError", "Challengeable", "check_challenge"]
