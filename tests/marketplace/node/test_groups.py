"""A job group on the node: ``/v1/groups/{id}`` and its page from the indexer's tables, and the merged results
read from the chain and the node's store, each shard checked against its own root."""

from __future__ import annotations

import json

import httpx
from eth_account.signers.local import LocalAccount

from marketplace.protocol import Role
from marketplace.results import MerkleTree, output_manifest
from tests.conftest import Chain
from tests.marketplace.node.test_dashboard_pages import PAGE, text
from tests.support.history import GROUP_SHARD_TASKS, GROUP_TASKS, GroupHistory, group_history, group_output
from tests.support.node import Node


def posted_group(chain: Chain, node: Node, requester: LocalAccount, provider: LocalAccount,
                 verifier: LocalAccount) -> GroupHistory:
    chain.register(provider, Role.PROVIDER)
    chain.register(verifier, Role.VERIFIER)
    group = group_history(chain, requester, provider, verifier, node.store)
    node.caught_up(chain.block_number())
    return group


def submit_last_shard(chain: Chain, node: Node, provider: LocalAccount, group: GroupHistory, *,
                      wrong_root: bool = False) -> None:
    outputs = [group_output(task) for task in range(GROUP_SHARD_TASKS, GROUP_TASKS)]
    committed = [group_output(99)] * GROUP_SHARD_TASKS if wrong_root else outputs
    chain.market.claim_job(provider, group.reposted)
    cid = str(node.store.add_bytes(output_manifest(outputs)).cid)
    chain.market.submit_result(provider, group.reposted, cid, MerkleTree(committed).root)
    node.caught_up(chain.block_number())


def test_a_group_is_served_with_its_shards_states_spread_and_progress(
    chain: Chain, node: Node, requester: LocalAccount, provider: LocalAccount, verifier: LocalAccount
) -> None:
    group = posted_group(chain, node, requester, provider, verifier)
    alone = chain.post(requester)
    node.caught_up(chain.block_number())
    with httpx.Client(base_url=f"{node.url}/v1") as api:
        served = api.get(f"/groups/{group.group_id}").json()
        finalized = api.get(f"/jobs/{group.finalized}").json()
        assert (finalized["group_id"], api.get(f"/jobs/{alone}").json()["group_id"]) == (group.group_id, None)
    assert (served["group_id"], served["requester"], served["shards"], served["total_tasks"]) == (
        group.group_id, requester.address, 2, GROUP_TASKS)
    assert (served["tasks_verified"], served["finalized"], served["claimed"], served["done"]) == (8, 1, 1, False)
    assert (served["providers"], served["provider_count"], served["failed"]) == ({provider.address: 1}, 1, [])
    assert served["jobs"] == [group.finalized, group.cancelled, group.reposted] and served["problems"] == []
    assert served["results"] == f"/v1/groups/{group.group_id}/results"
    first, second = served["shard_states"]
    assert {key: first[key] for key in ("index", "first_task", "num_tasks", "job_id", "state", "provider",
                                        "verifier", "verdict", "result_root", "verified", "attempts")} == {
        "index": 0, "first_task": 0, "num_tasks": 8, "job_id": group.finalized, "state": "finalized",
        "provider": provider.address, "verifier": verifier.address, "verdict": "pass",
        "result_root": finalized["result_root"], "verified": True, "attempts": []}
    assert first["output_cid"] == finalized["output_cid"] is not None
    assert (second["index"], second["first_task"], second["job_id"], second["state"], second["provider"]) == (
        1, 8, group.reposted, "open", None)
    assert (second["attempts"], second["attempt_states"]) == (
        [group.cancelled], [{"job_id": group.cancelled, "state": "cancelled"}])
    marks = first["milestones"]
    assert list(marks) == ["posted", "claimed", "submitted", "audited", "settled"]
    assert list(marks.values()) == sorted(marks.values()) and served["posted_at"] == marks["posted"]
    # Verified once the verifier passed it (provisionally, then final): 8 of the 16 tasks from then on.
    assert served["progress"] == [{"time": marks["audited"], "shard": 0, "job_id": group.finalized,
                                   "tasks_verified": 8}]
    assert second["verified_at"] is None and set(second["milestones"]) == {"posted"}


def test_an_unknown_group_is_a_json_404_naming_it_and_a_page_for_browsers(
    chain: Chain, node: Node, requester: LocalAccount
) -> None:
    job = chain.post(requester)  # a job, but no group
    node.caught_up(chain.block_number())
    with httpx.Client(base_url=node.url) as client:
        for group_id in (999, job):
            for path in (f"/v1/groups/{group_id}", f"/v1/groups/{group_id}/results"):
                reply = client.get(path)
                assert reply.status_code == 404, path
                assert reply.json() == {"detail": f"no job group {group_id} on this chain"}, path
        assert client.get("/v1/groups/abc").status_code == 422
        page = client.get("/groups/999", headers=PAGE)
        assert page.status_code == 404 and "no job group 999 on this chain" in text(page.text)


def test_the_page_maps_the_shards_by_state_with_the_progress_and_the_job_links_back(
    chain: Chain, node: Node, requester: LocalAccount, provider: LocalAccount, verifier: LocalAccount
) -> None:
    group = posted_group(chain, node, requester, provider, verifier)
    with httpx.Client(base_url=node.url, headers=PAGE) as client:
        page = client.get(f"/groups/{group.group_id}").text
        job_page = client.get(f"/jobs/{group.finalized}").text
    cells = page.split('<ol class="shard-map">', 1)[1].split("</ol>", 1)[0]
    assert cells.count('<a class="shard state ') == 2
    assert f'<a class="shard state finalized" href="/jobs/{group.finalized}" data-state="finalized">' in cells
    assert f'<a class="shard state open" href="/jobs/{group.reposted}" data-state="open">' in cells
    read = text(cells)  # the state, the provider and the verdict as text, not colour alone
    short = f"{provider.address[:6]}…{provider.address[-4:]}"
    assert f"Shard 0 tasks 0\u20137 finalized job #{group.finalized} provider {short} verdict pass ✓" in read
    assert (f"Shard 1 tasks 8\u201315 open job #{group.reposted} provider — verdict — before: "
            f"#{group.cancelled} cancelled") in read
    assert f'<progress class="tasks" max="{GROUP_TASKS}" value="8">' in page
    whole = text(page)
    assert "8 of 16 tasks verified (50.0 %)" in whole
    assert f"1 of 2 shards claimed by 1 provider: {short} (1)" in whole
    assert '<svg class="chart" role="img" aria-label="8 of 16 tasks verified, ' in page
    assert f'<a class="results" href="/v1/groups/{group.group_id}/results">' in page
    assert f"0 #{group.finalized} audited" in whole and f"1 #{group.cancelled} cancelled" not in whole
    assert f'a shard of <a href="/groups/{group.group_id}">job group #{group.group_id}</a>' in job_page


def test_the_merged_results_come_in_input_order_once_every_shard_has_results(
    chain: Chain, node: Node, requester: LocalAccount, provider: LocalAccount, verifier: LocalAccount
) -> None:
    group = posted_group(chain, node, requester, provider, verifier)
    waiting = httpx.get(f"{node.url}/v1/groups/{group.group_id}/results")
    assert waiting.status_code == 409
    refused = waiting.json()
    assert (refused["group_id"], refused["reason"], refused["shards"]) == (group.group_id, "incomplete", [1])
    assert f"shard 1 (job {group.reposted}, open)" in refused["detail"]
    submit_last_shard(chain, node, provider, group)
    merged = httpx.get(f"{node.url}/v1/groups/{group.group_id}/results")
    assert merged.status_code == 200 and merged.headers["content-type"] == "application/x-ndjson"
    lines = merged.text.splitlines()
    assert [json.loads(line) for line in lines] == [json.loads(group_output(task)) for task in range(GROUP_TASKS)]


def test_a_shard_whose_outputs_do_not_rebuild_its_root_is_named_in_a_409(
    chain: Chain, node: Node, requester: LocalAccount, provider: LocalAccount, verifier: LocalAccount
) -> None:
    group = posted_group(chain, node, requester, provider, verifier)
    submit_last_shard(chain, node, provider, group, wrong_root=True)
    reply = httpx.get(f"{node.url}/v1/groups/{group.group_id}/results")
    assert reply.status_code == 409
    refused = reply.json()
    assert (refused["reason"], refused["shards"]) == ("mismatch", [1])
    assert refused["detail"].startswith(f"job {group.reposted}: the outputs at")


def test_a_job_belongs_to_the_group_whose_shard_range_holds_it_when_one_transaction_posts_two(tmp_path) -> None:
    """A contract wallet posts a job and then a group of two in one transaction: job 7 is in no group, 8 and 9
    are group 8's; taking the first ``GroupPosted`` of the transaction would put job 7 (and a second group's
    jobs) in the wrong group."""
    from sqlmodel import Session

    from marketplace.indexer import create_db
    from marketplace.indexer.models import EventRow
    from marketplace.node.group_queries import GroupQueries
    from marketplace.node.queries import Queries

    engine = create_db(tmp_path / "index.db")
    rows = [("JobPosted", 7, {}), ("JobPosted", 8, {}), ("JobPosted", 9, {}),
            ("GroupPosted", None, {"groupId": 8, "firstJobId": 8, "shards": 2}),
            ("JobPosted", 10, {}), ("GroupPosted", None, {"groupId": 10, "firstJobId": 10, "shards": 1})]
    with Session(engine) as session:
        for index, (name, job_id, args) in enumerate(rows):
            session.add(EventRow(block_number=5, log_index=index, block_hash="0x05", tx_hash="0xab", contract="0xm",
                                 name=name, job_id=job_id, args=json.dumps(args)))
        session.commit()
    groups = GroupQueries(engine, Queries(engine))
    assert [groups.group_of(job) for job in (7, 8, 9, 10, 11)] == [None, 8, 8, 10, None]
