"""A group's merged result, served by the node: ``marketplace.groups.merge`` through a read-only ``Client``.

The page and the API read the indexer's tables, but a result is worth serving only once each shard's outputs
rebuild the root its provider committed, so the merge reads the chain itself (its own connection, not the
indexer's) and the node's store, as a requester's ``webi job results g<id>`` would. What stops it comes back
as a ``MergeRefusedError`` naming the shards, which the API answers with a 409.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field

from marketplace.chain.client import ChainClient
from marketplace.chain.deployment import Deployment, Protocol, connect_protocol, protocol_abis
from marketplace.client import Client, ResultMismatchError
from marketplace.errors import ChainError, ConfigError, WebiError
from marketplace.groups.merge import GroupIncompleteError, merge
from marketplace.groups.view import GroupReader, GroupView
from marketplace.storage.store import ContentStore


class MergeRefusedError(WebiError):
    """The group has no merged result to serve now: ``reason`` says why, ``shards`` are the indices that stop it."""

    def __init__(self, message: str, reason: str, shards: list[int]) -> None:
        super().__init__(message)
        self.reason = reason  # "incomplete", "mismatch" or "unreadable" (not in this node's store, sealed, refused)
        self.shards = shards


@dataclass
class GroupResults:
    """Merges groups for the node; connects to the chain on the first merge (the node starts without it)."""

    rpc_url: str
    timeout_s: float
    deployment: Deployment
    store: ContentStore
    _protocol: Protocol | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def jsonl(self, group_id: int) -> bytes:
        """The merged outputs in input order, one JSON document a line; ``MergeRefusedError`` when there are none
        yet."""
        client = Client(self._connect(), self.store)
        try:
            view = GroupReader(client).read(group_id)
        except ConfigError as error:  # a shard's spec missing from this node's store
            raise MergeRefusedError(str(error), "unreadable", []) from None
        checked: list[int] = []  # merge checks the shards in index order: the one after these stopped it

        def stopped() -> list[int]:
            return [view.shards[len(checked)].index] if len(checked) < len(view.shards) else []

        try:
            merged = merge(client, view, on_shard=lambda done, _: checked.append(done))
        except GroupIncompleteError as error:
            raise MergeRefusedError(str(error), "incomplete", _stopping(view) or stopped()) from None
        except ResultMismatchError as error:
            raise MergeRefusedError(str(error), "mismatch", stopped()) from None
        except ChainError:
            raise  # the chain is down: not a property of the group
        except WebiError as error:  # an output missing from this node's store, one the bounds refuse, a sealed one
            raise MergeRefusedError(str(error), "unreadable", stopped()) from None
        return b"".join(json.dumps(output, separators=(",", ":")).encode() + b"\n" for output in merged.outputs)

    def close(self) -> None:
        with self._lock:
            if self._protocol is not None:
                self._protocol.market.client.close()
                self._protocol = None

    def _connect(self) -> Protocol:
        with self._lock:
            if self._protocol is None:
                chain = ChainClient.connect(self.rpc_url, protocol_abis(), timeout=self.timeout_s)
                self._protocol = connect_protocol(chain, self.deployment)
            return self._protocol


def _stopping(view: GroupView) -> list[int]:
    """The shards a ``GroupIncompleteError`` is about: those without results, or failed, or never posted."""
    waiting = [shard.index for shard in view.shards if shard.job.output_cid is None or shard.failed(view.now)]
    placed = {shard.index for shard in view.shards}
    return sorted(set(waiting) | (set(range(view.count)) - placed))
