"""The content store interface: one small set of operations that every backend offers.

Backends: ``LocalStore`` (a directory on this machine), ``KuboStore`` (any Kubo RPC API, ours or a
real IPFS node's) and ``GatewayStore`` (any trustless HTTP gateway; read-only). A backend provides
verified single-block reads, writes and pins; reading files, directories and stats is written once,
here, on top of ``get_block``, so every byte any backend returns has been checked against its CID.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Self

from marketplace.errors import ContentError
from marketplace.storage import reader
from marketplace.storage.car import write_car
from marketplace.storage.cid import Cid
from marketplace.storage.importer import Added, Importer, Progress
from marketplace.storage.reader import DirEntry, GetBlock, Stat


class ContentStore(ABC):
    """Content addressed by CID. Reads are verified; writes return the CID the bytes hash to."""

    name: str = "content store"

    # -- what a backend provides ---------------------------------------------------------------

    @abstractmethod
    def get_block(self, cid: Cid) -> bytes:
        """The block's bytes, checked against ``cid``; ``ContentNotFoundError`` when absent."""

    @abstractmethod
    def put_block(self, cid: Cid, data: bytes) -> None:
        """Stores one block after checking it against ``cid``."""

    @abstractmethod
    def add_path(self, path: Path, *, recursive: bool = False, pin: bool = True,
                 progress: Progress | None = None) -> Added:
        """Adds a file (or a directory with ``recursive``) and returns its root, as ``ipfs add`` would."""

    @abstractmethod
    def add_stream(self, stream: BinaryIO, *, pin: bool = True, progress: Progress | None = None) -> Added:
        """Adds one file read from ``stream``."""

    @abstractmethod
    def pin(self, cid: Cid) -> None:
        """Keeps the whole DAG under ``cid`` through garbage collection (fetching it if needed)."""

    @abstractmethod
    def unpin(self, cid: Cid) -> None:
        """Lets garbage collection take the DAG under ``cid`` unless another pin holds it."""

    @abstractmethod
    def pins(self) -> list[Cid]:
        """The pinned roots."""

    @abstractmethod
    def import_car(self, stream: BinaryIO, *, pin_roots: bool = True) -> list[Cid]:
        """Stores every block of a CAR stream (each verified) and returns its roots."""

    # -- written once for all backends ---------------------------------------------------------

    def close(self) -> None:  # noqa: B027 - a no-op default is the point: local stores hold nothing open
        """Releases connections; remote stores override it."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextlib.contextmanager
    def dag_reader(self, root: Cid) -> Iterator[GetBlock]:
        """A block source for reading the DAG under ``root``; remote stores stream it as one CAR."""
        yield self.get_block

    def add_bytes(self, data: bytes, *, pin: bool = True) -> Added:
        import io

        return self.add_stream(io.BytesIO(data), pin=pin)

    def resolve(self, cid: Cid, path: str = "") -> Cid:
        """The CID at ``path`` inside the directory ``cid`` (``cid`` itself for an empty path)."""
        return reader.resolve(self.get_block, cid, path)[0]

    def cat(self, cid: Cid, path: str = "") -> Iterator[bytes]:
        """The bytes of the file at ``cid`` (or at ``path`` under it), streamed and verified."""
        target = self.resolve(cid, path)
        with self.dag_reader(target) as get_block:
            yield from reader.read_file(get_block, target)

    def read_bytes(self, cid: Cid, path: str = "", limit: int | None = None) -> bytes:
        """A whole file in memory; ``ContentError`` past ``limit`` bytes (for manifests and specs)."""
        parts, size = [], 0
        for part in self.cat(cid, path):
            size += len(part)
            if limit is not None and size > limit:
                raise ContentError(f"{cid}/{path}: larger than the {limit}-byte limit for this read")
            parts.append(part)
        return b"".join(parts)

    def get(self, cid: Cid, destination: Path, path: str = "") -> int:
        """Writes the file or directory at ``cid`` to ``destination``; returns the bytes written."""
        target = self.resolve(cid, path)
        with self.dag_reader(target) as get_block:
            return reader.write_tree(get_block, target, destination)

    def stat(self, cid: Cid, path: str = "") -> Stat:
        return reader.stat(self.get_block, self.resolve(cid, path))

    def ls(self, cid: Cid, path: str = "") -> list[DirEntry]:
        return reader.list_directory(self.get_block, self.resolve(cid, path))

    def export_car(self, cid: Cid, out: BinaryIO) -> int:
        """Writes the DAG under ``cid`` as a CAR v1 (depth-first, each block once); returns its bytes."""
        with self.dag_reader(cid) as get_block:
            return write_car(out, [cid], reader.walk(get_block, cid))

    @staticmethod
    def hash_path(path: Path, *, recursive: bool = False, progress: Progress | None = None) -> Added:
        """The CID ``add_path`` would return, computed without storing anything (``--only-hash``)."""
        return Importer(progress=progress).add_path(path, recursive=recursive)
