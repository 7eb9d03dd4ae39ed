#!/usr/bin/env bash
# Prints the perplexity table of docs/QUANTIZATION.md: every quantization type on llama.cpp's files in
# ../shared/data/quant and on stories260K quantized by `llamac quantize`, llamac next to llama.cpp (the oracle, with
# its default CPU build and its AVX2 build) on the same chunks. It runs tests/test_perplexity's
# every_quant_type_agrees_with_llama_cpp, which also checks the agreement. About 20 s.
# usage: scripts/ppl-table.sh [BUILD]   (from the repository root, after `make` and tests/oracle/build-oracle.sh)
set -euo pipefail
build=${1:-build}
libdir=.oracle/npm/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/avx2" && ln -s "$PWD/$libdir/libggml-cpu-haswell.so" "$tmp/avx2/"
make -s -j2 "$build/llamac" "$build/tests/test_perplexity" >/dev/null
LLAMAC_PPL_TABLE="$tmp/table.md" LLAMAC_PPL_AVX2_LIBDIR="$tmp/avx2" "$build/tests/test_perplexity" >"$tmp/log" 2>&1 ||
  { cat "$tmp/log" >&2; exit 1; }
echo "<!-- scripts/ppl-table.sh on $(date -u +%Y-%m-%d), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') -->"
cat "$tmp/table.md"
