#!/usr/bin/env bash
# e2e_synth.sh - `incremf synth` from the command line: help, usage errors (exit 2 naming the
# flag), --json, flags over --set over --config, format from the name, the same bytes on 1 and
# 2 ranks, compressed output, and pairs without replacement (repeats only from --rerate and
# the duplicate corrupt lines).
set -uo pipefail
bin="${IMF_BIN:?IMF_BIN not set}"
mpiexec="${IMF_MPIEXEC:-mpiexec}"
work="$(mktemp -d "${TMPDIR:-/tmp}/imf-e2e-synth.XXXXXX")"
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }
mpi() { "$mpiexec" --oversubscribe -n "$1" "$bin" "${@:2}"; }

# help
grep -q -- "--corrupt F" <<<"$("$bin" synth --help)" || fail "help text"
grep -q "usage: incremf synth" <<<"$("$bin" help synth)" || fail "incremf help synth"

# usage errors: exit 2, naming the culprit
"$bin" synth --out x.csv --bogus 2> err.txt; rc=$?
[ "$rc" = 2 ] || fail "unknown flag exit $rc"
grep -q -- "--bogus" err.txt || fail "unknown flag not named: $(cat err.txt)"
"$bin" synth --users 10 2> err.txt; [ $? = 2 ] || fail "missing --out"
"$bin" synth --out x.csv --users ten 2> err.txt; [ $? = 2 ] || fail "bad integer"
grep -q -- "--users" err.txt || fail "bad integer not named"
"$bin" synth --out x.csv --drift 2 2> err.txt; [ $? = 2 ] || fail "drift out of range"
[ ! -e x.csv ] || fail "a failed run left x.csv"

# --json summary; --quiet silences stderr; without them a one-line summary (below)
"$bin" synth --out a.csv --ratings 1000 --json --quiet > out.json 2> err.txt || fail "json run"
grep -q '"out":"a.csv"' out.json || fail "json out: $(cat out.json)"
grep -q '"lines":1001' out.json || fail "json lines: $(cat out.json)"
bytes=$(stat -c %s a.csv)
grep -q "\"bytes\":$bytes" out.json || fail "json bytes"
[ ! -s err.txt ] || fail "--quiet printed: $(cat err.txt)"
[ "$(wc -l < a.csv)" = 1001 ] || fail "line count"

# config file < --set < flags
printf '[synth]\nusers = 50\nratings = 500\nseed = 3\n' > s.ini
"$bin" synth --config s.ini --set synth.ratings=300 --out c.tsv 2> err.txt || fail "config run"
grep -q "synth: wrote c.tsv: 300 lines" err.txt || fail "summary: $(cat err.txt)"
[ "$(wc -l < c.tsv)" = 300 ] || fail "--set did not win over --config"
awk -F'\t' '$1 > 50 || NF != 4 { bad = 1 } END { exit bad }' c.tsv || fail "users from config / tsv shape"
"$bin" synth --config s.ini --set synth.ratings=300 --ratings 200 --out d.dat --quiet || fail "flag run"
[ "$(wc -l < d.dat)" = 200 ] || fail "flag did not win over --set"
grep -q '::' d.dat || fail "format from .dat name"
"$bin" synth --out e.txt --format mtx --ratings 10 --implicit --quiet || fail "mtx"
head -1 e.txt | grep -q "coordinate pattern general" || fail "implicit mtx banner"

# the same bytes on 1 and 2 ranks, plain and compressed
args=(--users 400 --items 150 --ratings 20000 --drift 0.4 --corrupt 0.02 --seed 9 --quiet)
mpi 1 synth "${args[@]}" --out one.csv || fail "np1"
mpi 2 synth "${args[@]}" --out two.csv || fail "np2"
cmp -s one.csv two.csv || fail "np1 and np2 differ"
mpi 2 synth "${args[@]}" --out two.csv.gz || fail "np2 gz"
gzip -dc two.csv.gz | cmp -s - one.csv || fail "gz content"
if command -v zstd > /dev/null; then
  mpi 2 synth "${args[@]}" --out two.csv.zst || fail "np2 zst"
  zstd -dcq two.csv.zst | cmp -s - one.csv || fail "zst content"
fi
ls -a | grep -q '\.tmp$' && fail "temporary file left behind"

# a user's items are drawn without replacement: no repeated (user, item) pair without
# --rerate, even where the heaviest users reach their cap, two thirds of the items (500 x 120
# with 20000 lines: at most 80 items a user)
repeats() { tail -n +2 "$1" | awk -F, '{ k = $1 "," $2; if (k in s) d++; s[k] = 1 } END { print d + 0 }'; }
args=(--users 500 --items 120 --ratings 20000 --seed 4 --quiet)
mpi 2 synth "${args[@]}" --drift 0.5 --out nr.csv || fail "no-rerate run"
[ "$(repeats nr.csv)" = 0 ] || fail "repeated pairs without --rerate: $(repeats nr.csv)"
most=$(tail -n +2 nr.csv | cut -d, -f1 | sort | uniq -c | sort -rn | awk 'NR == 1 { print $1 }')
[ "$most" = 80 ] || fail "the heaviest user rated $most items, not the cap of 80"
"$bin" synth "${args[@]}" --implicit --out nri.csv || fail "implicit no-rerate run"
[ "$(repeats nri.csv)" = 0 ] || fail "repeated pairs in implicit output: $(repeats nri.csv)"
# --rerate 0.1: about 10% of the lines repeat a pair (a little less: a user's first line has
# nothing to re-rate); the same seed gives the same bytes, on any rank count
mpi 2 synth "${args[@]}" --rerate 0.1 --out rr.csv || fail "rerate run"
"$bin" synth "${args[@]}" --rerate 0.1 --out rr1.csv || fail "rerate run np1"
cmp -s rr.csv rr1.csv || fail "rerate: np1 and np2 differ"
n=$(repeats rr.csv)
[ "$n" -ge 1700 ] && [ "$n" -le 2100 ] || fail "--rerate 0.1 gave $n repeats of 20000"
"$bin" synth --out x.csv --rerate 1.5 2> err.txt; [ $? = 2 ] || fail "rerate out of range"
grep -q "rerate" err.txt || fail "rerate error does not name it: $(cat err.txt)"
echo "e2e_synth: ok"
