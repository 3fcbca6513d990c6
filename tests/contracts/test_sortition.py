"""Stake-weighted selection: the draw's shares follow stake, exclusions hold, exits cost nothing and
leave no trace, splitting a stake gains nothing, and the sortition tree agrees with a Python model
through random sequences of entries, exits and weight changes.

Draws use the ``drawVerifier`` view with the seeds keccak256(0), keccak256(1), ...: the same draw
``lockSeed`` makes, on fixed seeds, so every count here is the same on every run.
"""

from __future__ import annotations

import random

import pytest
from eth_account.signers.local import LocalAccount

from marketplace.chain.deployment import DEFAULT_PARAMS, WEI
from marketplace.protocol import ZERO_HASH, Role, secret_hash
from tests.conftest import MAX_UINT, Chain
from tests.contracts.support import SortitionModel, dev, draw_room, fast_market, seeds, sync_room, within_three_sigma

DRAWS = 2_000
SEEDS = seeds(DRAWS)
STAKES = {5: 1_000, 6: 2_000, 7: 3_000, 8: 4_000, 9: 10_000}  # dev account -> WEBI
MINIMUM = DEFAULT_PARAMS.min_verifier_stake


def register_all(chain: Chain, stakes: dict[int, int], model: SortitionModel | None = None) -> None:
    for index, amount in stakes.items():
        chain.register(dev(index), Role.VERIFIER, amount * WEI)
        if model is not None:
            model.set(dev(index).address, amount * WEI)


def counts(draws: list[str]) -> dict[str, int]:
    tally: dict[str, int] = {}
    for address in draws:
        tally[address] = tally.get(address, 0) + 1
    return tally


def test_each_verifiers_share_of_draws_matches_its_share_of_stake(chain: Chain) -> None:
    model = SortitionModel()
    register_all(chain, STAKES, model)
    total = sum(STAKES.values()) * WEI
    assert (chain.market.total_verifier_weight(), chain.market.verifier_count()) == (total, len(STAKES))
    draws = chain.draws(SEEDS)
    assert draws == [model.draw(seed) for seed in SEEDS]  # the contract's draw, exactly
    tally = counts(draws)
    for index, amount in STAKES.items():
        share = amount * WEI / total
        hits = tally.get(dev(index).address, 0)
        assert within_three_sigma(hits, DRAWS, share), f"dev {index}: {hits}/{DRAWS}, stake share {share:.3f}"


def test_excluded_accounts_are_never_drawn_and_the_rest_keep_proportional_shares(chain: Chain, stranger) -> None:
    model = SortitionModel()
    register_all(chain, STAKES, model)
    # The heaviest and a light one are excluded; a repeat and an absent account change nothing.
    excluded = [dev(9).address, dev(6).address, dev(9).address, stranger.address]
    draws = chain.draws(SEEDS, excluded)
    assert draws == [model.draw(seed, excluded) for seed in SEEDS]
    tally = counts(draws)
    assert set(tally) == {dev(i).address for i in (5, 7, 8)}
    remaining = sum(STAKES[i] for i in (5, 7, 8))
    for index in (5, 7, 8):
        assert within_three_sigma(tally[dev(index).address], DRAWS, STAKES[index] / remaining)
    everyone = [dev(i).address for i in STAKES]
    assert set(chain.draws(SEEDS[:10], everyone)) == {"0x0000000000000000000000000000000000000000"}


@pytest.mark.slow
def test_register_exit_cycles_leave_the_count_and_the_draws_unchanged(chain: Chain) -> None:
    register_all(chain, STAKES)
    count, total, before = chain.market.verifier_count(), chain.market.total_verifier_weight(), chain.draws(SEEDS)
    market = fast_market(chain)
    cyclers = [dev(i) for i in range(10, 20)]
    for account in cyclers:
        chain.token.approve(account, chain.market.address, MAX_UINT)
    shuffle = random.Random(13)
    for round_ in range(10):
        amount = MINIMUM + round_ * WEI
        for account in cyclers:  # each change in a sync phase, so that the tree follows at once
            sync_room(chain)
            market.register(account, Role.VERIFIER, amount)
            sync_room(chain)
            market.commit_secret(account, secret_hash(chain.secret(account, round_)))
        assert chain.market.verifier_count() == count + len(cyclers)
        # Exits in any order: each is a swap with the last leaf and a pop.
        for account in shuffle.sample(cyclers, len(cyclers)):
            sync_room(chain)
            market.request_unstake(account, Role.VERIFIER, amount)
        assert (chain.market.verifier_count(), chain.market.total_verifier_weight()) == (count, total)
        chain.increase_time(DEFAULT_PARAMS.unstake_cooldown)
        for account in cyclers:
            market.withdraw_stake(account, Role.VERIFIER)  # every token recovered
    assert chain.draws(SEEDS) == before


def test_splitting_a_stake_over_ten_addresses_gains_nothing(chain: Chain) -> None:
    honest, whale = dev(5), dev(6)
    chain.register(honest, Role.VERIFIER, 10 * MINIMUM)
    chain.register(whale, Role.VERIFIER, 10 * MINIMUM)
    whole = counts(chain.draws(SEEDS)).get(whale.address, 0)
    chain.market.request_unstake(whale, Role.VERIFIER, 10 * MINIMUM)
    chain.sync(whale.address)
    splits = [dev(i) for i in range(10, 20)]
    for account in splits:
        chain.register(account, Role.VERIFIER, MINIMUM)
    tally = counts(chain.draws(SEEDS))
    split = sum(tally.get(a.address, 0) for a in splits)
    assert whale.address not in tally
    assert within_three_sigma(whole, DRAWS, 0.5)
    assert within_three_sigma(split, DRAWS, 0.5), f"ten addresses drew {split}/{DRAWS} for half the stake"
    assert tally[honest.address] == DRAWS - split


def _check(chain: Chain, model: SortitionModel, probe: list[bytes], excluded: list[str]) -> None:
    assert chain.market.total_verifier_weight() == model.total
    assert chain.market.verifier_count() == len(model.leaves)
    assert chain.draws(probe, excluded) == [model.draw(seed, excluded) for seed in probe]


@pytest.mark.slow
def test_the_tree_agrees_with_a_python_model_through_random_changes(chain: Chain) -> None:
    """Random entries, exits (swap-and-pop from anywhere), stake changes and commitment changes,
    most in a sync phase (applied at once), some outside one (applied by a later syncVerifier);
    after each, the weights, the total and the count match, and periodically every draw of a probe
    set matches."""
    rng = random.Random(2_718)
    accounts: list[LocalAccount] = [dev(i) for i in range(1, 20)]
    market = fast_market(chain)
    for account in accounts:
        chain.token.approve(account, chain.market.address, MAX_UINT)
    model = SortitionModel()
    stake = {a.address: 0 for a in accounts}
    committed = {a.address: False for a in accounts}

    def desired(address: str) -> int:
        return stake[address] if committed[address] and stake[address] >= MINIMUM else 0

    operations = deferred = 0
    while operations < 200:
        account = rng.choice(accounts)
        address = account.address
        kind = rng.choice(["register"] * 3 + ["add", "unstake", "exit", "uncommit", "commit"])
        later = rng.random() < 0.2  # outside a sync phase: the tree waits for syncVerifier
        if later:
            draw_room(chain)
        else:
            sync_room(chain)
        if kind == "register" and stake[address] == 0:
            amount = rng.randrange(MINIMUM, 30 * MINIMUM)
            market.register(account, Role.VERIFIER, amount)
            stake[address] = amount
        elif kind == "add" and stake[address]:
            amount = rng.randrange(1, 5 * MINIMUM)
            market.add_stake(account, Role.VERIFIER, amount)
            stake[address] += amount
        elif kind == "unstake" and stake[address] > MINIMUM + WEI:
            amount = rng.randrange(1, stake[address] - MINIMUM)
            market.request_unstake(account, Role.VERIFIER, amount)
            stake[address] -= amount
        elif kind == "exit" and stake[address]:
            market.request_unstake(account, Role.VERIFIER, stake[address])
            stake[address] = 0
        elif kind == "uncommit" and stake[address] and committed[address]:
            market.commit_secret(account, ZERO_HASH)
            committed[address] = False
        elif kind in ("commit", "register") and stake[address] and not committed[address]:
            market.commit_secret(account, secret_hash(chain.secret(account, operations)))
            committed[address] = True
        else:
            continue
        operations += 1
        if later:
            assert chain.market.verifier_weight(address) == model.weight(address)  # not yet
            deferred += 1
            sync_room(chain)
            market.sync_verifier(accounts[0], address)
        model.set(address, desired(address))
        assert chain.market.verifier_weight(address) == model.weight(address)
        if operations % 25 == 0:
            excluded = [a.address for a in rng.sample(accounts, rng.randrange(0, 4))]
            _check(chain, model, seeds(200), excluded)
    assert len(model.leaves) > 5 and model.swaps > 10 and deferred > 20, "the sequence must exercise it all"
    _check(chain, model, SEEDS, [])
