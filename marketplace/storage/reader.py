"""Reading UnixFS DAGs through any block source: file bytes, paths, listings, stats, whole-DAG walks.

Every function takes ``get_block``, which must return bytes already checked against their CID
(all stores' ``get_block`` do). Files stream part by part, so reading a 1 GB file holds one block
at a time plus one list of links per tree level.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from marketplace.errors import ContentError, ContentNotFoundError
from marketplace.storage import unixfs
from marketplace.storage.cid import RAW, Cid
from marketplace.storage.dagpb import decode_node
from marketplace.storage.unixfs import NodeType

GetBlock = Callable[[Cid], bytes]
_MAX_DEPTH = 64


@dataclass(frozen=True, slots=True)
class Stat:
    """What a CID is: ``kind`` is ``file`` or ``directory``; ``size`` the file bytes, or the entries' sum."""

    cid: Cid
    kind: str
    size: int
    cumulative_size: int


@dataclass(frozen=True, slots=True)
class DirEntry:
    name: str
    cid: Cid
    tsize: int


def links_of(cid: Cid, block: bytes) -> list[Cid]:
    """The CIDs a block links to (none for raw blocks): what DAG walks and garbage collection follow."""
    if cid.codec == RAW:
        return []
    return [link.cid for link in decode_node(block).links]


def walk(get_block: GetBlock, root: Cid) -> Iterator[tuple[Cid, bytes]]:
    """Every block of the DAG under ``root`` once, depth first in link order (CAR ``order=dfs``)."""
    seen: set[Cid] = set()
    stack = [root]
    while stack:
        cid = stack.pop()
        if cid in seen:
            continue
        seen.add(cid)
        block = get_block(cid)
        yield cid, block
        stack.extend(reversed(links_of(cid, block)))


def resolve(get_block: GetBlock, root: Cid, path: str) -> tuple[Cid, list[tuple[Cid, bytes]]]:
    """The CID at ``path`` (``a/b.txt``) under directory ``root``, and the blocks passed on the way."""
    cid, trail = root, []
    for name in (part for part in path.split("/") if part):
        block = get_block(cid)
        trail.append((cid, block))
        node = unixfs.decode(cid, block)
        if node.type != NodeType.DIRECTORY:
            raise ContentNotFoundError(f"{root}/{path}: {cid} is not a directory, it has no entry {name!r}")
        match = next((link for link in node.links if link.name == name), None)
        if match is None:
            raise ContentNotFoundError(f"{root}/{path}: no entry {name!r} in {cid}")
        cid = match.cid
    return cid, trail


def read_file(get_block: GetBlock, cid: Cid) -> Iterator[bytes]:
    """The bytes of the file at ``cid``, one part at a time, each checked against its parent's sizes."""
    yield from _read(get_block, cid, None, 0)


def _read(get_block: GetBlock, cid: Cid, expected: int | None, depth: int) -> Iterator[bytes]:
    if depth > _MAX_DEPTH:
        raise ContentError(f"{cid}: file DAG deeper than {_MAX_DEPTH} levels")
    node = unixfs.decode(cid, get_block(cid))
    if node.type == NodeType.DIRECTORY:
        raise ContentError(f"{cid} is a directory, not a file")
    if expected is not None and node.filesize != expected:
        raise ContentError(f"{cid} holds {node.filesize} bytes where its parent says {expected}")
    if node.data:
        yield node.data
    for link, size in zip(node.links, node.blocksizes, strict=True):
        yield from _read(get_block, link.cid, size, depth + 1)


def list_directory(get_block: GetBlock, cid: Cid) -> list[DirEntry]:
    node = unixfs.decode(cid, get_block(cid))
    if node.type != NodeType.DIRECTORY:
        raise ContentError(f"{cid} is a file, not a directory")
    return [DirEntry(link.name, link.cid, link.tsize) for link in node.links]


def stat(get_block: GetBlock, cid: Cid) -> Stat:
    """From the root block alone: no need to fetch a whole DAG to know its size."""
    block = get_block(cid)
    node = unixfs.decode(cid, block)
    kind = "directory" if node.type == NodeType.DIRECTORY else "file"
    cumulative = len(block) + sum(link.tsize for link in node.links)
    return Stat(cid, kind, node.filesize, cumulative)


def write_tree(get_block: GetBlock, cid: Cid, destination: Path) -> int:
    """Writes the file or directory at ``cid`` to ``destination``; returns the bytes written.

    Each file goes to a temporary name beside its destination first, so a failure mid-way (a bad
    block, a lost peer) never leaves a truncated file under the real name.
    """
    node = unixfs.decode(cid, get_block(cid))
    if node.type == NodeType.DIRECTORY:
        destination.mkdir(parents=True, exist_ok=True)
        written = 0
        for entry in node.links:
            if entry.name in ("", ".", "..") or "/" in entry.name or "\\" in entry.name or "\0" in entry.name:
                raise ContentError(f"{cid} has an unsafe entry name {entry.name!r}; refused")
            written += write_tree(get_block, entry.cid, destination / entry.name)
        return written
    partial = destination.with_name(f".{destination.name}.partial")
    written = 0
    try:
        with partial.open("wb") as out:
            for part in read_file(get_block, cid):
                out.write(part)
                written += len(part)
        os.replace(partial, destination)
    finally:
        partial.unlink(missing_ok=True)
    return written
