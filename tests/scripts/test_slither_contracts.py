"""slither over the contracts: every high and medium finding is triaged, and an untriaged one fails the run."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "slither_contracts.py"
TRIAGE = ROOT / "contracts" / "slither-triage.md"


@pytest.fixture(scope="module")
def slither() -> Path:
    path: Path = _script().default_slither()
    if not path.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"no slither at {path}: ./dev setup makes .venv-slither")
        pytest.skip(f"no slither at {path} (./dev setup makes .venv-slither)")
    return path


def _run(slither: Path, triage: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), "--json", "--slither", str(slither), "--triage", str(triage)],
                          capture_output=True, text=True, timeout=900, check=False)


def test_every_high_and_medium_finding_is_triaged(slither: Path, tmp_path: Path) -> None:
    result = _run(slither, TRIAGE)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["untriaged"] == []
    # slither really analysed the market: the delegated modules' storage is what it reports on.
    assert report["by_check"]["High:uninitialized-state"] >= 1

    # Drop one high row from the triage: the same findings now fail the check and name what is missing.
    rows = TRIAGE.read_text().splitlines()
    dropped = next(line for line in rows if line.startswith("| High | uninitialized-state | MarketBase._params |"))
    partial = tmp_path / "triage.md"
    partial.write_text("\n".join(line for line in rows if line != dropped) + "\n")
    script = _script()
    findings = [script.Finding(**f) for f in report["findings"]]
    missing = script.untriaged(findings, script.triaged(partial.read_text()))
    assert {(f.impact, f.check, f.where) for f in missing} == {("High", "uninitialized-state", "MarketBase._params")}
    # A low finding of a check the triage does not list fails too.
    novel = script.Finding("Low", "calls-loop", "JobMarket.finalize", "external calls inside a loop")
    assert script.untriaged([novel], script.triaged(TRIAGE.read_text())) == [novel]


def _script():  # type: ignore[no-untyped-def]
    """The script as a module (scripts/ is not a package), for its triage rules."""
    spec = importlib.util.spec_from_file_location("slither_contracts", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_a_missing_slither_is_a_clear_error(tmp_path: Path) -> None:
    result = _run(tmp_path / "no-slither", TRIAGE)
    assert result.returncode == 2
    assert "no slither at" in result.stderr and "./dev setup" in result.stderr
