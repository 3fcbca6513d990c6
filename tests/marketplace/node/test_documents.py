"""Documents the node shows inline (specs, evidence, metadata) come from a store anyone can write to:
a hostile one is an error on the page, never a crash of the node."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from marketplace.node.queries import Queries
from marketplace.output_json import MAX_DOCUMENT_DEPTH
from marketplace.storage.local import LocalStore


@pytest.fixture
def queries(tmp_path: Path) -> Iterator[tuple[Queries, LocalStore]]:
    store = LocalStore(tmp_path / "store")
    engine = create_engine(f"sqlite:///{tmp_path / 'index.sqlite'}")
    yield Queries(engine, store), store
    engine.dispose()


def test_a_document_nested_100000_deep_is_an_error_not_a_crash(queries: tuple[Queries, LocalStore]) -> None:
    """py_ecc (through web3) raises the recursion limit: json.loads on 100,000 levels then overflows the
    C stack and kills the process instead of raising. The depth is counted first."""
    service, store = queries
    deep = str(store.add_bytes(b"[" * 100_000 + b"]" * 100_000).cid)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(10**6)
    try:
        shown = service.document(deep)
    finally:
        sys.setrecursionlimit(limit)
    assert shown == {"error": f"nested 100000 levels deep, more than {MAX_DOCUMENT_DEPTH}"}
    fine = str(store.add_bytes(b'{"kind": "spec", "parameters": {"max_new_tokens": 8}}').cid)
    assert service.document(fine) == {"kind": "spec", "parameters": {"max_new_tokens": 8}}
    assert "error" in (service.document(str(store.add_bytes(b"\xff not utf-8").cid)) or {})
