"""The market simulation on the real contracts: goals, figures, and an exact replay from the seed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from marketplace.chain.deployment import DEFAULT_PARAMS, WEI

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "simulate_market.py"
STRATEGIES = {"provider/honest", "provider/cheating", "verifier/honest", "verifier/lazy", "verifier/always_fail",
              "verifier/colluding", "requester/honest", "requester/colluding"}
MIN_VERIFIER_STAKE = DEFAULT_PARAMS.min_verifier_stake / WEI


def simulate(*args: str) -> tuple[int, dict[str, Any], str]:
    result = subprocess.run([sys.executable, str(SCRIPT), "--json", *args], capture_output=True, text=True,
                            timeout=600, check=False)
    return result.returncode, json.loads(result.stdout), result.stderr


def test_simulate_market_reports_its_goals_on_a_small_market() -> None:
    # The chain replays exactly from the seed (pinned clock), so this run, draws included, is the
    # same every time. Forty jobs are too few for the profit goals to mean much (a lazy verifier
    # may not meet a wrong job in them): this checks that every goal is computed, reported and
    # reflected in the exit code; the 500-job default run is the measurement.
    code, figures, stderr = simulate("--jobs", "40", "--seed", "1")
    goals = figures["goals"]
    assert code == (0 if all(goal["met"] for goal in goals.values()) else 1), stderr
    for name, goal in goals.items():
        assert (f"goal missed: {name} =" in stderr) == (not goal["met"])
    assert figures["jobs"] == 40
    # The conservation law holds to the wei after every round, whatever the draws.
    assert figures["books_balance"] is True and goals["books_balance"]["met"]
    worst = figures["worst_dishonest_minus_honest"]
    assert worst == max(figures["edges"].values())
    assert goals["worst_dishonest_minus_honest"]["met"] == (worst < 0)
    assert goals["honest_providers_slashed"]["met"] == (figures["honest_providers_slashed"] == 0)
    # An honest provider challenges every fail of its work: only a panel that upholds one slashes it.
    assert figures["honest_providers_slashed"] <= figures["challenges"].get("upheld (honest work)", 0)
    assert set(figures["strategies"]) == STRATEGIES
    assert set(figures["edges"]) <= STRATEGIES - {"provider/honest", "verifier/honest", "requester/honest"}
    verifiers = [agent for agent in figures["agents"].values() if agent["role"] == "verifier"]
    assert len(verifiers) == 9
    assert all(agent["stake"] >= MIN_VERIFIER_STAKE for agent in verifiers)  # every one is in the draw
    assert all(agent["stake"] == MIN_VERIFIER_STAKE for agent in verifiers if agent["strategy"] != "honest")
    assert figures["verifier_syncs"] >= 9  # each verifier joined the draw with syncVerifier
    assert sum(figures["verdicts"].values()) == 40
    assert figures["runtime_s"] > 0


def test_simulate_market_replays_exactly_from_its_seed() -> None:
    runs = [simulate("--jobs", "10", "--batch", "5", "--seed", "7")[1] for _ in range(2)]
    for figures in runs:
        figures.pop("runtime_s")
    assert runs[0] == runs[1]
    assert runs[0]["books_balance"] is True


def test_simulate_market_refuses_an_honest_share_that_leaves_honest_verifiers_below_the_minimum() -> None:
    result = subprocess.run([sys.executable, str(SCRIPT), "--jobs", "1", "--honest-share", "0.5"],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2
    assert "below the minimum" in result.stderr
