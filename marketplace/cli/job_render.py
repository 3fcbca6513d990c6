"""How ``webi job`` shows a job, a quote, a spot check and a challenge: rich tables and lines, no logic.

Kept apart from the commands (``cli/job.py``) so that each reads as what it does; everything here
takes the SDK's dataclasses and a console.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from marketplace.units import webi

if TYPE_CHECKING:  # the SDK's modules load with the command that shows them, not when the CLI starts
    from marketplace.job_views import ChallengeInfo, JobInfo, JobQuote
    from marketplace.job_waits import JobWait
    from marketplace.protocol import JobState
    from marketplace.spot_check import CheckReport


def _say(console: Console, text: str) -> None:
    """One line, never wrapped (addresses and CIDs stay whole for copying and for grep)."""
    console.print(text, soft_wrap=True, highlight=False)


def show_info(console: Console, info: JobInfo) -> None:
    table = Table("", "", title=f"job {info.job_id}", show_header=False)
    for key, value in info.as_dict().items():
        if key in ("price", "audit_fee", "bond"):
            shown = webi(value) + " WEBI"
        elif key == "deadline" and value is not None:
            shown = f"{value} ({_deadline_meaning(info.state)})"
        elif key == "panel":
            if not info.panel_seats:
                continue
            shown = f"{info.panel_committed} of {info.panel_seats} seats committed, {info.panel_revealed} revealed"
        else:
            shown = str(value if value is not None else "—")
        table.add_row(key, escape(shown))
    console.print(table)


def _deadline_meaning(state: JobState) -> str:
    from marketplace.protocol import JobState

    return "verdict due" if state == JobState.SUBMITTED else "challenge window ends"


def describe(info: JobInfo) -> str:
    """One line for a job: the state, and who is on it."""
    from marketplace.protocol import JobState, Verdict

    parts = [f"job {info.job_id}: {info.state.name.lower()}"]
    if info.provider:
        parts.append(f"provider {info.provider}")
    if info.verifier:
        parts.append(f"verifier {info.verifier}")
    if info.verdict != Verdict.NONE and info.state != JobState.SUBMITTED:
        parts.append(f"verdict {info.verdict.name.lower()}")
    if info.challenger:
        parts.append(f"challenged by {info.challenger}")
    return parts[0] + (f" ({', '.join(parts[1:])})" if len(parts) > 1 else "")


def show_jobs(console: Console, requester: str, jobs: list[JobInfo], waits: list[JobWait]) -> None:
    """One line per job (grep-friendly, never wrapped): id, state, tasks, price, provider, what it waits for."""
    if not jobs:
        _say(console, f"{requester} has posted no jobs on this deployment")
        return
    _say(console, f"{len(jobs)} jobs posted by {requester}:")
    for info, wait in zip(jobs, waits, strict=True):
        provider = f"provider {info.provider}" if info.provider else "no provider"
        _say(console, escape(f"job {info.job_id}  {info.state.name.lower()}  {info.num_tasks} tasks  "
                             f"{webi(info.price)} WEBI  {provider}  {wait.short()}"))


def show_quote(console: Console, quote: JobQuote) -> None:
    """The audit level and the cost, printed before anything is sent."""
    _say(console,
        f"audit: {quote.sample_tasks} of {quote.num_tasks} tasks re-executed by a stake-weighted verifier; "
        f"price {webi(quote.price)} WEBI + audit fee {webi(quote.audit_fee)} WEBI = escrow {webi(quote.escrow)} WEBI"
    )
    terms = quote.terms
    _say(console,
        f"terms: protocol fee {terms.protocol_fee_bps} bps (at most {quote.max_protocol_fee_bps}), verifier fee "
        f"{terms.verifier_fee_bps} bps (at most {quote.max_verifier_fee_bps}), provider collateral "
        f"{terms.collateral_bps} bps (at least {quote.min_collateral_bps}); challenge window {terms.challenge_window} s"
    )


def show_check(console: Console, report: CheckReport) -> None:
    """Per task: within tolerance or not, with the figure; a mismatch in red, loudly."""
    _say(console, f"checking job {report.job_id}: re-executing tasks {', '.join(map(str, report.indices))} "
                  f"(seed {report.seed}; --seed {report.seed} chooses them again)")
    from marketplace.spot_check import METRICS

    metric = METRICS.get(report.task, "figure")
    for result in report.results:
        figure = f"; {metric} {result.metric:.6g}" if result.metric is not None else ""
        if result.passed:
            _say(console, f"  task {result.index}: [green]within tolerance[/green] ({escape(result.reason)}{figure})")
        else:
            _say(console, f"  task {result.index}: [bold red]MISMATCH[/bold red] ({escape(result.reason)}{figure})")
    if report.passed:
        _say(console, f"[green]all {len(report.results)} re-executed tasks agree with the committed outputs[/green]")
    else:
        _say(console,
            f"[bold red]{len(report.mismatches)} of {len(report.results)} re-executed tasks disagree with the "
            "committed outputs[/bold red]"
        )
        if report.challengeable:
            _say(console,
                f"{len(report.challengeable)} of them are among the audit's sampled tasks: while the verdict is "
                f"provisional, `webi job challenge {report.job_id}` puts it to a panel, which re-checks those")
        elif report.audit_sample:
            _say(console,
                "[yellow]none of them is among the audit's sampled tasks "
                f"({', '.join(map(str, report.audit_sample))}), the only ones a panel re-checks: a challenge "
                "would lose its bond[/yellow]")
        else:
            _say(console, "the audit's sample is not public yet: check again once the verdict is in")


def show_challenge(console: Console, challenge: ChallengeInfo) -> None:
    """The bond pulled and the panel's timeline."""
    hours = challenge.vote_window / 3_600
    window = f"{hours:g} h" if challenge.vote_window % 360 == 0 else f"{challenge.vote_window} s"
    _say(console,
        f"challenged job {challenge.job_id}'s {challenge.verdict.name.lower()} verdict: a bond of "
        f"{webi(challenge.bond)} WEBI is escrowed" + (" (approved first)" if challenge.approved else "")
        + f"; transaction {challenge.tx_hash}"
    )
    _say(console, "panel timeline:")
    _say(console, f"  1. from block {challenge.panel_seed_block + 1}: anyone draws the 3-seat panel (drawPanel), "
                  "stake-weighted among verifiers outside the job")
    _say(console, f"  2. within {window} of the draw: the members commit their votes")
    _say(console, f"  3. within the next {window}: they reveal them; then anyone resolves (resolveChallenge)")
    _say(console, "  overturned: the verifier is slashed, the bond comes back with a reward, and the panel's verdict "
                  "settles the job; upheld: the bond goes to the majority; a tie or no vote returns the bond")
    _say(console, f"follow it: webi job status {challenge.job_id} --watch")
