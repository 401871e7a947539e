#!/usr/bin/env bash
# BenchmarkServeGPT2Small: lorac serve's scheduler on GPT-2 small's shapes.
# Compiles examples/bench-gpt2s into serve/benchmodel (ignored by git,
# removed afterwards) and runs the benchmark COUNT times (default 3);
# BENCH picks another benchmark of bench_large_test.go (TTFTGPT2Small: time
# to first token of a 256-token prompt).
#
#   serve/bench_large.sh [COUNT] [BENCH]
set -euo pipefail
cd "$(dirname "$0")/.."
trap 'rm -rf serve/benchmodel' EXIT
go run ./cmd/lorac compile examples/bench-gpt2s/bench-gpt2s.lora -o serve/benchmodel --pkg benchmodel
go test -tags servebench -run '^$' -bench "${2:-ServeGPT2Small}" -benchtime 1x -count "${1:-3}" -timeout 60m ./serve
