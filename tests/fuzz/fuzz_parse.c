/* fuzz_parse.c - one input format's line parser (src/parse.c), compiled once per format with
 * -DFUZZ_FORMAT=IMF_FMT_CSV, ... The input is a rating file. Each input is parsed under several
 * option sets (columns, header, delimiter, id/line limits, scale, clip) the way ingest does it:
 * format detection on the content (with the format forced), then imf_parse_line on every line.
 * Every line is copied into a heap buffer of exactly its length, and the scratch buffer is
 * exactly as long as the line (the documented minimum), so ASan sees any read or write past
 * them. The records must satisfy parse.h's contract (checked below). */
#include "fuzzsupport.h"
#include "parse.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifndef FUZZ_FORMAT
#error "compile with -DFUZZ_FORMAT=IMF_FMT_..."
#endif

typedef struct {
  int user, item, rating, time;
  int header;
  char delim;
  size_t max_id, max_line;
  double smin, smax;
  int clip;
  int ingest_lineno; /* pass INT64_MAX as ingest does (header handled by byte offset) */
} cfg_t;

static const cfg_t CFGS[] = {
    {1, 2, 3, 4, -1, 0, 256, 65536, NAN, NAN, 0, 0},
    {2, 1, 3, 0, 0, 0, 8, 64, 1, 5, 0, 1},
    {1, 2, 0, 0, 1, 0, 0, 0, 0.5, 5, 1, 0},
    {3, 1, 2, 5, -1, ';', 256, 65536, -10, 10, 1, 1},
    {1, 3, 3, 3, -1, ' ', 3, 65536, NAN, 4, 0, 0},
};

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  fz_init_quiet();
  return 0;
}

static int within(const char *p, size_t n, const char *buf, size_t len) {
  return p >= buf && n <= len && (size_t)(p - buf) <= len - n;
}

static void check_id(const char *what, const char *p, size_t n, const imf_parse_opts *o,
                     const char *line, size_t len, const char *scratch) {
  FZ_ASSERT(n >= 1, "%s id is empty", what);
  FZ_ASSERT(within(p, n, line, len) || within(p, n, scratch, len), "%s id points outside the line and scratch", what);
  FZ_ASSERT(!o->max_id_len || n <= o->max_id_len, "%s id of %zu bytes passed max_id_len %zu", what, n, o->max_id_len);
  for (size_t i = 0; i < n; i++)
    FZ_ASSERT((unsigned char)p[i] >= 0x20, "%s id holds control byte 0x%02x", what, (unsigned char)p[i]);
}

static void parse_all(const imf_parse_opts *o, const uint8_t *data, size_t size, int ingest_lineno) {
  const char *p = (const char *)data, *end = p + size;
  int64_t lineno = 0;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t len = (size_t)((nl ? nl : end) - p);
    lineno++;
    char *line = malloc(len ? len : 1), *scratch = malloc(len ? len : 1);
    if (!line || !scratch) abort();
    memcpy(line, p, len);
    imf_record rec;
    memset(&rec, 0xa5, sizeof rec);
    imf_reject_reason why = (imf_reject_reason)-1;
    imf_line_kind k = imf_parse_line(o, line, len, ingest_lineno ? INT64_MAX : lineno, scratch, &rec, &why);
    size_t slen = len && line[len - 1] == '\r' ? len - 1 : len;
    switch (k) {
    case IMF_LINE_OK:
      FZ_ASSERT(why == IMF_REJ_NONE, "accepted line with reason %d", (int)why);
      FZ_ASSERT(!o->max_line_len || slen <= o->max_line_len, "line of %zu bytes accepted past max_line_len", slen);
      FZ_ASSERT(!memchr(line, '\0', slen), "line with a NUL byte accepted");
      check_id("user", rec.user, rec.user_len, o, line, len, scratch);
      check_id("item", rec.item, rec.item_len, o, line, len, scratch);
      if (o->rating_col > 0) {
        FZ_ASSERT(rec.has_rating == 1, "rating column set but has_rating = %d", rec.has_rating);
        FZ_ASSERT(isfinite(rec.rating), "non-finite rating %g accepted", rec.rating);
        FZ_ASSERT(!(rec.rating < o->scale_min) && !(rec.rating > o->scale_max),
                  "rating %g outside the scale [%g, %g]", rec.rating, o->scale_min, o->scale_max);
        FZ_ASSERT(!rec.clipped || o->clip, "clipped without clip");
      } else {
        FZ_ASSERT(rec.has_rating == 0 && rec.rating == 1.0, "implicit record has rating %g", rec.rating);
      }
      FZ_ASSERT(rec.has_time == 0 || rec.has_time == 1, "has_time = %d", rec.has_time);
      FZ_ASSERT(!rec.has_time || o->time_col > 0, "time without a time column");
      break;
    case IMF_LINE_HEADER:
      FZ_ASSERT(why == IMF_REJ_NONE, "header line with reason %d", (int)why);
      break;
    case IMF_LINE_REJECT:
      FZ_ASSERT(why > IMF_REJ_NONE && why < IMF_REJ_COUNT_ && why != IMF_REJ_MIN_COUNT && why != IMF_REJ_NOISE &&
                    why != IMF_REJ_EXTRA_FIELDS,
                "reject reason %d", (int)why);
      FZ_ASSERT((why == IMF_REJ_EMPTY_LINE) == (slen == 0), "empty-line reason for a line of %zu bytes", slen);
      FZ_ASSERT(why != IMF_REJ_LINE_TOO_LONG || (o->max_line_len && slen > o->max_line_len), "line-too-long for %zu bytes", slen);
      FZ_ASSERT(why != IMF_REJ_ID_TOO_LONG || o->max_id_len, "id-too-long without a limit");
      FZ_ASSERT(why != IMF_REJ_BINARY || memchr(line, '\0', slen), "binary reason without a NUL");
      FZ_ASSERT(why != IMF_REJ_BAD_QUOTE || o->format == IMF_FMT_CSV, "bad-quote outside CSV");
      break;
    default:
      FZ_ASSERT(0, "imf_parse_line returned %d", (int)k);
    }
    /* the one-pass fast path of ingest must agree with imf_parse_line on every line it takes */
    imf_record fr;
    const char *feol = NULL;
    if (imf_parse_line_simple(o, line, line + len, &fr, &feol)) {
      imf_record gr;
      imf_reject_reason gw;
      FZ_ASSERT(imf_parse_line(o, line, len, INT64_MAX, scratch, &gr, &gw) == IMF_LINE_OK,
                "the fast path took a line imf_parse_line does not accept (reason %d)", (int)gw);
      FZ_ASSERT(feol == line + len, "the fast path ended the line at %td of %zu", feol - line, len);
      FZ_ASSERT(fr.user == gr.user && fr.user_len == gr.user_len && fr.item == gr.item && fr.item_len == gr.item_len,
                "the fast path split the ids differently");
      FZ_ASSERT(!memcmp(&fr.rating, &gr.rating, sizeof fr.rating) && fr.has_rating == gr.has_rating &&
                    fr.time == gr.time && fr.has_time == gr.has_time && fr.clipped == gr.clipped,
                "the fast path read rating/time differently: %g/%lld vs %g/%lld", fr.rating, (long long)fr.time,
                gr.rating, (long long)gr.time);
    }
    free(line);
    free(scratch);
    if (!nl) break;
    p = nl + 1;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  for (size_t c = 0; c < sizeof CFGS / sizeof CFGS[0]; c++) {
    const cfg_t *g = &CFGS[c];
    imf_parse_opts o;
    memset(&o, 0, sizeof o);
    o.format = FUZZ_FORMAT;
    o.header = g->header;
    o.delim = g->delim;
    o.user_col = g->user, o.item_col = g->item, o.rating_col = g->rating, o.time_col = g->time;
    o.max_id_len = g->max_id;
    o.max_line_len = g->max_line;
    o.scale_min = g->smin, o.scale_max = g->smax;
    o.clip = g->clip;
    /* The sample the detector sees is a heap copy of exactly the input. */
    char *sample = malloc(size ? size : 1);
    if (!sample) abort();
    memcpy(sample, data, size);
    imf_status st = imf_detect_format(NULL, sample, size, &o);
    free(sample);
    if (st == IMF_OK) {
      FZ_ASSERT(o.format == FUZZ_FORMAT, "detection changed a forced format to %d", (int)o.format);
      FZ_ASSERT(o.header == 0 || o.header == 1, "header = %d after detection", o.header);
      FZ_ASSERT(o.header_lines >= 0, "header_lines = %lld", (long long)o.header_lines);
      FZ_ASSERT(o.delim != 0, "no delimiter after detection");
    } else if (o.header < 0) {
      o.header = 0; /* ingest stops here; the line parser must still cope */
    }
    parse_all(&o, data, size, g->ingest_lineno);
  }
  return 0;
}
