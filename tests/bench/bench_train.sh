#!/usr/bin/env bash
# bench_train.sh - ALS sweep cost on a synthetic set (default 10 million ratings) at k = 32, 64,
# 128 on 1 and 2 ranks: seconds per sweep (median over the timed sweeps), the achieved GFLOP/s
# of the Gram accumulation (n k (k+1) flops for a row of n ratings, as BLAS counts ssyrk) next
# to the same-run single-core sgemm GFLOP/s, bytes exchanged per sweep (4 k (U+I) (P-1): each
# rank receives every factor row it does not own) and peak memory per rank.
# Usage: tests/bench/bench_train.sh [BUILD_DIR] [RATINGS] [SWEEPS] [RANKS...]
#        (defaults: build 10000000 3 "1 2"; on a 16-core machine pass "1 2 4 8 16")
#        KERNELS="avx2 auto" runs each row with the AVX2 Gram kernel and with the default one
#        (AVX-512 where the CPU has it) side by side; default "auto" only.
set -euo pipefail
build="$(cd "${1:-build}" && pwd)"; n="${2:-10000000}"; sweeps="${3:-3}"; shift $(( $# < 3 ? $# : 3 ))
ranks="${*:-1 2}"
bin="$build/incremf"
export OPENBLAS_NUM_THREADS=1
[ "$(id -u)" = 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/imf-bench-train.XXXXXX"); trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
users=$((n / 50)); items=$((n / 500)); [ $items -lt 1000 ] && items=1000
mpirun --oversubscribe -n 2 "$bin" synth --out r.csv --ratings "$n" --users $users --items $items --seed 11 \
  --set synth.user_skew=0.5 --set synth.item_skew=0.7 --quiet
mpirun --oversubscribe -n 2 "$bin" prepare --input r.csv --data st --quiet
rm -f r.csv
read -r U I R < <(mpirun -n 1 "$bin" inspect st --json --quiet | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["users"], d["items"], d["ratings"])')
# the sgemm limit is the median of 3 measurements (single ones varied 133-163 GFLOP/s here)
sg=$(for r in 1 2 3; do "$build/tests/bench_sgemm" 1024 | awk '{print $2}'; done | sort -g | sed -n 2p)
# the sgemm limit depends on which kernels OpenBLAS picked: under some hypervisors 0.3.21 picks
# Prescott on an AVX-512 CPU (sgemm ~30 instead of ~140 GFLOP/s); incremf warns, and
# OPENBLAS_CORETYPE=SkylakeX (or Haswell) fixes it for both columns
core=$("$bin" --version 2>/dev/null | sed -n 's/.*(core \([^)]*\)).*/\1/p')
printf "OpenBLAS core %s%s\n" "$core" "${OPENBLAS_CORETYPE:+ (OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE)}"
printf "data: %d users, %d items, %d ratings; %d sweeps per run; same-run sgemm %.1f GFLOP/s (one core)\n\n" $U $I $R $sweeps $sg
kernels="${KERNELS:-auto}"
printf "%6s %4s %5s %12s %10s %12s %8s %14s %12s %10s\n" kernel k ranks "s/sweep" speedup "gram GF/s" "% sgemm" "MB moved/sweep" "peak MB/rank" "ratings/s"
for k in 32 64 128; do
 for kern in $kernels; do
  base=""
  for np in $ranks; do
    rm -rf m
    err=$(IMF_GRAM_KERNEL=$kern mpirun --oversubscribe -n $np "$bin" train --data st --model m --set model.type=als --set model.k=$k \
          --set model.iterations=$sweeps --set model.checkpoint_every=0 2>&1 >/dev/null)
    spw=$(/usr/bin/python3 -c "
import json; s=[json.loads(l)['seconds'] for l in open('m/train.jsonl')][1:] or [0]
s.sort(); print(s[len(s)//2])")
    gf=$(echo "$err" | sed -n 's/.*row-solve Gram: .* \([0-9.]*\) Gflop\/s per rank.*/\1/p')
    rss=$(echo "$err" | sed -n 's/.*peak memory per rank \([0-9.]*\) MB.*/\1/p')
    [ -z "$base" ] && base=$spw
    mb=$(/usr/bin/python3 -c "print(4*$k*($U+$I)*($np-1)/1e6)")
    /usr/bin/python3 -c "
spw=$spw; base=$base; gf=float('${gf:-0}'); sg=$sg
print('%6s %4d %5d %12.3f %10.2f %12.1f %7.0f%% %14.1f %12s %10.3g' % ('$kern', $k, $np, spw, base/spw if spw else 0, gf, 100*gf/sg, $mb, '${rss:-?}', $R/spw if spw else 0))"
  done
 done
done
