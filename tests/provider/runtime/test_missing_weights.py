"""A checkpoint without the weights a task needs is refused, never run with a head drawn at random: by the
runtime's checks on the bundle (``check_job``: the provider before claiming, the verifier before judging,
who then excuses the provider) and, behind them, when transformers loads it (``load_model``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from marketplace.errors import ModelError
from marketplace.jobspec import JobSpec, Parameters, TaskType, inputs_manifest
from marketplace.model_bundle import BundleFacts
from marketplace.storage.local import LocalStore
from provider.runtime import Runtime
from provider.runtime.tasks import load_model
from tests.support.jobs import TEXTS

CPU = torch.device("cpu")


def spec_for(store: LocalStore, bundle: Path, task: str) -> JobSpec:
    model = store.add_path(bundle, recursive=True).cid
    inputs = store.add_bytes(inputs_manifest(TEXTS)).cid
    return JobSpec(task=TaskType(task), model=str(model), inputs=str(inputs), num_tasks=len(TEXTS),
                   parameters=Parameters(max_new_tokens=6))


def with_config(source: Path, target: Path, **config: object) -> Path:
    shutil.copytree(source, target)
    path = target / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **config}))
    return target


def facts(folder: Path) -> BundleFacts:
    config = json.loads((folder / "config.json").read_text())
    return BundleFacts(None, str(config["model_type"]), 1, config, f"model folder {folder}")


def test_load_refuses_a_classifier_whose_head_is_not_in_the_checkpoint(bundles: dict[str, Path]) -> None:
    with pytest.raises(ModelError, match=r"lacks weights classify needs \(classifier.bias, classifier.weight\): "
                                         "transformers would initialise them at random"):
        load_model(facts(bundles["embed"]), bundles["embed"], TaskType.CLASSIFY, torch.float32)


def test_load_refuses_an_untied_lm_head_missing_and_keeps_gpt2s_tied_one(bundles: dict[str, Path],
                                                                          tmp_path: Path) -> None:
    tied = load_model(facts(bundles["generate"]), bundles["generate"], TaskType.GENERATE, torch.float32)
    assert tied.lm_head.weight.data_ptr() == tied.transformer.wte.weight.data_ptr()
    untied = with_config(bundles["generate"], tmp_path / "untied", tie_word_embeddings=False)
    with pytest.raises(ModelError, match=r"lacks weights generate needs \(lm_head.weight\)"):
        load_model(facts(untied), untied, TaskType.GENERATE, torch.float32)


def test_runtime_refuses_a_head_the_checkpoint_lacks_before_fetching_weights(
    bundles: dict[str, Path], tmp_path: Path,
) -> None:
    store = LocalStore(tmp_path / "store")
    claimed = with_config(bundles["embed"], tmp_path / "claimed", architectures=["BertForSequenceClassification"])
    runtime = Runtime(store, tmp_path / "cache", devices=[CPU])
    for bundle, task, message in [
        (claimed, "classify", r"lacks weights classify needs \(classifier.bias, classifier.weight\)"),
        (bundles["embed"], "generate", "is a bert model, which cannot generate"),
    ]:
        spec = spec_for(store, bundle, task)
        for check in (runtime.check_job, runtime.check_model, lambda job: runtime.run(job, TEXTS)):
            with pytest.raises(ModelError, match=message):
                check(spec)
    assert not (tmp_path / "cache" / "models").exists()  # refused from the headers: no weights fetched
