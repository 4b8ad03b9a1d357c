/* checkpoint_sums.c - the per-item normal-equation sums (itemsums.h) an ALS version carries so
 * that the next fold-in re-solves its touched items without reading their histories (issue 24;
 * docs/FORMAT.md, "Model checkpoints"). Stored as /itemsums/A (items x d(d+1)/2, f64, packed
 * upper), /itemsums/b (items x d, f64) and /itemsums/n (items, i64), each rank writing its
 * range; the group's attributes say what the sums were taken against (d, mu) and hold their
 * order-free checksum (imf_itemsums_hash), which a reader recomputes. They are derived data:
 * a version without them (older, rewritten by `forget`, or written with update.item_sums = no)
 * is read as IMF_ERR_NOTFOUND and the fold-in reads the items' histories instead. PRIVATE
 * helpers: checkpoint_impl.h. */
#include "checkpoint_impl.h"
#include "error.h"
#include "fsio.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Collective: this rank's range of s into the open file, the ranks' ranges tiling [0, nitems). */
imf_status ckpt_put_itemsums(const io_ctx *c, const imf_itemsums *s, int64_t nitems) {
  int64_t *start = NULL, mine[2] = {s->lo, s->hi};
  imf_status st = imf_alloc(&start, 2 * (size_t)c->size + 2, sizeof *start);
  IMF_CHECK(imf_agree(c->comm, st));
  int rc = MPI_Allgather(mine, 2, MPI_INT64_T, start + 2, 2, MPI_INT64_T, c->comm);
  if (rc != MPI_SUCCESS) st = IMF_MPI_RAISE(rc, "MPI_Allgather (item sums ranges)");
  /* start[r] = rank r's lo; the ranges must follow each other from 0 to nitems */
  for (int r = 0; st == IMF_OK && r < c->size; r++) {
    const int64_t lo = start[2 + 2 * r], hi = start[3 + 2 * r];
    if (lo != (r ? start[1 + 2 * r] : 0) || hi < lo || (r == c->size - 1 && hi != nitems))
      st = IMF_RAISE(IMF_ERR_RUNTIME, "%s: the ranks' item sums do not tile the %lld items", c->path,
                     (long long)nitems);
  }
  for (int r = 0; st == IMF_OK && r < c->size; r++) start[r] = start[2 + 2 * r];
  start[c->size] = nitems;
  uint64_t h = imf_itemsums_hash(s, s->lo, s->hi);
  if (st == IMF_OK) {
    rc = MPI_Allreduce(MPI_IN_PLACE, &h, 1, MPI_UINT64_T, MPI_SUM, c->comm);
    if (rc != MPI_SUCCESS) st = IMF_MPI_RAISE(rc, "MPI_Allreduce (item sums checksum)");
  }
  const hid_t F64 = H5T_IEEE_F64LE, ND = H5T_NATIVE_DOUBLE;
  if (st == IMF_OK) st = ckpt_put_block(c, "/itemsums/A", F64, ND, 8, 2, nitems, (int64_t)s->tri, s->A, start);
  st = imf_agree(c->comm, st);
  if (st == IMF_OK) st = ckpt_put_block(c, "/itemsums/b", F64, ND, 8, 2, nitems, s->d, s->b, start);
  st = imf_agree(c->comm, st);
  if (st == IMF_OK)
    st = ckpt_put_block(c, "/itemsums/n", H5T_STD_I64LE, H5T_NATIVE_INT64, 8, 1, nitems, 1, s->n, start);
  st = imf_agree(c->comm, st);
  imf_free(&start);
  if (st != IMF_OK) return st;
  hid_t g = H5Gopen2(c->f, "/itemsums", H5P_DEFAULT);
  char hex[17];
  snprintf(hex, sizeof hex, "%016" PRIx64, h);
  if (g < 0) st = IMF_RAISE(IMF_ERR_RUNTIME, "%s: no group /itemsums after writing it: %s", c->path, imf_h5_reason());
  if (st == IMF_OK) st = imf_h5_attr_i64(g, "d", s->d, c->path);
  if (st == IMF_OK) st = imf_h5_attr_i64(g, "implicit", s->implicit, c->path);
  if (st == IMF_OK) st = imf_h5_attr_f64(g, "mu", s->mu, c->path);
  if (st == IMF_OK) st = imf_h5_attr_f64(g, "alpha", s->alpha, c->path);
  if (st == IMF_OK) st = imf_h5_attr_str(g, "checksum", hex, c->path);
  if (g >= 0) H5Gclose(g);
  return imf_agree(c->comm, st);
}

/* The group's attributes, checked against m: *stored the rows it holds. */
static imf_status sums_header(hid_t f, const char *path, const imf_model *m, int64_t *stored, char hex[17]) {
  hid_t g = H5Gopen2(f, "/itemsums", H5P_DEFAULT);
  if (g < 0) IMF_FAIL(IMF_ERR_INPUT, "%s is corrupt: /itemsums cannot be opened", path);
  int64_t d = -1, implicit = -1;
  double mu = NAN;
  int ok = imf_h5_attr_get_num(g, "d", H5T_NATIVE_INT64, &d) == 1 &&
           imf_h5_attr_get_num(g, "implicit", H5T_NATIVE_INT64, &implicit) == 1 &&
           imf_h5_attr_get_num(g, "mu", H5T_NATIVE_DOUBLE, &mu) == 1;
  imf_h5_attr_text(g, "checksum", hex, 17);
  H5Gclose(g);
  *stored = imf_h5_len_at(f, "/itemsums/n");
  if (!ok || !hex[0] || *stored < 0) IMF_FAIL(IMF_ERR_INPUT, "%s is corrupt: /itemsums lacks its attributes", path);
  const int want_implicit = m->type == IMF_MODEL_IALS;
  const int64_t want_d = m->k + (!want_implicit && m->with_bias);
  if (d != want_d || implicit != want_implicit || mu != m->mu || *stored > m->nitems)
    IMF_FAIL(IMF_ERR_INPUT, "%s: its item sums were taken against another model's shape", path);
  return IMF_OK;
}

/* Rows [lo, hi) of 2-d dataset name (ncols doubles or one int64 a row) into buf, in rounds of
 * at most ckpt_io_chunk() bytes; rounds: the most any rank needs (collective transfers). */
static imf_status get_range(hid_t f, hid_t dxpl, const char *path, const char *name, int nd, int64_t ncols,
                            hid_t mtype, int64_t lo, int64_t hi, int64_t per, int64_t rounds, void *buf) {
  hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
  hid_t fs = d < 0 ? -1 : H5Dget_space(d);
  herr_t e = fs < 0 ? -1 : 0;
  static char dummy[64];
  for (int64_t t = 0; t < rounds && e >= 0; t++) {
    int64_t a = lo + t * per, b = a + per < hi ? a + per : hi, cnt = b > a ? b - a : 0;
    hid_t ms = -1;
    e = imf_h5_select_rows(fs, nd, a, cnt, ncols, &ms);
    void *p = cnt ? (char *)buf + (size_t)(a - lo) * (size_t)ncols * 8 : (void *)dummy;
    if (e >= 0) e = H5Dread(d, mtype, ms, fs, dxpl, p);
    if (ms >= 0) H5Sclose(ms);
  }
  if (e < 0) imf_h5_reason();
  if (fs >= 0) H5Sclose(fs);
  if (d >= 0) H5Dclose(d);
  if (e < 0) IMF_FAIL(IMF_ERR_INPUT, "%s is corrupt: reading %s: %s", path, name, imf_h5_last());
  return IMF_OK;
}

imf_status imf_checkpoint_read_itemsums(MPI_Comm comm, const char *path, const imf_model *m, int64_t lo, int64_t hi,
                                        imf_itemsums **out) {
  *out = NULL;
  hid_t f = -1;
  imf_h5_quiet();
  IMF_CHECK(ckpt_open_ro(comm, path, &f));
  int size;
  MPI_Comm_size(comm, &size);
  imf_status st = H5Lexists(f, "/itemsums", H5P_DEFAULT) > 0 ? IMF_OK
                      : IMF_RAISE(IMF_ERR_NOTFOUND, "%s carries no per-item sums", path);
  int64_t stored = 0;
  char hex[17] = "";
  if (st == IMF_OK) st = sums_header(f, path, m, &stored, hex);
  if (st == IMF_OK) st = imf_itemsums_create(m, lo, hi, out);
  st = imf_agree(comm, st);
  hid_t dxpl = imf_h5_dxpl(1);
  if (st == IMF_OK) {
    const imf_itemsums *s = *out;
    const int64_t rhi = hi < stored ? hi : stored, rlo = lo < rhi ? lo : rhi;
    int64_t per = ckpt_io_chunk() / (int64_t)(s->tri * 8), most = rhi - rlo, rounds;
    if (per < 1) per = 1;
    MPI_Allreduce(MPI_IN_PLACE, &most, 1, MPI_INT64_T, MPI_MAX, comm);
    rounds = (most + per - 1) / per;
    st = get_range(f, dxpl, path, "/itemsums/A", 2, (int64_t)s->tri, H5T_NATIVE_DOUBLE, rlo, rhi, per, rounds, s->A);
    st = imf_agree(comm, st);
    if (st == IMF_OK)
      st = get_range(f, dxpl, path, "/itemsums/b", 2, s->d, H5T_NATIVE_DOUBLE, rlo, rhi, per, rounds, s->b);
    st = imf_agree(comm, st);
    if (st == IMF_OK) st = get_range(f, dxpl, path, "/itemsums/n", 1, 1, H5T_NATIVE_INT64, rlo, rhi, per, rounds, s->n);
    st = imf_agree(comm, st);
    uint64_t h = imf_itemsums_hash(s, rlo, rhi);
    if (st == IMF_OK) MPI_Allreduce(MPI_IN_PLACE, &h, 1, MPI_UINT64_T, MPI_SUM, comm);
    char got[17];
    snprintf(got, sizeof got, "%016" PRIx64, h);
    if (st == IMF_OK && strcmp(got, hex) != 0)
      st = IMF_RAISE(IMF_ERR_INPUT, "%s: its item sums do not match their checksum (damaged)", path);
  }
  H5Pclose(dxpl);
  H5Fclose(f);
  H5Eclear2(H5E_DEFAULT);
  if (st != IMF_OK) imf_itemsums_destroy(out);
  return imf_agree(comm, st);
}

imf_status imf_checkpoint_read_itemsums_counts(MPI_Comm comm, const char *path, const imf_model *m, int64_t **n,
                                               int64_t *stored) {
  *n = NULL;
  *stored = 0;
  hid_t f = -1;
  imf_h5_quiet();
  IMF_CHECK(ckpt_open_ro(comm, path, &f));
  imf_status st = H5Lexists(f, "/itemsums", H5P_DEFAULT) > 0 ? IMF_OK
                      : IMF_RAISE(IMF_ERR_NOTFOUND, "%s carries no per-item sums", path);
  char hex[17] = "";
  if (st == IMF_OK) st = sums_header(f, path, m, stored, hex);
  if (st == IMF_OK) st = imf_alloc(n, (size_t)*stored + 1, sizeof **n);
  st = imf_agree(comm, st);
  if (st == IMF_OK) { /* every rank reads the counts (8 bytes an item): each needs all of them */
    hid_t dxpl = imf_h5_dxpl(0);
    st = get_range(f, dxpl, path, "/itemsums/n", 1, 1, H5T_NATIVE_INT64, 0, *stored, *stored ? *stored : 1,
                   *stored ? 1 : 0, *n);
    H5Pclose(dxpl);
    for (int64_t j = 0; st == IMF_OK && j < *stored; j++)
      if ((*n)[j] < 0) st = IMF_RAISE(IMF_ERR_INPUT, "%s: item %lld has %lld raters in its sums", path, (long long)j,
                                      (long long)(*n)[j]);
  }
  H5Fclose(f);
  H5Eclear2(H5E_DEFAULT);
  st = imf_agree(comm, st);
  if (st != IMF_OK) imf_free(n);
  return st;
}
