#!/usr/bin/env bash
# e2e_slurm.sh - the real jobs/ scripts on a live, private single-node Slurm (tests/slurmlib.sh
# starts munged, slurmctld and slurmd by hand on 127.0.0.1 and stops them by pid at the end):
#   1. jobs/pipeline.sh submits prepare -> train -> evaluate with --dependency=afterok; all three
#      complete and evaluate prints the holdout RMSE;
#   2. jobs/train.sbatch receives the pre-timeout signal (scancel --signal=USR1 --batch) mid-run,
#      checkpoints, exits 75, requeues itself, resumes with --resume and ends with factors bitwise
#      identical to an uninterrupted run of the same job;
#   3. two jobs/update.sbatch submitted at once: one updates (a new model version), the other
#      refuses with exit 4 (locked); the store and the model directory load afterwards.
# MPI runs through `srun --mpi=pmix`, 2 tasks per job, oversubscribing the cores (-O).
# Skipped (exit 77) with the reason where Slurm cannot start here.
set -uo pipefail
bin="${IMF_BIN:?}"; mpiexec="${IMF_MPIEXEC:-mpirun}"
here="$(cd "$(dirname "$0")" && pwd)"
jobs="$(cd "$here/../jobs" && pwd)"
PY=/usr/bin/python3
tmp=$(mktemp -d /tmp/imf-e2e-slurm.XXXXXX)
. "$here/e2elib.sh"
. "$here/slurmlib.sh"
cleanup() { slurm_down; [ -n "${KEEP:-}" ] || rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 1' INT TERM

if ! slurm_up "$tmp/slurm"; then
  echo "SKIP: no live Slurm here: $slurm_why"
  exit 77
fi
echo "Slurm up: $(sinfo -h -o '%P %D %t %c cpus' | head -1), SLURM_CONF=$SLURM_CONF"

show_job() { echo "--- job $1: $(slurm_state "$1")"; cat "$tmp"/*-"$1".out 2>/dev/null | tail -20; }

export INCREMF="$bin" OPENBLAS_NUM_THREADS=1
cd "$tmp"
"$bin" synth --out r.csv --users 600 --items 400 --ratings 60000 --seed 11 --quiet
total=$(wc -l < r.csv)
head -n $((total * 8 / 10)) r.csv > base.csv
{ head -n 1 r.csv; tail -n +$((total * 8 / 10 + 1)) r.csv; } > new.csv
sb=(--ntasks=2 -O --chdir="$tmp")
# a set large enough that training takes seconds, so that the signal lands mid-run
"$bin" synth --out big.csv --users 3000 --items 2000 --ratings 400000 --seed 12 --quiet
total=$(wc -l < big.csv)
head -n $((total * 8 / 10)) big.csv > bbase.csv
{ head -n 1 big.csv; tail -n +$((total * 8 / 10 + 1)) big.csv; } > bnew.csv
"$bin" prepare --input bbase.csv --data bst --quiet

# 1. pipeline.sh: prepare -> train -> evaluate as dependent jobs
INPUT=base.csv DATA="$tmp/st" MODEL="$tmp/m" TRAIN_ARGS="--time=10" \
  "$jobs/pipeline.sh" "${sb[@]}" > pipeline.log 2>&1; rc=$?
check "pipeline.sh: exit 0" test $rc -eq 0
cat pipeline.log
prep=$(sed -n 's/^prepare: *//p' pipeline.log); train=$(sed -n 's/^train: *//p' pipeline.log)
evalj=$(sed -n 's/^evaluate: *//p' pipeline.log)
check "pipeline.sh printed three job ids" test -n "$prep" -a -n "$train" -a -n "$evalj"
check "train depends on prepare (afterok)" bash -c "scontrol show job $train | grep -q 'Dependency=afterok:$prep'"
check "evaluate depends on train (afterok)" bash -c "scontrol show job $evalj | grep -q 'Dependency=afterok:$train'"
slurm_wait_job "$evalj" 180; rc=$?
check "pipeline: evaluate job completed" test $rc -eq 0
check "pipeline: prepare job completed" test "$(slurm_state "$prep")" = COMPLETED
check "pipeline: train job completed" test "$(slurm_state "$train")" = COMPLETED
check "pipeline: the store was prepared" test -f st/MANIFEST
check "pipeline: model version 1 is current" test "$(cat m/CURRENT 2>/dev/null)" = v000001.h5
check "pipeline: evaluate printed the holdout RMSE" grep -q 'rmse=' "incremf-evaluate-$evalj.out"
check "pipeline: train ran on 2 ranks under srun" grep -q 'on 2 ranks' "incremf-train-$train.out"
[ $rc -eq 0 ] || { show_job "$prep"; show_job "$train"; show_job "$evalj"; }

# 2. the pre-timeout signal: checkpoint, exit 75, requeue, resume, identical factors
long="--set model.k=32 --set model.iterations=30 --set model.checkpoint_every=0 --set model.tol=0"
ref=$(DATA="$tmp/bst" MODEL="$tmp/full" sbatch --parsable "${sb[@]}" "$jobs/train.sbatch" $long)
slurm_wait_job "$ref" 180; rc=$?
check "uninterrupted train job completed" test $rc -eq 0
[ $rc -eq 0 ] || show_job "$ref"
sig=$(DATA="$tmp/bst" MODEL="$tmp/sig" sbatch --parsable "${sb[@]}" "$jobs/train.sbatch" $long)
# wait until the ranks are training (sweep lines in the run log), then send what Slurm sends
# --signal=B:USR1@120 before the time limit: SIGUSR1 to the batch shell only.
for i in $(seq 400); do
  grep -q 'sweep' "incremf-train-$sig.out" 2>/dev/null && break; sleep 0.25
done
check "signal: the train job is running sweeps" grep -q 'sweep' "incremf-train-$sig.out"
scancel --signal=USR1 --batch "$sig"
# the requeued job runs again (restart count 1) and completes
for i in $(seq 720); do
  restarts=$(scontrol show job "$sig" 2>/dev/null | sed -n 's/.*Restarts=\([0-9]*\).*/\1/p')
  st=$(slurm_state "$sig")
  case "$st" in COMPLETED|FAILED|CANCELLED|TIMEOUT) break ;; esac
  # Slurm holds a requeued batch job back for about two minutes (its BeginTime) before it is
  # eligible again; a test need not wait for that, but it must wait out the second of the
  # requeue: slurmd revoked the old run's credential at that time, and a credential issued in
  # the same second counts as revoked (ctime <= revoked), so the relaunch fails and the job ends
  # FAILED without running (seen once in CI under the sanitizer build's load).
  if [ "$st" = PENDING ] && [ "${restarts:-0}" -ge 1 ] && [ -z "${released:-}" ]; then
    scontrol update JobId="$sig" StartTime=now+2 >/dev/null 2>&1 && released=1
  fi
  sleep 0.25
done
out="incremf-train-$sig.out"
check "signal: the batch shell forwarded SIGUSR1" grep -q 'got SIGUSR1' "$out"
check "signal: the ranks checkpointed and the job requeued itself (exit 75)" grep -q 'requeueing job' "$out"
check "signal: the job was requeued once (Restarts=1)" test "${restarts:-0}" -ge 1
check "signal: the restarted job resumed from the checkpoint" grep -q 'restart 1' "$out"
check "signal: the requeued job completed" test "$(slurm_state "$sig")" = COMPLETED
check "signal: factors bitwise identical to the uninterrupted run" test -n "$(fact full)" -a "$(fact sig)" = "$(fact full)"
[ "$(slurm_state "$sig")" = COMPLETED ] || { show_job "$sig"; grep -h "JobId=$sig\b\|job $sig\b\|StepId=$sig\." "$tmp"/slurm/log/*.log | tail -30; }

# 3. two updates at once: one updates, the other refuses (locked); nothing corrupted.
# Both are held, then released together so they start in the same scheduling pass; retrain makes
# the winner hold the lock long enough for the loser to meet it.
"$bin" append --input bnew.csv --data bst --quiet
upd=(--set model.iterations=30 --set model.k=32 --set model.tol=0)
u1=$(DATA="$tmp/bst" MODEL="$tmp/full" STRATEGY=retrain sbatch --parsable --hold "${sb[@]}" "$jobs/update.sbatch" "${upd[@]}")
u2=$(DATA="$tmp/bst" MODEL="$tmp/full" STRATEGY=retrain sbatch --parsable --hold "${sb[@]}" "$jobs/update.sbatch" "${upd[@]}")
scontrol release "$u1,$u2"
slurm_wait_job "$u1" 180; r1=$?
slurm_wait_job "$u2" 180; r2=$?
check "two updates: exactly one job succeeded" test $((r1 + r2)) -eq 1
loser=$u2; [ $r1 -ne 0 ] && loser=$u1
check "two updates: the other refused, locked (exit 4)" bash -c \
  "scontrol show job $loser | grep -q 'ExitCode=4:0' && grep -q LOCKED incremf-update-$loser.out"
check "two updates: one new model version is current" test "$(cat full/CURRENT 2>/dev/null)" = v000002.h5
check "two updates: the model directory loads (status)" "$bin" status --model full --quiet
check "two updates: the store loads (inspect)" "$bin" inspect bst --quiet
check "two updates: no lock left behind" test ! -e full/LOCK -a ! -e bst/LOCK
[ $((r1 + r2)) -eq 1 ] || { show_job "$u1"; show_job "$u2"; }

echo "e2e_slurm: $pass passed, $fail failed"
[ $fail -eq 0 ]
