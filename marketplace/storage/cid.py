"""Content identifiers: the CIDv1 values Kubo prints, and the check that bytes match them.

WEBI names content with sha2-256 CIDs over two codecs: ``raw`` (file chunks) and ``dag-pb`` (UnixFS
files and directories). Parsing a CID a user or peer hands us goes through the ``multiformats``
library, which knows every multibase, CIDv0 and the codec tables. Inside the importer and the
stores, though, a CID is this small value type: the library spends about 0.8 ms building and
printing one CID (measured on 2026-11-24), more than hashing the 256 KiB block it names, so the
hot path encodes CIDv1 base32 itself (base32 is stdlib) and tests compare it with the library's.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

from marketplace.errors import BlockMismatchError, CidError

RAW = 0x55
DAG_PB = 0x70
SHA2_256 = 0x12
_CODEC_NAMES = {RAW: "raw", DAG_PB: "dag-pb"}
_DIGEST_SIZE = 32


@dataclass(frozen=True, slots=True)
class Cid:
    """A sha2-256 CID: its codec (``RAW`` or ``DAG_PB``), digest and CID version (0 or 1)."""

    codec: int
    digest: bytes
    version: int = 1

    def __post_init__(self) -> None:
        if self.codec not in _CODEC_NAMES:
            raise CidError(f"unsupported codec 0x{self.codec:x}: WEBI stores raw and dag-pb blocks only")
        if len(self.digest) != _DIGEST_SIZE:
            raise CidError(f"a sha2-256 digest has 32 bytes, not {len(self.digest)}")
        if self.version == 0 and self.codec != DAG_PB:
            raise CidError("a CIDv0 is always dag-pb")

    @classmethod
    def of(cls, data: bytes, codec: int) -> Cid:
        """The CIDv1 of ``data`` as a block of ``codec``."""
        return cls(codec, hashlib.sha256(data).digest())

    @classmethod
    def parse(cls, value: str | bytes | Cid) -> Cid:
        """A CID from its text (any multibase, v0 or v1) or binary form; ``CidError`` if it is not one."""
        if isinstance(value, Cid):
            return value
        from multiformats import CID  # the library's import is slow; only parsing needs it

        try:
            parsed = CID.decode(value.strip() if isinstance(value, str) else value)
        except Exception as error:  # the library raises several unrelated types for bad input
            raise CidError(f"not a CID: {_preview(value)} ({error})") from None
        if parsed.hashfun.name != "sha2-256":
            raise CidError(f"{parsed}: hash {parsed.hashfun.name} is not supported (sha2-256 only)")
        codec = parsed.codec.code
        if codec not in _CODEC_NAMES:
            raise CidError(f"{parsed}: codec {parsed.codec.name} is not supported (raw and dag-pb only)")
        return cls(codec, bytes(parsed.raw_digest), parsed.version)

    @property
    def codec_name(self) -> str:
        return _CODEC_NAMES[self.codec]

    @property
    def multihash(self) -> bytes:
        return bytes((SHA2_256, _DIGEST_SIZE)) + self.digest

    def __bytes__(self) -> bytes:
        """The binary CID, as it appears in dag-pb links and CAR sections."""
        if self.version == 0:
            return self.multihash
        return bytes((1, self.codec)) + self.multihash

    def __str__(self) -> str:
        """CIDv1 in base32 (``bafy...``/``bafk...``), CIDv0 in base58btc (``Qm...``), as Kubo prints them."""
        if self.version == 0:
            from multiformats import CID

            return str(CID.decode(bytes(self)))
        return "b" + base64.b32encode(bytes(self)).decode("ascii").rstrip("=").lower()

    def __repr__(self) -> str:
        return f"Cid({self})"

    def to_v1(self) -> Cid:
        return self if self.version == 1 else Cid(self.codec, self.digest)

    def matches(self, data: bytes) -> bool:
        return hashlib.sha256(data).digest() == self.digest

    def verify(self, data: bytes, source: str) -> bytes:
        """``data`` if it hashes to this CID; ``BlockMismatchError`` naming the CID and ``source`` if not."""
        if not self.matches(data):
            raise BlockMismatchError(str(self), source)
        return data


def read_cid(buffer: bytes | memoryview, offset: int = 0) -> tuple[Cid, int]:
    """The binary CID starting at ``offset`` and the offset just after it (CAR sections, dag-pb links)."""
    view = memoryview(buffer)
    if len(view) - offset >= 34 and view[offset] == SHA2_256 and view[offset + 1] == _DIGEST_SIZE:
        return Cid(DAG_PB, bytes(view[offset + 2:offset + 34]), 0), offset + 34
    if len(view) - offset < 36 or view[offset] != 1:
        raise CidError(f"not a binary CIDv1 at byte {offset}")
    codec, hash_code, size = view[offset + 1], view[offset + 2], view[offset + 3]
    if hash_code != SHA2_256 or size != _DIGEST_SIZE:
        raise CidError(f"unsupported multihash 0x{hash_code:x}/{size} at byte {offset} (sha2-256 only)")
    return Cid(codec, bytes(view[offset + 4:offset + 36])), offset + 36


def split_ipfs_path(arg: str) -> tuple[Cid, str]:
    """``/ipfs/<cid>/a/b``, ``<cid>/a/b`` or ``<cid>`` into the CID and the path under it."""
    text = arg.strip()
    text = text.removeprefix("/ipfs/").lstrip("/")
    head, _, rest = text.partition("/")
    return Cid.parse(head), rest


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
