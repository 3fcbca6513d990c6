"""Cheating providers, for tests and bench_verify.py only: never imported by the production code.

``CheatingRuntime`` is a provider ``Runtime`` whose outputs are wrong in one of these ways:

- ``random``: right shape, random content (random unit vectors, labels, tokens);
- ``other-model``: the outputs of a different model of the same architecture and size;
- ``truncated`` / ``padded``: generation stopped early, or extended past its end (generate, summarize);
- ``replay``: outputs computed for another job's inputs;
- ``half``: honest for the first half of the tasks, random for the rest.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from typing import Any

from marketplace.jobspec import JobSpec, TaskType
from marketplace.results import canonical, rounded
from provider.runtime import LoadedModel, Runtime
from verifier.compare import (
    CLASSIFY_PROB_TOLERANCE,
    EMBED_MIN_COSINE,
    NEAR_TIE_LOGITS,
    TaskCheck,
    check_shape,
    near_tie_budget,
    token_gaps,
)

STRATEGIES = ("random", "other-model", "truncated", "padded", "replay", "half")
GENERATIVE = (TaskType.GENERATE, TaskType.SUMMARIZE)


def applies(strategy: str, task: TaskType) -> bool:
    return strategy not in ("truncated", "padded") or task in GENERATIVE


def honest_noise(kind: str, checks: Sequence[TaskCheck]) -> float:
    """How far honest outputs came from the verifier's (``checks`` of them), in the unit each
    comparator measures: 1 - cosine for embed, the probability gap for classify, logits behind the
    argmax for generate and summarize."""
    metrics = [check.metric or 0.0 for check in checks]
    return 1.0 - min(metrics) if kind == "embed" else max(metrics)


def changed_answer(cheat: dict[str, Any], honest: dict[str, Any], noise: float = 0.0) -> bool:
    """Whether a cheat changed a task's answer by more than the comparator accepts from honest work.

    The comparator promises an answer within its tolerance of the verifier's own computation, and an
    honest provider's computation sits up to ``noise`` from the verifier's (the largest difference
    measured for this model: 1 - cosine for embed, the probability gap for classify). A replayed or
    borrowed output that lands within tolerance plus noise of the true one is, by that promise, a
    right answer whatever produced it: a less chaotic classifier gives two similar sentences
    probabilities 0.02 apart. Generated tokens count as changed when any differs (then see
    ``outside_allowance``).
    """
    if "embedding" in honest:
        a, b = honest["embedding"], cheat["embedding"]
        dot = sum(x * y for x, y in zip(a, b, strict=True))
        cosine = dot / ((sum(x * x for x in a) * sum(y * y for y in b)) ** 0.5 or 1.0)
        return bool(cosine < EMBED_MIN_COSINE - noise)
    if "probabilities" in honest:
        gap = max(abs(p - q) for p, q in zip(cheat["probabilities"], honest["probabilities"], strict=True))
        ranked = sorted(honest["probabilities"], reverse=True)
        decided = ranked[0] - ranked[1] > CLASSIFY_PROB_TOLERANCE + noise
        return gap > CLASSIFY_PROB_TOLERANCE + noise or (cheat["label_id"] != honest["label_id"] and decided)
    return bool(cheat["tokens"] != honest["tokens"])


def outside_allowance(reference: LoadedModel, spec: JobSpec, texts: Sequence[str],
                      outputs: dict[int, dict[str, Any]], noise: float = 0.0) -> list[int]:
    """The generated outputs (of tasks ``outputs``' keys) that fall outside what the comparator
    accepts by more than honest noise, as the provider's own model (``reference``, in fp32) rates them.

    Outside means malformed (``check_shape``: stopped early, continued past the end, text that is
    not the tokens'), or a token more than ``NEAR_TIE_LOGITS + noise`` behind the argmax, or more
    tokens more than ``noise`` behind it than the near-tie budget allows: a token within the noise of
    the argmax may be the argmax on the verifier's hardware, so counting it against the budget would
    call a boundary case a cheat. ``noise``: the largest gap honest outputs showed against the verifier.
    """
    shaped = [index for index in outputs if check_shape(reference, spec, index, outputs[index]) is None]
    outside = [index for index in outputs if index not in shaped]
    if shaped:
        gaps = token_gaps(reference, spec, [texts[index] for index in shaped],
                          [outputs[index]["tokens"] for index in shaped])
        outside += [index for index, behind in zip(shaped, gaps, strict=True)
                    if float(behind.max()) > NEAR_TIE_LOGITS + noise
                    or int((behind > noise).sum()) > near_tie_budget(len(behind))]
    return sorted(outside)


class CheatingRuntime(Runtime):
    def __init__(self, *args: Any, strategy: str, other_model: str | None = None, seed: int = 1,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.strategy = strategy
        self.other_model = other_model
        self.chooser = random.Random(seed)

    def run(self, spec: JobSpec, inputs: Sequence[str], *, indices: Sequence[int] | None = None,
            progress: Callable[[int], None] | None = None) -> list[bytes]:
        honest = super().run(spec, inputs, indices=indices, progress=progress)
        if self.strategy == "other-model":
            assert self.other_model is not None
            return super().run(spec.model_copy(update={"model": self.other_model}), inputs, indices=indices)
        if self.strategy == "replay":
            shifted = [*inputs[1:], inputs[0]]
            return super().run(spec, shifted, indices=indices)
        if self.strategy == "half":
            return [output if position < len(honest) // 2 else self._random(spec, output)
                    for position, output in enumerate(honest)]
        return [self._tamper(spec, output) for output in honest]

    def _tamper(self, spec: JobSpec, output: bytes) -> bytes:
        if self.strategy == "random":
            return self._random(spec, output)
        value = json.loads(output)
        if self.strategy == "truncated":
            tokens = value["tokens"][: max(1, len(value["tokens"]) // 2)]
            if len(tokens) == len(value["tokens"]):
                tokens = tokens[:-1] or [self.chooser.randrange(5, 100)]
        else:  # padded
            tokens = [*value["tokens"], *(self.chooser.randrange(5, 100) for _ in range(3))]
        return self._tokens(spec, tokens)

    def _tokens(self, spec: JobSpec, tokens: list[int]) -> bytes:
        """A generation output that is consistent with itself (text decoded from the tokens), so only
        the model can tell it is wrong."""
        tokenizer = self.load(spec, self.devices[0]).tokenizer
        return canonical({"text": tokenizer.decode(tokens, skip_special_tokens=True), "tokens": tokens})

    def _random(self, spec: JobSpec, output: bytes) -> bytes:
        value = json.loads(output)
        if spec.task == TaskType.EMBED:
            vector = [self.chooser.gauss(0, 1) for _ in value["embedding"]]
            norm = sum(x * x for x in vector) ** 0.5
            return canonical({"embedding": rounded([x / norm for x in vector])})
        if spec.task == TaskType.CLASSIFY:
            weights = [self.chooser.random() for _ in value["probabilities"]]
            probabilities = [w / sum(weights) for w in weights]
            best = max(range(len(probabilities)), key=probabilities.__getitem__)
            return canonical({"label": str(best), "label_id": best, "probabilities": rounded(probabilities)})
        return self._tokens(spec, [self.chooser.randrange(5, 100) for _ in value["tokens"]])
