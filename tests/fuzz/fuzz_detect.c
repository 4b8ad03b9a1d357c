/* fuzz_detect.c - input format detection (imf_detect_format, src/parse.c). The input is the
 * first bytes of a rating file (what ingest samples). It is detected under several file names
 * (none, each extension, compressed names, MovieLens 100K names) and option sets; whenever
 * detection succeeds, the result must be a usable set of options, and every line of the sample
 * is then parsed with them, as ingest would. The input, as a NUL-terminated string, also goes
 * through imf_format_from_name. */
#include "fuzzsupport.h"
#include "parse.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const PATHS[] = {NULL,          "ratings",        "r.csv",       "R.TSV.gz",
                                    "ml/u.data",   "ml-100k/u1.base", "ratings.dat", "m.mtx.zst",
                                    "x.libmf.xz",  "/a.b/c",          "u.test",      ".csv"};

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  fz_init_quiet();
  return 0;
}

static int64_t count_lines(const char *s, size_t n) {
  int64_t k = 0;
  for (size_t i = 0; i < n; i++) k += s[i] == '\n';
  return k + (n > 0 && s[n - 1] != '\n');
}

static void parse_sample(const imf_parse_opts *o, const char *s, size_t n) {
  const char *p = s, *end = s + n;
  int64_t lineno = 0;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t len = (size_t)((nl ? nl : end) - p);
    lineno++;
    char *line = malloc(len ? len : 1), *scratch = malloc(len ? len : 1);
    if (!line || !scratch) abort();
    memcpy(line, p, len);
    imf_record rec;
    imf_reject_reason why;
    imf_line_kind k = imf_parse_line(o, line, len, lineno, scratch, &rec, &why);
    if (lineno <= o->header_lines)
      FZ_ASSERT(k == IMF_LINE_HEADER, "line %lld is within the detected header but parsed as %d",
                (long long)lineno, (int)k);
    if (k == IMF_LINE_OK) {
      FZ_ASSERT(rec.user_len > 0 && rec.item_len > 0, "empty id accepted");
      FZ_ASSERT(!o->rating_col || isfinite(rec.rating), "non-finite rating accepted");
    }
    free(line);
    free(scratch);
    if (!nl) break;
    p = nl + 1;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *sample = malloc(size ? size : 1);
  if (!sample) abort();
  memcpy(sample, data, size);
  for (size_t i = 0; i < sizeof PATHS / sizeof PATHS[0]; i++) {
    for (int v = 0; v < 4; v++) { /* v == 3: every column auto, matched by header name */
      imf_parse_opts o;
      memset(&o, 0, sizeof o);
      o.format = IMF_FMT_AUTO;
      o.header = v == 2 ? 1 : -1;
      o.delim = v == 1 ? ';' : 0;
      o.user_col = 1, o.item_col = 2, o.rating_col = v == 1 ? 0 : 3, o.time_col = v == 1 ? 0 : 4;
      o.col_auto = v == 3 ? IMF_COL_USER | IMF_COL_ITEM | IMF_COL_RATING | IMF_COL_TIME : 0;
      o.max_id_len = 256;
      o.max_line_len = 65536;
      o.scale_min = o.scale_max = NAN;
      imf_status st = imf_detect_format(PATHS[i], sample, size, &o);
      if (st != IMF_OK) {
        FZ_ASSERT(st == IMF_ERR_INPUT || st == IMF_ERR_USAGE, "detection failed with status %d", (int)st);
        continue;
      }
      FZ_ASSERT(o.format > IMF_FMT_AUTO && o.format <= IMF_FMT_LIBMF, "detected format %d", (int)o.format);
      FZ_ASSERT(o.header == 0 || o.header == 1, "header = %d", o.header);
      FZ_ASSERT(o.delim != 0, "no delimiter");
      FZ_ASSERT(o.header_lines >= 0 && o.header_lines <= count_lines(sample, size),
                "header_lines = %lld for a sample of %lld lines", (long long)o.header_lines,
                (long long)count_lines(sample, size));
      FZ_ASSERT(o.header == 1 || o.header_lines == 0, "header lines without a header");
      FZ_ASSERT(o.user_col >= 1 && o.item_col >= 1 && o.user_col != o.item_col && o.rating_col >= 0 &&
                    o.time_col >= 0 && o.rating_col != o.user_col && o.rating_col != o.item_col,
                "columns %d %d %d %d", o.user_col, o.item_col, o.rating_col, o.time_col);
      if (o.cols_named) {
        char desc[96]; /* short: the description must stop at its end */
        imf_header_describe(&o, sample, size, desc, sizeof desc);
        FZ_ASSERT(strlen(desc) < sizeof desc, "description overran");
      }
      if (i == 0 || i == 2 || i == 8) parse_sample(&o, sample, size);
    }
  }
  free(sample);
  /* format names */
  char *name = malloc(size + 1);
  if (!name) abort();
  memcpy(name, data, size);
  name[size] = '\0';
  imf_format f = (imf_format)-1;
  if (imf_format_from_name(name, &f) == IMF_OK)
    FZ_ASSERT(f >= IMF_FMT_AUTO && f <= IMF_FMT_LIBMF, "format %d from a name", (int)f);
  FZ_ASSERT(strcmp(imf_format_name(f), "") != 0, "empty format name");
  free(name);
  return 0;
}
