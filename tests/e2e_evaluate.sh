#!/usr/bin/env bash
# e2e_evaluate.sh - `evaluate` and `recommend` through the real binary: the ranking metrics of
# `evaluate --test` equal an independent numpy computation over the lists exported by
# `recommend --all` (and the HDF5 export holds the same lists); RMSE equals train --test's;
# results do not depend on the rank count; every protocol runs; recommend's error paths.
set -uo pipefail
bin="${IMF_BIN:?}"; mpiexec="${IMF_MPIEXEC:-mpirun}"
PY=/usr/bin/python3
tmp=$(mktemp -d /tmp/imf-e2e-eval.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/e2elib.sh"
jget() { $PY -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }
cd "$tmp"
run 2 synth --out all.csv --users 400 --items 300 --ratings 30000 --seed 11 --quiet
$PY - <<'PYEOF'
import hashlib
# synth repeats no (user, item) pair without --rerate, but keep the latest of each (the store's duplicate policy) so
# that the test file means the same to every scorer
last = {}
lines = open("all.csv").read().splitlines()
for line in lines[1:]:
    u, i, r, t = line.split(",")
    if (u, i) not in last or int(t) >= int(last[(u, i)].split(",")[3]): last[(u, i)] = line
with open("train.csv", "w") as tr, open("test.csv", "w") as te:
    tr.write(lines[0] + "\n"); te.write(lines[0] + "\n")
    for line in last.values():
        (te if hashlib.md5(line.encode()).digest()[0] < 51 else tr).write(line + "\n")
PYEOF
sc="--set clean.scale_min=1 --set clean.scale_max=5"
run 2 prepare --input train.csv --data st $sc --quiet
run 2 train --data st --model m $sc --set model.k=8 --set model.iterations=8 --set model.lambda=0.1 \
  --set model.validation_fraction=0.1 --test test.csv --quiet --json > train.json
run 2 evaluate --data st --model m --test test.csv --k 10 --json --quiet > ev2.json; rc=$?
check "evaluate --test: exit 0" test $rc -eq 0
run 1 evaluate --data st --model m --test test.csv --k 10 --json --quiet > ev1.json
run 3 evaluate --data st --model m --test test.csv --k 10 --json --quiet > ev3.json
check "evaluate RMSE equals train --test's" $PY -c "
import json; a=json.load(open('ev2.json')); b=json.load(open('train.json'))
assert abs(a['rmse']-b['test_rmse'])<1e-5 and abs(a['mae']-b['test_mae'])<1e-5, (a['rmse'], b['test_rmse'])"
check "evaluate: same metrics on 1, 2 and 3 ranks" $PY -c "
import json; r=[json.load(open('ev%d.json'%n)) for n in (1,2,3)]
for k in ('rmse','mae','precision@10','recall@10','ndcg@10','map@10','hit_rate@10','coverage@10'):
    assert abs(r[0][k]-r[1][k])<1e-9 and abs(r[0][k]-r[2][k])<1e-9, k"
check "evaluate --json: plain keys, protocol and k" $PY -c "
import json; a=json.load(open('ev2.json'))
assert a['protocol']=='test' and a['k']==[10]
for k in ('rmse','mae','precision@10','recall@10','f1@10','ndcg@10','map@10','hit_rate@10','coverage@10'): assert k in a, k"
run 2 recommend --model m --data st --all --out recs.csv --top 10 --quiet
run 3 recommend --model m --data st --all --out recs.h5 --top 10 --quiet
check "recommend --all: CSV written" test -s recs.csv
# The independent computation (docs/METRICS.md), from the exported lists only.
check "numpy cross-check of precision/recall/ndcg/map/hit/coverage@10" $PY - <<'PYEOF'
import csv, json, numpy as np
K = 10
train = {}; items = set()
for row in csv.reader(open("train.csv")):
    if row[0] == "user": continue
    train.setdefault(row[0], set()).add(row[1]); items.add(row[1])
rel = {}
for row in csv.reader(open("test.csv")):
    if row[0] == "user": continue
    if float(row[2]) >= 4 and row[1] in items and row[0] in train: rel.setdefault(row[0], set()).add(row[1])
recs = {}
for row in csv.reader(open("recs.csv")):
    if row[0] == "user": continue
    recs.setdefault(row[0], []).append((int(row[1]), row[2]))
P, R, N, A, H = [], [], [], [], []
for u, rs in rel.items():
    lst = [i for _, i in sorted(recs.get(u, []))][:K]
    assert not (set(lst) & train[u]), "a rated item was recommended"
    hits = np.array([1.0 if i in rs else 0.0 for i in lst] + [0.0] * (K - len(lst)))
    d = min(K, len(rs))
    P.append(hits.sum() / K); R.append(hits.sum() / d)
    disc = 1 / np.log2(np.arange(2, K + 2))
    N.append((hits * disc).sum() / disc[:d].sum())
    A.append((np.cumsum(hits) / np.arange(1, K + 1) * hits).sum() / d)
    H.append(float(hits.sum() > 0))
cov = len({i for u in rel for _, i in recs.get(u, [])[:K]}) / len(items)
ev = json.load(open("ev2.json"))
mine = dict(zip(["precision@10", "recall@10", "ndcg@10", "map@10", "hit_rate@10", "coverage@10"],
                [np.mean(P), np.mean(R), np.mean(N), np.mean(A), np.mean(H), cov]))
for k, v in mine.items():
    assert abs(ev[k] - v) < 2e-5, (k, ev[k], v)
assert ev["fold_results"][0]["users_ranked"] == len(rel)
print("numpy:", {k: round(v, 6) for k, v in mine.items()})
PYEOF
check "recommend --all .h5 (3 ranks) holds the CSV's lists" $PY - <<'PYEOF'
import csv, h5py
f = h5py.File("recs.h5", "r")
uid = [x.decode() for x in f["user_ids"][()]]; iid = [x.decode() for x in f["item_ids"][()]]
items = f["items"][()]
recs = {}
for row in csv.reader(open("recs.csv")):
    if row[0] != "user": recs.setdefault(row[0], []).append(row[2])
for r, u in enumerate(uid):
    assert [iid[j] for j in items[r] if j >= 0] == recs.get(u, []), u
PYEOF
u=$(sed -n 2p train.csv | cut -d, -f1)
run 2 recommend --model m --data st --user "$u" --top 5 --json --quiet > one.json
check "recommend --user equals its --all rows" $PY -c "
import json,csv; a=[x['item'] for x in json.load(open('one.json'))['items']]
b=[r[2] for r in csv.reader(open('recs.csv')) if r[0]=='$u'][:5]; assert a==b,(a,b)"
run 2 recommend --model m --data st --user no-such-user --quiet 2>err.txt; rc=$?
check "unknown user: exit 3" test $rc -eq 3
check "unknown user: clear message" grep -q "unknown user 'no-such-user'" err.txt
run 2 recommend --model m --data st --user no-such-user --fallback popular --top 3 --json --quiet > pop.json
check "--fallback popular" $PY -c "import json; d=json.load(open('pop.json')); assert d['fallback']=='popular' and len(d['items'])==3"
run 1 recommend --model m --user "$u" --items "$(sed -n 3p train.csv | cut -d, -f2),zzz" --json --quiet > it.json
check "--items: scores, unknown item marked" $PY -c "import json; d=json.load(open('it.json')); assert len(d['items'])==2 and any(x.get('unknown') for x in d['items'])"
i=$(sed -n 2p train.csv | cut -d, -f2)
run 1 recommend --model m --similar "$i" --top 4 --json --quiet > sim.json
check "--similar: 4 items, not itself, cosine <= 1" $PY -c "
import json; d=json.load(open('sim.json')); assert len(d['items'])==4 and all(x['item']!='$i' and x['score']<=1.0001 for x in d['items'])"
for p in standing random leave-k-out temporal; do
  run 2 evaluate --data st --model m --protocol $p --k 5,10 --json --quiet > p.json; rc=$?
  check "protocol $p runs" $PY -c "import json; d=json.load(open('p.json')); assert d['protocol']=='$p' and d['ndcg@10']>=0 and d['rmse']>0"
done
run 2 evaluate --data st --set model.k=4 --set model.iterations=4 --folds 3 --json --quiet > kf.json
check "--folds 3: three folds, mean and sd" $PY -c "import json; d=json.load(open('kf.json')); assert d['folds']==3 and len(d['fold_results'])==3 and d['sd']['rmse']>0"
run 2 evaluate --input all.csv --set model.type=ials --set model.k=8 --set model.iterations=6 --set eval.binarize=4 \
  --protocol heldout-users --k 20,50,100 --json --quiet > ho.json
check "held-out users (implicit ALS): recall@20/50, ndcg@100" $PY -c "
import json; d=json.load(open('ho.json')); assert d['recall@20']>0 and d['ndcg@100']>0 and d['rmse'] is None, d"
echo "e2e_evaluate: $pass passed, $fail failed"
[ $fail -eq 0 ]
