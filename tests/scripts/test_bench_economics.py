"""The economics benchmark: its formulas (marketplace.economics) and its goals under the deployed terms."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from marketplace.chain.deployment import DEFAULT_PARAMS, DEFAULT_TERMS
from marketplace.economics import (
    Assumptions,
    AuditCase,
    Economy,
    cheat_gain,
    detection_probability,
    gas_in_webi,
    panel_outcome,
    split_workload,
    verifier_outcome,
)

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "bench_economics.py"
ECONOMY = Economy.of(DEFAULT_TERMS, DEFAULT_PARAMS)


@pytest.mark.parametrize(("num_tasks", "cheated", "sampled"), [(10, 1, 3), (16, 4, 4), (50, 7, 5), (64, 63, 4)])
def test_detection_probability_is_the_exact_hypergeometric(num_tasks: int, cheated: int, sampled: int) -> None:
    exact = 1 - math.comb(num_tasks - cheated, sampled) / math.comb(num_tasks, sampled)
    assert detection_probability(num_tasks, cheated, sampled) == pytest.approx(exact, rel=1e-12)


def test_detection_probability_edges() -> None:
    assert detection_probability(1_024, 1, 1) == pytest.approx(1 / 1_024)
    assert detection_probability(1_024, 0, 4) == 0.0
    assert detection_probability(8, 5, 4) == 1.0  # fewer honest tasks than samples
    assert detection_probability(100_000, 100_000, 4) == 1.0


def test_cheat_gain_is_saved_compute_less_the_expected_loss() -> None:
    q = detection_probability(1_024, 10, 4)
    expected = 0.9 * 10 / 1_024 - q * (1 - 0.025 + 0.5)
    assert cheat_gain(ECONOMY, 0.9, 1_024, 10, 4) == pytest.approx(expected)


def test_the_price_cap_is_the_least_slash_of_a_drawn_verifier() -> None:
    assert ECONOMY.max_price == pytest.approx(500.0)  # 1,000 WEBI minimum stake x 50 %
    assert ECONOMY.min_verifier_stake * ECONOMY.verifier_slash >= ECONOMY.max_price
    assert ECONOMY.max_sample_value == pytest.approx(500.0 / 80)  # SampleValueAboveMaximum


@pytest.mark.parametrize(("num_tasks", "task_price", "jobs", "largest"), [
    (1, 6.25, 1, 1), (16, 1.0, 1, 16), (1_024, 1.0, 3, 342), (100_000, 1.0, 200, 500),
    (100_000, 0.05, 10, 10_000), (10_000, 0.05, 1, 10_000), (10_001, 0.05, 2, 5_001),
    # Dear tasks: fewer tasks a job than the sample, so the whole job is the sample (<= 6.25 WEBI).
    (10, 2.0, 4, 3), (4, 3.0, 2, 2)])
def test_split_workload_posts_jobs_of_at_most_the_price_cap(num_tasks: int, task_price: float, jobs: int,
                                                             largest: int) -> None:
    assert split_workload(ECONOMY, num_tasks, task_price) == (jobs, largest)
    assert largest * task_price <= ECONOMY.max_price + 1e-9
    assert min(largest, 4) * task_price <= ECONOMY.max_sample_value + 1e-9
    assert jobs * (largest - 1) < num_tasks <= jobs * largest  # spread evenly


def test_split_workload_refuses_a_task_above_the_cap_or_below_the_minimum_price() -> None:
    with pytest.raises(ValueError, match="above the sampled-value cap"):
        split_workload(ECONOMY, 1, 6.3)
    with pytest.raises(ValueError, match="below the minimum"):
        split_workload(ECONOMY, 16, 0.01)


def test_outcomes_refuse_a_job_above_the_cap_and_a_verifier_below_the_minimum_stake() -> None:
    with pytest.raises(ValueError, match="above the price cap"):
        verifier_outcome(ECONOMY, Assumptions(), AuditCase(1_024, 1_024.0, 4))
    with pytest.raises(ValueError, match="above the sampled-value cap"):
        verifier_outcome(ECONOMY, Assumptions(), AuditCase(16, 100.0, 4))
    with pytest.raises(ValueError, match="never drawn"):
        panel_outcome(ECONOMY, Assumptions(verifier_stake=999.0), AuditCase(16, 16.0, 4))


def test_lazy_pass_breaks_even_at_its_printed_wrong_rate() -> None:
    case = AuditCase(500, 500.0, 4)
    outcome = verifier_outcome(ECONOMY, Assumptions(), case)
    at_breakeven = verifier_outcome(ECONOMY, Assumptions(wrong_rate=outcome.lazy_breakeven_wrong_rate), case)
    assert at_breakeven.edges["lazy_pass"] == pytest.approx(0.0, abs=1e-9)
    assert outcome.audit_fee == pytest.approx(8.0)  # 1 WEBI a task, 4 sampled, 2x per sampled task


def test_every_dishonest_verifier_strategy_loses_under_the_default_terms() -> None:
    # At 1 WEBI a task; a workload above the price cap is posted as jobs of at most 500 WEBI.
    assumptions = Assumptions(verifier_gas=gas_in_webi(200_000, 0.01, 1_000))
    for workload in (1, 16, 1_024, 100_000):
        _, num_tasks = split_workload(ECONOMY, workload, 1.0)
        outcome = verifier_outcome(ECONOMY, assumptions, AuditCase(num_tasks, float(num_tasks), 4))
        assert outcome.honest_floor > 0
        assert all(edge < 0 for edge in outcome.edges.values()), outcome.edges


def test_lazy_pass_loses_on_the_dearest_sample_the_contracts_allow() -> None:
    # Without the sampled-value cap, a 1-task job at 500 WEBI let lazy-pass save two reference runs
    # (C = 900 WEBI) against a risk of rho * gamma_r * (A + S) = 37.5 WEBI. At the cap (6.25 WEBI):
    # C = 11.25 WEBI against 0.05 * (0.5 * (12.5 + 500) + 0.3125) = 12.83 WEBI.
    outcome = verifier_outcome(ECONOMY, Assumptions(), AuditCase(1, 6.25, 4))
    assert outcome.compute == pytest.approx(11.25)
    assert outcome.edges["lazy_pass"] == pytest.approx(11.25 - 0.05 * (0.5 * (12.5 + 500.0) + 0.3125))
    assert outcome.edges["lazy_pass"] < 0
    assert outcome.lazy_breakeven_wrong_rate == pytest.approx(11.25 / (0.5 * 512.5 + 0.3125))
    assert outcome.lazy_breakeven_wrong_rate < Assumptions().wrong_rate


def test_colluding_cheater_if_drawn_bound_takes_the_least_slash_the_cap_allows() -> None:
    for case in (AuditCase(1, 6.25, 4), AuditCase(16, 16.0, 4), AuditCase(10_000, 500.0, 4)):
        outcome = verifier_outcome(ECONOMY, Assumptions(), case)
        a, c, p = outcome.audit_fee, outcome.compute, case.price
        assert outcome.colluding_cheater_if_drawn_bound == pytest.approx(
            (0.9 * p + c - 0.5 * ((1 - 0.025 + 0.5) * p + a + p)) / p)
        # The stake's slash (500 WEBI) is at least the price: the bound is never below the figure.
        assert outcome.slash >= p
        assert outcome.colluding_cheater_if_drawn <= outcome.colluding_cheater_if_drawn_bound * p + 1e-9
    at_cap = verifier_outcome(ECONOMY, Assumptions(), AuditCase(10_000, 500.0, 4))
    assert at_cap.colluding_cheater_if_drawn == pytest.approx(at_cap.colluding_cheater_if_drawn_bound * 500.0)


def test_a_requester_sybil_gains_when_the_provider_never_challenges() -> None:
    outcome = verifier_outcome(ECONOMY, Assumptions(provider_challenge_rate=0.0), AuditCase(16, 16.0, 4))
    assert outcome.edges["colluding_requester"] > 0  # the provider's challenge is what stops it


def test_panel_bond_and_challenger_reward_follow_resolve_challenge() -> None:
    case = AuditCase(16, 16.0, 4)
    panel = panel_outcome(ECONOMY, Assumptions(), case)
    assert panel.bond == pytest.approx(3 * 8.0)
    assert panel.challenger_reward == pytest.approx(0.1 * (500 - 24))  # rewardBps of the slash after the panel's pay
    assert panel.member_fee == pytest.approx(8.0)


def test_bench_economics_reports_its_goals_and_prints_json() -> None:
    result = subprocess.run([sys.executable, str(SCRIPT), "--json"], capture_output=True, text=True, timeout=300,
                            check=False)
    figures = json.loads(result.stdout)
    goals = figures["goals"]
    assert result.returncode == (0 if all(goal["met"] for goal in goals.values()) else 1), result.stderr
    assert goals["max_cheat_gain"]["met"] and figures["max_cheat_gain"] < 0
    assert goals["honest_verifier_min_profit"]["met"] and figures["honest_verifier_min_profit"] >= 0
    assert goals["max_dishonest_verifier_edge"]["met"] == (figures["max_dishonest_verifier_edge"] < 0)
    if not goals["max_dishonest_verifier_edge"]["met"]:
        assert f"goal missed: {figures['max_dishonest_verifier_edge_at']['strategy']}" in result.stderr
    # Below the cap's per-task price every dishonest strategy loses; at the cap lazy-pass may not
    # (test_lazy_pass_pays_on_a_one_task_job_at_the_price_cap), and the goal says so.
    by_price = figures["max_dishonest_verifier_edge_by_price"]
    assert by_price["min"] < 0 and by_price["typical"] < 0
    assert max(by_price.values()) == figures["max_dishonest_verifier_edge"]
    assert figures["sample_tasks"] == 4
    assert figures["terms"]["verifier_fee_bps"] == DEFAULT_TERMS.verifier_fee_bps
    assert figures["economy"]["max_price"] == pytest.approx(500.0)
    assert figures["assumptions"]["verifier_stake"] == pytest.approx(1_000.0)  # the deployed minimum
    assert len(figures["providers"]["grid"]) == 9 * 5
    assert [(row["workload"], row["price_label"]) for row in figures["verifiers"]] == [
        (n, label) for n in (1, 16, 1_024, 100_000) for label in ("min", "typical", "cap")]
    for row in figures["verifiers"]:
        assert row["price"] <= figures["economy"]["max_price"] + 1e-9, row
        assert row["jobs"] * row["num_tasks"] >= row["workload"]
    assert set(figures["lazy_breakeven_wrong_rate"]) == {f"{row['workload']}@{row['price_label']}"
                                                         for row in figures["verifiers"]}
    assert figures["gas"]["verifier_gas"] > 0
    assert figures["colluding_cheater_if_drawn_max"] == max(
        row["colluding_cheater_if_drawn_bound"] for row in figures["verifiers"])
    assert 0 < figures["watch_rate_needed_if_drawn"] <= 1
    assert 0 < figures["colluder_share_breakeven"] <= 1


def test_bench_economics_refuses_a_verifier_stake_below_the_minimum() -> None:
    result = subprocess.run([sys.executable, str(SCRIPT), "--json", "--verifier-stake", "999"],
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 2
    assert "never drawn" in result.stderr


def test_bench_economics_exits_1_and_says_why_when_a_goal_fails() -> None:
    # Nothing is ever wrong and nobody watches: passing without computing pays.
    result = subprocess.run([sys.executable, str(SCRIPT), "--json", "--wrong-rate", "0", "--watch-rate", "0"],
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 1
    assert not json.loads(result.stdout)["goals"]["max_dishonest_verifier_edge"]["met"]
    assert "goal missed" in result.stderr and "lazy_pass" in result.stderr
