"""``webi``: one console script in front of everything. Errors print as one line; -v adds tracebacks."""

from __future__ import annotations

import logging
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler

from marketplace.cli import audit, demo, devnet, job, lifecycle, serve, store, wallet
from marketplace.cli.context import CliContext
from marketplace.errors import WebiError

app = typer.Typer(help="WEBI: a decentralized GPU compute marketplace for AI inference.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
devnet.app.command("lifecycle")(lifecycle.lifecycle)
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
    rpc_url: Annotated[str | None, typer.Option(envvar="WEBI_RPC_URL", help="JSON-RPC endpoint of the chain.")] = None,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More logging; -v shows tracebacks.")] = 0,
) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(message)s", handlers=[RichHandler(show_path=False)])
    ctx.obj = CliContext(rpc_url=rpc_url, console=Console())


def run() -> None:
    """Entry point: a WebiError becomes one line on stderr and exit code 1 (-v adds the traceback)."""
    try:
        app()
    except WebiError as error:
        errors = Console(stderr=True)
        errors.print(f"[red]error:[/red] {error}")
        if logging.getLogger().isEnabledFor(logging.INFO):
            errors.print_exception()
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        Console(stderr=True).print("[yellow]interrupted[/yellow]")
        raise SystemExit(130) from None
