/* parse.h - line formats and their detection. Pure functions over one line of text: no I/O,
 * no allocation, so they are cheap to fuzz and fast enough for the ingest hot loop. */
#ifndef IMF_PARSE_H
#define IMF_PARSE_H
#include "incremf.h"
#include <stddef.h>
#include <stdint.h>

typedef enum {
  IMF_FMT_AUTO = 0,
  IMF_FMT_CSV,    /* comma separated, optional header, "quoted fields" (not spanning lines) */
  IMF_FMT_TSV,    /* tab separated, optional header */
  IMF_FMT_DAT,    /* MovieLens user::item::rating::time */
  IMF_FMT_ML100K, /* MovieLens 100K u.data: user\titem\trating\ttime, no header */
  IMF_FMT_MTX,    /* Matrix Market coordinate: %%MatrixMarket banner, % comments, size line */
  IMF_FMT_LIBMF   /* LIBMF text: user item rating, whitespace separated */
} imf_format;

const char *imf_format_name(imf_format f);
imf_status imf_format_from_name(const char *name, imf_format *out); /* "csv", "auto", ... */

/* Why a line was rejected; also used for the cleaning filters. Index into report.rejected_by. */
typedef enum {
  IMF_REJ_NONE = 0,
  IMF_REJ_EMPTY_LINE,
  IMF_REJ_MISSING_FIELD,
  IMF_REJ_EXTRA_FIELDS,   /* reserved: extra columns are currently allowed */
  IMF_REJ_BAD_ID,         /* empty id, or id with control characters */
  IMF_REJ_ID_TOO_LONG,
  IMF_REJ_BAD_RATING,     /* not a number */
  IMF_REJ_NONFINITE,      /* nan, inf */
  IMF_REJ_OUT_OF_RANGE,
  IMF_REJ_BAD_TIME,
  IMF_REJ_LINE_TOO_LONG,
  IMF_REJ_BAD_QUOTE,
  IMF_REJ_MIN_COUNT,      /* cleaning filter: too few ratings for the user/item */
  IMF_REJ_NOISE,          /* cleaning filter: too many ratings, or never-varying ratings */
  IMF_REJ_BINARY,         /* NUL byte in the line */
  IMF_REJ_COUNT_
} imf_reject_reason;

/* imf_parse_opts.col_auto bits */
enum { IMF_COL_USER = 1, IMF_COL_ITEM = 2, IMF_COL_RATING = 4, IMF_COL_TIME = 8 };

typedef struct {
  imf_format format;
  char delim;         /* resolved delimiter (',' '\t' ':' for "::", ' ' for whitespace runs) */
  int header;         /* -1 auto (decided by detection), 0 no, 1 yes */
  int64_t header_lines; /* set by detection: leading lines that are header (csv/tsv header: 1;
                           mtx: banner + comments + size line); lineno <= this is a header */
  int user_col, item_col, rating_col, time_col; /* 1-based; 0 = absent */
  unsigned col_auto;  /* IMF_COL_* bits: columns set to auto (input.*_col = auto) hold their positional
                         default above and are taken from the header's names when the file has a
                         header (imf_detect_format); 0: every column as given */
  int cols_named;     /* set by detection: the auto columns were matched by header name */
  size_t max_id_len;
  size_t max_line_len;
  /* rating scale and what to do outside it (NaN = unbounded) */
  double scale_min, scale_max;
  int clip;           /* 1: clip out-of-range values instead of rejecting */
} imf_parse_opts;

typedef struct {
  const char *user; size_t user_len;
  const char *item; size_t item_len;
  double rating;  int has_rating; /* has_rating == 0: implicit, rating set to 1 */
  int64_t time;   int has_time;
  int clipped;    /* the rating was clipped into the scale */
} imf_record;

typedef enum { IMF_LINE_OK = 0, IMF_LINE_HEADER, IMF_LINE_REJECT } imf_line_kind;

/* Parse one line (without its '\n'; a trailing '\r' is ignored). For quoted CSV fields the
 * returned id pointers may point into `scratch` (at least len bytes), where unquoted copies are
 * made. lineno is 1-based and only used to recognise the header / MTX size line. */
imf_line_kind imf_parse_line(const imf_parse_opts *o, const char *line, size_t len, int64_t lineno,
                             char *scratch, imf_record *rec, imf_reject_reason *why);

/* The common case of the ingest loop in one pass: a CSV/TSV/ML100K line whose used columns are
 * all present, non-empty and free of spaces, quotes and control characters, with a rating in
 * range and a valid time. Parses the line starting at `line` (its end is found here: the next
 * '\n' before `end`, or `end`) and returns 1 with *rec and *eol (the '\n' or `end`) set to
 * exactly what imf_parse_line gives for such a line; returns 0 for any other line, which the
 * caller hands to imf_parse_line. Never reports a header line: only for lines past the header. */
int imf_parse_line_simple(const imf_parse_opts *o, const char *line, const char *end, imf_record *rec,
                          const char **eol);

/* Fill o->format, o->delim and o->header (when -1) from the file name and the first bytes of
 * the (decompressed) content. The caller sets columns, limits and scale beforehand; a format
 * given explicitly (o->format != AUTO) is kept. IMF_ERR_INPUT for binary or empty content.
 * Header: with header = -1 (auto), a CSV/TSV first line is a header when two or more of its
 * fields are accepted column names (imf_column_role) or when its rating field is not a number
 * and the next line's is. With a header, the o->col_auto columns are matched by name: an
 * unmatched user or item column, or an unmatched rating column beside unnamed ones, is
 * IMF_ERR_INPUT naming the file, the line and the columns found; an unmatched time column is
 * none, an unmatched rating column with no other column left is none (implicit feedback). */
imf_status imf_detect_format(const char *path, const char *sample, size_t len, imf_parse_opts *o);

/* The role of a header name: 0 user, 1 item, 2 rating, 3 time, -1 none. Compared without case,
 * quotes, a UTF-8 byte order mark or anything but letters and digits ("User-ID" = "user_id" =
 * "userid"). The accepted names are listed in README.md and docs/FORMAT.md. */
int imf_column_role(const char *name, size_t len);

/* After imf_detect_format with o->cols_named: one line saying which header column went to which
 * role and which were ignored, for the log ("user = 'userId' (1), item = ..."). */
void imf_header_describe(const imf_parse_opts *o, const char *sample, size_t len, char *out, size_t cap);
#endif
