"""Trained test models, built once and cached: training takes seconds to a minute, so each bundle is
kept under ``WEBI_TEST_MODEL_CACHE`` (default ``~/.cache/webi/test-models``), keyed by a hash of its
recipe, and rebuilt only when the recipe changes. A build writes into a temporary sibling and
renames it into place, so a crash never leaves a half-written bundle under the key; a lock file
makes a second pytest worker that wants the same bundle wait for the first's build instead of
training it again."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def cache_root() -> Path:
    return Path(os.environ.get("WEBI_TEST_MODEL_CACHE", Path.home() / ".cache" / "webi" / "test-models"))


def cached(name: str, recipe: dict[str, Any], build: Callable[[Path], None]) -> Path:
    """The bundle ``name`` built by ``build(folder)`` from ``recipe`` (anything JSON: hyperparameters,
    seeds, the data's definition), from the cache when a bundle of the same recipe is there."""
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode()).hexdigest()[:16]
    folder = cache_root() / f"{name}-{key}"
    if (folder / "config.json").exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with (folder.parent / f".{name}-{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or when the process dies
        if (folder / "config.json").exists():  # built by whoever held the lock before us
            return folder
        scratch = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=folder.parent))
        try:
            build(scratch)
            scratch.rename(folder)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return folder
