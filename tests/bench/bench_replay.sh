#!/usr/bin/env bash
# bench_replay.sh - the temporal-replay benchmark (the project's headline result): sort the
# ratings by timestamp, train on the first 50%, then land the rest in 10 equal batches. Each
# strategy (fold-in, warm, auto, retrain) carries its own model through all 10 batches through
# `incremf update --input`; before a batch lands, the strategy's current model is scored on it
# (prequential). One row per batch and strategy: update seconds, ratio to the retrain's seconds,
# RMSE on the batch before it landed, gap to the retrain's RMSE; then the totals and where each
# strategy's time went (append, load, read ratings, solve, write: `update --json`'s phase keys).
#
# Usage: tests/bench/bench_replay.sh [BUILD_DIR] [ml100k|synth] [SYNTH_RATINGS] [RANKS]
#   ml100k: ../shared/data/ml-100k/u.data.xz (IMF_SHARED_DATA overrides ../shared/data)
#   synth:  `incremf synth` with planted drift; SYNTH_RATINGS defaults to 200000 (10000000 is
#           the target size of the headline numbers); IMF_REPLAY_DRIFT sets synth.drift (0.5)
# Every challenger is promoted for fold-in/warm/retrain (update.tolerance=1e9: each strategy
# carries its own model); auto keeps the default tolerance and escalates by itself.
# Environment: IMF_REPLAY_STRATEGIES (default "retrain fold-in warm auto"; "fold-in-full" is the
# fold-in with update.foldin_read=full, the whole-store read, for comparison; retrain is always
# run: it is the reference), IMF_REPLAY_BATCHES (how many of the 10 batches to land, default 10).
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
build="$(cd "${1:-$here/build}" && pwd)"; set_="${2:-ml100k}"; nsyn="${3:-200000}"; np="${4:-2}"
bin="$build/incremf"; PY=/usr/bin/python3
export OPENBLAS_NUM_THREADS=1
[ "$(id -u)" = 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
run() { mpirun --oversubscribe -n "$np" "$bin" "$@"; }
tmp=$(mktemp -d /tmp/imf-replay.XXXXXX); trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
model="--set model.k=16 --set model.iterations=12 --set model.lambda=0.05 --set model.lambda_bias=5"
if [ "$set_" = ml100k ]; then
  xz -dc "${IMF_SHARED_DATA:-$here/../shared/data}/ml-100k/u.data.xz" | tr '\t' ',' > all.csv
else
  users=$((nsyn / 50)); items=$((nsyn / 200 + 100))
  run synth --out all.csv --users $users --items $items --ratings "$nsyn" --seed 11 --set synth.drift="${IMF_REPLAY_DRIFT:-0.5}" --quiet
fi
# sort by time, 50% base, 10 equal batches (header-less CSV: user,item,rating,time)
$PY - <<'PYEOF'
rows = [l.split(',') for l in open('all.csv').read().splitlines() if l and l[0].isdigit()]
rows.sort(key=lambda f: int(f[3]))
n = len(rows); h = n // 2
def w(name, part): open(name, 'w').write(''.join(','.join(f[:4]) + '\n' for f in part))
w('base.csv', rows[:h])
rest = rows[h:]; step = (len(rest) + 9) // 10
for b in range(10): w('b%d.csv' % (b + 1), rest[b * step:(b + 1) * step])
print('ratings %d: base %d, 10 batches of ~%d' % (n, h, step))
PYEOF
run prepare --input base.csv --data st0 --set input.header=no --set clean.scale_min=1 --set clean.scale_max=5 \
  --set holdout.fraction=0.05 --quiet
score() { $PY - "$1" "$2" <<'PYEOF'
import h5py, numpy as np, sys, os
d, path = sys.argv[1], sys.argv[2]
f = h5py.File(os.path.join(d, 'versions', open(os.path.join(d, 'CURRENT')).read().strip()), 'r')
P, Q, bu, bi, mu = f['factors/P'][()], f['factors/Q'][()], f['bias/user'][()], f['bias/item'][()], f.attrs['mu']
def ids(k):
    off, blob = f['ids/%s_off' % k][()], f['ids/%s_blob' % k][()].tobytes()
    return {blob[off[j]:off[j + 1]]: j for j in range(len(off) - 1)}
U, I = ids('user'), ids('item')
se = 0.0; n = 0
for l in open(path, 'rb'):
    u, i, r = l.split(b',')[:3]
    a, b = U.get(u), I.get(i)
    p = mu + (bu[a] if a is not None else 0) + (bi[b] if b is not None else 0)
    if a is not None and b is not None: p += float(P[a] @ Q[b])
    p = min(5.0, max(1.0, p)); se += (float(r) - p) ** 2; n += 1
print('%.6f' % np.sqrt(se / n))
PYEOF
}
strategies="${IMF_REPLAY_STRATEGIES:-retrain fold-in warm auto}"
case " $strategies " in *" retrain "*) ;; *) strategies="retrain $strategies" ;; esac
nbatch="${IMF_REPLAY_BATCHES:-10}"
for s in $strategies; do
  cp -r st0 "st-$s"
  run train --data "st-$s" --model "m-$s" $model --quiet
done
: > rows.txt
for b in $(seq 1 "$nbatch"); do
  for s in $strategies; do
    rmse=$(score "m-$s" b$b.csv)
    tol="--set update.tolerance=1e9"; [ $s = auto ] && tol=""
    strat=$s; extra=""; [ $s = fold-in-full ] && { strat=fold-in; extra="--set update.foldin_read=full"; }
    out=$(run update --data "st-$s" --model "m-$s" --input b$b.csv --strategy $strat $tol $extra --set input.header=no --quiet --json)
    secs=$(echo "$out" | $PY -c "import json,sys; d=json.load(sys.stdin); print('%.4f %s %s %.4f %.4f %.4f %.4f %.4f' % (d['seconds'], d['strategy'], d['decision'], d['append_seconds'], d['load_seconds'], d['read_seconds'], d['build_seconds'], d['write_seconds']))")
    echo "$b $s $rmse $secs" >> rows.txt
  done
done
$PY - "$set_" "$strategies" <<'PYEOF'
import sys
S = sys.argv[2].split()
rows = [l.split() for l in open('rows.txt')]
R = {(int(r[0]), r[1]): (float(r[2]), float(r[3]), r[4], r[5]) for r in rows}
PH = {}  # strategy -> summed phases: append, load, read, solve (build - read), write
for r in rows:
    a, l, rd, bd, w = map(float, r[6:11])
    p = PH.setdefault(r[1], [0.0] * 5)
    for j, x in enumerate((a, l, rd, bd - rd, w)): p[j] += x
print('temporal replay on %s: RMSE = prequential RMSE of the model on batch b before it lands;' % sys.argv[1])
print('seconds = wall time of `update --input b` (append + update)')
print('%5s %-12s %9s %8s %9s %9s  %s' % ('batch', 'strategy', 'seconds', 'x_retrain', 'rmse', 'gap', 'used/decision'))
tot = {}
for b in range(1, max(k[0] for k in R) + 1):
    rr, rs = R[(b, 'retrain')][0], R[(b, 'retrain')][1]
    for s in S:
        rm, sec, used, dec = R[(b, s)]
        t = tot.setdefault(s, [0.0, 0.0, 0.0, 0])
        t[0] += sec; t[1] += rm; t[2] = max(t[2], (rm / rr - 1) * 100); t[3] += 1
        print('%5d %-12s %9.3f %8.3f %9.5f %+8.3f%%  %s/%s' % (b, s, sec, sec / rs, rm, (rm / rr - 1) * 100, used, dec))
print('total:')
print('%-12s %9s %8s %9s %12s' % ('strategy', 'seconds', 'x_retrain', 'mean_rmse', 'worst_gap'))
for s in S:
    t = tot[s]
    print('%-12s %9.3f %8.3f %9.5f %+11.3f%%' % (s, t[0], t[0] / tot['retrain'][0], t[1] / t[3], t[2]))
print('where the time went (seconds, all batches; the rest of `seconds` is drift, the registry and judging):')
print('%-12s %8s %8s %8s %8s %8s' % ('strategy', 'append', 'load', 'read', 'solve', 'write'))
for s in S:
    print('%-12s %8.2f %8.2f %8.2f %8.2f %8.2f' % ((s,) + tuple(PH[s])))
PYEOF
