#!/usr/bin/env bash
# e2e_faults_shm.sh - a stale MPI-IO semaphore left in /dev/shm by a killed process must not hang
# the next run. Open MPI 4.1's shared-file-pointer component "sm" names a POSIX semaphore after
# the base name of the file being opened (/dev/shm/sem.OMPIO_batch-000002.h5) and waits on it in
# every multi-rank MPI_File_open; a process SIGKILLed while holding it leaves it at 0, and from
# then on every 2-rank open of any file of that name, in any directory, blocks forever (seen
# here: a fault-injection test's kill hung the next 2-rank `update`). imf_preinit, before
# MPI_Init, selects ROMIO instead of ompio (OMPI_MCA_io=^ompio); this plants the stale semaphore (a glibc sem_t of
# 32 zero bytes: count 0, no waiters) and runs 2-rank `train` and `update` that open
# batch-000002.h5 and the checkpoint files, with a bound. (ROMIO has no shared-file-pointer
# state at open; ompio's other components create side files next to every file they open.)
fault_here=$(cd "$(dirname "$0")" && pwd)
. "$fault_here/fault/faultlib.sh"
[ -d /dev/shm ] && [ -w /dev/shm ] || { echo "skip: no writable /dev/shm"; exit 77; }
BOUND="${IMF_FAULT_BOUND:-60}"
cd "$tmp"
planted=()
plant() { # NAME: a locked semaphore for files called NAME, unless one is already there
  local f="/dev/shm/sem.OMPIO_$1"
  [ -e "$f" ] && return 0
  head -c 32 /dev/zero > "$f" && planted+=("$f")
}
unplant() { local f; for f in "${planted[@]}"; do rm -f "$f"; done; planted=(); }
on_exit="unplant; $on_exit"

run 1 synth --out r.csv --users 400 --items 150 --ratings 6000 --seed 5 --quiet
head -n 5000 r.csv > base.csv
tail -n 1000 r.csv > new.csv
run 1 prepare --input base.csv --data st --quiet
run 1 append --input new.csv --data st --quiet
check "the store holds two batches" test -e st/batch-000002.h5
for f in batch-000001.h5 batch-000002.h5 checkpoint.h5; do plant "$f"; done
for f in st/batch-*.h5; do plant "$(basename "$f")"; done
TSET=(--set model.k=8 --set model.iterations=3)
t0=$(date +%s)
timeout -k 5 "$BOUND" "$mpiexec" --oversubscribe -n 2 "$bin" train --data st --model m "${TSET[@]}" --quiet
rc=$?
n_ok=0; [ $rc -eq 0 ] && n_ok=$((n_ok + 1))
check "2-rank train with stale MPI-IO semaphores ends, exit 0 (rc $rc, $(( $(date +%s) - t0 )) s)" test $rc -eq 0
for f in m/versions/*.h5 m/run/*.h5; do [ -e "$f" ] && plant "$(basename "$f")"; done
printf 'newuser1,%s,4,1999999999\n' $(cut -d, -f2 r.csv | head -n 3) > more.csv
t0=$(date +%s)
timeout -k 5 "$BOUND" "$mpiexec" --oversubscribe -n 2 "$bin" update --data st --model m --input more.csv \
  --strategy fold-in --quiet
rc=$?
[ $rc -eq 0 ] && n_ok=$((n_ok + 1))
check "2-rank update with stale MPI-IO semaphores ends, exit 0 (rc $rc, $(( $(date +%s) - t0 )) s)" test $rc -eq 0
check "the planted semaphores are still locked (the test really exercised them)" \
  test "$(for f in "${planted[@]}"; do od -An -v -tx1 "$f"; done | tr -d ' \n0')" = ""
record "a stale MPI-IO semaphore in /dev/shm (\`sem.OMPIO_<file>\`, left locked by a killed holder) for the store's batches and the checkpoints" 2 \
  "$n_ok/2: 2-rank \`train\` and \`update\` end normally (ROMIO, which has no shared file pointer at open)"
echo "e2e_faults_shm: $pass passed, $fail failed ($(elapsed) s)"
[ $fail -eq 0 ]
