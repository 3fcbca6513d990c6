"""The runtime on tiny real models: each task type, and each kind of bundle it must refuse."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from marketplace.errors import BlockMismatchError, JobSpecError, ModelError
from marketplace.jobspec import JobSpec, inputs_manifest
from marketplace.storage.cid import RAW, Cid
from marketplace.storage.local import LocalStore
from provider.runtime import Runtime, RuntimeLimits
from provider.runtime.batching import plan_batches
from tests.support.jobs import TEXTS


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


def spec_for(store: LocalStore, bundle: Path, kind: str, texts: list[str] = TEXTS, **parameters: int) -> JobSpec:
    model = store.add_path(bundle, recursive=True).cid
    inputs = store.add_bytes(inputs_manifest(texts)).cid
    return JobSpec(task=kind, model=str(model), inputs=str(inputs), num_tasks=len(texts),
                   parameters=parameters or {"max_new_tokens": 6})


CPU = torch.device("cpu")


def run(store: LocalStore, tmp_path: Path, spec: JobSpec, **options) -> list[dict]:
    """Outputs on the CPU in fp32, where these tests' tolerances hold; test_gpu.py covers CUDA."""
    options.setdefault("devices", [CPU])
    runtime = Runtime(store, tmp_path / "cache", **options)
    return [json.loads(output) for output in runtime.run(spec, runtime.read_inputs(spec))]


def test_embed_is_mean_pooled_and_normalized(store, tmp_path, bundles) -> None:
    spec = spec_for(store, bundles["embed"], "embed")
    outputs = run(store, tmp_path, spec)
    assert len(outputs) == len(TEXTS)
    # The same computation written out by hand, one text at a time, in float64.
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(bundles["embed"]).double().eval()
    tokenizer = AutoTokenizer.from_pretrained(bundles["embed"])
    for text, output in zip(TEXTS, outputs, strict=True):
        batch = tokenizer([text], return_tensors="pt")
        with torch.no_grad():
            hidden = model(**batch).last_hidden_state[0]
        expected = torch.nn.functional.normalize(hidden.mean(dim=0), dim=0)
        got = torch.tensor(output["embedding"], dtype=torch.float64)
        assert torch.allclose(got, expected, atol=1e-5)
        assert abs(float(got.norm()) - 1.0) < 1e-5


def test_classify_gives_label_and_probabilities(store, tmp_path, bundles) -> None:
    """Each input's softmax, as a float64 forward pass of that input alone gives it."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    outputs = run(store, tmp_path, spec_for(store, bundles["classify"], "classify"))
    model = AutoModelForSequenceClassification.from_pretrained(bundles["classify"]).double().eval()
    tokenizer = AutoTokenizer.from_pretrained(bundles["classify"])
    for text, output in zip(TEXTS, outputs, strict=True):
        with torch.no_grad():
            expected = model(**tokenizer([text], return_tensors="pt")).logits[0].softmax(dim=0)
        assert torch.allclose(torch.tensor(output["probabilities"], dtype=torch.float64), expected, atol=1e-5)
        assert output["label_id"] == int(expected.argmax())
        assert output["label"] == model.config.id2label[output["label_id"]]
    assert len({tuple(output["probabilities"]) for output in outputs}) == len(TEXTS)


@pytest.mark.parametrize("kind", ["generate", "summarize"])
def test_generation_is_greedy_and_batch_independent(store, tmp_path, bundles, kind) -> None:
    spec = spec_for(store, bundles[kind], kind, max_new_tokens=5)
    batched = run(store, tmp_path, spec)
    one_by_one = run(store, tmp_path / "single", spec, limits=RuntimeLimits(max_batch_rows=1))
    assert [output["tokens"] for output in batched] == [output["tokens"] for output in one_by_one]
    assert all(1 <= len(output["tokens"]) <= 5 for output in batched)
    assert len({tuple(output["tokens"]) for output in batched}) > 1


def test_two_workers_give_the_same_outputs(store, tmp_path, bundles) -> None:
    spec = spec_for(store, bundles["embed"], "embed")
    one = run(store, tmp_path / "one", spec, limits=RuntimeLimits(max_batch_rows=2))
    two = run(store, tmp_path / "two", spec, devices=[CPU, CPU], limits=RuntimeLimits(max_batch_rows=2))
    assert one == two


def test_subset_of_tasks_by_index(store, tmp_path, bundles) -> None:
    spec = spec_for(store, bundles["classify"], "classify")
    runtime = Runtime(store, tmp_path / "cache", devices=[CPU])
    inputs = runtime.read_inputs(spec)
    everything = [json.loads(output) for output in runtime.run(spec, inputs)]
    subset = [json.loads(output) for output in runtime.run(spec, inputs, indices=[5, 2])]
    for got, want in zip(subset, [everything[5], everything[2]], strict=True):
        # Other batch-mates change the padding, hence the last digits: equal labels, near-equal numbers.
        assert got["label"] == want["label"]
        assert got["probabilities"] == pytest.approx(want["probabilities"], abs=1e-5)


def copy_bundle(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def test_pickle_checkpoint_is_refused_before_fetching(store, tmp_path, bundles) -> None:
    bundle = copy_bundle(bundles["embed"], tmp_path / "pickled")
    torch.save({"weights": torch.zeros(2)}, bundle / "pytorch_model.bin")
    spec = spec_for(store, bundle, "embed")
    runtime = Runtime(store, tmp_path / "cache")
    with pytest.raises(ModelError, match=r"pytorch_model\.bin is a pickle checkpoint"):
        runtime.run(spec, runtime.read_inputs(spec))
    assert not (tmp_path / "cache" / "models").exists()


@pytest.mark.parametrize(("change", "message"), [
    ({"model_type": "mystery"}, "not on the allowlist"),
    ({"auto_map": {"AutoModel": "evil.Model"}}, "remote code"),
])
def test_config_refusals(store, tmp_path, bundles, change, message) -> None:
    bundle = copy_bundle(bundles["embed"], tmp_path / "changed")
    config = json.loads((bundle / "config.json").read_text())
    (bundle / "config.json").write_text(json.dumps({**config, **change}))
    runtime = Runtime(store, tmp_path / "cache")
    spec = spec_for(store, bundle, "embed")
    with pytest.raises(ModelError, match=message):
        runtime.check_model(spec)


def test_oversized_model_is_refused(store, tmp_path, bundles) -> None:
    spec = spec_for(store, bundles["embed"], "embed")
    runtime = Runtime(store, tmp_path / "cache", limits=RuntimeLimits(max_weight_bytes=1_000))
    with pytest.raises(ModelError, match="over this runtime's limit of 1000"):
        runtime.check_model(spec)


def test_wrong_architecture_for_task_is_a_model_error(store, tmp_path, bundles) -> None:
    spec = spec_for(store, bundles["embed"], "summarize")
    runtime = Runtime(store, tmp_path / "cache")
    with pytest.raises(ModelError, match="is a bert model, which cannot summarize: that task runs on bart"):
        runtime.run(spec, runtime.read_inputs(spec))


def test_damaged_weights_are_refused_and_not_cached(store, tmp_path, bundles) -> None:
    spec = spec_for(store, bundles["embed"], "embed")
    weights = store.resolve(Cid.parse(spec.model), "model.safetensors")
    leaf = weights if weights.codec == RAW else store.ls(weights)[0].cid
    path = store.blocks.path_of(leaf)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    runtime = Runtime(store, tmp_path / "cache")
    with pytest.raises(BlockMismatchError):
        runtime.run(spec, runtime.read_inputs(spec))
    assert not any((tmp_path / "cache").rglob("*.safetensors"))


def test_input_manifest_must_match_the_task_count(store, tmp_path, bundles) -> None:
    spec = spec_for(store, bundles["embed"], "embed")
    wrong = spec.model_copy(update={"num_tasks": len(TEXTS) + 1})
    with pytest.raises(JobSpecError, match="has 8 inputs but the job has 9 tasks"):
        Runtime(store, tmp_path / "cache").read_inputs(wrong)


def test_batches_respect_the_token_budget() -> None:
    lengths = [5, 50, 7, 100, 3, 60, 8]
    batches = plan_batches(lengths, token_budget=120, max_rows=3)
    assert sorted(index for batch in batches for index in batch.indices) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch.indices) <= 3
        assert len(batch.indices) * max(lengths[index] for index in batch.indices) <= 120 or len(batch.indices) == 1


def test_at_most_max_loaded_models_stay_resident_least_recently_used_evicted(store, tmp_path, bundles) -> None:
    """Three distinct models in turn, then the first again: never more than the bound resident, each still right."""
    specs = {kind: spec_for(store, bundles[kind], kind) for kind in ("embed", "classify", "generate")}
    expected = {kind: run(store, tmp_path / kind, spec) for kind, spec in specs.items()}  # a fresh runtime each
    runtime = Runtime(store, tmp_path / "cache", devices=[CPU], limits=RuntimeLimits(max_loaded_models=2))
    assert runtime.max_loaded_models == 2
    resident: list[list[str]] = []
    for kind in ("embed", "classify", "generate", "embed"):
        spec = specs[kind]
        outputs = runtime.run(spec, runtime.read_inputs(spec))
        assert [json.loads(output) for output in outputs] == expected[kind], kind
        resident.append([str(cid) for cid, _ in runtime.resident()])
    cid = {kind: spec.model for kind, spec in specs.items()}
    assert resident == [[cid["embed"]], [cid["embed"], cid["classify"]], [cid["classify"], cid["generate"]],
                        [cid["generate"], cid["embed"]]]


def test_a_resident_model_used_again_is_kept_over_an_older_one(store, tmp_path, bundles) -> None:
    """Least recently *used*, not loaded: using the first model again makes the second the one to go."""
    specs = {kind: spec_for(store, bundles[kind], kind) for kind in ("embed", "classify", "generate")}
    runtime = Runtime(store, tmp_path / "cache", devices=[CPU], limits=RuntimeLimits(max_loaded_models=2))
    for kind in ("embed", "classify", "embed", "generate"):
        runtime.load(specs[kind], CPU)
    assert [str(cid) for cid, _ in runtime.resident()] == [specs["embed"].model, specs["generate"].model]


def test_one_resident_model_by_default_on_a_gpu_two_on_the_cpu(store, tmp_path) -> None:
    assert Runtime(store, tmp_path / "cache", devices=[CPU]).max_loaded_models == 2
    assert Runtime(store, tmp_path / "cache", devices=[torch.device("cuda", 0)]).max_loaded_models == 1
    assert Runtime(store, tmp_path / "cache", devices=[CPU],
                   limits=RuntimeLimits(max_loaded_models=1)).max_loaded_models == 1
    with pytest.raises(ValueError, match="max_loaded_models must be at least 1, not 0"):
        RuntimeLimits(max_loaded_models=0)
