#!/usr/bin/env bash
# bench_layout.sh - memory per node and bytes between nodes per sweep, by node layout (issue 25;
# docs/SCALING.md). One synthetic store (users = ratings / 50, items = ratings / 500, the
# growth bench's shape) is trained for 2 sweeps on RANKS ranks laid out as 1, 2 and 4 pretend
# nodes (dist.ranks_per_node = RANKS, RANKS/2, RANKS/4), and `train --json` gives the peak memory
# per rank and per node and the last sweep's bytes (exchange.h's counters), for the replicated
# model (a copy per rank) and the node-shared one (dist.node_shared: a copy per node), each beside
# its formula (docs/SCALING.md), which the counters must equal up to the metrics' partial sums.
#
# Usage: tests/bench/bench_layout.sh [BUILD_DIR] [RATINGS] [K] [RANKS]
#   defaults: build, 20000000, 64, 8
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
build="$(cd "${1:-$here/build}" && pwd)"; n="${2:-20000000}"; k="${3:-64}"; np="${4:-8}"
bin="$build/incremf"; PY=/usr/bin/python3
export OPENBLAS_NUM_THREADS=1 OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader OMPI_MCA_mpi_yield_when_idle=1
[ "$(id -u)" = 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
run() { mpirun --oversubscribe -n "$np" "$bin" "$@"; }
tmp=$(mktemp -d /tmp/imf-layout.XXXXXX); trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
users=$((n / 50)); items=$((n / 500))
run synth --out all.csv --users $users --items $items --ratings "$n" --seed 5 --quiet
run prepare --input all.csv --data st --set holdout.fraction=0 --quiet
rm -f all.csv
: > rows.txt
for shared in false true; do
  for nodes in 1 2 4; do
    rpn=$((np / nodes))
    rm -rf m
    out=$(run train --data st --model m --set model.k="$k" --set model.iterations=2 --set model.validation_fraction=0 \
      --set dist.ranks_per_node=$rpn --set dist.node_shared=$shared --json --quiet)
    echo "$nodes $rpn $out" >> rows.txt
  done
done
$PY - "$users" "$items" "$n" "$k" "$np" <<'PYEOF'
import json, sys
U, I, R, k, P = (int(x) for x in sys.argv[1:])
d = k + 1
model = 4 * d * (U + I)  # one copy of the factors and biases
print('%d ratings, %d users, %d items, k = %d, %d ranks; one model copy %.1f MB' % (R, U, I, k, P, model / 1e6))
print('%-11s %5s %5s | %12s %12s | %14s %14s %14s %8s' % ('exchange', 'nodes', 'rpn', 'peak MB/rank',
      'peak MB/node', 'inter MB/node', 'most on a node', 'formula', 'ratio'))
for line in open('rows.txt'):
    nodes, rpn, js = line.split(' ', 2)
    nodes, rpn = int(nodes), int(rpn)
    j = json.loads(js)
    b = j['sweep_bytes']
    mean = b['inter_recv_total'] / nodes  # what a node receives from the others, on average
    copies = rpn if j['exchange'] == 'replicated' else 1  # who on a node receives the other nodes' rows
    formula = copies * model * (nodes - 1) / nodes
    ratio = mean / formula if formula else float('nan')
    print('%-11s %5d %5d | %12.1f %12.1f | %14.1f %14.1f %14.1f %8.4f' % (j['exchange'], nodes, rpn,
          j['peak_rss_max'] / 1e6, j['peak_rss_node_max'] / 1e6, mean / 1e6, b['node_inter_recv'] / 1e6,
          formula / 1e6, ratio))
print("inter MB/node: the last sweep's receipts from other nodes, all ranks summed, over the nodes (counters: factor "
      "rows and the metrics' partial sums); most on a node: the node that received the most (blocks are cut by "
      "ratings, so nodes hold unequal row counts); formula: (ranks per node, replicated; 1, node-shared) x one "
      "copy x (nodes - 1) / nodes; peak MB/node: its ranks' peaks summed, the shared copy counted once")
PYEOF
