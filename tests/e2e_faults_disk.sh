#!/usr/bin/env bash
# e2e_faults_disk.sh - a full disk under prepare, append, train (run checkpoints and the version),
# update and rollback: a small tmpfs is mounted (root; exit 77 where mount is not permitted),
# filled to leave a given number of bytes free, and the command run onto it. Expected: exit 1
# (README: runtime error, I/O) with a one-line message naming the file it could not write and
# saying that space is short; the previous state intact (store digest unchanged, CURRENT on the
# previous version, which loads; a run checkpoint that was complete stays loadable); and once
# space is freed, the rerun reaches the uninterrupted result. The free space is varied so the
# failure lands at different files (LOCK, batch, run checkpoint, version, CURRENT, registry).
fault_here=$(cd "$(dirname "$0")" && pwd)
. "$fault_here/fault/faultlib.sh"
command -v h5dump >/dev/null || { echo "skip: h5dump (hdf5-tools) is needed"; exit 77; }
cd "$tmp"
mnt="$tmp/mnt"; mkdir -p "$mnt"
if ! mount -t tmpfs -o size=4m tmpfs "$mnt" 2>"$tmp/mount.err"; then
  echo "skip: cannot mount a tmpfs here ($(head -1 "$tmp/mount.err")): needs root and mount permission"
  exit 77
fi
on_exit='umount -l "$mnt" 2>/dev/null;'
digest() { one inspect "$1" --json --quiet 2>/dev/null | jget digest; }
loads() { one inspect "$1" --quiet > /dev/null 2>&1; }
# leave BYTES free on the tmpfs (a filler file takes the rest)
leave() {
  rm -f "$mnt/.fill"
  dd if=/dev/zero of="$mnt/.fill" bs=4k 2>/dev/null
  [ "$1" -gt 0 ] && truncate -s "-$1" "$mnt/.fill"
  sync
}
free_kb() { df -k "$mnt" | awk 'NR==2{print $4}'; }

# fixtures on the ordinary disk, and the uninterrupted results
run 2 synth --out r.csv --users 400 --items 300 --ratings 30000 --seed 3 --quiet
n=$(wc -l < r.csv)
head -n $((n * 2 / 3)) r.csv > a.csv
{ head -1 r.csv; tail -n +$((n * 2 / 3 + 1)) r.csv; } > b.csv
TSET=(--set model.k=8 --set model.iterations=10 --set model.checkpoint_every=5)
run 2 prepare --input a.csv --data st1 --set holdout.fraction=0.2 --quiet
cp -r st1 st2; run 2 append --input b.csv --data st2 --quiet
run 2 train --data st1 --model m1 "${TSET[@]}" --quiet
cp -r m1 m2; run 2 update --data st2 --model m2 --strategy fold-in --quiet > /dev/null
D1=$(digest st1); D2=$(digest st2); F1=$(fhash m1); F2=$(fhash m2)
check "fixtures: two store states, two model states" test -n "$D1" -a -n "$D2" -a "$D1" != "$D2" -a "$F1" != "$F2"

declare -A NCASE NOK WHERE
# NAME RC ERRFILE: count the case; when the command failed (returns 0 then), check exit 1 and a
# one-line message naming the file and the lack of space (returns 1 when the command fitted)
outcome() {
  local name=$1 rc=$2 err=$3 line file
  NCASE[$name]=$(( ${NCASE[$name]:-0} + 1 ))
  if [ $rc -eq 0 ]; then WHERE[$name]+="(nothing:_it_fitted) "; return 1; fi
  line=$(grep -m1 "error:" "$err")
  file=$(echo "$line" | grep -o "$mnt/[^ :]*" | head -1)
  file=${file#$mnt/}
  WHERE[$name]+="${file:-?} "
  check "$name: exit 1 (got $rc), one line naming the file (${file:-none}) and the lack of space" \
    sh -c "[ $rc -eq 1 ] && [ -n '$file' ] && echo \"\$0\" | grep -qi 'space'" "$line"
  # a failure here shows what the command said (seen once under load in the sanitizer stage,
  # 2026-12-07: "update, 16384 B free" exited 1 with no line naming a file; not reproduced alone)
  [ $rc -eq 1 ] && [ -n "$file" ] && return 0
  echo "  its stderr (first 20 lines):"; head -20 "$err" | sed 's/^/  | /'
  return 1
}

# prepare: no store before; after the failure the directory holds no store or an empty one, and
# prepare reruns into it
for f in 0 65536 131072; do
  rm -rf "$mnt/st"; leave $f
  run 2 prepare --input a.csv --data "$mnt/st" --set holdout.fraction=0.2 --quiet 2> err.txt; rc=$?
  if outcome prepare $rc err.txt; then
    b=$(one inspect "$mnt/st" --json --quiet 2>/dev/null | jget batches)
    check "prepare, $f B free: no store or an empty one left (batches: ${b:-none})" test "${b:-0}" = 0
  fi
  rm -f "$mnt/.fill"
  one prepare --input a.csv --data "$mnt/st" --set holdout.fraction=0.2 --quiet 2>/dev/null
  check "prepare, $f B free: rerun with space reaches the uninterrupted store" test "$(digest "$mnt/st")" = "$D1"
  [ "$(digest "$mnt/st")" = "$D1" ] && NOK[prepare]=$(( ${NOK[prepare]:-0} + 1 ))
done

# append: the store before stays
for f in 0 16384 131072; do
  rm -rf "$mnt/st"; cp -r st1 "$mnt/st"; leave $f
  run 2 append --input b.csv --data "$mnt/st" --quiet 2> err.txt; rc=$?
  good=1
  if outcome append $rc err.txt; then
    check "append, $f B free: store unchanged" test "$(digest "$mnt/st")" = "$D1" || good=0
  fi
  rm -f "$mnt/.fill"
  one append --input b.csv --data "$mnt/st" --quiet 2>/dev/null
  check "append, $f B free: rerun with space reaches the uninterrupted store" test "$(digest "$mnt/st")" = "$D2" || good=0
  [ $good = 1 ] && NOK[append]=$(( ${NOK[append]:-0} + 1 ))
done

# train: version 1 is current; a second train runs out of space at its LOCK, a run checkpoint, or
# the version; v1 stays current and loads; the run checkpoint left (if any) loads; the rerun
# (train --resume, as run-local.sh does) gives the same factors as the uninterrupted run
for f in 0 16384 65536 131072; do
  rm -rf "$mnt/m"; cp -r m1 "$mnt/m"; leave $f
  run 2 train --data st1 --model "$mnt/m" "${TSET[@]}" --quiet 2> err.txt; rc=$?
  good=1
  if outcome train $rc err.txt; then
    check "train, $f B free: CURRENT still version 1" test "$(cat "$mnt/m/CURRENT")" = v000001.h5 || good=0
    check "train, $f B free: the model directory loads" loads "$mnt/m" || good=0
    if [ -e "$mnt/m/run/checkpoint.h5" ]; then
      check "train, $f B free: the run checkpoint left loads" loads "$mnt/m/run/checkpoint.h5" || good=0
    fi
  fi
  rm -f "$mnt/.fill"
  one train --data st1 --model "$mnt/m" "${TSET[@]}" --resume --quiet 2>/dev/null
  check "train, $f B free: rerun (--resume) with space: factors identical to the uninterrupted run" test "$(fhash "$mnt/m")" = "$F1" || good=0
  [ $good = 1 ] && NOK[train]=$(( ${NOK[train]:-0} + 1 ))
done

# update: the champion stays current
for f in 0 16384; do
  rm -rf "$mnt/m"; cp -r m1 "$mnt/m"; leave $f
  run 2 update --data st2 --model "$mnt/m" --strategy fold-in --quiet 2> err.txt; rc=$?
  good=1
  if outcome update $rc err.txt; then
    check "update, $f B free: CURRENT still version 1 with its factors" test "$(cat "$mnt/m/CURRENT")" = v000001.h5 -a "$(fhash "$mnt/m")" = "$F1" || good=0
    check "update, $f B free: the model directory loads" loads "$mnt/m" || good=0
  fi
  rm -f "$mnt/.fill"
  one update --data st2 --model "$mnt/m" --strategy fold-in --quiet >/dev/null 2>&1
  check "update, $f B free: rerun with space: the uninterrupted update's factors" test "$(fhash "$mnt/m")" = "$F2" || good=0
  [ $good = 1 ] && NOK[update]=$(( ${NOK[update]:-0} + 1 ))
done

# rollback: tiny writes (LOCK, CURRENT.tmp, registry.jsonl.tmp), one 4 KiB page each on tmpfs
for f in 0 4096 8192; do
  rm -rf "$mnt/m"; cp -r m2 "$mnt/m"; leave $f
  run 2 rollback --model "$mnt/m" --to 1 --quiet 2> err.txt; rc=$?
  good=1
  if outcome rollback $rc err.txt; then
    cur=$(cat "$mnt/m/CURRENT")
    if grep -q "registry" err.txt; then
      # CURRENT is switched before the lineage line is written: a complete version either way
      check "rollback, $f B free (registry write failed): CURRENT names a complete version ($cur)" loads "$mnt/m" || good=0
    else
      check "rollback, $f B free: CURRENT unchanged (version 2)" test "$cur" = v000002.h5 || good=0
    fi
  fi
  rm -f "$mnt/.fill"
  one rollback --model "$mnt/m" --to 1 --quiet >/dev/null 2>&1
  check "rollback, $f B free: rerun with space: version 1 current and recorded" sh -c \
    "[ \"\$(cat '$mnt/m/CURRENT')\" = v000001.h5 ] && tail -1 '$mnt/m/registry.jsonl' | grep -q '\"event\":\"rollback\"'" || good=0
  [ $good = 1 ] && NOK[rollback]=$(( ${NOK[rollback]:-0} + 1 ))
done

# other writers (issue 22): recommend --all (csv, h5), synth (plain, compressed), the rejects file.
# Each fails within the time limit on every rank (a full disk once left recommend's h5 writer
# spinning for ever), says so in one line naming the file, and leaves nothing under the final
# name (outputs are written under a temporary name and renamed).
run 2 synth --out bad.csv --users 400 --items 300 --ratings 5000 --corrupt 0.3 --seed 5 --quiet
for case in "recommend-h5 recs.h5" "recommend-csv recs.csv" "synth syn.csv" "synth-gz syn.csv.gz" "rejects rej.tsv"; do
  set -- $case; name=$1; out=$2
  for f in 0 8192; do
    rm -rf "$mnt"/* "$mnt"/.[!.]* 2>/dev/null; leave $f
    case $name in
      recommend-*) timeout 60 "$mpiexec" --oversubscribe -n 2 "$bin" recommend --model m1 --data st1 --all --top 50 --out "$mnt/$out" --quiet 2> err.txt ;;
      synth*) timeout 60 "$mpiexec" --oversubscribe -n 2 "$bin" synth --out "$mnt/$out" --ratings 200000 --quiet 2> err.txt ;;
      rejects) timeout 60 "$mpiexec" --oversubscribe -n 2 "$bin" prepare --input bad.csv --data stj --rejects "$mnt/$out" --max-reject-fraction 0.9 --quiet 2> err.txt ;;
    esac
    rc=$?
    good=1
    if outcome "$name" $rc err.txt; then
      check "$name, $f B free: nothing under the final name, no temporary file" \
        test ! -e "$mnt/$out" -a -z "$(ls -A "$mnt" | grep -v '^.fill$')" || good=0
    else good=0; fi
    rm -rf stj
    [ $good = 1 ] && NOK[$name]=$(( ${NOK[$name]:-0} + 1 ))
  done
done

for name in prepare append train update rollback recommend-h5 recommend-csv synth synth-gz rejects; do
  where=$(echo ${WHERE[$name]} | tr ' ' '\n' | sed 's/v00000[0-9]*\.h5/vN.h5/; s/batch-00000[0-9]*/batch-N/; s/synth-[0-9]*/synth-PID/' | sort | uniq -c | awk '{gsub("_", " ", $2); printf "%s%s x%s", (NR>1?", ":""), $2, $1}')
  case $name in
    recommend-*|synth*|rejects) outcome_text="handled (failed at: $where): exit 1 on every rank within the 60 s bound, one line naming the file and the lack of space; nothing under the final name, no temporary file left" ;;
    *) outcome_text="handled (failed at: $where): exit 1, one line naming the file; previous state intact; rerun with space = uninterrupted result" ;;
  esac
  case $name in
    recommend-h5) label="recommend --all --out x.h5" ;; recommend-csv) label="recommend --all --out x.csv" ;;
    synth) label="synth --out x.csv" ;; synth-gz) label="synth --out x.csv.gz" ;;
    rejects) label="prepare --rejects" ;; *) label=$name ;;
  esac
  record "disk full during \`$label\` (tmpfs, free space varied)" "${NCASE[$name]}" "${NOK[$name]:-0}/${NCASE[$name]} $outcome_text"
done
echo "e2e_faults_disk: $pass passed, $fail failed ($(elapsed) s)"
[ $fail -eq 0 ]
