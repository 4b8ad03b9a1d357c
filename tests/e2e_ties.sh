#!/usr/bin/env bash
# e2e_ties.sh - ties in a ranking go to the more popular item, and the popularity prior (issue 21:
# README "Ties and the popularity prior"), through the real binary on 1, 2 and 3 ranks.
#  - a known user without positives (every rating below model.positive_threshold) gets all-zero
#    iALS and EASE scores: recommend (--user and --all) lists the items in the pop model's order
#    (popularity = positive training ratings, not all ratings), the same on 1, 2 and 3 ranks;
#  - evaluate of an EASE model on a user whose one positive co-occurs with nothing (all scores 0):
#    the most popular item ranks first (NDCG@10 = 1), the same on 1 and 2 ranks;
#  - model.pop_prior = beta: recommend's scores are the model's plus
#    beta * log(1 + pop) / log(1 + max pop), in that order; a huge beta gives pop's list and, in
#    evaluate, pop's NDCG;
#  - recommend --fallback popular: stdout holds the list alone, scored by positive counts.
set -uo pipefail
bin="${IMF_BIN:?}"; mpiexec="${IMF_MPIEXEC:-mpirun}"
PY=/usr/bin/python3
tmp=$(mktemp -d /tmp/imf-e2e-ties.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/e2elib.sh"
cd "$tmp"
q=--quiet

# Item j (0..39) has j + 2 positives (users 0 .. j+1 rate it 5): popularity rises with the index,
# so index order and popularity order differ. Users 50..59 rate the odd items 2 (not positives:
# counted as ratings, the odd items would jump ahead). z rates i0..i2 with 1 (no positive); y rates
# iy (nobody else's item) 5, so EASE scores y zero everywhere.
$PY - <<'PYEOF'
rows = []
for j in range(40):
    for u in range(j + 2): rows.append(("u%d" % u, "i%d" % j, 5))
    if j % 2:
        for u in range(50, 60): rows.append(("u%d" % u, "i%d" % j, 2))
for j in range(3): rows.append(("z", "i%d" % j, 1))
rows.append(("y", "iy", 5))
# a niche: users c0..c19 rate k0..k4 (16 positives each: below the 25 most popular items), each
# holding one back for evaluate (t2.csv): iALS finds it, popularity does not
for c in range(20):
    for k in range(5):
        if k != c % 5: rows.append(("c%d" % c, "k%d" % k, 5))
with open("d.csv", "w") as f:
    f.write("user,item,rating,timestamp\n")
    for t, r in enumerate(rows): f.write("%s,%s,%d,%d\n" % (r + (1000 + t,)))
# held-out positives for evaluate: y on the most popular item; users u20..u35 on items they lack
with open("ty.csv", "w") as f: f.write("y,i39,5\n")
with open("t2.csv", "w") as f:
    for c in range(20): f.write("c%d,k%d,5\n" % (c, c % 5))
PYEOF
run 2 prepare --input d.csv --data st --set holdout.fraction=0 $q || bad "prepare"
T="--set model.positive_threshold=4"
run 2 train --data st --model mpop --set model.type=pop $T $q || bad "train pop"
run 2 train --data st --model mials --set model.type=ials --set model.k=4 --set model.iterations=5 $T $q || bad "train ials"
run 2 train --data st --model mease --set model.type=ease $T $q || bad "train ease"

items() { $PY -c "import json,sys; print(' '.join(e['item'] for e in json.load(open(sys.argv[1]))['items']))" "$1"; }

# ---- a user without positives: the popularity order, on any rank count ----
run 1 recommend --model mpop --data st --user z --top 12 --json $q > pop.z.json || bad "recommend pop"
want=$(items pop.z.json)
check "pop's list for z is the positives' order (i39 i38 ... i28)" test "$want" = "i39 i38 i37 i36 i35 i34 i33 i32 i31 i30 i29 i28"
for m in mials mease; do
  for np in 1 $([ $m = mease ] && echo 2) 3; do
    run $np recommend --model $m --data st --user z --top 12 --json $q > $m.z$np.json || bad "recommend $m on $np"
    check "$m, user z without positives, $np rank(s): pop's order" test "$(items $m.z$np.json)" = "$want"
  done
  run 2 recommend --model $m --data st --all --top 12 --out $m.all.csv $q || bad "recommend --all $m"
  check "$m --all: z's list is pop's order" test "$(grep '^z,' $m.all.csv | cut -d, -f3 | tr '\n' ' ' | sed 's/ $//')" = "$want"
done
run 1 recommend --model mpop --data st --user y --top 12 --json $q > pop.y.json
run 3 recommend --model mease --data st --user y --top 12 --json $q > ease.y.json
check "EASE, user y (scores all 0): pop's order" test "$(items ease.y.json)" = "$(items pop.y.json)"

# ---- evaluate: the same order ----
for np in 1 2; do
  run $np evaluate --model mease --data st --protocol test --test ty.csv --k 10 --json $q > ev$np.json || bad "evaluate on $np"
done
check "evaluate EASE, user y's held-out item is the most popular: NDCG@10 = 1" $PY -c "
import json; d = json.load(open('ev1.json')); m = d.get('mean', d)
import sys
def find(o):
    if isinstance(o, dict):
        for k, v in o.items():
            if k == 'ndcg@10' and isinstance(v, (int, float)): return v
            r = find(v)
            if r is not None: return r
    if isinstance(o, list):
        for v in o:
            r = find(v)
            if r is not None: return r
v = find(d); print('ndcg@10', v); sys.exit(0 if v is not None and abs(v - 1) < 1e-9 else 1)"
check "evaluate: the same metrics on 1 and 2 ranks" $PY -c "
import json
a, b = (json.load(open('ev%d.json' % n)) for n in (1, 2))
strip = lambda o: {k: strip(v) for k, v in o.items() if 'second' not in k and k not in ('ranks',)} if isinstance(o, dict) else [strip(v) for v in o] if isinstance(o, list) else o
assert strip(a) == strip(b), (a, b)"

# ---- the popularity prior ----
for b in 0.5 10000; do
  run 2 train --data st --model mials$b --set model.type=ials --set model.k=4 --set model.iterations=5 $T \
    --set model.pop_prior=$b $q || bad "train ials pop_prior=$b"
done
check "pop_prior leaves training alone: the same factors" test "$(fact mials)" = "$(fact mials0.5)"
run 1 recommend --model mpop --data st --user nosuch --fallback popular --top 41 --json $q > counts.json
run 2 recommend --model mials0.5 --data st --user u30 --top 10 --json $q > p.json
allitems=$($PY -c "import json; print(','.join(e['item'] for e in json.load(open('counts.json'))['items']))")
run 2 recommend --model mials --user u30 --items "$allitems" --json $q > base.json
check "pop_prior = 0.5: scores = model + 0.5 log(1+pop)/log(1+max), best first" $PY - <<'PYEOF'
import json, math
cnt = {e['item']: e['score'] for e in json.load(open('counts.json'))['items']}
base = {e['item']: e['score'] for e in json.load(open('base.json'))['items']}
got = json.load(open('p.json'))['items']
mx = max(cnt.values())
rated = {'i%d' % j for j in range(29, 40)}  # u30's items
exp = sorted(((base[i] + 0.5 * math.log1p(cnt[i]) / math.log1p(mx), i) for i in base if i not in rated), reverse=True)
assert len(got) == 10
for e, (s, i) in zip(got, exp):
    assert abs(e['score'] - s) < 1e-4, (e, s, i)
assert [e['item'] for e in got] == [i for _, i in exp[:10]] or all(abs(a['score'] - s) < 1e-4 for a, (s, _) in zip(got, exp)), (got, exp[:10])
assert any(abs(e['score'] - base[e['item']]) > 1e-3 for e in got), 'prior added nothing'
PYEOF
run 2 recommend --model mials10000 --data st --user u30 --top 10 --json $q > big.json
run 1 recommend --model mpop --data st --user u30 --top 10 --json $q > popu30.json
check "pop_prior = 10000: the list is pop's" test "$(items big.json)" = "$(items popu30.json)"
run 2 evaluate --model mials10000 --data st --protocol test --test t2.csv --k 10 --baseline pop --json $q > evb.json ||
  bad "evaluate with --baseline pop"
check "pop_prior = 10000: evaluate's NDCG@10 is pop's" $PY -c "
import json; d = json.load(open('evb.json'))
def walk(o, path=''):
    if isinstance(o, dict):
        for k, v in o.items(): yield from walk(v, path + '/' + k)
    elif isinstance(o, list):
        for j, v in enumerate(o): yield from walk(v, path + '/' + str(j))
    else: yield path, o
nd = [(p, v) for p, v in walk(d) if p.endswith('ndcg@10') and isinstance(v, (int, float))]
print(nd)
vals = {round(v, 9) for _, v in nd}
assert len(nd) >= 2 and len(vals) == 1, nd"
run 1 evaluate --model mials --data st --protocol test --test t2.csv --k 10 --json $q > ev0.json
check "pop_prior changes evaluate's ranking: beta = 0 finds the niche's held-out items, beta = 10000 not" $PY -c "
import json
a, b = (json.load(open(f))['ndcg@10'] for f in ('ev0.json', 'evb.json'))
print(a, b); assert a > 0.5 and b < 0.1, (a, b)"

# ---- --fallback popular: the documented output alone ----
run 2 recommend --model mials --data st --user nosuch --fallback popular --top 5 > fb.txt 2> fb.err; rc=$?
check "--fallback popular: exit 0, stdout = 5 lines 'rank<TAB>item<TAB>score'" \
  bash -c "test $rc -eq 0 && test \$(wc -l < fb.txt) -eq 5 && ! grep -qv \$'^[0-9]*\t[^\t]*\t[0-9.e+-]*\$' fb.txt"
check "--fallback popular: scores are positive counts (i39: 41, i38: 40)" \
  bash -c "head -2 fb.txt | cut -f2,3 | tr '\n' ' ' | grep -qx \$'i39\t41 i38\t40 '"
check "--fallback popular: the note on stderr" grep -q "nosuch is unknown" fb.err

echo "e2e_ties: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
