"""UnixFS: the file-system meaning carried in a dag-pb node's data (file, directory, ...).

A file is either one raw block (the whole file, when it fits in one chunk) or a dag-pb node whose
links are its parts in order and whose ``blocksizes`` give each part's byte count. A directory is
a dag-pb node with one named link per entry, sorted by name. Other UnixFS types (symlinks, HAMT
shards, metadata) are refused with a ``ContentError`` that names them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from marketplace.errors import ContentError
from marketplace.storage.cid import RAW, Cid
from marketplace.storage.dagpb import (
    PBLink,
    PBNode,
    bytes_field,
    decode_node,
    decode_varint,
    encode_node,
    iter_fields,
    varint_field,
)


class NodeType(enum.IntEnum):
    RAW = 0
    DIRECTORY = 1
    FILE = 2
    METADATA = 3
    SYMLINK = 4
    HAMT_SHARD = 5


@dataclass(frozen=True, slots=True)
class UnixFSData:
    type: NodeType
    data: bytes = b""
    filesize: int | None = None
    blocksizes: tuple[int, ...] = ()

    def encode(self) -> bytes:
        out = varint_field(1, self.type)
        if self.data:
            out += bytes_field(2, self.data)
        if self.filesize is not None:
            out += varint_field(3, self.filesize)
        # proto2 ``repeated uint64`` is not packed: one field per size, as go-unixfs writes it.
        out += b"".join(varint_field(4, size) for size in self.blocksizes)
        return out

    @classmethod
    def decode(cls, buffer: bytes) -> UnixFSData:
        kind: int | None = None
        data, filesize, sizes = b"", None, []
        for number, value in iter_fields(buffer):
            if number == 1 and isinstance(value, int):
                kind = value
            elif number == 2 and not isinstance(value, int):
                data = bytes(value)
            elif number == 3 and isinstance(value, int):
                filesize = value
            elif number == 4:
                sizes.extend([value] if isinstance(value, int) else _packed(value))
            # hashType, fanout, mode and mtime carry nothing WEBI reads
        if kind is None or kind not in NodeType._value2member_map_:
            raise ContentError(f"UnixFS data without a known type ({kind})")
        return cls(NodeType(kind), data, filesize, tuple(sizes))


@dataclass(frozen=True, slots=True)
class Node:
    """A decoded UnixFS node: what it is, its links (parts or entries) and its inline data."""

    type: NodeType
    links: tuple[PBLink, ...]
    data: bytes
    filesize: int
    blocksizes: tuple[int, ...]


def file_node(links: list[PBLink], blocksizes: list[int]) -> bytes:
    """The dag-pb block of a file node over ``links``, whose file parts have ``blocksizes`` bytes."""
    meta = UnixFSData(NodeType.FILE, filesize=sum(blocksizes), blocksizes=tuple(blocksizes))
    return encode_node(PBNode(tuple(links), meta.encode()))


def directory_node(links: list[PBLink]) -> bytes:
    """The dag-pb block of a directory; links must carry distinct names and are sorted by them."""
    ordered = sorted(links, key=lambda link: link.name.encode())
    return encode_node(PBNode(tuple(ordered), UnixFSData(NodeType.DIRECTORY).encode()))


def decode(cid: Cid, block: bytes) -> Node:
    """The UnixFS node in ``block``; a raw block is a file of its own bytes."""
    if cid.codec == RAW:
        return Node(NodeType.RAW, (), block, len(block), ())
    node = decode_node(block)
    if node.data is None:
        raise ContentError(f"{cid} is a dag-pb node without UnixFS data")
    meta = UnixFSData.decode(node.data)
    if meta.type in (NodeType.SYMLINK, NodeType.HAMT_SHARD, NodeType.METADATA):
        raise ContentError(f"{cid} is a UnixFS {meta.type.name.lower()}, which WEBI does not read")
    if meta.type in (NodeType.FILE, NodeType.RAW):
        if len(meta.blocksizes) != len(node.links):
            raise ContentError(f"{cid}: file node has {len(node.links)} links but {len(meta.blocksizes)} sizes")
        size = len(meta.data) + sum(meta.blocksizes)
        return Node(meta.type, node.links, meta.data, size, meta.blocksizes)
    return Node(meta.type, node.links, b"", sum(link.tsize for link in node.links), ())


def _packed(view: memoryview) -> list[int]:
    values, offset = [], 0
    while offset < len(view):
        value, offset = decode_varint(view, offset)
        values.append(value)
    return values
