"""Gas per JobMarket call and per job path, on a devnet this script starts.

    python scripts/bench_gas.py [--json]

Every job is audited, so every path below includes the audit (gas used by the receipts, refunds
included; "steady state": the accounts already hold credited balances and stakes, as on a network
that has run for a while):

  audited_settled_gas        post + claim + submit + lockSeed + submitVerdict (pass) + finalize after
                             the challenge window, steady state, one verifier in the draw
  audited_settled_gas_first  the same for accounts whose balances start at zero (the first job ever)
  per_task_gas_256           audited_settled_gas of a 256-task job (4 sampled) / 256
  challenge_upheld_gas       challenge (the requester, of a pass) + drawPanel + commitVote and
                             revealVote by each panel member + resolveChallenge, the panel
                             confirming the pass (three seats drawn with replacement: a member
                             drawn twice votes once for both; panel_members says how many there were)
  challenge_overturned_gas   the same path for the provider's challenge of a fail that the panel
                             overturns (the verifier is slashed; panel fees, reward, refunds), plus
                             the syncVerifier that applies the slash to the draw in the next sync
                             phase (until then the slashed verifier keeps its old weight)
  reveal_demand_gas          demandReveal + revealOutputs of the 4 sampled outputs with their proofs
  verifier_gas               lockSeed + submitVerdict: what an honest verifier pays per audit
                             (scripts/bench_economics.py converts it to WEBI)
  gas_per_extra_shard_64     (postJobGroup of 64 shards - postJobGroup of 1) / 63: what each shard
                             of a job group adds to the one transaction that posts it

The per-call table adds lockSeed with six verifiers in the draw (the tree's descent grows with
log2 of their number), the first commitSecret made in a sync phase (it puts the verifier into the
draw at once), syncVerifier for a verifier that registered outside one (what puts it into the draw
then), cancelJob and withdraw.

Verifier weights change only in sync phases (the first SYNC_BLOCKS blocks of every EPOCH_BLOCKS),
and a draw whose seed block and call lie on two sides of one re-arms instead of drawing. Each path
starts where its blocks fit in one epoch's draw phase (``GasBench.room``), so every lockSeed and
drawPanel measured is a draw, never a re-arm, and no slash lands in a sync phase by accident.

The challenge paths run with six verifiers staked (five of them can sit on a panel besides the
job's verifier; the challengers are the requester and the provider); who is drawn is read from
auditOf / panelOf, so every path runs whatever the block hashes are. Before they run, every
account involved is given a credited balance, so their figures are steady state too. The
devnet's clock is pinned (``Anvil(pinned_clock=True)``: a fixed genesis time, one second a
block), so the block hashes, the draws and with them every figure are the same from run to run.

Goals (issues 13, 18): audited_settled_gas <= 300,000; per_task_gas_256 <= 1,200;
gas_per_extra_shard_64 <= 60,000. A missed goal is
reported as such (the exit code stays 0: the figures are a measurement, not a test).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from typing import Any

from eth_account.signers.local import LocalAccount
from rich.console import Console
from rich.table import Table

from marketplace.chain.client import ChainClient
from marketplace.chain.deployment import WEI
from marketplace.chain.devnet import Anvil, Devnet, deploy_devnet, dev_account, increase_time, mine
from marketplace.chain.market import JobMarket
from marketplace.protocol import (
    EPOCH_BLOCKS,
    SYNC_BLOCKS,
    JobRequest,
    Role,
    Verdict,
    audit_secret,
    next_sync_block,
    secret_hash,
)
from marketplace.results import MerkleTree

GOALS = {"audited_settled_gas": 300_000, "per_task_gas_256": 1_200, "gas_per_extra_shard_64": 60_000}
CID = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
MAX_UINT = 2**256 - 1
PATH_CALLS = ("postJob", "claimJob", "submitResult", "lockSeed", "submitVerdict", "finalize")
SALT = b"\x5a" * 32
VERIFIER_STAKE = 10_000 * WEI  # above the minimum (1,000 WEBI), so a slash of half leaves it in the draw


def block_number(client: ChainClient) -> int:
    return int(client.w3.eth.block_number)


def to_sync_phase(client: ChainClient) -> None:
    """Mines until the latest block and the next are both in a sync phase.

    A transaction's gas is estimated on the latest block and it lands in the next: a weight change
    estimated outside a sync phase would be priced without the tree update it then makes.
    """
    latest = block_number(client)
    if latest % EPOCH_BLOCKS > SYNC_BLOCKS - 2:
        mine(client, next_sync_block(latest + 1) - latest)


def room(client: ChainClient, blocks: int) -> None:
    """Mines until the next ``blocks`` blocks lie in one epoch, after its sync phase.

    A seed block and the draw that uses it must not have a sync phase between them (the draw
    would re-arm), and a slash in a sync phase updates the tree at once (outside one it waits for
    syncVerifier): starting each path here makes every figure the same kind of call.
    """
    if blocks > EPOCH_BLOCKS - SYNC_BLOCKS:
        raise ValueError(f"{blocks} blocks do not fit in one epoch's draw phase")
    first = block_number(client) + 1
    epoch = first - first % EPOCH_BLOCKS
    target = max(first, epoch + SYNC_BLOCKS)
    if (target + blocks - 1) // EPOCH_BLOCKS != target // EPOCH_BLOCKS:
        target = epoch + EPOCH_BLOCKS + SYNC_BLOCKS
    if target > first:
        mine(client, target - first)


@dataclass
class Secrets:
    """A verifier's audit secrets, as the reference daemon derives them, and which one is committed."""

    account: LocalAccount
    chain_id: int
    market: str
    current: int = 0
    _index: dict[bytes, int] = field(default_factory=dict)

    def secret(self, index: int) -> bytes:
        return audit_secret(bytes(self.account.key), self.chain_id, self.market, index)

    def commitment(self, index: int) -> bytes:
        value = secret_hash(self.secret(index))
        self._index[value] = index
        return value

    def open(self, commitment: bytes) -> tuple[bytes, bytes]:
        """The secret behind an audit's ``commitment`` and the next hash to commit in the same call.

        A verifier drawn twice before its first verdict is committed to the same secret in both
        audits; only the reveal of its current secret moves it on (the contract ignores the next
        hash otherwise).
        """
        if commitment not in self._index:
            for index in range(self.current + 1):
                self.commitment(index)
        index = self._index[commitment]
        next_hash = self.commitment(self.current + 1)
        if index == self.current:
            self.current += 1
        return self.secret(index), next_hash


class GasBench:
    """Drives jobs through the real contracts and records the gas of every call."""

    def __init__(self, net: Devnet) -> None:
        self.net = net
        self.client = net.client
        self.market: JobMarket = net.protocol.market
        self.token = net.protocol.token
        self.requester, self.provider = dev_account(1), dev_account(2)
        self.verifiers: dict[str, Secrets] = {}
        self.accounts: dict[str, LocalAccount] = {
            str(dev_account(i).address): dev_account(i) for i in range(net.anvil.accounts)}

    def approve(self, account: LocalAccount) -> None:
        self.token.approve(account, self.market.address, MAX_UINT)

    def register_verifier(self, account: LocalAccount, *, in_sync_phase: bool) -> int:
        """Stakes ``account`` as a verifier and commits its first secret; returns the commit's gas.

        ``in_sync_phase``: the commit lands in a sync phase and puts the verifier into the draw at
        once; otherwise it lands after one and the verifier waits for ``sync``.
        """
        self.approve(account)
        self.market.register(account, Role.VERIFIER, VERIFIER_STAKE)
        secrets = Secrets(account, self.client.chain_id, self.market.address)
        self.verifiers[account.address] = secrets
        if in_sync_phase:
            to_sync_phase(self.client)
        else:
            room(self.client, 1)
        return int(self.market.commit_secret(account, secrets.commitment(0))["gasUsed"])

    def sync(self, address: str) -> int:
        """Applies a verifier's stake and secret to the draw in the next sync phase; returns the gas."""
        to_sync_phase(self.client)
        return int(self.market.sync_verifier(self.requester, address)["gasUsed"])

    def post(self, num_tasks: int = 16, price: int = 20 * WEI) -> tuple[int, int]:
        request = JobRequest(CID, num_tasks, price, self.client.timestamp() + 3_600, 600, 4)
        receipt = self.client.transact(self.requester, self.market.contract.functions.postJob(request.as_tuple()))
        return self.market.posted_job_id(receipt), int(receipt["gasUsed"])

    def post_group(self, shards: int) -> int:
        """Gas of ``postJobGroup`` with ``shards`` 16-task shards (each with its own spec CID, as a split job has)."""
        requests = [JobRequest(CID, 16, 20 * WEI, self.client.timestamp() + 3_600, 600, 4) for _ in range(shards)]
        call = self.market.contract.functions.postJobGroup([request.as_tuple() for request in requests], 0)
        return int(self.client.transact(self.requester, call)["gasUsed"])

    def submitted(self, gas: dict[str, int], num_tasks: int = 16, root: bytes = b"\x11" * 32) -> int:
        """Posts, claims and submits a job; its seed block is mined (two blocks: see Chain.draw)."""
        job_id, gas["postJob"] = self.post(num_tasks)
        gas["claimJob"] = int(self.market.claim_job(self.provider, job_id)["gasUsed"])
        gas["submitResult"] = int(self.market.submit_result(self.provider, job_id, CID, root)["gasUsed"])
        mine(self.client, 2)
        return job_id

    def draw(self, gas: dict[str, int], job_id: int) -> LocalAccount:
        """Draws the job's verifier (anyone may; the verifier's daemon does) and returns it."""
        caller = self.accounts[next(iter(self.verifiers))]
        gas["lockSeed"] = int(self.market.lock_seed(caller, job_id)["gasUsed"])
        audit = self.market.audit_of(job_id)
        if not audit.drawn:
            raise RuntimeError(f"job {job_id}: lockSeed re-armed its seed instead of drawing (see room)")
        return self.accounts[audit.verifier]

    def verdict(self, gas: dict[str, int], job_id: int, verifier: LocalAccount, verdict: Verdict) -> None:
        secret, next_hash = self.verifiers[verifier.address].open(self.market.audit_of(job_id).secret)
        gas["submitVerdict"] = int(
            self.market.submit_verdict(verifier, job_id, verdict, CID, secret, next_hash)["gasUsed"])

    def finalize(self, gas: dict[str, int], job_id: int) -> None:
        increase_time(self.client, self.market.terms_of(job_id).challenge_window + 1)
        gas["finalize"] = int(self.market.finalize(self.requester, job_id)["gasUsed"])

    def settled_path(self, num_tasks: int = 16) -> dict[str, int]:
        """The audited path of a passing job, call by call."""
        gas: dict[str, int] = {}
        room(self.client, 9)
        job_id = self.submitted(gas, num_tasks)
        verifier = self.draw(gas, job_id)
        self.verdict(gas, job_id, verifier, Verdict.PASS)
        self.finalize(gas, job_id)
        return gas

    def warm_credits(self, accounts: list[LocalAccount]) -> None:
        """Gives each account a credited balance (a reclaim reward), so later credits cost steady-state gas."""
        for account in accounts:
            job_id, _ = self.post()
            self.market.claim_job(self.provider, job_id)
            increase_time(self.client, self.market.terms_of(job_id).exec_window + 1)
            self.market.reclaim_expired(account, job_id)
            self.market.cancel_job(self.requester, job_id)

    def challenge_path(self, first: Verdict, challenger: LocalAccount, votes: Verdict) -> dict[str, int]:
        """A challenge of ``first`` by ``challenger``; every panel member votes ``votes``.

        When the panel overturns, the slashed verifier's new stake reaches the draw only with a
        syncVerifier in the next sync phase: part of the path's cost.
        """
        gas: dict[str, int] = {}
        room(self.client, 18)
        job_id = self.submitted({})
        verifier = self.draw({}, job_id)
        self.verdict({}, job_id, verifier, first)
        gas["challenge"] = int(self.market.challenge(challenger, job_id)["gasUsed"])
        mine(self.client, 2)
        gas["drawPanel"] = int(self.market.draw_panel(self.requester, job_id)["gasUsed"])
        # Seats are drawn with replacement: a member drawn twice commits and reveals once for both.
        members = [self.accounts[address] for address in dict.fromkeys(self.market.panel_of(job_id).members)]
        gas["commitVote (each member)"] = sum(
            int(self.market.commit_vote(m, job_id, votes, SALT)["gasUsed"]) for m in members)
        gas["revealVote (each member)"] = sum(
            int(self.market.reveal_vote(m, job_id, votes, SALT)["gasUsed"]) for m in members)
        gas["members"] = len(members)  # not gas: popped by measure
        stake = self.market.verifier_stake(verifier.address).stake
        gas["resolveChallenge"] = int(self.market.resolve_challenge(self.requester, job_id)["gasUsed"])
        if self.market.verifier_stake(verifier.address).stake != stake:
            gas["syncVerifier"] = self.sync(verifier.address)
        return gas

    def reveal_path(self) -> dict[str, int]:
        """A reveal demand answered with the 4 sampled outputs and their Merkle proofs, then settled."""
        gas: dict[str, int] = {}
        outputs = [json.dumps({"task": i, "embedding": [i / 16] * 8}).encode() for i in range(16)]
        tree = MerkleTree(outputs)
        room(self.client, 11)
        job_id = self.submitted({}, root=tree.root)
        verifier = self.draw({}, job_id)
        secret, next_hash = self.verifiers[verifier.address].open(self.market.audit_of(job_id).secret)
        gas["demandReveal"] = int(self.market.demand_reveal(verifier, job_id, secret, next_hash)["gasUsed"])
        sampled = self.market.sampled_tasks(job_id)
        gas["revealOutputs"] = int(self.market.reveal_outputs(
            self.provider, job_id, [outputs[i] for i in sampled], [tree.proof(i) for i in sampled])["gasUsed"])
        # The secret is revealed already: the verdict does not check it again.
        self.market.submit_verdict(verifier, job_id, Verdict.PASS, CID, b"\x00" * 32, b"\x00" * 32)
        self.finalize({}, job_id)
        return gas


def measure() -> dict[str, Any]:
    """Every figure of the module docstring, plus the gas of each call (steady state)."""
    with Anvil(accounts=10, pinned_clock=True) as anvil:
        net = deploy_devnet(anvil)
        try:
            bench = GasBench(net)
            bench.approve(bench.requester)
            bench.approve(bench.provider)
            bench.market.register(bench.provider, Role.PROVIDER, 100_000 * WEI)
            calls: dict[str, int] = {
                "commitSecret (first, in a sync phase: joins the draw)":
                    bench.register_verifier(dev_account(3), in_sync_phase=True)}
            # One verifier in the draw: the first job ever, then the steady state.
            first = bench.settled_path()
            steady = bench.settled_path()
            wide = bench.settled_path(num_tasks=256)
            calls.update(steady)
            group_1, group_64 = bench.post_group(1), bench.post_group(64)
            calls["postJobGroup (1 shard)"], calls["postJobGroup (64 shards)"] = group_1, group_64
            job_id, _ = bench.post(1, WEI)
            calls["cancelJob"] = int(bench.market.cancel_job(bench.requester, job_id)["gasUsed"])
            # Six verifiers for the panels, registered outside a sync phase and synced in the next;
            # every account that a challenge credits gets a balance first.
            calls["commitSecret (first, outside a sync phase)"] = bench.register_verifier(
                dev_account(4), in_sync_phase=False)
            for index in range(5, 9):
                bench.register_verifier(dev_account(index), in_sync_phase=False)
            calls["syncVerifier (joins the draw)"] = bench.sync(dev_account(4).address)
            for index in range(5, 9):
                bench.sync(dev_account(index).address)
            bench.warm_credits([dev_account(i) for i in range(3, 9)])
            many = bench.settled_path()
            calls["lockSeed (6 verifiers)"] = many["lockSeed"]
            upheld = bench.challenge_path(Verdict.PASS, bench.requester, Verdict.PASS)
            overturned = bench.challenge_path(Verdict.FAIL, bench.provider, Verdict.PASS)
            members = {"challenge_upheld": upheld.pop("members"), "challenge_overturned": overturned.pop("members")}
            reveal = bench.reveal_path()
            calls["challenge"] = upheld["challenge"]
            calls["drawPanel"] = upheld["drawPanel"]
            calls["commitVote"] = upheld["commitVote (each member)"] // members["challenge_upheld"]
            calls["revealVote"] = upheld["revealVote (each member)"] // members["challenge_upheld"]
            calls["resolveChallenge (upheld)"] = upheld["resolveChallenge"]
            calls["resolveChallenge (overturned, outside a sync phase)"] = overturned["resolveChallenge"]
            calls["syncVerifier (after a slash)"] = overturned["syncVerifier"]
            calls.update(reveal)
            calls["withdraw"] = int(bench.market.withdraw(bench.provider)["gasUsed"])
        finally:
            net.client.close()
    figures: dict[str, Any] = {
        "calls": calls,
        "paths": {
            "audited_settled": steady,
            "audited_settled_first": first,
            "audited_settled_256": wide,
            "challenge_upheld": upheld,
            "challenge_overturned": overturned,
            "reveal_demand": reveal,
        },
        "panel_members": members,
        "audited_settled_gas": sum(steady.values()),
        "audited_settled_gas_first": sum(first.values()),
        "per_task_gas_256": round(sum(wide.values()) / 256, 1),
        "challenge_upheld_gas": sum(upheld.values()),
        "challenge_overturned_gas": sum(overturned.values()),
        "reveal_demand_gas": sum(reveal.values()),
        "verifier_gas": steady["lockSeed"] + steady["submitVerdict"],
        "gas_per_extra_shard_64": round((group_64 - group_1) / 63),
    }
    figures["goals"] = {name: {"goal": goal, "value": figures[name], "met": figures[name] <= goal}
                        for name, goal in GOALS.items()}
    return figures


SUMMARY = ("audited_settled_gas", "audited_settled_gas_first", "per_task_gas_256", "challenge_upheld_gas",
           "challenge_overturned_gas", "reveal_demand_gas", "verifier_gas", "gas_per_extra_shard_64")


def show(figures: dict[str, Any], console: Console) -> None:
    calls = Table(title="gas per call (steady state)")
    calls.add_column("call")
    calls.add_column("gas", justify="right")
    for name, gas in figures["calls"].items():
        calls.add_row(name, f"{gas:,}")
    console.print(calls)
    paths = Table(title="gas per path, call by call")
    paths.add_column("path")
    paths.add_column("calls")
    paths.add_column("total", justify="right")
    for name, path in figures["paths"].items():
        members = figures["panel_members"].get(name)
        if members is not None:
            name = f"{name} ({members} panel members)"
        paths.add_row(name, " + ".join(f"{call} {gas:,}" for call, gas in path.items()), f"{sum(path.values()):,}")
    console.print(paths)
    summary = Table(title="figures")
    for column in ("figure", "value", "goal", "met"):
        summary.add_column(column, justify="left" if column == "figure" else "right")
    for name in SUMMARY:
        goal = figures["goals"].get(name)
        met = "" if goal is None else ("yes" if goal["met"] else "[red]NO[/red]")
        summary.add_row(name, f"{figures[name]:,}", "" if goal is None else f"≤ {goal['goal']:,}", met)
    console.print(summary)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args()
    figures = measure()
    if args.json:
        json.dump(figures, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        show(figures, Console())
    return 0


if __name__ == "__main__":
    sys.exit(main())
