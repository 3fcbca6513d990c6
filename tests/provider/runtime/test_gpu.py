"""The runtime on CUDA (bf16/fp16) against the CPU (fp32), and against sentence-transformers.

The CUDA tests are marked ``gpu`` and skipped where there is no CUDA device (CI); run them on a GPU
machine with ``pytest -m gpu tests/provider/runtime``. The sentence-transformers check runs wherever
that package is installed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from marketplace.jobspec import JobSpec, inputs_manifest
from marketplace.storage.local import LocalStore
from provider.runtime import Runtime
from tests.support.jobs import TEXTS

CPU = torch.device("cpu")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def outputs(store: LocalStore, cache: Path, spec: JobSpec, device: torch.device,
            dtype: torch.dtype | None = None) -> list[dict]:
    runtime = Runtime(store, cache, devices=[device], dtype=dtype)
    return [json.loads(line) for line in runtime.run(spec, runtime.read_inputs(spec))]


def spec_for(store: LocalStore, bundle: Path, kind: str) -> JobSpec:
    model = store.add_path(bundle, recursive=True).cid
    inputs = store.add_bytes(inputs_manifest(TEXTS)).cid
    return JobSpec(task=kind, model=str(model), inputs=str(inputs), num_tasks=len(TEXTS),
                   parameters={"max_new_tokens": 6})


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("kind", ["embed", "classify", "generate", "summarize"])
def test_cuda_agrees_with_cpu(tmp_path: Path, bundles: dict[str, Path], kind: str) -> None:
    store = LocalStore(tmp_path / "store")
    spec = spec_for(store, bundles[kind], kind)
    runtime = Runtime(store, tmp_path / "cuda")
    loaded = runtime.load(spec, runtime.devices[0])
    assert loaded.device.type == "cuda" and loaded.dtype in (torch.bfloat16, torch.float16)
    on_gpu = outputs(store, tmp_path / "cuda", spec, runtime.devices[0])
    on_cpu = outputs(store, tmp_path / "cpu", spec, CPU)
    for gpu, cpu in zip(on_gpu, on_cpu, strict=True):
        if kind == "embed":
            cosine = torch.nn.functional.cosine_similarity(torch.tensor(gpu["embedding"]),
                                                           torch.tensor(cpu["embedding"]), dim=0)
            assert cosine > 0.99
        elif kind == "classify":
            assert gpu["probabilities"] == pytest.approx(cpu["probabilities"], abs=0.05)
        else:
            assert 1 <= len(gpu["tokens"]) <= 6


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("kind", ["generate", "summarize"])
def test_cuda_fp32_generates_the_cpu_tokens(tmp_path: Path, bundles: dict[str, Path], kind: str) -> None:
    """In fp32, greedy decoding on the GPU picks the CPU's tokens. In bf16 it may not: on near-ties
    the argmax flips (seen on an H100 with these random models), which is why the verifier checks
    generated tokens by a teacher-forced pass with a near-tie allowance rather than by equality."""
    store = LocalStore(tmp_path / "store")
    spec = spec_for(store, bundles[kind], kind)
    on_gpu = outputs(store, tmp_path / "cuda", spec, torch.device("cuda"), torch.float32)
    on_cpu = outputs(store, tmp_path / "cpu", spec, CPU)
    agree = sum(gpu["tokens"] == cpu["tokens"] for gpu, cpu in zip(on_gpu, on_cpu, strict=True))
    assert agree >= len(TEXTS) - 1


def test_embed_matches_sentence_transformers(tmp_path: Path, bundles: dict[str, Path]) -> None:
    sentence_transformers = pytest.importorskip("sentence_transformers")
    store = LocalStore(tmp_path / "store")
    spec = spec_for(store, bundles["embed"], "embed")
    ours = torch.tensor([output["embedding"] for output in outputs(store, tmp_path / "cache", spec, CPU)])
    model = sentence_transformers.SentenceTransformer(str(bundles["embed"]), device="cpu")
    theirs = torch.tensor(model.encode(TEXTS, normalize_embeddings=True))
    assert torch.allclose(ours, theirs, atol=1e-5)
