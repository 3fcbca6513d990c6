"""Providers that commit hostile outputs, for tests only: never imported by the production code.

``HostileRuntime`` computes the honest outputs and rewrites each one's bytes, so that what the provider
commits is valid JSON a naive reader chokes on (or worse): the verifier must refuse it as a malformed
task, never raise.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from marketplace.jobspec import JobSpec
from provider.runtime import Runtime


class HostileRuntime(Runtime):
    """A provider ``Runtime`` whose every output is the honest one passed through ``rewrite``."""

    def __init__(self, *args: Any, rewrite: Callable[[bytes], bytes], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rewrite = rewrite

    def run(self, spec: JobSpec, inputs: Sequence[str], *, indices: Sequence[int] | None = None,
            progress: Callable[[int], None] | None = None) -> list[bytes]:
        return [self.rewrite(output) for output in super().run(spec, inputs, indices=indices, progress=progress)]


def huge_integer(output: bytes) -> bytes:
    """An ``embed`` output whose first number is 10**400 written out: JSON, but too large for a float
    (``float()`` or ``torch.tensor`` raise ``OverflowError`` on it)."""
    rest = json.loads(output)["embedding"][1:]
    return b'{"embedding":[' + str(10**400).encode() + b"".join(b"," + json.dumps(x).encode() for x in rest) + b"]}"


def deep_nesting(output: bytes, depth: int = 100_000) -> bytes:
    """Any output replaced by an embedding nested ``depth`` lists deep: with the recursion limit py_ecc
    sets, json.loads overflows the C stack on it and kills the process."""
    return b'{"embedding":' + b"[" * depth + b"]" * depth + b"}"
