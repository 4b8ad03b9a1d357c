#!/usr/bin/env bash
# check-reports.sh COMMAND [ARG...] - how every test of a sanitizer build (INCREMF_SANITIZE=ON)
# runs: no ASan, UBSan or LeakSanitizer report can go unnoticed, even from a process whose
# failure the test expects (a usage error, a refused file, a killed rank) or from a rank behind
# mpirun. Each instrumented process writes its report to a file under a fresh directory
# (log_path) instead of stderr; the test fails when any report exists, whatever the command's
# own exit code, and the reports are printed. Otherwise the command's exit code is returned
# (77 = skipped). IMF_SANITIZER_REPORTS=DIR also keeps a copy of every report there. An empty
# report file is only noted: a process SIGKILLed (the fault-injection tests kill jobs at random
# points) between opening its log and writing to it leaves one, with nothing to go on.
set -u
reports=$(mktemp -d "${TMPDIR:-/tmp}/imf-sanitizer.XXXXXX") || exit 1
trap 'rm -rf "$reports"' EXIT
export ASAN_OPTIONS="${ASAN_OPTIONS:-}:log_path=$reports/report:log_exe_name=1"
"$@"
rc=$?
found=0
for f in "$reports"/report.*; do
  [ -e "$f" ] || continue
  if [ ! -s "$f" ]; then
    echo "note: empty sanitizer log ${f##*/} (the process was killed while opening it)" >&2
    continue
  fi
  found=1
  echo "== sanitizer report ${f##*/}:" >&2
  cat "$f" >&2
  [ -z "${IMF_SANITIZER_REPORTS:-}" ] || { mkdir -p "$IMF_SANITIZER_REPORTS" && cp "$f" "$IMF_SANITIZER_REPORTS/"; }
done
if [ $found = 1 ]; then
  echo "FAIL: sanitizer report(s) above (the command exited $rc)" >&2
  exit 1
fi
exit $rc
