"""The confidential envelope: the spec's ``confidential`` section, and how each party gets the job key.

A confidential job's spec stays in clear (providers read it before they claim) but names only
ciphertext and public keys. Its ``confidential`` section (``Envelope``, version 1) says:

- ``recipient``: the job key's age recipient. The input manifest, the model files (when
  ``model_encrypted``) and the output manifest are age files encrypted to it, and to nothing else:
  with a single recipient everyone who decrypts a file (requester, provider, verifiers, panel) sees
  the same plaintext. age is not key-committing across recipients, so a provider that encrypted
  outputs to two recipients could show the verifier good outputs and the requester others.
- A reveal demand on a confidential job is answered on-chain with each sampled output sealed to the
  job key together with its Merkle proof (``seal_revealed``), since the contract cannot check them.
- ``keys``: the job key wrapped (``keys.wrap``, base64 of a small age file) to each named party's
  own X25519 recipient. The requester's own entry is always there, so the requester recovers the key
  from the spec with its wallet's key alone (nothing to lose locally). A Directed job adds one entry
  per allowlisted provider, which checks it before claiming. An Open job's claimant, the verifiers
  and the panel get theirs on-chain, in ``KeyReleased`` events (``JobMarket.releaseKey``).

Every function here raises a ``SealedError`` subclass naming what failed, and never echoes a key.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Literal

from eth_utils.address import is_address, to_checksum_address
from pydantic import BaseModel, ConfigDict, Field, field_validator

from marketplace.errors import MissingKeyError, SealedError
from marketplace.sealed import age, stream
from marketplace.sealed.keys import AgeKey, JobKey, unwrap, wrap

SCHEME: Literal["age-v1-x25519"] = "age-v1-x25519"
# A wrapped key is about 330 bytes (450 in base64): 64 of them keep a spec under its 64 KiB bound.
MAX_WRAPPED_KEYS = 64


class Envelope(BaseModel):
    """The spec's ``confidential`` section (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    scheme: Literal["age-v1-x25519"] = SCHEME
    recipient: str = Field(description="the job key's age recipient: inputs, model files and outputs are sealed to it")
    model_encrypted: bool = False
    keys: Annotated[dict[str, str], Field(max_length=MAX_WRAPPED_KEYS)] = Field(
        default_factory=dict, description="checksummed address -> the job key wrapped to it (base64 age file)")

    @field_validator("recipient")
    @classmethod
    def _is_recipient(cls, value: str) -> str:
        return age.check_recipient(value)

    @field_validator("keys")
    @classmethod
    def _are_wrapped_keys(cls, value: dict[str, str]) -> dict[str, str]:
        checked: dict[str, str] = {}
        for address, blob in value.items():
            if not is_address(address):
                raise ValueError(f"{address!r} is not an address")
            try:
                raw = base64.b64decode(blob, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError(f"the key wrapped to {address} is not base64") from None
            if not raw.startswith(age.MAGIC):
                raise ValueError(f"the key wrapped to {address} is not an age file")
            checked[to_checksum_address(address)] = blob
        return checked

    def wrapped_for(self, address: str) -> bytes:
        """The key wrapped to ``address`` in this spec; ``MissingKeyError`` when there is none."""
        blob = self.keys.get(to_checksum_address(address))
        if blob is None:
            raise MissingKeyError(f"the job's spec wraps no key to {to_checksum_address(address)}")
        return base64.b64decode(blob)


def seal_job(parties: Mapping[str, str], *, model_encrypted: bool = False) -> tuple[JobKey, Envelope]:
    """A fresh job key and the envelope that wraps it to each of ``parties`` (address -> age recipient).

    ``parties`` holds the requester (always) and, for a Directed job, each allowlisted provider.
    """
    if len(parties) > MAX_WRAPPED_KEYS:
        raise SealedError(f"a spec wraps its key to at most {MAX_WRAPPED_KEYS} parties, not {len(parties)}")
    job_key = JobKey.generate()
    keys: dict[str, str] = {
        str(to_checksum_address(address)): base64.b64encode(wrap(job_key, recipient)).decode()
        for address, recipient in parties.items()
    }
    return job_key, Envelope(recipient=job_key.recipient, model_encrypted=model_encrypted, keys=keys)


def checked_job_key(envelope: Envelope, job_key: JobKey, source: str) -> JobKey:
    """``job_key`` if it is the one the envelope names; a key for another job is a ``SealedError``."""
    if job_key.recipient != envelope.recipient:
        raise SealedError(f"{source} opens, but holds another job's key (not {envelope.recipient})")
    return job_key


def job_key_from_spec(envelope: Envelope, address: str, keys: AgeKey | Sequence[AgeKey]) -> JobKey:
    """The job key the spec wraps to ``address``, opened with that party's key(s) and checked."""
    source = f"the key the spec wraps to {to_checksum_address(address)}"
    return checked_job_key(envelope, unwrap(envelope.wrapped_for(address), keys, source), source)


def job_key_from_release(envelope: Envelope, wrapped_key: bytes, keys: AgeKey | Sequence[AgeKey],
                         source: str = "the released key") -> JobKey:
    """The job key in a ``KeyReleased`` event's bytes, opened with the receiver's key(s) and checked.

    Raises ``WrongKeyError`` (wrapped to someone else), ``NotEncryptedError``/``TamperedError``
    (garbage), or ``SealedError`` (another job's key): for an Open job's claimant, each is a reason
    to ``releaseClaim`` within the key window.
    """
    return checked_job_key(envelope, unwrap(wrapped_key, keys, source), source)


def release_for(job_key: JobKey, recipient: str) -> bytes:
    """The bytes of a ``releaseKey`` call: ``job_key`` wrapped to ``recipient`` (under 1 KiB)."""
    return wrap(job_key, recipient)


def seal(data: bytes, envelope: Envelope, source: str) -> bytes:
    """``data`` as an age file to the job's recipient (inputs and outputs manifests)."""
    return stream.encrypt_bytes(data, [envelope.recipient], source)


def open_sealed(blob: bytes, job_key: JobKey, source: str) -> bytes:
    """The plaintext of one of the job's age files; ``TamperedError`` etc. naming ``source``."""
    return stream.decrypt_bytes(blob, [job_key.identity], source)


def seal_revealed(output: bytes, proof: Sequence[bytes], envelope: Envelope) -> bytes:
    """One sampled output of a confidential job, as ``revealOutputs`` takes it: an age file to the job
    key whose plaintext is the proof's length (one byte), its 32-byte hashes, then the output. The
    proof rides inside because the contract cannot check it; whoever holds the key does."""
    if len(proof) > 255 or any(len(node) != 32 for node in proof):
        raise SealedError(f"a Merkle proof is at most 255 hashes of 32 bytes, not {[len(n) for n in proof]}")
    return stream.encrypt_bytes(bytes([len(proof)]) + b"".join(proof) + output, [envelope.recipient],
                                "a revealed output")


def open_revealed(blob: bytes, job_key: JobKey, source: str) -> tuple[bytes, list[bytes]]:
    """The output and proof inside a sealed revealed output (``seal_revealed``); ``SealedError`` (a
    ``TamperedError`` etc., or a framing that does not add up) naming ``source``."""
    plain = stream.decrypt_bytes(blob, [job_key.identity], source)
    if not plain:
        raise SealedError(f"{source} opens to nothing: no proof length")
    hashes = plain[0]
    if len(plain) < 1 + 32 * hashes:
        raise SealedError(f"{source} is shorter than the {hashes} proof hashes it announces")
    proof = [plain[1 + 32 * i: 33 + 32 * i] for i in range(hashes)]
    return plain[1 + 32 * hashes:], proof


def seal_bundle(src: Path, dst: Path, envelope: Envelope) -> Path:
    """A copy of the model folder ``src`` in ``dst`` with every file age-encrypted, names kept.

    The names stay in clear (``config.json``, ``model.safetensors``...): they say what kind of
    bundle it is, not what is in it. Files stream with bounded memory.
    """
    return _each_file(src, dst, lambda path, target: stream.encrypt_file(path, target, [envelope.recipient]))


def open_bundle(src: Path, dst: Path, job_key: JobKey) -> Path:
    """The plaintext model folder of an encrypted bundle ``src``, written into ``dst``."""
    return _each_file(src, dst, lambda path, target: stream.decrypt_file(path, target, [job_key.identity]))


def _each_file(src: Path, dst: Path, convert: Callable[[Path, Path], Path]) -> Path:
    """``convert`` applied to every file under ``src``, into the same relative path under ``dst``."""
    dst.mkdir(parents=True, exist_ok=True)
    for path in sorted(src.rglob("*")):
        if path.is_file():
            target = dst / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            convert(path, target)
    return dst
