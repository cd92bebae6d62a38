#!/usr/bin/env bash
# Side-by-side speed and agreement of multiple-choice scoring: quantlab `tasks --convention llamacpp`
# against llama.cpp's `llama-perplexity --multiple-choice` on the same items (converted by
# scripts/tasks-to-llamacpp-mc.py), SmolLM2-135M as F32 (the shared Q4_1 file dequantized by
# llama-quantize, so both read the same weights), 2 threads, whole process including load. Prints
# wall and CPU seconds, items/s, both accuracies, the item-by-item agreement and the ratio.
# Not a test. Needs llama-perplexity and llama-quantize: LLAMA_CPP_BIN=<dir>, or scripts/llama-cpp.sh.
#   bench/tasks-vs-llama-cpp.sh [BUILD_DIR]     (default build/)
#   TASKS="piqa arc_easy" LIMIT=300 THREADS=2   (LIMIT 0 = whole files)
#   SEED=S with LIMIT: quantlab's seeded sample (--limit N --seed S) instead of the first N; llama.cpp
#   gets the same items, taken by file line from quantlab's --items output
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
shared="${QL_SHARED_DIR:-../shared}"
src_model="$shared/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
threads="${THREADS:-2}"
limit="${LIMIT:-300}"
tasks="${TASKS:-piqa arc_easy}"
seed="${SEED:-0}"
if [[ -z "${LLAMA_CPP_BIN:-}" && -x scripts/llama-cpp.sh ]]; then LLAMA_CPP_BIN=$(scripts/llama-cpp.sh | tail -n1); fi
[[ -n "${LLAMA_CPP_BIN:-}" && -x "$LLAMA_CPP_BIN/llama-perplexity" ]] ||
  { echo "tasks-vs-llama-cpp.sh: set LLAMA_CPP_BIN to a directory with llama-perplexity" >&2; exit 2; }
for f in "$src_model" "$build/quantlab"; do [[ -e "$f" ]] || { echo "tasks-vs-llama-cpp.sh: missing $f" >&2; exit 2; }; done

work="${TMPDIR:-/tmp}/ql-tasks-vs-llama-cpp"
mkdir -p "$work"
model="$work/smollm2-F32.gguf"
[[ -s "$model" ]] || "$LLAMA_CPP_BIN/llama-quantize" --allow-requantize "$src_model" "$model" F32 >/dev/null 2>&1

timed() {  # timed LOG CMD...: runs CMD (stdout to LOG.out, stderr to LOG.err), prints "wall cpu"
  local log=$1
  shift
  /usr/bin/time -f '%e %U %S' -o "$log.time" "$@" >"$log.out" 2>"$log.err" ||
    { echo "tasks-vs-llama-cpp.sh: failed: $*" >&2; tail -n 5 "$log.err" >&2; exit 1; }
  awk '{printf "%s %.2f\n", $1, $2 + $3}' "$log.time"
}

printf '%-11s %6s | %-30s | %-30s | %s\n' task items "quantlab wall/cpu s, items/s" "llama.cpp wall/cpu s, items/s" \
  "acc quantlab / llama.cpp, items agreeing"
for t in $tasks; do
  jsonl="$shared/data/tasks/$t.jsonl"
  n=$(grep -c . "$jsonl")
  [[ "$limit" -gt 0 && "$limit" -lt "$n" ]] && n=$limit
  read -r ql_wall ql_cpu < <(QL_NUM_THREADS=$threads QL_PROGRESS=off timed "$work/$t.ql" "$build/quantlab" tasks \
    --model "$model" --task "$t=$jsonl" --convention llamacpp --limit "$n" --seed "$seed" --json \
    --items "$work/$t.items.jsonl")
  python3 - "$jsonl" "$work/$t.items.jsonl" "$work/$t.sample.jsonl" <<'PY'
import json, sys
src, items, out = sys.argv[1:4]  # the file's lines quantlab scored (1-based), in file order
lines = sorted({json.loads(l)["line"] for l in open(items) if l.strip()})
text = open(src, encoding="utf-8").read().split("\n")
open(out, "w", encoding="utf-8").write("".join(text[i - 1] + "\n" for i in lines))
PY
  python3 scripts/tasks-to-llamacpp-mc.py "$work/$t.sample.jsonl" "$work/$t.bin"
  # llama.cpp packs up to 32 tasks into one batch of -np sequences sharing -np × -c = 4096 KV cells
  # (and holds logits for all of them: 4096 × vocab floats = 0.8 GB).
  read -r ll_wall ll_cpu < <(timed "$work/$t.llama" "$LLAMA_CPP_BIN/llama-perplexity" -m "$model" \
    --multiple-choice -bf "$work/$t.bin" -t "$threads" -c 128 -np 32 -b 4096)
  python3 - "$work/$t.items.jsonl" "$work/$t.llama.out" "$work/$t.llama.err" "$n" "$t" "$ql_wall" "$ql_cpu" \
    "$ll_wall" "$ll_cpu" <<'EOF'
import json, re, sys
items_path, out_path, err_path, n, task = sys.argv[1:6]
ql_wall, ql_cpu, ll_wall, ll_cpu = map(float, sys.argv[6:10])
n = int(n)
ql = [json.loads(l) for l in open(items_path) if l.strip()]
ql = [r["correct"]["acc_per_token"] for r in ql if r["convention"] == "llamacpp"]
# llama-perplexity prints "<tasks done>\t<accuracy so far, %>" after each task: recover each item.
cum = []
for path in (out_path, err_path):
    for line in open(path, errors="replace"):
        m = re.fullmatch(r"(\d+)\t(\d+\.\d+)\s*", line)
        if m:
            cum.append((int(m.group(1)), float(m.group(2))))
cum.sort()
ll, right = [], 0
for k, acc in cum:
    now = round(acc * k / 100)
    ll.append(now - right)
    right = now
assert len(ll) == n == len(ql), f"{task}: {len(ll)} llama.cpp items, {len(ql)} quantlab items, expected {n}"
agree = sum(a == b for a, b in zip(ql, ll))
print(f"{task:<11} {n:6d} | {ql_wall:7.1f} / {ql_cpu:7.1f}  {n / ql_wall:6.2f}/s     | "
      f"{ll_wall:7.1f} / {ll_cpu:7.1f}  {n / ll_wall:6.2f}/s     | "
      f"{100 * sum(ql) / n:.1f} / {100 * sum(ll) / n:.1f}, {agree}/{n}")
print(f"{task:<11} quantlab vs llama.cpp items/s: {ll_wall / ql_wall:.2f}x wall, {ll_cpu / ql_cpu:.2f}x CPU")
EOF
done
