"""Model bundles are untrusted input: what may be in one, and fetching it into a local cache.

A bundle is a UnixFS directory in Hugging Face layout. Before a byte of weights is fetched, its
listing is checked: weights only as ``*.safetensors`` (a pickle checkpoint, ``*.bin``/``*.pt``/
``*.ckpt``/``*.pkl``, is refused outright, since unpickling runs arbitrary code), only config,
tokenizer and text files beside them, ``model_type`` on the allowlist, no ``auto_map`` (remote
code), and weights no larger than the limit. The cache is keyed by CID and filled through a
temporary directory renamed into place, so a half-fetched bundle is never used.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from marketplace.errors import ModelError
from marketplace.storage import ContentStore
from marketplace.storage.cid import Cid

log = logging.getLogger(__name__)

ALLOWED_MODEL_TYPES = frozenset({
    "bert", "roberta", "distilbert", "xlm-roberta", "mpnet", "electra", "deberta-v2", "albert",  # encoders
    "gpt2", "gpt_neox", "llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "phi3", "opt",  # decoders
    "t5", "mt5", "bart", "pegasus",  # encoder-decoders
})
PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib", ".npy", ".npz"})
ALLOWED_SUFFIXES = frozenset({".safetensors", ".json", ".txt", ".model", ".md"})
_MAX_CONFIG_BYTES = 1024 * 1024


@dataclass(frozen=True)
class BundleFacts:
    """What the listing and config say, before any weights are fetched."""

    cid: Cid
    model_type: str
    weight_bytes: int
    config: dict[str, object]


def inspect_bundle(store: ContentStore, cid: Cid, max_weight_bytes: int) -> BundleFacts:
    """Checks a bundle from its listing and config.json alone; ``ModelError`` says what is refused."""
    files = _list_files(store, cid, "")
    for path in files:
        suffix = Path(path).suffix.lower()
        if suffix in PICKLE_SUFFIXES:
            raise ModelError(f"model {cid}: {path} is a pickle checkpoint; loading it could run arbitrary code. "
                             "Convert the weights to safetensors")
        if suffix not in ALLOWED_SUFFIXES:
            raise ModelError(f"model {cid}: {path} is not a safetensors, JSON, tokenizer or text file")
    weights = sum(size for path, size in files.items() if path.endswith(".safetensors"))
    if weights == 0:
        raise ModelError(f"model {cid} has no *.safetensors weights")
    if weights > max_weight_bytes:
        raise ModelError(f"model {cid} has {weights} bytes of weights, over this runtime's limit of {max_weight_bytes}")
    if "config.json" not in files:
        raise ModelError(f"model {cid} has no config.json")
    try:
        config = json.loads(store.read_bytes(cid, "config.json", limit=_MAX_CONFIG_BYTES))
    except json.JSONDecodeError as error:
        raise ModelError(f"model {cid}: config.json is not JSON ({error})") from None
    if not isinstance(config, dict):
        raise ModelError(f"model {cid}: config.json is not a JSON object")
    model_type = str(config.get("model_type", ""))
    if model_type not in ALLOWED_MODEL_TYPES:
        raise ModelError(f"model {cid}: architecture {model_type!r} is not on the allowlist "
                         f"({', '.join(sorted(ALLOWED_MODEL_TYPES))})")
    for name in ("config.json", "tokenizer_config.json"):
        if name in files and "auto_map" in json.loads(store.read_bytes(cid, name, limit=_MAX_CONFIG_BYTES)):
            raise ModelError(f"model {cid}: {name} asks for remote code (auto_map); WEBI never runs it")
    return BundleFacts(cid, model_type, weights, config)


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


def _list_files(store: ContentStore, cid: Cid, prefix: str) -> dict[str, int]:
    files: dict[str, int] = {}
    for entry in store.ls(cid, prefix):
        path = f"{prefix}/{entry.name}" if prefix else entry.name
        info = store.stat(entry.cid)
        if info.kind == "directory":
            files.update(_list_files(store, cid, path))
        else:
            files[path] = info.size
    return files
