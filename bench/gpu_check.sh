#!/usr/bin/env bash
# gpu_check.sh — the CUDA backend on a machine with a GPU: every kernel
# against the CPU reference on random inputs, then the fused LoRA GEMM timed
# at docs/perf.md's kernel shapes (and the bf16 GEMM's target, 4096^3 r16),
# lorac's fp32 and bf16 paths beside torch.matmul (cuBLAS) when a Python
# with torch is there (report.txt's second table is the bf16 GEMM kernel
# alone as a percentage of cuBLAS); then a short lorac train --device cuda
# of benchmark models, its losses checked against the CPU's.
#
#   bench/gpu_check.sh --build          build bench/gpu/cuda.test and bench/gpu/lorac here (needs Go),
#                                       and the CPU training references in bench/gpu/train
#   bench/gpu_check.sh [OUT] [PYTHON]   run it (needs no Go and no network)
#
# OUT (default bench/gpu/out) receives test.log, lorac.jsonl, torch.jsonl,
# models.txt (lorac bench --device cuda beside PyTorch + PEFT on the GPU,
# per benchmark configuration), train.txt (the device's training losses
# beside the CPU's, per configuration of TRAIN_CONFIGS) and report.txt.
# TRAIN_CONFIGS (default "tiny"; also gpt2s, llama) names the benchmark
# configurations trained; --build makes their references (a base, then 5
# LoRA steps on the CPU), so set it the same for both. PYTHON defaults to python3; without torch the comparison
# column is left out. The test binary is built with CGO_ENABLED=0 and finds
# the driver at run time (libcuda.so.1, or $LORAC_CUDA_LIB).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin="$here/gpu/cuda.test"
if [ "${1:-}" = "--build" ]; then
	mkdir -p "$here/gpu"
	(cd "$here/.." && CGO_ENABLED=0 go test -c -o "$bin" ./runtime/cuda &&
		CGO_ENABLED=0 go build -o "$here/gpu/lorac" ./cmd/lorac)
	# The CPU references of the training check: a base (one step of full
	# training from the seeded initialisation), then LoRA steps on it,
	# with the data they read.
	ref="$here/gpu/train"
	mkdir -p "$ref"
	cp "$here/../README.md" "$ref/data.txt"
	for config in ${TRAIN_CONFIGS:-tiny}; do
		lora="$here/../examples/bench-$config/bench-$config.lora"
		"$here/gpu/lorac" train "$lora" --full --steps 1 --eval-batches 1 --data "$ref/data.txt" \
			--out "$ref/$config-base" --overwrite
		"$here/gpu/lorac" train "$lora" --base "$ref/$config-base" --steps 5 --eval-every 5 --eval-batches 2 \
			--data "$ref/data.txt" --out "$ref/$config-cpu" --overwrite
	done
	echo "built $bin and $here/gpu/lorac, and the training references in $ref; copy the checkout (bench/gpu/ included) to the GPU machine and run bench/gpu_check.sh"
	exit 0
fi
out=${1:-$here/gpu/out}
python=${2:-python3}
if [ ! -x "$bin" ]; then
	echo "no $bin: run bench/gpu_check.sh --build on a machine with Go first" >&2
	exit 1
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -f "$out/lorac.jsonl" "$out/torch.jsonl"

# 1. Correctness and lorac's timings. A GPU test that skips means no GPU
# answered: that is a failure here.
status=0
# The binary runs in its package directory, as go test would run it: the
# whole-model checks read the test models from ../../internal/gen.
(cd "$here/../runtime/cuda" && LORAC_GPU_TIMING=1 LORAC_GPU_REPORT="$out/lorac.jsonl" \
	"$bin" -test.run '^TestGPU' -test.v -test.count=1 -test.timeout 20m) 2>&1 | tee "$out/test.log" || status=$?
if grep -q -- '--- SKIP: TestGPU' "$out/test.log"; then
	echo "gpu_check: GPU tests skipped (no GPU?); see $out/test.log" >&2
	status=1
fi

# 2. torch.matmul at the same shapes, if torch is there.
torch_cuda=0
if "$python" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
	torch_cuda=1
fi
if [ $torch_cuda = 1 ]; then
	"$python" "$here/gpu_torch.py" >"$out/torch.jsonl" || status=$?
else
	echo "gpu_check: no Python with CUDA torch ($python); timing lorac alone" >&2
fi

# 3. Whole models: lorac bench --device cuda (the compiled graphs through
# internal/devexec) beside PyTorch + PEFT on the same GPU, per benchmark
# configuration.
for config in tiny gpt2s llama; do
	lora="$here/../examples/bench-$config/bench-$config.lora"
	echo "== $config" | tee -a "$out/models.txt"
	"$here/gpu/lorac" bench "$lora" --device cuda --steps 5 2>&1 | tee -a "$out/models.txt" || status=$?
	if [ $torch_cuda = 1 ] && "$python" -c 'import peft, transformers' 2>/dev/null; then
		"$python" "$here/pytorch_reference.py" --config "$config" --device cuda --threads 1 --steps 5 \
			--rows "adapter unmerged" 2>&1 | tee -a "$out/models.txt" || status=$?
		"$python" "$here/pytorch_reference.py" --config "$config" --device cuda --threads 1 --steps 5 \
			--rows "train" 2>&1 | tail -1 | tee -a "$out/models.txt" || status=$?
	fi
done

# 4. Training on the device: the same run as the CPU reference --build
# made, its losses (trainer_state.json) checked against the CPU's.
: >"$out/train.txt"
for config in ${TRAIN_CONFIGS:-tiny}; do
	ref="$here/gpu/train"
	lora="$here/../examples/bench-$config/bench-$config.lora"
	if [ ! -f "$ref/$config-cpu/checkpoint/trainer_state.json" ]; then
		echo "gpu_check: no CPU training reference for $config in $ref: run bench/gpu_check.sh --build with the same TRAIN_CONFIGS" | tee -a "$out/train.txt" >&2
		status=1
		continue
	fi
	"$here/gpu/lorac" train "$lora" --device cuda --base "$ref/$config-base" --steps 5 --eval-every 5 --eval-batches 2 \
		--data "$ref/data.txt" --out "$out/train-$config" --overwrite 2>&1 | tail -3 | tee -a "$out/train.txt" || status=$?
	python3 - "$config" "$ref/$config-cpu/checkpoint/trainer_state.json" "$out/train-$config/checkpoint/trainer_state.json" <<'PY' | tee -a "$out/train.txt" || status=1
import json, sys
config, cpu_path, dev_path = sys.argv[1:]
try:
    cpu, dev = json.load(open(cpu_path)), json.load(open(dev_path))
except OSError as e:
    print("%s: %s" % (config, e)); sys.exit(1)
bad = 0
print("%s: step, loss on the CPU, on the GPU, relative difference (tolerance 1e-3)" % config)
for kind in ("train_loss", "val_loss"):
    a, b = cpu.get(kind) or [], dev.get(kind) or []
    if len(a) != len(b):
        print("  %s: %d values on the CPU, %d on the GPU" % (kind, len(a), len(b))); bad = 1; continue
    for i, (x, y) in enumerate(zip(a, b)):
        rel = abs(x - y) / max(abs(x), 1e-6)
        flag = "" if rel <= 1e-3 else "  <- off"
        bad |= rel > 1e-3
        print("  %s %d: %.6f %.6f %.2e%s" % (kind, i, x, y, rel, flag))
sys.exit(bad)
PY
done

# 5. The side-by-side table of the GEMMs.
python3 - "$out" <<'PY' | tee "$out/report.txt" || true
import json, os, sys
out = sys.argv[1]
def load(name):
    p = os.path.join(out, name)
    if not os.path.exists(p):
        return {}
    rows = {}
    for line in open(p):
        r = json.loads(line)
        rows[(r["tokens"], r["in"], r["out"], r["r"])] = r
    return rows
lorac, torch = load("lorac.jsonl"), load("torch.jsonl")
print("fused LoRA linear, ms (TFLOP/s); base = the x*W^T product alone; FLOP ratio = fused / base")
print("| tokens, in, out, r | lorac fp32 | lorac fp32 base | lorac bf16 | lorac bf16 base | FLOP ratio | torch fp32 | torch fp32 base | torch bf16 | torch bf16 base |")
print("|---|---|---|---|---|---|---|---|---|---|")
for k, r in lorac.items():
    t = torch.get(k, {})
    f = lambda v: "%.3f" % v if isinstance(v, (int, float)) else "-"
    print("| %s | %s (%.1f) | %s | %s (%.1f) | %s | %.3f | %s | %s | %s | %s |" % (", ".join(map(str, k)),
          f(r["lorac_f32_ms"]), r["lorac_f32_tflops"], f(r.get("lorac_f32_base_ms")),
          f(r["lorac_bf16_ms"]), r["lorac_bf16_tflops"], f(r.get("lorac_bf16_base_ms")), r.get("flop_ratio", 0),
          f(t.get("torch_f32_ms")), f(t.get("torch_f32_base_ms")), f(t.get("torch_bf16_ms")), f(t.get("torch_bf16_base_ms"))))
print()
print("the bf16 GEMM kernel alone, ms: fused = one launch of x*W^T + t*B^T (t given), base = x*W^T; 64x64 = the kernel the pipelined one replaces;")
print("% of cuBLAS = torch time / lorac time (lorac stores fp32 C, torch bf16)")
print("| tokens, in, out, r | kernel | lorac fused (TFLOP/s) | lorac base | lorac 64x64 base | torch fused | torch base | fused, % of cuBLAS | base, % of cuBLAS |")
print("|---|---|---|---|---|---|---|---|---|")
for k, r in lorac.items():
    if "lorac_bf16_fused_ms" not in r:
        continue
    t = torch.get(k, {})
    f = lambda v: "%.3f" % v if isinstance(v, (int, float)) else "-"
    pct = lambda a, b: "%.0f%%" % (100 * a / b) if isinstance(a, (int, float)) and b else "-"
    print("| %s | %s | %s (%.1f) | %s | %s | %s | %s | %s | %s |" % (", ".join(map(str, k)), r.get("bf16_kernel", "-"),
          f(r["lorac_bf16_fused_ms"]), r["lorac_bf16_fused_tflops"], f(r["lorac_bf16_base_ms"]), f(r.get("lorac_bf16_simple_base_ms")),
          f(t.get("torch_bf16_fused_ms")), f(t.get("torch_bf16_base_ms")),
          pct(t.get("torch_bf16_fused_ms"), r["lorac_bf16_fused_ms"]), pct(t.get("torch_bf16_base_ms"), r["lorac_bf16_base_ms"])))
PY
exit $status
