"""A small settled history on the devnet, for the indexer, node, dashboard and auditor tests."""

from __future__ import annotations

from dataclasses import dataclass

from eth_account.signers.local import LocalAccount

from marketplace.chain.deployment import WEI
from marketplace.protocol import Role
from tests.conftest import OUTPUT_CID, Chain


@dataclass(frozen=True)
class History:
    finalized: int
    cancelled: int
    open: int
    rejected: int | None = None


def settle_history(
    chain: Chain, requester: LocalAccount, provider: LocalAccount, verifier: LocalAccount, metadata_cid: str = ""
) -> History:
    """Jobs finalized after their audit window, cancelled, and open; then the provider withdraws."""
    chain.approve(provider)
    chain.market.register(provider, Role.PROVIDER, 1_000 * WEI, metadata_cid)
    chain.register(verifier, Role.VERIFIER)
    done = chain.post(requester, sample_rate_bps=500)
    chain.market.claim_job(provider, done)
    chain.market.submit_result(provider, done, OUTPUT_CID, b"\x11" * 32)
    cancelled = chain.post(requester)
    chain.market.cancel_job(requester, cancelled)
    open_job = chain.post(requester, price=7 * WEI)
    chain.increase_time(chain.market.terms().audit_window + 1)
    if chain.market.audit_of(done).audited:
        chain.market.submit_verdict(verifier, done, True, OUTPUT_CID)
    else:
        chain.market.finalize(provider, done)
    chain.market.withdraw(provider)
    return History(done, cancelled, open_job)


def rejected_job(chain: Chain, requester: LocalAccount, provider: LocalAccount, verifier: LocalAccount) -> int:
    """A job whose audit fails (sample rate 100 %, the only verifier says no): the provider is slashed."""
    job = chain.post(requester, sample_rate_bps=10_000)
    chain.market.claim_job(provider, job)
    chain.market.submit_result(provider, job, OUTPUT_CID, b"\x22" * 32)
    chain.mine(2)  # the seed block must exist before the verdict
    chain.market.submit_verdict(verifier, job, False, OUTPUT_CID)
    return job
