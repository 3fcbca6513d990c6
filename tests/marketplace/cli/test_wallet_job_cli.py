"""``webi wallet`` and ``webi job`` end to end: keystores on disk, a real devnet and a real store node."""

from __future__ import annotations

import json
from pathlib import Path

from eth_account.signers.local import LocalAccount

from marketplace.chain.deployment import WEI
from marketplace.chain.devnet import Devnet, dev_account
from marketplace.jobspec import JobSpec
from marketplace.protocol import Allowlist, JobState, Role, Verdict
from marketplace.results import MerkleTree, canonical, output_manifest
from marketplace.storage.cid import Cid
from tests.conftest import Chain
from tests.marketplace.cli.runner import Cli
from tests.support.jobs import TEXTS, StoreNode


def test_wallets_post_status_results_and_cancel(
    chain: Chain,
    devnet: Devnet,
    deployments: Path,
    tmp_path: Path,
    store_node: StoreNode,
    bundles: dict[str, Path],
    requester: LocalAccount,
    provider: LocalAccount,
    verifier: LocalAccount,
) -> None:
    chain.register(verifier, Role.VERIFIER)
    cli = Cli(devnet, tmp_path / "home", deployments, store_node.url)
    (tmp_path / "key").write_text(requester.key.hex())
    cli("wallet", "import", "alice", "--key-file", str(tmp_path / "key"), *cli.password, deployments=False)
    cli("wallet", "new", "bob", *cli.password, deployments=False)
    listed = cli("wallet", "list", deployments=False)
    assert "alice" in listed and requester.address in listed and "bob" in listed
    keystore = json.loads((tmp_path / "home" / "wallets" / "alice.json").read_text())
    assert keystore["crypto"]["kdf"] == "scrypt"
    assert "1,000,000" in cli("wallet", "balance", "alice")

    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text("".join(json.dumps({"text": text}) + "\n" for text in TEXTS))
    balance = chain.token.balance_of(requester.address)
    posted = cli.post(bundles["embed"], inputs, "12.5", "--sample-tasks", "2", "--min-provider-stake", "500")
    job_id = cli.job_id(posted)
    terms = chain.market.terms_of(job_id)
    # Every job is audited: 2 of 8 tasks at 2x the per-task price is a 6.25 WEBI audit fee, escrowed too.
    assert (terms.sample_tasks, terms.audit_fee, terms.min_provider_stake) == (2, 6_250 * WEI // 1_000, 500 * WEI)
    assert "plus a 6.25 WEBI audit fee" in posted and "need 500 WEBI staked" in posted
    assert chain.token.balance_of(requester.address) == balance - terms.escrow
    status = json.loads(cli("job", "status", str(job_id), "--json"))
    assert status["state"] == "open" and status["price"] == str(12_500_000_000_000_000_000)
    assert status["num_tasks"] == len(TEXTS) and status["audit_fee"] == str(terms.audit_fee)
    assert status["verifier"] is None and status["verdict"] is None

    # --allowlist: a comma list or a file; the root goes on-chain, the members into the spec.
    members = [provider.address, dev_account(5).address]
    from_list = cli.job_id(cli.post(bundles["embed"], inputs, "1", "--allowlist", ",".join(members)))
    (tmp_path / "allowlist.txt").write_text(f"# who may claim\n{members[1]}\n{members[0]}  # the usual one\n")
    from_file = cli.job_id(cli.post(bundles["embed"], inputs, "1", "--allowlist", str(tmp_path / "allowlist.txt")))
    for allowlisted in (from_list, from_file):
        assert chain.market.terms_of(allowlisted).allowlist_root == Allowlist(tuple(members)).root
        spec = JobSpec.model_validate_json(store_node.store.read_bytes(Cid.parse(chain.market.spec_cid(allowlisted))))
        assert set(spec.allowlist) == set(members)
    assert "not an address" in cli.post(bundles["embed"], inputs, "1", "--allowlist", "0x12,bob", code=1)

    # A provider computes and commits; the requester downloads and checks every output against the root.
    chain.register(provider, Role.PROVIDER, 1_000 * WEI)
    outputs = [canonical({"embedding": [float(index), 1.0]}) for index in range(len(TEXTS))]
    output_cid = str(store_node.store.add_bytes(output_manifest(outputs)).cid)
    chain.market.claim_job(provider, job_id)
    chain.market.submit_result(provider, job_id, output_cid, MerkleTree(outputs).root)
    result_file = tmp_path / "results.jsonl"
    assert "verified against the on-chain root" in cli("job", "results", str(job_id), "-o", str(result_file))
    assert [json.loads(line) for line in result_file.read_text().splitlines()][3] == {"embedding": [3.0, 1.0]}

    # Status names the drawn verifier and its verdict, provisional (audited) until the challenge window ends.
    chain.verdict(verifier, job_id, Verdict.PASS)
    audited = json.loads(cli("job", "status", str(job_id), "--json"))
    assert (audited["state"], audited["verifier"], audited["verdict"]) == ("audited", verifier.address, "pass")
    assert audited["deadline"] == chain.market.audit_of(job_id).deadline
    shown = cli("job", "status", str(job_id))
    assert "challenge window ends" in shown and verifier.address in shown
    chain.settle(job_id)
    assert f"job {job_id}: finalized (provider {provider.address}, verifier {verifier.address}, verdict pass)" in cli(
        "job", "status", str(job_id), "--watch")

    # A root that the stored outputs do not rebuild is refused, and nothing is written.
    forged_id = cli.job_id(cli.post(bundles["embed"], inputs, "1"))
    chain.market.claim_job(provider, forged_id)
    chain.market.submit_result(provider, forged_id, output_cid, b"\x33" * 32)
    refused = cli("job", "results", str(forged_id), "-o", str(tmp_path / "forged.jsonl"), code=1)
    assert "but the provider committed" in refused and not (tmp_path / "forged.jsonl").exists()

    # --watch follows a job until it settles, and gives up with a clear error after --timeout.
    waited = cli("job", "status", str(forged_id), "--watch", "--timeout", "0.5", "--interval", "0.1", code=2)
    assert f"job {forged_id}: result submitted by {provider.address}" in waited
    assert f"job {forged_id} still submitted after 0.5 s" in waited

    # Cancelling an open job refunds the whole escrow to the wallet: the price and the audit fee (3 + 3 WEBI).
    third_id = cli.job_id(cli.post(bundles["embed"], inputs, "3"))
    before = chain.token.balance_of(requester.address)
    assert "6 WEBI withdrawn" in cli("job", "cancel", str(third_id), "--wallet", "alice", *cli.password)
    assert chain.market.get_job(third_id).state == JobState.CANCELLED
    escrow = chain.market.terms_of(third_id).escrow
    assert chain.token.balance_of(requester.address) == before + escrow == before + 6 * WEI
    assert f"job {third_id}: cancelled" in cli("job", "status", str(third_id), "--watch")


def test_bad_input_is_refused_before_anything_is_spent(
    chain: Chain,
    devnet: Devnet,
    deployments: Path,
    tmp_path: Path,
    store_node: StoreNode,
    bundles: dict[str, Path],
    requester: LocalAccount,
) -> None:
    cli = Cli(devnet, tmp_path / "home", deployments, store_node.url)
    (tmp_path / "key").write_text(requester.key.hex())
    cli("wallet", "import", "alice", "--key-file", str(tmp_path / "key"), *cli.password, deployments=False)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": ""}\n')
    next_id = chain.market.next_job_id()
    output = cli.post(bundles["embed"], bad, "1", code=1)
    assert "inputs[2]" in output and chain.market.next_job_id() == next_id
    assert "no wallet named 'carol'" in cli("job", "cancel", "1", "--wallet", "carol", *cli.password, code=1)
    assert "not an amount" in cli.post(bundles["embed"], bad, "lots", code=1)
