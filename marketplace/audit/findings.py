"""What the auditor names beyond discrepancies: verdicts a panel overturned, passes re-execution contradicts.

Neither is a fault in the books (an overturned verdict was settled by the rules, and its verifier
slashed), but both are what a reader of the report looks for: who was wrong, and what it cost them;
which paid jobs a fresh run of the sampled tasks does not bear out.
"""

from __future__ import annotations

from dataclasses import dataclass

from marketplace.history import ChainState
from marketplace.history.views import SlashCause
from marketplace.protocol import ZERO_ADDRESS, Verdict


@dataclass(frozen=True)
class TaskVerdict:
    job_id: int
    index: int
    passed: bool
    reason: str


@dataclass(frozen=True)
class OverturnedVerdict:
    """A verdict a panel contradicted; its verifier paid ``verifierSlashBps`` of its stake for it."""

    job_id: int
    verifier: str
    verdict: str  # the verifier's
    panel_verdict: str
    challenger: str
    votes: str  # the panel's majority, as "2 of 3 seats"
    slashed: str  # wei taken from the verifier for it


@dataclass(frozen=True)
class ContradictedPass:
    """A job paid on a PASS that re-executing its sampled tasks contradicts: a lazy or dishonest pass
    (by the drawn verifier, or by the panel that overturned its fail), and grounds for a look at both."""

    job_id: int
    passed_by: str  # "the verifier" or "the panel"
    verifier: str
    failed: list[str]  # "task i: why"


def overturned_verdicts(state: ChainState) -> list[OverturnedVerdict]:
    """Every verdict a panel contradicted, with what it cost its verifier."""
    found = []
    for job in state.jobs.values():
        challenge = job.challenge
        if challenge is None or not job.overturned or job.verifier is None:
            continue
        _, votes = challenge.tally()
        slashed = sum(slash.amount for slash in job.slashes if slash.cause == SlashCause.OVERTURNED)
        found.append(OverturnedVerdict(
            job.job_id, job.verifier, (job.audit_verdict or Verdict.NONE).name.lower(),
            (challenge.outcome or Verdict.NONE).name.lower(), challenge.challenger,
            f"{votes} of {len(challenge.members)} seats", str(slashed),
        ))
    return found


def contradicted_passes(state: ChainState, verdicts: list[TaskVerdict]) -> list[ContradictedPass]:
    """The jobs paid on a PASS or an INCONCLUSIVE whose re-executed tasks did not all pass.

    An inconclusive verdict pays the provider too: a cheat dressed as instability must be named as
    surely as a lazy pass (the report says which verdict paid it)."""
    failed: dict[int, list[str]] = {}
    for verdict in verdicts:
        if not verdict.passed:
            failed.setdefault(verdict.job_id, []).append(f"task {verdict.index}: {verdict.reason}")
    found = []
    for job_id, reasons in sorted(failed.items()):
        job = state.jobs[job_id]
        if job.verdict not in (Verdict.PASS, Verdict.INCONCLUSIVE):
            continue  # rejected: nobody was paid for it
        passed_by = "the panel" if job.overturned else "the verifier"
        if job.verdict == Verdict.INCONCLUSIVE:
            passed_by += " (inconclusive)"
        found.append(ContradictedPass(job_id, passed_by, job.verifier or ZERO_ADDRESS, reasons))
    return found
