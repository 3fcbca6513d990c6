"""The one module that calls pyrage (the Rust ``rage`` implementation of age v1): typed wrappers.

pyrage ships no type hints and raises its own exceptions, some as plain ``OSError`` from inside
``decrypt_io``. Everything else in ``marketplace.sealed`` goes through here, so the rest is typed
and only ever sees ``SealedError`` and its subclasses, with the file that failed named.

How pyrage's failures map (measured on pyrage 1.4.0, see tests/marketplace/sealed/test_stream.py):

=====================================================  ===================================
pyrage says                                            we raise
=====================================================  ===================================
the bytes do not start with age's magic line           ``NotEncryptedError`` (checked first)
"No matching keys found"                               ``WrongKeyError`` (a changed recipient
                                                       stanza reads the same: age cannot tell)
"Header MAC is invalid", "Header is invalid",          ``TamperedError``
"Incomplete header", "failed to fill whole buffer",
"age file is truncated", "decryption error"
=====================================================  ===================================
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, BinaryIO

import pyrage  # type: ignore[import-untyped]  # no stubs; this module is the typed boundary
from pyrage import x25519

from marketplace.errors import SealedError, TamperedError, WrongKeyError

MAGIC = b"age-encryption.org/v1\n"
ARMOR_BEGIN = b"-----BEGIN AGE ENCRYPTED FILE-----"
IDENTITY_PREFIX = "AGE-SECRET-KEY-1"
RECIPIENT_PREFIX = "age1"

_WRONG_KEY = {"No matching keys found"}
_TAMPERED = {"Header MAC is invalid", "Header is invalid", "Incomplete header", "failed to fill whole buffer",
             "age file is truncated", "decryption error"}


def generate_identity() -> str:
    """A fresh X25519 identity, ``AGE-SECRET-KEY-1...``, from the operating system's random source."""
    return str(x25519.Identity.generate())


def recipient_of(identity: str) -> str:
    """The public ``age1...`` recipient of an identity string; ``SealedError`` if it is not one."""
    return str(_identity(identity).to_public())


def check_recipient(recipient: str) -> str:
    """``recipient`` unchanged if it is an age X25519 recipient, else ``SealedError`` naming it."""
    _recipient(recipient)
    return recipient


def looks_like_age(head: bytes) -> bool:
    """Whether the first bytes of a file are age's, binary or ASCII-armored."""
    return head.startswith(MAGIC) or head.lstrip().startswith(ARMOR_BEGIN)


def encrypt_stream(reader: BinaryIO, writer: BinaryIO, recipients: Sequence[str], source: str) -> None:
    """Encrypts ``reader`` to its end into ``writer``, in age's 64 KiB STREAM chunks (bounded memory)."""
    parsed = [_recipient(recipient) for recipient in recipients]
    if not parsed:
        raise SealedError(f"cannot encrypt {source}: no recipients given")
    try:
        pyrage.encrypt_io(reader, writer, parsed)
    except pyrage.EncryptError as error:
        raise SealedError(f"cannot encrypt {source}: {error}") from None


def decrypt_stream(reader: BinaryIO, writer: BinaryIO, identities: Sequence[str], source: str) -> None:
    """Decrypts ``reader`` into ``writer``; on failure ``writer`` may hold the chunks before the bad one.

    Callers writing to a file use ``stream.decrypt_file``, which throws that partial plaintext away.
    Errors from ``writer`` itself (a full disk) pass through unchanged.
    """
    parsed = [_identity(identity) for identity in identities]
    if not parsed:
        raise WrongKeyError(f"cannot decrypt {source}: no identity given")
    try:
        pyrage.decrypt_io(reader, writer, parsed)
    except pyrage.DecryptError as error:
        raise translate(error, source) from None
    except OSError as error:
        # pyrage reports payload failures as an OSError without errno; the writer's own have one.
        if error.errno is None and str(error) in _TAMPERED:
            raise translate(error, source) from None
        raise


def translate(error: Exception, source: str) -> SealedError:
    """The ``SealedError`` that says what pyrage's ``error`` means for ``source``."""
    message = str(error)
    if message in _WRONG_KEY:
        return WrongKeyError(f"{source} is not encrypted to any key you hold (or its header was altered)")
    if message in _TAMPERED:
        return TamperedError(f"{source}: the ciphertext was altered or truncated: AEAD check failed ({message})")
    return SealedError(f"cannot decrypt {source}: {message}")


def _identity(identity: str) -> Any:  # pyrage.x25519.Identity
    try:
        return x25519.Identity.from_str(identity.strip())
    except (pyrage.IdentityError, ValueError):
        # Never echo the string: it may be a secret key with a typo.
        raise SealedError("not an age X25519 identity (AGE-SECRET-KEY-1...)") from None


def _recipient(recipient: str) -> Any:  # pyrage.x25519.Recipient
    try:
        return x25519.Recipient.from_str(recipient.strip())
    except (pyrage.RecipientError, ValueError):
        raise SealedError(f"{recipient!r} is not an age X25519 recipient (age1...)") from None
