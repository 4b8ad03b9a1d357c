/* modelblock.c - block models (modelblock.h): the ranks' blocks agreed on and checked (one
 * allgather of a few numbers per rank), a block model gathered into a replicated one (the rows
 * move through exchange.c's imf_allgather_rows) and a replicated model cut into a block. */
#include "modelblock.h"
#include "error.h"
#include "exchange.h"

#include <string.h>

/* What each rank tells the others about its model: whether it is a block model, its blocks, and
 * its shape (which must be the same everywhere, or the collectives on its rows would not match). */
enum { D_BLOCKED, D_ULO, D_UHI, D_ILO, D_IHI, D_NU, D_NI, D_K, D_KW, D_ARRAYS, ND };

static void block_desc(const imf_model *m, int64_t d[ND]) {
  memset(d, 0, ND * sizeof *d);
  d[D_BLOCKED] = m->blocked != 0;
  if (m->blocked) {
    d[D_ULO] = m->ublock[0];
    d[D_UHI] = m->ublock[1];
    d[D_ILO] = m->iblock[0];
    d[D_IHI] = m->iblock[1];
  }
  d[D_NU] = m->nusers;
  d[D_NI] = m->nitems;
  d[D_K] = m->k;
  d[D_KW] = m->kw;
  d[D_ARRAYS] = (int64_t)m->type << 8 | (m->with_bias != 0) | (m->bu != NULL) << 1 | (m->bi != NULL) << 2 |
                (m->chain.U != NULL) << 3 | (m->chain.V != NULL) << 4;
}

/* The blocks at offset off of every rank's description tile [0, n) in rank order: IMF_OK, or
 * the first place where they do not (the same message on every rank: all hold the same data). */
static imf_status tile_check(const int64_t *all, int size, int off, int64_t n, const char *what) {
  int64_t at = 0;
  for (int r = 0; r < size; r++) {
    const int64_t lo = all[(size_t)r * ND + off], hi = all[(size_t)r * ND + off + 1];
    if (lo != at || hi < lo || hi > n)
      IMF_FAIL(IMF_ERR_RUNTIME, "block model: rank %d holds the rows [%lld, %lld) of the %s, where row %lld was "
               "due: the ranks' blocks must tile the %lld %s in rank order", r, (long long)lo, (long long)hi, what,
               (long long)at, (long long)n, what);
    at = hi;
  }
  if (at != n)
    IMF_FAIL(IMF_ERR_RUNTIME, "block model: the ranks' %s blocks end at %lld, short of the %lld %s: they must "
             "tile them in rank order", what, (long long)at, (long long)n, what);
  return IMF_OK;
}

/* The gathered descriptions: one shape, and either no block model or blocks that tile. */
static imf_status blocks_check(const int64_t *all, int size) {
  for (int r = 1; r < size; r++) {
    if (memcmp(all + (size_t)r * ND + D_NU, all + D_NU, (ND - D_NU) * sizeof *all) != 0)
      IMF_FAIL(IMF_ERR_RUNTIME, "the model differs in shape between ranks (rank %d's and rank 0's)", r);
    if (all[(size_t)r * ND + D_BLOCKED] != all[D_BLOCKED])
      IMF_FAIL(IMF_ERR_RUNTIME, "the model is a block model on some ranks only (rank %d's %s, rank 0's %s)", r,
               all[(size_t)r * ND + D_BLOCKED] ? "is" : "is not", all[D_BLOCKED] ? "is" : "is not");
  }
  if (!all[D_BLOCKED]) return IMF_OK;
  IMF_CHECK(tile_check(all, size, D_ULO, all[D_NU], "users"));
  return tile_check(all, size, D_ILO, all[D_NI], "items");
}

imf_status imf_model_blocks(MPI_Comm comm, const imf_model *m, int64_t **ustart, int64_t **istart) {
  *ustart = *istart = NULL;
  int size = 0;
  int64_t mine[ND], *all = NULL, *us = NULL, *is = NULL;
  imf_status st = IMF_OK;
  IMF_MPI_TRY(MPI_Comm_size(comm, &size), out);
  block_desc(m, mine);
  st = imf_alloc(&all, (size_t)size * ND, sizeof *all);
  if (st == IMF_OK) st = imf_alloc(&us, (size_t)size + 1, sizeof *us);
  if (st == IMF_OK) st = imf_alloc(&is, (size_t)size + 1, sizeof *is);
  IMF_TRY(imf_agree(comm, st), out);
  IMF_MPI_TRY(MPI_Allgather(mine, ND, MPI_INT64_T, all, ND, MPI_INT64_T, comm), out);
  IMF_TRY(blocks_check(all, size), out);
  if (all[D_BLOCKED]) {
    for (int r = 0; r < size; r++) {
      us[r] = all[(size_t)r * ND + D_ULO];
      is[r] = all[(size_t)r * ND + D_ILO];
    }
    us[size] = all[D_NU];
    is[size] = all[D_NI];
    *ustart = us;
    *istart = is;
    us = is = NULL;
  }
out:
  imf_free(&all);
  imf_free(&us);
  imf_free(&is);
  return st;
}

/* (local) A copy of m without its rows (P, Q, the biases, chain U and V left NULL), not a block
 * model: imf_model_copy copies only the arrays that are there. */
static imf_status copy_rest(const imf_model *m, imf_model **out) {
  imf_model t = *m;
  t.P = t.Q = t.bu = t.bi = t.chain.U = t.chain.V = NULL;
  t.blocked = 0;
  t.ublock[0] = t.ublock[1] = t.iblock[0] = t.iblock[1] = 0;
  return imf_model_copy(&t, out);
}

/* (local) *dst: n rows of w floats, zero (at least one row, as imf_model_create's); hot: P and
 * Q, which training sweeps (imf_alloc_hot, as imf_model_create). */
static imf_status alloc_rows(float **dst, int64_t n, int w, int hot) {
  size_t cells;
  IMF_CHECK(imf_mul_size(n > 0 ? (size_t)n : 1, (size_t)w, &cells));
  return hot ? imf_alloc_hot(dst, cells, sizeof(float)) : imf_alloc(dst, cells, sizeof(float));
}

/* The six row arrays of a model (P, Q, bu, bi, chain U, V): side j % 2 (0 users, 1 items), w[j]
 * floats a row. */
#define NROWARR 6
static void row_arrays(imf_model *m, float **a[NROWARR], int w[NROWARR]) {
  float **p[NROWARR] = {&m->P, &m->Q, &m->bu, &m->bi, &m->chain.U, &m->chain.V};
  const int ws[NROWARR] = {m->kw, m->kw, 1, 1, m->k, m->k};
  memcpy(a, p, sizeof p);
  memcpy(w, ws, sizeof ws);
}

imf_status imf_model_gather(MPI_Comm comm, const imf_model *blk, imf_model **full) {
  *full = NULL;
  int64_t *start[2] = {NULL, NULL};
  imf_model *m = NULL;
  imf_status st = IMF_OK;
  IMF_TRY(imf_model_blocks(comm, blk, &start[0], &start[1]), out);
  if (!start[0]) {
    IMF_TRY(imf_agree(comm, imf_model_copy(blk, &m)), out);
  } else {
    IMF_TRY(imf_agree(comm, copy_rest(blk, &m)), out);
    float **dst[NROWARR];
    int w[NROWARR];
    row_arrays(m, dst, w);
    const float *src[NROWARR] = {blk->P, blk->Q, blk->bu, blk->bi, blk->chain.U, blk->chain.V};
    const int64_t n[2] = {blk->nusers, blk->nitems};
    for (int j = 0; j < NROWARR && st == IMF_OK; j++)
      if (src[j]) st = alloc_rows(dst[j], n[j % 2], w[j], j < 2);
    IMF_TRY(imf_agree(comm, st), out);
    /* blk's presence of each array is the same on every rank (imf_model_blocks checked it) */
    for (int j = 0; j < NROWARR; j++)
      if (src[j]) IMF_TRY(imf_agree(comm, imf_allgather_rows(comm, start[j % 2], src[j], *dst[j], w[j])), out);
  }
  *full = m;
  m = NULL;
out:
  imf_model_destroy(&m);
  imf_free(&start[0]);
  imf_free(&start[1]);
  return st;
}

imf_status imf_model_block_of(const imf_model *full, int64_t ulo, int64_t uhi, int64_t ilo, int64_t ihi,
                              imf_model **blk) {
  *blk = NULL;
  if (full->blocked) IMF_FAIL(IMF_ERR_USAGE, "the model is a block model already: gather it first (imf_model_gather)");
  if (ulo < 0 || uhi < ulo || uhi > full->nusers || ilo < 0 || ihi < ilo || ihi > full->nitems)
    IMF_FAIL(IMF_ERR_USAGE, "rows [%lld, %lld) of users and [%lld, %lld) of items are not within the model's %lld "
             "users and %lld items", (long long)ulo, (long long)uhi, (long long)ilo, (long long)ihi,
             (long long)full->nusers, (long long)full->nitems);
  imf_model *m = NULL;
  IMF_CHECK(copy_rest(full, &m));
  float **dst[NROWARR];
  int w[NROWARR];
  row_arrays(m, dst, w);
  const float *src[NROWARR] = {full->P, full->Q, full->bu, full->bi, full->chain.U, full->chain.V};
  const int64_t lo[2] = {ulo, ilo}, hi[2] = {uhi, ihi};
  imf_status st = IMF_OK;
  for (int j = 0; j < NROWARR && st == IMF_OK; j++) {
    if (!src[j]) continue;
    const int64_t n = hi[j % 2] - lo[j % 2];
    st = alloc_rows(dst[j], n, w[j], j < 2);
    if (st == IMF_OK && n > 0)
      memcpy(*dst[j], src[j] + (size_t)lo[j % 2] * (size_t)w[j], (size_t)n * (size_t)w[j] * sizeof(float));
  }
  if (st != IMF_OK) {
    imf_model_destroy(&m);
    return st;
  }
  m->blocked = 1;
  m->ublock[0] = ulo;
  m->ublock[1] = uhi;
  m->iblock[0] = ilo;
  m->iblock[1] = ihi;
  *blk = m;
  return IMF_OK;
}
