"""``webi job status|results|keys|list|reclaim|challenge|cancel``: a requester's jobs, through ``marketplace.Client``.

``webi job post`` is in ``cli/job_post.py``; both share ``job_client`` and the options here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from marketplace.cli.context import CliContext
from marketplace.cli.help import ReadableTyper
from marketplace.cli.job_group import parse_target
from marketplace.cli.job_render import describe, show_challenge, show_check, show_info, show_jobs
from marketplace.cli.wallet import PasswordEnv, PasswordFile, password, wallets
from marketplace.errors import ConfigError
from marketplace.home import DEFAULT_STORE
from marketplace.units import to_wei, webi

if TYPE_CHECKING:  # the SDK (web3, eth_account) loads when a command runs, not when the CLI starts
    from marketplace.client import Client, JobEvent, JobInfo
    from marketplace.job_standing import ResultStanding
    from marketplace.job_waits import JobWait
    from marketplace.key_release import KeyRelease
    from marketplace.protocol import JobState

app = ReadableTyper(help="Post jobs, follow them, fetch verified results.", no_args_is_help=True)

WalletOption = Annotated[
    str | None, typer.Option("--wallet", envvar="WEBI_WALLET", metavar="NAME",
                             help="Wallet name (`webi wallet list` shows them).")
]
StoreOption = Annotated[
    str,
    typer.Option(
        "--store", envvar="WEBI_STORE", metavar="STORE",
        help="Content store providers can reach: a node URL, Kubo RPC URL or folder."
    ),
]
Deployments = Annotated[Path | None, typer.Option(metavar="DIR", help="Folder of deployment files.")]
JobId = Annotated[int, typer.Argument(help="The job's number (`webi job list` shows them).")]
JobOrGroup = Annotated[str, typer.Argument(
    metavar="JOB", help="The job's number (`webi job list` shows them), or gID for a job group (`webi job post "
                        "--shard-tasks` prints it).")]


def job_client(
    ctx: typer.Context,
    store: str,
    wallet: str | None,
    password_env: str | None,
    password_file: Path | None,
    deployments: Path | None,
    *,
    signing: bool,
    keys: bool = False,
) -> Client:
    """The client of ``wallet`` (unlocked when ``signing``), with the wallet's party keys (unlocked on first need:
    confidential jobs) when ``signing``, or when ``keys`` and a wallet is given."""
    from marketplace.client import Client
    from marketplace.requester_keys import RequesterKeys

    context: CliContext = ctx.obj
    account = None
    party_keys = None
    if signing:
        if wallet is None:
            raise ConfigError("this command signs a transaction: pass --wallet NAME (or set WEBI_WALLET)")
        secret = password(password_env, password_file)
        account = wallets(ctx).unlock(wallet, secret)
        party_keys = RequesterKeys(wallets(ctx).entry(wallet).path, secret)
    elif keys and wallet is not None:
        party_keys = RequesterKeys(wallets(ctx).entry(wallet).path, password(password_env, password_file))
    return Client.connect(
        context.chain_url(),
        store,
        account,
        deployments_dir=deployments,
        store_token=os.environ.get("WEBI_STORE_TOKEN") or None,
        cache_dir=context.home / "check-cache",
        keys=party_keys,
    )


@app.command()
def status(
    ctx: typer.Context,
    target: JobOrGroup,
    watch: Annotated[
        bool, typer.Option("--watch", help="Print every event of the job as it happens, until it settles.")
    ] = False,
    retry: Annotated[bool, typer.Option(
        "--retry", help="A group with --watch: re-post rejected, cancelled and expired shards into the group "
                        "(needs --wallet) until every shard is done or --retry-budget is spent.")] = False,
    retry_budget: Annotated[str | None, typer.Option(
        metavar="WEBI", help="--retry: the most the re-posts may escrow in all (default: the group's escrow once "
                             "more).")] = None,
    claim_window: Annotated[int, typer.Option(
        metavar="SECONDS", help="--retry: the claim window of each re-posted shard.")] = 3_600,
    timeout: Annotated[
        float, typer.Option(metavar="SECONDS", help="How long --watch waits before it gives up (exit code 2).")
    ] = 3_600,
    interval: Annotated[
        float, typer.Option(min=0.05, metavar="SECONDS", help="How often --watch polls the chain.")
    ] = 1.0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON (with --watch: one line per event or change of wait).")
    ] = False,
    until: Annotated[
        list[str] | None, typer.Option(
            "--until", metavar="STATE", help="Stop --watch at this state as well as at settlement (repeatable): "
                                             "claimed, submitted, audited, challenged, finalized, rejected, cancelled.")
    ] = None,
    wallet: Annotated[str | None, typer.Option(
        "--wallet", metavar="NAME",
        help="--watch: release an Open confidential job's key to each claimant, from this (the requester's) "
             "wallet.")] = None,
    password_env: PasswordEnv = None,
    password_file: PasswordFile = None,
    store: StoreOption = DEFAULT_STORE,
    deployments: Deployments = None,
) -> None:
    """Show a job's state on-chain and what it waits for.

    The state comes with its verifier, verdict, challenge and panel, and what the job waits for: a
    claim, a result, the seed block, a verdict, the challenge window...

    --watch prints the job's history (claim, result, draw, reveal demands and reveals, verdict,
    challenge, panel votes, settlement) with each event's block and time, then each new event as it
    is mined and what the job waits for whenever that changes, until it settles. After --timeout,
    what the job still waits for is printed and the exit code is 2. With --wallet (the requester's),
    --watch also releases an Open confidential job's key to each claimant (one line per release).

    A job group (gID) shows each shard's job, state, provider and verifier; --watch shows a progress
    bar of the tasks verified and a line as each shard moves, until every shard is finalized (exit
    0) or the group ends with shards failed (exit 1). --retry (with --wallet) re-posts failed shards
    into the group within --retry-budget.
    """
    from marketplace.protocol import TERMINAL_STATES

    console: Console = ctx.obj.console
    kind, job_id = parse_target(target)
    if kind == "group":
        from marketplace.cli import job_group

        if retry and not watch:
            raise ConfigError("--retry re-posts shards as they fail: use it with --watch")
        with job_client(ctx, store, wallet, password_env, password_file, deployments, signing=retry) as client:
            if watch:
                job_group.watch(client, console, job_id, timeout=timeout, interval=interval, as_json=as_json,
                                retry=retry, retry_budget=to_wei(retry_budget) if retry_budget else None,
                                claim_window=claim_window)
            else:
                job_group.status(client, console, job_id, as_json=as_json)
        return
    if retry:
        raise ConfigError("--retry is for a job group (gID): a single job is re-posted with `webi job post`")
    signing = watch and wallet is not None
    with job_client(ctx, store, wallet, password_env, password_file, deployments, signing=signing) as client:
        if watch:
            info = _watch(client, console, job_id, timeout=timeout, interval=interval, as_json=as_json,
                          until=TERMINAL_STATES | _states(until or []), release=signing)
            waiting = None
        else:
            info = client.status(job_id)
            waiting = client.waiting_for(job_id)
    if as_json:
        typer.echo(json.dumps(info.as_dict() | ({"waiting_for": waiting.as_dict()} if waiting else {})))
    elif watch:
        console.print(escape(describe(info)), highlight=False, soft_wrap=True)
    else:
        show_info(console, info)
        if waiting is not None:
            console.print(f"waiting for: {escape(waiting.line())}", highlight=False, soft_wrap=True)


def _states(names: list[str]) -> frozenset[JobState]:
    """``--until audited`` as ``JobState.AUDITED``; an unknown name is refused with the list."""
    from marketplace.protocol import JobState

    known = {state.name.lower(): state for state in JobState if state not in (JobState.NONE, JobState.OPEN)}
    wrong = [name for name in names if name.lower() not in known]
    if wrong:
        raise ConfigError(f"--until {wrong[0]!r} is not a state: use one of {', '.join(known)}")
    return frozenset(known[name.lower()] for name in names)


def _watch(client: Client, console: Console, job_id: int, *, timeout: float, interval: float,
           as_json: bool, until: frozenset[JobState], release: bool = False) -> JobInfo:
    """``status --watch``: the events and the wait lines as they come; exit 2 with what the job waits for when
    ``timeout`` runs out."""
    from marketplace.client import JobTimeoutError
    from marketplace.job_waits import WaitKind

    def happened(event: JobEvent) -> None:
        if as_json:
            typer.echo(json.dumps(event.as_dict()))
        else:
            console.print(escape(event.line()), highlight=False, soft_wrap=True)

    def waits(wait: JobWait) -> None:
        if wait.kind == WaitKind.NOTHING:  # settled: the last line says how
            return
        if as_json:
            typer.echo(json.dumps({"job_id": job_id, "waiting_for": wait.as_dict()}))
        else:
            console.print(f"waiting for: {escape(wait.line())}", highlight=False, soft_wrap=True)

    def released(made: KeyRelease) -> None:
        if as_json:
            typer.echo(json.dumps({"job_id": job_id, "key_release": made.line()}))
        else:
            console.print(escape(made.line()), highlight=False, soft_wrap=True)

    try:
        return client.wait(job_id, until=until, timeout=timeout, interval=interval, on_event=happened,
                           on_wait=waits, on_release=released if release else None)
    except JobTimeoutError as error:
        Console(stderr=True).print(f"[red]error:[/red] {escape(str(error))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


@app.command()
def results(
    ctx: typer.Context,
    target: JobOrGroup,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", metavar="FILE", help="Where to write the results (JSONL).")
    ] = None,
    check: Annotated[
        int | None,
        typer.Option("--check", metavar="K", help="Re-execute K random tasks here, as the verifier does, and compare."),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="--check: the seed that chooses the tasks (default: fresh).")] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Write a rejected job's outputs anyway (with a warning; exit code 3).")
    ] = False,
    wallet: Annotated[str | None, typer.Option(
        "--wallet", metavar="NAME",
        help="A confidential job: the requester's wallet, whose encryption key opens the outputs.")] = None,
    password_env: PasswordEnv = None,
    password_file: PasswordFile = None,
    store: StoreOption = DEFAULT_STORE,
    deployments: Deployments = None,
) -> None:
    """Download a job's outputs, verified against the on-chain root.

    Every output is checked against the root and written as JSONL (-o FILE); --check K re-executes K
    of them at random with the verifier's runtime and tolerances, and exits 1 on a mismatch.

    A rejected job's outputs (its audit failed) are refused with the verdict and its evidence:
    --force writes them with a warning and exits 3. Outputs still in their audit or challenge window
    are written with a "not final" warning.

    A confidential job's outputs are decrypted with the key its spec wraps to the requester's wallet
    (--wallet; any key it rotated out works too) and then checked against the root, as any job's.

    A job group (gID): each shard's outputs are checked against its own root, then merged in input
    order into -o FILE. A shard without results, or rejected (unless --force), stops the merge with
    the shard named and nothing written.
    """
    if output is None and check is None:
        raise ConfigError("pass -o FILE to write the results, --check K to re-execute K tasks, or both")
    kind, job_id = parse_target(target)
    if kind == "group":
        from marketplace.cli import job_group

        if output is None or check is not None:
            raise ConfigError("a job group's results: pass -o FILE (--check re-executes one job's tasks: give a "
                              "shard's job number)")
        with job_client(ctx, store, wallet, password_env, password_file, deployments, signing=False,
                        keys=True) as client:
            forced_group = job_group.results(client, ctx.obj.console, job_id, output, force=force)
        if forced_group:
            raise typer.Exit(3)
        return
    from marketplace.job_standing import RejectedResultsError, Standing, result_standing

    console: Console = ctx.obj.console
    forced = False
    with job_client(ctx, store, wallet, password_env, password_file, deployments, signing=False,
                    keys=True) as client:
        if output is not None:
            standing = result_standing(client.protocol.market, client.status(job_id))
            if standing.standing == Standing.REJECTED and not force:
                raise RejectedResultsError(standing.refusal())
            outputs = client.results(job_id, force=force)
            temporary = output.with_name(output.name + ".partial")
            temporary.write_text("".join(json.dumps(item, ensure_ascii=False) + "\n" for item in outputs))
            temporary.replace(output)
            _report_written(console, standing, len(outputs), output)
            forced = standing.standing == Standing.REJECTED
        if check is not None:
            report = client.check(job_id, check, seed=seed)
            show_check(console, report)
            if not report.passed:
                raise typer.Exit(1)
    if forced:
        raise typer.Exit(3)


def _report_written(console: Console, standing: ResultStanding, count: int, output: Path) -> None:
    """What was written and how far to trust it: a rejected job's outputs are never called verified."""
    from marketplace.job_standing import Standing

    errors = Console(stderr=True)
    if standing.standing == Standing.REJECTED:
        errors.print(f"[bold red]WARNING: {escape(standing.warning())}[/bold red]", highlight=False, soft_wrap=True)
        console.print(f"{count} outputs of rejected job {standing.job_id} written to {escape(str(output))} (--force)",
                      highlight=False, soft_wrap=True)
        return
    if standing.standing == Standing.PROVISIONAL:
        errors.print(f"[yellow]warning: {escape(standing.warning())}[/yellow]", highlight=False, soft_wrap=True)
    console.print(f"{count} outputs verified against the on-chain root, written to {escape(str(output))}",
                  highlight=False, soft_wrap=True)


@app.command("keys")
def release_keys_command(
    ctx: typer.Context,
    job_ids: Annotated[list[int] | None, typer.Option(
        "--job", metavar="JOB_ID", help="Serve this job (repeatable; default: every Open confidential job of the "
                                        "wallet).")] = None,
    once: Annotated[bool, typer.Option("--once", help="Release what is due now, then stop.")] = False,
    interval: Annotated[
        float, typer.Option(min=0.05, metavar="SECONDS", help="How often the chain is polled.")
    ] = 2.0,
    wallet: WalletOption = None,
    password_env: PasswordEnv = None,
    password_file: PasswordFile = None,
    store: StoreOption = DEFAULT_STORE,
    deployments: Deployments = None,
) -> None:
    """Release Open confidential jobs' keys to their claimants.

    It runs until Ctrl-C (--once: one pass).
    For each of the wallet's Open confidential jobs (or each --job) that is claimed and whose
    claimant has had no key yet, the job key is wrapped to the claimant's published encryption
    key (its signature checked) and released on-chain: one line per release. A claimant that
    published no usable key gets none (the line says why): it may give the claim back, unslashed.
    Keep it running while the Open jobs may be claimed: a claimant without the key in its key window
    releases the claim.
    """
    import time

    from marketplace.key_release import open_jobs, release_keys

    console: Console = ctx.obj.console
    reported: set[tuple[int, str]] = set()
    with job_client(ctx, store, wallet, password_env, password_file, deployments, signing=True) as client:
        account, party = client.account, client.keys
        if account is None or party is None:  # unreachable: a signing client has both
            raise ConfigError("this command needs --wallet")
        market = client.protocol.market
        try:
            while True:
                serving = list(job_ids) if job_ids else open_jobs(market, account.address)
                for made in release_keys(market, client.store, account, party.all(), serving):
                    if made.released or (made.job_id, made.provider) not in reported:
                        console.print(escape(made.line()), highlight=False, soft_wrap=True)
                    reported.add((made.job_id, made.provider))
                if once:
                    return
                time.sleep(interval)
        except KeyboardInterrupt:
            console.print("stopped")


@app.command("list")
def list_jobs(
    ctx: typer.Context,
    wallet: WalletOption = None,
    address: Annotated[str | None, typer.Option(
        metavar="ADDRESS", help="List this requester's jobs instead of a wallet's.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON: one object per job.")] = False,
    store: StoreOption = DEFAULT_STORE,
    deployments: Deployments = None,
) -> None:
    """List the jobs a requester posted.

    The requester is --wallet's account or --address. Oldest first, each job with its state, tasks,
    price, provider and what it waits for.
    """
    if (wallet is None) == (address is None):
        raise ConfigError("pass --wallet NAME or --address ADDRESS (one of them) to choose whose jobs")
    from marketplace.protocol import JobState
    from marketplace.provider_offers import provider_offers

    requester = address if address is not None else wallets(ctx).entry(str(wallet)).address
    console: Console = ctx.obj.console
    with job_client(ctx, store, None, None, None, deployments, signing=False) as client:
        jobs = client.jobs(requester)
        offers = provider_offers(client.protocol.market, client.store) if any(
            info.state == JobState.OPEN for info in jobs) else None
        waits = [client.waiting_for(info.job_id, offers=offers) for info in jobs]
    if as_json:
        typer.echo(json.dumps([info.as_dict() | {"waiting_for": wait.as_dict()} for info, wait in zip(jobs, waits,
                                                                                                      strict=True)]))
        return
    show_jobs(console, requester, jobs, waits)


@app.command()
def reclaim(
    ctx: typer.Context,
    job_id: JobId,
    wallet: WalletOption = None,
    password_env: PasswordEnv = None,
    password_file: PasswordFile = None,
    store: StoreOption = DEFAULT_STORE,
    deployments: Deployments = None,
) -> None:
    """Reclaim a job whose provider missed its result deadline.

    Anyone may, once the deadline has passed: the provider's collateral is slashed, a reward from it
    is credited to the wallet, and the job is open for claims again. Refused before anything is sent
    while the claim runs or when the job is not claimed.
    """
    with job_client(ctx, store, wallet, password_env, password_file, deployments, signing=True) as client:
        made = client.reclaim(job_id)
    ctx.obj.console.print(
        f"reclaimed job {job_id}: the claim of {made.provider} expired; {webi(made.slashed)} WEBI of its collateral "
        f"slashed, {webi(made.reward)} WEBI credited to you (webi wallet balance); the job is open again "
        f"(transaction {made.tx_hash})", highlight=False, soft_wrap=True)


@app.command()
def challenge(
    ctx: typer.Context,
    job_id: JobId,
    wallet: WalletOption = None,
    password_env: PasswordEnv = None,
    password_file: PasswordFile = None,
    store: StoreOption = DEFAULT_STORE,
    deployments: Deployments = None,
) -> None:
    """Challenge a job's provisional pass, within its challenge window.

    The requester's right: a bond of 3 audit fees is pulled from the wallet (approved first when
    needed) and a 3-seat panel re-decides the verdict. `webi devnet status` shows the window.
    """
    with job_client(ctx, store, wallet, password_env, password_file, deployments, signing=True) as client:
        made = client.challenge(job_id)
    show_challenge(ctx.obj.console, made)


@app.command()
def cancel(
    ctx: typer.Context,
    job_id: JobId,
    wallet: WalletOption = None,
    password_env: PasswordEnv = None,
    password_file: PasswordFile = None,
    store: StoreOption = DEFAULT_STORE,
    deployments: Deployments = None,
) -> None:
    """Cancel an open (unclaimed) job and withdraw its escrow.

    The escrow becomes credit, and the wallet's credits are withdrawn to it.
    """
    with job_client(ctx, store, wallet, password_env, password_file, deployments, signing=True) as client:
        client.cancel(job_id)
        refunded = client.withdraw()
    ctx.obj.console.print(f"job {job_id} cancelled; {webi(refunded)} WEBI withdrawn to the wallet")
