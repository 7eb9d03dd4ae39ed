#!/usr/bin/env bash
# The speed issue's table in one command: bench/compare.sh at every point (the 1B-shaped model at F16, Q8_0, Q4_0 and
# Q4_K_M with 2 and 1 threads, the 8B-shaped model at Q4_K_M and Q8_0 with 2 threads), printed as the markdown table
# docs/PERFORMANCE.md holds, with the machine and the commands above it. Models from bench/make-models.sh.
#
# usage: bench/table.sh [--dir build/bench] [--pairs1b K] [--pairs8b K] [--points "1b-q8_0-2 8b-q4_k_m-2 ..."]
#   1B points: compare.sh -p 512 -n 64 -r 1 --fa off, K pairs (default 3 at 2 threads, 2 at 1 thread);
#   8B points: -p 128 -n 16 -r 1 --fa off, --pairs8b pairs (default 2). A missing model file is reported and skipped.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=$root/build/bench pairs1b="" pairs8b=2
points="1b-f16-2 1b-q8_0-2 1b-q4_0-2 1b-q4_k_m-2 8b-q4_k_m-2 8b-q8_0-2 1b-f16-1 1b-q8_0-1 1b-q4_0-1 1b-q4_k_m-1"
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir=$2; shift 2 ;;
    --pairs1b) pairs1b=$2; shift 2 ;;
    --pairs8b) pairs8b=$2; shift 2 ;;
    --points) points=$2; shift 2 ;;
    *) sed -n '6,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
done
out=$(mktemp /tmp/llamac-table.XXXXXX)
trap 'rm -f "$out"' EXIT
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
echo "bench/table.sh: $(date -u +%Y-%m-%d), $cpu, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for p in $points; do
  IFS=- read -r shape type threads <<<"$p"
  model=$dir/llama-$shape-shape-$type.gguf
  if [ ! -f "$model" ]; then echo "bench/table.sh: $model missing (bench/make-models.sh), skipped" >&2; continue; fi
  if [ "$shape" = 8b ]; then args=(-p 128 -n 16 --pairs "$pairs8b"); else
    k=${pairs1b:-$([ "$threads" = 1 ] && echo 2 || echo 3)}; args=(-p 512 -n 64 --pairs "$k"); fi
  echo "bench/table.sh: $p: compare.sh $(basename "$model") -t $threads ${args[*]} -r 1 --fa off" >&2
  "$root/bench/compare.sh" "$model" -t "$threads" "${args[@]}" -r 1 --fa off --json |
    tail -n 1 | sed "s/^/$shape $type $threads /" >>"$out"
done
python3 - "$out" <<'PY'
import json, sys
print("| model | threads | pp llamac / llama.cpp t/s | pp ratio | tg llamac / llama.cpp t/s | tg ratio "
      "| tg GB/s, % of read / copy bw | peak RSS / (weights+KV+scratch) |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for line in open(sys.argv[1]):
    shape, typ, threads, js = line.split(" ", 3)
    r = json.loads(js)
    f, pp, tg = r["llamac_figures"], r["pp_tps"], r["tg_tps"]
    n_p, n_g = r["llama.cpp"]["n_prompt"], r["llama.cpp"]["n_gen"]
    need = (r["model_bytes"] or 0) + f["kv_bytes"] + f["scratch_bytes"]
    print(f"| {shape.upper()} {typ.upper()} | {threads} | {pp['llamac']:.2f} / {pp['llama.cpp']:.2f} (pp{n_p}) "
          f"| {pp['ratio']:.2f}× | {tg['llamac']:.2f} / {tg['llama.cpp']:.2f} (tg{n_g}) | {tg['ratio']:.2f}× "
          f"| {f['tg_gbs']:.1f}, {100 * f['tg_roofline_read']:.0f}% / {100 * f['tg_roofline_copy']:.0f}% "
          f"| {f['peak_rss_bytes'] / need:.2f}× |")
PY
