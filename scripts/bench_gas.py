"""Gas per JobMarket call and per job lifecycle, on a devnet this script starts.

    python scripts/bench_gas.py [--json]

Figures (gas used by the receipts, refunds included):
  lifecycle_gas          post + claim + submit + finalize of an unaudited job, for accounts that
                         already hold a credited balance (steady state)
  lifecycle_gas_first    the same for accounts whose balances start at zero (first job ever)
  audited_lifecycle_gas  post + claim + submit + passing verdict
  per_task_gas_256       lifecycle_gas of a 256-task job / 256
Goals: lifecycle <= 230,000; audited <= 300,000; per task <= 1,000.
"""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console
from rich.table import Table

from marketplace.chain.deployment import WEI
from marketplace.chain.devnet import Anvil, Devnet, deploy_devnet, dev_account, increase_time, mine
from marketplace.protocol import JobRequest, Role

GOALS = {"lifecycle_gas": 230_000, "audited_lifecycle_gas": 300_000, "per_task_gas_256": 1_000}
CID = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"


def lifecycle(net: Devnet, *, audited: bool, num_tasks: int = 16) -> dict[str, int]:
    market, client = net.protocol.market, net.client
    requester, provider, verifier = dev_account(1), dev_account(2), dev_account(3)
    request = JobRequest(CID, num_tasks, 100 * WEI, client.timestamp() + 3_600, 600, 10_000 if audited else 500, 8)
    receipt = client.transact(requester, market.contract.functions.postJob(request.as_tuple()))
    job_id = market.posted_job_id(receipt)
    gas = {"postJob": receipt["gasUsed"]}
    gas["claimJob"] = market.claim_job(provider, job_id)["gasUsed"]
    gas["submitResult"] = market.submit_result(provider, job_id, CID, b"\x11" * 32)["gasUsed"]
    mine(client, 2)
    if audited:
        gas["submitVerdict"] = market.submit_verdict(verifier, job_id, True, CID)["gasUsed"]
    else:
        increase_time(client, market.terms_of(job_id).audit_window + 1)
        gas["finalize"] = market.finalize(requester, job_id)["gasUsed"]
    return gas


def measure() -> dict[str, object]:
    with Anvil() as anvil:
        net = deploy_devnet(anvil)
        market, token = net.protocol.market, net.protocol.token
        for account, role in ((dev_account(2), Role.PROVIDER), (dev_account(3), Role.VERIFIER)):
            token.approve(account, market.address, 2**256 - 1)
            market.register(account, role, 10_000 * WEI)
        token.approve(dev_account(1), market.address, 2**256 - 1)
        first = lifecycle(net, audited=False)
        steady = lifecycle(net, audited=False)
        audited = lifecycle(net, audited=True)
        wide = lifecycle(net, audited=False, num_tasks=256)
        calls = {**steady, "submitVerdict": audited["submitVerdict"]}
        job_id = market.post_job(dev_account(1), JobRequest(CID, 1, WEI, net.client.timestamp() + 3_600, 600, 500, 1))
        calls["cancelJob"] = market.cancel_job(dev_account(1), job_id)["gasUsed"]
        calls["withdraw"] = market.withdraw(dev_account(2))["gasUsed"]
    return {
        "calls": calls,
        "lifecycle_gas": sum(steady.values()),
        "lifecycle_gas_first": sum(first.values()),
        "audited_lifecycle_gas": sum(audited.values()),
        "per_task_gas_256": round(sum(wide.values()) / 256, 1),
        "goals": GOALS,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    figures = measure()
    if args.json:
        json.dump(figures, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    console = Console()
    calls = Table(title="gas per call (steady state)")
    calls.add_column("call")
    calls.add_column("gas", justify="right")
    for name, gas in figures["calls"].items():  # type: ignore[union-attr]
        calls.add_row(name, f"{gas:,}")
    console.print(calls)
    summary = Table(title="lifecycle")
    for column in ("figure", "value", "goal", "met"):
        summary.add_column(column, justify="left" if column == "figure" else "right")
    for name in ("lifecycle_gas", "lifecycle_gas_first", "audited_lifecycle_gas", "per_task_gas_256"):
        value, goal = figures[name], GOALS.get(name)
        met = "" if goal is None else ("yes" if value <= goal else "NO")  # type: ignore[operator]
        summary.add_row(name, f"{value:,}", "" if goal is None else f"≤ {goal:,}", met)
    console.print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
