#!/usr/bin/env bash
# Submits a sharded quantlab sweep to Slurm: an N-task array (scripts/slurm/sweep-array.sh) and a merge job
# (scripts/slurm/merge.sh) that waits for every array task with --dependency=afterany. Prints both job ids.
#
#   scripts/slurm/submit.sh EXPERIMENT.yaml N RESULTS_PREFIX MERGED_DIR [SBATCH OPTIONS FOR THE ARRAY...]
#   e.g. scripts/slurm/submit.sh experiments/large.yaml 8 /scratch/$USER/large /scratch/$USER/large-merged \
#            --cpus-per-task=8 --time=12:00:00
#
# Output lines: "array job: ID" and "merge job: ID". Logs: RESULTS_PREFIX-sweep-ID_TASK.out, MERGED_DIR-merge-ID.out.
# QUANTLAB (the binary) defaults to build/quantlab of this checkout and is exported to the jobs.
set -euo pipefail

die() { echo "submit: $*" >&2; exit 2; }
(( $# >= 4 )) || die "usage: submit.sh EXPERIMENT.yaml N RESULTS_PREFIX MERGED_DIR [SBATCH OPTIONS...]"
experiment=$1; n=$2; prefix=$3; out=$4; shift 4
[[ "$n" =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer, got '$n'"
[[ -f "$experiment" ]] || die "$experiment: no such experiment file"
here=$(cd "$(dirname "$0")" && pwd)
export QUANTLAB=${QUANTLAB:-$(cd "$here/../.." && pwd)/build/quantlab}
[[ -x "$QUANTLAB" ]] || die "$QUANTLAB: not an executable; build quantlab or set QUANTLAB"
command -v sbatch >/dev/null || die "sbatch not found: run this on a Slurm submit host"
mkdir -p "$(dirname "$prefix")" "$(dirname "$out")"   # Slurm fails a job whose --output directory is missing

array=$(sbatch --parsable --array="0-$((n - 1))" --output="$prefix-sweep-%A_%a.out" "$@" \
        "$here/sweep-array.sh" "$experiment" "$n" "$prefix")
array=${array%%;*}   # --parsable prints "id" or "id;cluster"
merge=$(sbatch --parsable --dependency="afterany:$array" --output="$out-merge-%j.out" \
        "$here/merge.sh" "$out" "$n" "$prefix" "$experiment")
merge=${merge%%;*}
echo "array job: $array"
echo "merge job: $merge"
