#!/usr/bin/env bash
# bench_ease.sh - the EASE solve (pdpotrf + pdpotri, ease.c) at 1 and 2 ranks next to LAPACKE
# dpotrf + dpotri of the same G measured in the same run (rank 0 alone), for 2k, 4k, 8k and 16k
# items: seconds of assembly and of the solve, GFLOP/s of the solve (n^3 flops), an incremental
# Gram update (1% of the users gain an item), and peak memory per rank. One OpenBLAS thread per
# rank. Prints every run's lines, then a summary table. 16k items need ~6.2 GB on one rank
# (Gram + B + transpose buffer, then LAPACKE's G) and several minutes: on a shared machine pass
# fewer sizes. Timings on a machine shared with other jobs are noisy: rerun before quoting.
# Usage: tests/bench/bench_ease.sh [BUILD_DIR] [SIZES]   e.g. tests/bench/bench_ease.sh build "2000 4000"
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
build="$(cd "${1:-$here/build}" && pwd)"
sizes="${2:-2000 4000 8000 16000}"
export OPENBLAS_NUM_THREADS=1
[ "$(id -u)" = 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
out=$(mktemp)
trap 'rm -f "$out"' EXIT
printf "%-9s %6s %5s %7s %9s %9s %9s %10s %9s %9s\n" solver items ranks grid assemble solve GFLOP/s delta_s \
  delta_nnz peakMB/rk
for n in $sizes; do
  for np in 1 2; do
    mpirun --oversubscribe -n "$np" "$build/tests/bench_ease" "$n" | sed "s/^/np$np /" | tee -a "$out" | cut -d' ' -f2-
  done
done
echo
echo "summary (solve = pdpotrf + pdpotri; LAPACKE measured in the same mpirun, rank 0 alone):"
printf "%6s | %9s %9s %8s | %8s %8s | %8s %8s | %9s %9s | %10s\n" items "1 rank s" "2 ranks s" speed-up \
  "GF/s 1r" "GF/s 2r" "LAPACK s" "LAPACK" "MB/rk 1r" "MB/rk 2r" "delta s 2r"
awk '
  $2 == "scalapack" { k = substr($1, 3); s[$3, k] = $7; g[$3, k] = $8; d[$3, k] = $9; m[$3, k] = $11; ns[$3] = 1 }
  $2 == "lapacke"   { k = substr($1, 3); l[$3, k] = $7; lg[$3, k] = $8 }
  END {
    for (n in ns) {
      up = (s[n, 2] > 0) ? s[n, 1] / s[n, 2] : 0
      printf "%6d | %9.3f %9.3f %7.2fx | %8.1f %8.1f | %8.3f %8.1f | %9.0f %9.0f | %10.4f\n", n, s[n, 1], s[n, 2], up,
        g[n, 1], g[n, 2], l[n, 1], lg[n, 1], m[n, 1], m[n, 2], d[n, 2]
    }
  }' "$out" | sort -n
