"""``webi verifier ...``: stake as a verifier (and commit an audit secret), run the audit daemon, see its audits."""

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
from marketplace.errors import ConfigError
from marketplace.keystore import load_account, read_password
from marketplace.protocol import Role
from marketplace.units import webi
from provider.epochs import joins_at, weight_check
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
    """Stakes WEBI as a verifier (at least the minimum) and commits its first audit secret, which puts it in
    the draw from the next sync phase."""
    from verifier.factory import connect
    from verifier.secrets import AuditSecrets

    settings, account = _setup(ctx, config)
    protocol = connect(settings)
    amount = int(stake * WEI)
    minimum = protocol.market.params().min_verifier_stake
    if amount < minimum:
        # The contract would refuse it too (InsufficientStake); say so before spending gas on an approval.
        raise ConfigError(f"--stake {stake:g} WEBI is below the minimum verifier stake of {webi(minimum)} WEBI: "
                          "only verifiers with at least the minimum are drawn")
    protocol.token.approve(account, protocol.market.address, amount)
    protocol.market.register(account, Role.VERIFIER, amount)
    secrets = AuditSecrets.of(account, protocol.market)
    index = secrets.first_unused(protocol.market, account.address)
    receipt = protocol.market.commit_secret(account, secrets.commitment(index))
    if protocol.market.verifier_weight(account.address):
        where = "so it is in the draw"
    else:  # weights change only in a sync phase: the daemon (or anyone) calls syncVerifier in the next
        where = (f"it joins the draw in the sync phase at block {joins_at(int(receipt['blockNumber']))} "
                 "(`webi verifier run` syncs it)")
    _console(ctx).print(f"registered {account.address} as a verifier with {stake:g} WEBI staked; audit secret "
                        f"#{index} committed; {where}", highlight=False)


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
    market = protocol.market
    stake = market.verifier_stake(account.address)
    console = _console(ctx)
    check = weight_check(market, account.address)
    if check.weight and not check.stale:
        in_draw = "in the draw"
    elif check.weight:
        in_draw = f"in the draw with {webi(check.weight)} WEBI until the next sync phase, then {webi(check.due)}"
    elif not check.committed:
        in_draw = "NOT in the draw (no secret committed)"
    elif check.stake < check.minimum:
        in_draw = f"NOT in the draw (stake below the minimum of {webi(check.minimum)} WEBI)"
    else:
        block = joins_at(market.client.w3.eth.block_number)
        in_draw = f"NOT in the draw yet (it joins in the sync phase at block {block}: `webi verifier run` syncs it)"
    console.print(f"{account.address}: stake {stake.stake / WEI:g} WEBI, {in_draw}, {stake.duties} open duties, "
                  f"withdrawable {market.credits(account.address) / WEI:g} WEBI", highlight=False)
    journal = AuditJournal(settings.journal_path(protocol.deployment.chain_id, account.address))
    table = Table("job", "stage", "verdict", "evidence", "note")
    for record in journal.all():
        verdict = "" if record.passed is None else "passed" if record.passed else "failed"
        table.add_row(str(record.job_id), record.stage.value, verdict, record.evidence_cid, record.reason[:50])
    console.print(table)
