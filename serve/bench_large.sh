#!/usr/bin/env bash
# BenchmarkServeGPT2Small: lorac serve's scheduler on GPT-2 small's shapes.
# Compiles examples/bench-gpt2s into serve/benchmodel, and with a serve
# block of 16 rows into serve/benchmodel16 (both ignored by git, removed
# afterwards), and runs the benchmark COUNT times (default 3); BENCH picks
# another benchmark of bench_large_test.go (TTFTGPT2Small: time to first
# token of a 256-token prompt; ServeGPT2SmallRows16: 16 requests as two
# groups of 8 rows and as one of 16).
#
#   serve/bench_large.sh [COUNT] [BENCH]
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf serve/benchmodel serve/benchmodel16 "$tmp"' EXIT
go run ./cmd/lorac compile examples/bench-gpt2s/bench-gpt2s.lora -o serve/benchmodel --pkg benchmodel
{ cat examples/bench-gpt2s/bench-gpt2s.lora; echo 'serve { rows 16 }'; } >"$tmp/bench-gpt2s-16.lora"
go run ./cmd/lorac compile "$tmp/bench-gpt2s-16.lora" -o serve/benchmodel16 --pkg benchmodel16
go test -tags servebench -run '^$' -bench "${2:-ServeGPT2Small$}" -benchtime 1x -count "${1:-3}" -timeout 60m ./serve
