#!/usr/bin/env bash
# bench_tune.sh - wall time of `incremf tune` on 1 and 2 ranks (one rank per group), measured side
# by side: the runs alternate 1, 2, 1, 2, ... so that load from other jobs hits both alike, and the
# table gives the median of REPS runs each and the ratio of the medians. The search is the README's
# evidence run: MovieLens 100K u1.base, ALS with 10 sweeps, 24 candidates
# (k=10,20,40 x lambda=0.05,0.08,0.12,0.2 x lambda_bias=2,10), 5-fold CV. Target: 2 ranks >= 1.8x.
# Needs ../shared/data (or IMF_SHARED_DATA); prints a message and exits 0 without it.
# Usage: tests/bench/bench_tune.sh [BUILD_DIR] [REPS]
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
build="$(cd "${1:-build}" && pwd)"; reps="${2:-3}"
bin="$build/incremf"; PY=/usr/bin/python3
data="${IMF_SHARED_DATA:-$here/../shared/data}/ml-100k/u1.base.xz"
[ -f "$data" ] || { echo "bench_tune: $data not found; nothing measured"; exit 0; }
export OPENBLAS_NUM_THREADS=1
[ "$(id -u)" = 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/imf-bench-tune.XXXXXX"); trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
"$bin" prepare --config "$here/configs/movielens-100k.ini" --input "$data" --data u1 --quiet
grid="type=als k=10,20,40 lambda=0.05,0.08,0.12,0.2 lambda_bias=2,10"
for r in $(seq "$reps"); do
  for np in 1 2; do
    s=$(date +%s.%N)
    mpirun --oversubscribe -n "$np" "$bin" tune --config "$here/configs/movielens-100k.ini" --data u1 \
      --set model.iterations=10 --grid "$grid" --out best$np.ini --json --quiet > tune$np.$r.json
    e=$(date +%s.%N)
    echo "$np $(echo "$e - $s" | bc)" >> times.txt
  done
done
cmp -s best1.ini best2.ini || { echo "bench_tune: 1 and 2 ranks chose different configs"; exit 1; }
load=$(cut -d' ' -f1-3 /proc/loadavg)
$PY - "$reps" "$load" times.txt <<'PYEOF'
import sys, statistics
reps, load = sys.argv[1], sys.argv[2]
t = {1: [], 2: []}
for line in open(sys.argv[3]):
    np_, s = line.split(); t[int(np_)].append(float(s))
m1, m2 = statistics.median(t[1]), statistics.median(t[2])
print("tune: 24 candidates x 5 folds on u1.base, ALS 10 sweeps; runs alternate 1,2 ranks; %s reps;"
      " load average at the end %s" % (reps, load))
print("%6s %10s %24s" % ("ranks", "median s", "all runs s"))
for np_ in (1, 2):
    print("%6d %10.2f %24s" % (np_, statistics.median(t[np_]), " ".join("%.1f" % x for x in t[np_])))
print("speed-up 2 vs 1 ranks (ratio of medians): %.2fx (target >= 1.8x)" % (m1 / m2))
PYEOF
