"""The comparators: honest work passes across dtypes and batch sizes; every cheat fails where it touches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from marketplace.jobspec import JobSpec, TaskType, inputs_manifest
from marketplace.storage.local import LocalStore
from provider.runtime import Runtime, RuntimeLimits
from tests.support.cheats import (
    GENERATIVE,
    STRATEGIES,
    CheatingRuntime,
    applies,
    changed_answer,
    honest_noise,
    outside_allowance,
)
from tests.support.jobs import TEXTS
from tests.support.models import KINDS, build_bundle
from verifier.compare import check_tasks, token_gaps

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, bundles: dict[str, Path]) -> dict:
    root = tmp_path_factory.mktemp("compare")
    store = LocalStore(root / "store")
    inputs = str(store.add_bytes(inputs_manifest(TEXTS)).cid)
    specs, others = {}, {}
    for kind in KINDS:
        model = str(store.add_path(bundles[kind], recursive=True).cid)
        specs[kind] = JobSpec(task=kind, model=model, inputs=inputs, num_tasks=len(TEXTS),
                              parameters={"max_new_tokens": 8})
        others[kind] = str(store.add_path(build_bundle(kind, root / f"other-{kind}", seed=99), recursive=True).cid)
    verifier = Runtime(store, root / "verifier", devices=[CPU], dtype=torch.bfloat16)
    return {"root": root, "store": store, "specs": specs, "others": others, "verifier": verifier}


ALL = list(range(len(TEXTS)))


@pytest.mark.parametrize("kind", KINDS)
def test_honest_fp32_batch_of_one_passes_bf16_batched(world: dict, kind: str) -> None:
    spec = world["specs"][kind]
    provider = Runtime(world["store"], world["root"] / "honest", devices=[CPU], limits=RuntimeLimits(max_batch_rows=1))
    outputs = provider.run(spec, TEXTS)
    checks = check_tasks(world["verifier"], spec, TEXTS, ALL, dict(enumerate(outputs)))
    assert all(check.passed for check in checks), [check.reason for check in checks if not check.passed]


CASES = [(kind, strategy) for kind in KINDS for strategy in STRATEGIES if applies(strategy, TaskType(kind))]


@pytest.mark.parametrize(("kind", "strategy"), CASES)
def test_every_cheat_fails_on_every_task_it_touches(world: dict, kind: str, strategy: str) -> None:
    """Touched: the answer moved outside what the comparator accepts from honest work, by more than
    this model's honest fp32-vs-bf16 noise (``changed_answer``, ``outside_allowance``); a replay that
    lands inside is a right answer."""
    spec = world["specs"][kind]
    reference = Runtime(world["store"], world["root"] / "reference", devices=[CPU], dtype=torch.float32)
    honest = reference.run(spec, TEXTS)
    honest_checks = check_tasks(world["verifier"], spec, TEXTS, ALL, dict(enumerate(honest)))
    assert all(check.passed for check in honest_checks)
    noise = honest_noise(kind, honest_checks)
    cheat = CheatingRuntime(world["store"], world["root"] / f"cheat-{kind}", devices=[CPU], strategy=strategy,
                            other_model=world["others"][kind])
    raw = cheat.run(spec, TEXTS)
    outputs = [json.loads(output) for output in raw]
    checks = check_tasks(world["verifier"], spec, TEXTS, ALL, dict(enumerate(raw)))
    touched = [index for index in ALL if changed_answer(outputs[index], json.loads(honest[index]), noise)]
    if TaskType(kind) in GENERATIVE:
        touched = outside_allowance(reference.load(spec, CPU), spec, TEXTS, {i: outputs[i] for i in touched}, noise)
    assert touched, "the cheat changed nothing"
    missed = [index for index in touched if checks[index].passed]
    assert not missed, f"{strategy} on {kind} passed tasks {missed}"


def test_answer_within_tolerance_passes_and_beyond_it_fails(world: dict) -> None:
    """The other side of that promise: classify probabilities moved by less than the tolerance (a
    replay from a similar sentence, or rounding) pass; moved by more, they fail."""
    spec = world["specs"]["classify"]
    honest = json.loads(Runtime(world["store"], world["root"] / "reference", devices=[CPU]).run(spec, TEXTS)[0])

    def shifted(amount: float) -> bytes:
        """``amount`` of probability moved from the runner-up to the label, which stays the label."""
        probabilities = list(honest["probabilities"])
        runner_up = sorted(range(len(probabilities)), key=probabilities.__getitem__)[-2]
        probabilities[honest["label_id"]] += amount
        probabilities[runner_up] -= amount
        return json.dumps({**honest, "probabilities": probabilities}).encode()

    [near] = check_tasks(world["verifier"], spec, TEXTS, [0], {0: shifted(0.02)})
    [far] = check_tasks(world["verifier"], spec, TEXTS, [0], {0: shifted(0.1)})
    assert near.passed, near.reason
    assert not far.passed and "probabilities differ" in far.reason


def test_malformed_outputs_fail(world: dict) -> None:
    spec = world["specs"]["embed"]
    checks = check_tasks(world["verifier"], spec, TEXTS, [0, 1, 2],
                         {0: b"not json", 1: b'{"embedding": [1, 2]}', 2: b'{"embedding": "x"}'})
    assert [check.passed for check in checks] == [False, False, False]



@pytest.mark.parametrize("kind", ["generate", "summarize"])
def test_token_gaps_match_one_unpadded_pass_per_task(world: dict, kind: str) -> None:
    """The batched, right-padded pass (which skips the shared prompt prefix's vocabulary projection)
    gives each task the same gaps as a forward pass over that task alone."""
    spec = world["specs"][kind]
    loaded = Runtime(world["store"], world["root"] / "reference", devices=[CPU], dtype=torch.float32).load(spec, CPU)
    tokens = [[(7 * row + 3 * column) % 90 + 5 for column in range(2 + row % 5)] for row in range(len(TEXTS))]
    batched = token_gaps(loaded, spec, TEXTS, tokens)
    model, tokenizer = loaded.model, loaded.tokenizer
    for text, committed, gaps in zip(TEXTS, tokens, batched, strict=True):
        prompt = tokenizer(text, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            if kind == "summarize":
                decoder = torch.tensor([[model.config.decoder_start_token_id, *committed[:-1]]])
                logits = model(input_ids=prompt, decoder_input_ids=decoder).logits[0]
            else:
                ids = torch.cat([prompt, torch.tensor([committed[:-1]], dtype=torch.long)], dim=1)
                logits = model(input_ids=ids).logits[0, prompt.shape[1] - 1:]
        expected = logits.max(dim=1).values - logits[torch.arange(len(committed)), torch.tensor(committed)]
        assert gaps.shape == (len(committed),)
        assert torch.allclose(gaps, expected, atol=1e-4), (text, gaps, expected)
        assert float(gaps.max()) > 0  # tokens picked by formula, not by the model: some are behind
