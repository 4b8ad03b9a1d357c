#!/usr/bin/env bash
# e2e_tune.sh - `incremf tune` through the real binary: a 4-configuration grid with 2-fold
# cross-validation on a tiny synthetic store gives the same table and the same best
# configuration on 1 rank, on 2 ranks (two groups, dynamic and static schedule; both groups take
# work) and on 2 ranks in one group; the best.ini
# trains with `train --config`; --random draws the same candidates on any rank count; bad grids
# are usage errors (exit 2) naming the problem; EASE is tuned by ndcg@K, quietly, on rank groups.
set -uo pipefail
bin="${IMF_BIN:?}"; mpiexec="${IMF_MPIEXEC:-mpirun}"
PY=/usr/bin/python3
export OPENBLAS_NUM_THREADS=1
tmp=$(mktemp -d /tmp/imf-e2e-tune.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/e2elib.sh"
cd "$tmp"
sc="--set clean.scale_min=1 --set clean.scale_max=5"
run 2 synth --out all.csv --users 300 --items 200 --ratings 15000 --seed 5 --quiet
run 2 prepare --input all.csv --data st $sc --quiet
grid="k=4,8 lambda=0.05,0.2"
common="--data st $sc --set model.iterations=4 --folds 2 --quiet"
run 1 tune $common --grid "$grid" --out b1.ini --table t1.csv --json > j1.json; rc1=$?
run 2 tune $common --grid "$grid" --out b2.ini --table t2.csv --json > j2.json; rc2=$?
run 2 tune $common --grid "$grid" --groups 1 --out bg.ini --table tg.csv --json > jg.json; rcg=$?
run 3 tune $common --grid "$grid" --set tune.schedule=static --out bs.ini --table ts.csv --json > js.json; rcs=$?
check "tune: exit 0 on 1 rank, 2 ranks, 2 ranks in one group, 3 ranks static" test "$rc1$rc2$rcg$rcs" = 0000
check "dynamic schedule (2 groups): every candidate run once, by a valid group; static (3 groups): costliest first, round-robin" $PY -c "
import json; d=json.load(open('j2.json')); g=[r['group'] for r in d['results']]
assert len(g)==4 and set(g) <= {0,1}, g
s=json.load(open('js.json')); order=sorted(range(4), key=lambda c: (-s['results'][c]['config']['k'], c))
assert [s['results'][c]['group'] for c in order]==[0,1,2,0], [(c, s['results'][c]['group']) for c in order]"
check "tune --json: best, configs, folds, metric, results" $PY -c "
import json; a=json.load(open('j1.json'))
assert a['configs']==4 and a['folds']==2 and a['metric']=='rmse' and len(a['results'])==4, a
for r in a['results']: assert set(r['config'])=={'k','lambda'} and 'rmse_sd' in r and 'mae' in r and 'seconds' in r
best=min(a['results'], key=lambda r: r['rmse'])
assert a['best']['config']==best['config'], (a['best'], best)
b=json.load(open('j2.json')); assert b['groups']==2, b['groups']"
# the table without its seconds column must match byte for byte
strip() { $PY -c "
import csv,sys; rows=list(csv.reader(open(sys.argv[1]))); i=rows[0].index('seconds')
print('\n'.join(','.join(r[:i]+r[i+1:]) for r in rows))" "$1"; }
for t in t1 t2 tg ts; do strip $t.csv > $t.nosec 2>/dev/null; done
check "same table on 1 rank, 2 groups, 1 group of 2 ranks, 3 groups static" \
  bash -c "cmp -s t1.nosec t2.nosec && cmp -s t1.nosec tg.nosec && cmp -s t1.nosec ts.nosec && [ \$(wc -l < t1.nosec) -eq 5 ]"
check "same best.ini on every grouping" bash -c "cmp -s b1.ini b2.ini && cmp -s b1.ini bg.ini && grep -v '^schedule' bs.ini | cmp -s - <(grep -v '^schedule' b1.ini)"
check "best.ini holds the best grid values" $PY -c "
import json,configparser; a=json.load(open('j1.json')); c=configparser.ConfigParser(comment_prefixes=(';',))
c.read('b1.ini'); m=c['model']
assert int(m['k'])==a['best']['config']['k'] and float(m['lambda'])==a['best']['config']['lambda'] and m['iterations']=='4'"
run 2 train --config b1.ini --data st --model m --quiet --json > tr.json; rc=$?
check "train --config best.ini: exit 0" test $rc -eq 0
# --random: the same draw whatever the rank count
run 1 tune $common --grid "k=2,4,8 lambda=0.05,0.1,0.2" --random 3 --out r1.ini --json > r1.json; rc1=$?
run 2 tune $common --grid "k=2,4,8 lambda=0.05,0.1,0.2" --random 3 --out r2.ini --json > r2.json; rc2=$?
check "tune --random 3: 3 candidates, the same on 1 and 2 ranks" $PY -c "
import json; a=json.load(open('r1.json')); b=json.load(open('r2.json'))
assert $rc1==0 and $rc2==0 and a['configs']==3
assert [r['config'] for r in a['results']]==[r['config'] for r in b['results']]
assert [r['rmse'] for r in a['results']]==[r['rmse'] for r in b['results']]"
# implicit model types are tuned on ranking (tune.metric = auto follows update.metric's auto):
# EASE by ndcg@K, on two rank groups (two EASE solves on one communicator once shared a BLACS
# handle, and freeing it twice printed BLACS warnings); a grid mixing implicit and rating types
# must name its metric
run 2 tune --data st $sc --set model.type=ease --grid "ease_lambda=10,100" --folds 2 --out e.ini \
  --quiet --json > je.json 2> je.err; rc=$?
check "tune EASE: exit 0, metric ndcg@10 (maximised), nothing on stderr" $PY -c "
import json; d=json.load(open('je.json')); assert $rc==0 and d['metric']=='ndcg@10' and d['maximise'], d['metric']
assert d['best']['ndcg@10']==max(r['ndcg@10'] for r in d['results'])
assert open('je.err').read().strip()=='', open('je.err').read()"
run 2 tune --data st $sc --grid "type=pop,bias" --folds 2 --out x.ini --quiet > /dev/null 2> jm.err; rc=$?
check "a grid of pop and bias (implicit and rating): exit 2 naming tune.metric" \
  bash -c "[ $rc -eq 2 ] && grep -q 'tune.metric' jm.err"
# a best value on the edge of a numeric grid of 3+ values is warned about and listed in on_edge;
# inside the grid, nothing
run 2 tune $common --grid "lambda=0.001,0.002,0.005 k=4" --out x.ini --json > edge.json 2> edge.err
run 2 tune $common --grid "lambda=0.001,0.05,5 k=4" --out x.ini --json > mid.json 2> mid.err
check "tune: a best lambda at the grid's top is warned about (on_edge high); one inside is not" $PY -c "
import json; e=json.load(open('edge.json')); m=json.load(open('mid.json'))
assert e['best']['config']['lambda']==0.005 and e['on_edge']==[{'key':'model.lambda','side':'high'}], e['on_edge']
assert m['best']['config']['lambda']==0.05 and m['on_edge']==[], m['on_edge']
w=open('edge.err').read(); assert 'best model.lambda = 0.005 is the highest value of its grid' in w, w
assert 'grid' not in open('mid.err').read()"
# bad grids: exit 2 with a message naming the problem
badgrid() {
  local want="$1" g="$2"
  run 2 tune --data st --grid "$g" --folds 2 --out x.ini --quiet > /dev/null 2> err.txt; local rc=$?
  [ $rc -eq 2 ] && grep -q -- "$want" err.txt || { echo "  grid '$g': rc=$rc: $(cat err.txt)"; return 1; }
}
check "unknown key -> exit 2" badgrid "model.kk" "kk=4,8"
check "bad value -> exit 2" badgrid "model.k must be an integer" "k=4,eight"
check "empty list -> exit 2" badgrid "empty value list" "k="
check "empty value -> exit 2" badgrid "empty value" "k=4,,8"
check "non-model key -> exit 2" badgrid "not a model" "eval.seed=1,2"
check "duplicate key -> exit 2" badgrid "listed twice" "k=4 k=8"
check "empty grid -> exit 2" badgrid "empty" " "
check "malformed term -> exit 2" badgrid "key=value" "k"
run 1 tune --data st --grid "k=4" --folds 1 --quiet > /dev/null 2>&1; rc=$?
check "--folds 1 -> exit 2" test $rc -eq 2
run 1 tune --data st --grid "k=4" --set tune.metric=bogus --folds 2 --quiet > /dev/null 2>&1; rc=$?
check "unknown tune.metric -> exit 2" test $rc -eq 2
echo "e2e_tune: $pass passed, $fail failed"
[ $fail -eq 0 ]
