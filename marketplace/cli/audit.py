"""``webi audit``: rebuild the protocol's books from the chain and check them; non-zero exit on any discrepancy."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from marketplace.cli.context import CliContext
from marketplace.cli.wallet import PasswordEnv, PasswordFile, password, wallets
from marketplace.errors import ConfigError
from marketplace.units import webi

if TYPE_CHECKING:  # the auditor, web3 and SQLAlchemy load when the command runs, not when the CLI starts
    from marketplace.audit import Reexecutor
    from marketplace.chain.market import JobMarket
    from marketplace.sealed.keys import PartyKey


def _reexecutor(store: str, cache: Path, *, address: str | None = None, party_keys: list[PartyKey] | None = None,
                market: JobMarket | None = None) -> Reexecutor:
    """The verifier package's re-executor, found through the ``webi.reexecutors`` entry point; ``address``
    and ``party_keys`` (``--wallet``) open the confidential jobs whose key is wrapped or released to it."""
    from marketplace.storage import open_store

    found = list(entry_points(group="webi.reexecutors"))
    if not found:
        raise ConfigError("--reexecute needs the verifier package (pip install webi with its verifier)")
    factory = found[0].load()
    reexecutor: Reexecutor = factory(open_store(store), cache, address=address, party_keys=party_keys or [],
                                     market=market)
    return reexecutor


def _wallet_keys(ctx: typer.Context, wallet: str, password_env: str | None,
                 password_file: Path | None) -> tuple[str, list[PartyKey]]:
    """The wallet's address and its party keys (current and rotated-out; none without a key file)."""
    from marketplace.sealed.keys import key_path_for, load_all

    entry = wallets(ctx).entry(wallet)
    path = key_path_for(entry.path)
    return entry.address, load_all(path, password(password_env, password_file)) if path.exists() else []


def audit(
    ctx: typer.Context,
    from_block: Annotated[
        int | None,
        typer.Option(
            metavar="BLOCK",
            help="Replay from this block (default: the token's creation; a later start skips the balance checks)."
        ),
    ] = None,
    reexecute: Annotated[
        int, typer.Option(metavar="N", help="Re-execute N tasks, chosen at random among those that audits "
                                             "sampled in finalized jobs.")
    ] = 0,
    report: Annotated[
        Path | None, typer.Option(metavar="DIR", help="Write audit.json and audit.html to this folder.")
    ] = None,
    db: Annotated[
        str | None, typer.Option(metavar="FILE|URL",
                                 help="Also check an indexer database (SQLite file or URL) against the chain.")
    ] = None,
    store: Annotated[
        str, typer.Option(envvar="WEBI_STORE", metavar="STORE",
                          help="Content store for --reexecute: a node URL, Kubo RPC URL or folder.")
    ] = "http://127.0.0.1:8000",
    seed: Annotated[int | None, typer.Option(help="Seed for choosing the tasks to re-execute.")] = None,
    deployments: Annotated[Path | None, typer.Option(metavar="DIR", help="Folder of deployment files.")] = None,
    wallet: Annotated[str | None, typer.Option(
        "--wallet", metavar="NAME",
        help="--reexecute: open confidential jobs with this wallet's encryption keys (jobs it requested, or whose "
             "key was released to it); without it they are left out, not failed.")] = None,
    password_env: PasswordEnv = None,
    password_file: PasswordFile = None,
) -> None:
    """Check the protocol's books against the chain alone.

    Every WEBI event is replayed from the chain, and balances, stakes, escrow, bonds, burns and every
    settlement, slash and reward are checked against the replay; any discrepancy exits with code 1.
    """
    from marketplace.audit import Auditor
    from marketplace.audit.report import write_report
    from marketplace.chain.client import ChainClient
    from marketplace.chain.deployment import Deployment, connect_protocol, protocol_abis
    from marketplace.indexer import create_db

    context: CliContext = ctx.obj
    client = ChainClient.connect(context.chain_url(), protocol_abis())
    engine = None
    try:
        protocol = connect_protocol(client, Deployment.load(client.chain_id, deployments))
        engine = create_db(db) if db else None
        reexecutor = None
        if reexecute:
            address, party_keys = (None, []) if wallet is None else _wallet_keys(ctx, wallet, password_env,
                                                                                 password_file)
            reexecutor = _reexecutor(store, context.home / "audit-cache", address=address, party_keys=party_keys,
                                     market=protocol.market)
        with context.console.status("replaying the chain's WEBI events ..."):
            result = Auditor(protocol, from_block=from_block, database=engine, reexecutor=reexecutor).run(
                reexecute=reexecute, seed=seed
            )
    finally:
        client.close()
        if engine is not None:  # a PostgreSQL pool holds connections until disposed
            engine.dispose()
    console = context.console
    console.print(
        f"blocks {result.from_block}-{result.to_block}: {result.events} events, {len(result.jobs)} jobs, "
        f"{len(result.accounts)} accounts, {result.checks_run} checks"
    )
    if not result.balance_checks:
        console.print("[yellow]balance checks skipped: the replay did not start at the token's creation[/yellow]")
    carried = [job.job_id for job in result.jobs if job.partial_since is not None]
    if carried:
        console.print(f"jobs posted before block {result.from_block}, replayed from their own events and the "
                      f"chain's state before it: {', '.join(map(str, carried))}")
    for line in result.skipped:
        console.print(f"[yellow]{line}[/yellow]")
    for overturned in result.overturned:
        console.print(f"job {overturned.job_id}: the panel overturned {overturned.verifier}'s "
                      f"{overturned.verdict} ({overturned.panel_verdict}, {overturned.votes}); "
                      f"the verifier lost {webi(overturned.slashed)} WEBI")
    if result.reexecuted:
        failed = [verdict for verdict in result.reexecuted if not verdict.passed]
        console.print(f"re-executed {len(result.reexecuted)} tasks: {len(failed)} failed")
        for verdict in failed:
            console.print(f"[red]job {verdict.job_id} task {verdict.index}: {verdict.reason}[/red]")
        for contradicted in result.contradicted:
            console.print(f"[red]job {contradicted.job_id}: re-execution contradicts the pass by "
                          f"{contradicted.passed_by} (verifier {contradicted.verifier})[/red]")
    if result.discrepancies:
        table = Table(title="discrepancies", style="red")
        for heading in ("check", "subject", "chain replay says", "found"):
            table.add_column(heading, overflow="fold")  # wrapped, never cut: a row's key or an amount is read whole
        for item in result.discrepancies:
            table.add_row(item.check, item.subject, item.expected, item.found)
        console.print(table)
    if report:
        data, page = write_report(result, report)
        console.print(f"report: {data} and {page}")
    if not result.clean:
        raise typer.Exit(1)
    console.print(
        "[green]clean[/green]: every balance, stake, escrow, bond, burn and settlement agrees with the chain"
    )
