"""The auditor's comparisons: what was checked, how often, and each disagreement it found.

Every comparison goes through one ``Checker``, so the report can say which checks ran, how many
times and how many failed (a clean audit is only worth what it checked), and every disagreement
says what it is about: the job and the account it concerns, and, for an indexer database, the row.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class DatabaseRow:
    """Where in an indexer database a discrepancy lies: its table, the row's key and the column.

    ``key`` is the row's primary key as text: a job id (``jobs``), ``account/role`` (``stakes``), an
    address (``accounts``), ``tx hash:log index`` (``ledger``, whose key is the log that made it).
    ``column`` is ``None`` when the whole row is missing or has no event behind it.
    """

    table: str
    key: str
    column: str | None = None


@dataclass(frozen=True)
class Discrepancy:
    """One disagreement: what was checked, what the replay says, what the other side says.

    ``job_id`` and ``account`` say whom it concerns (the report's per-job and per-account tables
    count them), ``row`` where it lies in an indexer database.
    """

    check: str
    subject: str
    expected: str
    found: str
    job_id: int | None = None
    account: str | None = None
    row: DatabaseRow | None = None

    def __str__(self) -> str:
        return f"{self.check} [{self.subject}]: expected {self.expected}, found {self.found}"


@dataclass
class CheckTally:
    """One kind of check: how many times it ran and how many of those disagreed."""

    name: str
    count: int = 0
    failed: int = 0

    @property
    def passed(self) -> bool:
        return self.failed == 0


@dataclass
class Checker:
    """Runs comparisons at one block and keeps the tally and the discrepancies."""

    block: int
    tallies: dict[str, CheckTally] = field(default_factory=dict)
    discrepancies: list[Discrepancy] = field(default_factory=list)

    def equal(
        self,
        check: str,
        subject: str,
        expected: Any,
        found: Any,
        *,
        job_id: int | None = None,
        account: str | None = None,
        row: DatabaseRow | None = None,
    ) -> bool:
        """Counts one run of ``check``; a discrepancy when ``expected != found``. True when they agree."""
        tally = self._tally(check)
        if expected == found:
            return True
        tally.failed += 1
        self.discrepancies.append(Discrepancy(check, subject, text(expected), text(found), job_id, account, row))
        return False

    def fail(
        self,
        check: str,
        subject: str,
        expected: str,
        found: str,
        *,
        job_id: int | None = None,
        account: str | None = None,
        row: DatabaseRow | None = None,
    ) -> None:
        """Counts one run of ``check`` that disagreed."""
        self._tally(check).failed += 1
        self.discrepancies.append(Discrepancy(check, subject, expected, found, job_id, account, row))

    def _tally(self, check: str) -> CheckTally:
        tally = self.tallies.setdefault(check, CheckTally(check))
        tally.count += 1
        return tally


def text(value: Any) -> str:
    """A compared value as the report shows it: strings as they are, the rest as JSON."""
    return json.dumps(value) if not isinstance(value, str) else value


def difference(expected: Counter[Any], found: Counter[Any], show: Callable[[Any], str]) -> tuple[str, str]:
    """Both sides of a comparison of multisets, as the entries that differ (and how many agree)."""
    agree = sum((expected & found).values())
    suffix = f" ({agree} more agree)" if agree else ""

    def side(entries: Counter[Any]) -> str:
        return "; ".join(f"{count}x {show(entry)}" for entry, count in sorted(entries.items())) or "none"

    return side(expected - found) + suffix, side(found - expected) + suffix


def credit_text(entry: tuple[str, str, int]) -> str:
    """A credit (account, kind, amount) as a settlement discrepancy lists it."""
    account, kind, amount = entry
    return f"{kind} {amount} to {account}"


def slash_text(entry: tuple[str, str, int, int]) -> str:
    """A slash (account, role, from stake, from unbonding) as a settlement discrepancy lists it."""
    account, role, stake, unbonding = entry
    return f"{account} as {role}: {stake} from stake + {unbonding} from unbonding"
