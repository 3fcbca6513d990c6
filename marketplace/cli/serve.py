"""``webi serve``: the marketplace node (indexer, REST API, dashboard, content store) on one port."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from marketplace.cli.context import CliContext


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(metavar="HOST", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="WEBI_NODE_PORT", metavar="PORT", help="Port to listen on.")] = 8000,
    database: Annotated[
        str | None,
        typer.Option(
            envvar="WEBI_NODE_DATABASE", metavar="FILE|URL",
            help="SQLite file or PostgreSQL URL (default: $WEBI_HOME/node/index.db)."
        ),
    ] = None,
    store_dir: Annotated[
        Path | None,
        typer.Option(envvar="WEBI_NODE_STORE", metavar="DIR",
                     help="Content store folder (default: $WEBI_HOME/node/store)."),
    ] = None,
    confirmations: Annotated[int, typer.Option(metavar="BLOCKS", help="Blocks to wait before indexing a block.")] = 0,
    deployments: Annotated[Path | None, typer.Option(metavar="DIR", help="Folder of deployment files.")] = None,
    poll_interval: Annotated[
        float, typer.Option(envvar="WEBI_NODE_POLL_INTERVAL", metavar="SECONDS", min=0.05,
                            help="How often the indexer asks the chain for new blocks.")
    ] = 1.0,
    rpc_timeout: Annotated[
        float, typer.Option(envvar="WEBI_NODE_RPC_TIMEOUT", metavar="SECONDS", min=0.1,
                            help="How long one request to the chain may take.")
    ] = 10.0,
    connect_wait: Annotated[
        float, typer.Option(envvar="WEBI_NODE_CONNECT_WAIT", metavar="SECONDS", min=0,
                            help="How long to wait at start-up for a chain that does not answer yet.")
    ] = 120.0,
    chain_stale: Annotated[
        float, typer.Option(envvar="WEBI_NODE_CHAIN_STALE", metavar="SECONDS", min=0.1,
                            help="/healthz reports the chain down (503) after this long without an answer "
                                 "(at least 3 poll intervals).")
    ] = 10.0,
    public_url: Annotated[
        str | None, typer.Option(envvar="WEBI_NODE_PUBLIC_URL", metavar="URL",
                                 help="The node's public origin, which wallets sign in for "
                                      "(default: http://HOST:PORT).")
    ] = None,
    public_rpc_url: Annotated[
        str | None, typer.Option(envvar="WEBI_NODE_PUBLIC_RPC_URL", metavar="URL",
                                 help="The chain's JSON-RPC URL the web app offers wallets that add the chain "
                                      "(default: --rpc-url).")
    ] = None,
) -> None:
    """Run the node: indexer, API, dashboard, web app and store.

    Served: /v1 REST (docs at /docs), the dashboard at /, the web app at /app, /api/v0 and /ipfs, /healthz,
    /metrics.
    Store writes need the bearer token in $WEBI_STORE_TOKEN when it is set; without it writes are
    open, which suits 127.0.0.1 only.
    """
    import uvicorn  # the server and the node's app (FastAPI, web3): only for the command that serves

    from marketplace.node import NodeSettings, create_node_app

    context: CliContext = ctx.obj
    settings = NodeSettings(
        rpc_url=context.chain_url(),
        deployments_dir=deployments,
        database=database or str(context.home / "node" / "index.db"),
        store_dir=store_dir or context.webi_home.store,
        confirmations=confirmations,
        poll_interval_s=poll_interval,
        rpc_timeout_s=rpc_timeout,
        connect_wait_s=connect_wait,
        chain_stale_s=chain_stale,
        public_rpc_url=public_rpc_url,
        public_url=public_url or f"http://{host}:{port}",
    )
    app = create_node_app(settings)
    context.console.print(f"WEBI node on http://{host}:{port}/ (API docs at /docs, web app at /app)")
    uvicorn.run(app, host=host, port=port, log_level="warning")
