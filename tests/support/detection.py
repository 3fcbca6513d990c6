"""Which tasks a cheat changed, and whether the verifier caught them: the measure of ``bench_verify.py``
and the detection tests.

A cheat has changed a task when its answer lies outside what the comparator promises to accept from
honest work on that input: the allowance (``verifier.tolerance``) around every honest answer (the
fp32 provider's, and each of the verifier's two references'), scaled to the noise those references
show on the honest work (``honest_work``). An answer
inside it (a replayed sentence whose answer is within four noises of the true one, a generation that
differs from greedy decoding only by near-ties inside the allowance) is one honest hardware may give;
those are counted apart, as within the allowance, neither caught nor missed.

Caught means the verifier's judgement (``References.audit``, the audit path itself) fails the task;
an inconclusive is not a catch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from marketplace.jobspec import JobSpec, TaskType
from provider.runtime import LoadedModel
from verifier import compare, tolerance
from verifier.committed import parse_committed
from verifier.forced import resolution, teacher_forced
from verifier.verdict import Outcome, References, TaskAudit

GENERATIVE = (TaskType.GENERATE, TaskType.SUMMARIZE)


def answer_distance(kind: TaskType, a: dict[str, Any], b: dict[str, Any]) -> float:
    """1 - cosine (embed) or the largest probability difference (classify); infinite when either is
    not finite or not of the same shape."""
    try:
        if kind == TaskType.EMBED:
            distance = 1.0 - compare.embed_cosine(a["embedding"], b["embedding"])
        else:
            distance = max(abs(float(p) - float(q)) for p, q in zip(a["probabilities"], b["probabilities"],
                                                                      strict=True))
    except (KeyError, TypeError, ValueError, RuntimeError):
        return math.inf
    return distance if math.isfinite(distance) else math.inf


def answer_noise(kind: TaskType, fp32: Sequence[bytes], bf16: Sequence[bytes]) -> list[float]:
    """Per task, the honest answer's distance between fp32 and bf16: the noise its allowance scales to."""
    return [answer_distance(kind, json.loads(a), json.loads(b)) for a, b in zip(fp32, bf16, strict=True)]


@dataclass(frozen=True)
class HonestWork:
    """Honest work on a job, as the allowance sees it: what an honest provider commits (``outputs``,
    fp32), the honest answers an allowance is measured from (per task: that output and each reference's
    own, for embed/classify), the references' models (generation), and each task's noise."""

    outputs: list[bytes]
    answers: list[list[bytes]]
    models: list[LoadedModel]
    noises: list[float]


def honest_work(kind: TaskType, references: References, spec: JobSpec, texts: Sequence[str],
                honest: Sequence[bytes]) -> HonestWork:
    """``HonestWork`` with the noise the verifier's allowance scales to on honest work: for
    embed/classify the distance between its two references on the input (what an audit measures,
    whatever was committed); for generation the references' disagreement along the honest tokens."""
    models = [references.a.load(spec, references.a.devices[0]), references.b.load(spec, references.b.devices[0])]
    if kind in GENERATIVE:
        coarse = max((references.a.dtype_for(references.a.devices[0]), references.b.dtype_for(references.b.devices[0])),
                     key=lambda dtype: torch.finfo(dtype).eps)
        noises = generation_noise(models[0], models[1], spec, texts, honest, coarse)
        return HonestWork(list(honest), [[raw] for raw in honest], models, noises)
    indices = list(range(len(texts)))
    first = references.a.run(spec, list(texts), indices=indices)
    second = references.b.run(spec, list(texts), indices=indices)
    return HonestWork(list(honest), [list(answers) for answers in zip(honest, first, second, strict=True)], models,
                      answer_noise(kind, first, second))


def changed_tasks(kind: TaskType, spec: JobSpec, texts: Sequence[str], cheats: Sequence[bytes],
                  work: HonestWork) -> list[int]:
    """The tasks a cheat changed: outside the allowance of every honest answer (the provider's fp32
    one and each reference's), the allowance scaled to the honest noise of the same input."""
    if kind in GENERATIVE:
        return changed_generations(spec, texts, cheats, work)
    return changed_answers(kind, cheats, work)


def changed_answers(kind: TaskType, cheats: Sequence[bytes], work: HonestWork) -> list[int]:
    """The embed/classify tasks the cheat changed (see ``changed_tasks``)."""
    least = tolerance.sample_noise(work.noises)
    scale = tolerance.embed_allowance if kind == TaskType.EMBED else tolerance.classify_allowance
    changed = []
    for index, (raw, answers, noise) in enumerate(zip(cheats, work.answers, work.noises, strict=True)):
        if raw == work.outputs[index]:
            continue
        parsed = parse_committed(index, raw)
        allowed = scale(max(noise, least)).value
        if not isinstance(parsed, dict) or not any(_within(kind, parsed, json.loads(answer), allowed)
                                                   for answer in answers):
            changed.append(index)
    return changed


def _within(kind: TaskType, answer: dict[str, Any], truth: dict[str, Any], allowed: float) -> bool:
    if answer_distance(kind, answer, truth) > allowed:
        return False
    if kind == TaskType.CLASSIFY and answer.get("label_id") != truth["label_id"]:
        ranked = sorted(truth["probabilities"], reverse=True)
        return bool(ranked[0] - ranked[1] <= 2 * allowed)
    return True


def generation_noise(second: LoadedModel, first: LoadedModel, spec: JobSpec, texts: Sequence[str],
                     honest: Sequence[bytes], coarse: torch.dtype, batch: int = 32) -> list[float]:
    """Per task, the honest sequence's noise as an audit measures it: ``second`` (reference A) forced
    over the honest tokens in batches, ``first`` (B) one task at a time probing A's candidates, the
    largest over the sequence's positions, never less than half a step of the ``coarse`` dtype
    (``verifier.forced.resolution``)."""
    tokens = [json.loads(raw)["tokens"] for raw in honest]
    noises = []
    for start in range(0, len(texts), batch):
        group = list(range(start, min(start + batch, len(texts))))
        batched = teacher_forced(second, spec, [texts[i] for i in group], [tokens[i] for i in group])
        for index, a in zip(group, batched, strict=True):
            [b] = teacher_forced(first, spec, [texts[index]], [tokens[index]], probe=[a.top_ids])
            noise = torch.maximum(b.noise_against(a), resolution(a, b, coarse))
            noises.append(float(noise.max()) if len(a.behind) else 0.0)
    return noises


def changed_generations(spec: JobSpec, texts: Sequence[str], cheats: Sequence[bytes], work: HonestWork) -> list[int]:
    """The generate/summarize tasks the cheat changed: other tokens than the honest ones that every
    reference's model puts outside the allowance of the honest sequence's noise somewhere (a token,
    or the end decision outside its end allowance), or with more near-ties than the budget, or a
    malformed sequence."""
    changed = []
    for index, (raw, noise) in enumerate(zip(cheats, work.noises, strict=True)):
        if raw == work.outputs[index]:
            continue
        parsed = parse_committed(index, raw)
        if not isinstance(parsed, dict) or compare.check_shape(work.models[0], spec, index, parsed) is not None:
            changed.append(index)
            continue
        if not any(_tokens_within(model, spec, texts[index], parsed["tokens"], noise) for model in work.models):
            changed.append(index)
    return changed


def _tokens_within(model: LoadedModel, spec: JobSpec, text: str, tokens: list[int], noise: float) -> bool:
    [forced] = teacher_forced(model, spec, [text], [tokens])
    ends = compare.ends_of(tokens, forced.argmax, compare.stops_of(model))
    allowed, end_allowed = tolerance.generation_allowances(torch.full_like(forced.behind, noise), least=0.0)
    return compare.judge_tokens(0, forced.behind, allowed, ends, end_allowed).passed


def judged(references: References, spec: JobSpec, texts: Sequence[str], raw: Sequence[bytes]) -> list[TaskAudit]:
    """The verifier's judgement of every task, by the audit path."""
    return references.audit(spec, list(texts), list(range(len(raw))), dict(enumerate(raw)))


def caught(audits: Sequence[TaskAudit], indices: Sequence[int]) -> int:
    return sum(audits[index].outcome is Outcome.FAIL for index in indices)

