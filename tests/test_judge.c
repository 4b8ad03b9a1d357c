/* test_judge.c - the local parts of update's judgement (src/judge.c): update.metric parsing and
 * validation, the metric each model type is judged by (auto), the relevance threshold, and the
 * paired bootstrap on cases whose answer is known. The collective parts are exercised end to end
 * by tests/e2e_judge.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "config.h"
#include "judge.h"
#include "testutil.h"

static void test_parse(void **state) {
  (void)state;
  imf_judge_kind k;
  int K = -1;
  assert_true(imf_judge_metric_parse("auto", &k, &K) && k == IMF_JUDGE_AUTO);
  assert_true(imf_judge_metric_parse("rmse", &k, &K) && k == IMF_JUDGE_RMSE);
  assert_true(imf_judge_metric_parse("ndcg@10", &k, &K) && k == IMF_JUDGE_NDCG && K == 10);
  assert_true(imf_judge_metric_parse("recall@20", &k, &K) && k == IMF_JUDGE_RECALL && K == 20);
  assert_true(imf_judge_metric_parse("map@100000", &k, &K) && k == IMF_JUDGE_MAP && K == 100000);
  const char *bad[] = {"", "ndcg", "ndcg@", "ndcg@0", "ndcg@01", "ndcg@-3", "ndcg@10x", "map@100001", "NDCG@10",
                       "precision@10", "rmse@10"};
  for (size_t j = 0; j < sizeof bad / sizeof bad[0]; j++) assert_false(imf_judge_metric_parse(bad[j], NULL, NULL));
  imf_config *c;
  assert_int_equal(imf_config_create(&c), IMF_OK);
  assert_string_equal(imf_cfg_str(c, "update.metric"), "auto");
  assert_int_equal(imf_cfg_int(c, "update.k"), 10);
  assert_int_equal(imf_config_set(c, "update.metric=ndcg@0"), IMF_ERR_USAGE);
  assert_non_null(strstr(imf_last_error(), "update.metric must be auto, rmse, ndcg@K, recall@K or map@K"));
  assert_int_equal(imf_config_set(c, "update.k=0"), IMF_ERR_USAGE);
  assert_int_equal(imf_config_set(c, "update.metric=recall@5"), IMF_OK);
  imf_config_destroy(&c);
}

static void test_metric_for(void **state) {
  (void)state;
  imf_config *c;
  assert_int_equal(imf_config_create(&c), IMF_OK);
  imf_model m;
  memset(&m, 0, sizeof m);
  imf_judge_metric jm;
  m.type = IMF_MODEL_ALS;
  assert_int_equal(imf_judge_metric_for(c, &m, &jm), IMF_OK);
  assert_string_equal(jm.name, "rmse");
  m.type = IMF_MODEL_BPMF;
  assert_int_equal(imf_judge_metric_for(c, &m, &jm), IMF_OK);
  assert_string_equal(jm.name, "rmse");
  m.type = IMF_MODEL_IALS;
  assert_int_equal(imf_judge_metric_for(c, &m, &jm), IMF_OK);
  assert_string_equal(jm.name, "ndcg@10");
  assert_true(isnan(jm.threshold)); /* set by imf_judge_relevance_threshold once the store is open */
  assert_int_equal(imf_config_set(c, "update.k=20"), IMF_OK);
  m.type = IMF_MODEL_EASE;
  assert_int_equal(imf_judge_metric_for(c, &m, &jm), IMF_OK);
  assert_string_equal(jm.name, "ndcg@20");
  assert_int_equal(jm.k, 20);
  assert_int_equal(imf_config_set(c, "update.metric=rmse"), IMF_OK);
  assert_int_equal(imf_judge_metric_for(c, &m, &jm), IMF_ERR_USAGE); /* EASE scores are not ratings */
  assert_int_equal(imf_config_set(c, "update.metric=map@5"), IMF_OK);
  m.type = IMF_MODEL_ALS; /* an explicit model judged by a ranking metric: eval.relevance_threshold */
  assert_int_equal(imf_judge_metric_for(c, &m, &jm), IMF_OK);
  assert_string_equal(jm.name, "map@5");
  /* the threshold is resolved once the store is open (auto: its recorded scale); a number wins */
  assert_int_equal(imf_config_set(c, "eval.relevance_threshold=3.5"), IMF_OK);
  double thr = NAN;
  assert_int_equal(imf_judge_relevance_threshold(c, &m, NULL, &thr), IMF_OK);
  assert_true(thr == 3.5);
  m.type = IMF_MODEL_POP; /* implicit: the holdout holds its positives alone */
  assert_int_equal(imf_judge_relevance_threshold(c, &m, NULL, &thr), IMF_OK);
  assert_true(isnan(thr));
  imf_config_destroy(&c);
}

static void test_bootstrap(void **state) {
  (void)state;
  double mean, lo, hi;
  /* every difference equal: every resample has that mean */
  double d1[5] = {0.25, 0.25, 0.25, 0.25, 0.25};
  imf_judge_bootstrap(d1, 5, &mean, &lo, &hi);
  assert_true(mean == 0.25 && lo == 0.25 && hi == 0.25);
  /* one user */
  double d2[1] = {-3};
  imf_judge_bootstrap(d2, 1, &mean, &lo, &hi);
  assert_true(mean == -3 && lo == -3 && hi == -3);
  /* none */
  imf_judge_bootstrap(NULL, 0, &mean, &lo, &hi);
  assert_true(isnan(mean) && isnan(lo) && isnan(hi));
  /* sorted first: the same interval for any order of the same differences; the interval lies
   * within [min, max] and holds the mean; 1000 users of -1 and +1 (mean 0): the resample
   * means' sd is 1/sqrt(1000) = 0.0316, the 95% ends near +-0.062 */
  enum { N = 1000 };
  double *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b);
  assert_non_null(a);
  assert_non_null(b);
  for (int j = 0; j < N; j++) a[j] = b[N - 1 - j] = j % 2 ? 1.0 : -1.0;
  double m2, lo2, hi2;
  imf_judge_bootstrap(a, N, &mean, &lo, &hi);
  imf_judge_bootstrap(b, N, &m2, &lo2, &hi2);
  assert_true(mean == m2 && lo == lo2 && hi == hi2);
  assert_true(mean == 0 && lo < 0 && hi > 0);
  assert_true(lo > -0.08 && lo < -0.045 && hi < 0.08 && hi > 0.045);
  free(a);
  free(b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse),
      cmocka_unit_test(test_metric_for),
      cmocka_unit_test(test_bootstrap),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
