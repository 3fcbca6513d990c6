"""``webi provider ...``: register a GPU machine, run the daemon, see status and earnings, withdraw."""

from __future__ import annotations

import json
import logging
import signal
from pathlib import Path
from typing import Annotated

import typer
from eth_account.signers.local import LocalAccount
from rich.console import Console
from rich.table import Table

from marketplace.chain.deployment import WEI, Protocol
from marketplace.keystore import load_account, read_password
from marketplace.protocol import Role
from provider.config import ProviderConfig, load_config
from provider.journal import Journal, Stage

app = typer.Typer(help="Run a GPU provider: register, serve jobs, see earnings.", no_args_is_help=True)
log = logging.getLogger(__name__)

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", envvar="WEBI_PROVIDER_CONFIG",
                                                   help="Provider TOML file ([provider] table).")]
KeystoreOption = Annotated[Path | None, typer.Option(help="V3 keystore of the provider account.")]
StoreOption = Annotated[str | None, typer.Option("--store", help="Content store: directory, Kubo RPC URL, ...")]


def _config(ctx: typer.Context, path: Path | None, keystore: Path | None, store: str | None) -> ProviderConfig:
    rpc_url = ctx.obj.rpc_url if ctx.obj is not None else None
    return load_config(path, {"keystore": keystore, "store": store, "rpc_url": rpc_url})


def _account(config: ProviderConfig) -> LocalAccount:
    password = read_password(env=config.password_env, file=config.password_file,
                             prompt=f"password for {config.keystore}: ")
    return load_account(config.keystore.expanduser(), password)


def _operator(ctx: typer.Context, config: Path | None, keystore: Path | None,
              store: str | None) -> tuple[ProviderConfig, LocalAccount, Protocol, Journal]:
    """Settings, the unlocked account, the protocol and the journal: what the reporting commands share."""
    from provider.factory import connect

    settings = _config(ctx, config, keystore, store)
    account = _account(settings)
    protocol = connect(settings)
    return settings, account, protocol, Journal(settings.journal_path(protocol.deployment.chain_id, account.address))


def _console(ctx: typer.Context) -> Console:
    return ctx.obj.console if ctx.obj is not None else Console()


@app.command()
def register(ctx: typer.Context, stake: Annotated[float, typer.Option(help="WEBI to stake.")],
             config: ConfigOption = None, keystore: KeystoreOption = None, store: StoreOption = None) -> None:
    """Stakes WEBI as a provider, with a metadata document (GPU facts) in the content store."""
    from provider.factory import connect, content_store
    from provider.gpu import Gpus

    settings = _config(ctx, config, keystore, store)
    account = _account(settings)
    protocol = connect(settings)
    metadata = json.dumps({"kind": "webi-provider", "version": 1, **Gpus().describe(),
                           "tasks": sorted(task.value for task in settings.tasks)}, sort_keys=True).encode()
    with content_store(settings) as content:
        metadata_cid = content.add_bytes(metadata).cid
    amount = int(stake * WEI)
    protocol.token.approve(account, protocol.market.address, amount)
    protocol.market.register(account, Role.PROVIDER, amount, str(metadata_cid))
    _console(ctx).print(f"registered {account.address} with {stake} WEBI staked; metadata {metadata_cid}",
                        highlight=False, soft_wrap=True)


@app.command()
def run(ctx: typer.Context, config: ConfigOption = None, keystore: KeystoreOption = None,
        store: StoreOption = None) -> None:
    """Serves jobs until Ctrl-C or SIGTERM; the step in progress finishes first, the journal keeps the rest."""
    from provider.factory import create_daemon  # imports torch: only for the command that needs it

    settings = _config(ctx, config, keystore, store)
    daemon = create_daemon(settings, _account(settings))
    if daemon.metrics is not None and settings.metrics_port:
        daemon.metrics.serve(settings.metrics_port)
    if not daemon.gpus.available:
        log.warning("no NVIDIA GPU found through NVML: running on the CPU")
    signal.signal(signal.SIGTERM, lambda *_: daemon.stop())
    signal.signal(signal.SIGINT, lambda *_: daemon.stop())
    _console(ctx).print(f"provider {daemon.address} serving; journal {daemon.journal.engine.url.database}",
                        highlight=False, soft_wrap=True)
    daemon.run()


@app.command()
def status(ctx: typer.Context, config: ConfigOption = None, keystore: KeystoreOption = None,
           store: StoreOption = None) -> None:
    """Stake, credits and the jobs in the journal."""
    _, account, protocol, journal = _operator(ctx, config, keystore, store)
    stake = protocol.market.provider_stake(account.address)
    console = _console(ctx)
    console.print(f"{account.address}: stake {stake.stake / WEI:g} WEBI ({stake.locked / WEI:g} locked), "
                  f"withdrawable {protocol.market.credits(account.address) / WEI:g} WEBI", highlight=False)
    table = Table("job", "stage", "tasks", "earned (WEBI)", "note")
    for record in journal.all():
        table.add_row(str(record.job_id), record.stage.value, str(record.num_tasks),
                      f"{int(record.earned_wei) / WEI:g}", record.reason[:60])
    console.print(table)


@app.command()
def earnings(ctx: typer.Context, config: ConfigOption = None, keystore: KeystoreOption = None,
             store: StoreOption = None) -> None:
    """What finalized jobs paid, and what can be withdrawn now."""
    _, account, protocol, journal = _operator(ctx, config, keystore, store)
    records = journal.all()
    paid = sum(int(record.earned_wei) for record in records)
    finalized = sum(record.stage == Stage.FINALIZED for record in records)
    _console(ctx).print(f"{finalized} jobs paid {paid / WEI:g} WEBI; withdrawable now "
                        f"{protocol.market.credits(account.address) / WEI:g} WEBI", highlight=False)


@app.command()
def withdraw(ctx: typer.Context, config: ConfigOption = None, keystore: KeystoreOption = None,
             store: StoreOption = None) -> None:
    """Withdraws every credited WEBI to the provider account."""
    _, account, protocol, _ = _operator(ctx, config, keystore, store)
    amount = protocol.market.credits(account.address)
    protocol.market.withdraw(account)
    _console(ctx).print(f"withdrew {amount / WEI:g} WEBI to {account.address}", highlight=False)
