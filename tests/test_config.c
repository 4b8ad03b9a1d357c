/* test_config.c - the options mechanism: INI files, --set overrides, unknown keys, types. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "config.h"
#include "ingest.h"
#include "testutil.h"

static void test_defaults_and_set(void **state) {
  (void)state;
  imf_config *c;
  assert_int_equal(imf_config_create(&c), IMF_OK);
  assert_int_equal(imf_cfg_int(c, "model.k"), 32);
  assert_true(isnan(imf_cfg_double(c, "clean.scale_min")));
  assert_int_equal(imf_config_set(c, "model.k = 64"), IMF_OK);
  assert_int_equal(imf_cfg_int(c, "model.k"), 64);
  assert_int_equal(imf_config_set(c, "model.kk=3"), IMF_ERR_USAGE);
  assert_non_null(strstr(imf_last_error(), "unknown configuration key 'model.kk'"));
  /* a mistyped key gets the nearest known one (issue 26); a key far from all gets none */
  assert_int_equal(imf_config_set(c, "model.lamda=0.1"), IMF_ERR_USAGE);
  assert_non_null(strstr(imf_last_error(), "did you mean 'model.lambda'?"));
  assert_int_equal(imf_config_set(c, "model.itertaions=3"), IMF_ERR_USAGE);
  assert_non_null(strstr(imf_last_error(), "did you mean 'model.iterations'?"));
  assert_int_equal(imf_config_set(c, "train.lambda=0.1"), IMF_ERR_USAGE); /* right name, wrong section */
  assert_non_null(strstr(imf_last_error(), "did you mean 'model.lambda'?"));
  assert_int_equal(imf_config_set(c, "model.xyzzy=1"), IMF_ERR_USAGE);
  assert_null(strstr(imf_last_error(), "did you mean"));
  assert_int_equal(imf_config_set(c, "model.k=abc"), IMF_ERR_USAGE);
  assert_int_equal(imf_config_set(c, "model.type=foo"), IMF_ERR_USAGE);
  assert_int_equal(imf_config_set(c, "model.k"), IMF_ERR_USAGE);
  /* documented limits (README: Limits) are checked when set, with the range in the message */
  assert_int_equal(imf_config_set(c, "model.k=4097"), IMF_ERR_USAGE);
  assert_non_null(strstr(imf_last_error(), "model.k must be in [1, 4096]"));
  assert_int_equal(imf_config_set(c, "model.k=0"), IMF_ERR_USAGE);
  assert_int_equal(imf_config_set(c, "model.k=4096"), IMF_OK);
  assert_int_equal(imf_config_set(c, "input.max_line_length=0"), IMF_ERR_USAGE);
  assert_int_equal(imf_config_set(c, "input.max_id_length=65537"), IMF_ERR_USAGE);
  assert_int_equal(imf_cfg_int(c, "model.k"), 4096);
  assert_int_equal(imf_config_set(c, "clean.scale_min=0.5"), IMF_OK);
  assert_true(imf_cfg_double(c, "clean.scale_min") == 0.5);
  imf_config_destroy(&c);
  assert_null(c);
}

static void test_ini_file(void **state) {
  (void)state;
  const char *dir = tu_tmpdir("cfg");
  char path[600];
  snprintf(path, sizeof path, "%s/a.ini", dir);
  assert_int_equal(tu_write_file(path, "; comment\n[model]\nk = 16\ntype = bpmf\n[clean]\nduplicates=mean\n"), 0);
  imf_config *c;
  assert_int_equal(imf_config_create(&c), IMF_OK);
  assert_int_equal(imf_config_load_file(c, path), IMF_OK);
  assert_int_equal(imf_cfg_int(c, "model.k"), 16);
  assert_string_equal(imf_cfg_str(c, "model.type"), "bpmf");
  assert_string_equal(imf_cfg_str(c, "clean.duplicates"), "mean");
  /* the dump reloads to the same values */
  char *dump = imf_config_dump(c);
  imf_config *d;
  assert_int_equal(imf_config_create(&d), IMF_OK);
  assert_int_equal(imf_config_load_string(d, dump, "dump"), IMF_OK);
  assert_int_equal(imf_cfg_int(d, "model.k"), 16);
  free(dump);
  imf_config_destroy(&d);
  /* unknown key in a file names the file and line */
  assert_int_equal(tu_write_file(path, "[model]\nk = 16\nbogus = 1\n"), 0);
  assert_int_equal(imf_config_load_file(c, path), IMF_ERR_USAGE);
  assert_non_null(strstr(imf_last_error(), "line 3"));
  assert_non_null(strstr(imf_last_error(), "model.bogus"));
  assert_int_equal(imf_config_load_file(c, "/nonexistent/x.ini"), IMF_ERR_NOTFOUND);
  imf_config_destroy(&c);
}

/* A value starting with ';' cannot be stored: the dump writes "name = ;..." and INI reads a ';'
 * after a blank as the start of a comment, so it came back empty (found by tests/fuzz, config:
 * regressions/config/set-value-starting-with-semicolon.txt). It is refused with exit 2, and a
 * semicolon delimiter is spelled 'semicolon'. */
static void test_leading_semicolon(void **state) {
  (void)state;
  imf_config *c;
  assert_int_equal(imf_config_create(&c), IMF_OK);
  assert_int_equal(imf_config_set(c, "input.delimiter=;"), IMF_ERR_USAGE);
  assert_non_null(strstr(imf_last_error(), "may not start with ';'"));
  assert_non_null(strstr(imf_last_error(), "write 'semicolon'"));
  assert_int_equal(imf_config_set(c, "eval.k= ;10"), IMF_ERR_USAGE); /* leading blanks are trimmed */
  assert_int_equal(imf_config_set(c, "tune.metric=;"), IMF_ERR_USAGE);
  assert_string_equal(imf_cfg_str(c, "input.delimiter"), ""); /* unchanged */
  /* the same in a file: "name=;x" (no blank, so not a comment to libinih) names the line */
  const char *dir = tu_tmpdir("cfgsemi");
  char path[600];
  snprintf(path, sizeof path, "%s/a.ini", dir);
  assert_int_equal(tu_write_file(path, "[input]\nformat = csv\ndelimiter=;x\n"), 0);
  assert_int_equal(imf_config_load_file(c, path), IMF_ERR_USAGE);
  assert_non_null(strstr(imf_last_error(), "line 3"));
  /* ';' inside a value is fine; the spelled-out delimiter round-trips through the dump */
  assert_int_equal(imf_config_set(c, "tune.metric=a;b"), IMF_OK);
  assert_int_equal(imf_config_set(c, "input.delimiter=semicolon"), IMF_OK);
  imf_parse_opts o;
  assert_int_equal(imf_parse_opts_from_config(c, &o), IMF_OK);
  assert_int_equal(o.delim, ';');
  char *dump = imf_config_dump(c);
  assert_non_null(dump);
  imf_config *d;
  assert_int_equal(imf_config_create(&d), IMF_OK);
  assert_int_equal(imf_config_load_string(d, dump, "dump"), IMF_OK);
  assert_string_equal(imf_cfg_str(d, "input.delimiter"), "semicolon");
  assert_string_equal(imf_cfg_str(d, "tune.metric"), "a;b");
  free(dump);
  imf_config_destroy(&d);
  imf_config_destroy(&c);
}

/* model.lambda and model.lambda_bias = auto (the defaults) stand for the values the model type
 * wants: implicit ALS's unscaled lambda is 50, ALS-WR's per-rating lambda 0.12 with biases at 0.5,
 * the bias baseline's shrinkage 2; a number overrides them. */
static void test_lambda_auto(void **state) {
  (void)state;
  imf_config *c;
  double v = 0;
  assert_int_equal(imf_config_create(&c), IMF_OK);
  assert_int_equal(imf_config_get_double(c, "model.lambda", &v), IMF_OK);
  assert_true(v == 0.12);
  assert_int_equal(imf_config_get_double(c, "model.lambda_bias", &v), IMF_OK);
  assert_true(v == 0.5);
  assert_int_equal(imf_config_set(c, "model.type=bias"), IMF_OK);
  assert_int_equal(imf_config_get_double(c, "model.lambda_bias", &v), IMF_OK);
  assert_true(v == 2.0);
  assert_int_equal(imf_config_set(c, "model.lambda_bias=7"), IMF_OK);
  assert_int_equal(imf_config_get_double(c, "model.lambda_bias", &v), IMF_OK);
  assert_true(v == 7.0);
  assert_int_equal(imf_config_set(c, "model.type=ials"), IMF_OK);
  assert_int_equal(imf_config_get_double(c, "model.lambda", &v), IMF_OK);
  assert_true(v == 50.0);
  assert_int_equal(imf_config_set(c, "model.lambda=2.5"), IMF_OK);
  assert_int_equal(imf_config_get_double(c, "model.lambda", &v), IMF_OK);
  assert_true(v == 2.5);
  assert_int_equal(imf_config_set(c, "model.lambda=auto"), IMF_OK);
  assert_int_equal(imf_config_get_double(c, "model.lambda", &v), IMF_OK);
  assert_true(v == 50.0);
  assert_int_equal(imf_config_set(c, "model.lambda=strong"), IMF_ERR_USAGE);
  assert_int_equal(imf_config_validate(c), IMF_OK);
  imf_config_destroy(&c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults_and_set),
      cmocka_unit_test(test_ini_file),
      cmocka_unit_test(test_leading_semicolon),
      cmocka_unit_test(test_lambda_auto),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
