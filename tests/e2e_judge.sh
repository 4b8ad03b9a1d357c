#!/usr/bin/env bash
# e2e_judge.sh - how `update` judges a challenger (src/judge.c; docs/METRICS.md, "Judging an
# update"): each model type by its own metric (update.metric auto: RMSE for als, NDCG@10 for
# ials and ease; validated at config time), champion and challenger on the same standing-holdout
# ratings, user by user, with the mean paired difference, its 95% paired-bootstrap interval
# (checked against a direct computation in numpy from the dumped differences, IMF_JUDGE_DUMP)
# and the user count in the text line, --json, the registry and `status`; the promotion rule
# both ways for ials, ease and pop (a challenger made worse by the IMF_TEST_CHALLENGER hook is kept
# out, an equal or better one promoted, a NaN never); the same interval on 1 and 3 ranks and
# from a fold-in that read only the touched rows; drift on the ranking metric (newest_score);
# `status --plot` on an iALS and an EASE model directory.
set -uo pipefail
bin="${IMF_BIN:?}"; mpiexec="${IMF_MPIEXEC:-mpirun}"
PY=/usr/bin/python3
tmp=$(mktemp -d /tmp/imf-e2e-judge.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/e2elib.sh"
cur() { cat "$1/CURRENT" 2>/dev/null | tr -d '\n'; }
cd "$tmp"
# 1,000 users: since synth draws a user's items without replacement (issue 26), 400 users over 300
# items made the heaviest users exhaust the catalogue, and the late batch b1 (their tail items)
# then made the EASE update 1.4% worse on the early holdout: rejected, where section 4 wants a
# benign update
run 1 synth --out r.csv --users 1000 --items 300 --ratings 30000 --seed 3 --quiet
# base: the oldest 80% of the lines by time; b1: the rest (new users, items and pairs); b2, b3:
# two halves of b1 for chains of smaller updates
$PY - <<'PYEOF'
lines = open('r.csv').read().splitlines()
hdr, rows = lines[0], sorted(lines[1:], key=lambda l: int(l.split(',')[3]))
cut = len(rows) * 8 // 10
new = rows[cut:]
for name, part in (('base', rows[:cut]), ('b1', new), ('b2', new[:len(new) // 2]), ('b3', new[len(new) // 2:])):
    open(name + '.csv', 'w').write('\n'.join([hdr] + part) + '\n')
PYEOF
run 1 prepare --input base.csv --data st0 --set holdout.fraction=0.2 --quiet || bad "prepare"
fresh() { rm -rf "$1"; cp -r st0 "$1"; }
ials="--set model.type=ials --set model.k=8 --quiet"
# bootstrap.py DUMP JSON: the interval recomputed from the dumped differences (numpy), against
# the dump's header and update --json (1e-9); diff_mean = challenger_score - champion_score for
# ranking metrics; prints nothing, exits non-zero on a mismatch
cat > boot.py <<'PYEOF'
import numpy as np, sys, json
lines = open(sys.argv[1]).read().split('\n')
h = lines[0].split()
d = np.array([float(x) for x in lines[1:] if x.strip()])
n, B, seed = len(d), int(h[3]), int(h[5])
assert n == int(h[1]) and B == 2000 and n > 1, (n, h)
d.sort()
k = np.arange(1, B * n + 1, dtype=np.uint64)
with np.errstate(over='ignore'):  # splitmix64, one stream by counter: state_k = seed + k * golden
    z = np.uint64(seed) + k * np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    # floor(z * n / 2^64) exactly in 64-bit pieces (n < 2^32): (hi * n + ((lo * n) >> 32)) >> 32
    hi, lo, nn = z >> np.uint64(32), z & np.uint64(0xFFFFFFFF), np.uint64(n)
    idx = ((hi * nn + ((lo * nn) >> np.uint64(32))) >> np.uint64(32)).astype(np.int64).reshape(B, n)
means = np.sort(d[idx].sum(axis=1) / n)
mine = (d.sum() / n, means[int(np.floor(0.025 * B))], means[int(np.ceil(0.975 * B)) - 1])
j = json.load(open(sys.argv[2]))
theirs = (j['diff_mean'], j['diff_lo'], j['diff_hi'])
head = (float(h[7]), float(h[9]), float(h[11]))
for a, b, c in zip(mine, theirs, head):
    assert abs(a - b) <= 1e-9 * max(1.0, abs(a)) and abs(a - c) <= 1e-9 * max(1.0, abs(a)), (mine, theirs, head)
assert j['diff_users'] == n, (j['diff_users'], n)
assert mine[1] <= mine[0] <= mine[2], mine
if j['metric'] != 'rmse':
    assert abs(j['diff_mean'] - (j['challenger_score'] - j['champion_score'])) < 1e-9, j
PYEOF
jget() { $PY -c "import json,sys; print(json.load(open('$1'))['$2'])"; }

# 1. update.metric is validated at config time (exit 2), whatever the command
for v in bogus ndcg@0 ndcg@ recall@x map@1000001 NDCG@10; do
  run 1 inspect st0 --set update.metric=$v --quiet > /dev/null 2>&1; rc=$?
  check "update.metric=$v: usage error (exit 2, got $rc)" test $rc -eq 2
done
run 1 inspect st0 --set update.metric=map@5 --set update.k=20 --quiet > /dev/null 2>&1
check "update.metric=map@5, update.k=20 accepted" test $? -eq 0

# 2. iALS: judged by NDCG@10 on the standing holdout; a better challenger (warm sweeps from a
# one-sweep champion) is promoted, and its interval is the numpy bootstrap of its differences
fresh s1; run 2 train --data s1 --model m1 $ials --set model.iterations=1 || bad "train ials"
cp -r s1 s1b; cp -r m1 m1b
IMF_JUDGE_DUMP=$tmp/d1.txt run 2 update --data s1 --model m1 --input b1.csv --strategy warm --set update.warm_sweeps=6 \
  --json --quiet > u1.json
check "ials: judged by ndcg@10, better challenger promoted, positive interval" $PY -c "
import json; d = json.load(open('u1.json'))
assert d['metric'] == 'ndcg@10' and d['decision'] == 'promoted', d
assert d['champion_rmse'] is None and d['challenger_rmse'] is None, d
assert d['diff_mean'] > 0 and d['diff_lo'] > 0 and d['diff_users'] > 100 and d['challenger_score'] > d['champion_score'], d"
check "ials: the interval = numpy's paired bootstrap of the dumped differences (1e-9)" $PY boot.py d1.txt u1.json
check "ials: the registry records metric, scores, diff_mean/lo/hi/users, newest_score" $PY -c "
import json; r = [json.loads(l) for l in open('m1/registry.jsonl')][-1]
assert r['metric'] == 'ndcg@10' and r['diff_users'] > 100 and r['diff_lo'] <= r['diff_mean'] <= r['diff_hi'], r
assert r['newest_score'] > 0 and r['champion_score'] > 0, r"
# the same update on 3 ranks: the same judgement
for np_ in 3; do
  rm -rf s1c m1c; cp -r s1b s1c; cp -r m1b m1c
  run $np_ update --data s1c --model m1c --input b1.csv --strategy warm --set update.warm_sweeps=6 --json --quiet > u1_$np_.json
  check "ials: the judgement on $np_ ranks = on 2 ranks (1e-12)" $PY -c "
import json; a, b = json.load(open('u1.json')), json.load(open('u1_$np_.json'))
for k in ('diff_mean', 'diff_lo', 'diff_hi', 'champion_score', 'challenger_score'):
    assert abs(a[k] - b[k]) <= 1e-12, (k, a[k], b[k])
assert a['diff_users'] == b['diff_users'] and a['decision'] == b['decision'], (a, b)"
done

# 3. iALS, the rule the other way: a worse challenger (IMF_TEST_CHALLENGER=worse: item factors
# shifted by one row) is kept out; an equal one (=same: the champion itself) is promoted; a NaN
# one never
fresh s2; run 2 train --data s2 --model m2 $ials --set model.iterations=5 || bad "train ials 2"
cp -r s2 s2b; cp -r m2 m2b; cp -r s2 s2c; cp -r m2 m2c
v2=$(cur m2)
IMF_TEST_CHALLENGER=worse run 2 update --data s2 --model m2 --input b1.csv --strategy fold-in --json > w.json 2> w.log
check "ials worse challenger: rejected, negative interval, CURRENT kept" $PY -c "
import json; d = json.load(open('w.json'))
assert d['decision'] == 'rejected' and d['diff_mean'] < 0 and d['diff_hi'] < 0, d"
check "ials worse challenger: CURRENT unchanged" test "$(cur m2)" = "$v2"
check "ials worse challenger: the log line names metric, both scores, interval, users, verdict" \
  grep -Eq "fold-in challenger: holdout NDCG@10 [0-9.]+ vs champion [0-9.]+, diff -[0-9.e-]+ \[95% CI -[0-9.e-]+, -[0-9.e-]+\] over [0-9]+ users \(paired bootstrap.*\) -> rejected" w.log
IMF_TEST_CHALLENGER=same run 2 update --data s2b --model m2b --input b1.csv --strategy fold-in --json --quiet > e.json
check "ials equal challenger: promoted with diff exactly 0" $PY -c "
import json; d = json.load(open('e.json'))
assert d['decision'] == 'promoted' and d['diff_mean'] == 0 and d['diff_lo'] == 0 and d['diff_hi'] == 0 and d['diff_users'] > 100, d"
IMF_TEST_CHALLENGER=nan run 2 update --data s2c --model m2c --input b1.csv --strategy fold-in --json --quiet > n.json
check "ials NaN challenger: never promoted" $PY -c "
import json; d = json.load(open('n.json'))
assert d['decision'] == 'rejected' and 'non-finite' in d['note'], d"
# auto escalates on the new verdict: a worse fold-in goes to warm, then retrain
fresh s2d; run 2 train --data s2d --model m2d $ials --set model.iterations=5
IMF_TEST_CHALLENGER=worse run 2 update --data s2d --model m2d --input b1.csv --strategy auto --set update.auto_share=0.9 \
  --json --quiet > a.json
check "ials auto: a worse challenger escalates fold-in -> warm -> retrain (judged by ndcg@10)" $PY -c "
import json; d = json.load(open('a.json'))
assert d['strategy'] == 'retrain' and 'auto: fold-in challenger' in d['note'] and 'ndcg@10' in d['note'], d"

# 4b. pop (a baseline judged by its ranking metric): worse (its counts shifted by one item) kept
# out, the champion itself promoted with diff 0, NaN never
pop="--set model.type=pop --quiet"
fresh s7; run 2 train --data s7 --model m7 $pop || bad "train pop"
cp -r s7 s7b; cp -r m7 m7b; cp -r s7 s7c; cp -r m7 m7c
v7=$(cur m7)
IMF_TEST_CHALLENGER=worse run 2 update --data s7 --model m7 --input b1.csv --json --quiet > pw.json
check "pop worse challenger: judged by ndcg@10, rejected, CURRENT kept" $PY -c "
import json; d = json.load(open('pw.json'))
assert d['metric'] == 'ndcg@10' and d['decision'] == 'rejected' and d['diff_mean'] < 0, d"
check "pop worse challenger: CURRENT unchanged" test "$(cur m7)" = "$v7"
IMF_TEST_CHALLENGER=same run 2 update --data s7b --model m7b --input b1.csv --json --quiet > pe.json
check "pop equal challenger: promoted with diff 0" $PY -c "
import json; d = json.load(open('pe.json'))
assert d['decision'] == 'promoted' and d['diff_mean'] == 0 and d['diff_users'] > 100, d"
IMF_TEST_CHALLENGER=nan run 2 update --data s7c --model m7c --input b1.csv --json --quiet > pn.json
check "pop NaN challenger: never promoted" $PY -c "
import json; d = json.load(open('pn.json'))
assert d['decision'] == 'rejected' and 'non-finite' in d['note'], d"

# 4. EASE: the same rule; status names the metric; status --plot draws it
fresh s4; run 2 train --data s4 --model m4 --set model.type=ease --set model.ease_lambda=50 --quiet || bad "train ease"
cp -r s4 s4b; cp -r m4 m4b; cp -r s4 s4c; cp -r m4 m4c
v4=$(cur m4)
IMF_TEST_CHALLENGER=worse run 2 update --data s4 --model m4 --input b1.csv --json --quiet > ew.json
check "ease worse challenger (-B): rejected, negative interval, CURRENT kept" $PY -c "
import json; d = json.load(open('ew.json'))
assert d['metric'] == 'ndcg@10' and d['decision'] == 'rejected' and d['diff_hi'] < 0, d" 
check "ease worse challenger: CURRENT unchanged" test "$(cur m4)" = "$v4"
IMF_JUDGE_DUMP=$tmp/d4.txt run 2 update --data s4b --model m4b --input b1.csv --json --quiet > eg.json
check "ease update (equal within the tolerance or better): promoted" $PY -c "
import json; d = json.load(open('eg.json'))
assert d['decision'] == 'promoted' and d['diff_mean'] >= -0.005 * d['champion_score'] and d['diff_users'] > 100, d"
check "ease: the interval = numpy's paired bootstrap (1e-9)" $PY boot.py d4.txt eg.json
IMF_TEST_CHALLENGER=nan run 2 update --data s4c --model m4c --input b1.csv --json --quiet > en.json
check "ease NaN weights: never promoted" $PY -c "
import json; d = json.load(open('en.json'))
assert d['decision'] == 'rejected' and 'non-finite' in d['note'], d"
run 1 update --data s4b --model m4b --set update.metric=rmse --quiet > /dev/null 2>&1
check "ease with update.metric=rmse: usage error (exit 2)" test $? -eq 2
run 1 status --model m4b --quiet > st4.txt
check "status: the score columns are headed by 'metric' and the ease row names ndcg@10" \
  sh -c "grep -q 'metric' st4.txt && grep -q 'champion' st4.txt && grep -q 'diff \[95% CI\]' st4.txt && grep -Eq ' gram +promoted .* ndcg@10 ' st4.txt"
for d in m4b m1; do
  rm -f $d.png
  run 2 status --model $d --plot $tmp/$d.png --quiet > /dev/null 2> plot_$d.log; rc=$?
  check "status --plot on $d: exit 0 ($rc), a non-empty PNG" sh -c "test $rc -eq 0 && test -s $tmp/$d.png && head -c 8 $tmp/$d.png | od -An -c | grep -q 'P   N   G'"
done

# 5. ALS: judged by RMSE (d_u = champion's summed squared error - challenger's); the touched
# read and the full read give the same interval; older registry lines still load
fresh s5; run 2 train --data s5 --model m5 --set model.k=8 --set model.iterations=8 --quiet || bad "train als"
cp -r s5 s5f; cp -r m5 m5f
IMF_JUDGE_DUMP=$tmp/d5.txt run 2 update --data s5 --model m5 --input b1.csv --strategy fold-in --json 2> t5.log > t5.json
run 3 update --data s5f --model m5f --input b1.csv --strategy fold-in --set update.foldin_read=full --json --quiet > f5.json
check "als: judged by rmse; champion_rmse = champion_score (to the printed digits)" $PY -c "
import json; d = json.load(open('t5.json'))
assert d['metric'] == 'rmse' and abs(d['champion_rmse'] - d['champion_score']) < 1e-5 * d['champion_score'], d
assert abs(d['challenger_rmse'] - d['challenger_score']) < 1e-5 * d['challenger_score'] and d['diff_users'] > 100, d"
check "als: the touched read was used" grep -q "touched read" t5.log
check "als: the interval = numpy's paired bootstrap (1e-9)" $PY boot.py d5.txt t5.json
check "als: touched read (2 ranks) and full read (3 ranks): the same interval and users (1e-9)" $PY -c "
import json; a, b = json.load(open('t5.json')), json.load(open('f5.json'))
for k in ('diff_mean', 'diff_lo', 'diff_hi'):
    assert abs(a[k] - b[k]) <= 1e-9 * max(1, abs(a[k])), (k, a[k], b[k])
assert a['diff_users'] == b['diff_users'] and a['decision'] == b['decision'], (a, b)"
run 1 status --model m5 --quiet > st5.txt
check "status: the als update row names rmse" grep -Eq ' fold-in +(promoted|rejected) .* rmse ' st5.txt
$PY - <<'PYEOF'
import json, re
lines = open('m5/registry.jsonl').read().splitlines()
out = []
for l in lines:  # a registry written before this change: no metric for RMSE, no diff_*
    d = json.loads(l)
    for k in ('diff_mean', 'diff_lo', 'diff_hi', 'diff_users', 'newest_score', 'holdout_users'):
        d.pop(k, None)
    if d.get('metric') == 'rmse':
        for k in ('metric', 'champion_score', 'challenger_score'):
            d.pop(k, None)
    out.append(json.dumps(d, separators=(',', ':')))
open('m5/registry.jsonl', 'w').write('\n'.join(out) + '\n')
PYEOF
run 1 status --model m5 --quiet > st5o.txt 2>&1; rc=$?
check "older registry lines (no metric, no diff_*) still load; the row says rmse ($rc)" \
  sh -c "test $rc -eq 0 && grep -Eq ' fold-in +(promoted|rejected) .* rmse ' st5o.txt"
run 1 update --data s5 --model m5 --input b2.csv --strategy fold-in --json --quiet > t5b.json 2> t5b.log
check "after older registry lines: the next fold-in still judges (reads the whole store)" $PY -c "
import json; d = json.load(open('t5b.json')); assert d['metric'] == 'rmse' and d['diff_users'] > 0, d"

# 6. drift on the ranking metric: newest_score against the mean of the previous updates'
# (update.drift_threshold = 0: the flag must equal newest_score < drift_baseline, computed here;
# negative thresholds are refused up front since issue 22)
fresh s6; run 2 train --data s6 --model m6 $ials --set model.iterations=3 || bad "train ials 6"
$PY - <<'PYEOF'
lines = open('b1.csv').read().splitlines()
hdr, rows = lines[0], lines[1:]
for j in range(3):
    open('c%d.csv' % j, 'w').write('\n'.join([hdr] + rows[j::3]) + '\n')
PYEOF
for j in 0 1 2; do
  run 2 update --data s6 --model m6 --input c$j.csv --strategy fold-in --set update.drift_threshold=0 --json --quiet > dr$j.json
done
check "ranking drift: newest_score recorded; flagged exactly when it falls below the history" $PY -c "
import json; d = [json.load(open('dr%d.json' % j)) for j in range(3)]
assert all(x['newest_score'] is not None and x['newest_score'] >= 0 for x in d), d
assert d[0]['drift'] is False and d[1]['drift'] is False, [x['drift'] for x in d]
assert d[2]['drift_baseline'] is not None and d[2]['newest_rmse'] is None, d[2]
base = (d[0]['newest_score'] + d[1]['newest_score']) / 2
assert abs(d[2]['drift_baseline'] - base) < 1e-6 * max(1, base), (d[2]['drift_baseline'], base)
assert d[2]['drift'] is (d[2]['newest_score'] < d[2]['drift_baseline']), d[2]"

echo "e2e_judge: $pass passed, $fail failed"
[ $fail -eq 0 ]
