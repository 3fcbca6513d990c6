"""Confidential jobs on-chain: the key window, `releaseKey`, `releaseClaim`, and reveal demands
answered with a key instead of outputs in clear.

Each attack is a test that would fail without its rule: a greedy requester who withholds or
garbles the key to slash the claimant, a provider who keeps a key and walks away free, a stale key
release that closes the next claimant's exit, and a reveal that would put confidential outputs on
the chain for everyone.
"""

from __future__ import annotations

import pytest
from eth_account.signers.local import LocalAccount

from marketplace.chain.deployment import DEFAULT_PARAMS, WEI
from marketplace.protocol import (
    MAX_KEY_WINDOW,
    MAX_WRAPPED_KEY,
    MIN_KEY_WINDOW,
    Allowlist,
    Confidentiality,
    JobState,
    Role,
    Verdict,
)
from tests.conftest import Chain, reverts
from tests.contracts.support import slashes, submit_outputs

PRICE = 20 * WEI
KEY_WINDOW = 120
WRAPPED = b"age-encryption.org/v1\n-> X25519 test stanza\n" + b"\x01" * 200  # opaque bytes to the contract
OPEN = {"price": PRICE, "confidentiality": Confidentiality.OPEN, "key_window": KEY_WINDOW}


def claimed_open_job(chain: Chain, requester: LocalAccount, provider: LocalAccount) -> int:
    job_id = chain.post(requester, **OPEN)
    chain.market.claim_job(provider, job_id)
    return job_id


# ───────────────────────────────────────────── posting


def test_an_open_job_keeps_its_confidentiality_and_key_window_in_its_terms(chain: Chain, requester) -> None:
    job_id = chain.post(requester, **OPEN)
    terms = chain.market.terms_of(job_id)
    assert (terms.confidentiality, terms.key_window) == (Confidentiality.OPEN, KEY_WINDOW)
    assert terms.confidential
    assert chain.market.get_job(job_id).terms_hash == terms.hash()


@pytest.mark.parametrize(("window", "exec_window", "bound"), [
    (MIN_KEY_WINDOW - 1, 600, 300),  # too short for a requester's client to answer
    (301, 600, 300),  # more than half the exec window: too little time left to work
    (MAX_KEY_WINDOW + 1, 30 * 86_400, MAX_KEY_WINDOW),
])
def test_an_open_jobs_key_window_is_bounded(chain: Chain, requester, window: int, exec_window: int,
                                            bound: int) -> None:
    chain.approve(requester)
    request = chain.request(confidentiality=Confidentiality.OPEN, key_window=window, exec_window=exec_window)
    with reverts("InvalidKeyWindow", window, MIN_KEY_WINDOW, bound):
        chain.market.post_job(requester, request)


@pytest.mark.parametrize("mode", [Confidentiality.PUBLIC, Confidentiality.DIRECTED])
def test_only_an_open_job_has_a_key_window(chain: Chain, requester, provider, mode: Confidentiality) -> None:
    chain.approve(requester)
    root = Allowlist((provider.address,)).root
    with reverts("InvalidKeyWindow", 60, 0, 0):
        chain.market.post_job(requester, chain.request(confidentiality=mode, key_window=60, allowlist_root=root))


def test_a_directed_job_needs_the_allowlist_its_keys_are_wrapped_to(chain: Chain, requester) -> None:
    chain.approve(requester)
    with reverts("DirectedWithoutAllowlist"):
        chain.market.post_job(requester, chain.request(confidentiality=Confidentiality.DIRECTED))


# ───────────────────────────────────────────── releasing the key


def test_the_requesters_release_to_the_claimant_is_an_event_and_starts_the_window(staffed: Chain, requester,
                                                                                  provider) -> None:
    job_id = claimed_open_job(staffed, requester, provider)
    receipt = staffed.market.release_key(requester, job_id, provider.address, WRAPPED)
    assert staffed.emitted(receipt, "KeyReleased") == [
        {"jobId": job_id, "from": requester.address, "to": provider.address, "wrappedKey": WRAPPED}]
    staffed.increase_time(KEY_WINDOW + 1)
    with reverts("ClaimNotReleasable"):  # the provider holds a key: walking away now costs collateral
        staffed.market.release_claim(provider, job_id)


def test_only_the_jobs_parties_release_its_key_and_only_for_a_confidential_live_job(staffed: Chain, requester,
                                                                                     provider, stranger) -> None:
    job_id = claimed_open_job(staffed, requester, provider)
    with reverts("NotKeyHolder", job_id, stranger.address):
        staffed.market.release_key(stranger, job_id, provider.address, WRAPPED)
    with reverts("InvalidWrappedKey", 0, MAX_WRAPPED_KEY):
        staffed.market.release_key(requester, job_id, provider.address, b"")
    with reverts("InvalidWrappedKey", MAX_WRAPPED_KEY + 1, MAX_WRAPPED_KEY):
        staffed.market.release_key(requester, job_id, provider.address, b"\0" * (MAX_WRAPPED_KEY + 1))
    public = staffed.post(requester, price=PRICE)
    staffed.market.claim_job(provider, public)
    with reverts("NotConfidential", public, Confidentiality.PUBLIC):
        staffed.market.release_key(requester, public, provider.address, WRAPPED)
    unclaimed = staffed.post(requester, **OPEN)
    with reverts("WrongState", unclaimed, JobState.OPEN, JobState.CLAIMED):
        staffed.market.release_key(requester, unclaimed, provider.address, WRAPPED)


def test_a_provider_releasing_to_itself_does_not_start_its_own_window(staffed: Chain, requester,
                                                                       provider) -> None:
    """Only the requester's release counts: a provider cannot make it look as if its key arrived."""
    job_id = claimed_open_job(staffed, requester, provider)
    staffed.market.release_key(provider, job_id, provider.address, WRAPPED)
    staffed.increase_time(KEY_WINDOW + 1)
    staffed.market.release_claim(provider, job_id)
    assert staffed.market.get_job(job_id).state is JobState.OPEN


# ───────────────────────────────────────────── releasing the claim


def test_a_claimant_whose_key_never_comes_releases_the_claim_unslashed(staffed: Chain, requester,
                                                                       provider) -> None:
    """A requester who withholds the key cannot hold the provider's collateral hostage or slash it."""
    job_id = claimed_open_job(staffed, requester, provider)
    collateral = staffed.market.terms_of(job_id).collateral
    assert staffed.market.provider_stake(provider.address).locked == collateral
    staffed.increase_time(600 - 10)  # near the submission deadline, still no key
    receipt = staffed.market.release_claim(provider, job_id)
    assert staffed.emitted(receipt, "ClaimReleased") == [
        {"jobId": job_id, "provider": provider.address, "collateral": collateral}]
    assert slashes(staffed, receipt) == []
    stake = staffed.market.provider_stake(provider.address)
    assert (stake.stake, stake.locked) == (1_000 * WEI, 0)
    assert staffed.market.get_job(job_id).state is JobState.OPEN


def test_a_claim_given_back_is_never_its_claimants_again_so_nobody_hoards_the_claim_window(
        staffed: Chain, requester, provider, stranger) -> None:
    """The hoarder's loop: claim every Open shard of a group, give each back unslashed just before its
    deadline, claim it again at once, until the claim window closes: the requester gets nothing done, honest
    providers are locked out, the hoarder loses nothing. Whoever gives a claim back may not claim that job again;
    another provider can. (A Sybil with k staked addresses delays a job by at most k execution windows.)"""
    staffed.register(stranger, Role.PROVIDER)
    staffed.approve(requester)
    claim_by = staffed.now() + 3 * 600
    requests = [staffed.request(spec_cid=f"bafkreihoard{index}", price=PRICE, exec_window=600, claim_by=claim_by,
                                confidentiality=Confidentiality.OPEN, key_window=KEY_WINDOW) for index in range(3)]
    _, jobs = staffed.market.post_job_group(requester, requests)
    for job_id in jobs:
        staffed.market.claim_job(provider, job_id)
    staffed.increase_time(590)
    for job_id in jobs:
        staffed.market.release_claim(provider, job_id)
        with reverts("ClaimGivenBack", job_id, provider.address):
            staffed.market.claim_job(provider, job_id)
        staffed.market.claim_job(stranger, job_id)  # an honest provider takes it within the claim window
        assert staffed.market.get_job(job_id).provider == stranger.address


def test_a_garbled_key_lets_the_claimant_leave_within_the_window(staffed: Chain, requester, provider,
                                                                  stranger) -> None:
    """The greedy requester's trap: release bytes that open nothing, then reclaim the claim as
    expired for the reward. The claimant leaves within the key window, so nothing is slashed."""
    job_id = claimed_open_job(staffed, requester, provider)
    staffed.market.release_key(requester, job_id, provider.address, b"not a key")
    staffed.increase_time(KEY_WINDOW - 5)
    staffed.market.release_claim(provider, job_id)
    assert staffed.market.provider_stake(provider.address).stake == 1_000 * WEI
    staffed.increase_time(600)
    with reverts("WrongState", job_id, JobState.OPEN, JobState.CLAIMED):
        staffed.market.reclaim_expired(requester, job_id)


def test_only_the_claimant_of_an_open_job_releases_it(staffed: Chain, requester, provider, stranger) -> None:
    job_id = claimed_open_job(staffed, requester, provider)
    with reverts("NotProvider", job_id, stranger.address):
        staffed.market.release_claim(stranger, job_id)
    public = staffed.post(requester, price=PRICE)
    staffed.market.claim_job(provider, public)
    with reverts("NotConfidential", public, Confidentiality.PUBLIC):
        staffed.market.release_claim(provider, public)
    directed = staffed.post(requester, price=PRICE, confidentiality=Confidentiality.DIRECTED,
                          allowlist_root=Allowlist((provider.address,)).root)
    staffed.market.claim_job(provider, directed, proof=Allowlist((provider.address,)).proof(provider.address))
    with reverts("NotConfidential", directed, Confidentiality.DIRECTED):  # it checked its key before claiming
        staffed.market.release_claim(provider, directed)


def test_an_expired_claim_clears_the_key_release_for_the_next_claimant(staffed: Chain, requester, provider,
                                                                       stranger) -> None:
    """Without the reset, the first claim's old release time would close the next claimant's exit."""
    job_id = claimed_open_job(staffed, requester, provider)
    staffed.market.release_key(requester, job_id, provider.address, WRAPPED)
    staffed.increase_time(601)
    staffed.market.reclaim_expired(stranger, job_id)
    staffed.register(stranger, Role.PROVIDER)
    staffed.market.claim_job(stranger, job_id)
    staffed.increase_time(KEY_WINDOW + 1)
    staffed.market.release_claim(stranger, job_id)  # its own key never came
    assert staffed.market.get_job(job_id).state is JobState.OPEN


# ───────────────────────────────────────────── reveal demands


def demanded(chain: Chain, requester: LocalAccount, provider: LocalAccount, verifier: LocalAccount) -> int:
    job_id = claimed_open_job(chain, requester, provider)
    chain.market.release_key(requester, job_id, provider.address, WRAPPED)
    submit_outputs(chain, provider, job_id, 16)
    chain.draw(job_id)
    secret, next_hash = chain.open_secret(verifier, job_id)
    chain.market.demand_reveal(verifier, job_id, secret, next_hash)
    return job_id


def test_sealed_outputs_answer_a_reveal_demand_without_proofs_the_contract_cannot_check(staffed: Chain, requester,
                                                                                       provider, verifier,
                                                                                       stranger) -> None:
    """The calldata shows the (sealed) outputs were put on-chain in time; the key holders prove them."""
    job_id = demanded(staffed, requester, provider, verifier)
    indices = staffed.market.sampled_tasks(job_id)
    sealed = [b"age-encryption.org/v1\n sealed output %d" % i for i in indices]
    with reverts("WrongOutputCount", job_id, len(indices) - 1, len(indices)):
        staffed.market.reveal_outputs(provider, job_id, sealed[1:], [[] for _ in indices])
    with reverts("NotProvider", job_id, stranger.address):
        staffed.market.reveal_outputs(stranger, job_id, sealed, [[] for _ in indices])
    receipt = staffed.market.reveal_outputs(provider, job_id, sealed, [[] for _ in indices])
    assert staffed.emitted(receipt, "OutputsRevealed") == [{"jobId": job_id, "taskIndices": indices,
                                                            "outputs": sealed}]
    assert staffed.market.audit_of(job_id).reveal_by == 1
    staffed.increase_time(DEFAULT_PARAMS.reveal_window + 1)
    with reverts("NoRevealDemand", job_id):
        staffed.market.fail_unrevealed(stranger, job_id)


def test_a_key_release_alone_does_not_answer_a_reveal_demand(staffed: Chain, requester, provider, verifier,
                                                             stranger) -> None:
    """Else a provider could answer with the key and keep the sealed outputs out of every store."""
    job_id = demanded(staffed, requester, provider, verifier)
    staffed.market.release_key(provider, job_id, verifier.address, WRAPPED)
    assert staffed.market.audit_of(job_id).reveal_by > 1
    staffed.increase_time(DEFAULT_PARAMS.reveal_window + 1)
    staffed.market.fail_unrevealed(stranger, job_id)
    assert staffed.market.get_job(job_id).state is JobState.REJECTED


def test_a_provider_that_leaves_a_demand_unanswered_is_rejected_as_for_withheld_outputs(staffed: Chain, requester,
                                                                               provider, verifier,
                                                                               stranger) -> None:
    job_id = demanded(staffed, requester, provider, verifier)
    staffed.increase_time(DEFAULT_PARAMS.reveal_window + 1)
    receipt = staffed.market.fail_unrevealed(stranger, job_id)
    assert staffed.market.get_job(job_id).state is JobState.REJECTED
    assert [slash[0] for slash in slashes(staffed, receipt)] == [provider.address]
    assert staffed.market.audit_of(job_id).verdict is Verdict.FAIL


def test_past_the_deadline_the_claim_is_reclaimed_not_released(staffed: Chain, requester, provider,
                                                                stranger) -> None:
    """No race at the deadline between the claimant's free exit and anyone's slash."""
    job_id = claimed_open_job(staffed, requester, provider)
    deadline = staffed.market.get_job(job_id).stamp
    staffed.increase_time(601)
    with reverts("SubmitDeadlinePassed", job_id, deadline):
        staffed.market.release_claim(provider, job_id)
    staffed.market.reclaim_expired(stranger, job_id)


def test_a_settled_jobs_key_cannot_be_released(staffed: Chain, requester, provider, verifier,
                                               stranger) -> None:
    job_id = demanded(staffed, requester, provider, verifier)
    staffed.increase_time(DEFAULT_PARAMS.reveal_window + 1)
    staffed.market.fail_unrevealed(stranger, job_id)
    with reverts("WrongState", job_id, JobState.REJECTED, JobState.CLAIMED):
        staffed.market.release_key(provider, job_id, verifier.address, WRAPPED)
