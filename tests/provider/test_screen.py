"""The optional model screen: a model whose bf16 outputs stray from its fp32 ones is skipped before a claim."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from marketplace.demo.models import tokenizer
from marketplace.protocol import JobState
from provider.factory import create_daemon
from provider.journal import Stage
from tests.conftest import Chain
from tests.support.jobs import TEXTS, Market
from tests.support.waiting import wait_for


@pytest.fixture(scope="module")
def chaotic_classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny test classifier with an initialization 30 times wider: saturated attention makes bf16 rounding
    move one of the longest inputs' probabilities by about 0.24 (the tolerance is 0.05)."""
    directory = tmp_path_factory.mktemp("chaotic")
    torch.manual_seed(0)
    tok = tokenizer(directory)
    labels = {0: "negative", 1: "neutral", 2: "positive"}
    config = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, initializer_range=10.0, num_labels=3,
                        id2label=labels, label2id={name: index for index, name in labels.items()})
    model = BertForSequenceClassification(config)
    model.eval()
    model.save_pretrained(directory, safe_serialization=True)
    tok.save_pretrained(directory)
    return directory


def test_an_unstable_model_is_skipped_and_a_stable_one_claimed(chain: Chain, market: Market, config_for,
                                                                requester, provider, chaotic_classifier) -> None:
    market.bundles["chaotic"] = chaotic_classifier
    config = config_for(provider, model_screen=True, screen_inputs=3)
    unstable = market.post(requester, spec_cid=market.upload_spec("chaotic", TEXTS, task="classify",
                                                                    max_input_tokens=128))
    stable = market.post(requester, "classify")
    daemon = create_daemon(config, provider)
    thread = threading.Thread(target=daemon.run, name="provider-screen")
    thread.start()
    try:
        wait_for(lambda: (r := daemon.journal.get(unstable)) is not None and r.stage == Stage.SKIPPED,
                 what="the unstable model skipped")
        wait_for(lambda: chain.market.get_job(stable).state == JobState.SUBMITTED, what="the stable job submitted")
    finally:
        daemon.stop()
        thread.join(timeout=60)
        daemon.close()
    reason = daemon.journal.get(unstable).reason
    assert reason.startswith("unstable model: fp32 and bf16 disagree beyond the verifiers' tolerance on 1 of 3")
    assert "probabilities differ" in reason
    claims = chain.market.contract.events.JobClaimed().get_logs(from_block=0)
    assert [entry["args"]["jobId"] for entry in claims] == [stable]


def test_the_screen_is_off_by_default(chain: Chain, market: Market, config_for, requester, provider,
                                      chaotic_classifier) -> None:
    """Without ``model_screen`` the provider serves the same model (and takes the risk)."""
    market.bundles["chaotic"] = chaotic_classifier
    config = config_for(provider)
    assert config.model_screen is False
    spec_cid = market.upload_spec("chaotic", TEXTS, task="classify", max_input_tokens=128)
    job_id = market.post(requester, spec_cid=spec_cid)
    daemon = create_daemon(config, provider)
    try:
        wait_for(lambda: (daemon.step(), chain.market.get_job(job_id).state)[1] == JobState.SUBMITTED,
                 what="the job claimed and submitted")
    finally:
        daemon.close()
