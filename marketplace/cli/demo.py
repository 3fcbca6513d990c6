"""``webi demo``: the whole marketplace on this machine; see ``marketplace.demo.run``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from marketplace.cli.context import CliContext


def demo(
    ctx: typer.Context,
    cheater: Annotated[
        bool, typer.Option("--cheater", help="The generate provider cheats: watch it get slashed.")
    ] = False,
    run_dir: Annotated[Path | None, typer.Option(help="Run folder (default: $WEBI_HOME/demo/<time>).")] = None,
    embed_model: Annotated[Path | None, typer.Option(help="Embedding model folder (default: MiniLM-L6).")] = None,
    generate_model: Annotated[
        Path | None, typer.Option(help="Generator folder (default: a tiny GPT-2 built here).")
    ] = None,
    exit_after: Annotated[bool, typer.Option("--exit", help="Stop once the summary is printed.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the jobs to settle.")] = 900.0,
) -> None:
    """Run the marketplace end to end: chain, node, providers, verifier, real jobs, audits, the ledger."""
    from marketplace.demo.run import DemoOptions, run_demo  # imports torch only for this command

    context: CliContext = ctx.obj
    folder = run_dir or context.home / "demo" / datetime.now().strftime("%Y%m%d-%H%M%S")
    options = DemoOptions(
        folder,
        cheater=cheater,
        embed_model=embed_model,
        generate_model=generate_model,
        keep_running=not exit_after,
        timeout_s=timeout,
    )
    outcome = run_demo(options, context.console)
    if not (outcome.conserved and outcome.audit_clean):
        raise typer.Exit(1)
