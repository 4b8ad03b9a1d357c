/* test_scale.c - the observed rating scale (min, max, step and their combination), the auto
 * relevance threshold, and the positives/confidence transform of implicit models (src/scale.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "scale.h"
#include "testutil.h"

static void test_scale_of(void **state) {
  (void)state;
  imf_scale s;
  float ints[] = {3, 1, 5, 2, 4, 4, 1};
  imf_scale_of(ints, 7, &s);
  assert_int_equal(s.n, 7);
  assert_true(s.min == 1 && s.max == 5 && s.step == 1);
  float half[] = {0.5f, 3.5f, 5, 2, 4.5f};
  imf_scale_of(half, 5, &s);
  assert_true(s.min == 0.5 && s.max == 5 && s.step == 0.5);
  float odd[] = {1, 3, 5, 5};
  imf_scale_of(odd, 4, &s);
  assert_true(s.step == 2); /* the largest step: every value is 1 + 2j */
  float tenths[11];
  for (int j = 0; j <= 10; j++) tenths[j] = 1.0f + 0.1f * (float)j;
  imf_scale_of(tenths, 11, &s);
  assert_true(fabs(s.step - 0.1) < 1e-6);
  float one[] = {1, 1, 1};
  imf_scale_of(one, 3, &s);
  assert_true(s.min == 1 && s.max == 1 && s.step == 0); /* implicit data: one distinct value */
  imf_scale_of(one, 0, &s);
  assert_int_equal(s.n, 0);
  float cont[1000];
  srand(5);
  for (int j = 0; j < 1000; j++) cont[j] = 1.0f + 4.0f * (float)rand() / (float)RAND_MAX;
  imf_scale_of(cont, 1000, &s);
  assert_true(s.step < 0); /* continuous values: no regular step */
}

static void test_merge_order(void **state) {
  (void)state;
  /* shares of 0..10 in half steps, combined in two orders: the same numbers */
  float a[] = {2, 4, 6}, b[] = {0.5f, 1.5f}, c[] = {10, 7};
  imf_scale sa, sb, sc, x = {0}, y = {0};
  imf_scale_of(a, 3, &sa);
  imf_scale_of(b, 2, &sb);
  imf_scale_of(c, 2, &sc);
  assert_true(sa.step == 2 && sb.step == 1 && sc.step == 3);
  imf_scale_merge(&x, &sa);
  imf_scale_merge(&x, &sb);
  imf_scale_merge(&x, &sc);
  imf_scale_merge(&y, &sc);
  imf_scale_merge(&y, &sb);
  imf_scale_merge(&y, &sa);
  assert_true(x.n == 7 && x.min == 0.5 && x.max == 10 && x.step == 0.5);
  assert_true(y.n == x.n && y.min == x.min && y.max == x.max && y.step == x.step);
  /* an irregular share makes the whole irregular; an empty one changes nothing */
  imf_scale irr = {3, 0, 1, -1}, none = {0};
  imf_scale_merge(&x, &none);
  assert_true(x.step == 0.5);
  imf_scale_merge(&x, &irr);
  assert_true(x.step < 0);
}

static void test_auto_threshold(void **state) {
  (void)state;
  assert_true(imf_scale_auto_threshold(1, 5, 1) == 4);
  assert_true(imf_scale_auto_threshold(1, 5, 0.5) == 4);
  assert_true(imf_scale_auto_threshold(0.5, 5, 0.5) == 4);
  assert_true(imf_scale_auto_threshold(0, 10, 1) == 8);
  assert_true(imf_scale_auto_threshold(0, 10, 0.5) == 7.5);
  assert_true(imf_scale_auto_threshold(1, 10, 1) == 8);
  assert_true(imf_scale_auto_threshold(0, 1, 0) == 0.75);
  assert_true(imf_scale_auto_threshold(1, 1, 0) == 1);
}

static void test_relevance_threshold(void **state) {
  (void)state;
  imf_config *c;
  double t = 0;
  imf_scale s010 = {100, 0, 10, 1};
  assert_int_equal(imf_config_create(&c), IMF_OK);
  assert_string_equal(imf_cfg_str(c, "eval.relevance_threshold"), "auto");
  assert_int_equal(imf_relevance_threshold_scale(c, &s010, &t), IMF_OK);
  assert_true(t == 8);
  assert_int_equal(imf_relevance_threshold_scale(c, NULL, &t), IMF_OK);
  assert_true(t == 4); /* unknown: 4 (with a warning) */
  assert_int_equal(imf_config_set(c, "clean.scale_min=1"), IMF_OK);
  assert_int_equal(imf_config_set(c, "clean.scale_max=10"), IMF_OK);
  assert_int_equal(imf_relevance_threshold_scale(c, NULL, &t), IMF_OK);
  assert_true(t == 7.75); /* the configured bounds, no step known: not rounded */
  assert_int_equal(imf_config_set(c, "eval.relevance_threshold=6"), IMF_OK);
  assert_int_equal(imf_relevance_threshold_scale(c, &s010, &t), IMF_OK);
  assert_true(t == 6);
  assert_int_equal(imf_config_set(c, "eval.relevance_threshold=none"), IMF_OK);
  assert_int_equal(imf_relevance_threshold_scale(c, &s010, &t), IMF_OK);
  assert_true(isnan(t));
  assert_int_equal(imf_config_set(c, "eval.relevance_threshold=high"), IMF_ERR_USAGE);
  imf_config_destroy(&c);
}

static void test_implicit_transform(void **state) {
  (void)state;
  imf_config *c;
  imf_implicit_opts o;
  assert_int_equal(imf_config_create(&c), IMF_OK);
  assert_int_equal(imf_implicit_opts_from(c, &o), IMF_OK);
  assert_int_equal(o.active, 0); /* als: values untouched whatever the keys */
  assert_int_equal(imf_config_set(c, "model.positive_threshold=4"), IMF_OK);
  assert_int_equal(imf_implicit_opts_from(c, &o), IMF_OK);
  assert_true(imf_implicit_value(&o, 1.0f) == 1.0f);
  assert_int_equal(imf_config_set(c, "model.type=ials"), IMF_OK);
  assert_int_equal(imf_implicit_opts_from(c, &o), IMF_OK);
  /* confidence = auto with a threshold: the positives are binary */
  assert_true(isnan(imf_implicit_value(&o, 3.5f)) && imf_implicit_value(&o, 4.5f) == 1.0f);
  assert_int_equal(imf_config_set(c, "model.confidence=linear"), IMF_OK);
  assert_int_equal(imf_implicit_opts_from(c, &o), IMF_OK);
  assert_true(isnan(imf_implicit_value(&o, 3.5f)) && imf_implicit_value(&o, 4.0f) == 4.0f);
  /* ... and without one (counts): linear */
  assert_int_equal(imf_config_set(c, "model.confidence=auto"), IMF_OK);
  assert_int_equal(imf_config_set(c, "model.positive_threshold=none"), IMF_OK);
  assert_int_equal(imf_implicit_opts_from(c, &o), IMF_OK);
  assert_true(imf_implicit_value(&o, 3.0f) == 3.0f);
  assert_int_equal(imf_config_set(c, "model.positive_threshold=4"), IMF_OK);
  assert_int_equal(imf_config_set(c, "model.confidence=log"), IMF_OK);
  assert_int_equal(imf_config_set(c, "model.epsilon=2"), IMF_OK);
  assert_int_equal(imf_implicit_opts_from(c, &o), IMF_OK);
  assert_true(imf_implicit_value(&o, 5.0f) == (float)log1p(2.5));
  assert_int_equal(imf_config_set(c, "model.confidence=binary"), IMF_OK);
  assert_int_equal(imf_implicit_opts_from(c, &o), IMF_OK);
  assert_true(imf_implicit_value(&o, 5.0f) == 1.0f);
  /* ratings: the non-positives leave, order kept */
  imf_ratings r = {0};
  float v[] = {5, 1, 4, 2, 4.5f};
  for (int j = 0; j < 5; j++) assert_int_equal(imf_ratings_push(&r, j, 10 + j, v[j], 100 + j), IMF_OK);
  imf_implicit_apply(&o, &r);
  assert_int_equal(r.n, 3);
  assert_true(r.user[0] == 0 && r.user[1] == 2 && r.user[2] == 4 && r.item[1] == 12 && r.time[2] == 104);
  assert_true(r.value[0] == 1 && r.value[1] == 1 && r.value[2] == 1);
  imf_ratings_free(&r);
  /* histories: rows compacted, an old value below the threshold reads as unseen */
  int64_t ptr[] = {0, 3, 3, 5};
  int32_t other[] = {1, 2, 3, 4, 5};
  float val[] = {5, 2, 4, 1, 4}, old[] = {5, NAN, 2, 4, 4};
  imf_history h = {3, ptr, other, val, old};
  imf_implicit_history(&o, &h);
  assert_true(ptr[0] == 0 && ptr[1] == 2 && ptr[2] == 2 && ptr[3] == 3);
  assert_true(other[0] == 1 && other[1] == 3 && other[2] == 5);
  assert_true(old[0] == 1 && isnan(old[1]) && old[2] == 1);
  assert_int_equal(imf_config_set(c, "model.epsilon=0"), IMF_OK);
  assert_int_equal(imf_config_set(c, "model.confidence=log"), IMF_OK);
  assert_int_equal(imf_implicit_opts_from(c, &o), IMF_ERR_USAGE);
  imf_config_destroy(&c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_scale_of),         cmocka_unit_test(test_merge_order),
      cmocka_unit_test(test_auto_threshold),   cmocka_unit_test(test_relevance_threshold),
      cmocka_unit_test(test_implicit_transform),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
