"""Party keys at rest beside the keystore, rotation, and job keys wrapped to a party."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from marketplace.errors import ConfigError, MissingKeyError, WrongKeyError
from marketplace.sealed import (
    JobKey,
    PartyKey,
    decrypt_bytes,
    encrypt_bytes,
    ensure,
    key_path_for,
    load_all,
    rotate,
    unwrap,
    wrap,
)
from marketplace.sealed.age import IDENTITY_PREFIX, MAGIC, RECIPIENT_PREFIX
from marketplace.sealed.keys import kdf_of, old_key_paths

# Test values, not secrets.
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def saved_once(tmp_path_factory: pytest.TempPathFactory) -> tuple[PartyKey, bytes]:
    """One key saved once, with the cheap key derivation the tests' keystores use too."""
    key = PartyKey.generate()
    path = key.save(tmp_path_factory.mktemp("keys") / "alice.x25519-key", PASSWORD, kdf="pbkdf2", iterations=2)
    return key, path.read_bytes()


@pytest.fixture
def saved(saved_once: tuple[PartyKey, bytes], tmp_path: Path) -> tuple[PartyKey, Path]:
    """The saved key copied to ``alice.x25519-key`` in this test's folder, mode 0600 as ``save`` writes it."""
    key, blob = saved_once
    path = tmp_path / "alice.x25519-key"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(blob)
    return key, path


def test_key_path_sits_beside_the_keystore(tmp_path: Path) -> None:
    assert key_path_for(tmp_path / "wallets" / "alice.json") == tmp_path / "wallets" / "alice.x25519-key"
    assert key_path_for(Path("provider-key.json")) == Path("provider-key.x25519-key")


def test_generated_keys_are_distinct_and_keep_the_secret_out_of_repr() -> None:
    first, second = PartyKey.generate(), PartyKey.generate()
    assert first.identity.startswith(IDENTITY_PREFIX)
    assert first.recipient.startswith(RECIPIENT_PREFIX)
    assert first != second
    assert first.identity not in repr(first)
    assert PartyKey.from_identity(first.identity) == first


def test_saved_key_is_encrypted_private_and_loads_back(saved_once: tuple[PartyKey, bytes],
                                                       tmp_path: Path) -> None:
    key, blob = saved_once
    document = json.loads(blob)
    assert document["version"] == 3 and document["crypto"]["kdf"] == "pbkdf2"
    assert "address" not in document
    assert document["webi"] == {"kind": "x25519", "recipient": key.recipient}
    assert key.identity.encode() not in blob
    assert key.secret_bytes().hex().encode() not in blob
    path = tmp_path / "alice.x25519-key"
    path.write_bytes(blob)
    assert PartyKey.load(path, PASSWORD) == key


def test_save_writes_mode_0600_and_refuses_to_overwrite(saved: tuple[PartyKey, Path]) -> None:
    _, path = saved
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="refusing to overwrite"):
        PartyKey.generate().save(path, PASSWORD)
    assert path.read_bytes() == before


def test_wrong_password_names_the_file_not_the_password(saved: tuple[PartyKey, Path]) -> None:
    _, path = saved
    with pytest.raises(ConfigError, match="wrong password") as raised:
        PartyKey.load(path, "not the password")
    assert str(path) in str(raised.value)
    assert "not the password" not in str(raised.value)


def test_a_file_that_is_not_a_key_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "alice.x25519-key"
    path.write_text('{"version": 3}')
    with pytest.raises(ConfigError, match="not a WEBI encryption key"):
        PartyKey.load(path, PASSWORD)


def test_missing_key_is_missing_key_error(tmp_path: Path) -> None:
    with pytest.raises(MissingKeyError, match="no encryption key at"):
        PartyKey.load(tmp_path / "nobody.x25519-key", PASSWORD)


def test_ensure_creates_once_then_loads(tmp_path: Path) -> None:
    path = tmp_path / "wallets" / "alice.x25519-key"
    created = ensure(path, PASSWORD, kdf="pbkdf2", iterations=2)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure(path, PASSWORD) == created


def test_rotation_keeps_the_old_key_and_old_ciphertext_stays_readable(saved: tuple[PartyKey, Path]) -> None:
    old, path = saved
    sealed_to_old = encrypt_bytes(b"outputs of job 3", [old.recipient])

    new = rotate(path, PASSWORD, kdf="pbkdf2", iterations=2)

    assert new != old
    [kept] = old_key_paths(path)
    assert kept.name.startswith("alice.x25519-key.") and kept.name.endswith(".old")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    everything = load_all(path, PASSWORD)
    assert everything == [new, old]
    with pytest.raises(WrongKeyError):  # the current key alone does not open what was sealed to the old one
        decrypt_bytes(sealed_to_old, [new.identity])
    assert decrypt_bytes(sealed_to_old, [key.identity for key in everything]) == b"outputs of job 3"
    assert sorted(item.name for item in path.parent.iterdir()) == sorted([path.name, kept.name])


def test_rotation_checks_the_password_first(saved: tuple[PartyKey, Path]) -> None:
    _, path = saved
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="wrong password"):
        rotate(path, "wrong")
    assert old_key_paths(path) == []
    assert path.read_bytes() == before


def test_wrapped_job_key_round_trip(tmp_path: Path) -> None:
    provider = PartyKey.generate()
    job = JobKey.generate()
    wrapped = wrap(job, provider.recipient)
    assert wrapped.startswith(MAGIC)
    assert job.identity.encode() not in wrapped
    assert len(wrapped) < 1024
    assert unwrap(wrapped, provider) == job
    assert unwrap(wrapped, [PartyKey.generate(), provider]) == job


def test_job_key_wrapped_for_someone_else_is_wrong_key() -> None:
    wrapped = wrap(JobKey.generate(), PartyKey.generate().recipient)
    with pytest.raises(WrongKeyError, match="wrapped job key for job 7"):
        unwrap(wrapped, PartyKey.generate(), "the wrapped job key for job 7")



def test_a_damaged_file_whose_key_does_not_match_its_public_key_is_refused(saved: tuple[PartyKey, Path]) -> None:
    _, path = saved
    document = json.loads(path.read_bytes())
    document["webi"]["recipient"] = PartyKey.generate().recipient
    path.write_text(json.dumps(document))
    with pytest.raises(ConfigError, match="does not match the public key"):
        PartyKey.load(path, PASSWORD)


def test_the_secret_bytes_are_the_identity_in_bech32() -> None:
    key = PartyKey.generate()
    assert len(key.secret_bytes()) == 32
    assert PartyKey.from_secret_bytes(key.secret_bytes()) == key


def test_kdf_of_reads_the_account_keystore(tmp_path: Path) -> None:
    from eth_account import Account

    keystore = tmp_path / "alice.json"
    keystore.write_text(json.dumps(Account.encrypt(Account.create().key, PASSWORD, kdf="pbkdf2", iterations=3)))
    assert kdf_of(keystore) == ("pbkdf2", 3)
    assert kdf_of(tmp_path / "missing.json") == ("scrypt", None)
