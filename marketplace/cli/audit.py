"""``webi audit``: rebuild the protocol's books from the chain and check them; non-zero exit on any discrepancy."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from marketplace.audit import Auditor, Reexecutor
from marketplace.audit.report import write_report
from marketplace.chain.client import ChainClient
from marketplace.chain.deployment import Deployment, connect_protocol, protocol_abis
from marketplace.cli.context import CliContext
from marketplace.errors import ConfigError
from marketplace.indexer import create_db
from marketplace.storage import open_store
from marketplace.units import webi


def _reexecutor(store: str, cache: Path) -> Reexecutor:
    """The verifier package's re-executor, found through the ``webi.reexecutors`` entry point."""
    found = list(entry_points(group="webi.reexecutors"))
    if not found:
        raise ConfigError("--reexecute needs the verifier package (pip install webi with its verifier)")
    factory = found[0].load()
    reexecutor: Reexecutor = factory(open_store(store), cache)
    return reexecutor


def audit(
    ctx: typer.Context,
    from_block: Annotated[
        int | None,
        typer.Option(
            help="Replay from this block (default: the token's creation; later starts skip the balance checks)."
        ),
    ] = None,
    reexecute: Annotated[
        int, typer.Option(help="Re-execute this many of the tasks that audits sampled in finalized jobs, at random.")
    ] = 0,
    report: Annotated[Path | None, typer.Option(help="Folder for audit.json and audit.html.")] = None,
    db: Annotated[
        str | None, typer.Option(help="Also check an indexer database (file or URL) against the chain.")
    ] = None,
    store: Annotated[
        str, typer.Option(envvar="WEBI_STORE", help="Content store for --reexecute.")
    ] = "http://127.0.0.1:8000",
    seed: Annotated[int | None, typer.Option(help="Seed for choosing the tasks to re-execute.")] = None,
    deployments: Annotated[Path | None, typer.Option(help="Folder of deployment files.")] = None,
) -> None:
    """Replays every WEBI event from the chain alone and checks balances, stakes, escrow, bonds, burns and
    every settlement, slash and reward."""
    context: CliContext = ctx.obj
    client = ChainClient.connect(context.chain_url(), protocol_abis())
    try:
        protocol = connect_protocol(client, Deployment.load(client.chain_id, deployments))
        engine = create_db(db) if db else None
        reexecutor = _reexecutor(store, context.home / "audit-cache") if reexecute else None
        with context.console.status("replaying the chain's WEBI events ..."):
            result = Auditor(protocol, from_block=from_block, database=engine, reexecutor=reexecutor).run(
                reexecute=reexecute, seed=seed
            )
    finally:
        client.close()
    console = context.console
    console.print(
        f"blocks {result.from_block}-{result.to_block}: {result.events} events, {result.jobs} jobs, "
        f"{result.accounts} accounts, {result.checks} checks"
    )
    if not result.balance_checks:
        console.print("[yellow]balance checks skipped: the replay did not start at the token's creation[/yellow]")
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
        table = Table("check", "subject", "chain replay says", "found", title="discrepancies", style="red")
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
