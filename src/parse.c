/* parse.c - one line of rating text -> one record, and format detection from a file's name and
 * first bytes. imf_parse_line is the ingest hot loop (tens of millions of calls per GB), so the
 * common path avoids strtod, allocation and per-byte function calls. */
#include "parse.h"
#include "error.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- names ---- */

static const char *const FORMAT_NAMES[] = {"auto", "csv", "tsv", "dat", "ml100k", "mtx", "libmf"};
#define NFORMATS (sizeof FORMAT_NAMES / sizeof FORMAT_NAMES[0])

const char *imf_format_name(imf_format f) {
  if ((unsigned)f >= NFORMATS) return "unknown";
  return FORMAT_NAMES[f];
}

imf_status imf_format_from_name(const char *name, imf_format *out) {
  if (!name) IMF_FAIL(IMF_ERR_USAGE, "input format not given; choose one of auto|csv|tsv|dat|ml100k|mtx|libmf");
  for (size_t i = 0; i < NFORMATS; i++) {
    if (strcasecmp(name, FORMAT_NAMES[i]) == 0) {
      *out = (imf_format)i;
      return IMF_OK;
    }
  }
  IMF_FAIL(IMF_ERR_USAGE, "unknown input format '%s'; choose one of auto|csv|tsv|dat|ml100k|mtx|libmf",
           name);
}

/* Stable names: they appear in reject files and reports, so never renumber or rename. */
static const char *const REJECT_NAMES[IMF_REJ_COUNT_] = {
    "ok",           "empty-line", "missing-field", "extra-fields", "bad-id",
    "id-too-long",  "bad-rating", "non-finite",    "out-of-range", "bad-time",
    "line-too-long", "bad-quote", "min-count",     "noise",        "binary"};

const char *imf_reject_reason_name(int reason) {
  if (reason < 0 || reason >= IMF_REJ_COUNT_) return "unknown";
  return REJECT_NAMES[reason];
}

/* ---- numbers ---- */

/* Exact powers of ten: with at most 15 significant digits the mantissa and 10^k (k <= 22) are
 * both exact doubles, so one IEEE division gives the correctly rounded result (Clinger's fast
 * path) - the same value strtod would return. */
static const double POW10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                 1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static int word_ci(const char *s, size_t n, const char *w) {
  size_t wn = strlen(w);
  return n == wn && strncasecmp(s, w, n) == 0;
}

static int is_nonfinite_word(const char *s, size_t n) {
  if (n > 0 && (s[0] == '+' || s[0] == '-')) s++, n--;
  return word_ci(s, n, "nan") || word_ci(s, n, "inf") || word_ci(s, n, "infinity");
}

/* Everything the fast path does not take: exponents, long mantissas, nan/inf words. strtod
 * gets a bounded NUL-terminated copy; hex floats and other strtod extensions are refused by
 * the character check so that what counts as a number does not depend on libc. */
static imf_reject_reason parse_rating_slow(const char *s, size_t n, double *out) {
  if (is_nonfinite_word(s, n)) return IMF_REJ_NONFINITE;
  char buf[128];
  if (n == 0 || n >= sizeof buf) return IMF_REJ_BAD_RATING;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= '0' && c <= '9') || c == '.' || c == '+' || c == '-' || c == 'e' || c == 'E'))
      return IMF_REJ_BAD_RATING;
  }
  memcpy(buf, s, n);
  buf[n] = '\0';
  char *end;
  errno = 0;
  double v = strtod(buf, &end);
  if (end != buf + n) return IMF_REJ_BAD_RATING;
  if (!isfinite(v)) return IMF_REJ_NONFINITE; /* overflowed, e.g. 1e999 */
  *out = v;
  return IMF_REJ_NONE;
}

static inline imf_reject_reason parse_rating(const char *s, size_t n, double *out) {
  const char *p = s, *e = s + n;
  int neg = 0;
  if (p < e && (*p == '-' || *p == '+')) neg = (*p++ == '-');
  uint64_t m = 0;
  int nd = 0, frac = 0;
  while (p < e && (unsigned)(*p - '0') < 10) {
    m = m * 10 + (unsigned)(*p++ - '0');
    if (++nd > 15) return parse_rating_slow(s, n, out);
  }
  if (p < e && *p == '.') {
    p++;
    while (p < e && (unsigned)(*p - '0') < 10) {
      m = m * 10 + (unsigned)(*p++ - '0');
      frac++;
      if (++nd > 15) return parse_rating_slow(s, n, out);
    }
  }
  if (p != e || nd == 0) return parse_rating_slow(s, n, out);
  double v = (double)m;
  if (frac) v /= POW10[frac];
  *out = neg ? -v : v;
  return IMF_REJ_NONE;
}

/* Strict base-10 int64: optional sign, digits only, overflow is an error. */
static inline int parse_i64(const char *s, size_t n, int64_t *out) {
  const char *p = s, *e = s + n;
  int neg = 0;
  if (p < e && (*p == '-' || *p == '+')) neg = (*p++ == '-');
  if (p == e) return 0;
  uint64_t lim = neg ? (uint64_t)INT64_MAX + 1u : (uint64_t)INT64_MAX;
  uint64_t v = 0;
  if (e - p <= 18) { /* below 10^18 < 2^63: no digit can overflow, so no division per digit */
    for (; p < e; p++) {
      unsigned d = (unsigned)(*p - '0');
      if (d >= 10) return 0;
      v = v * 10 + d;
    }
  }
  for (; p < e; p++) {
    unsigned d = (unsigned)(*p - '0');
    if (d >= 10) return 0;
    if (v > (lim - d) / 10) return 0;
    v = v * 10 + d;
  }
  *out = neg ? (int64_t)(0u - v) : (int64_t)v;
  return 1;
}

/* ---- splitting ---- */

typedef struct {
  const char *p;
  size_t n;
  int present; /* the line had this column */
  int quoted;  /* came from "..." (an empty quoted id is a bad id, not a missing field) */
} field;

enum { F_USER = 0, F_ITEM, F_RATING, F_TIME, F_N };

static inline void put_field(field *f, int col, const int cols[F_N], const char *p, size_t n,
                             int quoted) {
  for (int k = 0; k < F_N; k++) {
    if (cols[k] == col) {
      f[k].p = p;
      f[k].n = n;
      f[k].present = 1;
      f[k].quoted = quoted;
    }
  }
}

/* Unquoted fields of delimited formats have ASCII spaces trimmed at both ends ("1, 2, 3.5" is
 * common in hand-made files); spaces inside a quoted field are kept. */
static inline void trim_spaces(const char **p, size_t *n) {
  const char *s = *p;
  size_t k = *n;
  while (k && *s == ' ') s++, k--;
  while (k && s[k - 1] == ' ') k--;
  *p = s;
  *n = k;
}

/* A quoted CSV field starting at q (the opening quote). On success *next is the byte after the
 * field's delimiter (or NULL at end of line). Fields without "" escapes point into the line;
 * others are unescaped into scratch at *sc. */
static int split_quoted(const char *q, const char *end, char delim, char *scratch, size_t *sc,
                        const char **fp, size_t *fn, const char **next) {
  const char *p = q + 1;
  const char *close = NULL;
  int escaped = 0;
  for (;;) {
    const char *r = memchr(p, '"', (size_t)(end - p));
    if (!r) return 0; /* unterminated */
    if (r + 1 < end && r[1] == '"') {
      escaped = 1;
      p = r + 2;
      continue;
    }
    close = r;
    break;
  }
  if (!escaped) {
    *fp = q + 1;
    *fn = (size_t)(close - (q + 1));
  } else {
    if (!scratch) return 0;
    char *d = scratch + *sc, *d0 = d;
    for (const char *s = q + 1; s < close; s++) {
      *d++ = *s;
      if (*s == '"') s++; /* the second quote of a "" pair */
    }
    *fp = d0;
    *fn = (size_t)(d - d0);
    *sc += *fn;
  }
  /* Only spaces may sit between the closing quote and the delimiter. */
  const char *a = close + 1;
  while (a < end && *a == ' ' && delim != ' ') a++;
  if (a == end) {
    *next = NULL;
  } else if (*a == delim) {
    *next = a + 1;
  } else {
    return 0;
  }
  return 1;
}

/* Split into the wanted columns. Returns IMF_REJ_NONE or IMF_REJ_BAD_QUOTE. */
static imf_reject_reason split_line(const imf_parse_opts *o, const char *line, size_t len,
                                    char *scratch, field f[F_N]) {
  const int cols[F_N] = {o->user_col, o->item_col, o->rating_col, o->time_col};
  int maxcol = 0;
  for (int k = 0; k < F_N; k++)
    if (cols[k] > maxcol) maxcol = cols[k];
  memset(f, 0, sizeof(field) * F_N);
  const char *p = line, *end = line + len;

  switch (o->format) {
  case IMF_FMT_MTX:
  case IMF_FMT_LIBMF: {
    /* runs of spaces/tabs separate fields; leading and trailing blanks are not fields */
    for (int col = 1; col <= maxcol; col++) {
      while (p < end && (*p == ' ' || *p == '\t')) p++;
      if (p == end) break;
      const char *s = p;
      /* memchr beats a byte loop here; tabs are rare, so look for one only before the space */
      const char *q = memchr(s, ' ', (size_t)(end - s));
      const char *fe = q ? q : end;
      const char *t = memchr(s, '\t', (size_t)(fe - s));
      p = t ? t : fe;
      put_field(f, col, cols, s, (size_t)(p - s), 0);
    }
    return IMF_REJ_NONE;
  }
  case IMF_FMT_DAT: {
    for (int col = 1; col <= maxcol; col++) {
      const char *s = p, *q = p;
      for (;;) {
        q = memchr(q, ':', (size_t)(end - q));
        if (!q || (q + 1 < end && q[1] == ':')) break;
        q++;
      }
      const char *fe = q ? q : end;
      const char *fp = s;
      size_t fn = (size_t)(fe - s);
      trim_spaces(&fp, &fn);
      put_field(f, col, cols, fp, fn, 0);
      if (!q) break;
      p = q + 2;
    }
    return IMF_REJ_NONE;
  }
  default: {
    /* Only CSV has quoting (RFC 4180); in TSV a quote is data, as text/tab-separated-values
     * has no escapes. */
    char delim = o->delim;
    int quotes = o->format == IMF_FMT_CSV;
    if (!delim) delim = o->format == IMF_FMT_CSV ? ',' : '\t';
    size_t sc = 0;
    for (int col = 1; col <= maxcol; col++) {
      const char *s = p;
      if (quotes) {
        const char *a = s;
        while (a < end && *a == ' ' && delim != ' ') a++;
        if (a < end && *a == '"') {
          const char *fp, *next;
          size_t fn;
          if (!split_quoted(a, end, delim, scratch, &sc, &fp, &fn, &next)) return IMF_REJ_BAD_QUOTE;
          put_field(f, col, cols, fp, fn, 1);
          if (!next) break;
          p = next;
          continue;
        }
      }
      const char *q = memchr(s, delim, (size_t)(end - s));
      const char *fp = s;
      size_t fn = (size_t)((q ? q : end) - s);
      if (delim != ' ') trim_spaces(&fp, &fn);
      put_field(f, col, cols, fp, fn, 0);
      if (!q) break;
      p = q + 1;
    }
    return IMF_REJ_NONE;
  }
  }
}

/* A limit of 0 (max_id_len, max_line_len) means none, so zeroed options never reject all. */
static inline imf_reject_reason check_id(const field *fd, size_t max_id_len) {
  if (!fd->present) return IMF_REJ_MISSING_FIELD;
  if (fd->n == 0) return fd->quoted ? IMF_REJ_BAD_ID : IMF_REJ_MISSING_FIELD;
  if (max_id_len && fd->n > max_id_len) return IMF_REJ_ID_TOO_LONG;
  const unsigned char *s = (const unsigned char *)fd->p;
  for (size_t i = 0; i < fd->n; i++)
    if (s[i] < 0x20) return IMF_REJ_BAD_ID;
  return IMF_REJ_NONE;
}

static inline int is_header_line(const imf_parse_opts *o, const char *line, size_t len,
                                 int64_t lineno) {
  if (o->format == IMF_FMT_MTX) return lineno <= o->header_lines || (len > 0 && line[0] == '%');
  /* header == 1 without detection (header_lines still 0) still means one header line */
  if (o->header == 1) return lineno <= (o->header_lines > 0 ? o->header_lines : 1);
  return 0;
}

/* Check order: header first (a header line is counted as header whatever it holds), then the
 * whole-line checks (empty, too long, NUL), then the fields in column order user, item, rating,
 * time, so one line always gets the same single reason. */
imf_line_kind imf_parse_line(const imf_parse_opts *o, const char *line, size_t len, int64_t lineno,
                             char *scratch, imf_record *rec, imf_reject_reason *why) {
  imf_reject_reason r = IMF_REJ_NONE;
  if (len > 0 && line[len - 1] == '\r') len--;
  if (is_header_line(o, line, len, lineno)) {
    *why = IMF_REJ_NONE;
    return IMF_LINE_HEADER;
  }
  if (len == 0) {
    r = IMF_REJ_EMPTY_LINE;
    goto reject;
  }
  if (o->max_line_len && len > o->max_line_len) {
    r = IMF_REJ_LINE_TOO_LONG;
    goto reject;
  }
  if (memchr(line, '\0', len)) {
    r = IMF_REJ_BINARY;
    goto reject;
  }
  field f[F_N];
  if ((r = split_line(o, line, len, scratch, f)) != IMF_REJ_NONE) goto reject;
  if ((r = check_id(&f[F_USER], o->max_id_len)) != IMF_REJ_NONE) goto reject;
  if ((r = check_id(&f[F_ITEM], o->max_id_len)) != IMF_REJ_NONE) goto reject;
  rec->user = f[F_USER].p;
  rec->user_len = f[F_USER].n;
  rec->item = f[F_ITEM].p;
  rec->item_len = f[F_ITEM].n;
  rec->clipped = 0;
  if (o->rating_col > 0) {
    if (!f[F_RATING].present || f[F_RATING].n == 0) {
      r = IMF_REJ_MISSING_FIELD;
      goto reject;
    }
    double v;
    if ((r = parse_rating(f[F_RATING].p, f[F_RATING].n, &v)) != IMF_REJ_NONE) goto reject;
    /* NaN bounds compare false: an unset end of the scale never rejects */
    if (v < o->scale_min) {
      if (!o->clip) {
        r = IMF_REJ_OUT_OF_RANGE;
        goto reject;
      }
      v = o->scale_min;
      rec->clipped = 1;
    } else if (v > o->scale_max) {
      if (!o->clip) {
        r = IMF_REJ_OUT_OF_RANGE;
        goto reject;
      }
      v = o->scale_max;
      rec->clipped = 1;
    }
    rec->rating = v;
    rec->has_rating = 1;
  } else {
    rec->rating = 1.0;
    rec->has_rating = 0;
  }
  rec->time = 0;
  rec->has_time = 0;
  if (o->time_col > 0 && f[F_TIME].present && f[F_TIME].n > 0) {
    if (!parse_i64(f[F_TIME].p, f[F_TIME].n, &rec->time)) {
      r = IMF_REJ_BAD_TIME;
      goto reject;
    }
    rec->has_time = 1;
  }
  *why = IMF_REJ_NONE;
  return IMF_LINE_OK;
reject:
  *why = r;
  return IMF_LINE_REJECT;
}

/* ---- the common line, in one pass ---- */

/* Eight bytes at a time: a word with the high bit of every byte that is below 0x21 (controls,
 * space), or equal to b. Exact at the lowest flagged byte, which is all that is used (a borrow
 * can only flag bytes above a true one). */
#define SWAR_ONES 0x0101010101010101ull
#define SWAR_HIGH 0x8080808080808080ull
static inline uint64_t swar_below21(uint64_t w) { return (w - SWAR_ONES * 0x21) & ~w & SWAR_HIGH; }
static inline uint64_t swar_eq(uint64_t w, unsigned char b) {
  uint64_t x = w ^ (SWAR_ONES * b);
  return (x - SWAR_ONES) & ~x & SWAR_HIGH;
}

/* One field of a simple line: from *pp up to the delimiter or the end of the line. Returns 0 at
 * a delimiter (*pp then points past it), 1 at the end of the line (*eol is the '\n' or `end`;
 * a '\r' right before it is not part of the field), -1 when the field holds anything the
 * general parser would treat specially (a space it trims, a quote, a control character). */
static inline int simple_field(const char **pp, const char *end, char delim, int quotes, const char **fs,
                               size_t *fn, const char **eol) {
  const char *p = *pp, *s = p;
  for (;;) {
    while (end - p >= 8) {
      uint64_t w;
      memcpy(&w, p, 8);
      uint64_t m = swar_below21(w) | swar_eq(w, (unsigned char)delim) | (quotes ? swar_eq(w, '"') : 0);
      if (m) {
        p += __builtin_ctzll(m) >> 3;
        break;
      }
      p += 8;
    }
    if (end - p < 8)
      while (p < end && !((unsigned char)*p == (unsigned char)delim || (unsigned char)*p <= 0x20 || (quotes && *p == '"')))
        p++;
    if (p == end) break;
    unsigned char ch = (unsigned char)*p;
    if (ch == (unsigned char)delim) {
      *fs = s;
      *fn = (size_t)(p - s);
      *pp = p + 1;
      return 0;
    }
    if (ch == '\n' || (ch == '\r' && (p + 1 == end || p[1] == '\n'))) break;
    return -1;
  }
  *fs = s;
  *fn = (size_t)(p - s);
  *eol = p < end && *p == '\r' ? p + 1 : p;
  return 1;
}

int imf_parse_line_simple(const imf_parse_opts *o, const char *line, const char *end, imf_record *rec,
                          const char **eol) {
  if (o->format != IMF_FMT_CSV && o->format != IMF_FMT_TSV && o->format != IMF_FMT_ML100K) return 0;
  char delim = o->delim ? o->delim : o->format == IMF_FMT_CSV ? ',' : '\t';
  int quotes = o->format == IMF_FMT_CSV;
  const int cols[F_N] = {o->user_col, o->item_col, o->rating_col, o->time_col};
  int maxcol = 0;
  for (int k = 0; k < F_N; k++)
    if (cols[k] > maxcol) maxcol = cols[k];
  /* the usual layout, user,item[,rating[,time]] in that order, maps column c to field c-1 */
  int direct = cols[F_USER] == 1 && cols[F_ITEM] == 2 && (cols[F_RATING] == 3 || (cols[F_RATING] == 0 && cols[F_TIME] == 0)) &&
               (cols[F_TIME] == 4 || cols[F_TIME] == 0);
  const char *fp[F_N] = {0}, *p = line, *e = NULL;
  size_t fl[F_N] = {0};
  for (int col = 1; col <= maxcol; col++) {
    const char *s;
    size_t n;
    int t = simple_field(&p, end, delim, quotes, &s, &n, &e);
    if (t < 0 || n == 0) return 0;
    if (direct) {
      fp[col - 1] = s;
      fl[col - 1] = n;
    } else {
      for (int k = 0; k < F_N; k++)
        if (cols[k] == col) {
          fp[k] = s;
          fl[k] = n;
        }
    }
    if (t == 1) {
      if (col < maxcol) return 0; /* a missing column: the general parser decides */
      break;
    }
    if (col == maxcol) { /* columns past the last one used: only a NUL byte matters there */
      const char *nl = memchr(p, '\n', (size_t)(end - p));
      e = nl ? nl : end;
      if (memchr(p, '\0', (size_t)(e - p))) return 0;
    }
  }
  if (e == NULL || (o->max_line_len && (size_t)(e - line) > o->max_line_len)) return 0;
  if (o->max_id_len && (fl[F_USER] > o->max_id_len || fl[F_ITEM] > o->max_id_len)) return 0;
  if (o->rating_col > 0) {
    double v;
    if (parse_rating(fp[F_RATING], fl[F_RATING], &v) != IMF_REJ_NONE) return 0;
    if (v < o->scale_min || v > o->scale_max) return 0;
    rec->rating = v;
    rec->has_rating = 1;
  } else {
    rec->rating = 1.0;
    rec->has_rating = 0;
  }
  rec->time = 0;
  rec->has_time = 0;
  if (o->time_col > 0) {
    if (!parse_i64(fp[F_TIME], fl[F_TIME], &rec->time)) return 0;
    rec->has_time = 1;
  }
  rec->user = fp[F_USER];
  rec->user_len = fl[F_USER];
  rec->item = fp[F_ITEM];
  rec->item_len = fl[F_ITEM];
  rec->clipped = 0;
  /* the line ends at its '\n' (a '\r' before it belongs to the line) */
  *eol = e < end && *e == '\r' ? e + 1 : e;
  return 1;
}

/* ---- detection ---- */

static int has_suffix_ci(const char *s, size_t n, const char *suf) {
  size_t k = strlen(suf);
  return n >= k && strncasecmp(s + n - k, suf, k) == 0;
}

static imf_format format_from_path(const char *path) {
  if (!path) return IMF_FMT_AUTO;
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  size_t n = strlen(base);
  static const char *const comp[] = {".gz", ".xz", ".zst", ".zstd"};
  for (size_t i = 0; i < sizeof comp / sizeof comp[0]; i++) {
    if (has_suffix_ci(base, n, comp[i])) {
      n -= strlen(comp[i]);
      break;
    }
  }
  if (has_suffix_ci(base, n, ".csv")) return IMF_FMT_CSV;
  if (has_suffix_ci(base, n, ".tsv")) return IMF_FMT_TSV;
  if (has_suffix_ci(base, n, ".dat")) return IMF_FMT_DAT;
  if (has_suffix_ci(base, n, ".mtx")) return IMF_FMT_MTX;
  if (has_suffix_ci(base, n, ".libmf")) return IMF_FMT_LIBMF;
  /* MovieLens 100K ships u.data and the splits u1.base .. u5.test, ua.base, ub.test */
  if (n == 6 && strncmp(base, "u.data", 6) == 0) return IMF_FMT_ML100K;
  if (n >= 6 && base[0] == 'u' && (has_suffix_ci(base, n, ".base") || has_suffix_ci(base, n, ".test")))
    return IMF_FMT_ML100K;
  return IMF_FMT_AUTO;
}

/* Next line of the sample: [*s, *s + *n) without '\n' or a trailing '\r'. Returns 0 at end. */
static int next_line(const char *sample, size_t len, size_t *pos, const char **s, size_t *n) {
  if (*pos >= len) return 0;
  const char *b = sample + *pos;
  const char *nl = memchr(b, '\n', len - *pos);
  size_t k = nl ? (size_t)(nl - b) : len - *pos;
  *pos += k + (nl ? 1 : 0);
  if (k && b[k - 1] == '\r') k--;
  *s = b;
  *n = k;
  return 1;
}

/* Binary if the first line holds a NUL, if NULs are more than 0.1% of the sample, or if more
 * than 30% of the bytes are neither printable ASCII, whitespace, nor part of a well-formed UTF-8
 * sequence. A stray NUL in an otherwise textual file is not binary: its line is rejected alone
 * (reason "binary"), so one damaged line never condemns a whole file. */
static int looks_binary(const char *sample, size_t len) {
  const char *nl = memchr(sample, '\n', len);
  size_t first = nl ? (size_t)(nl - sample) : len;
  if (memchr(sample, '\0', first)) return 1;
  size_t nuls = 0;
  for (size_t i = 0; i < len; i++) nuls += sample[i] == '\0';
  if (nuls * 1000 > len) return 1;
  const unsigned char *s = (const unsigned char *)sample;
  size_t bad = 0;
  for (size_t i = 0; i < len;) {
    unsigned c = s[i];
    if ((c >= 0x20 && c < 0x7f) || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
      i++;
      continue;
    }
    size_t need = 0;
    if (c >= 0xc2 && c <= 0xdf) need = 1;
    else if (c >= 0xe0 && c <= 0xef) need = 2;
    else if (c >= 0xf0 && c <= 0xf4) need = 3;
    if (need == 0) {
      bad++;
      i++;
      continue;
    }
    size_t j = 1;
    while (j <= need && i + j < len && (s[i + j] & 0xc0) == 0x80) j++;
    if (j > need || i + j == len) {
      i += j; /* well formed, or cut off by the end of the sample */
    } else {
      bad++;
      i++;
    }
  }
  return bad * 10 > len * 3;
}

/* 1: the line's rating field is a number (or non-finite word), 0: it is not, -1: cannot tell */
static int rating_is_numeric(const imf_parse_opts *o, const char *s, size_t n) {
  char scratch[4096];
  field f[F_N];
  if (split_line(o, s, n, n <= sizeof scratch ? scratch : NULL, f) != IMF_REJ_NONE) return -1;
  if (!f[F_RATING].present || f[F_RATING].n == 0) return -1;
  double v;
  return parse_rating(f[F_RATING].p, f[F_RATING].n, &v) != IMF_REJ_BAD_RATING;
}

/* ---- header names ---- */

/* Accepted header names by role, as compared (lower case, letters and digits only: "User-ID",
 * "user_id" and "\"userId\"" are all "userid"). README.md ("Input columns") and docs/FORMAT.md
 * ("Input rating files") list them: keep the three in step. */
static const char *const ROLE_NAMES[F_N][40] = {
    [F_USER] = {"user", "userid", "users", "uid", "username", "customer", "customerid", "member", "memberid",
                "reader", "readerid", "reviewer", "reviewerid", "visitor", "visitorid", "client", "clientid",
                "person", "personid", "account", "accountid", "profile", "profileid", NULL},
    [F_ITEM] = {"item", "itemid", "items", "iid", "movie", "movieid", "film", "filmid", "isbn", "book", "bookid",
                "product", "productid", "asin", "sku", "track", "trackid", "song", "songid", "artist", "artistid",
                "game", "gameid", "anime", "animeid", "business", "businessid", "recipe", "recipeid", "article",
                "articleid", "video", "videoid", "course", "courseid", NULL},
    [F_RATING] = {"rating", "ratings", "score", "stars", "star", "value", "rate", "grade", "bookrating",
                  "preference", "weight", "count", "playcount", "plays", "feedback", NULL},
    [F_TIME] = {"time", "timestamp", "ts", "date", "datetime", "unixtime", "epoch", "created", "createdat",
                "ratedat", "ratingtime", NULL},
};
static const char *const ROLE_LABEL[F_N] = {"user", "item", "rating", "time"};
static const char *const ROLE_HINT[F_N] = {"user, userId, user_id, uid, customer, reader, ...",
                                           "item, itemId, movieId, ISBN, book, product, ...",
                                           "rating, score, stars, value, ...", "time, timestamp, ts, date, ..."};

int imf_column_role(const char *s, size_t n) {
  char nm[32];
  size_t k = 0;
  if (n >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0) s += 3, n -= 3; /* UTF-8 byte order mark */
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 128 || !isalnum(c)) continue;
    if (k + 1 >= sizeof nm) return -1; /* longer than any accepted name */
    nm[k++] = (char)tolower(c);
  }
  nm[k] = '\0';
  for (int r = 0; r < F_N; r++)
    for (int j = 0; ROLE_NAMES[r][j]; j++)
      if (!strcmp(nm, ROLE_NAMES[r][j])) return r;
  return -1;
}

#define HDR_COLS 64 /* header columns looked at */
typedef struct {
  const char *p;
  size_t n;
} hfield;

/* The fields of a header line as the data lines are split (CSV quotes removed), at most
 * HDR_COLS. scratch: at least len bytes, or NULL (then a field with "" escapes ends the list). */
static int header_fields(const imf_parse_opts *o, const char *line, size_t len, char *scratch, hfield *h) {
  imf_parse_opts so = *o;
  so.item_col = so.rating_col = so.time_col = 0;
  int nh = 0;
  for (int c = 1; c <= HDR_COLS; c++) {
    field f[F_N];
    so.user_col = c;
    if (split_line(&so, line, len, scratch, f) != IMF_REJ_NONE || !f[F_USER].present) break;
    h[nh].p = f[F_USER].p;
    h[nh].n = f[F_USER].n;
    nh++;
  }
  return nh;
}

/* Distinct roles named by the line's fields (the header test). */
static int named_roles(const imf_parse_opts *o, const char *line, size_t len) {
  char scratch[4096];
  hfield h[HDR_COLS];
  int nh = header_fields(o, line, len, len <= sizeof scratch ? scratch : NULL, h);
  unsigned seen = 0;
  for (int c = 0; c < nh; c++) {
    int r = imf_column_role(h[c].p, h[c].n);
    if (r >= 0) seen |= 1u << r;
  }
  return __builtin_popcount(seen);
}

/* 'a', 'b', ... (printable bytes only, each name cut at 40 bytes, at most 16 names) */
static void list_columns(const hfield *h, int nh, char *out, size_t cap) {
  size_t o = 0;
  out[0] = '\0';
  for (int c = 0; c < nh && o + 64 < cap; c++) {
    if (c == 16) {
      snprintf(out + o, cap - o, ", ...");
      return;
    }
    o += (size_t)snprintf(out + o, cap - o, "%s'", c ? ", " : "");
    for (size_t i = 0; i < h[c].n && i < 40; i++) {
      unsigned char ch = (unsigned char)h[c].p[i];
      out[o++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    o += (size_t)snprintf(out + o, cap - o, "'");
  }
}

/* The columns marked auto, by the names of the header line (line number lineno). */
static imf_status map_header(const char *path, int64_t lineno, const char *line, size_t len, imf_parse_opts *o) {
  char scratch[4096];
  hfield h[HDR_COLS];
  int nh = header_fields(o, line, len, len <= sizeof scratch ? scratch : NULL, h);
  int *col[F_N] = {&o->user_col, &o->item_col, &o->rating_col, &o->time_col};
  unsigned char taken[HDR_COLS] = {0};
  for (int k = 0; k < F_N; k++)
    if (!(o->col_auto & (1u << k)) && *col[k] >= 1 && *col[k] <= nh) taken[*col[k] - 1] = 1;
  for (int k = 0; k < F_N; k++) {
    if (!(o->col_auto & (1u << k))) continue;
    *col[k] = 0;
    for (int c = 0; c < nh && !*col[k]; c++)
      if (!taken[c] && imf_column_role(h[c].p, h[c].n) == k) {
        *col[k] = c + 1;
        taken[c] = 1;
      }
  }
  int left = 0;
  for (int c = 0; c < nh; c++) left += !taken[c];
  for (int k = 0; k <= F_RATING; k++) {
    /* no user or item column; or no rating column while unnamed columns are left (one of them
     * may hold the ratings); an unnamed time column, or a rating column with nothing left, is none */
    if (!(o->col_auto & (1u << k)) || *col[k] || (k == F_RATING && left == 0)) continue;
    char cols[1024];
    list_columns(h, nh, cols, sizeof cols);
    IMF_FAIL(IMF_ERR_INPUT,
             "%s line %lld: header not recognised: no %s column among %s (%d column%s); name it one of %s, "
             "or set input.%s_col to its number%s (README, \"Input columns\")",
             path, (long long)lineno, ROLE_LABEL[k], cols, nh, nh == 1 ? "" : "s", ROLE_HINT[k], ROLE_LABEL[k],
             k == F_RATING ? " (0: implicit feedback)" : "");
  }
  o->cols_named = 1;
  return IMF_OK;
}

void imf_header_describe(const imf_parse_opts *o, const char *sample, size_t len, char *out, size_t cap) {
  size_t pos = 0, n = 0;
  const char *s = NULL;
  out[0] = '\0';
  for (int64_t l = 0; l < o->header_lines; l++)
    if (!next_line(sample, len, &pos, &s, &n)) return;
  if (!s || cap < 2) return;
  char scratch[4096];
  hfield h[HDR_COLS];
  int nh = header_fields(o, s, n, n <= sizeof scratch ? scratch : NULL, h);
  const int col[F_N] = {o->user_col, o->item_col, o->rating_col, o->time_col};
  unsigned char used[HDR_COLS] = {0};
  size_t w = 0;
  for (int k = 0; k < F_N && w < cap; k++) {
    if (col[k] >= 1 && col[k] <= nh) {
      used[col[k] - 1] = 1;
      w += (size_t)snprintf(out + w, cap - w, "%s%s = '%.*s' (%d)", k ? ", " : "", ROLE_LABEL[k],
                            (int)(h[col[k] - 1].n > 40 ? 40 : h[col[k] - 1].n), h[col[k] - 1].p, col[k]);
    } else {
      w += (size_t)snprintf(out + w, cap - w, "%s%s: none", k ? ", " : "", ROLE_LABEL[k]);
    }
  }
  for (int c = 0, first = 1; c < nh && w < cap; c++) {
    if (used[c]) continue;
    w += (size_t)snprintf(out + w, cap - w, "%s'%.*s' (%d)", first ? "; ignored: " : ", ",
                          (int)(h[c].n > 40 ? 40 : h[c].n), h[c].p, c + 1);
    first = 0;
  }
}

static imf_status detect_mtx(const char *path, const char *sample, size_t len, imf_parse_opts *o) {
  size_t pos = 0;
  const char *s;
  size_t n;
  next_line(sample, len, &pos, &s, &n);
  if (n < 14 || strncasecmp(s, "%%MatrixMarket", 14) != 0)
    IMF_FAIL(IMF_ERR_INPUT, "%s line 1: Matrix Market banner '%%%%MatrixMarket matrix coordinate ...' missing",
             path);
  /* tokens after the banner word: object, format, field, symmetry (case-insensitive) */
  char tok[4][32] = {{0}};
  int nt = 0;
  for (size_t i = 14; i < n && nt < 4;) {
    while (i < n && (s[i] == ' ' || s[i] == '\t')) i++;
    size_t b = i;
    while (i < n && s[i] != ' ' && s[i] != '\t') i++;
    if (i > b) {
      size_t k = i - b < 31 ? i - b : 31;
      for (size_t j = 0; j < k; j++) tok[nt][j] = (char)tolower((unsigned char)s[b + j]);
      nt++;
    }
  }
  if (nt < 2 || strcmp(tok[0], "matrix") || strcmp(tok[1], "coordinate"))
    IMF_FAIL(IMF_ERR_INPUT, "%s line 1: only 'matrix coordinate' Matrix Market files are supported, banner says '%.*s'",
             path, (int)(n > 200 ? 200 : n), s);
  if (nt >= 3 && strcmp(tok[2], "pattern") == 0) o->rating_col = 0;
  int64_t lineno = 1;
  while (next_line(sample, len, &pos, &s, &n)) {
    lineno++;
    const char *t = s;
    size_t tn = n;
    while (tn && (*t == ' ' || *t == '\t')) t++, tn--;
    if (tn == 0 || *t == '%') continue;
    /* the size line: rows cols entries */
    imf_parse_opts so = *o;
    so.format = IMF_FMT_MTX;
    so.user_col = 1, so.item_col = 2, so.rating_col = 3, so.time_col = 4;
    field f[F_N];
    split_line(&so, s, n, NULL, f);
    int64_t v;
    for (int k = 0; k < 3; k++) {
      if (!f[k].present || !parse_i64(f[k].p, f[k].n, &v) || v < 0)
        IMF_FAIL(IMF_ERR_INPUT, "%s line %lld: Matrix Market size line must be 'rows columns entries', got '%.*s'",
                 path, (long long)lineno, (int)(n > 200 ? 200 : n), s);
    }
    if (f[F_TIME].present)
      IMF_FAIL(IMF_ERR_INPUT, "%s line %lld: Matrix Market size line must be 'rows columns entries', got '%.*s'",
               path, (long long)lineno, (int)(n > 200 ? 200 : n), s);
    o->header = 1;
    o->header_lines = lineno;
    return IMF_OK;
  }
  IMF_FAIL(IMF_ERR_INPUT, "%s: Matrix Market size line not found in the first %zu bytes", path, len);
}

/* The columns as resolved (given, positional defaults, or by header name). */
static imf_status check_columns(const char *path, const imf_parse_opts *o) {
  if (o->user_col < 1 || o->item_col < 1 || o->user_col == o->item_col)
    IMF_FAIL(IMF_ERR_USAGE, "%s: input.user_col (%d) and input.item_col (%d) must be distinct columns >= 1", path,
             o->user_col, o->item_col);
  return IMF_OK;
}

/* A .dat name is a hint, not a promise: MovieLens '::' files, but also tab- or comma-separated
 * dumps (Book-Crossing's book_ratings.dat). When none of the first non-blank lines of the
 * sample (at most 8) holds '::', the content decides. */
static int dat_without_colons(const char *sample, size_t len) {
  size_t pos = 0, n;
  const char *s;
  int seen = 0;
  while (seen < 8 && next_line(sample, len, &pos, &s, &n)) {
    if (n == 0) continue;
    if (memmem(s, n, "::", 2)) return 0;
    seen++;
  }
  return seen > 0;
}

imf_status imf_detect_format(const char *path, const char *sample, size_t len, imf_parse_opts *o) {
  const char *name = path ? path : "(input)";
  if (!sample || len == 0) IMF_FAIL(IMF_ERR_INPUT, "%s is empty", name);
  if (looks_binary(sample, len)) IMF_FAIL(IMF_ERR_INPUT, "%s looks binary, not a rating file", name);

  /* first non-blank line, for content sniffing and the header test */
  size_t pos = 0, first_end = 0;
  const char *l1 = NULL, *s;
  size_t n1 = 0, n;
  int64_t first_no = 0, no = 0;
  while (next_line(sample, len, &pos, &s, &n)) {
    no++;
    if (n > 0) {
      l1 = s, n1 = n, first_no = no, first_end = pos;
      break;
    }
  }
  if (!l1) IMF_FAIL(IMF_ERR_INPUT, "%s is empty (only blank lines)", name);

  if (o->format == IMF_FMT_AUTO) {
    o->format = format_from_path(path);
    if (o->format == IMF_FMT_DAT && dat_without_colons(sample, len)) o->format = IMF_FMT_AUTO;
  }
  if (o->format == IMF_FMT_AUTO) {
    if (n1 >= 14 && strncmp(l1, "%%MatrixMarket", 14) == 0) o->format = IMF_FMT_MTX;
    else if (memmem(l1, n1, "::", 2)) o->format = IMF_FMT_DAT;
    else if (memchr(l1, '\t', n1)) o->format = IMF_FMT_TSV;
    else if (memchr(l1, ',', n1)) o->format = IMF_FMT_CSV;
    else if (memchr(l1, ' ', n1)) o->format = IMF_FMT_LIBMF;
    else
      IMF_FAIL(IMF_ERR_INPUT, "%s line %lld: cannot tell the format (no '::', tab, comma or space "
               "between fields); set input.format", name, (long long)first_no);
  }
  if ((unsigned)o->format >= NFORMATS)
    IMF_FAIL(IMF_ERR_USAGE, "%s: invalid input format code %d", name, (int)o->format);

  switch (o->format) {
  case IMF_FMT_CSV:
    if (!o->delim) o->delim = ',';
    break;
  case IMF_FMT_TSV:
    if (!o->delim) o->delim = '\t';
    break;
  case IMF_FMT_ML100K: o->delim = '\t'; break;
  case IMF_FMT_DAT: o->delim = ':'; break;
  default: o->delim = ' '; break;
  }

  if (o->format == IMF_FMT_MTX) {
    IMF_CHECK(detect_mtx(name, sample, len, o));
    return check_columns(name, o);
  }

  if (o->format != IMF_FMT_CSV && o->format != IMF_FMT_TSV) {
    /* these formats never have a header; an explicit header = yes is still honoured */
    if (o->header != 1) o->header = 0;
  } else if (o->header == -1) {
    /* two accepted column names (README, "Input columns"): a header; else a first line whose
     * rating is not a number over a second line whose rating is */
    int hdr = 0;
    if (named_roles(o, l1, n1) >= 2) {
      hdr = 1;
    } else if (o->rating_col > 0 && rating_is_numeric(o, l1, n1) == 0) {
      size_t p2 = first_end;
      while (next_line(sample, len, &p2, &s, &n)) {
        if (n == 0) continue;
        hdr = rating_is_numeric(o, s, n) == 1;
        break;
      }
    }
    o->header = hdr;
  }
  /* blank lines before a header count as header too, so the header is never read as data */
  o->header_lines = o->header == 1 ? first_no : 0;
  if (o->header == 1 && o->col_auto) IMF_CHECK(map_header(name, first_no, l1, n1, o));
  return check_columns(name, o);
}
