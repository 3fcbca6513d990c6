"""A provider's output as anyone reads it: JSON parsed with bounds, or refused with a reason.

A provider chose every byte of its outputs, and they reach the verifier (``verifier.committed``),
the requester's SDK (``Client.results``) and ``webi job results``. Plain ``json.loads`` on them can
kill the reader's process or hand it values nothing downstream can use, so ``parse_output`` refuses,
before building anything large or deep, with ``OutputRefusedError``:

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

Bytes that are no JSON at all raise ``OutputNotJSONError``, an ``OutputRefusedError`` too: a
reader that only needs a reason catches the one, the verifier tells the two apart in its reasons.
Whether a parsed output has the right fields for its task is the verifier's concern
(``verifier.committed.form_error``), not this module's.
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any

MAX_OUTPUT_BYTES = 1024 * 1024
MAX_DEPTH = 4
MAX_INT_DIGITS = 18

# A string literal, escapes included, to its closing quote or (unterminated) to the end of the text:
# the pattern matches at every quote it starts on, so ``sub`` never backtracks over a failed attempt.
_STRINGS = re.compile(r'"[^"\\]*(?:\\(?:.|\Z)[^"\\]*)*(?:"|\Z)', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class OutputRefusedError(ValueError):
    """A provider's output is refused; ``reason`` (also the message) says why in a few words. A
    ``ValueError``, as ``json.loads`` would raise on bytes that are no JSON."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class OutputNotJSONError(OutputRefusedError):
    """The output is no JSON at all: ``detail`` is the decoder's own message, clipped."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"not canonical JSON ({clip(detail, 80)})")
        self.detail = detail


def parse_output(raw: bytes | bytearray | memoryview) -> dict[str, Any]:
    """``raw`` as a JSON object, or ``OutputRefusedError`` saying why not. Whatever ``raw`` holds, this
    returns or raises that error, in time linear in its length (see the module docstring for the bounds)."""
    try:
        return _parse(raw)
    except OutputRefusedError:
        raise
    except (ValueError, RecursionError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise OutputNotJSONError(str(error)) from None


def _parse(raw: bytes | bytearray | memoryview) -> dict[str, Any]:
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise OutputRefusedError(f"it is {type(raw).__name__}, not bytes")
    if len(raw) > MAX_OUTPUT_BYTES:
        raise OutputRefusedError(f"{len(raw)} bytes, over the bound of {MAX_OUTPUT_BYTES}")
    text = _bounded_text(raw, MAX_DEPTH)
    value = json.loads(text, parse_constant=_constant, parse_int=_integer, parse_float=_float,
                       object_pairs_hook=_object)
    if not isinstance(value, dict):
        raise OutputRefusedError(f"the top level is {describe(value)}, not an object")
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


# json.loads's hooks: what they raise leaves json.loads as it is.


def _constant(name: str) -> Any:
    raise OutputRefusedError(f"{name} is not a number a model gives")


def _integer(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        raise OutputRefusedError(f"an integer of {len(digits.lstrip('-'))} digits (at most {MAX_INT_DIGITS})")
    return int(digits)


def _float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise OutputRefusedError(f"{clip(literal)} overflows a float")
    return value


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for key, item in pairs:
        if key in value:
            raise OutputRefusedError(f"the key {describe(key)} appears twice")
        value[key] = item
    return value


# ───────────────────────────────────────────── reasons


def clip(text: str, limit: int = 40) -> str:
    """``text`` cut to ``limit`` characters for a reason, saying how long it was."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def describe(value: Any) -> str:
    """A short description of a parsed value for a reason: never the repr of something huge (a repr
    of an int of more than 4,300 digits even raises)."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int):
        return str(value) if abs(value) < 10**MAX_INT_DIGITS else f"an integer of {value.bit_length()} bits"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return repr(clip(value))
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return f"an object of {len(value)} fields"
    return type(value).__name__


__all__ = [
    "MAX_DEPTH",
    "MAX_INT_DIGITS",
    "MAX_OUTPUT_BYTES",
    "OutputNotJSONError",
    "OutputRefusedError",
    "clip",
    "describe",
    "nesting_depth",
    "parse_output",
]


MAX_DOCUMENT_DEPTH = 64  # specs, evidence and metadata documents nest a few levels


def parse_document(raw: bytes, max_depth: int = MAX_DOCUMENT_DEPTH) -> Any:
    """A JSON document someone else stored (a verifier's evidence, a spec, registration metadata),
    with its nesting bounded before ``json.loads`` recurses into it: ``OutputRefusedError`` (a
    ``ValueError``, as ``json.loads``'s own errors are) when deeper or not UTF-8. Unlike
    ``parse_output`` it keeps JSON's number rules: these documents are read, not compared."""
    return json.loads(_bounded_text(raw, max_depth))


def _bounded_text(raw: bytes | bytearray | memoryview, max_depth: int) -> str:
    """``raw`` as UTF-8 text nesting at most ``max_depth`` deep, or ``OutputRefusedError``: what must
    hold before ``json.loads`` may recurse into it."""
    try:
        text = bytes(raw).decode("utf-8")
    except UnicodeDecodeError as error:
        raise OutputRefusedError(f"not UTF-8 at byte {error.start}") from None
    depth = nesting_depth(text)
    if depth > max_depth:
        raise OutputRefusedError(f"nested {depth} levels deep, more than {max_depth}")
    return text
