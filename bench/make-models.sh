#!/usr/bin/env bash
# Writes the benchmark models: a Llama-3.2-1B-shaped model with random weights (n_embd 2048, 16 layers, 32 heads,
# 8 KV heads, n_ff 8192, vocab 128256, tied output, rope_freqs, theta 5e5) at F16 and Q8_0, into build/bench/,
# through `llamac synth --preset 1b`. Existing files are kept unless --force. About 2.5 GB + 1.3 GB of disk, ~30 s
# each on 2 cores.
# usage: bench/make-models.sh [--force] [--types "f16 q8_0"] [--out DIR] [--llamac PATH]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
llamac=${LLAMAC_BIN:-$root/build/llamac}
out=$root/build/bench types="f16 q8_0" force=0
while [ $# -gt 0 ]; do
  case "$1" in
    --force) force=1; shift ;;
    --types) types=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --llamac) llamac=$2; shift 2 ;;
    *) sed -n '2,6p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
done
[ -x "$llamac" ] || { echo "make-models.sh: $llamac not built (make)" >&2; exit 1; }
mkdir -p "$out"
for t in $types; do
  f=$out/llama-1b-shape-$t.gguf
  if [ -f "$f" ] && [ "$force" = 0 ]; then echo "make-models.sh: $f exists"; continue; fi
  echo "make-models.sh: writing $f"
  "$llamac" synth -o "$f" --preset 1b --type "$t" --seed 1
done
