#!/usr/bin/env bash
# End-to-end test of scripts/slurm/: brings up a one-node Slurm on localhost (munged, slurmctld, slurmd as root,
# no accounting database, configs in a temp dir), runs a small sweep as a 3-task array chained to the merge job,
# runs the same sweep unsharded as one job with the same --cpus-per-task, and checks that the merged store equals
# the unsharded one cell for cell (same cell ids, every metric bitwise identical). Then resubmits array task 1
# alone and checks it ran shard 1/3. Tears everything down on exit; exits non-zero on any failure or mismatch.
#
#   scripts/slurm/test-local.sh        (as root; installs the Slurm packages first; needs build/quantlab)
#
# Environment: QUANTLAB (default build/quantlab), QL_SLURM_PORT (slurmctld port, slurmd uses +1; default 16817),
# QL_SLURM_KEEP=1 keeps the temp dir.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
export QUANTLAB=${QUANTLAB:-$repo/build/quantlab}
port=${QL_SLURM_PORT:-16817}
cpus=2           # the node's CPUs as Slurm sees them (this test's machine has 2 cores)
cpt=1            # --cpus-per-task of every job, sharded and unsharded alike
ref_cpt=${QL_SLURM_REF_CPT:-$cpt}   # only to see the check fail: a different thread count for the reference
n_shards=3
n_cells=8        # the grid below: 4 schemes x 2 ignore sets

say() { echo "slurm-test: $*"; }
die() { echo "slurm-test: FAIL: $*" >&2; exit 1; }

# Polls `$@` once a second until it succeeds; fails after $1 seconds naming what it waited for.
wait_for() {
  local timeout=$1 what=$2; shift 2
  local t0=$SECONDS
  until "$@"; do
    (( SECONDS - t0 < timeout )) || die "timed out after ${timeout}s waiting for $what"
    sleep 1
  done
}

[[ $(id -u) -eq 0 ]] || die "must run as root (it starts munged, slurmctld and slurmd)"
"$repo/scripts/install-deps.sh" --slurm
[[ -x "$QUANTLAB" ]] || die "$QUANTLAB: not built (cmake --build build --target quantlab) or set QUANTLAB"
for p in $port $((port + 1)); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then die "port $p is in use: set QL_SLURM_PORT"; fi
done

tmp=$(mktemp -d /tmp/ql-slurm-test.XXXXXX)
chmod 755 "$tmp"
export SLURM_CONF=$tmp/slurm.conf
daemon_pids=()

dump_logs() {
  local f
  find "$tmp" -name '*.log' -o -name '*.out' -o -name '*.stdout' | sort | while read -r f; do
    echo "---- $f (last 30 lines)" >&2; tail -n 30 "$f" >&2
  done
}

cleanup() {
  local rc=$?
  set +e
  (( rc == 0 )) || dump_logs
  if [[ -S "$tmp/munge/socket" ]] && (( ${#daemon_pids[@]} > 1 )); then
    timeout 10 scancel --quiet --user=root >/dev/null 2>&1
  fi
  [[ -f "$tmp/munge/munged.pid" ]] && daemon_pids+=("$(cat "$tmp/munge/munged.pid")")
  for pid in "${daemon_pids[@]}"; do kill "$pid" 2>/dev/null; done
  for _ in $(seq 20); do
    local alive=0
    for pid in "${daemon_pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    (( alive )) || break
    sleep 0.5
  done
  for pid in "${daemon_pids[@]}"; do kill -9 "$pid" 2>/dev/null; done
  if [[ "${QL_SLURM_KEEP:-0}" == 1 ]]; then echo "slurm-test: kept $tmp" >&2; else rm -rf "$tmp"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- munge: a fresh key and a private socket ----
mkdir -p "$tmp/munge" "$tmp/log" "$tmp/state" "$tmp/spool" "$tmp/out"
chmod 700 "$tmp/munge"
dd if=/dev/urandom of="$tmp/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$tmp/munge/munge.key"
munged --force --socket="$tmp/munge/socket" --key-file="$tmp/munge/munge.key" \
       --pid-file="$tmp/munge/munged.pid" --log-file="$tmp/log/munged.log" --seed-file="$tmp/munge/seed"
wait_for 10 "munged" bash -c "munge -n -S '$tmp/munge/socket' | unmunge -S '$tmp/munge/socket' >/dev/null 2>&1"
say "munged up"

# ---- slurm.conf: one node, CPUs as cores, --cpus-per-task honoured (cons_tres + task/affinity) ----
host=$(hostname -s)
cat > "$SLURM_CONF" <<EOF
ClusterName=quantlab-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$tmp/munge/socket
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool/%n
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldLogFile=$tmp/log/slurmctld.log
SlurmdLogFile=$tmp/log/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
TaskPlugin=task/affinity
ProctrackType=proctrack/linuxproc
SlurmdParameters=config_overrides
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
MinJobAge=600
SchedulerParameters=sched_interval=2
NodeName=qlnode NodeHostname=$host NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=test Nodes=qlnode Default=YES MaxTime=60 State=UP
EOF

slurmctld -D -c -f "$SLURM_CONF" >"$tmp/log/slurmctld.stdout" 2>&1 &
daemon_pids+=($!)
wait_for 20 "slurmctld" bash -c "scontrol ping 2>/dev/null | grep -q UP"
slurmd -D -N qlnode -f "$SLURM_CONF" >"$tmp/log/slurmd.stdout" 2>&1 &
daemon_pids+=($!)
wait_for 60 "node qlnode idle" bash -c "[[ \$(sinfo -h -n qlnode -o %T 2>/dev/null) == idle ]]"
say "slurmctld and slurmd up, node idle ($cpus CPUs)"

# ---- the sweep: a few cells of the default model, weights, activations and KV cache ----
exp=$tmp/small.yaml
cat > "$exp" <<EOF
name: slurm-test
model: $repo/models/quantlab-tiny
data: $repo/models/quantlab-tiny/heldout.txt
protocol: {name: llamacpp, ctx: 256, chunks: 4}
baseline: bf16
seed: 0
results: $tmp/unused
grid:
  schemes: [int4:g32, W8A8, nvfp4, {weights: int8:channel, kv_cache: int8:token}]
  algorithms: [rtn]
  ignore: [none, lm_head]
EOF
cd "$tmp/out"   # job logs land here (--output is relative to the submit directory)

ids=$("$repo/scripts/slurm/submit.sh" "$exp" $n_shards "$tmp/shards/s" "$tmp/merged" --cpus-per-task=$cpt)
echo "$ids"
array=$(sed -n 's/^array job: //p' <<<"$ids")
merge=$(sed -n 's/^merge job: //p' <<<"$ids")
[[ -n "$array" && -n "$merge" ]] || die "submit.sh did not print both job ids"
ref=$(sbatch --parsable --job-name=quantlab-ref --cpus-per-task=$ref_cpt --output="$tmp/out/ref-%j.out" \
      --wrap "export OPENBLAS_NUM_THREADS=$ref_cpt OMP_NUM_THREADS=$ref_cpt; exec '$QUANTLAB' sweep '$exp' --results '$tmp/ref'")
ref=${ref%%;*}
say "array $array, merge $merge (afterany:$array), unsharded reference $ref"

# True when none of the given jobs is pending or running.
jobs_done() { [[ -z "$(squeue -h -j "$1" -t PD,CF,R,CG,S -o %i 2>/dev/null)" ]]; }
# Fails unless every job record (array tasks included) of job $1 ended COMPLETED with exit code 0:0.
check_completed() {
  local lines; lines=$(scontrol show job -o "$1") || die "no record of job $1"
  while read -r line; do
    [[ "$line" == *"JobState=COMPLETED"* && "$line" == *"ExitCode=0:0"* ]] ||
      die "job $1 did not complete: $(grep -o 'JobId=[^ ]*\|ArrayTaskId=[^ ]*\|JobState=[^ ]*\|ExitCode=[^ ]*' <<<"$line" | tr '\n' ' ')"
  done <<<"$lines"
}
wait_for 900 "jobs $array, $merge, $ref" jobs_done "$array,$merge,$ref"
check_completed "$array"; check_completed "$merge"; check_completed "$ref"
say "all jobs COMPLETED"
# task/affinity pins each task to its --cpus-per-task CPUs
for f in "$tmp"/shards/s-sweep-*.out; do
  grep -q "$cpt CPU(s) allowed" "$f" || die "$f: the task was not pinned to $cpt CPU(s): $(grep -o '[0-9]* CPU(s) allowed' "$f")"
done

# ---- compare: merged shards vs the unsharded run ----
m=$tmp/merged/results.sqlite r=$tmp/ref/results.sqlite
[[ -f "$m" && -f "$r" ]] || die "missing store: $m or $r"
q() { sqlite3 -batch -noheader "$m" "ATTACH '$r' AS r; $1"; }
[[ $(q "SELECT count(*) FROM cells WHERE status = 'ok'") == "$n_cells" ]] ||
  die "merged store has $(q "SELECT count(*) FROM cells WHERE status = 'ok'") ok cells, want $n_cells"
[[ $(q "SELECT count(*) FROM r.cells WHERE status = 'ok'") == "$n_cells" ]] || die "reference store is incomplete"
for s in $(seq 0 $((n_shards - 1))); do
  c=$(sqlite3 -batch -noheader "$tmp/shards/s-shard-$s/results.sqlite" "SELECT count(*) FROM cells")
  (( c > 0 && c < n_cells )) || die "shard $s holds $c cells: the sweep was not split"
done
diff_ids=$(q "SELECT (SELECT count(*) FROM (SELECT id FROM main.cells EXCEPT SELECT id FROM r.cells))
                   + (SELECT count(*) FROM (SELECT id FROM r.cells EXCEPT SELECT id FROM main.cells))")
[[ "$diff_ids" == 0 ]] || die "cell ids differ between the merged and the unsharded store"
for table in metrics tensor_errors layer_errors; do
  rows=$(q "SELECT count(*) FROM main.$table")
  bad=$(q "SELECT (SELECT count(*) FROM (SELECT * FROM main.$table EXCEPT SELECT * FROM r.$table))
                + (SELECT count(*) FROM (SELECT * FROM r.$table EXCEPT SELECT * FROM main.$table))")
  if [[ "$bad" != 0 ]]; then
    q "SELECT 'merged', * FROM (SELECT * FROM main.$table EXCEPT SELECT * FROM r.$table) LIMIT 5;
       SELECT 'unsharded', * FROM (SELECT * FROM r.$table EXCEPT SELECT * FROM main.$table) LIMIT 5" >&2
    die "$table: $bad row(s) differ between the merged and the unsharded store"
  fi
  say "$table: $rows rows, identical"
done
(( $(q "SELECT count(*) FROM main.metrics") == n_cells )) || die "metrics: want $n_cells rows"

# ---- resubmitting one task runs the same shard (and skips its finished cells) ----
again=$(sbatch --parsable --array=1 --cpus-per-task=$cpt --output="$tmp/out/again-%A_%a.out" \
        "$repo/scripts/slurm/sweep-array.sh" "$exp" $n_shards "$tmp/shards/s")
again=${again%%;*}
wait_for 300 "resubmitted task $again" jobs_done "$again"
check_completed "$again"
grep -q "shard 1/$n_shards" "$tmp"/out/again-*.out || die "resubmitted task 1 did not run shard 1/$n_shards"
say "resubmitted task 1 ran shard 1/$n_shards"
say "PASS: $n_cells cells, $n_shards shards merged == unsharded"
echo "slurm-test: 1 passed, 0 failed"
