"""Verifier settings: the ``[verifier]`` table of a TOML file, then environment, then flags.

As for providers, keys never go in the config: it names a V3 keystore and a password source.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from marketplace.home import WebiHome
from provider.config import DaemonSettings, load_settings


class VerifierConfig(DaemonSettings):
    state_dir: Path = Field(default_factory=lambda: WebiHome.from_env().verifier_state)
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    # Audits drawn to us run on this many worker threads, the highest audit fee first: a flood of
    # dust jobs never holds a paid audit back. Re-execution itself takes the device one at a time.
    max_parallel_audits: Annotated[int, Field(ge=1, le=64)] = 2
    # How long (chain seconds) outputs the store persistently answers NOT FOUND for are retried before
    # ``demandReveal`` puts them on-chain. Unset: half the job's audit window (from its terms); our
    # store being down or timing out never leads to a demand.
    unavailable_grace_s: Annotated[float, Field(ge=0)] | None = None

    def journal_path(self, chain_id: int, address: str) -> Path:
        return self.state / f"audits-{chain_id}-{address.lower()}.sqlite"

    # Watchtower mode (``verifier.watchtower``): the share of other verifiers' verdicts re-checked
    # (and challenged when wrong); 0 turns it off. Panel duty (``verifier.panels``) is always on.
    watch_share: Annotated[float, Field(ge=0, le=1)] = 0.0

    def panel_journal_path(self, chain_id: int, address: str) -> Path:
        return self.state / f"panels-{chain_id}-{address.lower()}.sqlite"

    def watch_journal_path(self, chain_id: int, address: str) -> Path:
        return self.state / f"watch-{chain_id}-{address.lower()}.sqlite"


def load_verifier_config(path: Path | None, overrides: dict[str, Any] | None = None) -> VerifierConfig:
    return load_settings(VerifierConfig, "verifier", path, overrides)
