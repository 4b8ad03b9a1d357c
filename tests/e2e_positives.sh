#!/usr/bin/env bash
# e2e_positives.sh - positives and confidence at training time (issue 21, item 2; the scale:
# e2e_scale.sh) through the real binary.
#  model.positive_threshold / model.confidence: an iALS model trained with
#     positive_threshold=4 equals (bitwise) one trained on the file without the ratings below 4;
#     confidence=binary one on the file with every value 1; confidence=log (epsilon 2) one on
#     the file with values log(1 + r/2); EASE with positive_threshold=4 the EASE of the filtered
#     file. update (fold-in from the touched histories, and with update.foldin_read = full)
#     keeps the equality, reading the options from the model's recorded configuration.
set -uo pipefail
bin="${IMF_BIN:?}"; mpiexec="${IMF_MPIEXEC:-mpirun}"
PY=/usr/bin/python3
tmp=$(mktemp -d /tmp/imf-e2e-positives.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/e2elib.sh"
cd "$tmp"

# ---- positives and confidence ----
run 1 synth --out raw.csv --users 120 --items 80 --ratings 4000 --quiet
# anchors first (user U0 rates every item 5, every user rates item I0 5: the ids are numbered
# alike in every variant), then the deduplicated synthetic ratings, transformed; part 1 = the
# first 70%, part 2 the rest
cat > mk.py <<'PYEOF'
import math
lines = open("raw.csv").read().split("\n")[1:]
rows = [l.split(",") for l in lines if l]
last = {}
for j, r in enumerate(rows):  # clean.duplicates = latest: the newest timestamp, ties the later line
    k = (r[0], r[1])
    if k not in last or int(r[3]) >= int(rows[last[k]][3]): last[k] = j
rows = [r for j, r in enumerate(rows) if last[(r[0], r[1])] == j]
users = sorted({r[0] for r in rows}, key=int); items = sorted({r[1] for r in rows}, key=int)
def write(name, f, keep=lambda v: True, part=None):
    with open(name, "w") as o:
        o.write("user,item,rating,timestamp\n")
        if part != 2:
            for i in items: o.write("U0,%s,%s,1000\n" % (i, f(5.0)))
            for u in users: o.write("%s,I0,%s,1000\n" % (u, f(5.0)))
        cut = len(rows) * 7 // 10
        sel = rows if part is None else rows[:cut] if part == 1 else rows[cut:]
        for r in sel:
            v = float(r[2])
            if keep(v): o.write("%s,%s,%s,%s\n" % (r[0], r[1], f(v), r[3]))
for part, sfx in ((None, ""), (1, "1"), (2, "2")):
    write("all%s.csv" % sfx, repr, part=part)
    write("pos%s.csv" % sfx, repr, lambda v: v >= 4, part)
    write("bin%s.csv" % sfx, lambda v: "1", part=part)
    write("log%s.csv" % sfx, lambda v: "%.17g" % math.log1p(v / 2.0), part=part)
    write("posbin%s.csv" % sfx, lambda v: "1", lambda v: v >= 4, part)
PYEOF
$PY mk.py
for v in all pos bin log posbin; do run 2 prepare --input $v.csv --data p_$v --quiet; done
I="--set model.type=ials --set model.k=4 --set model.iterations=4 --set model.confidence=linear"
# (confidence = auto would be binary for m_thr, with its threshold, and linear for m_pos: compared
# under one confidence, the threshold's own effect is what is tested; auto is tested below)
run 2 train --data p_all --model m_thr $I --set model.positive_threshold=4 --quiet
run 2 train --data p_pos --model m_pos $I --quiet
run 3 train --data p_all --model m_binc $I --set model.confidence=binary --quiet
run 2 train --data p_bin --model m_bin $I --quiet
run 2 train --data p_all --model m_logc $I --set model.confidence=log --set model.epsilon=2 --quiet
run 2 train --data p_log --model m_log $I --quiet
run 2 train --data p_all --model m_all $I --quiet
A="--set model.type=ials --set model.k=4 --set model.iterations=4" # model.confidence = auto
run 2 train --data p_all --model m_auto $A --set model.positive_threshold=4 --quiet
run 2 train --data p_posbin --model m_posbin $A --quiet
check "ials positive_threshold=4 == ials on the file without ratings < 4 (bitwise)" test "$(fact m_thr)" = "$(fact m_pos)"
check "... and differs from ials on every rating" test "$(fact m_thr)" != "$(fact m_all)"
check "ials confidence=binary == ials on the file with every value 1 (bitwise, 3 ranks vs 2)" test "$(fact m_binc)" = "$(fact m_bin)"
check "ials confidence=log, epsilon 2 == ials on values log(1 + r/2) (bitwise)" test "$(fact m_logc)" = "$(fact m_log)"
check "ials confidence=auto with positive_threshold=4 == ials on the positives as 1s (bitwise: binary)" test "$(fact m_auto)" = "$(fact m_posbin)"
check "... and differs from confidence=linear with the same threshold" test "$(fact m_auto)" != "$(fact m_thr)"
check "inspect shows the recorded options" bash -c "'$bin' inspect m_logc 2>/dev/null | grep -q 'confidence = log'"
# EASE: the binarized rows hold the positives only
E="--set model.type=ease --set model.ease_lambda=20"
run 2 train --data p_all --model e_thr $E --set model.positive_threshold=4 --quiet
run 2 train --data p_pos --model e_pos $E --quiet
easeh() { $PY - "$1" <<'PYEOF'
import h5py, hashlib, os, sys
d = sys.argv[1]
f = h5py.File(os.path.join(d, "versions", open(os.path.join(d, "CURRENT")).read().strip()), "r")
h = hashlib.sha256()
for k in sorted(f["ease"].keys()): h.update(k.encode()); h.update(f["ease"][k][()].tobytes())
print(h.hexdigest())
PYEOF
}
check "ease positive_threshold=4 == ease on the filtered file (X, Gram, B bitwise)" test "$(easeh e_thr)" = "$(easeh e_pos)"
# update keeps it: the options come from the model's recorded configuration
for v in all pos; do run 2 prepare --input ${v}1.csv --data q_$v --quiet; done
run 2 train --data q_all --model n_thr $I --set model.positive_threshold=4 --quiet
run 2 train --data q_pos --model n_pos $I --quiet
cp -r n_thr f_thr; cp -r n_pos f_pos
run 2 train --data q_all --model g_thr $E --set model.positive_threshold=4 --quiet
run 2 train --data q_pos --model g_pos $E --quiet
run 2 append --input all2.csv --data q_all --quiet; run 2 append --input pos2.csv --data q_pos --quiet
run 3 update --data q_all --model n_thr --strategy fold-in --quiet
run 3 update --data q_pos --model n_pos --strategy fold-in --quiet
check "update fold-in (touched histories) keeps ials(threshold) == ials(filtered)" test "$(fact n_thr)" = "$(fact n_pos)"
run 2 update --data q_all --model f_thr --strategy fold-in --set update.foldin_read=full --quiet
run 2 update --data q_pos --model f_pos --strategy fold-in --set update.foldin_read=full --quiet
check "update fold-in (whole store read) keeps it too" test "$(fact f_thr)" = "$(fact f_pos)"
check "... and the two fold-in paths agree" test "$(fact f_thr)" = "$(fact n_thr)"
run 2 update --data q_all --model g_thr --quiet; run 2 update --data q_pos --model g_pos --quiet
check "EASE update keeps ease(threshold) == ease(filtered)" test "$(easeh g_thr)" = "$(easeh g_pos)"

# evaluate: an implicit model's relevant held-out items are its positives
ev() { run 1 evaluate --input all.csv $I --set model.iterations=2 "$@" --json --quiet | $PY -c 'import json,sys; v=json.loads(sys.stdin.read())["relevance_threshold"]; print("null" if v is None else v)'; }
check "evaluate ials with positive_threshold=4: relevance_threshold 4" test "$(ev --set model.positive_threshold=4)" = 4
check "evaluate ials without: every held-out item (null)" test "$(ev)" = null
# ... and the text table says so, without RMSE/MAE columns of NaN (an ials model's scores are not
# ratings); a bias baseline brings its RMSE column back
run 1 evaluate --input all.csv $I --set model.iterations=2 --quiet > evt.txt
run 1 evaluate --input all.csv $I --set model.iterations=2 --baseline bias --quiet > evb.txt
check "evaluate ials (text): 'relevant: every held-out item', no rmse column, no nan in the table" \
  bash -c "grep -q 'relevant: every held-out item\$' evt.txt && grep -q '^fold  *precision@' evt.txt && ! grep -v '^all metrics' evt.txt | grep -q nan"
check "... with --baseline bias: the rmse column holds bias's RMSE" \
  bash -c "grep -q '^fold  *rmse  *mae' evb.txt && grep -Eq '^bias  *[0-9]' evb.txt"
# eval.binarize with the model's own threshold: was exit 0 with every metric null (the threshold saw
# only the 1s binarize left, and removed them all)
run 2 evaluate --input all.csv --protocol heldout-users $I --set model.positive_threshold=4 --set eval.binarize=4 \
  --json --quiet > both.json 2> both.err; rc=$?
check "evaluate with eval.binarize and model.positive_threshold: exit 2 naming both ($rc)" \
  bash -c "test $rc -eq 2 && grep -q 'eval.binarize = 4 and model.positive_threshold = 4' both.err"

echo "e2e_positives: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
