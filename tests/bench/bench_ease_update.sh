#!/usr/bin/env bash
# bench_ease_update.sh - an EASE update against training EASE from scratch on the grown store
# (README "EASE updates"), on MovieLens latest-small (or any userId,movieId,rating,timestamp CSV):
# the oldest 80% of the ratings by time are prepared and trained on, then two 10% batches are
# appended by `update` (each a version); after each update EASE is trained from scratch on the
# grown store. Per batch: the changed users and the rank of the change, the path the update took
# (woodbury | refactor, update.ease_woodbury_max_rank = auto), the update's and the train's wall
# seconds (whole commands: reading, solving, judging, writing), their ratio, the version file's
# bytes (and / 4 n^2) and the P file's. Also the CPU seconds (user + system, all ranks) of both
# commands and their ratio, and the update's own build (solve) and write seconds (its JSON): on a machine shared with other jobs the wall seconds of both swell
# with the load, the CPU seconds much less. Medians of REPS runs (default 3). NP ranks (default 2),
# one OpenBLAS thread per rank. Extra arguments go to every train/update (e.g.
# --set update.ease_woodbury_max_rank=0 to time the refactorisation path).
# Usage: tests/bench/bench_ease_update.sh [BUILD_DIR] [RATINGS.csv[.xz]] [REPS] [NP] [--set ...]
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
build="$(cd "${1:-$here/build}" && pwd)"
data="${2:-${IMF_SHARED_DATA:-$here/../shared/data}/ml-latest-small/ratings.csv.xz}"
reps="${3:-3}"; np="${4:-2}"
shift $(( $# < 4 ? $# : 4 ))
extra=("$@")
[ -r "$data" ] || { echo "skip: $data not readable"; exit 0; }
export OPENBLAS_NUM_THREADS=1
[ "$(id -u)" = 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
bin="$build/incremf"
PY=python3; [ -x /usr/bin/python3 ] && PY=/usr/bin/python3   # with h5py
tmp=$(mktemp -d /tmp/imf-bench-easeup.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
# time order: 80% base, then two 10% batches (ties by file order)
$PY - "$data" <<'PYEOF'
import sys, lzma, csv
op = lzma.open if sys.argv[1].endswith(".xz") else open
with op(sys.argv[1], "rt") as f:
    r = csv.reader(f); head = next(r); rows = list(r)
rows.sort(key=lambda x: int(x[3]))
n = len(rows); cut = [0, int(0.8 * n), int(0.9 * n), n]
for k, name in enumerate(["base", "b1", "b2"]):
    with open(name + ".csv", "w", newline="") as g:
        w = csv.writer(g, lineterminator="\n"); w.writerow(head); w.writerows(rows[cut[k]:cut[k + 1]])
PYEOF
now() { date +%s.%N; }
mpi() { mpirun --oversubscribe -n "$np" "$bin" "$@"; }
cpu() { /usr/bin/time -f "%U %S" -o "$1" "${@:2}"; }   # CPU seconds of a command and its children
printf "%3s %5s %6s %7s %6s %9s %9s %9s %7s %9s %9s %7s %12s %8s %12s %8s %8s\n" rep batch items changed rank path update_s \
  train_s ratio upd_cpu trn_cpu cpu_rat version_B "x 4n^2" P_file_B upd_bld upd_wrt | tee res.txt
for rep in $(seq "$reps"); do
  rm -rf st m fresh
  mpi prepare --input base.csv --data st --quiet
  mpi train --data st --model m --set model.type=ease --quiet "${extra[@]}"
  for b in 1 2; do
    t0=$(now); cpu cu.txt mpirun --oversubscribe -n "$np" "$bin" update --data st --model m --input b$b.csv \
      --set update.tolerance=1 --json --quiet "${extra[@]}" > u.json
    t1=$(now)
    rm -rf fresh; cpu ct.txt mpirun --oversubscribe -n "$np" "$bin" train --data st --model fresh --set model.type=ease \
      --quiet "${extra[@]}"; t2=$(now)
    $PY - "$rep" "$b" "$t0" "$t1" "$t2" <<'PYEOF' | tee -a res.txt
import json, sys, os, re, h5py
rep, b, t0, t1, t2 = sys.argv[1], sys.argv[2], *map(float, sys.argv[3:])
u = json.load(open("u.json")); v = "m/versions/v%06d.h5" % u["version"]
f = h5py.File(v, "r"); n = int(f.attrs["nitems"]); ph = f.attrs.get("ease_p_hash", b"").decode()
p = "m/versions/ease-p-%s.h5" % ph
m = re.search(r"rows of (\d+) changed users \(rank (\d+)\) applied by (\w+)", u["note"])
vb, pb = os.path.getsize(v), os.path.getsize(p) if ph and os.path.exists(p) else 0
cu, ct = (sum(map(float, open(x).read().split()[-2:])) for x in ("cu.txt", "ct.txt"))
print("%3s %5s %6d %7s %6s %9s %9.2f %9.2f %7.3f %9.2f %9.2f %7.3f %12d %8.4f %12d %8.2f %8.2f" % (rep, b, n,
      m.group(1), m.group(2), m.group(3), t1 - t0, t2 - t1, (t1 - t0) / (t2 - t1), cu, ct, cu / ct, vb,
      vb / (4.0 * n * n), pb, u["build_seconds"], u["write_seconds"]))
PYEOF
  done
done
echo
echo "median of $reps runs per batch ($np ranks; update and train: whole commands, wall seconds):"
$PY - <<'PYEOF'
import statistics as s
rows = [l.split() for l in open("res.txt").read().splitlines()[1:]]
print("%5s %6s %7s %6s %9s %9s %9s %7s %9s %9s %7s %12s %8s %12s %8s %8s" % ("batch", "items", "changed", "rank",
      "path", "update_s", "train_s", "ratio", "upd_cpu", "trn_cpu", "cpu_rat", "version_B", "x 4n^2", "P_file_B",
      "upd_bld", "upd_wrt"))
for b in sorted({r[1] for r in rows}):
    g = [r for r in rows if r[1] == b]; med = lambda k: s.median(float(r[k]) for r in g)
    print("%5s %6s %7s %6s %9s %9.2f %9.2f %7.3f %9.2f %9.2f %7.3f %12d %8.4f %12d %8.2f %8.2f" % (b, g[0][2],
          g[0][3], g[0][4], g[0][5], med(6), med(7), med(8), med(9), med(10), med(11), med(12), med(13), med(14),
          med(15), med(16)))
PYEOF
