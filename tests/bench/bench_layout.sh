#!/usr/bin/env bash
# bench_layout.sh - memory per rank and per node and bytes between nodes per sweep, by exchange
# and node layout (issue 25; docs/SCALING.md). One synthetic store is trained for 2 sweeps on
# RANKS ranks laid out as 1, 2 and 4 pretend nodes (dist.ranks_per_node = RANKS, RANKS/2,
# RANKS/4) with each exchange: replicated (a model copy per rank), node-shared (dist.node_shared:
# a copy per node) and out-block (dist.exchange = outblock: each rank its rows and the rows its
# ratings reference) and both (node-shared+outblock: one copy per node of the rows the node's ranks
# reference; the nodes' first ranks exchange). `train --json` gives the peaks and the last sweep's bytes (exchange.h's
# counters), printed beside the formulas (docs/SCALING.md).
#
# The data has community structure, the shape under which out-block pays (and which real data
# has to some degree: regions, languages, genres): COMMUNITIES disjoint blocks of users and items
# (users = RATINGS / 25, items = RATINGS / 100 in all, each community synthesized on its own),
# plus CROSS percent of the ratings drawn over all users and items. With CROSS = 100 it is one
# unstructured synthetic, where every rank references most rows.
#
# Usage: tests/bench/bench_layout.sh [BUILD_DIR] [RATINGS] [K] [RANKS] [COMMUNITIES] [CROSS]
#   defaults: build, 20000000, 64, 8, 8, 1
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
build="$(cd "${1:-$here/build}" && pwd)"; n="${2:-20000000}"; k="${3:-64}"; np="${4:-8}"
C="${5:-8}"; cross="${6:-1}"
bin="$build/incremf"; PY=/usr/bin/python3
export OPENBLAS_NUM_THREADS=1 OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader OMPI_MCA_mpi_yield_when_idle=1
[ "$(id -u)" = 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
run() { mpirun --oversubscribe -n "$np" "$bin" "$@"; }
tmp=$(mktemp -d /tmp/imf-layout.XXXXXX); trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
users=$((n / 25)); items=$((n / 100)); uc=$((users / C)); ic=$((items / C)); nc=$((n * (100 - cross) / 100 / C))
: > all.csv
for c in $(seq 0 $((C - 1))); do # community c: users c*uc.., items c*ic..
  [ "$nc" -gt 0 ] || break
  run synth --out c.csv --users $uc --items $ic --ratings $nc --seed $((10 + c)) --quiet
  tail -n +2 c.csv | awk -F, -v c=$c -v U=$uc -v I=$ic 'BEGIN{OFS=","} {$1 = $1 + c * U; $2 = $2 + c * I; print}' >> all.csv
done
if [ "$cross" -gt 0 ]; then
  run synth --out c.csv --users $((uc * C)) --items $((ic * C)) --ratings $((n * cross / 100)) --seed 99 --quiet
  tail -n +2 c.csv >> all.csv
fi
rm -f c.csv
run prepare --input all.csv --data st --set input.header=no --set holdout.fraction=0 --quiet
rm -f all.csv
: > rows.txt
for ex in replicated node-shared outblock node-shared+outblock; do
  shared=false; exch=replicated
  case "$ex" in node-shared*) shared=true ;; esac
  case "$ex" in *outblock) exch=outblock ;; esac
  for nodes in 1 2 4; do
    rpn=$((np / nodes))
    rm -rf m
    out=$(run train --data st --model m --set model.k="$k" --set model.iterations=2 --set model.validation_fraction=0 \
      --set dist.ranks_per_node=$rpn --set dist.node_shared=$shared --set dist.exchange=$exch --json --quiet)
    echo "$nodes $rpn $out" >> rows.txt
  done
done
$PY - "$n" "$k" "$np" "$C" "$cross" <<'PYEOF'
import json, sys
R, k, P, C, cross = (int(x) for x in sys.argv[1:])
d = k + 1
rows = [(int(a), int(b), json.loads(c)) for a, b, c in (l.split(' ', 2) for l in open('rows.txt'))]
UI = next(j['model_rows_max'] for _, _, j in rows if j['exchange'] == 'replicated')  # U + I
model = 4 * d * UI  # one copy of the factors and biases
rat = 16 * R / P    # a rank's share of the ratings in the partition (by user and by item: index and value)
print('%d ratings, %d user and item rows (%d communities, %d%% cross ratings), k = %d, %d ranks; one model copy '
      '%.1f MB; a rank\'s ratings %.1f MB' % (R, UI, C, cross, k, P, model / 1e6, rat / 1e6))
print('%-20s %5s %5s | %12s %12s | %10s %12s %9s | %14s %14s %14s %7s' % ('exchange', 'nodes', 'rpn',
      'peak MB/rank', 'peak MB/node', 'rows/rank', 'need MB/rank', 'peak/need', 'inter MB/node', 'most on a node',
      'formula', 'ratio'))
for nodes, rpn, j in rows:
    b = j['sweep_bytes']
    mean = b['inter_recv_total'] / nodes  # what a node receives from the others, on average
    ex = j['exchange']
    held = j['model_rows_max']
    need = 4 * d * held + rat  # own rows + referenced rows + ratings (replicated: the whole model)
    if ex.endswith('outblock'):
        formula = float('nan')  # the referenced rows: exact in CTest (mpi_train, test_outblock_traffic)
    else:
        copies = rpn if ex == 'replicated' else 1  # who on a node receives the other nodes' rows
        formula = copies * model * (nodes - 1) / nodes
    ratio = mean / formula if formula == formula and formula else float('nan')
    print('%-20s %5d %5d | %12.1f %12.1f | %10d %12.1f %9.2f | %14.1f %14.1f %14.1f %7.3f' % (ex, nodes, rpn,
          j['peak_rss_max'] / 1e6, j['peak_rss_node_max'] / 1e6, held, need / 1e6, j['peak_rss_max'] / need,
          mean / 1e6, b['node_inter_recv'] / 1e6, formula / 1e6, ratio))
print("rows/rank: the most user and item rows one rank held (out-block: its own and those its ratings reference; "
      "node-shared+outblock: its node's, once; else "
      "all); need MB/rank: those rows x 4 (k + 1) + the rank's ratings x 16; peak/need: the largest rank's peak over "
      "that (issue 25's out-block target: <= 1.5). inter MB/node: the last sweep's receipts from other nodes, all "
      "ranks summed, over the nodes (factor rows and the metrics' partial sums); most on a node: the node that "
      "received the most; formula: (ranks per node, replicated; 1, node-shared) x one copy x (nodes - 1) / nodes "
      "(out-block: the referenced rows, checked exactly in CTest); peak MB/node: its ranks' peaks summed, a shared "
      "copy counted once")
PYEOF
