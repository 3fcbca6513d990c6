"""The four task types, each a batch function from input texts to canonical output bytes.

- ``embed``: mean pooling of the last hidden state over the attention mask, then L2 normalization:
  what sentence-transformers computes for models with a mean-pooling + Normalize head.
- ``classify``: softmax over the sequence-classification logits; the label from ``id2label``.
- ``generate``: greedy decoding of a causal LM, left-padded, ``max_new_tokens``.
- ``summarize``: greedy decoding of a seq2seq model.
Generated outputs carry their token ids, which the verifier checks in one teacher-forced pass.

``load_model`` loads the task's model class and refuses a checkpoint that lacks any of its weights:
transformers would initialise them at random, and the task would compute (and be paid for) noise.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from marketplace.errors import ModelError
from marketplace.jobspec import Parameters, TaskType
from marketplace.model_bundle import BundleFacts
from marketplace.model_weights import task_model_class
from marketplace.results import DECIMALS, canonical

TaskFunction = Callable[[Any, Any, list[str], Parameters, torch.device], list[bytes]]


def _encode(tokenizer: Any, texts: list[str], params: Parameters, device: torch.device,
            keys: tuple[str, ...] = ("input_ids", "attention_mask", "token_type_ids")) -> dict[str, torch.Tensor]:
    batch = tokenizer(texts, padding=True, truncation=True, max_length=params.max_input_tokens, return_tensors="pt")
    return {key: value.to(device) for key, value in batch.items() if key in keys}


_PROMPT = ("input_ids", "attention_mask")  # generate() refuses the encoder-only token_type_ids


@torch.inference_mode()
def embed(model: Any, tokenizer: Any, texts: list[str], params: Parameters, device: torch.device) -> list[bytes]:
    batch = _encode(tokenizer, texts, params, device)
    hidden = model(**batch).last_hidden_state.float()
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    vectors = _rounded(torch.nn.functional.normalize(pooled, p=2, dim=1))
    return [canonical({"embedding": vector}) for vector in vectors]


@torch.inference_mode()
def classify(model: Any, tokenizer: Any, texts: list[str], params: Parameters, device: torch.device) -> list[bytes]:
    batch = _encode(tokenizer, texts, params, device)
    probabilities = torch.softmax(model(**batch).logits.float(), dim=-1)
    best = probabilities.argmax(dim=-1).tolist()
    labels = model.config.id2label
    return [canonical({"label": str(labels.get(index, index)), "label_id": index, "probabilities": row})
            for index, row in zip(best, _rounded(probabilities), strict=True)]


def _rounded(values: torch.Tensor) -> list[list[float]]:
    """Rows rounded to ``DECIMALS`` places in float64, on the device: ``results.rounded`` at tensor speed."""
    scale = 10.0**DECIMALS
    return (values.double() * scale).round().div(scale).cpu().tolist()


@torch.inference_mode()
def generate(model: Any, tokenizer: Any, texts: list[str], params: Parameters, device: torch.device) -> list[bytes]:
    tokenizer.padding_side = "left"
    batch = _encode(tokenizer, texts, params, device, _PROMPT)
    produced = model.generate(**batch, **_greedy(model, tokenizer, params))
    return _decoded(tokenizer, model, produced[:, batch["input_ids"].shape[1]:])


@torch.inference_mode()
def summarize(model: Any, tokenizer: Any, texts: list[str], params: Parameters, device: torch.device) -> list[bytes]:
    batch = _encode(tokenizer, texts, params, device, _PROMPT)
    produced = model.generate(**batch, **_greedy(model, tokenizer, params))
    return _decoded(tokenizer, model, produced[:, 1:])  # drop the decoder start token


def _greedy(model: Any, tokenizer: Any, params: Parameters) -> dict[str, Any]:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else model.config.eos_token_id
    return {"max_new_tokens": params.max_new_tokens, "do_sample": False, "num_beams": 1, "pad_token_id": pad}


def _decoded(tokenizer: Any, model: Any, tokens: torch.Tensor) -> list[bytes]:
    eos = model.generation_config.eos_token_id
    stops = set(eos if isinstance(eos, list) else [eos]) - {None}
    outputs = []
    for row in tokens.cpu().tolist():
        ids = []
        for token in row:
            ids.append(token)
            if token in stops:
                break
        outputs.append(canonical({"text": tokenizer.decode(ids, skip_special_tokens=True), "tokens": ids}))
    return outputs


TASKS: dict[TaskType, TaskFunction] = {
    TaskType.EMBED: embed,
    TaskType.CLASSIFY: classify,
    TaskType.GENERATE: generate,
    TaskType.SUMMARIZE: summarize,
}


def load_model(facts: BundleFacts, path: Path, task: TaskType, dtype: torch.dtype) -> Any:
    """``task``'s model class loaded from the bundle at ``path`` (safetensors only, no remote code, nothing
    downloaded); ``ModelError`` naming the weights the checkpoint lacks, which transformers would have
    initialised at random (the provider and the verifier both load through here)."""
    import transformers

    transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # daemons draw no bars
    auto = task_model_class(task)
    try:
        model, info = auto.from_pretrained(path, dtype=dtype, trust_remote_code=False, use_safetensors=True,
                                           local_files_only=True, output_loading_info=True)
    except (ValueError, OSError, KeyError) as error:
        raise ModelError(f"{facts.name} ({facts.model_type}) cannot be loaded for {task.value}: {error}") from None
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        raise ModelError(f"{facts.name} ({facts.model_type}) lacks weights {task.value} needs ({shown}): "
                         "transformers would initialise them at random")
    return model
