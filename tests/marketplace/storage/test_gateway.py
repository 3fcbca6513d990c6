"""The trustless gateway: what our server answers, and a client that trusts no gateway's bytes."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Response

from marketplace.errors import BlockMismatchError, ContentError, ContentNotFoundError
from marketplace.storage import open_store
from marketplace.storage.car import CarReader, car_header, car_section
from marketplace.storage.cid import RAW, Cid
from marketplace.storage.gateway import GatewayStore
from marketplace.storage.importer import CHUNK_SIZE
from marketplace.storage.local import LocalStore
from tests.marketplace.storage.conftest import Node, make_tree, pseudo_random
from tests.marketplace.storage.test_local import same_tree
from tests.support.servers import serve


def test_client_reads_files_and_trees(node: Node, tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "model")
    added = node.store.add_path(tree, recursive=True)
    with open_store(f"gateway+{node.url}") as gateway:
        assert isinstance(gateway, GatewayStore)
        data = gateway.read_bytes(added.cid, "weights/model.safetensors")
        assert data == (tree / "weights" / "model.safetensors").read_bytes()
        gateway.get(added.cid, tmp_path / "copy")
        assert same_tree(tree, tmp_path / "copy")
        with pytest.raises(ContentNotFoundError):
            gateway.get_block(Cid.of(b"absent", RAW))
        with pytest.raises(ContentError, match="read-only"):
            gateway.add_bytes(b"x")


def test_raw_and_car_responses(node: Node, tmp_path: Path) -> None:
    added = node.store.add_path(make_tree(tmp_path / "model"), recursive=True)
    config = node.store.resolve(added.cid, "config.json")
    raw = httpx.get(f"{node.url}/ipfs/{added.cid}/config.json", params={"format": "raw"})
    assert raw.status_code == 200
    assert raw.headers["content-type"] == "application/vnd.ipld.raw"
    assert "immutable" in raw.headers["cache-control"]
    assert config.matches(raw.content)
    by_accept = httpx.get(f"{node.url}/ipfs/{config}", headers={"Accept": "application/vnd.ipld.raw"})
    assert by_accept.content == raw.content

    car = httpx.get(f"{node.url}/ipfs/{added.cid}/weights", headers={"Accept": "application/vnd.ipld.car"})
    assert car.headers["content-type"].startswith("application/vnd.ipld.car")
    reader = CarReader(io.BytesIO(car.content))
    assert reader.roots == [added.cid]
    blocks = [cid for cid, _ in reader]  # every block verified as it is read
    assert blocks[0] == added.cid  # the path's blocks come first, so a client can check the path too
    assert node.store.resolve(added.cid, "weights/model.safetensors") in blocks

    page = httpx.get(f"{node.url}/ipfs/{added.cid}/tokenizer")
    assert page.headers["content-type"].startswith("text/html") and "vocab.txt" in page.text
    head = httpx.head(f"{node.url}/ipfs/{added.cid}/config.json")
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == len((tmp_path / "model" / "config.json").read_bytes())


@pytest.mark.parametrize(("path", "status"), [("not-a-cid", 400),
                                              (f"{Cid.of(b'absent', RAW)}", 404),
                                              (f"{Cid.of(b'', RAW)}?format=tar", 400)])
def test_errors_are_plain_4xx(node: Node, path: str, status: int) -> None:
    node.store.add_bytes(b"")
    answer = httpx.get(f"{node.url}/ipfs/{path}")
    assert answer.status_code == status
    assert answer.headers["content-type"].startswith("text/plain")


def lying_gateway(good: LocalStore, tamper: str) -> FastAPI:
    """A gateway that serves a tampered raw block, a CAR with a tampered block, or a CAR of other roots."""
    app = FastAPI()

    @app.get("/ipfs/{cid}")
    def get(cid: str, format: str) -> Response:
        wanted = Cid.parse(cid)
        if format == "raw":
            block = good.get_block(wanted)
            return Response(block[:-1] + b"?" if tamper == "raw" else block)
        out = io.BytesIO()
        good.export_car(wanted, out)
        car = bytearray(out.getvalue())
        if tamper == "car":
            car[-1] ^= 0x01
            return Response(bytes(car))
        other = Cid.of(b"other", RAW)
        return Response(car_header([other]) + car_section(other, b"other"))

    return app


@pytest.mark.parametrize("tamper", ["raw", "car", "roots"])
def test_a_lying_gateway_is_refused(tmp_path: Path, tamper: str) -> None:
    good = LocalStore(tmp_path / "good")
    data = pseudo_random(CHUNK_SIZE + 100)
    added = good.add_bytes(data)
    with serve(lying_gateway(good, tamper)) as url, GatewayStore(url) as gateway:
        if tamper == "raw":
            with pytest.raises(BlockMismatchError) as caught:
                gateway.get_block(added.cid)
            assert caught.value.cid == str(added.cid)
        elif tamper == "car":
            with pytest.raises(BlockMismatchError) as caught:
                gateway.get(added.cid, tmp_path / "out.bin")
            assert caught.value.cid == str(Cid.of(data[CHUNK_SIZE:], RAW))
            assert not (tmp_path / "out.bin").exists()
        else:
            with pytest.raises(ContentError, match="with roots"):
                gateway.read_bytes(added.cid)
