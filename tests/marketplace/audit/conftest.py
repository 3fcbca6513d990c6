"""Fixtures of the auditor's tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from fastapi import Body, FastAPI

from marketplace.audit import auditor as auditor_module
from marketplace.chain.devnet import Devnet
from marketplace.history import ChainEvent
from tests.support.servers import serve


@pytest.fixture
def dropping(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Makes the auditor's replay lose the events that match any predicate appended to the list
    (as a node that lost a log would serve it)."""
    predicates: list[Any] = []
    real = auditor_module.fetch_events  # type: ignore[attr-defined]

    def fetch(*args: Any, **kwargs: Any) -> Iterator[ChainEvent]:
        return (event for event in real(*args, **kwargs) if not any(drop(event) for drop in predicates))

    monkeypatch.setattr("marketplace.audit.auditor.fetch_events", fetch)
    yield predicates


@pytest.fixture
def pruned_node(devnet: Devnet) -> Iterator[PrunedNode]:
    """A JSON-RPC endpoint in front of the devnet that, like a pruned node, answers views only at
    blocks from ``keep_from`` on (``keep_from`` is set by the test); everything else passes through."""
    node = PrunedNode(devnet.anvil.rpc_url)
    app = FastAPI()

    @app.post("/")
    def rpc(body: Any = Body(...)) -> Any:  # noqa: B008  (FastAPI's way to take the raw JSON body)
        return [node.answer(item) for item in body] if isinstance(body, list) else node.answer(body)

    with serve(app) as url:
        node.url = url
        yield node


class PrunedNode:
    """Forwards JSON-RPC to ``upstream``, refusing ``eth_call`` at a block older than ``keep_from``."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.url = ""
        self.keep_from = 0
        self.refused = 0

    def answer(self, request: dict[str, Any]) -> Any:
        params = request.get("params") or []
        if request.get("method") == "eth_call" and len(params) > 1 and _block_number(params[1]) < self.keep_from:
            self.refused += 1
            return {"jsonrpc": "2.0", "id": request.get("id"),
                    "error": {"code": -32000, "message": "missing trie node (state is pruned)"}}
        return requests.post(self.upstream, json=request, timeout=30).json()


def _block_number(tag: Any) -> float:
    if isinstance(tag, str) and tag.startswith("0x"):
        return int(tag, 16)
    return float("inf")  # latest, pending, a block hash: the newest state, which a pruned node keeps
