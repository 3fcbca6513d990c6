"""What every command gets from the top-level options."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from marketplace.home import WebiHome


@dataclass(frozen=True)
class CliContext:
    rpc_url: str | None  # --rpc-url as given (None: WEBI_RPC_URL, else the running devnet)
    console: Console
    webi_home: WebiHome = field(default_factory=WebiHome.from_env)

    @property
    def home(self) -> Path:
        """``$WEBI_HOME`` or ``~/.webi``: every file the commands write (see ``marketplace.home``)."""
        return self.webi_home.root

    def chain_url(self) -> str:
        """--rpc-url, else ``$WEBI_RPC_URL``, else the running devnet's URL; a clear error when none."""
        return self.webi_home.rpc_url(self.rpc_url)
