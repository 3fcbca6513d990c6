"""One chaos run: the marketplace as the demo starts it, a mix of jobs, faults while they run, then the checks.

The run starts anvil (one block a second) with the contracts, an RPC proxy in front of it
(``proxy.py``), the marketplace node and, as processes of their own, two honest providers (both take
embed and generate jobs) and an honest verifier, all talking to the chain through the proxy. As a
requester it posts a public embed job, a generate job, an Open confidential embed job and a job group
of two embed shards, on tiny models. While they run, a thread injects the run's faults (``faults.py``)
one after another. Once every job has its verdict and the faults are over, the run moves the clock
past the challenge window, waits for the daemons to settle every job, stops them, waits for the
indexer to reach the head and checks (``checks.py``). A component that exits on its own is a violation
and is started again, so that one crash does not hide the rest of the run.

Every process it starts is in a process group of its own and is killed by pid at the end, whatever
happened; every wait has a deadline.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx
from eth_account.signers.local import LocalAccount
from sqlalchemy import create_engine

from marketplace.chain.client import ChainClient
from marketplace.chain.deployment import connect_protocol, protocol_abis
from marketplace.chain.devnet import Anvil, anvil_binary, deploy_devnet, dev_account, free_port, increase_time
from marketplace.chaos.checks import Violation, check_run
from marketplace.chaos.faults import Fault, FaultKind
from marketplace.chaos.proxy import RpcProxy
from marketplace.client import Client
from marketplace.confidential_post import Sealing
from marketplace.demo.cast import Configs
from marketplace.demo.models import build_bundle
from marketplace.demo.processes import Component, Supervisor
from marketplace.groups.post import GroupDraft
from marketplace.key_release import release_keys
from marketplace.protocol import TERMINAL_STATES, Confidentiality, JobState
from marketplace.requester_keys import RequesterKeys
from marketplace.storage import open_store

log = logging.getLogger(__name__)
T = TypeVar("T")

WEBI_CLI = [sys.executable, "-m", "marketplace.cli"]
PROVIDERS = ("provider-1", "provider-2")
VERIFIER = "verifier"
NODE = "node"
STAKE_WEBI = 1_000
PRICE_WEI = 12 * 10**18
TEXTS = [f"chaos input {index}: the market pays honest work and nothing else" for index in range(16)]


@dataclass(frozen=True)
class RunSettings:
    folder: Path
    models: Path  # the tiny models, built once and shared by the runs
    deadline_s: float = 420.0  # from the posts to every job settled


@dataclass
class RunResult:
    index: int
    faults: list[Fault]
    violations: list[Violation]
    seconds: float
    jobs: int
    restarts: int = 0


@dataclass
class _Processes:
    """The run's daemons and node: started, killed (SIGKILL to the process group) and started again."""

    supervisor: Supervisor
    argv: dict[str, tuple[list[str], dict[str, str]]] = field(default_factory=dict)
    running: dict[str, Component] = field(default_factory=dict)
    killed: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        with self.lock:
            self.argv[name] = (argv, env or {})
            self.running[name] = self.supervisor.start(name, argv, env)
            self.killed.discard(name)

    def kill(self, name: str) -> None:
        with self.lock:
            component = self.running.pop(name)
            self.killed.add(name)
        _kill_group(component.process)

    def restart(self, name: str) -> None:
        argv, env = self.argv[name]
        self.start(name, argv, env)

    def died(self) -> list[tuple[str, int]]:
        """The components that exited without being killed here: (name, exit code); each is started again."""
        with self.lock:
            dead = [(name, code) for name, component in self.running.items()
                    if (code := component.process.poll()) is not None]
        for name, _ in dead:
            self.restart(name)
        return dead

    def stop(self, names: list[str]) -> None:
        with self.lock:
            components = [self.running.pop(name) for name in names if name in self.running]
        for component in components:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(component.process.pid, signal.SIGTERM)
        for component in components:
            try:
                component.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                _kill_group(component.process)

    def kill_all(self) -> None:
        with self.lock:
            components, self.running = list(self.running.values()), {}
        for component in components:
            _kill_group(component.process)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


class ChaosRun:
    """Run ``index`` with ``faults``; ``run()`` returns its result and leaves no process behind."""

    def __init__(self, index: int, faults: list[Fault], settings: RunSettings) -> None:
        self.index, self.faults, self.settings = index, faults, settings
        self.folder = settings.folder
        self.processes = _Processes(Supervisor(self.folder))
        self.anvil: Anvil | None = None
        self.proxy: RpcProxy | None = None
        self.violations: list[Violation] = []
        self.fault_error: BaseException | None = None
        self.restarts = 0
        self.anvil_lock = threading.Lock()

    def run(self) -> RunResult:
        started = time.monotonic()
        self.folder.mkdir(parents=True, exist_ok=True)
        jobs: dict[int, str] = {}
        try:
            jobs = self._run()
        except Exception as error:  # the run could not finish: that is a finding too, with its logs kept
            log.exception("run %d failed", self.index)
            self.violations.append(Violation(self.index, "run-failed", f"{type(error).__name__}: {error} "
                                                                      f"(logs in {self.folder})"))
        finally:
            self.processes.kill_all()
            self.processes.supervisor.stop_all(grace=5.0)  # anything else it started (a hung registration)
            if self.proxy is not None:
                self.proxy.down()
            with self.anvil_lock:
                if self.anvil is not None:
                    self.anvil.stop()
        return RunResult(self.index, self.faults, self.violations, round(time.monotonic() - started, 1), len(jobs),
                         self.restarts)

    # ───────────────────────────────────────────── the run's steps

    def _run(self) -> dict[int, str]:
        folder = self.folder
        self.anvil = Anvil(accounts=10, block_time=1, log_path=folder / "anvil.log", executable=anvil_binary()).start()
        net = deploy_devnet(self.anvil, fund_accounts=9)
        deployments = folder / "deployments"
        net.protocol.deployment.save(deployments)
        self.proxy = RpcProxy(self.anvil.port).up()
        client = ChainClient.connect(self.proxy.url, protocol_abis(), poll_interval=0.05)
        protocol = connect_protocol(client, net.protocol.deployment)
        node_url = self._start_node(deployments)
        configs = Configs(folder, self.proxy.url, node_url, deployments)
        paths = {name: configs.write(dev_account(index), "provider", tasks=["embed", "generate"])
                 for index, name in enumerate(PROVIDERS, start=2)}
        paths[VERIFIER] = configs.write(dev_account(4), "verifier")
        self._register(paths)
        for name, path in paths.items():
            role = "verifier" if name == VERIFIER else "provider"
            self.processes.start(name, [*WEBI_CLI, role, "run", "--config", str(path)])
        requester = dev_account(1)
        keys = RequesterKeys(configs.keystore(requester, "requester"), configs.password.read_text().strip())
        with Client(protocol, open_store(node_url), requester, keys=keys) as buyer:
            jobs = self._post(buyer)
            faults = threading.Thread(target=self._inject, args=(time.monotonic(),), name="chaos-faults", daemon=True)
            faults.start()
            deadline = time.monotonic() + self.settings.deadline_s
            states = self._follow(buyer, requester, keys, jobs, deadline, until={JobState.AUDITED, *TERMINAL_STATES},
                                  also=faults.is_alive)
            faults.join(timeout=max(1.0, deadline - time.monotonic()))
            if self.fault_error is not None:
                raise self.fault_error
            if all(state in {JobState.AUDITED, *TERMINAL_STATES} for state in states.values()):
                window = _retry(lambda: protocol.market.terms().challenge_window, deadline)
                _retry(lambda: increase_time(client, window + 1), deadline)
                states = self._follow(buyer, requester, keys, jobs, deadline, until=TERMINAL_STATES)
        self.processes.stop([*PROVIDERS, VERIFIER])
        checks = time.monotonic() + 180  # the indexer's catch-up has a deadline of its own, after the jobs'
        head = _retry(lambda: int(client.w3.eth.block_number), checks)
        _wait(lambda: _indexed(node_url) >= head, checks, f"the node's indexer to reach block {head}")
        engine = create_engine(f"sqlite:///{folder / 'node-index.db'}")
        try:
            self.violations += check_run(self.index, protocol, engine, jobs, states)
        finally:
            engine.dispose()
            client.close()
        return jobs

    def _start_node(self, deployments: Path) -> str:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        assert self.proxy is not None
        self.processes.start(NODE, [*WEBI_CLI, "--rpc-url", self.proxy.url, "serve", "--port", str(port),
                                    "--deployments", str(deployments),
                                    "--database", str(self.folder / "node-index.db")],
                             env={"WEBI_HOME": str(self.folder / "node")})
        _wait(lambda: _healthy(url), time.monotonic() + 120, "the marketplace node to answer")
        return url

    def _register(self, paths: dict[str, Path]) -> None:
        supervisor = self.processes.supervisor
        registrations = [supervisor.start(f"register-{name}", [
            *WEBI_CLI, "verifier" if name == VERIFIER else "provider", "register", "--stake", str(STAKE_WEBI),
            "--config", str(path)]) for name, path in paths.items()]
        for component in registrations:
            component.process.wait(timeout=300)
        supervisor.check_finished(registrations)

    def _post(self, buyer: Client) -> dict[int, str]:
        embed, generate = build_models(self.settings.models)
        jobs = {
            buyer.post_job("embed", embed, TEXTS, price_wei=PRICE_WEI, sample_tasks=4): "embed",
            buyer.post_job("generate", generate, TEXTS[:8], price_wei=PRICE_WEI, sample_tasks=4,
                           parameters={"max_new_tokens": 8}): "generate",
            buyer.post_job("embed", embed, TEXTS, price_wei=PRICE_WEI, sample_tasks=4,
                           sealing=Sealing(Confidentiality.OPEN)): "confidential embed",
        }
        group = buyer.groups.post(GroupDraft("embed", embed, TEXTS, price_wei=2 * PRICE_WEI, shards=2,
                                             sample_tasks=2))
        jobs |= {job_id: f"shard {shard + 1} of group g{group.group_id}" for shard, job_id in enumerate(group.job_ids)}
        return jobs

    def _follow(self, buyer: Client, requester: LocalAccount, keys: RequesterKeys, jobs: dict[int, str],
                deadline: float, *, until: set[JobState] | frozenset[JobState],
                also: Callable[[], bool] = lambda: False) -> dict[int, JobState | None]:
        """Polls the jobs until each is in ``until`` and ``also()`` is false, or the deadline; on the way it
        releases the confidential job's key to each claimant and restarts components that died."""
        confidential = [job_id for job_id, what in jobs.items() if what.startswith("confidential")]
        states: dict[int, JobState | None] = dict.fromkeys(jobs)
        while True:
            for name, code in self.processes.died():
                self.restarts += 1
                self.violations.append(Violation(self.index, "component-died",
                                                 f"{name} exited with code {code} (see {self.folder / name}.log)"))
            try:
                for job_id in jobs:
                    states[job_id] = buyer.status(job_id).state
                if any(states[job_id] == JobState.CLAIMED for job_id in confidential):
                    release_keys(buyer.protocol.market, buyer.store, requester, keys.all(), confidential)
            except Exception as error:  # the chain or node may be down or rewound now: poll again
                log.debug("run %d: poll failed: %s", self.index, error)
            if all(state in until for state in states.values()) and not also():
                return states
            if time.monotonic() > deadline:
                return states
            time.sleep(0.5)  # polling a condition with a deadline

    # ───────────────────────────────────────────── faults

    def _inject(self, start: float) -> None:
        try:
            for fault in self.faults:
                delay = start + fault.at_s - time.monotonic()
                if delay > 0:
                    time.sleep(delay)  # the fault's planned time
                log.info("run %d: %s", self.index, fault.describe())
                self._apply(fault)
        except BaseException as error:  # raised again by the run's thread
            self.fault_error = error

    def _apply(self, fault: Fault) -> None:
        assert self.proxy is not None
        if fault.kind in (FaultKind.KILL_PROVIDER, FaultKind.KILL_VERIFIER, FaultKind.KILL_NODE):
            self.processes.kill(fault.target)
            time.sleep(fault.pause_s)  # dead for this long
            self.processes.restart(fault.target)
        elif fault.kind == FaultKind.RPC_OUTAGE:
            self.proxy.down()
            time.sleep(fault.pause_s)  # the outage
            self.proxy.up()
        else:
            self._reorg(fault.pause_s)

    def _reorg(self, blocks_s: float) -> None:
        """Dumps the chain's state, lets ``blocks_s`` seconds of blocks pass, and starts anvil again from the dump."""
        assert self.anvil is not None and self.proxy is not None
        reply = httpx.post(self.anvil.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "anvil_dumpState",
                                                     "params": []}, timeout=30).json()
        dump = self.folder / f"state-{time.monotonic_ns()}.json"
        dump.write_bytes(gzip.decompress(bytes.fromhex(reply["result"].removeprefix("0x"))))
        time.sleep(blocks_s)  # blocks pass on the old chain, then vanish
        with self.anvil_lock:
            old = self.anvil
            if old.process is not None:
                old.process.kill()
                old.process.wait(timeout=10)
            old.stop()
            self.anvil = Anvil(accounts=10, block_time=1, log_path=self.folder / "anvil.log",
                               executable=old.executable, extra_args=("--load-state", str(dump))).start()
            self.proxy.retarget(self.anvil.port)


def build_models(folder: Path) -> tuple[Path, Path]:
    """The tiny embed and generate models under ``folder``, built on first need."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # the runs print their own
    bundles = []
    for kind in ("embed", "generate"):
        bundle = folder / kind
        bundles.append(bundle if (bundle / "config.json").exists() else build_bundle(kind, bundle))
    return bundles[0], bundles[1]


def _retry(action: Callable[[], T], deadline: float) -> T:
    while True:
        try:
            return action()
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)  # the chain is coming back: try again until the deadline


def _wait(condition: Callable[[], bool], deadline: float, what: str) -> None:
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.2)  # polling a condition with a deadline


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _indexed(url: str) -> int:
    try:
        return int(httpx.get(f"{url}/healthz", timeout=2).json()["indexed_block"])
    except (httpx.HTTPError, ValueError, KeyError):
        return -1

