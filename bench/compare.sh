#!/usr/bin/env bash
# compare.sh — lorac and PyTorch + PEFT on one benchmark configuration, side
# by side in one session: the two alternate (lorac, PyTorch, lorac, PyTorch)
# so that the machine's drift hits both, and every figure is a median.
#
#   bench/compare.sh CONFIG [ROWS] [PYTHON]
#
#   CONFIG  tiny | gpt2s | llama (examples/bench-CONFIG/bench-CONFIG.lora)
#   ROWS    measurements to run, a substring of their names as both tools'
#           --only / --rows take it ("" for all; "decode", "train step, LoRA")
#   PYTHON  a Python with torch, transformers and peft (default: python3)
#
# Environment: ROUNDS (default 2) alternations, REPEATS (default 5) timed
# repeats per measurement, THREADS (default 1,2).
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:?usage: bench/compare.sh tiny|gpt2s|llama [ROWS] [PYTHON]}
rows=${2:-}
python=${3:-python3}
rounds=${ROUNDS:-2}
repeats=${REPEATS:-5}
threads=${THREADS:-1,2}
model=examples/bench-$config/bench-$config.lora
[ -f "$model" ] || { echo "no $model" >&2; exit 2; }

bin=$(mktemp -d)/lorac
go build -o "$bin" ./cmd/lorac
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, $(go version | cut -d' ' -f3)"
for round in $(seq "$rounds"); do
	echo "## round $round: lorac"
	"$bin" bench "$model" --repeats "$repeats" --threads "$threads" --only "$rows" --peak
	echo "## round $round: PyTorch"
	"$python" bench/pytorch_reference.py --config "$config" --steps "$repeats" --threads "$threads" --rows "$rows"
done
