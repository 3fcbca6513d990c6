"""``webi demo``: the whole marketplace on this machine; see ``marketplace.demo.run``."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler

from marketplace.cli.context import CliContext

if TYPE_CHECKING:
    from marketplace.demo.outcome import DemoOutcome


def demo(
    ctx: typer.Context,
    cheater: Annotated[
        bool, typer.Option("--cheater", help="Make the generate provider cheat, and watch it get slashed.")
    ] = False,
    lazy_verifier: Annotated[
        bool,
        typer.Option("--lazy-verifier", help="Make the verifier pass without checking (implies --cheater), and "
                     "watch a watchtower challenge it and a panel slash it."),
    ] = False,
    run_dir: Annotated[
        Path | None, typer.Option(metavar="DIR", help="Run folder (default: $WEBI_HOME/demo/<time>).")
    ] = None,
    embed_model: Annotated[
        Path | None, typer.Option(metavar="DIR", help="Embedding model folder (default: MiniLM-L6).")
    ] = None,
    generate_model: Annotated[
        Path | None, typer.Option(metavar="DIR", help="Generator folder (default: a tiny GPT-2 built here).")
    ] = None,
    exit_after: Annotated[bool, typer.Option("--exit", help="Stop once the summary is printed.")] = False,
    json_summary: Annotated[
        bool,
        typer.Option("--json", help="Print the summary as one JSON document on stdout (everything else goes to "
                     "stderr)."),
    ] = False,
    timeout: Annotated[float, typer.Option(metavar="SECONDS", help="Seconds to wait for the jobs to settle.")] = 900.0,
) -> None:
    """Run the whole marketplace on this machine, end to end.

    A chain, a node, providers and verifiers; real jobs, audits and the ledger. Once the summary is
    printed the dashboard stays up until Ctrl-C (or the demo stops, with --exit).
    """
    from marketplace.demo.outcome import to_json
    from marketplace.demo.run import DemoOptions, run_demo  # imports torch only for this command

    context: CliContext = ctx.obj
    folder = run_dir or context.home / "demo" / datetime.now().strftime("%Y%m%d-%H%M%S")
    options = DemoOptions(
        folder,
        cheater=cheater,
        lazy_verifier=lazy_verifier,
        embed_model=embed_model,
        generate_model=generate_model,
        keep_running=not exit_after,
        timeout_s=timeout,
    )
    console = context.console
    on_summary = None
    if json_summary:
        # stdout carries the JSON document alone: the progress, the tables and every log line go to stderr.
        console = Console(stderr=True)
        for handler in logging.getLogger().handlers:
            if isinstance(handler, RichHandler):
                handler.console = console
        stdout = Console(soft_wrap=True)

        def on_summary(outcome: DemoOutcome) -> None:
            stdout.out(to_json(outcome), highlight=False)
            stdout.file.flush()

    outcome = run_demo(options, console, on_summary)
    if not outcome.ok:
        raise typer.Exit(1)
