"""The Kubo RPC client against our own server, over real HTTP: the same calls work on a Kubo node."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from marketplace.errors import (
    BlockMismatchError,
    ContentError,
    ContentNotFoundError,
    ContentTooLargeError,
    StoreUnavailableError,
)
from marketplace.storage.app import create_store_app
from marketplace.storage.cid import DAG_PB, RAW, Cid
from marketplace.storage.importer import CHUNK_SIZE, Importer
from marketplace.storage.kubo import KuboStore
from marketplace.storage.local import LocalStore
from marketplace.storage.rpc_api import StoreApiSettings
from tests.marketplace.storage.conftest import TOKEN, UPLOAD_LIMIT, Node, make_tree, pseudo_random
from tests.marketplace.storage.test_local import same_tree
from tests.support.servers import serve


def test_add_and_read_a_file(node: Node, tmp_path: Path) -> None:
    data = pseudo_random(3 * CHUNK_SIZE + 1)
    (tmp_path / "input.bin").write_bytes(data)
    progress: list[int] = []
    with node.client() as client:
        added = client.add_path(tmp_path / "input.bin", progress=progress.append)
        assert added.cid == Importer().add_bytes(data).cid
        assert sum(progress) == len(data)
        assert node.store.pins() == [added.cid]
        assert b"".join(client.cat(added.cid)) == data
        assert client.stat(added.cid).size == len(data)
        streamed = client.add_stream(io.BytesIO(data), pin=False)
        assert streamed.cid == added.cid


def test_add_and_get_a_directory(node: Node, tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "model")
    with node.client() as client:
        added = client.add_path(tree, recursive=True)
        assert added.cid == Importer().add_path(tree, recursive=True).cid
        client.get(added.cid, tmp_path / "copy")
        assert same_tree(tree, tmp_path / "copy")
        assert [entry.name for entry in client.ls(added.cid, "tokenizer")] == ["nested", "vocab.txt"]
        assert client.read_bytes(added.cid, "config.json") == (tree / "config.json").read_bytes()


def test_blocks_pins_and_car(node: Node, tmp_path: Path) -> None:
    with node.client() as client:
        assert client.version()["Version"].startswith("webi-")
        cid = Cid.of(b"one block", RAW)
        client.put_block(cid, b"one block")
        assert client.get_block(cid) == b"one block"
        with pytest.raises(BlockMismatchError):
            client.put_block(cid, b"another block")
        client.pin(cid)
        assert cid in client.pins()
        client.unpin(cid)
        assert cid not in client.pins()

        local = LocalStore(tmp_path / "local")
        added = local.add_path(make_tree(tmp_path / "model"), recursive=True)
        car = io.BytesIO()
        local.export_car(added.cid, car)
        car.seek(0)
        assert client.import_car(car) == [added.cid]
        assert added.cid in client.pins()
        again = io.BytesIO()
        client.export_car(added.cid, again)
        assert again.getvalue() == car.getvalue()


def test_unknown_and_malformed_cids_are_clear(node: Node) -> None:
    with node.client() as client:
        with pytest.raises(ContentNotFoundError, match="not in the local store"):
            client.get_block(Cid.of(b"nobody stored this", RAW))
        with pytest.raises(ContentNotFoundError):
            b"".join(client.cat(Cid.of(b"nobody stored this", DAG_PB)))
    answer = httpx.post(f"{node.url}/api/v0/block/get", params={"arg": "not-a-cid"})
    assert answer.status_code == 400
    assert answer.json()["Type"] == "error" and "not a CID" in answer.json()["Message"]


def test_writes_need_the_token_reads_do_not(node: Node) -> None:
    with node.client(token=None) as anonymous, node.client(token="wrong") as wrong:
        with pytest.raises(StoreUnavailableError, match="write token"):
            anonymous.add_bytes(b"data")
        with pytest.raises(StoreUnavailableError, match="HTTP 401"):
            wrong.pin(Cid.of(b"x", RAW))
        assert node.store.pins() == []
        with node.client() as client:
            added = client.add_bytes(b"public data")
        assert anonymous.read_bytes(added.cid) == b"public data"


def test_oversized_upload_is_refused(node: Node, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    with big.open("wb") as out:
        out.truncate(UPLOAD_LIMIT + 1)
    with node.client() as client:
        with pytest.raises(ContentTooLargeError, match="limit"):
            client.add_path(big)
        with big.open("rb") as stream, pytest.raises(ContentTooLargeError):  # no Content-Length: counted
            client.add_stream(stream)
    assert node.store.pins() == []
    huge_block = bytes(2 * 1024 * 1024 + 1)
    answer = httpx.post(f"{node.url}/api/v0/block/put", headers={"Authorization": f"Bearer {TOKEN}"},
                        files={"file": ("b", huge_block)})
    assert answer.status_code == 413


def test_server_refuses_import_options_it_does_not_follow(node: Node) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    answer = httpx.post(f"{node.url}/api/v0/add", params={"cid-version": "0"}, headers=auth,
                        files={"file": ("f", b"x")})
    assert answer.status_code == 400 and "cid-version=1" in answer.json()["Message"]
    answer = httpx.post(f"{node.url}/api/v0/add", headers=auth, files={"file": ("..%2Fescape", b"x")})
    assert answer.status_code == 400 and "unsafe path" in answer.json()["Message"]
    answer = httpx.post(f"{node.url}/api/v0/add", headers=auth, content=b"not multipart")
    assert answer.status_code == 400


def lying_node(good: LocalStore) -> FastAPI:
    """A node that answers add with a CID of other content and serves a tampered block."""
    app = FastAPI()

    @app.post("/api/v0/add")
    async def add(request: Request) -> Response:
        await request.body()
        fake = Importer().add_bytes(b"something else").cid
        return Response(f'{{"Name":"f","Hash":"{fake}","Size":"14"}}\n', media_type="application/x-ndjson")

    @app.post("/api/v0/block/get")
    def block_get(arg: str) -> Response:
        return Response(good.get_block(Cid.parse(arg)) + b"!", media_type="application/octet-stream")

    return app


def test_a_lying_node_is_caught(tmp_path: Path) -> None:
    good = LocalStore(tmp_path / "good")
    added = good.add_bytes(b"honest bytes")
    with serve(lying_node(good)) as url, KuboStore(url) as client:
        with pytest.raises(ContentError, match="hashes to"):
            client.add_bytes(b"honest bytes")
        with pytest.raises(BlockMismatchError) as caught:
            client.get_block(added.cid)
        assert caught.value.cid == str(added.cid)


def test_unreachable_node_is_one_clear_error() -> None:
    from marketplace.chain.devnet import free_port

    with KuboStore(f"http://127.0.0.1:{free_port()}") as client, pytest.raises(StoreUnavailableError, match="failed"):
        client.version()


def test_served_store_app_has_health_and_docs(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    with serve(create_store_app(store, StoreApiSettings())) as url:
        assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
        paths = httpx.get(f"{url}/openapi.json").json()["paths"]
        assert "/api/v0/add" in paths and "/ipfs/{cid}" in paths
        with KuboStore(url) as open_writes:  # no token configured: local use
            assert open_writes.add_bytes(b"x").cid == Importer().add_bytes(b"x").cid
