"""``webi job post --shard-tasks``, ``job status gID [--watch --retry]`` and ``job results gID``: end to end on a
real devnet and store node, the shards settled by hand so that every run takes the same path."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from marketplace.chain.devnet import Devnet
from marketplace.protocol import JobState, Role, Verdict
from marketplace.results import MerkleTree, canonical, output_manifest
from tests.conftest import Chain
from tests.marketplace.cli.runner import Cli, requester_cli, write_inputs
from tests.support.jobs import StoreNode

TEXTS = [f"input {index}" for index in range(10)]


def output(task: int) -> bytes:
    return canonical({"embedding": [float(task), 1.0]})


@pytest.fixture
def cli(devnet: Devnet, deployments: Path, tmp_path: Path, store_node: StoreNode, requester: LocalAccount) -> Cli:
    return requester_cli(devnet, deployments, tmp_path / "home", store_node.url, requester)


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    return write_inputs(tmp_path / "inputs.jsonl", TEXTS)


def group_of(posted: str) -> int:
    found = re.search(r"posted job group g(\d+)", posted)
    assert found, posted
    return int(found.group(1))


def settle_shards(chain: Chain, store_node: StoreNode, provider: LocalAccount, verifier: LocalAccount,
                  jobs: list[int], verdicts: dict[int, Verdict] | None = None) -> None:
    first = 0
    for job_id in jobs:
        count = chain.market.terms_of(job_id).num_tasks
        outputs = [output(first + i) for i in range(count)]
        first += count
        chain.market.claim_job(provider, job_id)
        cid = str(store_node.store.add_bytes(output_manifest(outputs)).cid)
        chain.market.submit_result(provider, job_id, cid, MerkleTree(outputs).root)
    for job_id in jobs:
        chain.verdict(verifier, job_id, (verdicts or {}).get(job_id, Verdict.PASS))
    chain.increase_time(chain.market.terms_of(jobs[0]).challenge_window + 1)
    for job_id in jobs:
        chain.market.finalize(chain.owner, job_id)


def test_a_group_posted_watched_and_merged_from_the_terminal(
    chain: Chain, cli: Cli, store_node: StoreNode, bundles: dict[str, Path], inputs: Path, tmp_path: Path,
    provider: LocalAccount, verifier: LocalAccount,
) -> None:
    chain.register(verifier, Role.VERIFIER)
    chain.register(provider, Role.PROVIDER)
    posted = cli.post(bundles["embed"], inputs, "3", "--shard-tasks", "4", "--sample-tasks", "1")
    group = group_of(posted)
    assert "10 embed tasks in 3 shards of 4 or 2 tasks" in posted
    status = json.loads(cli("job", "status", f"g{group}", "--json"))
    assert status["shards"] == 3 and status["total_tasks"] == 10 and status["tasks_verified"] == 0
    assert [s["state"] for s in status["shard_states"]] == ["open"] * 3
    assert "0 of 10 tasks verified; 0 of 3 shards claimed by 0 providers" in cli("job", "status", f"g{group}")
    refused = cli("job", "results", f"g{group}", "-o", str(tmp_path / "early.jsonl"), code=1)
    assert "3 of 3 shards have no results yet" in refused and not (tmp_path / "early.jsonl").exists()

    settle_shards(chain, store_node, provider, verifier, status["jobs"])
    lines = cli("job", "status", f"g{group}", "--watch", "--json", "--interval", "0.05").splitlines()
    final = json.loads(lines[-1])
    assert final["done"] and final["tasks_verified"] == 10 and final["providers"] == {provider.address: 3}
    assert {json.loads(line)["shard"]["state"] for line in lines[:-1]} == {"finalized"}
    merged = tmp_path / "merged.jsonl"
    written = cli("job", "results", f"g{group}", "-o", str(merged))
    assert "10 outputs of group g" in written and "merged in input order" in written
    assert [json.loads(line) for line in merged.read_text().splitlines()] == [
        json.loads(output(task)) for task in range(10)]


def test_watch_retry_reposts_a_rejected_shard(
    chain: Chain, cli: Cli, store_node: StoreNode, bundles: dict[str, Path], inputs: Path, provider: LocalAccount,
    verifier: LocalAccount,
) -> None:
    chain.register(verifier, Role.VERIFIER)
    chain.register(provider, Role.PROVIDER)
    group = group_of(cli.post(bundles["embed"], inputs, "3", "--shards", "2", "--sample-tasks", "1"))
    jobs = json.loads(cli("job", "status", f"g{group}", "--json"))["jobs"]
    settle_shards(chain, store_node, provider, verifier, jobs, {jobs[1]: Verdict.FAIL})
    assert chain.market.get_job(jobs[1]).state == JobState.REJECTED
    ended = cli("job", "status", f"g{group}", "--watch", "--interval", "0.05", code=1)
    assert "the group ended with shards failed: re-post them with --retry" in ended
    # With --retry the shard is re-posted; nobody claims it before the watch's timeout (exit 2).
    watched = cli("job", "status", f"g{group}", "--watch", "--retry", "--wallet", "alice", *cli.password,
                  "--interval", "0.05", "--timeout", "1", code=2)
    assert f"retry: re-posted shard 1 as job {jobs[1] + 1}" in watched
    after = json.loads(cli("job", "status", f"g{group}", "--json"))
    assert after["shard_states"][1]["attempts"] == [jobs[1]] and after["shard_states"][1]["state"] == "open"


@pytest.mark.parametrize(("extra", "code", "says"), [
    (["--shard-tasks", "0"], 2, "--shard-tasks 0: a shard needs at least 1 task"),
    (["--shards", "11"], 2, "--shards 11: more shards than the 10 tasks"),
    (["--shards", "2", "--confidential", "open"], 1, "a confidential job group is not supported yet"),
])
def test_a_bad_cut_is_refused_before_anything_moves(chain: Chain, cli: Cli, bundles: dict[str, Path], inputs: Path,
                                                    requester: LocalAccount, extra: list[str], code: int,
                                                    says: str) -> None:
    balance = chain.token.balance_of(requester.address)
    refused = cli.post(bundles["embed"], inputs, "3", *extra, code=code)
    assert says in refused
    assert chain.token.balance_of(requester.address) == balance


def test_a_group_argument_that_is_not_one_is_named(cli: Cli) -> None:
    assert "'gx' is neither a job number (12) nor a job group (g12)" in cli("job", "status", "gx", code=1)
    assert "--retry re-posts shards as they fail: use it with --watch" in cli("job", "status", "g1", "--retry",
                                                                              code=1)
