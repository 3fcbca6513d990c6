"""``Runtime``: from a job spec to canonical outputs, on every local GPU (or the CPU).

Models are loaded once per (bundle CID, task, device) and kept while they are among the
``max_loaded_models`` used most recently; loading one more evicts the least recently used (every
device's copy, then ``torch.cuda.empty_cache()``), so auditing or re-checking many distinct models
never exhausts the memory that the next load needs. Each device gets its own copy and its own worker
thread, and batches go to whichever device is free. Loading uses transformers with
``trust_remote_code=False`` and ``use_safetensors=True`` from a local directory only.
"""

from __future__ import annotations

import gc
import logging
import queue
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from marketplace.errors import JobSpecError, ModelError
from marketplace.jobspec import JobSpec, Parameters, TaskType, parse_inputs, parse_spec
from marketplace.sealed.keys import JobKey
from marketplace.storage import ContentStore
from marketplace.storage.cid import Cid
from provider.runtime.batching import Batch, plan_batches
from provider.runtime.bundle import (
    BundleFacts,
    check_bundle_at,
    check_opened_bundle,
    fetch_bundle,
    open_encrypted_bundle,
)
from provider.runtime.device import available_devices, default_dtype, free_memory
from provider.runtime.tasks import TASKS, load_model

log = logging.getLogger(__name__)

MAX_INPUT_MANIFEST = 256 * 1024 * 1024
# Bundle checks remembered (by CID, task, parameters and weight limit): a group's shards share one model, and a
# check builds the architecture on the meta device (about a second on a CPU), so each shard must not redo it.
_CHECKS_KEPT = 64
_DTYPE_BYTES = {torch.float32: 4, torch.float16: 2, torch.bfloat16: 2}


@dataclass(frozen=True)
class RuntimeLimits:
    """What this machine agrees to run. ``token_budget`` bounds rows x tokens per batch."""

    max_weight_bytes: int = 16 * 1024**3
    max_vram_share: float = 0.9
    token_budget: int | None = None  # default: 65,536 on a GPU, 8,192 on the CPU
    max_batch_rows: int = 256
    # Distinct models kept resident (each on every device); default: 1 on a GPU, 2 on the CPU.
    max_loaded_models: int | None = None

    def __post_init__(self) -> None:
        if self.max_loaded_models is not None and self.max_loaded_models < 1:
            raise ValueError(f"max_loaded_models must be at least 1, not {self.max_loaded_models}")


@dataclass
class LoadedModel:
    """A model ready on one device, with its tokenizer; the verifier uses it directly."""

    facts: BundleFacts
    model: Any
    tokenizer: Any
    device: torch.device
    dtype: torch.dtype


class Runtime:
    def __init__(self, store: ContentStore, cache: Path, *, devices: Sequence[torch.device] | None = None,
                 dtype: torch.dtype | None = None, limits: RuntimeLimits | None = None) -> None:
        self.store = store
        self.cache = cache
        self.devices = list(devices or available_devices())
        self.limits = limits or RuntimeLimits()
        self._dtype = dtype
        # (bundle CID, task) -> device -> model, least recently used first.
        self._loaded: OrderedDict[tuple[Cid, TaskType], dict[str, LoadedModel]] = OrderedDict()
        self._lock = threading.Lock()
        self._checked: OrderedDict[tuple[str, TaskType, Parameters, int | None], BundleFacts] = OrderedDict()
        self._checked_lock = threading.Lock()

    @property
    def max_loaded_models(self) -> int:
        if self.limits.max_loaded_models is not None:
            return self.limits.max_loaded_models
        return 1 if any(device.type == "cuda" for device in self.devices) else 2

    def resident(self) -> list[tuple[Cid, TaskType]]:
        """The models loaded now, least recently used first."""
        with self._lock:
            return list(self._loaded)

    def dtype_for(self, device: torch.device) -> torch.dtype:
        return self._dtype or default_dtype(device)

    # -- reading a job -------------------------------------------------------------------------

    def read_spec(self, spec_cid: str) -> JobSpec:
        return parse_spec(self.store.read_bytes(Cid.parse(spec_cid), limit=64 * 1024))

    def read_inputs(self, spec: JobSpec) -> list[str]:
        return parse_inputs(self.store.read_bytes(Cid.parse(spec.inputs), limit=MAX_INPUT_MANIFEST), spec.num_tasks)

    def check_job(self, spec: JobSpec) -> BundleFacts:
        """Refuses a job that no runtime can run as asked, from the bundle's listing, config and safetensors
        headers alone (``marketplace.model_bundle.check_bundle``, what the requester ran before posting): a
        bundle WEBI never loads, an architecture that cannot do the task, a checkpoint without the weights
        the task needs (``ModelError``), or parameters the model cannot take (``JobSpecError``: more
        positions than its table holds). The requester's fault, unlike this machine's limits
        (``check_model``): a verifier excuses the provider for it."""
        return self._check_bundle(spec, None)

    def check_model(self, spec: JobSpec) -> BundleFacts:
        """Refuses a job this machine must not or cannot run, before fetching its weights: what
        ``check_job`` refuses, and a model over this runtime's weight or memory limits."""
        facts = self._check_bundle(spec, self.limits.max_weight_bytes)
        for device in self.devices:
            free = free_memory(device)
            if free is None:
                continue
            stored = _stored_dtype_bytes(facts.config)
            need = facts.weight_bytes * _DTYPE_BYTES[self.dtype_for(device)] // stored
            if need > free * self.limits.max_vram_share:
                raise ModelError(f"{facts.name} needs about {need >> 20} MiB on {device}, "
                                 f"more than {self.limits.max_vram_share:.0%} of its {free >> 20} MiB free")
        return facts

    def open_model(self, spec: JobSpec, job_key: JobKey) -> Path:
        """A confidential job's encrypted bundle, fetched and opened into the cache (keyed by its
        ciphertext CID), so that ``check_model`` and ``load`` work on the plaintext folder."""
        return open_encrypted_bundle(self.store, Cid.parse(spec.model), self.cache / "models", job_key,
                                     self.limits.max_weight_bytes)

    def _check_bundle(self, spec: JobSpec, max_weight_bytes: int | None) -> BundleFacts:
        """``check_bundle`` over the store's listing, or over the opened folder of an encrypted bundle.

        A public bundle's passed check is remembered: its CID fixes every byte the check reads, so the answer
        cannot change. A refusal is not (it may have been the store's fault), nor is an encrypted bundle's check
        (it reads a folder opened with one job's key)."""
        if spec.confidential is not None and spec.confidential.model_encrypted:
            return check_opened_bundle(Cid.parse(spec.model), self.cache / "models", spec.task, spec.parameters,
                                       max_weight_bytes)
        key = (spec.model, spec.task, spec.parameters, max_weight_bytes)
        with self._checked_lock:
            known = self._checked.get(key)
            if known is not None:
                self._checked.move_to_end(key)
                return known
        facts = check_bundle_at(self.store, Cid.parse(spec.model), spec.task, spec.parameters, max_weight_bytes)
        with self._checked_lock:
            self._checked[key] = facts
            while len(self._checked) > _CHECKS_KEPT:
                self._checked.popitem(last=False)
        return facts

    def load(self, spec: JobSpec, device: torch.device) -> LoadedModel:
        """The model on ``device``, loaded now unless resident; a new model first evicts the least recently used."""
        key = (Cid.parse(spec.model), spec.task)
        with self._lock:
            copies = self._loaded.get(key)
            if copies is not None:
                self._loaded.move_to_end(key)
                if str(device) in copies:
                    return copies[str(device)]
            else:
                self._evict(keep=self.max_loaded_models - 1)  # before the memory check: it needs the room
            facts = self.check_model(spec)
            path = fetch_bundle(self.store, key[0], self.cache / "models")
            loaded = _load(facts, path, spec.task, device, self.dtype_for(device))
            self._loaded.setdefault(key, {})[str(device)] = loaded
            return loaded

    def _evict(self, keep: int) -> None:
        """Drops the least recently used models until ``keep`` remain, and returns their GPU memory.

        A run still holding one finishes with it; its memory is freed when that run lets go.
        """
        evicted = []
        while len(self._loaded) > keep:
            key, copies = self._loaded.popitem(last=False)
            evicted.append(key)
            log.info("evicting model %s (%s) from %s", key[0], key[1].value, ", ".join(copies))
            del copies
        if not evicted:
            return
        gc.collect()  # a model's modules can hold reference cycles: free them now, not at some later collection
        if any(device.type == "cuda" for device in self.devices):
            torch.cuda.empty_cache()

    # -- running -------------------------------------------------------------------------------

    def plan(self, spec: JobSpec, texts: Sequence[str], tokenizer: Any) -> list[Batch]:
        """The batches ``run`` computes ``texts`` in: by length, rows x tokens within the token budget."""
        # A generating task's cache grows by max_new_tokens a row: the budget holds the batch's whole cache.
        grows = spec.parameters.max_new_tokens if spec.task in (TaskType.GENERATE, TaskType.SUMMARIZE) else 0
        lengths = [len(ids) + grows for ids in tokenizer(
            list(texts), truncation=True, max_length=spec.parameters.max_input_tokens)["input_ids"]]
        budget = self.limits.token_budget or (65_536 if self.devices[0].type == "cuda" else 8_192)
        return plan_batches(lengths, budget, self.limits.max_batch_rows)

    def run(self, spec: JobSpec, inputs: Sequence[str], *, indices: Sequence[int] | None = None,
            progress: Callable[[int], None] | None = None) -> list[bytes]:
        """Canonical outputs for ``inputs`` (or for the tasks at ``indices`` only), in that order."""
        chosen = list(range(len(inputs))) if indices is None else list(indices)
        texts = [inputs[index] for index in chosen]
        models = [self.load(spec, device) for device in self.devices]
        batches = self.plan(spec, texts, models[0].tokenizer)
        outputs: list[bytes | None] = [None] * len(texts)
        task = TASKS[spec.task]
        work: queue.SimpleQueue[tuple[int, ...]] = queue.SimpleQueue()
        for batch in batches:
            work.put(batch.indices)
        errors: list[BaseException] = []

        def worker(loaded: LoadedModel) -> None:
            while not errors:
                try:
                    rows = work.get_nowait()
                except queue.Empty:
                    return
                try:
                    results = task(loaded.model, loaded.tokenizer, [texts[row] for row in rows], spec.parameters,
                                   loaded.device)
                except BaseException as error:  # re-raised in the caller's thread
                    errors.append(error)
                    return
                for row, result in zip(rows, results, strict=True):
                    outputs[row] = result
                if progress is not None:
                    progress(len(rows))

        if len(models) == 1:
            worker(models[0])
        else:
            threads = [threading.Thread(target=worker, args=(loaded,), name=f"webi-{loaded.device}")
                       for loaded in models]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        if errors:
            raise errors[0]
        return [output for output in outputs if output is not None]


def _load(facts: BundleFacts, path: Path, task: TaskType, device: torch.device, dtype: torch.dtype) -> LoadedModel:
    import transformers

    model = load_model(facts, path, task, dtype)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(path, trust_remote_code=False, local_files_only=True)
    except (ValueError, OSError, KeyError) as error:
        raise ModelError(f"{facts.name} ({facts.model_type}): its tokenizer cannot be loaded: {error}") from None
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token_id is None:
            raise JobSpecError("model", f"{facts.name}'s tokenizer has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
    model.to(device).eval()
    log.info("loaded %s (%s) for %s on %s as %s", facts.cid, facts.model_type, task.value, device, dtype)
    return LoadedModel(facts, model, tokenizer, device, dtype)


def _stored_dtype_bytes(config: dict[str, object]) -> int:
    stored = str(config.get("dtype") or config.get("torch_dtype") or "float32")
    return {"float16": 2, "bfloat16": 2}.get(stored, 4)
