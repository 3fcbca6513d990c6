"""Hostile committed outputs: each is refused as a malformed task with a reason, never an exception,
and honest outputs of the tiny models pass the same parse and form checks."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.jobspec import JobSpec, TaskType, inputs_manifest
from marketplace.results import canonical
from marketplace.storage.local import LocalStore
from provider.runtime import Runtime
from tests.support.jobs import TEXTS
from tests.support.models import KINDS
from verifier.committed import (
    MAX_DEPTH,
    MAX_OUTPUT_BYTES,
    expected_form,
    form_error,
    nesting_depth,
    parse_committed,
    probability_sum_tolerance,
)
from verifier.task_check import TaskCheck

CPU = torch.device("cpu")
LABELS = {0: "negative", 1: "neutral", 2: "positive"}
CLASSIFY: dict[str, Any] = {"classes": 3, "labels": LABELS}
GENERATE: dict[str, Any] = {"vocabulary": 100, "max_new_tokens": 8, "stops": {3},
                            "decode": lambda tokens: " ".join(str(token) for token in tokens)}


def refused(check: Any, *words: str) -> None:
    """``check`` is a failed, malformed ``TaskCheck`` whose reason says each of ``words``."""
    assert isinstance(check, TaskCheck), check
    assert not check.passed and check.malformed, check
    assert check.reason and all(word in check.reason for word in words), check.reason


def embedding(vector: Any, dimension: int | None = 4) -> TaskCheck | None:
    return form_error(TaskType.EMBED, 0, {"embedding": vector}, dimension=dimension)


def classification(probabilities: Any, label_id: Any = 2, label: Any = None) -> TaskCheck | None:
    name = LABELS.get(label_id, "x") if label is None and type(label_id) is int else label
    value = {"label": name, "label_id": label_id, "probabilities": probabilities}
    return form_error(TaskType.CLASSIFY, 0, value, **CLASSIFY)


def generation(tokens: Any, text: Any = None) -> TaskCheck | None:
    if text is None and isinstance(tokens, list) and all(type(token) is int for token in tokens):
        text = GENERATE["decode"](tokens)
    return form_error(TaskType.GENERATE, 0, {"text": text, "tokens": tokens}, **GENERATE)


@pytest.fixture
def recursion_limit_raised() -> Iterator[None]:
    """The limit py_ecc sets on import (100,000), raised further: json.loads would then overflow the
    C stack (killing the process) on deep nesting rather than raise RecursionError."""
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(max(1_000_000, before))
    try:
        yield
    finally:
        sys.setrecursionlimit(before)


# ───────────────────────────────────────────── parse


def test_nesting_100k_deep_is_refused_before_parsing(recursion_limit_raised: None) -> None:
    refused(parse_committed(3, b"[" * 100_000 + b"]" * 100_000), "nested 100000 levels", f"more than {MAX_DEPTH}")
    refused(parse_committed(3, b'{"embedding":' + b"[" * 100_000), "nested 100001 levels")
    assert parse_committed(3, b"[" * 100_000 + b"]" * 100_000).index == 3  # type: ignore[union-attr]


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    assert parse_committed(0, b'{"text":"[[[[[[[[{{{{\\"[[[[","tokens":[1]}') == {"text": '[[[[[[[[{{{{"[[[[',
                                                                                    "tokens": [1]}
    assert nesting_depth('{"a":[[["]]]]]]]"]]]}') == 4
    assert nesting_depth('{"a":[[[[{"b":"x\\\\"}]]]]}') == 6
    assert nesting_depth('["[[[[') == 1  # the string runs to the end, as json.loads reads it


def test_unterminated_string_of_escaped_quotes_is_refused_quickly() -> None:
    """The depth scan is linear: a string of 300,000 escaped quotes that never closes is one scan."""
    refused(parse_committed(0, b'{"text":"' + b'\\"' * 300_000), "not canonical JSON")


def test_integer_of_400_digits_is_refused() -> None:
    refused(parse_committed(0, b'{"embedding":[' + b"9" * 400 + b"]}"), "integer of 400 digits")


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_literals_are_refused(literal: bytes) -> None:
    refused(parse_committed(0, b'{"embedding":[0.5,' + literal + b"]}"), literal.decode())


def test_float_that_overflows_is_refused() -> None:
    refused(parse_committed(0, b'{"embedding":[1e400]}'), "1e400", "overflows")


def test_huge_output_is_refused_unread() -> None:
    huge = b'{"text":"' + b"a" * MAX_OUTPUT_BYTES + b'","tokens":[5]}'
    refused(parse_committed(0, huge), str(len(huge)), "bytes")


@pytest.mark.parametrize("raw", [b"[1, 2]", b'"text"', b"7", b"null"])
def test_top_level_that_is_not_an_object_is_refused(raw: bytes) -> None:
    refused(parse_committed(0, raw), "not an object")


def test_duplicate_keys_are_refused() -> None:
    refused(parse_committed(0, b'{"label_id":0,"label_id":2}'), "label_id", "twice")


@pytest.mark.parametrize("raw", [b"\xff\xfe{}", '{"a":"b"}'.encode("utf-16"), b"not json", b"", b'{"a":1'])
def test_bytes_that_are_not_utf8_json_are_refused(raw: bytes) -> None:
    check = parse_committed(0, raw)
    refused(check)
    assert "UTF-8" in check.reason or "JSON" in check.reason  # type: ignore[union-attr]


# ───────────────────────────────────────────── embed


def test_embedding_of_single_element_lists_is_refused() -> None:
    """``[[x], ...]`` made torch raise ValueError."""
    refused(embedding([[0.5], [0.5], [0.5], [0.5]]), "embedding[0]", "a list of 1")


def test_embedding_of_pairs_is_refused() -> None:
    """``[[x, x], ...]`` made torch raise RuntimeError."""
    refused(embedding([[0.5, 0.5], [0.5, 0.5], [0.5, 0.5], [0.5, 0.5]]), "embedding[0]", "not a number")


def test_embedding_of_the_wrong_dimension_is_refused() -> None:
    refused(embedding([0.6, 0.8]), "2 numbers", "4")
    refused(embedding([]), "0 numbers")


def test_embedding_of_zeros_is_refused() -> None:
    refused(embedding([0.0, 0, 0.0, 0]), "all zeros")


def test_embedding_not_of_unit_norm_is_refused() -> None:
    refused(embedding([0.1, 0.1, 0.1, 0.1]), "norm 0.2", "not 1")


def test_embedding_with_a_huge_integer_is_refused() -> None:
    """An integer too large for a float (as if built by another parser) is compared exactly, never converted."""
    refused(embedding([10**400, 0.0, 0.0, 0.0]), "embedding[0]", "integer of 1329 bits", "[-1, 1]")


def test_embedding_with_booleans_or_nan_is_refused() -> None:
    refused(embedding([True, 0.0, 0.0, 0.0]), "embedding[0]", "true")
    refused(embedding([float("nan"), 0.0, 0.0, 0.0]), "embedding[0]", "nan")
    refused(embedding("0.5,0.5"), "not a list")


def test_unit_embedding_with_integers_passes() -> None:
    assert embedding([0, 1, 0, 0]) is None
    assert embedding([0.6, 0.0, -0.8, 0.0]) is None


# ───────────────────────────────────────────── classify


def test_probabilities_not_summing_to_one_are_refused() -> None:
    refused(classification([0.2, 0.2, 0.2]), "sum to 0.6")
    refused(classification([0.5, 0.5, 0.5]), "sum to 1.5")


def test_negative_probability_is_refused() -> None:
    refused(classification([-0.5, 0.5, 1.0]), "probabilities[0]", "-0.5", "[0, 1]")


def test_probabilities_of_the_wrong_length_are_refused() -> None:
    refused(classification([0.5, 0.5]), "2 probabilities", "3 classes")


def test_nan_probabilities_are_refused() -> None:
    """NaN passed every ``abs(a - b) > tolerance`` comparison: it must not get that far."""
    refused(classification([float("nan")] * 3), "probabilities[0]", "nan")


def test_label_that_is_not_the_argmax_is_refused() -> None:
    refused(classification([0.7, 0.2, 0.1], label_id=2), "label_id 2", "not the most probable", "0 has 0.7")


def test_label_tied_with_the_argmax_passes() -> None:
    """Rounding to 7 decimals may make two classes equal, never reverse their order."""
    assert classification([0.45, 0.1, 0.45], label_id=2) is None
    assert classification([0.45, 0.1, 0.45], label_id=0) is None


def test_label_id_bool_is_refused() -> None:
    refused(classification([0.1, 0.8, 0.1], label_id=True, label="neutral"), "label_id", "true", "not an integer")


def test_label_out_of_range_or_misnamed_is_refused() -> None:
    refused(classification([0.1, 0.1, 0.8], label_id=3, label="x"), "label_id 3")
    refused(classification([0.1, 0.1, 0.8], label_id=2, label="negative"), "'negative'", "class 2", "'positive'")


def test_labels_default_to_the_class_number() -> None:
    value = {"label": "1", "label_id": 1, "probabilities": [0.25, 0.75]}
    assert form_error(TaskType.CLASSIFY, 0, value, classes=2) is None
    refused(form_error(TaskType.CLASSIFY, 0, {**value, "label": 1}, classes=2), "label 1")


def test_sum_tolerance_covers_rounding_of_many_classes() -> None:
    """A float32 softmax rounded to 7 decimals, over 30,000 classes, sums within the tolerance."""
    generator = torch.Generator().manual_seed(0)
    probabilities = torch.softmax(torch.randn(30_000, generator=generator) * 5, dim=0)
    rounded = (probabilities.double() * 1e7).round().div(1e7).tolist()
    best = max(range(len(rounded)), key=rounded.__getitem__)
    value = {"label": str(best), "label_id": best, "probabilities": rounded}
    assert abs(sum(rounded) - 1) > probability_sum_tolerance(3)  # a small tolerance would refuse it
    assert form_error(TaskType.CLASSIFY, 0, value, classes=30_000) is None


# ───────────────────────────────────────────── generate / summarize


def test_tokens_sent_as_true_are_refused() -> None:
    """``true`` passed ``isinstance(t, int)`` and then raised in ``gather``."""
    refused(generation([True, True]), "tokens[0]", "true", "not a token id")
    refused(generation(True, text=""), "tokens are true")


def test_tokens_out_of_the_vocabulary_or_too_many_are_refused() -> None:
    refused(generation([5, 100, 3]), "tokens[1]", "100", "vocabulary")
    refused(generation([5, -1, 3]), "tokens[1]", "-1")
    refused(generation([5] * 9), "9 tokens", "max_new_tokens 8")
    refused(generation([]), "non-empty")


def test_tokens_after_the_end_or_an_early_stop_are_refused() -> None:
    refused(generation([5, 3, 6]), "after the end-of-sequence")
    refused(generation([5, 6]), "stopped after 2 of 8")
    assert generation([5, 6, 3]) is None
    assert generation([5] * 8) is None


def test_huge_text_is_refused_after_the_cheap_checks() -> None:
    """A megabyte of text with 9 tokens is refused on the tokens' count: nothing is decoded."""
    decoded: list[list[int]] = []

    def decode(tokens: list[int]) -> str:
        decoded.append(tokens)
        return "x"

    value = {"text": "x" * MAX_OUTPUT_BYTES, "tokens": [5] * 9}
    refused(form_error(TaskType.SUMMARIZE, 0, value, **{**GENERATE, "decode": decode}), "9 tokens")
    assert decoded == []
    refused(form_error(TaskType.SUMMARIZE, 0, {**value, "tokens": [5, 3]}, **{**GENERATE, "decode": decode}),
            "does not decode", f"{MAX_OUTPUT_BYTES} characters")
    assert decoded == [[5, 3]]


def test_text_that_is_not_the_decoding_is_refused() -> None:
    refused(generation([5, 3], text="5 4"), "does not decode")
    refused(generation([5, 3], text=["5 3"]), "text is a list")


def test_decoder_that_raises_refuses_the_task() -> None:
    def broken(tokens: list[int]) -> str:
        raise IndexError(tokens[99])

    refused(form_error(TaskType.GENERATE, 0, {"text": "", "tokens": [3]}, **{**GENERATE, "decode": broken}),
            "cannot be decoded", "IndexError")


# ───────────────────────────────────────────── fields, and totality


def test_missing_or_extra_fields_are_refused() -> None:
    refused(form_error(TaskType.EMBED, 0, {}), "missing: embedding")
    refused(form_error(TaskType.EMBED, 0, {"embedding": [1.0], "note": "x"}), "unexpected: note")
    refused(form_error(TaskType.GENERATE, 0, {"tokens": [3]}), "missing: text")
    refused(form_error(TaskType.CLASSIFY, 0, [0.5]), "not an object")


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
                    max_leaves=20)
NAMES = ("embedding", "label", "label_id", "probabilities", "text", "tokens")
FIELD_VALUES = st.fixed_dictionaries({}, optional=dict.fromkeys(NAMES, JSON))


@pytest.mark.fuzz
@settings(max_examples=400, deadline=None)
@given(task=st.sampled_from(list(TaskType)), value=FIELD_VALUES | JSON)
def test_form_error_never_raises(task: TaskType, value: Any) -> None:
    bounds = {TaskType.EMBED: {"dimension": 2}, TaskType.CLASSIFY: CLASSIFY}.get(task, GENERATE)
    check = form_error(task, 1, value, **bounds)
    assert check is None or (check.malformed and not check.passed and check.reason)


@pytest.mark.fuzz
@settings(max_examples=400, deadline=None)
@given(raw=st.binary(max_size=64) | JSON.map(lambda value: json.dumps(value).encode()))
def test_parse_committed_never_raises(raw: bytes) -> None:
    value = parse_committed(1, raw)
    assert isinstance(value, dict) or (value.malformed and not value.passed and value.reason)


# ───────────────────────────────────────────── honest outputs pass


@pytest.fixture(scope="module")
def honest(tmp_path_factory: pytest.TempPathFactory, bundles: dict[str, Path]) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("committed")
    store = LocalStore(root / "store")
    runtime = Runtime(store, root / "runtime", devices=[CPU])
    inputs = str(store.add_bytes(inputs_manifest(TEXTS)).cid)
    found = {}
    for kind in KINDS:
        spec = JobSpec(task=kind, model=str(store.add_path(bundles[kind], recursive=True).cid), inputs=inputs,
                       num_tasks=len(TEXTS), parameters={"max_new_tokens": 8})
        found[kind] = (spec, runtime.load(spec, CPU), runtime.run(spec, TEXTS))
    return found


@pytest.mark.parametrize("kind", KINDS)
def test_honest_outputs_parse_and_have_the_right_form(honest: dict[str, Any], kind: str) -> None:
    spec, loaded, outputs = honest[kind]
    bounds = expected_form(loaded, spec)
    for index, raw in enumerate(outputs):
        value = parse_committed(index, raw)
        assert isinstance(value, dict), value
        dimension = len(value["embedding"]) if kind == "embed" else None
        assert form_error(spec.task, index, value, dimension=dimension, **bounds) is None
    assert kind == "embed" or bounds  # the model gave the bounds it implies


def test_honest_generation_continued_past_the_end_is_refused(honest: dict[str, Any]) -> None:
    spec, loaded, outputs = honest["generate"]
    bounds = expected_form(loaded, spec)
    assert parse_committed(0, outputs[0]) == json.loads(outputs[0])
    tokens = [5, next(iter(bounds["stops"])), 5]
    forged = parse_committed(0, canonical({"text": bounds["decode"](tokens), "tokens": tokens}))
    refused(form_error(spec.task, 0, forged, **bounds), "after the end-of-sequence")
