"""``Client.groups`` on a real devnet and store: one post, shards settled one by one, one merged result.

The shards are claimed, submitted, audited and settled by hand (the test decides every block), so each run
takes the same path; the daemons' side is in tests/provider and the demo.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from marketplace.chain.deployment import WEI
from marketplace.client import Client, ResultMismatchError
from marketplace.groups import GroupDraft, GroupIncompleteError, ShardPlanError
from marketplace.preflight import PreflightError
from marketplace.protocol import JobState, Role, Verdict
from marketplace.results import MerkleTree, output_manifest
from tests.conftest import Chain
from tests.support.jobs import Market, StoreNode

TEXTS = [f"text number {index}" for index in range(10)]
PRICE = 3 * WEI


def output(task: int) -> bytes:
    return json.dumps({"text": f"output of input {task}"}).encode()


@pytest.fixture
def client(chain: Chain, store_node: StoreNode, requester: LocalAccount) -> Client:
    return Client(chain.protocol, store_node.store, requester)


def draft(bundles: dict[str, Path], **overrides: object) -> GroupDraft:
    fields: dict[str, object] = {"task": "embed", "model": bundles["embed"], "inputs": TEXTS, "price_wei": PRICE,
                                 "shard_tasks": 4, "sample_tasks": 1, "exec_window_s": 600}
    fields.update(overrides)
    return GroupDraft(**fields)  # type: ignore[arg-type]


def submit(chain: Chain, client: Client, provider: LocalAccount, job_id: int, outputs: list[bytes],
           root: bytes | None = None) -> None:
    chain.market.claim_job(provider, job_id)
    cid = client.store.add_bytes(output_manifest(outputs)).cid
    chain.market.submit_result(provider, job_id, str(cid), root or MerkleTree(outputs).root)


def test_a_group_is_posted_at_once_settled_shard_by_shard_and_merged_in_input_order(
    chain: Chain, client: Client, bundles: dict[str, Path], requester: LocalAccount, provider: LocalAccount,
    verifier: LocalAccount, stranger: LocalAccount,
) -> None:
    chain.register(verifier, Role.VERIFIER)
    chain.register(provider, Role.PROVIDER)
    chain.register(stranger, Role.PROVIDER)
    balance = chain.token.balance_of(requester.address)
    posting = client.groups.post(draft(bundles))
    assert len(posting.job_ids) == 3 and posting.group_id == posting.job_ids[0]
    assert chain.token.balance_of(requester.address) == balance - posting.escrow_wei  # one escrow for all
    assert posting.escrow_wei == sum(chain.market.terms_of(j).escrow for j in posting.job_ids)
    specs = [client.spec(job_id) for job_id in posting.job_ids]
    assert len({spec.model for spec in specs}) == 1  # the model is uploaded once, named by every shard
    assert [(s.shard.index, s.shard.first_task, s.num_tasks) for s in specs if s.shard] == [(0, 0, 4), (1, 4, 4),
                                                                                          (2, 8, 2)]
    assert sum(chain.market.terms_of(j).price for j in posting.job_ids) == PRICE

    view = client.groups.status(posting.group_id)
    assert (view.count, view.total, view.tasks_verified, view.claimed, view.problems) == (3, 10, 0, 0, ())
    with pytest.raises(GroupIncompleteError, match="3 of 3 shards have no results yet: shard 0"):
        client.groups.results(posting.group_id)

    # Shards are taken by two providers and settled on their own: shard 1 first.
    takers = {0: provider, 1: stranger, 2: provider}
    for job_id, spec in zip(posting.job_ids, specs, strict=True):
        assert spec.shard is not None
        first = spec.shard.first_task
        submit(chain, client, takers[spec.shard.index], job_id, [output(first + i) for i in range(spec.num_tasks)])
    chain.verdict(verifier, posting.job_ids[1], Verdict.PASS)
    view = client.groups.status(posting.group_id)
    assert view.tasks_verified == 4 and view.claimed == 3
    assert view.providers == {provider.address: 2, stranger.address: 1}
    merged = client.groups.results(posting.group_id)  # provisional: the other two are still in their audit
    assert merged.provisional == (0, 1, 2) and not merged.final
    for job_id in (posting.job_ids[0], posting.job_ids[2]):
        chain.verdict(verifier, job_id, Verdict.PASS)
    for job_id in posting.job_ids:
        chain.settle(job_id)
    view = client.groups.status(posting.group_id)
    assert view.done and view.finalized == 3 and view.tasks_verified == 10
    merged = client.groups.results(posting.group_id)
    assert merged.final
    assert merged.outputs == [json.loads(output(task)) for task in range(10)]


def test_a_shard_whose_outputs_do_not_rebuild_its_root_stops_the_merge(
    chain: Chain, client: Client, bundles: dict[str, Path], provider: LocalAccount,
) -> None:
    chain.register(provider, Role.PROVIDER)
    posting = client.groups.post(draft(bundles, shard_tasks=5), check_providers=False)
    for index, job_id in enumerate(posting.job_ids):
        outputs = [output(5 * index + i) for i in range(5)]
        # The second shard's provider commits to other outputs than those it stored.
        root = MerkleTree([output(99)] * 5).root if index == 1 else None
        submit(chain, client, provider, job_id, outputs, root)
    with pytest.raises(ResultMismatchError, match=f"job {posting.job_ids[1]}: the outputs at"):
        client.groups.results(posting.group_id)


def test_failed_shards_are_reposted_into_the_group_within_the_budget(
    chain: Chain, client: Client, bundles: dict[str, Path], provider: LocalAccount, verifier: LocalAccount,
) -> None:
    chain.register(verifier, Role.VERIFIER)
    chain.register(provider, Role.PROVIDER)
    posting = client.groups.post(draft(bundles, claim_window_s=600), check_providers=False)
    first, second, third = posting.job_ids
    submit(chain, client, provider, first, [output(i) for i in range(4)])
    submit(chain, client, provider, third, [output(8 + i) for i in range(2)])
    chain.verdict(verifier, first, Verdict.FAIL)
    chain.settle(first)  # shard 0: rejected for good
    assert chain.now() > chain.market.terms_of(second).claim_by  # shard 1: nobody claimed it in its window
    view = client.groups.status(posting.group_id)
    assert [(s.index, s.label(view.now)) for s in view.failed] == [(0, "rejected"), (1, "expired")]

    budget = chain.market.terms_of(first).escrow  # enough for one re-post
    retrier = client.groups.retrier(posting.group_id, budget_wei=budget)
    made = retrier.round(view)
    assert made is not None and list(made.reposted) == [0] and made.over_budget == (1,) and made.cancelled == (1,)
    assert retrier.exhausted and retrier.spent_wei == budget
    assert chain.market.get_job(second).state == JobState.CANCELLED  # refunded, not left locked
    view = client.groups.status(posting.group_id)
    shard = view.shards[0]
    assert shard.job.job_id == made.reposted[0] and shard.attempts == (first,)
    assert shard.job.spec_cid == chain.market.posted(first).spec_cid  # the same spec: the same place
    assert chain.market.posted(shard.job.job_id).terms.price == chain.market.terms_of(first).price
    assert [s.index for s in view.failed] == [1]  # cancelled, waiting for budget

    more = client.groups.retrier(posting.group_id, budget_wei=10 * WEI).round(view)
    assert more is not None and list(more.reposted) == [1] and not more.over_budget
    view = client.groups.status(posting.group_id)
    assert not view.failed and not view.problems and len(view.jobs) == 5


def test_a_shard_whose_provider_walked_away_is_reclaimed_by_the_retrier_and_taken_by_another(
    chain: Chain, client: Client, bundles: dict[str, Path], provider: LocalAccount, stranger: LocalAccount,
) -> None:
    """A provider claims a shard and never submits: the job stays Claimed, neither failed nor settled, and the
    group would wait for a stranger to reclaim it. The retrier reclaims it (the reward is the requester's)."""
    chain.register(provider, Role.PROVIDER)
    chain.register(stranger, Role.PROVIDER)
    posting = client.groups.post(draft(bundles, claim_window_s=3_600), check_providers=False)
    abandoned = posting.job_ids[0]
    chain.market.claim_job(provider, abandoned)
    retrier = client.groups.retrier(posting.group_id, budget_wei=10 * WEI)
    assert retrier.round(client.groups.status(posting.group_id)) is None  # within its deadline: nothing to do
    chain.increase_time(600 + 1)
    credits = chain.market.credits(client.account.address)
    made = retrier.round(client.groups.status(posting.group_id))
    assert made is not None and made.reclaimed == (0,) and not made.reposted and retrier.spent_wei == 0
    assert "reclaimed the abandoned claims of shards [0]" in made.line()
    assert chain.market.get_job(abandoned).state == JobState.OPEN and chain.market.credits(
        client.account.address) > credits  # the reward from the slashed collateral
    chain.market.claim_job(stranger, abandoned)  # still in its claim window: another provider takes it


def test_bad_groups_are_refused_before_any_token_moves(
    chain: Chain, client: Client, bundles: dict[str, Path], requester: LocalAccount, provider: LocalAccount,
) -> None:
    chain.register(provider, Role.PROVIDER)
    balance = chain.token.balance_of(requester.address)
    blocks = chain.block_number()
    with pytest.raises(ShardPlanError, match="--shard-tasks 0"):
        client.groups.post(draft(bundles, shard_tasks=0))
    with pytest.raises(ShardPlanError, match="--shards 11: more shards than the 10 tasks"):
        client.groups.post(draft(bundles, shard_tasks=None, shards=11))
    with pytest.raises(ShardPlanError, match="257 shards are over the 256"):
        client.groups.post(draft(bundles, inputs=[f"t{i}" for i in range(257)], shard_tasks=1, price_wei=257 * WEI))
    # Each shard alone fits the wallet; the group's sum does not.
    chain.token.transfer(requester, provider.address, balance - PRICE)
    with pytest.raises(PreflightError, match="the job group escrows"):
        client.groups.post(draft(bundles))
    assert chain.block_number() == blocks + 1  # the one transfer above, nothing else
    assert chain.token.allowance(requester.address, chain.market.address) == 0


def test_an_unknown_group_is_named(client: Client) -> None:
    with pytest.raises(Exception, match="group 12345 does not exist on this deployment"):
        client.groups.status(12345)


def test_a_group_whose_shards_do_not_tile_the_job_is_not_merged(chain: Chain, client: Client, market: Market,
                                                                 requester: LocalAccount) -> None:
    """The shard sections are the requester's claim: a group posted by hand without them is refused by name."""
    spec_cid = market.upload_spec("embed", TEXTS[:4])
    chain.approve(requester)
    request = chain.request(spec_cid=spec_cid, num_tasks=4, price=WEI, sample_tasks=1)
    group_id, job_ids = chain.market.post_job_group(requester, [request, request])
    view = client.groups.status(group_id)
    assert view.problems[:2] == (f"job {job_ids[0]}'s spec has no shard section",
                                 f"job {job_ids[1]}'s spec has no shard section")
    with pytest.raises(GroupIncompleteError, match=f"group {group_id} does not tile its job"):
        client.groups.results(group_id)
