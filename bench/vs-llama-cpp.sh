#!/usr/bin/env bash
# Side-by-side wall time of a perplexity evaluation: quantlab `eval` (fp32, bf16-compute) against
# llama.cpp's llama-perplexity (F32 and BF16 files) on SmolLM2-135M, WikiText-2 test, ctx 512,
# 20 windows (10,240 tokens), whole process including load, 2 threads; prints each time and the ratios.
# Not a test. Needs llama.cpp's llama-quantize and llama-perplexity: LLAMA_CPP_BIN=<dir>, or the last
# stdout line of scripts/llama-cpp.sh when that script exists.
#   bench/vs-llama-cpp.sh [BUILD_DIR]     (default build/)
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
shared="${QL_SHARED_DIR:-../shared}"
src_model="$shared/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
text="$shared/data/wikitext-2-raw-test.txt"
threads="${THREADS:-2}"
chunks="${CHUNKS:-20}"
if [[ -z "${LLAMA_CPP_BIN:-}" && -x scripts/llama-cpp.sh ]]; then LLAMA_CPP_BIN=$(scripts/llama-cpp.sh | tail -n1); fi
[[ -n "${LLAMA_CPP_BIN:-}" && -x "$LLAMA_CPP_BIN/llama-perplexity" ]] ||
  { echo "vs-llama-cpp.sh: set LLAMA_CPP_BIN to a directory with llama-perplexity and llama-quantize" >&2; exit 2; }
for f in "$src_model" "$text" "$build/quantlab"; do [[ -e "$f" ]] || { echo "vs-llama-cpp.sh: missing $f" >&2; exit 2; }; done

work="${TMPDIR:-/tmp}/ql-vs-llama-cpp"
mkdir -p "$work"
for type in F32 BF16; do  # dequantized copies of the shared Q4_1 file (same weights as quantlab reads)
  [[ -s "$work/smollm2-$type.gguf" ]] ||
    "$LLAMA_CPP_BIN/llama-quantize" --allow-requantize "$src_model" "$work/smollm2-$type.gguf" "$type" >/dev/null 2>&1
done

seconds() {  # wall seconds of "$@", output to $work/last.log
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >"$work/last.log" 2>&1 || { echo "vs-llama-cpp.sh: failed: $*" >&2; tail -n 5 "$work/last.log" >&2; exit 1; }
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc
}
llama() {
  seconds "$LLAMA_CPP_BIN/llama-perplexity" -m "$work/smollm2-$1.gguf" -f "$text" -c 512 --chunks "$chunks" -t "$threads" -b 512
}
quantlab() {
  QL_NUM_THREADS=$threads seconds "$build/quantlab" eval --model "$work/smollm2-F32.gguf" --data "$text" \
    --protocol llamacpp --ctx 512 --chunks "$chunks" --baseline "$1"
}

t_llama_f32=$(llama F32)
t_llama_bf16=$(llama BF16)
t_ql_fp32=$(quantlab fp32)
t_ql_bf16=$(quantlab bf16-compute)
printf '%-34s %8s\n' run "wall s"
printf '%-34s %8.2f\n' "llama.cpp llama-perplexity F32" "$t_llama_f32" "llama.cpp llama-perplexity BF16" "$t_llama_bf16" \
  "quantlab eval --baseline fp32" "$t_ql_fp32" "quantlab eval --baseline bf16-compute" "$t_ql_bf16"
printf 'quantlab fp32 vs llama.cpp F32:          %.2fx\n' "$(echo "$t_llama_f32 / $t_ql_fp32" | bc -l)"
printf 'quantlab bf16-compute vs llama.cpp F32:  %.2fx\n' "$(echo "$t_llama_f32 / $t_ql_bf16" | bc -l)"
printf 'quantlab bf16-compute vs llama.cpp BF16: %.2fx\n' "$(echo "$t_llama_bf16 / $t_ql_bf16" | bc -l)"
