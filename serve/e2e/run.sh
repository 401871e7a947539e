#!/usr/bin/env bash
# End-to-end test of lorac serve with the official openai Python client:
# builds lorac, writes the fixture (a tiny random base and four adapters),
# starts the server on a free loopback port, runs openai_e2e.py against it
# (checks, then a bounded load test), and stops the server.
#
#   serve/e2e/run.sh PYTHON     (a Python with the openai package)
set -euo pipefail
cd "$(dirname "$0")/../.."
py=${1:?usage: serve/e2e/run.sh PYTHON}
tmp=$(mktemp -d)
server=
cleanup() {
	if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT

go build -o "$tmp/lorac" ./cmd/lorac
go run ./internal/cmd/servefixture "$tmp/fix"
port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$tmp/lorac" serve examples/tiny/tiny.lora --base "$tmp/fix/base/model.safetensors" \
	--adapters "$tmp/fix/adapters" --addr "127.0.0.1:$port" --max-batch 8 >"$tmp/serve.log" 2>&1 &
server=$!
# The first run compiles the model program: wait for it.
for _ in $(seq 600); do
	if curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1; then break; fi
	if ! kill -0 "$server" 2>/dev/null; then cat "$tmp/serve.log" >&2; exit 1; fi
	sleep 0.5
done
"$py" serve/e2e/openai_e2e.py "http://127.0.0.1:$port" "$tmp/fix/adapters" "${@:2}"
# A graceful shutdown: SIGTERM, then exit status 0.
kill -TERM "$server"
wait "$server"
server=
grep -q "finishing the running requests" "$tmp/serve.log"
