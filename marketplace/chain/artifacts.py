"""Load the committed contract artifacts (ABI + bytecode) written by scripts/compile_contracts.py."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from marketplace.errors import ConfigError


def repo_root() -> Path:
    """The checkout this package runs from (the package is installed editable)."""
    return Path(__file__).resolve().parents[2]


def contracts_dir() -> Path:
    """``$WEBI_CONTRACTS_DIR`` or the checkout's ``contracts/``."""
    return Path(os.environ.get("WEBI_CONTRACTS_DIR", repo_root() / "contracts"))


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str


def load_artifact(name: str, base: Path | None = None) -> Artifact:
    """The artifact of contract ``name``; test-only contracts are found under artifacts/test/."""
    folder = (base or contracts_dir()) / "artifacts"
    for path in (folder / f"{name}.json", folder / "test" / f"{name}.json"):
        if path.is_file():
            data = json.loads(path.read_text())
            return Artifact(name=name, abi=data["abi"], bytecode=data["bytecode"])
    raise ConfigError(f"no artifact for contract {name!r} under {folder}: run python scripts/compile_contracts.py")
