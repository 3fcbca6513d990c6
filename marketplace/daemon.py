"""What the provider and verifier daemons share: step, wait a poll interval, repeat until stopped.

Each daemon is a dataclass holding its account, market, store and journal; it supplies ``step`` (one
pass over new events and open work) and ``poll_interval``. Stopping is cooperative: ``stop()`` sets
an event that the wait and the step both watch, so the pass in progress ends cleanly and the
journal holds whatever was left for the next start.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from eth_account.signers.local import LocalAccount

from marketplace.chain.market import JobMarket
from marketplace.journal import SqliteJournal
from marketplace.storage import ContentStore

log = logging.getLogger(__name__)


class PollingDaemon:
    account: LocalAccount
    market: JobMarket
    store: ContentStore
    journal: SqliteJournal[Any]
    stopping: threading.Event

    @property
    def address(self) -> str:
        return str(self.account.address)

    def poll_interval(self) -> float:
        raise NotImplementedError

    def step(self) -> None:
        raise NotImplementedError

    def run(self) -> None:
        """Serves until ``stop()``: the step in progress finishes, and the journal holds the rest."""
        while not self.stopping.is_set():
            self.step()
            self.stopping.wait(self.poll_interval())
        log.info("%s %s stopped", type(self).__name__, self.address)

    def stop(self) -> None:
        self.stopping.set()

    def close(self) -> None:
        """Releases the chain connection, the store's connections and the journal."""
        self.market.client.close()
        self.store.close()
        self.journal.close()
