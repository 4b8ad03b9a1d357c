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
