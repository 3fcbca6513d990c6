"""Run slither over the contracts as the pinned solc-js compiles them, and check its findings against the triage.

    python scripts/slither_contracts.py           # findings by impact; exit 1 if a high or medium one is untriaged
    python scripts/slither_contracts.py --json    # the same as one JSON document

Nothing is downloaded and no other compiler runs: the script writes a Hardhat build-info document
(`marketplace.chain.compiler.build_info`) into a scratch folder that links `src/` and `node_modules/`,
and runs slither there with `--hardhat-ignore-compile`. Findings inside OpenZeppelin are left out.

slither-analyzer needs web3 7 and WEBI runs web3 8, so slither lives in its own virtual environment:
`./dev setup` makes `.venv-slither` (override with `--slither PATH` or `WEBI_SLITHER`).
Every high or medium finding must have a row in `contracts/slither-triage.md` (impact, check,
where, and why it is fixed or harmless); low findings are listed there by check and count.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from marketplace.chain.compiler import Layout, build_info

ROOT = Path(__file__).resolve().parent.parent
TRIAGE = ROOT / "contracts" / "slither-triage.md"
SEVERE = ("High", "Medium")
_ROW = re.compile(r"^\|\s*(High|Medium|Low)\s*\|\s*`?([a-z0-9-]+)`?\s*\|\s*`?([^|`]+?)`?\s*\|", re.MULTILINE)


@dataclass(frozen=True)
class Finding:
    """One slither result: its impact, the detector (`check`), where (`Contract.function[.local]`) and the text."""

    impact: str
    check: str
    where: str
    description: str


def default_slither() -> Path:
    return Path(os.environ.get("WEBI_SLITHER") or ROOT / ".venv-slither" / "bin" / "slither")


def run_slither(slither: Path, layout: Layout) -> list[Finding]:
    """slither's low-to-high findings on the project's own sources (OpenZeppelin's are left out)."""
    if not slither.exists():
        raise FileNotFoundError(f"no slither at {slither}: run ./dev setup (it makes .venv-slither)")
    with tempfile.TemporaryDirectory(prefix="webi-slither-") as scratch:
        project = Path(scratch)
        (project / "artifacts" / "build-info").mkdir(parents=True)
        (project / "artifacts" / "build-info" / "webi.json").write_text(json.dumps(build_info(layout)))
        (project / "hardhat.config.js").write_text("module.exports = {};\n")  # marks the folder as Hardhat's
        (project / "src").symlink_to(layout.sources)
        (project / "node_modules").symlink_to(layout.node_modules)
        report = project / "slither.json"
        proc = subprocess.run(
            [str(slither), ".", "--compile-force-framework", "hardhat", "--hardhat-ignore-compile",
             "--filter-paths", "node_modules", "--exclude-informational", "--exclude-optimization",
             "--json", str(report)],
            cwd=project, capture_output=True, text=True, check=False, timeout=600,
        )
        if not report.exists():
            raise RuntimeError(f"slither failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
        document = json.loads(report.read_text())
    if not document.get("success"):
        raise RuntimeError(f"slither failed: {document.get('error')}")
    return [_finding(result) for result in document.get("results", {}).get("detectors", [])]


def _finding(result: dict[str, object]) -> Finding:
    description = str(result["description"]).strip()
    # "Disputes._tally(IJobMarketTypes.Panel).counts (src/Disputes.sol#308) is ..." -> "Disputes._tally.counts"
    where = re.sub(r"\([^()]*\)", "", description.split(" (", 1)[0])
    return Finding(str(result["impact"]), str(result["check"]), where, description)


def triaged(text: str) -> set[tuple[str, str, str]]:
    """(impact, check, where) of every row of the triage tables; a Low row's `where` is its count."""
    return {(impact, check, where.strip()) for impact, check, where in _ROW.findall(text)}


def untriaged(findings: list[Finding], rows: set[tuple[str, str, str]]) -> list[Finding]:
    """High and medium findings without a triage row, and low findings whose check is not listed."""
    low_checks = {check for impact, check, _ in rows if impact == "Low"}
    return [f for f in findings if (f.impact in SEVERE and (f.impact, f.check, f.where) not in rows)
            or (f.impact == "Low" and f.check not in low_checks)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--slither", type=Path, default=default_slither(), help="the slither executable")
    parser.add_argument("--triage", type=Path, default=TRIAGE, help="the triage file (default: %(default)s)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("marketplace.chain.compiler").setLevel(logging.ERROR)  # solc's warnings: not findings
    try:
        findings = run_slither(args.slither, Layout(ROOT))
    except (FileNotFoundError, RuntimeError) as error:
        logging.error("%s", error)
        return 2
    missing = untriaged(findings, triaged(args.triage.read_text()))
    counts = Counter(f.impact for f in findings)
    if args.json:
        print(json.dumps({"counts": {impact: counts.get(impact, 0) for impact in ("High", "Medium", "Low")},
                          "by_check": dict(sorted(Counter(f"{f.impact}:{f.check}" for f in findings).items())),
                          "untriaged": [asdict(f) for f in missing],
                          "findings": [asdict(f) for f in findings]}, indent=1))
    else:
        for f in sorted(findings, key=lambda f: (("High", "Medium", "Low").index(f.impact), f.check, f.where)):
            print(f"{f.impact:<7} {f.check:<24} {f.where}")
        print(f"{counts.get('High', 0)} high, {counts.get('Medium', 0)} medium, {counts.get('Low', 0)} low; "
              f"{len(missing)} untriaged (see {args.triage})")
        for f in missing:
            print(f"untriaged: {f.impact} {f.check} {f.where}: {f.description.splitlines()[0]}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
