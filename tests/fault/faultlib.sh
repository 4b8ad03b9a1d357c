# faultlib.sh - shared by the fault-injection scripts (tests/e2e_faults_*.sh), sourced, not run.
# Sets bin, mpiexec, PY, tmp (removed on exit, after the EXIT hooks in `on_exit`), sources
# e2elib.sh (ok/bad/check/run), and adds:
#   nap SECONDS        sleep without forking (polling loops)
#   one ARGS...        incremf as one plain process (an MPI singleton without its orted: half the
#                      start-up time; the checks and reruns use it); a start-up that fails inside
#                      MPI_Init (an overloaded machine) is retried once
#   IMF_FAULT_KEEP=1   keep the scratch directory for a look after a failure
#   launch LOG ARGS... incremf under mpirun -n ${NP:-2} in the background; sets $pid (mpirun's)
#   kill_job PID PAT   kill -9 the ranks of mpirun PID (its children, and any process whose
#                      command line contains PAT), then mpirun, and wait until they are gone
#   is_running PID     it exists and is not a zombie
#   wait_gone PIDS...  wait (max 10 s) until none of PIDS runs (a zombie counts as gone: killed,
#                      never reaped by a container's init, it holds nothing; lock.c agrees)
#   record FAULT CASES OUTCOME   append a row to $IMF_FAULT_RESULTS (tests/fault/table.sh)
#   need_h5py          exit 77 (skip) when /usr/bin/python3 + h5py is missing
#   fhash DIR          sha256 of the current version's factors and biases (ALS) of model
#                      directory DIR, via h5dump (bitwise: what "the same factors" means here)
#   jget KEY           the value of a top-level string/number KEY of the JSON object on stdin
#   build_shim         compile tests/fault/killshim.c; sets $shim to the LD_PRELOAD value for it,
#                      "" without a compiler (a sanitizer build: ASan is told to accept it first)
set -uo pipefail
bin="${IMF_BIN:?IMF_BIN must name the incremf binary}"
mpiexec="${IMF_MPIEXEC:-mpirun}"
PY=/usr/bin/python3
fault_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$fault_dir/../e2elib.sh"
export OPENBLAS_NUM_THREADS=1
# Open MPI's UCX start-up is most of the cost of these short runs (a singleton 0.45 s -> 0.12 s
# with ob1); the transport does not change any result. A script that tests MPI's own behaviour
# (e2e_faults_rank.sh: a rank dying) sets fault_keep_transport=1 before sourcing this file, which
# also drops the ob1 + self,vader and sigkill-timeout choices tests/CMakeLists.txt makes for
# every test.
if [ -n "${fault_keep_transport:-}" ]; then unset OMPI_MCA_pml OMPI_MCA_btl OMPI_MCA_odls_base_sigkill_timeout
else export OMPI_MCA_pml="${OMPI_MCA_pml:-ob1}"; fi
tmp=$(mktemp -d /tmp/imf-faults.XXXXXX)
on_exit=""
# On exit (a timeout's SIGTERM too): stop the background cases, then whatever still runs in $tmp
# (an interrupted case's mpirun and ranks), then the EXIT hooks, then remove $tmp.
fault_cleanup() {
  local j; j=$(jobs -p)
  disown -a 2>/dev/null
  [ -n "$j" ] && kill -9 $j 2>/dev/null
  pkill -9 -f -- "$tmp/" 2>/dev/null
  eval "$on_exit"
  if [ -n "${IMF_FAULT_KEEP:-}" ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap fault_cleanup EXIT
trap 'exit 143' TERM INT
script_t0=$(date +%s.%N)

# nap SECONDS: sleep without a fork (a read with a timeout on a FIFO nobody writes), for polling
# loops that must be both tight and cheap
mkfifo "$tmp/.nap" && exec {nap_fd}<> "$tmp/.nap"
nap() { read -r -t "$1" -u "$nap_fd" _ 2>/dev/null; return 0; }
one() { # (a start-up that fails inside MPI_Init on an overloaded machine is retried once)
  local e sd rc
  e=$(mktemp "$tmp/one.XXXXXX"); sd=$(mktemp -d "$tmp/ompi.XXXXXX")
  # isolated singletons all use job family 0: a private session directory each, or one that ends
  # removes the shared-file-pointer files of another one's MPI-IO (MPI_File_open then fails)
  OMPI_MCA_ess_singleton_isolated=1 OMPI_MCA_orte_tmpdir_base="$sd" "$bin" "$@" 2> "$e"
  rc=$?
  if [ $rc -ne 0 ] && grep -q "MPI_INIT\|MPI_Init\|orte_init" "$e"; then
    OMPI_MCA_ess_singleton_isolated=1 OMPI_MCA_orte_tmpdir_base="$sd" "$bin" "$@" 2> "$e"
    rc=$?
  fi
  cat "$e" >&2
  rm -rf "$e" "$sd"
  return $rc
}
launch() {
  local log="$1"; shift
  ( exec "$mpiexec" --oversubscribe -n "${NP:-2}" "$bin" "$@" ) > "$log" 2>&1 &
  pid=$!
}
is_running() { # PID: 0 when it exists and is neither a zombie nor dead
  local st
  st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}
wait_gone() {
  local i p alive
  for i in $(seq 200); do
    alive=0
    for p in "$@"; do is_running "$p" && alive=1; done
    [ $alive = 0 ] && return 0
    nap 0.05
  done
  return 1
}
kill_job() {
  local p="$1" pat="${2:-}" kids more
  kids=$(pgrep -P "$p" 2>/dev/null | tr '\n' ' ')
  [ -n "$kids" ] && kill -9 $kids 2>/dev/null
  kill -9 "$p" 2>/dev/null
  wait "$p" 2>/dev/null
  more=""
  [ -n "$pat" ] && more=$(pgrep -f -- "$pat" 2>/dev/null | tr '\n' ' ')
  [ -n "$more" ] && kill -9 $more 2>/dev/null
  wait_gone $kids $more
}
record() {
  [ -n "${IMF_FAULT_RESULTS:-}" ] || return 0
  printf '%s\t%s\t%s\t%s\n' "${IMF_FAULT_SCRIPT:-$(basename "$0" .sh)}" "$1" "$2" "$3" >> "$IMF_FAULT_RESULTS"
}
need_h5py() {
  if ! "$PY" -c 'import h5py, numpy' 2>/dev/null; then
    echo "skip: /usr/bin/python3 with h5py and numpy is needed (Debian: python3-h5py)"
    exit 77
  fi
}
fhash() {
  local v o
  v=$(cat "$1/CURRENT" 2>/dev/null) || return 1
  o=$(mktemp "$tmp/fh.XXXXXX")
  if h5dump -d /factors/P -d /factors/Q -d /bias/user -d /bias/item -b LE -o "$o" "$1/versions/$v" >/dev/null 2>&1; then
    sha256sum < "$o" | cut -c1-64
  fi
  rm -f "$o"
}
jget() { sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\).*/\1/p" | head -1; }
build_shim() {
  shim=""
  if ! cc -shared -fPIC -O2 -o "$tmp/killshim.so" "$fault_dir/killshim.c" -ldl 2> "$tmp/cc.err"; then
    echo "note: cannot build tests/fault/killshim.c ($(head -1 "$tmp/cc.err"))"
    return 1
  fi
  shim="$tmp/killshim.so"
  # a sanitizer build: the shim comes before the ASan runtime, which ASan accepts only when told
  # (preloading libasan instead would instrument mpirun too, and its leaks would be reported)
  # (ldd's whole output is taken first: under pipefail, 'ldd | grep -q' fails whenever grep
  # exits at the match before ldd has written its last line, SIGPIPE; 5 in 200 on an idle
  # machine, every reference run of e2e_faults_kill in one loaded CI run)
  local libs; libs=$(ldd "$bin" 2>/dev/null) || libs=""
  if [[ $libs == *libasan* ]]; then
    export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
  fi
}
elapsed() { echo "$(date +%s.%N) $script_t0" | awk '{printf "%.1f", $1 - $2}'; }
