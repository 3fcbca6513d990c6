"""``webi wallet`` and ``webi job`` end to end: keystores on disk, a real devnet and a real store node."""

from __future__ import annotations

import json
from pathlib import Path

from eth_account.signers.local import LocalAccount
from typer.testing import CliRunner

from marketplace.chain.deployment import WEI
from marketplace.chain.devnet import Devnet
from marketplace.cli.main import app
from marketplace.protocol import JobState, Role
from marketplace.results import MerkleTree, canonical, output_manifest
from tests.conftest import Chain
from tests.support.jobs import PASSWORD, TEXTS, StoreNode


class Cli:
    def __init__(self, devnet: Devnet, home: Path, deployments: Path, store: str) -> None:
        self.env = {"WEBI_HOME": str(home), "WEBI_STORE": store, "COLUMNS": "200"}
        self.base = ["--rpc-url", devnet.anvil.rpc_url]
        self.deployments = ["--deployments", str(deployments)]
        (home / "password").parent.mkdir(parents=True, exist_ok=True)
        (home / "password").write_text(PASSWORD + "\n")
        self.password = ["--password-file", str(home / "password")]

    def __call__(self, *args: str, deployments: bool = True, code: int = 0) -> str:
        result = CliRunner().invoke(app, [*self.base, *args, *(self.deployments if deployments else [])], env=self.env)
        assert result.exit_code == code, result.output + repr(result.exception)
        # An error reaches the user as one line (marketplace.cli.main.run); here it is the exception.
        return result.output + (str(result.exception) if result.exception else "")

    def post(self, model: Path, inputs: Path, price: str, *extra: str, code: int = 0) -> str:
        """``webi job post`` of an embed job from wallet alice; the output (error text when it fails)."""
        return self("job", "post", "--task", "embed", "--model", str(model), "--inputs", str(inputs),
                    "--price", price, *extra, "--wallet", "alice", *self.password, code=code)

    @staticmethod
    def job_id(posted: str) -> int:
        return int(posted.split("posted job ")[1].split(":")[0])


def test_wallets_post_status_results_and_cancel(
    chain: Chain,
    devnet: Devnet,
    deployments: Path,
    tmp_path: Path,
    store_node: StoreNode,
    bundles: dict[str, Path],
    requester: LocalAccount,
    provider: LocalAccount,
) -> None:
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
    job_id = cli.job_id(cli.post(bundles["embed"], inputs, "12.5", "--sample-rate", "0.2"))
    status = json.loads(cli("job", "status", str(job_id), "--json"))
    assert status["state"] == "open" and status["price"] == str(12_500_000_000_000_000_000)
    assert status["num_tasks"] == len(TEXTS)
    assert chain.market.terms_of(job_id).sample_rate_bps == 2_000

    # A provider computes and commits; the requester downloads and checks every output against the root.
    chain.register(provider, Role.PROVIDER, 1_000 * WEI)
    outputs = [canonical({"embedding": [float(index), 1.0]}) for index in range(len(TEXTS))]
    output_cid = str(store_node.store.add_bytes(output_manifest(outputs)).cid)
    chain.market.claim_job(provider, job_id)
    chain.market.submit_result(provider, job_id, output_cid, MerkleTree(outputs).root)
    result_file = tmp_path / "results.jsonl"
    assert "verified against the on-chain root" in cli("job", "results", str(job_id), "-o", str(result_file))
    assert [json.loads(line) for line in result_file.read_text().splitlines()][3] == {"embedding": [3.0, 1.0]}

    # A root that the stored outputs do not rebuild is refused, and nothing is written.
    forged_id = cli.job_id(cli.post(bundles["embed"], inputs, "1"))
    chain.market.claim_job(provider, forged_id)
    chain.market.submit_result(provider, forged_id, output_cid, b"\x33" * 32)
    refused = cli("job", "results", str(forged_id), "-o", str(tmp_path / "forged.jsonl"), code=1)
    assert "but the provider committed" in refused and not (tmp_path / "forged.jsonl").exists()

    # --watch follows a job until it settles, and gives up with a clear error after --timeout.
    waited = cli("job", "status", str(forged_id), "--watch", "--timeout", "0.5", code=1)
    assert f"job {forged_id}: submitted" in waited and f"job {forged_id} still submitted after 0.5 s" in waited

    # Cancelling an open job refunds the escrow to the wallet.
    third_id = cli.job_id(cli.post(bundles["embed"], inputs, "3"))
    before = chain.token.balance_of(requester.address)
    assert "3 WEBI withdrawn" in cli("job", "cancel", str(third_id), "--wallet", "alice", *cli.password)
    assert chain.market.get_job(third_id).state == JobState.CANCELLED
    assert chain.token.balance_of(requester.address) == before + 3 * WEI
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
