"""The gas benchmark runs and reports every figure the README quotes (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_gas_prints_its_figures_as_json() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_gas.py"), "--json"],
                            capture_output=True, text=True, timeout=300, check=True)
    figures = json.loads(result.stdout)
    for name in ("lifecycle_gas", "lifecycle_gas_first", "audited_lifecycle_gas", "per_task_gas_256"):
        assert figures[name] > 0
    assert figures["lifecycle_gas"] <= figures["lifecycle_gas_first"]
    assert set(figures["calls"]) >= {"postJob", "claimJob", "submitResult", "finalize", "submitVerdict"}
