/* mpi_ease.c - EASE on ScaLAPACK (ease.h): the item-item matrix B computed on the block-cyclic
 * grid of P ranks (each rank contributing only its own users to G) matches a serial LAPACKE
 * computation on the full G (dpotrf + dpotri, same formula) to 1e-8 relative; repeated and
 * unsorted pairs count once; the replicated model form (P = X, Q = B^T) scores X B. Run by
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
#include "ease.h"
#include "split.h"

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

  /* the replicated model scores X B */
  imf_model *m = NULL;
  assert_int_equal(imf_ease_model(MPI_COMM_WORLD, &r, nu, ni, lambda, &m), IMF_OK);
  assert_int_equal(m->type, IMF_MODEL_EASE);
  assert_int_equal(m->kw, (int)ni);
  assert_false(m->with_bias);
  assert_true(m->mu == 0);
  for (int64_t u = 0; u < nu; u += 37)
    for (int64_t i = 0; i < ni; i += 5) {
      double s = 0;
      for (int64_t j = 0; j < ni; j++) s += x[u * ni + j] * ref[i * ni + j];
      assert_true(fabs(imf_model_predict(m, u, i) - s) <= 1e-5 * (1 + fabs(s)));
    }
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

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_matches_serial), cmocka_unit_test(test_several_blocks),
                                     cmocka_unit_test(test_repeated_unsorted), cmocka_unit_test(test_bad_lambda)};
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  MPI_Finalize();
  return rc;
}
