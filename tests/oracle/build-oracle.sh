#!/usr/bin/env bash
# Builds .oracle/lc_oracle: tests/oracle/lc_oracle.c linked against llama.cpp as shipped prebuilt in the npm package
# node-llama-cpp 3.22.1 (llama.cpp release v0.5.0, commit de3ff81 — the build the goldens in ../shared/data came
# from). Idempotent: does nothing when the oracle is built and newer than its source. x86-64 Linux only; elsewhere
# it says so and exits 0 (the tests that need the oracle then skip).
# Env: LLAMAC_ORACLE_DIR (default <repo>/.oracle), CC (default cc).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
dir=${LLAMAC_ORACLE_DIR:-$root/.oracle}
src=$root/tests/oracle/lc_oracle.c
bin=$dir/lc_oracle
nlc_version=3.22.1
commit=de3ff815ea7d559ee917f063901b8986f038abc6
say() { echo "build-oracle: $*"; }

if [ "$(uname -s)" != Linux ] || [ "$(uname -m)" != x86_64 ]; then
  say "the prebuilt llama.cpp oracle is set up only on x86-64 Linux (this is $(uname -s) $(uname -m)); tests that need it will skip"
  exit 0
fi

if [ -x "$bin" ] && [ "$bin" -nt "$src" ] && [ "$bin" -nt "${BASH_SOURCE[0]}" ] && "$bin" --help >/dev/null 2>&1; then
  say "up to date: $bin"
  exit 0
fi

mkdir -p "$dir/npm"
libdir=$dir/npm/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64
bundle=$dir/npm/node_modules/node-llama-cpp/llama/gitRelease.bundle
if [ ! -f "$libdir/libggml-base.so" ] || [ ! -f "$bundle" ]; then
  command -v npm >/dev/null || { say "npm is missing (run scripts/setup.sh)"; exit 1; }
  say "npm install node-llama-cpp@$nlc_version (prebuilt llama.cpp for linux-x64) into $dir/npm"
  # --omit=optional skips the CUDA/Vulkan variants (~600 MB); the CPU build is asked for by name.
  # --ignore-scripts: the package's postinstall would try to download or build llama.cpp; the binaries are in
  # @node-llama-cpp/linux-x64 already.
  (cd "$dir/npm" && npm install --prefix . --no-save --ignore-scripts --omit=optional --no-audit --no-fund \
     --loglevel=error "node-llama-cpp@$nlc_version" "@node-llama-cpp/linux-x64@$nlc_version")
fi
[ -f "$libdir/libggml-base.so" ] || { say "prebuilt libraries not found in $libdir"; exit 1; }

# The C headers of exactly that release, from the git bundle the package ships (headers only, no build).
if [ ! -f "$dir/src/include/llama.h" ] || [ ! -f "$dir/src/ggml/include/ggml.h" ]; then
  command -v git >/dev/null || { say "git is missing (run scripts/setup.sh)"; exit 1; }
  say "extracting llama.cpp headers from $bundle"
  rm -rf "$dir/src"
  git clone -q --no-checkout "$bundle" "$dir/src"
  git -C "$dir/src" -c advice.detachedHead=false checkout -q HEAD -- include ggml/include
fi
head=$(git -C "$dir/src" rev-parse HEAD)
[ "$head" = "$commit" ] || say "warning: the bundle is at commit $head, expected $commit"

lib_llama=$(ls "$libdir"/libllama.v*.so 2>/dev/null | head -n 1 || true)
lib_ggml=$(ls "$libdir"/libggml.v*.so 2>/dev/null | head -n 1 || true)
[ -n "$lib_llama" ] || lib_llama=$libdir/libllama.so
[ -n "$lib_ggml" ] || lib_ggml=$libdir/libggml.so

say "compiling $bin"
${CC:-cc} -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -Wno-deprecated-declarations \
  -I"$dir/src/include" -I"$dir/src/ggml/include" \
  -DLC_ORACLE_LIBDIR="\"$libdir\"" \
  -o "$bin.tmp" "$src" "$lib_llama" "$lib_ggml" "$libdir/libggml-base.so" -Wl,-rpath,"$libdir" -lm
mv "$bin.tmp" "$bin"
"$bin" --help >/dev/null 2>&1 || { say "the built oracle does not run"; exit 1; }
say "ok: $bin (llama.cpp ${head:0:7} from node-llama-cpp $nlc_version)"
