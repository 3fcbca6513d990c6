"""Accounts from V3 keystore files (scrypt), with the password from a prompt, the environment or a file.

Private keys never appear in configuration: a config names a keystore file and where its
password comes from. Decryption failures say which file and why, never echo the password.
"""

from __future__ import annotations

import getpass
import json
import os
from pathlib import Path
from typing import Literal

from eth_account import Account
from eth_account.signers.local import LocalAccount

from marketplace.errors import ConfigError


def read_password(*, env: str | None = None, file: Path | None = None, prompt: str | None = None) -> str:
    """The first password source given: an environment variable, a file (first line), or a prompt."""
    if env:
        value = os.environ.get(env)
        if value is None:
            raise ConfigError(f"the keystore password variable {env} is not set")
        return value
    if file is not None:
        try:
            text = file.read_text()
        except OSError as error:
            raise ConfigError(f"cannot read the keystore password file {file}: {error.strerror}") from None
        return text.splitlines()[0] if text else ""
    if prompt is not None:
        return getpass.getpass(prompt)
    raise ConfigError("no keystore password source: set a password env variable, a password file, or run "
                      "interactively")


def load_account(path: Path, password: str) -> LocalAccount:
    try:
        keystore = json.loads(path.read_text())
    except OSError as error:
        raise ConfigError(f"cannot read keystore {path}: {error.strerror}") from None
    except json.JSONDecodeError:
        raise ConfigError(f"{path} is not a V3 keystore (not JSON)") from None
    try:
        key = Account.decrypt(keystore, password)
    except ValueError as error:
        raise ConfigError(f"cannot decrypt keystore {path}: {error}") from None
    account: LocalAccount = Account.from_key(key)
    return account


def save_account(account: LocalAccount, path: Path, password: str, *,
                 kdf: Literal["scrypt", "pbkdf2"] = "scrypt", iterations: int | None = None) -> Path:
    """Writes ``account`` as a V3 keystore readable by its owner only; refuses to overwrite a file.

    ``iterations`` below the default weakens the key derivation: tests use it to run fast.
    """
    if path.exists():
        raise ConfigError(f"{path} exists; refusing to overwrite a keystore")
    path.parent.mkdir(parents=True, exist_ok=True)
    keystore = Account.encrypt(account.key, password, kdf=kdf, iterations=iterations)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as out:
        json.dump(keystore, out)
    return path
