/* mpi_topk.c - distributed scoring: imf_eval_block over user ranges on P ranks gives the same
 * rating and ranking metrics as one rank scoring every user (sums reduce exactly; the top-K
 * lists do not depend on the tiling or the rank count). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include "evaluate.h"
#include "rng.h"
#include "split.h"

static void test_ranks_agree(void **state) {
  (void)state;
  const int64_t nu = 230, ni = 2600;
  imf_model *m = NULL;
  assert_int_equal(imf_model_create(IMF_MODEL_ALS, 6, nu, ni, 1, &m), IMF_OK);
  m->mu = 3.5;
  for (int64_t j = 0; j < nu * 6; j++) m->P[j] = (float)(imf_split_u01(1, j, 0) - 0.5);
  for (int64_t j = 0; j < ni * 6; j++) m->Q[j] = (float)(imf_split_u01(2, j, 0) - 0.5);
  for (int64_t j = 0; j < nu; j++) m->bu[j] = (float)(imf_split_u01(3, j, 0) - 0.5);
  for (int64_t j = 0; j < ni; j++) m->bi[j] = (float)(imf_split_u01(4, j, 0) - 0.5);
  imf_eval_opts o = {.nk = 3, .ks = {1, 10, 50}, .threshold = 4, .clip_lo = 1, .clip_hi = 5, .rating_metrics = 1};
  imf_metrics r[2];
  for (int pass = 0; pass < 2; pass++) {
    MPI_Comm comm = pass == 0 ? MPI_COMM_WORLD : MPI_COMM_SELF;
    int64_t lo, hi;
    imf_user_range(comm, nu, &lo, &hi);
    int64_t *ptr = calloc((size_t)(hi - lo + 1), sizeof *ptr);
    int32_t *idx = malloc(sizeof(int32_t) * (size_t)(hi - lo + 1) * (size_t)ni);
    imf_ratings test = {0};
    for (int64_t u = lo; u < hi; u++) {
      ptr[u - lo + 1] = ptr[u - lo];
      for (int64_t i = 0; i < ni; i++) {
        double h = imf_split_u01(9, u, i);
        if (h < 0.02) idx[ptr[u - lo + 1]++] = (int32_t)i;
        else if (h < 0.03) imf_ratings_push(&test, (int32_t)u, (int32_t)i, (float)(1 + (int)(h * 1000) % 5), IMF_NO_TIME);
      }
    }
    assert_int_equal(imf_eval_block(comm, m, lo, hi, NULL, NULL, ptr, idx, &test, &o, &r[pass]), IMF_OK);
    free(ptr);
    free(idx);
    imf_ratings_free(&test);
  }
  assert_true(r[0].users_ranked > 100);
  assert_int_equal(r[0].users_ranked, r[1].users_ranked);
  assert_int_equal(r[0].n_ratings, r[1].n_ratings);
  assert_true(fabs(r[0].rmse - r[1].rmse) < 1e-9);
  for (int a = 0; a < 3; a++) {
    assert_true(fabs(r[0].rank[a].precision - r[1].rank[a].precision) < 1e-12);
    assert_true(fabs(r[0].rank[a].ndcg - r[1].rank[a].ndcg) < 1e-12);
    assert_true(fabs(r[0].rank[a].map - r[1].rank[a].map) < 1e-12);
    assert_true(fabs(r[0].rank[a].coverage - r[1].rank[a].coverage) < 1e-12);
  }
  imf_model_destroy(&m);
}

int main(int argc, char **argv) {
  imf_preinit();
  MPI_Init(&argc, &argv);
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_ranks_agree)};
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  MPI_Finalize();
  return rc;
}
