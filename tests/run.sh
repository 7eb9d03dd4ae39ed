#!/usr/bin/env bash
# Runs the test programs of one or more builds and prints one closing line "N passed, N failed, N skipped".
# Usage: tests/run.sh BUILD[:quick][:qemu] ...
#   :quick  sets LLAMAC_QUICK=1 (heavy cases shrink, e.g. under ASan)
#   :qemu   runs the programs under qemu-aarch64 (cross build); only test programs that exist there are run
set -u
cd "$(dirname "$0")/.."
pass=0 fail=0 skip=0 failed_progs=()
[ $# -gt 0 ] || set -- build
for spec in "$@"; do
  build=${spec%%:*}
  quick=0 qemu=0
  case "$spec" in *:quick*) quick=1 ;; esac
  case "$spec" in *:qemu*) qemu=1 ;; esac
  for t in "$build"/tests/test_*; do
    [ -x "$t" ] && [ -f "$t" ] || continue
    case "$t" in *.o|*.d) continue ;; esac
    # under qemu, skip programs that start other programs (the CLI test) or need the x86-64 oracle
    if [ $qemu = 1 ]; then case "$(basename "$t")" in test_cli|test_fidelity) continue ;; esac; fi
    echo "== $(basename "$t") ($spec)"
    if [ $qemu = 1 ]; then
      out=$(LLAMAC_QUICK=1 LLAMAC_BUILD="$build" qemu-aarch64 -L /usr/aarch64-linux-gnu "$t" 2>&1); rc=$?
    else
      # LLAMAC_QUICK is set only for :quick builds (some tests only ask whether it is set)
      if [ $quick = 1 ]; then out=$(LLAMAC_QUICK=1 LLAMAC_BUILD="$build" "$t" 2>&1); rc=$?
      else out=$(env -u LLAMAC_QUICK LLAMAC_BUILD="$build" "$t" 2>&1); rc=$?; fi
    fi
    printf '%s\n' "$out" | sed -E 's/^([0-9]+ passed, [0-9]+ failed, [0-9]+ skipped)$/  (\1)/'
    line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' | tail -n 1)
    if [ -z "$line" ]; then
      echo "  FAIL  $(basename "$t"): exited $rc without a summary line"
      fail=$((fail + 1)); failed_progs+=("$t"); continue
    fi
    read -r p _ f _ s _ <<<"${line//,/}"
    pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then fail=$((fail + 1)); fi
    if [ "$rc" -ne 0 ] || [ "$f" -gt 0 ]; then failed_progs+=("$t"); fi
  done
done
[ ${#failed_progs[@]} -gt 0 ] && echo "failing: ${failed_progs[*]}"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
