#!/usr/bin/env bash
# Writes the benchmark models with random weights into build/bench/: llama-1b-shape-TYPE.gguf (Llama 3.2 1B shape:
# n_embd 2048, 16 layers, 32 heads, 8 KV heads, n_ff 8192, vocab 128256, tied output, rope_freqs, theta 5e5) and
# llama-8b-shape-TYPE.gguf (Llama 3.1 8B shape: 4096, 32 layers, 32/8 heads, n_ff 14336, untied). f16 and q8_0 come
# from `llamac synth`; the other types (q4_0, q4_k_m, ... any `llamac quantize` type) are quantized from the f16 file
# of the same shape, which is made first if missing (with --drop-f16 it is deleted afterwards when it was not asked
# for: the 8B F16 file is 16 GB). Existing files are kept unless --force.
# usage: bench/make-models.sh [--force] [--shape 1b|8b] [--types "f16 q8_0 q4_0 q4_k_m"] [--out DIR] [--llamac PATH]
#                             [--drop-f16]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
llamac=${LLAMAC_BIN:-$root/build/llamac}
out=$root/build/bench types="f16 q8_0" force=0 shape=1b drop=0
while [ $# -gt 0 ]; do
  case "$1" in
    --force) force=1; shift ;;
    --types) types=$2; shift 2 ;;
    --shape) shape=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --llamac) llamac=$2; shift 2 ;;
    --drop-f16) drop=1; shift ;;
    *) sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
done
case "$shape" in 1b|8b) ;; *) echo "make-models.sh: --shape 1b or 8b" >&2; exit 2 ;; esac
[ -x "$llamac" ] || { echo "make-models.sh: $llamac not built (make)" >&2; exit 1; }
mkdir -p "$out"
f16=$out/llama-$shape-shape-f16.gguf
made_f16=0
for t in $types; do
  f=$out/llama-$shape-shape-$t.gguf
  if [ -f "$f" ] && [ "$force" = 0 ]; then echo "make-models.sh: $f exists"; continue; fi
  case "$t" in
    f16|f32|bf16|q8_0)
      echo "make-models.sh: writing $f"
      "$llamac" synth -o "$f" --preset "$shape" --type "$t" --seed 1 ;;
    *)
      if [ ! -f "$f16" ]; then
        echo "make-models.sh: writing $f16 (to quantize from)"
        "$llamac" synth -o "$f16" --preset "$shape" --type f16 --seed 1
        made_f16=1
      fi
      echo "make-models.sh: quantizing $f"
      "$llamac" quantize "$f16" "$f" "$(echo "$t" | tr a-z A-Z)" ;;
  esac
done
if [ "$drop" = 1 ] && [ "$made_f16" = 1 ] && ! echo " $types " | grep -q " f16 "; then rm -f "$f16"; fi
