#!/usr/bin/env bash
# Speed of llamac against llama.cpp on the same GGUF file: runs `llamac bench --json` and the llama.cpp oracle's
# bench mode (.oracle/lc_oracle, built by tests/oracle/build-oracle.sh) alternately, K pairs, and prints the median
# tokens/s of each engine for prompt processing (pp) and generation (tg) and the ratios llamac / llama.cpp.
# Alternating (and swapping who goes first each pair) spreads the drift of a shared machine over both engines.
#
# usage: bench/compare.sh MODEL [-t N] [-p 512] [-n 128] [-r 3] [--pairs K] [--fa auto|on|off]
#                         [--llamac PATH] [--oracle PATH] [--json]
#   -t threads (default 2), -p prompt tokens, -n generated tokens, -r repetitions inside each run, --pairs K runs of
#   each engine (default 3), --fa flash attention for llama.cpp (default auto, as llama-bench), --json: one JSON
#   object at the end instead of the table. Both engines use an F16 KV cache (the default of both).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
usage() { sed -n '6,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 2; }

model= threads=2 np=512 nn=128 reps=3 pairs=3 fa=auto json=0
llamac=${LLAMAC_BIN:-$root/build/llamac}
oracle=${LLAMAC_ORACLE:-$root/.oracle/lc_oracle}
while [ $# -gt 0 ]; do
  case "$1" in
    -t) threads=$2; shift 2 ;;
    -p) np=$2; shift 2 ;;
    -n) nn=$2; shift 2 ;;
    -r) reps=$2; shift 2 ;;
    --pairs) pairs=$2; shift 2 ;;
    --fa) fa=$2; shift 2 ;;
    --llamac) llamac=$2; shift 2 ;;
    --oracle) oracle=$2; shift 2 ;;
    --json) json=1; shift ;;
    -h|--help) usage ;;
    -*) echo "compare.sh: unknown option $1" >&2; usage ;;
    *) [ -z "$model" ] || { echo "compare.sh: one model only" >&2; usage; }; model=$1; shift ;;
  esac
done
[ -n "$model" ] || usage
[ -f "$model" ] || { echo "compare.sh: no such model: $model" >&2; exit 1; }
[ -x "$llamac" ] || { echo "compare.sh: $llamac not built (make)" >&2; exit 1; }
[ -x "$oracle" ] || { echo "compare.sh: $oracle not built (tests/oracle/build-oracle.sh; x86-64 Linux only)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "compare.sh: python3 needed (scripts/setup.sh)" >&2; exit 1; }

out=$(mktemp)
trap 'rm -f "$out"' EXIT
run_llamac() { "$llamac" bench -m "$model" -t "$threads" -p "$np" -n "$nn" -r "$reps" --json | tail -n 1 | sed 's/^/llamac /' >>"$out"; }
run_oracle() { "$oracle" bench -m "$model" -t "$threads" -p "$np" -n "$nn" -r "$reps" --fa "$fa" --json | tail -n 1 | sed 's/^/llama.cpp /' >>"$out"; }
for ((i = 1; i <= pairs; i++)); do
  echo "compare.sh: pair $i/$pairs" >&2
  if ((i % 2)); then run_llamac; run_oracle; else run_oracle; run_llamac; fi
done

python3 - "$out" "$json" "$model" <<'PY'
import json, statistics, sys
path, as_json, model = sys.argv[1], sys.argv[2] == "1", sys.argv[3]
runs = {"llamac": [], "llama.cpp": []}
for line in open(path):
    eng, _, obj = line.partition(" ")
    runs[eng].append(json.loads(obj))
def med(eng, key):
    vals = [r[key] for r in runs[eng] if r.get(key) is not None]
    return statistics.median(vals) if vals else float("nan")
res = {"model": model, "pairs": len(runs["llamac"])}
for k in ("pp_tps", "tg_tps"):
    a, b = med("llamac", k), med("llama.cpp", k)
    res[k] = {"llamac": a, "llama.cpp": b, "ratio": a / b if b else float("nan"),
              "llamac_runs": [r.get(k) for r in runs["llamac"]], "llama.cpp_runs": [r.get(k) for r in runs["llama.cpp"]]}
first = runs["llamac"][0] if runs["llamac"] else {}
oc = runs["llama.cpp"][0] if runs["llama.cpp"] else {}
res["threads"] = first.get("threads")
res["model_bytes"] = first.get("model_bytes", oc.get("model_bytes"))
res["llama.cpp"] = {k: oc.get(k) for k in ("version", "model", "kv", "flash_attn", "n_prompt", "n_gen", "reps")}
# llamac's own figures (medians over its runs): GFLOP/s, GB/s, the machine's bandwidth, decode roofline, peak RSS
extra = ("pp_gflops", "tg_gbs", "mem_read_gbs", "mem_copy_gbs", "tg_roofline_read", "tg_roofline_copy",
         "peak_rss_bytes", "kv_bytes", "scratch_bytes")
res["llamac_figures"] = {k: med("llamac", k) for k in extra}
if as_json:
    print(json.dumps(res))
else:
    print(f"model {model} ({res['llama.cpp']['model']}, {res['model_bytes']} bytes), {res['threads']} threads, "
          f"{res['pairs']} pairs, llama.cpp {res['llama.cpp']['version']}, fa {res['llama.cpp']['flash_attn']}")
    print(f"{'test':<8}{'llamac t/s':>14}{'llama.cpp t/s':>16}{'ratio':>9}")
    for k, name in (("pp_tps", f"pp{oc.get('n_prompt', '')}"), ("tg_tps", f"tg{oc.get('n_gen', '')}")):
        r = res[k]
        if r["llamac"] != r["llamac"]:  # NaN: this test was skipped (-p 0 or -n 0)
            continue
        print(f"{name:<8}{r['llamac']:>14.2f}{r['llama.cpp']:>16.2f}{r['ratio']:>8.3f}x")
    f = res["llamac_figures"]
    if f["mem_read_gbs"] == f["mem_read_gbs"]:  # absent (NaN) from an older llamac
        line = f"llamac: memory read {f['mem_read_gbs']:.1f} GB/s, copy {f['mem_copy_gbs']:.1f} GB/s"
        if f["pp_gflops"] == f["pp_gflops"]:
            line += f"; pp {f['pp_gflops']:.1f} GFLOP/s"
        if f["tg_gbs"] == f["tg_gbs"]:
            line += (f"; tg {f['tg_gbs']:.1f} GB/s = {100 * f['tg_roofline_read']:.0f}% of read, "
                     f"{100 * f['tg_roofline_copy']:.0f}% of copy")
        need = (res["model_bytes"] or 0) + f["kv_bytes"] + f["scratch_bytes"]
        line += f"; peak RSS {f['peak_rss_bytes'] / 2**20:.0f} MiB = {f['peak_rss_bytes'] / need:.2f}x weights+KV+scratch"
        print(line)
PY
