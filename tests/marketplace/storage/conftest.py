"""Store fixtures: real directories, and a real WEBI store server on 127.0.0.1 for the HTTP clients."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from marketplace.storage.app import create_store_app
from marketplace.storage.kubo import KuboStore
from marketplace.storage.local import LocalStore
from marketplace.storage.rpc_api import StoreApiSettings
from tests.support.servers import serve

# A test value, not a secret: the served store only lives for one test.
TOKEN = "test-write-token"
UPLOAD_LIMIT = 32 * 1024 * 1024


@dataclass(frozen=True)
class Node:
    """A running store server: its URL and the local store behind it."""

    url: str
    store: LocalStore

    def client(self, token: str | None = TOKEN) -> KuboStore:
        return KuboStore(self.url, token=token)


def pseudo_random(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def make_tree(root: Path) -> Path:
    """A small model-like directory: nested folders, an empty one, a multi-chunk file, a hidden file."""
    (root / "weights").mkdir(parents=True)
    (root / "weights" / "model.safetensors").write_bytes(pseudo_random(700_000, seed=1))
    (root / "config.json").write_text('{"model_type": "bert"}\n')
    (root / "tokenizer" / "nested").mkdir(parents=True)
    (root / "tokenizer" / "vocab.txt").write_text("[PAD]\n[UNK]\nhello\n")
    (root / "tokenizer" / "nested" / "émoji ✓.txt").write_text("unicode names sort by their UTF-8 bytes\n")
    (root / "empty").mkdir()
    (root / ".hidden").write_text("skipped, as by ipfs add -r\n")
    return root


@pytest.fixture
def local_store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    store = LocalStore(tmp_path / "node-store")
    settings = StoreApiSettings(token=TOKEN, max_upload_bytes=UPLOAD_LIMIT)
    with serve(create_store_app(store, settings)) as url:
        yield Node(url, store)
