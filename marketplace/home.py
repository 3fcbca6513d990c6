"""``$WEBI_HOME``: where every WEBI file on this machine lives, and how commands find the running devnet.

One folder (default ``~/.webi``) holds everything a person's commands write::

    devnet.json        the background devnet (`webi devnet up`): pid, RPC URL, log
    anvil.log          its log
    deployments/       <chainId>.json: where the contracts are on each chain this machine deployed to
    wallets/           V3 keystores
    node/              the marketplace node (`webi serve`): index.db, store/ (the content store)
    provider/          the provider daemon's journal and model cache
    verifier/          the verifier daemon's journals
    check-cache/       models fetched for `webi job results --check`

A command that needs the chain takes ``--rpc-url`` / ``WEBI_RPC_URL`` when given, else the running
devnet's URL from ``devnet.json``, else it stops with a message that says how to start one. It never
guesses a port: ``webi devnet up`` picks a free one.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from marketplace.errors import ChainError

# The one content store every command uses unless told otherwise: the marketplace node's Kubo RPC
# subset (`webi serve`, port 8000), which providers and verifiers on this machine can reach too.
DEFAULT_STORE = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class DevnetState:
    """What `webi devnet up` leaves behind so that every other command finds the devnet."""

    pid: int
    rpc_url: str
    log: str

    @staticmethod
    def path(home: Path) -> Path:
        return home / "devnet.json"

    def save(self, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.path(home).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, home: Path) -> DevnetState | None:
        path = cls.path(home)
        try:
            return cls(**json.loads(path.read_text())) if path.is_file() else None
        except (ValueError, TypeError):  # a file cut short by a crash: no devnet to find
            return None

    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except OSError:
            return False
        return True


@dataclass(frozen=True)
class WebiHome:
    """The folder, and the paths in it; built from the environment at the edge, passed in below."""

    root: Path

    @classmethod
    def from_env(cls) -> WebiHome:
        return cls(Path(os.environ.get("WEBI_HOME") or Path.home() / ".webi").expanduser())

    @property
    def deployments(self) -> Path:
        return self.root / "deployments"

    @property
    def wallets(self) -> Path:
        return self.root / "wallets"

    @property
    def node(self) -> Path:
        return self.root / "node"

    @property
    def store(self) -> Path:
        """The node's content store folder (`webi serve`, and `webi store serve` by default)."""
        return self.node / "store"

    @property
    def provider_state(self) -> Path:
        return self.root / "provider"

    @property
    def verifier_state(self) -> Path:
        return self.root / "verifier"

    def devnet(self) -> DevnetState | None:
        """The background devnet, when one is running."""
        state = DevnetState.load(self.root)
        return state if state is not None and state.alive() else None

    def rpc_url(self, explicit: str | None = None) -> str:
        """``explicit`` (a flag), else ``$WEBI_RPC_URL``, else the running devnet's URL."""
        chosen = explicit or os.environ.get("WEBI_RPC_URL")
        if chosen:
            return chosen
        state = self.devnet()
        if state is None:
            raise ChainError(f"no chain to talk to: no devnet is running under {self.root} (start one with "
                             "`webi devnet up`), and neither --rpc-url nor WEBI_RPC_URL is set")
        return state.rpc_url
