"""``create_node_app``: the marketplace node as one FastAPI app, built from settings.

The indexer runs in a background thread for the app's lifetime (started and stopped by the
lifespan); the REST API, the web app's sign-in and uploads, the dashboard, the content store's Kubo
RPC subset and gateway, health and Prometheus metrics are routes of the same app.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
from starlette.types import ASGIApp, Receive, Scope, Send

from marketplace.chain.client import ChainClient
from marketplace.chain.deployment import Deployment, protocol_abis
from marketplace.indexer import Indexer, create_db
from marketplace.indexer.health import ChainWatch
from marketplace.node.api import api_router
from marketplace.node.cache import ResponseCache
from marketplace.node.dashboard import dashboard_router
from marketplace.node.group_queries import GroupQueries
from marketplace.node.group_results import GroupResults
from marketplace.node.health import Health, health_report
from marketplace.node.queries import Queries
from marketplace.node.sessions import Sessions
from marketplace.node.settings import NodeSettings
from marketplace.node.telemetry import Telemetry, TelemetryLimits
from marketplace.node.telemetry_api import staked_provider, telemetry_router
from marketplace.node.uploads import UploadLimits, uploads_router
from marketplace.node.verifier_queries import VerifierQueries
from marketplace.node.webapp import webapp_router
from marketplace.storage.gateway_api import gateway_router
from marketplace.storage.local import LocalStore
from marketplace.storage.rpc_api import StoreApiSettings, rpc_router

log = logging.getLogger(__name__)


class NodeMetrics:
    """The node's Prometheus metrics, in its own registry, read from the indexer at scrape time."""

    def __init__(self, indexer: Indexer) -> None:
        self.registry = CollectorRegistry()
        block = Gauge("webi_node_indexed_block", "Last block indexed", registry=self.registry)
        head = Gauge("webi_node_chain_head", "Chain head at the last indexer step", registry=self.registry)
        events = Gauge("webi_node_indexed_events", "Events indexed", registry=self.registry)
        reorgs = Gauge("webi_node_reorgs", "Reorganizations rewound since start", registry=self.registry)
        block.set_function(lambda: indexer.cursor[0])
        head.set_function(lambda: indexer.head)
        events.set_function(lambda: indexer.state.events)
        reorgs.set_function(lambda: indexer.reorgs)


# A browser's request carries 1 to 2 KiB of headers; nginx's default ceiling is 32 KiB.
MAX_HEADER_BYTES = 32 * 1024


class HeaderLimit:
    """Refuses a request whose headers (names and values) total over ``max_bytes`` with a JSON 431.

    @dev Warning: this bounds what a route sees, not what the server buffers. uvicorn's httptools parser (the
    node's, with uvloop) sets no ceiling of its own and hands the app a 16 MiB header: a node facing the
    internet wants a proxy's header limit in front as well.
    """

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_HEADER_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = sum(len(name) + len(value) for name, value in scope["headers"])
            if size > self.max_bytes:
                refused = JSONResponse({"detail": f"the request headers total {size:,} bytes: this node takes at "
                                                  f"most {self.max_bytes:,}"}, 431)
                await refused(scope, receive, send)
                return
        await self.app(scope, receive, send)


# py_ecc (imported by eth_account) raises the recursion limit to 100,000: a request body nested that deep would
# overflow the C stack inside json.loads and kill the node instead of raising RecursionError (a 400).
SAFE_RECURSION_LIMIT = 5_000


def create_node_app(settings: NodeSettings, *, clock: Callable[[], float] = time.time,
                    telemetry_limits: TelemetryLimits | None = None) -> FastAPI:
    """``clock``: the node's wall clock for heartbeats (their freshness, online or offline); tests pass their own."""
    sys.setrecursionlimit(min(sys.getrecursionlimit(), SAFE_RECURSION_LIMIT))
    client = ChainClient.connect(settings.rpc_url, protocol_abis(), timeout=settings.rpc_timeout_s,
                                 wait_s=settings.connect_wait_s)
    deployment = Deployment.load(client.chain_id, settings.deployments_dir)
    engine = create_db(settings.database)
    watch = ChainWatch(window_s=settings.lag_window_s)
    indexer = Indexer(engine, client, deployment, confirmations=settings.confirmations, watch=watch)
    store = LocalStore(settings.store_dir.expanduser())
    queries = Queries(engine, store, settings.page_size)
    verifiers = VerifierQueries(engine)
    groups = GroupQueries(engine, queries)
    results = GroupResults(settings.rpc_url, settings.rpc_timeout_s, deployment, store)
    metrics = NodeMetrics(indexer)
    telemetry = Telemetry(deployment.chain_id, deployment.market, lambda address: staked_provider(engine, address),
                          telemetry_limits or TelemetryLimits(), clock)
    stop = threading.Event()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        thread = threading.Thread(
            target=indexer.run, args=(stop, settings.poll_interval_s), name="indexer", daemon=True
        )
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=30)
            results.close()
            client.close()
            engine.dispose()

    app = FastAPI(
        title="WEBI marketplace node",
        lifespan=lifespan,
        description="Jobs, providers, verifiers and the ledger of a WEBI deployment, indexed from the chain; "
        "a content store (Kubo RPC subset and trustless gateway); a dashboard.",
    )
    app.state.indexer, app.state.queries, app.state.deployment = indexer, queries, deployment
    app.add_middleware(HeaderLimit)
    cache = ResponseCache(lambda: indexer.version)
    app.include_router(api_router(queries, verifiers, cache, groups, results), prefix="/v1", tags=["marketplace"])
    store_settings = StoreApiSettings(
        token=os.environ.get(settings.store_token_env) or None, max_upload_bytes=settings.max_upload_bytes
    )
    app.include_router(telemetry_router(telemetry), prefix="/v1", tags=["telemetry"])
    app.include_router(rpc_router(store, store_settings), prefix="/api/v0", tags=["Kubo RPC"])
    limits = UploadLimits(max_inputs_bytes=settings.max_inputs_bytes, max_model_bytes=settings.max_upload_bytes)
    sessions = Sessions(deployment.chain_id, origin=settings.public_url, session_ttl_s=settings.session_ttl_s)
    app.include_router(uploads_router(sessions, store, queries, limits), prefix="/v1", tags=["web app"])
    app.include_router(gateway_router(store), prefix="/ipfs", tags=["gateway"])
    app.include_router(dashboard_router(queries, verifiers, groups, deployment, telemetry), include_in_schema=False)
    app.include_router(webapp_router(deployment, settings), include_in_schema=False)

    @app.get("/healthz", tags=["health"], responses={503: {"model": Health, "description": "the chain is down"}})
    def health(response: Response) -> Health:
        """What the indexer last saw of the chain (never a request to it): 503 when the chain is unreachable."""
        report = health_report(indexer.progress(), watch.snapshot(), watch.clock(),
                               stale_after_s=settings.stale_after_s, rpc_url=settings.rpc_url,
                               chain_id=deployment.chain_id, market=deployment.market)
        if report.status == "down":
            response.status_code = 503
        return report

    @app.get("/metrics", tags=["health"])
    def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
