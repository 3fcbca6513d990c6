"""What honesty and each kind of cheating earn under the deployed terms (marketplace.economics).

    python scripts/bench_economics.py [--json] [--gas-price-gwei 0.01] [--webi-per-eth 1000]
                                      [--wrong-rate 0.05] [--watch-rate 0.5] [--verifier-stake MIN]
                                      [--colluder-share 0.3]

Reads terms() and params() of a freshly deployed devnet, the SDK's default sample size
(``sample_tasks`` of marketplace.client.Client.post_job) and the verifier's gas per audit
(lockSeed + submitVerdict), a vote's and a challenge's, measured by scripts/bench_gas.py on its own
devnet. Figures are in units of the job's price (providers) or WEBI and audit fees A (verifiers).

Providers, a 1,024-task job, k sampled tasks: for an honest compute cost c of 0.1 .. 0.9 of the
price and a cheat on 1 task, 1 %, 10 %, 50 % and 100 % of the tasks, the detection probability
q = 1 - C(N-m, k) / C(N, k) and the expected gain of cheating over honest work,
c*m/N - q*(1 - protocolFee + collateral). Goal: max_cheat_gain < 0.

Verifiers, per audit, for workloads of N in {1, 16, 1,024, 100,000} tasks at three prices a task:
the minimum ("min"), 1 WEBI ("typical") and the most a job of N tasks may cost ("cap": the price
cap P_max = minVerifierStake x verifierSlashBps, 500 WEBI by default, spread over its tasks, and
at most V_max = P_max / SAMPLE_VALUE_DIVISOR, 6.25 WEBI, for its min(k, N) sampled tasks; or the
minimum when that is less). A workload above either cap is posted as several jobs within both
(marketplace.economics.split_workload; the tables say "J x n tasks"), and
the figures are per audit of the largest of them. Strategies: honest, lazy-pass, always-fail,
colluding with a requester (its Sybil fails honest work), colluding with a cheating provider
(passes its cheat); the formulas are in marketplace.economics.verifier_outcome. A dishonest
verifier stakes --verifier-stake (default: the minimum that gets it drawn, the cheapest way in).
Goals: honest_verifier_min_profit >= 0 (the honest profit when nothing is ever wrong, over every
size and price), max_dishonest_verifier_edge < 0 (in audit fees, over every strategy, size and
price, the cap rows included). lazy_breakeven_wrong_rate is the wrong rate below which lazy-pass
out-earns honest work: the README's assumption (above 1: it pays whatever the wrong rate).

The coalition of a cheating provider and a Sybil is judged ex ante (the provider commits before
the draw; its Sybil is drawn with probability --colluder-share). If it could choose its draws:
colluding_cheater_if_drawn_max is the most passing a full cheat would earn, per unit of the price,
over the job sizes; it uses only that a verifier's slash is at least the job's price (S >=
sigma x minVerifierStake = P_max >= P), so it holds for every stake and every price the contracts
allow (the WEBI figure at the assumed stake is colluding_cheater_if_drawn_max_webi).
watch_rate_needed_if_drawn and colluder_share_breakeven follow from the same bound.

Panels: the bond (3 A), what an honest challenger of a wrong verdict gets back (the bond and
rewardBps of the slash left after the panel's pay) and an honest majority member's profit.

Exit code 1 when a goal fails (the reason is printed).
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_gas measures the gas

import bench_gas

from marketplace.chain.devnet import Anvil, deploy_devnet
from marketplace.economics import (
    STRATEGIES,
    Assumptions,
    AuditCase,
    Economy,
    cheat_gain,
    detection_probability,
    gas_in_webi,
    panel_outcome,
    split_workload,
    verifier_outcome,
)
from marketplace.protocol import Params, Terms

PROVIDER_TASKS = 1_024
COSTS = tuple(round(0.1 * i, 1) for i in range(1, 10))
CHEATS = (("1 task", 0.0), ("1 %", 0.01), ("10 %", 0.1), ("50 %", 0.5), ("100 %", 1.0))
SIZES = (1, 16, 1_024, 100_000)
TYPICAL_TASK_PRICE = 1.0  # WEBI
PRICE_LABELS = ("min", "typical", "cap")


def sdk_sample_tasks() -> tuple[int, str]:
    """The SDK's default ``sample_tasks`` and where it came from."""
    try:
        from marketplace.client import Client

        default = inspect.signature(Client.post_job).parameters["sample_tasks"].default
        return int(default), "marketplace.client.Client.post_job"
    except (ImportError, KeyError, TypeError, ValueError) as exc:
        return 4, f"assumed 4: the SDK's default could not be read ({exc})"


def deployed_terms() -> tuple[Terms, Params]:
    with Anvil() as anvil:
        net = deploy_devnet(anvil, fund_accounts=1)
        try:
            return net.protocol.market.terms(), net.protocol.market.params()
        finally:
            net.client.close()


def provider_grid(economy: Economy, sampled: int) -> list[dict[str, Any]]:
    rows = []
    for label, share in CHEATS:
        cheated = 1 if share == 0 else max(1, round(share * PROVIDER_TASKS))
        q = detection_probability(PROVIDER_TASKS, cheated, sampled)
        for cost in COSTS:
            rows.append({"cost": cost, "cheat": label, "cheated_tasks": cheated, "detection": q,
                         "gain": cheat_gain(economy, cost, PROVIDER_TASKS, cheated, sampled)})
    return rows


def task_price(economy: Economy, label: str, workload: int, sample_tasks: int) -> float:
    """The price a task of a ``workload``-task job for each label (WEBI): "cap" is the dearest the
    contracts allow, under both the price cap and the sampled-value cap."""
    if label == "min":
        return economy.min_task_price
    if label == "typical":
        return TYPICAL_TASK_PRICE
    dearest = min(economy.max_price / workload, economy.max_sample_value / min(sample_tasks, workload))
    return max(dearest, economy.min_task_price)


def verifier_grid(economy: Economy, assumptions: Assumptions, sample_tasks: int) -> list[dict[str, Any]]:
    rows = []
    for workload in SIZES:
        for label in PRICE_LABELS:
            per_task = task_price(economy, label, workload, sample_tasks)
            jobs, num_tasks = split_workload(economy, workload, per_task, sample_tasks)
            case = AuditCase(num_tasks, num_tasks * per_task, sample_tasks)
            outcome = verifier_outcome(economy, assumptions, case)
            panel = panel_outcome(economy, assumptions, case)
            fee = outcome.audit_fee
            rows.append({
                "workload": workload, "price_label": label, "task_price": per_task, "jobs": jobs,
                "num_tasks": num_tasks, "price": case.price, "sampled": case.sampled,
                "audit_fee": fee, "compute": outcome.compute, "slash": outcome.slash, "reward": outcome.reward,
                "profits": outcome.profits,
                "profits_in_fees": {name: value / fee for name, value in outcome.profits.items()},
                "edges": outcome.edges,
                "edges_in_fees": {name: value / fee for name, value in outcome.edges.items()},
                "honest_floor": outcome.honest_floor,
                "lazy_breakeven_wrong_rate": outcome.lazy_breakeven_wrong_rate,
                "colluding_cheater_if_drawn": outcome.colluding_cheater_if_drawn,
                "colluding_cheater_if_drawn_bound": outcome.colluding_cheater_if_drawn_bound,
                "panel": asdict(panel),
            })
    return rows


def watch_rate_needed(economy: Economy, assumptions: Assumptions, rows: list[dict[str, Any]]) -> float:
    """The watch rate at which a cheater coalition would lose even if its Sybil were always drawn.

    With the least slash the contracts allow on each job (``S = P``, see
    ``colluding_cheater_if_drawn_bound``): enough for every stake and every price up to the cap.
    """
    loss = 1 - economy.protocol_fee + economy.collateral
    return max(float((assumptions.provider_cost * row["price"] + row["compute"])
                     / (loss * row["price"] + row["audit_fee"] + row["price"])) for row in rows)


def colluder_share_breakeven(economy: Economy, rows: list[dict[str, Any]], assumptions: Assumptions) -> float:
    """The colluders' stake share above which passing a partner's full cheat pays (1.0: never).

    Per unit of the price, with the bound on the coalition's edge if drawn (``S = P``).
    """
    loss = 1 - economy.protocol_fee + economy.collateral
    shares = []
    for row in rows:
        caught = assumptions.provider_cost - loss  # an honest verifier is drawn
        drawn = row["colluding_cheater_if_drawn_bound"]
        if caught >= 0:
            shares.append(0.0)  # the cheat pays without any accomplice
        elif drawn <= 0:
            shares.append(1.0)  # it never pays
        else:
            shares.append(-caught / (drawn - caught))
    return min(shares)


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    terms, params = deployed_terms()
    economy = Economy.of(terms, params)
    verifier_stake = economy.min_verifier_stake if args.verifier_stake is None else args.verifier_stake
    if verifier_stake < economy.min_verifier_stake:
        raise ValueError(f"--verifier-stake {verifier_stake:g}: a verifier below the minimum stake of "
                         f"{economy.min_verifier_stake:g} WEBI is never drawn")
    sample_tasks, sample_source = sdk_sample_tasks()
    gas = bench_gas.measure()
    calls = gas["calls"]
    gas_units = {"verifier_gas": gas["verifier_gas"], "vote_gas": calls["commitVote"] + calls["revealVote"],
                 "challenge_gas": calls["challenge"]}
    assumptions = Assumptions(
        verifier_cost=args.verifier_cost, provider_cost=args.verifier_cost, wrong_rate=args.wrong_rate,
        watch_rate=args.watch_rate, verifier_stake=verifier_stake, colluder_share=args.colluder_share)
    assumptions = replace(assumptions, **{name: gas_in_webi(units, args.gas_price_gwei, args.webi_per_eth)
                                         for name, units in gas_units.items()})
    providers = provider_grid(economy, min(sample_tasks, PROVIDER_TASKS))
    verifiers = verifier_grid(economy, assumptions, sample_tasks)
    worst_cheat = max(providers, key=lambda row: row["gain"])
    edges = [(value, name, row) for row in verifiers for name, value in row["edges_in_fees"].items()]
    worst_edge, worst_strategy, worst_row = max(edges, key=lambda item: item[0])
    figures: dict[str, Any] = {
        "terms": asdict(terms), "params": asdict(params),
        "economy": {**asdict(economy), "max_price": economy.max_price, "max_sample_value": economy.max_sample_value},
        "sample_tasks": sample_tasks, "sample_tasks_source": sample_source,
        "assumptions": {**asdict(assumptions), "gas_price_gwei": args.gas_price_gwei,
                        "webi_per_eth": args.webi_per_eth},
        "gas": gas_units,
        "providers": {"num_tasks": PROVIDER_TASKS, "sampled": min(sample_tasks, PROVIDER_TASKS), "grid": providers},
        "max_cheat_gain": worst_cheat["gain"],
        "max_cheat_gain_at": {"cost": worst_cheat["cost"], "cheat": worst_cheat["cheat"]},
        "verifiers": verifiers,
        "honest_verifier_min_profit": min(row["honest_floor"] for row in verifiers),
        "max_dishonest_verifier_edge": worst_edge,
        "max_dishonest_verifier_edge_at": {"strategy": worst_strategy, "workload": worst_row["workload"],
                                           "price_label": worst_row["price_label"],
                                           "num_tasks": worst_row["num_tasks"], "price": worst_row["price"],
                                           "webi": worst_row["edges"][worst_strategy]},
        "max_dishonest_verifier_edge_by_price": {
            label: max(value for row in verifiers if row["price_label"] == label
                       for value in row["edges_in_fees"].values()) for label in PRICE_LABELS},
        "lazy_breakeven_wrong_rate": {f"{row['workload']}@{row['price_label']}": row["lazy_breakeven_wrong_rate"]
                                      for row in verifiers},
        "colluding_cheater_if_drawn_max": max(row["colluding_cheater_if_drawn_bound"] for row in verifiers),
        "colluding_cheater_if_drawn_max_webi": max(row["colluding_cheater_if_drawn"] for row in verifiers),
        "watch_rate_needed_if_drawn": watch_rate_needed(economy, assumptions, verifiers),
        "colluder_share_breakeven": colluder_share_breakeven(economy, verifiers, assumptions),
    }
    figures["goals"] = {
        "max_cheat_gain": {"goal": "< 0", "met": figures["max_cheat_gain"] < 0},
        "honest_verifier_min_profit": {"goal": ">= 0", "met": figures["honest_verifier_min_profit"] >= 0},
        "max_dishonest_verifier_edge": {"goal": "< 0", "met": figures["max_dishonest_verifier_edge"] < 0},
    }
    return figures


def tasks(count: int) -> str:
    return f"{count:,} task" if count == 1 else f"{count:,} tasks"


def failures(figures: dict[str, Any]) -> list[str]:
    """Why each missed goal missed, in words."""
    reasons = []
    if not figures["goals"]["max_cheat_gain"]["met"]:
        at = figures["max_cheat_gain_at"]
        reasons.append(f"a provider gains {figures['max_cheat_gain']:.4f} x the price by cheating on {at['cheat']} "
                       f"of the tasks at cost {at['cost']}")
    if not figures["goals"]["honest_verifier_min_profit"]["met"]:
        reasons.append(f"an honest verifier loses {-figures['honest_verifier_min_profit']:.6f} WEBI on some audit")
    if not figures["goals"]["max_dishonest_verifier_edge"]["met"]:
        at = figures["max_dishonest_verifier_edge_at"]
        reasons.append(f"{at['strategy']} out-earns honest work by {figures['max_dishonest_verifier_edge']:.3f} A "
                       f"({at['webi']:.4f} WEBI) on a job of {tasks(at['num_tasks'])} at {at['price']:g} WEBI "
                       f"({at['workload']:,}@{at['price_label']})")
    return reasons


def job_label(row: dict[str, Any]) -> str:
    """``16@typical``, or ``100,000@min = 10 x 10,000`` for a workload split under the price cap."""
    label = f"{row['workload']:,}@{row['price_label']}"
    return label if row["jobs"] == 1 else f"{label} = {row['jobs']:,} x {row['num_tasks']:,}"


def show(figures: dict[str, Any], console: Console) -> None:
    a = figures["assumptions"]
    console.print(f"terms {figures['terms']}\nparams {figures['params']}")
    console.print(f"price cap P_max = {figures['economy']['max_price']:g} WEBI a job, sampled-value cap V_max = "
                  f"{figures['economy']['max_sample_value']:g} WEBI; a workload above them is split into jobs "
                  "within both (tasks: workload@price = jobs x tasks of the largest job)")
    console.print(f"sample_tasks k = {figures['sample_tasks']} ({figures['sample_tasks_source']}); assumptions: "
                  f"gas {a['gas_price_gwei']} gwei, {a['webi_per_eth']:g} WEBI/ETH, c_v = {a['verifier_cost']}, "
                  f"wrong rate {a['wrong_rate']}, watch rate {a['watch_rate']}, provider challenges every fail "
                  f"of honest work, verifier stake {a['verifier_stake']:g} WEBI, colluders' stake share "
                  f"{a['colluder_share']}")
    g = figures["gas"]
    console.print(f"gas: verifier {g['verifier_gas']:,} ({a['verifier_gas']:.6f} WEBI), vote {g['vote_gas']:,} "
                  f"({a['vote_gas']:.6f} WEBI), challenge {g['challenge_gas']:,} ({a['challenge_gas']:.6f} WEBI)")
    grid = Table(title=f"provider: gain of cheating over honest work, x price ({figures['providers']['num_tasks']:,} "
                       f"tasks, {figures['providers']['sampled']} sampled)")
    grid.add_column("cost c")
    cheats = list(dict.fromkeys(row["cheat"] for row in figures["providers"]["grid"]))
    detection = {row["cheat"]: row["detection"] for row in figures["providers"]["grid"]}
    for cheat in cheats:
        grid.add_column(f"{cheat} (q={detection[cheat]:.4f})", justify="right")
    for cost in COSTS:
        gains = {row["cheat"]: row["gain"] for row in figures["providers"]["grid"] if row["cost"] == cost}
        grid.add_row(f"{cost:.1f}", *(f"{gains[cheat]:+.4f}" for cheat in cheats))
    console.print(grid)
    profits = Table(title="verifier: expected profit per audit, WEBI (in audit fees A)")
    for column in ("tasks", "job price", "A", *STRATEGIES, "lazy break-even wrong rate"):
        profits.add_column(column, justify="right")
    for row in figures["verifiers"]:
        cells = [f"{row['profits'][name]:+.4g} ({row['profits_in_fees'][name]:+.3g})" for name in STRATEGIES]
        profits.add_row(job_label(row), f"{row['price']:,.4g}", f"{row['audit_fee']:.4g}", *cells,
                        f"{row['lazy_breakeven_wrong_rate']:.2e}")
    console.print(profits)
    edges = Table(title="verifier: dishonest profit - honest profit, in audit fees A")
    for column in ("tasks", "job price", *figures["verifiers"][0]["edges"], "cheater coalition if drawn, WEBI",
                   "bound, x price"):
        edges.add_column(column, justify="right")
    for row in figures["verifiers"]:
        edges.add_row(job_label(row), f"{row['price']:,.4g}",
                      *(f"{value:+.4g}" for value in row["edges_in_fees"].values()),
                      f"{row['colluding_cheater_if_drawn']:+.4g}", f"{row['colluding_cheater_if_drawn_bound']:+.4f}")
    console.print(edges)
    panel = Table(title="panels: honest challenger of a wrong verdict and honest majority member, WEBI")
    for column in ("tasks", "job price", "bond 3A", "challenger reward", "challenger profit", "member fee",
                   "member profit"):
        panel.add_column(column, justify="right")
    for row in figures["verifiers"]:
        p = row["panel"]
        panel.add_row(job_label(row), f"{row['price']:,.4g}", f"{p['bond']:.4g}",
                      f"{p['challenger_reward']:.4g}", f"{p['challenger_profit']:+.4g}", f"{p['member_fee']:.4g}",
                      f"{p['member_profit']:+.4g}")
    console.print(panel)
    summary = Table(title="figures")
    for column in ("figure", "value", "goal", "met"):
        summary.add_column(column, justify="left" if column == "figure" else "right")
    at = figures["max_dishonest_verifier_edge_at"]
    for name, value in (("max_cheat_gain", f"{figures['max_cheat_gain']:+.5f} x price"),
                        ("honest_verifier_min_profit", f"{figures['honest_verifier_min_profit']:+.6f} WEBI"),
                        ("max_dishonest_verifier_edge", f"{figures['max_dishonest_verifier_edge']:+.3f} A "
                                                        f"({at['strategy']}, {tasks(at['num_tasks'])} at "
                                                        f"{at['price']:g} WEBI)")):
        goal = figures["goals"][name]
        summary.add_row(name, value, goal["goal"], "yes" if goal["met"] else "[red]NO[/red]")
    for label, edge in figures["max_dishonest_verifier_edge_by_price"].items():
        summary.add_row(f"  of which at the {label} price", f"{edge:+.3f} A", "", "")
    summary.add_row("lazy_breakeven_wrong_rate (max)", f"{max(figures['lazy_breakeven_wrong_rate'].values()):.2e}",
                    "", "")
    summary.add_row("colluding_cheater_if_drawn_max", f"{figures['colluding_cheater_if_drawn_max']:+.4f} x price "
                    "(any stake, any price <= P_max)", "", "")
    summary.add_row("colluding_cheater_if_drawn_max_webi",
                    f"{figures['colluding_cheater_if_drawn_max_webi']:+,.4g} WEBI (at the assumed stake)", "", "")
    summary.add_row("watch_rate_needed_if_drawn", f"{figures['watch_rate_needed_if_drawn']:.3f}", "", "")
    summary.add_row("colluder_share_breakeven", f"{figures['colluder_share_breakeven']:.3f}", "", "")
    console.print(summary)
    console.print(
        "colluding_cheater is judged ex ante: the provider commits its result before the draw, so its Sybil audits it "
        f"with probability {a['colluder_share']} (the colluders' stake share). If the coalition could choose its "
        "draws, passing a full cheat would earn up to colluding_cheater_if_drawn_max x the price (a verifier's slash "
        "is at least the job's price: S >= sigma x minVerifierStake = P_max >= P); that stops paying at a watch rate "
        "of watch_rate_needed_if_drawn, or below a stake share of colluder_share_breakeven when it cannot.")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--gas-price-gwei", type=float, default=0.01, help="gas price (default 0.01: an L2)")
    parser.add_argument("--webi-per-eth", type=float, default=1_000.0, help="WEBI per ETH (default 1000)")
    parser.add_argument("--wrong-rate", type=float, default=0.05,
                        help="share of submissions whose sample is wrong: cheats and canaries (default 0.05)")
    parser.add_argument("--watch-rate", type=float, default=0.5,
                        help="probability that a wrong pass is challenged (default 0.5)")
    parser.add_argument("--verifier-stake", type=float, default=None,
                        help="a dishonest verifier's stake, WEBI (default: the deployed params.minVerifierStake)")
    parser.add_argument("--verifier-cost", type=float, default=0.9,
                        help="compute cost as a share of the price, verifier's and cheater's (default 0.9)")
    parser.add_argument("--colluder-share", type=float, default=0.3,
                        help="the colluding verifiers' share of the verifier stake (default 0.3)")
    args = parser.parse_args()
    try:
        figures = evaluate(args)
    except ValueError as exc:
        parser.error(str(exc))
    reasons = failures(figures)
    if args.json:
        json.dump(figures, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        show(figures, Console(width=max(Console().width, 160)))
    for reason in reasons:
        print(f"goal missed: {reason}", file=sys.stderr)
    return 1 if reasons else 0


if __name__ == "__main__":
    sys.exit(main())
