#!/usr/bin/env bash
# e2e_jobs.sh - the job scripts in jobs/: run-local.sh runs prepare -> train -> evaluate -> status
# on a tiny synthetic set; watch-and-update.sh --once lands a new file (appended once, a new model
# version), treats a repeated file as done, and moves a bad one to failed/ with its log; every
# *.sbatch and *.sh parses (bash -n) and documents its variables. No live Slurm here.
set -uo pipefail
bin="${IMF_BIN:?}"; mpiexec="${IMF_MPIEXEC:-mpirun}"
jobs="$(cd "$(dirname "$0")/../jobs" && pwd)"
tmp=$(mktemp -d /tmp/imf-e2e-jobs.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT
. "$(dirname "$0")/e2elib.sh"
export INCREMF="$bin" MPIRUN="$mpiexec" OPENBLAS_NUM_THREADS=1
cd "$tmp"

for f in "$jobs"/*.sbatch "$jobs"/*.sh; do
  check "$(basename "$f") parses (bash -n)" bash -n "$f"
  check "$(basename "$f") uses set -euo pipefail" grep -q '^set -euo pipefail' "$f"
done
for f in "$jobs"/*.sbatch; do
  check "$(basename "$f") documents INCREMF" grep -q '^#   INCREMF' "$f"
  check "$(basename "$f") has no hard-coded /work or /home path" bash -c "! grep -qE '/(work|home)/' '$f'"
done
check "train.sbatch asks for SIGUSR1 120 s before the limit" grep -q '^#SBATCH --signal=B:USR1@120' "$jobs/train.sbatch"
check "train.sbatch requeues on exit 75" grep -q 'scontrol requeue' "$jobs/train.sbatch"

"$bin" synth --out r.csv --users 200 --items 120 --ratings 8000 --seed 4 --quiet
total=$(wc -l < r.csv)
head -n $((total * 7 / 10)) r.csv > base.csv
{ head -n 1 r.csv; tail -n +$((total * 7 / 10 + 1)) r.csv; } > new.csv

# 1. run-local.sh, 2 ranks
NP=2 INPUT=base.csv DATA=st MODEL=m "$jobs/run-local.sh" --set model.k=4 --set model.iterations=4 > local.log 2>&1; rc=$?
check "run-local.sh: exit 0" test $rc -eq 0
check "run-local.sh: store prepared" test -f st/MANIFEST
check "run-local.sh: model version 1 is current" test "$(cat m/CURRENT 2>/dev/null)" = v000001.h5
check "run-local.sh: evaluate printed RMSE" grep -q 'rmse=' local.log
check "run-local.sh: status printed the lineage" grep -q '^current: 1' local.log
[ $rc -eq 0 ] || cat local.log

# a missing variable is a clear error, not a run with an empty path
env -u DATA MODEL=m "$jobs/run-local.sh" > err.log 2>&1; rc=$?
check "run-local.sh without DATA: fails and names it" bash -c "[ $rc -ne 0 ] && grep -q DATA err.log"

# 2. watch-and-update.sh --once: new.csv, then a copy of it (same bytes), then an unreadable file
mkdir landing
cp new.csv landing/a-new.csv; touch -d '-30 sec' landing/a-new.csv
cp new.csv landing/b-repeat.csv; touch -d '-20 sec' landing/b-repeat.csv
printf '\x00\x01\x02 not ratings\n' > landing/c-bad.csv; touch -d '-10 sec' landing/c-bad.csv
echo partial > landing/d.csv.part
batches() { "$bin" inspect st --json --quiet | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["batches"])'; }
DATA=st MODEL=m MIN_AGE=0 NP=2 LAUNCH="$mpiexec --oversubscribe -n 2" "$jobs/watch-and-update.sh" --once landing > watch.log 2>&1; rc=$?
check "watch --once: exit 1 (one file failed)" test $rc -eq 1
check "watch: the new file moved to done/" test -f landing/done/a-new.csv -a ! -e landing/a-new.csv
check "watch: the repeated file treated as done" test -f landing/done/b-repeat.csv
check "watch: repeat recognised as already in the store" grep -q 'already in the store' watch.log
check "watch: the bad file moved to failed/ with its log" test -f landing/failed/c-bad.csv -a -s landing/failed/c-bad.csv.log
check "watch: a partial upload is left alone" test -f landing/d.csv.part
check "watch: the batch was appended once (2 batches)" test "$(batches)" = 2
check "watch: a new model version is current" test "$(cat m/CURRENT)" = v000002.h5
check "watch: oldest file first" bash -c "grep -n 'append' watch.log | head -1 | grep -q a-new.csv"
[ -f landing/done/a-new.csv ] || cat watch.log
# the default launcher (NP=2, no LAUNCH): mpirun -q, so a file already in the store is incremf's one
# line in the file's log, without Open MPI's abort notice
if command -v mpirun >/dev/null; then
  cp new.csv landing/e-repeat.csv; touch -d '-10 sec' landing/e-repeat.csv
  env -u LAUNCH OMPI_MCA_rmaps_base_oversubscribe=1 DATA=st MODEL=m MIN_AGE=0 NP=2 "$jobs/watch-and-update.sh" --once landing > watch2.log 2>&1; rc=$?
  check "watch, default launcher: exit 0, the repeat done, no mpirun notice in the log" \
    bash -c "[ $rc -eq 0 ] && test -f landing/done/e-repeat.csv && grep -q 'already in the store' watch2.log && grep -q 'already in the store' landing/done/e-repeat.csv.log && ! grep -q -i 'mpirun\|primary job' watch2.log landing/done/e-repeat.csv.log" \
    || cat watch2.log landing/done/e-repeat.csv.log
fi

# status --plot: a PNG of the lineage and the training curve; an odd output name is no problem
# (nothing reaches a shell); without gnuplot a clear error, exit 1
odd="$tmp/plot 'a;\$(touch INJECTED)\".png"
if command -v gnuplot >/dev/null; then
  mkdir -p plottmp
  TMPDIR="$tmp/plottmp" "$mpiexec" --oversubscribe -n 2 -x TMPDIR "$bin" status --model m --plot "$odd" > plot.log 2>&1; rc=$?
  check "status --plot: exit 0" test $rc -eq 0
  check "status --plot: wrote a PNG" bash -c 'head -c 8 "$1" | od -An -c | grep -q "P   N   G"' _ "$odd"
  check "status --plot: no shell ever saw the name" test ! -e INJECTED
  check "status --plot: its temporary directory is removed" test -z "$(ls -d plottmp/incremf-plot.* 2>/dev/null)"
  [ $rc -eq 0 ] || cat plot.log
else
  echo "note: gnuplot not installed; only the missing-gnuplot case is tested"
fi
IMF_GNUPLOT=no-such-gnuplot-here "$bin" status --model m --plot p.png > plot2.log 2>&1; rc=$?
check "status --plot without gnuplot: exit 1, says to install gnuplot-nox" bash -c "[ $rc -eq 1 ] && grep -q gnuplot-nox plot2.log && [ ! -e p.png ]"

# rerun (as after a crash): nothing left to do, nothing ingested twice
cp landing/done/a-new.csv landing/again.csv
DATA=st MODEL=m MIN_AGE=0 "$jobs/watch-and-update.sh" --once landing > watch2.log 2>&1; rc=$?
check "watch rerun with an already-ingested file: exit 0" test $rc -eq 0
check "watch rerun: still 2 batches" test "$(batches)" = 2
check "watch rerun: the file moved to done/" test -f landing/done/again.csv

# a second watcher on the same landing directory (cron overlap) stands aside
cp new.csv landing/overlap.csv
( exec 9>>landing/.watch.lock; flock 9
  DATA=st MODEL=m MIN_AGE=0 "$jobs/watch-and-update.sh" --once landing > watch-overlap.log 2>&1; echo $? > overlap.rc )
check "watch: a second watcher exits 0 without touching files" bash -c "[ \"\$(cat overlap.rc)\" = 0 ] && grep -q 'another watcher' watch-overlap.log && [ -f landing/overlap.csv ]"
rm -f landing/overlap.csv

# SUBMIT=1 with a fake sbatch: update.sbatch is submitted instead of run
printf '#!/bin/sh\necho "$@" >> %s/sbatch.args\necho 4242\n' "$tmp" > fake-sbatch; chmod +x fake-sbatch
"$bin" synth --out more.csv --users 50 --items 20 --ratings 300 --seed 9 --quiet
cp more.csv landing/more.csv
DATA=st MODEL=m MIN_AGE=0 SUBMIT=1 SBATCH="$tmp/fake-sbatch" "$jobs/watch-and-update.sh" --once landing > watch3.log 2>&1; rc=$?
check "watch SUBMIT=1: exit 0 and update.sbatch submitted" bash -c "[ $rc -eq 0 ] && grep -q update.sbatch sbatch.args && grep -q 'job 4242' watch3.log"
check "watch SUBMIT=1: appended (3 batches)" test "$(batches)" = 3

# train.sbatch outside Slurm, with stand-ins for srun (mpirun on 2 ranks) and scontrol: SIGUSR1
# to the batch shell is forwarded to the step, the ranks checkpoint and exit 75, the script
# requeues the job; the "requeued" run finishes the model from the checkpoint.
mkdir -p fakebin
printf '#!/bin/sh\n[ "${1#--mpi=}" != "$1" ] && shift\nexec %s --oversubscribe -n 2 "$@"\n' "$mpiexec" > fakebin/srun
printf '#!/bin/sh\necho "$@" >> %s/scontrol.args\n' "$tmp" > fakebin/scontrol
chmod +x fakebin/srun fakebin/scontrol
slow="--set model.type=bpmf --set model.k=8 --set model.iterations=400 --set model.burn_in=10 --set model.samples=4 --quiet"
( export PATH="$tmp/fakebin:$PATH" SLURM_JOB_ID=999 DATA=st MODEL=ms
  exec bash "$jobs/train.sbatch" $slow ) > sb1.log 2>&1 & sbpid=$!
for i in $(seq 300); do [ -s ms/train.jsonl ] && [ "$(wc -l < ms/train.jsonl)" -ge 3 ] && break; sleep 0.1; done
kill -USR1 $sbpid; wait $sbpid; rc=$?
if [ -e ms/CURRENT ]; then
  echo "note: the run finished before the signal landed; skipping the requeue case"
else
  check "train.sbatch + SIGUSR1: the batch script exits 0 after requeueing" test $rc -eq 0
  check "train.sbatch + SIGUSR1: scontrol requeue 999" grep -qx 'requeue 999' scontrol.args
  check "train.sbatch + SIGUSR1: a run checkpoint was written" test -f ms/run/checkpoint.h5
  ( export PATH="$tmp/fakebin:$PATH" SLURM_JOB_ID=999 SLURM_RESTART_COUNT=1 DATA=st MODEL=ms
    exec bash "$jobs/train.sbatch" $slow ) > sb2.log 2>&1; rc=$?
  check "train.sbatch requeued: --resume finishes the version" bash -c "[ $rc -eq 0 ] && [ -f ms/CURRENT ] && [ ! -e ms/run/checkpoint.h5 ]"
  [ $rc -eq 0 ] || { cat sb1.log sb2.log; }
fi

# the other sbatch scripts, run directly with the stand-in srun
sbrun() { ( export PATH="$tmp/fakebin:$PATH" SLURM_JOB_ID=998; exec bash "$@" ) ; }
INPUT=base.csv DATA=st3 sbrun "$jobs/prepare.sbatch" --quiet > sbp.log 2>&1; rc=$?
check "prepare.sbatch: creates the store" bash -c "[ $rc -eq 0 ] && [ -f st3/MANIFEST ]"
DATA=st3 GRID="k=2,4" OUT="$tmp/best.ini" FOLDS=2 sbrun "$jobs/tune.sbatch" --set model.iterations=2 --quiet > sbt.log 2>&1; rc=$?
check "tune.sbatch: writes the best configuration" bash -c "[ $rc -eq 0 ] && grep -q '^k *= *[24]' best.ini"
[ -f best.ini ] || cat sbt.log
DATA=st3 MODEL=m3 sbrun "$jobs/train.sbatch" --config "$tmp/best.ini" --quiet > sbtr.log 2>&1; rc=$?
check "train.sbatch with the tuned configuration: a version" bash -c "[ $rc -eq 0 ] && [ -f m3/CURRENT ]"
[ -f m3/CURRENT ] || { echo "train.sbatch exit $rc, its output:"; cat sbtr.log; }
DATA=st3 MODEL=m3 INPUT=new.csv sbrun "$jobs/update.sbatch" --quiet > sbu.log 2>&1; rc=$?
check "update.sbatch: appends and updates (version 2)" bash -c "[ $rc -eq 0 ] && [ \"\$(cat m3/CURRENT)\" = v000002.h5 ]"
DATA=st3 MODEL=m3 INPUT=new.csv sbrun "$jobs/update.sbatch" --quiet > sbu2.log 2>&1; rc=$?
check "update.sbatch: the same file again is exit 3, explained" bash -c "[ $rc -eq 3 ] && grep -q 'already be in the store' sbu2.log"
echo "otherhost.example 12345 1700000000" > m3/LOCK
DATA=st3 MODEL=m3 sbrun "$jobs/update.sbatch" --quiet > sbu3.log 2>&1; rc=$?
check "update.sbatch: a lock from another host is exit 4, reported as LOCKED" bash -c "[ $rc -eq 4 ] && grep -q 'LOCKED (exit 4)' sbu3.log"
rm -f m3/LOCK
DATA=st3 MODEL=m3 K=5 sbrun "$jobs/evaluate.sbatch" > sbe.log 2>&1; rc=$?
check "evaluate.sbatch: standing holdout metrics" bash -c "[ $rc -eq 0 ] && grep -q 'rmse=' sbe.log"

# pipeline.sh with a fake sbatch: three dependent jobs
: > sbatch.args
printf '#!/bin/sh\necho "$@" >> %s/sbatch.args\nn=$(wc -l < %s/sbatch.args)\necho "10$n;cl"\n' "$tmp" "$tmp" > fake-sbatch
INPUT=r.csv DATA=st2 MODEL=m2 SBATCH="$tmp/fake-sbatch" "$jobs/pipeline.sh" --account=x > pipe.log 2>&1; rc=$?
check "pipeline.sh: exit 0, three job ids" bash -c "[ $rc -eq 0 ] && grep -q '^prepare: *101$' pipe.log && grep -q '^train: *102$' pipe.log && grep -q '^evaluate: *103$' pipe.log"
check "pipeline.sh: train after prepare, evaluate after train" bash -c "sed -n 2p sbatch.args | grep -q 'afterok:101' && sed -n 3p sbatch.args | grep -q 'afterok:102'"
echo "e2e_jobs: $pass passed, $fail failed"
[ $fail -eq 0 ]
