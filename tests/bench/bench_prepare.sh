#!/usr/bin/env bash
# bench_prepare.sh - prepare throughput on a >= 1 GB synthetic CSV read from the page cache, at 1
# and 2 ranks, beside `wc -l` and an awk field split of the same file in the same run; and the
# peak memory per rank against the final arrays that rank holds (20 bytes a rating).
# Usage: tests/bench/bench_prepare.sh [BUILD_DIR] [RATINGS] [RUNS] [BASE_BUILD_DIR]
#   (defaults: build 42000000 3). With BASE_BUILD_DIR, that build's prepare runs too, alternating
#   with this one run by run, and the table gets its rows and the ratio of the two medians.
# Prints a table of medians over RUNS runs, and the memory each prepare faulted in (from
# /proc/vmstat, system-wide: 4 KiB for each page fault, 2 MiB for each transparent huge page;
# mostly fresh memory the kernel zeroed for it, a measure of memory traffic that the machine's
# noise does not move). Needs ~3 GB of free disk in $TMPDIR.
set -euo pipefail
build="${1:-build}"; n="${2:-42000000}"; runs="${3:-3}"; base="${4:-}"
bin="$(cd "$build" && pwd)/incremf"
basebin=""; [ -z "$base" ] || basebin="$(cd "$base" && pwd)/incremf"
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
faulted() { awk '$1 == "thp_fault_alloc" {h = $2} $1 == "pgfault" {p = $2} END {printf "%.0f\n", (p - h) * 4 + h * 2048}' /proc/vmstat 2>/dev/null || echo 0; } # KiB
declare -A sec rss hp
kinds="p"; [ -z "$basebin" ] || kinds="p b"
for r in $(seq "$runs"); do
  sec[wc]+="$(t wc -l big.csv) "
  sec[awk]+="$(t awk -F, '{s+=$3} END{print s}' big.csv) "
  for np in 1 2; do
    for kind in $kinds; do
      b=$bin; [ "$kind" = p ] || b=$basebin
      rm -rf st
      h0=$(faulted)
      out=$(mpirun -n $np "$b" prepare --input big.csv --data st --quiet --json)
      hp[$kind$np]=$(( ($(faulted) - h0) / 1024 ))
      sec[$kind$np]+="$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["seconds"])') "
      rss[$kind$np]=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["peak_rss_max"])')
      stored=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["stored"])')
    done
  done
done
printf "file: %s ratings, %.0f MB, median of %s runs\n\n" "$n" "$(echo "$bytes/1000000" | bc -l)" "$runs"
printf "%-26s %10s %10s %14s %16s %14s\n" "what" "seconds" "MB/s" "peak RSS/rank" "RSS / final arr." "faulted MB"
rows="wc awk p1 p2"; [ -z "$basebin" ] || rows="wc awk p1 b1 p2 b2"
for k in $rows; do
  m=$(echo ${sec[$k]} | tr ' ' '\n' | median)
  mbs=$(echo "$bytes / 1000000 / $m" | bc -l)
  case $k in
    wc) name="wc -l";; awk) name="awk -F, field split";; p1) name="prepare, 1 rank";; p2) name="prepare, 2 ranks";;
    b1) name="base prepare, 1 rank";; b2) name="base prepare, 2 ranks";;
  esac
  if [ "$k" = wc ] || [ "$k" = awk ]; then
    printf "%-26s %10.2f %10.0f\n" "$name" "$m" "$mbs"
  else
    np=${k#?}; final=$(( stored * 20 / np ))
    printf "%-26s %10.2f %10.0f %11.0f MB %16.2f %14s\n" "$name" "$m" "$mbs" "$(echo "${rss[$k]}/1000000" | bc -l)" \
      "$(echo "${rss[$k]}/$final" | bc -l)" "${hp[$k]}"
  fi
done
echo "all runs (s):"; for k in $rows; do echo "  $k: ${sec[$k]}"; done
p1=$(echo ${sec[p1]} | tr ' ' '\n' | median); p2=$(echo ${sec[p2]} | tr ' ' '\n' | median)
printf "2 ranks vs 1 rank: %.2fx\n" "$(echo "$p1 / $p2" | bc -l)"
if [ -n "$basebin" ]; then
  for np in 1 2; do
    bm=$(echo ${sec[b$np]} | tr ' ' '\n' | median); pm=$(echo ${sec[p$np]} | tr ' ' '\n' | median)
    printf "this build vs base, %d rank(s): %.2fx faster (medians, runs alternating)\n" "$np" "$(echo "$bm / $pm" | bc -l)"
  done
fi
