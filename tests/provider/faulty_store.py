"""A real store server whose selected CIDs hang or answer 504, and which records every CID asked for.

It is the node's own store app (``create_store_app``) behind a small raw-ASGI layer, served by
uvicorn on 127.0.0.1: requests for other CIDs get the real answers. A hanging request is held
until the client gives up (``http.disconnect``), like a gateway that accepted the connection and
never answered.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from marketplace.storage.app import create_store_app
from marketplace.storage.local import LocalStore
from marketplace.storage.rpc_api import StoreApiSettings
from tests.support.servers import serve


@dataclass
class FaultyStore:
    store: LocalStore
    hang: set[str] = field(default_factory=set)
    fail: set[str] = field(default_factory=set)
    asked: list[str] = field(default_factory=list)  # the ``arg`` (CID) of every request, in order
    url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._app = create_store_app(self.store, StoreApiSettings())

    def asked_for(self, cids: set[str]) -> list[str]:
        with self._lock:
            return [cid for cid in self.asked if cid in cids]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        arg = parse_qs(scope.get("query_string", b"").decode()).get("arg", [""])[0]
        with self._lock:
            self.asked.append(arg)
        if arg in self.hang:
            while (await receive())["type"] != "http.disconnect":
                pass  # the request body, then nothing until the client gives up
            return
        if arg in self.fail:
            await send({"type": "http.response.start", "status": 504,
                        "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"gateway timeout"})
            return
        await self._app(scope, receive, send)


@contextmanager
def faulty_store(store: LocalStore) -> Iterator[FaultyStore]:
    faulty = FaultyStore(store)
    with serve(faulty) as url:  # type: ignore[arg-type]  # any ASGI app
        faulty.url = url
        yield faulty
