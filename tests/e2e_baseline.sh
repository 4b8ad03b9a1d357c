#!/usr/bin/env bash
# e2e_baseline.sh - the pop and bias baselines as model types through the real binary (train,
# evaluate --model/--baseline, recommend, update, forget; pop's top-N against a count in Python,
# bias between the global mean and ALS, rank-count independence), and the evaluation one can
# trust: heldout-users --folds N (disjoint folds covering every eligible user), unsupported flag
# combinations refused (exit 2), no "±" with one fold, --version N, the --test overlap share.
set -uo pipefail
bin="${IMF_BIN:?}"; mpiexec="${IMF_MPIEXEC:-mpirun}"
PY=/usr/bin/python3
tmp=$(mktemp -d /tmp/imf-e2e-baseline.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/e2elib.sh"
cd "$tmp"
run 1 synth --out all.csv --users 300 --items 200 --ratings 12000 --seed 5 --quiet
# one line per (user, item) (the latest, as the store keeps it); base: 85%, b1: 10% (some pairs
# new, all users and items known), other: 5% never stored (a disjoint test file)
$PY - <<'PYEOF'
import hashlib
lines = open("all.csv").read().splitlines()
last = {}
for l in lines[1:]:
    u, i, r, t = l.split(",")
    if (u, i) not in last or int(t) >= int(last[(u, i)].split(",")[3]): last[(u, i)] = l
out = {"base.csv": [], "b1.csv": [], "other.csv": []}
for l in last.values():
    h = hashlib.md5(l.encode()).digest()[0]
    out["other.csv" if h < 13 else "b1.csv" if h < 39 else "base.csv"].append(l)
for k, v in out.items(): open(k, "w").write("\n".join([lines[0]] + v) + "\n")
PYEOF
sc="--set clean.scale_min=1 --set clean.scale_max=5"
q="--quiet"
run 1 prepare --input base.csv --data st $sc --set holdout.fraction=0.2 $q || bad "prepare st"
run 1 prepare --input base.csv --data st0 $sc --set holdout.fraction=0 $q || bad "prepare st0"
cp -r st0 st0a

# ---- 1. train: versions of type pop and bias; bias is the same on 1 and 3 ranks
for t in pop bias; do
  run 2 train --data st --model m$t --set model.type=$t $q; rc=$?
  check "train model.type=$t: exit 0, a version written" sh -c "test $rc -eq 0 && test -s m$t/versions/v000001.h5"
  check "the version's type attribute is $t" $PY -c "
import h5py; assert h5py.File('m$t/versions/v000001.h5','r').attrs['type'].decode()=='$t'"
done
run 1 train --data st --model mbias1 --set model.type=bias $q
run 3 train --data st --model mbias3 --set model.type=bias $q
h2=$(fact mbias 2>/dev/null)
check "bias: bitwise the same model on 1, 2 and 3 ranks" sh -c "test -n '$h2' && test '$(fact mbias1)' = '$h2' && test '$(fact mbias3)' = '$h2'"
run 1 train --data st --model mals --set model.k=8 --set model.lambda=0.2 $q
run 1 train --data st --model mmean --set model.type=bias --set model.lambda_bias=1e12 $q # mu alone

# ---- 2. bias between the global mean and ALS on the standing holdout
for m in mbias mals mmean; do run 1 evaluate --data st --model $m --protocol standing --json $q > ev_$m.json; done
check "bias RMSE beats the global mean's" $PY -c "
import json; b=json.load(open('ev_mbias.json'))['rmse']; m=json.load(open('ev_mmean.json'))['rmse']
assert b < 0.99 * m, (b, m)"
check "bias RMSE is worse than or close to ALS's" $PY -c "
import json; b=json.load(open('ev_mbias.json'))['rmse']; a=json.load(open('ev_mals.json'))['rmse']
assert b > 0.98 * a, (b, a)"

# ---- 3. evaluate --baseline: rows on the same split as the model
run 1 evaluate --data st --model mals --protocol standing --baseline pop --baseline bias --json $q > evb.json; rc=$?
check "evaluate --baseline pop --baseline bias: exit 0" test $rc -eq 0
check "--json: baselines pop and bias, the model's keys unchanged" $PY -c "
import json; d=json.load(open('evb.json')); a=json.load(open('ev_mals.json'))
assert [b['type'] for b in d['baselines']] == ['pop', 'bias'], d['baselines']
for k in ('rmse','ndcg@10','recall@10','precision@10'): assert d[k] == a[k], k
assert d['baselines'][0]['rmse'] is None and d['baselines'][0]['ndcg@10'] > 0
assert len(d['baselines'][1]['fold_results']) == 1"
check "the bias row equals the trained bias model (same training ratings, same test)" $PY -c "
import json; d=json.load(open('evb.json'))['baselines'][1]; b=json.load(open('ev_mbias.json'))
for k in ('rmse','mae','ndcg@10','recall@10'): assert abs(d[k]-b[k]) < 1e-9, (k, d[k], b[k])"

run 1 evaluate --data st --model mals --protocol standing --baseline pop,bias $q > evb.txt
check "text: a pop and a bias row in the table" sh -c "grep -q '^pop  ' evb.txt && grep -q '^bias  ' evb.txt"
run 1 evaluate --data st --set model.type=ials --set model.k=4 --set model.iterations=3 --folds 2 --baseline pop --json $q > kfb.json
check "kfold --folds 2 --baseline pop: one pop row per fold" $PY -c "
import json; d=json.load(open('kfb.json')); b=d['baselines'][0]
assert b['type']=='pop' and len(b['fold_results'])==2 and b['sd']['ndcg@10'] is not None"
run 1 evaluate --data st --model mals --protocol standing --baseline ease $q 2>/dev/null; rc=$?
check "--baseline ease: usage error (exit 2)" test $rc -eq 2

# ---- 4. recommend: pop's top-N are the most-rated items the user has not rated
run 1 train --data st0 --model mp0 --set model.type=pop $q
run 1 recommend --model mp0 --data st0 --user 3 --top 10 $q > rec.txt; rc=$?
check "recommend on pop: exit 0" test $rc -eq 0
check "pop's top 10 for user 3 = the 10 largest counts among unseen items (scores = counts)" $PY -c "
from collections import Counter
rows=[l.split(',') for l in open('base.csv').read().splitlines()[1:]]
cnt=Counter(r[1] for r in rows); seen={r[1] for r in rows if r[0]=='3'}
want=sorted((c for i,c in cnt.items() if i not in seen), reverse=True)[:10]
got=[l.split() for l in open('rec.txt').read().splitlines() if l.strip()]
assert len(got)==10, got
assert all(g[1] not in seen for g in got), 'a seen item recommended'
assert [cnt[g[1]] for g in got]==want, ([cnt[g[1]] for g in got], want)
assert all(abs(float(g[2])-cnt[g[1]])<1e-6 for g in got)"
run 1 recommend --model mbias --data st --user 3 --top 5 $q > recb.txt; rc=$?
check "recommend on bias: exit 0, 5 items" sh -c "test $rc -eq 0 && test \$(grep -c . recb.txt) -eq 5"
run 1 recommend --model mp0 --similar 5 $q 2>/dev/null; rc=$?
check "recommend --similar on pop (no item factors): usage error" test $rc -eq 2

# ---- 5. update: every strategy retrains a baseline; --version N scores a kept version
run 1 evaluate --data st --model mals --test other.csv --json $q > a_v1.json
cp -r st sta
run 1 update --data st0 --model mp0 --input b1.csv --strategy fold-in --json $q > up.json; rc=$?
check "update of pop: exit 0, strategy retrain, version 2 written" sh -c "test $rc -eq 0 && grep -q '\"strategy\":\"retrain\"' up.json && test -s mp0/versions/v000002.h5"
check "pop version 2 counts every rating of base + b1, version 1 those of base" $PY -c "
import h5py
n=lambda f: sum(1 for _ in open(f))-1
b1=h5py.File('mp0/versions/v000001.h5','r')['bias/item'][()].sum(); b2=h5py.File('mp0/versions/v000002.h5','r')['bias/item'][()].sum()
assert b1==n('base.csv') and b2==n('base.csv')+n('b1.csv'), (b1, b2)"
run 1 update --data st --model mbias --input b1.csv --json $q > ub.json; rc=$?
check "update of bias (auto): exit 0, strategy retrain" sh -c "test $rc -eq 0 && grep -q '\"strategy\":\"retrain\"' ub.json"
run 1 update --data sta --model mals --input b1.csv --strategy retrain --json $q > ua.json
run 1 evaluate --data st0 --model mp0 --version 1 --test other.csv --json $q > p_ver1.json; rc=$?
check "evaluate --version 1 after the update: exit 0, version 1 in the JSON" sh -c "test $rc -eq 0 && grep -q '\"version\":1' p_ver1.json"
run 1 evaluate --data sta --model mals --version 1 --test other.csv --json $q > a_ver1.json
run 1 evaluate --data sta --model mals --version 2 --test other.csv --json $q > a_ver2.json
check "--version 1 scores the old version (ALS RMSE on other.csv as before the update), 2 the new" $PY -c "
import json; L=lambda f: json.load(open(f))
assert abs(L('a_ver1.json')['rmse']-L('a_v1.json')['rmse']) < 1e-9
assert L('a_ver2.json')['rmse'] != L('a_v1.json')['rmse'] and L('a_ver2.json')['version'] == 2"
run 1 evaluate --data st0 --model mp0 --version 9 --test other.csv $q 2>/dev/null; rc=$?
check "--version 9 (not kept): exit 3" test $rc -eq 3
run 1 evaluate --data st --version 1 --protocol random $q 2>/dev/null; rc=$?
check "--version without --model: exit 2" test $rc -eq 2
run 1 forget --data st0 --model mp0 --user 3 $q; rc=$?
check "forget on a pop model: exit 0, the user's ratings no longer counted" sh -c "test $rc -eq 0 && $PY -c \"
import h5py
rows=[l for f in ('base.csv','b1.csv') for l in open(f).read().splitlines()[1:]]
n=sum(1 for l in rows if l.split(',')[0]=='3')
b2=h5py.File('mp0/versions/v000002.h5','r')['bias/item'][()].sum()
assert n > 0 and b2 == len(rows)-n, (b2, len(rows), n)\""

# ---- 6. heldout-users --folds N: disjoint user folds covering every eligible user
run 2 evaluate --data st0a --protocol heldout-users --folds 3 --set model.type=pop --set eval.relevance_threshold=none \
  --baseline bias --json $q > hf.json; rc=$?
check "heldout-users --folds 3: exit 0, three folds" $PY -c "
import json; d=json.load(open('hf.json')); assert $rc==0 and d['folds']==3 and len(d['fold_results'])==3, d['folds']
assert d['sd']['ndcg@10'] is not None and len(d['baselines'][0]['fold_results'])==3"
check "... each eligible user (>= 5 ratings) held out in exactly one fold" $PY -c "
import json
from collections import Counter
c=Counter(l.split(',')[0] for l in open('base.csv').read().splitlines()[1:]) # st0a holds base.csv
elig=sum(1 for v in c.values() if v>=5)
d=json.load(open('hf.json')); f=[x['users_ranked']+x['users_cold'] for x in d['fold_results']]
assert sum(f)==elig and min(f)>0, (f, elig)"
run 1 evaluate --data st0a --protocol heldout-users --set model.type=pop --set eval.relevance_threshold=none --json $q > h1.json
check "heldout-users without --folds: one fold, eval.heldout_users of the users, sd null" $PY -c "
import json; d=json.load(open('h1.json')); assert d['folds']==1 and d['sd']['ndcg@10'] is None
e=json.load(open('hf.json'))['fold_results']; n=d['fold_results'][0]['users_ranked']
assert 0 < n < sum(x['users_ranked'] for x in e)"

# ---- 7. no silent ignore: unsupported flag combinations are usage errors naming both
for args in "--protocol random --folds 3" "--protocol heldout-users --folds 1" "--protocol random --test other.csv" \
            "--input base.csv --protocol random"; do
  run 1 evaluate --data st $args --set model.type=pop $q 2> err.txt; rc=$?
  check "evaluate $args: exit 2" test $rc -eq 2
done
check "... the message names both flags" sh -c "grep -q -- '--data and --input' err.txt"
run 1 evaluate --data st --model mals --protocol standing --folds 3 $q 2> err.txt; rc=$?
check "--protocol standing --folds 3: exit 2, naming both" sh -c "test $rc -eq 2 && grep -q -- '--folds 3.*standing' err.txt"

# ---- 8. "±" only with two or more folds
check "one fold: a table, and no ± anywhere" sh -c "grep -q '^1 ' evb.txt && ! grep -q '±' evb.txt"
run 1 evaluate --data st --set model.type=pop --folds 2 $q > two.txt
check "two folds: mean ± sd" grep -q '±' two.txt

# ---- 9. --test with --model: the share of the file's pairs the model was trained on
run 1 evaluate --data st0 --model mp0 --test base.csv --json $q > ov1.json 2> ov1.err
check "scoring the training file: every pair a training pair but those of the forgotten user 3, a warning" $PY -c "
import json; d=json.load(open('ov1.json'))
rows=[l.split(',') for l in open('base.csv').read().splitlines()[1:]]; n3=sum(r[0]=='3' for r in rows)
assert d['test_pairs']==len(rows) and d['train_overlap_pairs']==len(rows)-n3, (d['train_overlap_pairs'], len(rows), n3)
assert 'of the (user, item) pairs of base.csv' in open('ov1.err').read()"
run 1 evaluate --data st0 --model mp0 --test other.csv --json $q > ov0.json 2> ov0.err
check "a disjoint test file: train_overlap 0, no warning" $PY -c "
import json; d=json.load(open('ov0.json')); assert d['train_overlap']==0.0, d['train_overlap']
assert 'training data' not in open('ov0.err').read()"
run 1 evaluate --data st --model mals --test base.csv --json $q > ovh.json 2>/dev/null
check "with a standing holdout: the held-out pairs are not training pairs (overlap ~0.8)" $PY -c "
import json; d=json.load(open('ovh.json')); assert 0.7 < d['train_overlap'] < 0.9, d['train_overlap']"

echo "e2e_baseline: $pass passed, $fail failed"
[ $fail -eq 0 ]
