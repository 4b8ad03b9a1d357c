#!/usr/bin/env bash
# gen_seeds.sh BUILD OUT - the binary seeds of the fuzz targets that read HDF5 files, made by
# running the sanitizer build of incremf (BUILD/incremf) on tests/data: stores (packed with
# BUILD/fuzz_pack into the archive format fuzz_store reads), model checkpoints of every model
# type (fuzz_checkpoint), and model directories with versions, CURRENT and a registry
# (fuzz_registry). Nothing here is committed: a run regenerates them in a few seconds.
# Writes OUT/{store,checkpoint,registry}/.
set -euo pipefail
BUILD=$(cd "$1" && pwd)
OUT=$2
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DATA=$ROOT/tests/data
BIN=$BUILD/incremf
PACK=$BUILD/fuzz_pack

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_ess_singleton_isolated=1
export OMPI_MCA_btl=self OMPI_MCA_opal_signal= OPENBLAS_NUM_THREADS=1
# The CLI is built with ASan + UBSan: a report here is a bug too, but MPI's own allocations
# are not ours to free, so leak detection is off for these runs.
export ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

W=$(mktemp -d "${TMPDIR:-/tmp}/imf-fuzz-seeds.XXXXXX")
trap 'rm -rf "$W"' EXIT
rm -rf "$OUT"
mkdir -p "$OUT/store" "$OUT/checkpoint" "$OUT/registry"

imf() { # run the CLI quietly; show its output only when it fails (75: stopped on purpose)
  local rc=0
  "$BIN" "$@" --quiet >"$W/log" 2>&1 || rc=$?
  if [ "$rc" != 0 ] && [ "$rc" != 75 ]; then
    echo "gen_seeds.sh: incremf $* failed (exit $rc):" >&2
    cat "$W/log" >&2
    exit 1
  fi
}
LAX="--set clean.max_reject_fraction=0.9"
SMALL="--set model.k=2 --set model.iterations=3"

# MANIFEST without its checksum line: packed as MANIFEST+sum, the harness appends a fresh one.
body() { head -n -1 "$1/MANIFEST" >"$W/body.$2"; echo "$W/body.$2"; }
batches() { # NAME=FILE arguments for every batch file of a store
  local d=$1 f
  for f in "$d"/batch-*.h5; do printf 'batch-%s=%s ' "${f##*/batch-}" "$f"; done
}

# ---- stores ----
imf prepare --input "$DATA/small.csv" --data "$W/s" $LAX
cp -r "$W/s" "$W/s1"
imf append --data "$W/s" --input "$DATA/small_header.csv" $LAX
# shellcheck disable=SC2046
"$PACK" "$OUT/store/two-batches.fz" MANIFEST="$W/s/MANIFEST" $(batches "$W/s")
# shellcheck disable=SC2046
"$PACK" "$OUT/store/two-batches-sum.fz" MANIFEST+sum="$(body "$W/s" s)" $(batches "$W/s")
# shellcheck disable=SC2046
"$PACK" "$OUT/store/one-batch-sum.fz" MANIFEST+sum="$(body "$W/s1" s1)" $(batches "$W/s1")
printf '%s 999999999 1\n' "$(hostname)" >"$W/lock-stale"
printf 'otherhost.example 4242 1700000000\n' >"$W/lock-other"
# shellcheck disable=SC2046
"$PACK" "$OUT/store/stale-lock.fz" MANIFEST="$W/s1/MANIFEST" LOCK="$W/lock-stale" $(batches "$W/s1")
# shellcheck disable=SC2046
"$PACK" "$OUT/store/other-host-lock.fz" MANIFEST="$W/s1/MANIFEST" LOCK="$W/lock-other" $(batches "$W/s1")
imf prepare --input "$DATA/small.dat" --data "$W/d" $LAX --set clean.duplicates=mean \
  --set clean.scale_min=1 --set clean.scale_max=5 --set holdout.fraction=0.3 --set clean.normalize=user
imf append --data "$W/d" --input "$DATA/small.ml100k" $LAX
# shellcheck disable=SC2046
"$PACK" "$OUT/store/mean-scale-holdout-sum.fz" MANIFEST+sum="$(body "$W/d" d)" $(batches "$W/d")

# ---- models: every type, a run checkpoint, updates and a rollback ----
imf train --data "$W/s" --model "$W/m" $SMALL --set model.validation_fraction=0.3
cp "$W/m/versions/v000001.h5" "$OUT/checkpoint/als.h5"
# promoted whatever the judge thinks of such tiny models (the rollback below needs a parent; with
# the 2026-12-07 defaults both challengers were rejected and the rollback had nothing to undo)
imf update --data "$W/s" --model "$W/m" --input "$DATA/small.tsv" $LAX --set update.tolerance=1e9
imf update --data "$W/s" --model "$W/m" --input "$DATA/small.ml100k" --strategy warm $LAX --set update.tolerance=1e9
cp "$W/m/versions/v000003.h5" "$OUT/checkpoint/als-updated.h5"
imf rollback --model "$W/m"
# the store now has 4 batches
# shellcheck disable=SC2046
"$PACK" "$OUT/store/four-batches-sum.fz" MANIFEST+sum="$(body "$W/s" s4)" $(batches "$W/s")
imf train --data "$W/d" --model "$W/mi" $SMALL --set model.type=ials --set model.solver=cg
cp "$W/mi/versions/v000001.h5" "$OUT/checkpoint/ials.h5"
imf train --data "$W/d" --model "$W/mb" --set model.k=2 --set model.type=bpmf --set model.iterations=4 \
  --set model.burn_in=1 --set model.samples=2
cp "$W/mb/versions/v000001.h5" "$OUT/checkpoint/bpmf.h5"
imf train --data "$W/d" --model "$W/me" --set model.type=ease --set model.ease_lambda=10
cp "$W/me/versions/v000001.h5" "$OUT/checkpoint/ease.h5"
IMF_STOP_AFTER_SWEEP=1 imf train --data "$W/s1" --model "$W/mr" $SMALL --set model.type=bpmf \
  --set model.burn_in=1 --set model.samples=2 --set model.checkpoint_every=1
if [ -f "$W/mr/run/checkpoint.h5" ]; then cp "$W/mr/run/checkpoint.h5" "$OUT/checkpoint/bpmf-run.h5"; fi
# a store and a version after `forget` (tombstone in the manifest, zeroed row)
cp -r "$W/d" "$W/df"
cp -r "$W/mb" "$W/mbf"
imf forget --data "$W/df" --model "$W/mbf" --user 1
cp "$W/mbf/versions/v000001.h5" "$OUT/checkpoint/bpmf-forgotten.h5"
# shellcheck disable=SC2046
"$PACK" "$OUT/store/forgotten-sum.fz" MANIFEST+sum="$(body "$W/df" df)" $(batches "$W/df")

# Structure-aware variants: attributes rewritten and objects removed through the HDF5 API, so
# HDF5's metadata checksums stay valid and the checks incremf makes on them get exercised.
EDIT=$BUILD/fuzz_ckpt_edit
C=$OUT/checkpoint
variant() { # NAME BASE EDIT...
  local name=$1 base=$2
  shift 2
  "$EDIT" "$C/$base.h5" "$C/edit-$name.h5" "$@" 2>/dev/null || { echo "gen_seeds.sh: edit $name failed" >&2; exit 1; }
}
NOIDS="ds:/ids/user_off=i64:0 ds:/ids/user_blob=txt: ds:/ids/item_off=i64:0 ds:/ids/item_blob=txt:"
# shellcheck disable=SC2086
{
  variant users-int32-max als nusers=i64:2147483647 $NOIDS
  variant users-100m als nusers=i64:100000000 $NOIDS
  variant items-too-few als nitems=i64:1 $NOIDS
  variant bpmf-kw-huge-noids bpmf kw=i64:8388608 nusers=i64:100000 $NOIDS
  variant ease-items-huge-noids ease nitems=i64:40000 k=i64:40000 kw=i64:40000 $NOIDS
  variant no-ids als $NOIDS
  variant ids-offsets-decreasing als ds:/ids/user_off=i64:0,5,3,3,3,3,3 ds:/ids/user_blob=txt:abcde
  variant history-long als ds:/history/iteration=i64:1,2,3,4,5,6,7,8,9,10,11,12
}
variant items-too-few-ids als nitems=i64:1
variant k-zero als k=i64:0
variant k-above-kw als k=i64:3
variant bpmf-kw-huge bpmf kw=i64:8388608 nusers=i64:100000
variant bpmf-kw-not-multiple bpmf kw=i64:5
variant ials-with-bias ials with_bias=i64:1
variant als-with-chain als has_chain=i64:1
variant type-unknown als type=str:xyz
variant type-bpmf als type=str:bpmf
variant foreign-format als format=str:other
variant newer-format als format_version=i64:2
variant format-version-zero als format_version=i64:0
variant no-format-version als -format_version
variant digest-zero als content_sha256=str:0000000000000000000000000000000000000000000000000000000000000000
variant no-config als -config
variant config-unknown-key als "config=str:[model]
k = 2
bogus = 1"
variant kind-long als kind=str:a-kind-longer-than-the-sixteen-bytes-of-the-field
variant no-history als rm:/history/iteration
variant no-user-ids als rm:/ids/user_off
variant no-q als rm:/factors/Q
variant no-user-bias als rm:/bias/user
variant bpmf-no-lam bpmf rm:/bpmf/Lam_u
variant ease-items-huge ease nitems=i64:40000 k=i64:40000 kw=i64:40000

# ---- model directories (the registry names the store: point it nowhere, so that `status`
# does not read a directory outside the scratch space) ----
reg() { sed 's#"store":"[^"]*"#"store":"/nonexistent/imf-fuzz-store"#g' "$1/registry.jsonl" >"$W/reg.$2"; echo "$W/reg.$2"; }
: >"$W/empty"
"$PACK" "$OUT/registry/three-versions.fz" CURRENT="$W/m/CURRENT" registry.jsonl="$(reg "$W/m" m)" \
  versions/v000001.h5="$W/m/versions/v000001.h5" versions/v000002.h5="$W/m/versions/v000002.h5" \
  versions/v000003.h5="$W/m/versions/v000003.h5"
"$PACK" "$OUT/registry/light.fz" CURRENT="$W/m/CURRENT" registry.jsonl="$(reg "$W/m" m2)" \
  versions/v000001.h5="$W/m/versions/v000001.h5" versions/v000002.h5="$W/empty" \
  versions/v000003.h5="$W/empty"
"$PACK" "$OUT/registry/stale-lock.fz" CURRENT="$W/m/CURRENT" registry.jsonl="$(reg "$W/m" m3)" \
  LOCK="$W/lock-stale" versions/v000001.h5="$W/m/versions/v000001.h5" versions/v000002.h5="$W/empty"
"$PACK" "$OUT/registry/forgotten.fz" CURRENT="$W/mbf/CURRENT" registry.jsonl="$(reg "$W/mbf" mbf)" \
  versions/v000001.h5="$W/mbf/versions/v000001.h5"

n=$(find "$OUT" -type f | wc -l)
echo "gen_seeds.sh: $n seeds in $OUT ($(du -sh "$OUT" | cut -f1))"
