"""``webi devnet up|down|status|accounts``: a local anvil chain with WEBI deployed, kept running in the
background between commands. Its dev accounts use anvil's published keys: devnet only."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from marketplace.cli.context import CliContext
from marketplace.cli.help import ReadableTyper
from marketplace.errors import ChainError, WebiError
from marketplace.home import DevnetState
from marketplace.units import webi

if TYPE_CHECKING:  # web3 and the chain modules load when a command runs, not when the CLI starts
    from marketplace.chain.client import ChainClient
    from marketplace.chain.deployment import Deployment

app = ReadableTyper(help="Run a local devnet (anvil) with WEBI deployed.", no_args_is_help=True)


@app.command()
def up(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(metavar="PORT", help="Port on 127.0.0.1 (0 picks a free one).")] = 0,
    block_time: Annotated[float, typer.Option(
        min=0, metavar="SECONDS",
        help="Seconds per block (0: mine only when a transaction arrives, which stalls audits).")] = 1.0,
) -> None:
    """Start a devnet in the background, with WEBI deployed.

    Anvil keeps running until `webi devnet down`; WEBI's contracts are deployed on it and the dev
    accounts are funded.
    """
    cli: CliContext = ctx.obj
    state = DevnetState.load(cli.home)
    if state and state.alive():
        cli.console.print(f"devnet already running at {state.rpc_url} (pid {state.pid}); `webi devnet down` stops it")
        return
    from marketplace.chain.devnet import Anvil, deploy_devnet

    cli.home.mkdir(parents=True, exist_ok=True)
    log = cli.home / "anvil.log"
    anvil = Anvil(port=port, block_time=block_time or None, log_path=log, detach=True).start()
    try:
        net = deploy_devnet(anvil)
        path = net.protocol.deployment.save(cli.webi_home.deployments)
    except BaseException:
        anvil.stop()
        raise
    assert anvil.process is not None
    DevnetState(anvil.process.pid, anvil.rpc_url, str(log)).save(cli.home)
    cli.console.print(f"[green]devnet up[/green] at {anvil.rpc_url} (pid {anvil.process.pid}, log {log})")
    cli.console.print(f"deployment written to {path}")
    _show(cli, net.client, net.protocol.deployment)


@app.command()
def down(ctx: typer.Context) -> None:
    """Stop the background devnet."""
    cli: CliContext = ctx.obj
    state = DevnetState.load(cli.home)
    if state is None or not state.alive():
        cli.console.print("no devnet running")
        DevnetState.path(cli.home).unlink(missing_ok=True)
        return
    os.kill(state.pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while state.alive() and time.monotonic() < deadline:
        time.sleep(0.05)  # waiting on the process to exit, with a deadline
    if state.alive():
        os.kill(state.pid, signal.SIGKILL)
    DevnetState.path(cli.home).unlink(missing_ok=True)
    cli.console.print(f"devnet at {state.rpc_url} stopped")


@app.command()
def status(ctx: typer.Context) -> None:
    """Show the chain and WEBI's deployment on it.

    The chain is the one at --rpc-url, else the background devnet. Shown: the contracts and the
    terms in force (fees, collateral, windows, minimum price and stakes, slashes, unstake cooldown).
    """
    cli: CliContext = ctx.obj
    from marketplace.chain.client import ChainClient
    from marketplace.chain.deployment import Deployment, protocol_abis

    client = ChainClient.connect(cli.chain_url(), protocol_abis(), timeout=5)  # no devnet: says to start one
    deployment = Deployment.load(client.chain_id)
    _show(cli, client, deployment)


@app.command()
def accounts(
    ctx: typer.Context,
    count: Annotated[int, typer.Option(min=1, max=20, metavar="N", help="How many dev accounts to list.")] = 10,
    deployments: Annotated[Path | None, typer.Option(metavar="DIR", help="Folder of deployment files.")] = None,
    key: Annotated[int | None, typer.Option(
        min=0, max=19, metavar="N", help="Print only dev account N's private key, for `> FILE` and --key-file.")
    ] = None,
) -> None:
    """List anvil's dev accounts and their private keys.

    Import one with `webi wallet import NAME --key-file FILE`. These keys are published with anvil:
    anyone can take what they hold on any chain. Use them on a local devnet only. Balances are shown
    when a devnet (or --rpc-url) answers.
    """
    from marketplace.chain.deployment import Deployment, connect_protocol
    from marketplace.chain.devnet import DEV_CHAIN_ID, dev_account

    cli: CliContext = ctx.obj
    if key is not None:  # one line on stdout, nothing else: `webi devnet accounts --key 1 > alice.key`
        typer.echo("0x" + bytes(dev_account(key).key).hex())
        return
    client = _devnet_client(cli)
    token = None
    if client is not None:
        try:
            token = connect_protocol(client, Deployment.load(client.chain_id, deployments)).token
        except WebiError:  # a chain without WEBI deployed: ETH balances only
            token = None
    title = ("[bold red]anvil's PUBLISHED dev keys: DEVNET ONLY. Anyone can spend from these accounts on any "
             "other chain; never send them anything of value.[/bold red]")
    table = Table(title=title)
    for column in ("#", "address", "private key"):
        table.add_column(column, no_wrap=True)
    if client is not None:
        table.add_column("ETH", justify="right", no_wrap=True)
    if token is not None:
        table.add_column("WEBI", justify="right", no_wrap=True)
    try:
        for index in range(count):
            account = dev_account(index)
            row = [str(index), account.address, "0x" + bytes(account.key).hex()]
            if client is not None:
                row.append(webi(int(client.w3.eth.get_balance(account.address)), places=2))
            if token is not None:
                row.append(webi(token.balance_of(account.address), places=2))
            table.add_row(*row)
    finally:
        if client is not None:
            client.close()
    # Rendered wide enough that no address or key is cut or folded, whatever the terminal (or pipe) is:
    # a person copies them whole, and a narrow terminal just wraps the long lines.
    wide = Console(file=cli.console.file, width=max(cli.console.width, 190 if client is not None else 130),
                   force_terminal=cli.console.is_terminal, no_color=cli.console.no_color)
    wide.print(table)
    if client is None:
        cli.console.print("no devnet running: balances not shown (`webi devnet up` starts one)")
    elif client.chain_id != DEV_CHAIN_ID:
        cli.console.print(f"[bold red]chain {client.chain_id} is not a devnet[/bold red]: never use these keys there")
    cli.console.print("to use one: write its key to a file, then `webi wallet import NAME --key-file FILE` "
                      "(account 0 deployed the contracts and holds the rest of the supply)", highlight=False)


def _devnet_client(cli: CliContext) -> ChainClient | None:
    """The chain at --rpc-url, $WEBI_RPC_URL or the running devnet; None when there is none to ask."""
    from marketplace.chain.client import ChainClient
    from marketplace.chain.deployment import protocol_abis

    try:
        return ChainClient.connect(cli.chain_url(), protocol_abis(), timeout=5)
    except ChainError:
        return None


def _show(cli: CliContext, client: ChainClient, deployment: Deployment) -> None:
    from marketplace.chain.deployment import connect_protocol
    from marketplace.chain.devnet import dev_account

    protocol = connect_protocol(client, deployment)
    terms, params = protocol.market.terms(), protocol.market.params()
    table = Table(title=f"chain {client.chain_id}, block {client.w3.eth.block_number}", show_header=False)
    table.add_row("WebiToken", deployment.token)
    table.add_row("JobMarket", deployment.market)
    table.add_row("fees", f"protocol {terms.protocol_fee_bps / 100:g} % of the price; audit "
                  f"{terms.verifier_fee_bps / 100:g} % of the per-task price per sampled task")
    table.add_row("collateral", f"{terms.collateral_bps / 100:g} % of the price")
    table.add_row("windows", f"audit {_duration(terms.audit_window)} from the draw, challenge "
                  f"{_duration(terms.challenge_window)} after the verdict")
    table.add_row("minimums", f"task price {webi(params.min_task_price)} WEBI; stake {webi(params.min_provider_stake)}"
                  f" WEBI (provider), {webi(params.min_verifier_stake)} WEBI (verifier)")
    table.add_row("slashes", f"verifier overturned {params.verifier_slash_bps / 100:g} %, missed verdict or vote "
                  f"{params.no_show_slash_bps / 100:g} % of stake; {params.reward_bps / 100:g} % of a slash to "
                  "whoever proved the fault, the rest burned")
    table.add_row("disputes", f"reveal {_duration(params.reveal_window)}, panel vote {_duration(params.vote_window)}"
                  f" to commit and again to reveal; unstake cooldown {_duration(params.unstake_cooldown)}")
    if deployment.governance:
        table.add_row("owner", f"timelock {deployment.governance}")
    cli.console.print(table)
    if client.chain_id == 31337:
        accounts = Table(title="dev accounts (anvil's public keys: devnet only)")
        accounts.add_column("#")
        accounts.add_column("address")
        accounts.add_column("WEBI", justify="right")
        for index in range(4):
            address = dev_account(index).address
            accounts.add_row(str(index), address, f"{protocol.token.balance_of(address) / 10**18:,.0f}")
        cli.console.print(accounts)


def _duration(seconds: int) -> str:
    """``3600`` as ``1 h``: windows read better in the unit they were chosen in."""
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"
