"""The audit of a submitted job: the seed and the draw, the verdict and its secret, settlement by
verdict, redraws after a missed deadline, and reveal demands; with the Python mirror of every
derivation.

Every path is deterministic: the draw follows block hashes, so each test leaves exactly one
eligible verifier (or reads who was drawn and asserts what must hold for whoever it is).
"""

from __future__ import annotations

import pytest
from eth_account.signers.local import LocalAccount

from marketplace.chain.deployment import DEFAULT_PARAMS, DEFAULT_TERMS, WEI
from marketplace.protocol import (
    BPS,
    EPOCH_BLOCKS,
    SEED_HORIZON,
    SYNC_BLOCKS,
    ZERO_ADDRESS,
    ZERO_HASH,
    CreditKind,
    JobState,
    Role,
    Verdict,
    draw_seed,
    next_sync_block,
    sample_seed,
    sampled_task_indices,
    secret_hash,
)
from marketplace.results import MerkleTree
from tests.conftest import OUTPUT_CID, Chain, reverts
from tests.contracts.support import (
    burned_in,
    dev,
    draw_room,
    drawing_lock,
    ledger,
    next_seed_block,
    outputs_for,
    ready_job,
    slashes,
    submit_outputs,
    sync_room,
)

PRICE = 20 * WEI
EVIDENCE = "bafkreievidence"
NO_SHOW = DEFAULT_PARAMS.no_show_slash_bps
VERIFIER_MIN = DEFAULT_PARAMS.min_verifier_stake
REWARD = DEFAULT_PARAMS.reward_bps


def drawn_job(chain: Chain, requester: LocalAccount, provider: LocalAccount, **overrides) -> int:
    job_id = chain.submitted_job(requester, provider, **{"price": PRICE, **overrides})
    chain.draw(job_id)
    return job_id


# ───────────────────────────────────────────── the seed and the draw


def test_lock_seed_waits_for_the_seed_block(staffed: Chain, requester, provider, verifier) -> None:
    draw_room(staffed, 8)
    job_id = staffed.submitted_job(requester, provider)
    seed_block = staffed.market.get_job(job_id).seed_block
    assert seed_block == staffed.block_number() + 1
    with reverts("SeedNotReady", job_id, seed_block):  # the next block is the seed block itself
        staffed.market.lock_seed(requester, job_id)
    staffed.mine(1)  # the seed block exists: the next block can see its hash
    receipt = staffed.market.lock_seed(requester, job_id)
    assert staffed.emitted(receipt, "VerifierDrawn")[0]["verifier"] == verifier.address


def test_lock_seed_draws_the_verifier_with_the_block_hash_seed(staffed: Chain, requester, provider, verifier,
                                                                stranger) -> None:
    job_id = ready_job(staffed, requester, provider)
    seed_block = staffed.market.get_job(job_id).seed_block
    receipt = staffed.market.lock_seed(stranger, job_id)  # anyone may
    block = staffed.client.w3.eth.get_block(receipt["blockNumber"])
    seed = draw_seed(bytes(staffed.client.w3.eth.get_block(seed_block)["hash"]), job_id, 0)
    deadline = block["timestamp"] + DEFAULT_TERMS.audit_window
    assert staffed.emitted(receipt, "VerifierDrawn") == [
        {"jobId": job_id, "verifier": verifier.address, "seed": seed, "deadline": deadline}]
    audit = staffed.market.audit_of(job_id)
    assert (audit.verifier, audit.deadline, audit.verdict, audit.draws, audit.seed) == (
        verifier.address, deadline, Verdict.NONE, 1, seed)
    # The audit holds the verifier's commitment, not yet the secret behind it.
    assert audit.secret == staffed.market.secret_of(verifier.address) == secret_hash(staffed.secret(verifier, 0))
    assert not audit.revealed
    assert staffed.market.verifier_stake(verifier.address).duties == 1
    with reverts("SampleNotRevealed", job_id):
        staffed.market.sampled_tasks(job_id)


def test_lock_seed_twice_reverts(staffed: Chain, requester, provider, verifier) -> None:
    job_id = drawn_job(staffed, requester, provider)
    with reverts("AlreadyDrawn", job_id, verifier.address):
        staffed.market.lock_seed(requester, job_id)


def test_lock_seed_before_submission_reverts(staffed: Chain, requester, provider) -> None:
    job_id = staffed.post(requester)
    staffed.market.claim_job(provider, job_id)
    with reverts("WrongState", job_id, JobState.CLAIMED, JobState.SUBMITTED):
        staffed.market.lock_seed(requester, job_id)


def test_the_drawn_verifier_is_the_view_draw_excluding_the_parties(chain: Chain, requester, provider) -> None:
    chain.register(provider, Role.PROVIDER)
    for index, amount in zip((5, 6, 7, 8), (1, 3, 5, 7), strict=True):
        chain.register(dev(index), Role.VERIFIER, amount * VERIFIER_MIN)
    # The parties are verifiers too, with most of the stake; they are never their own verifier.
    chain.register(requester, Role.VERIFIER, 50 * VERIFIER_MIN)
    chain.register(provider, Role.VERIFIER, 50 * VERIFIER_MIN)
    for _ in range(6):
        job_id = chain.submitted_job(requester, provider)
        drawn = chain.emitted(drawing_lock(chain, job_id), "VerifierDrawn")[0]
        assert drawn["verifier"] not in (requester.address, provider.address)
        assert drawn["verifier"] == chain.market.draw_verifier(drawn["seed"], [requester.address, provider.address])


@pytest.mark.parametrize("who", ["nobody", "requester", "provider"])
def test_no_eligible_verifier_leaves_the_job_waiting_for_one(chain: Chain, requester, provider, verifier,
                                                              who) -> None:
    chain.register(provider, Role.PROVIDER)
    if who != "nobody":
        # The only verifier is a party to the job.
        chain.register(requester if who == "requester" else provider, Role.VERIFIER)
    job_id = ready_job(chain, requester, provider)
    with reverts("NoEligibleVerifier", job_id):
        chain.market.lock_seed(requester, job_id)
    assert chain.market.get_job(job_id).state is JobState.SUBMITTED
    # A verifier arrives in the next sync phase, which lies between the seed block and any draw now.
    chain.register(verifier, Role.VERIFIER)
    receipt = chain.market.lock_seed(requester, job_id)
    assert chain.emitted(receipt, "SeedRearmed") == [
        {"jobId": job_id, "seedBlock": next_seed_block(receipt["blockNumber"])}]
    assert chain.draw(job_id) == verifier.address


def test_a_verifier_without_a_secret_commitment_is_not_drawn(chain: Chain, requester, provider, verifier) -> None:
    chain.register(provider, Role.PROVIDER)
    chain.approve(verifier)
    sync_room(chain)
    chain.market.register(verifier, Role.VERIFIER, VERIFIER_MIN)  # in a sync phase, but no commitSecret
    assert (chain.market.verifier_weight(verifier.address), chain.market.verifier_count()) == (0, 0)
    job_id = ready_job(chain, requester, provider)
    with reverts("NoEligibleVerifier", job_id):
        chain.market.lock_seed(requester, job_id)
    chain.market.commit_secret(verifier, secret_hash(chain.secret(verifier, 0)))
    chain.sync(verifier.address)
    assert chain.market.verifier_weight(verifier.address) == VERIFIER_MIN
    assert chain.draw(job_id) == verifier.address


def test_an_expired_seed_is_rearmed_never_skipped(staffed: Chain, requester, provider, verifier) -> None:
    job_id = staffed.submitted_job(requester, provider)
    old_seed_block = staffed.market.get_job(job_id).seed_block
    staffed.mine(300)  # nobody drew within the 256 blocks blockhash can see
    assert staffed.block_number() - old_seed_block > SEED_HORIZON
    receipt = staffed.market.lock_seed(requester, job_id)
    new_seed_block = next_seed_block(receipt["blockNumber"])
    assert staffed.emitted(receipt, "SeedRearmed") == [{"jobId": job_id, "seedBlock": new_seed_block}]
    assert staffed.emitted(receipt, "VerifierDrawn") == []
    assert not staffed.market.audit_of(job_id).drawn
    assert staffed.market.get_job(job_id).seed_block == new_seed_block
    with reverts("WrongState", job_id, JobState.SUBMITTED, JobState.AUDITED):
        staffed.market.finalize(requester, job_id)
    assert staffed.draw(job_id) == verifier.address
    staffed.verdict(verifier, job_id, Verdict.PASS)
    staffed.settle(job_id)
    assert staffed.market.get_job(job_id).state is JobState.FINALIZED


def test_a_sync_phase_between_the_seed_block_and_the_draw_rearms_it(staffed: Chain, requester, provider,
                                                                      verifier) -> None:
    job_id = ready_job(staffed, requester, provider)
    # Weights may have changed in the next sync phase, by someone who knew the seed block's hash.
    staffed.mine(next_sync_block(staffed.block_number()) - staffed.block_number())
    receipt = staffed.market.lock_seed(requester, job_id)
    assert staffed.emitted(receipt, "SeedRearmed") == [
        {"jobId": job_id, "seedBlock": next_seed_block(receipt["blockNumber"])}]
    assert not staffed.market.audit_of(job_id).drawn
    assert staffed.draw(job_id) == verifier.address


def test_a_seed_block_is_never_an_early_sync_block(staffed: Chain, requester, provider) -> None:
    job_id = staffed.post(requester)
    staffed.market.claim_job(provider, job_id)
    # Submit in the last block of an epoch: the next block opens a sync phase, in which weights
    # may still change, so the seed is its last block.
    staffed.mine(EPOCH_BLOCKS - 2 - staffed.block_number() % EPOCH_BLOCKS)
    receipt = staffed.market.submit_result(provider, job_id, OUTPUT_CID, b"\1" * 32)
    assert (receipt["blockNumber"] + 1) % EPOCH_BLOCKS == 0
    assert staffed.market.get_job(job_id).seed_block == receipt["blockNumber"] + SYNC_BLOCKS


def test_staking_after_the_seed_block_cannot_move_the_draw(staffed: Chain, requester, provider,
                                                           verifier) -> None:
    job_id = ready_job(staffed, requester, provider)
    whale = dev(5)
    staffed.approve(whale)
    # Someone who saw the seed block's hash stakes to be drawn: outside a sync phase, in vain.
    staffed.market.register(whale, Role.VERIFIER, 100 * VERIFIER_MIN)
    staffed.market.commit_secret(whale, secret_hash(staffed.secret(whale, 0)))
    receipt = staffed.market.lock_seed(requester, job_id)
    assert staffed.emitted(receipt, "VerifierDrawn")[0]["verifier"] == verifier.address
    assert staffed.market.verifier_weight(whale.address) == 0


# ───────────────────────────────────────────── the verdict and the secret


def test_verdict_opens_the_secret_rotates_it_and_fixes_the_sample(staffed: Chain, requester, provider,
                                                                    verifier) -> None:
    job_id = drawn_job(staffed, requester, provider, num_tasks=1_000, sample_tasks=64, price=60 * WEI)
    audit = staffed.market.audit_of(job_id)
    secret, next_hash = staffed.open_secret(verifier, job_id)
    assert secret == staffed.secret(verifier, 0)
    assert next_hash == secret_hash(staffed.secret(verifier, 1))
    receipt = staffed.market.submit_verdict(verifier, job_id, Verdict.PASS, EVIDENCE, secret, next_hash)
    block = staffed.client.w3.eth.get_block(receipt["blockNumber"])
    expected_seed = sample_seed(audit.seed, secret)
    assert staffed.emitted(receipt, "VerdictSubmitted") == [{
        "jobId": job_id, "verifier": verifier.address, "verdict": Verdict.PASS, "evidenceCid": EVIDENCE,
        "sampleSeed": expected_seed}]
    assert staffed.emitted(receipt, "SecretCommitted") == [{"verifier": verifier.address, "secretHash": next_hash}]
    assert staffed.market.secret_of(verifier.address) == next_hash
    after = staffed.market.audit_of(job_id)
    assert (after.verdict, after.deadline, after.secret, after.revealed) == (
        Verdict.PASS, block["timestamp"] + DEFAULT_TERMS.challenge_window, expected_seed, True)
    assert staffed.market.get_job(job_id).state is JobState.AUDITED
    sample = sampled_task_indices(expected_seed, 1_000, 64)
    assert len(set(sample)) == 64
    assert staffed.market.sampled_tasks(job_id) == sample == staffed.market.sample_of(expected_seed, 1_000, 64)
    # The verifier's weight did not move: pending draws elsewhere stay valid.
    assert staffed.market.verifier_weight(verifier.address) == 1_000 * WEI


@pytest.mark.parametrize(("num_tasks", "sample_tasks"), [(16, 4), (3, 4), (2, 1), (10_000, 64), (7, 7)])
def test_python_sample_matches_the_contract(staffed: Chain, requester, provider, verifier, num_tasks,
                                            sample_tasks) -> None:
    dearest = DEFAULT_PARAMS.max_sample_value * num_tasks // min(num_tasks, sample_tasks)
    job_id = drawn_job(staffed, requester, provider, num_tasks=num_tasks, sample_tasks=sample_tasks,
                       price=max(num_tasks * DEFAULT_PARAMS.min_task_price, min(PRICE, dearest)))
    seed = staffed.market.audit_of(job_id).seed
    secret, _ = staffed.open_secret(verifier, job_id)
    staffed.verdict(verifier, job_id, Verdict.PASS)
    expected = sampled_task_indices(sample_seed(seed, secret), num_tasks, sample_tasks)
    assert staffed.market.sampled_tasks(job_id) == expected
    assert len(expected) == min(num_tasks, sample_tasks)
    for index in range(20):
        other = bytes([index]) * 32
        assert staffed.market.sample_of(other, num_tasks, sample_tasks) == sampled_task_indices(
            other, num_tasks, sample_tasks)


def test_one_commitment_drawn_for_two_jobs_opens_both(staffed: Chain, requester, provider, verifier) -> None:
    first, second = drawn_job(staffed, requester, provider), drawn_job(staffed, requester, provider)
    assert staffed.market.audit_of(first).secret == staffed.market.audit_of(second).secret
    secret, next_hash = staffed.open_secret(verifier, first)
    staffed.market.submit_verdict(verifier, first, Verdict.PASS, EVIDENCE, secret, next_hash)
    # The second audit still holds the old commitment; opening it does not move the current one.
    unused = secret_hash(staffed.secret(verifier, 7))
    staffed.market.submit_verdict(verifier, second, Verdict.PASS, EVIDENCE, secret, unused)
    assert staffed.market.secret_of(verifier.address) == next_hash
    assert staffed.market.audit_of(second).secret == sample_seed(staffed.market.audit_of(second).seed, secret)


def test_verdict_by_an_unassigned_account_reverts(staffed: Chain, requester, provider, verifier, stranger) -> None:
    job_id = staffed.submitted_job(requester, provider)
    staffed.mine(2)
    with reverts("NotAssignedVerifier", job_id, verifier.address, ZERO_ADDRESS):  # nobody drawn yet
        staffed.market.submit_verdict(verifier, job_id, Verdict.PASS, EVIDENCE, b"\1" * 32, b"\2" * 32)
    staffed.draw(job_id)
    with reverts("NotAssignedVerifier", job_id, stranger.address, verifier.address):
        staffed.market.submit_verdict(stranger, job_id, Verdict.FAIL, EVIDENCE, b"\1" * 32, b"\2" * 32)


def test_verdict_with_the_wrong_secret_reverts(staffed: Chain, requester, provider, verifier) -> None:
    job_id = drawn_job(staffed, requester, provider)
    with reverts("WrongSecret", job_id, verifier.address):
        staffed.market.submit_verdict(verifier, job_id, Verdict.PASS, EVIDENCE, staffed.secret(verifier, 1),
                                      b"\2" * 32)


def test_verdict_none_reverts(staffed: Chain, requester, provider, verifier) -> None:
    job_id = drawn_job(staffed, requester, provider)
    secret, next_hash = staffed.open_secret(verifier, job_id)
    with reverts("InvalidVerdict", job_id, Verdict.NONE):
        staffed.market.submit_verdict(verifier, job_id, Verdict.NONE, EVIDENCE, secret, next_hash)


def test_verdict_after_the_audit_deadline_reverts(staffed: Chain, requester, provider, verifier) -> None:
    job_id = drawn_job(staffed, requester, provider)
    deadline = staffed.market.audit_of(job_id).deadline
    staffed.increase_time(DEFAULT_TERMS.audit_window + 1)
    secret, next_hash = staffed.open_secret(verifier, job_id)
    with reverts("DeadlinePassed", job_id, deadline):
        staffed.market.submit_verdict(verifier, job_id, Verdict.PASS, EVIDENCE, secret, next_hash)


def test_a_second_verdict_reverts(staffed: Chain, requester, provider, verifier) -> None:
    job_id = drawn_job(staffed, requester, provider)
    staffed.verdict(verifier, job_id, Verdict.PASS)
    with reverts("WrongState", job_id, JobState.AUDITED, JobState.SUBMITTED):
        staffed.market.submit_verdict(verifier, job_id, Verdict.FAIL, EVIDENCE, b"\1" * 32, b"\2" * 32)


# ───────────────────────────────────────────── settlement by verdict


def test_a_pass_pays_the_provider_the_verifier_and_the_protocol(staffed: Chain, requester, provider,
                                                                 verifier) -> None:
    job_id = drawn_job(staffed, requester, provider)
    terms = staffed.market.terms_of(job_id)
    staffed.verdict(verifier, job_id, Verdict.PASS)
    # Provisional: nothing is credited before the challenge window ends.
    assert staffed.market.credits(provider.address) == staffed.market.credits(verifier.address) == 0
    receipt = staffed.settle(job_id)
    assert ledger(staffed, receipt) == [
        (provider.address, CreditKind.PROVIDER_PAYMENT, terms.split().provider),
        (staffed.market.treasury(), CreditKind.PROTOCOL_FEE, terms.split().protocol),
        (verifier.address, CreditKind.VERIFIER_FEE, terms.audit_fee)]
    assert slashes(staffed, receipt) == []
    assert staffed.market.provider_stake(provider.address).stake == 1_000 * WEI


def test_a_fail_refunds_the_price_pays_the_verifier_and_burns_most_of_the_collateral(staffed: Chain, requester,
                                                                                      provider,
                                                                                      verifier) -> None:
    job_id = drawn_job(staffed, requester, provider)
    terms = staffed.market.terms_of(job_id)
    staffed.verdict(verifier, job_id, Verdict.FAIL)
    receipt = staffed.settle(job_id)
    reward = terms.collateral * REWARD // BPS
    assert staffed.market.get_job(job_id).state is JobState.REJECTED
    assert staffed.emitted(receipt, "JobSettled") == [{"jobId": job_id, "verdict": Verdict.FAIL}]
    assert slashes(staffed, receipt) == [(provider.address, Role.PROVIDER, terms.collateral, 0)]
    assert ledger(staffed, receipt) == [
        (requester.address, CreditKind.REFUND, PRICE),
        (verifier.address, CreditKind.REWARD, reward),
        (verifier.address, CreditKind.VERIFIER_FEE, terms.audit_fee)]
    assert burned_in(staffed, receipt) == terms.collateral - reward == staffed.market.burned()
    # The requester gets its price back, never more: nobody profits from the provider's slash.
    assert staffed.market.credits(requester.address) == PRICE
    stake = staffed.market.provider_stake(provider.address)
    assert (stake.stake, stake.locked) == (1_000 * WEI - terms.collateral, 0)


def test_inconclusive_pays_the_provider_and_slashes_nobody(staffed: Chain, requester, provider, verifier) -> None:
    job_id = drawn_job(staffed, requester, provider)
    terms = staffed.market.terms_of(job_id)
    staffed.verdict(verifier, job_id, Verdict.INCONCLUSIVE)
    receipt = staffed.settle(job_id)
    assert staffed.market.get_job(job_id).state is JobState.FINALIZED
    assert staffed.emitted(receipt, "JobSettled") == [{"jobId": job_id, "verdict": Verdict.INCONCLUSIVE}]
    assert slashes(staffed, receipt) == []
    assert staffed.market.burned() == 0
    assert staffed.market.credits(provider.address) == terms.split().provider
    assert staffed.market.credits(verifier.address) == terms.audit_fee
    assert staffed.market.credits(requester.address) == 0
    assert staffed.market.provider_stake(provider.address).stake == 1_000 * WEI


# ───────────────────────────────────────────── missed deadlines


def test_redraw_before_a_draw_reverts(staffed: Chain, requester, provider) -> None:
    job_id = staffed.submitted_job(requester, provider)
    with reverts("NotDrawn", job_id):
        staffed.market.redraw_verifier(requester, job_id)


def test_redraw_before_the_deadline_reverts(staffed: Chain, requester, provider) -> None:
    job_id = drawn_job(staffed, requester, provider)
    with reverts("DeadlineNotReached", job_id, staffed.market.audit_of(job_id).deadline):
        staffed.market.redraw_verifier(requester, job_id)


def test_redraw_slashes_the_no_show_rewards_the_caller_and_draws_again(chain: Chain, requester, provider,
                                                                         verifier, stranger) -> None:
    chain.register(provider, Role.PROVIDER)
    chain.register(verifier, Role.VERIFIER, 2 * VERIFIER_MIN)  # still above the minimum after the slash
    job_id = drawn_job(chain, requester, provider)
    first_seed = chain.market.audit_of(job_id).seed
    chain.increase_time(DEFAULT_TERMS.audit_window + 1)
    receipt = chain.market.redraw_verifier(stranger, job_id)
    slash = 2 * VERIFIER_MIN * NO_SHOW // BPS
    reward = slash * REWARD // BPS
    assert chain.emitted(receipt, "VerifierMissed") == [
        {"jobId": job_id, "verifier": verifier.address, "seedBlock": next_seed_block(receipt["blockNumber"])}]
    assert slashes(chain, receipt) == [(verifier.address, Role.VERIFIER, slash, 0)]
    assert ledger(chain, receipt) == [(stranger.address, CreditKind.REWARD, reward)]
    assert burned_in(chain, receipt) == slash - reward
    stake = chain.market.verifier_stake(verifier.address)
    assert (stake.stake, stake.duties) == (2 * VERIFIER_MIN - slash, 0)
    chain.sync(verifier.address)
    assert chain.market.verifier_weight(verifier.address) == 2 * VERIFIER_MIN - slash
    audit = chain.market.audit_of(job_id)
    assert (audit.verifier, audit.deadline, audit.draws, audit.seed) == (ZERO_ADDRESS, 0, 1, ZERO_HASH)
    assert chain.market.get_job(job_id).state is JobState.SUBMITTED
    # The only verifier is drawn again, from a new seed.
    assert chain.draw(job_id) == verifier.address
    again = chain.market.audit_of(job_id)
    assert again.draws == 2 and again.seed != first_seed
    chain.verdict(verifier, job_id, Verdict.PASS)
    chain.settle(job_id)
    assert chain.market.get_job(job_id).state is JobState.FINALIZED


def test_a_no_show_at_the_minimum_stake_leaves_the_draw(staffed: Chain, requester, provider, verifier) -> None:
    job_id = drawn_job(staffed, requester, provider)
    staffed.increase_time(DEFAULT_TERMS.audit_window + 1)
    staffed.market.redraw_verifier(requester, job_id)
    staffed.sync(verifier.address)
    assert staffed.market.verifier_weight(verifier.address) == 0  # 990 WEBI: below the minimum
    with reverts("NoEligibleVerifier", job_id):
        staffed.draw(job_id)


def test_redraw_slashes_a_no_show_that_left_and_draws_someone_else(staffed: Chain, requester, provider,
                                                                     verifier) -> None:
    job_id = drawn_job(staffed, requester, provider)
    staffed.market.request_unstake(verifier, Role.VERIFIER, VERIFIER_MIN)  # leaves the draw, not its duty
    staffed.sync(verifier.address)
    other = dev(5)
    staffed.register(other, Role.VERIFIER)
    staffed.increase_time(DEFAULT_TERMS.audit_window + 1)
    receipt = staffed.market.redraw_verifier(requester, job_id)
    slash = VERIFIER_MIN * NO_SHOW // BPS
    assert slashes(staffed, receipt) == [(verifier.address, Role.VERIFIER, 0, slash)]  # from unbonding
    assert staffed.market.verifier_stake(verifier.address).unbonding == VERIFIER_MIN - slash
    assert staffed.draw(job_id) == other.address


def test_redraw_after_a_verdict_reverts(staffed: Chain, requester, provider, verifier) -> None:
    job_id = drawn_job(staffed, requester, provider)
    staffed.verdict(verifier, job_id, Verdict.PASS)
    staffed.increase_time(DEFAULT_TERMS.audit_window + 1)
    with reverts("WrongState", job_id, JobState.AUDITED, JobState.SUBMITTED):
        staffed.market.redraw_verifier(requester, job_id)


# ───────────────────────────────────────────── reveal demands


def revealing_job(chain: Chain, requester: LocalAccount, provider: LocalAccount, verifier: LocalAccount,
                  num_tasks: int = 16) -> tuple[int, MerkleTree]:
    """A drawn job with real outputs behind its root, whose verifier has demanded a reveal."""
    job_id = chain.post(requester, price=PRICE, num_tasks=num_tasks)
    chain.market.claim_job(provider, job_id)
    tree = submit_outputs(chain, provider, job_id, num_tasks)
    chain.draw(job_id)
    secret, next_hash = chain.open_secret(verifier, job_id)
    chain.market.demand_reveal(verifier, job_id, secret, next_hash)
    return job_id, tree


def test_demand_reveal_opens_the_sample_and_sets_a_deadline(staffed: Chain, requester, provider,
                                                            verifier) -> None:
    job_id = staffed.post(requester, price=PRICE)
    staffed.market.claim_job(provider, job_id)
    submit_outputs(staffed, provider, job_id, 16)
    staffed.draw(job_id)
    audit = staffed.market.audit_of(job_id)
    secret, next_hash = staffed.open_secret(verifier, job_id)
    receipt = staffed.market.demand_reveal(verifier, job_id, secret, next_hash)
    reveal_by = staffed.client.w3.eth.get_block(receipt["blockNumber"])["timestamp"] + DEFAULT_PARAMS.reveal_window
    expected = sample_seed(audit.seed, secret)
    assert staffed.emitted(receipt, "RevealDemanded") == [
        {"jobId": job_id, "verifier": verifier.address, "sampleSeed": expected, "revealBy": reveal_by}]
    after = staffed.market.audit_of(job_id)
    # The verifier's own deadline moves past the provider's.
    assert (after.reveal_by, after.deadline, after.secret) == (
        reveal_by, reveal_by + DEFAULT_TERMS.audit_window, expected)
    assert after.reveal_pending and after.revealed
    assert staffed.market.secret_of(verifier.address) == next_hash
    assert staffed.market.sampled_tasks(job_id) == sampled_task_indices(expected, 16, 4)
    with reverts("RevealAlreadyDemanded", job_id):
        staffed.market.demand_reveal(verifier, job_id, secret, next_hash)


def test_demand_reveal_by_another_account_or_with_a_wrong_secret_reverts(staffed: Chain, requester, provider,
                                                                         verifier, stranger) -> None:
    job_id = drawn_job(staffed, requester, provider)
    with reverts("NotAssignedVerifier", job_id, stranger.address, verifier.address):
        staffed.market.demand_reveal(stranger, job_id, b"\1" * 32, b"\2" * 32)
    with reverts("WrongSecret", job_id, verifier.address):
        staffed.market.demand_reveal(verifier, job_id, b"\1" * 32, b"\2" * 32)


def test_an_honest_provider_reveals_its_outputs_and_is_paid(staffed: Chain, requester, provider,
                                                            verifier) -> None:
    job_id, tree = revealing_job(staffed, requester, provider, verifier)
    indices = staffed.market.sampled_tasks(job_id)
    outputs = outputs_for(job_id, 16)
    receipt = staffed.market.reveal_outputs(provider, job_id, [outputs[i] for i in indices],
                                            [tree.proof(i) for i in indices])
    assert staffed.emitted(receipt, "OutputsRevealed") == [
        {"jobId": job_id, "taskIndices": indices, "outputs": [outputs[i] for i in indices]}]
    assert staffed.market.audit_of(job_id).reveal_by == 1  # answered
    with reverts("NoRevealDemand", job_id):
        staffed.market.fail_unrevealed(requester, job_id)
    with reverts("NoRevealDemand", job_id):
        staffed.market.reveal_outputs(provider, job_id, [outputs[i] for i in indices],
                                      [tree.proof(i) for i in indices])
    # The secret was opened by the demand: the verdict needs none.
    staffed.market.submit_verdict(verifier, job_id, Verdict.PASS, EVIDENCE, ZERO_HASH, ZERO_HASH)
    staffed.settle(job_id)
    terms = staffed.market.terms_of(job_id)
    assert staffed.market.credits(provider.address) == terms.split().provider
    assert staffed.market.provider_stake(provider.address).stake == 1_000 * WEI


def test_reveal_outputs_checks_count_proofs_caller_and_deadline(staffed: Chain, requester, provider, verifier,
                                                                stranger) -> None:
    job_id, tree = revealing_job(staffed, requester, provider, verifier)
    indices = staffed.market.sampled_tasks(job_id)
    outputs = [outputs_for(job_id, 16)[i] for i in indices]
    proofs = [tree.proof(i) for i in indices]
    with reverts("NotProvider", job_id, stranger.address):
        staffed.market.reveal_outputs(stranger, job_id, outputs, proofs)
    with reverts("WrongOutputCount", job_id, 3, 4):
        staffed.market.reveal_outputs(provider, job_id, outputs[:3], proofs[:3])
    with reverts("WrongOutputCount", job_id, 4, 4):  # one proof short
        staffed.market.reveal_outputs(provider, job_id, outputs, proofs[:3])
    with reverts("InvalidOutputProof", job_id, indices[1]):
        staffed.market.reveal_outputs(provider, job_id, [outputs[0], b"forged", *outputs[2:]], proofs)
    with reverts("InvalidOutputProof", job_id, indices[0]):  # right outputs, wrong order
        staffed.market.reveal_outputs(provider, job_id, outputs[::-1], proofs[::-1])
    reveal_by = staffed.market.audit_of(job_id).reveal_by
    staffed.increase_time(DEFAULT_PARAMS.reveal_window + 1)
    with reverts("DeadlinePassed", job_id, reveal_by):
        staffed.market.reveal_outputs(provider, job_id, outputs, proofs)


def test_reveal_outputs_without_a_demand_reverts(staffed: Chain, requester, provider) -> None:
    job_id = drawn_job(staffed, requester, provider)
    with reverts("NoRevealDemand", job_id):
        staffed.market.reveal_outputs(provider, job_id, [], [])


def test_fail_unrevealed_rejects_a_provider_that_withholds_its_outputs(staffed: Chain, requester, provider,
                                                                        verifier, stranger) -> None:
    job_id, _ = revealing_job(staffed, requester, provider, verifier)
    terms = staffed.market.terms_of(job_id)
    reveal_by = staffed.market.audit_of(job_id).reveal_by
    with reverts("DeadlineNotReached", job_id, reveal_by):
        staffed.market.fail_unrevealed(stranger, job_id)
    staffed.increase_time(DEFAULT_PARAMS.reveal_window + 1)
    receipt = staffed.market.fail_unrevealed(stranger, job_id)
    reward = terms.collateral * REWARD // BPS
    assert staffed.market.get_job(job_id).state is JobState.REJECTED
    assert slashes(staffed, receipt) == [(provider.address, Role.PROVIDER, terms.collateral, 0)]
    assert ledger(staffed, receipt) == [
        (requester.address, CreditKind.REFUND, PRICE),
        (verifier.address, CreditKind.REWARD, reward),
        (verifier.address, CreditKind.VERIFIER_FEE, terms.audit_fee)]
    assert burned_in(staffed, receipt) == terms.collateral - reward
    # Final: there is no verdict to challenge.
    staffed.approve(provider)
    with reverts("WrongState", job_id, JobState.REJECTED, JobState.AUDITED):
        staffed.market.challenge(provider, job_id)


def test_fail_unrevealed_without_a_demand_reverts(staffed: Chain, requester, provider) -> None:
    job_id = drawn_job(staffed, requester, provider)
    with reverts("NoRevealDemand", job_id):
        staffed.market.fail_unrevealed(requester, job_id)


def test_an_unanswered_demand_fails_the_job_when_the_verifier_also_goes_quiet(staffed: Chain, requester,
                                                                              provider, verifier) -> None:
    job_id, _ = revealing_job(staffed, requester, provider, verifier)
    staffed.increase_time(DEFAULT_PARAMS.reveal_window + DEFAULT_TERMS.audit_window + 1)
    receipt = staffed.market.redraw_verifier(requester, job_id)
    assert staffed.market.get_job(job_id).state is JobState.REJECTED
    assert staffed.emitted(receipt, "VerifierMissed") == []
    assert staffed.market.verifier_stake(verifier.address).stake == 1_000 * WEI  # the provider's fault


def test_a_verdict_may_follow_an_unanswered_demand(staffed: Chain, requester, provider, verifier) -> None:
    job_id, _ = revealing_job(staffed, requester, provider, verifier)
    staffed.increase_time(DEFAULT_PARAMS.reveal_window + 1)
    staffed.market.submit_verdict(verifier, job_id, Verdict.FAIL, EVIDENCE, ZERO_HASH, ZERO_HASH)
    assert staffed.market.get_job(job_id).state is JobState.AUDITED
    staffed.settle(job_id)
    assert staffed.market.get_job(job_id).state is JobState.REJECTED
