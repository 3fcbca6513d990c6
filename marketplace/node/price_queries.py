"""A price suggestion for a new job, from what recent jobs of the same task (and about the same size) paid.

The jobs table does not hold a job's task type: it is in the spec, which is read from the node's store by
the job's ``spec_cid`` (and remembered by CID, since a CID's bytes never change). Jobs whose spec the
store lacks or cannot parse are left out. Every indexed job counts, whatever its state: a price that
nobody claimed is still what a requester offered.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from fractions import Fraction
from statistics import median
from typing import Literal

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from marketplace.errors import ContentNotFoundError, WebiError
from marketplace.indexer.models import JobRow
from marketplace.jobspec import MAX_SPEC_BYTES, TaskType, parse_spec
from marketplace.storage.cid import Cid
from marketplace.storage.store import ContentStore

SIZE_FACTOR = 4  # "about the same size": num_tasks within a factor of 4 either way
SAMPLE = 50  # the newest this many matching jobs inform the median
SCAN = 1_000  # the newest this many jobs are looked through for matches: the cost of one suggestion is bounded
_CACHED_TASKS = 10_000

Basis = Literal["same task and size", "same task", "none"]


@dataclass(frozen=True)
class PriceSuggestion:
    """The median price per task (wei, rounded down) of ``jobs`` recent jobs, and what it makes for ``num_tasks``.
    ``per_task_wei`` is ``None`` when no indexed job of the task informs it (``basis`` "none")."""

    task: TaskType
    num_tasks: int
    per_task_wei: int | None
    jobs: int
    basis: Basis

    @property
    def price_wei(self) -> int | None:
        return None if self.per_task_wei is None else self.per_task_wei * self.num_tasks


class PriceQueries:
    """Price suggestions over the indexer's jobs table and the specs in ``store``."""

    def __init__(self, engine: Engine, store: ContentStore, *, scan: int = SCAN) -> None:
        self.engine = engine
        self.store = store
        self.scan = scan
        self._lock = threading.Lock()
        self._tasks: OrderedDict[str, TaskType | None] = OrderedDict()

    def suggest(self, task: TaskType, num_tasks: int) -> PriceSuggestion:
        """The median per-task price of the newest ``SAMPLE`` jobs of ``task`` whose size is within
        ``SIZE_FACTOR`` of ``num_tasks``; failing any, of the newest of ``task`` whatever their size."""
        query = select(JobRow).order_by(JobRow.job_id.desc()).limit(self.scan)  # type: ignore[attr-defined]
        with Session(self.engine) as session:
            rows = [(row.spec_cid, int(row.price), row.num_tasks) for row in session.execute(query).scalars()]
        same_task = [(price, size) for spec_cid, price, size in rows if size > 0 and self._task_of(spec_cid) == task]
        similar = [(price, size) for price, size in same_task
                   if size * SIZE_FACTOR >= num_tasks and num_tasks * SIZE_FACTOR >= size]
        basis: Basis = "same task and size" if similar else "same task"
        chosen = (similar or same_task)[:SAMPLE]
        if not chosen:
            return PriceSuggestion(task, num_tasks, None, 0, "none")
        per_task = median([Fraction(price, size) for price, size in chosen])
        return PriceSuggestion(task, num_tasks, int(per_task), len(chosen), basis)

    def _task_of(self, spec_cid: str) -> TaskType | None:
        with self._lock:
            if spec_cid in self._tasks:
                self._tasks.move_to_end(spec_cid)
                return self._tasks[spec_cid]
        try:
            task: TaskType | None = parse_spec(self.store.read_bytes(Cid.parse(spec_cid), limit=MAX_SPEC_BYTES)).task
        except ContentNotFoundError:
            return None  # not remembered: the spec may reach this store later
        except (WebiError, ValueError):
            task = None  # a malformed spec stays malformed
        with self._lock:
            self._tasks[spec_cid] = task
            while len(self._tasks) > _CACHED_TASKS:
                self._tasks.popitem(last=False)
        return task
