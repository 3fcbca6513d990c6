"""Model bundles are untrusted input: what may be in one, and fetching it into a local cache.

A bundle is a UnixFS directory in Hugging Face layout. Before a byte of weights is fetched, its
listing is checked: weights only as ``*.safetensors`` (a pickle checkpoint, ``*.bin``/``*.pt``/
``*.ckpt``/``*.pkl``, is refused outright, since unpickling runs arbitrary code), only config,
tokenizer and text files beside them, ``model_type`` on the allowlist, no ``auto_map`` (remote
code), and weights no larger than the limit. The cache is keyed by CID and filled through a
temporary directory renamed into place, so a half-fetched bundle is never used.

A job must also fit the model's table of absolute positions (``check_positions``): an input longer
than the table indexes past its end, and the forward pass raises on the provider and the verifier
alike. Only the config is needed to know, so a job that cannot fit is refused when it is checked.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from marketplace.errors import JobSpecError, ModelError
from marketplace.jobspec import Parameters, TaskType
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
# The allowlisted architectures with a table of absolute positions (learned, or sinusoidal for Pegasus):
# the config field that sizes it, and transformers' default. T5 and mT5 use relative positions, DeBERTa-v2
# relative ones unless ``position_biased_input``, and the rotary decoders (llama, mistral, qwen2, qwen3,
# gemma, gemma2, phi3, gpt_neox) compute any position: none has a table to run past. OPT and BART keep
# two rows more than the field says, so the field is what positions may use.
POSITION_TABLES = {
    "bert": ("max_position_embeddings", 512), "roberta": ("max_position_embeddings", 512),
    "distilbert": ("max_position_embeddings", 512), "xlm-roberta": ("max_position_embeddings", 512),
    "mpnet": ("max_position_embeddings", 512), "electra": ("max_position_embeddings", 512),
    "albert": ("max_position_embeddings", 512), "deberta-v2": ("max_position_embeddings", 512),
    "gpt2": ("n_positions", 1024), "opt": ("max_position_embeddings", 2048),
    "bart": ("max_position_embeddings", 1024), "pegasus": ("max_position_embeddings", 1024),
}
# RoBERTa-style models number positions from pad_token_id + 1: the rows below are never positions.
_PADDED_POSITIONS = frozenset({"roberta", "xlm-roberta", "mpnet"})


@dataclass(frozen=True)
class BundleFacts:
    """What the listing and config say, before any weights are fetched."""

    cid: Cid
    model_type: str
    weight_bytes: int
    config: dict[str, object]


def inspect_bundle(store: ContentStore, cid: Cid, max_weight_bytes: int | None) -> BundleFacts:
    """Checks a bundle from its listing and config.json alone; ``ModelError`` says what is refused.
    ``max_weight_bytes``: this runtime's limit, or ``None`` to check only what no runtime would run."""
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
    if max_weight_bytes is not None and weights > max_weight_bytes:
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


def position_limit(facts: BundleFacts) -> int | None:
    """How many positions the model's absolute position table holds, or ``None`` where it has none
    (relative or rotary positions); ``ModelError`` for a config whose size is not a count."""
    if facts.model_type not in POSITION_TABLES:
        return None
    if facts.model_type == "deberta-v2" and facts.config.get("position_biased_input", True) is False:
        return None
    name, default = POSITION_TABLES[facts.model_type]
    size = facts.config.get(name, default)
    pad = facts.config.get("pad_token_id", 1) if facts.model_type in _PADDED_POSITIONS else -1
    if type(size) is not int or type(pad) is not int or not 0 <= pad + 1 < size:
        raise ModelError(f"model {facts.cid}: config.json's {name} {str(size)[:20]!r} does not size a table "
                         "of positions")
    return size - (pad + 1)


def check_positions(facts: BundleFacts, task: TaskType, parameters: Parameters) -> None:
    """Refuses (``JobSpecError``) a job that can need more positions than the model's table holds:
    ``max_input_tokens`` for an encoder; the prompt and every new token together for ``generate``
    (a causal model's sequence grows to ``max_input_tokens + max_new_tokens``); the input and the
    output each for ``summarize`` (its encoder and its decoder each have a table)."""
    limit = position_limit(facts)
    if limit is None:
        return
    given, new = parameters.max_input_tokens, parameters.max_new_tokens
    fits_input = f"ask for max_input_tokens of at most {limit}"
    if task == TaskType.GENERATE:
        needs = [(given + new, f"max_input_tokens {given} + max_new_tokens {new}",
                  f"ask for max_input_tokens of at most {limit - new}" if new < limit else "ask for fewer new tokens")]
    elif task == TaskType.SUMMARIZE:
        needs = [(given, f"max_input_tokens {given}", fits_input),
                 (new, f"max_new_tokens {new}", f"ask for max_new_tokens of at most {limit}")]
    else:
        needs = [(given, f"max_input_tokens {given}", fits_input)]
    for need, what, remedy in needs:
        if need > limit:
            raise JobSpecError("parameters", f"{what} needs {need} positions, more than the {limit} of model "
                                             f"{facts.cid} ({facts.model_type}): {remedy}")


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
