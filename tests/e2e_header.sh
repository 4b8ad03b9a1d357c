#!/usr/bin/env bash
# e2e_header.sh - columns taken by header name (issue 26, item 1) and the standing holdout
# warning (item 3), through the real binary: a CSV whose header names its columns in another
# order, quoted and with CRLF line ends, gives the same store as the same data in the default
# order, in prepare, append (update --input's reader) and evaluate --test / train --test; explicit
# input.*_col settings still win; an unrecognised header is exit 3 naming the file, line 1 and the
# columns; Book-Crossing's and ml-latest-small's real files when ../shared/data is present. Then:
# a train or update configuration whose holdout.fraction or holdout.seed differs from the store's
# gets one warning naming both values.
set -uo pipefail
bin="${IMF_BIN:?}"; mpiexec="${IMF_MPIEXEC:-mpirun}"
shared="${IMF_SHARED_DATA:-}"
tmp=$(mktemp -d /tmp/imf-e2e-header.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/e2elib.sh"
# the stored arrays and ids of batch $2 of store $1 (the digest includes the source's sha256)
arrays() { /usr/bin/python3 - "$1" "${2:-1}" <<'PYEOF'
import h5py, hashlib, sys
f = h5py.File("%s/batch-%06d.h5" % (sys.argv[1], int(sys.argv[2])), "r"); h = hashlib.sha256()
for k in ("ratings/user", "ratings/item", "ratings/value", "ratings/time", "ids/user_blob", "ids/item_blob"):
    h.update(f[k][()].tobytes())
print(h.hexdigest(), len(f["ratings/user"]))
PYEOF
}

cd "$tmp"
# The same ratings twice: default order with a plain header, and "item","rating","user","time"
# with quoted ids and CRLF (the issue's file). String ids, so a column mix-up cannot pass.
/usr/bin/python3 - <<'PYEOF'
import random
r = random.Random(7)
def write(name, rows):
    with open(name + ".csv", "w", newline="") as a, open(name + "_reord.csv", "w", newline="") as b:
        a.write("user,item,rating,timestamp\n"); b.write('"item","rating","user","time"\r\n')
        for u, i, v, t in rows:
            a.write("u%d,i%d,%g,%d\n" % (u, i, v, t)); b.write('"i%d",%g,"u%d",%d\r\n' % (i, v, u, t))
rows = [(r.randrange(60), r.randrange(40), r.randrange(1, 11) / 2, 1000 + k) for k in range(1500)]
write("base", rows[:1200]); write("delta", rows[1200:1400]); write("test", rows[1400:])
PYEOF

# 1. prepare: the same store whichever order the header names
js() { /usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(*(d[k] for k in sys.argv[2:]))' "$@"; }
run 1 prepare --input base.csv --data sa --json --quiet > a.json
run 2 prepare --input base_reord.csv --data sb --json 2> b.err > b.json
check "reordered quoted CRLF header: 1 header line, nothing rejected" test "$(js b.json header rejected)" = "1 0"
check "reordered: same counts as the default order ($(js b.json stored merged new_users new_items))" \
  test "$(js a.json stored merged new_users new_items)" = "$(js b.json stored merged new_users new_items)"
check "reordered: same stored ratings, times and ids" test "$(arrays sa)" = "$(arrays sb)"
check "the log says which column is which" \
  grep -q "columns by header name: user = 'user' (3), item = 'item' (1), rating = 'rating' (2), time = 'time' (4)" b.err

# 2. append (the reader of update --input): the second batch alike
run 1 append --input delta.csv --data sa --quiet
run 2 append --input delta_reord.csv --data sb --quiet
check "append of the reordered batch: same batch 2" test "$(arrays sa 2)" = "$(arrays sb 2)"

# 3. evaluate --test (the ingest reader) and train --test (rank 0's reader): the same scores
run 2 train --data sa --model ma --set model.iterations=2 --set model.k=4 --quiet 2> w0.err
check "train with the default holdout: no warning" test -z "$(grep -i 'holdout' w0.err)"
ev() { run 1 evaluate --data sa --model ma --test "$1" --json --quiet | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["rmse"], d["mae"])'; }
e1=$(ev test.csv); e2=$(ev test_reord.csv)
check "evaluate --test: same RMSE and MAE ($e1 / $e2)" test -n "$e1" -a "$e1" = "$e2"
# a model whose configuration records numbered columns (as every model before input.*_col = auto):
# the command line's input.* keys win for the test file
run 1 train --data sa --model mn --set model.iterations=2 --set model.k=4 --quiet --set input.user_col=1 \
  --set input.item_col=2 --set input.rating_col=3 --set input.time_col=4
evn() { run 1 evaluate --data sa --model mn --test "$1" --json --quiet "${@:2}" | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["rmse"], d["mae"])'; }
e3=$(evn test.csv); e4=$(evn test_reord.csv --set input.user_col=auto --set input.item_col=auto \
  --set input.rating_col=auto --set input.time_col=auto)
check "evaluate --test with the command line's input.*_col = auto over the model's numbers ($e3 / $e4)" test -n "$e3" -a "$e3" = "$e4"
tt() { run 1 train --data sa --model "$2" --set model.iterations=1 --set model.k=4 --test "$1" --json --quiet | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["test_rmse"], d["test_n"])'; }
t1=$(tt test.csv mt1); t2=$(tt test_reord.csv mt2)
check "train --test: same test RMSE and count ($t1 / $t2)" test -n "$t1" -a "$t1" = "$t2"

# 4. explicit columns still win over the names
run 1 prepare --input base_reord.csv --data se --quiet --set input.user_col=3 --set input.item_col=1 \
  --set input.rating_col=2 --set input.time_col=4
check "all four columns given: the same store" test "$(arrays se)" = "$(arrays sa)"
run 1 prepare --input base_reord.csv --data sx --json --quiet --set input.user_col=1 --set input.item_col=3 > x.json
check "user_col=1, item_col=3 given: the items are the users ($(js x.json new_users new_items))" \
  test "$(js x.json new_users new_items)" = "$(js a.json new_items new_users)"

# 5. an unrecognised header: exit 3 naming file, line 1 and the columns; nothing written
printf 'a,b,c,d\r\nu1,i1,4,100\r\nu2,i1,3,101\r\n' > unk.csv
run 2 prepare --input unk.csv --data su --quiet 2> u.err; rc=$?
check "unrecognised header: exit 3 ($rc), no store written" test $rc -eq 3 -a ! -e su/MANIFEST
check "the error names the file, line 1 and the columns" \
  grep -q "unk.csv line 1: header not recognised: no user column among 'a', 'b', 'c', 'd' (4 columns)" u.err
check "the error says how to fix it" grep -q "input.user_col" u.err
run 1 prepare --input unk.csv --data su2 --json --quiet --set input.user_col=1 --set input.item_col=2 \
  --set input.rating_col=3 --set input.time_col=4 > u2.json
check "the same file with its columns given: 2 ratings" test "$(js u2.json stored)" = 2
printf 'userId,movieId,stars_given\n1,2,3\n' > unk2.csv
run 1 prepare --input unk2.csv --data su3 --quiet 2> u3.err; rc=$?
check "rating column not named among unnamed ones: exit 3 naming it" test $rc -eq 3 -a -n "$(grep 'no rating column' u3.err)"
# headerless files are read by position as before
tail -n +2 base.csv > nohdr.csv
run 1 prepare --input nohdr.csv --data sn --json --quiet > n.json
check "headerless file: no header line, positional, the same ratings" test "$(js n.json header)" = 0 -a "$(arrays sn)" = "$(arrays sa 1)"

# 6. the shared data sets' real headers (skipped when absent)
bx="$shared/bookcrossing-caserec-processed/book_ratings.dat.xz"
if [ -n "$shared" ] && [ -r "$bx" ]; then
  run 2 prepare --input "$bx" --data sbx --json --quiet > bx.json
  check "Book-Crossing book_ratings.dat (tab-separated 'user item rating'): 1295 users, 14684 items, 62656 ratings, 0 rejected" \
    test "$(js bx.json new_users new_items stored rejected)" = "1295 14684 62656 0"
else
  echo "skip Book-Crossing (no ../shared/data)"
fi
ml="$shared/ml-latest-small/ratings.csv.xz"
if [ -n "$shared" ] && [ -r "$ml" ]; then
  run 2 prepare --input "$ml" --data sml --json --quiet > ml.json
  check "ml-latest-small (userId,movieId,rating,timestamp): 610 users, 9724 items, 100836 ratings" \
    test "$(js ml.json new_users new_items stored)" = "610 9724 100836"
  # the same file with its columns reordered, renamed and quoted (it has CRLF line ends already)
  xz -dc "$ml" | /usr/bin/python3 -c '
import sys
rows = sys.stdin.read().split("\n")[1:]
out = open("ml_reord.csv", "w", newline="")
out.write("\"Timestamp\",\"Movie_ID\",\"Score\",\"User-ID\"\r\n")
for l in rows:
    l = l.rstrip("\r")
    if l: u, i, v, t = l.split(","); out.write("%s,\"%s\",%s,\"%s\"\r\n" % (t, i, v, u))'
  run 2 prepare --input ml_reord.csv --data smr --quiet
  check "ml-latest-small reordered and renamed: the same ratings and ids" test "$(arrays smr)" = "$(arrays sml)"
else
  echo "skip ml-latest-small (no ../shared/data)"
fi

# 7. the standing holdout is the store's (0.1 here, the default): a configuration that says
# otherwise is warned about once, naming both values (train's default above: no warning), by
# train, update and evaluate's store-holdout protocols
run 2 train --data sa --model mw --set model.iterations=1 --set model.k=4 --set holdout.fraction=0 --quiet 2> w1.err
check "train with holdout.fraction = 0: one warning (2 ranks)" test "$(grep -c 'warning: holdout.fraction' w1.err)" = 1
check "the warning names both values" grep -q "holdout.fraction = 0 in the configuration differs from sa's standing holdout, fixed at prepare: holdout.fraction = 0.1 is used" w1.err
printf '[holdout]\nfraction = 0.1\n' > same.ini
run 1 train --data sa --model mw --set model.iterations=1 --set model.k=4 --config same.ini --quiet 2> w2.err
check "train with the store's own fraction: no warning" test -z "$(grep -i 'warning' w2.err)"
printf '[holdout]\nfraction = 0.25\n' > other.ini
run 2 update --data sa --model mw --config other.ini --quiet 2> w3.err
check "update with [holdout] fraction = 0.25: one warning naming 0.25 and 0.1" \
  test "$(grep -c 'holdout.fraction = 0.25 in the configuration differs .* holdout.fraction = 0.1 is used' w3.err)" = 1
run 1 update --data sa --model mw --set holdout.seed=7 --quiet 2> w4.err
check "update with another holdout.seed: one warning naming 7 and 42" \
  test "$(grep -c 'holdout.seed = 7 in the configuration differs .* holdout.seed = 42 is used' w4.err)" = 1
run 2 evaluate --data sa --model mw --protocol standing --set holdout.fraction=0.3 --quiet > /dev/null 2> w6.err
check "evaluate --protocol standing with holdout.fraction = 0.3: one warning naming 0.3 and 0.1" \
  test "$(grep -c 'holdout.fraction = 0.3 in the configuration differs .* holdout.fraction = 0.1 is used' w6.err)" = 1
run 1 evaluate --data sa --model mw --protocol standing --quiet > /dev/null 2> w7.err
check "evaluate --protocol standing without holdout keys: no warning" test -z "$(grep -i 'warning' w7.err)"
run 1 prepare --input base.csv --data sw0 --set holdout.fraction=0 --quiet
run 1 train --data sw0 --model mw0 --set model.iterations=1 --set model.k=4 --set holdout.fraction=0.1 --quiet 2> w5.err
check "store without a holdout, config 0.1: warned (0.1 vs 0)" grep -q "holdout.fraction = 0.1 in the configuration differs from sw0's standing holdout, fixed at prepare: holdout.fraction = 0 is used" w5.err

echo "e2e_header: $pass passed, $fail failed"
[ $fail -eq 0 ]
