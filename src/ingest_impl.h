/* ingest_impl.h - PRIVATE to src/ingest*.c (ingest.c, ingest_read.c, ingest_ids.c): the
 * parse context they share and the steps one file hands another. No other file includes it;
 * ingest.h is the module's only interface.
 *
 * Who does what: ingest_read.c reads and parses (a rank's byte range of a plain file, or rank 0's
 * scattered pieces of a stream), interning ids locally and collecting rejects; ingest_ids.c
 * numbers the local ids into the store's maps and compacts ids the filters emptied; ingest.c
 * sniffs the input, redistributes, sorts, merges, filters, writes the rejects file and drives
 * the steps (imf_ingest_file). */
#ifndef IMF_INGEST_IMPL_H
#define IMF_INGEST_IMPL_H
#include "ingest.h"
#include "reader.h"

#include <mpi.h>
#include <stdint.h>

#define SAMPLE_BYTES (256 * 1024)
#define REJECT_RAW_MAX 1024

typedef struct {
  int32_t user, item; /* local ids while parsing; global indices after numbering */
  float value;
  int32_t pad;
  int64_t time;
  int64_t line;       /* piece-local line index, then the global 1-based line number */
} rec_t;

typedef struct {
  int32_t *slot; /* value -> local index + 1 (0: not seen) */
  int64_t cap;
} direct_t;

typedef struct {
  int64_t line;
  int reason;
  char *raw; /* malloc'd, escaped */
} reject_t;

typedef struct {
  MPI_Comm comm;
  int rank, size;
  const char *path;
  imf_parse_opts opts;
  /* records */
  rec_t *rec;
  int64_t nrec, caprec;
  /* rejects */
  reject_t *rej;
  int64_t nrej, caprej;
  int64_t rejected_by[IMF_REJ_COUNT_];
  /* local id interning with the piece-local line of first appearance */
  imf_idmap *lusers, *litems;
  int64_t *ufirst, *ifirst;
  int64_t capufirst, capifirst;
  /* piece bookkeeping */
  int64_t lines;          /* lines of the current piece on this rank */
  int64_t lines_total;    /* data lines over all pieces on this rank */
  int64_t piece_rec0, piece_rej0, piece_u0, piece_i0;
  int64_t line_base;      /* global line number of the first line of the current round */
  char *scratch;
  direct_t du, di;        /* direct lookup of numeric ids (see intern_fast) */
  int64_t size_hint;      /* expected records on this rank, to size the buffer once */
} ingest_ctx;

/* ---- ingest_read.c ---- */

/* Record a rejected line (its raw text escaped, cut at REJECT_RAW_MAX bytes). */
imf_status ingest_push_reject(ingest_ctx *c, int64_t line, int reason, const char *text, size_t len);
/* End of a piece (collective): shift its piece-local line indices to global line numbers. */
imf_status ingest_close_piece(ingest_ctx *c);
/* Byte offset just past the first `nlines` lines of the sample (the header). */
imf_status ingest_header_bytes(const char *path, const char *s, size_t n, int64_t nlines, int64_t *out);
/* Plain file: this rank parses the lines whose first byte lies in [lo, hi). */
imf_status ingest_read_range(ingest_ctx *c, imf_reader *rd, int64_t lo, int64_t hi, size_t chunk);
/* Stream (collective): rank 0 reads rd after skip_lines header lines and scatters line-aligned
 * pieces, round by round; every rank parses its piece. */
imf_status ingest_read_stream(ingest_ctx *c, imf_reader *rd, int64_t skip_lines, size_t chunk);

/* ---- ingest_ids.c ---- */

/* Collective: number the local ids into users/items (replicated, they grow) in order of first
 * appearance, translate the records to global indices and free the local interning. */
imf_status ingest_number(ingest_ctx *c, imf_idmap *users, imf_idmap *items);
/* Collective: drop new ids (index >= before) left without ratings and renumber the rest. */
imf_status ingest_compact_ids(ingest_ctx *c, imf_idmap *map, int64_t before, int is_user);
#endif
