#!/usr/bin/env bash
# bench_growth.sh - does an update cost the batch or the store? (issue 24) A fixed batch of new
# ratings is folded into stores of growing size but the same shape (users = ratings / 50, items =
# ratings / 500 + 100, planted drift, time-ordered: the batch is the newest BATCH lines of a synth
# of SIZE + BATCH), and the fold-in's seconds are set beside a retrain's on the same grown store.
# Target (issue 24): fold-in seconds grow <= 1.5x from 1M to 16M ratings while the retrain grows
# ~16x. Per size: the fold-in's and the retrain's `update --json` seconds (append included) with
# the phases (append, load, read, solve, write), medians of RUNS runs, each on a fresh copy of the
# store and the model; and the fold-in from per-item sums (update.item_sums) beside them.
#
# Usage: tests/bench/bench_growth.sh [BUILD_DIR] [SIZES] [BATCH] [RANKS] [RUNS]
#   defaults: build, "1000000 4000000 16000000", 100000, 2, 1
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
build="$(cd "${1:-$here/build}" && pwd)"; sizes="${2:-1000000 4000000 16000000}"
batch="${3:-100000}"; np="${4:-2}"; runs="${5:-1}"
bin="$build/incremf"; PY=/usr/bin/python3
export OPENBLAS_NUM_THREADS=1 OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader
[ "$(id -u)" = 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
run() { mpirun --oversubscribe -n "$np" "$bin" "$@"; }
tmp=$(mktemp -d /tmp/imf-growth.XXXXXX); trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
model="--set model.k=16 --set model.iterations=12 --set model.lambda=0.05 --set model.lambda_bias=5"
: > rows.txt; : > touched.txt
for n in $sizes; do
  total=$((n + batch))
  run synth --out all.csv --users $((total / 50)) --items $((total / 500 + 100)) --ratings $total --seed 11 \
    --set synth.drift=0.5 --quiet
  $PY - "$batch" <<'PYEOF'
import sys
b = int(sys.argv[1])
rows = [l for l in open('all.csv').read().splitlines() if l and l[0].isdigit()]
rows.sort(key=lambda l: int(l.split(',')[3]))
open('base.csv', 'w').write('\n'.join(rows[:-b]) + '\n')
open('batch.csv', 'w').write('\n'.join(rows[-b:]) + '\n')
# what the batch makes a fold-in read: the touched rows and their histories (base + batch)
import collections
cu = collections.Counter(l.split(',', 1)[0] for l in rows)
ci = collections.Counter(l.split(',', 2)[1] for l in rows)
tu = {l.split(',', 1)[0] for l in rows[-b:]}
ti = {l.split(',', 2)[1] for l in rows[-b:]}
open('touched.txt', 'a').write('%d %d %d %d %d %d %d\n' % (len(rows) - b, len(cu), len(tu), sum(cu[u] for u in tu),
                               len(ci), len(ti), sum(ci[i] for i in ti)))
PYEOF
  rm -rf st0 m0
  run prepare --input base.csv --data st0 --set input.header=no --set clean.scale_min=1 --set clean.scale_max=5 \
    --set holdout.fraction=0.05 --quiet
  stored=$(run inspect st0 --json --quiet | $PY -c "import json,sys; print(json.load(sys.stdin)['ratings'])")
  run train --data st0 --model m0 $model --set update.item_sums=true --quiet # sums for fold-in-sums
  for r in $(seq 1 "$runs"); do
    for s in fold-in fold-in-sums retrain; do
      rm -rf st m; cp -r st0 st; cp -r m0 m
      sums=false; [ $s = fold-in-sums ] && sums=true
      out=$(run update --data st --model m --input batch.csv --strategy ${s%-sums} --set update.tolerance=1e9 \
        --set update.item_sums=$sums --set input.header=no --quiet --json)
      echo "$n $stored $s $(echo "$out" | $PY -c "
import json,sys; d=json.load(sys.stdin)
print(' '.join('%.3f' % d.get(k, 0) for k in ('seconds','append_seconds','load_seconds','read_seconds','build_seconds','write_seconds')))")" >> rows.txt
    done
  done
  echo "size $n done ($stored ratings stored)" >&2
done
$PY - "$batch" <<'PYEOF'
import sys, statistics as st
b = int(sys.argv[1])
R = {}
for l in open('rows.txt'):
    n, stored, s, *v = l.split()
    R.setdefault((int(n), int(stored), s), []).append([float(x) for x in v])
med = {k: [st.median(c) for c in zip(*v)] for k, v in R.items()}
sizes = sorted({(k[0], k[1]) for k in med})
print('fold-in of a %d-rating batch against a retrain, by store size (medians; seconds of update --json)' % b)
print('%12s %12s %9s %9s %8s   fold-in: append / load / read / solve+judge / write' % ('store', 'ratings', 'fold-in s', 'retrain s', 'ratio'))
f0 = r0 = None
for n, stored in sizes:
    f, r = med[(n, stored, 'fold-in')], med[(n, stored, 'retrain')]
    f0 = f0 or f[0]; r0 = r0 or r[0]
    print('%12d %12d %9.2f %9.2f %8.3f   %.2f / %.2f / %.2f / %.2f / %.2f' % (n, stored, f[0], r[0], f[0] / r[0], f[1], f[2], f[3], f[4] - f[3], f[5]))
print('growth from the smallest to the largest store: fold-in %.2fx, retrain %.2fx (target: fold-in <= 1.5x)'
      % (med[(sizes[-1][0], sizes[-1][1], 'fold-in')][0] / f0, med[(sizes[-1][0], sizes[-1][1], 'retrain')][0] / r0))
print('the fold-in from per-item sums (update.item_sums = true: only the touched users\' histories read)')
print('%12s %9s %9s   sums: append / load / read / solve+judge / write' % ('store', 'sums s', 'x fold-in'))
for n, stored in sizes:
    g, f = med[(n, stored, 'fold-in-sums')], med[(n, stored, 'fold-in')]
    print('%12d %9.2f %9.2f   %.2f / %.2f / %.2f / %.2f / %.2f' % (n, g[0], g[0] / f[0], g[1], g[2], g[3], g[4] - g[3], g[5]))
print('what the batch touches (counted on the files; holdout included): a fold-in re-solves these rows against '
      'their histories')
print('%12s %20s %16s %20s %16s' % ('store', 'users touched', 'their pairs', 'items touched', 'their pairs'))
for l in open('touched.txt'):
    n, U, tu, hu, I, ti, hi = (int(x) for x in l.split())
    print('%12d %10d of %7d %16d %10d of %7d %16d' % (n, tu, U, hu, ti, I, hi))
PYEOF
