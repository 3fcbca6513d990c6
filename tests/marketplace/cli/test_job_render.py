"""What a spot check tells a requester about challenging: only mismatches the panel will see count."""

from __future__ import annotations

from rich.console import Console

from marketplace.cli.job_render import show_check
from marketplace.spot_check import CheckReport, TaskResult


def _shown(report: CheckReport) -> str:
    console = Console(record=True, width=300)
    show_check(console, report)
    return console.export_text()


def test_a_mismatch_outside_the_audit_sample_is_no_ground_for_a_challenge() -> None:
    results = (TaskResult(2, False, "cosine -1.0000 < 0.99", -1.0), TaskResult(3, True, "cosine within tolerance", 1.0))
    outside = _shown(CheckReport(9, "embed", 7, (2, 3), results, audit_sample=(3, 5)))
    assert "none of them is among the audit's sampled tasks (3, 5)" in outside
    assert "a challenge would lose its bond" in outside and "webi job challenge" not in outside
    inside = _shown(CheckReport(9, "embed", 7, (2, 3), results, audit_sample=(2, 5)))
    assert "1 of them are among the audit's sampled tasks" in inside and "`webi job challenge 9`" in inside
    early = _shown(CheckReport(9, "embed", 7, (2, 3), results))
    assert "the audit's sample is not public yet" in early and "webi job challenge" not in early
