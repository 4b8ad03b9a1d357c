#!/usr/bin/env bash
# check_errors.sh [SRC_DIR] - the error-macro discipline of src/error.h, checked by text (CTest
# check_errors, and CI's static analysis stage):
#   1. a function with a cleanup label (a `name:` line) uses no returning macro (IMF_CHECK,
#      IMF_FAIL, IMF_MPI): a return from the middle would skip the cleanup (a lock left held, an
#      undo not done); it uses IMF_TRY, IMF_MPI_TRY and `st = IMF_RAISE(...); goto label;`;
#   2. nobody spells imf_err_raise/imf_err_mpi(..., __FILE__, __LINE__, ...) by hand outside
#      error.h: IMF_RAISE, IMF_FAIL and IMF_MPI_RAISE say the same in one word.
# Functions are found by brace depth (strings, character constants and comments stripped), so
# the check needs the code's style: a function's body opens at depth 0. Prints FILE:LINE: for
# each finding and exits 1 if any.
set -uo pipefail
src="${1:-$(dirname "$0")/../src}"
# Files whose findings are reported, not failed (IMF_CHECK_ERRORS_PENDING="a.c b.c", for a file
# being converted on a branch): none by default, so any finding fails.
pending="${IMF_CHECK_ERRORS_PENDING-}"

bad=0 pend=0
while IFS= read -r f; do
  base=$(basename "$f")
  out=$(awk -v file="$f" '
    function flush(   i) {
      if (nlab > 0)
        for (i = 1; i <= nret; i++)
          printf "%s:%d: %s in %s(), which has the cleanup label %s: (line %d): use IMF_TRY / IMF_MPI_TRY / st = IMF_RAISE(...); goto\n",
                 file, retline[i], retwhat[i], fname, labname, labline
      nlab = 0; nret = 0
    }
    {
      line = $0
      # comments (block comments may span lines)
      out = ""
      while (length(line) > 0) {
        if (incomment) {
          p = index(line, "*/")
          if (p == 0) { line = ""; break }
          line = substr(line, p + 2); incomment = 0
        } else {
          p = index(line, "/*"); q = index(line, "//")
          if (q > 0 && (p == 0 || q < p)) { out = out substr(line, 1, q - 1); line = ""; break }
          if (p == 0) { out = out line; line = ""; break }
          out = out substr(line, 1, p - 1) " "; line = substr(line, p + 2); incomment = 1
        }
      }
      code = out
      gsub(/\\./, "", code)                 # escapes inside strings and character constants
      gsub(/"[^"]*"/, "\"\"", code)
      gsub(/'"'"'[^'"'"']*'"'"'/, "0", code)
      if (code ~ /^[ \t]*#/) next           # preprocessor lines (macros included)
      if (depth == 0 && code ~ /\(/) {      # a declarator at file scope: the function name
        n = code; sub(/\(.*/, "", n); gsub(/.*[ \t*]/, "", n)
        if (n != "") cand = n
      }
      if (depth > 0) {
        if (code ~ /^[ \t]*[A-Za-z_][A-Za-z0-9_]*:([^:]|$)/ && code !~ /^[ \t]*default:/) {
          l = code; sub(/^[ \t]*/, "", l); sub(/:.*/, "", l)
          if (nlab == 0) { labname = l; labline = NR }
          nlab++
        }
        w = ""
        if (code ~ /(^|[^A-Za-z0-9_])IMF_CHECK[ \t]*\(/) w = "IMF_CHECK"
        else if (code ~ /(^|[^A-Za-z0-9_])IMF_FAIL[ \t]*\(/) w = "IMF_FAIL"
        else if (code ~ /(^|[^A-Za-z0-9_])IMF_MPI[ \t]*\(/) w = "IMF_MPI"
        if (w != "") { nret++; retline[nret] = NR; retwhat[nret] = w }
      }
      if (code ~ /(^|[^A-Za-z0-9_])imf_err_(raise|mpi)[ \t]*\(/) {
        raising = NR; rfun = (code ~ /imf_err_mpi/) ? "imf_err_mpi" : "imf_err_raise"
      }
      if (raising && code ~ /__FILE__/) {
        printf "%s:%d: %s(..., __FILE__, __LINE__, ...) by hand: use %s\n", file, raising, rfun,
               rfun == "imf_err_mpi" ? "IMF_MPI_RAISE" : "IMF_RAISE (or IMF_FAIL)"
        raising = 0
      }
      if (raising && code ~ /;/) raising = 0
      o = gsub(/\{/, "{", code); c = gsub(/\}/, "}", code)
      if (depth == 0 && o > c) { fname = cand; nlab = 0; nret = 0 }
      depth += o - c
      if (depth == 0 && c > 0 && fname != "") { flush(); fname = "" }
    }' "$f")
  [ -n "$out" ] || continue
  case " $pending " in
  *" $base "*) pend=$((pend + $(printf '%s\n' "$out" | wc -l))); printf '%s\n' "$out" | sed 's/^/pending: /' ;;
  *) bad=1; printf '%s\n' "$out" ;;
  esac
done < <(find "$src" -name '*.c' | sort)

[ "$pend" -eq 0 ] || echo "check_errors: $pend finding(s) in files listed as pending (not failed): $pending"
if [ "$bad" -ne 0 ]; then
  echo "check_errors: FAILED (see src/error.h, 'Which macro where')"
  exit 1
fi
echo "check_errors: ok"
