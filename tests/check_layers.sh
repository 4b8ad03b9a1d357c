#!/usr/bin/env bash
# check_layers.sh - docs/DESIGN.md's boundaries as a CI check (grep-based, well under a second):
#  1. HDF5 calls (H5xxx( ) and <hdf5.h> only in the I/O layer: the files of H5_LAYER below;
#  2. allgathers (MPI_Allgather( / MPI_Allgatherv( ) only in exchange.c, where the collectives
#     on factor rows live, and in the files of GATHER_OTHER, whose gathers are not of factor
#     rows (each with its reason), and, for now, GATHER_TEMPORARY.
# Comment lines are not code and are skipped. Usage: check_layers.sh [SOURCE_ROOT]; without
# --no-self-test it then runs itself on a copy of src/ with one planted violation of each kind
# and fails unless both are caught (so the check cannot silently pass everything).
set -uo pipefail
root="${1:-$(cd "$(dirname "$0")/.." && pwd)}"
self_test=1
[ "${2:-}" = "--no-self-test" ] && self_test=0

# The HDF5 I/O layer (file name patterns under src/; DESIGN.md, "The data path"):
H5_LAYER=(
  'store.c' 'store_*.c'           # the rating store: batch files, indexes, manifest's HDF5 side
  'h5io.c'                        # shared HDF5 plumbing: property lists, attributes, ranged 1-D I/O
  'checkpoint.c' 'checkpoint_*.c' # model versions and run checkpoints
  'fsio.c'                        # the HDF5 error stack as one message (imf_h5_reason), quieting it
  'recout.c'                      # `recommend --all --out FILE.h5`, the results file
)
# Allgathers that are not collectives on factor rows (they stay where they are):
GATHER_OTHER=(
  'exchange.c'       # the home of the collectives on factor rows
  'ease.c'           # EASE's 1 x P / 2-D ScaLAPACK layout: each rank's grid position, X's row ranges
  'ease_score.c'     # EASE scoring: each rank's top-K candidates (items and scores, not factors)
  'ease_lowrank.c'   # the changed entries of X for a low-rank update (ratings, not factors)
  'store.c' 'store_*.c' # batch row order and per-rank index offsets
  'checkpoint_ease.c' # the EASE X's per-rank row ranges (where each rank's offsets start)
  'checkpoint_sums.c' # each rank's item range of the per-item sums (where its rows start)
  'synth.c'          # per-rank byte counts of the generated file
  'layout.c'         # each rank's node (its lowest rank), once per layout
  'judge.c'          # the new batches' held-out ratings and per-user scores (not factors)
  'checkpoint.c'     # two row counts per rank (the row sharing itself is exchange.c's)
  'modelblock.c'     # each rank's blocks of a block model and its shape (its rows move through exchange.c)
)
# TEMPORARY: allgathers of factor rows still hand-rolled outside exchange.c (issue 23, item 3:
# they move into exchange.c). The integrator empties this list when that lands; a file that keeps
# a gather of something else moves to GATHER_OTHER with its reason.
GATHER_TEMPORARY=(
)

matches() { # matches FILE PATTERN... : the base name matches one of the patterns
  local f="$1" p; shift
  for p in "$@"; do
    # shellcheck disable=SC2254
    case "$f" in $p) return 0 ;; esac
  done
  return 1
}
code_hits() { # code_hits PATTERN FILE... : "file:line:text" of matching code lines (comments left out)
  grep -nHE "$1" "${@:2}" 2>/dev/null | grep -vE '^[^:]+:[0-9]+:[[:space:]]*(/\*|\*|//)'
}

check_tree() { # check_tree DIR : prints each violation; returns the number of files in violation
  local dir="$1" files=() f line base last="" bad=0
  for f in "$dir"/src/*.[ch] "$dir"/src/cli/*.[ch]; do [ -f "$f" ] && files+=("$f"); done
  while IFS= read -r line; do
    f=${line%%:*}; base=${f##*/}
    matches "$base" "${H5_LAYER[@]}" "${H5_LAYER[@]/%.c/.h}" && continue
    [ "$f" = "$last" ] || { echo "${f#"$dir"/}: HDF5 outside the I/O layer (move it into store*/h5io/checkpoint*/fsio/recout, or name the file in H5_LAYER with a reason):"; bad=$((bad + 1)); last=$f; }
    echo "  ${line#*:}"
  done < <(code_hits '(\bH5[A-Z][A-Za-z0-9_]*\(|#[[:space:]]*include[[:space:]]*<hdf5\.h>)' "${files[@]}")
  last=""
  while IFS= read -r line; do
    f=${line%%:*}; base=${f##*/}
    matches "$base" "${GATHER_OTHER[@]}" "${GATHER_TEMPORARY[@]}" && continue
    [ "$f" = "$last" ] || { echo "${f#"$dir"/}: MPI_Allgather outside exchange.c (collectives on factor rows belong there; a gather of something else: GATHER_OTHER with a reason):"; bad=$((bad + 1)); last=$f; }
    echo "  ${line#*:}"
  done < <(code_hits 'MPI_Allgatherv?\(' "${files[@]}")
  return $((bad > 100 ? 100 : bad))
}

check_tree "$root"; nbad=$?
for t in "${GATHER_TEMPORARY[@]}"; do # tell the integrator when a TEMPORARY entry is done
  [ -f "$root/src/$t" ] && [ -z "$(code_hits 'MPI_Allgatherv?\(' "$root/src/$t")" ] &&
    echo "note: src/$t has no allgather any more: remove it from GATHER_TEMPORARY"
done
if [ $self_test = 1 ]; then
  tmp=$(mktemp -d /tmp/imf-check-layers.XXXXXX)
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/src/cli"
  printf 'static void f(void) { hid_t x = H5Fopen("a", 0, 0); }\n' > "$tmp/src/recommend.c"
  printf 'static void g(void) { MPI_Allgather(a, 1, MPI_INT, b, 1, MPI_INT, c); }\n' > "$tmp/src/train.c"
  printf '/* H5Fopen( and MPI_Allgather( in a comment */\n' > "$tmp/src/cli/cmd_x.c"
  printf 'static void h(void) { H5Fclose(f); MPI_Allgather(a, 1, MPI_INT, b, 1, MPI_INT, c); }\n' > "$tmp/src/store_x.c"
  out=$(check_tree "$tmp"); n=$?
  if [ $n -ne 2 ] || ! grep -q '^src/recommend.c: HDF5' <<< "$out" || ! grep -q '^src/train.c: MPI_Allgather' <<< "$out"; then
    echo "FAIL self-test: planted violations in recommend.c (H5Fopen) and train.c (MPI_Allgather) should be the 2 found, got $n:"
    echo "$out"
    exit 1
  fi
  echo "self-test: the planted violations were caught (and the comment and the store_x.c lines were not)"
fi
if [ $nbad -ne 0 ]; then
  echo "check_layers: $nbad violation(s) of docs/DESIGN.md's boundaries"
  exit 1
fi
echo "check_layers: HDF5 calls only in the I/O layer, allgathers only in exchange.c and the listed files"
