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
from provider.runtime import Runtime
from tests.support.strategies import Cheat, Setting, Strategy

STRATEGIES = ("random", "other-model", "truncated", "padded", "replay", "half")
GENERATIVE = (TaskType.GENERATE, TaskType.SUMMARIZE)


def applies(strategy: str, task: TaskType) -> bool:
    return strategy not in ("truncated", "padded") or task in GENERATIVE


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


def _legacy(strategy: str, saved: float) -> Strategy:
    """One of the strategies above as a ``Strategy`` (``other-model`` needs ``Setting.other``)."""

    def cheat(setting: Setting) -> Cheat:
        runtime = CheatingRuntime(setting.store, setting.work / f"cheat-{strategy}", devices=[setting.device],
                                  strategy=strategy, seed=setting.seed,
                                  other_model=str(setting.store.add_path(setting.other, recursive=True).cid)
                                  if setting.other is not None else None)
        return Cheat(runtime.run(setting.spec, setting.texts), saved)

    tasks = frozenset(task for task in TaskType if applies(strategy, task))
    return Strategy(strategy, tasks, cheat, needs_other=strategy == "other-model")


# Compute skipped: random and replayed outputs cost nothing (a replay reuses another job's work);
# another model of the same size costs as much; half the tasks honest skips half; a truncated
# generation about half its tokens, a padded one none.
LEGACY = (_legacy("random", 1.0), _legacy("other-model", 0.0), _legacy("truncated", 0.5), _legacy("padded", 0.0),
          _legacy("replay", 1.0), _legacy("half", 0.5))
