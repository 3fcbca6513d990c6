"""Cheats on classify and embed jobs that save compute, for tests and ``scripts/bench_verify.py``.

Each is a ``tests.support.strategies.Strategy``: given an honest provider's ``Setting`` it returns
the bytes a cheat would commit and ``saved``, the share of the honest compute it skipped. Compute is
estimated as encoder layers x input tokens (the FLOPs of a forward pass are linear in both at these
lengths: attention's quadratic term is under a tenth of the total below 512 tokens for MiniLM's width).

classify:

- ``nan-common``: no model at all; the label the training data gives most often
  (``trained_classifier.prior_label``), probabilities NaN. Saved 1.
- ``student-nan``: the distilled 3-layer student's label, probabilities NaN. Saved 1 - 3/6.
- ``student``: the student's own label and probabilities. Saved 1 - 3/6.
- ``student-confident``: the student's label with made-up confident probabilities (0.96 on it, the
  rest shared out). Saved 1 - 3/6.
- ``onehot``: the honest label with one-hot probabilities. Saved 0 (it computes everything; it
  only hides how sure the model was).

embed:

- ``truncate-192``: inputs of more than 256 tokens (MiniLM's training length) embedded from their
  first 192 tokens only. Saved: the tokens cut over all the job's tokens.

both:

- ``nearest``: computes every other input (the even task indices) and commits, for each of the
  rest, the output of the computed input most like it (Jaccard over word sets). Saved: the tokens
  of the copied inputs over all the job's tokens (half the inputs, so about 1/2).

Outputs are in the honest runtime's canonical format (``provider/runtime/tasks.py``); the NaN ones
are written by hand, since ``marketplace.results.canonical`` refuses NaN and a cheat is free to
commit any bytes.
"""

from __future__ import annotations

import json
import statistics
from typing import Any

from marketplace.jobspec import JobSpec, TaskType
from marketplace.results import canonical, rounded
from marketplace.storage.cid import Cid
from provider.runtime import Runtime
from tests.support.strategies import Cheat, Setting, Strategy
from tests.support.trained_classifier import prior_label

MINILM_TRAINED_TOKENS = 256  # inputs longer than this are the ones truncate-192 cuts
CUT_TOKENS = 192
CONFIDENT = 0.96
_CONFIG_LIMIT = 1024 * 1024


def _raw(value: dict[str, Any]) -> bytes:
    """What ``canonical`` writes, but with NaN allowed: compact, sorted keys."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=True).encode()


def _config(setting: Setting, model: str) -> dict[str, Any]:
    config = json.loads(setting.store.read_bytes(Cid.parse(model), "config.json", limit=_CONFIG_LIMIT))
    return config if isinstance(config, dict) else {}


def _labels(config: dict[str, Any]) -> dict[int, str]:
    return {int(index): str(name) for index, name in (config.get("id2label") or {}).items()}


def _lengths(setting: Setting, spec: JobSpec | None = None) -> list[int]:
    """Each input's token count, as the runtime truncates it: the unit of compute saved."""
    spec = spec or setting.spec
    loaded = setting.runtime.load(spec, setting.device)
    encoded = loaded.tokenizer(setting.texts, truncation=True, max_length=spec.parameters.max_input_tokens)
    return [len(ids) for ids in encoded["input_ids"]]


# -- classify ------------------------------------------------------------------------------------


def _nan_common(setting: Setting) -> Cheat:
    labels = _labels(_config(setting, setting.spec.model))
    index = prior_label()
    answer = {"label": labels.get(index, str(index)), "label_id": index,
              "probabilities": [float("nan")] * max(len(labels), 1)}
    return Cheat([_raw(answer)] * len(setting.texts), saved=1.0)


def _student_outputs(setting: Setting) -> tuple[list[dict[str, Any]], float]:
    """The student's canonical answers for the job's inputs, and the compute it saves (its layers
    against the job's model's; the tokenizer is the same, so the tokens are too)."""
    if setting.student is None:
        raise ValueError(f"a student strategy needs Setting.student, a distilled model for {setting.spec.model}")
    cid = str(setting.store.add_path(setting.student, recursive=True).cid)
    spec = setting.spec.model_copy(update={"model": cid})
    # A runtime of its own, so that loading the student does not evict the provider's model.
    runtime = Runtime(setting.store, setting.runtime.cache, devices=[setting.device],
                      dtype=setting.runtime.dtype_for(setting.device), limits=setting.runtime.limits)
    outputs = [json.loads(output) for output in runtime.run(spec, setting.texts)]
    theirs = _config(setting, cid)["num_hidden_layers"]
    ours = _config(setting, setting.spec.model)["num_hidden_layers"]
    return outputs, 1.0 - theirs / ours


def _student_nan(setting: Setting) -> Cheat:
    outputs, saved = _student_outputs(setting)
    return Cheat([_raw({**output, "probabilities": [float("nan")] * len(output["probabilities"])})
                  for output in outputs], saved)


def _student(setting: Setting) -> Cheat:
    outputs, saved = _student_outputs(setting)
    return Cheat([canonical(output) for output in outputs], saved)


def _student_confident(setting: Setting) -> Cheat:
    outputs, saved = _student_outputs(setting)
    return Cheat([canonical({**output, "probabilities": _confident(output["label_id"], len(output["probabilities"]))})
                  for output in outputs], saved)


def _confident(label: int, classes: int) -> list[float]:
    rest = (1.0 - CONFIDENT) / max(classes - 1, 1)
    return rounded([CONFIDENT if index == label else rest for index in range(classes)])


def _onehot(setting: Setting) -> Cheat:
    outputs = []
    for output in setting.honest:
        answer = json.loads(output)
        width = len(answer["probabilities"])
        outputs.append(canonical({**answer, "probabilities": [float(index == answer["label_id"])
                                                              for index in range(width)]}))
    return Cheat(outputs, saved=0.0)


# -- embed ---------------------------------------------------------------------------------------


def _truncate(setting: Setting) -> Cheat:
    lengths = _lengths(setting)
    cut = [index for index, length in enumerate(lengths) if length > MINILM_TRAINED_TOKENS]
    outputs = list(setting.honest)
    if cut:
        short = setting.spec.model_copy(update={"parameters": setting.spec.parameters.model_copy(
            update={"max_input_tokens": CUT_TOKENS})})
        for index, output in zip(cut, setting.runtime.run(short, setting.texts, indices=cut), strict=True):
            outputs[index] = output
    skipped = [lengths[index] - CUT_TOKENS for index in cut]
    per_task = [(lengths[index] - CUT_TOKENS) / lengths[index] for index in cut]
    return Cheat(outputs, saved=sum(skipped) / sum(lengths),
                 detail={"tasks_cut": len(cut) / len(lengths),
                         "median_task_saved": statistics.median(per_task) if per_task else 0.0})


# -- both ----------------------------------------------------------------------------------------


def nearest_computed(texts: list[str]) -> dict[int, int]:
    """For each input left uncomputed (odd index), the computed one (even index) sharing the largest
    share of its words (Jaccard over word sets; the lowest index on a tie)."""
    words = [set(text.lower().split()) for text in texts]
    computed = range(0, len(texts), 2)

    def likeness(a: int, b: int) -> float:
        union = words[a] | words[b]
        return len(words[a] & words[b]) / len(union) if union else 1.0

    return {index: max(computed, key=lambda other: (likeness(index, other), -other))
            for index in range(1, len(texts), 2)}


def _nearest(setting: Setting) -> Cheat:
    copies = nearest_computed(setting.texts)
    outputs = [setting.honest[copies.get(index, index)] for index in range(len(setting.texts))]
    lengths = _lengths(setting)
    return Cheat(outputs, saved=sum(lengths[index] for index in copies) / sum(lengths),
                 detail={"copied": len(copies) / len(setting.texts)})


CLASSIFY = frozenset({TaskType.CLASSIFY})
EMBED = frozenset({TaskType.EMBED})

STRATEGIES: tuple[Strategy, ...] = (
    Strategy("nan-common", CLASSIFY, _nan_common, "no model: the training data's commonest label, NaN probabilities"),
    Strategy("student-nan", CLASSIFY, _student_nan, "the distilled student's label, NaN probabilities",
             needs_student=True),
    Strategy("student", CLASSIFY, _student, "the distilled student's label and probabilities",
             needs_student=True),
    Strategy("student-confident", CLASSIFY, _student_confident,
             f"the student's label with probability {CONFIDENT}, the rest shared out", needs_student=True),
    Strategy("onehot", CLASSIFY, _onehot, "the honest label with one-hot probabilities"),
    Strategy("truncate-192", EMBED, _truncate,
             f"inputs over {MINILM_TRAINED_TOKENS} tokens embedded from their first {CUT_TOKENS}"),
    Strategy("nearest", CLASSIFY | EMBED, _nearest,
             "every other input computed; the rest copy the most similar computed input's output"),
)
