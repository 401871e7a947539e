#!/usr/bin/env bash
# BenchmarkServeGPT2Small: lorac serve's scheduler on GPT-2 small's shapes.
# Compiles examples/bench-gpt2s into serve/benchmodel (ignored by git,
# removed afterwards) and runs the benchmark COUNT times (default 3).
#
#   serve/bench_large.sh [COUNT]
set -euo pipefail
cd "$(dirname "$0")/.."
trap 'rm -rf serve/benchmodel' EXIT
go run ./cmd/lorac compile examples/bench-gpt2s/bench-gpt2s.lora -o serve/benchmodel --pkg benchmodel
go test -tags servebench -run '^$' -bench ServeGPT2Small -benchtime 1x -count "${1:-3}" -timeout 60m ./serve
