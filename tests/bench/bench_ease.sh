#!/usr/bin/env bash
# bench_ease.sh - the EASE solve (pdpotrf + pdpotri, ease.c) at 1 and 2 ranks next to serial
# LAPACKE dpotrf + dpotri, for 2k, 4k and 8k items: seconds of assembly and of the solve, and
# GFLOP/s of the solve (n^3 flops). One OpenBLAS thread per rank.
# Usage: tests/bench/bench_ease.sh [BUILD_DIR] [SIZES]   e.g. tests/bench/bench_ease.sh build "2000 4000"
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
build="$(cd "${1:-$here/build}" && pwd)"
sizes="${2:-2000 4000 8000}"
export OPENBLAS_NUM_THREADS=1
[ "$(id -u)" = 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
printf "%-9s %6s %5s %7s %9s %9s %9s %9s\n" solver items ranks grid assemble solve total GFLOP/s
for n in $sizes; do
  for np in 1 2; do
    mpirun --oversubscribe -n "$np" "$build/tests/bench_ease" "$n"
  done
done
