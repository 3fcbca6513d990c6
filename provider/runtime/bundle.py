"""Model bundles are untrusted input: the provider's side of the checks, and fetching a bundle into a cache.

What may be in a bundle, which task it fits, the weights it must hold and the positions a job may use are
checked by ``marketplace.model_bundle``, the one module the requester (before ``webi job post`` uploads or
spends anything), the provider and the verifier share; this module runs those checks on a bundle in a
store (``inspect_bundle``, ``check_bundle_at``) before a byte of weights is fetched. The cache is keyed by
CID and filled through a temporary directory renamed into place, so a half-fetched bundle is never used.

A confidential job's encrypted bundle (``model_encrypted``) is cached under its ciphertext CID too, but
holds the plaintext folder, opened with the job key (``open_encrypted_bundle``): the listing in the store
says nothing usable (config.json is ciphertext), so every check runs on that folder once it is opened.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from marketplace.errors import ModelError
from marketplace.jobspec import Parameters, TaskType
from marketplace.model_bundle import (
    ALLOWED_MODEL_TYPES,
    ALLOWED_SUFFIXES,
    PICKLE_SUFFIXES,
    POSITION_TABLES,
    BundleFacts,
    check_bundle,
    check_positions,
    folder_listing,
    position_limit,
    store_listing,
)
from marketplace.model_bundle import inspect_bundle as inspect_listing
from marketplace.sealed.envelope import open_bundle
from marketplace.sealed.keys import JobKey
from marketplace.storage import ContentStore
from marketplace.storage.cid import Cid

log = logging.getLogger(__name__)


def inspect_bundle(store: ContentStore, cid: Cid, max_weight_bytes: int | None) -> BundleFacts:
    """Checks the bundle at ``cid`` from its listing and config.json alone; ``ModelError`` says what is refused.
    ``max_weight_bytes``: this runtime's limit, or ``None`` to check only what no runtime would run."""
    return inspect_listing(store_listing(store, cid), max_weight_bytes)


def check_bundle_at(store: ContentStore, cid: Cid, task: TaskType, parameters: Parameters,
                    max_weight_bytes: int | None) -> BundleFacts:
    """Every check of ``marketplace.model_bundle.check_bundle`` on the bundle at ``cid``: the listing and
    config, the architecture for ``task``, the weights its model class needs, the positions of the job."""
    return check_bundle(store_listing(store, cid), task, parameters, max_weight_bytes)


def opened_bundle_path(cid: Cid, cache: Path) -> Path:
    """Where the opened (plaintext) folder of the encrypted bundle ``cid`` lives in the cache."""
    return cache / str(cid.to_v1())


def check_opened_bundle(cid: Cid, cache: Path, task: TaskType, parameters: Parameters,
                        max_weight_bytes: int | None) -> BundleFacts:
    """``check_bundle`` on the opened folder of an encrypted bundle; ``ModelError`` before it is opened."""
    folder = opened_bundle_path(cid, cache)
    if not folder.is_dir():
        raise ModelError(f"model {cid} is encrypted and has not been opened with the job key yet")
    return check_bundle(folder_listing(folder), task, parameters, max_weight_bytes)


def open_encrypted_bundle(store: ContentStore, cid: Cid, cache: Path, job_key: JobKey,
                          max_weight_bytes: int | None) -> Path:
    """The plaintext folder of the encrypted bundle at ``cid`` in the cache, fetched and opened if not there.

    The ciphertext sizes in the listing (the plaintext's, plus 16 bytes a chunk) bound the weights before
    any is fetched; every block is verified, and a file that does not open is a ``SealedError``.
    """
    target = opened_bundle_path(cid, cache)
    if target.is_dir():
        return target
    listing = store_listing(store, cid)
    weights = sum(size for name, size in listing.files.items() if name.endswith(".safetensors"))
    if max_weight_bytes is not None and weights > max_weight_bytes * 1.01:
        raise ModelError(f"model {cid}: about {weights >> 20} MiB of encrypted weights, over this runtime's "
                         f"limit of {max_weight_bytes >> 20} MiB")
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=cache, prefix=".open-"))
    try:
        store.get(cid, staging / "sealed")
        open_bundle(staging / "sealed", staging / "bundle", job_key)
        (staging / "bundle").rename(target)
    except OSError:
        if not target.is_dir():  # another worker won the rename: its copy is as good
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("fetched and opened encrypted model %s", cid)
    return target


def fetch_bundle(store: ContentStore, cid: Cid, cache: Path) -> Path:
    """The bundle's directory in the cache, fetched (every block verified) if it is not there yet."""
    target = cache / str(cid.to_v1())
    if target.is_dir():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=cache, prefix=".fetch-"))
    try:
        store.get(cid, staging / "bundle")
        (staging / "bundle").rename(target)
    except OSError:
        if not target.is_dir():  # another worker won the rename: its copy is as good
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("fetched model %s into %s", cid, target)
    return target


__all__ = [
    "ALLOWED_MODEL_TYPES",
    "ALLOWED_SUFFIXES",
    "PICKLE_SUFFIXES",
    "POSITION_TABLES",
    "BundleFacts",
    "check_bundle_at",
    "check_opened_bundle",
    "check_positions",
    "fetch_bundle",
    "inspect_bundle",
    "open_encrypted_bundle",
    "opened_bundle_path",
    "position_limit",
]
