/* synth.h - deterministic synthetic rating data: power-law activity and popularity, a planted
 * low-rank model with biases and noise, timestamps over a period, optional drift and optional
 * corrupt lines. Streams output chunk by chunk: memory does not grow with the rating count. */
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
  int implicit;
  uint64_t seed;
  imf_format format; /* csv (with header), tsv, dat, ml100k, mtx, libmf */
} imf_synth_opts;

imf_status imf_synth_opts_from_config(const imf_config *cfg, imf_synth_opts *o);
/* Write the data set to path (".gz", ".xz" or ".zst" suffix compresses). Collective: with P
 * ranks, each rank generates its share of lines in chunks and the file is written in order
 * with MPI-IO; the bytes do not depend on P. */
imf_status imf_synth_write(MPI_Comm comm, const imf_synth_opts *o, const char *path);
#endif
