"""What ``webi job status`` says a job waits for, ``job results`` refusing a rejected job's outputs, ``job list`` and
``job reclaim``: end to end on a real devnet and store node."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from marketplace.chain.deployment import WEI
from marketplace.chain.devnet import Devnet
from marketplace.client import Client, RejectedResultsError
from marketplace.protocol import JobState, Role, Verdict
from marketplace.results import MerkleTree, canonical, output_manifest
from tests.conftest import OUTPUT_CID, Chain
from tests.marketplace.cli.runner import Cli
from tests.support.jobs import TEXTS, Market, StoreNode

OUTPUTS = [canonical({"embedding": [float(index), 1.0]}) for index in range(len(TEXTS))]


@pytest.fixture
def cli(devnet: Devnet, deployments: Path, tmp_path: Path, store_node: StoreNode, requester: LocalAccount) -> Cli:
    runner = Cli(devnet, tmp_path / "home", deployments, store_node.url)
    runner.import_wallet("alice", requester)
    return runner


def register_provider(chain: Chain, store_node: StoreNode, account: LocalAccount, document: dict[str, object]) -> None:
    """Registers ``account`` as a provider whose metadata document (in the store) is ``document``."""
    cid = str(store_node.store.add_bytes(json.dumps(document).encode()).cid)
    chain.approve(account)
    chain.market.register(account, Role.PROVIDER, 1_000 * WEI, cid)


def submit(chain: Chain, store_node: StoreNode, provider: LocalAccount, job_id: int) -> None:
    cid = str(store_node.store.add_bytes(output_manifest(OUTPUTS)).cid)
    chain.market.claim_job(provider, job_id)
    chain.market.submit_result(provider, job_id, cid, MerkleTree(OUTPUTS).root)


def test_status_of_an_open_job_names_the_claim_window_and_the_providers_reasons(
    chain: Chain, cli: Cli, market: Market, store_node: StoreNode, requester: LocalAccount, provider: LocalAccount,
    stranger: LocalAccount,
) -> None:
    job_id = market.post(requester, price=WEI // 2)  # 8 tasks: 0.0625 WEBI a task
    claim_by = chain.market.terms_of(job_id).claim_by
    shown = cli("job", "status", str(job_id))
    assert "waiting for: no provider has claimed it in 0 min; claim window closes at" in shown
    assert "(in 60 min); no provider is registered" in shown
    register_provider(chain, store_node, provider, {"tasks": ["embed"], "price_floor": {"embed": "0.1"}})
    register_provider(chain, store_node, stranger, {"tasks": ["embed", "generate"], "price_floor": {"embed": "0.25"}})
    chain.increase_time(600)
    status = json.loads(cli("job", "status", str(job_id), "--json"))
    assert status["state"] == "open" and status["waiting_for"]["until"] == claim_by
    assert status["waiting_for"]["reasons"] == [
        "its price per task 0.0625 WEBI is under the floor of all 2 registered providers (lowest 0.1)"]
    assert status["waiting_for"]["line"].startswith("no provider has claimed it in 10 min; claim window closes at ")

    # The watch prints the wait once (it does not change while nothing happens) and, at the timeout, says it.
    watched = cli("job", "status", str(job_id), "--watch", "--timeout", "0.3", "--interval", "0.1", code=2)
    assert watched.count("waiting for: no provider has claimed it") == 1
    assert f"job {job_id} still open after 0.3 s: no provider has claimed it in 10 min" in watched
    timed_out = next(line for line in watched.splitlines() if "still open after" in line)
    assert timed_out.endswith("under the floor of all 2 registered providers (lowest 0.1)")


def test_a_submitted_jobs_wait_names_the_seed_block_then_the_verifier(
    chain: Chain, cli: Cli, market: Market, store_node: StoreNode, requester: LocalAccount, provider: LocalAccount,
    verifier: LocalAccount,
) -> None:
    chain.register(verifier, Role.VERIFIER)
    chain.register(provider, Role.PROVIDER)
    job_id = market.post(requester)
    chain.market.claim_job(provider, job_id)
    due = chain.market.get_job(job_id).stamp
    assert f"waiting for: provider {provider.address} computing; result due by" in cli("job", "status", str(job_id))
    assert json.loads(cli("job", "status", str(job_id), "--json"))["waiting_for"]["until"] == due
    cid = str(store_node.store.add_bytes(output_manifest(OUTPUTS)).cid)
    chain.market.submit_result(provider, job_id, cid, MerkleTree(OUTPUTS).root)
    seed_block = chain.market.get_job(job_id).seed_block
    # No daemon runs and anvil mines only on transactions: the seed block never comes, and the watch says so.
    watched = cli("job", "status", str(job_id), "--watch", "--timeout", "0.3", "--interval", "0.1", code=2)
    assert f"waiting for: waiting for the seed block {seed_block} (now at block {chain.block_number()})" in watched
    assert (f"job {job_id} still submitted after 0.3 s: waiting for the seed block {seed_block} (now at block "
            f"{chain.block_number()})") in watched
    lines = [json.loads(line) for line in cli("job", "status", str(job_id), "--watch", "--json", "--timeout", "0.2",
                                              "--interval", "0.1", code=2).splitlines() if line.startswith("{")]
    assert [line["waiting_for"]["kind"] for line in lines if "waiting_for" in line] == ["seed_block"]
    assert [line["event"] for line in lines if "event" in line] == ["JobPosted", "JobClaimed", "ResultSubmitted"]
    drawn = chain.draw(job_id)
    deadline = chain.market.audit_of(job_id).deadline
    status = json.loads(cli("job", "status", str(job_id), "--json"))
    assert drawn == verifier.address and status["waiting_for"]["kind"] == "verdict"
    assert status["waiting_for"]["until"] == deadline and status["waiting_for"]["who"] == verifier.address
    assert f"waiting for a verdict from verifier {verifier.address} by " in cli("job", "status", str(job_id))
    chain.verdict(verifier, job_id, Verdict.PASS)
    assert "challenge window open until" in cli("job", "status", str(job_id))


def test_results_of_a_rejected_job_are_refused_and_forcing_them_warns_and_fails(
    chain: Chain, cli: Cli, market: Market, store_node: StoreNode, requester: LocalAccount, provider: LocalAccount,
    verifier: LocalAccount, tmp_path: Path, devnet: Devnet, deployments: Path,
) -> None:
    chain.register(verifier, Role.VERIFIER)
    chain.register(provider, Role.PROVIDER)
    job_id = market.post(requester)
    submit(chain, store_node, provider, job_id)
    chain.verdict(verifier, job_id, Verdict.FAIL, evidence=OUTPUT_CID)
    target = tmp_path / "out.jsonl"
    # A provisional fail is refused already: these are the outputs the audit found wrong.
    provisional = cli("job", "results", str(job_id), "-o", str(target), code=1)
    assert f"job {job_id} was rejected (verdict fail:" in provisional and f"evidence {OUTPUT_CID}" in provisional
    chain.settle(job_id)
    assert chain.market.get_job(job_id).state == JobState.REJECTED
    refused = cli("job", "results", str(job_id), "-o", str(target), code=1)
    assert f"job {job_id} was rejected (verdict fail: verifier {verifier.address} re-executed" in refused
    assert f"evidence {OUTPUT_CID}" in refused and "--force writes them anyway" in refused
    assert "verified" not in refused and not target.exists()
    assert not target.with_name(target.name + ".partial").exists()

    forced = cli("job", "results", str(job_id), "-o", str(target), "--force", code=3)
    assert "WARNING: these outputs FAILED their audit" in forced and f"evidence {OUTPUT_CID}" in forced
    assert "verified" not in forced and f"outputs of rejected job {job_id} written to" in forced
    assert [json.loads(line) for line in target.read_text().splitlines()][2] == {"embedding": [2.0, 1.0]}

    with Client.connect(devnet.anvil.rpc_url, store_node.url, deployments_dir=deployments) as client:
        with pytest.raises(RejectedResultsError, match=f"evidence {OUTPUT_CID}"):
            client.results(job_id)
        assert len(client.results(job_id, force=True)) == len(TEXTS)


def test_results_still_in_the_audit_or_challenge_window_carry_a_warning(
    chain: Chain, cli: Cli, market: Market, store_node: StoreNode, requester: LocalAccount, provider: LocalAccount,
    verifier: LocalAccount, tmp_path: Path,
) -> None:
    chain.register(verifier, Role.VERIFIER)
    chain.register(provider, Role.PROVIDER)
    job_id = market.post(requester)
    submit(chain, store_node, provider, job_id)
    target = tmp_path / "out.jsonl"
    auditing = cli("job", "results", str(job_id), "-o", str(target))
    assert f"warning: not final: job {job_id} is still in its audit: no verdict yet" in auditing
    assert "8 outputs verified against the on-chain root" in auditing and target.exists()
    chain.verdict(verifier, job_id, Verdict.PASS)
    window = cli("job", "results", str(job_id), "-o", str(target))
    assert f"not final: job {job_id} has a provisional pass verdict; its challenge window ends at" in window
    chain.settle(job_id)
    final = cli("job", "results", str(job_id), "-o", str(target))
    assert "not final" not in final and "8 outputs verified against the on-chain root" in final


def test_list_shows_my_jobs_only(
    chain: Chain, cli: Cli, market: Market, store_node: StoreNode, requester: LocalAccount, provider: LocalAccount,
    stranger: LocalAccount,
) -> None:
    chain.register(provider, Role.PROVIDER)
    mine = [market.post(requester), market.post(requester, price=3 * WEI)]
    theirs = market.post(stranger)
    chain.market.claim_job(provider, mine[1])
    listed = cli("job", "list", "--wallet", "alice")
    assert f"2 jobs posted by {requester.address}:" in listed
    assert f"job {mine[0]}  open  8 tasks  10 WEBI  no provider  no provider has claimed it in 0 min" in listed
    assert f"job {mine[1]}  claimed  8 tasks  3 WEBI  provider {provider.address}  provider {provider.address} " \
           "computing; result due by" in listed
    assert f"job {theirs} " not in listed
    rows = json.loads(cli("job", "list", "--address", stranger.address, "--json"))
    assert [(row["job_id"], row["state"], row["waiting_for"]["kind"]) for row in rows] == [(theirs, "open", "claim")]
    assert "pass --wallet NAME or --address ADDRESS" in cli("job", "list", code=1)
    assert "is not an address" in cli("job", "list", "--address", "0x12", code=1)
    assert "has posted no jobs" in cli("job", "list", "--address", provider.address)


def test_reclaim_refuses_a_running_claim_and_spends_nothing_then_reclaims_an_expired_one(
    chain: Chain, cli: Cli, market: Market, requester: LocalAccount, provider: LocalAccount,
) -> None:
    chain.register(provider, Role.PROVIDER)
    job_id = market.post(requester, exec_window=600)
    reclaim = ("job", "reclaim", str(job_id), "--wallet", "alice", *cli.password)
    assert f"job {job_id} is open: nobody holds a claim on it" in cli(*reclaim, code=1)
    chain.market.claim_job(provider, job_id)
    balance, nonce = chain.client.w3.eth.get_balance(requester.address), chain.client.w3.eth.get_transaction_count(
        requester.address)
    early = cli(*reclaim, code=1)
    assert f"job {job_id}: the claim of {provider.address} runs until" in early and "(in 10 min 0 s)" in early
    assert (chain.client.w3.eth.get_balance(requester.address),
            chain.client.w3.eth.get_transaction_count(requester.address)) == (balance, nonce)
    assert chain.market.get_job(job_id).state == JobState.CLAIMED

    chain.increase_time(601)
    assert "missed its result deadline" in cli("job", "status", str(job_id))
    stake = chain.market.provider_stake(provider.address).stake
    collateral = chain.market.terms_of(job_id).collateral
    done = cli(*reclaim)
    assert f"reclaimed job {job_id}: the claim of {provider.address} expired" in done
    assert chain.market.get_job(job_id).state == JobState.OPEN
    assert chain.market.provider_stake(provider.address).stake == stake - collateral
    reward = collateral * chain.market.params().reward_bps // 10_000
    assert chain.market.credits(requester.address) == reward
    assert "no provider has claimed it" in cli("job", "status", str(job_id))
