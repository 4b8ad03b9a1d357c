/* test_metrics.c - the ranking metrics against hand-computed values (docs/METRICS.md), the
 * tiled top-K kernel against a brute-force sort, on the 10-user x 5-item example with K = 2
 * factors and on a random case larger than one tile, and the prediction dot product's fixed
 * order of sums. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "metrics.h"
#include "model.h"
#include "topk.h"

#define NEAR(a, b) assert_true(fabs((a) - (b)) < 1e-4)

static void test_hand_cases(void **state) {
  (void)state;
  /* rec = 3,1,7; relevant {1,7,9}. K=3: hits at ranks 2 and 3.
   * P = 2/3; R = 2/min(3,3) = 2/3; F1 = 2/3; DCG = 1/log2(3) + 1/log2(4) = 0.63093 + 0.5;
   * IDCG = 1 + 0.63093 + 0.5; NDCG = 1.13093/2.13093 = 0.53072; AP = (1/2 + 2/3)/3 = 0.38889 */
  int32_t rec[3] = {3, 1, 7}, rel[3] = {1, 7, 9};
  imf_rank_sums s = {.k = 3};
  imf_rank_metrics_add(rec, 3, rel, 3, 3, &s);
  NEAR(s.precision, 2.0 / 3);
  NEAR(s.recall, 2.0 / 3);
  NEAR(s.f1, 2.0 / 3);
  NEAR(s.ndcg, 0.53072);
  NEAR(s.ap, 0.38889);
  NEAR(s.hit, 1);
  /* K=2: one hit at rank 2. P = 1/2; R = 1/min(2,3) = 1/2; NDCG = 0.63093/1.63093 = 0.38685;
   * AP = (1/2)/2 = 0.25 */
  imf_rank_sums t = {.k = 2};
  imf_rank_metrics_add(rec, 3, rel, 3, 2, &t);
  NEAR(t.precision, 0.5);
  NEAR(t.recall, 0.5);
  NEAR(t.ndcg, 0.38685);
  NEAR(t.ap, 0.25);
  /* K=10 but one candidate only, and it is the single relevant item: P = 1/10 (K is the
   * denominator even when fewer were ranked), R = 1, NDCG = 1, AP = 1, F1 = 0.2/1.1 */
  int32_t one = 5;
  imf_rank_sums u = {.k = 10};
  imf_rank_metrics_add(&one, 1, &one, 1, 10, &u);
  NEAR(u.precision, 0.1);
  NEAR(u.recall, 1);
  NEAR(u.ndcg, 1);
  NEAR(u.ap, 1);
  NEAR(u.f1, 0.2 / 1.1);
  /* no hit */
  int32_t miss[2] = {0, 2};
  imf_rank_metrics_add(miss, 2, rel, 3, 2, &t);
  assert_true(t.users == 2);
  NEAR(t.hit, 1);
  imf_rank_means mm;
  imf_rank_means_of(&t, 0.4, &mm);
  NEAR(mm.precision, 0.25);
  NEAR(mm.hit_rate, 0.5);
  NEAR(mm.coverage, 0.4);
  int ks[16], nk;
  assert_int_equal(imf_parse_cutoffs("20,5,20,10", ks, &nk), IMF_OK);
  assert_int_equal(nk, 3);
  assert_int_equal(ks[0], 5);
  assert_int_equal(ks[2], 20);
  assert_int_not_equal(imf_parse_cutoffs("0,x", ks, &nk), IMF_OK);
}

/* 10 users x 5 items, K = 2 factors, rated pattern of the training tests; with these factors
 * user 0 (1, 0) scores items 1.0, 0.8, 0.5, 0.2, 0.0 and rated {0, 1}: top-2 = items 2, 3. */
static void test_topk_tiny(void **state) {
  (void)state;
  static const char *rows[10] = {"11000", "01100", "00110", "00011", "10001",
                                 "11100", "00111", "10101", "01010", "11111"};
  float Q[10] = {1, 0, 0.8f, 0.2f, 0.5f, 0.5f, 0.2f, 0.8f, 0, 1};
  float P[20];
  for (int u = 0; u < 10; u++) {
    P[2 * u] = (float)(10 - u) / 10;
    P[2 * u + 1] = (float)u / 10;
  }
  int64_t ptr[11] = {0};
  int32_t idx[50];
  for (int u = 0; u < 10; u++) {
    ptr[u + 1] = ptr[u];
    for (int i = 0; i < 5; i++)
      if (rows[u][i] == '1') idx[ptr[u + 1]++] = i;
  }
  int32_t items[20];
  float scores[20];
  int count[10];
  imf_topk_query q = {10, 2, P, NULL, 5, Q, NULL, 0.0, ptr, idx, NULL};
  assert_int_equal(imf_topk(&q, 2, items, scores, count, NULL), IMF_OK);
  assert_int_equal(count[0], 2);
  assert_int_equal(items[0], 2);
  assert_int_equal(items[1], 3);
  NEAR(scores[0], 0.5);
  NEAR(scores[1], 0.2);
  assert_int_equal(count[9], 0); /* rated everything */
  assert_int_equal(items[18], -1);
  /* brute force for every user */
  for (int u = 0; u < 10; u++) {
    int best[2] = {-1, -1};
    float bs[2] = {-1e30f, -1e30f};
    for (int i = 0; i < 5; i++) {
      if (rows[u][i] == '1') continue;
      float s = P[2 * u] * Q[2 * i] + P[2 * u + 1] * Q[2 * i + 1];
      if (s > bs[0]) {
        bs[1] = bs[0], best[1] = best[0];
        bs[0] = s, best[0] = i;
      } else if (s > bs[1]) {
        bs[1] = s, best[1] = i;
      }
    }
    for (int j = 0; j < count[u]; j++) assert_int_equal(items[u * 2 + j], best[j]);
  }
}

static int cmp_desc(const void *a, const void *b) {
  const float *x = a, *y = b;
  return (x[0] < y[0]) - (x[0] > y[0]);
}

/* More users and items than one tile, biases, exclusions: equal to a full sort. */
static void test_topk_random(void **state) {
  (void)state;
  const int nu = 300, ni = 5000, kw = 7, K = 25;
  float *X = malloc(sizeof(float) * nu * kw), *Y = malloc(sizeof(float) * ni * kw), *yb = malloc(sizeof(float) * ni),
        *xb = malloc(sizeof(float) * nu);
  srand(3);
  for (int j = 0; j < nu * kw; j++) X[j] = (float)rand() / RAND_MAX - 0.5f;
  for (int j = 0; j < ni * kw; j++) Y[j] = (float)rand() / RAND_MAX - 0.5f;
  for (int j = 0; j < ni; j++) yb[j] = (float)rand() / RAND_MAX * 0.1f;
  for (int j = 0; j < nu; j++) xb[j] = (float)j;
  int64_t *ptr = calloc(nu + 1, sizeof *ptr);
  int32_t *idx = malloc(sizeof(int32_t) * nu * 50);
  for (int u = 0; u < nu; u++) {
    ptr[u + 1] = ptr[u];
    for (int i = u % 7; i < ni && ptr[u + 1] - ptr[u] < 50; i += 97) idx[ptr[u + 1]++] = i;
  }
  int32_t *items = malloc(sizeof(int32_t) * nu * K);
  float *scores = malloc(sizeof(float) * nu * K), *all = malloc(sizeof(float) * 2 * ni);
  int *count = malloc(sizeof(int) * nu);
  imf_topk_query q = {nu, kw, X, xb, ni, Y, yb, 1.5, ptr, idx, NULL};
  assert_int_equal(imf_topk(&q, K, items, scores, count, NULL), IMF_OK);
  for (int u = 0; u < nu; u++) {
    int n = 0;
    for (int i = 0; i < ni; i++) {
      int ex = 0;
      for (int64_t e = ptr[u]; e < ptr[u + 1]; e++) ex |= idx[e] == i;
      if (ex) continue;
      double s = 0;
      for (int c = 0; c < kw; c++) s += (double)X[u * kw + c] * Y[i * kw + c];
      all[2 * n] = (float)(s + yb[i]);
      all[2 * n + 1] = (float)i;
      n++;
    }
    qsort(all, (size_t)n, 2 * sizeof(float), cmp_desc);
    assert_int_equal(count[u], K);
    for (int j = 0; j < K; j++) {
      /* same score (up to sgemm rounding); same item unless a near-tie */
      assert_true(fabs((scores[u * K + j] - 1.5 - u) - all[2 * j]) < 1e-4);
      if (j + 1 < K && all[2 * j] - all[2 * j + 2] > 1e-4 && (j == 0 || all[2 * j - 2] - all[2 * j] > 1e-4))
        assert_int_equal(items[u * K + j], (int)all[2 * j + 1]);
    }
  }
  free(X), free(Y), free(yb), free(xb), free(ptr), free(idx), free(items), free(scores), free(all), free(count);
}

/* imf_model_dot sums in 8 lanes (lane = index mod 8), then ((l0+l4)+(l2+l6))+((l1+l5)+(l3+l7)),
 * whichever code path (vector or plain C) the machine takes: every prediction, and so every
 * metric and the determinism across rank counts, rests on that order. Widths around the vector
 * width and values of mixed magnitude, where another order would round differently. */
static void test_model_dot_order(void **state) {
  (void)state;
  static const int kws[] = {1, 3, 7, 8, 9, 16, 17, 40, 64, 71};
  uint64_t x = 88172645463325252ull;
  int differs = 0; /* how often the naive left-to-right sum disagrees: the check has teeth */
  for (size_t t = 0; t < sizeof kws / sizeof kws[0]; t++) {
    const int kw = kws[t];
    imf_model *m = NULL;
    assert_int_equal(imf_model_create(IMF_MODEL_ALS, kw, 3, 3, 0, &m), IMF_OK);
    for (int64_t j = 0; j < 3 * (int64_t)kw; j++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      const double r = (double)(x >> 11) / 9007199254740992.0 - 0.5;
      m->P[j] = (float)(r * (j % 5 == 0 ? 1e4 : 1.0));
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      m->Q[j] = (float)((double)(x >> 11) / 9007199254740992.0 - 0.3);
    }
    for (int64_t u = 0; u < 3; u++)
      for (int64_t i = 0; i < 3; i++) {
        const float *p = m->P + u * kw, *q = m->Q + i * kw;
        double l[8] = {0, 0, 0, 0, 0, 0, 0, 0}, naive = 0;
        for (int a = 0; a < kw; a++) {
          l[a % 8] += (double)p[a] * (double)q[a];
          naive += (double)p[a] * (double)q[a];
        }
        const double want = ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
        const double got = imf_model_dot(m, u, i);
        if (memcmp(&got, &want, sizeof got) != 0)
          fail_msg("kw=%d (%lld,%lld): dot %.17g, the lane order gives %.17g", kw, (long long)u, (long long)i, got,
                   want);
        differs += naive != want;
      }
    imf_model_destroy(&m);
  }
  assert_true(differs > 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_hand_cases), cmocka_unit_test(test_topk_tiny),
                                     cmocka_unit_test(test_topk_random), cmocka_unit_test(test_model_dot_order)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
