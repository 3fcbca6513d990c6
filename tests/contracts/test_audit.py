"""Audit selection, the seed horizon, verdicts, and the Python mirror of the derivation."""

from __future__ import annotations

import math

import pytest
from web3.logs import DISCARD

from marketplace.chain.artifacts import load_artifact
from marketplace.chain.deployment import WEI
from marketplace.chain.devnet import dev_account
from marketplace.protocol import (
    BPS,
    SEED_HORIZON,
    CreditKind,
    JobState,
    Role,
    audit_assignment,
    audit_seed,
    sampled_task_indices,
)
from tests.conftest import OUTPUT_CID, Chain, reverts

PRICE = 100 * WEI
EVIDENCE = "bafkreievidence"


@pytest.fixture
def staffed(chain: Chain, provider, verifier) -> Chain:
    chain.register(provider, Role.PROVIDER)
    chain.register(verifier, Role.VERIFIER)
    return chain


def audited_job(chain: Chain, requester, provider, **overrides) -> int:
    """A submitted job whose seed is visible; with rate 100 % and one verifier it is always audited."""
    job_id = chain.submitted_job(requester, provider, sample_rate_bps=10_000, price=PRICE, **overrides)
    chain.mine(2)
    return job_id


# ───────────────────────────────────────────── verdicts


def test_passing_verdict_pays_provider_verifier_and_protocol(staffed: Chain, requester, provider,
                                                              verifier) -> None:
    job_id = audited_job(staffed, requester, provider)
    audit = staffed.market.audit_of(job_id)
    assert (audit.audited, audit.verifier) == (True, verifier.address)
    staffed.market.submit_verdict(verifier, job_id, True, EVIDENCE)
    split = staffed.market.terms_of(job_id).split(audited=True)
    assert staffed.market.get_job(job_id).state is JobState.FINALIZED
    assert staffed.market.credits(provider.address) == split.provider == PRICE * (BPS - 250 - 500) // BPS
    assert staffed.market.credits(verifier.address) == split.verifier == PRICE * 500 // BPS
    assert staffed.market.protocol_fees() == split.protocol
    assert split.provider + split.verifier + split.protocol == PRICE
    assert staffed.market.provider_stake(provider.address).locked == 0


def test_failing_verdict_slashes_provider_and_refunds_requester(staffed: Chain, requester, provider,
                                                                verifier) -> None:
    job_id = audited_job(staffed, requester, provider)
    receipt = staffed.market.submit_verdict(verifier, job_id, False, EVIDENCE)
    collateral = PRICE * 5_000 // BPS
    fee = PRICE * 500 // BPS
    assert staffed.market.get_job(job_id).state is JobState.REJECTED
    assert staffed.market.credits(requester.address) == PRICE + collateral - fee
    assert staffed.market.credits(verifier.address) == fee
    assert staffed.market.credits(provider.address) == 0
    stake = staffed.market.provider_stake(provider.address)
    assert (stake.stake, stake.locked) == (1_000 * WEI - collateral, 0)
    kinds = [CreditKind(e["args"]["kind"]) for e in
             staffed.market.contract.events.Credited().process_receipt(receipt, errors=DISCARD)]
    assert kinds == [CreditKind.REFUND, CreditKind.VERIFIER_FEE, CreditKind.SLASH_COMPENSATION]


def test_verdict_by_unassigned_account_reverts(staffed: Chain, requester, provider, verifier, stranger) -> None:
    job_id = audited_job(staffed, requester, provider)
    with reverts("NotAssignedVerifier", job_id, stranger.address, verifier.address):
        staffed.market.submit_verdict(stranger, job_id, False, EVIDENCE)


def test_verdict_on_unaudited_job_reverts(chain: Chain, requester, provider, verifier) -> None:
    chain.register(provider, Role.PROVIDER)
    job_id = audited_job(chain, requester, provider)  # no verifier registered: nobody can audit
    assert chain.market.audit_of(job_id).audited is False
    with reverts("NotAudited", job_id):
        chain.market.submit_verdict(verifier, job_id, True, EVIDENCE)


def test_job_parties_are_never_their_own_verifier(chain: Chain, requester, provider) -> None:
    chain.register(provider, Role.PROVIDER)
    chain.register(requester, Role.VERIFIER)
    chain.register(provider, Role.VERIFIER)
    job_id = audited_job(chain, requester, provider)
    assert chain.market.audit_of(job_id).audited is False


def test_verdict_after_audit_window_reverts(staffed: Chain, requester, provider, verifier) -> None:
    job_id = audited_job(staffed, requester, provider)
    end = staffed.market.get_job(job_id).stamp + staffed.market.terms_of(job_id).audit_window
    staffed.market.lock_seed(verifier, job_id)
    staffed.increase_time(staffed.market.terms_of(job_id).audit_window + 1)
    with reverts("AuditWindowClosed", job_id, end):
        staffed.market.submit_verdict(verifier, job_id, True, EVIDENCE)
    # A missed audit settles like an unaudited job: the provider is paid, no verifier fee.
    staffed.market.finalize(requester, job_id)
    assert staffed.market.credits(provider.address) == PRICE - PRICE * 250 // BPS
    assert staffed.market.credits(verifier.address) == 0


# ───────────────────────────────────────────── the seed


def test_seed_is_unknown_in_the_submission_block(staffed: Chain, requester, provider) -> None:
    job_id = staffed.submitted_job(requester, provider)
    seed_block = staffed.market.get_job(job_id).seed_block
    with reverts("SeedNotReady", job_id, seed_block):
        staffed.market.audit_of(job_id)
    staffed.mine(1)  # the seed block exists, but a call inside it still cannot see its hash
    with reverts("SeedNotReady", job_id, seed_block):
        staffed.market.audit_of(job_id)
    staffed.mine(1)
    assert len(staffed.market.audit_of(job_id).seed) == 32


def test_seed_expires_after_the_horizon(staffed: Chain, requester, provider, verifier) -> None:
    job_id = audited_job(staffed, requester, provider)
    seed_block = staffed.market.get_job(job_id).seed_block
    staffed.mine(SEED_HORIZON + 1)
    with reverts("SeedExpired", job_id, seed_block):
        staffed.market.audit_of(job_id)
    with reverts("SeedExpired", job_id, seed_block):
        staffed.market.lock_seed(verifier, job_id)
    with reverts("SeedExpired", job_id, seed_block):
        staffed.market.submit_verdict(verifier, job_id, True, EVIDENCE)


def test_locked_seed_outlives_the_horizon(staffed: Chain, requester, provider, verifier) -> None:
    job_id = audited_job(staffed, requester, provider)
    seed = staffed.market.audit_of(job_id).seed
    receipt = staffed.market.lock_seed(verifier, job_id)
    assert staffed.market.contract.events.SeedLocked().process_receipt(receipt)[0]["args"]["seed"] == seed
    staffed.mine(SEED_HORIZON + 10)
    assert staffed.market.audit_of(job_id).seed == seed
    staffed.market.submit_verdict(verifier, job_id, True, EVIDENCE)
    assert staffed.market.get_job(job_id).state is JobState.FINALIZED


def test_submit_refuses_block_numbers_past_uint32(staffed: Chain, requester, provider) -> None:
    job_id = staffed.post(requester)
    staffed.market.claim_job(provider, job_id)
    call = staffed.market.contract.functions.submitResult(job_id, OUTPUT_CID, b"\1" * 32)
    tx = {"from": provider.address, "to": staffed.market.address, "data": call._encode_transaction_data()}
    reply = staffed.client.w3.provider.make_request(  # type: ignore[arg-type]
        "eth_call", [tx, "latest", {}, {"number": hex(2**32 - 1)}])
    error = staffed.client.decoder.decode(reply["error"]["data"])
    assert (error.name, error.values) == ("BlockNumberTooLarge", (2**32,))


# ───────────────────────────────────────────── the Python mirror


def test_python_derivation_matches_the_contract(chain: Chain, requester, provider) -> None:
    chain.register(provider, Role.PROVIDER)
    verifiers = [dev_account(i) for i in (5, 6, 7, 8)]
    for account in verifiers:
        chain.register(account, Role.VERIFIER)
    chain.market.request_unstake(verifiers[1], Role.VERIFIER, 1_000 * WEI)  # left before the jobs
    jobs = [chain.submitted_job(requester, provider, sample_rate_bps=5_000, num_tasks=n, sample_tasks=k)
            for n, k in [(16, 4), (3, 4), (1000, 64), (2, 1)] * 5]
    chain.mine(2)
    entries = chain.market.verifier_list()
    audited = 0
    for job_id in jobs:
        status = chain.market.get_job(job_id)
        terms = chain.market.terms_of(job_id)
        block_hash = bytes(chain.client.w3.eth.get_block(status.seed_block)["hash"])
        seed = audit_seed(block_hash, job_id)
        on_chain = chain.market.audit_of(job_id)
        assert audit_assignment(seed, terms, status, entries) == on_chain
        assert on_chain.verifier != verifiers[1].address
        assert sampled_task_indices(seed, terms.num_tasks, terms.sample_tasks) == chain.market.sampled_tasks(job_id)
        audited += on_chain.audited
    assert 0 < audited < len(jobs)


# ───────────────────────────────────────────── the audit rate


def _fund_and_deploy(chain: Chain, name: str) -> object:
    contract, _ = chain.client.deploy(chain.owner, load_artifact(name), chain.market.address, chain.token.address)
    chain.token.transfer(chain.owner, contract.address, 10_000 * WEI)
    chain.client.transact(chain.owner, contract.functions.registerProvider(1_000 * WEI))
    return contract


def _within_three_sigma(hits: int, n: int, rate: float) -> None:
    sigma = math.sqrt(n * rate * (1 - rate))
    assert abs(hits - n * rate) <= 3 * sigma, f"{hits}/{n} audited, expected {n * rate:.0f} ± {3 * sigma:.0f}"


def test_audited_fraction_matches_the_rate_over_2000_submissions(chain: Chain) -> None:
    for index in (5, 6, 7):
        chain.register(dev_account(index), Role.VERIFIER)
    probe = _fund_and_deploy(chain, "AuditProbe")
    rate_bps, batches, per_batch = 1_000, 40, 50
    request = chain.request(price=1_000, sample_rate_bps=rate_bps, claim_by=chain.now() + 86_400).as_tuple()
    firsts = []
    for _ in range(batches):
        receipt = chain.client.transact(chain.owner, probe.functions.batch(per_batch, request))
        firsts.append(chain.market.posted_job_id(receipt))
    chain.mine(2)
    audited = sum(chain.client.call(probe.functions.countAudited(f, per_batch, request)) for f in firsts)
    _within_three_sigma(audited, batches * per_batch, rate_bps / BPS)


def test_provider_that_reverts_when_audited_gains_nothing(chain: Chain) -> None:
    for index in (5, 6, 7):
        chain.register(dev_account(index), Role.VERIFIER)
    dodger = _fund_and_deploy(chain, "DodgingProvider")
    rate_bps, batches, per_batch = 1_000, 40, 50
    request = chain.request(price=1_000, sample_rate_bps=rate_bps, claim_by=chain.now() + 86_400)
    firsts = []
    for _ in range(batches):
        receipt = chain.client.transact(chain.owner, dodger.functions.run(per_batch, request.as_tuple()))
        firsts.append(chain.market.posted_job_id(receipt))
    chain.mine(2)
    submitted = [job_id for first in firsts for job_id in range(first, first + per_batch)
                 if chain.market.get_job(job_id).state is JobState.SUBMITTED]
    dodged = chain.client.call(dodger.functions.dodged())
    assert len(submitted) + dodged == batches * per_batch
    assert len(submitted) > 1_500
    audited = sum(chain.market.audit_of(job_id).audited for job_id in submitted)
    # Its dodges were blind: the jobs it did submit are audited at the configured rate.
    _within_three_sigma(audited, len(submitted), rate_bps / BPS)
