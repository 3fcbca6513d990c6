"""The interface of the cheat strategies measured by ``scripts/bench_verify.py`` and the tests: each
strategy takes an honest provider's setting and returns what a cheat would commit, with the share of
the honest compute it skips. Strategies live in ``tests.support.cheats_generative`` (generate,
summarize) and ``tests.support.cheats_answers`` (classify, embed); never imported by production code."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from marketplace.jobspec import JobSpec, TaskType
from marketplace.storage.local import LocalStore
from provider.runtime import Runtime


@dataclass
class Setting:
    """What the cheat has: the job, its inputs, the honest outputs (fp32, what an honest provider
    commits), the provider's fp32 runtime, and the smaller models a cheat could substitute."""

    spec: JobSpec
    texts: list[str]
    honest: list[bytes]
    runtime: Runtime
    store: LocalStore
    device: torch.device
    work: Path  # scratch space for derived bundles (quantized, cut layers)
    student: Path | None = None  # a distilled smaller model of the same tokenizer, where one exists
    other: Path | None = None  # another model of the same architecture and size, where one exists
    seed: int = 1


@dataclass(frozen=True)
class Cheat:
    outputs: list[bytes]
    saved: float  # share of the honest compute skipped, 0..1 (how it is estimated: the strategy's doc)
    detail: dict[str, float] = field(default_factory=dict)  # e.g. {"weight_bytes_saved": 0.75}


@dataclass(frozen=True)
class Strategy:
    name: str
    tasks: frozenset[TaskType]
    cheat: Callable[[Setting], Cheat]
    doc: str = ""
    needs_other: bool = False  # runs only where ``Setting.other`` is given
    needs_student: bool = False  # runs only where ``Setting.student`` is given
