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
from typing import Annotated

import typer
from rich.table import Table

from marketplace.cli.context import CliContext
from marketplace.cli.progress import size_of, transfer_progress
from marketplace.errors import ConfigError, ContentError
from marketplace.home import DEFAULT_STORE
from marketplace.storage import ContentStore, open_store
from marketplace.storage.cid import Cid
from marketplace.storage.local import LocalStore
from marketplace.storage.rpc_api import split_ipfs_path

app = typer.Typer(help="Add, read, export and serve content by CID (IPFS-compatible).", no_args_is_help=True)

StoreOption = Annotated[str | None, typer.Option("--store", envvar="WEBI_STORE",
                                                 help="Kubo RPC URL, directory, or gateway+URL. "
                                                      f"Default: the node, {DEFAULT_STORE}.")]
TokenOption = Annotated[str | None, typer.Option("--token", envvar="WEBI_STORE_TOKEN",
                                                 help="Bearer token for a node's write API.")]


def _open(ctx: typer.Context, store: str | None, token: str | None) -> ContentStore:
    return open_store(store or DEFAULT_STORE, token=token)


@app.command()
def add(ctx: typer.Context, path: Path,
        recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Add a directory tree.")] = False,
        only_hash: Annotated[bool, typer.Option("--only-hash", "-n", help="Compute the CID, store nothing.")] = False,
        pin: Annotated[bool, typer.Option(help="Pin the added content.")] = True,
        store: StoreOption = None, token: TokenOption = None) -> None:
    """Adds a file (or a directory with -r) and prints its CID, the one `ipfs add --cid-version=1` gives."""
    if not path.exists():
        raise ConfigError(f"{path} does not exist")
    with transfer_progress(f"adding {path.name}", size_of(path)) as progress:
        if only_hash:
            added = ContentStore.hash_path(path, recursive=recursive, progress=progress)
        else:
            added = _open(ctx, store, token).add_path(path, recursive=recursive, pin=pin, progress=progress)
    ctx.obj.console.print(str(added.cid), highlight=False, soft_wrap=True)


@app.command()
def cat(ctx: typer.Context, target: Annotated[str, typer.Argument(help="CID or CID/path")],
        store: StoreOption = None, token: TokenOption = None) -> None:
    """Writes a file's bytes to stdout, each block checked against its CID."""
    cid, path = split_ipfs_path(target)
    out = sys.stdout.buffer
    for part in _open(ctx, store, token).cat(cid, path):
        out.write(part)
    out.flush()


@app.command()
def get(ctx: typer.Context, target: Annotated[str, typer.Argument(help="CID or CID/path")],
        output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the file or directory.")],
        store: StoreOption = None, token: TokenOption = None) -> None:
    """Writes a file or directory tree to OUTPUT; a file is only renamed into place once complete."""
    cid, path = split_ipfs_path(target)
    if output.exists() and output.is_file():
        raise ConfigError(f"{output} exists; choose another --output or remove it")
    written = _open(ctx, store, token).get(cid, output, path)
    ctx.obj.console.print(f"wrote {written} bytes to {output}", highlight=False, soft_wrap=True)


@app.command("ls")
def list_directory(ctx: typer.Context, target: Annotated[str, typer.Argument(help="CID or CID/path")],
                   store: StoreOption = None, token: TokenOption = None) -> None:
    """Lists a directory's entries."""
    cid, path = split_ipfs_path(target)
    table = Table("name", "size", "cid", box=None)
    for entry in _open(ctx, store, token).ls(cid, path):
        table.add_row(entry.name, str(entry.tsize), str(entry.cid))
    ctx.obj.console.print(table)


@app.command()
def stat(ctx: typer.Context, target: Annotated[str, typer.Argument(help="CID or CID/path")],
         store: StoreOption = None, token: TokenOption = None) -> None:
    """Says what a CID is (file or directory) and how big."""
    cid, path = split_ipfs_path(target)
    info = _open(ctx, store, token).stat(cid, path)
    ctx.obj.console.print(f"{info.cid}  {info.kind}  {info.size} bytes  ({info.cumulative_size} with the DAG)",
                          highlight=False, soft_wrap=True)


@app.command("export")
def export_car(ctx: typer.Context, cid: str,
               output: Annotated[Path, typer.Option("--output", "-o", help="The .car file to write.")],
               store: StoreOption = None, token: TokenOption = None) -> None:
    """Writes the whole DAG under CID as a CAR v1 file."""
    partial = output.with_name(f".{output.name}.partial")
    try:
        with partial.open("wb") as out:
            size = _open(ctx, store, token).export_car(Cid.parse(cid), out)
        partial.replace(output)
    finally:
        partial.unlink(missing_ok=True)
    ctx.obj.console.print(f"wrote {size} bytes to {output}", highlight=False, soft_wrap=True)


@app.command("import")
def import_car(ctx: typer.Context, car: Path,
               pin: Annotated[bool, typer.Option(help="Pin the CAR's roots.")] = True,
               store: StoreOption = None, token: TokenOption = None) -> None:
    """Stores every block of a CAR file (each checked) and prints its roots."""
    if not car.is_file():
        raise ConfigError(f"{car} is not a file")
    with car.open("rb") as stream:
        roots = _open(ctx, store, token).import_car(stream, pin_roots=pin)
    for root in roots:
        ctx.obj.console.print(str(root), highlight=False, soft_wrap=True)


@app.command("pin")
def pin_content(ctx: typer.Context, cid: str, store: StoreOption = None, token: TokenOption = None) -> None:
    """Keeps CID's whole DAG through garbage collection."""
    _open(ctx, store, token).pin(Cid.parse(cid))
    ctx.obj.console.print(f"pinned {cid}", highlight=False, soft_wrap=True)


@app.command("unpin")
def unpin_content(ctx: typer.Context, cid: str, store: StoreOption = None, token: TokenOption = None) -> None:
    """Lets garbage collection remove CID's DAG."""
    _open(ctx, store, token).unpin(Cid.parse(cid))
    ctx.obj.console.print(f"unpinned {cid}", highlight=False, soft_wrap=True)


@app.command()
def gc(ctx: typer.Context, store: StoreOption = None) -> None:
    """Deletes the blocks of a local store that no pin keeps."""
    local = _open(ctx, store, None)
    if not isinstance(local, LocalStore):
        raise ContentError("gc works on a local store directory; a Kubo node collects with `ipfs repo gc`")
    collected = local.gc()
    ctx.obj.console.print(f"removed {collected.blocks} blocks, {collected.bytes} bytes", highlight=False,
                          soft_wrap=True)


@app.command()
def serve(ctx: typer.Context,
          root: Annotated[Path | None, typer.Option(
              help="Store directory. Default: $WEBI_HOME/node/store, the node's.")] = None,
          host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="Port (5001 is Kubo's RPC port).")] = 5001,
          token: TokenOption = None,
          max_upload_mb: Annotated[int, typer.Option(help="Largest upload accepted, in MiB.")] = 4096) -> None:
    """Serves a local store: Kubo RPC subset under /api/v0, trustless gateway under /ipfs."""
    import uvicorn

    from marketplace.storage.app import create_store_app
    from marketplace.storage.rpc_api import StoreApiSettings

    context: CliContext = ctx.obj
    if token is None and host not in ("127.0.0.1", "localhost", "::1"):
        raise ConfigError(f"refusing to serve writes on {host} without a token: set --token or WEBI_STORE_TOKEN")
    store = LocalStore(root or context.webi_home.store)
    settings = StoreApiSettings(token=token, max_upload_bytes=max_upload_mb * 1024 * 1024)
    context.console.print(f"serving {store.root}: RPC http://{host}:{port}/api/v0, gateway http://{host}:{port}/ipfs"
                          + ("" if token else " (writes open: no token)"), highlight=False, soft_wrap=True)
    uvicorn.run(create_store_app(store, settings), host=host, port=port, log_level="warning")
