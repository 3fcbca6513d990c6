"""The drawn verifier on confidential jobs, on a real chain and a real HTTP store, with a tiny real model.

The test plays the requester (seals the inputs to a fresh job key) and the provider (computes the
outputs, seals their manifest, releases the key to the verifier, or not, or garbage); a real
``VerifierDaemon`` audits. A key released to it: honest outputs pass, wrong ones fail, and neither
the evidence nor the store nor a log line holds a plaintext canary. No key: a reveal demand after
the grace, answered with the key and the sealed sample on-chain, opened and proven here (a tampered
output fails, as does a sealed reveal with no key to open it), then the verdict. A key that does not
open the job: fail, with the reason. No encryption key of its own: inconclusive.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from marketplace.chain.deployment import WEI
from marketplace.chain.devnet import Devnet
from marketplace.jobspec import JobSpec, inputs_manifest
from marketplace.keystore import save_account
from marketplace.protocol import Confidentiality, JobState, Role, Verdict
from marketplace.results import MerkleTree, output_manifest, parse_output_manifest
from marketplace.sealed import JobKey, PartyKey
from marketplace.sealed.envelope import (
    Envelope,
    open_sealed,
    release_for,
    seal,
    seal_bundle,
    seal_job,
    seal_revealed,
)
from marketplace.storage.cid import Cid
from provider.runtime import Runtime
from tests.conftest import Chain
from tests.support.epochs import wait_drawn
from tests.support.jobs import PASSWORD, TEXTS, Market, StoreNode
from tests.support.waiting import wait_for
from tests.verifier.test_verifier_daemon import running, state_of
from verifier.confidential import create_party_key, load_party_keys
from verifier.config import VerifierConfig
from verifier.daemon import VerifierDaemon
from verifier.factory import create_verifier
from verifier.journal import AuditStage

CANARY = "canary-5e1f-confidential"
SECRET_TEXTS = [f"{text} {CANARY}" for text in TEXTS]
GRACE = 600


@pytest.fixture
def make_sealed_verifier(tmp_path: Path, devnet: Devnet, store_node: StoreNode, deployments: Path):
    def make(account: LocalAccount, with_key: bool = True, **settings: Any) -> tuple[VerifierDaemon, PartyKey | None]:
        """A verifier daemon as ``webi verifier run`` builds it, with its party key (created beside its
        keystore, as ``webi verifier register`` does) unless ``with_key`` is false."""
        folder = tmp_path / f"verifier-{account.address[:8]}"
        folder.mkdir(exist_ok=True)
        keystore = folder / "keystore.json"
        if not keystore.exists():
            save_account(account, keystore, PASSWORD, kdf="pbkdf2", iterations=1_000)
            (folder / "password").write_text(PASSWORD)
        key = create_party_key(keystore, PASSWORD) if with_key else None
        fields: dict[str, Any] = {"store": store_node.url, "dtype": "bfloat16", "poll_interval_s": 0.1, **settings}
        config = VerifierConfig(rpc_url=devnet.anvil.rpc_url, keystore=keystore, password_file=folder / "password",
                                state_dir=folder / "state", deployments_dir=deployments, **fields)
        return create_verifier(config, account, party_keys=load_party_keys(keystore, PASSWORD)), key

    return make


def sealed_job(chain: Chain, market: Market, requester: LocalAccount, provider: LocalAccount, tmp_path: Path,
               *, honest: bool = True, encrypt_model: bool = False,
               verifiers: dict[str, str] | None = None) -> tuple[int, JobKey, Envelope]:
    """An Open confidential embed job over ``SECRET_TEXTS``, claimed and submitted: inputs and output
    manifest sealed to the job key (the model too with ``encrypt_model``), the root over the plaintext
    outputs; wrong outputs (each task answered with another's embedding) unless ``honest``. ``verifiers``
    (address -> recipient) are wrapped the key in the spec, as ``webi job post`` does at posting."""
    if chain.market.provider_stake(provider.address).stake == 0:
        chain.register(provider, Role.PROVIDER, 10_000 * WEI)
    job_key, envelope = seal_job({requester.address: PartyKey.generate().recipient, **(verifiers or {})},
                                 model_encrypted=encrypt_model)
    bundle = market.bundles["embed"]
    if encrypt_model:
        bundle = seal_bundle(bundle, tmp_path / f"sealed-model-{len(list(tmp_path.iterdir()))}", envelope)
    model = market.store.add_path(bundle, recursive=True).cid
    inputs = market.store.add_bytes(seal(inputs_manifest(SECRET_TEXTS), envelope, "inputs")).cid
    spec = JobSpec(task="embed", model=str(model), inputs=str(inputs), num_tasks=len(SECRET_TEXTS),
                   parameters={"max_new_tokens": 6}, confidential=envelope)
    spec_cid = str(market.store.add_bytes(spec.to_bytes()).cid)
    job_id = market.post(requester, spec_cid=spec_cid, sample_tasks=len(SECRET_TEXTS), price=5 * WEI,
                         confidentiality=Confidentiality.OPEN, key_window=120)
    clear_model = market.store.add_path(market.bundles["embed"], recursive=True).cid  # the provider's opened copy
    outputs = Runtime(market.store, tmp_path / "provider-cache").run(
        spec.model_copy(update={"model": str(clear_model), "confidential": None}), SECRET_TEXTS)
    if not honest:
        outputs = outputs[1:] + outputs[:1]
    output_cid = market.store.add_bytes(seal(output_manifest(outputs), envelope, "outputs")).cid
    chain.market.claim_job(provider, job_id)
    chain.market.submit_result(provider, job_id, str(output_cid), MerkleTree(outputs).root)
    return job_id, job_key, envelope


def evidence_of(market: Market, daemon: VerifierDaemon, job_id: int) -> dict[str, Any]:
    record = daemon.journal.get(job_id)
    assert record is not None
    raw = market.read(record.evidence_cid)
    assert CANARY.encode() not in raw
    return dict(json.loads(raw))


def no_canary_in(store_folder: Path) -> None:
    """No block of the store holds the canary: everything of the job there is ciphertext."""
    leaked = [path for path in store_folder.rglob("*") if path.is_file() and CANARY.encode() in path.read_bytes()]
    assert leaked == []


@pytest.mark.parametrize("honest", [True, False], ids=["honest", "wrong"])
def test_a_released_key_opens_the_job_and_honest_outputs_pass_wrong_ones_fail(
        chain: Chain, market: Market, make_sealed_verifier, store_node: StoreNode, requester, provider, verifier,
        tmp_path: Path, caplog: pytest.LogCaptureFixture, honest: bool) -> None:
    caplog.set_level(logging.DEBUG)
    chain.register(verifier, Role.VERIFIER, 1_000 * WEI)
    auditing, key = make_sealed_verifier(verifier)
    assert key is not None
    job_id, job_key, _ = sealed_job(chain, market, requester, provider, tmp_path, honest=honest)
    chain.market.release_key(provider, job_id, verifier.address, release_for(job_key, key.recipient))
    with running(auditing):
        wait_drawn(chain, job_id)
        wait_for(lambda: state_of(chain, job_id) == JobState.AUDITED, timeout=180, what="the verdict")
        wait_for(lambda: auditing.journal.get(job_id).stage == AuditStage.VERDICT, what="the journal")
    assert chain.market.audit_of(job_id).verdict == (Verdict.PASS if honest else Verdict.FAIL)
    evidence = evidence_of(market, auditing, job_id)
    assert evidence["confidential"] is True and evidence["verdict"] == ("pass" if honest else "fail")
    assert [check["index"] for check in evidence["checks"]] == list(range(len(SECRET_TEXTS)))
    assert all(isinstance(check["metric"], float) for check in evidence["checks"])  # distances, not values
    no_canary_in(store_node.store.root)
    assert CANARY not in caplog.text


def sealed_reveal(chain: Chain, market: Market, job_id: int, job_key: JobKey, envelope: Envelope,
                  *, tamper: bool = False) -> list[bytes]:
    """What the provider puts on-chain for the pending demand: each sampled output sealed with its proof.
    ``tamper``: the first answered with another task's output (under its own, valid proof)."""
    submitted = chain.market.contract.events.ResultSubmitted().get_logs(
        from_block=0, argument_filters={"jobId": job_id})[-1]["args"]
    outputs = parse_output_manifest(open_sealed(market.read(submitted["outputCid"]), job_key, "outputs"),
                                    len(SECRET_TEXTS))
    tree = MerkleTree(outputs)
    indices = chain.market.sampled_tasks(job_id)
    chosen = [outputs[(index + 1) % len(outputs)] if tamper and n == 0 else outputs[index]
              for n, index in enumerate(indices)]
    return [seal_revealed(output, tree.proof(index), envelope) for output, index in zip(chosen, indices, strict=True)]


@pytest.mark.parametrize("case", ["honest", "tampered", "no key"])
def test_no_key_is_demanded_and_the_sealed_reveal_is_opened_and_proven(
        chain: Chain, market: Market, make_sealed_verifier, requester, provider, verifier, tmp_path: Path,
        case: str) -> None:
    """The answer to a demand is the sealed sample on-chain (and the key); the verifier proves each output."""
    chain.register(verifier, Role.VERIFIER, 1_000 * WEI)
    auditing, key = make_sealed_verifier(verifier, unavailable_grace_s=GRACE)
    assert key is not None
    job_id, job_key, envelope = sealed_job(chain, market, requester, provider, tmp_path)
    with running(auditing):
        wait_drawn(chain, job_id)
        def tried() -> bool:
            record = auditing.journal.get(job_id)
            return record.unavailable_since > 0 and "no key released" in record.reason

        wait_for(tried, what="the first try without a key")
        assert chain.market.audit_of(job_id).reveal_by == 0  # nothing demanded before the grace
        chain.increase_time(GRACE + 1)
        wait_for(lambda: chain.market.audit_of(job_id).reveal_pending, what="the reveal demand")
        if case != "no key":
            chain.market.release_key(provider, job_id, verifier.address, release_for(job_key, key.recipient))
        assert chain.market.audit_of(job_id).reveal_pending, "a key alone does not answer the demand"
        sealed = sealed_reveal(chain, market, job_id, job_key, envelope, tamper=case == "tampered")
        chain.market.reveal_outputs(provider, job_id, sealed, [[] for _ in sealed])
        wait_for(lambda: state_of(chain, job_id) == JobState.AUDITED, timeout=180, what="the verdict")
        wait_for(lambda: auditing.journal.get(job_id).stage == AuditStage.VERDICT, what="the journal")
    assert chain.market.audit_of(job_id).verdict == (Verdict.PASS if case == "honest" else Verdict.FAIL)
    reasons = [check["reason"] for check in evidence_of(market, auditing, job_id)["checks"]]
    if case == "tampered":
        assert "revealed output is not under the committed root" in reasons
    if case == "no key":
        assert all("no key released to the verifier, whose reveal demand was answered" in r for r in reasons)


def test_a_released_key_that_does_not_open_the_job_fails_it_with_the_reason(
        chain: Chain, market: Market, make_sealed_verifier, requester, provider, verifier, tmp_path: Path) -> None:
    chain.register(verifier, Role.VERIFIER, 1_000 * WEI)
    auditing, key = make_sealed_verifier(verifier)
    assert key is not None
    job_id, _, _ = sealed_job(chain, market, requester, provider, tmp_path)
    other_job_key = JobKey.generate()  # a real key, wrapped to us: but another job's
    chain.market.release_key(provider, job_id, verifier.address, release_for(other_job_key, key.recipient))
    with running(auditing):
        wait_drawn(chain, job_id)
        wait_for(lambda: state_of(chain, job_id) == JobState.AUDITED, timeout=120, what="the verdict")
        wait_for(lambda: auditing.journal.get(job_id).stage == AuditStage.VERDICT, what="the journal")
    assert chain.market.audit_of(job_id).verdict == Verdict.FAIL
    evidence = evidence_of(market, auditing, job_id)
    assert all("the provider released a key that does not open the job" in check["reason"]
               for check in evidence["checks"])


@pytest.mark.parametrize("spec_key", ["good", "bad"])
def test_the_key_the_spec_wraps_to_the_verifier_comes_first_and_a_bad_release_cannot_spoil_it(
        chain: Chain, market: Market, make_sealed_verifier, requester, provider, verifier, tmp_path: Path,
        spec_key: str) -> None:
    """The attack: the provider wraps garbage to the verifier (which would fail the job), then good keys to the
    panel, which overturns the fail and slashes the honest verifier. With the requester's key in the spec
    the release is never needed: a good spec key judges the job; a bad one is the requester's doing (excused)."""
    chain.register(verifier, Role.VERIFIER, 1_000 * WEI)
    auditing, key = make_sealed_verifier(verifier)
    assert key is not None
    recipient = key.recipient if spec_key == "good" else PartyKey.generate().recipient
    job_id, _, _ = sealed_job(chain, market, requester, provider, tmp_path, verifiers={verifier.address: recipient})
    chain.market.release_key(provider, job_id, verifier.address, release_for(JobKey.generate(), key.recipient))
    with running(auditing):
        wait_drawn(chain, job_id)
        wait_for(lambda: state_of(chain, job_id) == JobState.AUDITED, timeout=180, what="the verdict")
        wait_for(lambda: auditing.journal.get(job_id).stage == AuditStage.VERDICT, what="the journal")
    assert chain.market.audit_of(job_id).verdict == Verdict.PASS
    reasons = [check["reason"] for check in evidence_of(market, auditing, job_id)["checks"]]
    if spec_key == "good":
        assert not any("does not open" in reason for reason in reasons), "judged with the spec's key"
    else:
        assert all("the key the job's spec wraps to us does not open the job" in r and "provider not at fault" in r
                   for r in reasons)


def test_a_verifier_without_an_encryption_key_is_inconclusive_not_failing(
        chain: Chain, market: Market, make_sealed_verifier, requester, provider, verifier, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    chain.register(verifier, Role.VERIFIER, 1_000 * WEI)
    auditing, _ = make_sealed_verifier(verifier, with_key=False)
    job_id, _, _ = sealed_job(chain, market, requester, provider, tmp_path)
    with running(auditing):
        wait_drawn(chain, job_id)
        wait_for(lambda: state_of(chain, job_id) == JobState.AUDITED, timeout=120, what="the verdict")
    assert chain.market.audit_of(job_id).verdict == Verdict.INCONCLUSIVE
    assert "no encryption key: confidential jobs' audits will be demanded/inconclusive" in caplog.text


def test_an_encrypted_model_is_opened_once_and_judged_in_clear(
        chain: Chain, market: Market, make_sealed_verifier, requester, provider, verifier, tmp_path: Path) -> None:
    chain.register(verifier, Role.VERIFIER, 1_000 * WEI)
    auditing, key = make_sealed_verifier(verifier)
    assert key is not None
    job_id, job_key, _ = sealed_job(chain, market, requester, provider, tmp_path, encrypt_model=True)
    sealed_model = JobSpec.model_validate_json(market.read(chain.market.spec_cid(job_id))).model
    # The store holds the model as age files: the names in clear, not a byte of the contents.
    assert market.store.read_bytes(Cid.parse(sealed_model), "config.json").startswith(b"age-encryption.org/v1")
    chain.market.release_key(provider, job_id, verifier.address, release_for(job_key, key.recipient))
    with running(auditing):
        wait_drawn(chain, job_id)
        wait_for(lambda: state_of(chain, job_id) == JobState.AUDITED, timeout=180, what="the verdict")
    assert chain.market.audit_of(job_id).verdict == Verdict.PASS
    markers = list((auditing.references.a.cache / "opened").glob("*.clear"))
    assert [marker.name for marker in markers] == [f"{Cid.parse(sealed_model).to_v1()}.clear"]
