"""Committed outputs as the verifier reads them: parsed with bounds, checked for their form.

A committed output is hostile input: the provider chose every byte. Parsing and form checks must
refuse it with a reason (a failed task, ``TaskCheck(malformed=True)``), never raise: an exception
would be taken for the verifier's own failure, retried until the window closes, and the provider
paid. Both are total: ``parse_committed`` on any bytes, ``form_error`` on any value.

``parse_committed`` is ``marketplace.output_json.parse_output`` (the requester's SDK reads outputs
with it too), its refusal turned into a malformed task: more than ``MAX_OUTPUT_BYTES`` (1 MiB), not
UTF-8, nested deeper than ``MAX_DEPTH`` (4, counted before ``json.loads`` recurses), ``NaN`` or
``Infinity`` or a float overflow, an integer of more than ``MAX_INT_DIGITS`` (18) digits, a top level
that is not an object, or a key twice. That module's docstring says why each bound is where it is.

``form_error`` checks a parsed output's form for its task family, without the model's forward pass
(one function for all four types; ``expected_form`` gives the bounds a loaded model implies):

- ``embed``: ``{"embedding"}``, a flat list of ``dimension`` real numbers (``bool`` is not one), each
  in [-1, 1] and of norm 1 within ``NORM_TOLERANCE`` (the runtime L2-normalizes; rounding to 7
  decimals moves the norm by at most sqrt(d) x 5e-8); so never all zeros.
- ``classify``: ``{"label", "label_id", "probabilities"}``: ``classes`` numbers in [0, 1] summing to 1
  within ``probability_sum_tolerance(classes)``; ``label_id`` an int (not a bool) in range, ``label``
  its name; and the label the most probable class of the committed probabilities (ties allowed:
  rounding can make two classes equal, never reverse them). A self-contradicting answer is malformed.
- ``generate`` / ``summarize``: ``{"text", "tokens"}``: 1 to ``max_new_tokens`` token ids (ints, not
  bools) in [0, ``vocabulary``), nothing after an end-of-sequence token, an early stop only on one,
  and ``text`` the decoding of the tokens. The cheap checks come first: the tokens are decoded only
  once their number and ids are known to be in range.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypedDict

from marketplace.jobspec import TaskType
from marketplace.output_json import (
    MAX_DEPTH,
    MAX_INT_DIGITS,
    MAX_OUTPUT_BYTES,
    OutputNotJSONError,
    OutputRefusedError,
    clip,
    describe,
    nesting_depth,
    parse_output,
)
from verifier.task_check import TaskCheck

if TYPE_CHECKING:
    from marketplace.jobspec import JobSpec
    from provider.runtime import LoadedModel

NORM_TOLERANCE = 1e-3
# A sum of n probabilities, each rounded to 7 decimals (off by <= 5e-8) from a float32 softmax
# (whose own sum is off by up to about n x 2**-24): at most n x 1.1e-7 from 1, plus a fixed slack.
# Measured on random logits: 2e-7 for 3 classes, 3.7e-6 for 1,000, 7.8e-5 for 30,000.
PROBABILITY_SUM_SLACK = 1e-6
PROBABILITY_SUM_PER_CLASS = 1.1e-7

FIELDS = {
    TaskType.EMBED: frozenset({"embedding"}),
    TaskType.CLASSIFY: frozenset({"label", "label_id", "probabilities"}),
    TaskType.GENERATE: frozenset({"text", "tokens"}),
    TaskType.SUMMARIZE: frozenset({"text", "tokens"}),
}


class ExpectedForm(TypedDict, total=False):
    """``form_error``'s bounds, as ``expected_form`` derives them from a loaded model and a spec."""

    dimension: int | None
    classes: int | None
    labels: Mapping[int, str] | None
    vocabulary: int | None
    max_new_tokens: int | None
    stops: set[int] | None
    decode: Callable[[list[int]], str] | None


# ───────────────────────────────────────────── parsing


def parse_committed(index: int, raw: bytes) -> dict[str, Any] | TaskCheck:
    """Task ``index``'s committed output as a JSON object, or a malformed ``TaskCheck`` saying why not.
    Total: whatever ``raw`` holds, this returns (``parse_output``'s bounds)."""
    try:
        return parse_output(raw)
    except OutputNotJSONError as error:
        return _malformed(index, f"committed output is {error}")
    except OutputRefusedError as error:
        return _malformed(index, f"committed output refused: {error}")


# ───────────────────────────────────────────── form


def expected_form(loaded: LoadedModel, spec: JobSpec) -> ExpectedForm:
    """The bounds ``form_error`` checks a committed output of ``spec`` against, from the loaded model:
    ``form_error(spec.task, index, value, **expected_form(loaded, spec))``. An embedding's dimension is
    left out (pass ``dimension=len(reference)``): not every architecture names it in its config."""
    model = loaded.model
    if spec.task == TaskType.EMBED:
        return {}
    if spec.task == TaskType.CLASSIFY:
        return {"classes": int(model.config.num_labels), "labels": dict(model.config.id2label)}
    eos = model.generation_config.eos_token_id
    stops = set(eos if isinstance(eos, list) else [eos]) - {None}
    tokenizer = loaded.tokenizer
    return {"vocabulary": int(model.get_output_embeddings().weight.shape[0]),
            "max_new_tokens": spec.parameters.max_new_tokens, "stops": stops,
            "decode": lambda tokens: str(tokenizer.decode(tokens, skip_special_tokens=True))}


def form_error(task: TaskType, index: int, value: Any, *, dimension: int | None = None, classes: int | None = None,
               labels: Mapping[int, str] | None = None, vocabulary: int | None = None,
               max_new_tokens: int | None = None, stops: set[int] | None = None,
               decode: Callable[[list[int]], str] | None = None) -> TaskCheck | None:
    """Why task ``index``'s parsed output ``value`` is malformed for ``task``, as a failed ``TaskCheck``,
    or ``None`` when its form is right. A bound left ``None`` is not checked. Total on any ``value``."""
    if not isinstance(value, dict):
        return _malformed(index, f"the output is {describe(value)}, not an object")
    fields = FIELDS.get(task) if isinstance(task, str) else None
    if fields is None:
        return _malformed(index, f"no form is known for task {describe(task)}")
    missing = sorted(fields - value.keys())
    extra = sorted(clip(key) if isinstance(key, str) else describe(key) for key in value.keys() - fields)
    if missing or extra:
        return _malformed(index, f"fields missing: {', '.join(missing) or 'none'}; "
                                 f"unexpected: {', '.join(extra[:3]) or 'none'}")
    if task == TaskType.EMBED:
        reason = _embedding_error(value["embedding"], dimension)
    elif task == TaskType.CLASSIFY:
        reason = _classification_error(value, classes, labels)
    else:
        reason = _tokens_error(value["tokens"], value["text"], vocabulary, max_new_tokens, stops or set(), decode)
    return None if reason is None else _malformed(index, reason)


def _embedding_error(vector: Any, dimension: int | None) -> str | None:
    if not isinstance(vector, list):
        return f"embedding is {describe(vector)}, not a list of numbers"
    if not vector or (dimension is not None and len(vector) != dimension):
        return f"embedding has {len(vector)} numbers, the model gives {dimension or 'at least 1'}"
    for position, number in enumerate(vector):
        if not _is_real(number):
            return f"embedding[{position}] is {describe(number)}, not a number"
        if not -1 <= number <= 1:  # exact for ints of any size; false for NaN
            return f"embedding[{position}] is {describe(number)}, outside [-1, 1] (a unit vector's range)"
    norm = math.sqrt(math.fsum(float(number) ** 2 for number in vector))
    if norm == 0:
        return "embedding is all zeros"
    if abs(norm - 1) > NORM_TOLERANCE:
        return f"embedding has norm {norm:.6f}, not 1 (within {NORM_TOLERANCE}): the runtime L2-normalizes"
    return None


def probability_sum_tolerance(classes: int) -> float:
    """How far from 1 an honest output's ``classes`` rounded probabilities may sum."""
    return PROBABILITY_SUM_SLACK + PROBABILITY_SUM_PER_CLASS * classes


def _classification_error(value: dict[str, Any], classes: int | None, labels: Mapping[int, str] | None) -> str | None:
    probabilities, label_id, label = value["probabilities"], value["label_id"], value["label"]
    if not isinstance(probabilities, list):
        return f"probabilities are {describe(probabilities)}, not a list of numbers"
    if not probabilities or (classes is not None and len(probabilities) != classes):
        return f"{len(probabilities)} probabilities, the model has {classes or 'at least 1'} classes"
    for position, probability in enumerate(probabilities):
        if not _is_real(probability):
            return f"probabilities[{position}] is {describe(probability)}, not a number"
        if not 0 <= probability <= 1:  # false for NaN
            return f"probabilities[{position}] is {describe(probability)}, outside [0, 1]"
    total = math.fsum(float(probability) for probability in probabilities)
    tolerance = probability_sum_tolerance(len(probabilities))
    if abs(total - 1) > tolerance:
        return f"probabilities sum to {total:.7f}, not 1 (within {tolerance:.1e})"
    if type(label_id) is not int:
        return f"label_id is {describe(label_id)}, not an integer"
    if not 0 <= label_id < len(probabilities):
        return f"label_id {describe(label_id)} is not one of the {len(probabilities)} classes"
    name = labels.get(label_id, label_id) if labels is not None else label_id
    if not isinstance(label, str) or label != str(name):
        return f"label {describe(label)} does not name class {label_id} ({describe(str(name))})"
    best = max(range(len(probabilities)), key=probabilities.__getitem__)
    if probabilities[label_id] < probabilities[best]:
        return (f"label_id {label_id} (probability {float(probabilities[label_id]):.7f}) is not the most probable "
                f"class: {best} has {float(probabilities[best]):.7f}")
    return None


def _tokens_error(tokens: Any, text: Any, vocabulary: int | None, max_new_tokens: int | None, stops: set[int],
                  decode: Callable[[list[int]], str] | None) -> str | None:
    if not isinstance(tokens, list) or not tokens:
        return f"tokens are {describe(tokens)}, not a non-empty list of token ids"
    if max_new_tokens is not None and len(tokens) > max_new_tokens:
        return f"{len(tokens)} tokens, over max_new_tokens {max_new_tokens}"
    for position, token in enumerate(tokens):
        if type(token) is not int:
            return f"tokens[{position}] is {describe(token)}, not a token id"
        if token < 0 or (vocabulary is not None and token >= vocabulary):
            return f"tokens[{position}] is {describe(token)}, outside the vocabulary [0, {vocabulary})"
    if any(token in stops for token in tokens[:-1]):
        return "tokens continue after the end-of-sequence token"
    if max_new_tokens is not None and len(tokens) < max_new_tokens and tokens[-1] not in stops:
        return f"stopped after {len(tokens)} of {max_new_tokens} tokens without end-of-sequence"
    if not isinstance(text, str):
        return f"text is {describe(text)}, not a string"
    if decode is not None:
        try:
            decoded = decode(tokens)
        except Exception as error:  # ids in range that the tokenizer cannot decode are no honest output
            return f"the tokens cannot be decoded ({type(error).__name__})"
        if text != decoded:
            return f"text ({len(text)} characters) does not decode from the tokens ({len(decoded)} characters)"
    return None


# ───────────────────────────────────────────── helpers


def _is_real(value: Any) -> bool:
    """An int or a finite float, not a bool (``True`` is an ``int`` to Python, not a number to JSON)."""
    return type(value) is int or (type(value) is float and math.isfinite(value))


def _malformed(index: int, reason: str) -> TaskCheck:
    return TaskCheck(index, False, reason, malformed=True)


__all__ = [  # the bounds and the depth scan are re-exported: they were defined here first
    "FIELDS",
    "MAX_DEPTH",
    "MAX_INT_DIGITS",
    "MAX_OUTPUT_BYTES",
    "NORM_TOLERANCE",
    "PROBABILITY_SUM_PER_CLASS",
    "PROBABILITY_SUM_SLACK",
    "ExpectedForm",
    "expected_form",
    "form_error",
    "nesting_depth",
    "parse_committed",
    "probability_sum_tolerance",
]
