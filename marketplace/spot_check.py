"""A requester's own spot check: re-execute a few tasks of a job locally, as its verifier would.

A pass from the drawn verifier is a promise backed by its stake; a requester who wants to see for
itself re-runs K tasks it picks at random (``random.Random(seed)``, the seed reported so the same
choice can be made again) with the provider's runtime and the verifier's comparators, so a figure
within tolerance here means what it means in an audit. A mismatch is the requester's ground for
``webi job challenge`` while the verdict is provisional.

The marketplace package runs no models: the runtime and the comparators come from the provider and
verifier packages through the ``webi.checkers`` entry point (``runtime``, ``check_tasks``).

A confidential job's inputs (and model, when encrypted) are age files: ``plaintext_job`` opens them
with the job key into a throw-away local store, with a clear copy of the spec, and the checker runs
over that store as over a public job. An encrypted model is opened by the provider's runtime
(``Runtime.open_model``, the one way every party opens a bundle), reached through the same entry point.
Nothing in clear is written to the job's own store.
"""

from __future__ import annotations

import contextlib
import random
import secrets
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

from marketplace.errors import ConfigError
from marketplace.jobspec import JobSpec
from marketplace.sealed.envelope import open_sealed
from marketplace.sealed.keys import JobKey
from marketplace.storage import ContentStore
from marketplace.storage.cid import Cid
from marketplace.storage.local import LocalStore

MAX_INPUT_MANIFEST = 256 * 1024 * 1024  # as the provider's runtime reads it


@dataclass(frozen=True)
class TaskResult:
    """One re-executed task: within tolerance or not, why, and the figure measured (cosine, probability gap,
    logits behind the argmax), when the comparator measured one."""

    index: int
    passed: bool
    reason: str
    metric: float | None = None


@dataclass(frozen=True)
class CheckReport:
    """What ``Client.check`` found: the tasks it chose with ``seed``, and one result per task in that order."""

    job_id: int
    task: str  # the job's task type: what the figures measure
    seed: int
    indices: tuple[int, ...]
    results: tuple[TaskResult, ...]
    # The audit's sampled tasks, public once the verdict revealed them (empty before): a panel
    # re-checks only these, so only a mismatch among them makes a challenge worth its bond.
    audit_sample: tuple[int, ...] = ()

    @property
    def passed(self) -> bool:
        return all(result.passed for result in self.results)

    @property
    def challengeable(self) -> tuple[TaskResult, ...]:
        """Mismatches a panel would see: those among the audit's sampled tasks."""
        return tuple(result for result in self.mismatches if result.index in self.audit_sample)

    @property
    def mismatches(self) -> tuple[TaskResult, ...]:
        return tuple(result for result in self.results if not result.passed)

    def as_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "task": self.task,
            "seed": self.seed,
            "indices": list(self.indices),
            "audit_sample": list(self.audit_sample),
            "passed": self.passed,
            "results": [asdict(result) for result in self.results],
        }


# What each task type's figure is, for people reading a report.
METRICS = {
    "embed": "cosine similarity",
    "classify": "largest probability difference",
    "generate": "logits behind the argmax, worst token",
    "summarize": "logits behind the argmax, worst token",
}

# (spec CID, task indices, committed output of each index) -> one result per index, in order.
TaskChecker = Callable[[str, list[int], dict[int, bytes]], list[TaskResult]]


def choose_tasks(num_tasks: int, k: int, seed: int | None = None) -> tuple[int, list[int]]:
    """The seed used (a fresh one when ``seed`` is None) and ``min(k, num_tasks)`` distinct task indices, sorted."""
    if k < 1:
        raise ConfigError(f"--check {k}: re-execute at least one task")
    used = secrets.randbelow(2**32) if seed is None else seed
    return used, sorted(random.Random(used).sample(range(num_tasks), min(k, num_tasks)))


def _checkers() -> dict[str, EntryPoint]:
    """The ``webi.checkers`` entry points (``runtime``, ``check_tasks``); ``ConfigError`` when not installed."""
    found = {entry.name: entry for entry in entry_points(group="webi.checkers")}
    if "runtime" not in found or "check_tasks" not in found:
        raise ConfigError("checking tasks needs the provider and verifier packages (pip install webi)")
    return found


def load_checker(store: ContentStore, cache: Path) -> TaskChecker:
    """The verifier's re-execution over ``store``: the provider's ``Runtime`` (models cached under ``cache``)
    and ``verifier.verdict.audit_tasks`` (the audit's rule), found through the ``webi.checkers`` entry point."""
    found = _checkers()
    runtime = found["runtime"].load()(store, cache)
    check_tasks = found["check_tasks"].load()

    def check(spec_cid: str, indices: list[int], committed: dict[int, bytes]) -> list[TaskResult]:
        spec = runtime.read_spec(spec_cid)
        inputs = runtime.read_inputs(spec)
        return [TaskResult(c.index, bool(c.passed), str(c.reason), None if c.metric is None else float(c.metric))
                for c in check_tasks(runtime, spec, inputs, indices, committed)]

    return check


@contextlib.contextmanager
def plaintext_job(store: ContentStore, spec: JobSpec, job_key: JobKey) -> Iterator[tuple[ContentStore, str]]:
    """A confidential job in clear, for a checker to run as it runs a public one: a local store in a temporary
    folder (removed afterwards) holding the opened inputs manifest, the model folder (opened when encrypted) and
    a spec naming them without a ``confidential`` section; yields that store and the clear spec's CID."""
    if spec.confidential is None:
        raise ConfigError("not a confidential job: check it over its own store")
    with tempfile.TemporaryDirectory(prefix="webi-check-") as folder:
        work = Path(folder)
        (work / "store").mkdir()
        clear = LocalStore(work / "store")
        try:
            inputs = open_sealed(store.read_bytes(Cid.parse(spec.inputs), limit=MAX_INPUT_MANIFEST), job_key,
                                 f"the inputs manifest {spec.inputs}")
            if spec.confidential.model_encrypted:
                model = Path(_checkers()["runtime"].load()(store, work / "runtime").open_model(spec, job_key))
            else:
                model = work / "fetched"
                store.get(Cid.parse(spec.model), model)
            opened = spec.model_copy(update={
                "model": str(clear.add_path(model, recursive=True).cid),
                "inputs": str(clear.add_bytes(inputs).cid),
                "confidential": None,
            })
            yield clear, str(clear.add_bytes(opened.to_bytes()).cid)
        finally:
            clear.close()


__all__ = ["METRICS", "CheckReport", "TaskChecker", "TaskResult", "choose_tasks", "load_checker", "plaintext_job"]
