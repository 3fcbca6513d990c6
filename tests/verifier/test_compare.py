"""The comparators: honest work passes across dtypes and batch sizes; every cheat fails where it touches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from marketplace.jobspec import JobSpec, TaskType, inputs_manifest
from marketplace.storage.local import LocalStore
from provider.runtime import Runtime, RuntimeLimits
from tests.support.cheats import LEGACY
from tests.support.detection import changed_tasks, honest_work, judged
from tests.support.jobs import TEXTS
from tests.support.models import KINDS, build_bundle
from tests.support.strategies import Setting
from verifier.compare import CLASSIFY_PROB_TOLERANCE, check_tasks, token_gaps
from verifier.verdict import Outcome, References

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
        others[kind] = build_bundle(kind, root / f"other-{kind}", seed=99)
    verifier = Runtime(store, root / "verifier", devices=[CPU], dtype=torch.bfloat16)
    return {"root": root, "store": store, "specs": specs, "other_paths": others, "verifier": verifier}


ALL = list(range(len(TEXTS)))


@pytest.mark.parametrize("kind", KINDS)
def test_honest_fp32_batch_of_one_passes_bf16_batched(world: dict, kind: str) -> None:
    spec = world["specs"][kind]
    provider = Runtime(world["store"], world["root"] / "honest", devices=[CPU], limits=RuntimeLimits(max_batch_rows=1))
    outputs = provider.run(spec, TEXTS)
    checks = check_tasks(world["verifier"], spec, TEXTS, ALL, dict(enumerate(outputs)))
    assert all(check.passed for check in checks), [check.reason for check in checks if not check.passed]


CASES = [(kind, strategy.name) for kind in KINDS for strategy in LEGACY if TaskType(kind) in strategy.tasks]


@pytest.mark.parametrize(("kind", "strategy"), CASES)
def test_every_cheat_fails_on_every_task_it_changes(world: dict, kind: str, strategy: str) -> None:
    """Changed: the answer moved outside the allowance the references' noise on this input's honest work earns
    (``tests.support.detection``); the audit path (both references, scaled allowances) fails each one."""
    spec = world["specs"][kind]
    fp32 = Runtime(world["store"], world["root"] / "reference", devices=[CPU], dtype=torch.float32)
    honest = fp32.run(spec, TEXTS)
    [chosen] = [candidate for candidate in LEGACY if candidate.name == strategy]
    setting = Setting(spec, TEXTS, honest, fp32, world["store"], CPU, world["root"] / "cheats",
                      other=world["other_paths"][kind])
    cheat = chosen.cheat(setting)
    references = References.of(world["verifier"])
    changed = changed_tasks(TaskType(kind), spec, TEXTS, cheat.outputs,
                            honest_work(TaskType(kind), references, spec, TEXTS, honest))
    assert changed, "the cheat changed nothing"
    audits = judged(references, spec, TEXTS, cheat.outputs)
    missed = [index for index in changed if audits[index].outcome is not Outcome.FAIL]
    assert not missed, f"{strategy} on {kind} passed tasks {missed}: {[audits[i].reason for i in missed]}"


def test_an_answer_within_the_allowance_passes_and_beyond_it_fails(world: dict) -> None:
    """The allowance follows the noise: classify probabilities moved by less than the noise the two
    references measure pass; moved by several times it, they fail, although the old fixed tolerance
    (0.05) would have let them through."""
    spec = world["specs"]["classify"]
    honest = json.loads(Runtime(world["store"], world["root"] / "reference", devices=[CPU]).run(spec, TEXTS)[0])
    references = References.of(world["verifier"])
    [reference] = references.audit(spec, TEXTS, [0], {0: json.dumps(honest).encode()})
    allowance = reference.against_a.allowance
    assert allowance is not None and allowance < CLASSIFY_PROB_TOLERANCE

    def shifted(amount: float) -> bytes:
        """``amount`` of probability moved from the runner-up to the label, which stays the label."""
        probabilities = list(honest["probabilities"])
        runner_up = sorted(range(len(probabilities)), key=probabilities.__getitem__)[-2]
        probabilities[honest["label_id"]] += amount
        probabilities[runner_up] -= amount
        return json.dumps({**honest, "probabilities": probabilities}).encode()

    [near] = references.audit(spec, TEXTS, [0], {0: shifted(allowance / 4)})
    [far] = references.audit(spec, TEXTS, [0], {0: shifted(min(2 * allowance, CLASSIFY_PROB_TOLERANCE * 0.9))})
    assert near.outcome is Outcome.PASS, near.reason
    assert far.outcome is Outcome.FAIL and "probabilities differ" in far.reason
    # The one-reference check (the model screen's) still holds the outer bound only.
    [loose] = check_tasks(world["verifier"], spec, TEXTS, [0], {0: shifted(min(2 * allowance, 0.045))})
    assert loose.passed, loose.reason


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
