/* checkpoint_ease.c - the EASE state in a checkpoint (docs/FORMAT.md): the n x n matrices as
 * block-cyclic parts in strided hyperslabs, the sparse X as CSR in two 1-d datasets, the
 * content-addressed P file next to the versions, and their readers, each checked against the
 * hash the header records. Private helpers: checkpoint_impl.h. */
#include "checkpoint_impl.h"
#include "error.h"
#include "fsio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


/* An n x n matrix M of the EASE state is stored as dataset D (n x n, f64) with D[j][i] = M(i, j):
 * row j of the dataset is column j of M (Fortran order; for B that is Q's row j, B^T). Then a
 * rank's local part — column-major, lld = mloc — is, column after column, exactly the row-major
 * order of its selection in the file: file dimension 0 (j) takes its column blocks, starting at
 * mycol * nb with stride npcol * nb, dimension 1 (i) its row blocks, starting at myrow * nb with
 * stride nprow * nb, every block nb x nb. Only the matrix's last block row/column can be short
 * (n mod nb), and only the rank owning it has it: the selection is the union of up to four
 * regular hyperslabs (full x full, full x short, short x full, short x short blocks). Rounds of
 * local columns (a multiple of nb) keep each call under io_chunk bytes. */
static herr_t select_bc(hid_t fs, const imf_ease_layout *L, int lc0, int lc1) {
  if (H5Sselect_none(fs) < 0) return -1;
  if (L->mloc <= 0 || lc1 <= lc0) return 0;
  const hsize_t nb = (hsize_t)L->nb;
  int fR = L->mloc / L->nb, pR = L->mloc % L->nb;
  int lb0 = lc0 / L->nb, ncols = lc1 - lc0, fC = ncols / L->nb, pC = ncols % L->nb;
  hsize_t j0 = ((hsize_t)lb0 * (hsize_t)L->npcol + (hsize_t)L->mycol) * nb, i0 = (hsize_t)L->myrow * nb;
  hsize_t jp = ((hsize_t)(lb0 + fC) * (hsize_t)L->npcol + (hsize_t)L->mycol) * nb;
  hsize_t ip = ((hsize_t)fR * (hsize_t)L->nprow + (hsize_t)L->myrow) * nb;
  const hsize_t sj = (hsize_t)L->npcol * nb, si = (hsize_t)L->nprow * nb;
  struct {
    hsize_t start[2], stride[2], count[2], block[2];
    int on;
  } part[4] = {{{j0, i0}, {sj, si}, {(hsize_t)fC, (hsize_t)fR}, {nb, nb}, fC > 0 && fR > 0},
               {{j0, ip}, {sj, (hsize_t)(pR ? pR : 1)}, {(hsize_t)fC, 1}, {nb, (hsize_t)pR}, fC > 0 && pR > 0},
               {{jp, i0}, {(hsize_t)(pC ? pC : 1), si}, {1, (hsize_t)fR}, {(hsize_t)pC, nb}, pC > 0 && fR > 0},
               {{jp, ip}, {(hsize_t)(pC ? pC : 1), (hsize_t)(pR ? pR : 1)}, {1, 1}, {(hsize_t)pC, (hsize_t)pR},
                pC > 0 && pR > 0}};
  int first = 1;
  for (int k = 0; k < 4; k++) {
    if (!part[k].on) continue;
    if (H5Sselect_hyperslab(fs, first ? H5S_SELECT_SET : H5S_SELECT_OR, part[k].start, part[k].stride,
                            part[k].count, part[k].block) < 0)
      return -1;
    first = 0;
  }
  return 0;
}

/* Local columns per round (a multiple of nb, the same on every rank) and the number of rounds. */
static imf_status bc_rounds(const io_ctx *c, const imf_ease_layout *L, int *per, int *rounds) {
  int mx[2] = {L->mloc, L->nloc};
  IMF_MPI(MPI_Allreduce(MPI_IN_PLACE, mx, 2, MPI_INT, MPI_MAX, c->comm));
  int64_t colbytes = 8 * (int64_t)(mx[0] > 0 ? mx[0] : 1);
  int64_t blocks = ckpt_io_chunk() / (colbytes * L->nb);
  if (blocks < 1) blocks = 1;
  if (blocks * L->nb > mx[1]) blocks = (mx[1] + L->nb - 1) / L->nb;
  if (blocks < 1) blocks = 1;
  *per = (int)(blocks * L->nb);
  *rounds = (mx[1] + *per - 1) / *per;
  return IMF_OK;
}

/* The status of a collective transfer of dataset `name` (e < 0: it failed on this rank). */
static imf_status io_status(const io_ctx *c, int write, const char *name, herr_t e) {
  if (e >= 0) return IMF_OK;
  if (write) IMF_FAIL(IMF_ERR_RUNTIME, "%s: cannot write dataset %s: %s", c->path, name, imf_h5_last());
  IMF_FAIL(IMF_ERR_INPUT, "%s is not a readable HDF5 file (truncated or corrupt?): reading %s: %s", c->path, name,
           imf_h5_last());
}

/* Collective: transfer this rank's part `local` of an EASE matrix to/from dataset d. An f32
 * dataset (B since 2026-12-07) goes through a float buffer of one round, converted here: HDF5's
 * own conversion would turn the collective strided transfer into many small independent ones. */
static imf_status bc_transfer(const io_ctx *c, hid_t d, const imf_ease_layout *L, double *local, int write,
                              const char *name) {
  int per = 0, rounds = 0;
  IMF_CHECK(bc_rounds(c, L, &per, &rounds));
  hid_t ft = H5Dget_type(d);
  int f32 = ft >= 0 && H5Tget_class(ft) == H5T_FLOAT && H5Tget_size(ft) == 4;
  if (ft >= 0) H5Tclose(ft);
  float *fb = NULL;
  imf_status st = f32 ? imf_alloc_nz(&fb, (size_t)per * (size_t)(L->mloc > 0 ? L->mloc : 1), sizeof *fb) : IMF_OK;
  IMF_CHECK(imf_agree(c->comm, st));
  hid_t fs = H5Dget_space(d);
  herr_t e = fs < 0 ? -1 : 0;
  static double dummy[1];
  static float fdummy[1];
  for (int t = 0; t < rounds && e >= 0; t++) {
    int lc0 = t * per, lc1 = lc0 + per < L->nloc ? lc0 + per : L->nloc;
    int have = L->mloc > 0 && lc1 > lc0;
    hsize_t mdim[2] = {have ? (hsize_t)(lc1 - lc0) : 1, have ? (hsize_t)L->mloc : 1};
    hid_t ms = H5Screate_simple(2, mdim, NULL);
    e = ms < 0 ? -1 : select_bc(fs, L, lc0, lc1);
    if (e >= 0 && !have) e = H5Sselect_none(ms);
    double *p = have ? local + (size_t)lc0 * (size_t)L->lld : dummy;
    size_t cnt = have ? (size_t)(lc1 - lc0) * (size_t)L->mloc : 0; /* lld == mloc when mloc > 0 */
    if (f32 && write)
      for (size_t x = 0; x < cnt; x++) fb[x] = (float)p[x];
    void *buf = f32 ? (void *)(have ? fb : fdummy) : (void *)p;
    hid_t mt = f32 ? H5T_NATIVE_FLOAT : H5T_NATIVE_DOUBLE;
    if (e >= 0) e = write ? H5Dwrite(d, mt, ms, fs, c->dxpl, buf) : H5Dread(d, mt, ms, fs, c->dxpl, buf);
    if (e >= 0 && f32 && !write)
      for (size_t x = 0; x < cnt; x++) p[x] = (double)fb[x];
    if (e < 0) imf_h5_reason();
    if (ms >= 0) H5Sclose(ms);
  }
  if (fs >= 0) H5Sclose(fs);
  imf_free(&fb);
  return io_status(c, write, name, e);
}

/* Collective: create dataset `name` (n x n f64, contiguous) and write every rank's blocks. */
imf_status ckpt_put_bc(const io_ctx *c, const char *name, hid_t ftype, const imf_ease *e, double *local) {
  imf_ease_layout L;
  imf_ease_get_layout(e, &L);
  hsize_t dims[2] = {(hsize_t)L.n, (hsize_t)L.n};
  hid_t d = imf_h5_dcreate(c->f, name, ftype, 2, dims);
  if (d < 0) IMF_FAIL(IMF_ERR_RUNTIME, "%s: cannot create dataset %s: %s", c->path, name, imf_h5_last());
  imf_status st = bc_transfer(c, d, &L, local, 1, name);
  if (H5Dclose(d) < 0 && st == IMF_OK)
    st = IMF_RAISE(IMF_ERR_RUNTIME, "%s: cannot write dataset %s: %s", c->path, name,
                       imf_h5_reason());
  return st;
}

/* Collective: read every rank's blocks of dataset `name` (checked to be n x n). */
static imf_status ckpt_get_bc(const io_ctx *c, const char *name, const imf_ease *e, double *local) {
  imf_ease_layout L;
  imf_ease_get_layout(e, &L);
  imf_status st = IMF_OK;
  hid_t d = H5Dopen2(c->f, name, H5P_DEFAULT);
  hid_t fs = d < 0 ? -1 : H5Dget_space(d);
  hsize_t dims[2] = {0, 0};
  if (fs < 0 || H5Sget_simple_extent_ndims(fs) != 2 || H5Sget_simple_extent_dims(fs, dims, NULL) < 0 ||
      dims[0] != (hsize_t)L.n || dims[1] != (hsize_t)L.n)
    st = IMF_RAISE(IMF_ERR_INPUT, "%s is corrupt: dataset %s is missing or not %lld x %lld",
                       c->path, name, (long long)L.n, (long long)L.n);
  if (fs >= 0) H5Sclose(fs);
  st = imf_agree(c->comm, st);
  if (st == IMF_OK) st = imf_agree(c->comm, bc_transfer(c, d, &L, local, 0, name));
  if (d >= 0) H5Dclose(d);
  H5Eclear2(H5E_DEFAULT);
  return st;
}

/* EASE X: sparse rows as two 1-d datasets                                                   */

/* Collective: create 1-d dataset `name` of n elements. */
static imf_status create_1d(const io_ctx *c, const char *name, hid_t ftype, int64_t n, hid_t *out) {
  hsize_t dims = (hsize_t)n;
  *out = imf_h5_dcreate(c->f, name, ftype, 1, &dims);
  if (*out < 0) IMF_FAIL(IMF_ERR_RUNTIME, "%s: cannot create dataset %s: %s", c->path, name, imf_h5_last());
  return IMF_OK;
}

/* Collective: elements [start, start + cnt) of 1-d dataset d to/from buf, in rounds of at most
 * io_chunk bytes per rank (the same number of rounds on every rank; cnt may be 0). */
static imf_status io_1d(const io_ctx *c, hid_t d, hid_t mtype, size_t esize, int64_t start, int64_t cnt, void *buf,
                        int write, const char *name) {
  int64_t per = ckpt_io_chunk() / (int64_t)esize, rounds;
  if (per < 1) per = 1;
  rounds = (cnt + per - 1) / per;
  IMF_MPI(MPI_Allreduce(MPI_IN_PLACE, &rounds, 1, MPI_INT64_T, MPI_MAX, c->comm));
  herr_t e = 0;
  for (int64_t t = 0; t < rounds && e >= 0; t++) {
    int64_t a = t * per, b = a + per < cnt ? a + per : cnt, n = b > a ? b - a : 0;
    e = imf_h5_xfer_1d(d, mtype, (hsize_t)(start + a), (hsize_t)n, n ? (char *)buf + (size_t)a * esize : NULL,
                       c->dxpl, write);
  }
  return io_status(c, write, name, e);
}

/* Collective: X as CSR over all users: /ease/x_ptr (i64, nusers + 1; row u's items are
 * x_idx[x_ptr[u] .. x_ptr[u + 1])) and /ease/x_idx (i32, nnz). Each rank writes its rows' offsets
 * (shifted by the entries of the rows before its range) and its entries; rank 0 the final
 * offset. The ranges were checked to cover [0, nusers) once. */
imf_status ckpt_put_x(const io_ctx *c, const imf_ease_rows *x, int64_t nusers, int64_t nnz) {
  imf_status st = IMF_OK;
  int64_t nr = x->hi - x->lo, mine[2] = {x->lo, nr > 0 ? x->ptr[nr] : 0}, off = 0;
  int64_t *all = NULL, *gp = NULL;
  hid_t d = -1;
  st = imf_alloc(&all, 2 * (size_t)c->size, sizeof *all);
  if (st == IMF_OK) st = imf_alloc(&gp, (size_t)(nr > 0 ? nr : 1), sizeof *gp);
  IMF_TRY(imf_agree(c->comm, st), out);
  IMF_MPI_TRY(MPI_Allgather(mine, 2, MPI_INT64_T, all, 2, MPI_INT64_T, c->comm), out);
  for (int r = 0; r < c->size; r++)
    if (all[2 * r] < x->lo) off += all[2 * r + 1];
  for (int64_t r = 0; r < nr; r++) gp[r] = off + x->ptr[r];
  IMF_TRY(imf_agree(c->comm, create_1d(c, "/ease/x_ptr", H5T_STD_I64LE, nusers + 1, &d)), out);
  st = io_1d(c, d, H5T_NATIVE_INT64, 8, x->lo, nr, gp, 1, "/ease/x_ptr");
  IMF_TRY(imf_agree(c->comm, st), out);
  st = io_1d(c, d, H5T_NATIVE_INT64, 8, nusers, c->rank == 0 ? 1 : 0, &nnz, 1, "/ease/x_ptr");
  IMF_TRY(imf_agree(c->comm, st), out);
  H5Dclose(d);
  d = -1;
  IMF_TRY(imf_agree(c->comm, create_1d(c, "/ease/x_idx", H5T_STD_I32LE, nnz, &d)), out);
  st = io_1d(c, d, H5T_NATIVE_INT32, 4, off, mine[1], x->idx, 1, "/ease/x_idx");
  st = imf_agree(c->comm, st);
out:
  if (d >= 0 && H5Dclose(d) < 0 && st == IMF_OK)
    st = IMF_RAISE(IMF_ERR_RUNTIME, "%s: cannot write the EASE X: %s", c->path, imf_h5_reason());
  imf_free(&all);
  imf_free(&gp);
  return st;
}

/* (local) Open 1-d dataset `name` and check its length; -1 (with an error raised) otherwise. */
static hid_t open_1d(const io_ctx *c, const char *name, int64_t n, imf_status *st) {
  hid_t d = H5Dopen2(c->f, name, H5P_DEFAULT);
  hid_t fs = d < 0 ? -1 : H5Dget_space(d);
  hsize_t dims = 0;
  int ok = fs >= 0 && H5Sget_simple_extent_ndims(fs) == 1 && H5Sget_simple_extent_dims(fs, &dims, NULL) >= 0 &&
           dims == (hsize_t)n;
  if (fs >= 0) H5Sclose(fs);
  if (!ok) {
    if (d >= 0) H5Dclose(d);
    H5Eclear2(H5E_DEFAULT);
    *st = IMF_RAISE(IMF_ERR_INPUT, "%s is corrupt: dataset %s is missing or not of %lld elements",
                        c->path, name, (long long)n);
    return -1;
  }
  return d;
}

/* The P file of an EASE state (docs/FORMAT.md, "EASE P file"): /P (n x n f64, block-cyclic as
 * the version's matrices) and the attributes format, ease_items, lambda and ease_p_hash. */
#define IMF_EASE_P_FORMAT "incremf-ease-p"

/* Collective: write in->ease_p_file into the directory of version path vpath, unless a file of
 * that name (content-addressed: the same P) is there already. tmp name, flush, fsync, rename,
 * fsync of the directory, like a version. Test hook: IMF_FAULT=ease-p-before-rename. */
imf_status ckpt_write_p_file(MPI_Comm comm, const char *vpath, const imf_ckpt_info *in, imf_ease *e) {
  int rank, size;
  IMF_MPI(MPI_Comm_rank(comm, &rank));
  IMF_MPI(MPI_Comm_size(comm, &size));
  char dir[4200], path[4300], tmp[4310];
  imf_parent_dir(vpath, dir, sizeof dir);
  snprintf(path, sizeof path, "%s/%s", dir, in->ease_p_file);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  int have = rank == 0 && access(path, F_OK) == 0;
  IMF_MPI(MPI_Bcast(&have, 1, MPI_INT, 0, comm));
  if (have) return IMF_OK;
  imf_status st = IMF_OK;
  double n = (double)in->ease_items;
  if (rank == 0) st = imf_fs_need_space(dir, tmp, 8.0 * n * n + 65536.0);
  IMF_CHECK(imf_agree(comm, st));
  hid_t fapl = imf_h5_fapl_mpio(comm, 1);
  hid_t f = fapl < 0 ? -1 : H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  if (f < 0) imf_h5_reason();
  if (fapl >= 0) H5Pclose(fapl);
  if (f < 0) st = IMF_RAISE(IMF_ERR_RUNTIME, "%s: cannot create: %s", tmp, imf_h5_last());
  st = imf_agree(comm, st);
  if (st == IMF_OK) {
    io_ctx c = {comm, rank, size, f, imf_h5_dxpl(1), tmp, NULL, NULL};
    st = imf_agree(comm, ckpt_put_bc(&c, "/P", H5T_IEEE_F64LE, e, imf_ease_p(e)));
    if (st == IMF_OK) st = imf_h5_attr_str(f, "format", IMF_EASE_P_FORMAT, tmp);
    if (st == IMF_OK) st = imf_h5_attr_i64(f, "ease_items", in->ease_items, tmp);
    if (st == IMF_OK) st = imf_h5_attr_f64(f, "lambda", in->lambda, tmp);
    if (st == IMF_OK) st = imf_h5_attr_str(f, "ease_p_hash", in->ease_p_hash, tmp);
    if (st == IMF_OK && H5Fflush(f, H5F_SCOPE_GLOBAL) < 0)
      st = IMF_RAISE(IMF_ERR_RUNTIME, "%s: cannot flush: %s", tmp, imf_h5_reason());
    st = imf_agree(comm, st);
    H5Pclose(c.dxpl);
  }
  if (f >= 0 && H5Fclose(f) < 0 && st == IMF_OK)
    st = IMF_RAISE(IMF_ERR_RUNTIME, "%s: cannot close: %s", tmp, imf_h5_reason());
  st = imf_agree(comm, st);
  if (rank == 0 && st == IMF_OK) {
    st = imf_fsync_path(tmp, 0);
    if (st == IMF_OK && imf_fault("ease-p-before-rename"))
      st = IMF_RAISE(IMF_ERR_RUNTIME, "injected fault (IMF_FAULT=ease-p-before-rename): %s not renamed to %s", tmp, path);
    else if (st == IMF_OK && rename(tmp, path) != 0)
      st = IMF_RAISE(IMF_ERR_RUNTIME, "cannot rename %s to %s: %s", tmp, path,
                         strerror(errno));
    if (st == IMF_OK) st = imf_fsync_path(dir, 1);
  }
  if (rank == 0 && st != IMF_OK) unlink(tmp);
  return imf_agree(comm, st);
}

imf_status imf_checkpoint_read_ease(MPI_Comm comm, const char *path, int want, int grid, imf_ease **out) {
  *out = NULL;
  int rank, size;
  header h;
  imf_status st = IMF_OK;
  const imf_ckpt_info *in = &h.info;
  imf_ease *e = NULL;
  hid_t f = -1;
  IMF_MPI_TRY(MPI_Comm_rank(comm, &rank), fail);
  IMF_MPI_TRY(MPI_Comm_size(comm, &size), fail);
  IMF_TRY(ckpt_header_bcast(comm, rank, path, &h), fail);
  if (in->type != IMF_MODEL_EASE || in->ease_items <= 0)
    IMF_TRY(IMF_RAISE(IMF_ERR_INPUT, "%s holds no EASE state (%s; a version written before incremf stored the Gram matrix "
                      "must be retrained)", path, in->type != IMF_MODEL_EASE ? "not an EASE model" : "no /ease group"), fail);
  if (((want & IMF_CKPT_EASE_GRAM) && !in->ease_has_gram) || ((want & IMF_CKPT_EASE_B) && !in->ease_has_b))
    IMF_TRY(IMF_RAISE(IMF_ERR_INPUT, "%s holds no EASE %s", path,
                      (want & IMF_CKPT_EASE_GRAM) && !in->ease_has_gram ? "Gram matrix" : "B"), fail);
  IMF_TRY(want & IMF_CKPT_EASE_GRAM ? imf_ease_create(comm, in->ease_items, in->lambda, grid, &e)
                                    : imf_ease_create_empty(comm, in->ease_items, in->lambda, grid, &e), fail);
  if (want & IMF_CKPT_EASE_B) st = imf_ease_alloc_b(e);
  IMF_TRY(imf_agree(comm, st), fail);
  st = ckpt_open_ro(comm, path, &f);
  if (st != IMF_OK) {
    if (f >= 0) H5Fclose(f);
    goto fail;
  }
  {
    io_ctx c = {comm, rank, size, f, imf_h5_dxpl(1), path, NULL, NULL};
    if (want & IMF_CKPT_EASE_GRAM) st = ckpt_get_bc(&c, "/ease/gram", e, imf_ease_gram(e));
    if (st == IMF_OK && (want & IMF_CKPT_EASE_B)) st = ckpt_get_bc(&c, "/ease/BT", e, imf_ease_b(e));
    H5Pclose(c.dxpl);
    H5Fclose(f);
    H5Eclear2(H5E_DEFAULT);
  }
  IMF_TRY(st, fail);
  for (int which = 0; which < 2; which++) {
    if (!(want & (which ? IMF_CKPT_EASE_B : IMF_CKPT_EASE_GRAM))) continue;
    char hex[33];
    IMF_TRY(imf_ease_hash(e, which, hex), fail);
    if (strcmp(hex, which ? in->ease_b_hash : in->ease_gram_hash) != 0) {
      st = IMF_RAISE(IMF_ERR_INPUT, "%s is corrupt: its EASE %s does not match its hash", path, which ? "B" : "Gram matrix");
      imf_err_set_advice("restore an earlier version with `incremf rollback`");
      goto fail;
    }
  }
  *out = e;
  return IMF_OK;
fail:
  imf_ease_destroy(&e);
  return st;
}

imf_status imf_checkpoint_read_ease_p(MPI_Comm comm, const char *path, int grid, imf_ease **out) {
  *out = NULL;
  int rank, size;
  IMF_MPI(MPI_Comm_rank(comm, &rank));
  IMF_MPI(MPI_Comm_size(comm, &size));
  header h;
  IMF_CHECK(ckpt_header_bcast(comm, rank, path, &h));
  const imf_ckpt_info *in = &h.info;
  if (in->type != IMF_MODEL_EASE || in->ease_items <= 0 || !in->ease_p_file[0])
    IMF_FAIL(IMF_ERR_NOTFOUND, "%s references no EASE P file", path);
  char dir[4200], pp[4300];
  imf_parent_dir(path, dir, sizeof dir);
  snprintf(pp, sizeof pp, "%s/%s", dir, in->ease_p_file);
  int have = rank == 0 && access(pp, R_OK) == 0;
  IMF_MPI(MPI_Bcast(&have, 1, MPI_INT, 0, comm));
  if (!have) IMF_FAIL(IMF_ERR_NOTFOUND, "%s: its EASE P file %s is gone (pruned)", path, pp);
  imf_status st = IMF_OK;
  imf_ease *e = NULL;
  hid_t f = -1;
  IMF_CHECK(ckpt_open_ro(comm, pp, &f));
  int64_t n = 0;
  double lambda = 0;
  char *fmt = NULL, *hash = NULL;
  int ok = imf_h5_attr_get_str(f, "format", &fmt) == 1 && imf_h5_attr_get_num(f, "ease_items", H5T_NATIVE_INT64, &n) == 1 &&
           imf_h5_attr_get_num(f, "lambda", H5T_NATIVE_DOUBLE, &lambda) == 1 && imf_h5_attr_get_str(f, "ease_p_hash", &hash) == 1 &&
           !strcmp(fmt, IMF_EASE_P_FORMAT) && n == in->ease_items && lambda == in->lambda &&
           !strcmp(hash, in->ease_p_hash);
  free(fmt);
  free(hash);
  if (!ok) st = IMF_RAISE(IMF_ERR_INPUT, "%s does not match %s (not its P file)", pp, path);
  if (st == IMF_OK) st = imf_ease_create_empty(comm, n, lambda, grid, &e);
  if (st == IMF_OK) st = imf_agree(comm, imf_ease_alloc_p(e));
  if (st == IMF_OK) {
    io_ctx c = {comm, rank, size, f, imf_h5_dxpl(1), pp, NULL, NULL};
    st = ckpt_get_bc(&c, "/P", e, imf_ease_p(e));
    H5Pclose(c.dxpl);
  }
  H5Fclose(f);
  H5Eclear2(H5E_DEFAULT);
  st = imf_agree(comm, st);
  char hex[33];
  if (st == IMF_OK) st = imf_ease_hash(e, 2, hex);
  if (st == IMF_OK && strcmp(hex, in->ease_p_hash) != 0)
    st = IMF_RAISE(IMF_ERR_INPUT, "%s is corrupt: its P does not match its hash", pp);
  if (st != IMF_OK) {
    imf_ease_destroy(&e);
    return st;
  }
  *out = e;
  return IMF_OK;
}

/* (local) Rows of x: items in [0, nitems), strictly ascending. */
static int rows_valid(const imf_ease_rows *x, int64_t nitems) {
  for (int64_t r = 0; r < x->hi - x->lo; r++)
    for (int64_t q = x->ptr[r]; q < x->ptr[r + 1]; q++)
      if (x->idx[q] < 0 || x->idx[q] >= nitems || (q > x->ptr[r] && x->idx[q] <= x->idx[q - 1])) return 0;
  return 1;
}

/* Collective: rows [clo, chi) of X from the replicated form's /factors/P (nusers x nitems f32),
 * a round of rows at a time, into x (whose range contains [clo, chi)). */
static imf_status x_from_factors(const io_ctx *c, int64_t nitems, int64_t clo, int64_t chi, imf_ease_rows *x) {
  imf_status st = IMF_OK;
  hid_t d = H5Dopen2(c->f, "/factors/P", H5P_DEFAULT);
  hid_t fs = d < 0 ? -1 : H5Dget_space(d);
  float *buf = NULL;
  int64_t per = ckpt_io_chunk() / (4 * nitems), rounds, cap = 0, w = 0;
  if (per < 1) per = 1;
  rounds = (chi - clo + per - 1) / per;
  if (fs < 0) {
    H5Eclear2(H5E_DEFAULT);
    st = IMF_RAISE(IMF_ERR_INPUT, "%s is corrupt: dataset /factors/P is missing", c->path);
  }
  if (st == IMF_OK) st = imf_alloc_nz(&buf, (size_t)(per < chi - clo ? per : (chi > clo ? chi - clo : 1)) * (size_t)nitems,
                                      sizeof *buf);
  IMF_TRY(imf_agree(c->comm, st), out);
  IMF_MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, &rounds, 1, MPI_INT64_T, MPI_MAX, c->comm), out);
  for (int64_t t = 0; t < rounds; t++) {
    int64_t a = clo + t * per, b = a + per < chi ? a + per : chi, cnt = b > a ? b - a : 0;
    hid_t ms = -1;
    herr_t e = imf_h5_select_rows(fs, 2, a, cnt, nitems, &ms);
    if (e >= 0) e = H5Dread(d, H5T_NATIVE_FLOAT, ms, fs, c->dxpl, buf);
    if (e < 0) imf_h5_reason();
    if (ms >= 0) H5Sclose(ms);
    if (e < 0)
      st = IMF_RAISE(IMF_ERR_INPUT, "%s is not a readable HDF5 file (truncated or corrupt?): "
                         "reading /factors/P: %s", c->path, imf_h5_last());
    for (int64_t u = a; u < b && st == IMF_OK; u++) {
      const float *row = buf + (size_t)(u - a) * (size_t)nitems;
      for (int64_t i = 0; i < nitems && st == IMF_OK; i++) {
        if (row[i] == 0.0f) continue;
        if (w == cap) {
          cap = cap ? 2 * cap : 1024;
          st = imf_realloc(&x->idx, (size_t)cap, sizeof *x->idx);
        }
        if (st == IMF_OK) x->idx[w++] = (int32_t)i;
      }
      x->ptr[u - x->lo + 1] = w;
    }
    IMF_TRY(imf_agree(c->comm, st), out);
  }
  for (int64_t u = chi; u < x->hi; u++) x->ptr[u - x->lo + 1] = w;
out:
  imf_free(&buf);
  if (fs >= 0) H5Sclose(fs);
  if (d >= 0) H5Dclose(d);
  H5Eclear2(H5E_DEFAULT);
  return st;
}

imf_status imf_checkpoint_read_ease_x(MPI_Comm comm, const char *path, int64_t lo, int64_t hi, imf_ease_rows *out) {
  memset(out, 0, sizeof *out);
  int rank, size;
  header h;
  imf_status st = IMF_OK;
  const imf_ckpt_info *in = &h.info;
  int64_t *gp = NULL;
  hid_t f = -1;
  int legacy = 0;
  int64_t N = 0, ni = 0, nnz = 0, clo = 0, chi = 0;
  IMF_MPI_TRY(MPI_Comm_rank(comm, &rank), fail);
  IMF_MPI_TRY(MPI_Comm_size(comm, &size), fail);
  IMF_TRY(ckpt_header_bcast(comm, rank, path, &h), fail);
  legacy = !in->ease_has_x;
  if (in->type != IMF_MODEL_EASE || (legacy && in->kw != in->nitems))
    IMF_TRY(IMF_RAISE(IMF_ERR_INPUT, "%s holds no EASE X (%s)", path,
                      in->type != IMF_MODEL_EASE ? "not an EASE model" : "neither sparse nor in factor form"), fail);
  IMF_TRY(imf_agree(comm, hi < lo ? IMF_RAISE(IMF_ERR_USAGE, "bad user range [%lld, %lld)",
                                                   (long long)lo, (long long)hi)
                                   : IMF_OK), fail);
  N = in->nusers;
  ni = in->nitems;
  nnz = in->ease_x_nnz;
  IMF_TRY(imf_ease_rows_cover(comm, lo, hi, N), fail);
  clo = lo < 0 ? 0 : lo > N ? N : lo;
  chi = hi < 0 ? 0 : hi > N ? N : hi;
  if (chi < clo) chi = clo;
  out->lo = lo;
  out->hi = hi;
  st = imf_alloc(&out->ptr, (size_t)(hi - lo) + 1, sizeof *out->ptr);
  if (st == IMF_OK && !legacy) st = imf_alloc(&gp, (size_t)(chi - clo) + 1, sizeof *gp);
  IMF_TRY(imf_agree(comm, st), fail);
  st = ckpt_open_ro(comm, path, &f);
  if (st != IMF_OK) {
    if (f >= 0) H5Fclose(f);
    goto fail;
  }
  {
    io_ctx c = {comm, rank, size, f, imf_h5_dxpl(1), path, NULL, NULL};
    if (legacy) {
      st = x_from_factors(&c, ni, clo, chi, out);
    } else {
      hid_t dp = open_1d(&c, "/ease/x_ptr", N + 1, &st), dx = -1;
      if (st == IMF_OK) dx = open_1d(&c, "/ease/x_idx", nnz, &st);
      st = imf_agree(comm, st);
      /* the rows' offsets (one more than the rows: neighbours read a shared boundary) */
      if (st == IMF_OK) st = imf_agree(comm, io_1d(&c, dp, H5T_NATIVE_INT64, 8, clo, chi - clo + 1, gp, 0, "/ease/x_ptr"));
      int64_t base = gp ? gp[0] : 0, cnt = gp ? gp[chi - clo] - gp[0] : 0;
      if (st == IMF_OK) {
        int ok = base >= 0 && gp[chi - clo] <= nnz && (clo > 0 || base == 0) && (chi < N || gp[chi - clo] == nnz);
        for (int64_t r = 0; r < chi - clo && ok; r++) ok = gp[r] <= gp[r + 1];
        if (!ok) st = IMF_RAISE(IMF_ERR_INPUT, "%s is corrupt: the offsets of its EASE X are "
                                    "not increasing from 0 to ease_x_nnz", path);
        if (st == IMF_OK) st = imf_alloc_nz(&out->idx, (size_t)(cnt > 0 ? cnt : 1), sizeof *out->idx);
        st = imf_agree(comm, st);
      }
      if (st == IMF_OK)
        st = imf_agree(comm, io_1d(&c, dx, H5T_NATIVE_INT32, 4, base, cnt, out->idx, 0, "/ease/x_idx"));
      if (st == IMF_OK) {
        for (int64_t u = lo; u < hi; u++)
          out->ptr[u - lo + 1] = u < clo ? 0 : u < chi ? gp[u - clo + 1] - base : cnt;
      }
      if (dp >= 0) H5Dclose(dp);
      if (dx >= 0) H5Dclose(dx);
    }
    H5Pclose(c.dxpl);
    H5Fclose(f);
    H5Eclear2(H5E_DEFAULT);
  }
  IMF_TRY(st, fail);
  if (!legacy) {
    st = rows_valid(out, ni) ? IMF_OK
                             : IMF_RAISE(IMF_ERR_INPUT, "%s is corrupt: a row of its EASE X is "
                                             "not ascending items below %lld", path, (long long)ni);
    IMF_TRY(imf_agree(comm, st), fail);
    char hex[33];
    int64_t got = 0;
    IMF_TRY(imf_ease_rows_hash(comm, out, ni, &got, hex), fail);
    if (got != nnz || strcmp(hex, in->ease_x_hash) != 0) {
      st = IMF_RAISE(IMF_ERR_INPUT, "%s is corrupt: its EASE X does not match its hash", path);
      imf_err_set_advice("restore an earlier version with `incremf rollback`");
      goto fail;
    }
  }
  if (!out->idx) IMF_TRY(imf_agree(comm, imf_alloc(&out->idx, 1, sizeof *out->idx)), fail);
  imf_free(&gp);
  return IMF_OK;
fail:
  imf_free(&gp);
  imf_ease_rows_free(out);
  return st;
}
