/* bench_rowsolve.c - throughput of the shared row solver against the practical BLAS limit.
 *
 * For k = 32, 64, 128: 20k rows with power-law rating counts (mean about 100) against an other
 * side of 20k rows, explicit ALS without biases. Prints the median of 5 runs: seconds per
 * sweep, rows/s, the GFLOP/s of the Gram accumulation (n k (k+1) flops per row, as BLAS counts
 * ssyrk) both over the Gram phase (gather + ssyrk) and over the whole solve, next to the
 * single-thread cblas_sgemm GFLOP/s on 1024^3 measured between the runs, and the ratios.
 * Wall-clock times: on a loaded machine both columns drop together.
 *
 * `bench_rowsolve fixed` instead prints microseconds per row for fixed small counts, which is
 * how the hand-loop threshold (IMF_ROW_TINY in rowsolve.c) was chosen. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "error.h"
#include "rng.h"
#include "rowsolve.h"

#define NROWS 20000
#define RUNS 5
/* other-side rows: 20k by default (a 5 MB table at k = 64); IMF_BENCH_OTHER=200000 makes the
 * gather miss the way the item half-sweep of a 200k-user set does */
static int64_t NOTHER = 20000;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_d);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void *xalloc(size_t n, size_t size) {
  void *p = NULL;
  if (imf_alloc(&p, n, size) != IMF_OK) {
    fprintf(stderr, "bench_rowsolve: %s\n", imf_last_error());
    exit(1);
  }
  return p;
}

/* Single-thread sgemm on 1024^3: the practical float peak of this core. Measured between the
 * solver runs, so that both see the same machine load. */
static float *gA, *gB, *gC;
static double sgemm_gflops(void) {
  const int n = 1024;
  if (!gA) {
    gA = xalloc((size_t)n * n, sizeof(float));
    gB = xalloc((size_t)n * n, sizeof(float));
    gC = xalloc((size_t)n * n, sizeof(float));
    for (size_t i = 0; i < (size_t)n * n; i++) {
      gA[i] = (float)((i % 7) * 0.1);
      gB[i] = (float)((i % 5) * 0.2);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, gA, n, gB, n, 0.0f, gC, n);
  }
  double t0 = now_s();
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, gA, n, gB, n, 0.0f, gC, n);
  return 2.0 * n * (double)n * n / (now_s() - t0) / 1e9;
}

typedef struct {
  imf_row_batch b;
  int64_t *row_id, *ptr;
  int32_t *idx;
  float *val;
} rowset;

/* counts[r] given, or power law (Pareto, shape 2, minimum 50: mean 100), capped at NOTHER. */
static rowset make_rows(int64_t nrows, int64_t fixed, uint64_t seed) {
  rowset s;
  imf_rng g;
  imf_rng_init(&g, seed, 1);
  s.row_id = xalloc((size_t)nrows, sizeof(int64_t));
  s.ptr = xalloc((size_t)nrows + 1, sizeof(int64_t));
  for (int64_t r = 0; r < nrows; r++) {
    int64_t n = fixed;
    if (fixed < 0) {
      double x = 50.0 / sqrt(imf_rng_uniform(&g));
      n = x > NOTHER ? NOTHER : (int64_t)x;
    }
    s.row_id[r] = r;
    s.ptr[r + 1] = s.ptr[r] + n;
  }
  int64_t nnz = s.ptr[nrows];
  s.idx = xalloc((size_t)nnz + 1, sizeof(int32_t));
  s.val = xalloc((size_t)nnz + 1, sizeof(float));
  for (int64_t i = 0; i < nnz; i++) {
    s.idx[i] = (int32_t)(imf_rng_u32(&g) % NOTHER);
    s.val[i] = (float)(1 + imf_rng_u32(&g) % 5);
  }
  s.b = (imf_row_batch){nrows, s.row_id, s.ptr, s.idx, s.val};
  return s;
}

static void free_rows(rowset *s) {
  imf_free(&s->row_id);
  imf_free(&s->ptr);
  imf_free(&s->idx);
  imf_free(&s->val);
}

static float *make_factors(int64_t n, int k) {
  float *Y = xalloc((size_t)n * k, sizeof(float));
  imf_rng g;
  imf_rng_init(&g, 42, 2);
  for (int64_t i = 0; i < n * k; i++) Y[i] = (float)(0.1 * imf_rng_normal(&g));
  return Y;
}

static float *g_bias_out; /* row biases when the table runs with biases */
static void run_or_die(const imf_row_params *p, const rowset *s, const imf_other_side *o, float *X,
                       imf_rowsolve_ws *ws) {
  if (imf_rowsolve(p, &s->b, o, X, p->with_bias ? g_bias_out : NULL, ws) != IMF_OK) {
    fprintf(stderr, "bench_rowsolve: %s\n", imf_last_error());
    exit(1);
  }
}

static void table(void) {
  /* IMF_BENCH_KS="64" runs only those k; IMF_BENCH_BIAS=1 solves with biases (d = k + 1, as
   * `train` does for ALS) */
  const char *eks = getenv("IMF_BENCH_KS"), *ebias = getenv("IMF_BENCH_BIAS");
  const int bias = ebias && atoi(ebias) > 0;
  printf("row solver, explicit ALS-WR (%s), %d rows x other side %lld, power-law counts, "
         "1 thread, median of %d\n", bias ? "with biases" : "no bias", NROWS, (long long)NOTHER, RUNS);
  printf("%4s %8s %9s %10s %11s %11s %10s %7s %7s\n", "k", "mean n", "seconds", "rows/s",
         "gram GF/s", "whole GF/s", "sgemm GF/s", "gram%", "whole%");
  rowset s = make_rows(NROWS, -1, 7);
  double mean_n = (double)s.ptr[NROWS] / NROWS;
  int ks[8] = {32, 64, 128}, nk = 3;
  if (eks) {
    nk = 0;
    for (char *e = (char *)eks; *e && nk < 8;) {
      long v = strtol(e, &e, 10);
      if (v > 0) ks[nk++] = (int)v;
      while (*e == ' ' || *e == ',') e++;
      if (*e && (*e < '0' || *e > '9')) break;
    }
  }
  for (int t = 0; t < nk; t++) {
    int k = ks[t];
    float *Y = make_factors(NOTHER, k), *X = xalloc((size_t)NROWS * k, sizeof(float));
    float *bo = xalloc(NOTHER, sizeof(float)), *bu = xalloc(NROWS, sizeof(float));
    for (int64_t i = 0; i < NOTHER; i++) bo[i] = (float)(0.01 * (double)(i % 17));
    imf_other_side o = {NOTHER, Y, bias ? bo : NULL};
    imf_row_params p = {.kind = IMF_ROW_ALS, .k = k, .mu = 3.0, .lambda = 0.05, .with_bias = bias,
                        .lambda_bias = 0.05};
    imf_rowsolve_ws *ws;
    if (imf_rowsolve_ws_create(k, &ws) != IMF_OK) exit(1);
    g_bias_out = bu;
    run_or_die(&p, &s, &o, X, ws); /* warm-up: caches, workspace growth */
    double tot[RUNS], gram[RUNS], sg[RUNS], flops = 0;
    for (int r = 0; r < RUNS; r++) {
      sg[r] = sgemm_gflops();
      imf_rowsolve_ws_reset_stats(ws);
      run_or_die(&p, &s, &o, X, ws);
      imf_rowsolve_stats st;
      imf_rowsolve_ws_stats(ws, &st);
      tot[r] = st.total_seconds;
      gram[r] = st.gram_seconds;
      flops = st.gram_flops;
    }
    double T = median(tot, RUNS), G = median(gram, RUNS), peak = median(sg, RUNS);
    printf("%4d %8.1f %9.3f %10.0f %11.1f %11.1f %10.1f %6.0f%% %6.0f%%\n", k, mean_n, T,
           NROWS / T, flops / G / 1e9, flops / T / 1e9, peak, 100.0 * flops / G / 1e9 / peak,
           100.0 * flops / T / 1e9 / peak);
    fflush(stdout);
    imf_rowsolve_ws_destroy(&ws);
    imf_free(&Y);
    imf_free(&X);
    imf_free(&bo);
    imf_free(&bu);
  }
  free_rows(&s);
  imf_free(&gA);
  imf_free(&gB);
  imf_free(&gC);
}

/* Microseconds per row (whole solve and Gram phase) for fixed counts. */
static void fixed_counts(void) {
  const int ks[3] = {32, 64, 128};
  const int64_t ns[] = {1, 2, 3, 4, 5, 6, 8, 12, 16, 32, 64, 128, 256, 1024};
  const int nn = (int)(sizeof ns / sizeof ns[0]);
  printf("%4s %6s %12s %12s %10s\n", "k", "n", "us/row", "gram us/row", "gram GF/s");
  for (int t = 0; t < 3; t++) {
    int k = ks[t];
    float *Y = make_factors(NOTHER, k);
    imf_other_side o = {NOTHER, Y, NULL};
    imf_row_params p = {.kind = IMF_ROW_ALS, .k = k, .mu = 3.0, .lambda = 0.05};
    imf_rowsolve_ws *ws;
    if (imf_rowsolve_ws_create(k, &ws) != IMF_OK) exit(1);
    for (int i = 0; i < nn; i++) {
      int64_t rows = 2000000 / (ns[i] * k) + 10;
      rowset s = make_rows(rows, ns[i], 9);
      float *X = xalloc((size_t)rows * k, sizeof(float));
      run_or_die(&p, &s, &o, X, ws);
      double tot[RUNS], gram[RUNS], flops = 0;
      for (int r = 0; r < RUNS; r++) {
        imf_rowsolve_ws_reset_stats(ws);
        run_or_die(&p, &s, &o, X, ws);
        imf_rowsolve_stats st;
        imf_rowsolve_ws_stats(ws, &st);
        tot[r] = st.total_seconds;
        gram[r] = st.gram_seconds;
        flops = st.gram_flops;
      }
      double T = median(tot, RUNS), G = median(gram, RUNS);
      printf("%4d %6lld %12.3f %12.3f %10.1f\n", k, (long long)ns[i], 1e6 * T / rows,
             1e6 * G / rows, flops / G / 1e9);
      imf_free(&X);
      free_rows(&s);
    }
    imf_rowsolve_ws_destroy(&ws);
    imf_free(&Y);
  }
}

int main(int argc, char **argv) {
  openblas_set_num_threads(1);
  const char *eo = getenv("IMF_BENCH_OTHER");
  if (eo && atoll(eo) > 0) NOTHER = atoll(eo);
  printf("%s\n", openblas_get_config());
  if (argc > 1 && strcmp(argv[1], "fixed") == 0) fixed_counts();
  else table();
  return 0;
}
