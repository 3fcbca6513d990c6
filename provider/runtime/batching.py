"""Batches by a token budget: long inputs go in small batches, short ones in large batches.

Inputs are sorted by length so each batch pads little; ``rows x longest`` stays within the budget.
Results are put back in task order by the caller, using the indices each batch carries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Batch:
    indices: tuple[int, ...]
    longest: int


def plan_batches(lengths: Sequence[int], token_budget: int, max_rows: int) -> list[Batch]:
    order = sorted(range(len(lengths)), key=lambda index: (lengths[index], index))
    batches: list[Batch] = []
    current: list[int] = []
    longest = 0
    for index in order:
        size = max(lengths[index], 1)
        if (current and (len(current) + 1) * max(longest, size) > token_budget) or len(current) == max_rows:
            batches.append(Batch(tuple(current), longest))
            current, longest = [], 0
        current.append(index)
        longest = max(longest, size)
    if current:
        batches.append(Batch(tuple(current), longest))
    return batches
