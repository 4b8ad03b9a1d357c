#!/usr/bin/env bash
# bench_recommend.sh - batch scoring speed of `recommend --all` (every user's top 10 over every
# item, written as CSV) on a synthetic set (default 100 000 users x 20 000 items, 2 million
# ratings, ALS at k = 64 trained for 2 sweeps: the factors' values do not change the cost) on
# 1 and 2 ranks, median of 3 runs: users scored per second, and the achieved GFLOP/s of the
# scoring (2 users items k flops) both over the GEMM time alone and over the whole scoring
# (GEMM + top-k selection), next to the same-run single-core sgemm GFLOP/s of bench_sgemm
# (the share is per rank: achieved / (ranks x sgemm)). Target: scoring >= 60% of sgemm.
# Usage: tests/bench/bench_recommend.sh [BUILD_DIR] [USERS] [ITEMS] [RATINGS] [K] [RANKS...]
# SCANS="16 auto" runs each row with the 16-wide top-K scan and the default one (32-wide with
# AVX-512) side by side, the runs interleaved; default "auto" only.
set -euo pipefail
build="$(cd "${1:-build}" && pwd)"; users="${2:-100000}"; items="${3:-20000}"; n="${4:-2000000}"; k="${5:-64}"
shift 5 2>/dev/null || shift $#
ranks="${*:-1 2}"
bin="$build/incremf"; PY=/usr/bin/python3
export OPENBLAS_NUM_THREADS=1
[ "$(id -u)" = 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/imf-bench-rec.XXXXXX"); trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
# mild skews so that (nearly) every user and item has a rating and so exists in the model
mpirun --oversubscribe -n 2 "$bin" synth --out r.csv --ratings "$n" --users "$users" --items "$items" --seed 13 \
  --set synth.user_skew=0.3 --set synth.item_skew=0.3 --quiet
mpirun --oversubscribe -n 2 "$bin" prepare --input r.csv --data st --quiet
rm -f r.csv
mpirun --oversubscribe -n 2 "$bin" train --data st --model m --set model.type=als --set model.k="$k" \
  --set model.iterations=2 --set model.checkpoint_every=0 --quiet > /dev/null
read -r U I < <(mpirun -n 1 "$bin" inspect st --json --quiet | $PY -c 'import json,sys; d=json.load(sys.stdin); print(d["users"], d["items"])')
# the sgemm limit is the median of 3 measurements (single ones varied 133-163 GFLOP/s here)
sg=$(for r in 1 2 3; do "$build/tests/bench_sgemm" 1024 | awk '{print $2}'; done | sort -g | sed -n 2p)
printf "data: %d users x %d items, k = %d, top 10; same-run sgemm %.1f GFLOP/s (one core); median of 3 runs\n\n" \
  "$U" "$I" "$k" "$sg"
scans="${SCANS:-auto}"
printf "%5s %5s %10s %12s %10s %10s %12s %9s %12s %9s\n" ranks "score s" "users/s" "gemm s" "write s" \
  "gemm GF/s" "% sgemm" "score GF/s" "% sgemm" | sed 's/^/ scan/' 
for np in $ranks; do
  for r in 1 2 3; do
    for sc in $scans; do
      IMF_TOPK_BLOCK=$sc mpirun --oversubscribe -n "$np" "$bin" recommend --model m --data st --all --out recs.csv \
        --top 10 --json --quiet > run$np.$sc.$r.json
      rm -f recs.csv
    done
  done
  for sc in $scans; do
  $PY - "$np" "$I" "$sg" "$sc" run$np.$sc.*.json <<'PYEOF'
import json, sys
np_, items, sg, sc = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
runs = sorted((json.load(open(f)) for f in sys.argv[5:]), key=lambda d: d["score_seconds"])
d = runs[len(runs) // 2]
flops = 2.0 * d["users"] * items * d["k"]
g_gemm = flops / d["gemm_seconds"] / 1e9 if d["gemm_seconds"] > 0 else 0
g_score = flops / d["score_seconds"] / 1e9 if d["score_seconds"] > 0 else 0
print("%5s %5d %10.3f %12.4g %10.3f %10.3f %12.1f %8.0f%% %12.1f %8.0f%%" % (
    sc, np_, d["score_seconds"], d["users_per_s"], d["gemm_seconds"], d["write_seconds"],
    g_gemm, 100 * g_gemm / (np_ * sg), g_score, 100 * g_score / (np_ * sg)))
PYEOF
  done
done
