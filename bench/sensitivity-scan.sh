#!/usr/bin/env bash
# Cost of a sensitivity scan (not a test): the same scan run naively (--prefix-mb 0 --full: every unit a
# full cell evaluation), with prefix reuse only (--full), and with prefix reuse + adaptive evaluation;
# prints seconds (wall and CPU of the scan's own log line), the ratios to the naive scan, and whether
# the answers agree (per-scheme Spearman ρ and identical ranking of the units' KLD, and the search's
# searches' choices and measured KLD at several budgets and targets, the adaptive ones refined). Models: the default model (6 layers x 7 linears x 4 schemes) and, with
# MODEL=smollm2, SmolLM2-135M (30 x 7 x 3). SAMPLE=N runs every variant on the same uniform sample of
# the cells (--shard 0/N: cell i runs when i mod N = 0) and scales the seconds to the whole scan (the
# ratios are those of the sample; no search then). NAIVE_SAMPLE=N samples the naive scan only (its
# seconds projected to the whole scan; the rest runs in full). SEARCH_ONLY=1 keeps OUT's scans (and
# their times.txt) and re-runs only the searches, the adaptive ones on a fresh copy of the adaptive scan
# (OUT/adaptive-scan, saved after the scan), so no refined cell of an earlier run is reused;
# REFINE_FLAGS are passed to the adaptive searches (e.g. --refine-unpaired).
#   bench/sensitivity-scan.sh [BUILD_DIR]   MODEL=default|smollm2  OUT=dir  SAMPLE=N  NAIVE_SAMPLE=N  CHUNKS=n
#                                           SEARCH_ONLY=1  REFINE_FLAGS=...
set -euo pipefail
cd "$(dirname "$0")/.."
build="$(realpath "${1:-build}")"
src="$(pwd)"
shared="${QL_SHARED_DIR:-$src/../shared}"
model="${MODEL:-default}"
out="$(realpath -m "${OUT:-/tmp/ql-sensitivity-bench-$model}")"
mkdir -p "$out"
Q="$build/quantlab"

if [[ "$model" == default ]]; then
  cat > "$out/scan.yaml" <<YAML
name: scan-default
model: $src/models/quantlab-tiny
data: $src/models/quantlab-tiny/heldout.txt
protocol: {name: llamacpp, ctx: 256, chunks: 16}
targets: ["re:model\\\\.layers\\\\..*"]
sensitivity: {units: module, schemes: [int4:g32, int3:g32, int8:channel, nf4],
              adaptive: {rel_se: ${REL_SE:-0.15}, min_windows: ${MIN_WINDOWS:-4}}}
grid: {schemes: [int4:g32, int3:g32, int8:channel, nf4, Q4_K_M]}
YAML
else
  cat > "$out/scan.yaml" <<YAML
name: scan-smollm2
model: $shared/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf
data: $shared/data/wikitext-2-raw-test.txt
protocol: {name: llamacpp, ctx: ${CTX:-256}, chunks: ${CHUNKS:-8}}
targets: ["re:model\\\\.layers\\\\..*"]
sensitivity: {units: module, schemes: [int4:g32, int3:g32, int8:channel],
              adaptive: {rel_se: ${REL_SE:-0.15}, min_windows: ${MIN_WINDOWS:-3}}}
grid: {schemes: [int4:g32, int3:g32, int8:channel, Q4_K_M]}
YAML
fi

# Runs one variant into its own results directory; its scan line carries wall and CPU seconds.
run() {  # name, flags...
  local name=$1; shift
  "$Q" sensitivity "$out/scan.yaml" --results "$out/$name" --json "$@" > "$out/$name.json" 2> "$out/$name.log"
  grep -o 'in [0-9.]*s ([0-9.]* CPU-s)' "$out/$name.log" | tail -n1 | tr -d '()' | awk -v n="$name" '{print n, $2, $3}'
}
shard=(); [[ -n "${SAMPLE:-}" ]] && shard=(--shard "0/$SAMPLE")
naive_shard=("${shard[@]}"); [[ -n "${NAIVE_SAMPLE:-}" ]] && naive_shard=(--shard "0/$NAIVE_SAMPLE")
if [[ -z "${SEARCH_ONLY:-}" ]]; then
{
  run naive --prefix-mb 0 --full "${naive_shard[@]}"
  run prefix --full "${shard[@]}"
  run adaptive "${shard[@]}"
} | tee "$out/times.txt"
rm -rf "$out/adaptive-scan" && cp -a "$out/adaptive" "$out/adaptive-scan"
else
  rm -rf "$out/adaptive" && cp -a "$out/adaptive-scan" "$out/adaptive"
fi
# The search on the full (prefix) and the adaptive scan at several budgets and KLD targets: the same
# choice and the same measured KLD? (The adaptive searches re-measure the options their choice depends
# on; that cost is in each report's refinement.cpu_seconds and counts against the adaptive scan.)
# The uniform cells every search compares with (and the report's frontier plot), in the full scan's store.
[[ -z "${SAMPLE:-}${SEARCH_ONLY:-}" ]] && "$Q" sweep "$out/scan.yaml" --results "$out/prefix" > "$out/uniform.log" 2>&1
searches="${SEARCHES:---budget-bpw=4.25 --budget-bpw=4.5 --budget-bpw=4.75 --target-kld=0.02 --target-kld=0.05}"
for v in $([[ -z "${SAMPLE:-}" ]] && echo prefix adaptive); do
  for q in $searches; do
    tag="${q#--}"; tag="${tag//=/-}"
    "$Q" search "$out/scan.yaml" --results "$out/$v" $([[ $v == prefix ]] && echo --full || echo ${REFINE_FLAGS:-}) "$q" --json \
      > "$out/search-$v-$tag.json" 2> "$out/search-$v-$tag.log" || echo "search $q on $v failed: see $out/search-$v-$tag.log"
  done
done
python3 - "$out" "$model" <<'PY'
import json, sys, math
out, model = sys.argv[1], sys.argv[2]
t = {l.split()[0]: (float(l.split()[1].rstrip('s')), float(l.split()[2].split('CPU')[0].rstrip('-s'))) for l in open(f"{out}/times.txt")}
rows = {v: json.load(open(f"{out}/{v}.json"))["rows"] for v in ("naive", "prefix", "adaptive")}
n_cells = len(rows["prefix"])
done_naive = [r for r in rows["naive"] if "kld_mean" in r]
# Each variant's seconds scaled to the whole scan by the cells it ran (1 unless a sample ran).
scale = {v: n_cells / len([r for r in rows[v] if "kld_mean" in r]) for v in rows}
for v in rows: rows[v] = [r for r in rows[v] if "kld_mean" in r]
print(f"cells: {n_cells}; naive cells run: {len(done_naive)} (x{scale['naive']:.1f} to the whole scan)")
t = {v: (w * scale[v], c * scale[v]) for v, (w, c) in t.items()}
for v in ("naive", "prefix", "adaptive"):
    w, c = t[v]
    print(f"{v:9s} wall {w:9.1f} s  CPU {c:9.1f} s  ratio to naive: wall {w / t['naive'][0]:.3f}  CPU {c / t['naive'][1]:.3f}")
def rank(xs):
    o = sorted(range(len(xs)), key=lambda i: xs[i]); r = [0] * len(xs)
    for k, i in enumerate(o): r[i] = k
    return r
def spearman(a, b):
    ra, rb = rank(a), rank(b); n = len(a); ma = sum(ra) / n; mb = sum(rb) / n
    num = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    return num / math.sqrt(sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb))
full = {(r["unit"], r["scheme"]): r for r in rows["prefix"]}
naive = {(r["unit"], r["scheme"]): r for r in done_naive}
same = all(naive[k]["kld_mean"] == full[k]["kld_mean"] and naive[k]["dppl"] == full[k]["dppl"] for k in naive)
print(f"prefix reuse: {len(naive)} naive cells bitwise equal to the prefix run: {same}")
wins = [r["eval_windows"] for r in rows["adaptive"]]
print(f"adaptive: windows per unit mean {sum(wins) / len(wins):.2f} of {json.load(open(f'{out}/adaptive.json'))['total_windows']} (min {min(wins)}, max {max(wins)})")
for sc in sorted({r["scheme"] for r in rows["prefix"]}):
    a = [r for r in rows["adaptive"] if r["scheme"] == sc]; f = [full[(r["unit"], sc)] for r in a]
    ka, kf = [r["kld_mean"] for r in a], [r["kld_mean"] for r in f]
    rel = max(abs(x - y) / y for x, y in zip(ka, kf))
    print(f"  {sc:14s} Spearman rho adaptive vs full {spearman(ka, kf):.4f}; identical ranking {rank(ka) == rank(kf)}; "
          f"top-5 units same {sorted(range(len(ka)), key=lambda i: -ka[i])[:5] == sorted(range(len(kf)), key=lambda i: -kf[i])[:5]}; "
          f"max rel. KLD difference {rel:.3f}")
import glob, os
refine_cpu = refine_wall = 0.0
for f in sorted(glob.glob(f"{out}/search-prefix-*.json")):
    tag = os.path.basename(f)[len("search-prefix-"):-len(".json")]
    try:
        s = {v: json.load(open(f"{out}/search-{v}-{tag}.json")) for v in ("prefix", "adaptive")}
    except Exception as e:
        print(f"search {tag}: comparison unavailable: {e}"); continue
    r = s["adaptive"].get("refinement") or {}
    refine_cpu += r.get("cpu_seconds", 0); refine_wall += r.get("seconds", 0)
    diff = [u for u in s["prefix"]["choice"] if s["prefix"]["choice"][u] != s["adaptive"]["choice"][u]]
    fk, ak = s["prefix"]["rounds"][-1], s["adaptive"]["rounds"][-1]
    print(f"search {tag:16s} same choice: {not diff} ({len(diff)} units differ) | measured KLD full {fk['kld_mean']:.6f} "
          f"adaptive {ak['kld_mean']:.6f} equal: {fk['kld_mean'] == ak['kld_mean']} | {fk['bits_per_weight_units']:.4f} b/w "
          f"| refined {r.get('options_measured', r.get('cells_run', 0))} options ({r.get('doubling_steps', 0)} doubling steps) in {r.get('passes', 0)} "
          f"passes, {r.get('windows_evaluated', 0)} windows evaluated + {r.get('windows_resumed', 0)} resumed "
          f"({r.get('cpu_seconds', 0):.1f} CPU-s) | rounds {len(s['adaptive']['rounds'])}")
w, c = t["adaptive"]
print(f"adaptive + refinement of every search: wall {w + refine_wall:.1f} s, CPU {c + refine_cpu:.1f} s; ratio to naive: "
      f"wall {(w + refine_wall) / t['naive'][0]:.3f}  CPU {(c + refine_cpu) / t['naive'][1]:.3f}")
PY
