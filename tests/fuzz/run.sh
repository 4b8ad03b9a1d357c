#!/usr/bin/env bash
# tests/fuzz/run.sh [SECONDS] - build the libFuzzer targets, replay every committed reproducer,
# then fuzz each target for SECONDS (default 60; 0 = only run the seeds and the corpus once) and
# print a table: target, seconds, executions, exec/s, corpus size, result. Exits 1 when any
# target crashed, hung, leaked or tripped a sanitizer or an invariant (the reproducer is kept
# and its path printed), 2 on a build or setup failure.
#
# Environment: IMF_FUZZ_BUILD (build directory, default build-fuzz at the repository root),
# IMF_FUZZ_TARGETS (space-separated subset, e.g. "parse_csv store"), CC (default clang),
# IMF_FUZZ_JOBS (build parallelism, default 2), IMF_FUZZ_PARALLEL (targets fuzzed at once, default
# the core count), IMF_FUZZ_ARGS (extra libFuzzer flags).
# See tests/fuzz/README.md.
set -uo pipefail
SECS=${1:-60}
case $SECS in '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;; esac
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${IMF_FUZZ_BUILD:-$ROOT/build-fuzz}
ALL="parse_csv parse_tsv parse_dat parse_ml100k parse_mtx parse_libmf detect config store checkpoint registry"
TARGETS=${IMF_FUZZ_TARGETS:-$ALL}

die() { echo "run.sh: $*" >&2; exit 2; }

# ---- build ----
cfglog=$(mktemp)
cmake -S "$HERE" -B "$BUILD" -DCMAKE_C_COMPILER="${CC:-clang}" >"$cfglog" 2>&1 ||
  { cat "$cfglog" >&2; rm -f "$cfglog"; die "configure failed"; }
rm -f "$cfglog"
cmake --build "$BUILD" -j"${IMF_FUZZ_JOBS:-2}" >"$BUILD/build.log" 2>&1 ||
  { tail -50 "$BUILD/build.log" >&2; die "build failed (log: $BUILD/build.log)"; }

# ---- runtime settings ----
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_ess_singleton_isolated=1
export OMPI_MCA_btl=self OPENBLAS_NUM_THREADS=1
# allocator_may_return_null: a huge malloc (HDF5 sizing a buffer from a corrupt header, or
# ours) returns NULL as glibc's would, and the code must cope; libFuzzer still reports any
# single allocation over -malloc_limit_mb (= -rss_limit_mb) as out-of-memory.
# max_allocation_size_mb: anything larger fails (NULL) instead of being reported, as on a node
# whose overcommit refuses it (see limits below).
export ASAN_OPTIONS=allocator_may_return_null=1:max_allocation_size_mb=4096:detect_leaks=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS=print_suppressions=0:suppressions=$HERE/lsan.supp
# stack traces with names: Debian's llvm-14 has the symbolizer outside PATH (package llvm links it)
if ! command -v llvm-symbolizer >/dev/null; then
  for s in /usr/lib/llvm-*/bin/llvm-symbolizer; do [ -x "$s" ] && export ASAN_SYMBOLIZER_PATH=$s; done
fi

# scratch files of the harnesses: in memory when possible, removed even after a crash
IMF_FUZZ_TMPDIR=$(mktemp -d /dev/shm/imf-fuzz-run.XXXXXX 2>/dev/null || mktemp -d)
export IMF_FUZZ_TMPDIR
trap 'rm -rf "$IMF_FUZZ_TMPDIR"' EXIT

# ---- seeds: binary ones are generated (stores, checkpoints, model directories) ----
SEEDS=$BUILD/seeds
if [ ! -f "$SEEDS/.stamp" ] || [ "$BUILD/incremf" -nt "$SEEDS/.stamp" ] || [ "$HERE/gen_seeds.sh" -nt "$SEEDS/.stamp" ]; then
  "$HERE/gen_seeds.sh" "$BUILD" "$SEEDS" || die "seed generation failed"
  touch "$SEEDS/.stamp"
  # the library changed: inputs grown from the old files may no longer be what it writes
  rm -rf "$BUILD/corpus/store" "$BUILD/corpus/checkpoint" "$BUILD/corpus/registry"
fi
# the config dictionary gets every key of the table, so it never goes stale
{
  cat "$HERE/dict/config.dict"
  "$BUILD/incremf" help config 2>/dev/null | awk '$1 ~ /^[a-z_]+\.[a-z_]+$/ {
      split($1, p, "."); printf "s_%s=\"[%s]\"\nk_%s_%s=\"%s = \"\nf_%s_%s=\"%s=\"\n", p[1], p[1], p[1], p[2], p[2], p[1], p[2], $1 }' |
    sort -u
} >"$BUILD/config.dict"

seed_dirs() { # the read-only seed directories of a target
  local t=$1 d
  for d in "$HERE/corpus/$t" "$SEEDS/$t"; do [ -d "$d" ] && echo "$d"; done
  case $t in parse_* | detect) echo "$ROOT/tests/data" ;; config) echo "$ROOT/configs" ;; esac
}
opts() { # libFuzzer options of a target
  case $1 in
  parse_* | detect) echo "-max_len=8192 -dict=$HERE/dict/parse.dict" ;;
  config) echo "-max_len=8192 -dict=$BUILD/config.dict" ;;
  store) echo "-max_len=131072 -dict=$HERE/dict/store.dict" ;;
  registry) echo "-max_len=131072 -dict=$HERE/dict/registry.dict" ;;
  checkpoint) echo "-max_len=65536" ;;
  esac
}
limits() { # memory limits of a target: 2 GB of resident memory each (see asan_opts for one block)
  echo "-rss_limit_mb=2048"
}
asan_opts() { # ASAN_OPTIONS of a target
  # Past max_allocation_size_mb malloc returns NULL, as on a node that refuses the overcommit, and
  # the code must report out of memory; below it, libFuzzer reports any single block over the
  # 2 GB limit as out-of-memory (a small input must not make the parsers ask for that much).
  # The targets that hand damaged files to HDF5 (store, checkpoint) fail past 1 GB instead:
  # HDF5 1.10.8 mallocs the size a corrupt (checksummed) object header claims, 3.8 GB seen, ten
  # times over while it retries the read, before the open fails cleanly - the program's
  # behaviour, not a bug. Let through, each block cost ASan a poisoning of its shadow: 12.6 s
  # for that reproducer on a slow day (the hang limit is 10 s); refused, 0.16 s.
  case $1 in
  store | checkpoint) echo "${ASAN_OPTIONS/max_allocation_size_mb=4096/max_allocation_size_mb=1024}" ;;
  *) echo "$ASAN_OPTIONS" ;;
  esac
}
classify() { # result of a libFuzzer log
  local log=$1 rc=$2
  if [ "$rc" = 0 ]; then echo ok; return; fi
  if grep -q "ERROR: libFuzzer: timeout" "$log"; then echo hang
  elif grep -q "ERROR: libFuzzer: out-of-memory" "$log"; then echo oom
  elif grep -q "LeakSanitizer: detected memory leaks" "$log"; then echo leak
  elif grep -q "==fuzz== invariant violated" "$log"; then echo invariant
  elif grep -q "runtime error:" "$log"; then echo ubsan
  elif grep -q "ERROR: AddressSanitizer" "$log"; then echo asan
  elif grep -q "deadly signal" "$log"; then echo crash
  elif [ "$rc" = 124 ]; then echo "hang (driver)"
  else echo "error (exit $rc)"; fi
}

mkdir -p "$BUILD/logs"
failed=0

# ---- 1. committed reproducers must stay fixed ----
nrep=0
for t in $TARGETS; do
  [ -x "$BUILD/fuzz_$t" ] || die "no target fuzz_$t"
  dir=$HERE/regressions/$t
  [ -d "$dir" ] || continue
  mapfile -t files < <(find "$dir" -type f | sort)
  [ "${#files[@]}" -gt 0 ] || continue
  log=$BUILD/logs/$t.regressions.log
  (cd "$BUILD" && ASAN_OPTIONS=$(asan_opts "$t") timeout 600 "./fuzz_$t" -timeout=10 $(limits "$t") "${files[@]}") >"$log" 2>&1
  rc=$?
  nrep=$((nrep + ${#files[@]}))
  if [ "$rc" != 0 ]; then
    echo "REGRESSION: $t: $(classify "$log" "$rc") replaying $dir (log: $log)"
    grep "^Running: " "$log" | tail -1 | sed 's/^Running: /  input: /'
    failed=1
  fi
done
echo "replayed $nrep committed reproducer(s)$([ $failed = 0 ] && echo ": all pass")"

# ---- 2. fuzz ----
# Targets run IMF_FUZZ_PARALLEL at a time (default: the number of cores), each single-threaded:
# on CI's 2-core machine that halves the stage's wall time for the same fuzzing per target.
fuzz_one() { # target -> $BUILD/logs/<target>.row (table row) and .fail (message), if it failed
  local t=$1 work=$BUILD/corpus/$1 art=$BUILD/artifacts/$1 log=$BUILD/logs/$1.log rc res execs eps corp unit
  local -a seeds run
  mkdir -p "$work" "$art"
  rm -f "$BUILD/logs/$t.row" "$BUILD/logs/$t.fail"
  mapfile -t seeds < <(seed_dirs "$t")
  if [ "$SECS" = 0 ]; then
    run=(-runs=0)
  else
    run=(-max_total_time="$SECS")
  fi
  # shellcheck disable=SC2086,SC2046
  (cd "$BUILD" && ASAN_OPTIONS=$(asan_opts "$t") timeout $((SECS + 600)) "./fuzz_$t" "${run[@]}" -timeout=10 $(limits "$t") \
    -detect_leaks=1 -print_final_stats=1 -artifact_prefix="$art/" $(opts "$t") ${IMF_FUZZ_ARGS:-} \
    "$work" "${seeds[@]}") >"$log" 2>&1
  rc=$?
  res=$(classify "$log" "$rc")
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  corp=$(grep -oE "corp: [0-9]+/[0-9]+(b|Kb|Mb|Gb)" "$log" | tail -1 | sed 's/corp: //')
  if [ -z "$execs" ]; then # crashed: the last status line has the count
    execs=$(grep -oE "^#[0-9]+" "$log" | tail -1 | tr -d '#')
  fi
  echo "$t|$SECS|${execs:-?}|${eps:-?}|${corp:-?}|$res" >"$BUILD/logs/$t.row"
  if [ "$res" != ok ]; then
    unit=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
    {
      echo "FAIL: $t: $res; log $log${unit:+; reproducer $unit}"
      [ -n "$unit" ] && echo "  replay: (cd $BUILD && ./fuzz_$t $unit)"
    } >"$BUILD/logs/$t.fail"
  fi
}
par=${IMF_FUZZ_PARALLEL:-$(nproc 2>/dev/null || echo 1)}
case $par in '' | *[!0-9]* | 0) par=1 ;; esac
for t in $TARGETS; do
  while [ "$(jobs -rp | wc -l)" -ge "$par" ]; do wait -n; done
  fuzz_one "$t" &
done
wait
rows=()
for t in $TARGETS; do
  if [ -f "$BUILD/logs/$t.row" ]; then rows+=("$(cat "$BUILD/logs/$t.row")"); else rows+=("$t|$SECS|?|?|?|error (no result)"); failed=1; fi
  if [ -f "$BUILD/logs/$t.fail" ]; then cat "$BUILD/logs/$t.fail"; failed=1; fi
done

printf '\n%-14s %8s %12s %8s %16s  %s\n' target seconds executions exec/s corpus result
for r in "${rows[@]}"; do
  IFS='|' read -r t s e x c res <<<"$r"
  printf '%-14s %8s %12s %8s %16s  %s\n' "$t" "$s" "$e" "$x" "$c" "$res"
done
exit $failed
