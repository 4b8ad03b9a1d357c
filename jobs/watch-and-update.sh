#!/usr/bin/env bash
# watch-and-update.sh - land new rating files: watch a landing directory and, for each new file
# (oldest first), append it to the store and update the model.
#
# Usage:  DATA=/path/store MODEL=/path/model jobs/watch-and-update.sh [--once] LANDING_DIR
#   --once   process what is there and exit (for cron); without it, loop forever, sleeping SLEEP s
#
# Environment:
#   INCREMF   the incremf binary (default: `incremf` on PATH)
#   DATA      the data store (required; must exist: `incremf prepare` it first)
#   MODEL     the model directory (required; must hold a trained model)
#   CONFIG    an INI configuration (optional)
#   STRATEGY  update strategy (default: auto)
#   SLEEP     seconds between scans in loop mode (default: 60)
#   MIN_AGE   seconds a file must be unmodified before it is taken (default: 10; lets writers finish)
#   PATTERN   glob of files to take (default: *; dot-files and *.part / *.tmp are always ignored)
#   NP        MPI ranks for each command (default: 1 = no launcher); LAUNCH overrides the launcher
#   LAUNCH    command prefix for each incremf call (default: none when NP=1, else "mpirun -q -n $NP"
#             with the shared-memory transport unless OMPI_MCA_pml/btl are set;
#             e.g. LAUNCH="srun --mpi=pmix"). As root, OMPI_ALLOW_RUN_AS_ROOT(_CONFIRM)=1 are set.
#   OPENBLAS_NUM_THREADS  default 1
#   SUBMIT=1  submit `sbatch jobs/update.sbatch` instead of running update here (SBATCH: the
#             sbatch command; UPDATE_SBATCH_ARGS: extra sbatch options)
#
# Per file: `incremf append` (exit 3 "already in the store" counts as done: a rerun after a crash
# between append and the move is safe), then `incremf update` (which folds every batch the model
# has not seen, so an update missed by a crash is caught up by the next one). The file moves to
# LANDING/done/ when both succeeded, else to LANDING/failed/ with its log (FILE.log). Store locked
# at append (exit 4): the file stays in place and is retried on the next scan; model locked at
# update: the file counts as done (its batch is in the store; the next update folds it in).
# One watcher per landing directory (flock on LANDING/.watch.lock; a second one exits 0).
# A crash at any point loses nothing:
# files are moved only after their work succeeded, and the store refuses a file it already holds.
# Exit code (--once): 0 when every file succeeded, 1 when any failed.
set -euo pipefail

once=0; landing=""
for a in "$@"; do
  case "$a" in
    --once) once=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    -*) echo "watch-and-update: unknown option $a" >&2; exit 2 ;;
    *) [ -z "$landing" ] || { echo "watch-and-update: one landing directory only" >&2; exit 2; }; landing="$a" ;;
  esac
done
[ -n "$landing" ] || { echo "usage: DATA=STORE MODEL=DIR $0 [--once] LANDING_DIR" >&2; exit 2; }
[ -d "$landing" ] || { echo "watch-and-update: $landing is not a directory" >&2; exit 2; }
INCREMF="${INCREMF:-incremf}"
: "${DATA:?set DATA to the data store}"
: "${MODEL:?set MODEL to the model directory}"
CONFIG="${CONFIG:-}"
STRATEGY="${STRATEGY:-auto}"
SLEEP="${SLEEP:-60}"
MIN_AGE="${MIN_AGE:-10}"
PATTERN="${PATTERN:-*}"
NP="${NP:-1}"
SUBMIT="${SUBMIT:-0}"
SBATCH="${SBATCH:-sbatch}"
JOBS_DIR="$(cd "$(dirname "$0")" && pwd)"
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
if [ -z "${LAUNCH+x}" ]; then
  if [ "$NP" -gt 1 ]; then
    # the default launcher runs on this machine: -q keeps an expected refusal (exit 3, a file
    # already in the store) to incremf's one line, and Open MPI's shared-memory transport starts
    # fastest (README, "On a workstation"; set OMPI_MCA_pml or OMPI_MCA_btl to choose another)
    LAUNCH="mpirun -q -n $NP"
    if [ -z "${OMPI_MCA_pml:-}${OMPI_MCA_btl:-}" ]; then export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader; fi
  else
    LAUNCH=""
  fi
fi
read -r -a launch <<< "$LAUNCH"
cfg=(); [ -n "$CONFIG" ] && cfg=(--config "$CONFIG")
mkdir -p "$landing/done" "$landing/failed"
exec 9>>"$landing/.watch.lock"
if ! flock -n 9; then echo "watch-and-update: another watcher is processing $landing; exiting"; exit 0; fi

log() { printf '%s watch-and-update: %s\n' "$(date -u +%FT%TZ)" "$*"; }

# Move without clobbering an earlier file of the same name.
move_to() {
  local f="$1" dir="$2" base dest
  base="$(basename "$f")"; dest="$dir/$base"
  [ -e "$dest" ] && dest="$dir/$base.$(date -u +%Y%m%dT%H%M%S).$$"
  mv -- "$f" "$dest"
  printf '%s' "$dest"
}

# 0 done, 1 failed, 2 locked (retry later)
process() {
  local f="$1" logf rc
  logf="$landing/.$(basename "$f").log"
  : > "$logf"
  log "append $f"
  set +e; "${launch[@]}" "$INCREMF" append --data "$DATA" --input "$f" "${cfg[@]}" </dev/null >>"$logf" 2>&1; rc=$?; set -e
  case "$rc" in
    0) ;;
    3) if grep -qi "already" "$logf"; then log "$f is already in the store: treated as appended"
       else log "append of $f failed: bad input (exit 3)"; return 1; fi ;;
    4) log "store $DATA is locked (exit 4): $f stays for the next scan"; return 2 ;;
    *) log "append of $f failed (exit $rc)"; return 1 ;;
  esac
  if [ "$SUBMIT" = 1 ]; then
    read -r -a sb_extra <<< "${UPDATE_SBATCH_ARGS:-}"
    set +e; jid=$(DATA="$DATA" MODEL="$MODEL" CONFIG="$CONFIG" STRATEGY="$STRATEGY" INCREMF="$INCREMF" INPUT="" \
      "$SBATCH" --parsable --export=ALL "${sb_extra[@]}" "$JOBS_DIR/update.sbatch" </dev/null 2>>"$logf"); rc=$?; set -e
    [ "$rc" -eq 0 ] || { log "sbatch failed (exit $rc)"; return 1; }
    log "submitted update job ${jid%%;*} for $f"
  else
    log "update $MODEL (strategy $STRATEGY)"
    set +e; "${launch[@]}" "$INCREMF" update --data "$DATA" --model "$MODEL" --strategy "$STRATEGY" "${cfg[@]}" </dev/null >>"$logf" 2>&1; rc=$?; set -e
    case "$rc" in
      0) ;;
      4) log "model $MODEL is locked (exit 4); the batch is appended and the next update will fold it in"; ;;
      *) log "update after $f failed (exit $rc)"; return 1 ;;
    esac
  fi
  return 0
}

scan() {
  local any_failed=0 f dest rc now mtime
  now=$(date +%s)
  # oldest first (modification time), regular files only, no dot-files or partial uploads
  local files=()
  # the list is read in full first: an MPI launcher in the loop must not eat its stdin
  mapfile -d '' -t files < <(find "$landing" -maxdepth 1 -type f -name "$PATTERN" -printf '%T@ %p\0' | sort -z -n | sed -z 's/^[^ ]* //')
  for f in "${files[@]}"; do
    case "$(basename "$f")" in .*|*.part|*.tmp|*.log) continue ;; esac
    mtime=$(stat -c %Y -- "$f")
    [ $((now - mtime)) -ge "$MIN_AGE" ] || continue
    rc=0; process "$f" || rc=$?
    case "$rc" in
      0) dest=$(move_to "$f" "$landing/done"); mv -- "$landing/.$(basename "$f").log" "$dest.log"; log "done: $dest" ;;
      2) rm -f -- "$landing/.$(basename "$f").log" ;;
      *) dest=$(move_to "$f" "$landing/failed"); mv -- "$landing/.$(basename "$f").log" "$dest.log"
         log "FAILED: $dest (log: $dest.log)"; any_failed=1 ;;
    esac
  done
  return "$any_failed"
}

if [ "$once" = 1 ]; then scan; exit $?; fi
while :; do scan || true; sleep "$SLEEP"; done
