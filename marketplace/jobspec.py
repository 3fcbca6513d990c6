"""The job spec: what a requester asks for, stored in the content store and named on-chain by CID.

A spec is untrusted input for every provider and verifier that reads it, so parsing is strict:
unknown fields, wrong types and out-of-range numbers are refused with a ``JobSpecError`` naming
the field. The spec is versioned (``version: 1``); a later version will be a new model here.

Inputs are a JSONL manifest, one task per line: a JSON string, or an object with a ``text`` field.

A job that only some providers may claim names them in ``allowlist``: the chain holds only the
Merkle root of that list (``JobTerms.allowlist_root``), so the spec is where a provider learns the
members and builds its claim proof.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from eth_utils.address import is_address, to_checksum_address
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from marketplace.errors import CidError, JobSpecError
from marketplace.job_limits import MAX_GROUP_SHARDS
from marketplace.job_limits import MAX_INPUT_CHARS as MAX_INPUT_CHARS
from marketplace.job_limits import MAX_NEW_TOKENS as MAX_NEW_TOKENS
from marketplace.job_limits import MAX_TASKS as MAX_TASKS
from marketplace.job_limits import TaskType as TaskType
from marketplace.sealed.envelope import Envelope
from marketplace.storage.cid import Cid

MAX_SPEC_BYTES = 64 * 1024
MAX_ALLOWLIST = 1_000  # 1,000 addresses are about 44 KiB of spec, under MAX_SPEC_BYTES
MAX_INPUT_TOKENS = 8_192


class Parameters(BaseModel):
    """Per-job inference parameters; the defaults suit small models."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_input_tokens: Annotated[int, Field(ge=1, le=MAX_INPUT_TOKENS)] = 512
    max_new_tokens: Annotated[int, Field(ge=1, le=MAX_NEW_TOKENS)] = 32


_PARAMETER_BOUNDS = {"max_input_tokens": MAX_INPUT_TOKENS, "max_new_tokens": MAX_NEW_TOKENS}


def parse_parameters(values: dict[str, Any]) -> Parameters:
    """``Parameters`` from a requester's values; ``JobSpecError`` naming the field and its bounds otherwise.
    A value out of bounds is refused, never replaced by the default: a 0 is not a request for 32 tokens."""
    for name, value in values.items():
        if name not in _PARAMETER_BOUNDS:
            raise JobSpecError(f"parameters.{name}", f"unknown parameter (known: {', '.join(_PARAMETER_BOUNDS)})")
        if type(value) is not int or not 1 <= value <= _PARAMETER_BOUNDS[name]:
            raise JobSpecError(f"parameters.{name}", f"{value!r} is out of bounds: 1 to {_PARAMETER_BOUNDS[name]}")
    return Parameters(**values)


class Shard(BaseModel):
    """Where one shard of a job group sits in the whole job: the ``index``-th of ``count`` shards, whose
    tasks are inputs ``first_task`` to ``first_task + num_tasks - 1`` of the ``total``.

    To a provider or verifier a shard is a whole job with its own inputs, root and audit; this section
    only lets the requester (and anyone reading the group) put the shards' outputs back in input order.
    It is the requester's claim, not the chain's: ``marketplace.groups`` checks that a group's shards tile
    ``0..total`` exactly before it merges anything.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    index: Annotated[int, Field(ge=0, lt=MAX_GROUP_SHARDS)]
    count: Annotated[int, Field(ge=1, le=MAX_GROUP_SHARDS)]
    first_task: Annotated[int, Field(ge=0)]
    total: Annotated[int, Field(ge=1, le=MAX_GROUP_SHARDS * MAX_TASKS)]


class JobSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    task: TaskType
    model: str = Field(description="CID of the model bundle: a UnixFS directory in Hugging Face layout")
    inputs: str = Field(description="CID of the input manifest: JSONL, one input per task")
    num_tasks: Annotated[int, Field(ge=1, le=MAX_TASKS)]
    parameters: Parameters = Parameters()
    allowlist: tuple[str, ...] = Field(default=(), max_length=MAX_ALLOWLIST,
                                       description="the providers who may claim (checksummed addresses, sorted)")
    confidential: Envelope | None = Field(
        default=None, description="a confidential job: what is sealed to which key (marketplace.sealed.envelope)")
    shard: Shard | None = Field(default=None, description="a job group's shard: its place in the whole job")

    @model_validator(mode="after")
    def _shard_fits(self) -> JobSpec:
        shard = self.shard
        if shard is not None and (shard.index >= shard.count or shard.first_task + self.num_tasks > shard.total):
            raise ValueError(f"shard {shard.index} of {shard.count} with tasks {shard.first_task} to "
                             f"{shard.first_task + self.num_tasks - 1} does not fit a job of {shard.total} tasks")
        return self

    @field_validator("model", "inputs")
    @classmethod
    def _is_cid(cls, value: str) -> str:
        try:
            return str(Cid.parse(value))
        except CidError as error:
            raise ValueError(str(error)) from None

    @field_validator("allowlist")
    @classmethod
    def _are_addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not all(isinstance(item, str) and is_address(item) for item in value):
            raise ValueError("every allowlist entry must be a 0x-prefixed 20-byte address")
        members = sorted({to_checksum_address(item) for item in value})
        if len(members) != len(value):
            raise ValueError("the allowlist names an address twice")
        return tuple(members)

    def to_bytes(self) -> bytes:
        """Canonical JSON (sorted keys, no spaces): the same spec always has the same CID.

        An empty allowlist, a missing envelope and a missing shard section are left out, so that specs
        without them keep the bytes (and CIDs) they had before the fields existed.
        """
        document = self.model_dump(mode="json")
        if not document["allowlist"]:
            del document["allowlist"]
        if document["confidential"] is None:
            del document["confidential"]
        if document["shard"] is None:
            del document["shard"]
        return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def parse_spec(data: bytes) -> JobSpec:
    """The spec in ``data``; ``JobSpecError`` naming the first bad field otherwise."""
    if len(data) > MAX_SPEC_BYTES:
        raise JobSpecError("<spec>", f"{len(data)} bytes is over the {MAX_SPEC_BYTES}-byte limit")
    try:
        raw = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise JobSpecError("<spec>", f"not JSON ({error})") from None
    if not isinstance(raw, dict):
        raise JobSpecError("<spec>", "must be a JSON object")
    try:
        return JobSpec.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "<spec>"
        raise JobSpecError(field, first["msg"]) from None


def parse_inputs(data: bytes, num_tasks: int) -> list[str]:
    """The task inputs of a JSONL manifest; there must be exactly ``num_tasks`` of them."""
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise JobSpecError("inputs", "the input manifest is not UTF-8") from None
    texts = []
    for number, (_, line) in enumerate(input_lines(text), start=1):
        if number > num_tasks:
            raise JobSpecError("inputs", f"the manifest has more than {num_tasks} inputs but the job has "
                                         f"{num_tasks} tasks")
        texts.append(input_text(line, number))
    if len(texts) != num_tasks:
        raise JobSpecError("inputs", f"the manifest has {len(texts)} inputs but the job has {num_tasks} tasks")
    return texts


def inputs_manifest(texts: list[str]) -> bytes:
    """The JSONL manifest for ``texts`` (what ``webi job post`` uploads)."""
    return b"".join(json.dumps({"text": text}, ensure_ascii=False).encode() + b"\n" for text in texts)


def input_lines(text: str) -> Iterator[tuple[int, str]]:
    """The non-blank lines of a JSONL text with their line numbers, split on ``\n`` only (a ``\r`` before it
    dropped): ``inputs_manifest`` writes U+2028 and its kin unescaped, which ``str.splitlines`` would split
    on. A generator, so that a caller can stop at a limit before a huge file becomes a huge list."""
    start = 0
    number = 0
    while start <= len(text):
        end = text.find("\n", start)
        end = len(text) if end < 0 else end
        number += 1
        line = text[start:end].removesuffix("\r")
        if line.strip():
            yield number, line
        start = end + 1


def input_text(line: str, number: int) -> str:
    try:
        value: Any = json.loads(line)
    except json.JSONDecodeError as error:
        raise JobSpecError(f"inputs[{number}]", f"not JSON ({error.msg})") from None
    except (ValueError, RecursionError) as error:  # an integer of over 4,300 digits; nesting past the limit
        raise JobSpecError(f"inputs[{number}]", f"not usable JSON ({error})") from None
    if isinstance(value, dict):
        value = value.get("text")
    if not isinstance(value, str) or not value:
        raise JobSpecError(f"inputs[{number}]", 'must be a non-empty string or {"text": "..."}')
    if len(value) > MAX_INPUT_CHARS:
        raise JobSpecError(f"inputs[{number}]", f"{len(value)} characters is over the {MAX_INPUT_CHARS} limit")
    return value
