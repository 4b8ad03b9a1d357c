#!/usr/bin/env bash
# e2e_ingest.sh - prepare/append/inspect through the real binary on real files: every format
# (compressed too), the line accounting invariant, rank-count independence of the store,
# appends with new users and superseded ratings, refusal of a repeated file, a killed append,
# bad-input errors, and MovieLens 100K when ../shared/data is present.
set -uo pipefail
bin="${IMF_BIN:?}"; mpiexec="${IMF_MPIEXEC:-mpirun}"
data="${IMF_TEST_DATA:?}"
shared="${IMF_SHARED_DATA:-}"
tmp=$(mktemp -d /tmp/imf-e2e-ingest.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/e2elib.sh"
jget() { /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

cd "$tmp"
# A small file with one bad line of each kind, duplicates and a header.
cat > mixed.csv <<'CSV'
user,item,rating,timestamp
u1,i1,4,100
u1,i2,3.5,101
u2,i1,5,102
u2,i3,2,103
u1,i1,2,99
u3,i2,nan,104
u3,i2,abc,105
u3,,4,106
u4,i4,9,107
u4,i4
u5,i5,3,notatime

u6,i6,1,110
u2,i3,4,103
0104257,i7,3,111
104257,i7,4,112
CSV
n_lines=$(wc -l < mixed.csv)
for np in 1 2 3; do
  out=$(run $np prepare --input mixed.csv --data s$np --rejects rej$np.tsv --set clean.scale_min=1 \
        --set clean.scale_max=5 --max-reject-fraction 0.6 --json --quiet)
  check "prepare mixed.csv at $np ranks exits 0" test -n "$out"
  read -r lr hd st mg rj < <(echo "$out" | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["lines_read"],d["header"],d["stored"],d["merged"],d["rejected"])')
  check "np=$np invariant read($lr) = header+stored+merged+rejected" test "$lr" -eq $((hd+st+mg+rj))
  check "np=$np read every line ($lr == $n_lines)" test "$lr" -eq "$n_lines"
  check "np=$np stored 7 ratings ($st)" test "$st" -eq 7
  check "np=$np merged 2 duplicates ($mg)" test "$mg" -eq 2
  check "np=$np rejected 7 lines ($rj)" test "$rj" -eq 7
  check "np=$np rejects file has 7 entries with line numbers" test "$(grep -vc '^#' rej$np.tsv)" -eq 7
  check "np=$np reject of the blank line names line 13" grep -q $'\t13\tempty-line' rej$np.tsv
done
d1=$(run 1 inspect s1 --json --quiet | jget '["digest"]')
d2=$(run 2 inspect s2 --json --quiet | jget '["digest"]')
d3=$(run 3 inspect s3 --json --quiet | jget '["digest"]')
check "store digest equal at 1, 2, 3 ranks" test "$d1" = "$d2" -a "$d2" = "$d3"
check "ids are strings: 0104257 and 104257 are two users" test "$(run 1 inspect s1 --json --quiet | jget '["users"]')" -eq 5

# Append: new users/items, a superseding rating, refusal of the same file.
cat > delta.csv <<'CSV'
user,item,rating,timestamp
u1,i1,1,200
u7,i1,3,201
u7,i9,4,202
CSV
for np in 1 2; do
  out=$(run $np append --input delta.csv --data s$np --json --quiet)
  check "append at $np ranks: batch 2" test "$(echo "$out" | jget '["batch"]')" -eq 2
  check "append at $np ranks: 1 superseded" test "$(echo "$out" | jget '["superseded"]')" -eq 1
  check "append at $np ranks: 1 new user, 1 new item" test "$(echo "$out" | jget '["new_users"]')$(echo "$out" | jget '["new_items"]')" = 11
  js=$(run $np inspect s$np --json --quiet)
  check "after append: 6 users, 6 items, 9 ratings, 2 batches" test \
    "$(echo "$js" | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["users"],d["items"],d["ratings"],d["batches"])')" = "6 6 9 2"
  run $np append --input delta.csv --data s$np --quiet 2>err.txt; rc=$?
  check "same file appended twice is refused with exit 3" test $rc -eq 3
  check "refusal names the batch" grep -q "already in the store as batch 2" err.txt
  # refused after the hash, before the parse (whose phase line never comes), rejects file unwritten
  run $np append --input delta.csv --data s$np --rejects rej_again.tsv 2>err.txt; rc=$?
  check "the repeat is refused before it is parsed (exit $rc, no phase line, no rejects file)" \
    test $rc -eq 3 -a -z "$(grep 'phases:' err.txt)" -a ! -e rej_again.tsv -a -n "$(grep 'already in the store' err.txt)"
done

# Superseded counts on a larger store, checked against Python: a file re-rating every 7th stored
# pair (and some new pairs) is appended on 2 ranks with the default read windows and with tiny
# ones (IMF_SUPERSEDE_WINDOW=5: many windows, runs split across them).
run 2 synth --out big.csv --users 500 --items 300 --ratings 20000 --seed 5 --quiet
run 2 prepare --input big.csv --data sbig1 2> blocks.log
# the huge-page setting (src/error.c): a value that is none of hot, all, off is said, not ignored
IMF_HUGE_PAGES=everywhere "$bin" inspect sbig1 --quiet > /dev/null 2> huge.log
check "IMF_HUGE_PAGES with an unknown value: a warning naming it" grep -q "IMF_HUGE_PAGES is not hot, all or off" huge.log
IMF_HUGE_PAGES=off "$bin" inspect sbig1 --quiet > /dev/null 2> huge.log
# (about IMF_HUGE_PAGES: an Open MPI singleton may print its own notices on a busy machine)
check "IMF_HUGE_PAGES=off: no warning" sh -c '! grep -q IMF_HUGE_PAGES huge.log'
cp -r sbig1 sbig2
# where the time goes: the ingest's phases and the batch write's, as the README documents them
check "prepare logs its phases and the batch write's (checks, superseded, item index, digest, HDF5 write, fsync)" \
  test -n "$(grep -E 'phases: read\+parse [0-9.]+ s, .*merge\+clean [0-9.]+ s' blocks.log)" -a \
  -n "$(grep -E 'batch 1: checks and user index [0-9.]+ s, superseded [0-9.]+ s, item index [0-9.]+ s, digest [0-9.]+ s, HDF5 write [0-9.]+ s, fsync\+commit [0-9.]+ s' blocks.log)"
# the users go to the ranks in blocks of about equal ratings, not of equal user counts (ids number
# users by first appearance, so the heavy ones come first: equal ranges gave rank 0 most of them)
check "user blocks balanced by ratings ($(grep -o 'the fullest holds.*' blocks.log))" \
  /usr/bin/python3 -c "
import re, sys
m = re.search(r'the fullest holds (\d+), ([0-9.]+)x the mean', open('blocks.log').read())
sys.exit(0 if m and float(m.group(2)) <= 1.02 else 1)"
check "... and the first half of the users holds more than half the ratings (so equal ranges would not)" \
  /usr/bin/python3 -c "
import h5py, numpy as np, sys
f = h5py.File('sbig1/batch-000001.h5', 'r'); u = f['ratings/user'][()]
sys.exit(0 if (u < (u.max() + 1) // 2).mean() > 0.55 else 1)"
/usr/bin/python3 - <<'PYEOF'
rows = [l.split(',') for l in open('big.csv').read().splitlines()[1:]]
seen, out = set(), ['user,item,rating,timestamp']
for u, i, r, t in rows: seen.add((u, i))
for n, (u, i, r, t) in enumerate(rows[::7]): out.append('%s,%s,%d,%d' % (u, i, int(float(r)) % 5 + 1, int(t) + 10**8 + n))
for n in range(300): out.append('%d,%d,3,%d' % (1000 + n, n % 300, 2 * 10**9 + n))
pairs = {tuple(l.split(',')[:2]) for l in out[1:]}
open('rerate.csv', 'w').write('\n'.join(out) + '\n')
open('rerate.expect', 'w').write('%d\n' % len(pairs & seen))
PYEOF
s1=$(run 2 append --input rerate.csv --data sbig1 --json --quiet | jget '["superseded"]')
s2=$(IMF_SUPERSEDE_WINDOW=5 run 2 append --input rerate.csv --data sbig2 --json --quiet | jget '["superseded"]')
check "superseded = Python's count of pairs already stored ($s1 = $(cat rerate.expect))" test "$s1" = "$(cat rerate.expect)"
check "superseded with tiny read windows is the same ($s2)" test "$s2" = "$s1"

# The stored batch against Python, row for row: sorted by (user, item), one row per pair, the
# duplicate policy applied (latest by time with ties to the later line, first, mean), on 1, 2 and
# 3 ranks. The file has users with far more than 48 ratings (the sort's radix path for heavy
# users) and repeated pairs at equal, earlier and later times, placed after their first line,
# and one heavy user's pairs repeated 250 and 40 times.
/usr/bin/python3 - <<'PYEOF'
import random
random.seed(11)
lines = open('big.csv').read().splitlines()
rows = [l.split(',') for l in lines[1:]]
extra = []
for n, (u, i, r, t) in enumerate(random.sample(rows, 3000)):
    dt = (0, -5, 5)[n % 3]
    extra.append('%s,%s,%d,%d' % (u, i, (int(float(r)) + n) % 5 + 1, int(t) + dt))
# a heavy user repeating two of its pairs 250 and 40 times (a click log's pattern; over 32 repeats
# the sort puts them in line order by qsort instead of insertion), times with many ties
cnt = {}
for u, i, r, t in rows: cnt[u] = cnt.get(u, 0) + 1
hu = max(cnt, key=cnt.get)
pairs = [(i, t) for u, i, r, t in rows if u == hu][:2]
for (i, t), reps in zip(pairs, (250, 40)):
    for n in range(reps):
        extra.append('%s,%s,%d,%d' % (hu, i, n % 5 + 1, int(t) + n % 7 - 3))
body = lines[1:] + extra
random.shuffle(body)
open('dups.csv', 'w').write('\n'.join([lines[0]] + body) + '\n')
PYEOF
cat > dups_check.py <<'PYEOF'
import sys, h5py, numpy as np
store, policy = sys.argv[1], sys.argv[2]
rows = [l.split(',') for l in open('dups.csv').read().splitlines()[1:]]
f = h5py.File(store + '/batch-000001.h5', 'r')
def ids(k):
    blob, off = f['ids/%s_blob' % k][()].tobytes().decode(), f['ids/%s_off' % k][()]
    return {blob[off[j]:off[j + 1]]: j for j in range(len(off) - 1)}
um, im = ids('user'), ids('item')
per = {}
for line, (u, i, r, t) in enumerate(rows):
    per.setdefault((um[u], im[i]), []).append((int(t), line, np.float32(float(r))))
exp = []
for (u, i), g in sorted(per.items()):
    if policy == 'latest': t, _, v = max(g, key=lambda x: (x[0], x[1]))
    elif policy == 'first': t, _, v = min(g, key=lambda x: x[1])
    else: t, v = max(x[0] for x in g), np.float32(sum(float(x[2]) for x in g) / len(g))
    exp.append((u, i, v, t))
got = list(zip(f['ratings/user'][()], f['ratings/item'][()], f['ratings/value'][()], f['ratings/time'][()]))
heavy = max(np.bincount(f['ratings/user'][()]))
bad = [k for k, (a, b) in enumerate(zip(got, exp)) if tuple(a) != tuple(b)]
print('%d rows, %d expected, heaviest user %d ratings, %d differ%s' % (len(got), len(exp), heavy, len(bad),
      ' (first at row %d: %s vs %s)' % (bad[0], got[bad[0]], exp[bad[0]]) if bad else ''))
sys.exit(0 if len(got) == len(exp) and not bad and heavy > 48 else 1)
PYEOF
for pol in latest first mean; do
  for np in $(nps 1 2 3); do
    rm -rf sdup; run $np prepare --input dups.csv --data sdup --set clean.duplicates=$pol --quiet
    check "np=$np duplicates=$pol: the batch is Python's, row for row ($(/usr/bin/python3 dups_check.py sdup $pol))" \
      /usr/bin/python3 dups_check.py sdup $pol
  done
done

# Killed append (injected crash after the batch file, before the manifest): store unchanged.
IMF_FAULT=store-before-manifest run 1 append --input "$data/small.csv" --data s1 --quiet 2>/dev/null
check "a crashed append exits non-zero" test $? -ne 0
check "after the crashed append the store still has 2 batches" test "$(run 1 inspect s1 --json --quiet | jget '["batches"]')" -eq 2
run 1 append --input "$data/small.csv" --data s1 --quiet
check "the append succeeds when rerun" test "$(run 1 inspect s1 --json --quiet | jget '["batches"]')" -eq 3

# Every format, plain and compressed, gives the same store content at 2 ranks.
printf 'user,item,rating,timestamp\n' > f.csv
awk 'BEGIN{for(i=1;i<=300;i++) printf "%d,%d,%d,%d\n", (i*7)%41+1, (i*13)%29+1, i%5+1, 1000+i}' >> f.csv
tail -n +2 f.csv | tr ',' '\t' > f.tsv
tail -n +2 f.csv | sed 's/,/::/g' > f.dat
tail -n +2 f.csv | awk -F, '{print $1, $2, $3}' > f.libmf
{ echo '%%MatrixMarket matrix coordinate real general'; echo '% test'; echo '41 29 300'; tail -n +2 f.csv | awk -F, '{print $1, $2, $3}'; } > f.mtx
ref=""
for f in f.csv f.tsv f.dat; do
  for z in "" gz xz zst; do
    src=$f
    case $z in gz) gzip -c $f > $f.gz; src=$f.gz;; xz) xz -c $f > $f.xz; src=$f.xz;; zst) zstd -q -c $f > $f.zst; src=$f.zst;; esac
    rm -rf sf; run 2 prepare --input $src --data sf --quiet || { bad "prepare $src"; continue; }
    # the store digest includes the source file's sha256, so compare the stored arrays and ids
    d=$(/usr/bin/python3 -c 'import h5py,hashlib,sys; f=h5py.File("sf/batch-000001.h5","r"); h=hashlib.sha256()
for k in ("ratings/user","ratings/item","ratings/value","ratings/time","ids/user_blob","ids/item_blob"): h.update(f[k][()].tobytes())
print(h.hexdigest(), len(f["ratings/user"]))')
    [ -z "$ref" ] && ref=$d
    check "$src: same ratings, times and ids as f.csv ($d)" test -n "$d" -a "$d" = "$ref"
  done
done
for f in f.libmf f.mtx; do
  rm -rf sf; run 2 prepare --input $f --data sf --quiet
  check "$f prepares (no timestamps)" test "$(run 1 inspect sf --json --quiet | jget '["ratings"]')" -gt 250
done

# Bad input: clear errors naming the file, never a crash.
run 1 prepare --input missing.csv --data sx --quiet 2>err.txt; rc=$?
check "missing file: exit 3 and named" test $rc -eq 3 -a -n "$(grep missing.csv err.txt)"
: > empty.csv; run 1 prepare --input empty.csv --data sx --quiet 2>err.txt; rc=$?
check "empty file: exit 3, says empty" test $rc -eq 3 -a -n "$(grep -i empty err.txt)"
head -c 4096 /dev/urandom > bin.csv; run 1 prepare --input bin.csv --data sx --quiet 2>err.txt; rc=$?
check "binary file: exit 3, says binary" test $rc -eq 3 -a -n "$(grep -i binary err.txt)"
{ echo "u,i,3,1"; head -c 100000 /dev/zero | tr '\0' 'a'; echo ",i,3,1"; echo "u2,i,4,2"; } > long.csv
run 2 prepare --input long.csv --data sl --rejects rl.tsv --max-reject-fraction 0.5 --quiet
check "over-long line rejected with its line number" grep -q $'\t2\tline-too-long' rl.tsv
{ echo "u,i,3,1"; printf 'u%0300d,i,3,1\n' 1; echo "u2,i,4,2"; } > longid.csv
run 1 prepare --input longid.csv --data sli --rejects rli.tsv --max-reject-fraction 0.5 --quiet
check "over-long id rejected with its line number" grep -q $'\t2\tid-too-long' rli.tsv
printf 'a,b,1,1\nc,d,x,1\ne,f,y,1\n' > broken.csv
run 2 prepare --input broken.csv --data sb --quiet 2>err.txt; rc=$?
check "mostly-broken file: exit 3 before writing anything" test $rc -eq 3 -a ! -e sb/MANIFEST
check "the error names the first bad line" grep -q "line 2" err.txt
run 1 prepare --input f.csv --data s1 --quiet 2>/dev/null; rc=$?
check "prepare into an existing store is refused" test $rc -ne 0
run 1 prepare --input f.csv --data sz --set clean.bogus=1 --quiet 2>err.txt; rc=$?
check "unknown config key: exit 2" test $rc -eq 2

# More ranks than users.
printf 'a,x,1,1\nb,y,2,2\n' > two.csv
run 3 prepare --input two.csv --data s2u --quiet
check "3 ranks, 2 users" test "$(run 1 inspect s2u --json --quiet | jget '["ratings"]')" -eq 2

# MovieLens 100K (shared data; skipped when absent).
if [ -n "$shared" ] && [ -r "$shared/ml-100k/u.data.xz" ]; then
  run 2 prepare --input "$shared/ml-100k/u.data.xz" --data ml --quiet
  check "MovieLens 100K: 943 users, 1682 items, 100000 ratings" test \
    "$(run 1 inspect ml --json --quiet | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["users"],d["items"],d["ratings"])')" = "943 1682 100000"
else
  echo "skip MovieLens 100K (no ../shared/data)"
fi
echo "e2e_ingest: $pass passed, $fail failed"
[ $fail -eq 0 ]
