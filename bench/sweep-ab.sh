#!/bin/bash
# Side by side wall and CPU seconds of two quantlab binaries on one sweep file: RUNS alternating runs of
# each, a fresh results directory every time (else the sweep resumes). Prints "tag binary run wall user sys load".
# Usage: bench/sweep-ab.sh SWEEP.yaml TAG RUNS BIN_A BIN_B [OUTDIR]   (then bench/same_results.py DIR_A DIR_B)
set -euo pipefail
cfg=$1; tag=$2; runs=$3; a=$4; b=$5; out=${6:-/tmp/sweep-ab}
mkdir -p "$out"
for i in $(seq 1 "$runs"); do
  for side in a b; do
    if [ $side = a ]; then bin=$a; else bin=$b; fi
    name=$side-$(basename "$bin"); d="$out/res-$tag-$name-$i"; rm -rf "$d"
    /usr/bin/time -f "%e %U %S" "$bin" sweep "$cfg" --results "$d" --no-table >/dev/null 2>"$out/err-$tag-$name-$i"
    echo "$tag $name run$i $(tail -1 "$out/err-$tag-$name-$i") load $(cut -d' ' -f1 /proc/loadavg)"
  done
done
