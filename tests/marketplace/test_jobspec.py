"""Job specs and input manifests: strict parsing, and errors that name the field."""

from __future__ import annotations

import json

import pytest

from marketplace.errors import JobSpecError
from marketplace.jobspec import JobSpec, inputs_manifest, parse_inputs, parse_spec

CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
GOOD = {"version": 1, "task": "embed", "model": CID, "inputs": CID, "num_tasks": 2}


def test_round_trip_is_canonical() -> None:
    spec = parse_spec(json.dumps(GOOD).encode())
    assert spec.parameters.max_input_tokens == 512
    assert parse_spec(spec.to_bytes()) == spec
    assert spec.to_bytes() == JobSpec(**GOOD).to_bytes()


@pytest.mark.parametrize(("change", "field", "reason"), [
    ({"task": "mine-bitcoin"}, "task", "Input should be"),
    ({"model": "not-a-cid"}, "model", "not a CID"),
    ({"num_tasks": 0}, "num_tasks", "greater than or equal to 1"),
    ({"version": 2}, "version", "Input should be 1"),
    ({"surprise": True}, "surprise", "Extra inputs"),
    ({"parameters": {"max_new_tokens": 100_000}}, "parameters.max_new_tokens", "less than or equal"),
])
def test_bad_fields_are_named(change: dict, field: str, reason: str) -> None:
    with pytest.raises(JobSpecError) as caught:
        parse_spec(json.dumps({**GOOD, **change}).encode())
    assert caught.value.field == field
    assert reason in caught.value.reason


@pytest.mark.parametrize("data", [b"", b"{", b"[1]", b"\xff\xfe", b" " * 70_000])
def test_not_a_spec(data: bytes) -> None:
    with pytest.raises(JobSpecError) as caught:
        parse_spec(data)
    assert caught.value.field == "<spec>"


def test_inputs_accept_strings_and_text_objects() -> None:
    assert parse_inputs(b'"plain"\n{"text": "object"}\n\n', 2) == ["plain", "object"]
    assert parse_inputs(inputs_manifest(["ünïcode", "line\nbreak"]), 2) == ["ünïcode", "line\nbreak"]


@pytest.mark.parametrize(("data", "field"), [
    (b'"a"\n{"nope": 1}\n', "inputs[2]"),
    (b'"a"\nnot json\n', "inputs[2]"),
    (b'"a"\n""\n', "inputs[2]"),
    (b'"a"\n', "inputs"),
])
def test_bad_inputs_are_named(data: bytes, field: str) -> None:
    with pytest.raises(JobSpecError) as caught:
        parse_inputs(data, 2)
    assert caught.value.field == field


def test_oversized_input_is_refused() -> None:
    with pytest.raises(JobSpecError, match="over the 100000 limit"):
        parse_inputs(json.dumps("x" * 100_001).encode(), 1)
