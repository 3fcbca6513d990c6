"""``webi verifier ...``: stake as a verifier (and commit an audit secret), run the audit daemon, see its audits,
unstake."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from marketplace.cli.help import ReadableTyper
from marketplace.errors import ConfigError
from marketplace.units import to_wei, webi

if TYPE_CHECKING:  # web3, eth_account, pydantic and SQLAlchemy load when a command runs, not when the CLI starts
    from eth_account.signers.local import LocalAccount

    from verifier.config import VerifierConfig

app = ReadableTyper(help="Run a verifier: stake, audit sampled jobs, earn audit fees.", no_args_is_help=True)
log = logging.getLogger(__name__)

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", envvar="WEBI_VERIFIER_CONFIG", metavar="FILE",
                                                   help="Verifier TOML file (its [verifier] table).")]


def _setup(ctx: typer.Context, path: Path | None) -> tuple[VerifierConfig, LocalAccount]:
    config, account, _ = _unlock(ctx, path)
    return config, account


def _unlock(ctx: typer.Context, path: Path | None) -> tuple[VerifierConfig, LocalAccount, str]:
    """The config, the account and the keystore's password (it locks the encryption key too)."""
    from marketplace.keystore import load_account, read_password
    from verifier.config import load_verifier_config

    rpc_url = ctx.obj.rpc_url if ctx.obj is not None else None
    config = load_verifier_config(path, {"rpc_url": rpc_url})
    password = read_password(env=config.password_env, file=config.password_file,
                             prompt=f"password for {config.keystore}: ")
    return config, load_account(config.keystore.expanduser(), password), password


def _console(ctx: typer.Context) -> Console:
    return ctx.obj.console if ctx.obj is not None else Console()


@app.command()
def register(ctx: typer.Context, stake: Annotated[str, typer.Option(
                 metavar="WEBI", help="WEBI to stake, a decimal (at least the network's minimum verifier stake).")],
             config: ConfigOption = None) -> None:
    """Stake WEBI as a verifier and publish its encryption key.

    It also commits an audit secret, which puts the verifier in the draw from the next sync phase.
    The registration points to a small metadata document in the content store holding the signed public half of the
    account's encryption key: providers release confidential jobs' keys to it. The key is created
    beside the keystore if there is none, locked with the keystore's password.

    Everything the contract would refuse (stake under the minimum, too little WEBI or ETH, already
    registered) is refused before anything is sent; the approval is exactly the stake, and it is set
    back when the registration fails.
    """
    from marketplace import staking
    from marketplace.protocol import Role
    from provider.epochs import joins_at
    from verifier.confidential import create_party_key, registration_metadata
    from verifier.factory import connect, content_store
    from verifier.secrets import AuditSecrets

    amount = to_wei(stake)
    settings, account, password = _unlock(ctx, config)
    protocol = connect(settings)
    staking.check_register(protocol, account.address, Role.VERIFIER, amount)
    key = create_party_key(settings.keystore, password)
    with content_store(settings) as content:
        metadata_cid = str(content.add_bytes(registration_metadata(account, key, protocol.deployment.chain_id)).cid)
    staking.register(protocol, account, Role.VERIFIER, amount, metadata_cid)
    secrets = AuditSecrets.of(account, protocol.market)
    index = secrets.first_unused(protocol.market, account.address)
    receipt = protocol.market.commit_secret(account, secrets.commitment(index))
    if protocol.market.verifier_weight(account.address):
        where = "so it is in the draw"
    else:  # weights change only in a sync phase: the daemon (or anyone) calls syncVerifier in the next
        where = (f"it joins the draw in the sync phase at block {joins_at(int(receipt['blockNumber']))} "
                 "(`webi verifier run` syncs it)")
    _console(ctx).print(f"registered {account.address} as a verifier with {webi(amount)} WEBI staked; audit secret "
                        f"#{index} committed; {where}; metadata {metadata_cid} (its encryption key)", highlight=False,
                        soft_wrap=True)


@app.command()
def unstake(
    ctx: typer.Context,
    amount: Annotated[str | None, typer.Option(
        metavar="WEBI", help="WEBI to start unbonding; what stays must be 0 or the minimum.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Unbond the whole stake (leaves the draw at the next sync).")]
    = False,
    withdraw: Annotated[bool, typer.Option("--withdraw", help="Withdraw the unbonded stake, after the cooldown.")]
    = False,
    config: ConfigOption = None,
) -> None:
    """Start unbonding stake, or withdraw it after the cooldown.

    --amount or --all starts unbonding; --withdraw takes the unbonded stake once the unstake
    cooldown has passed. The cooldown is a network parameter (3 d on the devnet; `webi devnet
    status` shows it); a new request while stake is unbonding starts it again for the total.

    The withdrawal also waits for every open audit and panel vote to close, and for the stake to leave
    the draw (a sync phase); unbonding stake can still be slashed.
    """
    from marketplace import staking
    from marketplace.protocol import Role
    from provider.epochs import joins_at
    from verifier.factory import connect

    chosen = sum((amount is not None, all_, withdraw))
    if chosen != 1:
        raise ConfigError("give exactly one of --amount WEBI, --all or --withdraw")
    requested = to_wei(amount) if amount is not None else None
    settings, account = _setup(ctx, config)
    market = connect(settings).market
    console = _console(ctx)
    if withdraw:
        paid = staking.withdraw_stake(market, account, Role.VERIFIER)
        console.print(f"withdrew {webi(paid)} WEBI of unbonded stake to {account.address}", highlight=False)
        return
    request = staking.request_unstake(market, account, Role.VERIFIER, requested)
    text = staking.describe_request(Role.VERIFIER, request)
    left = market.verifier_stake(account.address)
    if left.stake == 0 and market.verifier_weight(account.address):
        text += f"; it leaves the draw in the sync phase at block {joins_at(market.client.w3.eth.block_number)}"
    elif left.stake == 0:
        text += "; it is out of the draw"
    if left.duties:
        text += f"; {left.duties} open audit(s) or panel vote(s) must close before the withdrawal"
    console.print(text, highlight=False, soft_wrap=True)


@app.command()
def run(ctx: typer.Context, config: ConfigOption = None) -> None:
    """Audit assigned jobs until Ctrl-C or SIGTERM."""
    from verifier.confidential import load_party_keys
    from verifier.factory import create_verifier

    settings, account, password = _unlock(ctx, config)
    daemon = create_verifier(settings, account, party_keys=load_party_keys(settings.keystore, password))
    signal.signal(signal.SIGTERM, lambda *_: daemon.stop())
    signal.signal(signal.SIGINT, lambda *_: daemon.stop())
    _console(ctx).print(f"verifier {daemon.address} serving", highlight=False)
    try:
        daemon.run()
    finally:
        daemon.close()


@app.command()
def status(ctx: typer.Context, config: ConfigOption = None) -> None:
    """Show the stake, the credits and the audits in the journal."""
    from marketplace import staking
    from provider.epochs import joins_at, weight_check
    from verifier.factory import connect
    from verifier.journal import AuditJournal

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
    unbonding = ""
    if stake.unbonding:
        unlock = staking.when(stake.unlock_at, market.client.timestamp())
        unbonding = f", {webi(stake.unbonding)} WEBI unbonding until {unlock}"
    console.print(f"{account.address}: stake {webi(stake.stake)} WEBI, {in_draw}, {stake.duties} open duties"
                  f"{unbonding}, withdrawable {webi(market.credits(account.address))} WEBI", highlight=False)
    journal = AuditJournal(settings.journal_path(protocol.deployment.chain_id, account.address))
    table = Table("job", "stage", "verdict", "evidence", "note")
    for record in journal.all():
        verdict = "" if record.passed is None else "passed" if record.passed else "failed"
        table.add_row(str(record.job_id), record.stage.value, verdict, record.evidence_cid, record.reason[:50])
    console.print(table)
