"""The verifier benchmark runs and reports every figure the README quotes (no rate asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_bench_verify_prints_its_figures_as_json() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_verify.py"), "--honest-tasks", "40",
                             "--detection-tasks", "6", "--json"], capture_output=True, text=True, timeout=900,
                            check=True)
    figures = json.loads(result.stdout)
    legacy = {"random", "other-model", "truncated", "padded", "replay", "half"}
    trained = {"student-after-k", "first-layers", "int4", "temperature", "prompt-head", "prompt-tail", "eos-early",
               "swap", "nan-common", "student-nan", "student", "student-confident", "onehot", "truncate-192", "nearest"}
    assert set(figures["detection"]) == legacy | trained
    assert all(rate is None or 0 <= rate <= 1 for rate in figures["detection"].values())
    for key in ("detection_tasks", "within_allowance", "detection_inconclusive", "compute_saved"):
        assert set(figures[key]) == set(figures["detection"]), key
    assert all(0 <= saved <= 1 for saved in figures["compute_saved"].values() if saved is not None)
    assert all(figures["detection_tasks"][name] > 0 for name in legacy)
    assert isinstance(figures["detection_goal_met"], bool)
    assert figures["honest_tasks"] == 40 and figures["honest_bf16_provider"]["tasks"] == 20
    assert 0 <= figures["false_positive_rate"] <= 1 and 0 <= figures["inconclusive_rate"] <= 1
    assert figures["verify_cost_ratio"] > 0
