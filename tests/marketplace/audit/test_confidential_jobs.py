"""The auditor over confidential jobs: claims given back (``ClaimReleased``), keys released (``KeyReleased``)
and a reveal demand answered with the key and sealed outputs reconcile to the wei."""

from __future__ import annotations

from eth_account.signers.local import LocalAccount

from marketplace.audit import Auditor
from marketplace.chain.devnet import Devnet
from marketplace.protocol import Confidentiality, JobState, Role
from marketplace.sealed import JobKey, PartyKey, wrap
from tests.conftest import Chain
from tests.support.history import confidential_job


def test_released_claims_and_keys_audit_clean_with_the_locks_released_and_nothing_settled(
    chain: Chain, devnet: Devnet, requester: LocalAccount, provider: LocalAccount, verifier: LocalAccount,
    stranger: LocalAccount,
) -> None:
    chain.register(provider, Role.PROVIDER)
    chain.register(stranger, Role.PROVIDER)
    chain.register(verifier, Role.VERIFIER)
    market = chain.market
    stake = market.provider_stake(provider.address).stake
    given_back = chain.post(requester, confidentiality=Confidentiality.OPEN, key_window=120)
    market.claim_job(stranger, given_back)
    market.release_claim(stranger, given_back)  # no key came
    market.claim_job(provider, given_back)  # another claimant: this time a key comes, and it does not open
    market.release_key(requester, given_back, provider.address, wrap(JobKey.generate(), PartyKey.generate().recipient))
    receipt = market.release_claim(provider, given_back)  # within the key window: unslashed
    assert [event["provider"] for event in chain.emitted(receipt, "ClaimReleased")] == [provider.address]
    assert market.get_job(given_back).state == JobState.OPEN
    assert (market.provider_stake(provider.address).locked, market.provider_stake(provider.address).stake) == (
        0, stake)
    assert market.provider_stake(stranger.address).locked == 0
    settled = confidential_job(chain, requester, provider, verifier)

    report = Auditor(devnet.protocol).run()
    assert report.clean, [str(item) for item in report.discrepancies]
    jobs = {job.job_id: job for job in report.jobs}
    assert (jobs[given_back].state, jobs[settled].state) == ("open", "finalized")
    assert int(jobs[given_back].slashed) == 0 and int(jobs[settled].slashed) == 0
    assert market.provider_stake(provider.address).locked == 0
