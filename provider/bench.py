"""``webi provider bench``: tasks a second for each task type on this machine's CPU and on each GPU, on a
standard small workload, so that an owner, and its daemon, know what it can finish before a deadline.

The workload is fixed and needs no download: for each task type a model of a standard shape with seeded
random weights (the compute of a trained model of that shape, which is what throughput depends on) and
seeded inputs. ``standard``: embed and classify on a BERT of all-MiniLM-L6-v2's shape (6 layers, 384 wide)
over 256 texts of 8 to 48 words; generate on a GPT-2 of distilgpt2's shape (6 layers, 768 wide) and
summarize on a T5 of t5-small's shape, 8 prompts, 16 new tokens each. ``tiny``: the demo's tiny models
(``marketplace.demo.models``), for a quick check and the tests. Each device runs the runtime alone on it
(``Runtime(devices=[device])``), after a warm-up run, so the figure is what a job of that kind gets there.

The report is saved in the provider's state folder (``bench.json``): the daemon takes its rate for a task
type it has not measured on real jobs yet (``provider.capacity``), in place of the assumed slow CPU's.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from marketplace.jobspec import JobSpec, Parameters, TaskType, inputs_manifest
from marketplace.storage.local import LocalStore

REPORT_FILE = "bench.json"
WORKLOADS = ("standard", "tiny")
_WORDS = ("the", "model", "runs", "fast", "on", "a", "gpu", "while", "market", "pays", "each", "provider", "for",
          "honest", "work", "and", "verifier", "checks", "sample", "of", "tasks", "against", "commitment", "chain")
# Inputs and new tokens a task type runs in the workload: enough to fill batches, short enough for a CPU.
_INPUTS = {"embed": 256, "classify": 256, "generate": 8, "summarize": 8}
_NEW_TOKENS = 16


@dataclass(frozen=True)
class DeviceBench:
    """One device's figures: ``kind`` ``cpu`` or ``cuda``, its name, and tasks a second by task type."""

    kind: str
    name: str
    tasks_per_s: dict[str, float]


@dataclass(frozen=True)
class BenchReport:
    """What ``run_bench`` measured: the devices, the workload and when."""

    workload: str
    devices: tuple[DeviceBench, ...]
    measured_at: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        return {"workload": self.workload, "measured_at": self.measured_at,
                "devices": [asdict(device) for device in self.devices]}

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> BenchReport:
        devices = tuple(DeviceBench(str(item["kind"]), str(item["name"]),
                                    {str(task): float(rate) for task, rate in item["tasks_per_s"].items()})
                        for item in document["devices"])
        return cls(str(document["workload"]), devices, float(document["measured_at"]))

    def speedup(self, device: DeviceBench, task: str) -> float | None:
        """``device``'s tasks a second over the CPU's for ``task`` (None without a CPU figure)."""
        cpu = next((item.tasks_per_s.get(task) for item in self.devices if item.kind == "cpu"), None)
        rate = device.tasks_per_s.get(task)
        return None if not cpu or rate is None else rate / cpu

    def rate(self, task: str) -> float | None:
        """What the runtime gets for ``task`` with its devices: every GPU at once (it gives batches to whichever
        is free), or the CPU when there is none (the runtime does not use the CPU beside GPUs)."""
        gpus = [item.tasks_per_s[task] for item in self.devices if item.kind == "cuda" and task in item.tasks_per_s]
        if gpus:
            return sum(gpus)
        return next((item.tasks_per_s.get(task) for item in self.devices if item.kind == "cpu"), None)

    def save(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / REPORT_FILE
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(self.as_dict(), indent=2, sort_keys=True) + "\n")
        partial.replace(path)  # a crash mid-write leaves the last report, never half of one
        return path

    @classmethod
    def load(cls, folder: Path) -> BenchReport | None:
        """The saved report, or None when there is none (or it is unreadable: the daemon then assumes)."""
        try:
            return cls.from_dict(json.loads((folder / REPORT_FILE).read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            return None


def bench_devices() -> list[torch.device]:
    """The CPU, then every CUDA device: the speed-up is measured against the CPU of the same machine."""
    return [torch.device("cpu"), *(torch.device("cuda", index) for index in range(torch.cuda.device_count()))]


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return str(torch.cuda.get_device_name(device))
    import platform

    return platform.processor() or platform.machine() or "cpu"


def workload_inputs(kind: str, seed: int = 7) -> list[str]:
    chooser = random.Random(f"{seed}:{kind}")
    return [" ".join(chooser.choices(_WORDS, k=chooser.randint(8, 48))) for _ in range(_INPUTS[kind])]


def build_model(kind: str, workload: str, folder: Path) -> Path:
    """The workload's model for ``kind`` in ``folder`` (seeded random weights, safetensors)."""
    from transformers.utils import logging as transformers_logging

    from marketplace.demo.models import build_bundle, tokenizer

    if workload == "tiny":
        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        return build_bundle(kind, folder)
    if workload != "standard":
        raise ValueError(f"unknown workload {workload!r}: one of {', '.join(WORKLOADS)}")
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        BertModel,
        GPT2Config,
        GPT2LMHeadModel,
        T5Config,
        T5ForConditionalGeneration,
    )

    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # "Writing model shards" says nothing
    torch.manual_seed(0)
    tok = tokenizer(folder)
    size = len(tok)
    bert: dict[str, Any] = {"vocab_size": size, "hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12,
            "intermediate_size": 1536, "max_position_embeddings": 512}
    model: Any
    if kind == "embed":
        model = BertModel(BertConfig(**bert))
    elif kind == "classify":
        model = BertForSequenceClassification(BertConfig(**bert, num_labels=3))  # type: ignore[call-arg]
    elif kind == "generate":
        model = GPT2LMHeadModel(GPT2Config(vocab_size=size, n_embd=768, n_layer=6, n_head=12, n_positions=1536,
                                           bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id,
                                           pad_token_id=tok.pad_token_id))
    elif kind == "summarize":
        model = T5ForConditionalGeneration(T5Config(
            vocab_size=size, d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_decoder_layers=6, num_heads=8,
            pad_token_id=tok.pad_token_id, eos_token_id=tok.sep_token_id,
            decoder_start_token_id=tok.pad_token_id))  # type: ignore[call-arg]  # a PretrainedConfig kwarg
    else:
        raise ValueError(kind)
    model.eval()
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder


def run_bench(work_dir: Path, *, kinds: Sequence[str] = tuple(TaskType), workload: str = "standard",
              devices: Sequence[torch.device] | None = None,
              progress: Callable[[str], None] | None = None) -> BenchReport:
    """Measures every task type in ``kinds`` on every device (default: the CPU and each GPU)."""
    from provider.runtime import Runtime

    store = LocalStore(work_dir / "store")
    chosen = list(devices or bench_devices())
    jobs = []
    for kind in kinds:
        kind = TaskType(kind).value
        bundle = build_model(kind, workload, work_dir / "models" / kind)
        texts = workload_inputs(kind)
        spec = JobSpec(task=TaskType(kind), model=str(store.add_path(bundle, recursive=True).cid),
                       inputs=str(store.add_bytes(inputs_manifest(texts)).cid), num_tasks=len(texts),
                       parameters=Parameters(max_new_tokens=_NEW_TOKENS))
        jobs.append((kind, spec, texts))
    results = []
    for device in chosen:
        runtime = Runtime(store, work_dir / "cache", devices=[device])
        rates = {}
        for kind, spec, texts in jobs:
            if progress is not None:
                progress(f"{kind} on {device}")
            runtime.run(spec, texts[:2])  # loads and warms up: the figure is the steady state
            started = time.perf_counter()
            runtime.run(spec, texts)
            rates[kind] = len(texts) / (time.perf_counter() - started)
        results.append(DeviceBench(device.type, device_name(device), rates))
        del runtime  # its models, before the next device loads its own
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return BenchReport(workload, tuple(results))
