"""The dag-pb codec: the protobuf envelope of UnixFS nodes (links first, then data).

Small on purpose: two messages, three wire types. Encoding follows the dag-pb spec's canonical
form (links before data; link fields in order Hash, Name, Tsize) so CIDs match Kubo's byte for byte.
Decoding refuses anything malformed with ``ContentError``, since blocks come from untrusted peers.
"""

from __future__ import annotations

from dataclasses import dataclass

from marketplace.errors import ContentError
from marketplace.storage.cid import Cid, read_cid


@dataclass(frozen=True, slots=True)
class PBLink:
    """A named, sized link to a child block. ``tsize`` is the child's whole DAG size in bytes."""

    cid: Cid
    name: str
    tsize: int


@dataclass(frozen=True, slots=True)
class PBNode:
    links: tuple[PBLink, ...]
    data: bytes | None


def encode_varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_varint(buffer: bytes | memoryview, offset: int) -> tuple[int, int]:
    """The varint at ``offset`` and the offset after it; ``ContentError`` when truncated or over 64 bits."""
    value = shift = 0
    while True:
        if offset >= len(buffer):
            raise ContentError("truncated varint")
        byte = buffer[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, offset
        shift += 7
        if shift > 63:
            raise ContentError("varint longer than 64 bits")


def bytes_field(number: int, value: bytes) -> bytes:
    return encode_varint(number << 3 | 2) + encode_varint(len(value)) + value


def varint_field(number: int, value: int) -> bytes:
    return encode_varint(number << 3) + encode_varint(value)


def encode_node(node: PBNode) -> bytes:
    parts = []
    for link in node.links:
        body = bytes_field(1, bytes(link.cid)) + bytes_field(2, link.name.encode()) + varint_field(3, link.tsize)
        parts.append(bytes_field(2, body))
    if node.data is not None:
        parts.append(bytes_field(1, node.data))
    return b"".join(parts)


def iter_fields(buffer: bytes | memoryview) -> list[tuple[int, int | memoryview]]:
    """(field number, value) pairs of a protobuf message: ints for varints, views for bytes."""
    view = memoryview(buffer)
    fields: list[tuple[int, int | memoryview]] = []
    offset = 0
    while offset < len(view):
        key, offset = decode_varint(view, offset)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, offset = decode_varint(view, offset)
            fields.append((number, value))
        elif wire == 2:
            size, offset = decode_varint(view, offset)
            if offset + size > len(view):
                raise ContentError("truncated protobuf field")
            fields.append((number, view[offset:offset + size]))
            offset += size
        else:
            raise ContentError(f"unexpected protobuf wire type {wire}")
    return fields


def decode_node(block: bytes) -> PBNode:
    links: list[PBLink] = []
    data: bytes | None = None
    for number, value in iter_fields(block):
        if number == 2 and isinstance(value, memoryview):
            links.append(_decode_link(value))
        elif number == 1 and isinstance(value, memoryview):
            data = bytes(value)
        else:
            raise ContentError(f"dag-pb node has an unexpected field {number}")
    return PBNode(tuple(links), data)


def _decode_link(buffer: memoryview) -> PBLink:
    cid: Cid | None = None
    name, tsize = "", 0
    for number, value in iter_fields(buffer):
        if number == 1 and isinstance(value, memoryview):
            cid, end = read_cid(value)
            if end != len(value):
                raise ContentError("dag-pb link hash has trailing bytes")
        elif number == 2 and isinstance(value, memoryview):
            try:
                name = bytes(value).decode()
            except UnicodeDecodeError:
                raise ContentError("dag-pb link name is not UTF-8") from None
        elif number == 3 and isinstance(value, int):
            tsize = value
        else:
            raise ContentError(f"dag-pb link has an unexpected field {number}")
    if cid is None:
        raise ContentError("dag-pb link without a hash")
    return PBLink(cid, name, tsize)
