/* test_rowsolve.c - the shared row solver against dense double references (ALS-WR with and
 * without biases, implicit ALS by Cholesky and CG), the BPMF conditional's moments, bitwise
 * determinism of a row alone vs inside a batch, empty rows, errors, and a tiny two-cluster
 * matrix factorised by alternating solves. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "error.h"
#include "rng.h"
#include "rowsolve.h"

/* ---- fixtures: random other side and CSR rows ---- */
typedef struct {
  int64_t nrows, nnz;
  int64_t *row_id, *ptr;
  int32_t *idx;
  float *val;
} csr;

static void csr_free(csr *c) {
  free(c->row_id);
  free(c->ptr);
  free(c->idx);
  free(c->val);
}

/* Rows with the given rating counts over an other side of n rows; ratings in [1, 5] (or
 * [0, 3] for implicit counts). */
static csr make_rows(int64_t nrows, const int64_t *counts, int64_t nother, uint64_t seed,
                     double lo, double hi) {
  csr c;
  imf_rng g;
  imf_rng_init(&g, seed, 7);
  c.nrows = nrows;
  c.row_id = malloc((size_t)nrows * sizeof(int64_t));
  c.ptr = malloc((size_t)(nrows + 1) * sizeof(int64_t));
  c.ptr[0] = 0;
  for (int64_t r = 0; r < nrows; r++) {
    c.row_id[r] = 1000 + 3 * r;
    c.ptr[r + 1] = c.ptr[r] + counts[r];
  }
  c.nnz = c.ptr[nrows];
  c.idx = malloc((size_t)(c.nnz ? c.nnz : 1) * sizeof(int32_t));
  c.val = malloc((size_t)(c.nnz ? c.nnz : 1) * sizeof(float));
  for (int64_t i = 0; i < c.nnz; i++) {
    c.idx[i] = (int32_t)(imf_rng_u32(&g) % (uint32_t)nother);
    c.val[i] = (float)(lo + (hi - lo) * imf_rng_uniform(&g));
  }
  return c;
}

static float *make_factors(int64_t n, int k, uint64_t seed, double scale) {
  imf_rng g;
  imf_rng_init(&g, seed, 11);
  float *Y = malloc((size_t)n * (size_t)k * sizeof(float));
  for (int64_t i = 0; i < n * k; i++) Y[i] = (float)(scale * imf_rng_normal(&g));
  return Y;
}

static imf_row_batch batch_of(const csr *c) {
  imf_row_batch b = {c->nrows, c->row_id, c->ptr, c->idx, c->val};
  return b;
}

/* One row of a batch as a batch of its own (same global id, same ratings). */
static imf_row_batch single_row(const csr *c, int64_t r, int64_t ptr2[2]) {
  ptr2[0] = 0;
  ptr2[1] = c->ptr[r + 1] - c->ptr[r];
  imf_row_batch b = {1, c->row_id + r, ptr2, c->idx + c->ptr[r], c->val + c->ptr[r]};
  return b;
}

static double rel_err(const double *ref, const float *x, int n) {
  double num = 0, den = 0;
  for (int i = 0; i < n; i++) {
    num += (ref[i] - x[i]) * (ref[i] - x[i]);
    den += ref[i] * ref[i];
  }
  return sqrt(num) / (sqrt(den) + 1e-30);
}

/* Dense double reference of the ALS-WR normal equations for row r. Returns d solution
 * values in z (x then bias). */
static void als_reference(const csr *c, int64_t r, const float *Y, const float *ybias, int k,
                          int with_bias, double mu, double lambda, double lambda_bias, double *z) {
  int d = with_bias ? k + 1 : k;
  double *M = calloc((size_t)d * d, sizeof(double)), *f = calloc((size_t)d, sizeof(double));
  memset(z, 0, (size_t)d * sizeof(double));
  int64_t n = c->ptr[r + 1] - c->ptr[r];
  for (int64_t i = c->ptr[r]; i < c->ptr[r + 1]; i++) {
    int32_t j = c->idx[i];
    for (int a = 0; a < k; a++) f[a] = Y[(size_t)j * k + a];
    if (with_bias) f[k] = 1.0;
    double t = c->val[i] - mu - (with_bias ? ybias[j] : 0.0);
    for (int a = 0; a < d; a++) {
      z[a] += t * f[a];
      for (int b = 0; b < d; b++) M[a * d + b] += f[a] * f[b];
    }
  }
  for (int a = 0; a < k; a++) M[a * d + a] += lambda * (double)n;
  if (with_bias) M[k * d + k] += lambda_bias;
  assert_int_equal(LAPACKE_dposv(LAPACK_ROW_MAJOR, 'L', d, 1, M, d, z, 1), 0);
  free(M);
  free(f);
}

/* The implicit-ALS matrix and right-hand side for row r, dense double. */
static void ials_system(const csr *c, int64_t r, const float *Y, const double *YtY, int k,
                        double alpha, double lambda, double *M, double *rhs) {
  memcpy(M, YtY, (size_t)k * k * sizeof(double));
  memset(rhs, 0, (size_t)k * sizeof(double));
  for (int a = 0; a < k; a++) M[a * k + a] += lambda;
  for (int64_t i = c->ptr[r]; i < c->ptr[r + 1]; i++) {
    const float *y = Y + (size_t)c->idx[i] * k;
    double w = alpha * c->val[i];
    for (int a = 0; a < k; a++) {
      rhs[a] += (1.0 + w) * y[a];
      for (int b = 0; b < k; b++) M[a * k + b] += w * (double)y[a] * y[b];
    }
  }
}

static double *gram_of(const float *Y, int64_t n, int k) {
  double *G = calloc((size_t)k * k, sizeof(double));
  for (int64_t i = 0; i < n; i++)
    for (int a = 0; a < k; a++)
      for (int b = 0; b < k; b++) G[a * k + b] += (double)Y[i * k + a] * Y[i * k + b];
  return G;
}

/* Counts that exercise the hand loop (<= 4), ordinary BLAS rows, and chunking (> 1024). */
static const int64_t kCounts[] = {0, 1, 2, 3, 4, 5, 7, 12, 30, 100, 1500, 1024, 1025, 0, 9};
#define NCOUNTS ((int64_t)(sizeof kCounts / sizeof kCounts[0]))

/* k = 6, and k = 40 and 71, whose systems (k + 1 with the bias) span two and three of the hand
 * Cholesky's 32-row blocks, with partial vectors at their ends. */
static void test_als_vs_reference(void **state) {
  (void)state;
  static const int ks[] = {6, 40, 71};
  for (int kk = 0; kk < 3; kk++) {
    const int k = ks[kk];
    const int64_t nother = 3000;
    float *Y = make_factors(nother, k, 1, 0.5), *yb = make_factors(nother, 1, 2, 0.3);
    csr c = make_rows(NCOUNTS, kCounts, nother, 3, 1.0, 5.0);
    imf_other_side o = {nother, Y, yb};
    imf_row_batch b = batch_of(&c);
    imf_rowsolve_ws *ws;
    assert_int_equal(imf_rowsolve_ws_create(k, &ws), IMF_OK);
    float *X = calloc((size_t)c.nrows * k, sizeof(float)), *bias = calloc((size_t)c.nrows, sizeof(float));
    for (int with_bias = 0; with_bias <= 1; with_bias++) {
      imf_row_params p = {.kind = IMF_ROW_ALS, .k = k, .with_bias = with_bias, .mu = 3.2,
                          .lambda = 0.05, .lambda_bias = 0.5};
      for (int64_t i = 0; i < c.nrows * k; i++) X[i] = 123.0f; /* ignored on entry */
      assert_int_equal(imf_rowsolve(&p, &b, &o, X, bias, ws), IMF_OK);
      for (int64_t r = 0; r < c.nrows; r++) {
        double z[80];
        if (c.ptr[r + 1] == c.ptr[r]) {
          for (int a = 0; a < k; a++) assert_true(X[r * k + a] == 0.0f);
          assert_true(bias[r] == 0.0f);
          continue;
        }
        als_reference(&c, r, Y, yb, k, with_bias, p.mu, p.lambda, p.lambda_bias, z);
        double e = rel_err(z, X + r * k, k);
        if (e > 1e-4) fail_msg("ALS k=%d bias=%d row %lld (n=%lld): rel err %g", k, with_bias, (long long)r,
                               (long long)(c.ptr[r + 1] - c.ptr[r]), e);
        if (with_bias) assert_true(fabs(bias[r] - z[k]) <= 1e-4 * (1.0 + fabs(z[k])));
        else assert_true(bias[r] == 0.0f);
      }
    }
    imf_rowsolve_stats s;
    imf_rowsolve_ws_stats(ws, &s);
    assert_int_equal(s.rows, 2 * c.nrows);
    assert_int_equal(s.ratings, 2 * c.nnz);
    assert_true(s.gram_flops > 0 && s.total_seconds > 0);
    free(X);
    free(bias);
    free(Y);
    free(yb);
    csr_free(&c);
    imf_rowsolve_ws_destroy(&ws);
    assert_null(ws);
  }
}

static void test_ials_cholesky_and_cg(void **state) {
  (void)state;
  const int k = 8;
  const int64_t nother = 2000;
  float *Y = make_factors(nother, k, 4, 0.3);
  double *YtY = gram_of(Y, nother, k);
  csr c = make_rows(NCOUNTS, kCounts, nother, 5, 0.0, 3.0);
  c.val[c.ptr[9]] = -0.2f; /* a negative implicit weight in a 100-rating row: hand loop */
  imf_other_side o = {nother, Y, NULL};
  imf_row_batch b = batch_of(&c);
  imf_rowsolve_ws *ws;
  assert_int_equal(imf_rowsolve_ws_create(k, &ws), IMF_OK);
  float *X = calloc((size_t)c.nrows * k, sizeof(float)), *Xcg = calloc((size_t)c.nrows * k, sizeof(float));
  imf_row_params p = {.kind = IMF_ROW_IALS, .k = k, .alpha = 2.0, .lambda = 20.0, .YtY = YtY};
  assert_int_equal(imf_rowsolve(&p, &b, &o, X, NULL, ws), IMF_OK);
  double M[64], rhs[8], Mx[64], res0[8];
  for (int64_t r = 0; r < c.nrows; r++) {
    ials_system(&c, r, Y, YtY, k, p.alpha, p.lambda, M, rhs);
    if (c.ptr[r + 1] == c.ptr[r]) {
      for (int a = 0; a < k; a++) assert_true(X[r * k + a] == 0.0f);
      continue;
    }
    assert_int_equal(LAPACKE_dposv(LAPACK_ROW_MAJOR, 'L', k, 1, M, k, rhs, 1), 0);
    double e = rel_err(rhs, X + r * k, k);
    if (e > 1e-4) fail_msg("iALS row %lld: rel err %g", (long long)r, e);
  }
  /* CG with many steps from zero converges to the Cholesky answer. */
  p.use_cg = 1;
  p.cg_steps = 40;
  assert_int_equal(imf_rowsolve(&p, &b, &o, Xcg, NULL, ws), IMF_OK);
  for (int64_t r = 0; r < c.nrows; r++)
    if (c.ptr[r + 1] > c.ptr[r]) {
      double xr[8];
      for (int a = 0; a < k; a++) xr[a] = X[r * k + a];
      double e = rel_err(xr, Xcg + r * k, k);
      if (e > 1e-4) fail_msg("CG row %lld: rel err %g vs Cholesky", (long long)r, e);
    }
  /* Three steps from a perturbed start reduce the residual ||b - A x||. */
  p.cg_steps = 3;
  for (int64_t i = 0; i < c.nrows * k; i++) Xcg[i] = X[i] + 0.5f * (float)((i % 5) - 2);
  float *X0 = malloc((size_t)c.nrows * k * sizeof(float));
  memcpy(X0, Xcg, (size_t)c.nrows * k * sizeof(float));
  assert_int_equal(imf_rowsolve(&p, &b, &o, Xcg, NULL, ws), IMF_OK);
  for (int64_t r = 0; r < c.nrows; r++) {
    if (c.ptr[r + 1] == c.ptr[r]) {
      for (int a = 0; a < k; a++) assert_true(Xcg[r * k + a] == 0.0f);
      continue;
    }
    ials_system(&c, r, Y, YtY, k, p.alpha, p.lambda, Mx, rhs);
    double n0 = 0, n1 = 0;
    for (int a = 0; a < k; a++) {
      double s0 = rhs[a], s1 = rhs[a];
      for (int bb = 0; bb < k; bb++) {
        s0 -= Mx[a * k + bb] * X0[r * k + bb];
        s1 -= Mx[a * k + bb] * Xcg[r * k + bb];
      }
      res0[a] = s0;
      n0 += s0 * s0;
      n1 += s1 * s1;
    }
    (void)res0;
    if (!(n1 < 0.5 * n0)) fail_msg("CG(3) row %lld: residual %g -> %g", (long long)r, sqrt(n0), sqrt(n1));
  }
  free(X0);
  free(X);
  free(Xcg);
  free(Y);
  free(YtY);
  csr_free(&c);
  imf_rowsolve_ws_destroy(&ws);
}

static void test_bpmf_moments(void **state) {
  (void)state;
  const int k = 3;
  const int64_t nother = 50;
  float *Y = make_factors(nother, k, 6, 0.6);
  int64_t counts[2] = {15, 0};
  csr c = make_rows(2, counts, nother, 7, 1.0, 5.0);
  imf_other_side o = {nother, Y, NULL};
  double prior_mean[3] = {0.2, -0.1, 0.3};
  double prior_prec[9] = {2.0, 0.3, 0.0, 0.3, 1.5, 0.2, 0.0, 0.2, 1.0};
  imf_row_params p = {.kind = IMF_ROW_BPMF, .k = k, .mu = 3.0, .beta = 2.0,
                      .prior_mean = prior_mean, .prior_prec = prior_prec, .seed = 99, .side = 0};
  /* Reference Lambda and mean. */
  double Lam[2][9], mean[2][3];
  for (int r = 0; r < 2; r++) {
    double rhs[3];
    memcpy(Lam[r], prior_prec, sizeof prior_prec);
    for (int a = 0; a < k; a++) {
      rhs[a] = 0;
      for (int b = 0; b < k; b++) rhs[a] += prior_prec[a * k + b] * prior_mean[b];
    }
    for (int64_t i = c.ptr[r]; i < c.ptr[r + 1]; i++) {
      const float *y = Y + (size_t)c.idx[i] * k;
      for (int a = 0; a < k; a++) {
        rhs[a] += p.beta * (c.val[i] - p.mu) * y[a];
        for (int b = 0; b < k; b++) Lam[r][a * k + b] += p.beta * (double)y[a] * y[b];
      }
    }
    double M[9];
    memcpy(M, Lam[r], sizeof M);
    assert_int_equal(LAPACKE_dposv(LAPACK_ROW_MAJOR, 'L', k, 1, M, k, rhs, 1), 0);
    memcpy(mean[r], rhs, sizeof rhs);
  }
  imf_rowsolve_ws *ws;
  assert_int_equal(imf_rowsolve_ws_create(k, &ws), IMF_OK);
  imf_row_batch b = batch_of(&c);
  const int S = 20000;
  double sum[2][3] = {{0}}, sq[2][9] = {{0}};
  float X[6], first[6];
  for (int s = 0; s < S; s++) {
    p.sweep = (uint32_t)s;
    assert_int_equal(imf_rowsolve(&p, &b, &o, X, NULL, ws), IMF_OK);
    if (s == 0) memcpy(first, X, sizeof X);
    for (int r = 0; r < 2; r++)
      for (int a = 0; a < k; a++) {
        sum[r][a] += X[r * k + a];
        for (int bb = 0; bb < k; bb++) sq[r][a * k + bb] += (double)X[r * k + a] * X[r * k + bb];
      }
  }
  /* The same sweep redraws the same sample. */
  p.sweep = 0;
  assert_int_equal(imf_rowsolve(&p, &b, &o, X, NULL, ws), IMF_OK);
  assert_memory_equal(X, first, sizeof X);
  for (int r = 0; r < 2; r++) {
    double cov[9], M[9];
    memcpy(M, Lam[r], sizeof M);
    /* Lambda^-1 by Cholesky inverse. */
    assert_int_equal(LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', k, M, k), 0);
    assert_int_equal(LAPACKE_dpotri(LAPACK_ROW_MAJOR, 'L', k, M, k), 0);
    for (int a = 0; a < k; a++)
      for (int bb = a + 1; bb < k; bb++) M[a * k + bb] = M[bb * k + a];
    double maxvar = 0;
    for (int a = 0; a < k; a++) maxvar = fmax(maxvar, M[a * k + a]);
    for (int a = 0; a < k; a++) {
      double m = sum[r][a] / S;
      if (fabs(m - mean[r][a]) > 4.0 * sqrt(M[a * k + a] / S) + 1e-6)
        fail_msg("BPMF row %d: mean[%d] %g vs %g", r, a, m, mean[r][a]);
    }
    for (int a = 0; a < k; a++)
      for (int bb = 0; bb < k; bb++) {
        cov[a * k + bb] = sq[r][a * k + bb] / S - (sum[r][a] / S) * (sum[r][bb] / S);
        if (fabs(cov[a * k + bb] - M[a * k + bb]) > 0.05 * maxvar)
          fail_msg("BPMF row %d: cov[%d][%d] %g vs %g", r, a, bb, cov[a * k + bb], M[a * k + bb]);
      }
  }
  free(Y);
  csr_free(&c);
  imf_rowsolve_ws_destroy(&ws);
}

/* Each row solved alone (fresh and reused workspace, other rows in between) equals the
 * batch result bit for bit, for every kind. */
static void test_determinism(void **state) {
  (void)state;
  const int k = 12;
  const int64_t nother = 4000;
  float *Y = make_factors(nother, k, 8, 0.4), *yb = make_factors(nother, 1, 9, 0.2);
  double *YtY = gram_of(Y, nother, k);
  double prior_mean[12] = {0}, prior_prec[144] = {0};
  for (int a = 0; a < k; a++) prior_prec[a * k + a] = 1.5;
  csr c = make_rows(NCOUNTS, kCounts, nother, 10, 0.0, 5.0);
  imf_other_side o = {nother, Y, yb};
  imf_row_batch b = batch_of(&c);
  imf_row_params ps[4] = {
      {.kind = IMF_ROW_ALS, .k = k, .with_bias = 1, .mu = 2.5, .lambda = 0.05, .lambda_bias = 1},
      {.kind = IMF_ROW_IALS, .k = k, .alpha = 1.0, .lambda = 0.1, .YtY = YtY},
      {.kind = IMF_ROW_IALS, .k = k, .alpha = 1.0, .lambda = 0.1, .YtY = YtY, .use_cg = 1, .cg_steps = 3},
      {.kind = IMF_ROW_BPMF, .k = k, .mu = 2.5, .beta = 2, .prior_mean = prior_mean,
       .prior_prec = prior_prec, .seed = 5, .sweep = 3, .side = 1}};
  float *X0 = make_factors(c.nrows, k, 12, 0.1);
  float *Xb = malloc((size_t)c.nrows * k * sizeof(float)), *Bb = calloc((size_t)c.nrows, sizeof(float));
  for (int t = 0; t < 4; t++) {
    imf_rowsolve_ws *ws, *ws2;
    assert_int_equal(imf_rowsolve_ws_create(k, &ws), IMF_OK);
    assert_int_equal(imf_rowsolve_ws_create(k, &ws2), IMF_OK);
    memcpy(Xb, X0, (size_t)c.nrows * k * sizeof(float));
    assert_int_equal(imf_rowsolve(&ps[t], &b, &o, Xb, Bb, ws), IMF_OK);
    for (int64_t r = c.nrows - 1; r >= 0; r--) { /* reverse order: different ws history */
      int64_t ptr2[2];
      imf_row_batch one = single_row(&c, r, ptr2);
      float x1[12], b1 = -1, x2[12], b2 = -1;
      memcpy(x1, X0 + r * k, sizeof x1);
      memcpy(x2, X0 + r * k, sizeof x2);
      assert_int_equal(imf_rowsolve(&ps[t], &one, &o, x1, &b1, ws), IMF_OK);
      imf_rowsolve_ws *fresh;
      assert_int_equal(imf_rowsolve_ws_create(k, &fresh), IMF_OK);
      assert_int_equal(imf_rowsolve(&ps[t], &one, &o, x2, &b2, fresh), IMF_OK);
      imf_rowsolve_ws_destroy(&fresh);
      if (memcmp(x1, Xb + r * k, sizeof x1) != 0 || memcmp(x2, Xb + r * k, sizeof x2) != 0 ||
          memcmp(&b1, Bb + r, sizeof b1) != 0 || memcmp(&b2, Bb + r, sizeof b2) != 0)
        fail_msg("kind %d row %lld: alone differs from batch", t, (long long)r);
    }
    imf_rowsolve_ws_destroy(&ws);
    imf_rowsolve_ws_destroy(&ws2);
  }
  free(X0);
  free(Xb);
  free(Bb);
  free(Y);
  free(yb);
  free(YtY);
  csr_free(&c);
}

static void test_errors(void **state) {
  (void)state;
  const int k = 4;
  float *Y = make_factors(10, k, 13, 1.0);
  int64_t counts[2] = {3, 2};
  csr c = make_rows(2, counts, 10, 14, 1.0, 5.0);
  imf_other_side o = {10, Y, NULL};
  const int32_t fixed[5] = {0, 1, 2, 5, 6};
  memcpy(c.idx, fixed, sizeof fixed);
  for (int j = 0; j < 3; j++) Y[j * k + 3] = 0.0f; /* row 0's factors span 3 dimensions */
  imf_row_batch b = batch_of(&c);
  imf_rowsolve_ws *ws;
  assert_int_equal(imf_rowsolve_ws_create(k, &ws), IMF_OK);
  float X[8], bias[2];
  /* Three ratings spanning three of four dimensions, no regularisation: singular. */
  imf_row_params p = {.kind = IMF_ROW_ALS, .k = k, .lambda = 0.0};
  assert_int_equal(imf_rowsolve(&p, &b, &o, X, NULL, ws), IMF_ERR_RUNTIME);
  assert_non_null(strstr(imf_last_error(), "row 1000"));
  assert_non_null(strstr(imf_last_error(), "positive definite"));
  /* Non-finite factors. */
  p.lambda = 0.1;
  Y[c.idx[3] * k] = NAN;
  assert_int_equal(imf_rowsolve(&p, &b, &o, X, NULL, ws), IMF_ERR_RUNTIME);
  assert_non_null(strstr(imf_last_error(), "row 1003"));
  Y[c.idx[3] * k] = 0.5f;
  assert_int_equal(imf_rowsolve(&p, &b, &o, X, NULL, ws), IMF_OK);
  /* An index outside the other side. */
  c.idx[1] = 10;
  assert_int_equal(imf_rowsolve(&p, &b, &o, X, NULL, ws), IMF_ERR_INPUT);
  c.idx[1] = 0;
  /* Usage errors. */
  p.with_bias = 1;
  assert_int_equal(imf_rowsolve(&p, &b, &o, X, NULL, ws), IMF_ERR_USAGE);
  assert_int_equal(imf_rowsolve(&p, &b, &o, X, bias, ws), IMF_OK); /* NULL other bias = 0 */
  imf_row_params q = {.kind = IMF_ROW_IALS, .k = k, .lambda = 0.1};
  assert_int_equal(imf_rowsolve(&q, &b, &o, X, NULL, ws), IMF_ERR_USAGE);
  /* A workspace made for another k adapts. */
  imf_rowsolve_ws *ws8;
  assert_int_equal(imf_rowsolve_ws_create(8, &ws8), IMF_OK);
  float X2[8];
  p.with_bias = 0;
  assert_int_equal(imf_rowsolve(&p, &b, &o, X2, NULL, ws8), IMF_OK);
  assert_int_equal(imf_rowsolve(&p, &b, &o, X, NULL, ws), IMF_OK);
  assert_memory_equal(X, X2, sizeof X);
  imf_rowsolve_ws_destroy(&ws8);
  free(Y);
  csr_free(&c);
  imf_rowsolve_ws_destroy(&ws);
  imf_err_clear();
}

/* The hand-checkable case: 10 users x 5 items, two clusters, k = 2; alternate user and item
 * ALS solves over the full binary matrix. */
static void test_two_clusters(void **state) {
  (void)state;
  static const float R[10][5] = {
      {1, 1, 1, 0, 0}, {1, 1, 1, 0, 0}, {1, 1, 1, 0, 0}, {1, 1, 1, 0, 0}, {1, 1, 0, 0, 0},
      {0, 0, 0, 1, 1}, {0, 0, 0, 1, 1}, {0, 0, 0, 1, 1}, {0, 0, 0, 1, 1}, {0, 0, 0, 0, 1}};
  const int k = 2, NU = 10, NI = 5;
  /* Users' CSR (every entry observed) and items' CSR (the transpose). */
  int64_t uptr[11], iptr[6], uid[10], iid[5];
  int32_t uidx[50], iidx[50];
  float uval[50], ival[50];
  for (int u = 0; u <= NU; u++) uptr[u] = u * NI;
  for (int i = 0; i <= NI; i++) iptr[i] = i * NU;
  for (int u = 0; u < NU; u++) {
    uid[u] = u;
    for (int i = 0; i < NI; i++) {
      uidx[u * NI + i] = i;
      uval[u * NI + i] = R[u][i];
      iidx[i * NU + u] = u;
      ival[i * NU + u] = R[u][i];
    }
  }
  for (int i = 0; i < NI; i++) iid[i] = i;
  imf_row_batch users = {NU, uid, uptr, uidx, uval}, items = {NI, iid, iptr, iidx, ival};
  float *P = make_factors(NU, k, 21, 0.5), *Q = make_factors(NI, k, 22, 0.5);
  imf_rowsolve_ws *ws;
  assert_int_equal(imf_rowsolve_ws_create(k, &ws), IMF_OK);
  imf_row_params p = {.kind = IMF_ROW_ALS, .k = k, .lambda = 0.01};
  imf_other_side oq = {NI, Q, NULL}, op = {NU, P, NULL};
  double err[21];
  for (int it = 0; it <= 20; it++) {
    if (it > 0) {
      assert_int_equal(imf_rowsolve(&p, &users, &oq, P, NULL, ws), IMF_OK);
      assert_int_equal(imf_rowsolve(&p, &items, &op, Q, NULL, ws), IMF_OK);
    }
    err[it] = 0;
    for (int u = 0; u < NU; u++)
      for (int i = 0; i < NI; i++) {
        double s = P[u * k] * Q[i * k] + P[u * k + 1] * Q[i * k + 1] - R[u][i];
        err[it] += s * s;
      }
  }
  for (int it = 2; it <= 20; it++)
    if (err[it] > err[it - 1] * 1.01 + 1e-6) fail_msg("error rose at %d: %g -> %g", it, err[it - 1], err[it]);
  if (!(err[20] < 0.25 * err[0])) fail_msg("error %g -> %g", err[0], err[20]);
  /* The observed 1s score clearly above every cross-cluster 0; the two in-cluster 0s, (4, 2)
   * and (9, 3), are what the model would recommend: above every cross-cluster 0. */
  double min1 = 1e9, max0 = -1e9, minin = 1e9;
  for (int u = 0; u < NU; u++)
    for (int i = 0; i < NI; i++) {
      double s = P[u * k] * Q[i * k] + P[u * k + 1] * Q[i * k + 1];
      int same = (u < 5) == (i < 3);
      if (R[u][i] > 0) min1 = fmin(min1, s);
      else if (!same) max0 = fmax(max0, s);
      else minin = fmin(minin, s);
    }
  if (!(min1 > max0 + 0.4 && minin > max0 + 0.2))
    fail_msg("clusters not separated: min over 1s %g, in-cluster 0s %g, max over cross 0s %g",
             min1, minin, max0);
  print_message("two clusters: squared error %.3f -> %.3f; 1s >= %.3f, in-cluster 0s >= %.3f, "
                "cross 0s <= %.3f\n", err[0], err[20], min1, minin, max0);
  free(P);
  free(Q);
  imf_rowsolve_ws_destroy(&ws);
}

int main(void) {
  openblas_set_num_threads(1);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_als_vs_reference),  cmocka_unit_test(test_ials_cholesky_and_cg),
      cmocka_unit_test(test_bpmf_moments),      cmocka_unit_test(test_determinism),
      cmocka_unit_test(test_errors),            cmocka_unit_test(test_two_clusters),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
