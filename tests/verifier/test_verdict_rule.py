"""The protocol's verdict rule with two references: a stable model's honest work passes, a cheat fails,
and an unstable model (its bf16 and fp32 references disagree) is inconclusive, on the comparators and
on a real chain, where an inconclusive verdict pays the provider and slashes nobody."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from marketplace.chain.deployment import WEI
from marketplace.jobspec import JobSpec, inputs_manifest
from marketplace.protocol import CreditKind, JobState, Role, Verdict
from marketplace.storage.local import LocalStore
from provider.factory import create_daemon
from provider.runtime import Runtime
from tests.conftest import Chain
from tests.support.cheats import CheatingRuntime
from tests.support.jobs import TEXTS, Market
from tests.support.models import KINDS, tokenizer
from tests.support.waiting import wait_for
from tests.verifier.test_verifier_daemon import AUDIT_ALL, make_verifier, running, seed_visible, settled, state_of
from verifier.compare import TaskCheck
from verifier.verdict import Outcome, References, judge, verdict_of

__all__ = ["make_verifier"]  # the fixture, shared with the daemon's tests

CPU = torch.device("cpu")
ALL = list(range(len(TEXTS)))


def unstable_classifier(directory: Path) -> Path:
    """A tiny classifier initialized so widely (2.0, against the test models' 0.3) that it is chaotic:
    bf16 rounding moves some of its probabilities by more than the tolerance against fp32."""
    torch.manual_seed(0)
    tok = tokenizer(directory)
    labels = {0: "negative", 1: "neutral", 2: "positive"}
    config = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, initializer_range=2.0, num_labels=3,
                        id2label=labels, label2id={name: index for index, name in labels.items()})
    model = BertForSequenceClassification(config).eval()
    model.save_pretrained(directory, safe_serialization=True)
    tok.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def unstable(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return unstable_classifier(tmp_path_factory.mktemp("unstable") / "bundle")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, bundles: dict[str, Path], unstable: Path) -> dict:
    root = tmp_path_factory.mktemp("rule")
    store = LocalStore(root / "store")
    inputs = str(store.add_bytes(inputs_manifest(TEXTS)).cid)
    specs = {kind: JobSpec(task=kind, model=str(store.add_path(bundles[kind], recursive=True).cid), inputs=inputs,
                           num_tasks=len(TEXTS), parameters={"max_new_tokens": 8}) for kind in KINDS}
    specs["unstable"] = JobSpec(task="classify", model=str(store.add_path(unstable, recursive=True).cid),
                                inputs=inputs, num_tasks=len(TEXTS))
    references = References.of(Runtime(store, root / "verifier", devices=[CPU], dtype=torch.bfloat16))
    return {"root": root, "store": store, "specs": specs, "references": references}


def honest(world: dict, key: str) -> list[bytes]:
    return Runtime(world["store"], world["root"] / "provider", devices=[CPU]).run(world["specs"][key], TEXTS)


@pytest.mark.parametrize("kind", KINDS)
def test_a_stable_models_honest_work_passes_and_its_references_agree(world: dict, kind: str) -> None:
    tasks = world["references"].audit(world["specs"][kind], TEXTS, ALL, dict(enumerate(honest(world, kind))))
    assert verdict_of(tasks) == Verdict.PASS, [task.reason for task in tasks if task.outcome is not Outcome.PASS]
    assert all(task.references is not None and task.references.passed for task in tasks)
    assert all(task.against_b is not None and task.against_b.metric is not None for task in tasks)


@pytest.mark.parametrize("kind", ["classify", "generate"])
def test_a_cheat_fails_where_the_references_agree(world: dict, kind: str) -> None:
    cheat = CheatingRuntime(world["store"], world["root"] / f"cheat-{kind}", devices=[CPU], strategy="random")
    tasks = world["references"].audit(world["specs"][kind], TEXTS, ALL, dict(enumerate(cheat.run(world["specs"][kind],
                                                                                                  TEXTS))))
    assert verdict_of(tasks) == Verdict.FAIL
    failed = [task for task in tasks if task.outcome is Outcome.FAIL]
    assert failed and all(task.references is not None and task.references.passed for task in failed)
    assert all(not task.against_a.passed and task.against_b is not None and not task.against_b.passed
               for task in failed if not task.against_a.malformed)


def test_an_unstable_model_is_inconclusive_not_the_providers_fault(world: dict) -> None:
    tasks = world["references"].audit(world["specs"]["unstable"], TEXTS, ALL,
                                      dict(enumerate(honest(world, "unstable"))))
    assert verdict_of(tasks) == Verdict.INCONCLUSIVE
    unsure = [task for task in tasks if task.outcome is Outcome.INCONCLUSIVE]
    assert unsure and all(task.references is not None and not task.references.passed for task in unsure)
    assert all(task.outcome is not Outcome.FAIL for task in tasks)
    entry = unsure[0].as_dict()
    assert entry["outcome"] == "inconclusive" and entry["a_vs_b"]["within"] is False
    assert entry["a_vs_b"]["metric"] > 0.05 and entry["provider_vs_b"]["within"] is True


def test_a_malformed_output_fails_even_on_an_unstable_model(world: dict) -> None:
    outputs = dict(enumerate(honest(world, "unstable")))
    outputs[0] = b"not json"
    outputs[1] = json.dumps({"label": "positive", "label_id": 2, "probabilities": [1.0]}).encode()
    tasks = world["references"].audit(world["specs"]["unstable"], TEXTS, ALL, outputs)
    assert verdict_of(tasks) == Verdict.FAIL
    assert [tasks[0].outcome, tasks[1].outcome] == [Outcome.FAIL, Outcome.FAIL]


def check(passed: bool) -> TaskCheck:
    return TaskCheck(0, passed, "within" if passed else "outside", 0.0)


@pytest.mark.parametrize(("a", "b", "references", "expected"), [
    (True, True, True, Outcome.PASS),
    (False, True, True, Outcome.PASS),  # within one reference: honest noise on the other side
    (True, False, True, Outcome.PASS),
    (False, False, True, Outcome.FAIL),  # outside both while they agree: the provider's fault
    (False, False, False, Outcome.INCONCLUSIVE),  # the references disagree: the model is unstable
    (True, True, False, Outcome.INCONCLUSIVE),
])
def test_the_rule_for_one_task(a: bool, b: bool, references: bool, expected: Outcome) -> None:
    assert judge(0, check(a), check(b), check(references)).outcome is expected


def test_the_rule_for_a_job() -> None:
    passed, unsure, failed = (judge(0, check(True), check(True), check(True)),
                              judge(1, check(True), check(True), check(False)),
                              judge(2, check(False), check(False), check(True)))
    assert verdict_of([passed, passed]) == Verdict.PASS
    assert verdict_of([passed, unsure]) == Verdict.INCONCLUSIVE
    assert verdict_of([unsure, failed, passed]) == Verdict.FAIL


def test_an_unstable_model_gets_an_inconclusive_verdict_on_chain(chain: Chain, market: Market, config_for,
                                                                 make_verifier, requester, provider, verifier,
                                                                 unstable: Path) -> None:
    """The provider (fp32) is honest, the verifier's references (bf16, fp32) disagree: ``Verdict.INCONCLUSIVE``,
    and after the challenge window the provider is paid, the verifier gets its fee, nobody is slashed."""
    chain.register(verifier, Role.VERIFIER, 1_000 * WEI)
    providing = create_daemon(config_for(provider), provider)
    auditing = make_verifier(verifier)
    stake = chain.market.provider_stake(provider.address).stake
    shaky = Market(chain, market.store, {**market.bundles, "unstable": unstable})
    with running(providing, auditing):
        job_id = shaky.post(requester, spec_cid=shaky.upload_spec("unstable", TEXTS, task="classify"), **AUDIT_ALL)
        seed_visible(chain, job_id)
        settled(chain, job_id)
        wait_for(lambda: auditing.journal.get(job_id).stage.value == "settled", what="the verifier to see it")
    record = auditing.journal.get(job_id)
    assert record.verdict == "inconclusive" and record.passed
    assert chain.market.audit_of(job_id).verdict == Verdict.INCONCLUSIVE
    assert state_of(chain, job_id) == JobState.FINALIZED
    evidence = json.loads(market.read(record.evidence_cid))
    assert evidence["verdict"] == "inconclusive" and evidence["outcomes"]["inconclusive"] >= 1
    assert evidence["outcomes"]["fail"] == 0
    credited = {entry["args"]["kind"]: entry["args"] for entry in
                chain.market.contract.events.Credited().get_logs(from_block=0, argument_filters={"jobId": job_id})}
    assert credited[CreditKind.PROVIDER_PAYMENT]["account"] == provider.address
    assert credited[CreditKind.VERIFIER_FEE]["account"] == verifier.address
    assert chain.market.provider_stake(provider.address).stake == stake
    assert chain.market.verifier_stake(verifier.address).stake == 1_000 * WEI
