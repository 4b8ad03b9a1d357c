/* synth.h - deterministic synthetic rating data: power-law activity and popularity, a planted
 * low-rank model with biases and noise, timestamps over a period, optional drift and optional
 * corrupt lines. A user's items are drawn without replacement (repeats only from rerate and the
 * duplicate corrupt lines). Streams output chunk by chunk: text memory does not grow with the
 * rating count; the set of (user, item) pairs drawn so far does (12-24 bytes per pair). */
#ifndef IMF_SYNTH_H
#define IMF_SYNTH_H
#include "incremf.h"
#include "parse.h"

typedef struct {
  int64_t users, items, ratings;
  int rank;
  double noise, user_skew, item_skew;
  double scale_min, scale_max, step;
  int64_t time_start, time_span_days;
  double drift, corrupt_fraction;
  double rerate; /* share of lines that re-rate the user's latest item, in [0, 1] */
  int implicit;
  uint64_t seed;
  imf_format format; /* csv (with header), tsv, dat, ml100k, mtx, libmf */
  int64_t chunk_lines; /* lines per generated chunk (work unit of one rank); 0 = default.
                          Changes only how work is split, never the bytes written. */
} imf_synth_opts;

/* What one imf_synth_write_ex produced (the same on every rank). */
typedef struct {
  int64_t ratings;   /* data lines (including corrupt ones) */
  int64_t lines;     /* all lines in the (decompressed) file: data + header */
  int64_t raw_bytes; /* bytes of the uncompressed text */
  int64_t bytes;     /* bytes of the file as written (compressed size for .gz/.xz/.zst) */
  double seconds;
} imf_synth_result;

imf_status imf_synth_opts_from_config(const imf_config *cfg, imf_synth_opts *o);
/* Write the data set to path (".gz", ".xz" or ".zst" suffix compresses). Collective: with P
 * ranks, each rank generates its share of lines in chunks and the file is written in order
 * with MPI-IO; the bytes do not depend on P. */
imf_status imf_synth_write(MPI_Comm comm, const imf_synth_opts *o, const char *path);
/* The same, also reporting what was written (res may be NULL). */
imf_status imf_synth_write_ex(MPI_Comm comm, const imf_synth_opts *o, const char *path,
                              imf_synth_result *res);
/* IMF_ERR_USAGE naming the first bad option (negative counts, empty scale, drift outside
 * [0,1], ...). imf_synth_write checks this itself. */
imf_status imf_synth_validate(const imf_synth_opts *o);
/* The format an output name implies: .csv, .tsv, .dat, .data (ml100k), .mtx, .libmf, after
 * stripping .gz/.xz/.zst; csv otherwise. */
imf_format imf_synth_format_for_path(const char *path);
#endif
