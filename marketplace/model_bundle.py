"""What a model bundle may hold and which tasks it fits: the one check the requester, the provider and the
verifier all run (``check_bundle``), so a job no provider will run is refused before it is posted.

A bundle is a folder in Hugging Face layout: a local one (checked before ``webi job post`` uploads it) or a
UnixFS directory in a store, named by CID. It is untrusted input. From its listing, config.json and the
headers of its safetensors files alone (no weights read):

- weights only as ``*.safetensors`` (a pickle checkpoint, ``*.bin``/``*.pt``/``*.ckpt``/``*.pkl``, is
  refused outright, since unpickling runs arbitrary code), only config, tokenizer and text files beside
  them (no ``*.py``), ``model_type`` on the allowlist, no ``auto_map`` (remote code), weights no larger
  than the runtime's limit;
- the architecture fits the task (``TASK_MODEL_TYPES``; ``classify`` also needs a sequence-classification
  head in ``architectures``);
- the checkpoint holds every weight the task's model class needs (``model_weights``): a head transformers
  would initialise at random (an LM head on an embedding model) computes nonsense that would be paid for;
- the job fits the model's table of absolute positions (``check_positions``): an input longer than the
  table indexes past its end, and the forward pass raises on the provider and the verifier alike.

Messages name the bundle as ``model <cid>`` (or ``model folder <path>``) and say what to change.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from marketplace.errors import JobSpecError, ModelError
from marketplace.jobspec import Parameters, TaskType
from marketplace.storage import ContentStore
from marketplace.storage.cid import Cid

ENCODER_TYPES = frozenset({"bert", "roberta", "distilbert", "xlm-roberta", "mpnet", "electra", "deberta-v2", "albert"})
DECODER_TYPES = frozenset({"gpt2", "gpt_neox", "llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "phi3", "opt"})
SEQ2SEQ_TYPES = frozenset({"t5", "mt5", "bart", "pegasus"})
ALLOWED_MODEL_TYPES = ENCODER_TYPES | DECODER_TYPES | SEQ2SEQ_TYPES
# Which architectures each task runs on: pooled hidden states need an encoder; a sequence-classification
# head sits on an encoder here; greedy decoding needs a causal LM, summarizing an encoder-decoder.
TASK_MODEL_TYPES = {
    TaskType.EMBED: ENCODER_TYPES,
    TaskType.CLASSIFY: ENCODER_TYPES,
    TaskType.GENERATE: DECODER_TYPES,
    TaskType.SUMMARIZE: SEQ2SEQ_TYPES,
}
# The transformers auto class each task loads (``provider.runtime``) and checks the checkpoint against.
TASK_MODEL_CLASSES = {
    TaskType.EMBED: "AutoModel",
    TaskType.CLASSIFY: "AutoModelForSequenceClassification",
    TaskType.GENERATE: "AutoModelForCausalLM",
    TaskType.SUMMARIZE: "AutoModelForSeq2SeqLM",
}
PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib", ".npy", ".npz"})
ALLOWED_SUFFIXES = frozenset({".safetensors", ".json", ".txt", ".model", ".md"})
MAX_CONFIG_BYTES = 1024 * 1024
MAX_SAFETENSORS_HEADER = 16 * 1024 * 1024  # a 70B model's header is about 100 KiB
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
class BundleListing:
    """A bundle's files (path -> bytes) and a reader of a file's first bytes, wherever the bundle lies."""

    name: str  # how messages name the bundle: "model <cid>" or "model folder <path>"
    files: dict[str, int]
    head: Callable[[str, int], bytes]  # (path, n): the file's first n bytes (all of it when shorter)
    cid: Cid | None = None

    def read_json(self, path: str) -> object:
        """A small JSON file of the bundle (config.json, tokenizer_config.json), parsed."""
        size = self.files[path]
        if size > MAX_CONFIG_BYTES:
            raise ModelError(f"{self.name}: {path} is {size} bytes, over the {MAX_CONFIG_BYTES}-byte limit")
        try:
            return json.loads(self.head(path, size))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ModelError(f"{self.name}: {path} is not JSON ({error})") from None


@dataclass(frozen=True)
class BundleFacts:
    """What the listing and config say, before any weights are fetched."""

    cid: Cid | None  # None: a local folder, checked before it is uploaded
    model_type: str
    weight_bytes: int
    config: dict[str, object]
    where: str = ""

    @property
    def name(self) -> str:
        """How messages name the bundle."""
        return self.where or f"model {self.cid}"


def store_listing(store: ContentStore, cid: Cid) -> BundleListing:
    """The listing of the bundle at ``cid``: ``ModelError`` when it is a file, not a folder
    (``ContentNotFoundError`` when the store has no such content)."""
    if store.stat(cid).kind != "directory":
        raise ModelError(f"CID {cid} is a file, not a model folder: give the CID of the folder in Hugging Face "
                         "layout (config.json, *.safetensors, tokenizer files)")

    def head(path: str, size: int) -> bytes:
        return _first_bytes(store.cat(cid, path), size)

    return BundleListing(f"model {cid}", _store_files(store, cid, ""), head, cid)


def folder_listing(folder: Path) -> BundleListing:
    """The listing of a local bundle folder (``ModelError`` for a symlink: the upload would not follow it)."""
    files: dict[str, int] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            raise ModelError(f"model folder {folder}: {path.relative_to(folder)} is a symbolic link")
        if path.is_file():
            files[path.relative_to(folder).as_posix()] = path.stat().st_size

    def head(name: str, size: int) -> bytes:
        with (folder / name).open("rb") as file:
            return file.read(size)

    return BundleListing(f"model folder {folder}", files, head)


def inspect_bundle(listing: BundleListing, max_weight_bytes: int | None) -> BundleFacts:
    """Checks a bundle from its listing and config.json alone; ``ModelError`` says what is refused.
    ``max_weight_bytes``: this runtime's limit, or ``None`` to check only what no runtime would run."""
    name, files = listing.name, listing.files
    for path in files:
        suffix = Path(path).suffix.lower()
        if suffix in PICKLE_SUFFIXES:
            raise ModelError(f"{name}: {path} is a pickle checkpoint; loading it could run arbitrary code. "
                             "Convert the weights to safetensors")
        if suffix not in ALLOWED_SUFFIXES:
            raise ModelError(f"{name}: {path} is not a safetensors, JSON, tokenizer or text file "
                             "(code in a bundle is never run: remove it)")
    weights = sum(size for path, size in files.items() if path.endswith(".safetensors"))
    if weights == 0:
        raise ModelError(f"{name} has no *.safetensors weights")
    if max_weight_bytes is not None and weights > max_weight_bytes:
        raise ModelError(f"{name} has {weights} bytes of weights, over this runtime's limit of {max_weight_bytes}")
    if "config.json" not in files:
        raise ModelError(f"{name} has no config.json")
    config = listing.read_json("config.json")
    if not isinstance(config, dict):
        raise ModelError(f"{name}: config.json is not a JSON object")
    model_type = str(config.get("model_type", ""))
    if model_type not in ALLOWED_MODEL_TYPES:
        raise ModelError(f"{name}: architecture {model_type!r} is not on the allowlist "
                         f"({', '.join(sorted(ALLOWED_MODEL_TYPES))})")
    for path in ("config.json", "tokenizer_config.json"):
        document = config if path == "config.json" else listing.read_json(path) if path in files else {}
        if isinstance(document, dict) and "auto_map" in document:
            raise ModelError(f"{name}: {path} asks for remote code (auto_map); WEBI never runs it")
    return BundleFacts(listing.cid, model_type, weights, config, listing.name)


def check_task_fit(facts: BundleFacts, task: TaskType) -> None:
    """Refuses (``ModelError``) a model whose architecture cannot do ``task``."""
    fits = TASK_MODEL_TYPES[task]
    if facts.model_type not in fits:
        raise ModelError(f"{facts.name} is a {facts.model_type} model, which cannot {task.value}: that task runs "
                         f"on {', '.join(sorted(fits))}")
    if task == TaskType.CLASSIFY:
        architectures = facts.config.get("architectures")
        names = [str(entry) for entry in architectures] if isinstance(architectures, list) else []
        if not any(entry.endswith("ForSequenceClassification") for entry in names):
            raise ModelError(f"{facts.name} has no sequence-classification head (its config.json names "
                             f"{', '.join(names) or 'no architecture'}): classify needs a fine-tuned classifier")


def check_weights(listing: BundleListing, facts: BundleFacts, task: TaskType) -> None:
    """Refuses (``ModelError``) a checkpoint that lacks weights the task's model class needs, from the
    safetensors headers: transformers would initialise them at random and the outputs would be noise."""
    from marketplace.model_weights import missing_weights  # torch and transformers: only when checked

    missing = missing_weights(facts.config, task, tensor_names(listing))
    if missing:
        shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        raise ModelError(f"{facts.name} lacks weights {task.value} needs ({shown}): they would be initialised at "
                         f"random. Use a checkpoint trained for {task.value}")


def check_bundle(listing: BundleListing, task: TaskType, parameters: Parameters,
                 max_weight_bytes: int | None = None) -> BundleFacts:
    """Every check a provider and a verifier run on a job's bundle before loading it, in one place:
    ``inspect_bundle``, ``check_task_fit``, ``check_positions`` and ``check_weights``."""
    facts = inspect_bundle(listing, max_weight_bytes)
    check_task_fit(facts, task)
    check_positions(facts, task, parameters)
    check_weights(listing, facts, task)
    return facts


def tensor_names(listing: BundleListing) -> set[str]:
    """The names of the tensors in every safetensors file of the bundle, from their headers alone."""
    names: set[str] = set()
    for path in sorted(path for path in listing.files if path.endswith(".safetensors")):
        start = listing.head(path, 8)
        length = struct.unpack("<Q", start)[0] if len(start) == 8 else -1
        if not 0 < length <= min(MAX_SAFETENSORS_HEADER, listing.files[path] - 8):
            raise ModelError(f"{listing.name}: {path} is not a safetensors file (header length {length})")
        try:
            header = json.loads(listing.head(path, 8 + length)[8:])
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ModelError(f"{listing.name}: {path} has a safetensors header that is not JSON ({error})") from None
        if not isinstance(header, dict):
            raise ModelError(f"{listing.name}: {path} has a safetensors header that is not a JSON object")
        names.update(str(key) for key in header if key != "__metadata__")
    return names


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
        raise ModelError(f"{facts.name}: config.json's {name} {str(size)[:20]!r} does not size a table of positions")
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
            raise JobSpecError("parameters", f"{what} needs {need} positions, more than the {limit} of "
                                             f"{facts.name} ({facts.model_type}): {remedy}")


def _first_bytes(parts: Iterator[bytes], size: int) -> bytes:
    chunks, have = [], 0
    try:
        for part in parts:
            chunks.append(part)
            have += len(part)
            if have >= size:
                break
    finally:
        close = getattr(parts, "close", None)
        if close is not None:
            close()  # a remote store's response: let go of it now that the bytes are in
    return b"".join(chunks)[:size]


def _store_files(store: ContentStore, cid: Cid, prefix: str) -> dict[str, int]:
    files: dict[str, int] = {}
    for entry in store.ls(cid, prefix):
        path = f"{prefix}/{entry.name}" if prefix else entry.name
        info = store.stat(entry.cid)
        if info.kind == "directory":
            files.update(_store_files(store, cid, path))
        else:
            files[path] = info.size
    return files

