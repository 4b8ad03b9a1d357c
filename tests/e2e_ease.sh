#!/usr/bin/env bash
# e2e_ease.sh - `incremf train --set model.type=ease` through the real binary: the version holds
# P = X (binary training rows, standing holdout excluded) and Q = B^T with B computed from X
# exactly as numpy does (G = X^T X + lambda I, B = I - P diagMat(1/diag P), diag 0) on 1, 2, 3
# and 4 ranks (grids 1x1, 1x2, 1x3, 2x2); inspect, recommend and the held-out-users evaluation
# work on it; lambda <= 0 is refused. update (3 ranks, on a version trained on 4) adds the new
# batch's rows to the stored Gram matrix and re-solves: the Gram equals a fresh train's on all data
# (1 rank) bitwise, and is unchanged by superseded ratings; forget subtracts a user's row from every
# version's Gram, equal to a fresh train without the user.
set -uo pipefail
bin="${IMF_BIN:?}"; mpiexec="${IMF_MPIEXEC:-mpirun}"
PY=/usr/bin/python3
tmp=$(mktemp -d /tmp/imf-e2e-ease.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/e2elib.sh"
cd "$tmp"
run 2 synth --out r.csv --users 300 --items 150 --ratings 9000 --seed 5 --quiet
run 2 prepare --input r.csv --data st --set clean.scale_min=1 --set clean.scale_max=5 --quiet

# The version against numpy: X binary, X excludes the standing holdout (10%), Q = B^T.
verify() { $PY - "$1" "$2" "$3" <<'PYEOF'
import h5py, numpy as np, sys, os
d, lam, stored = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
f = h5py.File(os.path.join(d, "versions", open(os.path.join(d, "CURRENT")).read().strip()), "r")
X = f["factors/P"][()].astype(np.float64); Q = f["factors/Q"][()].astype(np.float64)
assert set(np.unique(X)) <= {0.0, 1.0}, "P is not binary"
assert 0.85 * stored < X.sum() < 0.95 * stored, X.sum()  # minus the 10% standing holdout
P = np.linalg.inv(X.T @ X + lam * np.eye(X.shape[1]))
B = -P / np.diag(P)[None, :]; np.fill_diagonal(B, 0.0)
err = np.abs(Q - B.T).max() / np.abs(B).max()
assert err < 1e-5, err
print(np.abs(Q).sum())
PYEOF
}
stored=$(run 1 inspect st --json --quiet | $PY -c "import json,sys; print(json.load(sys.stdin)['ratings'])")
nusers=$(run 1 inspect st --json --quiet | $PY -c "import json,sys; print(json.load(sys.stdin)['users'])")
for np in 1 2 3 4; do
  rm -rf m; run $np train --data st --model m --set model.type=ease --set model.ease_lambda=50 --quiet || bad "train ease at $np ranks"
  s=$(verify m 50 "$stored"); rc=$?
  check "ease at $np ranks: P = X, Q = B^T of numpy's B (1e-5)" test $rc -eq 0
done
run 1 inspect m --json --quiet > i.json
check "inspect: type ease, kw = items, no biases, mu 0, Gram matrix and B stored" $PY -c "
import json; d=json.load(open('i.json')); assert d['type']=='ease' and d['kw']==d['items']==150 and d['with_bias'] is False and d['mu']==0 and d['ease_items']==150 and d['ease_gram'] and d['ease_b'], d"
u=$(sed -n 2p r.csv | cut -d, -f1)
run 2 recommend --model m --data st --user "$u" --top 10 --json --quiet > rec.json
check "recommend: 10 items, none the user rated" $PY -c "
import json, csv; d=json.load(open('rec.json'))
rated={r['item'] for r in csv.DictReader(open('r.csv')) if r['user']=='$u'}
assert len(d['items'])==10 and not rated & {x['item'] for x in d['items']}, d"
run 3 recommend --model m --data st --all --out all.csv --top 5 --quiet
check "recommend --all on 3 ranks" test "$(tail -n +2 all.csv | wc -l)" -eq $((5 * nusers))
# scoring with B distributed (each rank its columns, then a top-K merge): the same on any rank count
run 1 recommend --model m --data st --all --out all1.csv --top 5 --quiet
check "recommend --all: 1 rank and 3 ranks write the same lines" cmp -s all.csv all1.csv
check "recommend --user: numpy's top 10 of x_u B over the items the user has not rated" $PY - m "$u" <<'PYEOF'
import h5py, numpy as np, json, sys, os, csv
d, u = sys.argv[1], sys.argv[2]
f = h5py.File(os.path.join(d, "versions", open(os.path.join(d, "CURRENT")).read().strip()), "r")
blob, off = f["ids/user_blob"][()].tobytes(), f["ids/user_off"][()]
users = [blob[off[j]:off[j + 1]].decode() for j in range(len(off) - 1)]
blob, off = f["ids/item_blob"][()].tobytes(), f["ids/item_off"][()]
items = [blob[off[j]:off[j + 1]].decode() for j in range(len(off) - 1)]
B = f["ease/BT"][()].T; x = f["factors/P"][()][users.index(u)].astype(np.float64)
s = x @ B
rated = {items.index(r["item"]) for r in csv.DictReader(open("r.csv")) if r["user"] == u}
order = [j for j in np.argsort(-s, kind="stable") if j not in rated][:10]
got = [items.index(e["item"]) for e in json.load(open("rec.json"))["items"]]
assert got == order, (got, order)
PYEOF
run 2 evaluate --input r.csv --set model.type=ease --set model.ease_lambda=50 --set eval.binarize=4 \
  --protocol heldout-users --k 20,50 --json --quiet > ho.json
check "held-out users (EASE): recall@20 > 0, no rating metrics" $PY -c "
import json; d=json.load(open('ho.json')); assert d['recall@20']>0 and d['rmse'] is None, d"
# a version's B read block-cyclically (each rank its columns) for the standing holdout
run 1 evaluate --data st --model m --protocol standing --k 10 --json --quiet > st1.json
run 3 evaluate --data st --model m --protocol standing --k 10 --json --quiet > st3.json
check "evaluate --model (standing): the same figures on 1 and 3 ranks" $PY -c "
import json; a=json.load(open('st1.json')); b=json.load(open('st3.json')); assert a['ndcg@10']>0 and a['ndcg@10']==b['ndcg@10'] and a['recall@10']==b['recall@10'], (a, b)"
run 2 train --data st --model bad --set model.type=ease --set model.ease_lambda=0 --quiet 2>/dev/null; rc=$?
check "lambda = 0 refused" test $rc -ne 0
# ---- update: the Gram matrix is a sufficient statistic, updated and re-solved, never rebuilt ----
# gram FILE_A FILE_B: /ease/gram equal bitwise; equal to X^T X of the version's X; B of the
# version = numpy's B of that X (1e-5).
gram() { $PY - "$1" "$2" "$3" <<'PYEOF'
import h5py, numpy as np, sys
a, b, lam = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r"), float(sys.argv[3])
Ga, Gb = a["ease/gram"][()], b["ease/gram"][()]
assert Ga.shape == Gb.shape and np.array_equal(Ga, Gb), (Ga.shape, Gb.shape, np.abs(Ga - Gb).max())
X = a["factors/P"][()].astype(np.float64)
assert np.array_equal(X, b["factors/P"][()].astype(np.float64)), "X differs"
assert np.array_equal(X.T @ X, Ga), "gram is not X^T X"
n = X.shape[1]
assert a.attrs["ease_items"] == n and a["ease/BT"].shape == (n, n)
P = np.linalg.inv(Ga + lam * np.eye(n)); B = -P / np.diag(P)[None, :]; np.fill_diagonal(B, 0.0)
for f in (a, b):
    assert np.abs(f["ease/BT"][()].T - B).max() <= 1e-8 * np.abs(B).max()
    assert np.abs(f["factors/Q"][()] - B.T).max() <= 1e-5 * np.abs(B).max()
PYEOF
}
ver() { $PY -c "import json,sys; print('%s/versions/v%06d.h5' % (sys.argv[1], json.load(open(sys.argv[2]))['version']))" "$@"; }
# a batch with new users and new items (synth ids are u<N>/i<N>: more of them are new)
run 2 synth --out r2.csv --users 340 --items 170 --ratings 700 --seed 6 --quiet
# (update.tolerance = 1 promotes whatever the holdout says: these checks are about the Gram matrix)
run 3 update --data st --model m --input r2.csv --set update.tolerance=1 --json --quiet > u2.json; rc=$?
check "update of an EASE model (trained on 4 ranks) on 3 ranks" test $rc -eq 0
check "update: strategy gram, judged by ndcg on the holdout" $PY -c "
import json; d=json.load(open('u2.json')); assert d['strategy']=='gram' and d['metric'].startswith('ndcg@') and d['challenger_score']>0 and d['champion_score']>0 and d['decision']=='promoted', d"
v2=$(ver m u2.json)
rm -rf fresh; run 1 train --data st --model fresh --set model.type=ease --set model.ease_lambda=50 --quiet
check "updated Gram (3 ranks) == Gram of a fresh train on all data (1 rank), bitwise; B = numpy's" gram "$v2" fresh/versions/v000001.h5 50
# superseded ratings: pairs already present, new values -> X and the Gram do not change
head -61 r.csv | $PY -c "
import sys, csv
r = csv.reader(sys.stdin); w = csv.writer(sys.stdout, lineterminator='\n'); w.writerow(next(r))
for row in r: row[2] = '1' if row[2] != '1' else '5'; w.writerow(row)" > r3.csv
run 2 update --data st --model m --input r3.csv --strategy retrain --set update.tolerance=1 --json --quiet > u3.json; rc=$?
v3=$(ver m u3.json)
check "update with only superseded ratings: 0 changed users, Gram unchanged" $PY -c "
import json, h5py, numpy as np; d=json.load(open('u3.json')); assert d['strategy']=='gram' and 'rows of 0 changed users' in d['note'], d
assert np.array_equal(h5py.File('$v2','r')['ease/gram'][()], h5py.File('$v3','r')['ease/gram'][()])"
# forget: the user's row leaves the Gram matrix of every version; equal to a fresh train without them
fu=$(sed -n 2p r.csv | cut -d, -f1)
run 2 forget --data st --model m --user "$fu" --quiet; rc=$?
check "forget on an EASE model directory" test $rc -eq 0
rm -rf fresh2; run 3 train --data st --model fresh2 --set model.type=ease --set model.ease_lambda=50 --quiet
check "after forget: the version's Gram == a fresh train's without the user, bitwise" gram "$v3" fresh2/versions/v000001.h5 50
check "after forget: the first version (fewer items) lost the user's row too" $PY -c "
import h5py, numpy as np; f=h5py.File('m/versions/v000001.h5','r'); X=f['factors/P'][()].astype(np.float64)
assert np.array_equal(X.T @ X, f['ease/gram'][()])"
run 1 status --model m --json --quiet > s.json
check "status: the gram updates in the lineage" $PY -c "
import json; d=json.load(open('s.json')); s=[v['record']['strategy'] for v in d['versions']]; assert s==['train','gram','gram'], s"
echo "e2e_ease: $pass passed, $fail failed"
[ $fail -eq 0 ]
