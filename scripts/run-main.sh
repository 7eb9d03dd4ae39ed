#!/usr/bin/env bash
# The main job behind `make run`: runs a prompt through llamac.
# Usage: scripts/run-main.sh LLAMAC_BIN [MODEL]   (MODEL may also come from the environment; PROMPT and N too)
# With a model: `llamac run -m MODEL -p "Once upon a time"`. Without one: runs the project's own small model,
# models/llamac-tiny.gguf (trained by scripts/train-tiny.sh on fortune cookies in five languages and French
# documentation; models/README.md), with a banner saying what it is. Only if that file is missing: writes a tiny
# model with RANDOM weights (build/demo/random-tiny.gguf, once) and runs it, so the whole pipeline can be seen
# working; its text is gibberish by design, and the banner says so.
set -euo pipefail

bin=${1:?usage: scripts/run-main.sh LLAMAC_BIN [MODEL]}
model=${2:-${MODEL:-}}
prompt=${PROMPT:-Once upon a time}
[ -x "$bin" ] || { echo "run-main: $bin is not built (run: make $bin)" >&2; exit 1; }

if [ -n "$model" ]; then
  [ -f "$model" ] || { echo "run-main: MODEL=$model: no such file" >&2; exit 1; }
  echo "== llamac run -m $model -p \"$prompt\"" >&2
  exec "$bin" run -m "$model" -p "$prompt" ${N:+-n "$N"}
fi

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tiny="$root/models/llamac-tiny.gguf"
if [ -f "$tiny" ]; then
  cat >&2 <<BANNER

  ============================================================================================================
   No MODEL given: running models/llamac-tiny.gguf, llamac's own tiny Llama (2.4 M parameters, 4.9 MB),
   trained from scratch with \`llamac train\` on fortune cookies in English, German, Spanish, Italian and
   Portuguese and on French prose from the Debian Reference (scripts/train-tiny.sh; models/README.md).
   It writes words and phrases of those languages, but it knows nothing and its sentences wander.
   Try PROMPT="Es war einmal" or "Había una vez", "C'era una volta", "Era uma vez", "Le système".

   To run a real model (any Llama 2 / 3 / 3.1 / 3.2 GGUF: F32, F16, BF16, Q8_0, Q4_0 ... Q6_K, IQ4_NL, IQ4_XS):
     make run MODEL=path/to/model.gguf
     $(dirname "$bin")/llamac run -m path/to/model.gguf -p "Once upon a time" -n 128
  ============================================================================================================

BANNER
  echo "== llamac run -m models/llamac-tiny.gguf -p \"$prompt\"" >&2
  exec "$bin" run -m "$tiny" -p "$prompt" -n "${N:-96}"
fi

demo="$(dirname "$bin")/demo/random-tiny.gguf"
if [ ! -f "$demo" ]; then
  mkdir -p "$(dirname "$demo")"
  "$bin" synth -o "$demo" --preset tiny
fi

cat >&2 <<BANNER

  ============================================================================================================
   No MODEL given and models/llamac-tiny.gguf is missing (scripts/train-tiny.sh makes it): running
   $demo, a tiny Llama model with RANDOM WEIGHTS made by \`llamac synth\`. It is not
   trained: the text below is gibberish BY DESIGN. It shows the whole pipeline working (load, tokenize,
   forward pass, sampling, streaming output).

   To run a real model (any Llama 2 / 3 / 3.1 / 3.2 GGUF: F32, F16, BF16, Q8_0, Q4_0 ... Q6_K, IQ4_NL, IQ4_XS):
     make run MODEL=path/to/model.gguf
     $(dirname "$bin")/llamac run -m path/to/model.gguf -p "Once upon a time" -n 128
  ============================================================================================================

BANNER
"$bin" run -m "$demo" -p "$prompt" -n "${N:-64}"
echo >&2
echo "(random weights: gibberish above is expected; pass MODEL=path/to/model.gguf for a real model)" >&2
