#!/usr/bin/env bash
# Installs what building and testing llamac needs on Debian 12 (bookworm), then builds the llama.cpp oracle.
# Idempotent and non-interactive: packages already installed are not touched, `apt-get update` runs only when
# something has to be installed, and the oracle is rebuilt only when missing or stale (seconds when all is there).
# Run as root (CI) or as a user with sudo. Env: LLAMAC_NO_ORACLE=1 skips the oracle.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
say() { echo "setup: $*"; }

# Build tools, the clang sanitizer/libFuzzer runtime, the aarch64 cross toolchain and qemu to run its tests, git
# (to unpack the oracle's headers), python3 (bench/compare.sh), certificates (npm over https), libedit (line editing
# in `llamac chat`), libmicrohttpd and Jansson (`llamac serve`), Chromium (the server's chat page is tested in it,
# headless, driven by playwright-core).
pkgs=(gcc make libc6-dev clang libclang-rt-14-dev git python3 ca-certificates libedit-dev
      libmicrohttpd-dev libjansson-dev chromium
      gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user)
# Node.js and npm fetch the oracle (prebuilt llama.cpp in the npm package node-llama-cpp). A node already on the
# machine (e.g. from NodeSource, which bundles npm) is kept.
command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
command -v npm >/dev/null 2>&1 || pkgs+=(npm)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null 2>&1 || { say "apt-get not found: install by hand: ${missing[*]}"; exit 1; }
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { say "not root and no sudo: install by hand: ${missing[*]}"; exit 1; }
    sudo=(sudo -E)
  fi
  say "installing: ${missing[*]}"
  "${sudo[@]}" apt-get update -q
  "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  say "system packages present (${#pkgs[@]} checked)"
fi

# The server's tests drive it with the official OpenAI client and the chat page with Playwright (npm, pinned), in
# .oracle/serve-npm (gitignored); reinstalled only when a version differs.
serve_npm=$root/.oracle/serve-npm
serve_pkgs=(openai@7.59.0 playwright-core@1.65.1)
serve_ok=1
for p in "${serve_pkgs[@]}"; do
  v=$(node -p "require('$serve_npm/node_modules/${p%@*}/package.json').version" 2>/dev/null || true)
  [ "$v" = "${p##*@}" ] || serve_ok=0
done
if [ $serve_ok = 1 ]; then
  say "server test clients present (${serve_pkgs[*]})"
else
  say "npm install ${serve_pkgs[*]} into $serve_npm"
  mkdir -p "$serve_npm"
  (cd "$serve_npm" && npm install --prefix . --no-save --ignore-scripts --no-audit --no-fund --loglevel=error \
     "${serve_pkgs[@]}") || say "WARNING: npm install failed; the server's client and page tests will skip (fail under LLAMAC_REQUIRE_ORACLE=1)"
fi

if [ "${LLAMAC_NO_ORACLE:-0}" = 1 ]; then
  say "LLAMAC_NO_ORACLE=1: not building the llama.cpp oracle"
elif ! "$root/tests/oracle/build-oracle.sh"; then
  say "WARNING: the llama.cpp oracle could not be built (see above); fidelity tests will skip, or fail when"
  say "         LLAMAC_REQUIRE_ORACLE=1 (as in make test). Retry with tests/oracle/build-oracle.sh."
fi
say "done"
