#!/usr/bin/env bash
# Load test of `llamac serve` on this machine (127.0.0.1 only): starts the server on a free port, runs 1, 4, 8 and 16
# concurrent greedy streaming chat requests (bench/serve-load.mjs) and prints aggregate generated tokens/s for each,
# then stops the server with SIGTERM. Every phase is bounded in time.
# usage: bench/serve-load.sh [-m MODEL] [--streams "1 4 8 16"] [--tokens 64] [--seconds 300] [-t THREADS]
#        (MODEL default: build/bench/llama-1b-shape-q8_0.gguf from bench/make-models.sh --types q8_0)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
llamac=${LLAMAC_BIN:-$root/build/llamac}
model=$root/build/bench/llama-1b-shape-q8_0.gguf streams="1 4 8 16" tokens=64 seconds=300 threads=0
while [ $# -gt 0 ]; do
  case "$1" in
    -m) model=$2; shift 2 ;;
    --streams) streams=$2; shift 2 ;;
    --tokens) tokens=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    -t) threads=$2; shift 2 ;;
    *) sed -n '2,6p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
done
[ -x "$llamac" ] || { echo "serve-load.sh: $llamac not built (make)" >&2; exit 1; }
[ -f "$model" ] || { echo "serve-load.sh: $model missing (bench/make-models.sh --types q8_0)" >&2; exit 1; }
max=0; for c in $streams; do [ "$c" -gt "$max" ] && max=$c; done
log=$(mktemp /tmp/llamac-serve-load.XXXXXX)
"$llamac" serve -m "$model" --host 127.0.0.1 --port 0 --parallel "$max" -c $((max * (tokens + 64) + 64)) -t "$threads" \
  --queue $((max * 2)) >"$log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -f "$log"' EXIT
port=
for _ in $(seq 1 600); do
  port=$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$log")
  [ -n "$port" ] && break
  kill -0 $pid 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$port" ] || { echo "serve-load.sh: the server did not start" >&2; cat "$log" >&2; exit 1; }
echo "serve-load.sh: $(basename "$model"), $tokens tokens per stream, threads ${threads/#0/all}, load $(cut -d' ' -f1-3 /proc/loadavg)"
node "$root/bench/serve-load.mjs" "$port" 1 8 "$seconds" >/dev/null # warm-up (pages the weights in)
for c in $streams; do
  node "$root/bench/serve-load.mjs" "$port" "$c" "$tokens" "$seconds"
done
