"""One big job against a job group: 16,384 embed tasks as one job on one provider, then as 16 shards over 4.

    python scripts/bench_shards.py [--tasks 16384] [--shards 16] [--providers 4] [--json]

Both runs use the same devnet (anvil, automine), the same store server on 127.0.0.1, the same tiny
embedding model (``marketplace.demo.models``) and the same inputs, and real provider daemons, each its
own process (``webi provider run``), as an operator runs them. Each provider first does one small
warm-up job of its own (allowlisted to it), so that its model is loaded and its throughput measured
(a provider holds more than one claim only within its measured throughput) before the clock starts.
Each provider stands for one device: its torch gets cores / providers threads (``OMP_NUM_THREADS``,
at least 1), and so does the single job's provider, so that the ideal speed-up is min(providers, cores)
and ``parallel_efficiency`` says how much of it the group reaches. (A GPU machine runs one provider
per GPU; here, the cores are shared out.)

Under the devnet's default terms a single job is at most 10,000 tasks (the 500 WEBI cap a job over
the 0.05 WEBI floor a task): that is what groups are for, but it leaves no single job to compare with.
So this devnet's owner lowers the floor a task (``setParams`` through the timelock) before the runs.

The clock runs from the post to the merged result: every shard's results submitted on-chain, then
downloaded and checked against its own root, and merged in input order (``Client.groups.results``; the
single job's through ``Client.results``). The audits are left out: each shard is audited on its own,
with the same rules and windows as any job.

Figures:
  single_s, group_s          wall time of each run
  *_post_s, *_merge_s        of which: posting (cutting, uploads, the transactions) and fetching, checking
                             and merging the results
  shard_speedup              single_s / group_s
  parallel_efficiency        shard_speedup / min(providers, cores) (goal >= 0.7)
  gas_single, gas_group      gas of the post, every claim and every submission in each run
  per_shard_gas              (gas_group - gas_single) / (shards - 1): what each extra shard costs on-chain
  per_shard_overhead_s       a shard's claim-to-submit seconds less its inference seconds (from the
                             provider's log), averaged: the fixed cost of a job to a provider
  spread                     shards and tasks per provider; spread_min_max = fewest / most shards
"""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import json
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from eth_typing import HexStr
from rich.console import Console
from rich.table import Table

from marketplace.chain.deployment import WEI, Protocol
from marketplace.chain.devnet import Anvil, deploy_devnet, dev_account, free_port, increase_time
from marketplace.chain.governance import Governance
from marketplace.client import Client
from marketplace.demo.cast import Configs
from marketplace.demo.processes import Supervisor
from marketplace.groups import GroupDraft
from marketplace.jobspec import JobSpec, TaskType, inputs_manifest
from marketplace.protocol import Allowlist, JobRequest, JobState, Role
from marketplace.storage.app import create_store_app
from marketplace.storage.local import LocalStore
from marketplace.storage.rpc_api import StoreApiSettings

GOAL = 0.7
WEBI_CLI = [sys.executable, "-m", "marketplace.cli"]
WORDS = ("the", "model", "runs", "fast", "on", "a", "gpu", "while", "market", "pays", "each", "provider", "for",
         "honest", "work", "and", "verifier", "checks", "sample", "of", "tasks", "against", "commitment", "chain")
RAN = re.compile(r"job (\d+): inputs read in [\d.]+ s, (\d+) tasks run in ([\d.]+) s")
TIMEOUT_S = 1_800.0
SAMPLE_TASKS = 4


def texts(count: int) -> list[str]:
    chooser = random.Random(7)
    return [" ".join(chooser.choices(WORDS, k=chooser.randint(8, 32))) for _ in range(count)]


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@contextmanager
def served(store: LocalStore) -> Iterator[str]:
    import uvicorn

    config = uvicorn.Config(create_store_app(store, StoreApiSettings()), host="127.0.0.1", port=free_port(),
                            log_level="warning", lifespan="off", ws="none")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:  # a condition polled with a deadline
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the store server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


class Bench:
    """One devnet, one store and one model for both runs; each run starts its own provider processes."""

    def __init__(self, work: Path, protocol: Protocol, store: LocalStore, store_url: str, rpc_url: str,
                 big: int) -> None:
        from marketplace.demo.models import build_bundle

        self.work, self.protocol, self.store, self.big = work, protocol, store, big
        self.deployments = work / "deployments"
        protocol.deployment.save(self.deployments)
        self.configs = Configs(work, rpc_url, store_url, self.deployments)
        self.model = build_bundle("embed", work / "model")
        self.model_cid = str(store.add_path(self.model, recursive=True).cid)
        self.requester = dev_account(1)
        self.client = Client(protocol, store, self.requester)
        protocol.token.approve(self.requester, protocol.market.address, 2**256 - 1)
        self.next_account = 2

    def providers(self, count: int, threads: int | None) -> tuple[Supervisor, list[str]]:
        """``count`` fresh provider daemons, registered, each warmed up on a job of its own."""
        supervisor = Supervisor(self.work / f"logs-{self.next_account}")
        supervisor.folder.mkdir(parents=True, exist_ok=True)
        addresses, warmups = [], []
        env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)} if threads else {}
        env["COLUMNS"] = "1000"  # the log handler wraps at the terminal's width: one line a record for RAN
        for _ in range(count):
            account = dev_account(self.next_account)
            self.next_account += 1
            self.protocol.token.approve(account, self.protocol.market.address, 10_000 * WEI)
            self.protocol.market.register(account, Role.PROVIDER, 10_000 * WEI)
            path = self.configs.write(account, "provider", tasks=["embed"], poll_interval_s=0.1)
            supervisor.start(f"provider-{account.address[:8]}", [*WEBI_CLI, "-v", "provider", "run", "--config",
                                                                       str(path)],
                             env=env)
            addresses.append(str(account.address))
            warmups.append(self._post_for(account.address, texts(64)))
        self._wait(supervisor, warmups, "the warm-up jobs")
        return supervisor, addresses

    def _post_for(self, address: str, inputs: list[str]) -> int:
        members = Allowlist((address,))
        inputs_cid = str(self.store.add_bytes(inputs_manifest(inputs)).cid)
        spec = JobSpec(task=TaskType.EMBED, model=self.model_cid, inputs=inputs_cid, num_tasks=len(inputs),
                       allowlist=members.accounts)
        spec_cid = str(self.store.add_bytes(spec.to_bytes()).cid)
        request = JobRequest(spec_cid, len(inputs), self.price(len(inputs)), self.protocol.market.client.timestamp()
                             + 3_600, 1_800, SAMPLE_TASKS, allowlist_root=members.root)
        return self.protocol.market.post_job(self.requester, request)

    def price(self, tasks: int) -> int:
        """The same price per task for every job: the dearest the contract's caps allow for the big one."""
        params = self.protocol.market.params()
        per_task = min(params.max_price, params.max_sample_value * self.big // SAMPLE_TASKS) // self.big
        return per_task * tasks

    def _wait(self, supervisor: Supervisor, jobs: list[int], what: str,
              marks: dict[tuple[int, JobState], float] | None = None) -> None:
        """Polls until every job is submitted or further (``marks``: when each was first seen claimed and submitted)."""
        market = self.protocol.market
        deadline = time.monotonic() + TIMEOUT_S
        waiting = set(jobs)
        while waiting:
            supervisor.check()
            for job_id in sorted(waiting):
                state = market.get_job(job_id).state
                now = time.perf_counter()
                if marks is not None and state != JobState.OPEN:
                    marks.setdefault((job_id, JobState.CLAIMED), now)
                if state not in (JobState.OPEN, JobState.CLAIMED):
                    if marks is not None:
                        marks.setdefault((job_id, JobState.SUBMITTED), now)
                    waiting.discard(job_id)
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what}: jobs {sorted(waiting)} not submitted after {TIMEOUT_S:.0f} s")
            time.sleep(0.2)  # a light poll: the providers share these cores

    def gas(self, jobs: list[int], post_tx: str) -> int:
        """The post's gas plus every claim's and submission's of ``jobs``."""
        market = self.protocol.market
        w3 = market.client.w3
        hashes = {post_tx}
        for name in ("JobClaimed", "ResultSubmitted"):
            for event in getattr(market.contract.events, name)().get_logs(from_block=market.from_block):
                if int(event["args"]["jobId"]) in jobs:
                    hashes.add(event["transactionHash"].to_0x_hex())
        return sum(int(w3.eth.get_transaction_receipt(HexStr(tx))["gasUsed"]) for tx in hashes)

    def run_single(self, inputs: list[str], threads: int) -> dict[str, object]:
        supervisor, addresses = self.providers(1, threads)
        try:
            marks: dict[tuple[int, JobState], float] = {}
            started = time.perf_counter()
            job_id = self.client.post_job("embed", self.model_cid, inputs, price_wei=self.price(len(inputs)),
                                          sample_tasks=SAMPLE_TASKS, permit=False, check_providers=False)
            posted = time.perf_counter()
            self._wait(supervisor, [job_id], "the single job", marks)
            submitted = time.perf_counter()
            outputs = self.client.results(job_id)
            wall = time.perf_counter() - started
            assert len(outputs) == len(inputs)
            post_tx = self._post_tx(job_id)
            return {"wall_s": wall, "post_s": posted - started, "merge_s": started + wall - submitted,
                    "gas": self.gas([job_id], post_tx),
                    "overhead_s": self._overheads(supervisor, [job_id], marks), "providers": addresses,
                    "spread": {addresses[0]: [1, len(inputs)]}}
        finally:
            supervisor.stop_all()

    def run_group(self, inputs: list[str], shards: int, providers: int, threads: int | None) -> dict[str, object]:
        supervisor, addresses = self.providers(providers, threads)
        try:
            marks: dict[tuple[int, JobState], float] = {}
            started = time.perf_counter()
            posting = self.client.groups.post(GroupDraft(
                "embed", self.model_cid, inputs, self.price(len(inputs)), shards=shards, sample_tasks=SAMPLE_TASKS),
                check_providers=False)
            jobs = list(posting.job_ids)
            posted = time.perf_counter()
            self._wait(supervisor, jobs, "the shards", marks)
            submitted = time.perf_counter()
            merged = self.client.groups.results(posting.group_id)
            wall = time.perf_counter() - started
            assert len(merged.outputs) == len(inputs)
            view = self.client.groups.status(posting.group_id)
            spread = {address: [0, 0] for address in addresses}
            for shard in view.shards:
                assert shard.job.provider is not None
                spread[shard.job.provider][0] += 1
                spread[shard.job.provider][1] += shard.num_tasks
            return {"wall_s": wall, "post_s": posted - started, "merge_s": started + wall - submitted,
                    "gas": self.gas(jobs, self._post_tx(jobs[0])),
                    "overhead_s": self._overheads(supervisor, jobs, marks), "providers": addresses, "spread": spread}
        finally:
            supervisor.stop_all()

    def _post_tx(self, job_id: int) -> str:
        market = self.protocol.market
        events = market.contract.events.JobPosted().get_logs(from_block=market.from_block,
                                                            argument_filters={"jobId": job_id})
        return str(events[0]["transactionHash"].to_0x_hex())

    def _overheads(self, supervisor: Supervisor, jobs: list[int], marks: dict[tuple[int, JobState], float]) -> float:
        """Mean over ``jobs`` of claim-to-submit seconds less the inference seconds the provider logged."""
        ran: dict[int, float] = {}
        for log in supervisor.folder.glob("*.log"):
            for match in RAN.finditer(log.read_text(errors="replace")):
                ran[int(match.group(1))] = float(match.group(3))
        busy = [marks[(job, JobState.SUBMITTED)] - marks[(job, JobState.CLAIMED)] - ran.get(job, 0.0) for job in jobs]
        return statistics.mean(busy)


def lower_task_floor(protocol: Protocol) -> None:
    """``min_task_price`` to 0.0001 WEBI on this devnet, through its timelock (the owner is dev account 0)."""
    market = protocol.market
    params = dataclasses.replace(market.params(), min_task_price=WEI // 10_000)
    governance = Governance(market.client, protocol.deployment.governance or "")
    proposal = governance.schedule(dev_account(0), market.contract.functions.setParams(params.as_tuple()))
    increase_time(market.client, governance.delay() + 1)
    governance.execute(dev_account(0), proposal)


def measure(tasks: int, shards: int, providers: int) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="webi-bench-shards-"))
    atexit.register(shutil.rmtree, work, True)
    store = LocalStore(work / "store")
    inputs = texts(tasks)
    count = cores()
    threads = max(1, count // providers)
    with Anvil(accounts=providers + 4, log_path=work / "anvil.log") as anvil, served(store) as store_url:
        net = deploy_devnet(anvil, fund_accounts=providers + 3)
        lower_task_floor(net.protocol)
        bench = Bench(work, net.protocol, store, store_url, anvil.rpc_url, tasks)
        single = bench.run_single(inputs, threads)
        group = bench.run_group(inputs, shards, providers, threads)
    speedup = float(single["wall_s"]) / float(group["wall_s"])  # type: ignore[arg-type]
    spread: dict[str, list[int]] = group["spread"]  # type: ignore[assignment]
    counts = [shards_held for shards_held, _ in spread.values()]
    return {
        "tasks": tasks,
        "shards": shards,
        "providers": providers,
        "cores": count,
        "threads_per_provider": threads,
        "single_s": round(float(single["wall_s"]), 2),  # type: ignore[arg-type]
        "group_s": round(float(group["wall_s"]), 2),  # type: ignore[arg-type]
        "single_post_s": round(float(single["post_s"]), 2),  # type: ignore[arg-type]
        "group_post_s": round(float(group["post_s"]), 2),  # type: ignore[arg-type]
        "single_merge_s": round(float(single["merge_s"]), 2),  # type: ignore[arg-type]
        "group_merge_s": round(float(group["merge_s"]), 2),  # type: ignore[arg-type]
        "shard_speedup": round(speedup, 3),
        "parallel_efficiency": round(speedup / min(providers, count), 3),
        "gas_single": single["gas"],
        "gas_group": group["gas"],
        "per_shard_gas": (int(group["gas"]) - int(single["gas"])) // (shards - 1),  # type: ignore[call-overload]
        "single_overhead_s": round(float(single["overhead_s"]), 3),  # type: ignore[arg-type]
        "per_shard_overhead_s": round(float(group["overhead_s"]), 3),  # type: ignore[arg-type]
        "spread": {address: {"shards": held, "tasks": done} for address, (held, done) in spread.items()},
        "spread_min_max": round(min(counts) / max(counts), 3) if max(counts) else 0.0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=16_384)
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--providers", type=int, default=4)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.shards < 2 or args.providers < 1 or args.tasks < args.shards:
        parser.error("--shards needs 2 or more, --providers 1 or more, and --tasks at least --shards")
    figures = measure(args.tasks, args.shards, args.providers)
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    table = Table("figure", "value", "goal",
                  title=f"{args.tasks:,} embed tasks: one job against {args.shards} shards over {args.providers} "
                        "providers")
    for name, value in figures.items():
        if name == "spread":
            for address, held in value.items():  # type: ignore[attr-defined]
                table.add_row(f"  {address}", f"{held['shards']} shards, {held['tasks']:,} tasks", "")
        else:
            table.add_row(name, str(value), f">= {GOAL}" if name == "parallel_efficiency" else "")
    Console().print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
