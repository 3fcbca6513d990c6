"""The attacks of issue 13, each run against the new contracts; each of them succeeded against the
old protocol (uniform selection over an append-only verifier list, a job-level sample rate,
settlement at the verdict, no way to demand outputs, no minimum price).

Each path is deterministic: who is drawn is fixed by who is eligible when the draw happens.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.chain.deployment import DEFAULT_PARAMS, WEI
from marketplace.chain.devnet import Devnet
from marketplace.protocol import (
    BPS,
    EPOCH_BLOCKS,
    MAX_VERIFIER_FEE_BPS,
    JobState,
    Role,
    Verdict,
    audit_fee,
    secret_hash,
)
from tests.conftest import MAX_UINT, OUTPUT_CID, Chain, reverts
from tests.contracts.support import (
    audited,
    challenge,
    dev,
    draw_panel,
    draw_room,
    fast_market,
    panel_seat_seeds,
    predicted_seats,
    resolve,
    seats,
    seeds,
    submit_outputs,
    sync_room,
    vote,
    within_three_sigma,
)

PRICE = 20 * WEI
MIN_TASK_PRICE = DEFAULT_PARAMS.min_task_price
SYBILS = [dev(i) for i in range(10, 19)]  # the requester's
MIN_STAKE = DEFAULT_PARAMS.min_verifier_stake
HONEST_STAKE = 10_000 * WEI


def net_worth(chain: Chain, *accounts) -> int:
    """What ``accounts`` hold together: tokens, credits, and stakes of both roles."""
    total = 0
    for account in accounts:
        address = account.address
        provider, verifier = chain.market.provider_stake(address), chain.market.verifier_stake(address)
        total += chain.token.balance_of(address) + chain.market.credits(address)
        total += provider.stake + provider.unbonding + verifier.stake + verifier.unbonding
    return total


# ───────────────────────────────────────────── Sybil collusion


def test_sybil_verifiers_are_drawn_by_stake_not_by_count(chain: Chain, requester, provider) -> None:
    """Old: 9 minimum-stake Sybils against one honest verifier took 19 of 20 audits."""
    for sybil in SYBILS:
        chain.register(sybil, Role.VERIFIER, MIN_STAKE)
    chain.register(dev(5), Role.VERIFIER, HONEST_STAKE)
    draws = chain.draws(seeds(2_000), [requester.address, provider.address])
    taken = sum(1 for d in draws if d in {s.address for s in SYBILS})
    share = 9 * MIN_STAKE / (9 * MIN_STAKE + HONEST_STAKE)
    assert within_three_sigma(taken, 2_000, share), f"Sybils drew {taken}/2000, their stake share is {share:.3f}"
    assert taken < 0.6 * 2_000  # an entry-count share would be 90 %


def test_a_sybil_failing_honest_work_loses_half_its_stake_and_the_coalition_loses(staffed: Chain, requester,
                                                                                  provider, jurors) -> None:
    """Old: the requester netted +850 WEBI and the honest provider's stake fell from 1,000 to 50."""
    sybil = SYBILS[0]
    staffed.market.request_unstake(dev(3), Role.VERIFIER, MIN_STAKE)  # the fixture's verifier leaves
    staffed.sync(dev(3).address)
    staffed.register(sybil, Role.VERIFIER, MIN_STAKE)
    coalition_before = net_worth(staffed, requester, sybil)
    provider_before = net_worth(staffed, provider)
    job_id = audited(staffed, requester, provider, sybil, Verdict.FAIL)  # the Sybil fails honest work
    terms = staffed.market.terms_of(job_id)
    for juror in jurors:
        staffed.register(juror, Role.VERIFIER, HONEST_STAKE)
    challenge(staffed, provider, job_id)
    draw_panel(staffed, job_id, distinct=True)
    vote(staffed, job_id, [Verdict.PASS] * 3)  # the honest panel re-executes and overturns
    resolve(staffed, job_id)
    slash = MIN_STAKE * DEFAULT_PARAMS.verifier_slash_bps // BPS
    reward = (slash - min(slash, terms.bond)) * DEFAULT_PARAMS.reward_bps // BPS
    assert staffed.market.get_job(job_id).state is JobState.FINALIZED
    assert staffed.market.verifier_stake(sybil.address).stake == MIN_STAKE - slash
    # The requester paid the price and got back no more than its escrow (here: the audit fee only).
    assert staffed.market.credits(requester.address) == terms.audit_fee <= terms.escrow
    assert staffed.market.credits(provider.address) == terms.split().provider + terms.bond + reward
    assert staffed.market.provider_stake(provider.address).stake == 1_000 * WEI
    coalition_gain = net_worth(staffed, requester, sybil) - coalition_before
    assert coalition_gain == -terms.price - slash < 0
    assert net_worth(staffed, provider) - provider_before == terms.split().provider + reward


def test_sybils_fill_panel_seats_only_in_proportion_to_their_stake(staffed: Chain, requester, provider) -> None:
    """Old (and the first panels of the new protocol): seats went to distinct accounts, so once the
    one honest verifier was seated, 8 minimum-stake Sybils held the other two seats, whatever
    their stake. Now each seat is an independent draw by stake."""
    sybil, others = SYBILS[0], SYBILS[1:]
    staffed.market.request_unstake(dev(3), Role.VERIFIER, MIN_STAKE)
    staffed.sync(dev(3).address)
    staffed.register(sybil, Role.VERIFIER, MIN_STAKE)
    job_id = audited(staffed, requester, provider, sybil, Verdict.FAIL)
    honest = dev(5)
    staffed.register(honest, Role.VERIFIER, HONEST_STAKE)
    for other in others:
        staffed.register(other, Role.VERIFIER, MIN_STAKE)
    draw_room(staffed, 4)
    challenge(staffed, provider, job_id)
    staffed.mine(2)
    # On chain, the seats are three independent draws (repeats allowed) ...
    predicted = predicted_seats(staffed, job_id)
    staffed.market.draw_panel(staffed.owner, job_id)
    assert seats(staffed, job_id) == predicted
    # ... so over many seeds the Sybils control a panel with probability 3s^2 - 2s^3, s their stake share.
    excluded = [requester.address, provider.address, sybil.address, provider.address]
    panels = [seed for seed in seeds(2_000)]
    seat_seeds = [s for seed in panels for s in panel_seat_seeds(seed, job_id)]
    drawn = staffed.draws(seat_seeds, excluded)
    sybil_set = {o.address for o in others}
    controlled = sum(1 for i in range(len(panels)) if sum(d in sybil_set for d in drawn[3 * i:3 * i + 3]) >= 2)
    share = len(others) * MIN_STAKE / (len(others) * MIN_STAKE + HONEST_STAKE)
    expected = 3 * share**2 - 2 * share**3
    assert within_three_sigma(controlled, len(panels), expected), (
        f"Sybils controlled {controlled}/{len(panels)} panels; their stake share {share:.3f} gives {expected:.3f}")
    assert controlled < 0.6 * len(panels)  # distinct seats would give them every panel


# ───────────────────────────────────────────── exited entries


def test_register_exit_cycles_do_not_reduce_the_audited_fraction(chain: Chain, requester, provider,
                                                                  verifier) -> None:
    """Old: after 100 register/exit cycles only 35 of 400 jobs at a 100 % rate were audited."""
    chain.register(provider, Role.PROVIDER, 10_000 * WEI)
    chain.register(verifier, Role.VERIFIER)
    market = fast_market(chain)
    cyclers = [dev(i) for i in range(10, 20)]
    for account in cyclers:
        chain.token.approve(account, chain.market.address, MAX_UINT)
    for round_ in range(10):
        for account in cyclers:  # in sync phases: the tree takes each entry and each exit at once
            sync_room(chain, 3)
            market.register(account, Role.VERIFIER, MIN_STAKE)
            market.commit_secret(account, secret_hash(chain.secret(account, round_)))
            market.request_unstake(account, Role.VERIFIER, MIN_STAKE)
        chain.increase_time(DEFAULT_PARAMS.unstake_cooldown)
        for account in cyclers:
            market.withdraw_stake(account, Role.VERIFIER)  # every token recovered
    assert chain.market.verifier_count() == 1
    chain.approve(requester)
    drawn = 0
    for _ in range(50):
        job_id = market.post_job(requester, chain.request())
        terms = market.terms_of(job_id)
        market.claim_job(provider, job_id, terms)
        market.submit_result(provider, job_id, OUTPUT_CID, b"\1" * 32)
        for _attempt in range(4):  # a seed that a sync phase passed is re-armed, never skipped
            seed_block = market.get_job(job_id).seed_block
            if chain.block_number() <= seed_block:
                chain.mine(seed_block + 1 - chain.block_number())
            market.lock_seed(requester, job_id, terms)
            if chain.market.audit_of(job_id).drawn:
                break
        drawn += chain.market.audit_of(job_id).verifier == verifier.address
    assert drawn == 50  # audited fraction 1.0


# ───────────────────────────────────────────── the expired seed


def test_an_expired_seed_never_lets_a_cheat_be_paid_unaudited(staffed: Chain, requester, provider,
                                                               verifier) -> None:
    """Old: an audit that took more than 256 blocks ended in SeedExpired, and the cheat was paid."""
    job_id = staffed.submitted_job(requester, provider)
    staffed.mine(300)
    staffed.increase_time(30 * 86_400)
    with reverts("WrongState", job_id, JobState.SUBMITTED, JobState.AUDITED):
        staffed.market.finalize(requester, job_id)
    receipt = staffed.market.lock_seed(requester, job_id)
    assert len(staffed.emitted(receipt, "SeedRearmed")) == 1
    assert staffed.draw(job_id) == verifier.address
    staffed.verdict(verifier, job_id, Verdict.FAIL)
    staffed.settle(job_id)
    assert staffed.market.get_job(job_id).state is JobState.REJECTED
    assert staffed.market.credits(provider.address) == 0


# ───────────────────────────────────────────── the unstable model


def test_an_inconclusive_audit_pays_the_provider_and_slashes_nobody(staffed: Chain, requester, provider,
                                                                     verifier) -> None:
    """Old: an honest provider's fp32 work checked in bf16 was rejected, and the requester was
    credited 145 WEBI on a 100 WEBI job."""
    job_id = staffed.submitted_job(requester, provider)
    terms = staffed.market.terms_of(job_id)
    staffed.verdict(verifier, job_id, Verdict.INCONCLUSIVE)
    receipt = staffed.settle(job_id)
    assert staffed.emitted(receipt, "Slashed") == []
    assert staffed.market.credits(provider.address) == terms.split().provider
    assert staffed.market.credits(requester.address) == 0
    assert staffed.market.provider_stake(provider.address).stake == 1_000 * WEI
    assert staffed.market.verifier_stake(verifier.address).stake == 1_000 * WEI


# ───────────────────────────────────────────── outputs withheld


def test_a_provider_withholding_its_outputs_is_rejected_not_paid(staffed: Chain, requester, provider,
                                                                 verifier) -> None:
    """Old: a provider that published nothing behind a gateway answering 504 was paid 97.5 %."""
    job_id = staffed.post(requester, price=PRICE)
    staffed.market.claim_job(provider, job_id)
    submit_outputs(staffed, provider, job_id, 16)
    staffed.draw(job_id)
    secret, next_hash = staffed.open_secret(verifier, job_id)
    staffed.market.demand_reveal(verifier, job_id, secret, next_hash)  # the store answers 504
    staffed.increase_time(DEFAULT_PARAMS.reveal_window + 1)
    staffed.market.fail_unrevealed(requester, job_id)
    terms = staffed.market.terms_of(job_id)
    assert staffed.market.get_job(job_id).state is JobState.REJECTED
    assert staffed.market.credits(provider.address) == 0
    assert staffed.market.provider_stake(provider.address).stake == 1_000 * WEI - terms.collateral
    assert staffed.market.credits(requester.address) == PRICE


# ───────────────────────────────────────────── dust


@pytest.mark.parametrize("num_tasks", [1, 16, 1_000, 10_000])
def test_a_dust_priced_job_reverts(chain: Chain, requester, num_tasks) -> None:
    """Old: dust-priced jobs at a 100 % sample rate flooded the verifiers for free."""
    chain.approve(requester)
    minimum = num_tasks * MIN_TASK_PRICE
    with reverts("InvalidPrice", minimum - 1, minimum):
        chain.market.post_job(requester, chain.request(num_tasks=num_tasks, price=minimum - 1))
    job_id = chain.post(requester, num_tasks=num_tasks, price=minimum, sample_tasks=1)
    assert chain.market.terms_of(job_id).audit_fee > 0


MAX_PRICE = DEFAULT_PARAMS.min_verifier_stake * DEFAULT_PARAMS.verifier_slash_bps // BPS


@settings(max_examples=150, derandomize=True, database=None)
@given(num_tasks=st.integers(1, MAX_PRICE // MIN_TASK_PRICE), sample_tasks=st.integers(1, 64),
       extra=st.integers(0, MAX_PRICE), verifier_fee_bps=st.integers(10_000, MAX_VERIFIER_FEE_BPS))
def test_every_audit_fee_is_positive(devnet: Devnet, num_tasks, sample_tasks, extra, verifier_fee_bps) -> None:
    # Any price the market accepts: from the minimum task price to what a verifier slash covers.
    price = min(num_tasks * MIN_TASK_PRICE + extra, MAX_PRICE)
    fee = devnet.protocol.market.audit_fee(price, num_tasks, sample_tasks, verifier_fee_bps)
    assert fee == audit_fee(price, num_tasks, sample_tasks, verifier_fee_bps)
    # At least the per-task minimum for each sampled task.
    assert fee >= min(num_tasks, sample_tasks) * MIN_TASK_PRICE > 0


# ───────────────────────────────────────────── stake that left


def test_a_verifier_that_withdrew_its_stake_is_never_drawn(chain: Chain, requester, provider) -> None:
    """A verifier that unstaked outside a sync phase keeps its weight until a sync: it cannot take
    its tokens out before its weight is gone, so it is never drawn with nothing at stake."""
    ghost = dev(5)
    chain.register(provider, Role.PROVIDER)
    chain.register(ghost, Role.VERIFIER, 10 * MIN_STAKE)
    draw_room(chain, 3)
    chain.market.request_unstake(ghost, Role.VERIFIER, 10 * MIN_STAKE)  # outside a sync phase
    assert chain.market.verifier_weight(ghost.address) == 10 * MIN_STAKE  # still in the draw
    chain.increase_time(DEFAULT_PARAMS.unstake_cooldown)
    draw_room(chain, 1)
    landing = chain.block_number() + 1  # estimated on the pending block, where it would run
    with reverts("NotSyncPhase", landing, landing - landing % EPOCH_BLOCKS + EPOCH_BLOCKS):
        chain.market.withdraw_stake(ghost, Role.VERIFIER)
    sync_room(chain, 1)
    chain.market.withdraw_stake(ghost, Role.VERIFIER)  # in a sync phase: it leaves the draw first
    assert chain.market.verifier_weight(ghost.address) == 0
    job_id = chain.submitted_job(requester, provider)
    with reverts("NoEligibleVerifier", job_id):
        for _ in range(4):  # a re-armed seed is tried again; nobody is ever drawn
            chain.mine(max(0, chain.market.get_job(job_id).seed_block + 1 - chain.block_number()))
            chain.market.lock_seed(chain.owner, job_id)
