/* testassert.h - cmocka assertions on incremf statuses, shared by the MPI unit tests (include
 * after <cmocka.h> and error.h): OK(expr) asserts success and shows the library's message when
 * it fails; FAILS(expr, code, text) asserts that status and a message containing text. Also
 * tu_make_ids, a deterministic id list. */
#ifndef IMF_TESTASSERT_H
#define IMF_TESTASSERT_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OK(expr)                                                                              \
  do {                                                                                        \
    imf_status ok_s_ = (expr);                                                                \
    if (ok_s_ != IMF_OK) print_error("%s: %s\n", #expr, imf_last_error());                  \
    assert_int_equal(ok_s_, IMF_OK);                                                          \
  } while (0)

#define FAILS(expr, code, text)                                                               \
  do {                                                                                        \
    imf_status f_s_ = (expr);                                                                 \
    if (f_s_ != (code) || !strstr(imf_last_error(), (text)))                                  \
      print_error("%s: status %d, message: %s\n", #expr, (int)f_s_, imf_last_error());        \
    assert_int_equal(f_s_, (code));                                                           \
    assert_non_null(strstr(imf_last_error(), (text)));                                        \
  } while (0)

/* n ids "<prefix><j*j>" of varying length (id 1 with a space before its number when spaced):
 * the same on every rank. */
static inline void tu_make_ids(imf_idlist *l, const char *prefix, int64_t n, int spaced) {
  l->n = n;
  l->off = calloc((size_t)n + 1, sizeof *l->off);
  l->blob = calloc((size_t)n * 24 + 1, 1);
  for (int64_t j = 0; j < n; j++) {
    int w = sprintf(l->blob + l->off[j], spaced && j == 1 ? "%s %lld" : "%s%lld", prefix, (long long)(j * j));
    l->off[j + 1] = l->off[j] + w;
  }
}
#endif
