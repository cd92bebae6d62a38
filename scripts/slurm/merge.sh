#!/usr/bin/env bash
# Slurm merge job: combines the shard stores RESULTS_PREFIX-shard-0 .. -(N-1) into MERGED_DIR with `quantlab merge`.
# Chained after the array with --dependency=afterany (scripts/slurm/submit.sh does this), so it also runs when a
# shard failed; it then merges what exists, names the missing shards and exits 1. Re-running it after a
# resubmitted shard finishes is safe: merging skips cells MERGED_DIR already holds.
#
#   sbatch --dependency=afterany:ARRAY_JOB_ID scripts/slurm/merge.sh MERGED_DIR N RESULTS_PREFIX [EXPERIMENT.yaml]
#
# With EXPERIMENT.yaml it ends with `quantlab status MERGED_DIR EXPERIMENT.yaml` (done / failed / missing cells).
#SBATCH --job-name=quantlab-merge
#SBATCH --cpus-per-task=1
#SBATCH --output=quantlab-merge-%j.out
set -euo pipefail

die() { echo "merge: $*" >&2; exit 2; }
(( $# == 3 || $# == 4 )) || die "usage: merge.sh MERGED_DIR N RESULTS_PREFIX [EXPERIMENT.yaml]"
out=$1; n=$2; prefix=$3; experiment=${4:-}
[[ "$n" =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer, got '$n'"
quantlab=${QUANTLAB:-${SLURM_SUBMIT_DIR:-.}/build/quantlab}
[[ -x "$quantlab" ]] || die "$quantlab: not an executable; set QUANTLAB=/path/to/quantlab"

present=(); missing=()
for ((i = 0; i < n; ++i)); do
  if [[ -f "$prefix-shard-$i/results.sqlite" ]]; then present+=("$prefix-shard-$i"); else missing+=("$i"); fi
done
(( ${#present[@]} > 0 )) || die "no shard store found at $prefix-shard-{0..$((n - 1))}/results.sqlite"
"$quantlab" merge "$out" "${present[@]}"
rc=0
if (( ${#missing[@]} > 0 )); then
  echo "merge: shard(s) ${missing[*]} of $n have no store; resubmit them with" \
       "sbatch --array=$(IFS=,; echo "${missing[*]}") scripts/slurm/sweep-array.sh EXPERIMENT.yaml $n $prefix" >&2
  rc=1
fi
if [[ -n "$experiment" ]]; then
  if "$quantlab" --help | grep -qE '^ +status +'; then
    "$quantlab" status "$out" "$experiment" || rc=1
  else
    echo "merge: this quantlab has no 'status' command; check the cell count by hand" >&2
  fi
fi
exit $rc
