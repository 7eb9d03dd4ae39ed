#!/usr/bin/env python3
"""How far llama.cpp is from itself: the fidelity tests' bounds are set from this.

Runs the oracle (lc_oracle logits) with each of several of ggml's prebuilt x86 CPU backends (the default pick, e.g.
zen4/AVX-512, then haswell/AVX2 and sse42), on the stories260K and quant goldens' inputs and on the synthetic shapes
of tests/test_fidelity.c, and prints max over positions of ||variant - default|| / ||default|| per file and KV type.
Different backends sum in different orders; where the arithmetic rounds (F16 KV, F16/BF16/Q8_0 activations) that
tiny difference turns into whole rounding steps, and this script measures how big that gets.

usage: tests/oracle/spread.py   (from the repository root; needs .oracle/lc_oracle, build/llamac, ../shared/data)
Standard library only. Takes about a minute.
"""
import array, json, math, os, random, subprocess, sys, tempfile

ORACLE = os.environ.get("LLAMAC_ORACLE", ".oracle/lc_oracle")
LLAMAC = os.environ.get("LLAMAC_BIN", "build/llamac")
SHARED = os.environ.get("LLAMAC_SHARED_DATA", "../shared/data")
LIBDIR = ".oracle/npm/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64"
VARIANTS = ["haswell", "sse42"]

tmp = tempfile.mkdtemp(prefix="llamac-spread-")
for v in VARIANTS:  # a directory holding only that CPU backend makes ggml load it
    os.makedirs(f"{tmp}/lib-{v}")
    os.symlink(os.path.abspath(f"{LIBDIR}/libggml-cpu-{v}.so"), f"{tmp}/lib-{v}/libggml-cpu-{v}.so")


def logits(model, ids, kv, n_vocab, variant=None):
    with open(f"{tmp}/ids", "w") as f:
        f.write(" ".join(map(str, ids)))
    env = dict(os.environ)
    if variant:
        env["LC_ORACLE_LIBDIR"] = f"{tmp}/lib-{variant}"
    subprocess.run([ORACLE, "logits", "-m", model, "-i", f"{tmp}/ids", "-o", f"{tmp}/out", "-t", "2", "--kv", kv],
                   check=True, env=env)
    a = array.array("f")
    with open(f"{tmp}/out", "rb") as f:
        a.frombytes(f.read())
    return [a[i * n_vocab:(i + 1) * n_vocab] for i in range(len(a) // n_vocab)]


def max_rel(a, ref):
    return max(math.sqrt(sum((x - y) ** 2 for x, y in zip(u, v)) / sum(y * y for y in v)) for u, v in zip(a, ref))


def spread(label, model, ids, n_vocab):
    for kv in ("f32", "f16"):
        ref = logits(model, ids, kv, n_vocab)
        vals = [max_rel(logits(model, ids, kv, n_vocab, v), ref) for v in VARIANTS]
        print(f"{label:<34} kv {kv}  " + "  ".join(f"{v} {x:.2e}" for v, x in zip(VARIANTS, vals)), flush=True)


man = json.load(open(f"{SHARED}/stories260K/goldens/manifest.json"))
for e in man["files"]:
    spread(f"stories260K {e['name']}", f"{SHARED}/stories260K/stories260K.gguf", e["ids"], 512)
qm = json.load(open(f"{SHARED}/quant/manifest.json"))
for e in qm["files"]:
    if e["type"] in ("F32", "F16", "BF16", "Q8_0"):
        spread(f"quant {e['type']}", f"{SHARED}/quant/{e['file']}", qm["ids"], 512)
# the synthetic shapes of test_fidelity.c (n_embd 256, 2 layers, n_ff 512, vocab 384, N(0, 0.08), seed 42)
cases = [("mha g1 hd64 theta1e4", 4, 4, 64, False, False, 1e4, 100),
         ("gqa g4 hd64 tied theta5e5", 8, 2, 64, True, False, 5e5, 100),
         ("gqa g8 hd64 theta5e5 rope_freqs", 8, 1, 64, False, True, 5e5, 300),
         ("gqa g2 hd128 tied rope_freqs", 2, 1, 128, True, True, 1e4, 100)]
rng = random.Random(3)
for name, h, kvh, hd, tied, rf, theta, n in cases:
    ids = [1] + [rng.randint(3, 383) for _ in range(n - 1)]
    for t in ("f32", "f16", "bf16", "q8_0"):
        path = f"{tmp}/synth.gguf"
        subprocess.run([LLAMAC, "synth", "-o", path, "--vocab", "384", "--embd", "256", "--layers", "2", "--ff", "512",
                        "--heads", str(h), "--kv-heads", str(kvh), "--head-dim", str(hd), "--theta", str(theta),
                        "--std", "0.08", "--seed", "42", "--type", t, "--tied" if tied else "--untied",
                        "--rope-freqs" if rf else "--no-rope-freqs"], check=True, stderr=subprocess.DEVNULL)
        spread(f"{name} {t}", path, ids, 384)
subprocess.run(["rm", "-rf", tmp])
