#!/usr/bin/env bash
# bench_defaults.sh - how the shipped ALS defaults (model.lambda, model.lambda_bias) compare with
# the best of a grid on the public rating sets (issue 26 item 2). For each set, `incremf tune`
# scores every (lambda, lambda_bias) of the grid by 3-fold cross-validation on the whole file
# (k and sweeps at their defaults); the table gives each set's RMSE at the current defaults, at
# the set's own best, and at every candidate relative to that best, then the candidate with the
# lowest mean relative RMSE over the sets (the rule used to choose the defaults). MovieLens 100K
# is also scored on its five official splits (u1..u5, `evaluate --fold-files`) at the defaults
# and at the chosen candidate.
#
# Usage: tests/bench/bench_defaults.sh [BUILD_DIR] [RANKS]
#   data from ${IMF_SHARED_DATA:-../shared/data}; IMF_DEFAULTS_GRID overrides the grid
#   (default "lambda=0.05,0.08,0.12,0.18,0.25,0.35 lambda_bias=0.5,2,5,10").
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
build="$(cd "${1:-$here/build}" && pwd)"; np="${2:-2}"
bin="$build/incremf"; PY=/usr/bin/python3
data="$(cd "${IMF_SHARED_DATA:-$here/../shared/data}" && pwd)"
grid="${IMF_DEFAULTS_GRID:-lambda=0.05,0.08,0.12,0.18,0.25,0.35 lambda_bias=0.5,2,5,10}"
export OPENBLAS_NUM_THREADS=1 OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader
[ "$(id -u)" = 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
run() { mpirun --oversubscribe -n "$np" "$bin" "$@"; }
tmp=$(mktemp -d /tmp/imf-defaults.XXXXXX); trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
sets="ml-100k:$data/ml-100k/u.data.xz ml-1m-subset:$data/ml-1m-subset-users-1-2999/ratings.dat.xz
ml-latest-small:$data/ml-latest-small/ratings.csv.xz movietweetings:$data/movietweetings-100k/ratings.dat.xz"
# the build's own defaults, from its key list (an auto: the value for explicit ALS, "otherwise")
"$bin" help config > keys.txt
dflt() { $PY - "$1" <<'PYEOF'
import re, sys
l = [x for x in open('keys.txt') if x.split()[:1] == [sys.argv[1]]][0]
v = re.search(r'default (\S+)', l).group(1)
print(v if v != 'auto' else re.search(r'([0-9.]+) otherwise', l).group(1))
PYEOF
}
def_l=$(dflt model.lambda); def_b=$(dflt model.lambda_bias)
echo "defaults: model.lambda = $def_l, model.lambda_bias = $def_b; grid: $grid"
for s in $sets; do
  name=${s%%:*}; file=${s#*:}
  run prepare --input "$file" --data "st-$name" --set holdout.fraction=0 --quiet
  run tune --data "st-$name" --grid "$grid" --folds 3 --out "best-$name.ini" --json --quiet > "tune-$name.json"
  echo "$name: tuned ($(du -sh "st-$name" | cut -f1) store)"
done
$PY - "$def_l" "$def_b" $(for s in $sets; do echo "${s%%:*}"; done) > choice.txt <<'PYEOF'
import json, sys
dl, db, names = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]
res = {n: json.load(open('tune-%s.json' % n))['results'] for n in names}
key = lambda r: (float(r['config']['lambda']), float(r['config']['lambda_bias']))
cands = [key(r) for r in res[names[0]]]
best = {n: min(r['rmse'] for r in res[n]) for n in names}
rel = {c: [next(r['rmse'] for r in res[n] if key(r) == c) / best[n] for n in names] for c in cands}
print('| lambda | lambda_bias | ' + ' | '.join(names) + ' | mean RMSE / best |')
print('|---|---|' + '---|' * (len(names) + 1))
for c in cands:
    mark = ' (current default)' if c == (dl, db) else ''
    print('| %g | %g%s | ' % (c[0], c[1], mark) + ' | '.join('%.4f (%.3f)' % (r * best[n], r) for r, n in zip(rel[c], names))
          + ' | %.4f |' % (sum(rel[c]) / len(names)))
choice = min(cands, key=lambda c: (sum(rel[c]) / len(names), c))
print()
print('per set: best RMSE ' + ', '.join('%s %.4f' % (n, best[n]) for n in names))
print('chosen (lowest mean RMSE / best): lambda = %g, lambda_bias = %g' % choice)
print('CHOICE %g %g' % choice)
PYEOF
grep -v '^CHOICE' choice.txt
read -r _ cl cb < <(grep '^CHOICE' choice.txt)
f="$data/ml-100k/u%d.base.xz,$data/ml-100k/u%d.test.xz"
for c in "$def_l $def_b current" "$cl $cb chosen"; do
  set -- $c
  r=$(run evaluate --fold-files "$f" --folds 5 --set model.lambda="$1" --set model.lambda_bias="$2" --json --quiet |
      $PY -c "import json,sys; d=json.load(sys.stdin); print('%.4f +- %.4f' % (d['rmse'], d['sd']['rmse']))")
  echo "ML-100K u1..u5 ($3: lambda $1, lambda_bias $2): RMSE $r"
done
