"""``webi job post|status|results|cancel``: a requester's jobs, through ``marketplace.Client``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from eth_utils.address import is_address
from rich.table import Table

from marketplace.cli.context import CliContext
from marketplace.cli.progress import size_of, transfer_progress
from marketplace.cli.wallet import PasswordEnv, PasswordFile, password, wallets
from marketplace.client import Client, JobInfo
from marketplace.errors import ConfigError
from marketplace.jobspec import TaskType
from marketplace.protocol import JobState, Verdict
from marketplace.units import to_wei, webi

app = typer.Typer(help="Post jobs, follow them, fetch verified results.", no_args_is_help=True)

DEFAULT_STORE = "http://127.0.0.1:8000"
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
        context.rpc_url or "http://127.0.0.1:8545",
        store,
        account,
        deployments_dir=deployments,
        store_token=os.environ.get("WEBI_STORE_TOKEN") or None,
    )


def _show(ctx: typer.Context, info: JobInfo) -> None:
    table = Table("", "", title=f"job {info.job_id}", show_header=False)
    for key, value in info.as_dict().items():
        if key in ("price", "audit_fee"):
            shown = webi(value) + " WEBI"
        elif key == "deadline" and value is not None:
            shown = f"{value} ({_deadline_meaning(info.state)})"
        else:
            shown = str(value if value is not None else "—")
        table.add_row(key, shown)
    ctx.obj.console.print(table)


def _deadline_meaning(state: JobState) -> str:
    return "verdict due" if state == JobState.SUBMITTED else "challenge window ends"


def _allowlist(value: str | None) -> list[str] | None:
    """``--allowlist``: a file with one address per line (``#`` comments allowed), or a comma list."""
    if not value:
        return None
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
    return addresses


def _describe(info: JobInfo) -> str:
    """One line for --watch: the state, and who is on it."""
    parts = [f"job {info.job_id}: [bold]{info.state.name.lower()}[/bold]"]
    if info.provider:
        parts.append(f"provider {info.provider}")
    if info.verifier:
        parts.append(f"verifier {info.verifier}")
    if info.verdict != Verdict.NONE and info.state != JobState.SUBMITTED:
        parts.append(f"verdict {info.verdict.name.lower()}")
    return parts[0] + (f" ({', '.join(parts[1:])})" if len(parts) > 1 else "")


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
    posts the job. Every job is audited; --min-provider-stake and --allowlist limit who may claim it."""
    if not inputs.is_file():
        raise ConfigError(f"--inputs {inputs}: no such file")
    if sample_tasks < 1:
        raise ConfigError("--sample-tasks: the audit re-executes at least one task")
    members = _allowlist(allowlist)
    stake_floor = to_wei(min_provider_stake) if min_provider_stake else 0
    parameters = {"max_new_tokens": max_new_tokens} if max_new_tokens else None
    with _client(ctx, store, wallet, password_env, password_file, deployments, signing=True) as client:
        total = size_of(Path(model)) if Path(model).is_dir() else None
        with transfer_progress(f"uploading {Path(model).name}", total) as progress:
            job_id = client.post_job(
                task,
                model,
                inputs,
                price_wei=to_wei(price),
                sample_tasks=sample_tasks,
                min_provider_stake=stake_floor,
                allowlist=members,
                claim_window_s=claim_window,
                exec_window_s=exec_window,
                parameters=parameters,
                progress=progress,
            )
        info = client.status(job_id)
    ctx.obj.console.print(
        f"posted job [bold]{job_id}[/bold]: {info.num_tasks} {task.value} tasks for "
        f"{webi(info.price)} WEBI plus a {webi(info.audit_fee)} WEBI audit fee "
        f"({min(sample_tasks, info.num_tasks)} tasks re-executed; spec {info.spec_cid})"
        + (f"; claimable by {len(members)} allowlisted providers" if members else "")
        + (f"; providers need {webi(stake_floor)} WEBI staked" if stake_floor else "")
    )


@app.command()
def status(
    ctx: typer.Context,
    job_id: int,
    watch: Annotated[bool, typer.Option("--watch", help="Follow the job until it settles.")] = False,
    timeout: Annotated[float, typer.Option(help="--watch gives up after this many seconds.")] = 3_600,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    store: StoreOption = DEFAULT_STORE,
    deployments: Deployments = None,
) -> None:
    """A job's state on-chain, its verifier and verdict; --watch prints each change until it settles."""
    with _client(ctx, store, None, None, None, deployments, signing=False) as client:
        if watch:
            console = ctx.obj.console

            def changed(info: JobInfo) -> None:
                console.print(_describe(info))

            info = client.wait(job_id, timeout=timeout, on_change=changed)
        else:
            info = client.status(job_id)
    if as_json:
        typer.echo(json.dumps(info.as_dict()))
    else:
        _show(ctx, info)


@app.command()
def results(
    ctx: typer.Context,
    job_id: int,
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the results (JSONL).")],
    store: StoreOption = DEFAULT_STORE,
    deployments: Deployments = None,
) -> None:
    """Downloads the outputs, checks every one against the on-chain root, writes them as JSONL."""
    with _client(ctx, store, None, None, None, deployments, signing=False) as client:
        outputs = client.results(job_id)
    temporary = output.with_name(output.name + ".partial")
    temporary.write_text("".join(json.dumps(item, ensure_ascii=False) + "\n" for item in outputs))
    temporary.replace(output)
    ctx.obj.console.print(f"{len(outputs)} outputs verified against the on-chain root, written to {output}")


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
