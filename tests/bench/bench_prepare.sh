#!/usr/bin/env bash
# bench_prepare.sh - prepare throughput on a >= 1 GB synthetic CSV read from the page cache, at 1
# and 2 ranks, beside `wc -l` and an awk field split of the same file in the same run; and the
# peak memory per rank against the final arrays that rank holds (20 bytes a rating).
# Usage: tests/bench/bench_prepare.sh [BUILD_DIR] [RATINGS] [RUNS]   (defaults: build 42000000 3)
# Prints a table of medians over RUNS runs. Needs ~3 GB of free disk in $TMPDIR (or /tmp).
set -euo pipefail
build="${1:-build}"; n="${2:-42000000}"; runs="${3:-3}"
bin="$(cd "$build" && pwd)/incremf"
export OPENBLAS_NUM_THREADS=1
[ "$(id -u)" = 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/imf-bench-prepare.XXXXXX"); trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
mpirun -n 2 "$bin" synth --out big.csv --ratings "$n" --users 2000000 --items 200000 --seed 3 \
  --set synth.user_skew=0.5 --set synth.item_skew=0.6 --quiet
bytes=$(stat -c %s big.csv)
cat big.csv > /dev/null   # into the page cache
median() { sort -g | awk '{a[NR]=$1} END{print (NR%2)? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
t() { local s e; s=$(date +%s.%N); "$@" > /dev/null; e=$(date +%s.%N); echo "$e - $s" | bc -l; }
declare -A sec
for r in $(seq "$runs"); do
  sec[wc]+="$(t wc -l big.csv) "
  sec[awk]+="$(t awk -F, '{s+=$3} END{print s}' big.csv) "
  for np in 1 2; do
    rm -rf st
    out=$(mpirun -n $np "$bin" prepare --input big.csv --data st --quiet --json)
    sec[p$np]+="$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["seconds"])') "
    rss[$np]=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["peak_rss_max"])')
    stored=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["stored"])')
  done
done
printf "file: %s ratings, %.0f MB, median of %s runs\n\n" "$n" "$(echo "$bytes/1000000" | bc -l)" "$runs"
printf "%-22s %10s %10s %14s %16s\n" "what" "seconds" "MB/s" "peak RSS/rank" "RSS / final arr."
for k in wc awk p1 p2; do
  m=$(echo ${sec[$k]} | tr ' ' '\n' | median)
  mbs=$(echo "$bytes / 1000000 / $m" | bc -l)
  case $k in
    wc) name="wc -l";; awk) name="awk -F, field split";; p1) name="prepare, 1 rank";; p2) name="prepare, 2 ranks";;
  esac
  if [ "$k" = p1 ] || [ "$k" = p2 ]; then
    np=${k#p}; final=$(( stored * 20 / np ))
    printf "%-22s %10.2f %10.0f %11.0f MB %16.2f\n" "$name" "$m" "$mbs" "$(echo "${rss[$np]}/1000000" | bc -l)" "$(echo "${rss[$np]}/$final" | bc -l)"
  else
    printf "%-22s %10.2f %10.0f\n" "$name" "$m" "$mbs"
  fi
done
