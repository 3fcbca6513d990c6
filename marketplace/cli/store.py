"""``webi store ...``: add, read, move and serve content by CID.

Every command works on the store named by ``--store`` (or ``WEBI_STORE``): a Kubo RPC URL (default
the marketplace node, ``http://127.0.0.1:8000``, that `webi serve` starts; an IPFS node's works too),
a directory, or ``gateway+URL`` for reads from a trustless gateway. CIDs print on stdout alone, so
``cid=$(webi store add -r model/)`` works;
progress goes to stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from marketplace.cli.context import CliContext
from marketplace.cli.help import ReadableTyper
from marketplace.cli.progress import size_of, transfer_progress
from marketplace.errors import ConfigError, ContentError
from marketplace.home import DEFAULT_STORE

if TYPE_CHECKING:  # the store modules (multiformats, HTTP clients) load when a command runs
    from marketplace.storage import ContentStore
    from marketplace.storage.cid import Cid

app = ReadableTyper(help="Add, read, export and serve content by CID (IPFS-compatible).", no_args_is_help=True)

StoreOption = Annotated[str | None, typer.Option("--store", envvar="WEBI_STORE", metavar="STORE",
                                                 help="Content store: a Kubo RPC URL, a directory or gateway+URL "
                                                      f"(default: the node, {DEFAULT_STORE}).")]
TokenOption = Annotated[str | None, typer.Option("--token", envvar="WEBI_STORE_TOKEN", metavar="TOKEN",
                                                 help="Bearer token for a node's write API.")]
Target = Annotated[str, typer.Argument(metavar="CID[/PATH]",
                                       help="A CID, or a path under one (an /ipfs/ prefix is allowed).")]


def _open(ctx: typer.Context, store: str | None, token: str | None) -> ContentStore:
    from marketplace.storage import open_store

    return open_store(store or DEFAULT_STORE, token=token)


def _split(target: str) -> tuple[Cid, str]:
    """``CID`` or ``CID/path`` (``/ipfs/`` in front allowed): the CID and the path under it."""
    from marketplace.storage.cid import split_ipfs_path

    return split_ipfs_path(target)


def _cid(text: str) -> Cid:
    from marketplace.storage.cid import Cid

    return Cid.parse(text)


@app.command()
def add(ctx: typer.Context, path: Annotated[Path, typer.Argument(help="The file, or directory with -r, to add.")],
        recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Add a directory tree.")] = False,
        only_hash: Annotated[bool, typer.Option("--only-hash", "-n", help="Compute the CID, store nothing.")] = False,
        pin: Annotated[bool, typer.Option(help="Pin the added content.")] = True,
        store: StoreOption = None, token: TokenOption = None) -> None:
    """Add a file or directory and print its CID.

    The CID is the one `ipfs add --cid-version=1` gives; it goes to stdout alone, so that
    `cid=$(webi store add -r model/)` works.
    """
    if not path.exists():
        raise ConfigError(f"{path} does not exist")
    with transfer_progress(f"adding {path.name}", size_of(path)) as progress:
        if only_hash:
            from marketplace.storage import ContentStore

            added = ContentStore.hash_path(path, recursive=recursive, progress=progress)
        else:
            added = _open(ctx, store, token).add_path(path, recursive=recursive, pin=pin, progress=progress)
    ctx.obj.console.print(str(added.cid), highlight=False, soft_wrap=True)


@app.command()
def cat(ctx: typer.Context, target: Target, store: StoreOption = None, token: TokenOption = None) -> None:
    """Write a file's bytes to stdout, each block checked against its CID."""
    cid, path = _split(target)
    out = sys.stdout.buffer
    for part in _open(ctx, store, token).cat(cid, path):
        out.write(part)
    out.flush()


@app.command()
def get(ctx: typer.Context, target: Target,
        output: Annotated[Path, typer.Option("--output", "-o", metavar="PATH",
                                             help="Where to write the file or directory.")],
        store: StoreOption = None, token: TokenOption = None) -> None:
    """Write a file or directory tree to --output.

    A file is only renamed into place once it is complete.
    """
    cid, path = _split(target)
    if output.exists() and output.is_file():
        raise ConfigError(f"{output} exists; choose another --output or remove it")
    written = _open(ctx, store, token).get(cid, output, path)
    ctx.obj.console.print(f"wrote {written} bytes to {output}", highlight=False, soft_wrap=True)


@app.command("ls")
def list_directory(ctx: typer.Context, target: Target, store: StoreOption = None, token: TokenOption = None) -> None:
    """List a directory's entries."""
    cid, path = _split(target)
    table = Table("name", "size", "cid", box=None)
    for entry in _open(ctx, store, token).ls(cid, path):
        table.add_row(entry.name, str(entry.tsize), str(entry.cid))
    ctx.obj.console.print(table)


@app.command()
def stat(ctx: typer.Context, target: Target, store: StoreOption = None, token: TokenOption = None) -> None:
    """Show what a CID is (file or directory) and how big."""
    cid, path = _split(target)
    info = _open(ctx, store, token).stat(cid, path)
    ctx.obj.console.print(f"{info.cid}  {info.kind}  {info.size} bytes  ({info.cumulative_size} with the DAG)",
                          highlight=False, soft_wrap=True)


@app.command("export")
def export_car(ctx: typer.Context, cid: str,
               output: Annotated[Path, typer.Option("--output", "-o", metavar="FILE", help="The .car file to write.")],
               store: StoreOption = None, token: TokenOption = None) -> None:
    """Write the whole DAG under CID to a CAR v1 file."""
    partial = output.with_name(f".{output.name}.partial")
    try:
        with partial.open("wb") as out:
            size = _open(ctx, store, token).export_car(_cid(cid), out)
        partial.replace(output)
    finally:
        partial.unlink(missing_ok=True)
    ctx.obj.console.print(f"wrote {size} bytes to {output}", highlight=False, soft_wrap=True)


@app.command("import")
def import_car(ctx: typer.Context, car: Path,
               pin: Annotated[bool, typer.Option(help="Pin the CAR's roots.")] = True,
               store: StoreOption = None, token: TokenOption = None) -> None:
    """Store every block of a CAR file, each checked, and print its roots."""
    if not car.is_file():
        raise ConfigError(f"{car} is not a file")
    with car.open("rb") as stream:
        roots = _open(ctx, store, token).import_car(stream, pin_roots=pin)
    for root in roots:
        ctx.obj.console.print(str(root), highlight=False, soft_wrap=True)


@app.command("pin")
def pin_content(ctx: typer.Context, cid: str, store: StoreOption = None, token: TokenOption = None) -> None:
    """Keep CID's whole DAG through garbage collection."""
    _open(ctx, store, token).pin(_cid(cid))
    ctx.obj.console.print(f"pinned {cid}", highlight=False, soft_wrap=True)


@app.command("unpin")
def unpin_content(ctx: typer.Context, cid: str, store: StoreOption = None, token: TokenOption = None) -> None:
    """Let garbage collection remove CID's DAG."""
    _open(ctx, store, token).unpin(_cid(cid))
    ctx.obj.console.print(f"unpinned {cid}", highlight=False, soft_wrap=True)


@app.command()
def gc(ctx: typer.Context, store: StoreOption = None) -> None:
    """Delete the blocks of a local store that no pin keeps."""
    from marketplace.storage.local import LocalStore

    local = _open(ctx, store, None)
    if not isinstance(local, LocalStore):
        raise ContentError("gc works on a local store directory; a Kubo node collects with `ipfs repo gc`")
    collected = local.gc()
    ctx.obj.console.print(f"removed {collected.blocks} blocks, {collected.bytes} bytes", highlight=False,
                          soft_wrap=True)


@app.command()
def serve(ctx: typer.Context,
          root: Annotated[Path | None, typer.Option(
              metavar="DIR", help="Store directory (default: $WEBI_HOME/node/store, the node's).")] = None,
          host: Annotated[str, typer.Option(metavar="HOST", help="Interface to listen on.")] = "127.0.0.1",
          port: Annotated[int, typer.Option(
              metavar="PORT", help="Port to listen on (5001 is Kubo's RPC port).")] = 5001,
          token: TokenOption = None,
          max_upload_mb: Annotated[int, typer.Option(metavar="MIB", help="Largest upload accepted, in MiB.")] = 4096,
          ) -> None:
    """Serve a local store over HTTP, as Kubo and a gateway do.

    The Kubo RPC subset is under /api/v0, a trustless gateway under /ipfs. Off 127.0.0.1 a --token
    is required: writes without one are open to anyone who can reach the port.
    """
    import uvicorn

    from marketplace.storage.app import create_store_app
    from marketplace.storage.local import LocalStore
    from marketplace.storage.rpc_api import StoreApiSettings

    context: CliContext = ctx.obj
    if token is None and host not in ("127.0.0.1", "localhost", "::1"):
        raise ConfigError(f"refusing to serve writes on {host} without a token: set --token or WEBI_STORE_TOKEN")
    store = LocalStore(root or context.webi_home.store)
    settings = StoreApiSettings(token=token, max_upload_bytes=max_upload_mb * 1024 * 1024)
    context.console.print(f"serving {store.root}: RPC http://{host}:{port}/api/v0, gateway http://{host}:{port}/ipfs"
                          + ("" if token else " (writes open: no token)"), highlight=False, soft_wrap=True)
    uvicorn.run(create_store_app(store, settings), host=host, port=port, log_level="warning")
