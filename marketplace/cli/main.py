"""``webi``: one console script in front of everything. Errors print as one line; -v adds tracebacks."""

from __future__ import annotations

import logging
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from marketplace.chain.library_errors import gist, translate
from marketplace.cli import audit, demo, devnet, devnet_tools, job, job_post, serve, store, wallet
from marketplace.cli.context import CliContext
from marketplace.cli.help import ReadableTyper

app = ReadableTyper(help="WEBI: a decentralized GPU compute marketplace for AI inference.", no_args_is_help=True,
                    pretty_exceptions_enable=False)
devnet.app.command("lifecycle")(devnet_tools.lifecycle)
devnet.app.command("example")(devnet_tools.example)
devnet.app.command("advance")(devnet_tools.advance)
job.app.command("post")(job_post.post)
app.add_typer(devnet.app, name="devnet")
app.add_typer(store.app, name="store")
app.add_typer(wallet.app, name="wallet")
app.add_typer(job.app, name="job")


def _add_plugins() -> None:
    """Command groups other packages declare under the ``webi.commands`` entry point (provider, verifier)."""
    from importlib.metadata import entry_points

    for entry in entry_points(group="webi.commands"):
        app.add_typer(entry.load(), name=entry.name)


_add_plugins()
app.command("demo")(demo.demo)
app.command("serve")(serve.serve)
app.command("audit")(audit.audit)


@app.callback()
def main(
    ctx: typer.Context,
    rpc_url: Annotated[str | None, typer.Option(
        envvar="WEBI_RPC_URL", metavar="URL",
        help="The chain's JSON-RPC endpoint (default: the devnet that `webi devnet up` started).")] = None,
    verbose: Annotated[int, typer.Option(
        "--verbose", "-v", count=True, show_default=False,
        help="Log more: -v adds an error's traceback, -vv debug lines.")] = 0,
) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(message)s", handlers=[RichHandler(show_path=False)])
    ctx.obj = CliContext(rpc_url=rpc_url, console=Console())


def run() -> None:
    """Entry point: every error becomes one line on stderr and exit code 1 (-v adds the traceback).

    A WebiError is shown as it is; an error of a library below (web3, eth_utils, requests) is
    translated where we know it (``marketplace.chain.library_errors``), else shown as its gist.
    """
    try:
        app()
    except KeyboardInterrupt:
        Console(stderr=True).print("[yellow]interrupted[/yellow]")
        raise SystemExit(130) from None
    except Exception as error:  # the one place where every failure becomes one line for a person
        translated = translate(error)
        verbose = logging.getLogger().isEnabledFor(logging.INFO)
        message = str(translated) if translated is not None else f"{gist(error)}" + (
            "" if verbose else " (run with -v for the traceback)")
        errors = Console(stderr=True)
        errors.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
        if verbose:
            errors.print_exception()
        raise SystemExit(1) from None
