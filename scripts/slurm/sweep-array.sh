#!/usr/bin/env bash
# Slurm array job: array task i runs shard i/N of a quantlab sweep into RESULTS_PREFIX-shard-i.
# N is an argument, not SLURM_ARRAY_TASK_COUNT, so resubmitting one task (--array=3) still runs shard 3/N.
#
#   sbatch --array=0-7 --cpus-per-task=2 scripts/slurm/sweep-array.sh EXPERIMENT.yaml 8 RESULTS_PREFIX [SWEEP ARGS...]
#
# Environment: QUANTLAB = the quantlab binary (default: build/quantlab under the submit directory).
# Threads follow --cpus-per-task (OPENBLAS_NUM_THREADS / OMP_NUM_THREADS); run every shard of a store, and any
# run you compare it with, with the same --cpus-per-task.
#SBATCH --job-name=quantlab-sweep
#SBATCH --cpus-per-task=1
#SBATCH --output=quantlab-sweep-%A_%a.out
set -euo pipefail

die() { echo "sweep-array: $*" >&2; exit 2; }
(( $# >= 3 )) || die "usage: sbatch --array=0-(N-1) sweep-array.sh EXPERIMENT.yaml N RESULTS_PREFIX [SWEEP ARGS...]"
experiment=$1; n=$2; prefix=$3; shift 3
[[ -n "${SLURM_ARRAY_TASK_ID:-}" ]] || die "SLURM_ARRAY_TASK_ID is not set: submit with sbatch --array=0-$((n - 1))"
[[ "$n" =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer, got '$n'"
i=$SLURM_ARRAY_TASK_ID
(( i < n )) || die "array task $i is outside 0..$((n - 1)) (N = $n): use --array=0-$((n - 1))"
[[ -f "$experiment" ]] || die "$experiment: no such experiment file"

quantlab=${QUANTLAB:-${SLURM_SUBMIT_DIR:-.}/build/quantlab}
[[ -x "$quantlab" ]] || die "$quantlab: not an executable; set QUANTLAB=/path/to/quantlab"
threads=${SLURM_CPUS_PER_TASK:-1}
export OPENBLAS_NUM_THREADS=$threads OMP_NUM_THREADS=$threads

echo "sweep-array: job ${SLURM_ARRAY_JOB_ID:-?}_$i on $(hostname), shard $i/$n, $threads thread(s)," \
     "$(nproc) CPU(s) allowed -> $prefix-shard-$i"
exec "$quantlab" sweep "$experiment" --shard "$i/$n" --results "$prefix-shard-$i" "$@"
