"""A job that can run past the model's table of absolute positions is refused when it is checked, before
any forward pass: by the runtime (``check_job``, ``check_model``, so ``load``), and by the provider
daemon, which skips it without claiming."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertModel, GPT2Config, GPT2LMHeadModel

from marketplace.errors import JobSpecError, ModelError
from marketplace.jobspec import JobSpec, Parameters, TaskType, inputs_manifest
from marketplace.protocol import JobState
from marketplace.storage.cid import Cid
from marketplace.storage.local import LocalStore
from provider.factory import create_daemon
from provider.journal import Stage
from provider.runtime import Runtime
from provider.runtime.bundle import BundleFacts, check_positions, position_limit
from tests.conftest import Chain
from tests.support.jobs import TEXTS, Market
from tests.support.models import WORDS, tokenizer
from tests.support.waiting import wait_for

CPU = torch.device("cpu")
LONG = " ".join(WORDS * 3)  # 228 words: past a 128-position table, within 512
CONFIG_CID = Cid.parse("bafkreibnoelefnzgwbcacyt4vh52ymxvzbjq7mmqhtcnwarfq4lzegsiqe")  # any CID: only named


def small_bert(directory: Path) -> Path:
    """A tiny encoder with a table of 128 positions, fewer than the default max_input_tokens (512)."""
    torch.manual_seed(0)
    tok = tokenizer(directory)
    BertModel(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=128)).eval().save_pretrained(directory)
    tok.save_pretrained(directory)
    return directory


def small_gpt2(directory: Path) -> Path:
    torch.manual_seed(0)
    tok = tokenizer(directory)
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=1, n_head=2, n_positions=256,
                               bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id,
                               pad_token_id=tok.pad_token_id)).eval().save_pretrained(directory)
    tok.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, bundles: dict[str, Path]) -> dict:
    root = tmp_path_factory.mktemp("positions")
    store = LocalStore(root / "store")
    models = {"bert": small_bert(root / "bert"), "gpt2": small_gpt2(root / "gpt2"), **bundles}
    return {"store": store, "root": root, "inputs": str(store.add_bytes(inputs_manifest([*TEXTS, LONG])).cid),
            "models": {name: str(store.add_path(path, recursive=True).cid) for name, path in models.items()}}


def spec(world: dict, model: str, task: str, **parameters: int) -> JobSpec:
    return JobSpec(task=task, model=world["models"][model], inputs=world["inputs"], num_tasks=len(TEXTS) + 1,
                   parameters=parameters)


def facts(model_type: str, **config: object) -> BundleFacts:
    return BundleFacts(CONFIG_CID, model_type, 1, {"model_type": model_type, **config})


def test_encoder_job_longer_than_the_table_is_refused_before_any_forward_pass(world: dict) -> None:
    runtime = Runtime(world["store"], world["root"] / "runtime", devices=[CPU])
    job = spec(world, "bert", "embed")  # max_input_tokens 512 by default
    with pytest.raises(JobSpecError, match=r"max_input_tokens 512 needs 512 positions, more than the 128 .*"
                                           r"\(bert\): ask for max_input_tokens of at most 128") as refused:
        runtime.check_job(job)
    assert refused.value.field == "parameters"
    for check in (runtime.check_model, lambda job: runtime.load(job, CPU), lambda job: runtime.run(job, [LONG])):
        with pytest.raises(JobSpecError, match="more than the 128"):
            check(job)
    assert runtime.resident() == []  # refused before a model was loaded


def test_encoder_job_within_the_table_runs_a_long_input(world: dict) -> None:
    """The same model with max_input_tokens 128: the long input is cut to the table, and runs."""
    runtime = Runtime(world["store"], world["root"] / "runtime", devices=[CPU])
    job = spec(world, "bert", "embed", max_input_tokens=128)
    runtime.check_job(job)
    [output] = runtime.run(job, [LONG])
    assert output.startswith(b'{"embedding":[')


def test_generation_counts_the_prompt_and_every_new_token(world: dict) -> None:
    runtime = Runtime(world["store"], world["root"] / "runtime", devices=[CPU])
    runtime.check_job(spec(world, "gpt2", "generate", max_input_tokens=200, max_new_tokens=56))
    with pytest.raises(JobSpecError, match=r"max_input_tokens 200 \+ max_new_tokens 57 needs 257 positions, more "
                                           r"than the 256 .*ask for max_input_tokens of at most 199"):
        runtime.check_job(spec(world, "gpt2", "generate", max_input_tokens=200, max_new_tokens=57))
    with pytest.raises(JobSpecError, match="ask for fewer new tokens"):
        runtime.check_job(spec(world, "gpt2", "generate", max_input_tokens=1, max_new_tokens=256))


def test_relative_positions_have_no_table(world: dict) -> None:
    """T5 (the summarize test model) takes any length: the spec's largest parameters pass."""
    runtime = Runtime(world["store"], world["root"] / "runtime", devices=[CPU])
    runtime.check_job(spec(world, "summarize", "summarize", max_input_tokens=8192, max_new_tokens=1024))
    assert position_limit(facts("t5")) is None
    assert position_limit(facts("llama", max_position_embeddings=2048)) is None  # rotary: any position
    assert position_limit(facts("deberta-v2", position_biased_input=False)) is None
    assert position_limit(facts("deberta-v2")) == 512


def test_the_test_models_fit_every_default_job(world: dict) -> None:
    """The demo's tiny models hold max_input_tokens 512 and, for GPT-2, up to 1,024 new tokens more."""
    runtime = Runtime(world["store"], world["root"] / "runtime", devices=[CPU])
    for kind in ("embed", "classify", "summarize"):
        runtime.check_job(spec(world, kind, kind))
    runtime.check_job(spec(world, "generate", "generate", max_new_tokens=1024))
    with pytest.raises(JobSpecError, match="more than the 512"):
        runtime.check_job(spec(world, "classify", "classify", max_input_tokens=513))


def test_roberta_positions_start_after_the_padding_id() -> None:
    assert position_limit(facts("roberta", max_position_embeddings=514, pad_token_id=1)) == 512
    assert position_limit(facts("gpt2", n_positions=1024)) == 1024
    assert position_limit(facts("bart")) == 1024  # transformers' default where the config says nothing
    check_positions(facts("roberta", max_position_embeddings=514, pad_token_id=1), TaskType.CLASSIFY, Parameters())


def test_summarization_checks_the_input_and_the_output_each() -> None:
    bart = facts("bart", max_position_embeddings=600)
    check_positions(bart, TaskType.SUMMARIZE, Parameters(max_input_tokens=600, max_new_tokens=600))
    with pytest.raises(JobSpecError, match=r"max_new_tokens 601 needs 601 .* at most 600"):
        check_positions(bart, TaskType.SUMMARIZE, Parameters(max_input_tokens=8, max_new_tokens=601))


@pytest.mark.parametrize("config", [{"n_positions": "1024"}, {"n_positions": True}, {"n_positions": 0},
                                    {"n_positions": None}])
def test_config_that_does_not_size_a_table_is_refused(config: dict) -> None:
    with pytest.raises(ModelError, match=r"n_positions .* does not size a table of positions"):
        position_limit(facts("gpt2", **config))


def test_provider_skips_a_job_past_the_table_without_claiming(chain: Chain, market: Market, config_for,
                                                             requester, provider) -> None:
    too_long = market.post(requester, spec_cid=market.upload_spec("generate", TEXTS, max_input_tokens=1024,
                                                                  max_new_tokens=1024))
    fits = market.post(requester, "generate")
    daemon = create_daemon(config_for(provider), provider)
    thread = threading.Thread(target=daemon.run, name="provider-positions")
    thread.start()
    try:
        wait_for(lambda: (record := daemon.journal.get(too_long)) is not None and record.stage == Stage.SKIPPED,
                 what="the job past the position table skipped")
        wait_for(lambda: chain.market.get_job(fits).state == JobState.SUBMITTED, what="the job that fits submitted")
    finally:
        daemon.stop()
        thread.join(timeout=60)
        daemon.close()
    assert "max_input_tokens 1024 + max_new_tokens 1024 needs 2048 positions, more than the 1536" in \
        daemon.journal.get(too_long).reason
    claims = chain.market.contract.events.JobClaimed().get_logs(from_block=0)
    assert [entry["args"]["jobId"] for entry in claims] == [fits]
