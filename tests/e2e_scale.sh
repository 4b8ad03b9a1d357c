#!/usr/bin/env bash
# e2e_scale.sh - scale awareness (issue 21, item 3; the positives
# and confidence of item 2: e2e_positives.sh)
# through the real binary.
#  1. prepare/append record each batch's observed value min, max and step and the store's
#     (combined) in the MANIFEST, the same on 1 and 3 ranks; inspect prints them (text, --json)
#     with the auto relevance threshold: 4 on 1-5, 4 on 0.5-5 (half stars), 8 on 0-10; a
#     store written before the record (value keys removed, checksum redone) still opens with
#     the scale unknown; a damaged store-level value line under a valid checksum is refused.
#  2. evaluate prints the threshold used (header, --json relevance_threshold): auto 8 on a 0-10
#     store and on a 0-10 --input file, a number wins, none is null; 4 with a warning when the
#     scale is unknown.
#  3. recommend clips an explicit model's scores to the recorded scale (recommend.clip = scale,
#     the default) and not with recommend.clip = none.
#  4. MovieTweetings (0-10, $IMF_SHARED_DATA, skipped when absent): recorded 0..10 step 1, auto
#     threshold 8; ml-latest-small: 0.5..5 step 0.5, auto threshold 4.
set -uo pipefail
bin="${IMF_BIN:?}"; mpiexec="${IMF_MPIEXEC:-mpirun}"
PY=/usr/bin/python3
tmp=$(mktemp -d /tmp/imf-e2e-scale.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/e2elib.sh"
cd "$tmp"
jget() { $PY -c 'import json,sys; v=json.loads(sys.stdin.read().strip().splitlines()[-1]).get(sys.argv[1]); print("null" if v is None else v)' "$1"; }

# ---- 1. the recorded scale ----
run 1 synth --out s15.csv --users 150 --items 60 --ratings 3000 --quiet
run 1 synth --out s010.csv --users 150 --items 60 --ratings 2000 --seed 2 --set synth.scale_min=0 --set synth.scale_max=10 --quiet
run 1 synth --out shalf.csv --users 150 --items 60 --ratings 2000 --seed 3 --set synth.scale_min=0.5 --set synth.step=0.5 --quiet
run 2 prepare --input s15.csv --data st15 --quiet
run 2 prepare --input s010.csv --data st010 --quiet
run 3 prepare --input shalf.csv --data sthalf --quiet
run 1 prepare --input shalf.csv --data sthalf1 --quiet
j15=$(run 1 inspect st15 --json 2>/dev/null); j010=$(run 1 inspect st010 --json 2>/dev/null)
jh=$(run 1 inspect sthalf --json 2>/dev/null)
check "1-5 store: value_min 1, value_max 5, value_step 1" test "$(echo "$j15" | jget value_min),$(echo "$j15" | jget value_max),$(echo "$j15" | jget value_step)" = "1,5,1"
check "1-5 store: auto relevance threshold 4" test "$(echo "$j15" | jget relevance_threshold_auto)" = 4
check "0-10 store: 0..10 step 1, auto threshold 8" test "$(echo "$j010" | jget value_min),$(echo "$j010" | jget value_max),$(echo "$j010" | jget value_step),$(echo "$j010" | jget relevance_threshold_auto)" = "0,10,1,8"
check "half stars: 0.5..5 step 0.5, auto threshold 4" test "$(echo "$jh" | jget value_min),$(echo "$jh" | jget value_max),$(echo "$jh" | jget value_step),$(echo "$jh" | jget relevance_threshold_auto)" = "0.5,5,0.5,4"
check "the text inspect prints the values line" bash -c "'$bin' inspect st010 2>/dev/null | grep -q 'values     0 .. 10, step 1 (auto relevance threshold 8)'"
check "the recorded scale is the same on 1 and 3 ranks" test "$(grep -o 'value_[a-z]*[ =][^ ]*' sthalf/MANIFEST)" = "$(grep -o 'value_[a-z]*[ =][^ ]*' sthalf1/MANIFEST)"
check "batch line carries value_min/value_max/value_step" grep -q '^batch 1 .* value_min=0.5 value_max=5 value_step=0.5$' sthalf/MANIFEST
# appending the 0-10 file to the half-star store: combined 0..10, step 0.5
run 2 append --input s010.csv --data sthalf --quiet
jh2=$(run 1 inspect sthalf --json 2>/dev/null)
check "append combines: 0..10 step 0.5, batch 2 its own 0..10 step 1" test "$(echo "$jh2" | jget value_min),$(echo "$jh2" | jget value_max),$(echo "$jh2" | jget value_step)/$(grep -c '^batch 2 .*value_min=0 value_max=10 value_step=1$' sthalf/MANIFEST)" = "0,10,0.5/1"
check "inspect --json batch_values: batch 1 0.5..5 step 0.5, batch 2 0..10 step 1" $PY -c "
import json,sys; b=json.loads(sys.argv[1])['batch_values']
sys.exit(0 if [(x['batch'],x['min'],x['max'],x['step']) for x in b]==[(1,0.5,5,0.5),(2,0,10,1)] else 1)" "$jh2"
# a store written before the record: value keys removed, checksum redone
cp -r st010 old010
$PY - old010/MANIFEST <<'PYEOF'
import hashlib, re, sys
p = sys.argv[1]
t = open(p).read()
body = t[:t.rindex("end ")]
body = "".join(l + "\n" for l in body.splitlines() if not l.startswith("value_"))
body = re.sub(r" value_(min|max|step)=\S+", "", body)
open(p, "w").write(body + "end " + hashlib.sha256(body.encode()).hexdigest() + "\n")
PYEOF
jo=$(run 1 inspect old010 --json 2>/dev/null)
check "a store without the record opens: value_min null" test "$(echo "$jo" | jget value_min)" = null
# a damaged store-level value under a valid checksum is refused
cp -r st010 bad010
$PY - bad010/MANIFEST <<'PYEOF'
import hashlib, sys
p = sys.argv[1]
t = open(p).read()
body = t[:t.rindex("end ")].replace("value_max 10\n", "value_max 5\n")
open(p, "w").write(body + "end " + hashlib.sha256(body.encode()).hexdigest() + "\n")
PYEOF
run 1 inspect bad010 > bad.out 2>&1; rc=$?
check "store value_max disagreeing with the batches: refused (exit 3, inconsistent)" bash -c "test $rc -eq 3 && grep -q inconsistent bad.out"

# ---- 2. evaluate's threshold ----
EV="--set model.k=4 --set model.iterations=3"
e1=$(run 2 evaluate --data st010 $EV --json --quiet)
check "evaluate on a 0-10 store: relevance_threshold 8 (auto)" test "$(echo "$e1" | jget relevance_threshold)" = 8
run 1 evaluate --data st010 $EV --quiet > e1.txt
check "evaluate's header names the threshold" grep -q 'relevant: rating >= 8' e1.txt
e2=$(run 1 evaluate --input s010.csv $EV --json --quiet)
check "evaluate --input (no store): the file's scale gives 8" test "$(echo "$e2" | jget relevance_threshold)" = 8
e3=$(run 1 evaluate --data st010 $EV --set eval.relevance_threshold=6 --json --quiet)
check "a number wins over auto" test "$(echo "$e3" | jget relevance_threshold)" = 6
e4=$(run 1 evaluate --data st010 $EV --set eval.relevance_threshold=none --json --quiet)
check "none: null (every held-out item)" test "$(echo "$e4" | jget relevance_threshold)" = null
e5=$(run 1 evaluate --data st15 $EV --json --quiet)
check "evaluate on a 1-5 store: 4" test "$(echo "$e5" | jget relevance_threshold)" = 4
run 1 evaluate --data old010 $EV --json > e6.out 2> e6.err
check "scale unknown: 4, with a warning" test "$(jget relevance_threshold < e6.out)/$(grep -c 'scale is unknown' e6.err)" = 4/1

# ---- 3. recommend clips explicit predictions ----
run 2 train --data st15 --model als15 --set model.k=8 --set model.lambda=0.0001 --set model.iterations=8 --quiet
run 2 recommend --model als15 --data st15 --all --out clip.csv --top 20 --quiet
run 2 recommend --model als15 --data st15 --all --out noclip.csv --top 20 --set recommend.clip=none --quiet
mx() { $PY -c 'import csv,sys; s=[float(r["score"]) for r in csv.DictReader(open(sys.argv[1]))]; print(min(s), max(s))' "$1"; }
read -r clo chi <<< "$(mx clip.csv)"; read -r nlo nhi <<< "$(mx noclip.csv)"
check "recommend.clip=none: some score outside 1..5 (the test can fail) ($nlo..$nhi)" \
  $PY -c "import sys; sys.exit(0 if $nlo < 1 or $nhi > 5 else 1)"
check "recommend (clip=scale): every score within 1..5 ($clo..$chi)" $PY -c "import sys; sys.exit(0 if $clo >= 1 and $chi <= 5 else 1)"
check "clipping keeps the ranking (same items in the same order)" \
  bash -c "diff <(cut -d, -f1-3 clip.csv) <(cut -d, -f1-3 noclip.csv) > /dev/null"
u1=$(sed -n 2p s15.csv | cut -d, -f1)
run 1 recommend --model als15 --data st15 --user "$u1" --top 20 --set recommend.clip=scale --json --quiet > u1.json
check "recommend --user: scores within 1..5" $PY -c "
import json,sys; d=json.load(open('u1.json')); s=[x['score'] for x in d['items']]; sys.exit(0 if s and min(s) >= 1 and max(s) <= 5 else 1)"

# ---- 4. MovieTweetings ----
mt="${IMF_SHARED_DATA:-}/movietweetings-100k/ratings.dat.xz"
if [ -n "${IMF_SHARED_DATA:-}" ] && [ -f "$mt" ]; then
  run 2 prepare --input "$mt" --data mtw --quiet
  jm=$(run 1 inspect mtw --json 2>/dev/null)
  check "MovieTweetings: recorded 0..10 step 1, auto threshold 8" test "$(echo "$jm" | jget value_min),$(echo "$jm" | jget value_max),$(echo "$jm" | jget value_step),$(echo "$jm" | jget relevance_threshold_auto)" = "0,10,1,8"
else
  echo "skip MovieTweetings (IMF_SHARED_DATA absent)"
fi
ml="${IMF_SHARED_DATA:-}/ml-latest-small/ratings.csv.xz"
if [ -n "${IMF_SHARED_DATA:-}" ] && [ -f "$ml" ]; then
  run 2 prepare --input "$ml" --data mls --quiet
  jl=$(run 1 inspect mls --json 2>/dev/null)
  check "ml-latest-small: recorded 0.5..5 step 0.5, auto threshold 4" test "$(echo "$jl" | jget value_min),$(echo "$jl" | jget value_max),$(echo "$jl" | jget value_step),$(echo "$jl" | jget relevance_threshold_auto)" = "0.5,5,0.5,4"
else
  echo "skip ml-latest-small (IMF_SHARED_DATA absent)"
fi

echo "e2e_scale: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
