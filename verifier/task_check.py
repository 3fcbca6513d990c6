"""One task's verdict with what was measured: the unit every comparator returns and the evidence lists."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class TaskCheck:
    """The verdict on one task, with what was measured: the evidence document lists these."""

    index: int
    passed: bool
    reason: str
    metric: float | None = None
    # Refused on its form (not JSON, wrong shape, tokens past the end): no reference makes it right.
    malformed: bool = False
    # The allowance the metric was held to (``verifier.tolerance``), where one applied.
    allowance: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
