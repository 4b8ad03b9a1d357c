#!/usr/bin/python3
"""judge_kill.py FX CASES USER - the verdicts of tests/e2e_faults_kill.sh (one process for all
cases: h5py is imported once).

FX holds the uninterrupted reference runs (st_prep/st_app/st_fg stores with their `inspect
--json` output, m_train/m_upd/m_rb/m_fg model directories); CASES one directory per kill with
`facts`, snap1/ (what `incremf inspect`/`status` said right after the kill, copies of CURRENT,
the versions and the registry) and snap2/ (the same after the rerun). Prints one `ok`/`FAIL`
line per case and one ROW line (tab-separated) per command for tests/fault/table.sh."""
import glob, hashlib, json, os, sys
import h5py

fx, cases_dir, user = sys.argv[1], sys.argv[2], sys.argv[3]
_h = {}


def vhash(path):
    """Factors, biases and id lists of a model file (the history's timings differ between runs,
    so the file's own content digest cannot be compared)."""
    if path not in _h:
        h = hashlib.sha256()
        with h5py.File(path, "r") as f:
            for k in ("factors/P", "factors/Q", "bias/user", "bias/item", "ids/user_off", "ids/user_blob",
                      "ids/item_off", "ids/item_blob"):
                if k in f:
                    h.update(k.encode())
                    h.update(f[k][()].tobytes())
        _h[path] = h.hexdigest()
    return _h[path]


def batch_rows(path):
    """A batch file's ratings and user ids (what `forget` erases from it)."""
    h = hashlib.sha256()
    with h5py.File(path, "r") as f:
        for k in ("ratings/user", "ratings/item", "ratings/value", "ids/user_off", "ids/user_blob"):
            h.update(f[k][()].tobytes())
    return h.hexdigest()


def jload(p):
    try:
        with open(p) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def rc(snap, what):
    try:
        return int(open(os.path.join(snap, what + ".rc")).read())
    except OSError:
        return None


def current(snap):
    try:
        name = open(os.path.join(snap, "CURRENT")).read().strip()
    except OSError:
        return None, None
    p = os.path.join(snap, "versions", name)
    return name, (vhash(p) if os.path.exists(p) else "missing")


def mdir_hashes(d):
    return {os.path.basename(p): vhash(p) for p in sorted(glob.glob(os.path.join(d, "versions", "v*.h5")))}


def events(snap, kind):
    try:
        lines = open(os.path.join(snap, "registry.jsonl")).read().splitlines()
    except OSError:
        return []
    out = []
    for l in lines:
        try:
            e = json.loads(l)
        except ValueError:
            continue
        if e.get("event") == kind:
            out.append(e)
    return out


D = {s: jload(os.path.join(fx, s + ".json"))["digest"] for s in ("st_prep", "st_app", "st_fg")
     if os.path.exists(os.path.join(fx, s + ".json"))}
def cur_hash(d):
    p = os.path.join(fx, d)
    if not os.path.exists(os.path.join(p, "CURRENT")):
        return None  # (a reference the commands of this run do not need)
    return vhash(os.path.join(p, "versions", open(os.path.join(p, "CURRENT")).read().strip()))


F_train, F_upd = cur_hash("m_train"), cur_hash("m_upd")
FG_before, FG_after = mdir_hashes(os.path.join(fx, "m_upd")), mdir_hashes(os.path.join(fx, "m_fg"))
assert F_train != F_upd and len(set(D.values())) == len(D)
assert FG_before != FG_after or not FG_before


def manifest_digest(path):
    """The store content digest from a MANIFEST (store.c: sha256 over the batches' digests in order,
    then "forgotten" and each forgotten index as LE64); checked against `incremf inspect` below."""
    h, nb, forgotten = hashlib.sha256(), 0, []
    for l in open(path).read().splitlines():
        if l.startswith("batch "):
            nb += 1
            h.update([f for f in l.split() if f.startswith("digest=")][0][7:].encode())
        elif l.startswith("forgotten "):
            forgotten = [int(x) for x in l[10:].split(",")]
    if forgotten:
        h.update(b"forgotten")
        for u in forgotten:
            h.update(u.to_bytes(8, "little"))
    return h.hexdigest(), nb


def store_state(snap, before, after, why, allow_empty=False, allow_none=False):
    """before/after/? from what `incremf inspect` said (snap1), or from the MANIFEST copy (snap2)."""
    r = rc(snap, "st")
    if not os.path.exists(os.path.join(snap, "MANIFEST")):
        if allow_none:
            return "before"
        why.append("no store MANIFEST")
        return "?"
    if r is not None and r != 0:
        why.append("inspect of the store failed: " + open(os.path.join(snap, "st.err")).read().strip()[-200:])
        return "?"
    dig, nb = manifest_digest(os.path.join(snap, "MANIFEST"))
    if r is not None:
        j = jload(os.path.join(snap, "st.json"))
        if j["digest"] != dig:
            why.append("inspect's digest %s differs from the MANIFEST's %s" % (j["digest"][:12], dig[:12]))
    if dig == after:
        return "after"
    if before is not None and dig == before:
        return "before"
    if allow_empty and nb == 0:
        return "before"
    why.append("store digest %s is neither the state before nor after" % dig[:12])
    return "?"


for s_, d_ in D.items():
    assert manifest_digest(os.path.join(fx, s_, "MANIFEST"))[0] == d_, "the MANIFEST digest formula of " + s_


def model_loads(snap, why):
    for w in ("m", "status"):
        r = rc(snap, w)
        if r is None:
            continue
        if r != 0:
            why.append("%s of the model directory failed: %s" % (
                "inspect" if w == "m" else "status", open(os.path.join(snap, w + ".err")).read().strip()[-200:]))
    r = rc(snap, "ckpt")
    if r is not None and r != 0:
        why.append("the run checkpoint does not load: " + open(os.path.join(snap, "ckpt.err")).read().strip()[-200:])


def judge(c):
    name, s1, s2 = c["name"], c["snap1"], c["snap2"]
    why, rr = [], int(c["rerun_rc"])
    state = "?"
    if name in ("prepare", "append"):
        before = None if name == "prepare" else D["st_prep"]
        after = D["st_prep"] if name == "prepare" else D["st_app"]
        state = store_state(s1, before, after, why, allow_empty=name == "prepare", allow_none=name == "prepare")
        ok_rr = (0,) if state == "before" else (0, 3)  # a committed prepare/append refuses the rerun
        if rr not in ok_rr:
            why.append("rerun exit %d" % rr)
        if store_state(s2, None, after, why) != "after":
            why.append("the rerun did not reach the uninterrupted store")
    elif name in ("train", "update"):
        model_loads(s1, why)
        ref_before = None if name == "train" else F_train
        ref_after = F_train if name == "train" else F_upd
        cname, h = current(s1)
        if cname is None:
            state = "before" if name == "train" else "?"
            if name == "update":
                why.append("CURRENT is gone")
        elif h == ref_after:
            state = "after"
        elif h == ref_before:
            state = "before"
        else:
            why.append("CURRENT %s holds factors of neither the state before nor after" % cname)
        if rr != 0:
            why.append("rerun exit %d" % rr)
        model_loads(s2, why)
        if current(s2)[1] != ref_after:
            why.append("after the rerun CURRENT does not hold the uninterrupted factors")
    elif name == "rollback":
        model_loads(s1, why)
        cname, _ = current(s1)
        state = {"v000002.h5": "before", "v000001.h5": "after"}.get(cname, "?")
        if state == "?":
            why.append("CURRENT is %s" % cname)
        if rr != 0:
            why.append("rerun exit %d" % rr)
        model_loads(s2, why)
        ev = events(s2, "rollback")
        if current(s2)[0] != "v000001.h5" or not ev or ev[-1].get("version") != 1:
            why.append("after the rerun: CURRENT %s, rollback events %d" % (current(s2)[0], len(ev)))
    elif name == "forget":
        st = store_state(s1, D["st_app"], D["st_fg"], why)
        model_loads(s1, why)
        vs = {os.path.basename(p): vhash(p) for p in glob.glob(os.path.join(s1, "versions", "v*.h5"))}
        kinds = set()
        for v, h in sorted(vs.items()):
            if h == FG_after.get(v):
                kinds.add("after")
            elif h == FG_before.get(v):
                kinds.add("before")
            else:
                why.append("%s is neither the version before nor after" % v)
        kinds.add(st)
        state = kinds.pop() if len(kinds) == 1 else "store forgotten, versions partly"
        if rr not in ((0, 3) if state == "after" else (0,)):
            why.append("rerun exit %d" % rr)
        if store_state(s2, None, D["st_fg"], why) != "after":
            why.append("the rerun did not reach the uninterrupted store")
        v2 = {os.path.basename(p): vhash(p) for p in glob.glob(os.path.join(s2, "versions", "v*.h5"))}
        if v2 != FG_after:
            why.append("after the rerun the versions differ from the uninterrupted forget (%s)" %
                       ", ".join(v for v in sorted(set(v2) | set(FG_after)) if v2.get(v) != FG_after.get(v)))
        if len(events(s2, "forget")) > 1:
            why.append("forget recorded twice")
        # the erasure (forget's last step) finished: every batch file's rows and user ids are
        # those of the uninterrupted forget (in particular, no row and no id of the user remain)
        for ref in sorted(glob.glob(os.path.join(fx, "st_fg", "batch-*.h5"))):
            got = os.path.join(c["dir"], "st", os.path.basename(ref))
            if not os.path.exists(got) or batch_rows(got) != batch_rows(ref):
                why.append("after the rerun %s is not the erased batch of the uninterrupted forget" %
                           os.path.basename(ref))
        c["recorded"] = len(events(s2, "forget")) == 1
    # the lock: a kill leaves LOCK behind; the rerun takes it over (exit 4 never)
    if c["lock"] == "1" and rr == 0:
        err = open(os.path.join(c["dir"], "rerun.err")).read()
        if "taking over the stale lock" not in err:
            why.append("a stale LOCK was left and the rerun did not say it took it over")
    if rr == 4:
        why.append("the rerun found the directory locked")
    if c["lock2"] == "1" and rr == 0:
        why.append("a LOCK is left after the rerun")
    if c["kind"] != "time" and c["job_rc"] == "0":
        why.append("the injected kill did not happen")
    return state, why


cases = []
for d in sorted(glob.glob(os.path.join(cases_dir, "*"))):
    f = os.path.join(d, "facts")
    if not os.path.exists(f):
        print("FAIL %s: the case did not finish" % os.path.basename(d))
        continue
    c = dict(l.split("=", 1) for l in open(f).read().splitlines() if "=" in l)
    c.update(dir=d, snap1=os.path.join(d, "snap1"), snap2=os.path.join(d, "snap2"))
    c["state"], c["why"] = judge(c)
    cases.append(c)
    killed = "finished before the kill" if c["job_rc"] == "0" else "killed (exit %s)" % c["job_rc"]
    head = "%s #%s %s %s: %s; state %s%s; rerun exit %s" % (
        c["name"], c["idx"], c["kind"], c["spec"], killed, c["state"], ", stale LOCK" if c["lock"] == "1" else "",
        c["rerun_rc"])
    print(("FAIL %s: %s" % (head, "; ".join(c["why"]))) if c["why"] else "ok   " + head)
    if c["why"]:
        for f in ("kill.log", "rerun.err"):
            t = open(os.path.join(d, f), errors="replace").read().strip().splitlines()
            print("     %s: %s" % (f, " | ".join(t[-4:])))

for name in ("prepare", "append", "train", "update", "rollback", "forget"):
    cs = [c for c in cases if c["name"] == name]
    if not cs:
        continue
    n = len(cs)
    good = sum(1 for c in cs if not c["why"])
    exact = sum(1 for c in cs if c["kind"] != "time")
    st = {}
    for c in cs:
        st[c["state"]] = st.get(c["state"], 0) + 1
    locks = sum(1 for c in cs if c["lock"] == "1")
    early = sum(1 for c in cs if c["job_rc"] == "0")
    hook = "IMF_KILL_AT hooks" if name == "update" else "commit steps (rename shim)"
    what = "kill -9 during `%s` (%d at %s, %d at seeded random times)" % (name, exact, hook, n - exact)
    states = ", ".join("%d %s" % (v, k) for k, v in sorted(st.items()))
    out = "%d/%d handled: state after the kill %s; %d stale LOCKs taken over; every rerun reached the " \
          "uninterrupted result%s" % (good, n, states, locks, " (%d of the runs finished before their kill)" % early if early else "")
    if name == "forget":
        norec = sum(1 for c in cs if not c.get("recorded", True))
        if norec:
            out += "; %d of them left no `forget` line in the lineage (killed after the versions, before the registry line)" % norec
    if good < n:
        out = "%d/%d FAILED: see the test log" % (n - good, n)
    print("ROW\t%s\t%d\t%s" % (what, n, out))
