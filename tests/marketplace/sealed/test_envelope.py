"""The spec's confidential envelope: the job key wrapped to each party, and refused when it is not that job's."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from pydantic import ValidationError

from marketplace.chain.devnet import dev_account
from marketplace.errors import MissingKeyError, SealedError, TamperedError, WrongKeyError
from marketplace.jobspec import JobSpec, TaskType, parse_spec
from marketplace.sealed import PartyKey
from marketplace.sealed.envelope import (
    MAX_WRAPPED_KEYS,
    Envelope,
    job_key_from_release,
    job_key_from_spec,
    open_bundle,
    open_sealed,
    release_for,
    seal,
    seal_bundle,
    seal_job,
)

REQUESTER = dev_account(1).address
PROVIDER = dev_account(2).address
CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


@pytest.fixture(scope="module")
def requester_key() -> PartyKey:
    return PartyKey.generate()


@pytest.fixture(scope="module")
def provider_key() -> PartyKey:
    return PartyKey.generate()


def test_each_party_recovers_the_job_key_from_the_spec(requester_key: PartyKey, provider_key: PartyKey) -> None:
    job_key, envelope = seal_job({REQUESTER: requester_key.recipient, PROVIDER: provider_key.recipient})
    assert envelope.recipient == job_key.recipient and set(envelope.keys) == {REQUESTER, PROVIDER}
    assert job_key_from_spec(envelope, REQUESTER, requester_key).identity == job_key.identity
    assert job_key_from_spec(envelope, PROVIDER.lower(), [PartyKey.generate(), provider_key]).identity == \
        job_key.identity
    # The envelope round-trips through the spec's bytes, and a public spec carries none.
    spec = JobSpec(task=TaskType.EMBED, model=CID, inputs=CID, num_tasks=1, confidential=envelope)
    assert parse_spec(spec.to_bytes()).confidential == envelope
    assert b"confidential" not in JobSpec(task=TaskType.EMBED, model=CID, inputs=CID, num_tasks=1).to_bytes()


def test_a_wrong_party_key_or_a_missing_entry_is_refused(requester_key: PartyKey, provider_key: PartyKey) -> None:
    _, envelope = seal_job({REQUESTER: requester_key.recipient})
    with pytest.raises(WrongKeyError):
        job_key_from_spec(envelope, REQUESTER, provider_key)
    with pytest.raises(MissingKeyError, match="wraps no key to"):
        job_key_from_spec(envelope, PROVIDER, provider_key)


def test_a_release_opens_for_its_receiver_and_another_jobs_key_is_refused(requester_key: PartyKey,
                                                                          provider_key: PartyKey) -> None:
    job_key, envelope = seal_job({REQUESTER: requester_key.recipient})
    released = release_for(job_key, provider_key.recipient)
    assert len(released) < 1024
    assert job_key_from_release(envelope, released, provider_key).identity == job_key.identity
    with pytest.raises(WrongKeyError):
        job_key_from_release(envelope, released, requester_key)
    other_key, _ = seal_job({REQUESTER: requester_key.recipient})
    with pytest.raises(SealedError, match="another job's key"):
        job_key_from_release(envelope, release_for(other_key, provider_key.recipient), provider_key)
    with pytest.raises(SealedError):
        job_key_from_release(envelope, b"age-encryption.org/v1\n-> garbage", provider_key)


def test_bad_base64_a_non_age_blob_and_too_many_keys_are_refused(requester_key: PartyKey) -> None:
    _, envelope = seal_job({REQUESTER: requester_key.recipient})
    fields = envelope.model_dump()
    with pytest.raises(ValidationError, match="not base64"):
        Envelope.model_validate(fields | {"keys": {REQUESTER: "!!not base64!!"}})
    with pytest.raises(ValidationError, match="not an age file"):
        Envelope.model_validate(fields | {"keys": {REQUESTER: base64.b64encode(b"plain bytes").decode()}})
    with pytest.raises(ValidationError, match="not an address"):
        Envelope.model_validate(fields | {"keys": {"0x12": fields["keys"][REQUESTER]}})
    many = {dev_account(0).address[:-4] + f"{index:04x}": requester_key.recipient
            for index in range(MAX_WRAPPED_KEYS + 1)}
    with pytest.raises(SealedError, match=f"at most {MAX_WRAPPED_KEYS} parties"):
        seal_job(many)


def test_sealed_data_and_bundles_open_with_the_job_key_only(requester_key: PartyKey, tmp_path: Path) -> None:
    job_key, envelope = seal_job({REQUESTER: requester_key.recipient}, model_encrypted=True)
    blob = seal(b"canary-input-bytes", envelope, "the inputs manifest")
    assert b"canary" not in blob and open_sealed(blob, job_key, "inputs") == b"canary-input-bytes"
    with pytest.raises(TamperedError):
        open_sealed(blob[:-1] + bytes([blob[-1] ^ 1]), job_key, "inputs")
    (tmp_path / "model" / "sub").mkdir(parents=True)
    (tmp_path / "model" / "config.json").write_bytes(b'{"canary": 1}')
    (tmp_path / "model" / "sub" / "weights.safetensors").write_bytes(b"canary weights")
    sealed = seal_bundle(tmp_path / "model", tmp_path / "sealed", envelope)
    assert all(b"canary" not in path.read_bytes() for path in sealed.rglob("*") if path.is_file())
    opened = open_bundle(sealed, tmp_path / "opened", job_key)
    assert (opened / "sub" / "weights.safetensors").read_bytes() == b"canary weights"
