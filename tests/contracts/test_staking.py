"""Staking, unbonding with cooldown, verifier weights and duties, and the owner: a timelock whose
changes stay within the contract's hard bounds."""

from __future__ import annotations

import dataclasses

import pytest

from marketplace.chain.deployment import DEFAULT_PARAMS, DEFAULT_TERMS, WEI
from marketplace.chain.governance import Governance
from marketplace.protocol import ZERO_ADDRESS, ZERO_HASH, Role, Verdict, in_sync_phase, next_sync_block, secret_hash
from tests.conftest import Chain, reverts
from tests.contracts.support import (
    audited,
    challenge,
    dev,
    draw_panel,
    draw_room,
    name32,
    resolve,
    slashes,
    sync_room,
    vote,
)

MIN = DEFAULT_PARAMS.min_provider_stake
MINIMUM = {Role.PROVIDER: DEFAULT_PARAMS.min_provider_stake, Role.VERIFIER: DEFAULT_PARAMS.min_verifier_stake}
VERIFIER_MIN = DEFAULT_PARAMS.min_verifier_stake
COOLDOWN = DEFAULT_PARAMS.unstake_cooldown
UINT96_MAX = 2**96 - 1
WEEK = 7 * 86_400


# ───────────────────────────────────────────── joining


@pytest.mark.parametrize("role", [Role.PROVIDER, Role.VERIFIER])
def test_register_pulls_the_stake_and_records_it(chain: Chain, stranger, role) -> None:
    chain.approve(stranger)
    amount = 2 * MINIMUM[role]
    before = chain.token.balance_of(stranger.address)
    receipt = chain.market.register(stranger, role, amount, "bafkreimeta")
    assert chain.emitted(receipt, "Registered") == [
        {"account": stranger.address, "role": role, "amount": amount, "metadataCid": "bafkreimeta"}]
    stake = (chain.market.provider_stake if role is Role.PROVIDER else chain.market.verifier_stake)(stranger.address)
    assert (stake.stake, stake.locked, stake.unbonding, stake.duties) == (amount, 0, 0, 0)
    assert chain.token.balance_of(stranger.address) == before - amount


@pytest.mark.parametrize("role", [Role.PROVIDER, Role.VERIFIER])
def test_register_below_minimum_reverts(chain: Chain, stranger, role) -> None:
    chain.approve(stranger)
    with reverts("InsufficientStake", stranger.address, MINIMUM[role] - 1, MINIMUM[role]):
        chain.market.register(stranger, role, MINIMUM[role] - 1)


@pytest.mark.parametrize("role", [Role.PROVIDER, Role.VERIFIER])
def test_register_twice_reverts(chain: Chain, stranger, role) -> None:
    chain.register(stranger, role)
    with reverts("AlreadyRegistered", stranger.address, role):
        chain.market.register(stranger, role, MIN)


def test_a_verifier_enters_the_draw_with_its_first_secret_commitment(chain: Chain, verifier) -> None:
    chain.approve(verifier)
    sync_room(chain, 3)  # in a sync phase, each change applies at once
    chain.market.register(verifier, Role.VERIFIER, 3 * VERIFIER_MIN)
    assert (chain.market.verifier_weight(verifier.address), chain.market.verifier_count(),
            chain.market.total_verifier_weight()) == (0, 0, 0)
    commitment = secret_hash(chain.secret(verifier, 0))
    receipt = chain.market.commit_secret(verifier, commitment)
    assert chain.emitted(receipt, "SecretCommitted") == [{"verifier": verifier.address, "secretHash": commitment}]
    assert chain.emitted(receipt, "WeightChanged") == [{"verifier": verifier.address, "weight": 3 * VERIFIER_MIN}]
    assert chain.market.secret_of(verifier.address) == commitment
    assert (chain.market.verifier_weight(verifier.address), chain.market.verifier_count(),
            chain.market.total_verifier_weight()) == (3 * VERIFIER_MIN, 1, 3 * VERIFIER_MIN)
    # A zero commitment takes it out of the draw again.
    receipt = chain.market.commit_secret(verifier, ZERO_HASH)
    assert chain.emitted(receipt, "WeightChanged") == [{"verifier": verifier.address, "weight": 0}]
    assert (chain.market.verifier_weight(verifier.address), chain.market.verifier_count()) == (0, 0)


def test_staking_outside_a_sync_phase_waits_for_a_sync(chain: Chain, verifier, stranger) -> None:
    chain.approve(verifier)
    draw_room(chain, 3)
    chain.market.register(verifier, Role.VERIFIER, VERIFIER_MIN)
    chain.market.commit_secret(verifier, secret_hash(chain.secret(verifier, 0)))
    # Nobody who knows a pending seed can move the draw: the change waits for the next sync phase.
    assert (chain.market.verifier_weight(verifier.address), chain.market.verifier_count()) == (0, 0)
    landing = chain.block_number() + 1  # estimated on the pending block, where it would run
    with reverts("NotSyncPhase", landing, next_sync_block(landing)):
        chain.market.sync_verifier(stranger, verifier.address)
    sync_room(chain)
    receipt = chain.market.sync_verifier(stranger, verifier.address)  # anyone may
    assert in_sync_phase(receipt["blockNumber"])
    assert chain.emitted(receipt, "WeightChanged") == [{"verifier": verifier.address, "weight": VERIFIER_MIN}]
    assert chain.market.verifier_weight(verifier.address) == VERIFIER_MIN
    draw_room(chain)
    chain.market.add_stake(verifier, Role.VERIFIER, VERIFIER_MIN)
    assert chain.market.verifier_weight(verifier.address) == VERIFIER_MIN
    chain.sync(verifier.address)
    assert chain.market.verifier_weight(verifier.address) == 2 * VERIFIER_MIN


def test_a_verifier_below_the_minimum_stake_leaves_the_draw(chain: Chain, verifier) -> None:
    chain.register(verifier, Role.VERIFIER, VERIFIER_MIN)
    params = dataclasses.replace(DEFAULT_PARAMS, min_verifier_stake=2 * VERIFIER_MIN)
    chain.govern(chain.market.contract.functions.setParams(params.as_tuple()))
    chain.sync(verifier.address)
    assert chain.market.verifier_weight(verifier.address) == 0
    assert chain.market.verifier_stake(verifier.address).stake == VERIFIER_MIN  # still registered
    chain.market.add_stake(verifier, Role.VERIFIER, VERIFIER_MIN)
    chain.sync(verifier.address)
    assert chain.market.verifier_weight(verifier.address) == 2 * VERIFIER_MIN


def test_commit_secret_requires_a_verifier_stake(chain: Chain, provider, stranger) -> None:
    with reverts("NotRegistered", stranger.address, Role.VERIFIER):
        chain.market.commit_secret(stranger, b"\1" * 32)
    chain.register(provider, Role.PROVIDER)  # a provider stake is not a verifier stake
    with reverts("NotRegistered", provider.address, Role.VERIFIER):
        chain.market.commit_secret(provider, b"\1" * 32)


def test_add_stake_grows_stake_and_weight(chain: Chain, provider, verifier) -> None:
    chain.register(provider, Role.PROVIDER, MIN)
    receipt = chain.market.add_stake(provider, Role.PROVIDER, 5 * WEI)
    assert chain.emitted(receipt, "StakeAdded") == [{"account": provider.address, "role": Role.PROVIDER,
                                                     "amount": 5 * WEI}]
    assert chain.market.provider_stake(provider.address).stake == MIN + 5 * WEI
    chain.register(verifier, Role.VERIFIER, VERIFIER_MIN)
    chain.market.add_stake(verifier, Role.VERIFIER, 7 * WEI)
    chain.sync(verifier.address)
    assert chain.market.verifier_weight(verifier.address) == VERIFIER_MIN + 7 * WEI
    assert chain.market.total_verifier_weight() == VERIFIER_MIN + 7 * WEI


def test_add_stake_errors(chain: Chain, stranger) -> None:
    with reverts("ZeroAmount"):
        chain.market.add_stake(stranger, Role.PROVIDER, 0)
    chain.approve(stranger)
    with reverts("NotRegistered", stranger.address, Role.VERIFIER):
        chain.market.add_stake(stranger, Role.VERIFIER, WEI)


# ───────────────────────────────────────────── leaving


@pytest.mark.parametrize("role", [Role.PROVIDER, Role.VERIFIER])
def test_unstake_then_withdraw_after_cooldown(chain: Chain, stranger, role) -> None:
    minimum = MINIMUM[role]
    chain.register(stranger, role, 3 * minimum)
    view = chain.market.provider_stake if role is Role.PROVIDER else chain.market.verifier_stake
    before = chain.token.balance_of(stranger.address)
    receipt = chain.market.request_unstake(stranger, role, 2 * minimum)
    stake = view(stranger.address)
    assert (stake.stake, stake.unbonding) == (minimum, 2 * minimum)
    assert chain.emitted(receipt, "UnstakeRequested") == [
        {"account": stranger.address, "role": role, "amount": 2 * minimum, "unlockAt": stake.unlock_at}]
    assert stake.unlock_at == chain.client.w3.eth.get_block(receipt["blockNumber"])["timestamp"] + COOLDOWN
    with reverts("CooldownActive", stranger.address, stake.unlock_at):
        chain.market.withdraw_stake(stranger, role)
    chain.increase_time(COOLDOWN)
    receipt = chain.market.withdraw_stake(stranger, role)
    assert chain.emitted(receipt, "StakeWithdrawn") == [{"account": stranger.address, "role": role,
                                                         "amount": 2 * minimum}]
    assert chain.token.balance_of(stranger.address) == before + 2 * minimum
    with reverts("NothingToWithdraw", stranger.address):
        chain.market.withdraw_stake(stranger, role)


def test_a_second_request_restarts_the_cooldown_for_the_total(chain: Chain, provider) -> None:
    chain.register(provider, Role.PROVIDER, 500 * WEI)
    chain.market.request_unstake(provider, Role.PROVIDER, 100 * WEI)
    chain.increase_time(COOLDOWN // 2)
    chain.market.request_unstake(provider, Role.PROVIDER, 100 * WEI)
    stake = chain.market.provider_stake(provider.address)
    assert stake.unbonding == 200 * WEI
    chain.increase_time(COOLDOWN // 2 + 10)
    with reverts("CooldownActive", provider.address, stake.unlock_at):
        chain.market.withdraw_stake(provider, Role.PROVIDER)


def test_unstake_errors(chain: Chain, provider, requester, stranger) -> None:
    with reverts("ZeroAmount"):
        chain.market.request_unstake(stranger, Role.PROVIDER, 0)
    with reverts("NotRegistered", stranger.address, Role.PROVIDER):
        chain.market.request_unstake(stranger, Role.PROVIDER, WEI)
    chain.register(provider, Role.PROVIDER, 300 * WEI)
    # Leaving less than the minimum (but not zero) is refused.
    with reverts("InsufficientStake", provider.address, 50 * WEI, MIN):
        chain.market.request_unstake(provider, Role.PROVIDER, 250 * WEI)
    # Collateral locked by a claim cannot be unstaked.
    job_id = chain.post(requester, price=200 * WEI, num_tasks=128)
    chain.market.claim_job(provider, job_id)
    with reverts("InsufficientStake", provider.address, 200 * WEI, 300 * WEI):
        chain.market.request_unstake(provider, Role.PROVIDER, 300 * WEI)


def test_a_verifier_unstaking_everything_leaves_the_draw_at_the_next_sync(chain: Chain, verifier) -> None:
    chain.register(verifier, Role.VERIFIER)
    chain.register(dev(5), Role.VERIFIER, 4 * VERIFIER_MIN)
    assert (chain.market.verifier_count(), chain.market.total_verifier_weight()) == (2, 5 * VERIFIER_MIN)
    draw_room(chain)
    chain.market.request_unstake(verifier, Role.VERIFIER, VERIFIER_MIN)
    assert chain.market.verifier_weight(verifier.address) == VERIFIER_MIN  # until the next sync phase
    chain.sync(verifier.address)
    assert (chain.market.verifier_count(), chain.market.total_verifier_weight()) == (1, 4 * VERIFIER_MIN)
    assert chain.market.verifier_weight(verifier.address) == 0
    assert set(chain.draws([bytes([i]) * 32 for i in range(20)])) == {dev(5).address}
    # Rejoining while the old stake unbonds puts it back (its commitment is still there).
    chain.market.register(verifier, Role.VERIFIER, VERIFIER_MIN)
    chain.sync(verifier.address)
    assert chain.market.verifier_weight(verifier.address) == VERIFIER_MIN
    assert chain.market.verifier_stake(verifier.address).unbonding == VERIFIER_MIN


def test_a_drawn_verifier_cannot_withdraw_until_its_audit_ends(staffed: Chain, requester, provider,
                                                               verifier) -> None:
    job_id = staffed.submitted_job(requester, provider)
    staffed.draw(job_id)
    assert staffed.market.verifier_stake(verifier.address).duties == 1
    staffed.market.request_unstake(verifier, Role.VERIFIER, 1_000 * WEI)
    staffed.verdict(verifier, job_id, Verdict.PASS)
    staffed.increase_time(COOLDOWN)
    # Past the cooldown, and past the challenge window, but the verdict is not final yet.
    with reverts("DutiesOpen", verifier.address, 1):
        staffed.market.withdraw_stake(verifier, Role.VERIFIER)
    staffed.market.finalize(requester, job_id)
    sync_room(staffed)  # its weight leaves the draw as its tokens do
    staffed.market.withdraw_stake(verifier, Role.VERIFIER)
    assert staffed.market.verifier_stake(verifier.address).unbonding == 0
    assert staffed.market.verifier_weight(verifier.address) == 0


def test_a_panel_member_cannot_withdraw_until_the_challenge_is_resolved(staffed: Chain, requester, provider,
                                                                        verifier) -> None:
    juror = dev(5)
    job_id = audited(staffed, requester, provider, verifier, Verdict.FAIL, [juror])
    challenge(staffed, provider, job_id)
    draw_panel(staffed, job_id)
    # The member leaves the draw, not its duty: it still votes.
    staffed.market.request_unstake(juror, Role.VERIFIER, 1_000 * WEI)
    vote(staffed, job_id, [Verdict.FAIL])
    staffed.increase_time(COOLDOWN)
    with reverts("DutiesOpen", juror.address, 3):  # the only eligible verifier: all three seats
        staffed.market.withdraw_stake(juror, Role.VERIFIER)
    resolve(staffed, job_id)
    sync_room(staffed)
    staffed.market.withdraw_stake(juror, Role.VERIFIER)


def test_slashing_reaches_unbonding_stake(chain: Chain, requester, provider, verifier, jurors) -> None:
    chain.register(provider, Role.PROVIDER)
    chain.register(verifier, Role.VERIFIER, 5 * VERIFIER_MIN)
    job_id = audited(chain, requester, provider, verifier, Verdict.FAIL, jurors)
    # The verifier sees the challenge coming and starts to leave with most of its stake.
    chain.market.request_unstake(verifier, Role.VERIFIER, 4 * VERIFIER_MIN)
    challenge(chain, provider, job_id)
    draw_panel(chain, job_id, distinct=True)
    vote(chain, job_id, [Verdict.PASS] * 3)
    receipt = resolve(chain, job_id)
    slash = 5 * VERIFIER_MIN * DEFAULT_PARAMS.verifier_slash_bps // 10_000  # of stake plus unbonding
    assert [s for s in slashes(chain, receipt) if s[0] == verifier.address] == [
        (verifier.address, Role.VERIFIER, VERIFIER_MIN, slash - VERIFIER_MIN)]
    stake = chain.market.verifier_stake(verifier.address)
    assert (stake.stake, stake.unbonding) == (0, 5 * VERIFIER_MIN - slash)
    chain.sync(verifier.address)
    assert chain.market.verifier_weight(verifier.address) == 0


# ───────────────────────────────────────────── the owner


def test_the_market_is_owned_by_the_timelock(chain: Chain) -> None:
    governance = chain.protocol.deployment.governance
    assert governance is not None
    assert chain.client.call(chain.market.contract.functions.owner()) == governance
    assert Governance(chain.client, governance).delay() == 2 * 86_400


@pytest.mark.parametrize("index", [0, 4])
def test_owner_functions_refuse_direct_calls(chain: Chain, index) -> None:
    caller = dev(index)  # dev account 0 deployed the market and proposes to the timelock
    functions = chain.market.contract.functions
    with reverts("OwnableUnauthorizedAccount", caller.address):
        chain.client.transact(caller, functions.setTerms(DEFAULT_TERMS.as_tuple()))
    with reverts("OwnableUnauthorizedAccount", caller.address):
        chain.client.transact(caller, functions.setParams(DEFAULT_PARAMS.as_tuple()))
    with reverts("OwnableUnauthorizedAccount", caller.address):
        chain.client.transact(caller, functions.setTreasury(caller.address))


def test_a_timelocked_change_waits_out_the_delay(chain: Chain, stranger) -> None:
    governance = Governance(chain.client, chain.protocol.deployment.governance or "")
    proposal = governance.schedule(chain.owner, chain.market.contract.functions.setTreasury(stranger.address))
    with reverts("TimelockUnexpectedOperationState"):
        governance.execute(chain.owner, proposal)
    chain.increase_time(governance.delay() + 1)
    receipt = governance.execute(stranger, proposal)  # anyone executes a ready change
    assert chain.emitted(receipt, "TreasuryUpdated") == [{"treasury": stranger.address}]
    assert chain.market.treasury() == stranger.address


def test_governed_params_apply(chain: Chain, requester) -> None:
    params = dataclasses.replace(DEFAULT_PARAMS, min_task_price=WEI)
    receipt = chain.govern(chain.market.contract.functions.setParams(params.as_tuple()))
    assert chain.market.params() == params
    assert len(chain.emitted(receipt, "ParamsUpdated")) == 1
    chain.approve(requester)
    with reverts("InvalidPrice", 15 * WEI, 16 * WEI):
        chain.market.post_job(requester, chain.request(price=15 * WEI, num_tasks=16))


@pytest.mark.parametrize(("change", "name", "value", "low", "high"), [
    ({"protocol_fee_bps": 2_001}, "protocolFeeBps", 2_001, 0, 2_000),
    ({"verifier_fee_bps": 9_999}, "verifierFeeBps", 9_999, 10_000, 50_000),
    ({"verifier_fee_bps": 50_001}, "verifierFeeBps", 50_001, 10_000, 50_000),
    ({"collateral_bps": 999}, "collateralBps", 999, 1_000, 50_000),
    ({"collateral_bps": 50_001}, "collateralBps", 50_001, 1_000, 50_000),
    ({"audit_window": 59}, "auditWindow", 59, 60, WEEK),
    ({"audit_window": WEEK + 1}, "auditWindow", WEEK + 1, 60, WEEK),
    ({"challenge_window": 59}, "challengeWindow", 59, 60, WEEK),
    ({"challenge_window": WEEK + 1}, "challengeWindow", WEEK + 1, 60, WEEK),
])
def test_terms_out_of_bounds_revert(chain: Chain, change, name, value, low, high) -> None:
    terms = dataclasses.replace(DEFAULT_TERMS, **change)
    with reverts("ParamOutOfBounds", name32(name), value, low, high):
        chain.govern(chain.market.contract.functions.setTerms(terms.as_tuple()))


@pytest.mark.parametrize(("change", "name", "value", "low", "high"), [
    ({"min_provider_stake": 0}, "minProviderStake", 0, 1, UINT96_MAX),
    ({"min_verifier_stake": 0}, "minVerifierStake", 0, 1, UINT96_MAX),
    ({"min_task_price": 0}, "minTaskPrice", 0, 1, UINT96_MAX),
    ({"unstake_cooldown": 3_599}, "unstakeCooldown", 3_599, 3_600, 60 * 86_400),
    ({"unstake_cooldown": 60 * 86_400 + 1}, "unstakeCooldown", 60 * 86_400 + 1, 3_600, 60 * 86_400),
    ({"reveal_window": 59}, "revealWindow", 59, 60, WEEK),
    ({"reveal_window": WEEK + 1}, "revealWindow", WEEK + 1, 60, WEEK),
    ({"vote_window": 59}, "voteWindow", 59, 60, WEEK),
    ({"vote_window": WEEK + 1}, "voteWindow", WEEK + 1, 60, WEEK),
    ({"verifier_slash_bps": 999}, "verifierSlashBps", 999, 1_000, 10_000),
    ({"verifier_slash_bps": 10_001}, "verifierSlashBps", 10_001, 1_000, 10_000),
    ({"no_show_slash_bps": 9}, "noShowSlashBps", 9, 10, 1_000),
    ({"no_show_slash_bps": 1_001}, "noShowSlashBps", 1_001, 10, 1_000),
    ({"reward_bps": 2_501}, "rewardBps", 2_501, 0, 2_500),
])
def test_params_out_of_bounds_revert(chain: Chain, change, name, value, low, high) -> None:
    params = dataclasses.replace(DEFAULT_PARAMS, **change)
    with reverts("ParamOutOfBounds", name32(name), value, low, high):
        chain.govern(chain.market.contract.functions.setParams(params.as_tuple()))


def test_zero_treasury_reverts(chain: Chain) -> None:
    with reverts("ZeroAddress"):
        chain.govern(chain.market.contract.functions.setTreasury(ZERO_ADDRESS))


def test_a_staker_points_its_registration_to_a_new_metadata_document(chain: Chain, provider, stranger) -> None:
    """After a key rotation the provider re-publishes; only a registered account can, for its own role."""
    chain.register(provider, Role.PROVIDER)
    receipt = chain.market.update_metadata(provider, Role.PROVIDER, "bafkreinew")
    assert chain.emitted(receipt, "MetadataUpdated") == [
        {"account": provider.address, "role": Role.PROVIDER, "metadataCid": "bafkreinew"}]
    with reverts("NotRegistered", stranger.address, Role.PROVIDER):
        chain.market.update_metadata(stranger, Role.PROVIDER, "bafkreinew")
    with reverts("NotRegistered", provider.address, Role.VERIFIER):
        chain.market.update_metadata(provider, Role.VERIFIER, "bafkreinew")
