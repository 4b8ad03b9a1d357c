#!/usr/bin/env bash
# e2e_python.sh - examples/recommend.py (docs/python.md) reproduces `incremf recommend` from the
# model files alone, with h5py and numpy: for als, ials and ease, the same top-N items for every
# user as `recommend --all --out F.h5` (the HDF5 export, scores as float32) with scores within
# 1e-6 relative, and the same list as `recommend --user` prints. Skips (77) without h5py.
set -uo pipefail
bin="${IMF_BIN:?}"; mpiexec="${IMF_MPIEXEC:-mpirun}"
PY=/usr/bin/python3
src="$(cd "$(dirname "$0")/.." && pwd)"
$PY -c "import h5py, numpy" 2> /dev/null || { echo "SKIP: /usr/bin/python3 has no h5py or numpy"; exit 77; }
tmp=$(mktemp -d /tmp/imf-e2e-python.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/e2elib.sh"
cd "$tmp"
run 2 synth --out r.csv --users 300 --items 200 --ratings 12000 --seed 3 --quiet
run 2 prepare --input r.csv --data st --quiet || bad "prepare"
for ty in als ials ease; do
  run 2 train --data st --model m_$ty --set model.type=$ty --set model.iterations=3 --quiet || bad "train $ty"
  run 2 recommend --model m_$ty --data st --all --out all_$ty.h5 --top 10 --quiet || bad "recommend --all $ty"
  check "$ty: recommend.py matches recommend --all for every user" \
    $PY - "$src/examples" m_$ty st all_$ty.h5 <<'PYEOF'
import sys, h5py, numpy as np
sys.path.insert(0, sys.argv[1])
import recommend as R
m = R.load_model(sys.argv[2])
f = h5py.File(sys.argv[4], "r")
users = [x.rstrip(b"\0").decode() for x in f["user_ids"][()]]
item_ids = [x.rstrip(b"\0").decode() for x in f["item_ids"][()]]
items, scores = f["items"][()], f["scores"][()]
bad = 0
for k, user in enumerate(users):
    got = R.recommend(m, sys.argv[3], user, items.shape[1])
    want = [(item_ids[i], float(s)) for i, s in zip(items[k], scores[k]) if i >= 0]
    for (gi, gs), (wi, ws) in zip(got, want):
        close = abs(gs - ws) <= 1e-6 * max(abs(ws), 1e-3)
        # the same item, or two items whose scores tie within float rounding
        if not close or (gi != wi and abs(gs - dict(got).get(wi, 1e30)) > 1e-6 * max(abs(ws), 1e-3)):
            bad += 1
            if bad < 5: print("user", user, "python", got, "incremf", want, file=sys.stderr)
            break
    if len(got) != len(want): bad += 1
print(m["type"], len(users), "users,", bad, "differ", file=sys.stderr)
sys.exit(1 if bad or len(users) < 100 else 0)
PYEOF
  # the printed list of one user: items in the same order, scores as printed (%.6g)
  u=$(sed -n 2p r.csv | cut -d, -f1)
  run 1 recommend --model m_$ty --data st --user "$u" --top 8 --quiet 2> /dev/null | cut -f1,2 > cli.txt
  $PY "$src/examples/recommend.py" --model m_$ty --data st --user "$u" --top 8 | cut -f1,2 > py.txt
  check "$ty: recommend --user $u lists what recommend.py lists" cmp -s cli.txt py.txt
done
echo "e2e_python: $pass passed, $fail failed"
[ "$fail" = 0 ]
