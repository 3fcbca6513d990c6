"""The embedded store: round trips, damaged blocks refused, pins and garbage collection."""

from __future__ import annotations

import filecmp
import io
from pathlib import Path

import pytest

from marketplace.errors import BlockMismatchError, ContentError, ContentNotFoundError
from marketplace.storage import reader
from marketplace.storage.cid import DAG_PB, RAW, Cid
from marketplace.storage.dagpb import PBLink
from marketplace.storage.importer import CHUNK_SIZE
from marketplace.storage.local import LocalStore
from marketplace.storage.unixfs import directory_node
from tests.marketplace.storage.conftest import make_tree, pseudo_random


def same_tree(left: Path, right: Path) -> bool:
    compared = filecmp.dircmp(left, right, ignore=[".hidden"])
    if compared.left_only or compared.right_only or compared.diff_files or compared.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(left, right, compared.common_files, shallow=False)
    return not mismatch and not errors and all(same_tree(left / name, right / name) for name in compared.common_dirs)


def test_file_round_trip(local_store: LocalStore, tmp_path: Path) -> None:
    data = pseudo_random(3 * CHUNK_SIZE + 11)
    added = local_store.add_bytes(data)
    assert b"".join(local_store.cat(added.cid)) == data
    stat = local_store.stat(added.cid)
    assert (stat.kind, stat.size, stat.cumulative_size) == ("file", len(data), added.tsize)
    assert local_store.get(added.cid, tmp_path / "out.bin") == len(data)
    assert (tmp_path / "out.bin").read_bytes() == data


def test_directory_round_trip(local_store: LocalStore, tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "model")
    added = local_store.add_path(tree, recursive=True)
    assert added.cid in local_store.pins()
    local_store.get(added.cid, tmp_path / "copy")
    assert same_tree(tree, tmp_path / "copy")
    assert (tmp_path / "copy" / "empty").is_dir()
    assert not (tmp_path / "copy" / ".hidden").exists()
    assert [entry.name for entry in local_store.ls(added.cid)] == ["config.json", "empty", "tokenizer", "weights"]
    assert local_store.read_bytes(added.cid, "tokenizer/nested/émoji ✓.txt").startswith(b"unicode")
    with pytest.raises(ContentNotFoundError, match="no entry 'missing'"):
        local_store.read_bytes(added.cid, "tokenizer/missing")
    with pytest.raises(ContentError, match="is a directory"):
        local_store.read_bytes(added.cid, "tokenizer")
    with pytest.raises(ContentError, match="larger than the 10-byte limit"):
        local_store.read_bytes(added.cid, "config.json", limit=10)


def test_damaged_block_is_refused_and_get_leaves_no_file(local_store: LocalStore, tmp_path: Path) -> None:
    data = pseudo_random(2 * CHUNK_SIZE + 1)
    added = local_store.add_bytes(data)
    leaf = Cid.of(data[CHUNK_SIZE:2 * CHUNK_SIZE], RAW)
    path = local_store.blocks.path_of(leaf)
    damaged = bytearray(path.read_bytes())
    damaged[100] ^= 0xFF
    path.write_bytes(bytes(damaged))
    with pytest.raises(BlockMismatchError) as caught:
        b"".join(local_store.cat(added.cid))
    assert caught.value.cid == str(leaf)
    with pytest.raises(BlockMismatchError):
        local_store.get(added.cid, tmp_path / "out.bin")
    assert list(tmp_path.glob("*out.bin*")) == []


def test_put_block_refuses_bytes_that_do_not_match(local_store: LocalStore) -> None:
    cid = Cid.of(b"real", RAW)
    with pytest.raises(BlockMismatchError):
        local_store.put_block(cid, b"fake")
    assert not local_store.has_block(cid)
    local_store.put_block(cid, b"real")
    assert local_store.get_block(cid) == b"real"


def test_gc_keeps_pinned_and_removes_the_rest(local_store: LocalStore) -> None:
    kept = local_store.add_bytes(pseudo_random(CHUNK_SIZE + 1, seed=1))
    dropped = local_store.add_bytes(pseudo_random(CHUNK_SIZE + 1, seed=2), pin=False)
    collected = local_store.gc()
    assert collected.blocks == 3  # the dropped file's root and two leaves
    assert collected.bytes == dropped.tsize
    assert len(local_store.read_bytes(kept.cid)) == CHUNK_SIZE + 1
    with pytest.raises(ContentNotFoundError):
        local_store.read_bytes(dropped.cid)
    local_store.unpin(kept.cid)
    assert local_store.gc().blocks == 3
    assert list(local_store.blocks) == []
    with pytest.raises(ContentNotFoundError, match="not pinned"):
        local_store.unpin(kept.cid)


def test_gc_stops_before_deleting_when_a_pinned_dag_is_incomplete(local_store: LocalStore) -> None:
    data = pseudo_random(2 * CHUNK_SIZE)
    added = local_store.add_bytes(data)
    local_store.add_bytes(b"garbage", pin=False)
    local_store.blocks.delete(Cid.of(data[:CHUNK_SIZE], RAW))
    before = set(local_store.blocks)
    with pytest.raises(ContentError, match=f"pinned {added.cid} is incomplete"):
        local_store.gc()
    assert set(local_store.blocks) == before


def test_pin_needs_the_whole_dag(local_store: LocalStore) -> None:
    data = pseudo_random(2 * CHUNK_SIZE)
    added = local_store.add_bytes(data, pin=False)
    local_store.blocks.delete(Cid.of(data[CHUNK_SIZE:], RAW))
    with pytest.raises(ContentNotFoundError):
        local_store.pin(added.cid)
    assert local_store.pins() == []


def test_get_refuses_entry_names_that_escape(local_store: LocalStore, tmp_path: Path) -> None:
    inner = local_store.add_bytes(b"payload")
    block = directory_node([PBLink(inner.cid, "../escaped", inner.tsize)])
    evil = Cid.of(block, DAG_PB)
    local_store.put_block(evil, block)
    with pytest.raises(ContentError, match="unsafe entry name"):
        local_store.get(evil, tmp_path / "out")
    assert not (tmp_path / "escaped").exists()


def test_export_walks_each_block_once_depth_first(local_store: LocalStore, tmp_path: Path) -> None:
    zeros = local_store.add_bytes(bytes(5 * CHUNK_SIZE))  # five links to one leaf
    blocks = list(reader.walk(local_store.get_block, zeros.cid))
    assert [cid for cid, _ in blocks] == [zeros.cid, Cid.of(bytes(CHUNK_SIZE), RAW)]
    out = io.BytesIO()
    local_store.export_car(zeros.cid, out)
    assert len(out.getvalue()) < 2 * CHUNK_SIZE
