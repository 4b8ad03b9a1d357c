#!/usr/bin/env bash
# demo.sh - the built-in demo on 2 ranks, no download needed: synthesize a rating data set,
# prepare a store, train a model, land the rest as a new batch and update the model, evaluate,
# recommend, and show the model's lineage.
# Usage: jobs/demo.sh [BUILD_DIR] [WORK_DIR]      (defaults: build, a fresh temporary dir)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
build="$(cd "${1:-$here/build}" && pwd)"
work="${2:-$(mktemp -d /tmp/incremf-demo.XXXXXX)}"
bin="$build/incremf"
np="${IMF_DEMO_RANKS:-2}"
export OPENBLAS_NUM_THREADS=1
[ "$(id -u)" = 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# One machine: Open MPI's shared-memory transport starts fastest (README: "On a workstation").
# Set OMPI_MCA_pml or OMPI_MCA_btl yourself to choose another; then both are left as you set them.
if [ -z "${OMPI_MCA_pml:-}${OMPI_MCA_btl:-}" ]; then export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader; fi
# mpirun -q: an expected refusal (step 5) is incremf's one line, without mpirun's notice
# that a process exited non-zero; the exit code is kept
run() { mpirun -q --oversubscribe -n "$np" "$bin" "$@"; }
step() { printf '\n== %s\n' "$*"; }
cfg="$here/configs/demo.ini"
mkdir -p "$work"
cd "$work"

step "1. synthesize 120k ratings (planted low-rank model, drift, 1% corrupt lines)"
run synth --config "$cfg" --out ratings.csv
total=$(wc -l < ratings.csv)
head -n $((total * 8 / 10)) ratings.csv > initial.csv
{ head -n 1 ratings.csv; tail -n +$((total * 8 / 10 + 1)) ratings.csv; } > batch2.csv
echo "split into initial.csv ($(wc -l < initial.csv) lines) and batch2.csv ($(wc -l < batch2.csv) lines)"

step "2. prepare the data store from initial.csv (rejects go to rejects.tsv)"
run prepare --config "$cfg" --input initial.csv --data store --rejects rejects.tsv
echo "first rejects:"; sed -n 2,4p rejects.tsv

step "3. train an ALS model on it (2 ranks; checkpoints in model/)"
run train --config "$cfg" --data store --model model

step "4. land a new batch: update appends it, folds it in and promotes only if not worse"
run update --config "$cfg" --data store --model model --input batch2.csv --strategy auto

step "5. the same file again is refused (exit 3)"
set +e; run append --config "$cfg" --input batch2.csv --data store --quiet; rc=$?; set -e
echo "exit code $rc"

step "6. evaluate the current model on the store's standing holdout"
run evaluate --config "$cfg" --data store --model model --protocol standing --k 10

step "7. recommend: user 1's top 5, and the items most like item 1"
run recommend --data store --model model --user 1 --top 5 --fallback popular
run recommend --model model --similar 1 --top 5

step "8. status: the model's versions and lineage"
if command -v gnuplot >/dev/null; then
  run status --model model --data store --plot status.png
  echo "plot of the metric history: $work/status.png"
else
  run status --model model --data store
fi
echo; echo "demo finished; files in $work"
