#!/usr/bin/env bash
# bench_ease.sh - the EASE solve (pdpotrf + pdpotri, ease.c) at 1 and 2 ranks next to LAPACKE
# dpotrf + dpotri of the same G measured in the same run (rank 0 alone), for 2k, 4k, 8k and 16k
# items: seconds of assembly and of the solve, GFLOP/s of the solve (n^3 flops), an incremental
# Gram update (1% of the users gain an item), and peak memory per rank. One OpenBLAS thread per
# rank. Prints every run's lines, then a summary table. 16k items need ~6.2 GB on one rank
# (Gram + B + transpose buffer, then LAPACKE's G) and several minutes: on a shared machine pass
# fewer sizes. Each size runs REPS times (default 3), alternating 1 and 2 ranks so that load from
# other jobs hits both alike; the summary gives medians over the repetitions and the ratio of the
# median solve times.
# Usage: tests/bench/bench_ease.sh [BUILD_DIR] [SIZES] [REPS]   e.g. tests/bench/bench_ease.sh build "2000 4000" 5
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
build="$(cd "${1:-$here/build}" && pwd)"
sizes="${2:-2000 4000 8000 16000}"; reps="${3:-3}"
export OPENBLAS_NUM_THREADS=1
[ "$(id -u)" = 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
out=$(mktemp)
trap 'rm -f "$out"' EXIT
printf "%-9s %6s %5s %7s %9s %9s %9s %10s %9s %9s\n" solver items ranks grid assemble solve GFLOP/s delta_s \
  delta_nnz peakMB/rk
for n in $sizes; do
  for rep in $(seq "$reps"); do for np in 1 2; do
    mpirun --oversubscribe -n "$np" "$build/tests/bench_ease" "$n" | sed "s/^/np$np /" | tee -a "$out" | cut -d' ' -f2-
  done; done
done
echo
echo "summary, median of $reps runs (solve = pdpotrf + pdpotri; LAPACKE measured in the same mpirun, rank 0 alone):"
printf "%6s | %9s %9s %8s | %8s %8s | %8s %8s | %9s %9s | %10s\n" items "1 rank s" "2 ranks s" speed-up \
  "GF/s 1r" "GF/s 2r" "LAPACK s" "LAPACK" "MB/rk 1r" "MB/rk 2r" "delta s 2r"
/usr/bin/python3 - "$out" <<'PYEOF'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
sc, la = {}, {}
for r in rows:
    np_, n = int(r[0][2:]), int(r[2])
    if r[1] == "scalapack":
        sc.setdefault((n, np_), []).append(r)
    elif r[1] == "lapacke" and np_ == 1:
        la.setdefault(n, []).append(r)
med = lambda rs, c: st.median(float(x[c]) for x in rs)
for n in sorted({k[0] for k in sc}):
    a, b, l = sc.get((n, 1), []), sc.get((n, 2), []), la.get(n, [])
    if not a or not b:
        continue
    s1, s2 = med(a, 6), med(b, 6)
    print("%6d | %9.3f %9.3f %7.2fx | %8.1f %8.1f | %8.3f %8.1f | %9.0f %9.0f | %10.4f" % (
        n, s1, s2, s1 / s2, med(a, 7), med(b, 7), med(l, 6) if l else 0, med(l, 7) if l else 0,
        med(a, 10), med(b, 10), med(b, 8)))
PYEOF
