#!/usr/bin/env bash
# pipeline.sh - submit the whole Slurm pipeline as dependent jobs: prepare -> train -> evaluate.
# Each job starts only when the previous one succeeded (--dependency=afterok); train requeues
# itself on time limits / preemption (exit 75), so the chain waits for it. Prints the job ids.
#
# Usage:  INPUT=ratings.csv DATA=/path/store MODEL=/path/model [CONFIG=cfg.ini] jobs/pipeline.sh [SBATCH_ARGS...]
#
# Environment (passed on to the jobs with --export=ALL):
#   INCREMF  the incremf binary (default: `incremf` on PATH)
#   INPUT    the rating file to prepare (required unless SKIP_PREPARE=1)
#   DATA     the data store (required)
#   MODEL    the model directory (required)
#   CONFIG   an INI configuration for every step (optional)
#   TEST     a test file for evaluate (optional; default: the store's standing holdout)
#   SKIP_PREPARE=1  the store exists already: submit train -> evaluate only
#   JOBS_DIR directory holding the *.sbatch scripts (default: this script's directory)
#   SBATCH   the sbatch command (default: sbatch)
#   PREPARE_ARGS, TRAIN_ARGS, EVALUATE_ARGS  extra sbatch options per step (e.g. TRAIN_ARGS="--nodes 4 --time 4:00:00")
# Arguments: SBATCH_ARGS are given to every sbatch (e.g. --account=X --partition=Y).
set -euo pipefail

JOBS_DIR="${JOBS_DIR:-$(cd "$(dirname "$0")" && pwd)}"
SBATCH="${SBATCH:-sbatch}"
: "${DATA:?set DATA to the data store}"
: "${MODEL:?set MODEL to the model directory}"
if [ "${SKIP_PREPARE:-0}" != 1 ]; then : "${INPUT:?set INPUT to the rating file (or SKIP_PREPARE=1)}"; fi
export INCREMF="${INCREMF:-incremf}" DATA MODEL
export INPUT="${INPUT:-}" CONFIG="${CONFIG:-}" TEST="${TEST:-}"

read -r -a prep_extra <<< "${PREPARE_ARGS:-}"
read -r -a train_extra <<< "${TRAIN_ARGS:-}"
read -r -a eval_extra <<< "${EVALUATE_ARGS:-}"

dep=()
if [ "${SKIP_PREPARE:-0}" != 1 ]; then
  prep=$("$SBATCH" --parsable --export=ALL "$@" "${prep_extra[@]}" "$JOBS_DIR/prepare.sbatch")
  prep="${prep%%;*}"   # --parsable prints "id" or "id;cluster"
  echo "prepare:  $prep"
  dep=(--dependency="afterok:$prep")
fi
train=$("$SBATCH" --parsable --export=ALL "${dep[@]}" "$@" "${train_extra[@]}" "$JOBS_DIR/train.sbatch")
train="${train%%;*}"
echo "train:    $train"
eval_id=$("$SBATCH" --parsable --export=ALL --dependency="afterok:$train" "$@" "${eval_extra[@]}" "$JOBS_DIR/evaluate.sbatch")
eval_id="${eval_id%%;*}"
echo "evaluate: $eval_id"
