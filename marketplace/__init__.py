"""WEBI's marketplace package: contracts access, content store, indexer, node, requester client.

``marketplace.Client`` is the requester SDK (``marketplace.client``), imported on first use so that
``import marketplace.<module>`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from marketplace.client import Client


def __getattr__(name: str) -> Any:
    if name == "Client":
        from marketplace.client import Client

        return Client
    raise AttributeError(f"module 'marketplace' has no attribute {name!r}")


__all__ = ["Client"]
