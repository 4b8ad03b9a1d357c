/* test_idmap.c - the id map that numbers raw ids: the bulk insert (slots requested ahead, the
 * table growing under it) gives every id the index one-at-a-time inserts give, repeats
 * included; reserve never changes an index; a probe past other ids' slots still finds an id
 * whose hash shares their table position; truncate rebuilds the table; holes stay unfindable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "error.h"
#include "idmap.h"

#define N 50000

/* ids "u<k>" for a list of N entries where every 5th repeats an earlier one */
static void make_list(char **blob, int64_t **off) {
  assert_int_equal(imf_alloc(blob, (size_t)N * 16, 1), IMF_OK);
  assert_int_equal(imf_alloc(off, (size_t)N + 1, sizeof **off), IMF_OK);
  int64_t o = 0;
  for (int64_t j = 0; j < N; j++) {
    const int64_t k = j % 5 == 4 ? (j * 7919) % (j + 1) : j; /* a repeat of an earlier id */
    (*off)[j] = o;
    o += sprintf(*blob + o, "u%lld", (long long)k);
  }
  (*off)[N] = o;
}

static void test_insert_list_matches_one_at_a_time(void **state) {
  (void)state;
  char *blob = NULL;
  int64_t *off = NULL, *idx = NULL, nadded = 0;
  make_list(&blob, &off);
  imf_idmap *a = NULL, *b = NULL, *c = NULL;
  assert_int_equal(imf_idmap_create(&a), IMF_OK);
  assert_int_equal(imf_idmap_create(&b), IMF_OK);
  assert_int_equal(imf_idmap_create(&c), IMF_OK);
  assert_int_equal(imf_alloc(&idx, N, sizeof *idx), IMF_OK);
  assert_int_equal(imf_idmap_insert_list(a, blob, off, N, idx, &nadded), IMF_OK); /* grows as it goes */
  int64_t added = 0;
  for (int64_t j = 0; j < N; j++) {
    int64_t one;
    int ad;
    assert_int_equal(imf_idmap_insert(b, blob + off[j], (size_t)(off[j + 1] - off[j]), &one, &ad), IMF_OK);
    assert_int_equal(idx[j], one);
    added += ad;
  }
  assert_int_equal(nadded, added);
  assert_true(added < N); /* the repeats were found, not added */
  assert_int_equal(imf_idmap_size(a), imf_idmap_size(b));
  /* reserved first: the same indices */
  assert_int_equal(imf_idmap_reserve(c, N, off[N]), IMF_OK);
  int64_t *idx2 = NULL;
  assert_int_equal(imf_alloc(&idx2, N, sizeof *idx2), IMF_OK);
  assert_int_equal(imf_idmap_insert_list(c, blob, off, N, idx2, &nadded), IMF_OK);
  assert_memory_equal(idx, idx2, N * sizeof *idx);
  /* insert_map: every id of a, in a's order, into an empty map gives 0, 1, 2, ... */
  imf_idmap *d = NULL;
  assert_int_equal(imf_idmap_create(&d), IMF_OK);
  assert_int_equal(imf_idmap_insert_map(d, a, idx2, &nadded), IMF_OK);
  assert_int_equal(nadded, imf_idmap_size(a));
  for (int64_t j = 0; j < nadded; j++) assert_int_equal(idx2[j], j);
  imf_free(&idx2);
  imf_idmap_destroy(&d);
  /* truncate rebuilds the table: ids before the cut are found, the others not */
  imf_idmap_truncate(a, 1000);
  assert_int_equal(imf_idmap_find(a, "u999", 4), imf_idmap_find(b, "u999", 4));
  assert_int_equal(imf_idmap_find(a, "u49998", 6), -1);
  assert_true(imf_idmap_find(b, "u49998", 6) >= 1000);
  imf_free(&idx);
  imf_free(&blob);
  imf_free(&off);
  imf_idmap_destroy(&a);
  imf_idmap_destroy(&b);
  imf_idmap_destroy(&c);
}

/* Many ids on a small table collide on positions; each is still found at its own index. */
static void test_collisions_and_holes(void **state) {
  (void)state;
  imf_idmap *m = NULL;
  assert_int_equal(imf_idmap_create(&m), IMF_OK);
  char id[32];
  for (int j = 0; j < 1000; j++) {
    int64_t k;
    int ad;
    int n = snprintf(id, sizeof id, "%d", j * 2048); /* numbers that hash anywhere */
    assert_int_equal(imf_idmap_insert(m, id, (size_t)n, &k, &ad), IMF_OK);
    assert_int_equal(k, j);
    assert_int_equal(ad, 1);
  }
  for (int j = 0; j < 1000; j++) {
    int n = snprintf(id, sizeof id, "%d", j * 2048);
    assert_int_equal(imf_idmap_find(m, id, (size_t)n), j);
  }
  /* a list with a hole (empty id) keeps the index and is found by nothing */
  imf_idlist l = {0};
  int64_t offs[3] = {0, 0, 2};
  l.n = 2;
  l.off = offs;
  l.blob = (char *)"zz";
  assert_int_equal(imf_idmap_add_list(m, &l), IMF_OK);
  assert_int_equal(imf_idmap_size(m), 1002);
  assert_int_equal(imf_idmap_find(m, "zz", 2), 1001);
  assert_int_equal(imf_idmap_find(m, "", 0), -1);
  imf_idmap_destroy(&m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_insert_list_matches_one_at_a_time),
      cmocka_unit_test(test_collisions_and_holes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
