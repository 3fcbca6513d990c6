"""``webi verifier ...``: stake as a verifier, run the audit daemon, see its audits."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import Annotated

import typer
from eth_account.signers.local import LocalAccount
from rich.console import Console
from rich.table import Table

from marketplace.chain.deployment import WEI
from marketplace.keystore import load_account, read_password
from marketplace.protocol import Role
from verifier.config import VerifierConfig, load_verifier_config
from verifier.journal import AuditJournal

app = typer.Typer(help="Run a verifier: stake, audit sampled jobs, earn audit fees.", no_args_is_help=True)
log = logging.getLogger(__name__)

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", envvar="WEBI_VERIFIER_CONFIG",
                                                   help="Verifier TOML file ([verifier] table).")]


def _setup(ctx: typer.Context, path: Path | None) -> tuple[VerifierConfig, LocalAccount]:
    rpc_url = ctx.obj.rpc_url if ctx.obj is not None else None
    config = load_verifier_config(path, {"rpc_url": rpc_url})
    password = read_password(env=config.password_env, file=config.password_file,
                             prompt=f"password for {config.keystore}: ")
    return config, load_account(config.keystore.expanduser(), password)


def _console(ctx: typer.Context) -> Console:
    return ctx.obj.console if ctx.obj is not None else Console()


@app.command()
def register(ctx: typer.Context, stake: Annotated[float, typer.Option(help="WEBI to stake.")],
             config: ConfigOption = None) -> None:
    """Stakes WEBI as a verifier."""
    from verifier.factory import connect

    settings, account = _setup(ctx, config)
    protocol = connect(settings)
    amount = int(stake * WEI)
    protocol.token.approve(account, protocol.market.address, amount)
    protocol.market.register(account, Role.VERIFIER, amount)
    _console(ctx).print(f"registered {account.address} as a verifier with {stake} WEBI staked", highlight=False)


@app.command()
def run(ctx: typer.Context, config: ConfigOption = None) -> None:
    """Audits assigned jobs until Ctrl-C or SIGTERM."""
    from verifier.factory import create_verifier

    settings, account = _setup(ctx, config)
    daemon = create_verifier(settings, account)
    signal.signal(signal.SIGTERM, lambda *_: daemon.stop())
    signal.signal(signal.SIGINT, lambda *_: daemon.stop())
    _console(ctx).print(f"verifier {daemon.address} serving", highlight=False)
    try:
        daemon.run()
    finally:
        daemon.close()


@app.command()
def status(ctx: typer.Context, config: ConfigOption = None) -> None:
    """Stake, credits and the audits in the journal."""
    from verifier.factory import connect

    settings, account = _setup(ctx, config)
    protocol = connect(settings)
    stake = protocol.market.verifier_stake(account.address)
    console = _console(ctx)
    console.print(f"{account.address}: stake {stake.stake / WEI:g} WEBI, withdrawable "
                  f"{protocol.market.credits(account.address) / WEI:g} WEBI", highlight=False)
    journal = AuditJournal(settings.journal_path(protocol.deployment.chain_id, account.address))
    table = Table("job", "stage", "verdict", "evidence", "note")
    for record in journal.all():
        verdict = "" if record.passed is None else "passed" if record.passed else "failed"
        table.add_row(str(record.job_id), record.stage.value, verdict, record.evidence_cid, record.reason[:50])
    console.print(table)
