#!/usr/bin/python3
"""recommend.py - an incremf model in Python: read a model version with h5py and numpy and
reproduce `incremf recommend --user ID` (the same top-N items, the same scores up to float
rounding). It reads the files described in docs/FORMAT.md and nothing else, so it also shows
how to take a model elsewhere; docs/python.md walks through it. tests/e2e_python.sh checks it
against incremf.

usage: recommend.py --model DIR [--version vNNNNNN.h5] [--data STORE] --user ID [--top N]
                    [--clip scale|none] [--json]

Model types: als, ials, bias and pop (score = mu + b_u + b_i + p_u . q_i, with the terms the
model has) and ease (score = sum of B's rows over the user's items). Like incremf, the items
the user rated in STORE are left out, equal scores go to the lower item index, and an
explicit model's scores (als, bias) are clipped to the store's rating range after ranking
(--clip none: not; recommend.clip in incremf's configuration).
"""
import argparse
import json
import math
import os
import sys

import h5py
import numpy as np


def ids(f, side):
    """The raw ids of a model's or batch's users or items (docs/FORMAT.md: blob + offsets)."""
    blob = f["ids/%s_blob" % side][()].tobytes()
    off = f["ids/%s_off" % side][()]
    return [blob[off[j]:off[j + 1]].decode("utf-8", "surrogateescape") for j in range(len(off) - 1)]


def attr_str(a, key, default=""):
    v = a.get(key, default)
    return v.decode() if isinstance(v, bytes) else str(v)


def load_model(model_dir, version=None):
    """The current (or named) version of a model directory: a dict of numpy arrays."""
    if version is None:
        with open(os.path.join(model_dir, "CURRENT")) as cur:
            version = cur.read().strip()
    path = os.path.join(model_dir, "versions", version)
    with h5py.File(path, "r") as f:
        a = f.attrs
        if attr_str(a, "format") != "incremf-model":
            sys.exit("%s is not an incremf model checkpoint" % path)
        m = {"path": path, "type": attr_str(a, "type"), "nusers": int(a["nusers"]),
             "nitems": int(a["nitems"]), "mu": float(a["mu"]), "config": attr_str(a, "config"),
             "user_ids": ids(f, "user"), "item_ids": ids(f, "item")}
        if m["type"] == "ease":
            m["BT"] = f["ease/BT"][()] if "ease/BT" in f else None
            if "ease/x_ptr" in f:
                m["x_ptr"], m["x_idx"] = f["ease/x_ptr"][()], f["ease/x_idx"][()]
        else:
            m["P"], m["Q"] = f["factors/P"][()], f["factors/Q"][()]
            if int(a["with_bias"]):
                m["bu"], m["bi"] = f["bias/user"][()], f["bias/item"][()]
    return m


def manifest(store):
    """The MANIFEST's key lines and batch file names."""
    keys, files = {}, []
    with open(os.path.join(store, "MANIFEST")) as f:
        for line in f:
            w = line.split()
            if len(w) >= 2 and w[0] == "batch" and w[1].isdigit():
                files += [x[5:] for x in w[2:] if x.startswith("file=")]
            elif len(w) == 2:
                keys[w[0]] = w[1]
    return keys, files


def rated_items(store, u):
    """Dense indices of the items user index u rated in any batch of the store (the store and
    the model number users and items alike: dense indices are never renumbered)."""
    _, files = manifest(store)
    out = []
    for name in files:
        with h5py.File(os.path.join(store, name), "r") as b:
            users = b["index/user"][()]
            k = np.searchsorted(users, u)
            if k < len(users) and users[k] == u:
                ptr = b["index/user_ptr"]
                out.append(b["ratings/item"][int(ptr[k]):int(ptr[k + 1])])
    return np.unique(np.concatenate(out)) if out else np.zeros(0, dtype=np.int64)


def clip_range(store, m):
    """recommend.clip = scale: the store's observed value range, else its configured
    clean.scale_min/max, else the model's own configuration's."""
    lo = hi = math.nan
    if store:
        keys, _ = manifest(store)
        if "value_min" in keys and "value_max" in keys:
            lo, hi = float(keys["value_min"]), float(keys["value_max"])
        else:
            lo = float(keys.get("scale_min", "none").replace("none", "nan"))
            hi = float(keys.get("scale_max", "none").replace("none", "nan"))
    if math.isnan(lo) and math.isnan(hi):
        section = ""
        for line in m["config"].splitlines():
            line = line.strip()
            if line.startswith("["):
                section = line.strip("[]")
                continue
            k, _, v = line.partition("=")
            k, v = k.strip(), v.strip()
            if section == "clean" and k in ("scale_min", "scale_max") and v not in ("", "none"):
                if k == "scale_min": lo = float(v)
                else: hi = float(v)
    return lo, hi


def scores_for(m, u):
    """Every item's score for user index u, float64."""
    if m["type"] == "ease":
        x = m["x_idx"][m["x_ptr"][u]:m["x_ptr"][u + 1]]
        # BT row j = column j of B: the score of j is the sum of B[i, j] over the user's items i
        return m["BT"][:, x].astype(np.float64).sum(axis=1)
    s = m["Q"].astype(np.float64) @ m["P"][u].astype(np.float64)
    if "bi" in m:
        s += float(m["bu"][u]) + m["bi"].astype(np.float64)
    if not math.isnan(m["mu"]):
        s += m["mu"]
    return s


def recommend(m, store, user, top, clip="scale"):
    """[(item id, score)] best first, as `incremf recommend --user` lists them."""
    try:
        u = m["user_ids"].index(user)
    except ValueError:
        sys.exit("unknown user '%s': the model has no such user" % user)
    s = scores_for(m, u)
    keep = np.ones(m["nitems"], dtype=bool)
    if store:
        seen = rated_items(store, u)
        keep[seen[seen < m["nitems"]]] = False
    cand = np.flatnonzero(keep)
    # best first: score descending, then item index ascending (stable sort on -score)
    order = cand[np.argsort(-s[cand], kind="stable")][:top]
    out = s[order]
    if clip == "scale" and m["type"] in ("als", "bpmf", "bias"):
        lo, hi = clip_range(store, m)
        if not math.isnan(lo): out = np.maximum(out, lo)
        if not math.isnan(hi): out = np.minimum(out, hi)
    return [(m["item_ids"][i], float(v)) for i, v in zip(order, out)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--version", help="a file in DIR/versions (default: CURRENT's)")
    ap.add_argument("--data", help="the store: the user's rated items are left out")
    ap.add_argument("--user", required=True)
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--clip", choices=["scale", "none"], default="scale")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    m = load_model(a.model, a.version)
    if m["type"] == "ease" and ("BT" not in m or m["BT"] is None or "x_ptr" not in m):
        sys.exit("this EASE version keeps no B or no sparse X (see docs/python.md)")
    if m["type"] == "bpmf":
        sys.exit("bpmf models are not covered by this example")
    recs = recommend(m, a.data, a.user, a.top, a.clip)
    if a.json:
        print(json.dumps({"user": a.user, "items": [{"item": i, "score": v} for i, v in recs]}))
    else:
        for k, (i, v) in enumerate(recs):
            print("%d\t%s\t%.9g" % (k + 1, i, v))


if __name__ == "__main__":
    main()
