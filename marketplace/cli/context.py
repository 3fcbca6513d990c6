"""What every command gets from the top-level options."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console


@dataclass(frozen=True)
class CliContext:
    rpc_url: str | None
    console: Console

    @property
    def home(self) -> Path:
        """``$WEBI_HOME`` or ``~/.webi``: devnet state and logs."""
        return Path(os.environ.get("WEBI_HOME", Path.home() / ".webi"))
