/* test_error.c - the error macros of src/error.h: IMF_RAISE records without returning,
 * IMF_TRY and IMF_MPI_TRY reach the cleanup label with st set, the advice is a field shown in
 * imf_last_error() and readable apart from the reason, and a reason may quote the previous error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include "error.h"

static int cleanups;

static imf_status raise_then_clean(int fail_at) {
  imf_status st = IMF_OK;
  if (fail_at == 1) {
    st = IMF_RAISE(IMF_ERR_INPUT, "step %d failed", 1);
    goto out;
  }
  IMF_TRY(fail_at == 2 ? IMF_RAISE(IMF_ERR_NOTFOUND, "step 2 failed") : IMF_OK, out);
  IMF_MPI_TRY(fail_at == 3 ? MPI_ERR_OTHER : MPI_SUCCESS, out);
out:
  cleanups++;
  return st;
}

static void test_raise_records_without_returning(void **state) {
  (void)state;
  imf_err_clear();
  imf_status s = IMF_RAISE(IMF_ERR_USAGE, "bad %s", "value");
  assert_int_equal(s, IMF_ERR_USAGE);
  assert_non_null(strstr(imf_last_error(), "bad value (test_error.c:"));
  assert_string_equal(imf_err_reason(), "bad value");
  assert_string_equal(imf_err_advice(), "");
}

static void test_cleanup_label_runs(void **state) {
  (void)state;
  cleanups = 0;
  assert_int_equal(raise_then_clean(0), IMF_OK);
  assert_int_equal(raise_then_clean(1), IMF_ERR_INPUT);
  assert_int_equal(raise_then_clean(2), IMF_ERR_NOTFOUND);
  assert_string_equal(imf_err_reason(), "step 2 failed");
  assert_int_equal(raise_then_clean(3), IMF_ERR_RUNTIME);
  assert_non_null(strstr(imf_err_reason(), "MPI call failed: fail_at == 3 ? MPI_ERR_OTHER : MPI_SUCCESS"));
  assert_int_equal(cleanups, 4);
}

static void test_advice_is_a_field(void **state) {
  (void)state;
  imf_status s = IMF_RAISE(IMF_ERR_INPUT, "%s is corrupt", "v1.h5");
  imf_err_set_advice("restore an earlier version with `%s`", "incremf rollback");
  assert_int_equal(s, IMF_ERR_INPUT);
  const char *m = imf_last_error();
  assert_true(strncmp(m, "v1.h5 is corrupt (restore an earlier version with `incremf rollback`) (test_error.c:",
                      strlen("v1.h5 is corrupt (restore an earlier version with `incremf rollback`) (test_error.c:")) == 0);
  assert_string_equal(imf_err_reason(), "v1.h5 is corrupt");
  assert_string_equal(imf_err_advice(), "restore an earlier version with `incremf rollback`");
  /* a new error starts without advice */
  IMF_RAISE(IMF_ERR_RUNTIME, "other");
  assert_string_equal(imf_err_advice(), "");
  assert_null(strstr(imf_last_error(), "rollback"));
  imf_err_clear();
  assert_string_equal(imf_last_error(), "");
  assert_string_equal(imf_err_reason(), "");
}

static void test_reason_may_quote_the_previous_error(void **state) {
  (void)state;
  IMF_RAISE(IMF_ERR_INPUT, "inner");
  char inner[256];
  snprintf(inner, sizeof inner, "%s", imf_last_error());
  IMF_RAISE(IMF_ERR_INPUT, "outer: %s", imf_last_error());
  char want[512];
  snprintf(want, sizeof want, "outer: %s", inner);
  assert_string_equal(imf_err_reason(), want);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_raise_records_without_returning),
      cmocka_unit_test(test_cleanup_label_runs),
      cmocka_unit_test(test_advice_is_a_field),
      cmocka_unit_test(test_reason_may_quote_the_previous_error),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  MPI_Finalize();
  return rc;
}
