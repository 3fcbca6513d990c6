"""The compute-saving generate and summarize cheats (tests/support/cheats_generative.py) on the trained
test models: each commits well-formed outputs that an honest runtime could have written, and changes
some answers, so that only the model can tell them from honest work."""

from __future__ import annotations

import json

import pytest
import torch

from marketplace.jobspec import JobSpec, TaskType, inputs_manifest
from marketplace.storage.local import LocalStore
from provider.runtime import Runtime
from tests.support.cheats_generative import STRATEGIES, fake_quantize, replay_greedy
from tests.support.strategies import Setting, Strategy
from tests.support.trained_lm import expected, prompts, student_gpt2, trained_gpt2, trained_t5

NEW_TOKENS = 16
# The strategies that change answers often on these confident trained models (15 % to all of 64
# tasks). int4, temperature and eos-early change 0 to 2 % there: a model this sure of its answers
# gives the same tokens with 4-bit weights, at T = 0.3, and with no end of sequence near a tie.
CHANGING = {TaskType.GENERATE: {"student-after-k", "first-layers", "prompt-head", "prompt-tail", "swap"},
            TaskType.SUMMARIZE: {"first-layers", "swap"}}
CASES = [(strategy, task) for strategy in STRATEGIES for task in (TaskType.GENERATE, TaskType.SUMMARIZE)
         if task in strategy.tasks]


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> dict[TaskType, Setting]:
    work = tmp_path_factory.mktemp("generative-cheats")
    store = LocalStore(work / "store")
    device = torch.device("cpu")
    runtime = Runtime(store, work / "fp32", devices=[device], dtype=torch.float32)
    texts = prompts(16, seed=3)
    found = {}
    for task, model in ((TaskType.GENERATE, trained_gpt2()), (TaskType.SUMMARIZE, trained_t5())):
        spec = JobSpec(task=task, model=str(store.add_path(model, recursive=True).cid),
                       inputs=str(store.add_bytes(inputs_manifest(texts)).cid), num_tasks=len(texts),
                       parameters={"max_new_tokens": NEW_TOKENS})
        found[task] = Setting(spec, texts, runtime.run(spec, texts), runtime, store, device, work / task.value,
                              student=student_gpt2())
    return found


@pytest.mark.slow
@pytest.mark.parametrize("task", [TaskType.GENERATE, TaskType.SUMMARIZE])
def test_trained_models_solve_their_task(settings: dict[TaskType, Setting], task: TaskType) -> None:
    setting = settings[task]
    answers = [json.loads(output)["text"] for output in setting.honest]
    right = sum(answer == expected(text) for answer, text in zip(answers, setting.texts, strict=True))
    assert right >= len(answers) - 1, answers


@pytest.mark.slow
@pytest.mark.parametrize("task", [TaskType.GENERATE, TaskType.SUMMARIZE])
def test_cheats_decoding_reproduces_the_runtime(settings: dict[TaskType, Setting], task: TaskType) -> None:
    """Unmodified, the cheats' decoding loop gives the honest outputs: what a strategy changes is its own."""
    assert replay_greedy(settings[task]) == settings[task].honest


@pytest.mark.slow
@pytest.mark.parametrize(("strategy", "task"), CASES, ids=[f"{s.name}-{t.value}" for s, t in CASES])
def test_strategy_commits_well_formed_changed_outputs(settings: dict[TaskType, Setting], strategy: Strategy,
                                                      task: TaskType) -> None:
    setting = settings[task]
    loaded = setting.runtime.load(setting.spec, setting.device)
    eos = loaded.model.generation_config.eos_token_id
    cheat = strategy.cheat(setting)
    assert 0.0 <= cheat.saved <= 1.0
    assert len(cheat.outputs) == len(setting.texts)
    for output in cheat.outputs:
        parsed = json.loads(output)
        tokens = parsed["tokens"]
        assert parsed["text"] == loaded.tokenizer.decode(tokens, skip_special_tokens=True)
        assert 1 <= len(tokens) <= NEW_TOKENS
        assert eos not in tokens[:-1]
        assert tokens[-1] == eos or len(tokens) == NEW_TOKENS
    if strategy.name in CHANGING[task]:
        assert any(mine != theirs for mine, theirs in zip(cheat.outputs, setting.honest, strict=True))


def test_fake_quantize_keeps_sixteen_levels_per_group() -> None:
    weight = torch.randn(3, 64, generator=torch.Generator().manual_seed(0))
    quantized = fake_quantize(weight)
    for group in quantized.reshape(3, 2, 32).reshape(6, 32):
        assert len(torch.unique(group)) <= 15  # -7..7 times the group's scale
    assert (quantized - weight).abs().max() <= weight.abs().max() / 14 + 1e-6
