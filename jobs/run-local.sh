#!/usr/bin/env bash
# run-local.sh - the whole pipeline on one workstation with mpirun: prepare -> train -> evaluate
# -> status. Resumable: rerunning it after a crash or Ctrl-C continues training from the run
# checkpoint (train --resume) and skips a store that is already prepared.
#
# Usage:  INPUT=ratings.csv DATA=store MODEL=model [CONFIG=cfg.ini] jobs/run-local.sh [TRAIN_ARGS...]
#
# Environment:
#   INCREMF  the incremf binary (default: `incremf` on PATH)
#   INPUT    the rating file to prepare (required unless DATA already holds a store)
#   DATA     the data store (required; prepared from INPUT when it does not exist yet)
#   MODEL    the model directory (required)
#   CONFIG   an INI configuration for every step (optional)
#   TEST     a test file for evaluate (optional; default: the store's standing holdout, which
#            needs holdout.fraction > 0 at prepare -- configs/movielens-100k.ini has 0: set TEST)
#   K        ranking cut-offs for evaluate (default: 10)
#   NP       MPI ranks (default: `nproc`)
#   MPIRUN   the MPI launcher (default: mpirun); MPIRUN_ARGS extra launcher options
#            (default: --oversubscribe -q; -q keeps an expected refusal to incremf's one line,
#            without Open MPI's notice that a process exited non-zero: README, "Exit codes")
#   OMPI_MCA_pml, OMPI_MCA_btl  Open MPI's transport; when neither is set: ob1 and self,vader
#            (shared memory, the fastest start on one machine); set either to choose another
#   OPENBLAS_NUM_THREADS  default 1 (one BLAS thread per rank)
#   OPENBLAS_CORETYPE     passed through; set it (SkylakeX, Haswell) when incremf warns that
#                         OpenBLAS picked older kernels than the CPU has (README)
# Arguments: TRAIN_ARGS are passed to `incremf train` (e.g. --set model.k=64).
# When run as root, OMPI_ALLOW_RUN_AS_ROOT(_CONFIRM)=1 are set for Open MPI.
# Exit code: that of the first step that failed (README: exit codes); 75 = training was stopped by
# a signal after a checkpoint: run this script again to continue.
set -euo pipefail

INCREMF="${INCREMF:-incremf}"
: "${DATA:?set DATA to the data store}"
: "${MODEL:?set MODEL to the model directory}"
INPUT="${INPUT:-}"
CONFIG="${CONFIG:-}"
TEST="${TEST:-}"
K="${K:-10}"
NP="${NP:-$(nproc)}"
MPIRUN="${MPIRUN:-mpirun}"
MPIRUN_ARGS="${MPIRUN_ARGS:---oversubscribe -q}"
if [ -z "${OMPI_MCA_pml:-}${OMPI_MCA_btl:-}" ]; then export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader; fi
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
read -r -a mpi_extra <<< "$MPIRUN_ARGS"
cfg=(); [ -n "$CONFIG" ] && cfg=(--config "$CONFIG")

step() { printf '\n== %s\n' "$*"; }
# SIGTERM/SIGINT to this script reach the step as SIGUSR1 through mpirun: Open MPI's mpirun
# forwards SIGUSR1 to the ranks (which stop at a safe point and exit 75, and mpirun returns 75),
# but answers its own SIGTERM/SIGINT by terminating the job and returning 1 (README: signals).
child=""
on_stop() { [ -n "$child" ] && kill -USR1 "$child" 2>/dev/null; true; }
trap on_stop TERM INT
run() {
  local rc=0
  "$MPIRUN" "${mpi_extra[@]}" -n "$NP" "$INCREMF" "$@" &
  child=$!
  # a trapped signal interrupts `wait` (status > 128): wait again for the step's own status
  while :; do
    rc=0; wait "$child" || rc=$?
    kill -0 "$child" 2>/dev/null || break
  done
  # reaped between the interrupted wait and the check: bash still holds its status
  if [ "$rc" -gt 128 ]; then local r2=0; wait "$child" 2>/dev/null || r2=$?; [ "$r2" -ne 127 ] && rc=$r2; fi
  child=""
  if [ "$rc" -ne 0 ]; then
    case "$rc" in
      4) echo "run-local: $1 refused: locked by another writer (exit 4)" >&2 ;;
      75) echo "run-local: $1 stopped after a run checkpoint (exit 75): run this script again to continue" >&2 ;;
      129|13[0-9]|14[0-9]|15[0-9]) # a rank killed by a signal (mpirun -q does not say so)
        echo "run-local: $1 failed with exit code $rc: a rank was killed by signal $((rc - 128))" \
             "($(kill -l $((rc - 128)) 2>/dev/null || echo '?'))" >&2 ;;
      *) echo "run-local: $1 failed with exit code $rc" >&2 ;;
    esac
    exit "$rc"
  fi
}

if [ -f "$DATA/MANIFEST" ]; then
  step "1. prepare: $DATA already holds a store, skipped"
else
  : "${INPUT:?set INPUT to the rating file to prepare}"
  step "1. prepare $DATA from $INPUT ($NP ranks)"
  run prepare --input "$INPUT" --data "$DATA" "${cfg[@]}"
fi
step "2. train $MODEL (--resume: continues an interrupted run)"
run train --data "$DATA" --model "$MODEL" --resume "${cfg[@]}" "$@"
step "3. evaluate"
if [ -n "$TEST" ]; then run evaluate --data "$DATA" --model "$MODEL" --test "$TEST" --k "$K" "${cfg[@]}"
else run evaluate --data "$DATA" --model "$MODEL" --protocol standing --k "$K" "${cfg[@]}"; fi
step "4. status"
run status --model "$MODEL" --data "$DATA"
