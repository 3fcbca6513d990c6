"""What registered providers published about the jobs they take: tasks served and price floors.

A provider's registration names a metadata document (JSON in the content store, ``metadataCid`` of
its ``Registered`` event) with ``tasks`` (the task types it serves) and ``price_floor`` ({task: WEBI
per task, a decimal string}). They are the providers' own words, not rules the chain enforces: a
requester reads them to learn why nobody claims a job, and a provider that published neither key
counts as one that might claim it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from marketplace.chain.market import JobMarket
from marketplace.errors import WebiError
from marketplace.protocol import Role, Stake
from marketplace.sealed.directory import read_metadata
from marketplace.storage import ContentStore

logger = logging.getLogger(__name__)

WEI_PER_WEBI = 10**18


@dataclass(frozen=True)
class ProviderOffer:
    """One registered provider: its stake now and what its metadata says it takes (None: not published)."""

    address: str
    stake: Stake
    tasks: frozenset[str] | None = None
    price_floor_wei: dict[str, int] = field(default_factory=dict)  # least wei per task, by task type

    def serves(self, task: str) -> bool | None:
        """Whether it serves ``task``; None when it did not say."""
        return None if self.tasks is None else task in self.tasks

    @classmethod
    def from_metadata(cls, address: str, stake: Stake, document: Any) -> ProviderOffer:
        """From a parsed metadata document; keys that are missing or malformed are treated as unpublished."""
        if not isinstance(document, dict):
            return cls(address, stake)
        tasks = document.get("tasks")
        served = frozenset(str(task) for task in tasks) if isinstance(tasks, list) else None
        floors: dict[str, int] = {}
        published = document.get("price_floor")
        if isinstance(published, dict):
            for task, value in published.items():
                try:
                    amount = Decimal(str(value))
                except InvalidOperation:
                    continue
                if amount.is_finite() and amount >= 0:
                    floors[str(task)] = int(amount * WEI_PER_WEBI)
        return cls(address, stake, served, floors)


def provider_offers(market: JobMarket, store: ContentStore) -> list[ProviderOffer]:
    """Every provider registered now (stake above zero), with its metadata document when the store has it.

    One scan of ``Registered`` and ``MetadataUpdated`` and one stake view per provider; a document the
    store lacks or cannot parse leaves that provider's offer unpublished (logged at debug), never fails
    the caller.
    """
    latest = latest_metadata(market, Role.PROVIDER)
    offers = []
    for address, cid in latest.items():
        stake = market.provider_stake(address)
        if stake.stake == 0:
            continue
        offers.append(ProviderOffer.from_metadata(address, stake, _document(store, cid)))
    return offers


def latest_metadata(market: JobMarket, role: Role, account: str | None = None) -> dict[str, str]:
    """Each ``role`` account's metadata CID in force: its latest ``Registered`` or ``MetadataUpdated``
    (a staker registers again after a full unstake, and updates its document after a key rotation)."""
    filters: dict[str, Any] = {"role": int(role)} | ({"account": account} if account else {})
    found = []
    for name in ("Registered", "MetadataUpdated"):
        for event in getattr(market.contract.events, name)().get_logs(from_block=market.from_block,
                                                                         argument_filters=filters):
            found.append(((int(event["blockNumber"]), int(event["logIndex"])), event["args"]))
    latest: dict[str, str] = {}
    for _, args in sorted(found, key=lambda item: item[0]):
        latest[str(args["account"])] = str(args["metadataCid"])
    return latest


def _document(store: ContentStore, cid: str) -> Any:
    if not cid:
        return None
    try:
        return read_metadata(store, cid)
    except (WebiError, ValueError) as error:
        logger.debug("provider metadata %s unreadable: %s", cid, error)
        return None


__all__ = ["ProviderOffer", "latest_metadata", "provider_offers"]
