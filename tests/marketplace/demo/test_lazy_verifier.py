"""``verifier.lazy``, the demo's lazy verifier: it passes any well-formed output without running a model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from marketplace.jobspec import JobSpec, TaskType, inputs_manifest
from marketplace.protocol import Verdict
from marketplace.results import canonical
from marketplace.storage.local import LocalStore
from provider.runtime import Runtime
from verifier.lazy import LAZY_REASON, LazyReferences
from verifier.verdict import Outcome, References, verdict_of


def test_the_lazy_references_pass_wrong_outputs_without_fetching_the_model(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    inputs = str(store.add_bytes(inputs_manifest(["one", "two", "three"])).cid)
    # The model CID names nothing in the store: an honest audit could not even load it.
    spec = JobSpec(task=TaskType.EMBED, model=str(store.add_bytes(b"not a model").cid), inputs=inputs,
                   num_tasks=3)
    honest = References.of(Runtime(store, tmp_path / "cache"))
    lazy = LazyReferences(honest.a, honest.b, honest.device_lock)
    wrong = {index: canonical({"embedding": [1.0, 0.0, 0.0]}) for index in (0, 2)}

    tasks = lazy.audit(spec, ["one", "two", "three"], [0, 2], wrong)

    assert [(task.index, task.outcome, task.reason) for task in tasks] == [
        (0, Outcome.PASS, LAZY_REASON), (2, Outcome.PASS, LAZY_REASON)]
    assert verdict_of(tasks) == Verdict.PASS
    assert not any((tmp_path / "cache").rglob("*.safetensors")), "nothing was fetched to run"


def test_the_lazy_verifier_names_its_usage_when_no_config_is_given() -> None:
    ran = subprocess.run([sys.executable, "-m", "verifier.lazy"], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 1 and "usage: python -m verifier.lazy CONFIG.toml" in ran.stderr
