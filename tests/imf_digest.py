"""imf_digest.py - a model version's content digest recomputed with h5py, exactly as
docs/FORMAT.md ("Content digest") specifies it: the tests that edit a version on purpose (an
older layout, a recorded hyperparameter) re-seal it with digest(f), and check a written one."""
import hashlib
import struct


def digest(f):
    a = f.attrs
    h = hashlib.sha256(b"incremf-model/1\0")
    nh = len(f["history/iteration"])
    ty = {"als": 0, "ials": 1, "bpmf": 2, "ease": 3, "pop": 4, "bias": 5}[a["type"].decode()]
    for v in [ty, a["k"], a["kw"], a["with_bias"], a["has_chain"], a["nusers"], a["nitems"], a["iteration"],
              a["nsamples"], a["max_samples"], a["burn_in"], a["thin"], a["chain_sweeps"], nh,
              len(f["ids/user_off"]) - 1, len(f["ids/item_off"]) - 1]:
        h.update(struct.pack("<q", int(v)))
    h.update(struct.pack("<Q", int(a["seed"])))
    for k in ["mu", "lambda", "lambda_bias", "alpha"]:
        h.update(struct.pack("<d", float(a[k])))

    def arr(n, dt):
        x = f[n][...].astype(dt)
        h.update(struct.pack("<Q", x.size))
        h.update(x.tobytes())
    arr("factors/P", "<f4")
    arr("factors/Q", "<f4")
    if a["with_bias"]:
        arr("bias/user", "<f4")
        arr("bias/item", "<f4")
    if a["has_chain"]:
        arr("bpmf/U", "<f4")
        arr("bpmf/V", "<f4")
        for n in ["mu_u", "mu_v", "Lam_u", "Lam_v"]:
            arr("bpmf/" + n, "<f8")
    h.update(struct.pack("<Q", nh))
    h.update(f["history/iteration"][...].astype("<i8").tobytes())
    for n in ["train_loss", "train_rmse", "val_rmse", "val_mae", "seconds"]:
        h.update(f["history/" + n][...].astype("<f8").tobytes())
    for s in ["user", "item"]:
        arr("ids/%s_off" % s, "<i8")
        arr("ids/%s_blob" % s, "u1")
    if a.get("ease_items", 0) > 0:
        h.update(b"ease\0")
        h.update(struct.pack("<q", int(a["ease_items"])))
        for k in ["ease_gram_hash", "ease_b_hash"]:
            h.update(a[k].ljust(32, b"\0"))
        if len(a.get("ease_x_hash", b"")) == 32:
            h.update(b"ease-x\0")
            h.update(struct.pack("<q", int(a["ease_x_nnz"])))
            h.update(a["ease_x_hash"])
        if len(a.get("ease_p_hash", b"")) == 32:
            h.update(b"ease-p\0")
            h.update(a["ease_p_hash"])
    return h.hexdigest()
