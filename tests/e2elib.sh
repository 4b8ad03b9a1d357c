# e2elib.sh - shared by the end-to-end scripts (tests/e2e_*.sh), sourced, not run: check
# counting and a launcher for the incremf binary. Expects $bin and $mpiexec to be set.
fail=0; pass=0
ok() { pass=$((pass+1)); echo "ok   $*"; }
bad() { fail=$((fail+1)); echo "FAIL $*"; }
check() { local what="$1"; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
run() { local np="$1"; shift; "$mpiexec" --oversubscribe -n "$np" "$bin" "$@"; }
