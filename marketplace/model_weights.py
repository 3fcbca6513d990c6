"""Whether a checkpoint holds every weight a task's model class needs, without loading a weight.

transformers loads a checkpoint into any class its config maps to and initialises whatever the checkpoint
lacks at random (an LM head for ``generate`` on an embedding model, a classifier on a bare encoder): the
model then runs and computes noise. Here the task's class is built on the meta device (no memory, no
weights) and its parameter names are compared with the tensor names in the safetensors headers, the way
transformers matches them: a base model's checkpoint may carry or lack the ``base_model_prefix``, and a
parameter tied to another (GPT-2's ``lm_head`` to ``wte``) is present when what it is tied to is.
"""

from __future__ import annotations

import importlib
import re
import threading
from typing import Any

from marketplace.errors import ModelError
from marketplace.jobspec import TaskType

# A constant, not state: transformers' lazy top-level module is not thread-safe on first attribute access
# (threads auditing at once saw ``module 'transformers' has no attribute 'AutoModelForCausalLM'``).
_CLASS_IMPORT_LOCK = threading.Lock()


def task_model_class(task: TaskType) -> Any:
    """``task``'s transformers auto class (``model_bundle.TASK_MODEL_CLASSES``), safe to call from many threads.

    It is read from the concrete module that defines it, which the import system imports once under its own
    lock, never through ``transformers``' lazy ``__getattr__``; the lock covers a first import still under way.
    """
    from marketplace.model_bundle import TASK_MODEL_CLASSES

    with _CLASS_IMPORT_LOCK:
        module = importlib.import_module("transformers.models.auto.modeling_auto")
    return getattr(module, TASK_MODEL_CLASSES[task])


def missing_weights(config: dict[str, object], task: TaskType, checkpoint: set[str]) -> list[str]:
    """The parameters of ``task``'s model class for ``config`` that no tensor of ``checkpoint`` provides, sorted."""
    model = _meta_model(config, task)
    prefix = str(getattr(model, "base_model_prefix", "") or "")

    def bare(key: str) -> str:
        return key[len(prefix) + 1:] if prefix and key.startswith(prefix + ".") else key

    present = {bare(key) for key in checkpoint}
    # What this config ties (an untied config, ``tie_word_embeddings: false``, ties nothing the class could).
    tied = model.all_tied_weights_keys if hasattr(model, "all_tied_weights_keys") else {}
    tied_to: dict[str, str] = dict(tied) if isinstance(tied, dict) else {}
    ignored = [re.compile(pattern) for pattern in getattr(model, "_keys_to_ignore_on_load_missing", None) or []]
    missing = []
    for key, _ in model.named_parameters(remove_duplicate=False):
        if bare(key) in present or any(pattern.search(key) for pattern in ignored):
            continue
        source = tied_to.get(key)
        if source is not None and bare(source) in present:
            continue
        missing.append(key)
    return sorted(missing)


def _meta_model(config: dict[str, object], task: TaskType) -> Any:
    import torch
    from transformers.models.auto.configuration_auto import AutoConfig  # the concrete module: see task_model_class

    fields = {key: value for key, value in config.items() if key != "model_type"}
    auto = task_model_class(task)
    try:
        hf_config = AutoConfig.for_model(str(config.get("model_type")), **fields)
        with torch.device("meta"):
            return auto.from_config(hf_config, trust_remote_code=False)
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise ModelError(f"a {config.get('model_type')} model cannot be built for {task.value}: {error}") from None
