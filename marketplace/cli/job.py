"""``webi job post|status|results|challenge|cancel``: a requester's jobs, through ``marketplace.Client``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from eth_utils.address import is_address
from rich.console import Console
from rich.markup import escape

from marketplace.cli.context import CliContext
from marketplace.cli.job_render import describe, show_challenge, show_check, show_info, show_quote
from marketplace.cli.progress import size_of, transfer_progress
from marketplace.cli.wallet import PasswordEnv, PasswordFile, password, wallets
from marketplace.client import Client, JobEvent, RequestRefusedError, read_inputs
from marketplace.errors import ConfigError
from marketplace.home import DEFAULT_STORE
from marketplace.jobspec import TaskType
from marketplace.units import to_wei, webi

app = typer.Typer(help="Post jobs, follow them, fetch verified results.", no_args_is_help=True)

WalletOption = Annotated[
    str | None, typer.Option("--wallet", envvar="WEBI_WALLET", help="Wallet name (webi wallet list).")
]
StoreOption = Annotated[
    str,
    typer.Option(
        "--store", envvar="WEBI_STORE", help="Content store providers can reach: a node URL, Kubo RPC URL or folder."
    ),
]
Deployments = Annotated[Path | None, typer.Option(help="Folder of deployment files.")]


def _client(
    ctx: typer.Context,
    store: str,
    wallet: str | None,
    password_env: str | None,
    password_file: Path | None,
    deployments: Path | None,
    *,
    signing: bool,
) -> Client:
    context: CliContext = ctx.obj
    account = None
    if signing:
        if wallet is None:
            raise ConfigError("this command signs a transaction: pass --wallet NAME (or set WEBI_WALLET)")
        account = wallets(ctx).unlock(wallet, password(password_env, password_file))
    return Client.connect(
        context.chain_url(),
        store,
        account,
        deployments_dir=deployments,
        store_token=os.environ.get("WEBI_STORE_TOKEN") or None,
        cache_dir=context.home / "check-cache",
    )


def _allowlist(value: str | None, allow: list[str] | None) -> list[str] | None:
    """``--allowlist`` (a file with one address per line, ``#`` comments allowed, or a comma list) and every
    ``--allow ADDRESS``, together; None when neither is given."""
    extra = [entry.strip() for entry in allow or []]
    bad_allow = [entry for entry in extra if not is_address(entry)]
    if bad_allow:
        raise ConfigError(f"--allow {bad_allow[0]!r}: not an address")
    if not value:
        return extra or None
    path = Path(value)
    if path.is_file():
        entries = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    else:
        entries = [entry.strip() for entry in value.split(",")]
    addresses = [entry for entry in entries if entry]
    bad = [entry for entry in addresses if not is_address(entry)]
    if bad or not addresses:
        raise ConfigError(f"--allowlist {value}: not a file of addresses or a comma-separated list of addresses"
                          + (f" ({bad[0]!r} is not an address)" if bad else ""))
    return addresses + extra


@app.command()
def post(
    ctx: typer.Context,
    task: Annotated[TaskType, typer.Option(help="What to compute for each input.")],
    model: Annotated[str, typer.Option(help="Model bundle: a Hugging Face folder (uploaded) or its CID.")],
    inputs: Annotated[Path, typer.Option(help='JSONL file: one input per line, a string or {"text": ...}.')],
    price: Annotated[
        str, typer.Option(help="Price in WEBI for the work; escrowed with the audit fee until the job settles.")
    ],
    sample_tasks: Annotated[int, typer.Option(help="Tasks the audit re-executes (every job is audited).")] = 4,
    min_provider_stake: Annotated[
        str | None, typer.Option(help="Only providers with at least this stake (WEBI) may claim.")
    ] = None,
    allowlist: Annotated[
        str | None, typer.Option(help="Only these providers may claim: a file of addresses or a comma list.")
    ] = None,
    allow: Annotated[
        list[str] | None, typer.Option("--allow", help="A provider that may claim (repeatable; adds to --allowlist).")
    ] = None,
    max_protocol_fee_bps: Annotated[
        int | None, typer.Option(min=0, help="Refuse a protocol fee above this (default: the current terms).")
    ] = None,
    max_verifier_fee_bps: Annotated[
        int | None, typer.Option(min=0, help="Refuse a verifier fee above this (default: the current terms).")
    ] = None,
    min_collateral_bps: Annotated[
        int | None, typer.Option(min=0, help="Refuse a provider collateral below this (default: the current terms).")
    ] = None,
    max_new_tokens: Annotated[int | None, typer.Option(help="generate/summarize: tokens to produce.")] = None,
    claim_window: Annotated[int, typer.Option(help="Seconds providers have to claim the job.")] = 3_600,
    exec_window: Annotated[int, typer.Option(help="Seconds a provider has from its claim to submit.")] = 1_800,
    wallet: WalletOption = None,
    password_env: PasswordEnv = None,
    password_file: PasswordFile = None,
    store: StoreOption = DEFAULT_STORE,
    deployments: Deployments = None,
) -> None:
    """Uploads the model and inputs, escrows the price and the audit fee (with a permit: one transaction) and
    posts the job. Every job is audited; --min-provider-stake, --allowlist and --allow limit who may claim it;
    the fee and collateral bounds default to the terms in force, so a change of terms makes the post revert
    instead of costing more. Prints the audit level and the cost first; a job the contract would refuse
    (a price over a cap, terms outside the bounds) exits with code 2 before anything is uploaded."""
    if not inputs.is_file():
        raise ConfigError(f"--inputs {inputs}: no such file")
    if sample_tasks < 1:
        raise ConfigError("--sample-tasks: the audit re-executes at least one task")
    members = _allowlist(allowlist, allow)
    stake_floor = to_wei(min_provider_stake) if min_provider_stake else 0
    parameters = {"max_new_tokens": max_new_tokens} if max_new_tokens else None
    price_wei = to_wei(price)
    texts = read_inputs(inputs)
    bounds = {"max_protocol_fee_bps": max_protocol_fee_bps, "max_verifier_fee_bps": max_verifier_fee_bps,
              "min_collateral_bps": min_collateral_bps}
    console: Console = ctx.obj.console
    with _client(ctx, store, wallet, password_env, password_file, deployments, signing=True) as client:
        try:
            quote = client.quote(price_wei, len(texts), sample_tasks, **bounds)
        except RequestRefusedError as error:
            Console(stderr=True).print(f"[red]error:[/red] {escape(str(error))}")
            raise typer.Exit(2) from None
        show_quote(console, quote)
        total = size_of(Path(model)) if Path(model).is_dir() else None
        with transfer_progress(f"uploading {Path(model).name}", total) as progress:
            job_id = client.post_job(
                task,
                model,
                texts,
                price_wei=price_wei,
                sample_tasks=sample_tasks,
                min_provider_stake=stake_floor,
                allowlist=members,
                claim_window_s=claim_window,
                exec_window_s=exec_window,
                parameters=parameters,
                progress=progress,
                max_protocol_fee_bps=quote.max_protocol_fee_bps,
                max_verifier_fee_bps=quote.max_verifier_fee_bps,
                min_collateral_bps=quote.min_collateral_bps,
            )
        info = client.status(job_id)
    console.print(
        f"posted job [bold]{job_id}[/bold]: {info.num_tasks} {task.value} tasks for "
        f"{webi(info.price)} WEBI plus a {webi(info.audit_fee)} WEBI audit fee "
        f"({min(sample_tasks, info.num_tasks)} tasks re-executed; spec {info.spec_cid})"
        + (f"; claimable by {len(set(members))} allowlisted providers" if members else "")
        + (f"; providers need {webi(stake_floor)} WEBI staked" if stake_floor else "")
    )


@app.command()
def status(
    ctx: typer.Context,
    job_id: int,
    watch: Annotated[
        bool, typer.Option("--watch", help="Print every event of the job as it happens, until it settles.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="--watch gives up after this many seconds.")] = 3_600,
    interval: Annotated[float, typer.Option(min=0.05, help="--watch polls the chain this often (seconds).")] = 1.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (with --watch: one line per event).")] = False,
    store: StoreOption = DEFAULT_STORE,
    deployments: Deployments = None,
) -> None:
    """A job's state on-chain, its verifier, verdict, challenge and panel; --watch prints the job's history
    (claim, result, draw, reveal demands and reveals, verdict, challenge, panel votes, settlement) with each
    event's block and time, then each new one as it is mined, until the job settles."""
    console: Console = ctx.obj.console
    with _client(ctx, store, None, None, None, deployments, signing=False) as client:
        if watch:

            def happened(event: JobEvent) -> None:
                if as_json:
                    typer.echo(json.dumps(event.as_dict()))
                else:
                    console.print(escape(event.line()), highlight=False, soft_wrap=True)

            info = client.wait(job_id, timeout=timeout, interval=interval, on_event=happened)
        else:
            info = client.status(job_id)
    if as_json:
        typer.echo(json.dumps(info.as_dict()))
    elif watch:
        console.print(escape(describe(info)), highlight=False, soft_wrap=True)
    else:
        show_info(console, info)


@app.command()
def results(
    ctx: typer.Context,
    job_id: int,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Where to write the results (JSONL).")
    ] = None,
    check: Annotated[
        int | None,
        typer.Option("--check", metavar="K", help="Re-execute K random tasks here, as the verifier does, and compare."),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="--check: the seed that chooses the tasks (default: fresh).")] = None,
    store: StoreOption = DEFAULT_STORE,
    deployments: Deployments = None,
) -> None:
    """Downloads the outputs, checks every one against the on-chain root, writes them as JSONL; --check K
    re-executes K of them at random with the verifier's runtime and tolerances, and exits 1 on a mismatch."""
    if output is None and check is None:
        raise ConfigError("pass -o FILE to write the results, --check K to re-execute K tasks, or both")
    console: Console = ctx.obj.console
    with _client(ctx, store, None, None, None, deployments, signing=False) as client:
        if output is not None:
            outputs = client.results(job_id)
            temporary = output.with_name(output.name + ".partial")
            temporary.write_text("".join(json.dumps(item, ensure_ascii=False) + "\n" for item in outputs))
            temporary.replace(output)
            console.print(f"{len(outputs)} outputs verified against the on-chain root, written to {output}")
        if check is not None:
            report = client.check(job_id, check, seed=seed)
            show_check(console, report)
            if not report.passed:
                raise typer.Exit(1)


@app.command()
def challenge(
    ctx: typer.Context,
    job_id: int,
    wallet: WalletOption = None,
    password_env: PasswordEnv = None,
    password_file: PasswordFile = None,
    store: StoreOption = DEFAULT_STORE,
    deployments: Deployments = None,
) -> None:
    """Challenges a job's provisional pass (the requester's right, within the challenge window): pulls a bond of
    3 audit fees (approving it first when needed) and a 3-seat panel re-decides the verdict."""
    with _client(ctx, store, wallet, password_env, password_file, deployments, signing=True) as client:
        made = client.challenge(job_id)
    show_challenge(ctx.obj.console, made)


@app.command()
def cancel(
    ctx: typer.Context,
    job_id: int,
    wallet: WalletOption = None,
    password_env: PasswordEnv = None,
    password_file: PasswordFile = None,
    store: StoreOption = DEFAULT_STORE,
    deployments: Deployments = None,
) -> None:
    """Cancels an open (unclaimed) job; the escrow becomes withdrawable credit (`webi wallet balance`)."""
    with _client(ctx, store, wallet, password_env, password_file, deployments, signing=True) as client:
        client.cancel(job_id)
        refunded = client.withdraw()
    ctx.obj.console.print(f"job {job_id} cancelled; {webi(refunded)} WEBI withdrawn to the wallet")
