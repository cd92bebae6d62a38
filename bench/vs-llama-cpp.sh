#!/usr/bin/env bash
# Side-by-side wall time of a perplexity evaluation: quantlab `eval` (fp32, bf16-compute) against
# llama.cpp's llama-perplexity (F32 and BF16 files), each with two llama.cpp builds: the portable one
# of scripts/llama-cpp.sh (GGML_NATIVE=OFF, AVX2: the interop oracle) and the native one of
# `scripts/llama-cpp.sh --native` (GGML_NATIVE=ON: AVX-512 here, the fair speed peer). SmolLM2-135M,
# WikiText-2 test, ctx 512, 20 windows (10,240 tokens), whole process including load, 2 threads.
# Runs are interleaved REPS times (default 3); prints the median wall and CPU (user+sys) seconds of each,
# the load average before and after, and the ratios of medians. Not a test.
# MODEL=stories260k: stories260K's own F32 GGUF on the whole WikiText-2 test (CHUNKS=0: every window),
# F32 only (llama.cpp has no BF16 file of it here; quantlab fp32 and bf16-compute).
#   bench/vs-llama-cpp.sh [BUILD_DIR]     (default build/; MODEL, REPS, CHUNKS, THREADS override)
# LLAMA_CPP_BIN / LLAMA_CPP_NATIVE_BIN name the two bin directories (default: the scripts' last stdout
# line; the native build is made on first use, ~8 CPU-minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
shared="${QL_SHARED_DIR:-../shared}"
src_model="$shared/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
text="$shared/data/wikitext-2-raw-test.txt"
threads="${THREADS:-2}"
model="${MODEL:-smollm2}"
chunks="${CHUNKS:-20}"
if [[ "$model" == stories260k ]]; then src_model="$shared/models/stories260K/stories260K.gguf"; chunks="${CHUNKS:-0}"; fi
reps="${REPS:-3}"
if [[ -z "${LLAMA_CPP_BIN:-}" && -x scripts/llama-cpp.sh ]]; then LLAMA_CPP_BIN=$(scripts/llama-cpp.sh | tail -n1); fi
if [[ -z "${LLAMA_CPP_NATIVE_BIN:-}" && -x scripts/llama-cpp.sh ]]; then
  LLAMA_CPP_NATIVE_BIN=$(scripts/llama-cpp.sh --native | tail -n1)
fi
for b in "${LLAMA_CPP_BIN:-}" "${LLAMA_CPP_NATIVE_BIN:-}"; do
  [[ -n "$b" && -x "$b/llama-perplexity" ]] ||
    { echo "vs-llama-cpp.sh: set LLAMA_CPP_BIN and LLAMA_CPP_NATIVE_BIN to directories with llama-perplexity" >&2; exit 2; }
done
for f in "$src_model" "$text" "$build/quantlab" "$LLAMA_CPP_BIN/llama-quantize"; do
  [[ -e "$f" ]] || { echo "vs-llama-cpp.sh: missing $f" >&2; exit 2; }
done

work="${TMPDIR:-/tmp}/ql-vs-llama-cpp"
mkdir -p "$work"
if [[ "$model" == stories260k ]]; then
  ln -sf "$(realpath "$src_model")" "$work/$model-F32.gguf"  # already F32
else
  for type in F32 BF16; do  # dequantized copies of the shared Q4_1 file (same weights as quantlab reads)
    [[ -s "$work/$model-$type.gguf" ]] ||
      "$LLAMA_CPP_BIN/llama-quantize" --allow-requantize "$src_model" "$work/$model-$type.gguf" "$type" >/dev/null 2>&1
  done
fi
chunk_flags=(); ql_chunk_flags=()
if ((chunks > 0)); then chunk_flags=(--chunks "$chunks"); ql_chunk_flags=(--chunks "$chunks"); fi

# Appends "wall cpu" of "$@" to $work/<name>.times (output to $work/last.log).
timed() {
  local name=$1; shift
  /usr/bin/time -f '%e %U %S' -o "$work/time.txt" "$@" >"$work/last.log" 2>&1 ||
    { echo "vs-llama-cpp.sh: failed: $*" >&2; tail -n 5 "$work/last.log" >&2; exit 1; }
  awk '{printf "%s %.2f\n", $1, $2 + $3}' "$work/time.txt" >>"$work/$name.times"
}
llama() {  # name bin type
  timed "$1" "$2/llama-perplexity" -m "$work/$model-$3.gguf" -f "$text" -c 512 "${chunk_flags[@]}" -t "$threads" -b 512
}
quantlab() {  # name precision
  QL_NUM_THREADS=$threads timed "$1" "$build/quantlab" eval --model "$work/$model-F32.gguf" --data "$text" \
    --protocol llamacpp --ctx 512 "${ql_chunk_flags[@]}" --baseline "$2"
}
median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

runs=(llama_f32 llama_bf16 native_f32 native_bf16 ql_fp32 ql_bf16)
[[ "$model" == stories260k ]] && runs=(llama_f32 native_f32 ql_fp32 ql_bf16)
for r in "${runs[@]}"; do rm -f "$work/$r.times"; done
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for ((i = 0; i < reps; ++i)); do
  llama llama_f32 "$LLAMA_CPP_BIN" F32
  [[ "$model" == stories260k ]] || llama llama_bf16 "$LLAMA_CPP_BIN" BF16
  llama native_f32 "$LLAMA_CPP_NATIVE_BIN" F32
  [[ "$model" == stories260k ]] || llama native_bf16 "$LLAMA_CPP_NATIVE_BIN" BF16
  quantlab ql_fp32 fp32
  quantlab ql_bf16 bf16-compute
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A wall cpu
for r in "${runs[@]}"; do
  wall[$r]=$(cut -d' ' -f1 "$work/$r.times" | median)
  cpu[$r]=$(cut -d' ' -f2 "$work/$r.times" | median)
done
echo "load average before: $load_before, after: $load_after; $reps interleaved runs, medians"
printf '%-44s %8s %8s\n' run "wall s" "CPU s"
row() { [[ -n "${wall[$2]:-}" ]] && printf '%-44s %8.2f %8.2f\n' "$1" "${wall[$2]}" "${cpu[$2]}"; return 0; }
row "llama.cpp portable (AVX2) F32" llama_f32
row "llama.cpp portable (AVX2) BF16" llama_bf16
row "llama.cpp native F32" native_f32
row "llama.cpp native BF16" native_bf16
row "quantlab eval --baseline fp32" ql_fp32
row "quantlab eval --baseline bf16-compute" ql_bf16
ratio() {
  [[ -n "${wall[$2]:-}" && -n "${wall[$3]:-}" ]] || return 0
  printf '%-44s %7.2fx\n' "$1" "$(echo "${wall[$2]} / ${wall[$3]}" | bc -l)"
}
ratio "quantlab fp32 vs llama.cpp portable F32" llama_f32 ql_fp32
ratio "quantlab fp32 vs llama.cpp native F32" native_f32 ql_fp32
ratio "quantlab bf16-compute vs portable F32" llama_f32 ql_bf16
ratio "quantlab bf16-compute vs native F32" native_f32 ql_bf16
ratio "quantlab bf16-compute vs portable BF16" llama_bf16 ql_bf16
ratio "quantlab bf16-compute vs native BF16" native_bf16 ql_bf16
