"""``webi store serve``: the store's RPC API and gateway as one app, built from its parts.

The marketplace node mounts the same two routers into its own app; this factory is for running
the store alone (and for tests).
"""

from __future__ import annotations

from fastapi import FastAPI

from marketplace.storage.gateway_api import gateway_router
from marketplace.storage.local import LocalStore
from marketplace.storage.rpc_api import StoreApiSettings, rpc_router


def create_store_app(store: LocalStore, settings: StoreApiSettings) -> FastAPI:
    app = FastAPI(title="WEBI content store",
                  description="A Kubo RPC subset under /api/v0 and a trustless gateway under /ipfs.")
    app.include_router(rpc_router(store, settings), prefix="/api/v0", tags=["Kubo RPC"])
    app.include_router(gateway_router(store), prefix="/ipfs", tags=["gateway"])

    @app.get("/healthz", tags=["health"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
