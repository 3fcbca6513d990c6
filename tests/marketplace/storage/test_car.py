"""CAR v1: round trips between stores; truncated, damaged and malformed archives refused."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from marketplace.errors import BlockMismatchError, ContentError, ContentTooLargeError
from marketplace.storage import reader
from marketplace.storage.car import CarBlockSource, CarReader, car_header, car_section, write_car
from marketplace.storage.cid import RAW, Cid
from marketplace.storage.importer import CHUNK_SIZE
from marketplace.storage.local import LocalStore
from tests.marketplace.storage.conftest import make_tree, pseudo_random


def exported(store: LocalStore, cid: Cid) -> bytes:
    out = io.BytesIO()
    store.export_car(cid, out)
    return out.getvalue()


def test_round_trip_into_another_store(local_store: LocalStore, tmp_path: Path) -> None:
    added = local_store.add_path(make_tree(tmp_path / "model"), recursive=True)
    car = exported(local_store, added.cid)
    other = LocalStore(tmp_path / "other")
    assert other.import_car(io.BytesIO(car)) == [added.cid]
    assert other.pins() == [added.cid]
    assert sorted(map(str, other.blocks)) == sorted(map(str, local_store.blocks))
    assert exported(other, added.cid) == car


def test_header_is_the_canonical_dag_cbor() -> None:
    root = Cid.of(b"", RAW)
    # a2 65 "roots" 81 d8 2a 58 25 00 <cid> 67 "version" 01, after its varint length
    assert car_header([root]) == bytes([0x3A, 0xA2, 0x65]) + b"roots" + bytes([0x81, 0xD8, 0x2A, 0x58, 0x25, 0x00]) \
        + bytes(root) + bytes([0x67]) + b"version" + bytes([0x01])


def test_truncated_car_is_refused(local_store: LocalStore, tmp_path: Path) -> None:
    added = local_store.add_bytes(pseudo_random(2 * CHUNK_SIZE + 5))
    car = exported(local_store, added.cid)
    other = LocalStore(tmp_path / "other")
    with pytest.raises(ContentError, match="truncated"):
        other.import_car(io.BytesIO(car[:-10]))
    assert other.pins() == []


def test_damaged_block_in_car_never_reaches_disk(local_store: LocalStore, tmp_path: Path) -> None:
    data = pseudo_random(CHUNK_SIZE + 5)
    added = local_store.add_bytes(data)
    car = bytearray(exported(local_store, added.cid))
    car[-3] ^= 0xFF  # inside the last leaf
    other = LocalStore(tmp_path / "other")
    with pytest.raises(BlockMismatchError) as caught:
        other.import_car(io.BytesIO(bytes(car)))
    assert caught.value.cid == str(Cid.of(data[CHUNK_SIZE:], RAW))
    assert not other.has_block(Cid.of(data[CHUNK_SIZE:], RAW))
    assert other.pins() == []


@pytest.mark.parametrize("junk", [b"", b"\x05hello", b"\x02\xa0\x00", bytes([0xFF] * 12)])
def test_not_a_car_is_refused(junk: bytes) -> None:
    with pytest.raises(ContentError):
        CarReader(io.BytesIO(junk))


def test_oversized_section_is_refused() -> None:
    big = pseudo_random(2048)
    car = car_header([Cid.of(big, RAW)]) + car_section(Cid.of(big, RAW), big)
    with pytest.raises(ContentTooLargeError, match="over 1024"):
        list(CarReader(io.BytesIO(car), max_section=1024))


def test_block_source_follows_depth_first_order_and_repeats(local_store: LocalStore) -> None:
    data = bytes(3 * CHUNK_SIZE) + pseudo_random(10)  # one zero chunk used three times
    added = local_store.add_bytes(data)
    out = io.BytesIO()
    local_store.export_car(added.cid, out)
    out.seek(0)
    source = CarBlockSource(CarReader(out))
    assert b"".join(reader.read_file(source.get_block, added.cid)) == data


def test_block_source_refuses_a_scrambled_car_past_its_buffer(local_store: LocalStore) -> None:
    data = pseudo_random(4 * CHUNK_SIZE)
    added = local_store.add_bytes(data)
    blocks = list(reader.walk(local_store.get_block, added.cid))
    out = io.BytesIO()
    write_car(out, [added.cid], reversed(blocks))  # the root last
    out.seek(0)
    source = CarBlockSource(CarReader(out), max_buffer=2 * CHUNK_SIZE)
    with pytest.raises(ContentError, match="out of order"):
        source.get_block(added.cid)
