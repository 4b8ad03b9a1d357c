#!/usr/bin/env bash
# table.sh [BUILD_DIR] - regenerate the table of "## Faults injected" in docs/RELIABILITY.md.
#
# Runs tests/e2e_faults_{kill,kill_update,disk,rank,files}.sh the way CTest does (IMF_BIN=BUILD_DIR/incremf,
# the same environment), each appending one row per fault class to a results file
# (IMF_FAULT_RESULTS), adds the fault and bad-input classes the older end-to-end scripts cover
# (their cases counted from their sources below: when a count comes out empty, the pattern here
# needs updating), and replaces the text between the faults-table markers of docs/RELIABILITY.md.
# BUILD_DIR defaults to build. IMF_FAULT_TABLE_PRINT=1 prints the table instead of writing it.
# Exit status: 0 when every script passed (or skipped, which the table says), 1 otherwise.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd) || exit 2
[ -x "$build/incremf" ] || { echo "table.sh: $build/incremf not found (build first)"; exit 2; }
export IMF_BIN="$build/incremf" IMF_MPIEXEC="${IMF_MPIEXEC:-$(command -v mpiexec)}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
export OMPI_MCA_rmaps_base_oversubscribe=1 IMF_TEST_DATA="$root/tests/data"
res=$(mktemp /tmp/imf-fault-table.XXXXXX); trap 'rm -f "$res" "$res".*' EXIT
export IMF_FAULT_RESULTS="$res"
status=0
declare -A WALL
for s in kill kill_update disk rank files; do
  t0=$(date +%s.%N)
  bash "$root/tests/e2e_faults_$s.sh" > "$res.$s.log" 2>&1; rc=$?
  WALL[$s]=$(echo "$(date +%s.%N) $t0" | awk '{printf "%.0f", $1 - $2}')
  tail -1 "$res.$s.log"
  if [ $rc -eq 77 ]; then
    printf 'e2e_faults_%s\t%s\t0\tskipped here: %s\n' "$s" "(the whole script)" "$(grep -m1 '^skip' "$res.$s.log")" >> "$res"
  elif [ $rc -ne 0 ]; then
    status=1
    grep '^FAIL' "$res.$s.log" | head -5
  fi
done

# ---- classes the older scripts cover (counted from their sources) ----
t="$root/tests"
n_block() { sed -n "/$2/,/$3/p" "$t/$1" | grep -c "check \""; }
cnt_words() { sed -n "s/$2/\\1/p" "$t/$1" | head -1 | wc -w; }
older() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "${3:-?}" "$4" >> "$res"; }
rej=$(sed -n 's/.*check "np=$np rejected \([0-9]*\) lines.*/\1/p' "$t/e2e_ingest.sh" | head -1)
nps=$(sed -n 's/^for np in \([0-9 ]*\); do$/\1/p' "$t/e2e_ingest.sh" | head -1 | wc -w)
older e2e_ingest "malformed rating lines (blank, NaN, non-numeric, missing field, out of scale, bad time, too few fields), each rejected with its line number and reason, at 1-3 ranks" \
  "$(( ${rej:-0} * ${nps:-0} ))" "every line counted once (read = header + stored + merged + rejected), rejects file, same store at every rank count"
older e2e_ingest "bad input files: missing, empty, binary, over-long line or id, mostly broken, existing store, unknown config key" \
  "$(n_block e2e_ingest.sh '^# Bad input' '^# More ranks')" "exit 3 (2 for the config key) with the file named, nothing written"
older e2e_ingest "append crashed between batch file and MANIFEST (IMF_FAULT=store-before-manifest); the same file appended twice" \
  "$(( $(grep -c 'IMF_FAULT=store-before-manifest' "$t/e2e_ingest.sh") + $(grep -c 'appended twice' "$t/e2e_ingest.sh") ))" \
  "store unchanged, rerun succeeds; a repeated file is refused (exit 3) naming its batch"
older e2e_train "checkpoints: bytes flipped, truncated, crash before the rename (IMF_FAULT=checkpoint-before-rename), SIGKILL after a checkpoint, SIGUSR1" \
  "$(grep -cE 'corrupt checkpoint: exit 3|truncated checkpoint: clear error|injected crash during a checkpoint write fails|SIGKILL: a loadable run checkpoint|SIGUSR1: exit 75' "$t/e2e_train.sh")" \
  "exit 3 with a clear message; the previous checkpoint intact; resume bitwise identical"
older e2e_update "update killed at each step (IMF_KILL_AT) and failed at each step (IMF_FAULT); locks (another host, --break-lock, a dead local holder)" \
  "$(( $(cnt_words e2e_update.sh '^for point in \(.*\); do$') + $(cnt_words e2e_update.sh '^for fault in \(.*\); do$') + 3 ))" \
  "CURRENT on a loadable version, the next update completes; exit 4 for a live lock, a stale one taken over"

# issue 22's accidents (tests/e2e_accidents.sh, one section per class)
acc() { older e2e_accidents "$1" "$(n_block e2e_accidents.sh "$2" "$3")" "$4"; }
acc "non-seekable input: a FIFO, a pipe as /dev/stdin, \`-\` (a pipe, gzip, a redirected file), a pipe already in the store (prepare, append, evaluate --test/--input, update --input)" \
  '^# ---- 1\.' '^# ---- 2\.' "read once by rank 0 and scattered: the same batch as the plain file, the sha256 of the bytes sent; a repeated pipe refused (exit 3) after its read"
acc "a rating file truncated or rewritten (mtime) while \`prepare\`/\`append\` read it (plain, .gz; IMF_FAULT=input_truncated/input_touched)" \
  '^# ---- 2\.' '^# ---- 3\.' "exit 3 naming the file and what changed; no store written, the MANIFEST unchanged"
acc "outputs aliasing an input (name, symlink, hard link) or inside a store/model (--rejects, recommend --out, synth --out, status --plot, tune --table)" \
  '^# ---- 3\.' '^# ---- 5\.' "exit 2 before any write; the input and the MANIFEST intact; successful outputs leave no temporary file"
acc "sizes that multiply memory: --top 10000000, --k 100000, a planted model larger than memory, input.chunk_mb=100000000, model.k x model.samples (2 GB address-space limit)" \
  '^# ---- 5\.' '^# ---- 6\.' "lists capped at the item count (exit 0); the others exit 2 naming the option before allocating"
acc "signals: SIGTERM to a rank during update; SIGTERM/SIGINT to the ranks and SIGUSR1 to mpirun during train; SIGTERM to run-local.sh" \
  '^# ---- 6\.' '^# ---- 7\.' "exit 75 everywhere; train's run checkpoint written; update's lock released and CURRENT untouched, the rerun completes"
acc "silent nonsense: --config a directory, an unclosed [section, invalid values, status --check on an empty model dir, version numbers after rollback + prune --keep 0" \
  '^# ---- 7\.' '^echo "e2e_accidents' "exit 2 before any I/O (no directory created), exit 3 for the empty model dir, a new version number"

# ---- the table ----
table=$(mktemp /tmp/imf-fault-table.XXXXXX.md)
{
  echo "| fault or bad input | script | cases | outcome |"
  echo "|---|---|---|---|"
  awk -F'\t' '{gsub(/\|/, "\\|", $2); gsub(/\|/, "\\|", $4); printf "| %s | `%s` | %s | %s |\n", $2, $1, $3, $4}' "$res"
  echo
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  echo "(For the older scripts, the count is of their checks of that class, read from their sources.)"
  echo
  printf 'Generated by `tests/fault/table.sh` on %s, %s cores, load average %s at the end; wall time ' \
    "$(date -u +%Y-%m-%d)" "$(nproc)" "$load"
  printf 'e2e_faults_kill %s s, e2e_faults_kill_update %s s, e2e_faults_disk %s s, e2e_faults_rank %s s, e2e_faults_files %s s.\n' \
    "${WALL[kill]}" "${WALL[kill_update]}" "${WALL[disk]}" "${WALL[rank]}" "${WALL[files]}"
} > "$table"
if [ -n "${IMF_FAULT_TABLE_PRINT:-}" ]; then cat "$table"; rm -f "$table"; exit $status; fi
doc="$root/docs/RELIABILITY.md"
if ! grep -q '<!-- faults-table:begin -->' "$doc" 2>/dev/null; then
  echo "table.sh: $doc has no faults-table markers; the table is:"; cat "$table"; rm -f "$table"; exit 1
fi
/usr/bin/python3 - "$doc" "$table" <<'PYEOF'
import sys
doc, table = sys.argv[1], open(sys.argv[2]).read()
s = open(doc).read()
a, b = "<!-- faults-table:begin -->", "<!-- faults-table:end -->"
i, j = s.index(a) + len(a), s.index(b)
open(doc, "w").write(s[:i] + "\n" + table + s[j:])
PYEOF
rm -f "$table"
echo "table.sh: the table in $doc is regenerated"
exit $status
