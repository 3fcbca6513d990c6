"""An Open confidential job's key, released by its requester to whoever claims it.

An Open job's claimant is not known when the job is posted, so its spec wraps the job key to the
requester alone; once a provider claims, the requester's client wraps the key to the claimant's
published recipient (``directory.published_recipient``: read from its registration metadata,
signature checked) and publishes it with ``releaseKey``. That release starts the claimant's key
window; a claimant that got no key (or a bad one) gives the claim back unslashed
(``releaseClaim``). A claimant with no usable published key gets nothing: encrypting to a key a
store handed us would give the job to whoever swapped it. It will release the claim. Nor does a
claimant that already had the key once and gave the claim back (``walked_away``): each address gets
one free look at the inputs, not one per round (a Sybil with many addresses still gets one each:
requesters who cannot accept that post Directed jobs).

``webi job keys`` runs ``release_keys`` in a loop; ``Client.wait`` (``webi job status --watch
--wallet``) runs it for the job it follows.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from marketplace.chain.market import JobMarket
from marketplace.errors import ContractError, SealedError, WebiError
from marketplace.protocol import Confidentiality, JobState, Role
from marketplace.requester_keys import read_job_spec
from marketplace.sealed.directory import published_recipient
from marketplace.sealed.envelope import job_key_from_spec, release_for
from marketplace.sealed.keys import PartyKey
from marketplace.storage import ContentStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KeyRelease:
    """One claimant's key: released (``tx_hash``) or not, and then why not (``reason``)."""

    job_id: int
    provider: str
    tx_hash: str | None = None
    reason: str = ""

    @property
    def released(self) -> bool:
        return self.tx_hash is not None

    def line(self) -> str:
        if self.released:
            return f"job {self.job_id}: key released to its claimant {self.provider} (tx {self.tx_hash})"
        return f"job {self.job_id}: key NOT released to its claimant {self.provider}: {self.reason}"


def open_jobs(market: JobMarket, requester: str) -> list[int]:
    """The Open confidential jobs ``requester`` posted (``JobPosted`` events), oldest first."""
    events = market.contract.events.JobPosted().get_logs(
        from_block=market.from_block, argument_filters={"requester": to_checksum_address(requester)})
    posted = [market.remember(event["args"]) for event in events]
    return sorted(job.job_id for job in posted if job.terms.confidentiality == Confidentiality.OPEN)


def awaiting_key(market: JobMarket, job_id: int, requester: str) -> str | None:
    """The claimant of ``job_id`` when it is an Open job of ``requester``, claimed, and its claimant has had no key
    from the requester since its latest claim; None otherwise."""
    terms = market.posted(job_id).terms
    if terms.confidentiality != Confidentiality.OPEN or terms.requester != to_checksum_address(requester):
        return None
    status = market.get_job(job_id)
    if status.state != JobState.CLAIMED:
        return None
    provider = to_checksum_address(status.provider)
    claims = market.contract.events.JobClaimed().get_logs(
        from_block=market.from_block, argument_filters={"jobId": job_id, "provider": provider})
    releases = market.contract.events.KeyReleased().get_logs(
        from_block=market.from_block, argument_filters={"jobId": job_id, "from": terms.requester, "to": provider})
    if not claims:
        return provider
    claimed = max((event["blockNumber"], event["logIndex"]) for event in claims)
    if any((event["blockNumber"], event["logIndex"]) > claimed for event in releases):
        return None
    return provider


def release_keys(market: JobMarket, store: ContentStore, account: LocalAccount, party_keys: Sequence[PartyKey],
                 job_ids: Iterable[int]) -> list[KeyRelease]:
    """Releases the key of each of ``job_ids`` awaiting one (``awaiting_key``) to its claimant; one
    ``KeyRelease`` per claimant seen, released or not (a claimant without a usable published key, a key the
    spec does not open). Jobs that need nothing are left out."""
    made = []
    for job_id in job_ids:
        provider = awaiting_key(market, job_id, account.address)
        if provider is None:
            continue
        made.append(_release(market, store, account, party_keys, job_id, provider))
    return made


def walked_away(market: JobMarket, job_id: int, requester: str, provider: str) -> int | None:
    """The block at which ``provider`` gave back its claim on ``job_id`` after the requester had released it the
    key (it may have read the inputs and left, unslashed, within the key window); None if it never did."""
    releases = market.contract.events.KeyReleased().get_logs(
        from_block=market.from_block, argument_filters={"jobId": job_id, "from": requester, "to": provider})
    if not releases:
        return None
    first = min((event["blockNumber"], event["logIndex"]) for event in releases)
    left = market.contract.events.ClaimReleased().get_logs(
        from_block=market.from_block, argument_filters={"jobId": job_id, "provider": provider})
    after = [event["blockNumber"] for event in left if (event["blockNumber"], event["logIndex"]) > first]
    return min(after) if after else None


def _release(market: JobMarket, store: ContentStore, account: LocalAccount, party_keys: Sequence[PartyKey],
             job_id: int, provider: str) -> KeyRelease:
    posted = market.posted(job_id)
    left = walked_away(market, job_id, account.address, provider)
    if left is not None:  # one free look per claimant: it already had the key once and gave the claim back
        log.warning("job %s: not releasing the key to claimant %s again: it gave its claim back at block %d after "
                    "receiving the key", job_id, provider, left)
        return KeyRelease(job_id, provider, reason=f"it gave its claim back at block {left} after receiving the key "
                                                   "once; it may release the claim, unslashed")
    try:
        recipient = published_recipient(market, store, provider, Role.PROVIDER)
    except SealedError as error:
        log.warning("job %s: not releasing the key to claimant %s: %s", job_id, provider, error)
        return KeyRelease(job_id, provider, reason=f"{error}; it may release the claim, unslashed")
    try:
        spec = read_job_spec(market, store, job_id)
        if spec.confidential is None:
            return KeyRelease(job_id, provider, reason="its spec has no confidential section")
        job_key = job_key_from_spec(spec.confidential, account.address, party_keys)
        receipt = market.release_key(account, job_id, provider, release_for(job_key, recipient), posted.terms)
    except ContractError as error:  # the claim ended in between (released, reclaimed): nothing to do
        return KeyRelease(job_id, provider, reason=str(error))
    except WebiError as error:
        return KeyRelease(job_id, provider, reason=str(error))
    log.info("job %s: key released to claimant %s", job_id, provider)
    return KeyRelease(job_id, provider, receipt["transactionHash"].to_0x_hex())
