"""CAR v1 archives: whole DAGs in one stream, for moving content between stores and gateways.

Layout (ipld.io/specs/transport/car/carv1): a varint-prefixed dag-cbor header
``{"roots": [CID...], "version": 1}``, then sections ``varint(len) | CID | block``. Reading checks
every block against its CID as it arrives, and refuses a truncated stream, an oversized section
and a header that is not CAR v1, each with a ``ContentError`` that says which.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO

import dag_cbor
from multiformats import CID

from marketplace.errors import ContentError, ContentTooLargeError
from marketplace.storage.cid import Cid, read_cid
from marketplace.storage.dagpb import encode_varint

MAX_SECTION = 4 * 1024 * 1024  # Kubo refuses blocks over 2 MiB; twice that leaves room for any peer
_MAX_HEADER = 64 * 1024


def car_header(roots: Iterable[Cid]) -> bytes:
    header = dag_cbor.encode({"roots": [CID.decode(bytes(root)) for root in roots], "version": 1})
    return encode_varint(len(header)) + header


def car_section(cid: Cid, block: bytes) -> bytes:
    key = bytes(cid)
    return encode_varint(len(key) + len(block)) + key + block


def write_car(out: BinaryIO, roots: Iterable[Cid], blocks: Iterable[tuple[Cid, bytes]]) -> int:
    """Writes a CAR of ``blocks`` under ``roots`` to ``out``; returns the bytes written."""
    written = out.write(car_header(roots))
    for cid, block in blocks:
        written += out.write(car_section(cid, block))
    return written


def iter_car(roots: Iterable[Cid], blocks: Iterable[tuple[Cid, bytes]]) -> Iterator[bytes]:
    """The same bytes as ``write_car``, as a stream of pieces for an HTTP response."""
    yield car_header(roots)
    for cid, block in blocks:
        yield car_section(cid, block)


class CarReader:
    """Reads a CAR from a stream: ``roots`` after construction, then verified blocks by iterating."""

    def __init__(self, stream: BinaryIO, source: str = "CAR", max_section: int = MAX_SECTION) -> None:
        self._stream = stream
        self.source = source
        self._max_section = max_section
        size = self._varint(allow_end=False)
        if size is None or size > _MAX_HEADER:
            raise ContentError(f"{source}: not a CAR v1 stream (header length {size})")
        try:
            header = dag_cbor.decode(self._exactly(size))
        except ContentError:
            raise
        except Exception as error:
            raise ContentError(f"{source}: CAR header is not dag-cbor ({error})") from None
        roots = header.get("roots") if isinstance(header, dict) else None
        if not isinstance(header, dict) or header.get("version") != 1 or not isinstance(roots, list):
            raise ContentError(f"{source}: not a CAR v1 header: {header!r}")
        if not all(isinstance(root, CID) for root in roots):
            raise ContentError(f"{source}: CAR roots must be CIDs")
        self.roots = [Cid.parse(bytes(root)) for root in roots if isinstance(root, CID)]

    def __iter__(self) -> Iterator[tuple[Cid, bytes]]:
        while (size := self._varint(allow_end=True)) is not None:
            if size > self._max_section:
                raise ContentTooLargeError(f"{self.source}: CAR section of {size} bytes is over {self._max_section}")
            section = self._exactly(size)
            cid, offset = read_cid(section)
            yield cid, cid.verify(section[offset:], self.source)

    def _varint(self, *, allow_end: bool) -> int | None:
        value = shift = 0
        while True:
            byte = self._stream.read(1)
            if not byte:
                if shift == 0 and allow_end:
                    return None
                raise ContentError(f"{self.source}: CAR stream is truncated")
            value |= (byte[0] & 0x7F) << shift
            if byte[0] < 0x80:
                return value
            shift += 7
            if shift > 63:
                raise ContentError(f"{self.source}: bad varint in CAR stream")

    def _exactly(self, size: int) -> bytes:
        parts, got = [], 0
        while got < size:
            part = self._stream.read(size - got)
            if not part:
                raise ContentError(f"{self.source}: CAR stream is truncated ({got} of {size} bytes of a section)")
            parts.append(part)
            got += len(part)
        return b"".join(parts)


class CarBlockSource:
    """Serves ``get_block`` from a CAR stream read in order, for streaming a DAG from a remote store.

    Blocks arrive in the order the sender walked the DAG; a block that comes before it is asked for
    waits in a buffer of at most ``max_buffer`` bytes, so a well-ordered (``order=dfs``) CAR streams
    in constant memory and a scrambled one fails loudly rather than filling memory. A CAR holds each
    block once, but a file may use a block many times (a run of zeros is one chunk repeated): recent
    blocks stay in a small cache, and ``fallback`` fetches any block the stream can no longer give.
    """

    def __init__(self, reader: CarReader, fallback: Callable[[Cid], bytes] | None = None,
                 max_buffer: int = 64 * 1024 * 1024, recent_bytes: int = 8 * 1024 * 1024) -> None:
        self._blocks = iter(reader)
        self.source = reader.source
        self._fallback = fallback
        self._pending: dict[Cid, bytes] = {}
        self._pending_bytes = 0
        self._max_buffer = max_buffer
        self._recent: OrderedDict[Cid, bytes] = OrderedDict()
        self._recent_bytes = 0
        self._max_recent = recent_bytes

    def get_block(self, cid: Cid) -> bytes:
        key = cid.to_v1()
        if key in self._recent:
            self._recent.move_to_end(key)
            return self._recent[key]
        if key in self._pending:
            block = self._pending.pop(key)
            self._pending_bytes -= len(block)
            return self._remember(key, block)
        for got, block in self._blocks:
            if got.to_v1() == key:
                return self._remember(key, block)
            self._pending[got.to_v1()] = block
            self._pending_bytes += len(block)
            if self._pending_bytes > self._max_buffer:
                raise ContentError(f"{self.source}: CAR blocks arrive out of order; more than "
                                   f"{self._max_buffer} bytes held while waiting for {cid}")
        if self._fallback is not None:
            return self._fallback(cid)
        raise ContentError(f"{self.source}: CAR stream ended without block {cid}")

    def _remember(self, key: Cid, block: bytes) -> bytes:
        self._recent[key] = block
        self._recent_bytes += len(block)
        while self._recent_bytes > self._max_recent and len(self._recent) > 1:
            _, old = self._recent.popitem(last=False)
            self._recent_bytes -= len(old)
        return block
