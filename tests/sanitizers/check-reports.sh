#!/usr/bin/env bash
# check-reports.sh COMMAND [ARG...] - how every test of a sanitizer build (INCREMF_SANITIZE=ON)
# runs: no ASan, UBSan or LeakSanitizer report can go unnoticed, even from a process whose
# failure the test expects (a usage error, a refused file, a killed rank) or from a rank behind
# mpirun. Each instrumented process writes its report to a file under a fresh directory
# (log_path) instead of stderr; the test fails when any report exists, whatever the command's
# own exit code, and the reports are printed. Otherwise the command's exit code is returned
# (77 = skipped). IMF_SANITIZER_REPORTS=DIR also keeps a copy of every report there.
#
# Two kinds of log are only noted, both left by processes the fault-injection tests SIGKILL on
# purpose at random points (tests/e2e_faults_*.sh, tests/fault/killshim.c):
# - an empty one: the process was killed between opening its log and writing to it;
# - one that holds nothing but LeakSanitizer's "Unable to get registers from thread N." lines.
#   LSan checks for leaks at exit from a tracer task that shares the process's memory but is not
#   one of its threads; it stops every thread with ptrace and reads its registers. A SIGKILL
#   that arrives during that check ends the threads under the tracer (ptrace fails with ESRCH)
#   and the tracer logs exactly this line per thread before it dies with the process. Nothing
#   else is in such a file: no leak, no error. The line itself cannot hide a leak (LSan then
#   skips that thread, or takes its whole stack as reachable, and reports the rest as usual;
#   git's test suite ignores it the same way). Any other line — a leak, an ASan or UBSan error,
#   any other LSan "fatal error" — fails the test as before (a tracer crash: see below). (With log_exe_name=1 the prefix is
#   "==incremf==PID==".)
set -u
# LSan's own crash: the tracer task that stops the threads for the leak check died (observed
# once on `incremf help` in a CI run: "Tracer caught signal 11", then "LeakSanitizer has
# encountered a fatal error" and the HINT lines, nothing else). No leak check ran and the
# process exited 1 because of it, so the test's verdict says nothing about incremf: the whole
# test runs once more, with a note. Any other report, or the same crash again, fails.
tracer_crash_only() { # REPORTS_DIR: every non-empty log is only LSan's tracer crash
  local f any=0
  for f in "$1"/report.*; do
    [ -s "$f" ] || continue
    grep -q 'Tracer caught signal' "$f" || return 1
    grep -qvE '(Tracer caught signal|LeakSanitizer has encountered a fatal error|HINT: |^[[:space:]]*$)' "$f" && return 1
    any=1
  done
  [ $any = 1 ]
}
# The tests run with symbolize=0 (tests/CMakeLists.txt: symbolizing in-process at every exit was a
# third of the suite's time, keep_dsos.c), so a report's frames read "(MODULE+0xOFFSET)": name
# each frame's function and line here, for the reports that are printed (llvm-symbolizer, else
# addr2line; a frame neither can resolve is printed as it was).
symbolized() { # REPORT_FILE
  local line mod off sym tool=""
  command -v llvm-symbolizer >/dev/null && tool=llvm
  [ -n "$tool" ] || { command -v addr2line >/dev/null && tool=addr2line; }
  while IFS= read -r line; do
    if [ -n "$tool" ] && [[ $line =~ ^(.*#[0-9]+\ 0x[0-9a-f]+)\ +\((/[^+]+)\+(0x[0-9a-f]+)\)$ ]]; then
      mod=${BASH_REMATCH[2]} off=${BASH_REMATCH[3]}
      if [ $tool = llvm ]; then
        sym=$(llvm-symbolizer --obj="$mod" "$off" 2>/dev/null | head -2 | paste -sd ' ')
      else
        sym=$(addr2line -f -e "$mod" "$off" 2>/dev/null | paste -sd ' ')
      fi
      case $sym in ''|'?? '*) echo "$line" ;; *) echo "${BASH_REMATCH[1]} in $sym ($mod+$off)" ;; esac
    else
      echo "$line"
    fi
  done <"$1"
}
asan0=${ASAN_OPTIONS:-} ubsan0=${UBSAN_OPTIONS:-}
for attempt in 1 2; do
reports=$(mktemp -d "${TMPDIR:-/tmp}/imf-sanitizer.XXXXXX") || exit 1
trap 'rm -rf "$reports"' EXIT
export ASAN_OPTIONS="$asan0:log_path=$reports/report:log_exe_name=1"
# gcc's separate libubsan ignores log_path; keep_dsos.c applies this one to it (UBSan reports)
export UBSAN_OPTIONS="$ubsan0:log_exe_name=1" IMF_UBSAN_LOG_PATH=$reports/report
"$@"
rc=$?
if [ $attempt = 1 ] && tracer_crash_only "$reports"; then
  echo "note: LeakSanitizer's tracer crashed (no leak check ran; its log follows); running the test once more" >&2
  cat "$reports"/report.* >&2
  rm -rf "$reports"
  continue
fi
break
done
found=0
for f in "$reports"/report.*; do
  [ -e "$f" ] || continue
  if [ ! -s "$f" ]; then
    echo "note: empty sanitizer log ${f##*/} (the process was killed while opening it)" >&2
    continue
  fi
  if ! grep -qvE '^(==[^ ]*==Unable to get registers from thread [0-9]+\.)?[[:space:]]*$' "$f"; then
    echo "note: sanitizer log ${f##*/} only says LSan could not read a thread's registers" \
      "($(grep -c 'Unable to get registers' "$f") thread(s)): the process was SIGKILLed during its leak check" >&2
    continue
  fi
  found=1
  echo "== sanitizer report ${f##*/}:" >&2
  symbolized "$f" >&2
  [ -z "${IMF_SANITIZER_REPORTS:-}" ] || { mkdir -p "$IMF_SANITIZER_REPORTS" && cp "$f" "$IMF_SANITIZER_REPORTS/"; }
done
if [ $found = 1 ]; then
  echo "FAIL: sanitizer report(s) above (the command exited $rc)" >&2
  exit 1
fi
exit $rc
