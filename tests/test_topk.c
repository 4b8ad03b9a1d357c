/* test_topk.c - the tiled top-K kernel against a brute-force ranking: every user's K best items
 * (score descending, ties by higher popularity when one is given, then lower item index; excluded
 * items never, NaN never; the popularity prior added to the scores) must equal a full sort of the
 * same float scores. Factors are quantised to a few levels so that ties are common,
 * item counts are not multiples of the 16-item skip blocks or the 512-item tiles, and K
 * ranges from 1 to more than the candidates left. The tests run twice: with the scan this CPU
 * picks (32-wide with AVX-512) and with IMF_TOPK_BLOCK=16 (the 16-wide scan). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "rng.h"
#include "split.h"
#include "topk.h"

typedef struct {
  float s;
  int32_t i;
} cand;

static const float *g_count; /* the brute force's popularity (NULL: ties by index) */
static int cmp_cand(const void *a, const void *b) {
  const cand *x = a, *y = b;
  if (x->s != y->s) return x->s > y->s ? -1 : 1;
  if (g_count && g_count[x->i] != g_count[y->i]) return g_count[x->i] > g_count[y->i] ? -1 : 1;
  return (x->i > y->i) - (x->i < y->i);
}

/* popmode 0: no popularity; 1: counts 0..3 (ties among ties); 2: the same with a prior of
 * count / 4 (exact in float, like the factor levels) */
static void check_pop(int64_t nu, int64_t ni, int kw, int K, int with_bias, int with_excl, uint64_t seed,
                      int popmode) {
  float *cnt = malloc(sizeof(float) * (size_t)(ni + 1)), *pri = malloc(sizeof(float) * (size_t)(ni + 1));
  for (int64_t j = 0; j < ni; j++) {
    cnt[j] = (float)(int)(imf_split_u01(seed, j, 6) * 4);
    pri[j] = cnt[j] * 0.25f;
  }
  imf_item_pop ip = {ni, cnt, popmode == 2 ? pri : NULL, popmode == 2 ? 1.0 : 0.0};
  g_count = popmode ? cnt : NULL;
  float *X = malloc(sizeof(float) * (size_t)(nu * kw + 1));
  float *Y = malloc(sizeof(float) * (size_t)(ni * kw + 1));
  float *xb = malloc(sizeof(float) * (size_t)nu), *yb = malloc(sizeof(float) * (size_t)ni);
  /* levels -1, -0.5, 0, 0.5, 1: many exactly equal dot products */
  for (int64_t j = 0; j < nu * kw; j++) X[j] = (float)((int)(imf_split_u01(seed, j, 1) * 5) - 2) * 0.5f;
  for (int64_t j = 0; j < ni * kw; j++) Y[j] = (float)((int)(imf_split_u01(seed, j, 2) * 5) - 2) * 0.5f;
  for (int64_t j = 0; j < nu; j++) xb[j] = (float)((int)(imf_split_u01(seed, j, 3) * 4)) * 0.25f;
  for (int64_t j = 0; j < ni; j++) yb[j] = (float)((int)(imf_split_u01(seed, j, 4) * 4)) * 0.25f;
  if (with_bias && ni > 7) yb[7] = NAN; /* a broken item bias never ranks */
  int64_t *ptr = calloc((size_t)nu + 1, sizeof *ptr);
  int32_t *idx = malloc(sizeof(int32_t) * (size_t)(nu * ni + 1));
  for (int64_t u = 0; u < nu; u++) {
    ptr[u + 1] = ptr[u];
    if (!with_excl) continue;
    for (int64_t i = 0; i < ni; i++)
      if (imf_split_u01(seed, u * ni + i, 5) < 0.3) idx[ptr[u + 1]++] = (int32_t)i;
  }
  int32_t *items = malloc(sizeof(int32_t) * (size_t)(nu * K));
  float *scores = malloc(sizeof(float) * (size_t)(nu * K));
  int *count = malloc(sizeof(int) * (size_t)nu);
  imf_topk_query q = {nu, kw, X, with_bias ? xb : NULL, ni, Y, with_bias ? yb : NULL, 3.0,
                      with_excl ? ptr : NULL, idx, popmode ? &ip : NULL};
  assert_int_equal(imf_topk(&q, K, items, scores, count, NULL), IMF_OK);
  cand *all = malloc(sizeof(cand) * (size_t)ni);
  for (int64_t u = 0; u < nu; u++) {
    int n = 0;
    int64_t e = ptr[u];
    for (int64_t i = 0; i < ni; i++) {
      if (with_excl && e < ptr[u + 1] && idx[e] == i) { e++; continue; }
      float s = 0; /* the same float dot product sgemm makes is not guaranteed: use exact levels */
      for (int f = 0; f < kw; f++) s += X[u * kw + f] * Y[i * kw + f];
      if (with_bias) s += yb[i];
      if (popmode == 2) s += pri[i];
      if (s != s) continue;
      all[n++] = (cand){s, (int32_t)i};
    }
    qsort(all, (size_t)n, sizeof *all, cmp_cand);
    int want = n < K ? n : K;
    assert_int_equal(count[u], want);
    float add = (float)(3.0 + (with_bias ? xb[u] : 0.0f));
    for (int j = 0; j < want; j++) {
      assert_int_equal(items[u * K + j], all[j].i);
      assert_true(scores[u * K + j] == all[j].s + add);
    }
    for (int j = want; j < K; j++) assert_int_equal(items[u * K + j], -1);
  }
  free(all); free(items); free(scores); free(count); free(ptr); free(idx);
  free(X); free(Y); free(xb); free(yb); free(cnt); free(pri);
  g_count = NULL;
}

static void check(int64_t nu, int64_t ni, int kw, int K, int with_bias, int with_excl, uint64_t seed) {
  for (int popmode = 0; popmode < 3; popmode++) check_pop(nu, ni, kw, K, with_bias, with_excl, seed, popmode);
}

/* Dot products of multiples of 0.5 with kw <= 8 terms are exact in float whatever the order of
 * summation, so the brute force and sgemm agree bit for bit. */
static void test_small(void **s) { (void)s; check(5, 37, 4, 3, 1, 1, 11); }
static void test_k1(void **s) { (void)s; check(40, 333, 6, 1, 1, 1, 12); }
static void test_no_bias_no_excl(void **s) { (void)s; check(33, 1000, 8, 10, 0, 0, 13); }
static void test_across_tiles(void **s) { (void)s; check(130, 4100 + 9, 5, 20, 1, 1, 14); }
static void test_k_exceeds(void **s) { (void)s; check(7, 21, 3, 30, 1, 1, 15); }
static void test_zero_factors(void **s) { (void)s; check(9, 50, 0, 5, 1, 1, 16); }

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_small),         cmocka_unit_test(test_k1),
      cmocka_unit_test(test_no_bias_no_excl), cmocka_unit_test(test_across_tiles),
      cmocka_unit_test(test_k_exceeds),     cmocka_unit_test(test_zero_factors),
  };
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  setenv("IMF_TOPK_BLOCK", "16", 1);
  failed += cmocka_run_group_tests(tests, NULL, NULL);
  return failed;
}
