/* test_ratings.c - the rating buffers' two ownerships: arrays of their own, or arrays that lie in
 * one buffer handed over with imf_ratings_own (what ingest does with the buffer its parsed
 * records were in). Owned arrays must be used in place, grow out of the buffer into arrays of
 * their own with the contents kept, and be freed once, with the buffer. Under AddressSanitizer
 * an overrun, a leak or a double free fails the test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>
#include <string.h>
#include "error.h"
#include "ratings.h"

static void fill(imf_ratings *r, int64_t from, int64_t to) {
  for (int64_t j = from; j < to; j++)
    assert_int_equal(imf_ratings_push(r, (int32_t)j, (int32_t)(3 * j), (float)j * 0.5f, 1000 + j), IMF_OK);
}

static void check(const imf_ratings *r, int64_t n) {
  assert_int_equal(r->n, n);
  for (int64_t j = 0; j < n; j++) {
    assert_int_equal(r->user[j], j);
    assert_int_equal(r->item[j], 3 * j);
    assert_true(r->value[j] == (float)j * 0.5f);
    assert_int_equal(r->time[j], 1000 + j);
  }
}

/* ingest's layout: times first, then user, item and value behind the 20 bytes a rating that
 * the packed records took (tests/../src/ingest.c records_to_batch) */
static void test_own_and_grow(void **state) {
  (void)state;
  const int64_t n = 700, cap = 1000;
  char *buf = NULL;
  assert_int_equal(imf_alloc(&buf, 32 * (size_t)cap, 1), IMF_OK);
  int64_t *time = (int64_t *)(void *)buf;
  int32_t *user = (int32_t *)(void *)(buf + 20 * cap), *item = user + cap;
  float *value = (float *)(void *)(item + cap);
  for (int64_t j = 0; j < n; j++) {
    time[j] = 1000 + j;
    user[j] = (int32_t)j;
    item[j] = (int32_t)(3 * j);
    value[j] = (float)j * 0.5f;
  }
  imf_ratings r = {0};
  imf_ratings_own(&r, buf, user, item, value, time, n, cap);
  check(&r, n);
  fill(&r, n, cap); /* up to the capacity: in place */
  assert_ptr_equal(r.block, buf);
  assert_ptr_equal(r.user, user);
  check(&r, cap);
  fill(&r, cap, cap + 10); /* past it: arrays of their own, contents kept, buffer freed */
  assert_null(r.block);
  check(&r, cap + 10);
  imf_ratings_free(&r);
  assert_null(r.user);
  assert_int_equal(r.n, 0);
}

static void test_own_free(void **state) {
  (void)state;
  char *buf = NULL;
  assert_int_equal(imf_alloc(&buf, 64, 1), IMF_OK);
  imf_ratings r = {0};
  imf_ratings_own(&r, buf, (int32_t *)(void *)(buf + 40), (int32_t *)(void *)(buf + 44),
                  (float *)(void *)(buf + 48), (int64_t *)(void *)buf, 1, 1);
  imf_ratings_free(&r); /* frees buf once; the array pointers go with it */
  assert_null(r.block);
  assert_null(r.user);
  assert_null(r.time);
  imf_ratings_free(&r); /* and a second free is a no-op */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_own_and_grow),
      cmocka_unit_test(test_own_free),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
