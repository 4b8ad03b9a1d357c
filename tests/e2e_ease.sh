#!/usr/bin/env bash
# e2e_ease.sh - `incremf train --set model.type=ease` through the real binary: the version holds
# P = X (binary training rows, standing holdout excluded) and Q = B^T with B computed from X
# exactly as numpy does (G = X^T X + lambda I, B = I - P diagMat(1/diag P), diag 0) on 1, 2, 3
# and 4 ranks (grids 1x1, 1x2, 1x3, 2x2); inspect, recommend and the held-out-users evaluation
# work on it; lambda <= 0 and update of an EASE model are refused.
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
check "inspect: type ease, kw = items, no biases, mu 0" $PY -c "
import json; d=json.load(open('i.json')); assert d['type']=='ease' and d['kw']==d['items']==150 and d['with_bias'] is False and d['mu']==0, d"
u=$(sed -n 2p r.csv | cut -d, -f1)
run 2 recommend --model m --data st --user "$u" --top 10 --json --quiet > rec.json
check "recommend: 10 items, none the user rated" $PY -c "
import json, csv; d=json.load(open('rec.json'))
rated={r['item'] for r in csv.DictReader(open('r.csv')) if r['user']=='$u'}
assert len(d['items'])==10 and not rated & {x['item'] for x in d['items']}, d"
run 3 recommend --model m --data st --all --out all.csv --top 5 --quiet
check "recommend --all on 3 ranks" test "$(tail -n +2 all.csv | wc -l)" -eq $((5 * nusers))
run 2 evaluate --input r.csv --set model.type=ease --set model.ease_lambda=50 --set eval.binarize=4 \
  --protocol heldout-users --k 20,50 --json --quiet > ho.json
check "held-out users (EASE): recall@20 > 0, no rating metrics" $PY -c "
import json; d=json.load(open('ho.json')); assert d['recall@20']>0 and d['rmse'] is None, d"
run 2 train --data st --model bad --set model.type=ease --set model.ease_lambda=0 --quiet 2>/dev/null; rc=$?
check "lambda = 0 refused" test $rc -ne 0
run 2 synth --out r2.csv --users 300 --items 150 --ratings 500 --seed 6 --quiet
n0=$(run 1 inspect st --json --quiet | $PY -c "import json,sys; print(json.load(sys.stdin)['batches'])")
run 2 update --data st --model m --input r2.csv --quiet 2>/dev/null; rc=$?
n1=$(run 1 inspect st --json --quiet | $PY -c "import json,sys; print(json.load(sys.stdin)['batches'])")
check "update of an EASE model refused before appending" test $rc -ne 0 -a "$n0" = "$n1"
echo "e2e_ease: $pass passed, $fail failed"
[ $fail -eq 0 ]
