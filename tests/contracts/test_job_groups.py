"""Job groups (``postJobGroup``): many shards under one escrow transfer, each a whole job settled alone.

Every error is asserted by name and arguments, and every refused group moves nothing: no token, no
job id.
"""

from __future__ import annotations

import pytest
from eth_account.signers.local import LocalAccount

from marketplace.audit import Auditor
from marketplace.chain.deployment import WEI
from marketplace.history import ChainState, fetch_events
from marketplace.indexer.indexer import decoder_for
from marketplace.protocol import JobRequest, JobState, Verdict
from tests.conftest import Chain, reverts

MAX_GROUP_SHARDS = 256


def shards(chain: Chain, count: int, **overrides: object) -> list[JobRequest]:
    return [chain.request(spec_cid=f"bafkreigroupshard{index:03d}", num_tasks=16, price=(20 + index) * WEI,
                          **overrides) for index in range(count)]


def escrow_of(chain: Chain, requests: list[JobRequest]) -> int:
    terms = chain.market.terms()
    return sum(request.escrow(terms) for request in requests)


def test_a_group_is_posted_in_one_transfer_and_each_shard_is_a_whole_job(chain: Chain, requester) -> None:
    chain.approve(requester)
    requests = shards(chain, 3)
    before, first = chain.token.balance_of(requester.address), chain.market.next_job_id()
    group, jobs = chain.market.post_job_group(requester, requests)
    assert (group, jobs) == (first, [first, first + 1, first + 2])
    assert before - chain.token.balance_of(requester.address) == escrow_of(chain, requests)
    for job_id, request in zip(jobs, requests, strict=True):
        posted = chain.market.posted(job_id)
        assert (posted.spec_cid, posted.terms.price, posted.terms.requester) == (
            request.spec_cid, request.price, requester.address)
        assert chain.market.get_job(job_id).state is JobState.OPEN
    events = chain.market.contract.events.GroupPosted().get_logs(from_block=0)
    assert [dict(e["args"]) for e in events] == [
        {"groupId": group, "requester": requester.address, "firstJobId": first, "shards": 3}]


def test_shards_settle_alone_a_failed_one_is_refunded_and_re_posted_into_its_group(
        staffed: Chain, requester, provider, verifier, stranger) -> None:
    staffed.approve(requester)
    requests = shards(staffed, 2)
    group, (passed, failed) = staffed.market.post_job_group(requester, requests)
    for job_id in (passed, failed):
        staffed.market.claim_job(provider, job_id)
        staffed.market.submit_result(provider, job_id, "bafkreioutputs", b"\x11" * 32)
        assert staffed.draw(job_id) == verifier.address
    staffed.verdict(verifier, passed, Verdict.PASS)
    staffed.verdict(verifier, failed, Verdict.FAIL)
    credits = staffed.market.credits(requester.address)
    staffed.settle(passed)
    staffed.settle(failed)
    assert staffed.market.get_job(passed).state is JobState.FINALIZED
    assert staffed.market.get_job(failed).state is JobState.REJECTED
    assert staffed.market.credits(requester.address) - credits == requests[1].price  # that shard's price only

    with reverts("NotGroupRequester", group, stranger.address):
        staffed.approve(stranger)
        staffed.market.post_job_group(stranger, shards(staffed, 1), group)
    repost = shards(staffed, 1)  # a fresh claim deadline: the first one has passed
    again, jobs = staffed.market.post_job_group(requester, repost, group)
    assert again == group and jobs == [failed + 1]
    assert staffed.market.get_job(jobs[0]).state is JobState.OPEN
    # The books balance with the group in them, and the fold knows which jobs belong together.
    decoder = decoder_for(staffed.protocol.deployment)
    state = ChainState()
    for event in fetch_events(staffed.client, decoder, 0, staffed.block_number()):
        state.apply(event)
    assert state.groups == {group: [passed, failed, jobs[0]]}
    assert Auditor(staffed.protocol).run().clean


@pytest.mark.parametrize("count", [0, MAX_GROUP_SHARDS + 1])
def test_a_group_of_no_shards_or_too_many_is_refused(chain: Chain, requester, count: int) -> None:
    chain.approve(requester)
    requests = [chain.request()] * count
    with reverts("InvalidGroupSize", count, MAX_GROUP_SHARDS):
        chain.market.post_job_group(requester, requests)


def test_one_bad_shard_refuses_the_whole_group_and_moves_nothing(chain: Chain, requester: LocalAccount) -> None:
    chain.approve(requester)
    requests = [*shards(chain, 2), chain.request(num_tasks=0)]
    before, first = chain.token.balance_of(requester.address), chain.market.next_job_id()
    with reverts("InvalidNumTasks", 0):
        chain.market.post_job_group(requester, requests)
    assert (chain.token.balance_of(requester.address), chain.market.next_job_id()) == (before, first)


def test_the_requests_module_refuses_a_direct_call(chain: Chain, requester) -> None:
    from marketplace.chain.deployment import load_artifact

    module = chain.client.w3.eth.contract(address=chain.market.contract.functions.requests().call(),
                                          abi=load_artifact("Requests").abi)
    with reverts("DirectCall"):
        chain.client.transact(requester, module.functions.postJobGroup([chain.request().as_tuple()], 0))
