"""``webi wallet new|import|list|balance``: V3 keystores (scrypt) for requesters and operators."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from marketplace.chain.client import ChainClient
from marketplace.chain.deployment import Deployment, connect_protocol, protocol_abis
from marketplace.cli.context import CliContext
from marketplace.errors import ConfigError
from marketplace.keystore import read_password
from marketplace.protocol import Role
from marketplace.units import webi
from marketplace.wallet import Wallets

app = typer.Typer(help="Create, import and inspect wallets (V3 keystores).", no_args_is_help=True)

PasswordEnv = Annotated[str | None, typer.Option(help="Read the keystore password from this environment variable.")]
PasswordFile = Annotated[Path | None, typer.Option(help="Read the keystore password from this file's first line.")]


def wallets(ctx: typer.Context) -> Wallets:
    context: CliContext = ctx.obj
    return Wallets(context.home / "wallets")


def password(env: str | None, file: Path | None, *, confirm: bool = False) -> str:
    """From the env variable or file when given, else a prompt (twice for a new keystore)."""
    if env or file:
        return read_password(env=env, file=file)
    first = read_password(prompt="keystore password: ")
    if confirm and read_password(prompt="again: ") != first:
        raise ConfigError("the passwords differ")
    return first


@app.command()
def new(ctx: typer.Context, name: str, password_env: PasswordEnv = None, password_file: PasswordFile = None) -> None:
    """Creates a new account and saves it as wallet NAME."""
    entry = wallets(ctx).create(name, password(password_env, password_file, confirm=True))
    ctx.obj.console.print(f"wallet [bold]{entry.name}[/bold]: {entry.address}\nkeystore {entry.path}")


@app.command("import")
def import_(
    ctx: typer.Context,
    name: str,
    key_file: Annotated[Path | None, typer.Option(help="File holding the hex private key (else a prompt).")] = None,
    password_env: PasswordEnv = None,
    password_file: PasswordFile = None,
) -> None:
    """Imports a private key as wallet NAME (from a file or a prompt, never from the command line)."""
    key = key_file.read_text() if key_file else read_password(prompt="private key (hex): ")
    entry = wallets(ctx).import_key(name, key, password(password_env, password_file, confirm=True))
    ctx.obj.console.print(f"wallet [bold]{entry.name}[/bold]: {entry.address}\nkeystore {entry.path}")


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """Lists the wallets and their addresses."""
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
    deployments: Annotated[Path | None, typer.Option(help="Folder of deployment files.")] = None,
) -> None:
    """WEBI held, withdrawable credits and stakes of a wallet (or any address)."""
    address = wallet if wallet.startswith("0x") else wallets(ctx).entry(wallet).address
    context: CliContext = ctx.obj
    client = ChainClient.connect(context.chain_url(), protocol_abis())
    try:
        protocol = connect_protocol(client, Deployment.load(client.chain_id, deployments))
        market = protocol.market
        table = Table("", "WEBI", title=address)
        table.add_row("balance", webi(protocol.token.balance_of(address)))
        table.add_row("withdrawable credits", webi(market.credits(address)))
        for role, stake in (
            (Role.PROVIDER, market.provider_stake(address)),
            (Role.VERIFIER, market.verifier_stake(address)),
        ):
            if stake.stake or stake.unbonding:
                table.add_row(f"{role.name.lower()} stake (locked {webi(stake.locked)})", webi(stake.stake))
        context.console.print(table)
    finally:
        client.close()
