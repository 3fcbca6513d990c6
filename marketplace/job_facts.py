"""Reading the chain facts a job's wait depends on (``job_waits.JobFacts``): the clock, the head, the job's
windows, the draw, the panel, and for an open job the providers that might claim it.

Kept apart from the pure wording in ``job_waits`` so that it stays testable without a chain; each read is
made only for the states that need it (a claimed job reads no providers, a settled one almost nothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from eth_utils.address import to_checksum_address

from marketplace.chain.market import JobMarket
from marketplace.errors import WebiError
from marketplace.job_views import JobInfo
from marketplace.job_waits import JobFacts
from marketplace.jobspec import parse_spec
from marketplace.protocol import ZERO_HASH, JobState, JobStatus
from marketplace.provider_offers import ProviderOffer, provider_offers
from marketplace.storage import ContentStore
from marketplace.storage.cid import Cid

MAX_SPEC_BYTES = 64 * 1024


def posted_at(market: JobMarket, job_id: int) -> int:
    """The timestamp of the block that posted the job."""
    events = market.contract.events.JobPosted().get_logs(from_block=market.from_block,
                                                         argument_filters={"jobId": job_id})
    if not events:
        return 0
    return int(market.client.w3.eth.get_block(int(events[0]["blockNumber"]))["timestamp"])


def read_facts(market: JobMarket, store: ContentStore, info: JobInfo, status: JobStatus, *,
               posted: int | None = None, offers: Sequence[ProviderOffer] | None = None) -> JobFacts:
    """The facts around ``info``'s job now. ``posted`` (the posting time) and ``offers`` are read when not given
    and needed (an open job); a spec the store cannot serve leaves the task unknown, never fails the call."""
    latest = market.client.w3.eth.get_block("latest")
    now, block = int(latest["timestamp"]), int(latest["number"])
    terms = market.terms_of(info.job_id)
    facts = JobFacts(now=now, block=block, posted_at=posted or 0, claim_by=terms.claim_by,
                     collateral=terms.collateral)
    if info.state == JobState.OPEN:
        task, allowlist = _spec_facts(store, info.spec_cid)
        chosen = tuple(offers) if offers is not None else tuple(provider_offers(market, store))
        return replace(facts, posted_at=posted if posted is not None else posted_at(market, info.job_id),
                       task=task, offers=chosen,
                       min_provider_stake=max(terms.min_provider_stake, market.params().min_provider_stake),
                       allowlist=allowlist if terms.allowlist_root != ZERO_HASH else None)
    if info.state == JobState.CLAIMED:
        return replace(facts, due_by=status.stamp)
    if info.state == JobState.SUBMITTED:
        weight = market.total_verifier_weight() if info.verifier is None else 0
        return replace(facts, seed_block=status.seed_block, verifier_weight=weight)
    if info.state == JobState.CHALLENGED:
        return replace(facts, panel=market.panel_of(info.job_id))
    return facts


def _spec_facts(store: ContentStore, spec_cid: str) -> tuple[str | None, frozenset[str]]:
    try:
        spec = parse_spec(store.read_bytes(Cid.parse(spec_cid), limit=MAX_SPEC_BYTES))
    except (WebiError, ValueError):
        return None, frozenset()
    return spec.task.value, frozenset(to_checksum_address(member) for member in spec.allowlist)


__all__ = ["posted_at", "read_facts"]
