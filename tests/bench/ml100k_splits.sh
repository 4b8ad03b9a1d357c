#!/usr/bin/env bash
# ml100k_splits.sh - mean test RMSE over the five official MovieLens 100K splits (u1..u5:
# prepare uN.base, train with a config, score uN.test). Needs ../shared/data/ml-100k.
# Usage: tests/bench/ml100k_splits.sh [BUILD_DIR] [CONFIG] [RANKS]
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
build="$(cd "${1:-$here/build}" && pwd)"; cfg="$(cd "$(dirname "${2:-$here/configs/movielens-100k.ini}")" && pwd)/$(basename "${2:-movielens-100k.ini}")"
np="${3:-2}"; data="${IMF_SHARED_DATA:-$here/../shared/data}/ml-100k"
export OPENBLAS_NUM_THREADS=1
[ "$(id -u)" = 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tmp=$(mktemp -d /tmp/imf-ml100k.XXXXXX); trap 'rm -rf "$tmp"' EXIT
printf "%-6s %10s %10s %10s\n" split rmse mae seconds
for s in 1 2 3 4 5; do
  mpirun --oversubscribe -n "$np" "$build/incremf" prepare --config "$cfg" --input "$data/u$s.base.xz" --data "$tmp/s$s" --quiet
  out=$(mpirun --oversubscribe -n "$np" "$build/incremf" train --config "$cfg" --data "$tmp/s$s" --model "$tmp/m$s" --test "$data/u$s.test.xz" --quiet --json)
  echo "$out" | /usr/bin/python3 -c "import json,sys; d=json.load(sys.stdin); print('u$s    %10.5f %10.5f %10.1f' % (d['test_rmse'], d['test_mae'], d['seconds']))"
done | tee "$tmp/rows"
awk '{r+=$2; m+=$3; n++} END{printf "mean   %10.5f %10.5f\n", r/n, m/n}' "$tmp/rows"
