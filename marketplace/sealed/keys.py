"""X25519 keys: each party's own key, kept beside its keystore, and each confidential job's content key.

A *party key* (requester, provider, verifier) lives at ``<keystore stem>.x25519-key`` beside the
V3 keystore of the same account, as a V3 keystore (Web3 Secret Storage, through eth-keyfile) of
the identity's 32 secret bytes, under the same password and key derivation as the account's
keystore. Why not age's own passphrase mode: rage picks its scrypt cost itself (2^18 to 2^20
seen: 1 to 9 s and 1 GiB of memory per load, on every daemon start and in every test), and may
refuse on a slower machine a file a faster one wrote. A V3 keystore takes the cost its account's
keystore has. The identity string (``AGE-SECRET-KEY-1...``) is the same 32 bytes in age's Bech32
encoding (``bech32``, the reference implementation), so ``webi wallet key`` can hand it to the
standard ``age`` tool. The file is written mode 0600 and never overwritten; ``rotate`` renames the
old one to ``<stem>.x25519-key.<UTC time>.old`` (still encrypted) so outputs sealed to it stay
readable through ``load_all``.

A *job key* is a fresh identity per confidential job: inputs are encrypted to its recipient, and
it is released to a party by ``wrap``, which encrypts the identity file to the party's recipient.
Identity strings are secrets: they are kept out of ``repr`` and never put into error messages.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Self

import bech32
from eth_keyfile.keyfile import create_keyfile_json, decode_keyfile_json

from marketplace.errors import ConfigError, MissingKeyError, SealedError
from marketplace.sealed import age, stream

KEY_SUFFIX = ".x25519-key"
IDENTITY_HRP = "age-secret-key-"
Kdf = Literal["scrypt", "pbkdf2"]
OLD_SUFFIX = ".old"


@dataclass(frozen=True)
class AgeKey:
    """An X25519 identity (``AGE-SECRET-KEY-1...``, secret) and its recipient (``age1...``, public)."""

    identity: str = field(repr=False)
    recipient: str

    @classmethod
    def generate(cls) -> Self:
        """A fresh key from the operating system's random source."""
        return cls.from_identity(age.generate_identity())

    @classmethod
    def from_identity(cls, identity: str) -> Self:
        """The key of an identity string; ``SealedError`` (which does not echo it) if it is not one."""
        identity = identity.strip()
        return cls(identity, age.recipient_of(identity))

    def identity_file(self, created: datetime | None = None) -> bytes:
        """The identity in age-keygen's file format, which ``age -i`` reads."""
        when = (created or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"# created: {when}\n# public key: {self.recipient}\n{self.identity}\n".encode()

    @classmethod
    def parse_identity_file(cls, text: bytes, source: str) -> Self:
        """The one identity in an age identity file (comments and blank lines skipped)."""
        lines = [line.strip() for line in text.decode(errors="replace").splitlines()]
        keys = [line for line in lines if line and not line.startswith("#")]
        if len(keys) != 1 or not keys[0].startswith(age.IDENTITY_PREFIX):
            raise SealedError(f"{source} does not hold exactly one age X25519 identity")
        return cls.from_identity(keys[0])


@dataclass(frozen=True)
class PartyKey(AgeKey):
    """A wallet's own encryption key: outputs and wrapped job keys are encrypted to its recipient."""

    def secret_bytes(self) -> bytes:
        """The identity's 32 secret bytes (what the key file encrypts)."""
        hrp, data = bech32.bech32_decode(self.identity.lower())
        raw = bech32.convertbits(data, 5, 8, False) if data is not None else None
        if hrp != IDENTITY_HRP or raw is None or len(raw) != 32:
            raise SealedError("not an age X25519 identity")
        return bytes(raw)

    @classmethod
    def from_secret_bytes(cls, raw: bytes) -> Self:
        """The key whose identity is ``raw`` (32 bytes) in age's Bech32 encoding."""
        data = bech32.convertbits(raw, 8, 5)
        if len(raw) != 32 or data is None:
            raise SealedError("an X25519 secret is 32 bytes")
        return cls.from_identity(bech32.bech32_encode(IDENTITY_HRP, data).upper())

    def save(self, path: Path, password: str, *, kdf: Kdf = "scrypt", iterations: int | None = None) -> Path:
        """Writes the key encrypted under ``password``, readable by its owner only; refuses to overwrite.

        ``kdf`` and ``iterations`` should be the account keystore's (``kdf_of``), so one password
        costs the same to check twice; below the defaults they weaken the key, as tests do to run fast.
        """
        refusal = ConfigError(f"{path} exists; refusing to overwrite an encryption key (rotate it instead)")
        if path.exists():  # before the costly key derivation; O_EXCL below still settles a race
            raise refusal
        if not password:
            raise ConfigError("refusing an empty password for an encryption key")
        keystore = create_keyfile_json(self.secret_bytes(), password.encode(), kdf=kdf, iterations=iterations)
        keystore.pop("address", None)  # the secp256k1 address of these bytes means nothing
        keystore["webi"] = {"kind": "x25519", "recipient": self.recipient}
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise refusal from None
        with os.fdopen(descriptor, "w") as out:
            json.dump(keystore, out)
        return path

    @classmethod
    def load(cls, path: Path, password: str) -> Self:
        """The key in ``path``; ``MissingKeyError`` if there is none, ``ConfigError`` for a wrong password."""
        try:
            keystore = json.loads(path.read_text())
        except FileNotFoundError:
            raise MissingKeyError(f"no encryption key at {path}") from None
        except OSError as error:
            raise ConfigError(f"cannot read encryption key {path}: {error.strerror}") from None
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ConfigError(f"{path} is not a WEBI encryption key (not JSON)") from None
        if not isinstance(keystore, dict) or keystore.get("webi", {}).get("kind") != "x25519":
            raise ConfigError(f"{path} is not a WEBI encryption key")
        try:
            raw = decode_keyfile_json(keystore, password.encode())
        except (ValueError, KeyError, TypeError):
            raise ConfigError(f"cannot decrypt encryption key {path}: wrong password, or a damaged file "
                              "(it takes the password of the keystore beside it)") from None
        key = cls.from_secret_bytes(bytes(raw))
        if key.recipient != keystore["webi"].get("recipient"):
            raise ConfigError(f"{path} is damaged: its key does not match the public key written beside it")
        return key


@dataclass(frozen=True)
class JobKey(AgeKey):
    """One confidential job's content key: its inputs are encrypted to ``recipient``."""


def key_path_for(keystore: Path) -> Path:
    """Where the encryption key of the account in ``keystore`` lives: ``wallets/alice.json`` -> ``alice.x25519-key``."""
    return keystore.with_name(keystore.stem + KEY_SUFFIX)


def kdf_of(keystore: Path) -> tuple[Kdf, int | None]:
    """The key derivation of an account keystore (``scrypt`` and its n, or ``pbkdf2`` and its c), for its
    encryption key to use the same; the defaults when the file cannot tell."""
    try:
        crypto: dict[str, Any] = json.loads(keystore.read_text())["crypto"]
        if crypto["kdf"] == "pbkdf2":
            return "pbkdf2", int(crypto["kdfparams"]["c"])
        return "scrypt", int(crypto["kdfparams"]["n"])
    except (OSError, ValueError, KeyError, TypeError):
        return "scrypt", None


def ensure(path: Path, password: str, *, kdf: Kdf = "scrypt", iterations: int | None = None) -> PartyKey:
    """The key at ``path``, created first if there is none (what registering an account does)."""
    if path.exists():
        return PartyKey.load(path, password)
    key = PartyKey.generate()
    key.save(path, password, kdf=kdf, iterations=iterations)
    return key


def rotate(path: Path, password: str, *, kdf: Kdf = "scrypt", iterations: int | None = None) -> PartyKey:
    """Replaces the key at ``path`` with a new one and returns it; the old one is kept as ``*.old``.

    The password is checked on the old key first. The new key is written under a temporary name
    before the old one moves, so an interruption never loses the old key.
    """
    PartyKey.load(path, password)
    new = PartyKey.generate()
    pending = path.with_name(path.name + ".new")
    pending.unlink(missing_ok=True)  # left by an interrupted rotation; the old key is still in place
    new.save(pending, password, kdf=kdf, iterations=iterations)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    old = path.with_name(f"{path.name}.{stamp}{OLD_SUFFIX}")
    if old.exists():
        pending.unlink()
        raise ConfigError(f"{old} exists; refusing to overwrite an old encryption key")
    path.rename(old)
    pending.rename(path)
    return new


def old_key_paths(path: Path) -> list[Path]:
    """The rotated-out keys of ``path``, newest first."""
    return sorted(path.parent.glob(f"{path.name}.*{OLD_SUFFIX}"), reverse=True)


def load_all(path: Path, password: str) -> list[PartyKey]:
    """The current key and every rotated-out one, newest first: to open anything ever sealed to this party."""
    return [PartyKey.load(path, password), *(PartyKey.load(old, password) for old in old_key_paths(path))]


def wrap(job_key: JobKey, recipient: str) -> bytes:
    """``job_key`` released to the holder of ``recipient``: its identity file as a small age file."""
    return stream.encrypt_bytes(job_key.identity_file(), [recipient], "a job key")


def unwrap(blob: bytes, keys: AgeKey | Sequence[AgeKey], source: str = "the wrapped job key") -> JobKey:
    """The job key in a wrapped key; ``WrongKeyError`` if it was wrapped for someone else."""
    identities = [keys.identity] if isinstance(keys, AgeKey) else [key.identity for key in keys]
    return JobKey.parse_identity_file(stream.decrypt_bytes(blob, identities, source), source)
