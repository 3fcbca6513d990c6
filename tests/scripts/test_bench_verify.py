"""The verifier benchmark runs and reports every figure the README quotes (no rate asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_verify_prints_its_figures_as_json() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_verify.py"), "--honest-tasks", "40",
                             "--json"], capture_output=True, text=True, timeout=600, check=True)
    figures = json.loads(result.stdout)
    assert set(figures["detection"]) == {"random", "other-model", "truncated", "padded", "replay", "half"}
    assert all(0 <= rate <= 1 for rate in figures["detection"].values())
    assert set(figures["detection_tasks"]) == set(figures["within_allowance"]) == set(figures["detection"])
    assert all(count > 0 for count in figures["detection_tasks"].values())
    assert set(figures["detection_honest_noise"]) == {"embed", "classify", "generate", "summarize"}
    assert figures["honest_tasks"] == 40
    assert 0 <= figures["false_positive_rate"] <= 1
    assert figures["verify_cost_ratio"] > 0
