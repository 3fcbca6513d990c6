"""The shards benchmark runs both ways on real provider processes and reports every figure the README quotes
(no timing asserted: the figures are the script's to print)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_shards_prints_its_figures_as_json() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_shards.py"), "--tasks", "256",
                             "--shards", "4", "--providers", "2", "--json"], capture_output=True, text=True,
                            timeout=900, check=True)
    figures = json.loads(result.stdout)
    assert (figures["tasks"], figures["shards"], figures["providers"]) == (256, 4, 2)
    for name in ("single_s", "group_s", "shard_speedup", "parallel_efficiency", "per_shard_overhead_s"):
        assert figures[name] > 0, name
    assert figures["cores"] >= 1 and figures["threads_per_provider"] >= 1
    # Every shard was done by one of the group's providers, and their tasks add up to the job.
    assert sum(held["shards"] for held in figures["spread"].values()) == 4
    assert sum(held["tasks"] for held in figures["spread"].values()) == 256
    assert len(figures["spread"]) == 2 and 0 <= figures["spread_min_max"] <= 1
    # Each extra shard costs its share of the post plus a claim and a submission, and no more.
    assert 60_000 < figures["per_shard_gas"] < 250_000
