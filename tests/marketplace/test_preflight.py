"""The bundle checks the requester runs before posting (``marketplace.model_bundle``), on tiny real models:
the same function, with the same messages, that the provider and the verifier run on the bundle's CID."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from marketplace.errors import ContentNotFoundError, JobSpecError, ModelError
from marketplace.jobspec import Parameters, TaskType, parse_parameters
from marketplace.model_bundle import check_bundle, folder_listing, store_listing, tensor_names
from marketplace.storage.cid import Cid
from marketplace.storage.local import LocalStore


def copy_bundle(source: Path, target: Path, **config: object) -> Path:
    shutil.copytree(source, target)
    if config:
        path = target / "config.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), **config}))
    return target


def check_folder(folder: Path, task: str, **parameters: int) -> None:
    check_bundle(folder_listing(folder), TaskType(task), Parameters(**parameters))


@pytest.mark.parametrize("kind", ["embed", "classify", "generate", "summarize"])
def test_each_tiny_model_passes_for_its_own_task(bundles: dict[str, Path], kind: str) -> None:
    check_folder(bundles[kind], kind)


def test_a_pickle_only_folder_is_refused(bundles: dict[str, Path], tmp_path: Path) -> None:
    folder = copy_bundle(bundles["embed"], tmp_path / "pickled")
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    with pytest.raises(ModelError, match=r"pytorch_model\.bin is a pickle checkpoint; loading it could run arbitrary"):
        check_folder(folder, "embed")


def test_auto_map_in_config_is_refused(bundles: dict[str, Path], tmp_path: Path) -> None:
    folder = copy_bundle(bundles["embed"], tmp_path / "remote", auto_map={"AutoModel": "evil.Model"})
    with pytest.raises(ModelError, match=r"config.json asks for remote code \(auto_map\); WEBI never runs it"):
        check_folder(folder, "embed")


def test_an_extra_python_file_is_refused(bundles: dict[str, Path], tmp_path: Path) -> None:
    folder = copy_bundle(bundles["embed"], tmp_path / "code")
    (folder / "modeling_evil.py").write_text("import os\n")
    with pytest.raises(ModelError, match=r"modeling_evil\.py is not a safetensors, JSON, tokenizer or text file"):
        check_folder(folder, "embed")


def test_generate_on_an_embedding_model_is_refused(bundles: dict[str, Path]) -> None:
    with pytest.raises(ModelError, match="is a bert model, which cannot generate: that task runs on gemma"):
        check_folder(bundles["embed"], "generate")


def test_classify_needs_a_classification_head_in_the_config_and_in_the_weights(
    bundles: dict[str, Path], tmp_path: Path,
) -> None:
    with pytest.raises(ModelError, match=r"has no sequence-classification head \(its config.json names BertModel\)"):
        check_folder(bundles["embed"], "classify")
    # A config that claims the head over a checkpoint without it: transformers would draw the head at random.
    claimed = copy_bundle(bundles["embed"], tmp_path / "claimed", architectures=["BertForSequenceClassification"])
    with pytest.raises(ModelError, match=r"lacks weights classify needs \(classifier.bias, classifier.weight\)"):
        check_folder(claimed, "classify")


def test_tied_lm_head_passes_and_an_untied_missing_one_is_refused(bundles: dict[str, Path], tmp_path: Path) -> None:
    assert "lm_head.weight" not in tensor_names(folder_listing(bundles["generate"]))  # saved once, as wte
    check_folder(bundles["generate"], "generate", max_new_tokens=8)
    untied = copy_bundle(bundles["generate"], tmp_path / "untied", tie_word_embeddings=False)
    with pytest.raises(ModelError, match=r"lacks weights generate needs \(lm_head.weight\)"):
        check_folder(untied, "generate", max_new_tokens=8)


def test_a_cid_is_checked_from_the_store_with_the_same_function(bundles: dict[str, Path], tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    cid = store.add_path(bundles["embed"], recursive=True).cid
    with pytest.raises(ModelError, match=f"model {cid} is a bert model, which cannot generate"):
        check_bundle(store_listing(store, cid), TaskType.GENERATE, Parameters())
    file_cid = store.add_bytes(b"not a model").cid
    with pytest.raises(ModelError, match=f"CID {file_cid} is a file, not a model folder"):
        store_listing(store, file_cid)
    absent = Cid.parse(str(LocalStore(tmp_path / "other").add_bytes(b"elsewhere").cid))
    with pytest.raises(ContentNotFoundError):
        store_listing(store, absent)


@pytest.mark.parametrize("value", [0, -1, 1025, True])
def test_max_new_tokens_out_of_bounds_is_refused_never_defaulted(value: int) -> None:
    with pytest.raises(JobSpecError, match=r"parameters.max_new_tokens.*out of bounds: 1 to 1024"):
        parse_parameters({"max_new_tokens": value})
    assert parse_parameters({"max_new_tokens": 1}).max_new_tokens == 1


def test_an_unknown_parameter_is_refused() -> None:
    with pytest.raises(JobSpecError, match="unknown parameter"):
        parse_parameters({"temperature": 1})
