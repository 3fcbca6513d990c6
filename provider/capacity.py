"""How much work a provider may hold: its measured throughput against the deadlines of what it holds.

A provider that claims a job it cannot finish before the submission deadline loses the job's
collateral (``reclaimExpired``), and one that claims a whole job group it cannot finish starves the
other providers of shards. So a claim is made only when, with the jobs already held computed first in
earliest-deadline order and the new one among them, every job is estimated to finish by its own
deadline, and the number of claims held but not computed stays within ``max_claims``.

The estimate is the provider's own measured throughput for the task type: the tasks and seconds of its recent
runs (``runtime.run`` only), kept in the journal's database, so it survives a restart. A task type never
measured is estimated at a cautious assumed rate (``ASSUMED_TASKS_PER_S``, a slow CPU's): the provider holds
one such job at a time, and that job's run measures it. Without the assumed rate, a requester could post a
huge job of a task type the provider never ran, with the shortest window, and collect the reward from its
collateral when it expired (found by the job-group attack review). ``max_claims`` (2 by default: one
computing, one ready to start the moment it ends) makes the spread over several providers pull-based: a faster
provider comes back for more sooner, so shards go roughly in proportion to speed, and nobody hoards.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine
from sqlmodel import Field, Session, SQLModel, col, select

RECENT_RUNS = 20  # the runs an estimate is made from, per task type
# Tasks a second assumed for a task type never measured: a slow CPU's, so that a first job is claimed only when
# even such a machine would finish it (a GPU measures far more on its first run, and then takes more).
ASSUMED_TASKS_PER_S: dict[str, float] = {"embed": 50.0, "classify": 50.0, "generate": 2.0, "summarize": 2.0}


class ThroughputRun(SQLModel, table=True):
    """One computed job: what it ran and how long ``runtime.run`` took."""

    __tablename__ = "provider_throughput"

    id: int | None = Field(default=None, primary_key=True)
    task: str = Field(index=True)
    tasks: int
    seconds: float
    at: float = Field(default_factory=time.time)


class Throughput:
    """The measured tasks per second by task type, in the journal's SQLite file (a table of its own)."""

    def __init__(self, path: Path) -> None:
        self.engine: Engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 30})
        SQLModel.metadata.create_all(self.engine, tables=[SQLModel.metadata.tables["provider_throughput"]])

    def close(self) -> None:
        self.engine.dispose()

    def record(self, task: str, tasks: int, seconds: float) -> None:
        """A run's figures; older runs than the last ``RECENT_RUNS`` of the task stop counting."""
        if tasks <= 0 or seconds <= 0:
            return
        with Session(self.engine) as session:
            session.add(ThroughputRun(task=task, tasks=tasks, seconds=seconds))
            session.commit()

    def tasks_per_s(self, task: str) -> float | None:
        """Tasks over seconds of the recent runs of ``task``; None when it was never measured."""
        with Session(self.engine) as session:
            query = select(ThroughputRun).where(ThroughputRun.task == task).order_by(
                col(ThroughputRun.id).desc()).limit(RECENT_RUNS)
            runs = list(session.exec(query))
        seconds = sum(run.seconds for run in runs)
        return sum(run.tasks for run in runs) / seconds if runs and seconds > 0 else None


@dataclass(frozen=True)
class Held:
    """A job held (or about to be) and not computed yet: its size, task type and submission deadline."""

    job_id: int
    tasks: int
    task: str
    deadline: int  # unix seconds: the contract's submit deadline (claim time + exec window)


@dataclass(frozen=True)
class Limits:
    max_claims: int = 2
    safety: float = 1.5  # the measured seconds are multiplied by this
    job_overhead_s: float = 10.0  # a job's fetch, upload and transactions, on top of its inference
    assumed_tasks_per_s: float = 2.0  # for a task type never measured and not in ASSUMED_TASKS_PER_S


def refusal(held: Sequence[Held], new: Held, *, now: float, rates: dict[str, float | None],
            limits: Limits) -> str | None:
    """Why claiming ``new`` on top of ``held`` would be too much, or None when everything still fits."""
    if len(held) >= limits.max_claims:
        return (f"already holding {len(held)} jobs not computed yet (max_claims {limits.max_claims}): "
                f"waiting for one to finish")
    jobs = [*held, new]
    unmeasured = sorted({job.task for job in jobs if rates.get(job.task) is None})
    if unmeasured and held:
        return (f"no throughput measured yet for {', '.join(unmeasured)}: holding one job at a time until one "
                "has run")
    finish = now
    for job in sorted(jobs, key=lambda job: (job.deadline, job.job_id)):  # earliest deadline first
        measured = rates.get(job.task)
        # The first job of its kind: its run is the measurement, if even a slow machine would finish it.
        rate = measured if measured is not None else ASSUMED_TASKS_PER_S.get(job.task, limits.assumed_tasks_per_s)
        finish += job.tasks / rate * limits.safety + limits.job_overhead_s
        if finish > job.deadline:
            behind = f" behind {len(held)} held job{'s' if len(held) != 1 else ''}" if held else ""
            basis = "measured" if measured is not None else "assumed (never measured)"
            return (f"job {job.job_id}: {job.tasks:,} tasks at {rate:.0f} tasks/s {basis} would finish "
                    f"{finish - job.deadline:.0f} s after its deadline{behind}")
    return None
