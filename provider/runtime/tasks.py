"""The four task types, each a batch function from input texts to canonical output bytes.

- ``embed``: mean pooling of the last hidden state over the attention mask, then L2 normalization:
  what sentence-transformers computes for models with a mean-pooling + Normalize head.
- ``classify``: softmax over the sequence-classification logits; the label from ``id2label``.
- ``generate``: greedy decoding of a causal LM, left-padded, ``max_new_tokens``.
- ``summarize``: greedy decoding of a seq2seq model.
Generated outputs carry their token ids, which the verifier checks in one teacher-forced pass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from marketplace.jobspec import Parameters, TaskType
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
