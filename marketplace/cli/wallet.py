"""``webi wallet new|import|list|balance|withdraw|key``: V3 keystores (scrypt) for requesters and operators, and the
money the market holds for them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from marketplace.cli.context import CliContext
from marketplace.cli.help import ReadableTyper
from marketplace.errors import ConfigError
from marketplace.units import webi

if TYPE_CHECKING:  # the commands import web3 and eth_account when they run, not when the CLI starts
    from eth_account.signers.local import LocalAccount

    from marketplace.wallet import Wallets

app = ReadableTyper(help="Create, import and inspect wallets (V3 keystores).", no_args_is_help=True)

PasswordEnv = Annotated[str | None, typer.Option(
    metavar="VAR", help="Read the keystore password from this environment variable (default: a prompt).")]
PasswordFile = Annotated[Path | None, typer.Option(
    metavar="FILE", help="Read the keystore password from this file's first line.")]
DeploymentsOption = Annotated[Path | None, typer.Option(metavar="DIR", help="Folder of deployment files.")]


def wallets(ctx: typer.Context) -> Wallets:
    from marketplace.wallet import Wallets

    context: CliContext = ctx.obj
    return Wallets(context.home / "wallets")


def password(env: str | None, file: Path | None, *, confirm: bool = False) -> str:
    """From the env variable or file when given, else a prompt (twice for a new keystore)."""
    from marketplace.keystore import read_password

    if env or file:
        return read_password(env=env, file=file)
    first = read_password(prompt="keystore password: ")
    if confirm and read_password(prompt="again: ") != first:
        raise ConfigError("the passwords differ")
    return first


@app.command()
def new(ctx: typer.Context, name: str, password_env: PasswordEnv = None, password_file: PasswordFile = None) -> None:
    """Create a new account and save it as wallet NAME."""
    entry = wallets(ctx).create(name, password(password_env, password_file, confirm=True))
    ctx.obj.console.print(f"wallet [bold]{entry.name}[/bold]: {entry.address}\nkeystore {entry.path}")


@app.command("import")
def import_(
    ctx: typer.Context,
    name: str,
    key_file: Annotated[Path | None, typer.Option(
        metavar="FILE", help="File holding the hex private key (default: a prompt).")] = None,
    password_env: PasswordEnv = None,
    password_file: PasswordFile = None,
) -> None:
    """Import a private key as wallet NAME.

    The key comes from --key-file or a prompt, never from the command line.
    """
    from marketplace.keystore import read_password

    key = key_file.read_text() if key_file else read_password(prompt="private key (hex): ")
    entry = wallets(ctx).import_key(name, key, password(password_env, password_file, confirm=True))
    ctx.obj.console.print(f"wallet [bold]{entry.name}[/bold]: {entry.address}\nkeystore {entry.path}")


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """List the wallets and their addresses."""
    entries = wallets(ctx).list()
    if not entries:
        ctx.obj.console.print(f"no wallets in {wallets(ctx).folder}: create one with `webi wallet new NAME`")
        return
    table = Table("name", "address", "keystore")
    for entry in entries:
        table.add_row(entry.name, entry.address, str(entry.path))
    ctx.obj.console.print(table)


@app.command()
def balance(
    ctx: typer.Context,
    wallet: Annotated[str, typer.Argument(help="A wallet name or an address.")],
    deployments: DeploymentsOption = None,
) -> None:
    """Show what a wallet (or any address) holds and is owed.

    Its WEBI and ETH (gas), its withdrawable credits, its stakes and its unbonding stake.
    """
    from eth_utils.address import to_checksum_address

    from marketplace.chain.client import ChainClient
    from marketplace.chain.deployment import Deployment, connect_protocol, protocol_abis
    from marketplace.funds import eth, parse_address
    from marketplace.protocol import Role
    from marketplace.staking import stake_of, when

    address = parse_address(wallet) if wallet.startswith(("0x", "0X")) else wallets(ctx).entry(wallet).address
    context: CliContext = ctx.obj
    client = ChainClient.connect(context.chain_url(), protocol_abis())
    try:
        protocol = connect_protocol(client, Deployment.load(client.chain_id, deployments))
        market = protocol.market
        now = client.timestamp()
        table = Table("", "amount", "", title=address)
        table.add_row("balance", f"{webi(protocol.token.balance_of(address))} WEBI", "")
        table.add_row("gas", f"{eth(int(client.w3.eth.get_balance(to_checksum_address(address))))} ETH", "")
        table.add_row("withdrawable credits", f"{webi(market.credits(address))} WEBI", "`webi wallet withdraw`")
        for role in (Role.PROVIDER, Role.VERIFIER):
            stake = stake_of(market, role, address)
            name = role.name.lower()
            if stake.stake:
                table.add_row(f"{name} stake", f"{webi(stake.stake)} WEBI", f"{webi(stake.locked)} locked")
            if stake.unbonding:
                table.add_row(f"{name} unbonding", f"{webi(stake.unbonding)} WEBI",
                              f"unlocks {when(stake.unlock_at, now)}")
        context.console.print(table)
    finally:
        client.close()


@app.command()
def withdraw(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The wallet whose credits to withdraw.")],
    password_env: PasswordEnv = None,
    password_file: PasswordFile = None,
    deployments: DeploymentsOption = None,
) -> None:
    """Withdraw every WEBI the market credits to wallet NAME.

    Refunds, slash compensation, audit fees and payments. Refused, with nothing sent, when there is
    nothing to withdraw or no ETH for the gas.
    """
    from marketplace.chain.client import ChainClient
    from marketplace.chain.deployment import Deployment, connect_protocol, protocol_abis
    from marketplace.funds import withdraw_credits

    context: CliContext = ctx.obj
    account = wallets(ctx).unlock(name, password(password_env, password_file))
    client = ChainClient.connect(context.chain_url(), protocol_abis())
    try:
        protocol = connect_protocol(client, Deployment.load(client.chain_id, deployments))
        withdrawal = withdraw_credits(protocol, account)
        context.console.print(f"withdrew {webi(withdrawal.amount)} WEBI of credits to {name} ({account.address}); "
                              f"tx {withdrawal.tx_hash}", highlight=False, soft_wrap=True)
    finally:
        client.close()


@app.command()
def key(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The wallet whose encryption key to show.")],
    rotate: Annotated[bool, typer.Option(
        "--rotate", help="Replace it with a new one (the old one is kept, to open older jobs).")] = False,
    password_env: PasswordEnv = None,
    password_file: PasswordFile = None,
    store: Annotated[str | None, typer.Option(
        envvar="WEBI_STORE", metavar="STORE",
        help="--rotate: content store for the re-published metadata (default: the node's).")] = None,
    deployments: DeploymentsOption = None,
) -> None:
    """Show wallet NAME's encryption key for confidential jobs.

    It is made on first use.
    Prints its public recipient (age1...) and the key file beside the keystore, sealed with the
    wallet's password. --rotate makes a new key for the jobs posted from now on; the old one stays
    beside it, so results of older jobs still open. A provider or verifier account re-publishes
    it: a copy of its metadata document with the new key signed in, named on-chain by
    updateMetadata, so that keys are wrapped to the new one from then on.
    """
    from marketplace.sealed.keys import ensure, kdf_of, key_path_for
    from marketplace.sealed.keys import rotate as rotate_key

    entry = wallets(ctx).entry(name)
    secret = password(password_env, password_file)
    path = key_path_for(entry.path)
    kdf, iterations = kdf_of(entry.path)
    existed = path.exists()
    if not existed:
        wallets(ctx).unlock(name, secret)  # a new key is sealed with the wallet's own password: check it first
    party = ensure(path, secret, kdf=kdf, iterations=iterations)
    if rotate and existed:
        party = rotate_key(path, secret, kdf=kdf, iterations=iterations)
    verb = "rotated to" if rotate and existed else ("created" if not existed else "is")
    ctx.obj.console.print(f"wallet [bold]{name}[/bold] encryption key {verb}: {party.recipient}\nkey file {path}",
                          highlight=False, soft_wrap=True)
    if rotate and existed:
        _republish(ctx, wallets(ctx).unlock(name, secret), party.recipient, store, deployments)


def _republish(ctx: typer.Context, account: LocalAccount, recipient: str, store: str | None,
               deployments: Path | None) -> None:
    """Re-publishes a rotated key for each role the account is staked in; says so when there is no chain."""
    from marketplace.chain.client import ChainClient
    from marketplace.chain.deployment import Deployment, connect_protocol, protocol_abis
    from marketplace.home import DEFAULT_STORE
    from marketplace.key_publish import republish_key
    from marketplace.storage import open_store

    context: CliContext = ctx.obj
    client = None
    try:
        client = ChainClient.connect(context.chain_url(), protocol_abis())
        protocol = connect_protocol(client, Deployment.load(client.chain_id, deployments))
    except ConfigError as error:  # no chain or no deployment: the rotation itself stands
        if client is not None:
            client.close()
        context.console.print(f"[yellow]the new key is not re-published[/yellow] ({error}): a provider or "
                              "verifier must publish it before others can use it; rotate again with the chain "
                              "running", soft_wrap=True)
        return
    try:
        with open_store(store or DEFAULT_STORE) as content:
            published = republish_key(protocol, content, account, recipient)
    finally:
        client.close()
    for item in published:
        context.console.print(f"re-published for the {item.role.name.lower()} registration: metadata "
                              f"{item.metadata_cid} (tx {item.tx_hash})", highlight=False, soft_wrap=True)
    if not published:
        context.console.print("not staked as a provider or verifier: nothing to re-publish", highlight=False)
