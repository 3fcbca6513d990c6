"""The requester's side of confidential jobs through ``marketplace.Client``, on a real devnet and store: what a
confidential post seals before the store sees it, a Directed post refused before anything is spent, the key
released to an Open job's claimant, and sealed results opened (with a rotated-out key too) and checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from marketplace.chain.deployment import WEI
from marketplace.client import Client
from marketplace.confidential_post import Sealing
from marketplace.errors import TamperedError
from marketplace.jobspec import inputs_manifest, parse_spec
from marketplace.key_release import KeyRelease
from marketplace.keystore import save_account
from marketplace.preflight import PreflightError
from marketplace.protocol import Confidentiality, JobState, Role, secret_hash
from marketplace.requester_keys import RequesterKeys
from marketplace.results import MerkleTree, output_manifest
from marketplace.sealed import PartyKey, rotate, sign_encryption_key
from marketplace.sealed.envelope import job_key_from_release, job_key_from_spec, open_sealed, seal
from marketplace.spot_check import plaintext_job
from marketplace.storage.cid import Cid
from tests.conftest import Chain, reverts
from tests.support.jobs import PASSWORD, StoreNode

CANARY = "confidential-canary-7f3a"  # an input that must never reach the store in clear
TEXTS = [f"{CANARY} first input", f"{CANARY} second input", "third input"]
OPEN = Sealing(Confidentiality.OPEN, key_window_s=120)


def requester_keys(tmp_path: Path, account: LocalAccount) -> RequesterKeys:
    """The party keys of a wallet whose keystore uses the tests' cheap key derivation."""
    keystore = save_account(account, tmp_path / "wallets" / "alice.json", PASSWORD, kdf="pbkdf2", iterations=2)
    return RequesterKeys(keystore, PASSWORD)


def register_provider(chain: Chain, store_node: StoreNode, account: LocalAccount, key: PartyKey | None) -> None:
    """Registers ``account`` as a provider, its metadata publishing ``key`` signed (no metadata when None)."""
    metadata = ""
    if key is not None:
        document = {"name": "test provider", **sign_encryption_key(account, key.recipient, chain.client.chain_id)}
        metadata = str(store_node.store.add_bytes(json.dumps(document).encode()).cid)
    chain.approve(account)
    chain.market.register(account, Role.PROVIDER, 1_000 * WEI, metadata)


def block_bytes(root: Path) -> list[bytes]:
    return [path.read_bytes() for path in root.rglob("*") if path.is_file()]


@pytest.fixture
def client(chain: Chain, store_node: StoreNode, requester: LocalAccount, tmp_path: Path) -> Client:
    return Client(chain.protocol, store_node.store, requester, keys=requester_keys(tmp_path, requester))


def post(client: Client, bundles: dict[str, Path], sealing: Sealing, **extra: object) -> int:
    return client.post_job("embed", bundles["embed"], TEXTS, price_wei=2 * WEI, sample_tasks=1,
                           check_providers=False, sealing=sealing, **extra)  # type: ignore[arg-type]


def test_an_open_post_stores_only_ciphertext_and_its_spec_wraps_the_key_to_the_requester(
        chain: Chain, client: Client, store_node: StoreNode, bundles: dict[str, Path], tmp_path: Path) -> None:
    job_id = post(client, bundles, Sealing(Confidentiality.OPEN, encrypt_model=True, key_window_s=120))
    terms = chain.market.terms_of(job_id)
    assert (terms.confidentiality, terms.key_window) == (Confidentiality.OPEN, 120)
    spec = client.spec(job_id)
    assert spec.confidential is not None and spec.confidential.model_encrypted
    assert parse_spec(spec.to_bytes()).confidential == spec.confidential  # the envelope round-trips
    assert list(spec.confidential.keys) == [client.account.address]  # type: ignore[union-attr]
    job_key = job_key_from_spec(spec.confidential, chain.market.posted(job_id).terms.requester,
                                client.keys.all())  # type: ignore[union-attr]
    sealed_inputs = store_node.store.read_bytes(Cid.parse(spec.inputs))
    assert open_sealed(sealed_inputs, job_key, "inputs") == inputs_manifest(TEXTS)
    config = (bundles["embed"] / "config.json").read_bytes()
    blocks = block_bytes(tmp_path / "node-store")
    assert not any(CANARY.encode() in block for block in blocks)
    assert not any(config in block for block in blocks)  # the model went up sealed too
    # The wallet's key was made on first need, beside its keystore.
    assert client.keys is not None and client.keys.path.is_file()


def test_a_directed_post_wraps_the_key_to_each_provider_and_refuses_one_without_a_key(
        chain: Chain, client: Client, store_node: StoreNode, bundles: dict[str, Path], provider: LocalAccount,
        stranger: LocalAccount, tmp_path: Path) -> None:
    provider_key = PartyKey.generate()
    register_provider(chain, store_node, provider, provider_key)
    register_provider(chain, store_node, stranger, None)
    requester = client.account.address  # type: ignore[union-attr]
    next_id, balance = chain.market.next_job_id(), chain.token.balance_of(requester)
    blocks = sorted(block_bytes(tmp_path / "node-store"))
    with pytest.raises(PreflightError) as refused:
        post(client, bundles, Sealing(Confidentiality.DIRECTED), allowlist=[provider.address, stranger.address])
    assert len(refused.value.problems) == 1 and stranger.address in refused.value.problems[0]
    assert "no usable encryption key" in refused.value.problems[0]
    assert chain.market.next_job_id() == next_id and chain.token.balance_of(requester) == balance
    assert sorted(block_bytes(tmp_path / "node-store")) == blocks  # nothing uploaded
    with pytest.raises(PreflightError, match="pass --allowlist"):
        post(client, bundles, Sealing(Confidentiality.DIRECTED))
    with pytest.raises(PreflightError, match="a model already uploaded cannot be encrypted"):
        client.post_job("embed", "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", TEXTS,
                        price_wei=2 * WEI, check_providers=False,
                        sealing=Sealing(Confidentiality.OPEN, encrypt_model=True))

    job_id = post(client, bundles, Sealing(Confidentiality.DIRECTED), allowlist=[provider.address])
    assert chain.market.terms_of(job_id).confidentiality == Confidentiality.DIRECTED
    envelope = client.spec(job_id).confidential
    assert envelope is not None and set(envelope.keys) == {requester, provider.address}
    assert job_key_from_spec(envelope, provider.address, provider_key).recipient == envelope.recipient


def register_verifier(chain: Chain, store_node: StoreNode, account: LocalAccount, key: PartyKey | None,
                      *, signer: LocalAccount | None = None) -> None:
    """Registers ``account`` as a verifier in the draw, publishing ``key`` (signed by ``signer``, by default itself)."""
    metadata = ""
    if key is not None:
        signed = sign_encryption_key(signer or account, key.recipient, chain.client.chain_id)
        metadata = str(store_node.store.add_bytes(json.dumps({"kind": "webi-verifier", **signed}).encode()).cid)
    chain.approve(account)
    chain.market.register(account, Role.VERIFIER, 1_000 * WEI, metadata)
    chain.market.commit_secret(account, secret_hash(chain.secret(account, 0)))
    chain.sync(account.address)


def test_a_post_wraps_the_key_to_the_verifiers_in_the_draw_that_published_a_signed_key(
        chain: Chain, client: Client, bundles: dict[str, Path], store_node: StoreNode, verifier: LocalAccount,
        provider: LocalAccount, stranger: LocalAccount) -> None:
    """A drawn verifier (or panel member) then opens the job with the requester's key, not the provider's:
    a provider cannot hand it a bad key and win the appeal. Verifiers whose key is missing or signed by
    someone else are left out: they could not open it anyway."""
    verifier_key = PartyKey.generate()
    register_verifier(chain, store_node, verifier, verifier_key)
    register_verifier(chain, store_node, provider, None)  # registered without a key
    register_verifier(chain, store_node, stranger, PartyKey.generate(), signer=provider)  # a forged signature
    job_id = post(client, bundles, OPEN)
    envelope = client.spec(job_id).confidential
    assert envelope is not None
    assert set(envelope.keys) == {client.account.address, verifier.address}  # type: ignore[union-attr]
    assert job_key_from_spec(envelope, verifier.address, verifier_key).recipient == envelope.recipient


def test_a_claimant_that_left_after_the_key_gets_no_second_look(
        chain: Chain, client: Client, store_node: StoreNode, bundles: dict[str, Path], provider: LocalAccount,
        stranger: LocalAccount) -> None:
    """The attack: claim, read the inputs, give the claim back unslashed within the key window, claim again,
    read again (a delay for the requester each round). The contract refuses the second claim (``ClaimGivenBack``);
    the requester's client would also give each address one look. Another claimant gets its key."""
    register_provider(chain, store_node, provider, PartyKey.generate())
    register_provider(chain, store_node, stranger, PartyKey.generate())
    job_id = post(client, bundles, OPEN)
    released: list[KeyRelease] = []

    def claimed_and_served(account: LocalAccount) -> None:
        chain.market.claim_job(account, job_id)
        client.wait(job_id, until=frozenset({JobState.CLAIMED}), timeout=30, interval=0.05,
                    on_release=released.append)

    claimed_and_served(provider)
    assert [release.released for release in released] == [True]
    chain.market.release_claim(provider, job_id)  # within the window: free
    with reverts("ClaimGivenBack", job_id, provider.address):
        chain.market.claim_job(provider, job_id)
    claimed_and_served(stranger)  # another claimant gets its key
    assert released[-1].released and released[-1].provider == stranger.address
    keyed = chain.market.contract.events.KeyReleased().get_logs(from_block=0, argument_filters={"jobId": job_id})
    assert [event["args"]["to"] for event in keyed] == [provider.address, stranger.address]


def test_wait_releases_the_key_to_the_claimant_and_sealed_results_open_after_a_rotation(
        chain: Chain, client: Client, store_node: StoreNode, bundles: dict[str, Path], provider: LocalAccount,
        tmp_path: Path) -> None:
    provider_key = PartyKey.generate()
    register_provider(chain, store_node, provider, provider_key)
    job_id = post(client, bundles, OPEN)
    chain.market.claim_job(provider, job_id)
    released = []
    client.wait(job_id, until=frozenset({JobState.CLAIMED}), timeout=30, interval=0.05, on_release=released.append)
    assert len(released) == 1 and released[0].released and released[0].provider == provider.address
    events = chain.market.contract.events.KeyReleased().get_logs(from_block=0, argument_filters={"jobId": job_id})
    assert [(e["args"]["from"], e["args"]["to"]) for e in events] == [(client.account.address,  # type: ignore
                                                                       provider.address)]
    envelope = client.spec(job_id).confidential
    assert envelope is not None
    job_key = job_key_from_release(envelope, bytes(events[0]["args"]["wrappedKey"]), provider_key)
    assert job_key.recipient == envelope.recipient  # the claimant's own key opens what was released to it
    # A second wait releases nothing more: the claimant has its key.
    client.wait(job_id, until=frozenset({JobState.CLAIMED}), timeout=30, interval=0.05, on_release=released.append)
    assert len(released) == 1

    outputs = [json.dumps({"embedding": [0.5, -0.25, float(index)]}).encode() for index in range(len(TEXTS))]
    sealed = seal(output_manifest(outputs), envelope, "the output manifest")
    chain.market.submit_result(provider, job_id, str(store_node.store.add_bytes(sealed).cid), MerkleTree(outputs).root)
    keys = client.keys
    assert keys is not None
    rotate(keys.path, PASSWORD, kdf="pbkdf2", iterations=2)  # the job was sealed to the key rotated out
    reader = Client(chain.protocol, store_node.store, keys=RequesterKeys(keys.keystore, PASSWORD))
    assert [item["embedding"][2] for item in reader.results(job_id)] == [0.0, 1.0, 2.0]
    assert b"embedding" not in sealed


def test_a_tampered_sealed_output_manifest_is_refused(
        chain: Chain, client: Client, store_node: StoreNode, bundles: dict[str, Path], provider: LocalAccount) -> None:
    register_provider(chain, store_node, provider, None)
    job_id = post(client, bundles, OPEN)
    envelope = client.spec(job_id).confidential
    assert envelope is not None
    outputs = [json.dumps({"embedding": [1.0, 0.0]}).encode()] * len(TEXTS)
    sealed = bytearray(seal(output_manifest(outputs), envelope, "the output manifest"))
    sealed[-5] ^= 0x40
    chain.market.claim_job(provider, job_id)
    chain.market.submit_result(provider, job_id, str(store_node.store.add_bytes(bytes(sealed)).cid),
                               MerkleTree(outputs).root)
    with pytest.raises(TamperedError, match="output manifest"):
        client.results(job_id)


def test_a_spot_check_reexecutes_a_confidential_job_with_its_model_and_inputs_opened(
        chain: Chain, client: Client, store_node: StoreNode, bundles: dict[str, Path], provider: LocalAccount,
        tmp_path: Path) -> None:
    from provider.runtime import Runtime

    register_provider(chain, store_node, provider, None)
    job_id = post(client, bundles, Sealing(Confidentiality.OPEN, encrypt_model=True, key_window_s=120))
    spec = client.spec(job_id)
    job_key = client.job_key(job_id)
    assert spec.confidential is not None and job_key is not None
    with plaintext_job(store_node.store, spec, job_key) as (clear, clear_cid):  # the provider's view, opened
        runtime = Runtime(clear, tmp_path / "provider-cache")
        opened = runtime.read_spec(clear_cid)
        honest = runtime.run(opened, runtime.read_inputs(opened))
    sealed = seal(output_manifest(honest), spec.confidential, "the output manifest")
    chain.market.claim_job(provider, job_id)
    chain.market.submit_result(provider, job_id, str(store_node.store.add_bytes(sealed).cid), MerkleTree(honest).root)
    report = client.check(job_id, 2, seed=7)
    assert report.passed and len(report.results) == 2
    assert not any(CANARY.encode() in block for block in block_bytes(tmp_path / "node-store"))
