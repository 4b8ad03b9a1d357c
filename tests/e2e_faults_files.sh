#!/usr/bin/env bash
# e2e_faults_files.sh - files that are not what they claim: an HDF5 file from another program as a
# checkpoint, a run checkpoint, a model version and a store batch; a checkpoint, a batch and a
# store manifest of a newer format version; a batch swapped for another store's; a run checkpoint
# whose store changed since (resume), a model evaluated against other data or a grown store; a
# CURRENT naming a missing version, or garbled; a missing batch, a corrupt MANIFEST, a text file
# as a checkpoint. Each must fail with the documented exit code (3: bad input) and one line saying
# what is wrong and what to do; the advice is then followed where it is a command, and must work.
fault_here=$(cd "$(dirname "$0")" && pwd)
. "$fault_here/fault/faultlib.sh"
need_h5py
cd "$tmp"
ncase=0; nok=0; c0=0; k0=0
# class_done DESCRIPTION: one table row for the cases since the previous class
class_done() {
  record "$1" $((ncase - c0)) "$((nok - k0))/$((ncase - c0)): exit 3 and one line saying what is wrong and what to do$2"
  c0=$ncase; k0=$nok
}
# expect NAME RC WRONG_RE TODO_RE CMD...: exit RC, exactly one error line, matching both patterns
expect() {
  local name=$1 want=$2 wrong=$3 todo=$4; shift 4
  one "$@" > out.txt 2> err.txt; local rc=$?
  local lines; lines=$(grep -c "error:" err.txt)
  local msg; msg=$(grep -m1 "error:" err.txt)
  ncase=$((ncase + 1))
  if [ $rc -eq "$want" ] && [ "$lines" -eq 1 ] && echo "$msg" | grep -Eqi -- "$wrong" && echo "$msg" | grep -Eqi -- "$todo"; then
    nok=$((nok + 1)); ok "$name: exit $rc: ${msg#*error: }"
  else
    bad "$name: exit $rc (want $want), $lines error lines: ${msg:-$(tail -2 err.txt)}"
  fi
}

run 2 synth --out r.csv --users 300 --items 200 --ratings 20000 --seed 5 --quiet
n=$(wc -l < r.csv)
head -n $((n * 2 / 3)) r.csv > a.csv
{ head -1 r.csv; tail -n +$((n * 2 / 3 + 1)) r.csv; } > b.csv
run 2 synth --out other.csv --users 300 --items 200 --ratings 20000 --seed 6 --quiet
run 2 prepare --input a.csv --data st --set holdout.fraction=0.2 --quiet
run 2 prepare --input other.csv --data other --quiet
TSET=(--set model.k=8 --set model.iterations=8)
run 2 train --data st --model m "${TSET[@]}" --quiet
"$PY" - <<'PYEOF'
import h5py, numpy as np, shutil
with h5py.File("foreign.h5", "w") as f:           # what another program writes
    f.create_dataset("matrix", data=np.arange(12.0).reshape(3, 4))
    f.attrs["title"] = "not a model"
with h5py.File("lookalike.h5", "w") as f:         # another program's file with similar names
    f.attrs["format"] = "some-other-model"
    f.create_dataset("factors/P", data=np.zeros((3, 2), "f4"))
    f.create_dataset("factors/Q", data=np.zeros((4, 2), "f4"))
shutil.copy("m/versions/v000001.h5", "newer.h5")  # a checkpoint of a newer format version
with h5py.File("newer.h5", "r+") as f:
    f.attrs["format_version"] = np.int64(2)
PYEOF
printf 'user,item,rating\n1,2,3\n' > text.h5

# --- an HDF5 file from another program, in four roles
expect "foreign HDF5 as a checkpoint" 3 "not an incremf model checkpoint" "give a file written by incremf" inspect foreign.h5
expect "foreign look-alike as a checkpoint" 3 "not an incremf model checkpoint" "give a file written by incremf" inspect lookalike.h5
IMF_STOP_AFTER_SWEEP=2 run 2 train --data st --model mr "${TSET[@]}" --quiet 2>/dev/null
cp foreign.h5 mr/run/checkpoint.h5
expect "foreign HDF5 as the run checkpoint" 3 "not an incremf model checkpoint" "delete .*run/checkpoint.h5 and train again without --resume" \
  train --data st --model mr --resume --quiet
# a run checkpoint whose factors changed (its content digest no longer matches): the advice is to
# delete it and train again, not the rollback a damaged version advises (a run checkpoint is none)
IMF_STOP_AFTER_SWEEP=2 run 2 train --data st --model md "${TSET[@]}" --quiet 2>/dev/null
"$PY" -c "
import h5py
with h5py.File('md/run/checkpoint.h5', 'r+') as f: f['factors/P'][0, 0] += 1.0"
expect "run checkpoint with changed factors" 3 "content digest does not match; the run cannot resume from it" \
  "delete .*run/checkpoint.h5 and train again without --resume" train --data st --model md --resume --quiet
check "run checkpoint with changed factors: no rollback advice" eval '! grep -q rollback err.txt'
cp -r m mv; cp foreign.h5 mv/versions/v000001.h5
expect "foreign HDF5 as the current version" 3 "v000001.h5 is not an incremf model checkpoint" "give a file written by incremf" \
  evaluate --data st --model mv --protocol standing --quiet
cp -r st sb; cp foreign.h5 sb/batch-000001.h5
expect "foreign HDF5 as a store batch" 3 "batch-000001.h5 is not an incremf batch file" "restore that file .* or re-run prepare" \
  train --data sb --model mb "${TSET[@]}" --quiet
class_done "an HDF5 file from another program as a checkpoint, the run checkpoint, the current version, a store batch; a run checkpoint with changed factors" ""

# --- newer format versions
expect "checkpoint of a newer format" 3 "newer incremf \(model format 2\)" "upgrade incremf" inspect newer.h5
IMF_STOP_AFTER_SWEEP=2 run 2 train --data st --model mn "${TSET[@]}" --quiet 2>/dev/null
cp newer.h5 mn/run/checkpoint.h5
expect "run checkpoint of a newer format" 3 "newer incremf" "upgrade incremf.*(delete|without --resume)" \
  train --data st --model mn --resume --quiet
cp -r st sn
"$PY" -c "
import h5py, numpy as np
with h5py.File('sn/batch-000001.h5', 'r+') as f: f.attrs['format_version'] = np.int64(2)"
expect "store batch of a newer format" 3 "newer incremf \(batch format 2" "upgrade incremf" train --data sn --model mbn "${TSET[@]}" --quiet
cp -r st sm
{ sed -e '1s/^incremf-store 1$/incremf-store 2/' -e '$d' st/MANIFEST > sm/M; echo "end $(sha256sum < sm/M | cut -c1-64)" >> sm/M; mv sm/M sm/MANIFEST; }
expect "store MANIFEST of a newer format" 3 "newer incremf \(store format 2" "upgrade incremf" inspect sm
class_done "a checkpoint, run checkpoint, store batch or MANIFEST of a newer format version" ""

# --- damaged or swapped store files
cp -r st sw; cp other/batch-000001.h5 sw/batch-000001.h5
expect "a batch swapped for another store's" 3 "does not match the manifest" "restore that file .* or re-run prepare" \
  train --data sw --model msw "${TSET[@]}" --quiet
cp -r st sx; rm sx/batch-000001.h5
expect "a batch file missing" 3 "batch-000001.h5 is missing" "restore it or re-run prepare" inspect sx --quiet
cp -r st sc; sed -i 's/^users /users 1/' sc/MANIFEST
expect "a MANIFEST edited by hand" 3 "MANIFEST is corrupt \(checksum mismatch\)" "restore it or re-run prepare" inspect sc
# damaged keys under a valid checksum (as the store fuzzer made them): the store's user total and
# the batch's users_after unreadable, so both read as 0 and agree; the batch's id counts no
# longer chain, and the store must not open with no users under rows that name some
cp -r st sk
{ sed -e 's/ users_after=/ usersWafter=/' -e 's/^users /uAsers /' -e '$d' st/MANIFEST > sk/M; echo "end $(sha256sum < sk/M | cut -c1-64)" >> sk/M; mv sk/M sk/MANIFEST; }
expect "a MANIFEST with damaged keys" 3 "MANIFEST is inconsistent" "restore it or re-run prepare" inspect sk
expect "a text file as a checkpoint" 3 "not a readable HDF5 file" "restore it from a copy, or give a file written by incremf" inspect text.h5
class_done "a store batch swapped for another store's or missing, a MANIFEST edited by hand or with damaged keys, a text file as a checkpoint" ""

# --- a store whose content no longer matches the checkpoint
IMF_STOP_AFTER_SWEEP=2 run 2 train --data st --model mg "${TSET[@]}" --quiet 2>/dev/null
cp -r st sg; run 2 append --input b.csv --data sg --quiet
expect "resume after the store grew (append)" 3 "started on other data \(store digest" "train without --resume to start over, or use update" \
  train --data sg --model mg --resume --quiet
expect "resume on another store" 3 "started on other data" "train without --resume" train --data other --model mg --resume --quiet
expect "evaluate a model against another store" 3 "trained on other data than the store" "give --data the store it was trained on" \
  evaluate --data other --model m --protocol standing --quiet
one evaluate --data sg --model m --protocol standing --quiet > out.txt 2> err.txt; rc=$?
ncase=$((ncase + 1))
if [ $rc -eq 0 ] && grep -q "has changed since the model was trained.*stale (run update)" err.txt; then
  nok=$((nok + 1)); ok "evaluate against the grown store: exit 0 with a warning: $(grep -m1 warning err.txt | cut -c1-150)"
else bad "evaluate against the grown store: exit $rc, $(tail -1 err.txt)"; fi
class_done "a store that does not match the checkpoint: resume after an append, resume or evaluate on other data, evaluate on a grown store" " (the grown store: exit 0 and a warning that the model is stale)"

# --- CURRENT names a missing version, or is garbled; the advice (rollback --to N) works
cp -r m mc; run 2 update --data sg --model mc --strategy fold-in --quiet > /dev/null
echo v000009.h5 > mc/CURRENT
for c in "inspect mc" "status --model mc" "evaluate --data sg --model mc --protocol standing" "recommend --model mc --user 1" \
         "update --data sg --model mc"; do
  expect "CURRENT names a missing version: $c" 3 "CURRENT names v000009.h5, which does not exist" "incremf rollback --model mc --to 2" $c --quiet
done
one rollback --model mc --to 2 --quiet > /dev/null 2> err.txt; rc=$?
ncase=$((ncase + 1))
if [ $rc -eq 0 ] && one inspect mc --quiet > /dev/null 2>&1; then nok=$((nok + 1)); ok "the advised rollback --to 2 repairs it"
else bad "the advised rollback --to 2 fails: exit $rc $(tail -1 err.txt)"; fi
echo "garbage" > mc/CURRENT
expect "CURRENT garbled" 3 "CURRENT is garbled" "incremf rollback --model mc --to N" status --model mc --quiet
one rollback --model mc --to 1 --quiet > /dev/null 2>&1
ncase=$((ncase + 1))
if [ "$(cat mc/CURRENT)" = v000001.h5 ] && one inspect mc --quiet > /dev/null 2>&1; then nok=$((nok + 1)); ok "rollback --to 1 repairs a garbled CURRENT"
else bad "rollback --to 1 does not repair a garbled CURRENT"; fi
class_done "CURRENT naming a missing version (inspect, status, evaluate, recommend, update) or garbled" "; the advised \`rollback --to N\` repairs it"

echo "e2e_faults_files: $pass passed, $fail failed ($(elapsed) s)"
[ $fail -eq 0 ]
