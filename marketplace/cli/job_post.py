"""``webi job post``: check a job as the providers will, then upload it and escrow its price in one transaction.

Registered on the ``job`` app by ``cli/main.py``; the shared client and options live in ``cli/job.py``.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from marketplace.cli.job import Deployments, StoreOption, WalletOption, job_client
from marketplace.cli.job_render import show_quote
from marketplace.cli.progress import size_of, transfer_progress
from marketplace.cli.wallet import PasswordEnv, PasswordFile
from marketplace.errors import ConfigError
from marketplace.home import DEFAULT_STORE
from marketplace.job_limits import (
    MAX_EXEC_WINDOW_S,
    MAX_GROUP_SHARDS,
    MAX_INPUT_CHARS,
    MAX_NEW_TOKENS,
    MAX_SAMPLE_TASKS,
    MAX_TASKS,
    MIN_CLAIM_WINDOW_S,
    MIN_EXEC_WINDOW_S,
    TaskType,
)
from marketplace.units import to_wei, webi

if TYPE_CHECKING:  # the SDK (web3, eth_account) loads when the command runs, not when the CLI starts
    from marketplace.groups import GroupDraft
    from marketplace.job_views import RequestRefusedError
    from marketplace.preflight import Preflight


class ConfidentialMode(enum.StrEnum):
    """``--confidential``: how the job key reaches the provider (``protocol.Confidentiality``, less ``PUBLIC``)."""

    OPEN = "open"
    DIRECTED = "directed"


def _allowlist(value: str | None, allow: list[str] | None) -> list[str] | None:
    """``--allowlist`` (a file with one address per line, ``#`` comments allowed, or a comma list) and every
    ``--allow ADDRESS``, together; None when neither is given."""
    from eth_utils.address import is_address

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


def post(
    ctx: typer.Context,
    task: Annotated[TaskType, typer.Option(
        metavar="TASK", help=f"What to compute for each input: {', '.join(task.value for task in TaskType)}.")],
    model: Annotated[str, typer.Option(
        metavar="DIR|CID",
        help="Model bundle: a Hugging Face folder (checked, then uploaded) or the CID of one in the store.")],
    inputs: Annotated[Path, typer.Option(
        metavar="FILE",
        help=f'JSONL file: one input per line, a string or {{"text": ...}}; 1 to {MAX_TASKS:,} inputs (one task '
             f'each) of at most {MAX_INPUT_CHARS:,} characters each.')],
    price: Annotated[str, typer.Option(
        metavar="WEBI",
        help="Price in WEBI for the work (a decimal); escrowed with the audit fee until the job settles. At least "
             "the contract's minimum per task, at most its cap per job, and at least every registered "
             "provider's published floor per task for one to take it.")],
    sample_tasks: Annotated[int, typer.Option(
        metavar="N",
        help=f"Tasks the audit re-executes (every job is audited): 1 to {MAX_SAMPLE_TASKS}, and the sampled work "
             "(N times the price per task) within the contract's cap.")] = 4,
    min_provider_stake: Annotated[
        str | None, typer.Option(metavar="WEBI", help="Only providers with at least this stake may claim.")
    ] = None,
    allowlist: Annotated[
        str | None, typer.Option(metavar="FILE|LIST",
                                 help="Only these providers may claim: a file of addresses or a comma list.")
    ] = None,
    allow: Annotated[
        list[str] | None, typer.Option("--allow", metavar="ADDRESS",
                                       help="Also let this provider claim (repeatable; adds to --allowlist).")
    ] = None,
    max_protocol_fee_bps: Annotated[
        int | None, typer.Option(min=0, metavar="BPS", help="Refuse a protocol fee above this, in basis points of "
                                                            "the price (100 = 1 %; default: the current terms).")
    ] = None,
    max_verifier_fee_bps: Annotated[
        int | None, typer.Option(min=0, metavar="BPS", help="Refuse an audit fee above this, in basis points of the "
                                                            "price per task per sampled task (default: the current "
                                                            "terms).")
    ] = None,
    min_collateral_bps: Annotated[
        int | None, typer.Option(min=0, metavar="BPS", help="Refuse a provider collateral below this, in basis "
                                                            "points of the price (default: the current terms).")
    ] = None,
    max_new_tokens: Annotated[int | None, typer.Option(
        metavar="N", help=f"generate/summarize: tokens to produce, 1 to {MAX_NEW_TOKENS:,} (default 32).")] = None,
    claim_window: Annotated[int, typer.Option(
        metavar="SECONDS", help=f"Seconds providers have to claim the job: at least {MIN_CLAIM_WINDOW_S}.")] = 3_600,
    exec_window: Annotated[int, typer.Option(
        metavar="SECONDS",
        help=f"Seconds a provider has from its claim to submit: {MIN_EXEC_WINDOW_S} to {MAX_EXEC_WINDOW_S:,} "
             "(1 minute to 30 days).")] = 1_800,
    confidential: Annotated[ConfidentialMode | None, typer.Option(
        "--confidential", metavar="open|directed",
        help="Seal the inputs and outputs to a fresh job key. directed: the spec wraps it to each allowlisted "
             "provider's published key (each must have one); open: any provider may claim, and the key is released "
             "to the claimant on-chain by `webi job keys` or `webi job status --watch --wallet`.")] = None,
    encrypt_model: Annotated[bool, typer.Option(
        "--encrypt-model", help="With --confidential: seal the model files too (--model must be a folder; it is "
                                "checked in clear first).")] = False,
    key_window: Annotated[int, typer.Option(
        metavar="SECONDS", help="--confidential open: seconds the claimant has, after the key is released, to give "
                                "the claim back unslashed if the key is unusable: 60 to half the exec window, at "
                                "most 86,400.")] = 300,
    shard_tasks: Annotated[int | None, typer.Option(
        metavar="N", help="Cut the inputs into a job group of shards of N tasks (the last may be shorter), posted in "
                          f"one transaction; each shard is claimed, audited and paid on its own. Up to "
                          f"{MAX_GROUP_SHARDS} shards; the inputs may then hold up to {MAX_GROUP_SHARDS} x "
                          f"{MAX_TASKS:,} tasks.")] = None,
    shards: Annotated[int | None, typer.Option(
        metavar="K", help="Cut the inputs into K shards of (nearly) equal size instead; see --shard-tasks.")] = None,
    no_provider_check: Annotated[bool, typer.Option(
        "--no-provider-check",
        help="Post even when no registered provider serves the task at this price (their metadata is not read).")
    ] = False,
    wallet: WalletOption = None,
    password_env: PasswordEnv = None,
    password_file: PasswordFile = None,
    store: StoreOption = DEFAULT_STORE,
    deployments: Deployments = None,
) -> None:
    """Post a job: check it, upload it and escrow its price.

    The job is checked as providers and the contract will check it; then the model and inputs are
    uploaded, and the price and the audit fee are escrowed (with a permit: one transaction) as the
    job is posted. The audit level and the cost are printed first. Every job is audited;
    --min-provider-stake, --allowlist and --allow limit who may claim it. The fee and collateral
    bounds default to the terms in force, so that a change of terms makes the post revert instead
    of costing more.

    Refused before anything is uploaded or spent, each reason on one line and exit code 2: a bundle
    providers refuse (pickle weights, code files, auto_map, an architecture that cannot do the task,
    weights the task needs missing), a CID the store lacks or that is a file, a price or window
    outside the contract's bounds, a wallet short of WEBI or of ETH for gas, and a price under every
    registered provider's floor.

    --confidential open|directed seals the inputs (and, with --encrypt-model, the model files) to a
    fresh job key before they are uploaded; the results come back sealed too and `webi job
    results --wallet` opens them. The wallet gets its encryption key on first use (`webi wallet
    key`). A Directed job is refused, before anything is spent, if an allowlisted provider has
    published no signed key.

    --shard-tasks N or --shards K posts a job group: the inputs are cut into shards, the model is
    uploaded once, and every shard is posted in one transaction after one approval of the escrows'
    sum. --price is the whole job's, split over the shards by tasks; --sample-tasks is each shard's.
    `webi job status gID --watch [--retry]` follows it, and `webi job results gID -o FILE` merges it.
    """
    from marketplace.client import RequestRefusedError, read_inputs
    from marketplace.confidential_post import Sealing
    from marketplace.protocol import Confidentiality

    if not inputs.is_file():
        raise ConfigError(f"--inputs {inputs}: no such file")
    members = _allowlist(allowlist, allow)
    stake_floor = to_wei(min_provider_stake) if min_provider_stake else 0
    parameters = {"max_new_tokens": max_new_tokens} if max_new_tokens is not None else None
    price_wei = to_wei(price)
    if shard_tasks is not None or shards is not None:
        if confidential is not None:
            raise ConfigError("--confidential with --shard-tasks/--shards: a confidential job group is not supported "
                              "yet; post the shards as confidential jobs one by one")
        from marketplace.groups import GroupDraft

        draft = GroupDraft(task, model, inputs, price_wei, shard_tasks, shards, sample_tasks, claim_window,
                           exec_window, parameters, stake_floor, members, max_protocol_fee_bps, max_verifier_fee_bps,
                           min_collateral_bps)
        _post_group(ctx, draft, not no_provider_check, (store, wallet, password_env, password_file, deployments))
        return
    texts = read_inputs(inputs)
    sealing = Sealing(Confidentiality[confidential.name] if confidential else Confidentiality.PUBLIC,
                      encrypt_model, key_window)
    console: Console = ctx.obj.console
    errors = Console(stderr=True)
    with contextlib.ExitStack() as uploads, \
            job_client(ctx, store, wallet, password_env, password_file, deployments, signing=True) as client:
        upload = _LateProgress()

        def checked(report: Preflight) -> None:
            if report.quote is not None:
                show_quote(console, report.quote)
            for warning in report.warnings:
                errors.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False, soft_wrap=True)
            total = size_of(Path(model)) if Path(model).is_dir() else None
            upload.bar = uploads.enter_context(transfer_progress(f"uploading {Path(model).name}", total))

        try:
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
                progress=upload,
                max_protocol_fee_bps=max_protocol_fee_bps,
                max_verifier_fee_bps=max_verifier_fee_bps,
                min_collateral_bps=min_collateral_bps,
                check_providers=not no_provider_check,
                on_checked=checked,
                sealing=sealing,
            )
        except RequestRefusedError as error:
            _refused(errors, error)
        uploads.close()
        info = client.status(job_id)
    console.print(
        f"posted job [bold]{job_id}[/bold]: {info.num_tasks} {task.value} tasks for "
        f"{webi(info.price)} WEBI plus a {webi(info.audit_fee)} WEBI audit fee "
        f"({min(sample_tasks, info.num_tasks)} tasks re-executed; spec {info.spec_cid})"
        + (f"; claimable by {len(set(members))} allowlisted providers" if members else "")
        + (f"; providers need {webi(stake_floor)} WEBI staked" if stake_floor else "")
        + (f"; confidential ({sealing.confidentiality.name.lower()}"
           + (", model encrypted" if encrypt_model else "") + ")" if sealing.confidential else "")
    )


def _post_group(ctx: typer.Context, draft: GroupDraft, check_providers: bool,
                connection: tuple[str, str | None, str | None, Path | None, Path | None]) -> None:
    """``--shard-tasks``/``--shards``: the group checked, uploaded and posted (``Client.groups.post``)."""
    from marketplace.client import RequestRefusedError

    console: Console = ctx.obj.console
    errors = Console(stderr=True)
    model, task = str(draft.model), TaskType(draft.task)
    store, wallet, password_env, password_file, deployments = connection
    with contextlib.ExitStack() as uploads, \
            job_client(ctx, store, wallet, password_env, password_file, deployments, signing=True) as client:
        upload = _LateProgress()

        def checked(report: Preflight) -> None:
            for warning in report.warnings:
                errors.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False, soft_wrap=True)
            total = size_of(Path(model)) if Path(model).is_dir() else None
            upload.bar = uploads.enter_context(transfer_progress(f"uploading {Path(model).name}", total))

        try:
            posting = client.groups.post(draft, progress=upload, check_providers=check_providers, on_checked=checked)
        except RequestRefusedError as error:
            _refused(errors, error)
    sizes = sorted({piece.num_tasks for piece in posting.shards}, reverse=True)
    total = sum(piece.num_tasks for piece in posting.shards)
    console.print(
        f"posted job group [bold]g{posting.group_id}[/bold]: {total:,} {task.value} tasks in {len(posting.shards)} "
        f"shards of {' or '.join(f'{size:,}' for size in sizes)} tasks (jobs {posting.job_ids[0]} to "
        f"{posting.job_ids[-1]}), {webi(posting.escrow_wei)} WEBI escrowed with the audit fees; follow it with "
        f"`webi job status g{posting.group_id} --watch`", highlight=False, soft_wrap=True)


def _refused(errors: Console, error: RequestRefusedError) -> NoReturn:
    """A refusal before anything moved: each problem on a line of its own, exit code 2."""
    from marketplace.preflight import PreflightError

    for problem in error.problems if isinstance(error, PreflightError) else [str(error)]:
        errors.print(f"[red]error:[/red] {escape(problem)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2) from None


class _LateProgress:
    """The upload's progress callback, handed to ``post_job`` before the checks; the bar behind it starts
    once they pass, so that no bar says "uploading" while nothing is."""

    def __init__(self) -> None:
        self.bar: Callable[[int], None] | None = None

    def __call__(self, size: int) -> None:
        if self.bar is not None:
            self.bar(size)
