"""Verifier settings: the ``[verifier]`` table of a TOML file, then environment, then flags.

As for providers, keys never go in the config: it names a V3 keystore and a password source.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from provider.config import DaemonSettings, load_settings


class VerifierConfig(DaemonSettings):
    state_dir: Path = Path("~/.webi/verifier")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"

    def journal_path(self, chain_id: int, address: str) -> Path:
        return self.state / f"audits-{chain_id}-{address.lower()}.sqlite"


def load_verifier_config(path: Path | None, overrides: dict[str, Any] | None = None) -> VerifierConfig:
    return load_settings(VerifierConfig, "verifier", path, overrides)
