"""WEBI's content store: IPFS-identical CIDs and three interchangeable backends.

``open_store`` picks the backend from one location string, so every command takes the same
``--store``: a directory is a ``LocalStore``, an ``http(s)://`` URL a Kubo RPC API (a WEBI node or a
real IPFS node), and ``gateway+https://...`` a read-only trustless gateway.
"""

from __future__ import annotations

from pathlib import Path

from marketplace.storage.cid import Cid
from marketplace.storage.importer import Added
from marketplace.storage.reader import DirEntry, Stat
from marketplace.storage.store import ContentStore

__all__ = ["Added", "Cid", "ContentStore", "DirEntry", "Stat", "open_store"]


def open_store(location: str | Path, *, token: str | None = None) -> ContentStore:
    """The store at ``location``: a directory, a Kubo RPC URL, or ``gateway+`` and a gateway URL."""
    text = str(location)
    if text.startswith("gateway+"):
        from marketplace.storage.gateway import GatewayStore

        return GatewayStore(text.removeprefix("gateway+"))
    if text.startswith(("http://", "https://")):
        from marketplace.storage.kubo import KuboStore

        return KuboStore(text, token=token)
    from marketplace.storage.local import LocalStore

    return LocalStore(Path(text).expanduser())
