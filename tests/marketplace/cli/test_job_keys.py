"""Confidential jobs from the requester's CLI, on a real devnet and store node: `webi wallet key`,
`webi job post --confidential`, `webi job keys --once` releasing an Open job's key to its claimant (and not to
one without a published key), and `webi job results --wallet` opening sealed outputs, or refusing tampered ones
without writing a file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from marketplace.chain.devnet import Devnet
from marketplace.jobspec import JobSpec
from marketplace.keystore import save_account
from marketplace.results import MerkleTree, output_manifest
from marketplace.sealed import PartyKey
from marketplace.sealed.envelope import job_key_from_release, seal
from marketplace.storage.cid import Cid
from tests.conftest import Chain
from tests.marketplace.cli.runner import Cli
from tests.marketplace.test_confidential_requester import CANARY, register_provider
from tests.support.jobs import PASSWORD, StoreNode


@pytest.fixture
def cli(devnet: Devnet, deployments: Path, tmp_path: Path, store_node: StoreNode, requester: LocalAccount) -> Cli:
    runner = Cli(devnet, tmp_path / "home", deployments, store_node.url)
    # Wallet alice, with the tests' cheap key derivation (its encryption key reuses it).
    save_account(requester, runner.home / "wallets" / "alice.json", PASSWORD, kdf="pbkdf2", iterations=2)
    return runner


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    path = tmp_path / "inputs.jsonl"
    path.write_text("".join(json.dumps({"text": f"{CANARY} {index}"}) + "\n" for index in range(3)))
    return path


def spec_of(chain: Chain, store_node: StoreNode, job_id: int) -> JobSpec:
    return JobSpec.model_validate_json(store_node.store.read_bytes(Cid.parse(chain.market.spec_cid(job_id))))


def test_wallet_key_prints_the_recipient_and_rotates(cli: Cli) -> None:
    first = cli("wallet", "key", "alice", *cli.password, deployments=False)
    recipient = first.split("created: ")[1].split()[0]
    assert recipient.startswith("age1") and "alice.x25519-key" in first
    assert f"is: {recipient}" in cli("wallet", "key", "alice", *cli.password, deployments=False)
    rotated = cli("wallet", "key", "alice", "--rotate", *cli.password, deployments=False)
    assert "rotated to: age1" in rotated and recipient not in rotated
    assert len(list((cli.home / "wallets").glob("alice.x25519-key.*"))) == 1  # the old key is kept
    assert "not re-published" in rotated  # no deployment here: the rotation stands, and says so


def test_keys_once_releases_to_a_claimant_with_a_published_key_and_results_open(
        chain: Chain, cli: Cli, inputs: Path, bundles: dict[str, Path], store_node: StoreNode,
        provider: LocalAccount, stranger: LocalAccount, tmp_path: Path) -> None:
    provider_key = PartyKey.generate()
    register_provider(chain, store_node, provider, provider_key)
    register_provider(chain, store_node, stranger, None)
    posted = cli.post(bundles["embed"], inputs, "2", "--sample-tasks", "1", "--confidential", "open",
                      "--key-window", "120", "--no-provider-check")
    assert "confidential (open)" in posted
    keyed, keyless = cli.job_id(posted), cli.job_id(
        cli.post(bundles["embed"], inputs, "2", "--sample-tasks", "1", "--confidential", "open",
                 "--no-provider-check"))
    assert chain.market.terms_of(keyless).key_window == 300  # the default
    assert not any(CANARY.encode() in path.read_bytes() for path in (tmp_path / "node-store").rglob("*")
                   if path.is_file())
    chain.market.claim_job(provider, keyed)
    chain.market.claim_job(stranger, keyless)

    served = cli("job", "keys", "--once", "--wallet", "alice", *cli.password)
    assert f"job {keyed}: key released to its claimant {provider.address}" in served
    assert f"job {keyless}: key NOT released to its claimant {stranger.address}" in served
    assert "published no encryption key" in served
    again = cli("job", "keys", "--once", "--job", str(keyed), "--wallet", "alice", *cli.password)
    assert "released" not in again  # the claimant has its key
    events = chain.market.contract.events.KeyReleased().get_logs(from_block=0, argument_filters={"jobId": keyed})
    assert len(events) == 1
    envelope = spec_of(chain, store_node, keyed).confidential
    assert envelope is not None
    job_key_from_release(envelope, bytes(events[0]["args"]["wrappedKey"]), provider_key)  # opens: no error

    outputs = [json.dumps({"embedding": [float(index), 1.0]}).encode() for index in range(3)]
    sealed = seal(output_manifest(outputs), envelope, "the output manifest")
    chain.market.submit_result(provider, keyed, str(store_node.store.add_bytes(sealed).cid), MerkleTree(outputs).root)
    written = tmp_path / "results.jsonl"
    shown = cli("job", "results", str(keyed), "-o", str(written), "--wallet", "alice", *cli.password)
    assert "3 outputs verified against the on-chain root" in shown
    assert [json.loads(line)["embedding"][0] for line in written.read_text().splitlines()] == [0.0, 1.0, 2.0]
    # Without the requester's wallet a confidential job's results are refused, saying what to pass.
    assert "pass --wallet" in cli("job", "results", str(keyed), "-o", str(tmp_path / "x.jsonl"), code=1)

    tampered = bytearray(seal(output_manifest(outputs), envelope, "the output manifest"))
    tampered[-3] ^= 0x01
    chain.market.submit_result(stranger, keyless, str(store_node.store.add_bytes(bytes(tampered)).cid),
                               MerkleTree(outputs).root)
    refused_file = tmp_path / "tampered.jsonl"
    refused = cli("job", "results", str(keyless), "-o", str(refused_file), "--wallet", "alice", *cli.password,
                  code=1)
    assert "output manifest" in refused and not refused_file.exists()
    assert not refused_file.with_name(refused_file.name + ".partial").exists()


def test_a_directed_post_to_a_provider_without_a_key_is_refused_before_spending(
        chain: Chain, cli: Cli, inputs: Path, bundles: dict[str, Path], store_node: StoreNode,
        stranger: LocalAccount, requester: LocalAccount, tmp_path: Path) -> None:
    register_provider(chain, store_node, stranger, None)
    next_id, balance = chain.market.next_job_id(), chain.token.balance_of(requester.address)
    refused = cli.post(bundles["embed"], inputs, "2", "--confidential", "directed", "--allow", stranger.address,
                       "--no-provider-check", code=2)
    assert f"allowlisted provider {stranger.address} has no usable encryption key" in refused
    assert "Traceback" not in refused
    assert chain.market.next_job_id() == next_id and chain.token.balance_of(requester.address) == balance
    assert not any(CANARY.encode() in path.read_bytes() for path in (tmp_path / "node-store").rglob("*")
                   if path.is_file())


def test_rotating_a_providers_key_re_publishes_it_signed_and_keeps_the_rest_of_its_document(
        chain: Chain, cli: Cli, store_node: StoreNode, provider: LocalAccount) -> None:
    """Without the re-publication, requesters would keep wrapping keys to the rotated-out key."""
    from marketplace.output_json import parse_document
    from marketplace.protocol import Role
    from marketplace.sealed.directory import metadata_cid, published_recipient

    save_account(provider, cli.home / "wallets" / "gpu.json", PASSWORD, kdf="pbkdf2", iterations=2)
    created = cli("wallet", "key", "gpu", *cli.password, deployments=False)
    old = created.split("created: ")[1].split()[0]
    register_provider(chain, store_node, provider, PartyKey.from_identity(
        PartyKey.load(cli.home / "wallets" / "gpu.x25519-key", PASSWORD).identity))
    assert published_recipient(chain.market, store_node.store, provider.address, Role.PROVIDER) == old

    rotated = cli("wallet", "key", "gpu", "--rotate", *cli.password)
    new = rotated.split("rotated to: ")[1].split()[0]
    assert "re-published for the provider registration" in rotated
    assert published_recipient(chain.market, store_node.store, provider.address, Role.PROVIDER) == new != old
    document = parse_document(store_node.store.read_bytes(Cid.parse(
        metadata_cid(chain.market, provider.address, Role.PROVIDER))))
    assert document["name"] == "test provider"  # the rest of the document is kept
    cli("wallet", "key", "alice", *cli.password)
    assert "not staked" in cli("wallet", "key", "alice", "--rotate", *cli.password)
