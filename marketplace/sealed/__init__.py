"""Confidential jobs' cryptography: age files (pyrage) for content, X25519 keys, signed public keys.

- ``keys``: ``PartyKey`` (a wallet's own key beside its keystore), ``JobKey`` (a job's content key),
  ``wrap`` / ``unwrap`` (releasing a job key to a party), ``rotate``.
- ``stream``: ``encrypt_file`` / ``decrypt_file`` and their bytes forms, ``encrypted_reader``.
- ``signed``: ``sign_encryption_key`` / ``verify_encryption_key`` for registration metadata.

``age`` is the one module that calls pyrage. See docs/DESIGN.md, "Confidential jobs".
"""

from marketplace.sealed.keys import JobKey, PartyKey, ensure, key_path_for, load_all, rotate, unwrap, wrap
from marketplace.sealed.signed import sign_encryption_key, verify_encryption_key
from marketplace.sealed.stream import decrypt_bytes, decrypt_file, encrypt_bytes, encrypt_file, encrypted_reader

__all__ = [
    "JobKey",
    "PartyKey",
    "decrypt_bytes",
    "decrypt_file",
    "encrypt_bytes",
    "encrypt_file",
    "encrypted_reader",
    "ensure",
    "key_path_for",
    "load_all",
    "rotate",
    "sign_encryption_key",
    "unwrap",
    "verify_encryption_key",
    "wrap",
]
