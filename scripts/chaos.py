"""Chaos runs: the marketplace under kill -9, RPC outages and deep reorgs; nothing may be lost.

    python scripts/chaos.py [--runs N] [--seed S] [--json] [--faults-per-run K] [--outage-s SECONDS]
                             [--parallel P] [--keep DIR]

Each run (``marketplace.chaos.run``) starts anvil, an RPC proxy, the node, two providers and a
verifier, posts a public embed job, a generate job, an Open confidential embed job and a group of two
embed shards on tiny models, and injects K faults at seeded times while they run: kill -9 of a
provider, the verifier or the node (then a restart), an RPC outage of --outage-s seconds (connections
refused and dropped), and an anvil restart from a state dumped some blocks earlier (a deep reorg).
Then it checks that the audit is clean with the node's database equal to the chain, that every job
was finalized, that none was claimed or settled twice, and that no honest party was slashed
(``marketplace.chaos.checks``).

Figures: runs, seconds (wall, all runs), faults (injected, by kind), violations (a list; empty when
nothing broke). Exit status 1 when there is a violation. A run's folder (logs of every process,
state dumps) is removed unless --keep names where to keep them; --parallel P runs P at a time.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from marketplace.chaos.faults import FaultKind, FaultPlan

if TYPE_CHECKING:
    from marketplace.chaos.run import RunResult


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--faults-per-run", type=int, default=3)
    parser.add_argument("--outage-s", type=float, default=30.0, help="how long an RPC outage lasts")
    parser.add_argument("--parallel", type=int, default=1, metavar="P",
                        help="runs at a time (each has its own chain, ports and folder)")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="keep every run's folder (logs, dumps) under DIR")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.runs < 1 or args.parallel < 1 or args.faults_per_run < 0 or args.outage_s <= 0:
        parser.error("--runs and --parallel must be at least 1, --faults-per-run at least 0 and --outage-s positive")
    from marketplace.chaos.run import PROVIDERS, ChaosRun, RunSettings, build_models  # torch: after the arguments

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    console = Console(stderr=True)
    plan = FaultPlan(args.seed, args.faults_per_run, outage_s=args.outage_s)
    work = Path(tempfile.mkdtemp(prefix="webi-chaos-"))
    results: list[RunResult] = []
    started = time.monotonic()
    build_models(work / "models")  # once, before runs share them

    def one(index: int) -> RunResult:
        faults = plan.run(index, PROVIDERS)
        console.print(f"run {index + 1}/{args.runs}: " + "; ".join(fault.describe() for fault in faults),
                      highlight=False)
        result = ChaosRun(index, faults, RunSettings((args.keep or work) / f"run-{index}", work / "models")).run()
        verdict = "ok" if not result.violations else f"[red]{len(result.violations)} violation(s)[/red]"
        console.print(f"run {index + 1}: {result.jobs} jobs, {result.seconds:.0f} s: {verdict}")
        for violation in result.violations:
            console.print(f"    {violation.check}: {violation.detail}", highlight=False)
        if args.keep is None and not result.violations:
            shutil.rmtree(work / f"run-{index}", ignore_errors=True)
        return result

    try:
        with ThreadPoolExecutor(args.parallel) as pool:
            results.extend(pool.map(one, range(args.runs)))
    finally:
        if any(result.violations for result in results):
            console.print(f"the failed runs' folders (every process's log) are kept in {work}", highlight=False)
        else:
            shutil.rmtree(work, ignore_errors=True)
    figures = summary(results, args.seed, time.monotonic() - started)
    if args.json:
        print(json.dumps(figures, indent=2))  # the document alone on stdout
    else:
        table = Table("figure", "value", title=f"chaos, seed {args.seed}")
        table.add_row("runs", str(figures["runs"]))
        table.add_row("seconds", f"{figures['seconds']:.0f} ({figures['seconds_per_run']:.0f} a run)")
        for kind, count in figures["faults"].items():
            table.add_row(f"  faults: {kind}", str(count))
        table.add_row("violations", str(len(figures["violations"])))
        Console().print(table)
    return 1 if figures["violations"] else 0


def summary(results: list[RunResult], seed: int, seconds: float) -> dict[str, Any]:
    faults = Counter(fault.kind.value for result in results for fault in result.faults)
    return {
        "runs": len(results),
        "seed": seed,
        "seconds": round(seconds, 1),
        "seconds_per_run": round(seconds / max(1, len(results)), 1),
        "jobs": sum(result.jobs for result in results),
        "faults": {kind.value: faults.get(kind.value, 0) for kind in FaultKind},
        "restarts_after_crash": sum(result.restarts for result in results),
        "violations": [violation.as_dict() for result in results for violation in result.violations],
    }


if __name__ == "__main__":
    sys.exit(main())
