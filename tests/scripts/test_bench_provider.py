"""The provider benchmark runs and reports every figure the README quotes (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_provider_prints_its_figures_as_json() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_provider.py"), "--tasks", "16",
                             "--rounds", "1", "--jobs", "2", "--generate-prompts", "4", "--json"],
                            capture_output=True, text=True, timeout=600, check=True)
    figures = json.loads(result.stdout)
    for name in ("runtime_tasks_per_s", "daemon_tasks_per_s", "overhead_ratio"):
        assert figures[name] > 0, name
    assert figures["tasks"] == 16
    assert figures["embed_vs_sentence_transformers"] > 0  # sentence-transformers is in the dev extra
    assert figures["sentence_transformers_batch_size"] >= 1
    assert figures["pipeline_tasks_per_s"] > 0 and figures["jobs"] == 2
    assert figures["generate_tokens_per_s"] > 0 and figures["plain_generate_tokens_per_s"] > 0
    assert set(figures["daemon_steps"]) == {"claimed_s", "inputs-read_s", "ran_s", "computed_s", "submitted_s"}
