# slurmlib.sh - bring up (and tear down) a private single-node Slurm for the tests: munged,
# slurmctld and slurmd started by hand (no systemd), all state, sockets, logs and pid files under
# one directory, ports of their own, the node on 127.0.0.1. Sourced, not run.
#
#   slurm_up DIR     start the daemons; exports SLURM_CONF. Returns 1 (with a reason in
#                    $slurm_why) where Slurm cannot run here: binaries missing, not root, a daemon
#                    that does not come up.
#   slurm_down       cancel every job, stop the daemons by pid (TERM, then KILL), wait for them.
#   slurm_wait_job ID SECONDS   wait until job ID is COMPLETED (0) or ended otherwise (1).
#   slurm_state ID   the job's current state (PENDING, RUNNING, COMPLETED, ...).
slurm_dir=""; slurm_why=""

slurm_up() {
  slurm_dir="$1"
  local b
  for b in munged slurmctld slurmd sbatch srun scontrol squeue scancel sinfo; do
    if ! command -v "$b" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$b" ]; then
      slurm_why="$b not found (Debian: apt-get install slurm-wlm munge)"; return 1
    fi
  done
  if [ "$(id -u)" != 0 ]; then slurm_why="the private Slurm runs its daemons as root; not root here"; return 1; fi
  mkdir -p "$slurm_dir"/{state,spool,log} || { slurm_why="cannot create $slurm_dir"; return 1; }
  local host port cpus
  host=$(hostname -s)
  # Ports of our own, so that a Slurm already on this machine (or a parallel test) is left alone.
  port=$((20000 + ($$ % 20000) / 2 * 2))
  cpus=$(nproc)
  head -c 1024 /dev/urandom > "$slurm_dir/munge.key"; chmod 600 "$slurm_dir/munge.key"
  cat > "$slurm_dir/slurm.conf" <<EOF
ClusterName=imftest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$slurm_dir/munge.sock
CredType=cred/munge
StateSaveLocation=$slurm_dir/state
SlurmdSpoolDir=$slurm_dir/spool
SlurmctldPidFile=$slurm_dir/slurmctld.pid
SlurmdPidFile=$slurm_dir/slurmd.pid
SlurmctldLogFile=$slurm_dir/log/slurmctld.log
SlurmdLogFile=$slurm_dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
MpiDefault=pmix
JobRequeue=1
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
KillWait=5
MinJobAge=600
InactiveLimit=0
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
  export SLURM_CONF="$slurm_dir/slurm.conf"
  PATH="$PATH:/usr/sbin"
  munged -f --key-file="$slurm_dir/munge.key" --socket="$slurm_dir/munge.sock" \
    --pid-file="$slurm_dir/munged.pid" --log-file="$slurm_dir/log/munged.log" \
    --seed-file="$slurm_dir/munge.seed" || { slurm_why="munged did not start"; return 1; }
  slurmctld -c -f "$SLURM_CONF" || { slurm_why="slurmctld did not start: $(tail -3 "$slurm_dir/log/slurmctld.log" 2>/dev/null)"; return 1; }
  slurmd -f "$SLURM_CONF" -N "$host" || { slurm_why="slurmd did not start: $(tail -3 "$slurm_dir/log/slurmd.log" 2>/dev/null)"; return 1; }
  local i
  for i in $(seq 60); do
    if sinfo -h -o '%t' 2>/dev/null | grep -qx 'idle'; then return 0; fi
    sleep 0.5
  done
  slurm_why="the node did not become idle in 30 s: $(sinfo 2>&1 | tail -2; tail -3 "$slurm_dir/log/slurmd.log" 2>/dev/null)"
  return 1
}

slurm_down() {
  [ -n "$slurm_dir" ] || return 0
  scancel --user=root >/dev/null 2>&1 || true
  local i f pid pids=()
  for i in $(seq 40); do   # let the job steps go before their slurmd does
    [ -z "$(squeue -h -t running,completing 2>/dev/null)" ] && break
    sleep 0.25
  done
  for f in slurmd slurmctld munged; do
    pid=$(cat "$slurm_dir/$f.pid" 2>/dev/null) || continue
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
  done
  for i in $(seq 40); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.25
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  slurm_dir=""
}

slurm_state() { scontrol show job "$1" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' | head -1; }

slurm_wait_job() {
  local id="$1" limit="${2:-120}" t=0 s
  while [ "$t" -lt $((limit * 4)) ]; do
    s=$(slurm_state "$id")
    case "$s" in
      COMPLETED) return 0 ;;
      FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE|PREEMPTED) return 1 ;;
    esac
    sleep 0.25; t=$((t + 1))
  done
  return 1
}
