"""Blocks on disk: one file per block under ``blocks/<2 chars>/<cid>``, written atomically.

Sharding by two characters of the CID keeps any one directory small (1,024 folders). A block is
written to a temporary file and renamed into place, so a crash leaves either the whole block or
none; a block damaged later on disk fails its hash check on read and is reported, never served.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from marketplace.errors import ContentNotFoundError
from marketplace.storage.cid import Cid

log = logging.getLogger(__name__)
# A temporary block file this old belongs to no live write: writes take milliseconds.
_STALE_SECONDS = 600


class FileBlockstore:
    """A directory of verified blocks. Safe for concurrent writers (each write is one rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blocks").mkdir(parents=True, exist_ok=True)

    def path_of(self, cid: Cid) -> Path:
        text = str(cid.to_v1())
        return self.root / "blocks" / text[-3:-1] / text

    def has(self, cid: Cid) -> bool:
        return self.path_of(cid).exists()

    def get(self, cid: Cid) -> bytes:
        """The block's bytes, checked against ``cid`` (``BlockMismatchError`` when the disk copy is damaged)."""
        path = self.path_of(cid)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ContentNotFoundError(f"block {cid} is not in the local store") from None
        return cid.verify(data, f"local store ({path})")

    def put(self, cid: Cid, data: bytes, *, hashed: bool = False) -> None:
        """Stores ``data`` under ``cid`` after checking it; a block already present is left as it is.

        ``hashed=True`` skips the check where the caller has just computed ``cid`` from ``data``
        (the importer): hashing twice would cost a third of the add throughput.
        """
        if not hashed:
            cid.verify(data, "a write to the local store")
        path = self.path_of(cid)
        if path.exists():
            return
        path.parent.mkdir(exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def delete(self, cid: Cid) -> None:
        self.path_of(cid).unlink(missing_ok=True)

    def __iter__(self) -> Iterator[Cid]:
        """Every stored block's CID; temporary files an old crash left behind are removed on the way."""
        stale = time.time() - _STALE_SECONDS
        for shard in sorted((self.root / "blocks").iterdir()):
            for entry in shard.iterdir():
                if entry.name.startswith(".tmp-"):
                    if entry.stat().st_mtime < stale:
                        log.info("removing a partial block write %s", entry)
                        entry.unlink(missing_ok=True)
                    continue
                yield Cid.parse(entry.name)
