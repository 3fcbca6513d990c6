"""The protocol's verdict rule with two references: a stable model's honest work passes, a cheat fails,
and an unstable model (its bf16 and fp32 references disagree) is inconclusive, on the comparators and
on a real chain, where an inconclusive verdict pays the provider and slashes nobody."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification, GPT2Config, GPT2LMHeadModel

from marketplace.chain.deployment import WEI
from marketplace.errors import ContentNotFoundError
from marketplace.jobspec import JobSpec, Parameters, inputs_manifest
from marketplace.protocol import CreditKind, JobState, Role, Verdict
from marketplace.storage.importer import Importer
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
from verifier.outputs import SampledOutputs
from verifier.verdict import Outcome, References, judge, judge_generation, other_dtype, verdict_of

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


def unstable_generator(directory: Path) -> Path:
    """A tiny GPT-2 initialized at 0.5 (the test models use 0.3): over 64 tokens its bf16 and fp32
    argmax tokens part somewhere on many sequences, garbage ones included."""
    torch.manual_seed(0)
    tok = tokenizer(directory)
    config = GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=2, n_positions=256, initializer_range=0.5,
                        bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id, pad_token_id=tok.pad_token_id)
    GPT2LMHeadModel(config).eval().save_pretrained(directory, safe_serialization=True)
    tok.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, bundles: dict[str, Path], unstable: Path) -> dict:
    root = tmp_path_factory.mktemp("rule")
    store = LocalStore(root / "store")
    inputs = str(store.add_bytes(inputs_manifest(TEXTS)).cid)
    specs = {kind: JobSpec(task=kind, model=str(store.add_path(bundles[kind], recursive=True).cid), inputs=inputs,
                           num_tasks=len(TEXTS), parameters={"max_new_tokens": 8}) for kind in KINDS}
    specs["unstable"] = JobSpec(task="classify", model=str(store.add_path(unstable, recursive=True).cid),
                                inputs=inputs, num_tasks=len(TEXTS), parameters={"max_input_tokens": 128})
    chaotic = unstable_generator(root / "chaotic")
    specs["chaotic"] = JobSpec(task="generate", model=str(store.add_path(chaotic, recursive=True).cid),
                               inputs=inputs, num_tasks=len(TEXTS),
                               parameters={"max_new_tokens": 64, "max_input_tokens": 128})
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


def canonical(value: dict) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def test_an_answer_far_from_both_references_fails_even_on_an_unstable_model(world: dict) -> None:
    """The reviewer's attack: on the task where the references disagree, a confident wrong label (well
    formed, far from both references and from their spread) is the provider's fault, not instability."""
    spec, references = world["specs"]["unstable"], world["references"]
    outputs = dict(enumerate(honest(world, "unstable")))
    unsure = [task.index for task in references.audit(spec, TEXTS, ALL, outputs)
              if task.outcome is Outcome.INCONCLUSIVE]
    assert unsure, "the model must be unstable on some task for this test to mean anything"
    labels = {0: "negative", 1: "neutral", 2: "positive"}
    for index in unsure:
        wrong = min(range(3), key=json.loads(outputs[index])["probabilities"].__getitem__)  # the least likely
        outputs[index] = canonical({"label": labels[wrong], "label_id": wrong,
                                    "probabilities": [1.0 if label == wrong else 0.0 for label in range(3)]})
    tasks = references.audit(spec, TEXTS, ALL, outputs)
    assert verdict_of(tasks) == Verdict.FAIL
    assert [tasks[index].outcome for index in unsure] == [Outcome.FAIL] * len(unsure)
    assert all("spread" in tasks[index].reason and tasks[index].references is not None
               and not tasks[index].references.passed for index in unsure)


def test_random_probabilities_on_an_unstable_model_fail_every_task_outside_both(world: dict) -> None:
    rng = random.Random(1)
    labels = {0: "negative", 1: "neutral", 2: "positive"}
    outputs = {}
    for index in ALL:
        weights = [rng.random() for _ in range(3)]
        probabilities = [weight / sum(weights) for weight in weights]
        label = max(range(3), key=probabilities.__getitem__)
        outputs[index] = canonical({"label": labels[label], "label_id": label, "probabilities": probabilities})
    tasks = world["references"].audit(world["specs"]["unstable"], TEXTS, ALL, outputs)
    assert verdict_of(tasks) == Verdict.FAIL
    assert all(task.outcome is Outcome.FAIL for task in tasks if not task.against_a.passed
               and task.against_b is not None and not task.against_b.passed)


def test_garbage_tokens_on_an_unstable_generator_fail_every_task(world: dict) -> None:
    """The reviewer's attack: random tokens on a generator whose references part on some sequences.
    Measured along the garbage, the references disagree on many tasks; only their disagreement before
    the garbage's first token counts, so every task fails (before the fix, 40 % were inconclusive)."""
    spec, references = world["specs"]["chaotic"], world["references"]
    loaded = references.a.load(spec, CPU)
    tok = loaded.tokenizer
    specials = {tok.pad_token_id, tok.cls_token_id, tok.sep_token_id, tok.unk_token_id, tok.mask_token_id}
    vocabulary = [token for token in range(len(tok)) if token not in specials]
    rng = random.Random(0)
    tasks = []
    for _ in range(3):  # several draws of garbage: a cheat may retry until the references disagree
        garbage = {}
        for index in ALL:
            tokens = [rng.choice(vocabulary) for _ in range(64)]
            garbage[index] = canonical({"text": tok.decode(tokens, skip_special_tokens=True), "tokens": tokens})
        tasks += references.audit(spec, TEXTS, ALL, garbage)
    assert [task.outcome for task in tasks] == [Outcome.FAIL] * len(tasks), [t.reason for t in tasks]


def test_honest_work_on_an_unstable_generator_is_never_a_fail(world: dict) -> None:
    for dtype in (torch.float32, torch.bfloat16):
        provider = Runtime(world["store"], world["root"] / f"chaotic-{dtype}", devices=[CPU], dtype=dtype)
        outputs = dict(enumerate(provider.run(world["specs"]["chaotic"], TEXTS)))
        tasks = world["references"].audit(world["specs"]["chaotic"], TEXTS, ALL, outputs)
        assert all(task.outcome is not Outcome.FAIL for task in tasks), (dtype, [task.reason for task in tasks])


def test_reference_b_is_the_other_dtype() -> None:
    assert other_dtype(torch.float32) == torch.bfloat16
    assert other_dtype(torch.bfloat16) == torch.float32
    assert other_dtype(torch.float16) == torch.float32


def test_a_cpu_verifier_does_not_fail_an_honest_bf16_provider_on_an_unstable_model(world: dict) -> None:
    """A CPU verifier runs A in fp32: B in bf16 shows the instability that one fp32 reference hides (it
    would call the honest bf16 outputs a fail)."""
    spec = world["specs"]["unstable"]
    fp32 = References.of(Runtime(world["store"], world["root"] / "verifier-fp32", devices=[CPU]))
    assert fp32.describe()["a"]["dtype"] == "float32" and fp32.describe()["b"]["dtype"] == "bfloat16"
    provider = Runtime(world["store"], world["root"] / "provider-bf16", devices=[CPU], dtype=torch.bfloat16)
    tasks = fp32.audit(spec, TEXTS, ALL, dict(enumerate(provider.run(spec, TEXTS))))
    assert verdict_of(tasks) != Verdict.FAIL, [task.reason for task in tasks]
    assert any(not task.against_a.passed for task in tasks), "fp32 alone would have failed it"


def test_a_spec_the_store_cannot_find_is_retried_a_malformed_one_excuses_the_provider(world: dict) -> None:
    """Not found may be transient (a store still importing, another gateway): the error reaches the caller,
    who retries; only a spec that is there and malformed is the requester's fault."""
    references, output = world["references"], SampledOutputs("store", {0: b"{}"})
    missing = str(Importer().add_bytes(b"a spec nobody stored").cid)
    with pytest.raises(ContentNotFoundError):
        references.judge_sample(missing, [0], output)
    malformed = str(world["store"].add_bytes(b"not a job spec").cid)
    sample = references.judge_sample(malformed, [0], output)
    assert sample.inputs_unusable and sample.verdict == Verdict.PASS and not sample.conclusive


def test_a_job_longer_than_the_models_position_table_excuses_the_provider(world: dict) -> None:
    """The requester asked for more input tokens than the model has positions (the unstable classifier
    has 128; the default is 512): no provider could run it, so the sample is excused, not retried."""
    too_long = world["specs"]["unstable"].model_copy(update={"parameters": Parameters(max_input_tokens=512)})
    cid = str(world["store"].add_bytes(too_long.to_bytes()).cid)
    sample = world["references"].judge_sample(cid, [0], SampledOutputs("store", {0: b"{}"}))
    assert "positions" in sample.inputs_unusable and sample.verdict == Verdict.PASS and not sample.conclusive


def test_outputs_found_nowhere_are_judged_by_nobody(world: dict) -> None:
    sample = world["references"].judge_sample("unused: no spec is read", [0, 3],
                                              SampledOutputs("unavailable", {}, missing="outputs not available: 404"))
    assert sample.verdict == Verdict.INCONCLUSIVE and not sample.conclusive
    assert [task.outcome for task in sample.tasks] == [Outcome.INCONCLUSIVE] * 2
    assert all("not available" in task.reason for task in sample.tasks)


def test_a_malformed_output_fails_even_on_an_unstable_model(world: dict) -> None:
    outputs = dict(enumerate(honest(world, "unstable")))
    outputs[0] = b"not json"
    outputs[1] = json.dumps({"label": "positive", "label_id": 2, "probabilities": [1.0]}).encode()
    tasks = world["references"].audit(world["specs"]["unstable"], TEXTS, ALL, outputs)
    assert verdict_of(tasks) == Verdict.FAIL
    assert [tasks[0].outcome, tasks[1].outcome] == [Outcome.FAIL, Outcome.FAIL]


def check(passed: bool) -> TaskCheck:
    return TaskCheck(0, passed, "within" if passed else "outside", 0.0)


@pytest.mark.parametrize(("a", "b", "references", "spread", "expected"), [
    (True, True, True, False, Outcome.PASS),
    (False, True, True, False, Outcome.PASS),  # within one reference: honest noise on the other side
    (True, False, True, False, Outcome.PASS),
    (False, False, True, False, Outcome.FAIL),  # outside both while they agree: the provider's fault
    (False, False, True, True, Outcome.FAIL),  # the spread of agreeing references excuses nothing
    (True, True, False, False, Outcome.INCONCLUSIVE),  # the references disagree: the model is unstable
    (False, True, False, False, Outcome.INCONCLUSIVE),  # within one of two disagreeing references
    (False, False, False, True, Outcome.INCONCLUSIVE),  # outside both, but where their disagreement reaches
    (False, False, False, False, Outcome.FAIL),  # far from both: an unstable model does not excuse garbage
])
def test_the_rule_for_one_task(a: bool, b: bool, references: bool, spread: bool, expected: Outcome) -> None:
    assert judge(0, check(a), check(b), check(references), spread=spread).outcome is expected


def gaps(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


FAR = 5.0  # logits behind: outside any allowance (NEAR_TIE_LOGITS is 1)


@pytest.mark.parametrize(("behind_a", "behind_b", "apart", "expected"), [
    # honest tokens, references in agreement: pass
    ((0, 0, 0, 0), (0, 0.3, 0, 0), (0, 0, 0, 0), Outcome.PASS),
    # garbage from the first token, references disagreeing only later (on the garbage's own context): fail
    ((FAR, FAR, FAR, FAR), (FAR, FAR, FAR, FAR), (0, 0, FAR, FAR), Outcome.FAIL),
    # the references part at position 1, the provider (on one reference's path) leaves both at 2: unstable
    ((0, FAR, FAR, FAR), (0, 0, FAR, FAR), (0, FAR, 0, 0), Outcome.INCONCLUSIVE),
    # the provider leaves A at 1 and B at 2; the references part at 3, after that: its fault
    ((0, FAR, 0, 0), (0, 0, FAR, 0), (0, 0, 0, FAR), Outcome.FAIL),
    # within B throughout while the references disagree: the model is unstable
    ((0, FAR, FAR, 0), (0, 0, 0, 0), (0, FAR, 0, 0), Outcome.INCONCLUSIVE),
])
def test_the_rule_for_one_generation_task(behind_a: tuple[float, ...], behind_b: tuple[float, ...],
                                          apart: tuple[float, ...], expected: Outcome) -> None:
    """Only the references' disagreements up to the provider's deviation from both count."""
    assert judge_generation(0, gaps(*behind_a), gaps(*behind_b), gaps(*apart)).outcome is expected


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
        spec_cid = shaky.upload_spec("unstable", TEXTS, task="classify", max_input_tokens=128)
        job_id = shaky.post(requester, spec_cid=spec_cid, **AUDIT_ALL)
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
