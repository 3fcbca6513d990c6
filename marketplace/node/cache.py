"""Encoded API responses, reused until the indexer commits again.

Every answer of the read API is a function of the database, and the database changes only when
the indexer commits a chunk (or rewinds). So a response, once encoded, stays right until the
indexer's ``version`` moves: a hit costs a dictionary lookup instead of a query, ORM rows and JSON
encoding, which is what keeps ``/v1/jobs`` fast under many clients.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any


class ResponseCache:
    def __init__(self, version: Callable[[], int], capacity: int = 2_048) -> None:
        self.version = version
        self.capacity = capacity
        self._entries: OrderedDict[str, tuple[int, bytes]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> bytes | None:
        current = self.version()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] != current:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[1]

    def put(self, key: str, version: int, value: Any) -> bytes:
        """Encodes ``value`` and keeps it under ``version``: the one read before the query ran, so a
        commit racing the query leaves a stale entry that the next lookup already refuses."""
        body = json.dumps(value, separators=(",", ":")).encode()
        with self._lock:
            self._entries[key] = (version, body)
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
        return body
