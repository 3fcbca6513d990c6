"""The embedded store: a blockstore directory with pins and garbage collection.

Layout under ``root``: ``blocks/`` (see ``FileBlockstore``), ``pins/<cid>`` (one empty file per
recursive pin) and ``lock`` (a file lock: writes hold it shared, garbage collection exclusive, so a
collection never deletes the blocks of an add that has not pinned its root yet, in this process or
another one sharing the directory).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from marketplace.errors import ContentError, ContentNotFoundError
from marketplace.storage import reader
from marketplace.storage.blockstore import FileBlockstore
from marketplace.storage.car import CarReader
from marketplace.storage.cid import Cid
from marketplace.storage.importer import Added, Importer, Progress
from marketplace.storage.store import ContentStore

log = logging.getLogger(__name__)

CAR_IMPORT = "CAR import"  # the source a block of an imported CAR is named by when it does not match its CID


@dataclass(frozen=True)
class Collected:
    """What one garbage collection removed."""

    blocks: int
    bytes: int


class LocalStore(ContentStore):
    """Content in a directory on this machine: the marketplace node's store and the CLI's default."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blocks = FileBlockstore(root)
        (root / "pins").mkdir(exist_ok=True)
        self.name = f"local store {root}"

    def get_block(self, cid: Cid) -> bytes:
        return self.blocks.get(cid)

    def has_block(self, cid: Cid) -> bool:
        return self.blocks.has(cid)

    def put_block(self, cid: Cid, data: bytes) -> None:
        with self._lock(fcntl.LOCK_SH):
            self.blocks.put(cid, data)

    def add_path(self, path: Path, *, recursive: bool = False, pin: bool = True,
                 progress: Progress | None = None, hidden: bool = False) -> Added:
        with self._lock(fcntl.LOCK_SH):
            added = self.importer(progress, hidden=hidden).add_path(path, recursive=recursive)
            if pin:
                self.pin(added.cid, check=False)
        return added

    def add_stream(self, stream: BinaryIO, *, pin: bool = True, progress: Progress | None = None,
                   name: str = "") -> Added:
        with self._lock(fcntl.LOCK_SH):
            added = self.importer(progress).add_stream(stream, name)
            if pin:
                self.pin(added.cid, check=False)
        return added

    def importer(self, progress: Progress | None = None, on_added: Callable[[Added], None] | None = None,
                 hidden: bool = False) -> Importer:
        """An importer writing into this store; hold ``writing()`` around its use and pin the roots."""
        return Importer(self._sink, progress=progress, on_added=on_added, hidden=hidden)

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Keeps garbage collection out while unpinned blocks are being written."""
        with self._lock(fcntl.LOCK_SH):
            yield

    def pin(self, cid: Cid, *, check: bool = True) -> None:
        """Pins ``cid`` once every block of its DAG is here and intact; ``ContentError`` names a missing one.

        ``check=False`` is for roots this store has just written itself (an add): reading a
        whole DAG back to pin it would double the cost of adding.
        """
        if check:
            for _ in reader.walk(self.get_block, cid):
                pass
        self._pin_file(cid).touch()

    def unpin(self, cid: Cid) -> None:
        path = self._pin_file(cid)
        if not path.exists():
            raise ContentNotFoundError(f"{cid} is not pinned in {self.name}")
        path.unlink()

    def pins(self) -> list[Cid]:
        return sorted((Cid.parse(path.name) for path in (self.root / "pins").iterdir()), key=str)

    def import_car(self, stream: BinaryIO, *, pin_roots: bool = True) -> list[Cid]:
        with self._lock(fcntl.LOCK_SH):
            car = CarReader(stream, source=CAR_IMPORT)
            for cid, block in car:
                self.blocks.put(cid, block, hashed=True)
            if pin_roots:
                for root in car.roots:
                    self.pin(root)
        return car.roots

    def gc(self) -> Collected:
        """Deletes every block no pinned DAG reaches.

        A pinned DAG with a missing or damaged block stops the collection before anything is
        deleted: without that block, what lies under it cannot be told apart from garbage.
        """
        with self._lock(fcntl.LOCK_EX):
            keep: set[Cid] = set()
            for root in self.pins():
                try:
                    keep.update(cid.to_v1() for cid, _ in reader.walk(self.get_block, root))
                except ContentError as error:
                    raise ContentError(f"garbage collection stopped, pinned {root} is incomplete: {error}") from None
            removed = freed = 0
            for cid in list(self.blocks):
                if cid.to_v1() not in keep:
                    path = self.blocks.path_of(cid)
                    freed += path.stat().st_size
                    path.unlink()
                    removed += 1
        log.info("garbage collection removed %d blocks (%d bytes)", removed, freed)
        return Collected(removed, freed)

    def _sink(self, cid: Cid, data: bytes) -> None:
        self.blocks.put(cid, data, hashed=True)

    def _pin_file(self, cid: Cid) -> Path:
        return self.root / "pins" / str(cid.to_v1())

    @contextlib.contextmanager
    def _lock(self, mode: int) -> Iterator[None]:
        with (self.root / "lock").open("a") as handle:
            fcntl.flock(handle, mode)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
