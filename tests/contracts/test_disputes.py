"""Challenges of a provisional verdict: who may challenge, the bond, the panel draw, commit-reveal
votes and the resolution, with every amount of every outcome asserted to the wei.

Deterministic: the job's verifier is the only verifier at the draw, and the panel's jurors
register after it, so that they are exactly the accounts eligible for the panel. Each of the three
seats is an independent draw (a verifier may hold two); tests whose amounts follow the members
draw a panel of three distinct jurors, letting seeds that would seat one twice expire.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from marketplace.chain.deployment import DEFAULT_PARAMS, WEI
from marketplace.chain.governance import Governance
from marketplace.protocol import (
    BPS,
    MAX_VERIFIER_FEE_BPS,
    ZERO_HASH,
    CreditKind,
    JobState,
    Role,
    Verdict,
    vote_commitment,
)
from tests.conftest import Chain, reverts
from tests.contracts.support import (
    SALT,
    VOTE_WINDOW,
    audited,
    burned_in,
    challenge,
    dev,
    draw_panel,
    draw_room,
    ledger,
    members,
    next_seed_block,
    predicted_seats,
    resolve,
    seats,
    slashes,
    vote,
)

PRICE = 20 * WEI
REWARD = DEFAULT_PARAMS.reward_bps
NO_SHOW = DEFAULT_PARAMS.no_show_slash_bps
VERIFIER_SLASH = DEFAULT_PARAMS.verifier_slash_bps
VERIFIER_MIN = DEFAULT_PARAMS.min_verifier_stake


def multiset(entries):
    return sorted(entries, key=repr)


# ───────────────────────────────────────────── who may challenge


@pytest.mark.parametrize(("verdict", "who"), [
    (Verdict.PASS, "requester"), (Verdict.INCONCLUSIVE, "requester"), (Verdict.FAIL, "provider"),
    (Verdict.PASS, "juror"), (Verdict.FAIL, "juror"), (Verdict.INCONCLUSIVE, "juror"),
])
def test_the_harmed_side_or_a_staked_verifier_challenges_with_a_bond(staffed: Chain, requester, provider,
                                                                      verifier, jurors, verdict, who) -> None:
    job_id = audited(staffed, requester, provider, verifier, verdict, jurors)
    challenger = {"requester": requester, "provider": provider, "juror": jurors[0]}[who]
    bond = 3 * staffed.market.terms_of(job_id).audit_fee
    assert bond == staffed.market.terms_of(job_id).bond
    staffed.approve(challenger)
    wallet, held = staffed.token.balance_of(challenger.address), staffed.token.balance_of(staffed.market.address)
    receipt = staffed.market.challenge(challenger, job_id)
    assert staffed.emitted(receipt, "Challenged") == [
        {"jobId": job_id, "challenger": challenger.address, "bond": bond,
         "seedBlock": next_seed_block(receipt["blockNumber"])}]
    assert staffed.token.balance_of(challenger.address) == wallet - bond
    assert staffed.token.balance_of(staffed.market.address) == held + bond
    assert staffed.market.get_job(job_id).state is JobState.CHALLENGED
    panel = staffed.market.panel_of(job_id)
    assert (panel.challenger, panel.bond, panel.seed_block, panel.size) == (
        challenger.address, bond, next_seed_block(receipt["blockNumber"]), 0)
    with reverts("WrongState", job_id, JobState.CHALLENGED, JobState.AUDITED):
        staffed.market.challenge(challenger, job_id)
    with reverts("WrongState", job_id, JobState.CHALLENGED, JobState.AUDITED):
        staffed.market.finalize(challenger, job_id)


@pytest.mark.parametrize(("verdict", "who"), [
    (Verdict.PASS, "stranger"), (Verdict.FAIL, "stranger"), (Verdict.PASS, "verifier"), (Verdict.FAIL, "verifier"),
    (Verdict.PASS, "provider"), (Verdict.INCONCLUSIVE, "provider"), (Verdict.FAIL, "requester"),
    (Verdict.PASS, "exited"),
])
def test_others_may_not_challenge(staffed: Chain, requester, provider, verifier, stranger, jurors, verdict,
                                  who) -> None:
    job_id = audited(staffed, requester, provider, verifier, verdict, jurors)
    # A verifier that unstaked all of its stake is no longer a staked verifier.
    staffed.market.request_unstake(jurors[0], Role.VERIFIER, 1_000 * WEI)
    caller = {"stranger": stranger, "verifier": verifier, "provider": provider, "requester": requester,
              "exited": jurors[0]}[who]
    staffed.approve(caller)
    with reverts("NotEntitledToChallenge", job_id, caller.address):
        staffed.market.challenge(caller, job_id)


def test_a_party_staked_as_a_verifier_still_may_not_challenge_in_its_favour(staffed: Chain, requester,
                                                                            provider, verifier) -> None:
    job_id = audited(staffed, requester, provider, verifier, Verdict.PASS)
    staffed.register(provider, Role.VERIFIER)
    with reverts("NotEntitledToChallenge", job_id, provider.address):
        staffed.market.challenge(provider, job_id)


def test_challenge_after_the_window_reverts(staffed: Chain, requester, provider, verifier) -> None:
    job_id = audited(staffed, requester, provider, verifier, Verdict.PASS)
    deadline = staffed.market.audit_of(job_id).deadline
    staffed.increase_time(staffed.market.terms_of(job_id).challenge_window + 1)
    staffed.approve(requester)
    with reverts("DeadlinePassed", job_id, deadline):
        staffed.market.challenge(requester, job_id)


def test_challenge_before_the_verdict_reverts(staffed: Chain, requester, provider) -> None:
    job_id = staffed.submitted_job(requester, provider)
    staffed.draw(job_id)
    with reverts("WrongState", job_id, JobState.SUBMITTED, JobState.AUDITED):
        challenge(staffed, requester, job_id)


# ───────────────────────────────────────────── the panel


def test_the_panel_is_drawn_by_stake_from_the_block_after_the_challenge(staffed: Chain, requester, provider,
                                                                         verifier, jurors) -> None:
    job_id = audited(staffed, requester, provider, verifier, Verdict.FAIL, jurors)
    # The parties are verifiers too, with most of the stake: never on their own job's panel.
    staffed.register(requester, Role.VERIFIER, 100 * VERIFIER_MIN)
    staffed.register(provider, Role.VERIFIER, 100 * VERIFIER_MIN)
    draw_room(staffed, 3)
    seed_block = next_seed_block(challenge(staffed, provider, job_id)["blockNumber"])
    assert staffed.market.panel_of(job_id).seed_block == seed_block
    with reverts("SeedNotReady", job_id, seed_block):
        staffed.market.draw_panel(staffed.owner, job_id)
    with reverts("PanelNotDrawn", job_id):
        staffed.market.commit_vote(jurors[0], job_id, Verdict.PASS, SALT)
    receipt = draw_panel(staffed, job_id, distinct=True)
    now = staffed.client.w3.eth.get_block(receipt["blockNumber"])["timestamp"]
    event = staffed.emitted(receipt, "PanelDrawn")[0]
    assert (event["jobId"], event["commitBy"], event["revealBy"]) == (job_id, now + VOTE_WINDOW,
                                                                      now + 2 * VOTE_WINDOW)
    assert sorted(event["members"]) == sorted(j.address for j in jurors)
    panel = staffed.market.panel_of(job_id)
    assert (panel.size, list(panel.members), panel.commit_by, panel.reveal_by) == (
        3, event["members"], now + VOTE_WINDOW, now + 2 * VOTE_WINDOW)
    for juror in jurors:
        assert staffed.market.verifier_stake(juror.address).duties == 1
    with reverts("AlreadyDrawn", job_id, panel.members[0]):
        staffed.market.draw_panel(staffed.owner, job_id)


def test_the_panel_seats_are_the_draws_a_view_predicts(staffed: Chain, requester, provider, verifier,
                                                       jurors) -> None:
    job_id = audited(staffed, requester, provider, verifier, Verdict.FAIL, jurors)
    draw_room(staffed, 4)
    challenge(staffed, provider, job_id)
    staffed.mine(2)
    predicted = predicted_seats(staffed, job_id)
    staffed.market.draw_panel(staffed.owner, job_id)
    assert seats(staffed, job_id) == predicted


@pytest.mark.parametrize("eligible", [1, 2, 4])
def test_each_of_three_seats_is_drawn_by_stake_from_the_eligible_verifiers(staffed: Chain, requester, provider,
                                                                           verifier, eligible) -> None:
    candidates = [dev(i) for i in range(5, 5 + eligible)]
    job_id = audited(staffed, requester, provider, verifier, Verdict.FAIL, candidates)
    challenge(staffed, provider, job_id)
    draw_panel(staffed, job_id)
    panel = staffed.market.panel_of(job_id)
    assert panel.size == 3  # seats, drawn with replacement: a verifier drawn twice holds two
    assert set(panel.members) <= {c.address for c in candidates}
    for candidate in candidates:
        assert staffed.market.verifier_stake(candidate.address).duties == panel.members.count(candidate.address)


def test_a_challenging_verifier_is_not_on_the_panel(staffed: Chain, requester, provider, verifier,
                                                    jurors) -> None:
    job_id = audited(staffed, requester, provider, verifier, Verdict.PASS, jurors)
    challenge(staffed, jurors[0], job_id)
    draw_panel(staffed, job_id)
    assert set(seats(staffed, job_id)) <= {jurors[1].address, jurors[2].address}


def test_a_member_holding_every_seat_votes_once_for_all_of_them(staffed: Chain, requester, provider, verifier,
                                                                 jurors) -> None:
    juror = jurors[0]
    job_id = audited(staffed, requester, provider, verifier, Verdict.FAIL, [juror])
    terms = staffed.market.terms_of(job_id)
    challenge(staffed, provider, job_id)
    draw_panel(staffed, job_id)
    assert seats(staffed, job_id) == [juror.address] * 3  # the only eligible verifier
    receipt = staffed.market.commit_vote(juror, job_id, Verdict.FAIL, SALT)
    assert staffed.emitted(receipt, "VoteCommitted") == [{"jobId": job_id, "member": juror.address}]
    assert len(set(staffed.market.panel_of(job_id).commits)) == 1
    with reverts("AlreadyVoted", job_id, juror.address):
        staffed.market.commit_vote(juror, job_id, Verdict.PASS, SALT)
    staffed.market.reveal_vote(juror, job_id, Verdict.FAIL, SALT)  # all seats committed: no need to wait
    assert staffed.market.panel_of(job_id).votes == (Verdict.FAIL,) * 3
    receipt = resolve(staffed, job_id)
    fees = [amount for a, kind, amount in ledger(staffed, receipt) if kind is CreditKind.PANEL_FEE]
    assert fees == [terms.bond // 3 + terms.bond % 3, terms.bond // 3, terms.bond // 3]  # one share a seat
    assert staffed.market.verifier_stake(juror.address).duties == 0


def test_a_silent_member_is_slashed_for_every_seat(staffed: Chain, requester, provider, verifier,
                                                   jurors) -> None:
    juror = jurors[0]
    job_id = audited(staffed, requester, provider, verifier, Verdict.FAIL, [juror])
    challenge(staffed, provider, job_id)
    draw_panel(staffed, job_id)
    receipt = resolve(staffed, job_id)
    stake, expected = VERIFIER_MIN, []
    for _ in range(3):
        expected.append((juror.address, Role.VERIFIER, stake * NO_SHOW // BPS, 0))
        stake -= stake * NO_SHOW // BPS
    assert [s for s in slashes(staffed, receipt) if s[0] == juror.address] == expected
    assert staffed.market.verifier_stake(juror.address).stake == stake


def test_with_nobody_eligible_the_challenge_is_dismissed_and_the_bond_refunded(staffed: Chain, requester,
                                                                               provider, verifier) -> None:
    job_id = audited(staffed, requester, provider, verifier, Verdict.FAIL)
    terms = staffed.market.terms_of(job_id)
    challenge(staffed, provider, job_id)
    receipt = draw_panel(staffed, job_id)
    assert staffed.emitted(receipt, "ChallengeResolved") == [{"jobId": job_id, "verdict": Verdict.FAIL,
                                                              "upheld": True}]
    assert staffed.emitted(receipt, "JobSettled") == [{"jobId": job_id, "verdict": Verdict.FAIL}]
    reward = terms.collateral * REWARD // BPS
    assert multiset(ledger(staffed, receipt)) == multiset([
        (provider.address, CreditKind.BOND_REFUND, terms.bond),
        (requester.address, CreditKind.REFUND, PRICE),
        (verifier.address, CreditKind.REWARD, reward),
        (verifier.address, CreditKind.VERIFIER_FEE, terms.audit_fee)])
    assert staffed.market.get_job(job_id).state is JobState.REJECTED
    assert staffed.market.verifier_stake(verifier.address).duties == 0


def test_a_panel_seed_out_of_view_is_rearmed(staffed: Chain, requester, provider, verifier, jurors) -> None:
    job_id = audited(staffed, requester, provider, verifier, Verdict.FAIL, jurors)
    challenge(staffed, provider, job_id)
    staffed.mine(300)
    receipt = staffed.market.draw_panel(staffed.owner, job_id)
    assert staffed.emitted(receipt, "SeedRearmed") == [
        {"jobId": job_id, "seedBlock": next_seed_block(receipt["blockNumber"])}]
    assert staffed.market.panel_of(job_id).size == 0
    draw_panel(staffed, job_id)
    assert staffed.market.panel_of(job_id).size == 3


def test_draw_panel_without_a_challenge_reverts(staffed: Chain, requester, provider, verifier) -> None:
    job_id = audited(staffed, requester, provider, verifier, Verdict.PASS)
    with reverts("WrongState", job_id, JobState.AUDITED, JobState.CHALLENGED):
        staffed.market.draw_panel(staffed.owner, job_id)
    with reverts("WrongState", job_id, JobState.AUDITED, JobState.CHALLENGED):
        staffed.market.commit_vote(verifier, job_id, Verdict.PASS, SALT)


# ───────────────────────────────────────────── votes


@pytest.fixture
def panel_job(staffed: Chain, requester, provider, verifier, jurors) -> int:
    """A failed job the provider challenged, with its three-member panel drawn."""
    job_id = audited(staffed, requester, provider, verifier, Verdict.FAIL, jurors)
    challenge(staffed, provider, job_id)
    draw_panel(staffed, job_id, distinct=True)
    return job_id


def test_commit_vote_errors(staffed: Chain, panel_job, stranger, verifier) -> None:
    first, second, _ = members(staffed, panel_job)
    with reverts("NotPanelMember", panel_job, stranger.address):
        staffed.market.commit_vote(stranger, panel_job, Verdict.PASS, SALT)
    with reverts("NotPanelMember", panel_job, verifier.address):
        staffed.market.commit_vote(verifier, panel_job, Verdict.PASS, SALT)
    with reverts("VoteMismatch", panel_job, first.address):  # an empty commitment commits to nothing
        staffed.client.transact(first, staffed.market.contract.functions.commitVote(panel_job, ZERO_HASH))
    receipt = staffed.market.commit_vote(first, panel_job, Verdict.PASS, SALT)
    assert staffed.emitted(receipt, "VoteCommitted") == [{"jobId": panel_job, "member": first.address}]
    assert staffed.market.panel_of(panel_job).commits[0] == vote_commitment(panel_job, first.address, Verdict.PASS,
                                                                            SALT)
    with reverts("AlreadyVoted", panel_job, first.address):
        staffed.market.commit_vote(first, panel_job, Verdict.FAIL, SALT)
    commit_by = staffed.market.panel_of(panel_job).commit_by
    staffed.increase_time(VOTE_WINDOW + 1)
    with reverts("DeadlinePassed", panel_job, commit_by):
        staffed.market.commit_vote(second, panel_job, Verdict.PASS, SALT)


def test_reveal_waits_for_the_commit_phase_unless_all_committed(staffed: Chain, panel_job) -> None:
    panel = members(staffed, panel_job)
    commit_by = staffed.market.panel_of(panel_job).commit_by
    staffed.market.commit_vote(panel[0], panel_job, Verdict.PASS, SALT)
    staffed.market.commit_vote(panel[1], panel_job, Verdict.PASS, SALT)
    # Revealing while others may still commit would let them copy the vote.
    with reverts("DeadlineNotReached", panel_job, commit_by):
        staffed.market.reveal_vote(panel[0], panel_job, Verdict.PASS, SALT)
    staffed.market.commit_vote(panel[2], panel_job, Verdict.FAIL, SALT)
    receipt = staffed.market.reveal_vote(panel[0], panel_job, Verdict.PASS, SALT)
    assert staffed.emitted(receipt, "VoteRevealed") == [{"jobId": panel_job, "member": panel[0].address,
                                                         "vote": Verdict.PASS}]
    assert staffed.market.panel_of(panel_job).votes[0] is Verdict.PASS


def test_reveal_vote_errors(staffed: Chain, panel_job, stranger) -> None:
    panel = members(staffed, panel_job)
    for member in panel:
        staffed.market.commit_vote(member, panel_job, Verdict.PASS, SALT)
    with reverts("NotPanelMember", panel_job, stranger.address):
        staffed.market.reveal_vote(stranger, panel_job, Verdict.PASS, SALT)
    with reverts("VoteMismatch", panel_job, panel[0].address):  # another vote than committed
        staffed.market.reveal_vote(panel[0], panel_job, Verdict.FAIL, SALT)
    with reverts("VoteMismatch", panel_job, panel[0].address):  # another salt
        staffed.market.reveal_vote(panel[0], panel_job, Verdict.PASS, b"\1" * 32)
    with reverts("InvalidVerdict", panel_job, Verdict.NONE):
        staffed.market.reveal_vote(panel[0], panel_job, Verdict.NONE, SALT)
    staffed.market.reveal_vote(panel[0], panel_job, Verdict.PASS, SALT)
    with reverts("AlreadyVoted", panel_job, panel[0].address):
        staffed.market.reveal_vote(panel[0], panel_job, Verdict.PASS, SALT)
    reveal_by = staffed.market.panel_of(panel_job).reveal_by
    staffed.increase_time(2 * VOTE_WINDOW + 1)
    with reverts("DeadlinePassed", panel_job, reveal_by):
        staffed.market.reveal_vote(panel[1], panel_job, Verdict.PASS, SALT)


def test_resolve_waits_for_the_reveal_phase_unless_all_revealed(staffed: Chain, panel_job) -> None:
    panel = members(staffed, panel_job)
    reveal_by = staffed.market.panel_of(panel_job).reveal_by
    with reverts("DeadlineNotReached", panel_job, reveal_by):
        staffed.market.resolve_challenge(staffed.owner, panel_job)
    for member in panel:
        staffed.market.commit_vote(member, panel_job, Verdict.FAIL, SALT)
    for member in panel[:2]:
        staffed.market.reveal_vote(member, panel_job, Verdict.FAIL, SALT)
    with reverts("DeadlineNotReached", panel_job, reveal_by):
        staffed.market.resolve_challenge(staffed.owner, panel_job)
    staffed.market.reveal_vote(panel[2], panel_job, Verdict.FAIL, SALT)
    staffed.market.resolve_challenge(staffed.owner, panel_job)  # all revealed: no need to wait
    assert staffed.market.get_job(panel_job).state is JobState.REJECTED
    with reverts("WrongState", panel_job, JobState.REJECTED, JobState.CHALLENGED):
        staffed.market.resolve_challenge(staffed.owner, panel_job)


def test_resolve_before_the_panel_is_drawn_reverts(staffed: Chain, requester, provider, verifier) -> None:
    job_id = audited(staffed, requester, provider, verifier, Verdict.FAIL, [dev(5)])
    challenge(staffed, provider, job_id)
    with reverts("PanelNotDrawn", job_id):
        staffed.market.resolve_challenge(staffed.owner, job_id)


# ───────────────────────────────────────────── outcomes


def test_an_upheld_verdict_pays_the_bond_to_the_majority(staffed: Chain, requester, provider, verifier,
                                                         panel_job) -> None:
    terms = staffed.market.terms_of(panel_job)
    panel = members(staffed, panel_job)
    vote(staffed, panel_job, [Verdict.FAIL] * 3)
    receipt = resolve(staffed, panel_job)
    reward = terms.collateral * REWARD // BPS
    assert staffed.emitted(receipt, "ChallengeResolved") == [{"jobId": panel_job, "verdict": Verdict.FAIL,
                                                              "upheld": True}]
    assert multiset(ledger(staffed, receipt)) == multiset([
        *[(m.address, CreditKind.PANEL_FEE, terms.bond // 3) for m in panel],
        (requester.address, CreditKind.REFUND, PRICE),
        (verifier.address, CreditKind.REWARD, reward),
        (verifier.address, CreditKind.VERIFIER_FEE, terms.audit_fee)])
    assert burned_in(staffed, receipt) == terms.collateral - reward
    assert slashes(staffed, receipt) == [(provider.address, Role.PROVIDER, terms.collateral, 0)]
    assert staffed.market.get_job(panel_job).state is JobState.REJECTED
    for member in [*panel, verifier]:
        assert staffed.market.verifier_stake(member.address).duties == 0
    # The losing challenger's bond is gone: it is in the panel's credits.
    assert staffed.market.credits(provider.address) == 0


def test_a_split_majority_shares_the_bond_and_the_first_winner_takes_the_remainder(chain: Chain, requester,
                                                                                   provider, verifier,
                                                                                   jurors) -> None:
    chain.register(provider, Role.PROVIDER)
    chain.register(verifier, Role.VERIFIER)
    price = PRICE + 2  # an odd bond: 3 * (price / 2) wei
    job_id = audited(chain, requester, provider, verifier, Verdict.FAIL, jurors, price=price)
    terms = chain.market.terms_of(job_id)
    assert terms.bond % 2 == 1
    challenge(chain, provider, job_id)
    draw_panel(chain, job_id, distinct=True)
    panel = members(chain, job_id)
    vote(chain, job_id, [Verdict.PASS, Verdict.FAIL, Verdict.FAIL])
    receipt = resolve(chain, job_id)
    fees = [(a, amount) for a, kind, amount in ledger(chain, receipt) if kind is CreditKind.PANEL_FEE]
    assert fees == [(panel[1].address, terms.bond // 2 + 1), (panel[2].address, terms.bond // 2)]
    assert slashes(chain, receipt) == [(provider.address, Role.PROVIDER, terms.collateral, 0)]  # a dissent is no fault


def test_an_overturned_verdict_slashes_the_verifier_and_settles_by_the_panel(staffed: Chain, requester,
                                                                             provider, verifier,
                                                                             panel_job) -> None:
    terms = staffed.market.terms_of(panel_job)
    panel = members(staffed, panel_job)
    vote(staffed, panel_job, [Verdict.PASS] * 3)
    burned_before = staffed.market.burned()
    receipt = resolve(staffed, panel_job)
    slash = 1_000 * WEI * VERIFIER_SLASH // BPS
    panel_pay = min(slash, terms.bond)
    reward = (slash - panel_pay) * REWARD // BPS
    split = terms.split()
    assert staffed.emitted(receipt, "ChallengeResolved") == [{"jobId": panel_job, "verdict": Verdict.PASS,
                                                              "upheld": False}]
    assert staffed.emitted(receipt, "JobSettled") == [{"jobId": panel_job, "verdict": Verdict.PASS}]
    assert slashes(staffed, receipt) == [(verifier.address, Role.VERIFIER, slash, 0)]
    assert multiset(ledger(staffed, receipt)) == multiset([
        *[(m.address, CreditKind.PANEL_FEE, panel_pay // 3) for m in panel],
        (provider.address, CreditKind.REWARD, reward),
        (provider.address, CreditKind.BOND_REFUND, terms.bond),
        (provider.address, CreditKind.PROVIDER_PAYMENT, split.provider),
        (staffed.market.treasury(), CreditKind.PROTOCOL_FEE, split.protocol),
        # The contradicted verifier forfeits the audit fee: back to the requester.
        (requester.address, CreditKind.REFUND, terms.audit_fee)])
    assert burned_in(staffed, receipt) == slash - panel_pay - reward == staffed.market.burned() - burned_before
    assert staffed.market.get_job(panel_job).state is JobState.FINALIZED
    stake = staffed.market.verifier_stake(verifier.address)
    assert (stake.stake, stake.duties) == (1_000 * WEI - slash, 0)
    staffed.sync(verifier.address)
    assert staffed.market.verifier_weight(verifier.address) == 0  # below the minimum stake: out of the draw
    assert staffed.market.provider_stake(provider.address).stake == 1_000 * WEI
    assert staffed.market.credits(verifier.address) == 0


def test_an_overturned_pass_rejects_the_job_and_rewards_the_challenging_requester(staffed: Chain, requester,
                                                                                  provider, verifier,
                                                                                  jurors) -> None:
    job_id = audited(staffed, requester, provider, verifier, Verdict.PASS, jurors)
    terms = staffed.market.terms_of(job_id)
    challenge(staffed, requester, job_id)
    draw_panel(staffed, job_id, distinct=True)
    vote(staffed, job_id, [Verdict.FAIL] * 3)
    receipt = resolve(staffed, job_id)
    slash = 1_000 * WEI * VERIFIER_SLASH // BPS
    panel_pay = min(slash, terms.bond)
    verifier_reward = (slash - panel_pay) * REWARD // BPS
    collateral_reward = terms.collateral * REWARD // BPS
    assert staffed.market.get_job(job_id).state is JobState.REJECTED
    assert multiset(slashes(staffed, receipt)) == multiset([
        (verifier.address, Role.VERIFIER, slash, 0), (provider.address, Role.PROVIDER, terms.collateral, 0)])
    assert burned_in(staffed, receipt) == (slash - panel_pay - verifier_reward) + (terms.collateral
                                                                                   - collateral_reward)
    # Made whole (price, audit fee and bond back), plus bounded rewards for proving two faults.
    assert staffed.market.credits(requester.address) == (terms.escrow + terms.bond + verifier_reward
                                                         + collateral_reward)


def test_an_overturning_slash_smaller_than_the_bond_all_goes_to_the_panel(chain: Chain, requester, provider,
                                                                          verifier, jurors) -> None:
    # Under any terms in force at once the bond (3 A <= 15 V_max) is below the least slash (P_max =
    # 80 V_max). It passes the slash only when the owner lowers verifierSlashBps after a dear job
    # was posted, as here: the three proposals are scheduled together, so that the last one is
    # ready as soon as the verdict is in.
    governance = Governance(chain.client, chain.protocol.deployment.governance or "")
    params, terms = chain.market.params(), chain.market.terms()
    setters = chain.market.contract.functions
    proposals = [governance.schedule(chain.owner, call, salt=bytes([i]) * 32) for i, call in enumerate([
        setters.setParams(replace(params, verifier_slash_bps=BPS).as_tuple()),  # P_max 1,000, V_max 12.5 WEBI
        setters.setTerms(replace(terms, verifier_fee_bps=MAX_VERIFIER_FEE_BPS).as_tuple()),  # A = 5 V
        setters.setParams(replace(params, verifier_slash_bps=1_000).as_tuple()),  # the least the bounds allow
    ])]
    chain.increase_time(governance.delay() + 1)
    for proposal in proposals[:2]:
        governance.execute(chain.owner, proposal)
    chain.register(provider, Role.PROVIDER)
    chain.register(verifier, Role.VERIFIER, DEFAULT_PARAMS.min_verifier_stake)
    job_id = audited(chain, requester, provider, verifier, Verdict.FAIL, jurors, price=50 * WEI)
    terms_of_job = chain.market.terms_of(job_id)
    assert terms_of_job.bond == 3 * 5 * 50 * WEI * 4 // 16  # 187.5 WEBI
    governance.execute(chain.owner, proposals[2])
    challenge(chain, provider, job_id)
    draw_panel(chain, job_id, distinct=True)
    panel = members(chain, job_id)
    vote(chain, job_id, [Verdict.PASS] * 3)
    receipt = resolve(chain, job_id)
    slash = DEFAULT_PARAMS.min_verifier_stake * 1_000 // BPS
    assert slash < terms_of_job.bond
    fees = [(a, amount) for a, kind, amount in ledger(chain, receipt) if kind is CreditKind.PANEL_FEE]
    assert fees == [(panel[0].address, slash // 3 + slash % 3), (panel[1].address, slash // 3),
                    (panel[2].address, slash // 3)]
    assert [k for _, k, _ in ledger(chain, receipt)].count(CreditKind.REWARD) == 0
    assert burned_in(chain, receipt) == 0


def test_an_inconclusive_panel_pays_the_provider(staffed: Chain, provider, verifier, panel_job) -> None:
    vote(staffed, panel_job, [Verdict.INCONCLUSIVE] * 3)
    receipt = resolve(staffed, panel_job)
    assert staffed.market.get_job(panel_job).state is JobState.FINALIZED
    assert staffed.emitted(receipt, "JobSettled") == [{"jobId": panel_job, "verdict": Verdict.INCONCLUSIVE}]
    assert [s[0] for s in slashes(staffed, receipt)] == [verifier.address]  # the verifier said FAIL
    assert staffed.market.provider_stake(provider.address).stake == 1_000 * WEI


@pytest.mark.parametrize(("first", "panel_says"), [(Verdict.PASS, Verdict.INCONCLUSIVE),
                                                    (Verdict.INCONCLUSIVE, Verdict.PASS)])
def test_a_panel_moving_a_verdict_between_pass_and_inconclusive_upholds_it(staffed: Chain, requester, provider,
                                                                           verifier, jurors, first,
                                                                           panel_says) -> None:
    # Both pay the provider, and which of the two an honest verifier gives can follow its dtype: a
    # requester challenging an honest pass of a borderline model must not win the verifier's slash
    # (10 % of 500 WEBI against a bond of 3 audit fees).
    job_id = audited(staffed, requester, provider, verifier, first, jurors)
    terms = staffed.market.terms_of(job_id)
    challenge(staffed, requester, job_id)
    draw_panel(staffed, job_id, distinct=True)
    panel = members(staffed, job_id)
    vote(staffed, job_id, [panel_says] * 3)
    receipt = resolve(staffed, job_id)
    split = terms.split()
    assert staffed.emitted(receipt, "ChallengeResolved") == [{"jobId": job_id, "verdict": first, "upheld": True}]
    assert slashes(staffed, receipt) == [] and burned_in(staffed, receipt) == 0
    assert multiset(ledger(staffed, receipt)) == multiset([
        *[(m.address, CreditKind.PANEL_FEE, terms.bond // 3) for m in panel],
        (provider.address, CreditKind.PROVIDER_PAYMENT, split.provider),
        (staffed.market.treasury(), CreditKind.PROTOCOL_FEE, split.protocol),
        (verifier.address, CreditKind.VERIFIER_FEE, terms.audit_fee)])
    assert staffed.emitted(receipt, "JobSettled") == [{"jobId": job_id, "verdict": first}]
    assert staffed.market.verifier_stake(verifier.address).stake == DEFAULT_PARAMS.min_verifier_stake


def test_a_tie_keeps_the_first_verdict_and_refunds_the_bond(staffed: Chain, requester, provider, verifier,
                                                             panel_job) -> None:
    terms = staffed.market.terms_of(panel_job)
    vote(staffed, panel_job, [Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE])
    receipt = resolve(staffed, panel_job)
    assert staffed.emitted(receipt, "ChallengeResolved") == [{"jobId": panel_job, "verdict": Verdict.FAIL,
                                                              "upheld": True}]
    assert (provider.address, CreditKind.BOND_REFUND, terms.bond) in ledger(staffed, receipt)
    assert CreditKind.PANEL_FEE not in [k for _, k, _ in ledger(staffed, receipt)]
    assert slashes(staffed, receipt) == [(provider.address, Role.PROVIDER, terms.collateral, 0)]
    assert staffed.market.get_job(panel_job).state is JobState.REJECTED


def test_no_votes_slash_every_member_and_refund_the_bond(staffed: Chain, requester, provider, verifier,
                                                          panel_job) -> None:
    terms = staffed.market.terms_of(panel_job)
    panel = members(staffed, panel_job)
    vote(staffed, panel_job, [Verdict.PASS, Verdict.PASS, None], reveal=[False, False, True])  # none revealed
    receipt = resolve(staffed, panel_job)
    no_show = 1_000 * WEI * NO_SHOW // BPS
    assert staffed.emitted(receipt, "ChallengeResolved") == [{"jobId": panel_job, "verdict": Verdict.FAIL,
                                                              "upheld": True}]
    assert multiset(slashes(staffed, receipt)) == multiset([
        *[(m.address, Role.VERIFIER, no_show, 0) for m in panel],
        (provider.address, Role.PROVIDER, terms.collateral, 0)])
    reward = terms.collateral * REWARD // BPS
    assert burned_in(staffed, receipt) == 3 * no_show + terms.collateral - reward
    assert (provider.address, CreditKind.BOND_REFUND, terms.bond) in ledger(staffed, receipt)
    for member in panel:
        stake = staffed.market.verifier_stake(member.address)
        assert (stake.stake, stake.duties) == (1_000 * WEI - no_show, 0)


def test_a_silent_member_is_slashed_and_the_others_decide(staffed: Chain, requester, provider, verifier,
                                                          panel_job) -> None:
    terms = staffed.market.terms_of(panel_job)
    panel = members(staffed, panel_job)
    vote(staffed, panel_job, [Verdict.PASS, Verdict.PASS, None])
    receipt = resolve(staffed, panel_job)
    no_show = 1_000 * WEI * NO_SHOW // BPS
    slash = 1_000 * WEI * VERIFIER_SLASH // BPS
    assert multiset(slashes(staffed, receipt)) == multiset([
        (panel[2].address, Role.VERIFIER, no_show, 0), (verifier.address, Role.VERIFIER, slash, 0)])
    fees = [(a, amount) for a, kind, amount in ledger(staffed, receipt) if kind is CreditKind.PANEL_FEE]
    assert fees == [(panel[0].address, terms.bond // 2), (panel[1].address, terms.bond // 2)]
    assert staffed.market.get_job(panel_job).state is JobState.FINALIZED
