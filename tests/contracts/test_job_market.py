"""JobMarket's job lifecycle against a real anvil: posting, gating, claims, expiries, submission and
settlement, with every error asserted by name and arguments."""

from __future__ import annotations

import dataclasses

import pytest

from marketplace.chain.deployment import DEFAULT_PARAMS, DEFAULT_TERMS, WEI
from marketplace.errors import ContractError
from marketplace.protocol import BPS, SYNC_BLOCKS, Allowlist, CreditKind, JobState, Role, Terms, Verdict, audit_fee
from tests.conftest import OUTPUT_CID, SPEC_CID, Chain, reverts
from tests.contracts.support import burned_in, dev, ledger, name32, slashes

PRICE = 20 * WEI
MIN_TASK_PRICE = DEFAULT_PARAMS.min_task_price
# Chain.request's defaults: 16 tasks, 4 sampled, so the audit fee is 4/16 of 2x the price.
FEE = audit_fee(PRICE, 16, 4, DEFAULT_TERMS.verifier_fee_bps)
COLLATERAL = PRICE * DEFAULT_TERMS.collateral_bps // BPS


# ───────────────────────────────────────────── posting


def test_post_job_escrows_price_plus_audit_fee_and_commits_terms(chain: Chain, requester) -> None:
    before = chain.token.balance_of(requester.address)
    chain.approve(requester)
    request = chain.request(price=PRICE)
    receipt_job = chain.market.post_job(requester, request)
    status = chain.market.get_job(receipt_job)
    terms = chain.market.terms_of(receipt_job)
    assert status.state is JobState.OPEN
    assert status.terms_hash == terms.hash()
    assert (terms.requester, terms.price, terms.num_tasks, terms.sample_tasks) == (requester.address, PRICE, 16, 4)
    assert (terms.protocol_fee_bps, terms.verifier_fee_bps, terms.collateral_bps, terms.audit_window,
            terms.challenge_window) == chain.market.terms().as_tuple()
    assert terms.audit_fee == FEE == PRICE // 2 == chain.market.audit_fee(PRICE, 16, 4, terms.verifier_fee_bps)
    assert request.escrow(chain.market.terms()) == terms.escrow == PRICE + FEE
    assert chain.market.spec_cid(receipt_job) == SPEC_CID
    assert chain.token.balance_of(requester.address) == before - PRICE - FEE
    assert chain.token.balance_of(chain.market.address) == PRICE + FEE


def test_post_job_with_permit_needs_no_approval(chain: Chain, stranger) -> None:
    request = chain.request(price=PRICE)
    assert chain.token.allowance(stranger.address, chain.market.address) == 0
    permit = chain.token.sign_permit(stranger, chain.market.address, PRICE + FEE, chain.now() + 600)
    job_id = chain.market.post_job_with_permit(stranger, request, permit)
    assert chain.market.get_job(job_id).state is JobState.OPEN
    assert chain.token.balance_of(chain.market.address) == PRICE + FEE


def test_post_job_with_front_run_permit_uses_the_allowance_it_set(chain: Chain, stranger, requester) -> None:
    permit = chain.token.sign_permit(stranger, chain.market.address, PRICE + FEE, chain.now() + 600)
    # Someone submits the permit first; the post must still go through on the allowance.
    chain.client.transact(requester, chain.token.contract.functions.permit(
        stranger.address, chain.market.address, PRICE + FEE, permit.deadline, permit.v, permit.r, permit.s))
    job_id = chain.market.post_job_with_permit(stranger, chain.request(price=PRICE), permit)
    assert chain.market.get_job(job_id).state is JobState.OPEN


def test_post_job_without_allowance_reverts_with_token_error(chain: Chain, stranger) -> None:
    with reverts("ERC20InsufficientAllowance", chain.market.address, 0, PRICE + FEE):
        chain.market.post_job(stranger, chain.request(price=PRICE))


@pytest.mark.parametrize(("field", "value", "error", "args"), [
    ("num_tasks", 0, "InvalidNumTasks", (0,)),
    ("exec_window", 59, "InvalidExecWindow", (59, 60, 30 * 86_400)),
    ("exec_window", 30 * 86_400 + 1, "InvalidExecWindow", (30 * 86_400 + 1, 60, 30 * 86_400)),
    ("sample_tasks", 0, "InvalidSampleTasks", (0, 64)),
    ("sample_tasks", 65, "InvalidSampleTasks", (65, 64)),
])
def test_post_job_rejects_invalid_request(chain: Chain, requester, field, value, error, args) -> None:
    chain.approve(requester)
    with reverts(error, *args):
        chain.market.post_job(requester, chain.request(**{field: value}))


@pytest.mark.parametrize("price", [0, 1, 16 * MIN_TASK_PRICE - 1])
def test_post_job_below_the_minimum_task_price_reverts(chain: Chain, requester, price) -> None:
    chain.approve(requester)
    with reverts("InvalidPrice", price, 16 * MIN_TASK_PRICE):
        chain.market.post_job(requester, chain.request(price=price, num_tasks=16))


def test_post_job_above_what_a_verifier_slash_covers_reverts(chain: Chain, requester) -> None:
    # A wrong verdict must cost its verifier at least the price: verifierSlashBps of the minimum stake.
    maximum = DEFAULT_PARAMS.min_verifier_stake * DEFAULT_PARAMS.verifier_slash_bps // BPS
    chain.approve(requester)
    with reverts("PriceAboveMaximum", maximum + 1, maximum):
        chain.market.post_job(requester, chain.request(price=maximum + 1, num_tasks=320))
    assert chain.market.terms_of(chain.post(requester, price=maximum, num_tasks=320)).price == maximum


@pytest.mark.parametrize(("num_tasks", "sample_tasks"), [(16, 4), (1, 4), (3, 64), (40, 1)])
def test_post_job_whose_sample_is_worth_more_than_a_lazy_pass_risks_reverts(chain: Chain, requester, num_tasks,
                                                                            sample_tasks) -> None:
    # The sampled tasks are worth at most P_max / 80 (6.25 WEBI): a verifier skipping their re-run
    # must save less than the slash it risks (scripts/bench_economics.py, lazy_pass).
    cap = DEFAULT_PARAMS.max_sample_value
    assert cap == 500 * WEI // 80
    sampled = min(num_tasks, sample_tasks)
    price = cap * num_tasks // sampled  # exactly at the cap
    chain.approve(requester)
    over = price + num_tasks
    with reverts("SampleValueAboveMaximum", over * sampled // num_tasks, cap):
        chain.market.post_job(requester, chain.request(price=over, num_tasks=num_tasks, sample_tasks=sample_tasks))
    job_id = chain.post(requester, price=price, num_tasks=num_tasks, sample_tasks=sample_tasks)
    assert chain.market.terms_of(job_id).price == price
    # The SDK says so before it uploads anything.
    with pytest.raises(ValueError, match="sampled tasks are worth"):
        chain.market.params().check_request(over, num_tasks, sample_tasks)
    chain.market.params().check_request(price, num_tasks, sample_tasks)


def test_post_job_at_the_minimum_task_price_pays_for_its_audit(chain: Chain, requester) -> None:
    job_id = chain.post(requester, price=16 * MIN_TASK_PRICE, num_tasks=16, sample_tasks=1)
    # One sampled task at 2x the per-task price.
    assert chain.market.terms_of(job_id).audit_fee == 2 * MIN_TASK_PRICE


def test_post_job_rejects_claim_by_in_the_past(chain: Chain, requester) -> None:
    chain.approve(requester)
    past = chain.now() - 1
    with pytest.raises(ContractError) as caught:
        chain.market.post_job(requester, chain.request(claim_by=past))
    assert caught.value.name == "InvalidClaimBy"
    claim_by, block_time = caught.value.values
    assert claim_by == past
    assert block_time > past


@pytest.mark.parametrize(("bound", "name", "change", "have"), [
    ("max_protocol_fee_bps", "protocolFeeBps", {"protocol_fee_bps": 300}, 300),
    ("max_verifier_fee_bps", "verifierFeeBps", {"verifier_fee_bps": 25_000}, 25_000),
    ("min_collateral_bps", "collateralBps", {"collateral_bps": 4_000}, 4_000),
])
def test_post_job_reverts_when_new_terms_are_worse_than_the_request_bounds(chain: Chain, requester, bound, name,
                                                                            change, have) -> None:
    current = chain.market.terms()
    accepted = {"max_protocol_fee_bps": current.protocol_fee_bps, "max_verifier_fee_bps": current.verifier_fee_bps,
                "min_collateral_bps": current.collateral_bps}
    # The requester accepts exactly the terms in force, so a change of any of them in the same block
    # (the owner front-running the post) makes the post revert instead of binding it.
    chain.post(requester, **accepted)
    worse = dataclasses.replace(current, **change)
    chain.govern(chain.market.contract.functions.setTerms(worse.as_tuple()))
    assert chain.market.terms() == worse
    with reverts("TermsOutOfBounds", name32(name), have, accepted[bound]):
        chain.market.post_job(requester, chain.request(**accepted))
    # Without that bound the post goes through, on the new terms.
    relaxed = {k: v for k, v in accepted.items() if k != bound}
    job_id = chain.post(requester, **relaxed)
    assert chain.market.terms_of(job_id).as_tuple()[6:11] == worse.as_tuple()


@pytest.mark.parametrize(("bound", "value", "name", "have"), [
    ("max_protocol_fee_bps", 249, "protocolFeeBps", 250),
    ("max_verifier_fee_bps", 19_999, "verifierFeeBps", 20_000),
    ("min_collateral_bps", 5_001, "collateralBps", 5_000),
])
def test_post_job_reverts_when_terms_in_force_exceed_a_bound(chain: Chain, requester, bound, value, name,
                                                              have) -> None:
    chain.approve(requester)
    with reverts("TermsOutOfBounds", name32(name), have, value):
        chain.market.post_job(requester, chain.request(**{bound: value}))


# ───────────────────────────────────────────── cancelling


def test_cancel_job_credits_price_and_audit_fee_back(chain: Chain, requester) -> None:
    job_id = chain.post(requester, price=PRICE)
    receipt = chain.market.cancel_job(requester, job_id)
    status = chain.market.get_job(job_id)
    assert status.state is JobState.CANCELLED
    assert status.terms_hash == b"\0" * 32
    assert chain.emitted(receipt, "JobCancelled") == [{"jobId": job_id}]
    assert ledger(chain, receipt) == [(requester.address, CreditKind.REFUND, PRICE + FEE)]
    assert chain.market.credits(requester.address) == PRICE + FEE
    before = chain.token.balance_of(requester.address)
    chain.market.withdraw(requester)
    assert chain.token.balance_of(requester.address) == before + PRICE + FEE
    assert chain.market.credits(requester.address) == 0
    assert chain.token.balance_of(chain.market.address) == 0


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
    with reverts("JobNotFound", 999):
        staffed.market.lock_seed(provider, 999, terms)


def test_wrong_terms_revert(staffed: Chain, requester, provider) -> None:
    job_id = staffed.post(requester, price=PRICE)
    forged = dataclasses.replace(staffed.market.terms_of(job_id), audit_fee=FEE * 2)
    with reverts("TermsMismatch", job_id):
        staffed.market.claim_job(provider, job_id, forged)
    with reverts("TermsMismatch", job_id):
        staffed.market.cancel_job(requester, job_id, forged)


# ───────────────────────────────────────────── claiming and its gates


def test_claim_locks_collateral_with_deadline(staffed: Chain, requester, provider) -> None:
    job_id = staffed.post(requester, price=PRICE, exec_window=600)
    receipt = staffed.market.claim_job(provider, job_id)
    claimed_at = staffed.client.w3.eth.get_block(receipt["blockNumber"])["timestamp"]
    status = staffed.market.get_job(job_id)
    assert status.state is JobState.CLAIMED
    assert (status.provider, status.stamp) == (provider.address, claimed_at + 600)
    assert staffed.emitted(receipt, "JobClaimed") == [
        {"jobId": job_id, "provider": provider.address, "collateral": COLLATERAL, "deadline": claimed_at + 600}]
    stake = staffed.market.provider_stake(provider.address)
    assert (stake.stake, stake.locked) == (1_000 * WEI, COLLATERAL)


def test_claim_requires_registration(chain: Chain, requester, stranger) -> None:
    job_id = chain.post(requester)
    with reverts("NotRegistered", stranger.address, Role.PROVIDER):
        chain.market.claim_job(stranger, job_id)


def test_claim_requires_free_stake_for_collateral(chain: Chain, requester, provider) -> None:
    chain.register(provider, Role.PROVIDER, 100 * WEI)
    job_id = chain.post(requester, price=500 * WEI, num_tasks=320)
    with reverts("InsufficientStake", provider.address, 100 * WEI, 250 * WEI):
        chain.market.claim_job(provider, job_id)


def test_claim_below_the_requests_minimum_provider_stake_reverts(staffed: Chain, requester, provider,
                                                                 stranger) -> None:
    job_id = staffed.post(requester, min_provider_stake=2_000 * WEI)
    assert staffed.market.terms_of(job_id).min_provider_stake == 2_000 * WEI
    with reverts("InsufficientStake", provider.address, 1_000 * WEI, 2_000 * WEI):
        staffed.market.claim_job(provider, job_id)
    staffed.register(stranger, Role.PROVIDER, 2_000 * WEI)
    staffed.market.claim_job(stranger, job_id)
    assert staffed.market.get_job(job_id).provider == stranger.address


def test_claim_after_slash_below_the_network_minimum_reverts(chain: Chain, requester, provider) -> None:
    chain.register(provider, Role.PROVIDER, 150 * WEI)
    job_id = chain.post(requester, price=200 * WEI, num_tasks=128, exec_window=60)
    chain.market.claim_job(provider, job_id)
    chain.increase_time(61)
    chain.market.reclaim_expired(requester, job_id)
    assert chain.market.provider_stake(provider.address).stake == 50 * WEI
    # The request asks for less than the network minimum: the network minimum applies.
    with reverts("InsufficientStake", provider.address, 50 * WEI, 100 * WEI):
        chain.market.claim_job(provider, chain.post(requester, price=10 * WEI, min_provider_stake=WEI))


def test_allowlisted_job_accepts_listed_providers_with_their_proof(chain: Chain, requester, provider,
                                                                    stranger) -> None:
    listed = [dev(i) for i in (5, 6, 7)]
    for account in [*listed, provider]:
        chain.register(account, Role.PROVIDER)
    allowlist = Allowlist(tuple(a.address for a in listed))
    job_id = chain.post(requester, allowlist_root=allowlist.root)
    assert chain.market.terms_of(job_id).allowlist_root == allowlist.root
    with reverts("NotAllowlisted", job_id, provider.address):
        chain.market.claim_job(provider, job_id)
    # Someone else's proof proves someone else.
    with reverts("NotAllowlisted", job_id, provider.address):
        chain.market.claim_job(provider, job_id, proof=allowlist.proof(listed[0].address))
    with reverts("NotAllowlisted", job_id, listed[1].address):
        chain.market.claim_job(listed[1], job_id, proof=allowlist.proof(listed[0].address))
    chain.market.claim_job(listed[1], job_id, proof=allowlist.proof(listed[1].address))
    assert chain.market.get_job(job_id).provider == listed[1].address
    with pytest.raises(KeyError):
        allowlist.proof(stranger.address)


def test_allowlist_and_minimum_stake_gate_together(chain: Chain, requester) -> None:
    small, large = dev(5), dev(6)
    chain.register(small, Role.PROVIDER, 100 * WEI)
    chain.register(large, Role.PROVIDER, 5_000 * WEI)
    allowlist = Allowlist((small.address, large.address))
    job_id = chain.post(requester, allowlist_root=allowlist.root, min_provider_stake=1_000 * WEI)
    with reverts("InsufficientStake", small.address, 100 * WEI, 1_000 * WEI):
        chain.market.claim_job(small, job_id, proof=allowlist.proof(small.address))
    chain.market.claim_job(large, job_id, proof=allowlist.proof(large.address))


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


def test_reclaim_expired_slashes_collateral_rewards_the_caller_and_burns_the_rest(staffed: Chain, requester,
                                                                                   provider, stranger) -> None:
    job_id = staffed.post(requester, price=PRICE, exec_window=60)
    staffed.market.claim_job(provider, job_id)
    staffed.increase_time(61)
    receipt = staffed.market.reclaim_expired(stranger, job_id)
    reward = COLLATERAL * DEFAULT_PARAMS.reward_bps // BPS
    assert staffed.market.get_job(job_id).state is JobState.OPEN
    stake = staffed.market.provider_stake(provider.address)
    assert (stake.stake, stake.locked) == (1_000 * WEI - COLLATERAL, 0)
    assert staffed.emitted(receipt, "ClaimExpired") == [
        {"jobId": job_id, "provider": provider.address, "slashed": COLLATERAL}]
    assert slashes(staffed, receipt) == [(provider.address, Role.PROVIDER, COLLATERAL, 0)]
    assert ledger(staffed, receipt) == [(stranger.address, CreditKind.REWARD, reward)]
    assert burned_in(staffed, receipt) == COLLATERAL - reward == staffed.market.burned()
    # The requester is made whole by the reopened job, not paid out of the slash.
    assert staffed.market.credits(requester.address) == 0
    staffed.register(stranger, Role.PROVIDER)
    staffed.market.claim_job(stranger, job_id)
    assert staffed.market.get_job(job_id).provider == stranger.address


def test_reclaim_before_deadline_reverts(staffed: Chain, requester, provider) -> None:
    job_id = staffed.post(requester)
    staffed.market.claim_job(provider, job_id)
    deadline = staffed.market.get_job(job_id).stamp
    with reverts("SubmitDeadlineNotReached", job_id, deadline):
        staffed.market.reclaim_expired(requester, job_id)


def test_reclaim_of_an_open_job_reverts(staffed: Chain, requester) -> None:
    job_id = staffed.post(requester)
    with reverts("WrongState", job_id, JobState.OPEN, JobState.CLAIMED):
        staffed.market.reclaim_expired(requester, job_id)


# ───────────────────────────────────────────── submitting


def test_submit_result_commits_root_and_seed_block(staffed: Chain, requester, provider) -> None:
    job_id = staffed.post(requester)
    staffed.market.claim_job(provider, job_id)
    root = bytes(range(32))
    receipt = staffed.market.submit_result(provider, job_id, OUTPUT_CID, root)
    status = staffed.market.get_job(job_id)
    submitted_at = staffed.client.w3.eth.get_block(receipt["blockNumber"])["timestamp"]
    assert (status.state, status.stamp, status.seed_block) == (
        JobState.SUBMITTED, submitted_at, receipt["blockNumber"] + 1)
    assert staffed.market.result_root(job_id) == root
    assert staffed.emitted(receipt, "ResultSubmitted") == [{
        "jobId": job_id, "provider": provider.address, "outputCid": OUTPUT_CID, "resultRoot": root,
        "seedBlock": receipt["blockNumber"] + 1}]


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


def test_submit_refuses_block_numbers_past_uint32(staffed: Chain, requester, provider) -> None:
    job_id = staffed.post(requester)
    staffed.market.claim_job(provider, job_id)
    call = staffed.market.contract.functions.submitResult(job_id, OUTPUT_CID, b"\1" * 32)
    tx = {"from": provider.address, "to": staffed.market.address, "data": call._encode_transaction_data()}
    reply = staffed.client.w3.provider.make_request(  # type: ignore[arg-type]
        "eth_call", [tx, "latest", {}, {"number": hex(2**32 - 1)}])
    error = staffed.client.decoder.decode(reply["error"]["data"])
    # The seed block would be 2**32, the first block of an epoch: moved to the last of its sync phase.
    assert (error.name, error.values) == ("BlockNumberTooLarge", (2**32 + SYNC_BLOCKS - 1,))


# ───────────────────────────────────────────── settling


def test_a_submitted_job_is_never_settled_unaudited(staffed: Chain, requester, provider) -> None:
    job_id = staffed.submitted_job(requester, provider)
    staffed.increase_time(30 * 86_400)
    with reverts("WrongState", job_id, JobState.SUBMITTED, JobState.AUDITED):
        staffed.market.finalize(requester, job_id)


def test_finalize_after_the_challenge_window_pays_provider_verifier_and_protocol(staffed: Chain, requester,
                                                                                 provider, verifier,
                                                                                 stranger) -> None:
    price = 23_456_789_012_345_678_901  # odd, so that rounding shows
    job_id = staffed.submitted_job(requester, provider, price=price)
    terms = staffed.market.terms_of(job_id)
    staffed.verdict(verifier, job_id, Verdict.PASS)
    receipt = staffed.settle(job_id)
    split = terms.split()
    assert staffed.market.get_job(job_id).state is JobState.FINALIZED
    assert staffed.emitted(receipt, "JobSettled") == [{"jobId": job_id, "verdict": Verdict.PASS}]
    assert ledger(staffed, receipt) == [
        (provider.address, CreditKind.PROVIDER_PAYMENT, split.provider),
        (staffed.market.treasury(), CreditKind.PROTOCOL_FEE, split.protocol),
        (verifier.address, CreditKind.VERIFIER_FEE, terms.audit_fee),
    ]
    assert staffed.market.credits(provider.address) == split.provider
    assert staffed.market.credits(verifier.address) == terms.audit_fee
    assert staffed.market.protocol_fees() == split.protocol == price * 250 // BPS
    assert split.provider + split.protocol == price  # no wei lost
    assert staffed.market.credits(requester.address) == 0
    assert staffed.market.provider_stake(provider.address).locked == 0
    assert staffed.market.verifier_stake(verifier.address).duties == 0
    treasury = staffed.market.treasury()
    before = staffed.token.balance_of(treasury)
    staffed.market.withdraw_protocol_fees(stranger)
    assert staffed.token.balance_of(treasury) == before + split.protocol


def test_finalize_during_the_challenge_window_reverts(staffed: Chain, requester, provider, verifier) -> None:
    job_id = staffed.submitted_job(requester, provider)
    staffed.verdict(verifier, job_id, Verdict.PASS)
    deadline = staffed.market.audit_of(job_id).deadline
    with reverts("DeadlineNotReached", job_id, deadline):
        staffed.market.finalize(requester, job_id)


def test_finalize_twice_reverts(staffed: Chain, requester, provider, verifier) -> None:
    job_id = staffed.submitted_job(requester, provider)
    staffed.verdict(verifier, job_id, Verdict.PASS)
    staffed.settle(job_id)
    with reverts("WrongState", job_id, JobState.FINALIZED, JobState.AUDITED):
        staffed.market.finalize(requester, job_id)


def test_withdraw_with_nothing_credited_reverts(chain: Chain, stranger) -> None:
    with reverts("NothingToWithdraw", stranger.address):
        chain.market.withdraw(stranger)
    with reverts("NothingToWithdraw", chain.market.treasury()):
        chain.market.withdraw_protocol_fees(stranger)


def test_terms_changes_apply_only_to_new_jobs(staffed: Chain, requester, provider, verifier) -> None:
    old_job = staffed.submitted_job(requester, provider)
    new_terms = Terms(protocol_fee_bps=1_000, verifier_fee_bps=30_000, collateral_bps=2_000, audit_window=120,
                      challenge_window=120)
    staffed.govern(staffed.market.contract.functions.setTerms(new_terms.as_tuple()))
    new_job = staffed.post(requester)
    old, new = staffed.market.terms_of(old_job), staffed.market.terms_of(new_job)
    assert (old.protocol_fee_bps, old.audit_fee) == (DEFAULT_TERMS.protocol_fee_bps, FEE)
    assert (new.protocol_fee_bps, new.audit_fee, new.challenge_window) == (1_000, PRICE * 4 * 3 // 16, 120)
    staffed.verdict(verifier, old_job, Verdict.PASS)
    staffed.settle(old_job)
    assert staffed.market.protocol_fees() == old.split().protocol
