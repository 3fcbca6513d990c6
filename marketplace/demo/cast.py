"""Who plays in the demo: anvil's dev accounts, their names, keystores and daemon configs.

Every account has a stable key (``requester``, ``provider-generate``, ``watchtower``, ...) that the
ledger, the report and the ``--json`` summary use, and a label for people (``verifier (LAZY)``).
The dev accounts are anvil's published keys: devnet only.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from eth_account.signers.local import LocalAccount

from marketplace.chain.devnet import dev_account
from marketplace.demo.options import DemoOptions
from marketplace.keystore import save_account

REQUESTER = "requester"
EMBEDDER = "provider-embed"
# The job group's second provider (but with ``--lazy-verifier``): its embed price floor sits above the public jobs'
# price a task, so it claims only shards, and the group is built by two providers.
EMBEDDER_2 = "provider-embed-2"
GENERATOR = "provider-generate"
VERIFIER = "verifier"  # drawn for every job: honest, or lazy with ``--lazy-verifier``
WATCHTOWER = "watchtower"  # ``--lazy-verifier`` only: re-checks verdicts, challenges wrong ones
PANEL = "panel-verifier"  # ``--lazy-verifier`` only: an honest verifier the panel is drawn from
TREASURY = "treasury"
MARKET = "market"


@dataclass(frozen=True)
class Cast:
    """The accounts in this run, by key, and their labels."""

    accounts: dict[str, LocalAccount]
    labels: dict[str, str]

    @classmethod
    def of(cls, options: DemoOptions) -> Cast:
        keys = [REQUESTER, EMBEDDER, GENERATOR, VERIFIER] + ([WATCHTOWER, PANEL] if options.lazy_verifier else
                                                             [EMBEDDER_2])
        accounts = {key: dev_account(index) for index, key in enumerate(keys, start=1)}
        labels = {key: key for key in [*keys, TREASURY, MARKET]}
        labels[MARKET] = "market contract"
        if options.cheating:
            labels[GENERATOR] = "provider-generate (CHEATER)"
        if options.lazy_verifier:
            labels[VERIFIER] = "verifier (LAZY)"
        return cls(accounts, labels)

    def address(self, key: str) -> str:
        return str(self.accounts[key].address)


@dataclass(frozen=True)
class Configs:
    """Writes each daemon's keystore (scrypt, one shared random password) and TOML config in the run folder."""

    folder: Path
    rpc_url: str
    store: str
    deployments: Path

    @property
    def password(self) -> Path:
        return self.folder / "secrets" / "password"

    def keystore(self, account: LocalAccount, role: str) -> Path:
        """``account``'s keystore for ``role`` (written on first need); its party key (confidential jobs) goes
        beside it, locked with the same password."""
        secret_dir = self.folder / "secrets"
        secret_dir.mkdir(mode=0o700, exist_ok=True)
        if not self.password.exists():
            self.password.write_text(secrets.token_hex(16) + "\n")
            self.password.chmod(0o600)
        keystore = secret_dir / f"{role}-{account.address[:8].lower()}.json"
        if not keystore.exists():
            save_account(account, keystore, self.password.read_text().strip(), kdf="scrypt")
        return keystore

    def write(self, account: LocalAccount, role: str, **extra: object) -> Path:
        """The ``[role]`` config of ``account`` (``role``: provider or verifier), with ``extra`` settings."""
        keystore = self.keystore(account, role)
        name = keystore.stem
        settings = {
            "rpc_url": self.rpc_url,
            "keystore": str(keystore),
            "password_file": str(self.password),
            "store": self.store,
            "state_dir": str(self.folder / name),
            "deployments_dir": str(self.deployments),
            "poll_interval_s": 0.5,
            **extra,
        }
        path = self.folder / f"{name}.toml"
        path.write_text(f"[{role}]\n" + "".join(f"{key} = {_toml(value)}\n" for key, value in settings.items()))
        return path


def _toml(value: object) -> str:
    """A TOML value: JSON's strings, numbers, booleans and arrays are TOML's too; a dict is an inline table."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(key))} = {_toml(item)}" for key, item in value.items()) + "}"
    return json.dumps(value)
