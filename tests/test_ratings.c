/* test_ratings.c - the rating buffers' two ownerships: arrays of their own, or laid out inside
 * one adopted buffer (imf_ratings_adopt, what ingest does with its sort's scratch buffer). An
 * adopted layout must hold its capacity without the arrays overlapping, refuse a buffer that is
 * too small, and grow out of the buffer into arrays of their own with the contents kept. Under
 * AddressSanitizer an overlap, an overrun or a double free fails the test. */
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

static void test_adopt_and_grow(void **state) {
  (void)state;
  const int64_t cap = 1000;
  size_t bytes = 32 * (size_t)cap; /* ingest's scratch: 32-byte records */
  void *buf = NULL;
  assert_int_equal(imf_alloc(&buf, bytes, 1), IMF_OK);
  imf_ratings r = {0};
  assert_int_equal(imf_ratings_adopt(&r, buf, bytes, cap), 1);
  assert_ptr_equal(r.block, buf);
  assert_int_equal(r.cap, cap);
  /* every array inside the buffer, 64-byte aligned, none overlapping the next */
  const char *lo = buf, *hi = lo + bytes;
  const char *a[4] = {(const char *)r.time, (const char *)r.user, (const char *)r.item, (const char *)r.value};
  size_t len[4] = {8 * (size_t)cap, 4 * (size_t)cap, 4 * (size_t)cap, 4 * (size_t)cap};
  for (int k = 0; k < 4; k++) {
    assert_true(a[k] >= lo && a[k] + len[k] <= hi);
    assert_int_equal((uintptr_t)a[k] % 64, 0);
    if (k > 0) assert_true(a[k - 1] + len[k - 1] <= a[k]);
  }
  fill(&r, 0, cap); /* up to the capacity: stays in the buffer */
  assert_ptr_equal(r.block, buf);
  check(&r, cap);
  fill(&r, cap, cap + 10); /* past it: arrays of their own, contents kept */
  assert_null(r.block);
  check(&r, cap + 10);
  imf_ratings_free(&r);
  assert_null(r.user);
  assert_int_equal(r.n, 0);
}

static void test_adopt_refused(void **state) {
  (void)state;
  void *buf = NULL;
  assert_int_equal(imf_alloc(&buf, 256, 1), IMF_OK);
  imf_ratings r = {0};
  /* 10 ratings need 4 x 64 bytes of padding on top of 200: too much for 256 */
  assert_int_equal(imf_ratings_adopt(&r, buf, 256, 10), 0);
  assert_null(r.block);
  assert_int_equal(imf_ratings_adopt(&r, NULL, 256, 1), 0);
  assert_int_equal(imf_ratings_adopt(&r, buf, 256, 1), 1); /* 4 x 64 fits exactly */
  imf_ratings r2 = r;
  assert_int_equal(imf_ratings_adopt(&r2, buf, 256, 1), 0); /* already owns a buffer */
  imf_ratings_free(&r); /* frees buf */
  /* an empty adopted buffer frees cleanly too */
  imf_ratings e = {0};
  assert_int_equal(imf_alloc(&buf, 1024, 1), IMF_OK);
  assert_int_equal(imf_ratings_adopt(&e, buf, 1024, 2), 1);
  imf_ratings_free(&e);
  assert_null(e.block);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_adopt_and_grow),
      cmocka_unit_test(test_adopt_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
