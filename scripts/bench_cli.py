"""Start-up time of the ``webi`` command line: wall seconds per command, as a person types it.

    python scripts/bench_cli.py [--repeat 5] [--json]

Starts a devnet (anvil, WEBI deployed), posts one small job from dev account 1, then runs each
command below ``--repeat`` times as a fresh subprocess (the ``webi`` console script of this
interpreter's environment, under an empty ``$WEBI_HOME``) and reports the median and the fastest
wall time of each:

  webi --help              the top-level help: imports every command module (issue 16 goal < 1 s)
  webi job --help          one group's help
  webi job status 1        a real status of the open job, read from the devnet (goal < 2 s)

A command that exits non-zero stops the run with its output: a fast failure is no figure. The
figures depend on the machine and on what else runs on it; they are for comparison on one box.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from marketplace.chain.deployment import WEI
from marketplace.chain.devnet import Anvil, Devnet, deploy_devnet, dev_account
from marketplace.protocol import JobRequest

GOALS = {"webi --help": 1.0, "webi job status 1": 2.0}
SPEC_CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"  # never fetched: status reads the chain


@dataclass(frozen=True)
class Timing:
    """One command's wall seconds over every repeat."""

    command: str
    seconds: list[float]

    def as_dict(self) -> dict[str, object]:
        return {"command": self.command, "median_s": round(statistics.median(self.seconds), 3),
                "min_s": round(min(self.seconds), 3), "runs": len(self.seconds)}


def webi_command() -> list[str]:
    """The ``webi`` console script next to this interpreter (what a user runs), else ``python -m``."""
    script = Path(sys.executable).parent / "webi"
    return [str(script)] if script.exists() else [sys.executable, "-m", "marketplace.cli"]


def post_job(net: Devnet) -> int:
    """One open job of 4 tasks, so that ``webi job status`` has a real job to describe."""
    requester = dev_account(1)
    net.protocol.token.approve(requester, net.protocol.market.address, 100 * WEI)
    request = JobRequest(SPEC_CID, 4, 1 * WEI, net.client.timestamp() + 3_600, 600, 2)
    return net.protocol.market.post_job(requester, request)


def measure(argv: list[str], env: dict[str, str], repeat: int) -> list[float]:
    """Wall seconds of ``repeat`` fresh runs of ``argv``; a failing run raises with its output."""
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
        seconds.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stdout}{done.stderr}")
    return seconds


def run(repeat: int, home: Path) -> list[Timing]:
    webi = webi_command()
    env = {key: value for key, value in os.environ.items() if key not in ("WEBI_RPC_URL", "WEBI_STORE")}
    env |= {"WEBI_HOME": str(home / "webi-home"), "COLUMNS": "100"}
    with Anvil(accounts=4, log_path=home / "anvil.log") as anvil:
        net = deploy_devnet(anvil, fund_accounts=2)
        deployments = home / "deployments"
        net.protocol.deployment.save(deployments)
        (home / "store").mkdir()
        job_id = post_job(net)
        status = ["job", "status", str(job_id), "--deployments", str(deployments), "--store", str(home / "store")]
        commands = {
            "webi --help": ["--help"],
            "webi job --help": ["job", "--help"],
            f"webi job status {job_id}": ["--rpc-url", anvil.rpc_url, *status],
        }
        return [Timing(name, measure(webi + argv, env, repeat)) for name, argv in commands.items()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="Runs of each command (median and min of them).")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    home = Path(tempfile.mkdtemp(prefix="webi-bench-cli-"))
    timings = run(args.repeat, home)
    shutil.rmtree(home, ignore_errors=True)  # kept when something failed: anvil's log is there
    medians = {timing.command: statistics.median(timing.seconds) for timing in timings}
    goal = {name: {"max_median_s": limit, "met": name in medians and medians[name] < limit}
            for name, limit in GOALS.items()}
    if args.json:
        print(json.dumps({"commands": [timing.as_dict() for timing in timings], "goal": goal}, indent=2))
        return 0
    table = Table("command", "median s", "min s", "goal", title=f"webi start-up ({args.repeat} runs each)")
    for timing in timings:
        median, limit = medians[timing.command], GOALS.get(timing.command)
        verdict = "" if limit is None else f"< {limit:g} s ({'met' if median < limit else 'missed'})"
        table.add_row(timing.command, f"{median:.3f}", f"{min(timing.seconds):.3f}", verdict)
    Console().print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
