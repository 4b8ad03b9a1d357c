#!/usr/bin/env bash
# e2e_ease_update.sh - EASE kept fresh cheaply (docs/FORMAT.md "EASE P file", README "EASE
# updates"), through the real binary on a small synthetic store (600 items):
#  - a version stores B in f32 and no Gram matrix: its file is at most 1.1 x 4 n^2 bytes; P lives
#    in versions/ease-p-<hash>.h5, named by the version's ease_p_hash;
#  - an update of a few users by Woodbury (the default rule) and by refactorisation
#    (update.ease_woodbury_max_rank = 0) and a fresh train on the grown store give the same B
#    (1e-5 relative) and the same top-10 lists;
#  - a version of the older format (IMF_EASE_LEGACY_FORMAT=1: f64 B and Gram, no P file) updates
#    (by refactorisation) into the new format;
#  - update keeps P files for CURRENT and the newest version only; rollback to a version whose P
#    file is there updates by Woodbury, to one whose P file is gone by refactorisation; prune
#    leaves only P files that kept versions reference;
#  - a fault before the P file's rename, or before the version's, leaves the last good version
#    current and the next update working (the stray P file is collected).
set -uo pipefail
bin="${IMF_BIN:?}"; mpiexec="${IMF_MPIEXEC:-mpirun}"
PY=/usr/bin/python3
tmp=$(mktemp -d /tmp/imf-e2e-easeup.XXXXXX)
trap '[ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"' EXIT
. "$(dirname "$0")/e2elib.sh"
cd "$tmp"
cat > eu.py <<'PYEOF'
import h5py, numpy as np, os, json, sys
def current(d): return os.path.join(d, "versions", open(os.path.join(d, "CURRENT")).read().strip())
def B(p): return h5py.File(p, "r")["ease/BT"][()].T.astype(np.float64)
def pfiles(d): return sorted(f for f in os.listdir(os.path.join(d, "versions")) if f.startswith("ease-p-"))
def refs(d):
    out = set()
    for f in os.listdir(os.path.join(d, "versions")):
        if f.startswith("v") and f.endswith(".h5"):
            h = h5py.File(os.path.join(d, "versions", f), "r").attrs.get("ease_p_hash", b"")
            if len(h) == 32: out.add("ease-p-%s.h5" % h.decode())
    return out
def note(j): return json.load(open(j))["note"]
PYEOF
export PYTHONPATH="$tmp"
L="--set model.type=ease --set model.ease_lambda=40"
run 2 synth --out r.csv --users 400 --items 600 --ratings 24000 --seed 5 --quiet
run 2 synth --out r2.csv --users 420 --items 610 --ratings 40 --seed 8 --quiet   # a few users, new ones
run 2 prepare --input r.csv --data st --set clean.scale_min=1 --set clean.scale_max=5 --quiet
run 2 train --data st --model m $L --quiet || bad "train"
# ---- the version: f32 B, no Gram, a P file ----
check "version: B in f32, no Gram matrix, a P file named by its hash" $PY -c "
import h5py, eu, os; p = eu.current('m'); f = h5py.File(p, 'r')
assert f['ease/BT'].dtype.itemsize == 4 and 'ease/gram' not in f
assert eu.pfiles('m') == sorted(eu.refs('m')) and len(eu.pfiles('m')) == 1, (eu.pfiles('m'), eu.refs('m'))"
run 1 inspect m --json --quiet > i.json
check "inspect --json: no Gram matrix, B, and ease_p_file naming the P file" $PY -c "
import json, eu; d = json.load(open('i.json')); assert not d['ease_gram'] and d['ease_b'] and [d['ease_p_file']] == eu.pfiles('m'), d"
n=$($PY -c "import h5py, eu; print(h5py.File(eu.current('m'), 'r').attrs['nitems'])")
bytes=$(stat -c %s m/versions/v000001.h5)
echo "n = $n items: version file $bytes bytes = $($PY -c "print(round($bytes / (4 * $n * $n), 4))") x 4n^2"
check "bytes per version <= 1.1 x 4 n^2 ($bytes for n = $n)" test "$bytes" -le "$($PY -c "print(int(1.1 * 4 * $n * $n))")"
# ---- the same update three ways ----
for w in w r; do cp -r st st$w; cp -r m m$w; done
run 2 update --data stw --model mw --input r2.csv --set update.tolerance=1 --json --quiet > uw.json || bad "update (woodbury)"
run 2 update --data str --model mr --input r2.csv --set update.tolerance=1 --set update.ease_woodbury_max_rank=0 \
  --json --quiet > ur.json || bad "update (refactor)"
check "update: the default rule takes the low-rank path for a few users" $PY -c "import eu; assert 'by woodbury' in eu.note('uw.json'), eu.note('uw.json')"
check "update: ease_woodbury_max_rank = 0 refactorises" $PY -c "import eu; assert 'by refactor' in eu.note('ur.json'), eu.note('ur.json')"
run 1 train --data stw --model fresh $L --quiet || bad "train on the grown store"
check "Woodbury, refactorisation and a fresh train agree: B within 1e-5 relative" $PY -c "
import eu, numpy as np
a, b, c = eu.B(eu.current('mw')), eu.B(eu.current('mr')), eu.B(eu.current('fresh'))
s = np.abs(c).max()
assert a.shape == b.shape == c.shape and np.abs(a - c).max() <= 1e-5 * s and np.abs(b - c).max() <= 1e-5 * s, (np.abs(a - c).max() / s, np.abs(b - c).max() / s)
old = eu.B('m/versions/v000001.h5'); k = old.shape[0]
assert np.abs(old - c[:k, :k]).max() > 1e-4 * s  # the update changed B (the check can fail)"
for d in mw:stw mr:str fresh:stw; do
  run 2 recommend --model ${d%:*} --data ${d#*:} --all --top 10 --out ${d%:*}.top.csv --quiet || bad "recommend $d"
done
check "Woodbury, refactorisation and a fresh train: the same top-10 lists" eval "cmp -s mw.top.csv fresh.top.csv && cmp -s mr.top.csv fresh.top.csv"
# ---- the older format still updates ----
rm -rf mo sto; cp -r st sto
IMF_EASE_LEGACY_FORMAT=1 run 2 train --data sto --model mo $L --quiet || bad "legacy train"
check "older format: f64 B and the Gram matrix in the version, no P file" $PY -c "
import h5py, eu; f = h5py.File(eu.current('mo'), 'r'); assert f['ease/BT'].dtype.itemsize == 8 and 'ease/gram' in f and not eu.pfiles('mo')"
run 3 update --data sto --model mo --input r2.csv --set update.tolerance=1 --json --quiet > uo.json; rc=$?
check "older format: update works (refactorisation), the new version in the new format, B = the fresh train's" eval "test $rc -eq 0 && $PY -c \"
import eu, h5py, numpy as np; assert 'by refactor' in eu.note('uo.json'); f = h5py.File(eu.current('mo'), 'r')
assert f['ease/BT'].dtype.itemsize == 4 and 'ease/gram' not in f and eu.pfiles('mo') == sorted(eu.refs('mo'))
c = eu.B(eu.current('fresh')); assert np.abs(eu.B(eu.current('mo')) - c).max() <= 1e-5 * np.abs(c).max()\""
# ---- P files across updates, rollback and prune ----
run 2 synth --out r3.csv --users 430 --items 612 --ratings 30 --seed 9 --quiet
run 2 update --data stw --model mw --input r3.csv --set update.tolerance=1 --json --quiet > uw3.json || bad "second update"
check "after updates: P files only for CURRENT and the newest version (v1's collected)" $PY -c "
import eu, h5py; cur = eu.current('mw'); assert cur.endswith('v000003.h5'), cur
h = lambda v: 'ease-p-%s.h5' % h5py.File('mw/versions/v%06d.h5' % v, 'r').attrs['ease_p_hash'].decode()
assert eu.pfiles('mw') == sorted({h(3)}), (eu.pfiles('mw'), h(2), h(3))" 
run 1 rollback --model mw --to 2 --quiet || bad "rollback to 2"
run 1 rollback --model mw --to 3 --quiet || bad "rollback to 3"
run 2 synth --out r4.csv --users 440 --items 614 --ratings 30 --seed 10 --quiet
run 2 update --data stw --model mw --input r4.csv --set update.tolerance=1 --json --quiet > uw4.json; rc=$?
check "rollback to a version whose P file is there (v3, the newest): update by Woodbury" eval "test $rc -eq 0 && $PY -c \"import eu; assert 'by woodbury' in eu.note('uw4.json'), eu.note('uw4.json')\""
# v2's P file went with the second update (neither CURRENT then nor the newest)
run 1 rollback --model mw --to 2 --quiet || bad "rollback to 2"
run 2 update --data stw --model mw --set update.tolerance=1 --json --quiet > uw5.json; rc=$?
check "rollback to a version whose P file is gone (v2): update refactorises" eval "test $rc -eq 0 && $PY -c \"import eu; assert 'by refactor' in eu.note('uw5.json'), eu.note('uw5.json')\""
run 1 prune --model mw --keep 1 --quiet || bad "prune"
check "prune: every P file left is referenced by a kept version; CURRENT's is there" $PY -c "
import eu, h5py; cur = 'ease-p-%s.h5' % h5py.File(eu.current('mw'), 'r').attrs['ease_p_hash'].decode()
assert set(eu.pfiles('mw')) <= eu.refs('mw') and cur in eu.pfiles('mw'), (eu.pfiles('mw'), eu.refs('mw'))"
# ---- faults while writing ----
cp -r m mf; cp -r stw stf   # v1 has seen 1 of the store's 4 batches: an update has work
before=$(cat mf/CURRENT); nv=$(ls mf/versions/v*.h5 | wc -l)
for fault in ease-p-before-rename checkpoint-before-rename; do
  IMF_FAULT=$fault run 2 update --data stf --model mf --set update.tolerance=1 --set update.ease_woodbury_max_rank=0 \
    --quiet >/dev/null 2>&1; rc=$?
  check "fault $fault: update fails, CURRENT and the versions unchanged" eval "test $rc -ne 0 && test \"\$(cat mf/CURRENT)\" = '$before' && test \$(ls mf/versions/v*.h5 | wc -l) -eq $nv"
done
run 2 update --data stf --model mf --set update.tolerance=1 --json --quiet > uf.json; rc=$?
check "after the faults: the next update works; no stray P or tmp files" eval "test $rc -eq 0 && $PY -c \"
import eu, os; assert set(eu.pfiles('mf')) <= eu.refs('mf') and len(eu.pfiles('mf')) == 1, (eu.pfiles('mf'), eu.refs('mf'))
assert not [f for f in os.listdir('mf/versions') if f.endswith('.tmp')]\""
echo "e2e_ease_update: $pass passed, $fail failed"
[ $fail -eq 0 ]
