/* test_parse.c - line formats, reject reasons, limits and format/header detection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "error.h"
#include "parse.h"
#include "testutil.h"

static imf_parse_opts defopts(void) {
  imf_parse_opts o;
  memset(&o, 0, sizeof o);
  o.format = IMF_FMT_AUTO;
  o.header = -1;
  o.user_col = 1, o.item_col = 2, o.rating_col = 3, o.time_col = 4;
  o.max_id_len = 256;
  o.max_line_len = 65536;
  o.scale_min = NAN, o.scale_max = NAN;
  return o;
}

static char g_scratch[70000];
static imf_record g_rec;
static imf_reject_reason g_why;

/* Parse a NUL-terminated line as data line 5 (past any header). */
static imf_line_kind P(const imf_parse_opts *o, const char *line) {
  memset(&g_rec, 0x5a, sizeof g_rec);
  return imf_parse_line(o, line, strlen(line), 5, g_scratch, &g_rec, &g_why);
}

static imf_reject_reason R(const imf_parse_opts *o, const char *line) {
  imf_line_kind k = P(o, line);
  if (k == IMF_LINE_OK) return IMF_REJ_NONE;
  assert_int_equal(k, IMF_LINE_REJECT);
  assert_int_not_equal(g_why, IMF_REJ_NONE);
  return g_why;
}

static int field_is(const char *p, size_t n, const char *want) {
  return n == strlen(want) && memcmp(p, want, n) == 0;
}
#define assert_field(p, n, want)                                                              \
  do {                                                                                        \
    if (!field_is((p), (n), (want))) fail_msg("field '%.*s' != '%s'", (int)(n), (p), (want)); \
  } while (0)

/* A whole fixture: detected from name and content, then parsed line by line. */
typedef struct {
  int n, header, rejected;
  char user[16][64], item[16][64];
  double rating[16];
  int has_rating[16], has_time[16];
  long long time[16];
  imf_reject_reason why[16];
} parsed;

static void parse_fixture(const char *name, imf_parse_opts *o, parsed *out) {
  memset(out, 0, sizeof *out);
  size_t len;
  const char *path = tu_test_data(name);
  char *text = tu_read_file(path, &len);
  if (!text) fail_msg("cannot read %s", path);
  if (imf_detect_format(path, text, len, o) != IMF_OK) fail_msg("%s", imf_last_error());
  size_t pos = 0;
  int64_t lineno = 0;
  while (pos < len) {
    char *nl = memchr(text + pos, '\n', len - pos);
    size_t k = nl ? (size_t)(nl - (text + pos)) : len - pos;
    lineno++;
    imf_record rec;
    imf_reject_reason why;
    imf_line_kind kind = imf_parse_line(o, text + pos, k, lineno, g_scratch, &rec, &why);
    if (kind == IMF_LINE_HEADER) out->header++;
    else if (kind == IMF_LINE_REJECT) out->why[out->rejected++] = why;
    else {
      int i = out->n++;
      assert_true(i < 16);
      snprintf(out->user[i], 64, "%.*s", (int)rec.user_len, rec.user);
      snprintf(out->item[i], 64, "%.*s", (int)rec.item_len, rec.item);
      out->rating[i] = rec.rating;
      out->has_rating[i] = rec.has_rating;
      out->has_time[i] = rec.has_time;
      out->time[i] = (long long)rec.time;
    }
    pos += k + 1;
  }
  free(text);
}

static void test_csv_fixture(void **state) {
  (void)state;
  imf_parse_opts o = defopts();
  parsed p;
  parse_fixture("small.csv", &o, &p);
  assert_int_equal(o.format, IMF_FMT_CSV);
  assert_int_equal(o.delim, ',');
  assert_int_equal(o.header, 0);
  assert_int_equal(p.header, 0);
  assert_int_equal(p.rejected, 0);
  assert_int_equal(p.n, 5);
  assert_string_equal(p.user[0], "0104257"); /* ids are strings, leading zeros kept */
  assert_string_equal(p.item[0], "101");
  assert_true(p.rating[0] == 4.5);
  assert_true(p.has_time[0] && p.time[0] == 1500000000);
  assert_string_equal(p.item[2], "item, with comma");
  assert_true(p.rating[2] == 2.5);
  assert_string_equal(p.item[3], "say \"hi\"");
  assert_true(p.rating[3] == 1.0);
  assert_false(p.has_time[3]); /* empty time field: no time */
  assert_string_equal(p.user[4], "5"); /* spaces around unquoted fields are trimmed */
  assert_string_equal(p.item[4], "105");
  assert_true(p.rating[4] == 0.5);
  assert_true(p.time[4] == 1500000004);
}

static void test_header_csv_fixture(void **state) {
  (void)state;
  imf_parse_opts o = defopts();
  parsed p;
  parse_fixture("small_header.csv", &o, &p);
  assert_int_equal(o.format, IMF_FMT_CSV);
  assert_int_equal(o.header, 1);
  assert_int_equal(o.header_lines, 1);
  assert_int_equal(p.header, 1);
  assert_int_equal(p.n, 3);
  assert_int_equal(p.rejected, 0);
  assert_string_equal(p.user[1], "1");
  assert_string_equal(p.item[1], "20");
  assert_true(p.rating[1] == 3.5);
  assert_true(p.time[1] == 964981247); /* the CRLF '\r' is not part of the time */
}

static void test_tsv_dat_ml100k_fixtures(void **state) {
  (void)state;
  imf_parse_opts o = defopts();
  parsed p;
  parse_fixture("small.tsv", &o, &p);
  assert_int_equal(o.format, IMF_FMT_TSV);
  assert_int_equal(o.delim, '\t');
  assert_int_equal(o.header, 0);
  assert_int_equal(p.n, 3);
  assert_string_equal(p.user[1], "u2");
  assert_string_equal(p.item[1], "i2");
  assert_true(p.rating[1] == 1.5 && p.time[1] == 200);
  assert_true(p.rating[2] == -2.0);
  assert_false(p.has_time[2]); /* line with fewer fields than time_col */

  o = defopts();
  parse_fixture("small.dat", &o, &p);
  assert_int_equal(o.format, IMF_FMT_DAT);
  assert_int_equal(o.header, 0);
  assert_int_equal(p.n, 4);
  assert_string_equal(p.user[0], "1");
  assert_string_equal(p.item[0], "1193");
  assert_true(p.rating[0] == 5.0 && p.time[0] == 978300760);
  assert_string_equal(p.user[3], "ab:c"); /* a single ':' belongs to the field */
  assert_string_equal(p.item[3], "x");
  assert_true(p.rating[3] == 1.5);

  o = defopts();
  o.format = IMF_FMT_ML100K;
  parse_fixture("small.ml100k", &o, &p);
  assert_int_equal(o.format, IMF_FMT_ML100K);
  assert_int_equal(o.delim, '\t');
  assert_int_equal(o.header, 0);
  assert_int_equal(p.n, 4);
  assert_string_equal(p.user[3], "244");
  assert_string_equal(p.item[3], "51");
  assert_true(p.rating[3] == 2.0 && p.time[3] == 880606923);
}

static void test_mtx_libmf_fixtures(void **state) {
  (void)state;
  imf_parse_opts o = defopts();
  parsed p;
  parse_fixture("small.mtx", &o, &p);
  assert_int_equal(o.format, IMF_FMT_MTX);
  assert_int_equal(o.header_lines, 4);
  assert_int_equal(p.header, 4);
  assert_int_equal(p.rejected, 0);
  assert_int_equal(p.n, 5);
  assert_string_equal(p.user[1], "1");
  assert_string_equal(p.item[1], "3");
  assert_true(p.rating[1] == 2.0);
  assert_false(p.has_time[1]);
  assert_true(p.rating[4] == 3.5); /* exponent: the strtod fallback */

  o = defopts();
  parse_fixture("small.libmf", &o, &p);
  assert_int_equal(o.format, IMF_FMT_LIBMF);
  assert_int_equal(p.n, 4);
  assert_int_equal(p.rejected, 0);
  assert_string_equal(p.item[1], "2");
  assert_true(p.rating[1] == 2.0);
  assert_string_equal(p.user[2], "1"); /* leading tab, trailing spaces */
  assert_string_equal(p.item[2], "1");
  assert_true(p.rating[2] == 1.0);
}

static void test_bad_fixture(void **state) {
  (void)state;
  imf_parse_opts o = defopts();
  o.scale_min = 1, o.scale_max = 5;
  parsed p;
  parse_fixture("bad.csv", &o, &p);
  assert_int_equal(o.header, 0);
  assert_int_equal(p.n, 2); /* first and last lines; extra columns are allowed */
  const imf_reject_reason want[] = {IMF_REJ_EMPTY_LINE, IMF_REJ_MISSING_FIELD, IMF_REJ_MISSING_FIELD,
                                    IMF_REJ_BAD_ID,     IMF_REJ_BAD_RATING,    IMF_REJ_NONFINITE,
                                    IMF_REJ_OUT_OF_RANGE, IMF_REJ_BAD_TIME,    IMF_REJ_BAD_QUOTE};
  assert_int_equal(p.rejected, (int)(sizeof want / sizeof want[0]));
  for (int i = 0; i < p.rejected; i++) assert_int_equal(p.why[i], want[i]);
}

static void test_quoted_csv(void **state) {
  (void)state;
  imf_parse_opts o = defopts();
  o.format = IMF_FMT_CSV, o.delim = ',', o.header = 0;
  assert_int_equal(P(&o, "\"a,b\",\"c\"\"d\"\"\",\"3.5\",\"12\""), IMF_LINE_OK);
  assert_field(g_rec.user, g_rec.user_len, "a,b");
  assert_field(g_rec.item, g_rec.item_len, "c\"d\"");
  assert_true(g_rec.rating == 3.5);
  assert_true(g_rec.has_time && g_rec.time == 12);
  /* two escaped fields share the scratch buffer without overwriting each other */
  assert_int_equal(P(&o, "\"x\"\"1\",\"y\"\"2\",1"), IMF_LINE_OK);
  assert_field(g_rec.user, g_rec.user_len, "x\"1");
  assert_field(g_rec.item, g_rec.item_len, "y\"2");
  /* spaces inside quotes are kept, outside are trimmed */
  assert_int_equal(P(&o, "  \" u \" , i ,2"), IMF_LINE_OK);
  assert_field(g_rec.user, g_rec.user_len, " u ");
  assert_field(g_rec.item, g_rec.item_len, "i");
  /* a quote inside an unquoted field is literal */
  assert_int_equal(P(&o, "ab\"c,d,1"), IMF_LINE_OK);
  assert_field(g_rec.user, g_rec.user_len, "ab\"c");
  assert_int_equal(R(&o, "\"abc,d,1"), IMF_REJ_BAD_QUOTE);
  assert_int_equal(R(&o, "\"ab\"c,d,1"), IMF_REJ_BAD_QUOTE);
  assert_int_equal(R(&o, "\"\",d,1"), IMF_REJ_BAD_ID);
  /* a custom delimiter */
  o.delim = ';';
  assert_int_equal(P(&o, "a,b;\"c;d\";4"), IMF_LINE_OK);
  assert_field(g_rec.user, g_rec.user_len, "a,b");
  assert_field(g_rec.item, g_rec.item_len, "c;d");
  assert_true(g_rec.rating == 4.0);
}

static void test_reject_reasons(void **state) {
  (void)state;
  imf_parse_opts o = defopts();
  o.format = IMF_FMT_CSV, o.delim = ',', o.header = 0;
  o.scale_min = 0.5, o.scale_max = 5;
  assert_int_equal(R(&o, "1,2,3,4"), IMF_REJ_NONE);
  assert_int_equal(R(&o, ""), IMF_REJ_EMPTY_LINE);
  assert_int_equal(R(&o, "\r"), IMF_REJ_EMPTY_LINE);
  assert_int_equal(R(&o, "1,2"), IMF_REJ_MISSING_FIELD);
  assert_int_equal(R(&o, "1"), IMF_REJ_MISSING_FIELD);
  assert_int_equal(R(&o, ",2,3"), IMF_REJ_MISSING_FIELD);
  assert_int_equal(R(&o, "1,,3"), IMF_REJ_MISSING_FIELD);
  assert_int_equal(R(&o, "1,2,"), IMF_REJ_MISSING_FIELD);
  assert_int_equal(R(&o, "1, ,3"), IMF_REJ_MISSING_FIELD);
  assert_int_equal(R(&o, "a\x01z,2,3"), IMF_REJ_BAD_ID);
  assert_int_equal(R(&o, "a,b\tc,3"), IMF_REJ_BAD_ID);
  assert_int_equal(R(&o, "1,2,abc"), IMF_REJ_BAD_RATING);
  assert_int_equal(R(&o, "1,2,3.5x"), IMF_REJ_BAD_RATING);
  assert_int_equal(R(&o, "1,2,0x1"), IMF_REJ_BAD_RATING);
  assert_int_equal(R(&o, "1,2,."), IMF_REJ_BAD_RATING);
  assert_int_equal(R(&o, "1,2,-"), IMF_REJ_BAD_RATING);
  assert_int_equal(R(&o, "1,2,1e"), IMF_REJ_BAD_RATING);
  assert_int_equal(R(&o, "1,2,3 5"), IMF_REJ_BAD_RATING);
  const char *nonfinite[] = {"1,2,nan", "1,2,NaN", "1,2,inf", "1,2,-inf", "1,2,Infinity",
                             "1,2,-INFINITY", "1,2,+inf", "1,2,1e999"};
  for (size_t i = 0; i < sizeof nonfinite / sizeof nonfinite[0]; i++)
    assert_int_equal(R(&o, nonfinite[i]), IMF_REJ_NONFINITE);
  assert_int_equal(R(&o, "1,2,5.01"), IMF_REJ_OUT_OF_RANGE);
  assert_int_equal(R(&o, "1,2,0.4"), IMF_REJ_OUT_OF_RANGE);
  assert_int_equal(R(&o, "1,2,-1"), IMF_REJ_OUT_OF_RANGE);
  assert_int_equal(R(&o, "1,2,5"), IMF_REJ_NONE);
  assert_int_equal(R(&o, "1,2,0.5"), IMF_REJ_NONE);
  assert_int_equal(R(&o, "1,2,3,12.5"), IMF_REJ_BAD_TIME);
  assert_int_equal(R(&o, "1,2,3,abc"), IMF_REJ_BAD_TIME);
  assert_int_equal(R(&o, "1,2,3,1e9"), IMF_REJ_BAD_TIME);
  assert_int_equal(R(&o, "1,2,3,-"), IMF_REJ_BAD_TIME);
  assert_int_equal(R(&o, "1,2,3,9223372036854775808"), IMF_REJ_BAD_TIME);
  assert_int_equal(R(&o, "1,2,3,99999999999999999999999"), IMF_REJ_BAD_TIME);
  assert_int_equal(R(&o, "\"1,2,3"), IMF_REJ_BAD_QUOTE);
  /* NUL byte: line with explicit length */
  imf_record rec;
  imf_reject_reason why;
  assert_int_equal(imf_parse_line(&o, "1,2\0,3", 6, 5, g_scratch, &rec, &why), IMF_LINE_REJECT);
  assert_int_equal(why, IMF_REJ_BINARY);
  /* extra fields are allowed (IMF_REJ_EXTRA_FIELDS is reserved) */
  assert_int_equal(R(&o, "1,2,3,4,5,6,7"), IMF_REJ_NONE);
  /* NaN bounds: unbounded */
  o.scale_min = NAN, o.scale_max = NAN;
  assert_int_equal(R(&o, "1,2,-1e300"), IMF_REJ_NONE);
  o.scale_min = 1; /* only a lower bound */
  assert_int_equal(R(&o, "1,2,1e300"), IMF_REJ_NONE);
  assert_int_equal(R(&o, "1,2,0.99"), IMF_REJ_OUT_OF_RANGE);
}

static void test_reject_names(void **state) {
  (void)state;
  const char *want[] = {"ok",           "empty-line", "missing-field", "extra-fields", "bad-id",
                        "id-too-long",  "bad-rating", "non-finite",    "out-of-range", "bad-time",
                        "line-too-long", "bad-quote", "min-count",     "noise",        "binary"};
  assert_int_equal(IMF_REJ_COUNT_, 15);
  for (int i = 0; i < IMF_REJ_COUNT_; i++) assert_string_equal(imf_reject_reason_name(i), want[i]);
  assert_string_equal(imf_reject_reason_name(-1), "unknown");
  assert_string_equal(imf_reject_reason_name(IMF_REJ_COUNT_), "unknown");
  assert_string_equal(imf_reject_reason_name(1000), "unknown");
}

static void test_values_and_columns(void **state) {
  (void)state;
  imf_parse_opts o = defopts();
  o.format = IMF_FMT_CSV, o.delim = ',', o.header = 0;
  /* the fast decimal path agrees with strtod to the bit */
  const char *nums[] = {"3.5", "-0.25", "+4", "5.", ".5", "0.1", "0.3", "4.35", "123456789012345",
                        "1.23456789012345", "1234567890123456789", "0.30000000000000004",
                        "1e3", "2.5E-1", "000000000000000000001.5", "-7.000"};
  for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
    char line[128];
    snprintf(line, sizeof line, "u,i,%s", nums[i]);
    assert_int_equal(P(&o, line), IMF_LINE_OK);
    double want = strtod(nums[i], NULL);
    if (g_rec.rating != want) fail_msg("%s parsed as %.17g, strtod says %.17g", nums[i], g_rec.rating, want);
    assert_int_equal(g_rec.has_rating, 1);
  }
  assert_int_equal(P(&o, "u,i,1,-9223372036854775808"), IMF_LINE_OK);
  assert_true(g_rec.time == INT64_MIN);
  assert_int_equal(P(&o, "u,i,1,9223372036854775807"), IMF_LINE_OK);
  assert_true(g_rec.time == INT64_MAX);
  assert_int_equal(P(&o, "u,i,1,-5"), IMF_LINE_OK);
  assert_true(g_rec.time == -5 && g_rec.has_time);
  /* time column optional, empty, absent */
  assert_int_equal(P(&o, "u,i,1"), IMF_LINE_OK);
  assert_false(g_rec.has_time);
  assert_int_equal(P(&o, "u,i,1, "), IMF_LINE_OK);
  assert_false(g_rec.has_time);
  o.time_col = 0;
  assert_int_equal(P(&o, "u,i,1,zzz"), IMF_LINE_OK);
  assert_false(g_rec.has_time);
  /* implicit feedback */
  o.rating_col = 0;
  assert_int_equal(P(&o, "u,i"), IMF_LINE_OK);
  assert_int_equal(g_rec.has_rating, 0);
  assert_true(g_rec.rating == 1.0);
  /* columns in another order */
  o.user_col = 3, o.item_col = 1, o.rating_col = 2, o.time_col = 5;
  assert_int_equal(P(&o, "it,4.5,us,junk,77"), IMF_LINE_OK);
  assert_field(g_rec.user, g_rec.user_len, "us");
  assert_field(g_rec.item, g_rec.item_len, "it");
  assert_true(g_rec.rating == 4.5 && g_rec.time == 77);
  assert_int_equal(R(&o, "it,4.5"), IMF_REJ_MISSING_FIELD);
  /* CRLF */
  o = defopts();
  o.format = IMF_FMT_TSV, o.delim = '\t', o.header = 0;
  assert_int_equal(P(&o, "a\tb\t2\t10\r"), IMF_LINE_OK);
  assert_true(g_rec.time == 10);
  /* dat and whitespace formats */
  o.format = IMF_FMT_DAT, o.delim = ':';
  assert_int_equal(P(&o, "7::8::2.5"), IMF_LINE_OK);
  assert_field(g_rec.item, g_rec.item_len, "8");
  assert_false(g_rec.has_time);
  assert_int_equal(R(&o, "7::8"), IMF_REJ_MISSING_FIELD);
  assert_int_equal(R(&o, "7:8:2.5"), IMF_REJ_MISSING_FIELD);
  o.format = IMF_FMT_LIBMF, o.delim = ' ';
  assert_int_equal(R(&o, "  1   "), IMF_REJ_MISSING_FIELD);
  assert_int_equal(R(&o, "   "), IMF_REJ_MISSING_FIELD);
}

static void test_clip_and_limits(void **state) {
  (void)state;
  imf_parse_opts o = defopts();
  o.format = IMF_FMT_CSV, o.delim = ',', o.header = 0;
  o.scale_min = 1, o.scale_max = 5, o.clip = 1;
  assert_int_equal(P(&o, "1,2,7"), IMF_LINE_OK);
  assert_true(g_rec.rating == 5.0 && g_rec.clipped == 1);
  assert_int_equal(P(&o, "1,2,-3"), IMF_LINE_OK);
  assert_true(g_rec.rating == 1.0 && g_rec.clipped == 1);
  assert_int_equal(P(&o, "1,2,3"), IMF_LINE_OK);
  assert_true(g_rec.rating == 3.0 && g_rec.clipped == 0);
  assert_int_equal(R(&o, "1,2,nan"), IMF_REJ_NONFINITE); /* clipping never rescues nan */

  o.max_id_len = 4;
  assert_int_equal(R(&o, "1234,5678,3"), IMF_REJ_NONE);
  assert_int_equal(R(&o, "12345,5678,3"), IMF_REJ_ID_TOO_LONG);
  assert_int_equal(R(&o, "1234,56789,3"), IMF_REJ_ID_TOO_LONG);
  o.max_id_len = 256;
  o.max_line_len = 10;
  assert_int_equal(R(&o, "1,2,3,4567"), IMF_REJ_NONE);   /* exactly 10 */
  assert_int_equal(R(&o, "1,2,3,4567\r"), IMF_REJ_NONE); /* the '\r' does not count */
  assert_int_equal(R(&o, "1,2,3,45678"), IMF_REJ_LINE_TOO_LONG);
  /* a long line near the default limit still parses */
  o.max_line_len = 65536;
  static char big[65600];
  memset(big, 'x', sizeof big);
  memcpy(big, "1,2,3,", 6);
  big[65536] = '\0';
  assert_int_equal(R(&o, big), IMF_REJ_BAD_TIME);
  big[65536] = 'x';
  big[65537] = '\0';
  assert_int_equal(R(&o, big), IMF_REJ_LINE_TOO_LONG);
}

static void test_header_lines(void **state) {
  (void)state;
  imf_parse_opts o = defopts();
  o.format = IMF_FMT_CSV, o.delim = ',', o.header = 1, o.header_lines = 1;
  imf_record rec;
  imf_reject_reason why;
  assert_int_equal(imf_parse_line(&o, "user,item,rating", 16, 1, g_scratch, &rec, &why), IMF_LINE_HEADER);
  assert_int_equal(imf_parse_line(&o, "1,2,3", 5, 2, g_scratch, &rec, &why), IMF_LINE_OK);
  o.header = 0, o.header_lines = 0;
  assert_int_equal(imf_parse_line(&o, "user,item,rating", 16, 1, g_scratch, &rec, &why), IMF_LINE_REJECT);
  assert_int_equal(why, IMF_REJ_BAD_RATING);
  /* mtx: % lines anywhere and everything up to the size line are header */
  o = defopts();
  o.format = IMF_FMT_MTX, o.delim = ' ', o.header = 1, o.header_lines = 3;
  assert_int_equal(imf_parse_line(&o, "3 3 9", 5, 3, g_scratch, &rec, &why), IMF_LINE_HEADER);
  assert_int_equal(imf_parse_line(&o, "% late comment", 14, 9, g_scratch, &rec, &why), IMF_LINE_HEADER);
  assert_int_equal(imf_parse_line(&o, "1 2 3", 5, 4, g_scratch, &rec, &why), IMF_LINE_OK);
}

static imf_status detect(const char *path, const char *text, imf_parse_opts *o) {
  *o = defopts();
  return imf_detect_format(path, text, strlen(text), o);
}

static void test_detect_names(void **state) {
  (void)state;
  imf_parse_opts o;
  /* the name wins over content */
  assert_int_equal(detect("dir/ratings.csv", "1\t2\t3\n", &o), IMF_OK);
  assert_int_equal(o.format, IMF_FMT_CSV);
  assert_int_equal(o.delim, ',');
  assert_int_equal(detect("/x/ratings.csv.gz", "1,2,3\n", &o), IMF_OK);
  assert_int_equal(o.format, IMF_FMT_CSV);
  assert_int_equal(detect("r.TSV.zst", "1,2,3\n", &o), IMF_OK);
  assert_int_equal(o.format, IMF_FMT_TSV);
  assert_int_equal(detect("ratings.dat.xz", "1::2::3\n", &o), IMF_OK);
  assert_int_equal(o.format, IMF_FMT_DAT);
  assert_int_equal(o.delim, ':');
  /* ... except a .dat whose first lines hold no '::' (Book-Crossing's tab-separated book_ratings.dat) */
  assert_int_equal(detect("ratings.dat.xz", "1,2,3\n", &o), IMF_OK);
  assert_int_equal(o.format, IMF_FMT_CSV);
  assert_int_equal(detect("b.dat", "user\titem\trating\n1\t6264\t7.000000\n", &o), IMF_OK);
  assert_int_equal(o.format, IMF_FMT_TSV);
  assert_int_equal(o.header, 1);
  assert_int_equal(detect("a/b/u.data", "196\t242\t3\t881250949\n", &o), IMF_OK);
  assert_int_equal(o.format, IMF_FMT_ML100K);
  assert_int_equal(o.delim, '\t');
  assert_int_equal(detect("ml-100k/u1.base", "1\t1\t5\t874965758\n", &o), IMF_OK);
  assert_int_equal(o.format, IMF_FMT_ML100K);
  assert_int_equal(detect("ua.test.gz", "1\t1\t5\t874965758\n", &o), IMF_OK);
  assert_int_equal(o.format, IMF_FMT_ML100K);
  assert_int_equal(detect("m.libmf", "1 2 3\n", &o), IMF_OK);
  assert_int_equal(o.format, IMF_FMT_LIBMF);
  assert_int_equal(o.delim, ' ');
  assert_int_equal(detect("m.mtx.zstd", "%%MatrixMarket matrix coordinate real general\n2 2 1\n1 1 1\n", &o), IMF_OK);
  assert_int_equal(o.format, IMF_FMT_MTX);
  /* ml100k never has a header, even with a header-like first line */
  assert_int_equal(detect("u.data", "user\titem\trating\n1\t2\t3\n", &o), IMF_OK);
  assert_int_equal(o.header, 0);
  assert_int_equal(o.header_lines, 0);
  /* explicit format kept; delimiter preset by the caller kept for csv */
  o = defopts();
  o.format = IMF_FMT_CSV;
  o.delim = ';';
  assert_int_equal(imf_detect_format("x.tsv", "a;b;3\n", 6, &o), IMF_OK);
  assert_int_equal(o.format, IMF_FMT_CSV);
  assert_int_equal(o.delim, ';');
  assert_int_equal(o.header, 0);
}

static void test_detect_content(void **state) {
  (void)state;
  imf_parse_opts o;
  assert_int_equal(detect("in", "1::2::3::4\n", &o), IMF_OK);
  assert_int_equal(o.format, IMF_FMT_DAT);
  assert_int_equal(detect("in", "1\t2\t3\n", &o), IMF_OK);
  assert_int_equal(o.format, IMF_FMT_TSV);
  assert_int_equal(detect("in", "1,2,3\n", &o), IMF_OK);
  assert_int_equal(o.format, IMF_FMT_CSV);
  assert_int_equal(detect("in", "1 2 3\n", &o), IMF_OK);
  assert_int_equal(o.format, IMF_FMT_LIBMF);
  assert_int_equal(detect(NULL, "\n\n1,2,3\n", &o), IMF_OK); /* blank lines skipped */
  assert_int_equal(o.format, IMF_FMT_CSV);
  assert_int_equal(detect("in", "%%MatrixMarket matrix coordinate pattern symmetric\n% c\n\n% d\n5 5 2\n1 2\n", &o),
                   IMF_OK);
  assert_int_equal(o.format, IMF_FMT_MTX);
  assert_int_equal(o.rating_col, 0);
  assert_int_equal(o.header_lines, 5);
  assert_int_equal(detect("in", "%%MatrixMarket matrix coordinate integer general\n2 2 1", &o), IMF_OK);
  assert_int_equal(o.rating_col, 3);
  assert_int_equal(o.header_lines, 2);
  assert_int_equal(detect("in.mtx", "%%MatrixMarket matrix array real general\n2 2\n1\n", &o), IMF_ERR_INPUT);
  assert_non_null(strstr(imf_last_error(), "in.mtx"));
  assert_non_null(strstr(imf_last_error(), "coordinate"));
  assert_int_equal(detect("in.mtx", "%%MatrixMarket matrix coordinate real general\n% only comments\n", &o),
                   IMF_ERR_INPUT);
  assert_non_null(strstr(imf_last_error(), "size line"));
  assert_int_equal(detect("in.mtx", "%%MatrixMarket matrix coordinate real general\n2 x 1\n", &o), IMF_ERR_INPUT);
  assert_non_null(strstr(imf_last_error(), "line 2"));
  assert_int_equal(detect("in.mtx", "1 2 3\n", &o), IMF_ERR_INPUT);
  assert_non_null(strstr(imf_last_error(), "banner"));
  assert_int_equal(detect("in", "justoneword\n", &o), IMF_ERR_INPUT);
  assert_non_null(strstr(imf_last_error(), "input.format"));
}

static void test_detect_header(void **state) {
  (void)state;
  imf_parse_opts o;
  assert_int_equal(detect("a.csv", "userId,movieId,rating\n1,2,3\n", &o), IMF_OK);
  assert_int_equal(o.header, 1);
  assert_int_equal(o.header_lines, 1);
  assert_int_equal(detect("a.csv", "UID,ITEM,R\n1,2,3\n", &o), IMF_OK);
  assert_int_equal(o.header, 1);
  assert_int_equal(detect("a.tsv", "a\tb\tscore\n1\t2\t3\n", &o), IMF_OK); /* non-numeric vs numeric */
  assert_int_equal(o.header, 1);
  assert_int_equal(detect("a.csv", "1,2,3\n4,5,6\n", &o), IMF_OK);
  assert_int_equal(o.header, 0);
  assert_int_equal(o.header_lines, 0);
  assert_int_equal(detect("a.csv", "x,y,z\nq,w,e\n", &o), IMF_OK); /* both non-numeric: no header */
  assert_int_equal(o.header, 0);
  assert_int_equal(detect("a.csv", "x,y,z\n", &o), IMF_OK);
  assert_int_equal(o.header, 0);
  assert_int_equal(detect("a.csv", "\"a\",\"b\",\"c\"\n\"1\",\"2\",\"3.5\"\n", &o), IMF_OK);
  assert_int_equal(o.header, 1);
  /* explicit choices are kept */
  o = defopts();
  o.header = 0;
  assert_int_equal(imf_detect_format("a.csv", "user,item,rating\n", 17, &o), IMF_OK);
  assert_int_equal(o.header, 0);
  assert_int_equal(o.header_lines, 0);
  o = defopts();
  o.header = 1;
  assert_int_equal(imf_detect_format("a.csv", "1,2,3\n", 6, &o), IMF_OK);
  assert_int_equal(o.header, 1);
  assert_int_equal(o.header_lines, 1);
}

/* input.*_col = auto on every column, as the configuration's defaults */
static imf_status detect_auto(const char *path, const char *text, imf_parse_opts *o) {
  *o = defopts();
  o->col_auto = IMF_COL_USER | IMF_COL_ITEM | IMF_COL_RATING | IMF_COL_TIME;
  return imf_detect_format(path, text, strlen(text), o);
}

#define ASSERT_COLS(o, u, i, r, t)                                                                                     \
  do {                                                                                                                 \
    assert_int_equal((o).user_col, u);                                                                                 \
    assert_int_equal((o).item_col, i);                                                                                 \
    assert_int_equal((o).rating_col, r);                                                                               \
    assert_int_equal((o).time_col, t);                                                                                 \
  } while (0)

static void test_column_roles(void **state) {
  (void)state;
  static const struct {
    const char *name;
    int role;
  } cases[] = {{"user", 0},      {"userId", 0},     {"USER_ID", 0},  {"User-ID", 0},    {"uid", 0},
               {"\xef\xbb\xbfuserId", 0},          {"item", 1},     {"movieId", 1},    {"ISBN", 1},
               {"book_id", 1},   {"rating", 2},     {"Book-Rating", 2}, {"score", 2},   {"stars", 2},
               {"timestamp", 3}, {"ts", 3},         {"Date", 3},     {"\"time\"", 3}, {"a", -1},
               {"userx", -1},    {"", -1},          {"user_name_of_the_person_who_rated_it", -1}};
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    int r = imf_column_role(cases[k].name, strlen(cases[k].name));
    if (r != cases[k].role) fail_msg("'%s': role %d, want %d", cases[k].name, r, cases[k].role);
  }
}

static void test_header_by_name(void **state) {
  (void)state;
  imf_parse_opts o;
  char desc[512];
  /* issue 26: columns in another order, quoted, CRLF */
  const char *f = "\"item\",\"rating\",\"user\",\"time\"\r\n\"i1\",4,\"u1\",100\r\n";
  assert_int_equal(detect_auto("x.csv", f, &o), IMF_OK);
  assert_int_equal(o.header, 1);
  assert_int_equal(o.header_lines, 1);
  assert_true(o.cols_named);
  ASSERT_COLS(o, 3, 1, 2, 4);
  imf_header_describe(&o, f, strlen(f), desc, sizeof desc);
  assert_string_equal(desc, "user = 'user' (3), item = 'item' (1), rating = 'rating' (2), time = 'time' (4)");
  /* and its data line parses into the right fields */
  const char *l2 = "\"i1\",4,\"u1\",100\r";
  assert_int_equal(imf_parse_line(&o, l2, strlen(l2), 2, g_scratch, &g_rec, &g_why), IMF_LINE_OK);
  assert_int_equal(g_rec.user_len, 2);
  assert_memory_equal(g_rec.user, "u1", 2);
  assert_memory_equal(g_rec.item, "i1", 2);
  assert_true(g_rec.rating == 4.0);
  assert_int_equal(g_rec.time, 100);
  /* MovieLens latest and Book-Crossing headers */
  assert_int_equal(detect_auto("ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n", &o), IMF_OK);
  ASSERT_COLS(o, 1, 2, 3, 4);
  o = defopts();
  o.col_auto = 15;
  o.delim = ';';
  const char *bx = "\"User-ID\";\"ISBN\";\"Book-Rating\"\n\"276725\";\"034545104X\";\"0\"\n";
  assert_int_equal(imf_detect_format("BX-Book-Ratings.csv", bx, strlen(bx), &o), IMF_OK);
  ASSERT_COLS(o, 1, 2, 3, 0); /* no time column */
  /* no rating column and nothing else: implicit feedback; unnamed extra columns ignored */
  assert_int_equal(detect_auto("a.csv", "user,item\nu,i\n", &o), IMF_OK);
  ASSERT_COLS(o, 1, 2, 0, 0);
  const char *tag = "Rating,User_ID,Product_ID,tag\n5,u,p,x\n";
  assert_int_equal(detect_auto("a.csv", tag, &o), IMF_OK);
  ASSERT_COLS(o, 2, 3, 1, 0);
  imf_header_describe(&o, tag, strlen(tag), desc, sizeof desc);
  assert_non_null(strstr(desc, "time: none; ignored: 'tag' (4)"));
  /* explicit columns win; the others are still matched by name, never onto an explicit one */
  o = defopts();
  o.col_auto = IMF_COL_USER | IMF_COL_ITEM | IMF_COL_TIME;
  o.rating_col = 2;
  const char *given = "user,score,item,rating\nu,5,i,x\n";
  assert_int_equal(imf_detect_format("a.csv", given, strlen(given), &o), IMF_OK);
  ASSERT_COLS(o, 1, 3, 2, 0);
  o = defopts(); /* all given: the header's names are not looked at */
  assert_int_equal(imf_detect_format("a.csv", "item,rating,user,time\ni,5,u,1\n", 30, &o), IMF_OK);
  assert_int_equal(o.header, 1);
  assert_false(o.cols_named);
  ASSERT_COLS(o, 1, 2, 3, 4);
}

static void test_header_unrecognised(void **state) {
  (void)state;
  imf_parse_opts o;
  /* a header (non-numeric rating over a numeric one) whose names cannot be mapped: an error
   * naming the file, the line and the columns, never lines rejected as bad-rating */
  assert_int_equal(detect_auto("r.csv", "a,b,c,d\n1,2,3,4\n", &o), IMF_ERR_INPUT);
  assert_non_null(strstr(imf_last_error(), "r.csv line 1: header not recognised: no user column"));
  assert_non_null(strstr(imf_last_error(), "'a', 'b', 'c', 'd' (4 columns)"));
  assert_non_null(strstr(imf_last_error(), "input.user_col"));
  assert_int_equal(detect_auto("r.csv", "\n\nuserId,what,rating\n1,2,3\n", &o), IMF_ERR_INPUT);
  assert_non_null(strstr(imf_last_error(), "r.csv line 3: header not recognised: no item column"));
  /* a rating column cannot be told from an unnamed one */
  assert_int_equal(detect_auto("r.csv", "userId,movieId,stars_given\n1,2,3\n", &o), IMF_ERR_INPUT);
  assert_non_null(strstr(imf_last_error(), "no rating column"));
  assert_non_null(strstr(imf_last_error(), "0: implicit feedback"));
  /* headerless files: positional as before, the first line is data */
  assert_int_equal(detect_auto("r.csv", "1,2,3,4\n5,6,7,8\n", &o), IMF_OK);
  assert_int_equal(o.header, 0);
  assert_false(o.cols_named);
  ASSERT_COLS(o, 1, 2, 3, 4);
  assert_int_equal(detect_auto("r.tsv", "user1\titem1\t5\t100\nuser2\titem2\t4\t101\n", &o), IMF_OK);
  assert_int_equal(o.header, 0); /* ids that only contain "user" are data */
  assert_int_equal(detect_auto("u.data", "196\t242\t3\t881250949\n", &o), IMF_OK);
  ASSERT_COLS(o, 1, 2, 3, 4);
  assert_int_equal(detect_auto("r.dat", "1::2::3::4\n", &o), IMF_OK);
  ASSERT_COLS(o, 1, 2, 3, 4);
  /* input.header = no: names are data, columns positional */
  o = defopts();
  o.col_auto = 15;
  o.header = 0;
  assert_int_equal(imf_detect_format("a.csv", "item,rating,user,time\n", 22, &o), IMF_OK);
  ASSERT_COLS(o, 1, 2, 3, 4);
  /* a column given twice after the names are matched */
  o = defopts();
  o.col_auto = IMF_COL_ITEM;
  o.user_col = 2;
  assert_int_equal(imf_detect_format("a.csv", "1,2,3\n", 6, &o), IMF_ERR_USAGE);
  assert_non_null(strstr(imf_last_error(), "distinct"));
}

static void test_detect_binary_empty(void **state) {
  (void)state;
  imf_parse_opts o = defopts();
  assert_int_equal(imf_detect_format("e.csv", "", 0, &o), IMF_ERR_INPUT);
  assert_non_null(strstr(imf_last_error(), "e.csv is empty"));
  assert_int_equal(detect("e.csv", "\n\r\n\n", &o), IMF_ERR_INPUT);
  assert_non_null(strstr(imf_last_error(), "e.csv"));
  o = defopts();
  assert_int_equal(imf_detect_format("b.csv", "1,2,3\n\0\0\0", 9, &o), IMF_ERR_INPUT);
  assert_non_null(strstr(imf_last_error(), "b.csv looks binary, not a rating file"));
  /* mostly high bytes that are not UTF-8 */
  char junk[200];
  for (int i = 0; i < 200; i++) junk[i] = (char)(i % 3 ? 0x80 + (i % 60) : 'a');
  o = defopts();
  assert_int_equal(imf_detect_format("j.dat", junk, sizeof junk, &o), IMF_ERR_INPUT);
  assert_non_null(strstr(imf_last_error(), "looks binary"));
  /* UTF-8 ids are text */
  assert_int_equal(detect("in", "Jos\xc3\xa9,caf\xc3\xa9 \xe2\x82\xac,4\n\xe6\x97\xa5,\xf0\x9f\x8e\xac,5\n", &o), IMF_OK);
  assert_int_equal(o.format, IMF_FMT_CSV);
  /* an explicit format does not skip the checks */
  o = defopts();
  o.format = IMF_FMT_TSV;
  assert_int_equal(imf_detect_format("b.tsv", "a\0b", 3, &o), IMF_ERR_INPUT);
}

static void test_format_names(void **state) {
  (void)state;
  const char *names[] = {"auto", "csv", "tsv", "dat", "ml100k", "mtx", "libmf"};
  for (int i = 0; i < 7; i++) {
    imf_format f;
    assert_string_equal(imf_format_name((imf_format)i), names[i]);
    assert_int_equal(imf_format_from_name(names[i], &f), IMF_OK);
    assert_int_equal(f, i);
  }
  imf_format f;
  assert_int_equal(imf_format_from_name("parquet", &f), IMF_ERR_USAGE);
  assert_non_null(strstr(imf_last_error(), "parquet"));
  assert_non_null(strstr(imf_last_error(), "auto|csv|tsv|dat|ml100k|mtx|libmf"));
}

/* The one-pass fast path (imf_parse_line_simple) takes exactly the plain lines and gives what
 * imf_parse_line gives; everything else is left to imf_parse_line. Each case: format, delimiter,
 * the line (as it stands in the buffer, with its '\n' or without at end of input), whether the
 * fast path must take it. */
static void test_fast_path(void **state) {
  (void)state;
  const struct {
    imf_format fmt;
    char delim;
    const char *text;
    int fast;
    size_t len; /* 0: strlen(text) */
  } cases[] = {
      {IMF_FMT_CSV, ',', "1,2,3.5,100\n", 1},
      {IMF_FMT_CSV, ',', "1,2,3.5,100", 1},            /* last line, no newline */
      {IMF_FMT_CSV, ',', "1,2,3.5,100\r\n", 1},        /* CRLF */
      {IMF_FMT_CSV, ',', "u7,0104257,4,-5\n", 1},      /* string ids, negative time */
      {IMF_FMT_CSV, ',', "1,2,3.5,100,extra,cols\n", 1},
      {IMF_FMT_CSV, ';', "1;2;3.5;100\n", 1},
      {IMF_FMT_TSV, '\t', "1\t2\t3.5\t100\n", 1},
      {IMF_FMT_ML100K, '\t', "196\t242\t3\t881250949\n", 1},
      {IMF_FMT_TSV, '\t', "\"a\"\t2\t3\t1\n", 1},      /* a quote is data in TSV */
      {IMF_FMT_CSV, ',', "1,2,3.5\n", 0},              /* no time column: the general parser */
      {IMF_FMT_CSV, ',', "1, 2,3.5,100\n", 0},         /* a space to trim */
      {IMF_FMT_CSV, ',', "\"1\",2,3.5,100\n", 0},      /* quoted */
      {IMF_FMT_CSV, ',', "1,,3.5,100\n", 0},           /* empty field */
      {IMF_FMT_CSV, ',', "1,2,nan,100\n", 0},
      {IMF_FMT_CSV, ',', "1,2,7,100\n", 0},            /* out of the 1..5 scale */
      {IMF_FMT_CSV, ',', "1,2,3,x\n", 0},              /* bad time */
      {IMF_FMT_CSV, ',', "1,2,3,100,a\0b\n", 0, 14},   /* NUL in an extra column */
      {IMF_FMT_CSV, ',', "1,2,3,100\r\r\n", 0},
      {IMF_FMT_CSV, ',', "\n", 0},
      {IMF_FMT_CSV, ',', "1\x01,2,3,100\n", 0},
      {IMF_FMT_CSV, ',', "123456789,2,3,100\n", 0},    /* id over max_id_len 8 */
      {IMF_FMT_DAT, ':', "1::2::3::100\n", 0},         /* other formats: never */
      {IMF_FMT_LIBMF, ' ', "1 2 3\n", 0},
  };
  for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
    imf_parse_opts o = defopts();
    o.format = cases[t].fmt;
    o.delim = cases[t].delim;
    o.header = 0;
    o.max_id_len = 8;
    o.scale_min = 1, o.scale_max = 5;
    if (o.format == IMF_FMT_LIBMF) o.time_col = 0;
    size_t n = cases[t].len ? cases[t].len : strlen(cases[t].text);
    const char *line = cases[t].text, *end = line + n, *eol = NULL;
    imf_record fr;
    int took = imf_parse_line_simple(&o, line, end, &fr, &eol);
    if (took != cases[t].fast) fail_msg("case %zu (%s): fast path %s", t, cases[t].text, took ? "took it" : "declined");
    if (!took) continue;
    const char *nl = memchr(line, '\n', n);
    size_t len = (size_t)((nl ? nl : end) - line);
    assert_ptr_equal(eol, line + len);
    imf_record gr;
    imf_reject_reason why;
    assert_int_equal(imf_parse_line(&o, line, len, INT64_MAX, g_scratch, &gr, &why), IMF_LINE_OK);
    assert_ptr_equal(fr.user, gr.user);
    assert_int_equal(fr.user_len, gr.user_len);
    assert_ptr_equal(fr.item, gr.item);
    assert_int_equal(fr.item_len, gr.item_len);
    assert_true(fr.rating == gr.rating && fr.has_rating == gr.has_rating);
    assert_int_equal(fr.time, gr.time);
    assert_int_equal(fr.has_time, gr.has_time);
    assert_int_equal(fr.clipped, 0);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_csv_fixture),         cmocka_unit_test(test_header_csv_fixture),
      cmocka_unit_test(test_tsv_dat_ml100k_fixtures), cmocka_unit_test(test_mtx_libmf_fixtures),
      cmocka_unit_test(test_bad_fixture),         cmocka_unit_test(test_quoted_csv),
      cmocka_unit_test(test_reject_reasons),      cmocka_unit_test(test_reject_names),
      cmocka_unit_test(test_values_and_columns),  cmocka_unit_test(test_clip_and_limits),
      cmocka_unit_test(test_header_lines),        cmocka_unit_test(test_detect_names),
      cmocka_unit_test(test_detect_content),      cmocka_unit_test(test_detect_header),
      cmocka_unit_test(test_detect_binary_empty), cmocka_unit_test(test_format_names),
      cmocka_unit_test(test_fast_path),           cmocka_unit_test(test_column_roles),
      cmocka_unit_test(test_header_by_name),      cmocka_unit_test(test_header_unrecognised),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
