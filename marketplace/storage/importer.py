"""Turning files and directories into blocks, exactly as ``ipfs add --cid-version=1`` does.

Kubo's defaults, which decide every CID: 262,144-byte chunks (each chunk full but the last), raw
leaves, a balanced tree of dag-pb file nodes with at most 174 links each, a file of one chunk being
that raw leaf itself, and directories as dag-pb nodes with name-sorted links. ``ipfs add -r`` skips
hidden entries (names starting with ``.``) unless told otherwise; so does ``Importer`` by default.

Memory stays bounded whatever the file size: chunks go to the sink as they are read, and only one
pending list of links per tree level is held (at most 174 links each). Hashing and storing run on
a small thread pool (hashlib and file writes release the GIL) while the next chunk is read.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from marketplace.errors import ContentError
from marketplace.storage import unixfs
from marketplace.storage.cid import DAG_PB, RAW, Cid
from marketplace.storage.dagpb import PBLink

CHUNK_SIZE = 262_144
MAX_LINKS = 174
# Kubo turns a directory into a HAMT shard once its links' names and CIDs pass this many bytes.
HAMT_THRESHOLD = 262_144
_IN_FLIGHT = 8

BlockSink = Callable[[Cid, bytes], None]
Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class Added:
    """One imported file or directory: ``size`` is its content bytes, ``tsize`` its whole DAG's bytes."""

    path: str
    cid: Cid
    size: int
    tsize: int
    is_directory: bool = False


class Importer:
    """Builds the UnixFS DAG of streams, byte strings and paths, handing every block to ``sink``.

    ``sink=None`` only computes CIDs (``--only-hash``). ``progress`` is called with each chunk's byte
    count; ``on_added`` with each file and directory as it completes (Kubo's add output lines).
    The sink may be called from worker threads, never twice at once for the same block.
    """

    def __init__(self, sink: BlockSink | None = None, *, hidden: bool = False, progress: Progress | None = None,
                 on_added: Callable[[Added], None] | None = None, workers: int | None = None,
                 chunk_size: int = CHUNK_SIZE, max_links: int = MAX_LINKS) -> None:
        # chunk_size and max_links other than Kubo's give other CIDs; tests shrink them to reach deep trees.
        self._chunk_size = chunk_size
        self._max_links = max_links
        self._sink = sink
        self._hidden = hidden
        self._progress = progress
        self._on_added = on_added
        # Writing new files is bound by the kernel's page allocation, which scales with cores.
        self._workers = workers or max(2, min(4, os.cpu_count() or 2))

    @property
    def workers(self) -> int:
        """Threads that hash and store chunks while the next one is read."""
        return self._workers

    def add_bytes(self, data: bytes, name: str = "") -> Added:
        import io

        return self.add_stream(io.BytesIO(data), name)

    def add_stream(self, stream: BinaryIO, name: str = "") -> Added:
        """Imports one file from ``stream``, read to its end in full chunks."""
        layers: list[list[tuple[PBLink, int]]] = [[]]
        pending: collections.deque[tuple[Future[Cid], int]] = collections.deque()
        total = 0
        with ThreadPoolExecutor(self._workers, thread_name_prefix="webi-import") as pool:
            while True:
                chunk = _read_full(stream, self._chunk_size)
                if chunk or total == 0:
                    pending.append((pool.submit(self._store, RAW, chunk), len(chunk)))
                    total += len(chunk)
                    if self._progress is not None and chunk:
                        self._progress(len(chunk))
                while pending and (len(pending) >= _IN_FLIGHT or len(chunk) < self._chunk_size):
                    future, size = pending.popleft()
                    self._push(layers, 0, PBLink(future.result(), "", size), size)
                if len(chunk) < self._chunk_size:
                    break
        link, size = self._finish(layers)
        added = Added(name, link.cid, size, link.tsize)
        if self._on_added is not None:
            self._on_added(added)
        return added

    def add_path(self, path: Path, *, recursive: bool = False) -> Added:
        """Imports a file, or (with ``recursive``) a directory tree; names in results are relative to its parent."""
        if path.is_symlink():
            raise ContentError(f"{path} is a symbolic link; WEBI adds regular files and directories only")
        if path.is_dir():
            if not recursive:
                raise ContentError(f"{path} is a directory; add it recursively (-r)")
            return self._add_directory(path, path.name)
        if not path.is_file():
            raise ContentError(f"{path} does not exist or is not a regular file")
        with path.open("rb") as stream:
            return self.add_stream(stream, path.name)

    def _add_directory(self, path: Path, name: str) -> Added:
        links: list[PBLink] = []
        size = 0
        with os.scandir(path) as entries:
            children = sorted(entries, key=lambda entry: entry.name.encode())
        for entry in children:
            if entry.name.startswith(".") and not self._hidden:
                continue
            child = Path(entry.path)
            if entry.is_symlink():
                raise ContentError(f"{child} is a symbolic link; WEBI adds regular files and directories only")
            if entry.is_dir():
                added = self._add_directory(child, f"{name}/{entry.name}")
            elif entry.is_file():
                with child.open("rb") as stream:
                    added = self.add_stream(stream, f"{name}/{entry.name}")
            else:
                raise ContentError(f"{child} is neither a regular file nor a directory")
            links.append(PBLink(added.cid, entry.name, added.tsize))
            size += added.size
        return self.add_directory(name, links, size)

    def add_directory(self, name: str, links: list[PBLink], size: int) -> Added:
        """The directory node over ``links`` (named entries already imported) whose files hold ``size`` bytes."""
        if len({link.name for link in links}) != len(links):
            raise ContentError(f"directory {name!r} has two entries with the same name")
        estimate = sum(len(link.name.encode()) + len(bytes(link.cid)) for link in links)
        if estimate > HAMT_THRESHOLD:
            raise ContentError(f"directory {name!r} has too many entries ({len(links)}): Kubo would shard it as a "
                               "HAMT, which WEBI does not build; split it into subdirectories")
        block = unixfs.directory_node(links)
        cid = self._store(DAG_PB, block)
        added = Added(name, cid, size, len(block) + sum(link.tsize for link in links), is_directory=True)
        if self._on_added is not None:
            self._on_added(added)
        return added

    def _store(self, codec: int, block: bytes) -> Cid:
        cid = Cid.of(block, codec)
        if self._sink is not None:
            self._sink(cid, block)
        return cid

    def _push(self, layers: list[list[tuple[PBLink, int]]], level: int, link: PBLink, size: int) -> None:
        layer = layers[level]
        layer.append((link, size))
        if len(layer) == self._max_links:
            parent = self._node(layer)
            layer.clear()
            if level + 1 == len(layers):
                layers.append([])
            self._push(layers, level + 1, *parent)

    def _finish(self, layers: list[list[tuple[PBLink, int]]]) -> tuple[PBLink, int]:
        """Closes the partial nodes bottom up; a level holding the only link left is the root."""
        level = 0
        while True:
            layer = layers[level]
            if level == len(layers) - 1 and len(layer) == 1:
                return layer[0]
            if layer:
                parent = self._node(layer)
                layer.clear()
                if level + 1 == len(layers):
                    layers.append([])
                layers[level + 1].append(parent)
            level += 1

    def _node(self, children: list[tuple[PBLink, int]]) -> tuple[PBLink, int]:
        links = [link for link, _ in children]
        sizes = [size for _, size in children]
        block = unixfs.file_node(links, sizes)
        cid = self._store(DAG_PB, block)
        return PBLink(cid, "", len(block) + sum(link.tsize for link in links)), sum(sizes)


def _read_full(stream: BinaryIO, size: int) -> bytes:
    """Up to ``size`` bytes, fewer only at the end: pipes and sockets return short reads."""
    chunk = stream.read(size)
    if len(chunk) == size or not chunk:
        return chunk
    parts = [chunk]
    got = len(chunk)
    while got < size:
        more = stream.read(size - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)
