"""``webi provider ...``: register a GPU machine, run the daemon, see status and earnings, withdraw, unstake."""

from __future__ import annotations

import json
import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from marketplace.cli.help import ReadableTyper
from marketplace.errors import ConfigError, WebiError
from marketplace.units import to_wei, webi

if TYPE_CHECKING:  # web3, eth_account, pydantic and SQLAlchemy load when a command runs, not when the CLI starts
    from eth_account.signers.local import LocalAccount

    from marketplace.chain.deployment import Protocol
    from provider.config import ProviderConfig
    from provider.journal import Journal

app = ReadableTyper(help="Run a GPU provider: register, serve jobs, see earnings.", no_args_is_help=True)
log = logging.getLogger(__name__)

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", envvar="WEBI_PROVIDER_CONFIG", metavar="FILE",
                                                   help="Provider TOML file (its [provider] table).")]
KeystoreOption = Annotated[Path | None, typer.Option(
    metavar="FILE", help="V3 keystore of the provider account (default: the config file's).")]
StoreOption = Annotated[str | None, typer.Option(
    "--store", metavar="STORE", help="Content store: a Kubo RPC URL or a directory (default: the config file's).")]


def _config(ctx: typer.Context, path: Path | None, keystore: Path | None, store: str | None) -> ProviderConfig:
    from provider.config import load_config

    rpc_url = ctx.obj.rpc_url if ctx.obj is not None else None
    return load_config(path, {"keystore": keystore, "store": store, "rpc_url": rpc_url})


def _account(config: ProviderConfig) -> LocalAccount:
    return _unlock(config)[0]


def _unlock(config: ProviderConfig) -> tuple[LocalAccount, str]:
    """The unlocked account and its keystore's password (which also unlocks its encryption key)."""
    from marketplace.keystore import load_account, read_password

    password = read_password(env=config.password_env, file=config.password_file,
                             prompt=f"password for {config.keystore}: ")
    return load_account(config.keystore.expanduser(), password), password


def _operator(ctx: typer.Context, config: Path | None, keystore: Path | None,
              store: str | None) -> tuple[ProviderConfig, LocalAccount, Protocol, Journal]:
    """Settings, the unlocked account, the protocol and the journal: what the reporting commands share."""
    from provider.factory import connect
    from provider.journal import Journal

    settings = _config(ctx, config, keystore, store)
    account = _account(settings)
    protocol = connect(settings)
    return settings, account, protocol, Journal(settings.journal_path(protocol.deployment.chain_id, account.address))


def _console(ctx: typer.Context) -> Console:
    return ctx.obj.console if ctx.obj is not None else Console()


@app.command()
def register(ctx: typer.Context, stake: Annotated[str, typer.Option(
                 metavar="WEBI", help="WEBI to stake, a decimal (at least the network's minimum provider stake).")],
             config: ConfigOption = None, keystore: KeystoreOption = None, store: StoreOption = None) -> None:
    """Stake WEBI as a provider and publish its metadata.

    The metadata document (GPU facts, tasks, price floors, and the signed public half of the
    account's encryption key for confidential jobs) goes to the content store, and the
    registration points to it. The encryption key is created beside the keystore if there is
    none, locked with the keystore's password.

    Everything the contract would refuse (stake under the minimum, too little WEBI or ETH, already
    registered) is refused before anything is sent; the approval is exactly the stake, and it is set
    back when the registration fails.
    """
    from marketplace import staking
    from marketplace.protocol import Role
    from marketplace.sealed import ensure, key_path_for, sign_encryption_key
    from marketplace.sealed.keys import kdf_of
    from marketplace.signed_capacity import sign_capacity
    from provider.bench import BenchReport
    from provider.factory import connect, content_store

    amount = to_wei(stake)
    settings = _config(ctx, config, keystore, store)
    account, password = _unlock(settings)
    protocol = connect(settings)
    staking.check_register(protocol, account.address, Role.PROVIDER, amount)
    keystore_path = settings.keystore.expanduser()
    kdf, iterations = kdf_of(keystore_path)
    key = ensure(key_path_for(keystore_path), password, kdf=kdf, iterations=iterations)
    published = sign_encryption_key(account, key.recipient, protocol.deployment.chain_id)
    measured = BenchReport.load(settings.state)  # `webi provider bench`'s, published signed when there is one
    if measured is not None:
        published = {**published, **sign_capacity(account, measured.as_dict(), protocol.deployment.chain_id)}
    with content_store(settings) as content:
        metadata_cid = content.add_bytes(registration_metadata(settings, published)).cid
    staking.register(protocol, account, Role.PROVIDER, amount, str(metadata_cid))
    _console(ctx).print(f"registered {account.address} with {webi(amount)} WEBI staked; metadata {metadata_cid}",
                        highlight=False, soft_wrap=True)


def registration_metadata(settings: ProviderConfig, encryption: dict[str, Any] | None = None) -> bytes:
    """The document a registration points to: GPU facts, the tasks served and the least price per task.

    ``price_floor`` is WEBI per task as decimal strings (never floats), so a requester's client can warn
    that a job priced under it will not be claimed by this provider. ``encryption`` is
    ``sign_encryption_key``'s ``{"encryption_key": ...}`` (requesters seal confidential jobs to it), and
    ``sign_capacity``'s ``{"capacity": ...}`` when the provider ran ``webi provider bench``.
    """
    from provider.gpu import Gpus

    floors = {task.value: format(floor, "f") for task, floor in sorted(settings.price_floor.items())}
    document = {"kind": "webi-provider", "version": 1, **Gpus().describe(),
                "tasks": sorted(task.value for task in settings.tasks), "price_floor": floors, **(encryption or {})}
    return json.dumps(document, sort_keys=True).encode()


@app.command()
def unstake(
    ctx: typer.Context,
    amount: Annotated[str | None, typer.Option(
        metavar="WEBI", help="WEBI to start unbonding; what stays must be 0 or the minimum.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Unbond the whole stake (leaves the provider role).")] = False,
    withdraw: Annotated[bool, typer.Option("--withdraw", help="Withdraw the unbonded stake, after the cooldown.")]
    = False,
    config: ConfigOption = None, keystore: KeystoreOption = None, store: StoreOption = None,
) -> None:
    """Start unbonding stake, or withdraw it after the cooldown.

    --amount or --all starts unbonding; --withdraw takes the unbonded stake once the unstake
    cooldown has passed. The cooldown is a network parameter (3 d on the devnet; `webi devnet
    status` shows it); a new request while stake is unbonding starts it again for the total.

    Collateral locked by claimed jobs stays staked until they settle; unbonding stake can still be
    slashed.
    """
    from marketplace import staking
    from marketplace.protocol import Role

    chosen = sum((amount is not None, all_, withdraw))
    if chosen != 1:
        raise ConfigError("give exactly one of --amount WEBI, --all or --withdraw")
    requested = to_wei(amount) if amount is not None else None
    _, account, protocol, _ = _operator(ctx, config, keystore, store)
    console = _console(ctx)
    if withdraw:
        paid = staking.withdraw_stake(protocol.market, account, Role.PROVIDER)
        console.print(f"withdrew {webi(paid)} WEBI of unbonded stake to {account.address}", highlight=False)
        return
    request = staking.request_unstake(protocol.market, account, Role.PROVIDER, requested)
    console.print(staking.describe_request(Role.PROVIDER, request), highlight=False, soft_wrap=True)


@app.command()
def run(ctx: typer.Context, config: ConfigOption = None, keystore: KeystoreOption = None,
        store: StoreOption = None) -> None:
    """Serve jobs until Ctrl-C or SIGTERM.

    The step in progress finishes first; the journal keeps the rest for the next run.
    """
    from provider.confidential import load_party_keys
    from provider.factory import create_daemon, create_heartbeats  # imports torch: only for this command

    settings = _config(ctx, config, keystore, store)
    account, password = _unlock(settings)
    party_keys = load_party_keys(settings, password)
    if not party_keys:
        log.warning("no encryption key beside %s: confidential jobs are refused (`webi provider register` "
                    "creates one)", settings.keystore)
    daemon = create_daemon(settings, account, party_keys=party_keys)
    if daemon.metrics is not None and settings.metrics_port:
        daemon.metrics.serve(settings.metrics_port)
    if not daemon.gpus.available:
        log.warning("no NVIDIA GPU found through NVML: running on the CPU")
    heartbeats = create_heartbeats(settings, account, daemon)
    signal.signal(signal.SIGTERM, lambda *_: daemon.stop())
    signal.signal(signal.SIGINT, lambda *_: daemon.stop())
    where = f"; heartbeats to {heartbeats.node_url}" if heartbeats is not None else ""
    _console(ctx).print(f"provider {daemon.address} serving; journal {daemon.journal.engine.url.database}{where}",
                        highlight=False, soft_wrap=True)
    if heartbeats is not None:
        heartbeats.start()
    try:
        daemon.run()
    finally:
        if heartbeats is not None:
            heartbeats.stop()


@app.command()
def status(ctx: typer.Context, config: ConfigOption = None, keystore: KeystoreOption = None,
           store: StoreOption = None,
           watch: Annotated[bool, typer.Option("--watch", help="Redraw every few seconds until Ctrl-C.")] = False,
           interval: Annotated[float, typer.Option(min=0.5, metavar="SECONDS", help="Seconds between redraws "
                                                   "with --watch.")] = 2.0,
           refreshes: Annotated[int | None, typer.Option(min=1, metavar="N", help="With --watch: stop after N "
                                                         "redraws.")] = None,
           node: Annotated[str | None, typer.Option(metavar="URL", help="The node to read the live view from "
                                                    "(default: where the heartbeats go).")] = None) -> None:
    """Show the stake, live GPU use, daily earnings and the jobs.

    The live part (online or not, each GPU's use over the last hour, jobs running, tasks/s) is the node's view
    of this provider's heartbeats, as on its dashboard page.
    """
    from provider.status_view import read_node, status_view

    settings, account, protocol, journal = _operator(ctx, config, keystore, store)
    node_url = node or settings.node_url or settings.heartbeat_url()
    console = _console(ctx)

    def draw() -> Any:
        return status_view(_stake_summary(protocol, account.address), read_node(node_url, account.address),
                           journal.all())

    def redraw() -> Any:
        """A redraw under --watch: a chain that stops answering is shown, and the watch goes on."""
        try:
            return draw()
        except WebiError as error:
            return Text(f"could not read the chain: {error}; retrying", style="yellow")

    if not watch:
        console.print(draw())
        return
    import time

    from rich.live import Live

    drawn = 0
    with Live(draw(), console=console, auto_refresh=False) as live:
        try:
            while refreshes is None or (drawn := drawn + 1) < refreshes:
                time.sleep(interval)
                live.update(redraw(), refresh=True)
        except KeyboardInterrupt:
            pass


def _stake_summary(protocol: Protocol, address: str) -> str:
    from marketplace import staking

    stake = protocol.market.provider_stake(address)
    unbonding = ""
    if stake.unbonding:
        unlock = staking.when(stake.unlock_at, protocol.market.client.timestamp())
        unbonding = f", {webi(stake.unbonding)} WEBI unbonding until {unlock}"
    return (f"{address}: stake {webi(stake.stake)} WEBI ({webi(stake.locked)} locked){unbonding}, "
            f"withdrawable {webi(protocol.market.credits(address))} WEBI")


@app.command()
def earnings(ctx: typer.Context, config: ConfigOption = None, keystore: KeystoreOption = None,
             store: StoreOption = None) -> None:
    """Show what finalized jobs paid, and what can be withdrawn now."""
    from provider.journal import Stage

    _, account, protocol, journal = _operator(ctx, config, keystore, store)
    records = journal.all()
    paid = sum(int(record.earned_wei) for record in records)
    finalized = sum(record.stage == Stage.FINALIZED for record in records)
    _console(ctx).print(f"{finalized} jobs paid {webi(paid)} WEBI; withdrawable now "
                        f"{webi(protocol.market.credits(account.address))} WEBI", highlight=False)


@app.command()
def withdraw(ctx: typer.Context, config: ConfigOption = None, keystore: KeystoreOption = None,
             store: StoreOption = None) -> None:
    """Withdraw the provider's credited WEBI to its account.

    Credits are payments and returned collateral.
    """
    from marketplace.funds import withdraw_credits

    _, account, protocol, _ = _operator(ctx, config, keystore, store)
    withdrawal = withdraw_credits(protocol, account)
    _console(ctx).print(f"withdrew {webi(withdrawal.amount)} WEBI to {account.address}", highlight=False)


@app.command()
def bench(
    ctx: typer.Context,
    config: ConfigOption = None,
    workload: Annotated[str, typer.Option(metavar="NAME", help="standard (models of real shapes) or tiny (a quick "
                                                                "check).")] = "standard",
    task: Annotated[list[str] | None, typer.Option("--task", metavar="TASK",
                                                   help="A task type to measure (repeat; default: every one).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    save: Annotated[bool, typer.Option(help="Save the report where the daemon reads it (the state folder).")] = True,
) -> None:
    """Measure tasks a second per task type on the CPU and each GPU.

    The workload is fixed (seeded models of standard shapes, seeded inputs), so machines compare. The report is
    saved in the provider's state folder, where the daemon takes its rates for task types it has not run yet.
    """
    import tempfile

    from marketplace.home import WebiHome
    from provider.bench import WORKLOADS, run_bench
    from provider.config import load_config

    if workload not in WORKLOADS:
        raise typer.BadParameter(f"{workload!r}: one of {', '.join(WORKLOADS)}", param_hint="--workload")
    from marketplace.jobspec import TaskType

    try:
        kinds = [TaskType(name).value for name in (task or [kind.value for kind in TaskType])]
    except ValueError:
        raise typer.BadParameter(f"one of {', '.join(kind.value for kind in TaskType)}", param_hint="--task") from None
    folder = load_config(config).state if config is not None else WebiHome.from_env().provider_state
    console = _console(ctx)
    with tempfile.TemporaryDirectory(prefix="webi-bench-") as work, console.status("measuring") as shown:
        report = run_bench(Path(work), kinds=kinds, workload=workload,
                           progress=lambda step: shown.update(f"measuring {step}"))
    saved = str(report.save(folder)) if save else None
    if as_json:
        print(json.dumps({**report.as_dict(), "saved": saved}))  # noqa: T201  # the document alone on stdout
        return
    table = Table("task", *(f"{device.name} ({device.kind}) tasks/s" for device in report.devices),
                  *(f"{device.name} speed-up" for device in report.devices if device.kind != "cpu"),
                  title=f"webi provider bench ({workload} workload)")
    for kind in kinds:
        rates = [f"{device.tasks_per_s[kind]:,.1f}" for device in report.devices]
        ups = [f"{report.speedup(device, kind) or 0:.1f}x" for device in report.devices if device.kind != "cpu"]
        table.add_row(kind, *rates, *ups)
    console.print(table)
    if saved:
        console.print(f"saved {saved}: the daemon sizes its first claims of each task type by it", highlight=False)
