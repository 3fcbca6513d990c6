"""The store benchmark runs and reports every figure the README quotes (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_store_prints_its_figures_as_json() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_store.py"), "--size-mb", "8", "--runs", "1",
                             "--json"], capture_output=True, text=True, timeout=300, check=True)
    figures = json.loads(result.stdout)
    for name in ("sha256_mb_s", "add_mb_s", "only_hash_mb_s", "cat_mb_s", "write_mb_s", "add_vs_sha256",
                 "peak_rss_mb", "encrypted_add_mb_s", "encrypted_add_vs_plain", "encrypted_peak_rss_mb"):
        assert figures[name] > 0, name
    assert figures["size_mb"] == 8
