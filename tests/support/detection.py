"""Which tasks a cheat changed, and whether the verifier caught them: the measure of ``bench_verify.py``
and the detection tests.

A cheat has changed a task when its answer lies outside what the comparator promises to accept from
honest work on that input: the allowance (``verifier.tolerance``) scaled to the honest noise of the
same input, measured here as the distance between the honest answer in fp32 and in bf16. An answer
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
from typing import Any

from marketplace.jobspec import JobSpec, TaskType
from provider.runtime import LoadedModel
from verifier import compare, tolerance
from verifier.committed import parse_committed
from verifier.forced import teacher_forced
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


def changed_answers(kind: TaskType, cheats: Sequence[bytes], honest: Sequence[bytes],
                    noises: Sequence[float]) -> list[int]:
    """The embed/classify tasks the cheat changed (see the module docstring)."""
    least = tolerance.sample_noise(noises)
    scale = tolerance.embed_allowance if kind == TaskType.EMBED else tolerance.classify_allowance
    changed = []
    for index, (raw, right, noise) in enumerate(zip(cheats, honest, noises, strict=True)):
        if raw == right:
            continue
        parsed = parse_committed(index, raw)
        if not isinstance(parsed, dict):
            changed.append(index)
            continue
        truth = json.loads(right)
        allowed = scale(max(noise, least)).value
        if answer_distance(kind, parsed, truth) > allowed:
            changed.append(index)
        elif kind == TaskType.CLASSIFY and parsed.get("label_id") != truth["label_id"]:
            ranked = sorted(truth["probabilities"], reverse=True)
            if ranked[0] - ranked[1] > allowed:
                changed.append(index)
    return changed


def generation_noise(fp32: LoadedModel, bf16: LoadedModel, spec: JobSpec, texts: Sequence[str],
                     honest: Sequence[bytes]) -> list[float]:
    """Per task, the honest sequence's noise: fp32 against bf16, teacher-forced over the honest tokens."""
    tokens = [json.loads(raw)["tokens"] for raw in honest]
    noises = []
    for text, committed in zip(texts, tokens, strict=True):
        [a] = teacher_forced(fp32, spec, [text], [committed])
        [b] = teacher_forced(bf16, spec, [text], [committed], probe=[a.top_ids])
        noises.append(float(b.noise_against(a).max()))
    return noises


def changed_generations(fp32: LoadedModel, spec: JobSpec, texts: Sequence[str], cheats: Sequence[bytes],
                        honest: Sequence[bytes], noises: Sequence[float]) -> list[int]:
    """The generate/summarize tasks the cheat changed: other tokens than the honest ones, of which the
    provider's own fp32 model puts one outside the allowance of the honest sequence's noise (the end
    decision outside its end allowance), or more near-ties than the budget, or a malformed sequence."""
    least = tolerance.sample_noise(noises)
    stops = compare.stops_of(fp32)
    changed = []
    for index, (raw, right, noise) in enumerate(zip(cheats, honest, noises, strict=True)):
        if raw == right:
            continue
        parsed = parse_committed(index, raw)
        if not isinstance(parsed, dict) or compare.check_shape(fp32, spec, index, parsed) is not None:
            changed.append(index)
            continue
        noise = max(noise, least)
        [forced] = teacher_forced(fp32, spec, [texts[index]], [parsed["tokens"]])
        ends = compare.ends_of(parsed["tokens"], forced.argmax, stops)
        check = compare.judge_tokens(index, forced.behind, tolerance.logit_allowance(noise).value, ends,
                                     tolerance.end_allowance(noise))
        if not check.passed:
            changed.append(index)
    return changed


def changed_tasks(kind: TaskType, fp32: LoadedModel, bf16: LoadedModel, spec: JobSpec, texts: Sequence[str],
                  cheats: Sequence[bytes], honest: Sequence[bytes], honest_bf16: Sequence[bytes]) -> list[int]:
    """The tasks a cheat changed, for any task type."""
    if kind in GENERATIVE:
        noises = generation_noise(fp32, bf16, spec, texts, honest)
        return changed_generations(fp32, spec, texts, cheats, honest, noises)
    return changed_answers(kind, cheats, honest, answer_noise(kind, honest, honest_bf16))


def judged(references: References, spec: JobSpec, texts: Sequence[str], raw: Sequence[bytes]) -> list[TaskAudit]:
    """The verifier's judgement of every task, by the audit path."""
    return references.audit(spec, list(texts), list(range(len(raw))), dict(enumerate(raw)))


def caught(audits: Sequence[TaskAudit], indices: Sequence[int]) -> int:
    return sum(audits[index].outcome is Outcome.FAIL for index in indices)

