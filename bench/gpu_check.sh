#!/usr/bin/env bash
# gpu_check.sh — the CUDA backend on a machine with a GPU: every kernel
# against the CPU reference on random inputs, then the fused LoRA GEMM timed
# at docs/perf.md's kernel shapes (and the bf16 GEMM's target, 4096^3 r16),
# lorac's fp32 and bf16 paths beside torch.matmul (cuBLAS) when a Python
# with torch is there; report.txt's second table is the bf16 GEMM kernel
# alone as a percentage of cuBLAS.
#
#   bench/gpu_check.sh --build          build bench/gpu/cuda.test and bench/gpu/lorac here (needs Go)
#   bench/gpu_check.sh [OUT] [PYTHON]   run it (needs no Go and no network)
#
# OUT (default bench/gpu/out) receives test.log, lorac.jsonl, torch.jsonl,
# models.txt (lorac bench --device cuda beside PyTorch + PEFT on the GPU,
# per benchmark configuration) and report.txt. PYTHON defaults to python3; without torch the comparison
# column is left out. The test binary is built with CGO_ENABLED=0 and finds
# the driver at run time (libcuda.so.1, or $LORAC_CUDA_LIB).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin="$here/gpu/cuda.test"
if [ "${1:-}" = "--build" ]; then
	mkdir -p "$here/gpu"
	(cd "$here/.." && CGO_ENABLED=0 go test -c -o "$bin" ./runtime/cuda &&
		CGO_ENABLED=0 go build -o "$here/gpu/lorac" ./cmd/lorac)
	echo "built $bin and $here/gpu/lorac; copy the checkout (bench/gpu/ included) to the GPU machine and run bench/gpu_check.sh"
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

# 4. The side-by-side table of the GEMMs.
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
