"""What the daemon's event-following services share: a cursor over market events, a journal of
records, and one pass that polls, then advances every open record whose backoff ran out.

``PanelDuty`` follows ``Challenged``, ``Watchtower`` follows ``VerdictSubmitted``; each says which
records an event makes (``records_of``) and how a record moves on (``advance``). Errors are the
record's, never the pass's: a chain or store error backs that record off, and a re-execution that
breaks (out of memory, a driver error) is ours, retried with the same backoff.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from marketplace.chain.market import JobMarket
from marketplace.errors import WebiError

log = logging.getLogger(__name__)


class EventDuty:
    """The pass of a service that journals one record per job from market events."""

    # What the records are about, for the logs ("panel", "watch") and the events they come from.
    noun: ClassVar[str]
    source: ClassVar[str]
    market: JobMarket
    journal: Any  # a SqliteJournal of the service's record type, with add_new/due/back_off/cursor
    poll_interval_s: float
    _started: bool

    def records_of(self, entry: Any) -> list[Any]:
        """The new records one market event makes (none for most)."""
        raise NotImplementedError

    def advance(self, record: Any) -> None:
        raise NotImplementedError

    def open_stages(self) -> Any:
        raise NotImplementedError

    def step(self) -> None:
        """One pass: new events into the journal, then every open record whose backoff ran out."""
        first_pass = not self._started
        try:
            self.poll()
        except WebiError as error:
            log.warning("could not read new %s: %s", self.source, error)
        self._started = True
        for record in self.journal.due(self.open_stages(), ignore_backoff=first_pass):
            try:
                self.advance(record)
            except WebiError as error:
                delay = self.journal.back_off(record, error, base_s=self.poll_interval_s, max_doublings=6, max_s=60.0)
                log.warning("%s of job %d: %s; retrying in %.0f s", self.noun, record.job_id, error, delay)
            except Exception as error:  # re-execution broke (out of memory, a driver error): ours, retry
                delay = self.journal.back_off(record, f"re-execution failed: {type(error).__name__}: {error}",
                                              base_s=self.poll_interval_s, max_doublings=6, max_s=60.0)
                log.exception("%s of job %d: re-execution failed; retrying in %.0f s", self.noun, record.job_id,
                              delay)

    def close(self) -> None:
        self.journal.close()

    def poll(self) -> None:
        client = self.market.client
        head = client.w3.eth.block_number
        window = self.journal.scan_window(client, self.market.from_block, head)
        if window is None:
            return
        start, head_hash = window
        found: list[Any] = []
        for entry in self.market.client.events(self.market.contract, start, head):
            if entry["event"] == "JobPosted":
                self.market.remember(entry["args"])
            else:
                found += self.records_of(entry)
        self.journal.add_new(found, head, head_hash)
