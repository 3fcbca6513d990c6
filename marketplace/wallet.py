"""Named wallets: V3 keystores (scrypt) under ``$WEBI_HOME/wallets/<name>.json``.

Private keys never pass through the command line or the environment in clear: ``import`` reads
the key from a file or a prompt, and each keystore is written owner-readable only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from marketplace.errors import ConfigError
from marketplace.keystore import load_account, save_account

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class WalletEntry:
    name: str
    address: str
    path: Path


class Wallets:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, name: str) -> Path:
        if not _NAME.match(name):
            raise ConfigError(f"wallet name {name!r}: use letters, digits, '.', '_' or '-' (up to 64)")
        return self.folder / f"{name}.json"

    def create(self, name: str, password: str) -> WalletEntry:
        return self._save(name, Account.create(), password)

    def import_key(self, name: str, key: str, password: str) -> WalletEntry:
        try:
            account: LocalAccount = Account.from_key(key.strip())
        except (ValueError, TypeError) as error:
            raise ConfigError(f"not a private key: {error}") from None
        return self._save(name, account, password)

    def list(self) -> list[WalletEntry]:
        entries = []
        for path in sorted(self.folder.glob("*.json")):
            try:
                address = to_checksum_address("0x" + json.loads(path.read_text())["address"].removeprefix("0x"))
            except (OSError, ValueError, KeyError):
                continue  # not a keystore: leave it alone
            entries.append(WalletEntry(path.stem, address, path))
        return entries

    def entry(self, name: str) -> WalletEntry:
        found = next((entry for entry in self.list() if entry.name == name), None)
        if found is None:
            raise ConfigError(f"no wallet named {name!r} in {self.folder} (see `webi wallet list`)")
        return found

    def unlock(self, name: str, password: str) -> LocalAccount:
        return load_account(self.entry(name).path, password)

    def _save(self, name: str, account: LocalAccount, password: str) -> WalletEntry:
        if not password:
            raise ConfigError("refusing an empty keystore password")
        path = save_account(account, self.path(name), password, kdf="scrypt")
        return WalletEntry(name, account.address, path)
