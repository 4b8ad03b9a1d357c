# e2elib.sh - shared by the end-to-end scripts (tests/e2e_*.sh), sourced, not run: check
# counting and a launcher for the incremf binary. Expects $bin and $mpiexec to be set.
fail=0; pass=0
ok() { pass=$((pass+1)); echo "ok   $*"; }
bad() { fail=$((fail+1)); echo "FAIL $*"; }
check() { local what="$1"; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
# In a sanitizer build a process that printed an ASan/UBSan/LeakSanitizer report exits 86
# (tests/CMakeLists.txt): never an expected outcome, so it fails the script even where the
# caller only checks for a nonzero exit. (check-reports.sh catches every other process.)
run() {
  local np="$1" rc; shift
  "$mpiexec" --oversubscribe -n "$np" "$bin" "$@"; rc=$?
  [ $rc -ne 86 ] || bad "sanitizer report (exit 86) from: incremf $*"
  return $rc
}
# nps N... - the rank counts a rank-count loop runs: all of N, or where IMF_TEST_NPS is set (CI's
# sanitizer stage: "1 3", serial and an uneven split) those of N it names, and N's first if none
# is named. Rank-count independence is a numeric property the first CI stage checks in full; the
# sanitizer stage needs each code path once, not at every rank count.
nps() {
  [ -n "${IMF_TEST_NPS:-}" ] || { echo "$@"; return; }
  local n out=""
  for n in "$@"; do [[ " $IMF_TEST_NPS " == *" $n "* ]] && out="$out $n"; done
  echo "${out:-$1}"
}
# sha256 of the current version's factors and biases of model directory $1 (what "bitwise
# identical" means in the end-to-end tests)
fact() { /usr/bin/python3 - "$1" <<'PYEOF'
import h5py, hashlib, sys, os
d = sys.argv[1]
cur = open(os.path.join(d, "CURRENT")).read().strip()
f = h5py.File(os.path.join(d, "versions", cur), "r")
h = hashlib.sha256()
for k in ("factors/P", "factors/Q", "bias/user", "bias/item"):
    if k in f: h.update(f[k][()].tobytes())
print(h.hexdigest())
PYEOF
}
