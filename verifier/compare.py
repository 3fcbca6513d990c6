"""Is a committed output what the model gives? One comparator per task type, tolerant of honest noise.

Floating point differs across GPUs, dtypes and batch compositions, so an honest provider's numbers
never match the verifier's bit for bit; a cheat's are further off. Each comparator measures one
distance, and a committed output passes within an allowance of it (``verifier.tolerance``: a
multiple of the noise the verifier's two references show on the same input, with a floor, never
more than the fixed outer bound):

- ``embed``: 1 - cosine similarity of the committed and recomputed vectors.
- ``classify``: the largest difference between committed and recomputed probabilities, and the same
  label unless the recomputed top two are within twice the allowance of each other (a near-tie
  rounding may flip).
- ``generate`` / ``summarize``: no re-generation. One teacher-forced forward pass over the prompt
  and the committed tokens (``verifier.forced``) gives the verifier's logits at every position; each
  committed token must be the argmax or within the allowance of its logit, at most
  ``NEAR_TIE_BUDGET`` (10 %, at least ``NEAR_TIE_FLOOR`` = 2) of the tokens may be such near-ties,
  and the end-of-sequence decision (where the committed token, or the argmax, ends the sequence)
  gets the noise's multiple only, no floor. The sequence must end where greedy decoding ends: with
  the end-of-sequence token, or at ``max_new_tokens``.

Before any number is compared, the output's form is checked (``verifier.committed``): bounded
parsing, finite numbers, the right length, probabilities that sum to one, tokens in the vocabulary.
A hostile output is a failed task with a reason, never an exception.

What a pass promises: the committed answer is within the allowance of the verifier's own computation.
``scripts/bench_verify.py`` measures both sides: the honest false-positive rate across dtypes and
batch sizes, and each cheat's detection on trained test models and MiniLM.

``check_tasks`` is the one-reference check (no noise measured, so the outer bounds apply): the
provider's model screen uses it to ask whether fp32 and bf16 agree at all. Audits go through
``verifier.verdict.References``, which measures the noise and scales the allowance.
"""

from __future__ import annotations

import json
import math
from typing import Any

import torch

from marketplace.jobspec import JobSpec, TaskType
from provider.runtime import LoadedModel, Runtime
from verifier.committed import expected_form, form_error, parse_committed
from verifier.forced import token_gaps
from verifier.task_check import TaskCheck
from verifier.tolerance import (
    CLASSIFY_PROB_TOLERANCE,
    EMBED_MIN_COSINE,
    LOGIT_FLOOR,
    NEAR_TIE_BUDGET,
    NEAR_TIE_FLOOR,
    NEAR_TIE_LOGITS,
    near_tie_budget,
)

__all__ = ["CLASSIFY_PROB_TOLERANCE", "EMBED_MIN_COSINE", "NEAR_TIE_BUDGET", "NEAR_TIE_FLOOR", "NEAR_TIE_LOGITS",
           "TaskCheck", "check_shape", "check_tasks", "compare_pair", "ends_of", "first_deviation",
           "judge_tokens", "near_tie_budget", "parse_committed", "reference_gap", "stops_of", "token_gaps",
           "within_spread"]


def compare_pair(task: TaskType, index: int, theirs: dict[str, Any], mine: dict[str, Any],
                 labels: dict[int, str], allowance: float | None = None) -> TaskCheck:
    """``theirs`` (a committed output, or one reference) against ``mine`` (a recomputed one), for
    ``embed`` and ``classify``, within ``allowance`` (1 - cosine, or probability; the outer bound
    when ``None``): the same whoever produced ``theirs``. Its form is checked first
    (``committed.form_error``): a malformed output is refused before any number is compared."""
    refused = form_error(task, index, theirs, dimension=len(mine["embedding"])) if task == TaskType.EMBED else \
        form_error(task, index, theirs, classes=len(mine["probabilities"]), labels=labels)
    if refused is not None:
        return refused
    if task == TaskType.EMBED:
        return _embed(index, theirs, mine, 1.0 - EMBED_MIN_COSINE if allowance is None else allowance)
    return _classify(index, theirs, mine, labels, CLASSIFY_PROB_TOLERANCE if allowance is None else allowance)


def check_tasks(runtime: Runtime, spec: JobSpec, inputs: list[str], indices: list[int],
                committed: dict[int, bytes]) -> list[TaskCheck]:
    """Re-executes (or teacher-forces) the tasks at ``indices`` and compares with ``committed`` under
    one reference and the outer bounds (see the module docstring)."""
    parsed: dict[int, dict[str, Any]] = {}
    checks: dict[int, TaskCheck] = {}
    for index in indices:
        value = parse_committed(index, committed[index])
        if isinstance(value, TaskCheck):
            checks[index] = value
        else:
            parsed[index] = value
    todo = [index for index in indices if index in parsed]
    if spec.task in (TaskType.EMBED, TaskType.CLASSIFY):
        recomputed = runtime.run(spec, inputs, indices=todo) if todo else []
        labels = runtime.load(spec, runtime.devices[0]).model.config.id2label
        for index, mine in zip(todo, recomputed, strict=True):
            checks[index] = compare_pair(spec.task, index, parsed[index], json.loads(mine), labels)
    else:
        checks.update(_teacher_forced_all(runtime.load(spec, runtime.devices[0]), spec, todo, inputs, parsed))
    return [checks[index] for index in indices]


def embed_cosine(a: list[float], b: list[float]) -> float:
    """Cosine similarity in float64 (0 for a zero vector, which ``committed`` refuses anyway)."""
    first = torch.tensor(a, dtype=torch.float64)
    second = torch.tensor(b, dtype=torch.float64)
    return float(torch.nn.functional.cosine_similarity(first, second, dim=0))


def _embed(index: int, theirs: dict[str, Any], mine: dict[str, Any], allowance: float) -> TaskCheck:
    vector = theirs.get("embedding")
    if not isinstance(vector, list) or len(vector) != len(mine["embedding"]):
        return TaskCheck(index, False, "embedding missing or of the wrong dimension", malformed=True)
    try:
        cosine = embed_cosine(vector, mine["embedding"])
    except (TypeError, ValueError, RuntimeError, OverflowError):
        return TaskCheck(index, False, "embedding is not a list of numbers", malformed=True)
    if math.isnan(cosine) or 1.0 - cosine > allowance:
        return TaskCheck(index, False, f"1 - cosine {1.0 - cosine:.2e} > allowance {allowance:.2e}", cosine,
                         allowance=allowance)
    return TaskCheck(index, True, f"1 - cosine {1.0 - cosine:.2e} within allowance {allowance:.2e}", cosine,
                     allowance=allowance)


def _classify(index: int, theirs: dict[str, Any], mine: dict[str, Any], labels: dict[int, str],
              allowance: float) -> TaskCheck:
    probabilities = theirs.get("probabilities")
    expected = mine["probabilities"]
    if not isinstance(probabilities, list) or len(probabilities) != len(expected):
        return TaskCheck(index, False, "probabilities missing or of the wrong length", malformed=True)
    try:
        gap = max(abs(float(p) - q) for p, q in zip(probabilities, expected, strict=True))
    except (TypeError, ValueError, OverflowError):
        return TaskCheck(index, False, "probabilities are not numbers", malformed=True)
    if math.isnan(gap):
        return TaskCheck(index, False, "probabilities are not finite numbers", malformed=True)
    ranked = sorted(expected, reverse=True)
    # Two probabilities each moved by up to the allowance can swap places when they were within twice it.
    near_tie = len(ranked) > 1 and ranked[0] - ranked[1] <= 2 * allowance
    label_id = theirs.get("label_id")
    if not isinstance(label_id, int) or isinstance(label_id, bool) or label_id not in range(len(expected)) \
            or theirs.get("label") != str(labels.get(label_id, label_id)):
        return TaskCheck(index, False, f"label {theirs.get('label')!r} does not name class {label_id!r}", gap,
                         malformed=True)
    if label_id != mine["label_id"] and not near_tie:
        return TaskCheck(index, False, f"label {theirs.get('label')!r}, recomputed {mine['label']!r}", gap,
                         allowance=allowance)
    if gap > allowance:
        return TaskCheck(index, False, f"probabilities differ by {gap:.2e} > allowance {allowance:.2e}", gap,
                         allowance=allowance)
    return TaskCheck(index, True, f"label and probabilities within allowance {allowance:.2e}", gap,
                     allowance=allowance)


def stops_of(loaded: LoadedModel) -> set[int]:
    """The model's end-of-sequence token ids."""
    eos = loaded.model.generation_config.eos_token_id
    return set(eos if isinstance(eos, list) else [eos]) - {None}


def check_shape(loaded: LoadedModel, spec: JobSpec, index: int, theirs: dict[str, Any]) -> TaskCheck | None:
    """What can be refused in a generation without the model's forward pass (``committed.form_error``):
    malformed tokens, the wrong length, an early stop without end-of-sequence, text that is not theirs."""
    return form_error(spec.task, index, theirs, **expected_form(loaded, spec))


def ends_of(tokens: list[int], argmax: list[int], stops: set[int]) -> torch.Tensor:
    """Per position, whether the end-of-sequence decision is at stake: the committed token or the
    reference's argmax ends the sequence."""
    return torch.tensor([token in stops or best in stops for token, best in zip(tokens, argmax, strict=True)],
                        dtype=torch.bool)


def _teacher_forced_all(loaded: LoadedModel, spec: JobSpec, todo: list[int], inputs: list[str],
                        parsed: dict[int, dict[str, Any]], batch: int = 32) -> dict[int, TaskCheck]:
    checks: dict[int, TaskCheck] = {}
    ready = []
    for index in todo:
        refused = check_shape(loaded, spec, index, parsed[index])
        if refused is None:
            ready.append(index)
        else:
            checks[index] = refused
    for start in range(0, len(ready), batch):
        group = ready[start:start + batch]
        gaps = token_gaps(loaded, spec, [inputs[i] for i in group], [parsed[i]["tokens"] for i in group])
        for index, behind in zip(group, gaps, strict=True):
            # One reference: no noise measured, so the end decision gets the floor, the rest the outer bound.
            checks[index] = judge_tokens(index, behind, end_allowance=LOGIT_FLOOR)
    return checks


Allowance = float | torch.Tensor  # one for the whole sequence, or one per position


def _over(behind: torch.Tensor, allowance: Allowance, ends: torch.Tensor | None, end_allowance: Allowance
          ) -> torch.Tensor:
    """Per position, whether the committed token is outside the allowance (the end allowance where the
    end-of-sequence decision is at stake)."""
    over = behind > allowance
    if ends is not None and len(ends) == len(behind):
        over = torch.where(ends, behind > end_allowance, over)
    return over | ~torch.isfinite(behind)  # a NaN is no near-tie: it is nothing the reference computed


def _at(allowance: Allowance, position: int) -> float:
    return float(allowance[position]) if isinstance(allowance, torch.Tensor) else float(allowance)


def _largest(allowance: Allowance) -> float:
    if isinstance(allowance, torch.Tensor):
        return float(allowance.max()) if len(allowance) else 0.0
    return float(allowance)


def judge_tokens(index: int, behind: torch.Tensor, allowance: Allowance = NEAR_TIE_LOGITS,
                 ends: torch.Tensor | None = None, end_allowance: Allowance = NEAR_TIE_LOGITS) -> TaskCheck:
    """A committed sequence against one reference: ``behind`` is how far each token is below the
    reference's argmax; ``ends`` marks the positions where the end of the sequence is decided;
    ``allowance``/``end_allowance`` one number or one per position."""
    mismatched = int((behind > 0).sum())
    worst = float(behind.max())
    budget = near_tie_budget(len(behind))
    over = _over(behind, allowance, ends, end_allowance)
    widest = _largest(allowance)
    if bool(over.any()):
        position = int(over.nonzero()[0])
        at_end = ends is not None and len(ends) == len(behind) and bool(ends[position])
        limit = _at(end_allowance, position) if at_end else _at(allowance, position)
        what = "the end-of-sequence decision" if at_end else "a token"
        return TaskCheck(index, False, f"{what} at position {position} is {float(behind[position]):.3f} logits "
                                       f"behind the argmax (> allowance {limit:.3f})", worst, allowance=limit)
    if mismatched > budget:
        return TaskCheck(index, False, f"{mismatched} near-tie tokens, over the budget of {budget}", worst,
                         allowance=widest)
    return TaskCheck(index, True, f"every token the argmax or within {widest:.3f} logits", worst, allowance=widest)


def first_deviation(behind: torch.Tensor, allowance: Allowance = NEAR_TIE_LOGITS, ends: torch.Tensor | None = None,
                    end_allowance: Allowance = NEAR_TIE_LOGITS) -> int | None:
    """The first position at which a committed sequence leaves one reference's allowance (a token
    outside it, or the near-tie that goes over the budget of the whole length), or ``None`` where it
    stays within: ``judge_tokens`` fails exactly when this is not ``None``."""
    budget = near_tie_budget(len(behind))
    over = _over(behind, allowance, ends, end_allowance).tolist()
    ties = 0
    for position, gap in enumerate(behind.tolist()):
        if over[position]:
            return position
        if gap > 0:
            ties += 1
            if ties > budget:
                return position
    return None


def within_spread(task: TaskType, theirs: dict[str, Any], a: dict[str, Any], b: dict[str, Any],
                  against_a: TaskCheck, against_b: TaskCheck, references: TaskCheck) -> bool:
    """Whether a committed ``embed``/``classify`` output lies among two references that disagree
    (beyond the outer bound): within (distance(A, B) + outer bound) of both, the distance being
    1 - cosine for ``embed`` and the largest probability gap for ``classify`` (whose label must then
    be one a reference gives). An output outside both references and outside that spread is wrong
    however unstable the model: the references' disagreement cannot excuse it."""
    to_a, to_b, apart = against_a.metric, against_b.metric, references.metric
    if to_a is None or to_b is None or apart is None:
        return False
    if task == TaskType.EMBED:
        tolerance = 1.0 - EMBED_MIN_COSINE
        return 1.0 - to_a <= (1.0 - apart) + tolerance and 1.0 - to_b <= (1.0 - apart) + tolerance
    if theirs.get("label_id") not in (a.get("label_id"), b.get("label_id")):
        return False
    return to_a <= apart + CLASSIFY_PROB_TOLERANCE and to_b <= apart + CLASSIFY_PROB_TOLERANCE


def reference_gap(index: int, behind: torch.Tensor) -> TaskCheck:
    """Whether two references agree along a committed sequence: ``behind`` is how far the first
    reference's argmax is behind the second's at each position, in the second's logits. Within
    ``NEAR_TIE_LOGITS`` (the outer bound) everywhere, each reference's choice is a near-tie of the other's."""
    worst = float(behind.max()) if len(behind) else 0.0
    if not bool(torch.isfinite(behind).all()):
        return TaskCheck(index, False, "a reference's logits are not finite: the references do not agree", worst)
    if worst > NEAR_TIE_LOGITS:
        return TaskCheck(index, False, f"the references' argmax tokens are {worst:.2f} logits apart "
                                       f"(> {NEAR_TIE_LOGITS})", worst)
    return TaskCheck(index, True, f"the references' argmax tokens are within {NEAR_TIE_LOGITS} logits", worst)
