"""Staking, unbonding with cooldown, and what the owner can and cannot set."""

from __future__ import annotations

import dataclasses

import pytest

from marketplace.chain.deployment import DEFAULT_PARAMS, DEFAULT_TERMS, WEI
from marketplace.protocol import JobState, Role, Terms
from tests.conftest import Chain, reverts

MIN = 100 * WEI
COOLDOWN = DEFAULT_PARAMS.unstake_cooldown


def name32(text: str) -> bytes:
    return text.encode().ljust(32, b"\0")


@pytest.mark.parametrize("role", [Role.PROVIDER, Role.VERIFIER])
def test_register_below_minimum_reverts(chain: Chain, stranger, role) -> None:
    chain.approve(stranger)
    with reverts("InsufficientStake", stranger.address, MIN - 1, MIN):
        chain.market.register(stranger, role, MIN - 1)


@pytest.mark.parametrize("role", [Role.PROVIDER, Role.VERIFIER])
def test_register_twice_reverts(chain: Chain, stranger, role) -> None:
    chain.register(stranger, role)
    with reverts("AlreadyRegistered", stranger.address, role):
        chain.market.register(stranger, role, MIN)


def test_add_stake_grows_stake(chain: Chain, provider) -> None:
    chain.register(provider, Role.PROVIDER, MIN)
    chain.market.add_stake(provider, Role.PROVIDER, 5 * WEI)
    assert chain.market.provider_stake(provider.address).stake == MIN + 5 * WEI


def test_add_stake_errors(chain: Chain, stranger) -> None:
    with reverts("ZeroAmount"):
        chain.market.add_stake(stranger, Role.PROVIDER, 0)
    chain.approve(stranger)
    with reverts("NotRegistered", stranger.address, Role.VERIFIER):
        chain.market.add_stake(stranger, Role.VERIFIER, WEI)


def test_unstake_then_withdraw_after_cooldown(chain: Chain, provider) -> None:
    chain.register(provider, Role.PROVIDER, 300 * WEI)
    before = chain.token.balance_of(provider.address)
    chain.market.request_unstake(provider, Role.PROVIDER, 200 * WEI)
    stake = chain.market.provider_stake(provider.address)
    assert (stake.stake, stake.unbonding) == (MIN, 200 * WEI)
    with reverts("CooldownActive", provider.address, stake.unlock_at):
        chain.market.withdraw_stake(provider, Role.PROVIDER)
    chain.increase_time(COOLDOWN)
    chain.market.withdraw_stake(provider, Role.PROVIDER)
    assert chain.token.balance_of(provider.address) == before + 200 * WEI
    with reverts("NothingToWithdraw", provider.address):
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
    job_id = chain.post(requester, price=200 * WEI)
    chain.market.claim_job(provider, job_id)
    with reverts("InsufficientStake", provider.address, 200 * WEI, 300 * WEI):
        chain.market.request_unstake(provider, Role.PROVIDER, 300 * WEI)


def test_verifier_leaving_marks_its_entry(chain: Chain, verifier) -> None:
    chain.register(verifier, Role.VERIFIER)
    entry = chain.market.verifier_stake(verifier.address).entry
    assert entry == chain.market.verifier_entries()
    chain.market.request_unstake(verifier, Role.VERIFIER, 1_000 * WEI)
    account, exit_at = chain.market.contract.functions.verifierAt(entry - 1).call()
    assert account == verifier.address
    assert exit_at == chain.now()
    assert chain.market.verifier_stake(verifier.address).entry == 0
    # Rejoining appends a new entry, so old assignments keep their meaning.
    chain.market.register(verifier, Role.VERIFIER, MIN)
    assert chain.market.verifier_entries() == entry + 1
    assert chain.market.verifier_stake(verifier.address).entry == entry + 1


# ───────────────────────────────────────────── owner


def test_owner_changes_apply_only_to_new_jobs(chain: Chain, requester, provider) -> None:
    chain.register(provider, Role.PROVIDER)
    old_job = chain.post(requester)
    new_terms = Terms(protocol_fee_bps=1_000, verifier_fee_bps=200, collateral_bps=2_000, audit_window=120)
    chain.client.transact(chain.owner, chain.market.contract.functions.setTerms(new_terms.as_tuple()))
    new_job = chain.post(requester)
    assert chain.market.terms_of(old_job).protocol_fee_bps == DEFAULT_TERMS.protocol_fee_bps
    assert chain.market.terms_of(new_job).protocol_fee_bps == 1_000
    chain.market.claim_job(provider, old_job)
    chain.market.submit_result(provider, old_job, "out", b"\1" * 32)
    chain.increase_time(DEFAULT_TERMS.audit_window + 1)
    chain.market.finalize(requester, old_job)
    assert chain.market.get_job(old_job).state is JobState.FINALIZED
    assert chain.market.protocol_fees() == chain.market.terms_of(old_job).split(audited=False).protocol


def test_only_owner_sets_parameters(chain: Chain, stranger) -> None:
    functions = chain.market.contract.functions
    with reverts("OwnableUnauthorizedAccount", stranger.address):
        chain.client.transact(stranger, functions.setTerms(DEFAULT_TERMS.as_tuple()))
    with reverts("OwnableUnauthorizedAccount", stranger.address):
        chain.client.transact(stranger, functions.setParams(DEFAULT_PARAMS.as_tuple()))
    with reverts("OwnableUnauthorizedAccount", stranger.address):
        chain.client.transact(stranger, functions.setTreasury(stranger.address))


@pytest.mark.parametrize(("change", "name", "value", "low", "high"), [
    ({"protocol_fee_bps": 2_001}, "protocolFeeBps", 2_001, 0, 2_000),
    ({"verifier_fee_bps": 2_001}, "verifierFeeBps", 2_001, 0, 2_000),
    ({"collateral_bps": 999}, "collateralBps", 999, 1_000, 50_000),
    ({"verifier_fee_bps": 1_500, "collateral_bps": 1_400}, "collateralBps", 1_400, 1_500, 50_000),
    ({"audit_window": 59}, "auditWindow", 59, 60, 7 * 86_400),
])
def test_terms_out_of_bounds_revert(chain: Chain, change, name, value, low, high) -> None:
    terms = dataclasses.replace(DEFAULT_TERMS, **change)
    with reverts("ParamOutOfBounds", name32(name), value, low, high):
        chain.client.transact(chain.owner, chain.market.contract.functions.setTerms(terms.as_tuple()))


@pytest.mark.parametrize(("change", "name", "value", "low", "high"), [
    ({"min_provider_stake": 0}, "minProviderStake", 0, 1, 2**96 - 1),
    ({"unstake_cooldown": 3_599}, "unstakeCooldown", 3_599, 3_600, 60 * 86_400),
    ({"min_sample_rate_bps": 99}, "minSampleRateBps", 99, 100, 10_000),
    ({"min_sample_rate_bps": 800, "max_sample_rate_bps": 700}, "maxSampleRateBps", 700, 800, 10_000),
])
def test_params_out_of_bounds_revert(chain: Chain, change, name, value, low, high) -> None:
    params = dataclasses.replace(DEFAULT_PARAMS, **change)
    with reverts("ParamOutOfBounds", name32(name), value, low, high):
        chain.client.transact(chain.owner, chain.market.contract.functions.setParams(params.as_tuple()))


def test_zero_treasury_reverts(chain: Chain) -> None:
    with reverts("ZeroAddress"):
        chain.client.transact(chain.owner, chain.market.contract.functions.setTreasury(
            "0x0000000000000000000000000000000000000000"))
