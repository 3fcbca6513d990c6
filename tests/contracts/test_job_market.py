"""JobMarket job lifecycle against a real anvil: every transition and every job error."""

from __future__ import annotations

import dataclasses

import pytest
from web3.logs import DISCARD

from marketplace.chain.deployment import WEI
from marketplace.errors import ContractError
from marketplace.protocol import BPS, CreditKind, JobState, Role
from tests.conftest import OUTPUT_CID, SPEC_CID, Chain, reverts

PRICE = 100 * WEI


@pytest.fixture
def staffed(chain: Chain, provider, verifier) -> Chain:
    """A chain where `provider` and `verifier` are registered with 1,000 WEBI each."""
    chain.register(provider, Role.PROVIDER)
    chain.register(verifier, Role.VERIFIER)
    return chain


def credited(chain: Chain, receipt_block: int, kind: CreditKind) -> list[tuple[str, int]]:
    events = chain.market.contract.events.Credited().get_logs(
        from_block=receipt_block, to_block=receipt_block, argument_filters={"kind": int(kind)})
    return [(e["args"]["account"], e["args"]["amount"]) for e in events]


# ───────────────────────────────────────────── posting


def test_post_job_escrows_price_and_commits_terms(chain: Chain, requester) -> None:
    before = chain.token.balance_of(requester.address)
    job_id = chain.post(requester, price=PRICE)
    status = chain.market.get_job(job_id)
    terms = chain.market.terms_of(job_id)
    assert status.state is JobState.OPEN
    assert status.terms_hash == terms.hash()
    assert (terms.requester, terms.price, terms.num_tasks) == (requester.address, PRICE, 16)
    current = chain.market.terms()
    assert (terms.protocol_fee_bps, terms.verifier_fee_bps, terms.collateral_bps, terms.audit_window) == \
        current.as_tuple()
    assert chain.market.spec_cid(job_id) == SPEC_CID
    assert chain.token.balance_of(requester.address) == before - PRICE
    assert chain.token.balance_of(chain.market.address) == PRICE


def test_post_job_with_permit_needs_no_approval(chain: Chain, stranger) -> None:
    request = chain.request(price=PRICE)
    assert chain.token.allowance(stranger.address, chain.market.address) == 0
    permit = chain.token.sign_permit(stranger, chain.market.address, PRICE, chain.now() + 600)
    job_id = chain.market.post_job_with_permit(stranger, request, permit)
    assert chain.market.get_job(job_id).state is JobState.OPEN
    assert chain.token.balance_of(chain.market.address) == PRICE


def test_post_job_with_front_run_permit_uses_the_allowance_it_set(chain: Chain, stranger, requester) -> None:
    permit = chain.token.sign_permit(stranger, chain.market.address, PRICE, chain.now() + 600)
    # Someone submits the permit first; the post must still go through on the allowance.
    chain.client.transact(requester, chain.token.contract.functions.permit(
        stranger.address, chain.market.address, PRICE, permit.deadline, permit.v, permit.r, permit.s))
    job_id = chain.market.post_job_with_permit(stranger, chain.request(price=PRICE), permit)
    assert chain.market.get_job(job_id).state is JobState.OPEN


def test_post_job_without_allowance_reverts_with_token_error(chain: Chain, stranger) -> None:
    with reverts("ERC20InsufficientAllowance", chain.market.address, 0, PRICE):
        chain.market.post_job(stranger, chain.request(price=PRICE))


@pytest.mark.parametrize(("field", "value", "error", "args"), [
    ("num_tasks", 0, "InvalidNumTasks", (0,)),
    ("price", 0, "InvalidPrice", (0,)),
    ("exec_window", 59, "InvalidExecWindow", (59, 60, 30 * 86_400)),
    ("exec_window", 30 * 86_400 + 1, "InvalidExecWindow", (30 * 86_400 + 1, 60, 30 * 86_400)),
    ("sample_rate_bps", 499, "SampleRateOutOfBounds", (499, 500, 10_000)),
    ("sample_rate_bps", 10_001, "SampleRateOutOfBounds", (10_001, 500, 10_000)),
    ("sample_tasks", 0, "InvalidSampleTasks", (0, 64)),
    ("sample_tasks", 65, "InvalidSampleTasks", (65, 64)),
])
def test_post_job_rejects_invalid_request(chain: Chain, requester, field, value, error, args) -> None:
    chain.approve(requester)
    with reverts(error, *args):
        chain.market.post_job(requester, chain.request(**{field: value}))


def test_post_job_rejects_claim_by_in_the_past(chain: Chain, requester) -> None:
    chain.approve(requester)
    past = chain.now() - 1
    with pytest.raises(ContractError) as caught:
        chain.market.post_job(requester, chain.request(claim_by=past))
    assert caught.value.name == "InvalidClaimBy"
    claim_by, block_time = caught.value.values
    assert claim_by == past
    assert block_time > past


# ───────────────────────────────────────────── cancelling


def test_cancel_job_credits_escrow_back(chain: Chain, requester) -> None:
    job_id = chain.post(requester, price=PRICE)
    receipt = chain.market.cancel_job(requester, job_id)
    status = chain.market.get_job(job_id)
    assert status.state is JobState.CANCELLED
    assert status.terms_hash == b"\0" * 32
    assert chain.market.credits(requester.address) == PRICE
    assert credited(chain, receipt["blockNumber"], CreditKind.REFUND) == [(requester.address, PRICE)]
    before = chain.token.balance_of(requester.address)
    chain.market.withdraw(requester)
    assert chain.token.balance_of(requester.address) == before + PRICE
    assert chain.market.credits(requester.address) == 0


def test_cancel_job_by_someone_else_reverts(chain: Chain, requester, stranger) -> None:
    job_id = chain.post(requester)
    with reverts("NotRequester", job_id, stranger.address):
        chain.market.cancel_job(stranger, job_id)


def test_cancel_claimed_job_reverts(staffed: Chain, requester, provider) -> None:
    job_id = staffed.post(requester)
    staffed.market.claim_job(provider, job_id)
    with reverts("WrongState", job_id, JobState.CLAIMED, JobState.OPEN):
        staffed.market.cancel_job(requester, job_id)


def test_unknown_job_reverts(staffed: Chain, requester, provider) -> None:
    job_id = staffed.post(requester)
    terms = staffed.market.terms_of(job_id)
    with reverts("JobNotFound", 999):
        staffed.market.claim_job(provider, 999, terms)
    with reverts("JobNotFound", 999):
        staffed.market.submit_result(provider, 999, OUTPUT_CID, b"\1" * 32)


def test_wrong_terms_revert(staffed: Chain, requester, provider) -> None:
    job_id = staffed.post(requester, price=PRICE)
    forged = dataclasses.replace(staffed.market.terms_of(job_id), price=PRICE // 10)
    with reverts("TermsMismatch", job_id):
        staffed.market.claim_job(provider, job_id, forged)


# ───────────────────────────────────────────── claiming


def test_claim_locks_collateral_with_deadline(staffed: Chain, requester, provider) -> None:
    job_id = staffed.post(requester, price=PRICE, exec_window=600)
    receipt = staffed.market.claim_job(provider, job_id)
    claimed_at = staffed.client.w3.eth.get_block(receipt["blockNumber"])["timestamp"]
    status = staffed.market.get_job(job_id)
    assert status.state is JobState.CLAIMED
    assert status.provider == provider.address
    assert status.stamp == claimed_at + 600
    stake = staffed.market.provider_stake(provider.address)
    assert stake.locked == PRICE * 5_000 // BPS
    assert stake.stake == 1_000 * WEI


def test_claim_requires_registration(chain: Chain, requester, stranger) -> None:
    job_id = chain.post(requester)
    with reverts("NotRegistered", stranger.address, Role.PROVIDER):
        chain.market.claim_job(stranger, job_id)


def test_claim_requires_free_stake_for_collateral(chain: Chain, requester, provider) -> None:
    chain.register(provider, Role.PROVIDER, 100 * WEI)
    job_id = chain.post(requester, price=1_000 * WEI)
    with reverts("InsufficientStake", provider.address, 100 * WEI, 500 * WEI):
        chain.market.claim_job(provider, job_id)


def test_claim_after_slash_below_minimum_reverts(chain: Chain, requester, provider) -> None:
    chain.register(provider, Role.PROVIDER, 150 * WEI)
    job_id = chain.post(requester, price=200 * WEI, exec_window=60)
    chain.market.claim_job(provider, job_id)
    chain.increase_time(61)
    chain.market.reclaim_expired(requester, job_id)
    assert chain.market.provider_stake(provider.address).stake == 50 * WEI
    with reverts("InsufficientStake", provider.address, 50 * WEI, 100 * WEI):
        chain.market.claim_job(provider, chain.post(requester, price=10 * WEI))


def test_claim_after_claim_by_reverts(staffed: Chain, requester, provider) -> None:
    claim_by = staffed.now() + 100
    job_id = staffed.post(requester, claim_by=claim_by)
    staffed.increase_time(200)
    with reverts("ClaimWindowClosed", job_id, claim_by):
        staffed.market.claim_job(provider, job_id)


def test_claim_twice_reverts(staffed: Chain, requester, provider) -> None:
    job_id = staffed.post(requester)
    staffed.market.claim_job(provider, job_id)
    with reverts("WrongState", job_id, JobState.CLAIMED, JobState.OPEN):
        staffed.market.claim_job(provider, job_id)


# ───────────────────────────────────────────── expired claims


def test_reclaim_expired_slashes_collateral_to_requester_and_reopens(staffed: Chain, requester, provider,
                                                                       stranger) -> None:
    job_id = staffed.post(requester, price=PRICE, exec_window=60)
    staffed.market.claim_job(provider, job_id)
    staffed.increase_time(61)
    receipt = staffed.market.reclaim_expired(stranger, job_id)
    collateral = PRICE * 5_000 // BPS
    assert staffed.market.get_job(job_id).state is JobState.OPEN
    stake = staffed.market.provider_stake(provider.address)
    assert (stake.stake, stake.locked) == (1_000 * WEI - collateral, 0)
    assert credited(staffed, receipt["blockNumber"], CreditKind.SLASH_COMPENSATION) == [
        (requester.address, collateral)]
    # Reopened: another provider can take it.
    staffed.register(stranger, Role.PROVIDER)
    staffed.market.claim_job(stranger, job_id)
    assert staffed.market.get_job(job_id).provider == stranger.address


def test_reclaim_before_deadline_reverts(staffed: Chain, requester, provider) -> None:
    job_id = staffed.post(requester)
    staffed.market.claim_job(provider, job_id)
    deadline = staffed.market.get_job(job_id).stamp
    with reverts("SubmitDeadlineNotReached", job_id, deadline):
        staffed.market.reclaim_expired(requester, job_id)


# ───────────────────────────────────────────── submitting


def test_submit_result_commits_root_and_seed_block(staffed: Chain, requester, provider) -> None:
    job_id = staffed.post(requester)
    staffed.market.claim_job(provider, job_id)
    root = bytes(range(32))
    receipt = staffed.market.submit_result(provider, job_id, OUTPUT_CID, root)
    status = staffed.market.get_job(job_id)
    assert status.state is JobState.SUBMITTED
    assert status.seed_block == receipt["blockNumber"] + 1
    assert status.verifier_count == 1
    event = staffed.market.contract.events.ResultSubmitted().process_receipt(receipt, errors=DISCARD)[0]["args"]
    assert (event["outputCid"], bytes(event["resultRoot"]), event["seedBlock"]) == (
        OUTPUT_CID, root, receipt["blockNumber"] + 1)


def test_submit_by_someone_else_reverts(staffed: Chain, requester, provider, stranger) -> None:
    job_id = staffed.post(requester)
    staffed.market.claim_job(provider, job_id)
    with reverts("NotProvider", job_id, stranger.address):
        staffed.market.submit_result(stranger, job_id, OUTPUT_CID, b"\1" * 32)


def test_submit_after_deadline_reverts(staffed: Chain, requester, provider) -> None:
    job_id = staffed.post(requester, exec_window=60)
    staffed.market.claim_job(provider, job_id)
    deadline = staffed.market.get_job(job_id).stamp
    staffed.increase_time(120)
    with reverts("SubmitDeadlinePassed", job_id, deadline):
        staffed.market.submit_result(provider, job_id, OUTPUT_CID, b"\1" * 32)


def test_submit_unclaimed_job_reverts(staffed: Chain, requester, provider) -> None:
    job_id = staffed.post(requester)
    with reverts("WrongState", job_id, JobState.OPEN, JobState.CLAIMED):
        staffed.market.submit_result(provider, job_id, OUTPUT_CID, b"\1" * 32)


# ───────────────────────────────────────────── finalizing


def test_finalize_after_window_pays_provider_and_protocol(staffed: Chain, requester, provider, stranger) -> None:
    price = 123_456_789_012_345_679  # odd, so that rounding shows
    job_id = staffed.submitted_job(requester, provider, price=price)
    terms = staffed.market.terms_of(job_id)
    staffed.increase_time(terms.audit_window + 1)
    staffed.market.finalize(stranger, job_id)
    split = terms.split(audited=False)
    assert staffed.market.get_job(job_id).state is JobState.FINALIZED
    assert staffed.market.credits(provider.address) == split.provider
    assert staffed.market.protocol_fees() == split.protocol == price * 250 // BPS
    assert split.provider + split.protocol == price  # no wei lost
    assert staffed.market.provider_stake(provider.address).locked == 0
    treasury = staffed.market.treasury()
    before = staffed.token.balance_of(treasury)
    staffed.market.withdraw_protocol_fees(stranger)
    assert staffed.token.balance_of(treasury) == before + split.protocol


def test_finalize_during_audit_window_reverts(staffed: Chain, requester, provider) -> None:
    job_id = staffed.submitted_job(requester, provider)
    end = staffed.market.get_job(job_id).stamp + staffed.market.terms_of(job_id).audit_window
    with reverts("AuditWindowOpen", job_id, end):
        staffed.market.finalize(requester, job_id)


def test_finalize_twice_reverts(staffed: Chain, requester, provider) -> None:
    job_id = staffed.submitted_job(requester, provider)
    staffed.increase_time(staffed.market.terms_of(job_id).audit_window + 1)
    staffed.market.finalize(requester, job_id)
    with reverts("WrongState", job_id, JobState.FINALIZED, JobState.SUBMITTED):
        staffed.market.finalize(requester, job_id)


def test_withdraw_with_nothing_credited_reverts(chain: Chain, stranger) -> None:
    with reverts("NothingToWithdraw", stranger.address):
        chain.market.withdraw(stranger)
    with reverts("NothingToWithdraw", chain.market.treasury()):
        chain.market.withdraw_protocol_fees(stranger)
