"""Real HTTP servers for tests: an ASGI app under uvicorn on 127.0.0.1, in a thread, torn down after."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

from marketplace.chain.devnet import free_port


@contextlib.contextmanager
def serve(app: FastAPI, start_timeout: float = 15.0, lifespan: str = "off") -> Iterator[str]:
    """Runs ``app`` until the block ends; yields its base URL once it accepts connections.
    ``lifespan="on"`` runs the app's start-up and shut-down (the node's indexer thread)."""
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning", lifespan=lifespan,
                            ws="none")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
