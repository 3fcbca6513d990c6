"""bench_cli.py runs end to end once per command and reports every figure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_cli.py"


def test_bench_cli_times_each_command() -> None:
    result = subprocess.run([sys.executable, str(SCRIPT), "--repeat", "1", "--json"], capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    commands = {row["command"]: row for row in figures["commands"]}
    assert list(commands) == ["webi --help", "webi job --help", "webi job status 1"]
    assert all(row["runs"] == 1 and 0 < row["min_s"] == row["median_s"] for row in commands.values())
    assert set(figures["goal"]) == {"webi --help", "webi job status 1"}
    assert all(isinstance(goal["met"], bool) for goal in figures["goal"].values())
