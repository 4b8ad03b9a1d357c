/* mpi_ease.c - EASE on ScaLAPACK (ease.h): the item-item matrix B computed on the block-cyclic
 * grid of P ranks (each rank contributing only its own users to G) matches a serial LAPACKE
 * computation on the full G (dpotrf + dpotri, same formula) to 1e-8 relative; repeated and
 * unsorted pairs count once; the model is a handle (k = 1) with X as sparse rows, and from B on a
 * 1 x P grid single rows score as x B (imf_ease_score_items) and items' nearest columns of B by
 * cosine (imf_ease_similar) match serial computations. Updates: a
 * Gram matrix grown for new items and changed by the difference of changed rows (added and
 * removed interactions, new users, a user emptied) equals X^T X of the new data bitwise, on the
 * sparse and on the dense path, and its re-solve matches serial B. Checkpoints: the state
 * written on 2 ranks (1 under np1) reads back bitwise on the world communicator (1, 2 or 3
 * ranks) and on a single rank, in both grid shapes; a changed element fails its hash; X stored
 * sparse reads back on any ranges of users (and from P in a version of the older replicated
 * form), a changed index fails its hash, ranges that do not cover the users are refused. Scoring:
 * B redistributed to 1 x P (bitwise the same B) gives each user's top K of x_u B over the items
 * they have not got — checked against serial scores — the same whether each rank passes its own
 * users or all of them. Run by
 * CTest at 1, 2, 3 ranks (1x1, 1x2, 1x3 grids); by hand at 4 ranks for a 2x2 grid. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <lapacke.h>
#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include "checkpoint.h"
#include "ease.h"
#include "error.h"
#include "split.h"
#include "testutil.h"
#include <hdf5.h>

/* x[u * ni + i] = 1 with probability dens (a hash, so the same matrix on every rank) */
static double *random_x(int64_t nu, int64_t ni, double dens, uint64_t seed) {
  double *x = calloc((size_t)(nu * ni), sizeof *x);
  for (int64_t u = 0; u < nu; u++)
    for (int64_t i = 0; i < ni; i++) x[u * ni + i] = imf_split_u01(seed, u, i) < dens ? 1.0 : 0.0;
  return x;
}

/* Serial reference: B column-major (B(i, j) at b[j * ni + i]). */
static double *serial_b(const double *x, int64_t nu, int64_t ni, double lambda) {
  double *g = calloc((size_t)(ni * ni), sizeof *g);
  for (int64_t u = 0; u < nu; u++)
    for (int64_t j = 0; j < ni; j++)
      if (x[u * ni + j] != 0)
        for (int64_t i = 0; i < ni; i++) g[j * ni + i] += x[u * ni + i];
  for (int64_t i = 0; i < ni; i++) g[i * ni + i] += lambda;
  assert_int_equal(LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', (int)ni, g, (int)ni), 0);
  assert_int_equal(LAPACKE_dpotri(LAPACK_COL_MAJOR, 'L', (int)ni, g, (int)ni), 0);
  for (int64_t j = 0; j < ni; j++)
    for (int64_t i = 0; i < j; i++) g[j * ni + i] = g[i * ni + j]; /* upper from lower */
  double *b = calloc((size_t)(ni * ni), sizeof *b);
  for (int64_t j = 0; j < ni; j++)
    for (int64_t i = 0; i < ni; i++) b[j * ni + i] = i == j ? 0.0 : -g[j * ni + i] / g[j * ni + j];
  free(g);
  return b;
}

/* This rank's ratings of users [lo, hi) of x; `messy` adds every pair twice, newest user first. */
static void local_ratings(const double *x, int64_t ni, int64_t lo, int64_t hi, int messy, imf_ratings *r) {
  memset(r, 0, sizeof *r);
  for (int64_t k = lo; k < hi; k++) {
    int64_t u = messy ? hi - 1 - (k - lo) : k;
    for (int rep = 0; rep < (messy ? 2 : 1); rep++)
      for (int64_t i = 0; i < ni; i++)
        if (x[u * ni + i] != 0)
          assert_int_equal(imf_ratings_push(r, (int32_t)u, (int32_t)i, 3.0f, IMF_NO_TIME), IMF_OK);
  }
}

static void check_case(int64_t nu, int64_t ni, double dens, double lambda, int messy) {
  double *x = random_x(nu, ni, dens, 7 + (uint64_t)ni);
  double *ref = serial_b(x, nu, ni, lambda);
  int64_t lo, hi;
  imf_user_range(MPI_COMM_WORLD, nu, &lo, &hi);
  imf_ratings r;
  local_ratings(x, ni, lo, hi, messy, &r);
  imf_ease *e = NULL;
  assert_int_equal(imf_ease_fit(MPI_COMM_WORLD, &r, ni, lambda, &e), IMF_OK);
  int size, pr, pc;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  imf_ease_grid(e, &pr, &pc);
  assert_int_equal(pr * pc, size);
  assert_true(pr <= pc);
  double *b = calloc((size_t)(ni * ni), sizeof *b);
  /* in two slabs, to exercise the column range */
  assert_int_equal(imf_ease_gather_cols(e, 0, ni / 3, b), IMF_OK);
  assert_int_equal(imf_ease_gather_cols(e, ni / 3, ni, b + (ni / 3) * ni), IMF_OK);
  double maxref = 0, maxdiff = 0;
  for (int64_t j = 0; j < ni * ni; j++) {
    if (fabs(ref[j]) > maxref) maxref = fabs(ref[j]);
    if (fabs(ref[j] - b[j]) > maxdiff) maxdiff = fabs(ref[j] - b[j]);
  }
  assert_true(maxref > 0);
  assert_true(maxdiff <= 1e-8 * maxref);
  for (int64_t i = 0; i < ni; i++) assert_true(b[i * ni + i] == 0.0);
  imf_ease_destroy(&e);

  /* the model is a handle; X comes as this rank's sparse rows */
  imf_model *m = NULL;
  imf_ease *st = NULL, *c = NULL;
  imf_ease_rows xr;
  assert_int_equal(imf_ease_model(MPI_COMM_WORLD, &r, lo, hi, nu, ni, lambda, &m, &st, &xr), IMF_OK);
  assert_int_equal(m->type, IMF_MODEL_EASE);
  assert_int_equal(m->k, 1);
  assert_int_equal(m->kw, 1);
  assert_int_equal(m->nusers, nu);
  assert_int_equal(m->nitems, ni);
  assert_false(m->with_bias);
  assert_true(m->mu == 0);
  assert_int_equal(xr.lo, lo);
  assert_int_equal(xr.hi, hi);
  for (int64_t u = lo; u < hi; u++) {
    int64_t q = xr.ptr[u - lo];
    for (int64_t i = 0; i < ni; i++)
      if (x[u * ni + i] != 0) assert_int_equal(xr.idx[q++], (int32_t)i);
    assert_int_equal(q, xr.ptr[u - lo + 1]);
  }
  /* from B on 1 x P: one row's scores (x B, every rank the same row), and nearest columns */
  assert_int_equal(imf_ease_to_columns(st, &c), IMF_OK);
  int32_t *items = calloc((size_t)ni + 2, sizeof *items), *xi = calloc((size_t)ni, sizeof *xi);
  double *sc = calloc((size_t)ni + 2, sizeof *sc);
  for (int64_t i = 0; i < ni; i++) items[i] = (int32_t)(ni - 1 - i);
  items[ni] = -1;
  items[ni + 1] = (int32_t)ni;
  for (int64_t u = 0; u < nu; u += 37) {
    int64_t nx = 0;
    for (int64_t i = 0; i < ni; i++)
      if (x[u * ni + i] != 0) xi[nx++] = (int32_t)i;
    assert_int_equal(imf_ease_score_items(c, nx, xi, (int)ni + 2, items, sc), IMF_OK);
    for (int64_t j = 0; j < ni; j++) {
      int64_t i = items[j];
      double s = 0;
      for (int64_t q = 0; q < ni; q++) s += x[u * ni + q] * ref[i * ni + q];
      assert_true(fabs(sc[j] - s) <= 1e-8 * (1 + fabs(s)));
    }
    assert_true(sc[ni] == 0 && sc[ni + 1] == 0);
  }
  const int K = 7;
  int32_t sit[7];
  float ssc[7];
  int cnt = 0;
  double *cs = calloc((size_t)ni, sizeof *cs);
  for (int64_t t = 0; t < ni; t += ni / 3) {
    assert_int_equal(imf_ease_similar(c, t, K, sit, ssc, &cnt), IMF_OK);
    assert_int_equal(cnt, K);
    double nt = 0;
    for (int64_t q = 0; q < ni; q++) nt += ref[t * ni + q] * ref[t * ni + q];
    for (int64_t j = 0; j < ni; j++) {
      double d = 0, nj = 0;
      for (int64_t q = 0; q < ni; q++) {
        d += ref[j * ni + q] * ref[t * ni + q];
        nj += ref[j * ni + q] * ref[j * ni + q];
      }
      cs[j] = j == t ? -INFINITY : d / (sqrt(nt) * sqrt(nj));
    }
    double kth = INFINITY; /* the K-th largest serial cosine */
    for (int a = 0; a < K; a++) {
      double best = -INFINITY;
      for (int64_t j = 0; j < ni; j++)
        if (cs[j] > best && cs[j] < kth) best = cs[j];
      kth = best;
    }
    for (int a = 0; a < K; a++) {
      assert_true(sit[a] >= 0 && sit[a] < ni && sit[a] != t);
      for (int q = 0; q < a; q++) assert_true(sit[q] != sit[a]);
      if (a > 0) assert_true(ssc[a] <= ssc[a - 1]);
      assert_true(fabs(ssc[a] - cs[sit[a]]) <= 1e-6);
      assert_true(cs[sit[a]] >= kth - 1e-9);
    }
  }
  free(cs);
  free(items);
  free(xi);
  free(sc);
  imf_ease_destroy(&c);
  imf_ease_destroy(&st);
  imf_ease_rows_free(&xr);
  imf_model_destroy(&m);
  imf_ratings_free(&r);
  free(b);
  free(ref);
  free(x);
}

static void test_matches_serial(void **state) {
  (void)state;
  check_case(300, 120, 0.1, 10.0, 0);
}

static void test_several_blocks(void **state) {
  (void)state;
  /* 203 items: 4 blocks of 64, the last one partial, so every grid shape has a ragged edge */
  check_case(300, 203, 0.15, 50.0, 0);
}

static void test_repeated_unsorted(void **state) {
  (void)state;
  check_case(300, 120, 0.1, 10.0, 1);
}

static void test_bad_lambda(void **state) {
  (void)state;
  imf_ratings r = {0};
  imf_ease *e = NULL;
  assert_int_equal(imf_ease_fit(MPI_COMM_WORLD, &r, 10, 0.0, &e), IMF_ERR_USAGE);
  assert_null(e);
}

/* ---- incremental Gram updates: exactly the Gram of all data ---- */

/* The users' rows of a binary matrix as CSR (rows lo..hi-1; rows >= nu are empty). */
static void rows_csr(const double *x, int64_t nu, int64_t ni, int64_t lo, int64_t hi, int64_t **ptr, int32_t **idx) {
  *ptr = calloc((size_t)(hi - lo + 1), sizeof **ptr);
  *idx = calloc((size_t)((hi - lo) * ni + 1), sizeof **idx);
  int64_t w = 0;
  for (int64_t u = lo; u < hi; u++) {
    if (u < nu)
      for (int64_t i = 0; i < ni; i++)
        if (x[u * ni + i] != 0) (*idx)[w++] = (int32_t)i;
    (*ptr)[u - lo + 1] = w;
  }
}

/* Serial X^T X (column-major, no ridge). */
static double *serial_gram(const double *x, int64_t nu, int64_t ni) {
  double *g = calloc((size_t)(ni * ni), sizeof *g);
  for (int64_t u = 0; u < nu; u++)
    for (int64_t j = 0; j < ni; j++)
      if (x[u * ni + j] != 0)
        for (int64_t i = 0; i < ni; i++) g[j * ni + i] += x[u * ni + i];
  return g;
}

/* old: nu0 x ni0; new: nu1 x ni1 where rows change by `mode`: 0 a few added and removed
 * interactions (the sparse path), 1 every row replaced (the dense path). New users and items. */
static void check_update(int64_t nu0, int64_t ni0, int64_t nu1, int64_t ni1, int mode) {
  double *x0 = random_x(nu0, ni0, 0.1, 21), *x1 = calloc((size_t)(nu1 * ni1), sizeof *x1);
  for (int64_t u = 0; u < nu1; u++)
    for (int64_t i = 0; i < ni1; i++) {
      double old = u < nu0 && i < ni0 ? x0[u * ni0 + i] : 0.0, h = imf_split_u01(99, u, i);
      double v = mode ? (h < 0.12 ? 1.0 : 0.0) : old;
      if (!mode && u % 3 == 0 && h < 0.02) v = 1.0 - v;          /* some rows gain and lose items */
      if (!mode && (u >= nu0 || i >= ni0) && h < 0.05) v = 1.0;  /* new users, new items */
      if (!mode && u == 7) v = 0.0;                                /* a forgotten user */
      x1[u * ni1 + i] = v;
    }
  int64_t lo, hi;
  imf_user_range(MPI_COMM_WORLD, nu1, &lo, &hi);
  imf_ratings r0;
  local_ratings(x0, ni0, lo < nu0 ? lo : nu0, hi < nu0 ? hi : nu0, 0, &r0);
  imf_ease *e = NULL;
  assert_int_equal(imf_ease_create(MPI_COMM_WORLD, ni0, 10.0, IMF_EASE_GRID_SQUARE, &e), IMF_OK);
  assert_int_equal(imf_ease_add_ratings(e, &r0), IMF_OK);
  assert_int_equal(imf_ease_grow(e, ni1), IMF_OK);
  int64_t *optr, *nptr, entries = -1;
  int32_t *oidx, *nidx;
  rows_csr(x0, nu0, ni0, lo, hi, &optr, &oidx);
  rows_csr(x1, nu1, ni1, lo, hi, &nptr, &nidx);
  assert_int_equal(imf_ease_add_delta(e, hi - lo, optr, oidx, nptr, nidx, &entries), IMF_OK);
  assert_true(entries > 0);
  double *ref = serial_gram(x1, nu1, ni1), *got = calloc((size_t)(ni1 * ni1), sizeof *got);
  assert_int_equal(imf_ease_gather_gram_cols(e, 0, ni1, got), IMF_OK);
  for (int64_t j = 0; j < ni1 * ni1; j++) assert_true(got[j] == ref[j]); /* bitwise: integer sums */
  /* and the same as a Gram built from the new data alone */
  imf_ratings r1;
  local_ratings(x1, ni1, lo, hi, 1, &r1);
  imf_ease *f = NULL;
  double *fresh = calloc((size_t)(ni1 * ni1), sizeof *fresh);
  assert_int_equal(imf_ease_create(MPI_COMM_WORLD, ni1, 10.0, IMF_EASE_GRID_SQUARE, &f), IMF_OK);
  assert_int_equal(imf_ease_add_ratings(f, &r1), IMF_OK);
  assert_int_equal(imf_ease_gather_gram_cols(f, 0, ni1, fresh), IMF_OK);
  assert_memory_equal(got, fresh, (size_t)(ni1 * ni1) * sizeof *got);
  /* the re-solve (Gram kept) matches the serial B of the new data */
  assert_int_equal(imf_ease_solve(e, 1), IMF_OK);
  assert_non_null(imf_ease_gram(e));
  double *bref = serial_b(x1, nu1, ni1, 10.0), *b = calloc((size_t)(ni1 * ni1), sizeof *b);
  assert_int_equal(imf_ease_gather_cols(e, 0, ni1, b), IMF_OK);
  double maxref = 0, maxdiff = 0;
  for (int64_t j = 0; j < ni1 * ni1; j++) {
    if (fabs(bref[j]) > maxref) maxref = fabs(bref[j]);
    if (fabs(bref[j] - b[j]) > maxdiff) maxdiff = fabs(bref[j] - b[j]);
  }
  assert_true(maxdiff <= 1e-8 * maxref);
  imf_ease_destroy(&e);
  imf_ease_destroy(&f);
  imf_ratings_free(&r0);
  imf_ratings_free(&r1);
  free(optr), free(oidx), free(nptr), free(nidx);
  free(x0), free(x1), free(ref), free(got), free(fresh), free(bref), free(b);
}

static void test_update_sparse(void **state) {
  (void)state;
  check_update(200, 130, 230, 150, 0);
}

static void test_update_dense(void **state) {
  (void)state;
  check_update(120, 70, 120, 90, 1);
}

/* ---- the state in a checkpoint: written on 2 ranks (or 1), read on 1, 2 or 3 ---- */

static void test_checkpoint_any_ranks(void **state) {
  (void)state;
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const char *dir = tu_tmpdir("ease-ckpt");
  /* the format before 2026-12-07 (f64 B and the Gram matrix in the version): still read */
  setenv("IMF_EASE_LEGACY_FORMAT", "1", 1);
  char path[600];
  snprintf(path, sizeof path, "%s/v.h5", dir);
  char legacy[640];
  snprintf(legacy, sizeof legacy, "%s/old.h5", dir);
  const int64_t nu = 260, ni = 203; /* 4 blocks of 64, the last one short */
  double *x = random_x(nu, ni, 0.1, 5);
  double *gram = calloc((size_t)(ni * ni), sizeof *gram), *b = calloc((size_t)(ni * ni), sizeof *b);
  MPI_Comm w;
  int writers = size < 2 ? size : 2;
  MPI_Comm_split(MPI_COMM_WORLD, rank < writers ? 0 : MPI_UNDEFINED, rank, &w);
  if (w != MPI_COMM_NULL) {
    int64_t lo, hi;
    imf_user_range(w, nu, &lo, &hi);
    imf_ratings r;
    local_ratings(x, ni, lo, hi, 0, &r);
    imf_model *m = NULL, *old = NULL;
    imf_ease *e = NULL;
    imf_ease_rows xr;
    assert_int_equal(imf_ease_model(w, &r, lo, hi, nu, ni, 25.0, &m, &e, &xr), IMF_OK);
    assert_int_equal(imf_ease_gather_gram_cols(e, 0, ni, gram), IMF_OK);
    assert_int_equal(imf_ease_gather_cols(e, 0, ni, b), IMF_OK);
    imf_ckpt_meta meta;
    memset(&meta, 0, sizeof meta);
    snprintf(meta.kind, sizeof meta.kind, "version");
    meta.ease = e;
    meta.ease_x = &xr;
    assert_int_equal(imf_checkpoint_write(w, path, m, &meta), IMF_OK);
    /* the older replicated form: P = X, Q = B^T (kw = items), no sparse X */
    assert_int_equal(imf_model_create(IMF_MODEL_EASE, (int)ni, nu, ni, 0, &old), IMF_OK);
    for (int64_t c = 0; c < nu * ni; c++) old->P[c] = (float)x[c];
    for (int64_t c = 0; c < ni * ni; c++) old->Q[c] = (float)b[c]; /* Q's row i = B's column i */
    old->lambda = 25.0;
    meta.ease_x = NULL;
    assert_int_equal(imf_checkpoint_write(w, legacy, old, &meta), IMF_OK);
    imf_ease_destroy(&e);
    imf_ease_rows_free(&xr);
    imf_model_destroy(&m);
    imf_model_destroy(&old);
    imf_ratings_free(&r);
    MPI_Comm_free(&w);
  }
  MPI_Bcast(gram, (int)(ni * ni), MPI_DOUBLE, 0, MPI_COMM_WORLD);
  MPI_Bcast(b, (int)(ni * ni), MPI_DOUBLE, 0, MPI_COMM_WORLD);
  /* the model reads (its digest covers the state's hashes) */
  imf_model *m = NULL;
  imf_ckpt_meta meta;
  imf_ckpt_info info;
  assert_int_equal(imf_checkpoint_read(MPI_COMM_WORLD, path, &m, &meta), IMF_OK);
  assert_null(meta.ease);
  imf_ckpt_meta_free(&meta);
  imf_model_destroy(&m);
  assert_int_equal(imf_checkpoint_info(path, &info), IMF_OK);
  assert_int_equal(info.ease_items, ni);
  assert_true(info.ease_has_gram && info.ease_has_b && info.ease_has_x);
  assert_int_equal(info.k, 1);
  assert_int_equal(info.kw, 1);
  int64_t ones = 0;
  for (int64_t c = 0; c < nu * ni; c++) ones += x[c] != 0;
  assert_int_equal(info.ease_x_nnz, ones);
  imf_ckpt_info_free(&info);
  assert_int_equal(imf_checkpoint_info(legacy, &info), IMF_OK);
  assert_true(info.ease_has_gram && info.ease_has_b && !info.ease_has_x && info.kw == ni);
  imf_ckpt_info_free(&info);
  /* X on any ranges of users: this rank's, the ranks in reverse order, past the last user; and
   * from P in the replicated form */
  {
    int64_t rng[3][2];
    imf_user_range(MPI_COMM_WORLD, nu, &rng[0][0], &rng[0][1]);
    rng[1][0] = nu * (size - 1 - rank) / size;
    rng[1][1] = nu * (size - rank) / size;
    rng[2][0] = rng[0][0];
    rng[2][1] = rank == size - 1 ? nu + 50 : rng[0][1];
    for (int v = 0; v < 4; v++) {
      const int64_t *g = rng[v < 3 ? v : 0];
      imf_ease_rows xr;
      assert_int_equal(imf_checkpoint_read_ease_x(MPI_COMM_WORLD, v < 3 ? path : legacy, g[0], g[1], &xr), IMF_OK);
      assert_int_equal(xr.lo, g[0]);
      assert_int_equal(xr.hi, g[1]);
      for (int64_t u = g[0]; u < g[1]; u++) {
        int64_t q = xr.ptr[u - g[0]];
        for (int64_t i = 0; u < nu && i < ni; i++)
          if (x[u * ni + i] != 0) assert_int_equal(xr.idx[q++], (int32_t)i);
        assert_int_equal(q, xr.ptr[u - g[0] + 1]);
      }
      imf_ease_rows_free(&xr);
    }
    /* ranges that leave users out are refused everywhere */
    imf_ease_rows xr;
    if (size > 1) {
      assert_int_equal(imf_checkpoint_read_ease_x(MPI_COMM_WORLD, path, 0, rank == 0 ? nu - 1 : 0, &xr), IMF_ERR_USAGE);
      assert_null(xr.ptr);
    }
  }
  /* on every rank count and both grids, and on one rank alone: the same matrices, bitwise */
  MPI_Comm one;
  MPI_Comm_split(MPI_COMM_WORLD, rank, 0, &one);
  MPI_Comm comms[2] = {MPI_COMM_WORLD, one};
  double *got = calloc((size_t)(ni * ni), sizeof *got);
  for (int c = 0; c < 2; c++)
    for (int grid = 0; grid < 2; grid++) {
      imf_ease *e = NULL;
      assert_int_equal(imf_checkpoint_read_ease(comms[c], path, IMF_CKPT_EASE_GRAM | IMF_CKPT_EASE_B, grid, &e), IMF_OK);
      int pr, pc;
      imf_ease_grid(e, &pr, &pc);
      int csize;
      MPI_Comm_size(comms[c], &csize);
      assert_int_equal(pr * pc, csize);
      if (grid == IMF_EASE_GRID_COLUMNS) assert_int_equal(pr, 1);
      assert_int_equal(imf_ease_gather_gram_cols(e, 0, ni, got), IMF_OK);
      assert_memory_equal(got, gram, (size_t)(ni * ni) * sizeof *got);
      assert_int_equal(imf_ease_gather_cols(e, 0, ni, got), IMF_OK);
      assert_memory_equal(got, b, (size_t)(ni * ni) * sizeof *got);
      imf_ease_destroy(&e);
    }
  /* B only: no Gram held */
  imf_ease *e = NULL;
  assert_int_equal(imf_checkpoint_read_ease(MPI_COMM_WORLD, path, IMF_CKPT_EASE_B, IMF_EASE_GRID_COLUMNS, &e), IMF_OK);
  assert_null(imf_ease_gram(e));
  imf_ease_destroy(&e);
  MPI_Comm_free(&one);
  MPI_Barrier(MPI_COMM_WORLD);
  /* a flipped element of the stored Gram is caught by its hash */
  if (rank == 0) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "/ease/gram", H5P_DEFAULT);
    hid_t fs = H5Dget_space(d);
    hsize_t at[2] = {5, 9}, one1[2] = {1, 1};
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, at, NULL, one1, NULL);
    hid_t ms = H5Screate_simple(2, one1, NULL);
    double v = 12345.0;
    H5Dwrite(d, H5T_NATIVE_DOUBLE, ms, fs, H5P_DEFAULT, &v);
    H5Sclose(ms), H5Sclose(fs), H5Dclose(d), H5Fclose(f);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  assert_int_equal(imf_checkpoint_read_ease(MPI_COMM_WORLD, path, IMF_CKPT_EASE_GRAM, IMF_EASE_GRID_SQUARE, &e),
                   IMF_ERR_INPUT);
  assert_null(e);
  /* the rollback advice: in the message, as the advice field, not in the reason */
  assert_non_null(strstr(imf_last_error(), "is corrupt: its EASE Gram matrix does not match its hash (restore an "
                                           "earlier version with `incremf rollback`)"));
  assert_string_equal(imf_err_advice(), "restore an earlier version with `incremf rollback`");
  assert_null(strstr(imf_err_reason(), "rollback"));
  /* a changed index of the stored X is caught by its hash */
  {
    imf_ease_rows xr;
    int64_t lo, hi;
    imf_user_range(MPI_COMM_WORLD, nu, &lo, &hi);
    if (rank == 0) {
      hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
      hid_t d = H5Dopen2(f, "/ease/x_idx", H5P_DEFAULT);
      hid_t fs = H5Dget_space(d);
      hsize_t at = 3, one1 = 1;
      H5Sselect_hyperslab(fs, H5S_SELECT_SET, &at, NULL, &one1, NULL);
      hid_t ms = H5Screate_simple(1, &one1, NULL);
      int32_t cur = 0, nv;
      H5Dread(d, H5T_NATIVE_INT32, ms, fs, H5P_DEFAULT, &cur);
      nv = cur + 1; /* the row stays ascending unless the next item is cur + 1: still a different X */
      H5Dwrite(d, H5T_NATIVE_INT32, ms, fs, H5P_DEFAULT, &nv);
      H5Sclose(ms), H5Sclose(fs), H5Dclose(d), H5Fclose(f);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    assert_int_equal(imf_checkpoint_read_ease_x(MPI_COMM_WORLD, path, lo, hi, &xr), IMF_ERR_INPUT);
    assert_null(xr.ptr);
    assert_null(strstr(imf_err_reason(), "rollback"));
  }
  unsetenv("IMF_EASE_LEGACY_FORMAT");
  free(x), free(gram), free(b), free(got);
}

/* ---- low-rank update of P: the same B as a refactorisation ---- */

/* old: 200 users x 130 items; new: a few rows gain and lose items, a user emptied, 30 new users
 * and 20 new items. P kept from a solve on 1 x P, grown, Woodbury-updated: B matches the serial B
 * of the new data to 1e-8 relative (the refactorisation's own test tolerance). */
static void test_woodbury(void **state) {
  (void)state;
  const int64_t nu0 = 200, ni0 = 130, nu1 = 230, ni1 = 150;
  double *x0 = random_x(nu0, ni0, 0.1, 21), *x1 = calloc((size_t)(nu1 * ni1), sizeof *x1);
  for (int64_t u = 0; u < nu1; u++)
    for (int64_t i = 0; i < ni1; i++) {
      double v = u < nu0 && i < ni0 ? x0[u * ni0 + i] : 0.0, h = imf_split_u01(99, u, i);
      if (u % 9 == 0 && h < 0.05) v = 1.0 - v;
      if ((u >= nu0 || i >= ni0) && h < 0.05) v = 1.0;
      if (u == 7) v = 0.0;
      x1[u * ni1 + i] = v;
    }
  int64_t lo, hi;
  imf_user_range(MPI_COMM_WORLD, nu1, &lo, &hi);
  imf_ratings r0;
  local_ratings(x0, ni0, lo < nu0 ? lo : nu0, hi < nu0 ? hi : nu0, 0, &r0);
  imf_ease *e = NULL;
  assert_int_equal(imf_ease_create(MPI_COMM_WORLD, ni0, 10.0, IMF_EASE_GRID_COLUMNS, &e), IMF_OK);
  assert_int_equal(imf_ease_add_ratings(e, &r0), IMF_OK);
  assert_int_equal(imf_ease_solve_p(e, 0, 1), IMF_OK);
  assert_non_null(imf_ease_p(e));
  assert_null(imf_ease_gram(e));
  assert_int_equal(imf_ease_grow(e, ni1), IMF_OK);
  int64_t *optr, *nptr, m = -1, m2 = -1;
  int32_t *oidx, *nidx;
  rows_csr(x0, nu0, ni0, lo, hi, &optr, &oidx);
  rows_csr(x1, nu1, ni1, lo, hi, &nptr, &nidx);
  /* only the changed rows (an unchanged row would add +x and -x: rank without change) */
  int64_t nr = 0, *cop = calloc((size_t)(hi - lo + 1), sizeof *cop), *cnp = calloc((size_t)(hi - lo + 1), sizeof *cnp);
  int32_t *coi = calloc((size_t)(optr[hi - lo] + 1), sizeof *coi), *cni = calloc((size_t)(nptr[hi - lo] + 1), sizeof *cni);
  for (int64_t r = 0; r < hi - lo; r++) {
    int64_t a = optr[r + 1] - optr[r], b = nptr[r + 1] - nptr[r];
    if (a == b && !memcmp(oidx + optr[r], nidx + nptr[r], (size_t)a * sizeof *oidx)) continue;
    memcpy(coi + cop[nr], oidx + optr[r], (size_t)a * sizeof *coi);
    memcpy(cni + cnp[nr], nidx + nptr[r], (size_t)b * sizeof *cni);
    cop[nr + 1] = cop[nr] + a;
    cnp[nr + 1] = cnp[nr] + b;
    nr++;
  }
  assert_int_equal(imf_ease_update_rank(MPI_COMM_WORLD, nr, cop, cnp, &m), IMF_OK);
  assert_true(m > 30 && m <= 2 * nu1);
  assert_int_equal(imf_ease_woodbury(e, lo, nr, cop, coi, cnp, cni, &m2), IMF_OK);
  assert_int_equal(m2, m);
  assert_int_equal(imf_ease_b_from_p(e), IMF_OK);
  double *bref = serial_b(x1, nu1, ni1, 10.0), *b = calloc((size_t)(ni1 * ni1), sizeof *b);
  assert_int_equal(imf_ease_gather_cols(e, 0, ni1, b), IMF_OK);
  double maxref = 0, maxdiff = 0;
  for (int64_t j = 0; j < ni1 * ni1; j++) {
    if (fabs(bref[j]) > maxref) maxref = fabs(bref[j]);
    if (fabs(bref[j] - b[j]) > maxdiff) maxdiff = fabs(bref[j] - b[j]);
  }
  assert_true(maxdiff <= 1e-8 * maxref);
  /* without the change, B would differ far beyond that (the test can fail) */
  double *bold = serial_b(x0, nu0, ni0, 10.0), far = 0;
  for (int64_t j = 0; j < ni0; j++)
    for (int64_t i = 0; i < ni0; i++) far = fmax(far, fabs(bold[j * ni0 + i] - bref[j * ni1 + i]));
  assert_true(far > 1e-4 * maxref);
  imf_ease_destroy(&e);
  imf_ratings_free(&r0);
  free(optr), free(oidx), free(nptr), free(nidx), free(cop), free(cnp), free(coi), free(cni);
  free(x0), free(x1), free(bref), free(b), free(bold);
}

/* ---- the current format: f32 B in the version, P in a P file next to it ---- */

static void test_checkpoint_p_file(void **state) {
  (void)state;
  int rank;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  const char *dir = tu_tmpdir("ease-pfile");
  char path[600];
  snprintf(path, sizeof path, "%s/v.h5", dir);
  const int64_t nu = 260, ni = 203;
  double *x = random_x(nu, ni, 0.1, 5);
  double *b = calloc((size_t)(ni * ni), sizeof *b), *got = calloc((size_t)(ni * ni), sizeof *got);
  int64_t lo, hi;
  imf_user_range(MPI_COMM_WORLD, nu, &lo, &hi);
  imf_ratings r;
  local_ratings(x, ni, lo, hi, 0, &r);
  imf_model *m = NULL;
  imf_ease *e = NULL;
  imf_ease_rows xr;
  assert_int_equal(imf_ease_model(MPI_COMM_WORLD, &r, lo, hi, nu, ni, 25.0, &m, &e, &xr), IMF_OK);
  assert_null(imf_ease_gram(e)); /* P kept instead */
  assert_non_null(imf_ease_p(e));
  double *b64 = calloc((size_t)(ni * ni), sizeof *b64);
  assert_int_equal(imf_ease_gather_cols(e, 0, ni, b64), IMF_OK);
  imf_ckpt_meta meta;
  memset(&meta, 0, sizeof meta);
  snprintf(meta.kind, sizeof meta.kind, "version");
  meta.ease = e;
  meta.ease_x = &xr;
  assert_int_equal(imf_checkpoint_write(MPI_COMM_WORLD, path, m, &meta), IMF_OK);
  assert_int_equal(imf_ease_gather_cols(e, 0, ni, b), IMF_OK); /* rounded in place by the writer */
  for (int64_t c = 0; c < ni * ni; c++) assert_true(b[c] == (double)(float)b64[c]);
  imf_ckpt_info info;
  assert_int_equal(imf_checkpoint_info(path, &info), IMF_OK);
  assert_true(!info.ease_has_gram && info.ease_has_b && info.ease_has_x);
  assert_int_equal(strlen(info.ease_p_file), 7 + 32 + 3);
  char pp[700];
  snprintf(pp, sizeof pp, "%s/%s", dir, info.ease_p_file);
  imf_ckpt_info_free(&info);
  if (rank == 0) { /* B stored as f32 */
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), d = H5Dopen2(f, "/ease/BT", H5P_DEFAULT);
    hid_t t = H5Dget_type(d);
    assert_int_equal(H5Tget_size(t), 4);
    H5Tclose(t), H5Dclose(d), H5Fclose(f);
    FILE *pf = fopen(pp, "rb");
    assert_non_null(pf);
    fclose(pf);
  }
  /* the model reads (the digest covers the P hash); B and P read back on both grids */
  imf_model *m2 = NULL;
  imf_ckpt_meta meta2;
  assert_int_equal(imf_checkpoint_read(MPI_COMM_WORLD, path, &m2, &meta2), IMF_OK);
  imf_ckpt_meta_free(&meta2);
  imf_model_destroy(&m2);
  for (int grid = 0; grid < 2; grid++) {
    imf_ease *f = NULL;
    assert_int_equal(imf_checkpoint_read_ease(MPI_COMM_WORLD, path, IMF_CKPT_EASE_B, grid, &f), IMF_OK);
    assert_int_equal(imf_ease_gather_cols(f, 0, ni, got), IMF_OK);
    assert_memory_equal(got, b, (size_t)(ni * ni) * sizeof *got);
    imf_ease_destroy(&f);
    assert_int_equal(imf_checkpoint_read_ease(MPI_COMM_WORLD, path, IMF_CKPT_EASE_GRAM, grid, &f), IMF_ERR_INPUT);
    assert_int_equal(imf_checkpoint_read_ease_p(MPI_COMM_WORLD, path, grid, &f), IMF_OK);
    assert_int_equal(imf_ease_b_from_p(f), IMF_OK); /* B again from P: the unrounded B, bitwise */
    assert_int_equal(imf_ease_gather_cols(f, 0, ni, got), IMF_OK);
    assert_memory_equal(got, b64, (size_t)(ni * ni) * sizeof *got);
    imf_ease_destroy(&f);
  }
  /* a damaged P file fails its hash; a missing one is IMF_ERR_NOTFOUND */
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == 0) {
    hid_t f = H5Fopen(pp, H5F_ACC_RDWR, H5P_DEFAULT), d = H5Dopen2(f, "/P", H5P_DEFAULT);
    hid_t fs = H5Dget_space(d);
    hsize_t at[2] = {5, 9}, one1[2] = {1, 1};
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, at, NULL, one1, NULL);
    hid_t ms = H5Screate_simple(2, one1, NULL);
    double v = 0.125;
    H5Dwrite(d, H5T_NATIVE_DOUBLE, ms, fs, H5P_DEFAULT, &v);
    H5Sclose(ms), H5Sclose(fs), H5Dclose(d), H5Fclose(f);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  imf_ease *f = NULL;
  assert_int_equal(imf_checkpoint_read_ease_p(MPI_COMM_WORLD, path, IMF_EASE_GRID_COLUMNS, &f), IMF_ERR_INPUT);
  assert_null(f);
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == 0) assert_int_equal(remove(pp), 0);
  MPI_Barrier(MPI_COMM_WORLD);
  assert_int_equal(imf_checkpoint_read_ease_p(MPI_COMM_WORLD, path, IMF_EASE_GRID_COLUMNS, &f), IMF_ERR_NOTFOUND);
  imf_ease_destroy(&e);
  imf_ease_rows_free(&xr);
  imf_model_destroy(&m);
  imf_ratings_free(&r);
  free(x), free(b), free(got), free(b64);
}

/* ---- distributed scoring: each rank its columns of B, a top-K merge ---- */

static void test_topk_distributed(void **state) {
  (void)state;
  const int64_t nu = 150, ni = 203;
  const int K = 10;
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  double *x = random_x(nu, ni, 0.08, 31), *ref = serial_b(x, nu, ni, 20.0);
  int64_t lo, hi;
  imf_user_range(MPI_COMM_WORLD, nu, &lo, &hi);
  imf_ratings r;
  local_ratings(x, ni, lo, hi, 0, &r);
  imf_ease *e = NULL, *c = NULL;
  assert_int_equal(imf_ease_fit(MPI_COMM_WORLD, &r, ni, 20.0, &e), IMF_OK);
  assert_int_equal(imf_ease_to_columns(e, &c), IMF_OK);
  int pr, pc;
  imf_ease_grid(c, &pr, &pc);
  assert_int_equal(pr, 1);
  assert_int_equal(pc, size);
  /* B after the redistribution is B */
  double *b1 = calloc((size_t)(ni * ni), sizeof *b1), *b2 = calloc((size_t)(ni * ni), sizeof *b2);
  assert_int_equal(imf_ease_gather_cols(e, 0, ni, b1), IMF_OK);
  assert_int_equal(imf_ease_gather_cols(c, 0, ni, b2), IMF_OK);
  assert_memory_equal(b1, b2, (size_t)(ni * ni) * sizeof *b1);
  int64_t *ptr, *aptr;
  int32_t *idx, *aidx;
  rows_csr(x, nu, ni, lo, hi, &ptr, &idx);
  rows_csr(x, nu, ni, 0, nu, &aptr, &aidx);
  int64_t mine = hi - lo;
  int32_t *it = calloc((size_t)((mine ? mine : 1) * K), sizeof *it), *ait = calloc((size_t)(nu * K), sizeof *ait);
  float *sc = calloc((size_t)((mine ? mine : 1) * K), sizeof *sc), *asc = calloc((size_t)(nu * K), sizeof *asc);
  int *cn = calloc((size_t)(mine ? mine : 1), sizeof *cn), *acn = calloc((size_t)nu, sizeof *acn);
  /* own rows (own = 1), and every user on every rank (own = 0): the same answers, bitwise */
  assert_int_equal(imf_ease_topk(c, 1, mine, ptr, idx, ptr, idx, K, NULL, it, sc, cn), IMF_OK);
  assert_int_equal(imf_ease_topk(c, 0, nu, aptr, aidx, aptr, aidx, K, NULL, ait, asc, acn), IMF_OK);
  assert_memory_equal(it, ait + lo * K, (size_t)(mine * K) * sizeof *it);
  assert_memory_equal(sc, asc + lo * K, (size_t)(mine * K) * sizeof *sc);
  double *s = calloc((size_t)ni, sizeof *s);
  for (int64_t u = 0; u < nu; u++) {
    /* the serial scores; the K-th best among the items the user has not got */
    int nfree = 0;
    for (int64_t j = 0; j < ni; j++) {
      s[j] = 0;
      for (int64_t i = 0; i < ni; i++) s[j] += x[u * ni + i] * ref[j * ni + i];
      nfree += x[u * ni + j] == 0;
    }
    int want = nfree < K ? nfree : K;
    assert_int_equal(acn[u], want);
    double kth = INFINITY;
    {
      double *v = calloc((size_t)ni, sizeof *v);
      int nv = 0;
      for (int64_t j = 0; j < ni; j++)
        if (x[u * ni + j] == 0) v[nv++] = s[j];
      for (int a = 0; a < want; a++) { /* selection of the want-th largest */
        int best = a;
        for (int q = a + 1; q < nv; q++)
          if (v[q] > v[best]) best = q;
        double tmp = v[a];
        v[a] = v[best];
        v[best] = tmp;
      }
      kth = want > 0 ? v[want - 1] : INFINITY;
      free(v);
    }
    for (int j = 0; j < want; j++) {
      int32_t item = ait[u * K + j];
      assert_true(item >= 0 && item < ni);
      assert_true(x[u * ni + item] == 0); /* never an item the user has */
      for (int q = 0; q < j; q++) assert_true(ait[u * K + q] != item);
      if (j > 0) assert_true(asc[u * K + j] <= asc[u * K + j - 1]);
      assert_true(fabs(asc[u * K + j] - s[item]) <= 1e-5 * (1 + fabs(s[item])));
      assert_true(s[item] >= kth - 1e-9 * (1 + fabs(kth))); /* a true top-K item (up to ties) */
    }
    for (int j = want; j < K; j++) assert_int_equal(ait[u * K + j], -1);
  }
  /* no exclusions: the user's own items may come back */
  assert_int_equal(imf_ease_topk(c, 0, nu, aptr, aidx, NULL, NULL, K, NULL, ait, asc, acn), IMF_OK);
  for (int64_t u = 0; u < nu; u++) assert_int_equal(acn[u], K);
  imf_ease_destroy(&e);
  imf_ease_destroy(&c);
  imf_ratings_free(&r);
  free(x), free(ref), free(b1), free(b2), free(ptr), free(idx), free(aptr), free(aidx);
  free(it), free(ait), free(sc), free(asc), free(cn), free(acn), free(s);
}

int main(int argc, char **argv) {
  imf_preinit();
  MPI_Init(&argc, &argv);
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_matches_serial), cmocka_unit_test(test_several_blocks),
                                     cmocka_unit_test(test_repeated_unsorted), cmocka_unit_test(test_bad_lambda),
                                     cmocka_unit_test(test_update_sparse), cmocka_unit_test(test_update_dense),
                                     cmocka_unit_test(test_checkpoint_any_ranks), cmocka_unit_test(test_woodbury),
                                     cmocka_unit_test(test_checkpoint_p_file),
                                     cmocka_unit_test(test_topk_distributed)};
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  MPI_Finalize();
  return rc;
}
