"""bench_node.py runs end to end at a small size and reports every figure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_node.py"


def test_bench_node_prints_its_figures() -> None:
    result = subprocess.run([sys.executable, str(SCRIPT), "--jobs", "60", "--clients", "4", "--requests", "40",
                             "--json"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["events"] >= 120 and figures["ingest_events_per_s"] > 0
    assert figures["requests"] == 40 and 0 < figures["p50_ms"] <= figures["p99_ms"]
