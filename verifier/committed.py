"""Committed outputs as the verifier reads them: parsed with bounds, checked for their form.

A committed output is hostile input: the provider chose every byte. Parsing and form checks must
refuse it with a reason (a failed task, ``TaskCheck(malformed=True)``), never raise: an exception
would be taken for the verifier's own failure, retried until the window closes, and the provider
paid. Both are total: ``parse_committed`` on any bytes, ``form_error`` on any value.

``parse_committed`` refuses, before building anything large or deep:

- more than ``MAX_OUTPUT_BYTES`` (1 MiB). The largest honest outputs are far below it: an embedding
  of dimension 8,192 at 7 decimals is about 90 KB (``-0.1234567,`` is 11 bytes a number); 1,024
  generated tokens are 7 KB of ids plus their text, at most a few hundred KB even for tokens that
  decode to long strings; a classifier would need some 90,000 classes to reach it.
- bytes that are not UTF-8 (``results.canonical`` writes UTF-8; json.loads would also guess
  UTF-16 or UTF-32, and the depth scan below reads characters, not bytes);
- nesting deeper than ``MAX_DEPTH`` (4; canonical outputs nest 2 deep: an object holding a list).
  The depth is counted by a linear scan of the brackets outside strings *before* ``json.loads``,
  whose C parser recurses once per level: py_ecc raises ``sys.setrecursionlimit`` far enough that
  100,000 levels overflow the C stack and kill the process instead of raising ``RecursionError``;
- ``NaN``, ``Infinity`` and ``-Infinity`` (json.loads accepts them by default), and numbers that
  overflow a float (``1e400``);
- integers of more than ``MAX_INT_DIGITS`` (18) digits: token and label ids are far smaller, and
  a 400-digit integer raises ``OverflowError`` when converted to a float or a tensor;
- a top level that is not an object, and an object with a key twice (readers disagree on which
  value counts; canonical outputs never repeat a key).

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

import json
import math
import re
from collections.abc import Callable, Mapping
from itertools import accumulate
from typing import TYPE_CHECKING, Any, TypedDict

from marketplace.jobspec import TaskType
from verifier.task_check import TaskCheck

if TYPE_CHECKING:
    from marketplace.jobspec import JobSpec
    from provider.runtime import LoadedModel

MAX_OUTPUT_BYTES = 1024 * 1024
MAX_DEPTH = 4
MAX_INT_DIGITS = 18
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

# A string literal, escapes included, to its closing quote or (unterminated) to the end of the text:
# the pattern matches at every quote it starts on, so ``sub`` never backtracks over a failed attempt.
_STRINGS = re.compile(r'"[^"\\]*(?:\\(?:.|\Z)[^"\\]*)*(?:"|\Z)', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class _RefusedError(Exception):
    """Raised inside the parse (by json's hooks) to refuse an output; never leaves this module."""


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
    Total: whatever ``raw`` holds, this returns (see the module docstring for the bounds)."""
    try:
        return _parse(raw)
    except _RefusedError as error:
        return _malformed(index, f"committed output refused: {error}")
    except (ValueError, RecursionError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return _malformed(index, f"committed output is not canonical JSON ({_clip(str(error), 80)})")


def _parse(raw: bytes) -> dict[str, Any]:
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise _RefusedError(f"it is {type(raw).__name__}, not bytes")
    if len(raw) > MAX_OUTPUT_BYTES:
        raise _RefusedError(f"{len(raw)} bytes, over the bound of {MAX_OUTPUT_BYTES}")
    try:
        text = bytes(raw).decode("utf-8")
    except UnicodeDecodeError as error:
        raise _RefusedError(f"not UTF-8 at byte {error.start}") from None
    depth = nesting_depth(text)
    if depth > MAX_DEPTH:
        raise _RefusedError(f"nested {depth} levels deep, more than {MAX_DEPTH}")
    value = json.loads(text, parse_constant=_constant, parse_int=_integer, parse_float=_float,
                       object_pairs_hook=_object)
    if not isinstance(value, dict):
        raise _RefusedError(f"the top level is {_shown(value)}, not an object")
    return value


def nesting_depth(text: str) -> int:
    """How deep ``text``'s brackets nest outside string literals: the most brackets open at once
    (openers less closers, over every prefix). On JSON this is its depth; on anything else it is at
    least the depth ``json.loads`` recurses to before it stops, since up to that point the text is
    valid. Linear in ``len(text)``, and in C (regular expressions, ``accumulate``) whatever ``text``
    holds: a string literal with no closing quote runs to the end, as json.loads reads it, so no
    scan ever starts twice."""
    brackets = "".join(_BRACKETS.findall(_STRINGS.sub("", text)))
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def _constant(name: str) -> Any:
    raise _RefusedError(f"{name} is not a number a model gives")


def _integer(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        raise _RefusedError(f"an integer of {len(digits.lstrip('-'))} digits (at most {MAX_INT_DIGITS})")
    return int(digits)


def _float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise _RefusedError(f"{_clip(literal)} overflows a float")
    return value


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for key, item in pairs:
        if key in value:
            raise _RefusedError(f"the key {_shown(key)} appears twice")
        value[key] = item
    return value


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
        return _malformed(index, f"the output is {_shown(value)}, not an object")
    fields = FIELDS.get(task) if isinstance(task, str) else None
    if fields is None:
        return _malformed(index, f"no form is known for task {_shown(task)}")
    missing = sorted(fields - value.keys())
    extra = sorted(_clip(key) if isinstance(key, str) else _shown(key) for key in value.keys() - fields)
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
        return f"embedding is {_shown(vector)}, not a list of numbers"
    if not vector or (dimension is not None and len(vector) != dimension):
        return f"embedding has {len(vector)} numbers, the model gives {dimension or 'at least 1'}"
    for position, number in enumerate(vector):
        if not _is_real(number):
            return f"embedding[{position}] is {_shown(number)}, not a number"
        if not -1 <= number <= 1:  # exact for ints of any size; false for NaN
            return f"embedding[{position}] is {_shown(number)}, outside [-1, 1] (a unit vector's range)"
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
        return f"probabilities are {_shown(probabilities)}, not a list of numbers"
    if not probabilities or (classes is not None and len(probabilities) != classes):
        return f"{len(probabilities)} probabilities, the model has {classes or 'at least 1'} classes"
    for position, probability in enumerate(probabilities):
        if not _is_real(probability):
            return f"probabilities[{position}] is {_shown(probability)}, not a number"
        if not 0 <= probability <= 1:  # false for NaN
            return f"probabilities[{position}] is {_shown(probability)}, outside [0, 1]"
    total = math.fsum(float(probability) for probability in probabilities)
    tolerance = probability_sum_tolerance(len(probabilities))
    if abs(total - 1) > tolerance:
        return f"probabilities sum to {total:.7f}, not 1 (within {tolerance:.1e})"
    if type(label_id) is not int:
        return f"label_id is {_shown(label_id)}, not an integer"
    if not 0 <= label_id < len(probabilities):
        return f"label_id {_shown(label_id)} is not one of the {len(probabilities)} classes"
    name = labels.get(label_id, label_id) if labels is not None else label_id
    if not isinstance(label, str) or label != str(name):
        return f"label {_shown(label)} does not name class {label_id} ({_shown(str(name))})"
    best = max(range(len(probabilities)), key=probabilities.__getitem__)
    if probabilities[label_id] < probabilities[best]:
        return (f"label_id {label_id} (probability {float(probabilities[label_id]):.7f}) is not the most probable "
                f"class: {best} has {float(probabilities[best]):.7f}")
    return None


def _tokens_error(tokens: Any, text: Any, vocabulary: int | None, max_new_tokens: int | None, stops: set[int],
                  decode: Callable[[list[int]], str] | None) -> str | None:
    if not isinstance(tokens, list) or not tokens:
        return f"tokens are {_shown(tokens)}, not a non-empty list of token ids"
    if max_new_tokens is not None and len(tokens) > max_new_tokens:
        return f"{len(tokens)} tokens, over max_new_tokens {max_new_tokens}"
    for position, token in enumerate(tokens):
        if type(token) is not int:
            return f"tokens[{position}] is {_shown(token)}, not a token id"
        if token < 0 or (vocabulary is not None and token >= vocabulary):
            return f"tokens[{position}] is {_shown(token)}, outside the vocabulary [0, {vocabulary})"
    if any(token in stops for token in tokens[:-1]):
        return "tokens continue after the end-of-sequence token"
    if max_new_tokens is not None and len(tokens) < max_new_tokens and tokens[-1] not in stops:
        return f"stopped after {len(tokens)} of {max_new_tokens} tokens without end-of-sequence"
    if not isinstance(text, str):
        return f"text is {_shown(text)}, not a string"
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


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def _shown(value: Any) -> str:
    """A short description of ``value`` for a reason: never the repr of something huge (a repr of an
    int of more than 4,300 digits even raises)."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int):
        return str(value) if abs(value) < 10**MAX_INT_DIGITS else f"an integer of {value.bit_length()} bits"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return repr(_clip(value))
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return f"an object of {len(value)} fields"
    return type(value).__name__
