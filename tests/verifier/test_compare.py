"""The comparators: honest work passes across dtypes and batch sizes; every cheat fails where it touches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from marketplace.jobspec import JobSpec, TaskType, inputs_manifest
from marketplace.storage.local import LocalStore
from provider.runtime import Runtime, RuntimeLimits
from tests.support.cheats import STRATEGIES, CheatingRuntime, applies
from tests.support.jobs import TEXTS
from tests.support.models import KINDS, build_bundle
from verifier.compare import check_tasks

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, bundles: dict[str, Path]) -> dict:
    root = tmp_path_factory.mktemp("compare")
    store = LocalStore(root / "store")
    inputs = str(store.add_bytes(inputs_manifest(TEXTS)).cid)
    specs, others = {}, {}
    for kind in KINDS:
        model = str(store.add_path(bundles[kind], recursive=True).cid)
        specs[kind] = JobSpec(task=kind, model=model, inputs=inputs, num_tasks=len(TEXTS),
                              parameters={"max_new_tokens": 8})
        others[kind] = str(store.add_path(build_bundle(kind, root / f"other-{kind}", seed=99), recursive=True).cid)
    verifier = Runtime(store, root / "verifier", devices=[CPU], dtype=torch.bfloat16)
    return {"root": root, "store": store, "specs": specs, "others": others, "verifier": verifier}


ALL = list(range(len(TEXTS)))


@pytest.mark.parametrize("kind", KINDS)
def test_honest_fp32_batch_of_one_passes_bf16_batched(world: dict, kind: str) -> None:
    spec = world["specs"][kind]
    provider = Runtime(world["store"], world["root"] / "honest", devices=[CPU], limits=RuntimeLimits(max_batch_rows=1))
    outputs = provider.run(spec, TEXTS)
    checks = check_tasks(world["verifier"], spec, TEXTS, ALL, dict(enumerate(outputs)))
    assert all(check.passed for check in checks), [check.reason for check in checks if not check.passed]


CASES = [(kind, strategy) for kind in KINDS for strategy in STRATEGIES if applies(strategy, TaskType(kind))]


@pytest.mark.parametrize(("kind", "strategy"), CASES)
def test_every_cheat_fails_on_every_task_it_touches(world: dict, kind: str, strategy: str) -> None:
    spec = world["specs"][kind]
    honest = Runtime(world["store"], world["root"] / "reference", devices=[CPU]).run(spec, TEXTS)
    cheat = CheatingRuntime(world["store"], world["root"] / f"cheat-{kind}", devices=[CPU], strategy=strategy,
                            other_model=world["others"][kind])
    outputs = cheat.run(spec, TEXTS)
    checks = check_tasks(world["verifier"], spec, TEXTS, ALL, dict(enumerate(outputs)))
    touched = [index for index in ALL if json.loads(outputs[index]) != json.loads(honest[index])]
    assert touched, "the cheat changed nothing"
    missed = [index for index in touched if checks[index].passed]
    assert not missed, f"{strategy} on {kind} passed tasks {missed}"


def test_malformed_outputs_fail(world: dict) -> None:
    spec = world["specs"]["embed"]
    checks = check_tasks(world["verifier"], spec, TEXTS, [0, 1, 2],
                         {0: b"not json", 1: b'{"embedding": [1, 2]}', 2: b'{"embedding": "x"}'})
    assert [check.passed for check in checks] == [False, False, False]

