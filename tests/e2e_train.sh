#!/usr/bin/env bash
# e2e_train.sh - `incremf train` through the real binary: bitwise-identical factors on 1, 2, 3
# and 4 ranks (ALS, BPMF, implicit ALS), stop-by-signal with exit 75 and exact resume (also on
# another rank count), SIGKILL after a checkpoint and exact resume, an atomic checkpoint under an
# injected crash, a corrupt checkpoint rejected, more ranks than users, IMF_MEM_TRACE's report.
set -uo pipefail
bin="${IMF_BIN:?}"; mpiexec="${IMF_MPIEXEC:-mpirun}"
PY=/usr/bin/python3
tmp=$(mktemp -d /tmp/imf-e2e-train.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/e2elib.sh"
cd "$tmp"
run 2 synth --out r.csv --users 300 --items 200 --ratings 20000 --seed 5 --quiet
run 2 prepare --input r.csv --data st --set clean.scale_min=1 --set clean.scale_max=5 --quiet
common="--set model.k=8 --set model.iterations=6 --set model.validation_fraction=0.1 --quiet"
for type in als bpmf ials; do
  extra=""; [ $type = bpmf ] && extra="--set model.burn_in=3 --set model.samples=3"
  [ $type = ials ] && extra="--set model.solver=cg"
  ref=""
  for np in $(nps 1 2 3 4); do
    rm -rf m; run $np train --data st --model m --set model.type=$type $common $extra || bad "train $type at $np ranks"
    h=$(fact m)
    [ -z "$ref" ] && ref=$h
    check "$type: factors at $np ranks bitwise identical to 1 rank" test -n "$h" -a "$h" = "$ref"
  done
done

# IMF_MEM_TRACE=1: every rank prints its resident and peak size after each phase (README, train);
# without it, nothing
rm -rf m; IMF_MEM_TRACE=1 run 2 train --data st --model m --set model.type=als $common 2> trace.err || bad "train (trace)"
for ph in "ratings read" "partition built" "trainer created" "sweep" "version written"; do
  check "IMF_MEM_TRACE: ranks 0 and 1 report '$ph' with a size and a peak" test "$(grep -cE "^mem rank [01] train: $ph +rss +[0-9.]+ MB +peak +[0-9.]+ MB" trace.err)" -ge 2
done
rm -rf m; run 2 train --data st --model m --set model.type=als $common 2> notrace.err || bad "train (no trace)"
check "no IMF_MEM_TRACE: no memory lines" test "$(grep -c '^mem rank' notrace.err)" -eq 0

# Stop after sweep 3 (as if SIGUSR1 came): exit 75, run checkpoint; resume at 3 ranks finishes
# identical to the uninterrupted run.
rm -rf full m1; run 2 train --data st --model full --set model.type=als $common --set model.iterations=8
IMF_STOP_AFTER_SWEEP=3 run 2 train --data st --model m1 --set model.type=als $common --set model.iterations=8; rc=$?
check "stop request: exit code 75" test $rc -eq 75
check "stop request: run checkpoint written" test -f m1/run/checkpoint.h5
check "stop request: no version yet" test ! -e m1/CURRENT
run 3 train --data st --model m1 --resume --quiet
check "resumed on 3 ranks: factors identical to the uninterrupted run" test "$(fact m1)" = "$(fact full)"
check "run checkpoint removed after the version" test ! -e m1/run/checkpoint.h5

# A real signal: SIGUSR1 to mpirun (forwarded to the ranks) during a long run.
# (long enough that the signal lands mid-run even on a loaded machine)
rm -rf m2 full2; run 2 train --data st --model full2 --set model.type=bpmf --set model.k=8 --set model.iterations=300 \
  --set model.burn_in=10 --set model.samples=4 --quiet
( exec "$mpiexec" --oversubscribe -n 2 "$bin" train --data st --model m2 --set model.type=bpmf --set model.k=8 \
  --set model.iterations=300 --set model.burn_in=10 --set model.samples=4 --quiet ) & pid=$!
for i in $(seq 100); do [ -s m2/train.jsonl ] && [ "$(wc -l < m2/train.jsonl)" -ge 3 ] && break; sleep 0.1; done
kill -USR1 $pid; wait $pid; rc=$?
check "SIGUSR1: exit 75 (requeue)" test $rc -eq 75
run 1 train --data st --model m2 --resume --quiet
check "BPMF resumed after SIGUSR1 on 1 rank: identical to the uninterrupted run" test "$(fact m2)" = "$(fact full2)"

# SIGKILL of every process after a checkpoint: resume reaches the same factors.
rm -rf m3 full3; run 2 train --data st --model full3 --set model.type=als $common --set model.iterations=60
( exec "$mpiexec" --oversubscribe -n 2 "$bin" train --data st --model m3 --set model.type=als $common \
  --set model.iterations=60 --set model.checkpoint_every=2 ) & pid=$!
for i in $(seq 400); do [ -f m3/run/checkpoint.h5 ] && [ "$(wc -l < m3/train.jsonl 2>/dev/null || echo 0)" -ge 5 ] && break; sleep 0.05; done
pkill -9 -f -- "--model m3 " 2>/dev/null; kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
for i in $(seq 100); do pgrep -f -- "--model m3 " >/dev/null || break; sleep 0.1; done  # the lock holder must be gone
if [ -e m3/CURRENT ]; then
  echo "note: the run finished before the kill could land; skipping the SIGKILL case"
else
  check "SIGKILL: a loadable run checkpoint remains" "$bin" inspect m3/run/checkpoint.h5 --quiet
  run 2 train --data st --model m3 --resume --quiet
  check "resumed after SIGKILL: identical to the uninterrupted run" test "$(fact m3)" = "$(fact full3)"
fi

# Atomic checkpoint: a crash during the write of a later run checkpoint keeps the earlier one.
rm -rf m4; IMF_STOP_AFTER_SWEEP=2 run 2 train --data st --model m4 --set model.type=als $common --set model.iterations=8
cp m4/run/checkpoint.h5 before.h5
IMF_FAULT=checkpoint-before-rename IMF_STOP_AFTER_SWEEP=4 run 2 train --data st --model m4 --resume --quiet 2>err.txt; rc=$?
check "injected crash during a checkpoint write fails" test $rc -ne 0 -a $rc -ne 75
check "the previous run checkpoint is intact" cmp -s before.h5 m4/run/checkpoint.h5
run 2 train --data st --model m4 --resume --quiet
check "and resuming from it still gives the uninterrupted result" test "$(fact m4)" = "$(fact full)"

# Corrupt checkpoint: rejected with a clear message, never used.
rm -rf m5; IMF_STOP_AFTER_SWEEP=2 run 1 train --data st --model m5 --set model.type=als $common
sz=$(stat -c %s m5/run/checkpoint.h5)
$PY -c "
import sys
f=open('m5/run/checkpoint.h5','r+b'); f.seek($sz//2); b=f.read(64); f.seek($sz//2); f.write(bytes((x^0xff) for x in b)); f.close()"
run 1 train --data st --model m5 --resume --quiet 2>err.txt; rc=$?
check "corrupt checkpoint: exit 3" test $rc -eq 3
check "corrupt checkpoint: the message says so" grep -qi "corrupt\|not a readable" err.txt
head -c $((sz / 2)) m4/versions/v000001.h5 > trunc.h5
"$bin" inspect trunc.h5 --quiet 2>err.txt; rc=$?
check "truncated checkpoint: clear error, exit 3" test $rc -eq 3

# The AVX-512 Gram kernel (used where the CPU has AVX-512F) computes every element by the same
# chain of fmas as the AVX2 one, so the factors must not depend on which one ran.
if grep -qw avx512f /proc/cpuinfo 2>/dev/null; then
  for t in als bpmf; do
    rm -rf mk2 mk5
    IMF_GRAM_KERNEL=avx2 run 2 train --data st --model mk2 --set model.type=$t --set model.k=40 --set model.iterations=3 --set model.burn_in=1 --quiet
    run 2 train --data st --model mk5 --set model.type=$t --set model.k=40 --set model.iterations=3 --set model.burn_in=1 --quiet
    check "$t: the AVX-512 and AVX2 Gram kernels give bitwise the same factors" test "$(fact mk2)" = "$(fact mk5)"
  done
else
  echo "e2e_train: no AVX-512F here; the kernel-equality check does not apply"
fi

# More ranks than users.
printf 'a,x,4,1\nb,y,2,2\na,y,3,3\n' > two.csv
run 1 prepare --input two.csv --data st2 --quiet
run 3 train --data st2 --model m6 --set model.k=2 --set model.iterations=3 --quiet
check "3 ranks, 2 users: trains and writes a version" test -f m6/versions/v000001.h5
# The node layout and the traffic counters (docs/SCALING.md): 2 ranks as two pretend nodes move
# every factor row between nodes; as one node, none; the model is the same bits either way.
for rpn in 1 2; do
  rm -rf ml$rpn
  run 2 train --data st --model ml$rpn --set model.k=6 --set model.iterations=2 --set dist.ranks_per_node=$rpn \
    --json --quiet > ml$rpn.json
done
check "layout: train --json reports the nodes, the exchange and the sweep's bytes" $PY -c "
import json
a, b = json.load(open('ml1.json')), json.load(open('ml2.json'))
assert a['nodes'] == 2 and b['nodes'] == 1, (a['nodes'], b['nodes'])
assert a['exchange'] == b['exchange'] == 'replicated'
x, y = a['sweep_bytes'], b['sweep_bytes']
assert x['inter_recv'] > 7 * 300 * 4 / 2 and x['intra_recv'] == 0, x  # at least half the user rows
assert y['inter_recv'] == 0 and y['intra_recv'] == x['inter_recv'], (x, y)
assert x['node_inter_recv'] < x['inter_recv_total'] <= 2 * x['node_inter_recv'], x  # two nodes of one rank
assert a['peak_rss_node_max'] == a['peak_rss_max'] and b['peak_rss_node_max'] > b['peak_rss_max'], (a, b)
line = json.loads(open('ml1/train.jsonl').read().splitlines()[-1])
assert line['bytes'] == x, (line['bytes'], x)
"
check "layout: the factors do not depend on it" test "$(fact ml1)" = "$(fact ml2)"
# Node-shared factors (dist.node_shared): one copy per node, the same bits; a run stopped on one
# layout resumes on another (2 ranks sharing one node's copy -> 3 ranks, replicated: dist.* come
# from the resuming command line) and ends bitwise where an uninterrupted single-rank run does.
rm -rf mns mr mref
run 2 train --data st --model mns --set model.k=6 --set model.iterations=2 --set dist.node_shared=true \
  --set dist.ranks_per_node=1 --json --quiet > mns.json
check "node-shared: train --json says so" grep -q '"exchange":"node-shared"' mns.json
check "node-shared: the factors are the replicated run's" test "$(fact ml1)" = "$(fact mns)"
IMF_STOP_AFTER_SWEEP=2 run 2 train --data st --model mr --set model.k=6 --set model.iterations=4 \
  --set dist.node_shared=true --set dist.ranks_per_node=2 --quiet 2>/dev/null; rc=$?
check "node-shared: a stop after sweep 2 writes a run checkpoint (exit 75)" test $rc -eq 75
run 3 train --data st --model mr --resume --json --quiet > mr.json
check "node-shared: the resumed run takes dist.* from its own command line" grep -q '"exchange":"replicated"' mr.json
run 1 train --data st --model mref --set model.k=6 --set model.iterations=4 --quiet
check "node-shared: resumed on another layout, bitwise the uninterrupted run" test "$(fact mr)" = "$(fact mref)"
# update's warm sweeps run as the update's command line says (dist.*), not as the champion's
# training did: ml2 was trained as one node without node sharing.
rm -rf stu mu; cp -r st stu; cp -r ml2 mu
head -60 r.csv | tail -40 | awk -F, 'BEGIN{OFS=","} {$3 = ($3 >= 3 ? 1 : 5); print}' > newb.csv
run 2 update --data stu --model mu --input newb.csv --strategy warm --set input.header=no \
  --set dist.node_shared=true --set dist.ranks_per_node=1 > upd.out 2>&1; rc=$?
check "update: exit 0, and its warm sweeps take dist.* from its own command line" \
  sh -c "test $rc -eq 0 && grep -q 'node-shared factors: .* over 2 nodes' upd.out"
# Reading commands load one copy per node too (imf_checkpoint_read_shared): the same answers.
run 1 recommend --model ml1 --data st --all --top 5 --out rall1.h5 --quiet
run 3 recommend --model ml1 --data st --all --top 5 --out rall3.h5 --set dist.node_shared=true \
  --set dist.ranks_per_node=2 --quiet
check "node-shared: recommend --all gives the replicated results" \
  test "$(h5dump rall1.h5 | tail -n +2 | md5sum)" = "$(h5dump rall3.h5 | tail -n +2 | md5sum)"
run 1 evaluate --model ml1 --data st --json --quiet > ev1.json
run 3 evaluate --model ml1 --data st --json --set dist.node_shared=true --set dist.ranks_per_node=2 --quiet > ev3.json
check "node-shared: evaluate gives the replicated metrics" $PY -c "
import json
def strip(x):
    if isinstance(x, dict): return {k: strip(v) for k, v in x.items() if 'second' not in k and 'rss' not in k}
    if isinstance(x, list): return [strip(v) for v in x]
    return x
a, b = (strip(json.load(open(f))) for f in ('ev1.json', 'ev3.json'))
assert a == b, (a, b)
"
# The out-block exchange (dist.exchange = outblock): each rank holds its rows and the rows its
# ratings reference; the version is written from the ranks' blocks (no rank holds the whole model)
# and is the replicated run's, bitwise; a run stopped out-block resumes replicated; --test and
# update's warm sweeps gather the model where they score it whole.
rm -rf mob mo1 mo2
run 3 train --data st --model mob --set model.k=6 --set model.iterations=2 --set dist.exchange=outblock \
  --set dist.ranks_per_node=2 --test r.csv --json --quiet > mob.json
check "out-block: train --json says so, with the rows a rank held" $PY -c "
import json
j = json.load(open('mob.json'))
assert j['exchange'] == 'outblock' and 0 < j['model_rows_max'], j
assert j['test_n'] > 0 and j['test_rmse'] > 0, j
"
check "out-block: the version is the replicated run's factors" test "$(fact ml1)" = "$(fact mob)"
run 2 evaluate --model mob --data st --json --quiet > evob.json
check "out-block: the version reads back (its digest holds) and evaluates as the replicated one" $PY -c "
import json
def strip(x):
    if isinstance(x, dict): return {k: strip(v) for k, v in x.items() if 'second' not in k and 'rss' not in k and k != 'model'}
    if isinstance(x, list): return [strip(v) for v in x]
    return x
a, b = (strip(json.load(open(f))) for f in ('ev1.json', 'evob.json'))
assert a == b, (a, b)
"
rm -rf mobs
run 3 train --data st --model mobs --set model.k=6 --set model.iterations=2 --set dist.exchange=outblock \
  --set dist.node_shared=true --set dist.ranks_per_node=2 --json --quiet > mobs.json
check "out-block with node sharing: one copy of each node's rows, the replicated run's factors" \
  sh -c "grep -q '\"exchange\":\"node-shared+outblock\"' mobs.json && test '$(fact mobs)' = '$(fact ml1)'"
IMF_STOP_AFTER_SWEEP=2 run 3 train --data st --model mo1 --set model.k=6 --set model.iterations=4 \
  --set dist.exchange=outblock --quiet 2>/dev/null; rc=$?
check "out-block: a stop after sweep 2 writes a run checkpoint from the blocks (exit 75)" test $rc -eq 75
run 2 train --data st --model mo1 --resume --quiet
check "out-block: stopped out-block, resumed replicated, bitwise the uninterrupted run" test "$(fact mo1)" = "$(fact mref)"
# (stopped replicated and resumed out-block: mpi_train's test_outblock_resume, both ways)
rm -rf stu2 mu2; cp -r st stu2; cp -r ml2 mu2
run 2 update --data stu2 --model mu2 --input newb.csv --strategy warm --set input.header=no \
  --set dist.exchange=outblock --set dist.ranks_per_node=1 --json > updob.json 2>updob.out; rc=$?
check "out-block: update's warm sweeps run out-block and the challenger is judged whole (exit 0)" \
  sh -c "test $rc -eq 0 && grep -q 'out-block exchange' updob.out"
check "update --json reports how its sweeps ran (exchange, nodes, bytes between them)" $PY -c "
import json
j = json.load(open('updob.json'))
assert j['exchange'] == 'outblock' and j['nodes'] == 2, j
assert j['sweep_bytes']['inter_recv'] > 0 and j['sweep_bytes']['intra_recv'] == 0, j
"
run 1 train --data st --model mbad --set dist.exchange=ring --quiet 2>err.txt; rc=$?
check "out-block: an unknown dist.exchange is a usage error naming the key" \
  sh -c "test $rc -eq 2 && grep -q dist.exchange err.txt"
run 1 train --data st --model mbad --set dist.ranks_per_node=-2 --quiet 2>err.txt; rc=$?
check "layout: a negative dist.ranks_per_node is a usage error naming the key" \
  sh -c "test $rc -eq 2 && grep -q dist.ranks_per_node err.txt"
echo "e2e_train: $pass passed, $fail failed"
[ $fail -eq 0 ]
