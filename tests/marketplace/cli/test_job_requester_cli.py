"""The requester's side of an audit, end to end on a real devnet and store node: the quote and bounds of
``webi job post``, ``webi job results --check`` (local re-execution with the verifier's runtime and
comparators on a tiny real model), ``webi job challenge`` of a wrong pass, and ``webi job status --watch``
following the challenge, its panel and its votes."""

from __future__ import annotations

import json
import random
from itertools import pairwise
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from marketplace.chain.deployment import WEI
from marketplace.chain.devnet import Devnet, dev_account
from marketplace.client import Client
from marketplace.errors import ContractError
from marketplace.job_challenge import Challengeable, ChallengeError
from marketplace.jobspec import JobSpec
from marketplace.protocol import PANEL_SIZE, Allowlist, JobState, Role, Verdict
from marketplace.results import MerkleTree, output_manifest
from marketplace.storage.cid import Cid
from provider.runtime import Runtime
from tests.conftest import Chain
from tests.marketplace.cli.runner import Cli
from tests.support.epochs import draw_panel
from tests.support.jobs import TEXTS, StoreNode


@pytest.fixture
def cli(devnet: Devnet, deployments: Path, tmp_path: Path, store_node: StoreNode, requester: LocalAccount) -> Cli:
    runner = Cli(devnet, tmp_path / "home", deployments, store_node.url)
    runner.import_wallet("alice", requester)
    return runner


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    path = tmp_path / "inputs.jsonl"
    path.write_text("".join(json.dumps({"text": text}) + "\n" for text in TEXTS))
    return path


def honest_outputs(store_node: StoreNode, chain: Chain, job_id: int, cache: Path) -> list[bytes]:
    """The job's outputs as an honest provider computes them: the provider's runtime on this CPU."""
    runtime = Runtime(store_node.store, cache)
    spec = runtime.read_spec(chain.market.spec_cid(job_id))
    return runtime.run(spec, runtime.read_inputs(spec))


def submit(chain: Chain, store_node: StoreNode, provider: LocalAccount, job_id: int, outputs: list[bytes]) -> None:
    """Claims ``job_id`` for ``provider`` and commits ``outputs`` (stored, and their Merkle root on-chain)."""
    cid = str(store_node.store.add_bytes(output_manifest(outputs)).cid)
    chain.market.claim_job(provider, job_id)
    chain.market.submit_result(provider, job_id, cid, MerkleTree(outputs).root)


def stored_files(root: Path) -> set[Path]:
    return {path for path in root.rglob("*") if path.is_file()}


def wrong_at(outputs: list[bytes], index: int) -> list[bytes]:
    """``outputs`` with task ``index``'s embedding pointing the other way: well formed, and wrong."""
    changed = list(outputs)
    vector = json.loads(changed[index])["embedding"]
    changed[index] = json.dumps({"embedding": [-value for value in vector]}, separators=(",", ":")).encode()
    return changed


def test_post_prints_the_audit_and_its_cost_and_refuses_jobs_the_contract_would(
    chain: Chain, cli: Cli, inputs: Path, bundles: dict[str, Path], store_node: StoreNode, provider: LocalAccount,
    tmp_path: Path,
) -> None:
    terms = chain.market.terms()
    others = [dev_account(5).address, dev_account(6).address]
    posted = cli.post(bundles["embed"], inputs, "2", "--sample-tasks", "2", "--allow", provider.address,
                      "--allow", others[0], "--allowlist", f"{others[1]},{provider.address}")
    job_id = cli.job_id(posted)
    # 2 of 8 tasks at twice the per-task price (0.25 WEBI) is a 1 WEBI audit fee; 3 WEBI escrowed in all.
    assert "audit: 2 of 8 tasks re-executed" in posted and "audit fee 1 WEBI = escrow 3 WEBI" in posted
    assert (f"protocol fee {terms.protocol_fee_bps} bps (at most {terms.protocol_fee_bps})" in posted
            and f"collateral {terms.collateral_bps} bps (at least {terms.collateral_bps})" in posted)
    assert posted.index("audit:") < posted.index("posted job")  # shown before the transaction
    members = (provider.address, *others)
    assert chain.market.terms_of(job_id).allowlist_root == Allowlist(members).root
    spec = JobSpec.model_validate_json(store_node.store.read_bytes(Cid.parse(chain.market.spec_cid(job_id))))
    assert set(spec.allowlist) == set(members) and "claimable by 3 allowlisted providers" in posted
    # Bounds as loose as the terms in force are accepted; the job commits to the terms, not the bounds.
    loose = cli.job_id(cli.post(bundles["embed"], inputs, "1", "--max-protocol-fee-bps", "2000",
                                "--min-collateral-bps", "0"))
    assert chain.market.terms_of(loose).protocol_fee_bps == terms.protocol_fee_bps

    # What the contract would refuse exits with code 2 and one clear line, before any upload or spending.
    next_id, balance = chain.market.next_job_id(), chain.token.balance_of(dev_account(1).address)
    blocks = stored_files(tmp_path / "node-store")
    over_sample = cli.post(bundles["embed"], inputs, "20", "--sample-tasks", "8", code=2)
    assert "above the cap" in over_sample and "Traceback" not in over_sample
    over_price = cli.post(bundles["embed"], inputs, "600", code=2)
    assert "split the inputs into several jobs" in over_price
    too_tight = cli.post(bundles["embed"], inputs, "1", "--max-protocol-fee-bps", str(terms.protocol_fee_bps - 1),
                         "--min-collateral-bps", str(terms.collateral_bps + 1), code=2)
    assert f"the protocol fee is {terms.protocol_fee_bps} bps, above --max-protocol-fee-bps" in too_tight
    assert "below --min-collateral-bps" in too_tight and "posted job" not in too_tight
    assert chain.market.next_job_id() == next_id and chain.token.balance_of(dev_account(1).address) == balance
    assert stored_files(tmp_path / "node-store") == blocks  # nothing uploaded either
    assert "--allow '0x12': not an address" in cli.post(bundles["embed"], inputs, "1", "--allow", "0x12", code=1)


def test_check_reexecutes_random_tasks_like_the_verifier_and_fails_loudly_on_a_mismatch(
    chain: Chain, cli: Cli, inputs: Path, bundles: dict[str, Path], store_node: StoreNode, provider: LocalAccount,
    tmp_path: Path, devnet: Devnet, deployments: Path,
) -> None:
    chain.register(provider, Role.PROVIDER)
    honest_id = cli.job_id(cli.post(bundles["embed"], inputs, "1"))
    outputs = honest_outputs(store_node, chain, honest_id, tmp_path / "provider-cache")
    submit(chain, store_node, provider, honest_id, outputs)
    chosen = sorted(random.Random(7).sample(range(len(TEXTS)), 3))
    checked = cli("job", "results", str(honest_id), "--check", "3", "--seed", "7")
    assert f"re-executing tasks {', '.join(map(str, chosen))} (seed 7" in checked
    for index in chosen:
        assert f"task {index}: within tolerance (1 - cosine " in checked and "within allowance" in checked
    assert "all 3 re-executed tasks agree" in checked and "MISMATCH" not in checked
    assert cli.home.joinpath("check-cache", "models").is_dir()  # the runtime's model cache, under $WEBI_HOME

    # One task of eight pointing the wrong way: checking every task finds it, names it, and exits 1.
    cheat_id = cli.job_id(cli.post(bundles["embed"], inputs, "1"))
    submit(chain, store_node, provider, cheat_id, wrong_at(outputs, 5))
    found = cli("job", "results", str(cheat_id), "--check", "8", "-o", str(tmp_path / "cheat.jsonl"), code=1)
    assert "task 5: MISMATCH (outside both references: 1 - cosine 2.00e+00 > allowance" in found
    assert "1 of 8 re-executed tasks disagree" in found
    # No verdict yet: a panel would re-check only the audit's sample, which is not public before it.
    assert "the audit's sample is not public yet" in found and "webi job challenge" not in found
    assert (tmp_path / "cheat.jsonl").exists()  # the outputs do rebuild the root: they are written, and wrong

    # The SDK's dataclass says the same; a fresh seed is chosen (and reported) when none is given.
    with Client.connect(devnet.anvil.rpc_url, store_node.url, deployments_dir=deployments,
                        cache_dir=tmp_path / "sdk-cache") as client:
        report = client.check(cheat_id, 8)
        assert not report.passed and [r.index for r in report.mismatches] == [5]
        assert report.indices == tuple(range(8)) and report.task == "embed"
        assert all(r.metric is not None and r.metric > 0.99 for r in report.results if r.index != 5)
        again = client.check(honest_id, 2, seed=report.seed)
        assert again.seed == report.seed and again.indices == tuple(sorted(random.Random(report.seed).sample(
            range(8), 2)))
    assert "pass -o FILE" in cli("job", "results", str(honest_id), code=1)
    assert "re-execute at least one task" in cli("job", "results", str(honest_id), "--check", "0", code=1)


def test_a_wrong_pass_is_challenged_and_the_watch_shows_the_panel(
    chain: Chain, cli: Cli, inputs: Path, bundles: dict[str, Path], store_node: StoreNode,
    provider: LocalAccount, verifier: LocalAccount, requester: LocalAccount, tmp_path: Path, devnet: Devnet,
    deployments: Path,
) -> None:
    judge = dev_account(5)
    chain.register(verifier, Role.VERIFIER)
    chain.register(provider, Role.PROVIDER)
    job_id = cli.job_id(cli.post(bundles["embed"], inputs, "1"))
    outputs = honest_outputs(store_node, chain, job_id, tmp_path / "provider-cache")
    wrong = outputs
    for index in range(len(outputs)):  # every task wrong: whatever the audit sampled, a panel sees it
        wrong = wrong_at(wrong, index)
    submit(chain, store_node, provider, job_id, wrong)
    # A lazy verifier passes it without looking (a wrong PASS straight through market.submit_verdict).
    chain.verdict(verifier, job_id, Verdict.PASS)
    chain.register(judge, Role.VERIFIER)  # after the draw: the only one eligible for the panel
    checked = cli("job", "results", str(job_id), "--check", "8", code=1)
    sample = chain.market.sampled_tasks(job_id)
    assert f"{len(sample)} of them are among the audit's sampled tasks" in checked
    assert f"`webi job challenge {job_id}` puts it to a panel" in checked

    balance = chain.token.balance_of(requester.address)
    bond = chain.market.terms_of(job_id).bond
    made = cli("job", "challenge", str(job_id), "--wallet", "alice", *cli.password)
    assert f"challenged job {job_id}'s pass verdict: a bond of 3 WEBI is escrowed (approved first)" in made
    assert bond == 3 * WEI and chain.token.balance_of(requester.address) == balance - bond
    panel = chain.market.panel_of(job_id)
    assert (chain.market.get_job(job_id).state, panel.challenger, panel.bond) == (
        JobState.CHALLENGED, requester.address, bond)
    assert f"from block {panel.seed_block + 1}: anyone draws the 3-seat panel" in made
    assert "within 1 h of the draw: the members commit" in made

    # The timeline gives each event once: a poll after the history returns only what is new.
    with Client.connect(devnet.anvil.rpc_url, store_node.url, deployments_dir=deployments) as client:
        timeline = client.timeline(job_id)
        history = [event.name for event in timeline.poll()]
        assert history == ["JobPosted", "JobClaimed", "ResultSubmitted", "VerifierDrawn", "VerdictSubmitted",
                           "Challenged"]
        assert timeline.poll() == []
        draw_panel(chain, job_id)
        assert chain.market.panel_of(job_id).members == (judge.address,) * PANEL_SIZE
        salt = b"\x42" * 32
        chain.market.commit_vote(judge, job_id, Verdict.FAIL, salt)
        new = timeline.poll()
        assert [event.name for event in new] == ["PanelDrawn", "VoteCommitted"]
        assert f"panel vote committed by {judge.address} (3 of 3 committed)" == new[1].text  # one member, 3 seats
        assert new[1].block == chain.block_number()
        shown = client.status(job_id)
        assert (shown.challenger, shown.panel_seats, shown.panel_committed, shown.panel_revealed) == (
            requester.address, 3, 3, 0)
    chain.market.reveal_vote(judge, job_id, Verdict.FAIL, salt)
    chain.market.resolve_challenge(chain.owner, job_id)

    watched = cli("job", "status", str(job_id), "--watch", "--interval", "0.1")
    lines = [line for line in watched.splitlines() if line.startswith("block ")]
    assert [line.split(f"job {job_id}: ")[1].split(" ")[0] for line in lines] == [
        "posted", "claimed", "result", "verifier", "verdict", "verdict", "panel", "panel", "panel", "challenge",
        "settled"]
    assert f"verdict pass by {verifier.address}" in watched
    assert f"verdict challenged by {requester.address} with a 3 WEBI bond" in watched
    assert f"panel vote revealed by {judge.address}: fail (3 of 3 revealed)" in watched
    assert "challenge resolved: fail (the verdict is overturned)" in watched
    assert "settled fail: rejected, the price is refunded to the requester" in watched
    assert f"job {job_id}: rejected" in watched
    events = [json.loads(line) for line in cli("job", "status", str(job_id), "--watch", "--json").splitlines()]
    assert [e.get("event") for e in events[:-1]].count("VoteRevealed") == 1 and events[-1]["state"] == "rejected"
    assert all(e["block"] <= f["block"] for e, f in pairwise(events[:-1]))


def test_challenges_the_contract_would_refuse_spend_nothing_and_say_why(
    chain: Chain, cli: Cli, inputs: Path, bundles: dict[str, Path], store_node: StoreNode,
    provider: LocalAccount, verifier: LocalAccount, requester: LocalAccount, stranger: LocalAccount,
) -> None:
    chain.register(verifier, Role.VERIFIER)
    chain.register(provider, Role.PROVIDER)
    cli.import_wallet("bob", stranger)
    outputs = [json.dumps({"embedding": [1.0, float(i)]}).encode() for i in range(len(TEXTS))]
    job_id = cli.job_id(cli.post(bundles["embed"], inputs, "1"))
    submit(chain, store_node, provider, job_id, outputs)
    assert f"job {job_id} is submitted: only a provisional verdict" in cli(
        "job", "challenge", str(job_id), "--wallet", "alice", *cli.password, code=1)
    chain.verdict(verifier, job_id, Verdict.PASS)
    balances = {a.address: chain.token.balance_of(a.address) for a in (requester, stranger)}
    refused = cli("job", "challenge", str(job_id), "--wallet", "bob", *cli.password, code=1)
    assert f"{stranger.address} may not challenge its pass verdict: only its requester {requester.address}" in refused
    chain.increase_time(chain.market.audit_of(job_id).deadline - chain.now() + 1)
    closed = cli("job", "challenge", str(job_id), "--wallet", "alice", *cli.password, code=1)
    assert f"job {job_id}: the challenge window closed at {chain.market.audit_of(job_id).deadline}" in closed
    assert chain.market.get_job(job_id).state == JobState.AUDITED
    assert {a.address: chain.token.balance_of(a.address) for a in (requester, stranger)} == balances
    assert chain.token.allowance(stranger.address, chain.market.address) == 0

    # A refusal racing the checks (the window closing between the views and the transaction) reads the same.
    job = Challengeable(job_id, requester.address, chain.market.terms_of(job_id), chain.market.audit_of(job_id),
                        provider.address)
    raced = job.explain(ContractError("DeadlinePassed", {"jobId": job_id, "deadline": 99}, "challenge"))
    assert isinstance(raced, ChallengeError) and "challenge window closed at 99" in str(raced)
    other = ContractError("TermsMismatch", {"jobId": job_id}, "challenge")
    assert job.explain(other) is other
