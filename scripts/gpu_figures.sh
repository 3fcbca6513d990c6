#!/usr/bin/env bash
# Every GPU figure and CUDA test of the provider in one call, for a machine with an NVIDIA GPU:
#
#     scripts/gpu_figures.sh OUTDIR
#
# PYTHON picks the interpreter (default python3); BENCH_ARGS go to bench_provider.py and PROVIDER_BENCH_ARGS
# to `webi provider bench` (e.g. "--tasks 64 --rounds 1" and "--workload tiny" for a quick check of this script).
#
# OUTDIR gets: nvidia-smi.csv (the card as found), gpu-tests.log (pytest -m gpu over the runtime),
# bench_provider.json (scripts/bench_provider.py --json: overhead_ratio, pipeline_overhead_ratio,
# embed_vs_sentence_transformers, generate_speedup), dmon.log (nvidia-smi dmon, one line a second,
# while bench_provider ran: how busy the GPU stayed across jobs) and provider_bench.json
# (`webi provider bench --json --no-save`, the standard workload on the CPU and each GPU).
# Each step has its own deadline, so one that hangs costs its slot and not the rest; the last line
# is a summary. Nothing here changes the card's settings.
set -u
out=${1:?usage: scripts/gpu_figures.sh OUTDIR}
py=${PYTHON:-python3}
mkdir -p "$out"
export PYTHONUNBUFFERED=1

step() {  # step NAME SECONDS COMMAND...: runs COMMAND under a deadline and notes its exit status
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    timeout "$limit" "$@"
    local status=$?
    echo "== $name: exit $status after $((SECONDS - start)) s" | tee -a "$out/steps.log" >&2
}

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem,utilization.gpu,temperature.gpu,power.draw \
    --format=csv > "$out/nvidia-smi.csv" 2>&1
cat "$out/nvidia-smi.csv" >&2
"$py" -c "import torch, transformers; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA', 'transformers', transformers.__version__)" >&2

nvidia-smi dmon -s u -d 1 > "$out/dmon.log" 2>&1 &
dmon=$!
step bench-provider 270 "$py" scripts/bench_provider.py --json ${BENCH_ARGS:-} > "$out/bench_provider.json" 2> "$out/bench_provider.err"
kill "$dmon" 2>/dev/null
wait "$dmon" 2>/dev/null

step provider-bench 150 "$py" -c "from marketplace.cli.main import run; run()" provider bench --json --no-save ${PROVIDER_BENCH_ARGS:-} \
    > "$out/provider_bench.json" 2> "$out/provider_bench.err"

step gpu-tests 150 "$py" -m pytest -q -p no:cacheprovider -m gpu -rs tests/provider/runtime/test_gpu.py \
    tests/provider/runtime/test_runtime.py > "$out/gpu-tests.log" 2>&1
tail -3 "$out/gpu-tests.log" >&2

"$py" - "$out" <<'EOF' >&2
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
def load(name):
    try:
        return json.loads((out / name).read_text())
    except (OSError, ValueError) as error:
        return {"error": f"{name}: {error}"}
bench = load("bench_provider.json")
keys = ("device", "model", "runtime_tasks_per_s", "daemon_tasks_per_s", "overhead_ratio", "pipeline_tasks_per_s",
        "pipeline_overhead_ratio", "embed_vs_sentence_transformers", "sentence_transformers_tasks_per_s",
        "generate_tokens_per_s", "plain_generate_tokens_per_s", "generate_speedup", "daemon_steps", "error")
print(json.dumps({key: bench[key] for key in keys if key in bench}))
print(json.dumps(load("provider_bench.json")))
EOF
