#!/usr/bin/env bash
# e2e_ease.sh - `incremf train --set model.type=ease` through the real binary: the version holds
# X (binary training rows, standing holdout excluded) sparse (/ease/x_ptr, /ease/x_idx) and B
# (/ease/BT) computed from X exactly as numpy does (G = X^T X + lambda I, B = I - P diagMat(1/diag
# P), diag 0) on 1, 2, 3 and 4 ranks (grids 1x1, 1x2, 1x3, 2x2), and no replicated X or B^T (the
# factors are 1-wide placeholders); inspect, recommend (--user, --all, --items, --similar: numpy's
# answers, the same on 1, 2 and 4 ranks) and the held-out-users evaluation work on it; a version
# in the older replicated form (P = X, Q = B^T; made with h5py, digest recomputed) still loads
# and answers the same; lambda <= 0 is refused. B is stored in f32 (numpy's B to 1e-6), the Gram
# matrix not at all. update (3 ranks, on a version trained on 4) applies the new batch's rows: X
# equals a fresh train's on all data (1 rank) and B is numpy's B of it; superseded ratings change
# neither B nor P; forget empties a user's row in every version, B = numpy's without the user.
# (The P file, Woodbury vs refactorisation, bytes per version: e2e_ease_update.sh.)
set -uo pipefail
bin="${IMF_BIN:?}"; mpiexec="${IMF_MPIEXEC:-mpirun}"
PY=/usr/bin/python3
tmp=$(mktemp -d /tmp/imf-e2e-ease.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/e2elib.sh"
cd "$tmp"
# eh.py: X and B of a version in either layout, its ids, its digest (docs/FORMAT.md), and the
# older replicated layout made from the sparse one
cat > eh.py <<'PYEOF'
import h5py, numpy as np, os, shutil
def current(d): return os.path.join(d, "versions", open(os.path.join(d, "CURRENT")).read().strip())
def X(f):
    if "ease/x_ptr" in f:
        p, ix = f["ease/x_ptr"][()], f["ease/x_idx"][()]
        x = np.zeros((len(p) - 1, int(f.attrs["nitems"])))
        for u in range(len(p) - 1): x[u, ix[p[u]:p[u + 1]]] = 1.0
        return x
    return f["factors/P"][()].astype(np.float64)
def B(f): return f["ease/BT"][()].T
def ids(f, s):
    blob, off = f["ids/%s_blob" % s][()].tobytes(), f["ids/%s_off" % s][()]
    return [blob[off[j]:off[j + 1]].decode() for j in range(len(off) - 1)]
from imf_digest import digest  # docs/FORMAT.md, "Content digest" (tests/imf_digest.py)
def to_legacy(src, dst):
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        x, bt, n = X(f), f["ease/BT"][()], int(f.attrs["nitems"])
        for k in ["factors/P", "factors/Q", "ease/x_ptr", "ease/x_idx"]: del f[k]
        f["factors/P"] = x.astype("<f4"); f["factors/Q"] = bt.astype("<f4")
        f.attrs["k"] = np.int64(n); f.attrs["kw"] = np.int64(n)
        del f.attrs["ease_x_nnz"]; del f.attrs["ease_x_hash"]
        f.attrs["content_sha256"] = np.bytes_(digest(f))
PYEOF
export PYTHONPATH="$tmp:$(cd "$(dirname "$0")" && pwd)"
run 2 synth --out r.csv --users 300 --items 150 --ratings 9000 --seed 5 --quiet
run 2 prepare --input r.csv --data st --set clean.scale_min=1 --set clean.scale_max=5 --quiet

# The version against numpy: X binary, X excludes the standing holdout (10%), B = numpy's B of X;
# stored sparse, with 1-wide placeholder factors (no replicated X or B^T), digest as documented.
verify() { $PY - "$1" "$2" "$3" <<'PYEOF'
import h5py, numpy as np, sys, eh
d, lam, stored = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
f = h5py.File(eh.current(d), "r")
assert f["factors/P"].shape == (f.attrs["nusers"], 1) and f["factors/Q"].shape == (f.attrs["nitems"], 1)
assert not f["factors/P"][()].any() and not f["factors/Q"][()].any() and f.attrs["k"] == f.attrs["kw"] == 1
assert f["ease/x_ptr"].dtype == np.int64 and f["ease/x_idx"].dtype == np.int32
X = eh.X(f)
assert X.sum() == f.attrs["ease_x_nnz"] == len(f["ease/x_idx"])
assert 0.85 * stored < X.sum() < 0.95 * stored, X.sum()  # minus the 10% standing holdout
P = np.linalg.inv(X.T @ X + lam * np.eye(X.shape[1]))
B = -P / np.diag(P)[None, :]; np.fill_diagonal(B, 0.0)
err = np.abs(eh.B(f) - B).max() / np.abs(B).max()
assert err < 1e-6, err  # B is stored in f32
assert f["ease/BT"].dtype == np.float32 and "ease/gram" not in f
assert eh.digest(f) == f.attrs["content_sha256"].decode()
PYEOF
}
stored=$(run 1 inspect st --json --quiet | $PY -c "import json,sys; print(json.load(sys.stdin)['ratings'])")
nusers=$(run 1 inspect st --json --quiet | $PY -c "import json,sys; print(json.load(sys.stdin)['users'])")
for np in $(nps 1 2 3 4); do
  rm -rf m; run $np train --data st --model m --set model.type=ease --set model.ease_lambda=50 --quiet || bad "train ease at $np ranks"
  s=$(verify m 50 "$stored"); rc=$?
  check "ease at $np ranks: X sparse, B = numpy's B (f32: 1e-6), no replicated X or B^T, digest as documented" test $rc -eq 0
done
run 1 inspect m --json --quiet > i.json
check "inspect: type ease, kw = 1, no biases, mu 0, B and sparse X stored (no Gram matrix: P is in a P file)" $PY -c "
import json; d=json.load(open('i.json')); assert d['type']=='ease' and d['kw']==1 and d['items']==150 and d['with_bias'] is False and d['mu']==0 and d['ease_items']==150 and not d['ease_gram'] and d['ease_b'] and d['ease_x'] and d['ease_x_nnz']>0, d"
u=$(sed -n 2p r.csv | cut -d, -f1)
run 2 recommend --model m --data st --user "$u" --top 10 --json --quiet > rec.json
check "recommend: 10 items, none the user rated" $PY -c "
import json, csv; d=json.load(open('rec.json'))
rated={r['item'] for r in csv.DictReader(open('r.csv')) if r['user']=='$u'}
assert len(d['items'])==10 and not rated & {x['item'] for x in d['items']}, d"
i1=$(sed -n 3p r.csv | cut -d, -f2); i2=$(sed -n 40p r.csv | cut -d, -f2)
# recommend answers (B on a 1 x P grid, X sparse): the same on 1, 2 and 4 ranks, all of them
# answers DIR TAG NP: --all, --user, --items, --similar into TAG.*
answers() {
  run "$3" recommend --model "$1" --data st --all --out "$2.all.csv" --top 5 --quiet &&
  run "$3" recommend --model "$1" --data st --user "$u" --top 10 --json --quiet > "$2.user.json" &&
  run "$3" recommend --model "$1" --user "$u" --items "$i1,$i2,nosuch" --json --quiet > "$2.items.json" &&
  run "$3" recommend --model "$1" --similar "$i1" --top 8 --json --quiet > "$2.sim.json"
}
for np in 1 2 4; do answers m a$np $np || bad "recommend on $np ranks"; done
check "recommend --all on 4 ranks: 5 lines per user" test "$(tail -n +2 a4.all.csv | wc -l)" -eq $((5 * nusers))
for t in all.csv user.json items.json sim.json; do
  check "recommend ${t%.*}: 1, 2 and 4 ranks give the same answer" eval "cmp -s a1.$t a2.$t && cmp -s a1.$t a4.$t"
done
check "recommend --user, --items, --similar: numpy's answers from X and B" $PY - m "$u" <<'PYEOF'
import h5py, numpy as np, json, sys, csv, eh
d, u = sys.argv[1], sys.argv[2]
f = h5py.File(eh.current(d), "r")
users, items = eh.ids(f, "user"), eh.ids(f, "item")
B = eh.B(f); x = eh.X(f)[users.index(u)]
s = x @ B
rated = {items.index(r["item"]) for r in csv.DictReader(open("r.csv")) if r["user"] == u}
order = [j for j in np.argsort(-s, kind="stable") if j not in rated][:10]
got = [items.index(e["item"]) for e in json.load(open("a2.user.json"))["items"]]
assert got == order, (got, order)
it = json.load(open("a2.items.json"))["items"]
assert [e["item"] for e in it if e.get("unknown")] == ["nosuch"], it
for e in it:
    if not e.get("unknown"): assert abs(e["score"] - s[items.index(e["item"])]) <= 1e-5 * (1 + abs(s[items.index(e["item"])])), e
t = items.index(json.load(open("a2.sim.json"))["similar_to"])
n = np.linalg.norm(B, axis=0); c = (B.T @ B[:, t]) / (n * n[t]); c[t] = -np.inf
want = list(np.argsort(-c, kind="stable")[:8])
sim = json.load(open("a2.sim.json"))["items"]
assert [items.index(e["item"]) for e in sim] == want, ([items.index(e["item"]) for e in sim], want)
assert all(abs(e["score"] - c[items.index(e["item"])]) < 1e-6 for e in sim)
PYEOF
# a version in the older replicated form (P = X, Q = B^T as f32, no sparse X) still loads: the
# same answers (--items scores through the same sums), evaluate and update work on it
rm -rf old; cp -r m old
$PY -c "import eh; eh.to_legacy(eh.current('m'), eh.current('old'))"
run 1 inspect old --json --quiet > oi.json
check "older layout: inspect shows the replicated form (kw = items, no sparse X)" $PY -c "
import json; d=json.load(open('oi.json')); assert d['kw']==150 and not d['ease_x'] and d['ease_b'], d"
answers old o2 2 || bad "recommend on the older layout"
for t in all.csv user.json items.json sim.json; do
  check "older layout: recommend ${t%.*} the same as the sparse layout's" cmp -s a1.$t o2.$t
done
run 2 evaluate --input r.csv --set model.type=ease --set model.ease_lambda=50 --set eval.binarize=4 \
  --protocol heldout-users --k 20,50 --json --quiet > ho.json
check "held-out users (EASE): recall@20 > 0, no rating metrics" $PY -c "
import json; d=json.load(open('ho.json')); assert d['recall@20']>0 and d['rmse'] is None, d"
# a version's B read block-cyclically (each rank its columns) for the standing holdout
run 1 evaluate --data st --model m --protocol standing --k 10 --json --quiet > st1.json
run 3 evaluate --data st --model m --protocol standing --k 10 --json --quiet > st3.json
check "evaluate --model (standing): the same figures on 1 and 3 ranks" $PY -c "
import json; a=json.load(open('st1.json')); b=json.load(open('st3.json')); assert a['ndcg@10']>0 and a['ndcg@10']==b['ndcg@10'] and a['recall@10']==b['recall@10'], (a, b)"
run 2 evaluate --data st --model old --protocol standing --k 10 --json --quiet > sto.json
check "older layout: evaluate --model (standing) gives the same figures" $PY -c "
import json; a=json.load(open('st1.json')); b=json.load(open('sto.json')); assert a['ndcg@10']==b['ndcg@10'] and a['recall@10']==b['recall@10'], (a, b)"
echo "version file: $(stat -c %s "$($PY -c "import eh; print(eh.current('m'))")") bytes sparse, $(stat -c %s "$($PY -c "import eh; print(eh.current('old'))")") bytes in the older replicated layout"
run 2 train --data st --model bad --set model.type=ease --set model.ease_lambda=0 --quiet 2>/dev/null; rc=$?
check "lambda = 0 refused" test $rc -ne 0
# ---- update: the change of X's rows applied to the stored P (low rank) or refactorised ----
# gram FILE_A FILE_B: the same X; B of both versions = numpy's B of that X (f32: 1e-6), digests
# as documented (the Gram matrix is no longer stored: G = X^T X of the stored X).
gram() { $PY - "$1" "$2" "$3" <<'PYEOF'
import h5py, numpy as np, sys, eh
a, b, lam = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r"), float(sys.argv[3])
X = eh.X(a)
assert np.array_equal(X, eh.X(b)), "X differs"
Ga = X.T @ X
n = X.shape[1]
assert a.attrs["ease_items"] == n and a["ease/BT"].shape == (n, n)
P = np.linalg.inv(Ga + lam * np.eye(n)); B = -P / np.diag(P)[None, :]; np.fill_diagonal(B, 0.0)
for f in (a, b):
    assert np.abs(f["ease/BT"][()].T - B).max() <= 1e-6 * np.abs(B).max()
    assert f["factors/P"].shape[1] == 1 and eh.digest(f) == f.attrs["content_sha256"].decode()
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
# update then recommend: the promoted version answers from its own X and B (numpy), on 1 and 4 ranks
answers m n1 1 && answers m n4 4 || bad "recommend after update"
check "after update: recommend answers the same on 1 and 4 ranks" eval "cmp -s n1.all.csv n4.all.csv && cmp -s n1.user.json n4.user.json && cmp -s n1.items.json n4.items.json && cmp -s n1.sim.json n4.sim.json"
check "after update: recommend --user is numpy's top 10 of the new version" $PY - m "$u" <<'PYEOF'
import h5py, numpy as np, json, sys, csv, eh
d, u = sys.argv[1], sys.argv[2]
f = h5py.File(eh.current(d), "r")
users, items = eh.ids(f, "user"), eh.ids(f, "item")
s = eh.X(f)[users.index(u)] @ eh.B(f)
rated = {items.index(r["item"]) for fn in ("r.csv", "r2.csv") for r in csv.DictReader(open(fn)) if r["user"] == u}
order = [j for j in np.argsort(-s, kind="stable") if j not in rated][:10]
got = [items.index(e["item"]) for e in json.load(open("n1.user.json"))["items"]]
assert got == order, (got, order)
PYEOF
# the older layout updates too (its X read from P); the challenger is written sparse
run 2 update --data st --model old --set update.tolerance=1 --json --quiet > uo.json; rc=$?
check "older layout: update works and writes the sparse layout, the same Gram and X as from the sparse champion" eval "test $rc -eq 0 && gram $v2 \$(ver old uo.json) 50"
rm -rf fresh; run 1 train --data st --model fresh --set model.type=ease --set model.ease_lambda=50 --quiet
check "updated X (3 ranks) == X of a fresh train on all data (1 rank); both B = numpy's" gram "$v2" fresh/versions/v000001.h5 50
# superseded ratings: pairs already present, new values -> X and the Gram do not change
head -61 r.csv | $PY -c "
import sys, csv
r = csv.reader(sys.stdin); w = csv.writer(sys.stdout, lineterminator='\n'); w.writerow(next(r))
for row in r: row[2] = '1' if row[2] != '1' else '5'; w.writerow(row)" > r3.csv
run 2 update --data st --model m --input r3.csv --strategy retrain --set update.tolerance=1 --json --quiet > u3.json; rc=$?
v3=$(ver m u3.json)
check "update with only superseded ratings: 0 changed users, B and P unchanged" $PY -c "
import json, h5py, numpy as np; d=json.load(open('u3.json')); assert d['strategy']=='gram' and 'rows of 0 changed users' in d['note'], d
a, b = h5py.File('$v2','r'), h5py.File('$v3','r')
assert np.array_equal(a['ease/BT'][()], b['ease/BT'][()]) and a.attrs['ease_p_hash'] == b.attrs['ease_p_hash']"
# forget: the user's row leaves the Gram matrix of every version; equal to a fresh train without them
fu=$(sed -n 2p r.csv | cut -d, -f1)
run 2 forget --data st --model m --user "$fu" --quiet; rc=$?
check "forget on an EASE model directory" test $rc -eq 0
rm -rf fresh2; run 3 train --data st --model fresh2 --set model.type=ease --set model.ease_lambda=50 --quiet
check "after forget: the version's X == a fresh train's without the user; B = numpy's" gram "$v3" fresh2/versions/v000001.h5 50
check "after forget: the first version (fewer items) lost the user's row too" $PY -c "
import h5py, numpy as np, eh, subprocess; f=h5py.File('m/versions/v000001.h5','r'); X=eh.X(f)
ids = eh.ids(f, 'user'); assert '$fu' not in ids and not X[ids.index('')].any() and X.sum() > 0 and 'ease/x_ptr' in f
P = np.linalg.inv(X.T @ X + 50 * np.eye(X.shape[1])); B = -P / np.diag(P)[None, :]; np.fill_diagonal(B, 0.0)
assert np.abs(eh.B(f) - B).max() <= 1e-6 * np.abs(B).max()"
run 1 status --model m --json --quiet > s.json
check "status: the gram updates in the lineage" $PY -c "
import json; d=json.load(open('s.json')); s=[v['record']['strategy'] for v in d['versions']]; assert s==['train','gram','gram'], s"
echo "e2e_ease: $pass passed, $fail failed"
[ $fail -eq 0 ]
