/* ingest.c - parse, number, redistribute, clean: one input file becomes one batch.
 *
 * How the work is split: rank 0 sniffs the file (compression, format, header) and hashes it;
 * for a plain file every rank then parses its own byte range (a line belongs to the rank whose
 * range holds its first byte), so there is no rank-0 bottleneck. A compressed file cannot be
 * split by offsets: rank 0 decompresses it chunk by chunk and scatters line-aligned pieces.
 *
 * Line numbers are not known while parsing (a rank does not know how many lines precede its
 * range), so every record, reject and first appearance of an id carries a piece-local line
 * index that is shifted to the global line number by an exclusive scan after each piece.
 *
 * Ids get dense indices in order of their first appearance in the file: each rank sends the
 * ids it saw that the store does not know, with the line of their first appearance; rank 0
 * sorts them by that line and numbers them. The result is the same for any rank count. */
#include "ingest.h"
#include "config.h"
#include "error.h"
#include "exchange.h"
#include "fsio.h"
#include "guard.h"
#include "log.h"
#include "parse.h"
#include "reader.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

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

static imf_status push_reject(ingest_ctx *c, int64_t line, int reason, const char *text, size_t len) {
  if (c->nrej == c->caprej) {
    int64_t nc = c->caprej ? c->caprej * 2 : 256;
    IMF_CHECK(imf_realloc(&c->rej, (size_t)nc, sizeof *c->rej));
    c->caprej = nc;
  }
  size_t keep = len > REJECT_RAW_MAX ? REJECT_RAW_MAX : len;
  char *raw = malloc(keep * 2 + 16);
  if (!raw) IMF_FAIL(IMF_ERR_NOMEM, "out of memory recording a rejected line");
  size_t o = 0;
  for (size_t i = 0; i < keep; i++) {
    unsigned char ch = (unsigned char)text[i];
    if (ch == '\t') { raw[o++] = '\\'; raw[o++] = 't'; }
    else if (ch == '\n') { raw[o++] = '\\'; raw[o++] = 'n'; }
    else if (ch == '\\') { raw[o++] = '\\'; raw[o++] = '\\'; }
    else if (ch == '\0') { raw[o++] = '\\'; raw[o++] = '0'; }
    else raw[o++] = (char)ch;
  }
  if (keep < len) {
    memcpy(raw + o, "...", 3);
    o += 3;
  }
  raw[o] = '\0';
  c->rej[c->nrej].line = line;
  c->rej[c->nrej].reason = reason;
  c->rej[c->nrej].raw = raw;
  c->nrej++;
  c->rejected_by[reason]++;
  return IMF_OK;
}

static imf_status intern(imf_idmap *m, int64_t **first, int64_t *cap, const char *s, size_t len,
                         int64_t line, int32_t *out) {
  int64_t idx;
  int added;
  IMF_CHECK(imf_idmap_insert(m, s, len, &idx, &added));
  if (added) {
    if (idx >= *cap) {
      int64_t nc = *cap ? *cap * 2 : 4096;
      IMF_CHECK(imf_realloc(first, (size_t)nc, sizeof **first));
      *cap = nc;
    }
    (*first)[idx] = line;
  }
  *out = (int32_t)idx;
  return IMF_OK;
}

/* Ids that are canonical decimal numbers (no sign, no leading zero, at most 8 digits) — most
 * real data sets — are looked up in a direct array indexed by their value instead of the string
 * hash table: one memory access instead of a hash, a probe chain and a compare. The string is
 * still interned on first sight, so numbering and the stored ids are exactly as for any string
 * ("0104257" is not canonical and takes the string path, staying distinct from "104257"). */
#define DIRECT_MAX (1 << 24)

static int canonical_number(const char *s, size_t len, int64_t *v) {
  if (len == 0 || len > 8 || (s[0] == '0' && len > 1)) return 0;
  int64_t x = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned d = (unsigned)(unsigned char)s[i] - '0';
    if (d > 9) return 0;
    x = x * 10 + d;
  }
  *v = x;
  return 1;
}

static imf_status intern_fast(direct_t *d, imf_idmap *m, int64_t **first, int64_t *cap, const char *s,
                              size_t len, int64_t line, int32_t *out) {
  int64_t v;
  if (!canonical_number(s, len, &v) || v >= DIRECT_MAX) return intern(m, first, cap, s, len, line, out);
  if (v >= d->cap) {
    int64_t nc = d->cap ? d->cap : 65536;
    while (nc <= v) nc *= 2;
    IMF_CHECK(imf_realloc(&d->slot, (size_t)nc, sizeof *d->slot));
    memset(d->slot + d->cap, 0, (size_t)(nc - d->cap) * sizeof *d->slot);
    d->cap = nc;
  }
  if (d->slot[v]) {
    *out = d->slot[v] - 1;
    return IMF_OK;
  }
  IMF_CHECK(intern(m, first, cap, s, len, line, out));
  d->slot[v] = *out + 1;
  return IMF_OK;
}

/* Records parsed but not yet numbered. Their ids are looked up in batches: the direct slots of
 * a whole batch are prefetched first, because the lookup is a cache miss into a table of
 * megabytes (users of a large file) and it was most of the parsing time when done one line at
 * a time. Only ids that point into the input buffer can wait; quoted ids live in scratch and
 * are numbered at once. */
#define PEND_MAX 64
#define PEND_AHEAD 8 /* records between a slot's prefetch and its lookup */
typedef struct {
  const char *u, *i;
  size_t ul, il;
  float value;
  int64_t time, line;
} pend_t;

/* A prefetch the compiler cannot drop: gcc 12 deleted every __builtin_prefetch of this file as
 * dead code (the loops that only compute addresses to prefetch went with them), so the slot
 * loads below stalled on every miss: 86-92% of intern_fast's samples in `perf annotate`. */
static inline void prefetch_keep(const void *p) {
#if defined(__x86_64__) || defined(__i386__)
  __asm__ volatile("prefetcht0 %0" : : "m"(*(const char *)p));
#else
  __builtin_prefetch(p);
#endif
}

static void prefetch_slot(const direct_t *d, const char *s, size_t len) {
  int64_t v;
  if (canonical_number(s, len, &v) && v < d->cap) prefetch_keep(&d->slot[v]);
}

static imf_status push_record(ingest_ctx *c, const char *u, size_t ul, const char *i, size_t il, float value,
                              int64_t time, int64_t line) {
  if (c->nrec == c->caprec) {
    int64_t nc = c->caprec ? c->caprec + c->caprec / 2 : (c->size_hint > 65536 ? c->size_hint : 65536);
    IMF_CHECK(imf_realloc(&c->rec, (size_t)nc, sizeof *c->rec));
    c->caprec = nc;
  }
  rec_t *x = &c->rec[c->nrec];
  IMF_CHECK(intern_fast(&c->du, c->lusers, &c->ufirst, &c->capufirst, u, ul, line, &x->user));
  IMF_CHECK(intern_fast(&c->di, c->litems, &c->ifirst, &c->capifirst, i, il, line, &x->item));
  x->value = value;
  x->pad = 0;
  x->time = time;
  x->line = line;
  c->nrec++;
  return IMF_OK;
}

static imf_status flush_pending(ingest_ctx *c, pend_t *p, int *np) {
  /* prefetched a fixed distance ahead of the lookups rather than the whole batch at once */
  enum { AHEAD = PEND_AHEAD };
  for (int k = 0; k < *np && k < AHEAD; k++) {
    prefetch_slot(&c->du, p[k].u, p[k].ul);
    prefetch_slot(&c->di, p[k].i, p[k].il);
  }
  for (int k = 0; k < *np; k++) {
    if (k + AHEAD < *np) {
      prefetch_slot(&c->du, p[k + AHEAD].u, p[k + AHEAD].ul);
      prefetch_slot(&c->di, p[k + AHEAD].i, p[k + AHEAD].il);
    }
    IMF_CHECK(push_record(c, p[k].u, p[k].ul, p[k].i, p[k].il, p[k].value, p[k].time, p[k].line));
  }
  *np = 0;
  return IMF_OK;
}

/* Parse every complete line of buf[0..len) (len includes the final '\n' of the last line, or
 * the last line runs to len at end of input). */
static imf_status parse_lines(ingest_ctx *c, const char *buf, size_t len) {
  const char *p = buf, *end = buf + len;
  const imf_parse_opts *o = &c->opts;
  pend_t pend[PEND_MAX];
  int np = 0;
  while (p < end) {
    imf_record r;
    const char *eol;
    if (imf_parse_line_simple(o, p, end, &r, &eol)) { /* the common line, in one pass */
      int64_t line = c->lines++;
      pend[np++] = (pend_t){r.user, r.item, r.user_len, r.item_len, (float)r.rating,
                            r.has_time ? r.time : IMF_NO_TIME, line};
      if (np == PEND_MAX) IMF_CHECK(flush_pending(c, pend, &np));
      p = eol < end ? eol + 1 : end;
      continue;
    }
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *le = nl ? nl : end;
    size_t ll = (size_t)(le - p);
    int64_t line = c->lines++;
    imf_reject_reason why = IMF_REJ_NONE;
    imf_line_kind kind;
    if (ll > o->max_line_len) {
      kind = IMF_LINE_REJECT;
      why = IMF_REJ_LINE_TOO_LONG;
    } else {
      kind = imf_parse_line(o, p, ll, INT64_MAX, c->scratch, &r, &why);
    }
    if (kind == IMF_LINE_OK) {
      float value = (float)(r.has_rating ? r.rating : 1.0);
      int64_t time = r.has_time ? r.time : IMF_NO_TIME;
      uintptr_t b0 = (uintptr_t)buf, b1 = (uintptr_t)end, pu = (uintptr_t)r.user, pi = (uintptr_t)r.item;
      int in_buf = pu >= b0 && pu < b1 && pi >= b0 && pi < b1;
      if (in_buf) {
        pend[np++] = (pend_t){r.user, r.item, r.user_len, r.item_len, value, time, line};
        if (np == PEND_MAX) IMF_CHECK(flush_pending(c, pend, &np));
      } else {
        IMF_CHECK(flush_pending(c, pend, &np));
        IMF_CHECK(push_record(c, r.user, r.user_len, r.item, r.item_len, value, time, line));
      }
    } else if (kind == IMF_LINE_HEADER) {
      /* a comment line inside the data (Matrix Market '%'): reported as header; slot 0 of
       * rejected_by (reason "none") is free to count them */
      c->rejected_by[0]++;
    } else {
      IMF_CHECK(push_reject(c, line, (int)why, p, ll));
    }
    p = nl ? nl + 1 : end;
  }
  return flush_pending(c, pend, &np);
}

/* End of a piece: shift this piece's local line indices to global line numbers. */
static imf_status close_piece(ingest_ctx *c) {
  int64_t mine = c->lines, before = 0, total = 0;
  IMF_MPI(MPI_Exscan(&mine, &before, 1, MPI_INT64_T, MPI_SUM, c->comm));
  if (c->rank == 0) before = 0;
  IMF_MPI(MPI_Allreduce(&mine, &total, 1, MPI_INT64_T, MPI_SUM, c->comm));
  int64_t shift = c->line_base + before + 1; /* 1-based */
  for (int64_t j = c->piece_rec0; j < c->nrec; j++) c->rec[j].line += shift;
  for (int64_t j = c->piece_rej0; j < c->nrej; j++) c->rej[j].line += shift;
  int64_t nu = imf_idmap_size(c->lusers), ni = imf_idmap_size(c->litems);
  for (int64_t j = c->piece_u0; j < nu; j++) c->ufirst[j] += shift;
  for (int64_t j = c->piece_i0; j < ni; j++) c->ifirst[j] += shift;
  c->line_base += total;
  c->lines_total += c->lines;
  c->lines = 0;
  c->piece_rec0 = c->nrec;
  c->piece_rej0 = c->nrej;
  c->piece_u0 = nu;
  c->piece_i0 = ni;
  return IMF_OK;
}

/* Byte offset just past the first `nlines` lines of the sample (the header). */
static imf_status header_bytes(const char *path, const char *s, size_t n, int64_t nlines, int64_t *out) {
  size_t off = 0;
  for (int64_t l = 0; l < nlines; l++) {
    const char *nl = memchr(s + off, '\n', n - off);
    if (!nl) {
      if (l == nlines - 1) {
        *out = (int64_t)n;
        return IMF_OK;
      }
      IMF_FAIL(IMF_ERR_INPUT, "%s: header of %lld lines is longer than %d bytes", path, (long long)nlines, SAMPLE_BYTES);
    }
    off = (size_t)(nl - s) + 1;
  }
  *out = (int64_t)off;
  return IMF_OK;
}

/* Plain file: this rank parses the lines whose first byte lies in [lo, hi). */
static imf_status read_range(ingest_ctx *c, imf_reader *rd, int64_t lo, int64_t hi, size_t chunk) {
  if (lo >= hi) return IMF_OK;
  char *buf = NULL;
  imf_status st = IMF_OK;
  IMF_TRY(imf_alloc_nz(&buf, chunk + 1, 1), done);
  int64_t pos = lo;
  if (lo > 0) {
    /* Skip the tail of a line that started before lo: it belongs to the previous rank. */
    char ch;
    size_t got;
    IMF_TRY(imf_reader_pread(rd, &ch, 1, lo - 1, &got), done);
    if (got == 1 && ch != '\n') {
      for (;;) {
        size_t n;
        IMF_TRY(imf_reader_pread(rd, buf, chunk, pos, &n), done);
        if (n == 0) { pos = hi; break; }
        char *nl = memchr(buf, '\n', n);
        if (nl) { pos += (nl - buf) + 1; break; }
        pos += (int64_t)n;
      }
    }
  }
  size_t have = 0; /* bytes at buf[0..have) not yet parsed, starting at file offset pos */
  int skipping = 0;  /* inside an over-long line: drop bytes until its newline */
  int64_t readpos = pos;
  while (pos < hi || have > 0) {
    size_t n = 0;
    if (have < chunk) IMF_TRY(imf_reader_pread(rd, buf + have, chunk - have, readpos, &n), done);
    readpos += (int64_t)n;
    size_t len = have + n;
    if (len == 0) break;
    int eof = n == 0 && have < chunk;
    if (skipping) {
      char *nl = memchr(buf, '\n', len);
      size_t drop = nl ? (size_t)(nl - buf) + 1 : len;
      memmove(buf, buf + drop, len - drop);
      pos += (int64_t)drop;
      have = len - drop;
      if (nl) skipping = 0;
      if (eof && !nl) break;
      continue;
    }
    /* Parse complete lines that start before hi. */
    size_t cut = 0;
    if (pos + (int64_t)len <= hi) {
      /* every line here starts before hi: parse up to the last newline (one backward scan
       * instead of one memchr per line) */
      const char *nl = memrchr(buf, '\n', len);
      cut = nl ? (size_t)(nl - buf) + 1 : eof ? len : 0;
    } else {
      const char *p = buf, *end = buf + len;
      while (p < end && pos + (p - buf) < hi) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) {
          if (eof) p = end; /* last line without newline */
          break;
        }
        p = nl + 1;
      }
      cut = (size_t)(p - buf);
    }
    if (cut > 0) {
      IMF_TRY(parse_lines(c, buf, cut), done);
      memmove(buf, buf + cut, len - cut);
      pos += (int64_t)cut;
      have = len - cut;
      if (pos >= hi) break;
      continue;
    }
    if (pos >= hi) break;
    if (eof) break;
    /* No newline in a full buffer: the line exceeds the buffer (and the line limit). */
    if (len >= chunk) {
      char note[64];
      snprintf(note, sizeof note, "[line longer than %zu bytes]", c->opts.max_line_len);
      IMF_TRY(push_reject(c, c->lines++, IMF_REJ_LINE_TOO_LONG, note, strlen(note)), done);
      skipping = 1;
      pos += (int64_t)len;
      have = 0;
    } else {
      have = len;
    }
  }
done:
  imf_free(&buf);
  return st;
}

/* Compressed file: rank 0 decompresses and scatters line-aligned pieces, round by round. */
static imf_status read_stream(ingest_ctx *c, imf_reader *rd, int64_t skip_lines, size_t chunk) {
  char *buf = NULL, *piece = NULL;
  int *counts = NULL, *displs = NULL;
  imf_status st = IMF_OK;
  size_t cap = chunk * (size_t)1 + 1, have = 0;
  int root = c->rank == 0;
  if (root) {
    IMF_TRY(imf_alloc(&buf, cap, 1), done);
    IMF_TRY(imf_alloc(&counts, (size_t)c->size, sizeof *counts), done);
    IMF_TRY(imf_alloc(&displs, (size_t)c->size, sizeof *displs), done);
  }
  IMF_TRY(imf_alloc(&piece, chunk + 1, 1), done);
  int64_t skipped = 0;
  int done_flag = 0, skipping = 0;
  while (!done_flag) {
    imf_status lst = IMF_OK;
    size_t send = 0; /* bytes of complete lines to scatter this round */
    if (root) {
      size_t n = 0;
      lst = imf_reader_read(rd, buf + have, cap - 1 - have, &n);
      size_t len = have + n;
      int eof = (lst == IMF_OK && n == 0 && have < cap - 1);
      /* drop the header lines (counted by the caller) */
      size_t start = 0;
      while (lst == IMF_OK && skipped < skip_lines && start < len) {
        char *nl = memchr(buf + start, '\n', len - start);
        if (!nl) break;
        start = (size_t)(nl - buf) + 1;
        skipped++;
      }
      if (skipping && lst == IMF_OK) {
        char *nl = memchr(buf + start, '\n', len - start);
        if (nl) { start = (size_t)(nl - buf) + 1; skipping = 0; }
        else start = len;
      }
      if (start) {
        memmove(buf, buf + start, len - start);
        len -= start;
      }
      if (lst == IMF_OK) {
        /* complete lines only, unless at end of input */
        size_t cut = len;
        if (!eof) {
          char *last = memrchr(buf, '\n', len);
          cut = last ? (size_t)(last - buf) + 1 : 0;
          if (cut == 0 && len >= cap - 1) {
            /* a single line fills the whole buffer: over-long, reject and skip it */
            char note[64];
            snprintf(note, sizeof note, "[line longer than %zu bytes]", c->opts.max_line_len);
            lst = push_reject(c, c->lines++, IMF_REJ_LINE_TOO_LONG, note, strlen(note));
            skipping = 1;
            len = 0;
          }
        }
        send = cut;
        have = len;
        if (eof && len == 0) done_flag = 1;
      }
      if (lst != IMF_OK) done_flag = 1;
    }
    IMF_TRY(imf_agree(c->comm, lst), done);
    IMF_MPI_TRY(MPI_Bcast(&done_flag, 1, MPI_INT, 0, c->comm), done);
    if (done_flag) break;
    /* split [0, send) into size pieces at line boundaries */
    if (root) {
      size_t pos = 0;
      for (int r = 0; r < c->size; r++) {
        size_t target = send * (size_t)(r + 1) / (size_t)c->size;
        size_t e = target;
        if (r == c->size - 1) e = send;
        else if (e > pos) {
          char *nl = memchr(buf + e - 1, '\n', send - (e - 1));
          e = nl ? (size_t)(nl - buf) + 1 : send;
        } else e = pos;
        displs[r] = (int)pos;
        counts[r] = (int)(e - pos);
        pos = e;
      }
    }
    int mycount = 0;
    IMF_MPI_TRY(MPI_Scatter(counts, 1, MPI_INT, &mycount, 1, MPI_INT, 0, c->comm), done);
    IMF_MPI_TRY(MPI_Scatterv(buf, counts, displs, MPI_CHAR, piece, mycount, MPI_CHAR, 0, c->comm), done);
    lst = parse_lines(c, piece, (size_t)mycount);
    IMF_TRY(imf_agree(c->comm, lst), done);
    IMF_TRY(close_piece(c), done);
    if (root) {
      memmove(buf, buf + send, have - send);
      have -= send;
    }
  }
done:
  imf_free(&buf);
  imf_free(&piece);
  imf_free(&counts);
  imf_free(&displs);
  return st;
}

/* ---- numbering: local ids -> global indices in order of first appearance ---- */

/* 16 bytes: rank 0 holds one per new id per rank that saw it, twice while merging (3.2M of them
 * for a 1 GB file on 2 ranks: with 32-byte entries, numbering was the peak of rank 0's memory).
 * The id's length is in the gathered header before it; its place in the gathered order, to send
 * the index back, is found by walking the gathered buffer, where the index is left. */
typedef struct {
  int64_t line;
  int64_t off; /* into the gathered buffer: the id's bytes, after its 16-byte header */
} newid_t;

static int64_t newid_len(const char *recvbuf, const newid_t *x) {
  int64_t hdr[2];
  memcpy(hdr, recvbuf + x->off - 16, 16);
  return hdr[1];
}

static int cmp_newid(const void *a, const void *b) {
  const newid_t *x = a, *y = b;
  return (x->line > y->line) - (x->line < y->line);
}

/* Order the gathered new ids by line when each rank's list (nseg consecutive runs of the given
 * lengths) is in line order already, as every rank's first appearances are: pairwise merges,
 * O(n log P), instead of a sort of the whole list (for 2.2M new ids of a 1 GB file on 2 ranks
 * qsort took a large part of the numbering, which every rank waits for). Lines are unique
 * (a line brings at most one new id per map), so the order is the same as the sort's.
 * Returns 0, having changed nothing, when a run is not in order or memory is short. */
static int merge_newid_runs(newid_t *ids, int64_t n, const int *lens, int nseg) {
  int64_t *bound = malloc(((size_t)nseg + 1) * sizeof *bound);
  newid_t *tmp = malloc(((size_t)n + 1) * sizeof *tmp);
  if (!bound || !tmp) {
    free(bound);
    free(tmp);
    return 0;
  }
  bound[0] = 0;
  for (int r = 0; r < nseg; r++) bound[r + 1] = bound[r] + lens[r];
  int ok = bound[nseg] == n;
  for (int r = 0; ok && r < nseg; r++)
    for (int64_t j = bound[r] + 1; ok && j < bound[r + 1]; j++) ok = ids[j - 1].line < ids[j].line;
  newid_t *a = ids, *b = tmp;
  while (ok && nseg > 1) {
    int w = 0;
    for (int r = 0; r < nseg; r += 2) {
      int64_t lo = bound[r], mid = bound[r + 1], hi = r + 1 < nseg ? bound[r + 2] : mid, i = lo, j = mid, k = lo;
      while (i < mid && j < hi) b[k++] = a[i].line < a[j].line ? a[i++] : a[j++];
      while (i < mid) b[k++] = a[i++];
      while (j < hi) b[k++] = a[j++];
      bound[w++] = lo;
      bound[w] = hi;
    }
    nseg = w;
    newid_t *t = a;
    a = b;
    b = t;
  }
  if (ok && a != ids) memcpy(ids, a, (size_t)n * sizeof *ids);
  free(bound);
  free(tmp);
  return ok;
}

/* Returns in *map the global index of every local id (replicated map `global` grows).
 *
 * Each rank interns ids in line order, so its list of unknown ids is already sorted by first
 * line; rank 0 only sorts the gathered lists when they interleave (pieces of a compressed
 * stream), not for byte ranges, where rank r's lines all precede rank r+1's. Rank 0 sends each
 * rank the global indices of its ids in the order it sent them, so no rank looks an id up twice;
 * on one rank nothing is gathered, sorted or broadcast at all. */
static imf_status number_ids(ingest_ctx *c, imf_idmap *local, const int64_t *first, imf_idmap *global,
                             int32_t **map_out) {
  imf_status st = IMF_OK;
  int64_t nl = imf_idmap_size(local);
  int32_t *map = NULL, *gidx = NULL, *mygidx = NULL;
  char *sendbuf = NULL, *recvbuf = NULL, *blob = NULL;
  int *rcounts = NULL, *rdispls = NULL, *icounts = NULL, *idispls = NULL;
  newid_t *ids = NULL;
  int64_t *offs = NULL;
  IMF_TRY(imf_alloc_nz(&map, (size_t)nl + 1, sizeof *map), out);
  if (c->size == 1) {
    /* local order is first-appearance order: insert as they come */
    int64_t *idx = NULL, nadded = 0;
    IMF_TRY(imf_alloc_nz(&idx, (size_t)nl + 1, sizeof *idx), out);
    st = imf_idmap_insert_map(global, local, idx, &nadded);
    for (int64_t j = 0; st == IMF_OK && j < nl; j++) map[j] = (int32_t)idx[j];
    imf_free(&idx);
    IMF_TRY(st, out);
    *map_out = map;
    return IMF_OK;
  }
  /* serialise unknown ids: [int64 line][int64 len][bytes] */
  size_t bytes = 0;
  int64_t nunk = 0;
  for (int64_t j = 0; j < nl; j++) {
    size_t len;
    const char *s = imf_idmap_get(local, j, &len);
    int64_t g = imf_idmap_find(global, s, len);
    map[j] = (int32_t)g;
    if (g < 0) {
      bytes += 16 + len;
      nunk++;
    }
  }
  if (bytes > (size_t)INT32_MAX)
    IMF_TRY(IMF_RAISE(IMF_ERR_INPUT, "%s: too many new ids on one rank (%zu bytes)", c->path, bytes), out);
  IMF_TRY(imf_alloc_nz(&sendbuf, bytes + 1, 1), out);
  IMF_TRY(imf_alloc_nz(&mygidx, (size_t)nunk + 1, sizeof *mygidx), out);
  {
    size_t o = 0;
    for (int64_t j = 0; j < nl; j++) {
      if (map[j] >= 0) continue;
      size_t len;
      const char *s = imf_idmap_get(local, j, &len);
      int64_t hdr[2] = {first[j], (int64_t)len};
      memcpy(sendbuf + o, hdr, 16);
      memcpy(sendbuf + o + 16, s, len);
      o += 16 + len;
    }
  }
  int mine = (int)bytes, myn = (int)nunk;
  int root = c->rank == 0;
  if (root) {
    IMF_TRY(imf_alloc(&rcounts, (size_t)c->size, sizeof *rcounts), out);
    IMF_TRY(imf_alloc(&rdispls, (size_t)c->size, sizeof *rdispls), out);
    IMF_TRY(imf_alloc(&icounts, (size_t)c->size, sizeof *icounts), out);
    IMF_TRY(imf_alloc(&idispls, (size_t)c->size, sizeof *idispls), out);
  }
  IMF_TRY(imf_agree(c->comm, st), out);
  IMF_MPI_TRY(MPI_Gather(&mine, 1, MPI_INT, rcounts, 1, MPI_INT, 0, c->comm), out);
  IMF_MPI_TRY(MPI_Gather(&myn, 1, MPI_INT, icounts, 1, MPI_INT, 0, c->comm), out);
  int64_t total = 0, itotal = 0;
  if (root) {
    for (int r = 0; r < c->size; r++) {
      if (total + rcounts[r] > INT32_MAX) {
        st = IMF_RAISE(IMF_ERR_INPUT, "%s: more than 2 GiB of new ids in one batch", c->path);
        break;
      }
      rdispls[r] = (int)total;
      total += rcounts[r];
      idispls[r] = (int)itotal;
      itotal += icounts[r];
    }
    if (st == IMF_OK) st = imf_alloc_nz(&recvbuf, (size_t)total + 1, 1);
    if (st == IMF_OK) st = imf_alloc_nz(&ids, (size_t)itotal + 1, sizeof *ids);
    if (st == IMF_OK) st = imf_alloc_nz(&gidx, (size_t)itotal + 1, sizeof *gidx);
  }
  IMF_TRY(imf_agree(c->comm, st), out);
  IMF_MPI_TRY(MPI_Gatherv(sendbuf, mine, MPI_CHAR, recvbuf, rcounts, rdispls, MPI_CHAR, 0, c->comm), out);
  imf_free(&sendbuf);
  /* rank 0 orders the unknown ids by first line (an id seen on several ranks appears once per
   * rank) and broadcasts that list; every rank then inserts it in the same order at the same
   * time, so the replicated maps agree and no rank waits for another's inserts. */
  int64_t nlist = 0, blob_len = 0;
  if (root) {
    int64_t n = 0;
    int sorted = 1;
    for (int64_t o = 0; o < total && n < itotal;) {
      int64_t hdr[2];
      memcpy(hdr, recvbuf + o, 16);
      ids[n].line = hdr[0];
      ids[n].off = o + 16;
      if (n > 0 && hdr[0] < ids[n - 1].line) sorted = 0;
      n++;
      o += 16 + hdr[1];
    }
    if (!sorted && !merge_newid_runs(ids, n, icounts, c->size)) qsort(ids, (size_t)n, sizeof *ids, cmp_newid);
    nlist = n;
    for (int64_t j = 0; j < n; j++) blob_len += newid_len(recvbuf, &ids[j]);
  }
  int64_t hdr2[2] = {nlist, blob_len};
  IMF_MPI_TRY(MPI_Bcast(hdr2, 2, MPI_INT64_T, 0, c->comm), out);
  nlist = hdr2[0];
  blob_len = hdr2[1];
  IMF_TRY(imf_alloc_nz(&offs, (size_t)nlist + 1, sizeof *offs), out);
  IMF_TRY(imf_alloc_nz(&blob, (size_t)blob_len + 1, 1), out);
  offs[0] = 0;
  if (root)
    for (int64_t j = 0; j < nlist; j++) {
      const int64_t len = newid_len(recvbuf, &ids[j]);
      memcpy(blob + offs[j], recvbuf + ids[j].off, (size_t)len);
      offs[j + 1] = offs[j] + len;
    }
  if (nlist) {
    IMF_MPI_TRY(MPI_Bcast(offs, (int)(nlist + 1), MPI_INT64_T, 0, c->comm), out);
    for (int64_t o = 0; o < blob_len; o += (1 << 30)) {
      int n = (int)((blob_len - o) < (1 << 30) ? (blob_len - o) : (1 << 30));
      IMF_MPI_TRY(MPI_Bcast(blob + o, n, MPI_CHAR, 0, c->comm), out);
    }
  }
  {
    int64_t *idx = NULL, nadded = 0;
    st = imf_idmap_reserve(global, nlist, blob_len);
    if (st == IMF_OK) st = imf_alloc_nz(&idx, (size_t)nlist + 1, sizeof *idx);
    if (st == IMF_OK) st = imf_idmap_insert_list(global, blob, offs, nlist, idx, &nadded);
    if (st == IMF_OK && root) /* the line is no longer needed: the index takes its place */
      for (int64_t j = 0; j < nlist; j++) memcpy(recvbuf + ids[j].off - 16, &idx[j], sizeof *idx);
    imf_free(&idx);
  }
  if (root && st == IMF_OK) /* the indices, in the gathered order */
    for (int64_t o = 0, n = 0; o < total && n < itotal; n++) {
      int64_t hdr[2];
      memcpy(hdr, recvbuf + o, 16);
      gidx[n] = (int32_t)hdr[0];
      o += 16 + hdr[1];
    }
  IMF_TRY(imf_agree(c->comm, st), out);
  IMF_MPI_TRY(MPI_Scatterv(gidx, icounts, idispls, MPI_INT32_T, mygidx, myn, MPI_INT32_T, 0, c->comm), out);
  for (int64_t j = 0, k = 0; j < nl; j++)
    if (map[j] < 0) map[j] = mygidx[k++];
  *map_out = map;
  map = NULL;
out:
  imf_free(&map);
  imf_free(&gidx);
  imf_free(&mygidx);
  imf_free(&sendbuf);
  imf_free(&recvbuf);
  imf_free(&rcounts);
  imf_free(&rdispls);
  imf_free(&icounts);
  imf_free(&idispls);
  imf_free(&ids);
  imf_free(&offs);
  imf_free(&blob);
  return st;
}

/* ---- redistribution by user block ---- */

/* Block r holds users [ub[r], ub[r+1]): contiguous, in rank order (what makes the batch file
 * canonical), cut so that each block holds about the same number of ratings. Equal user ranges
 * left rank 0 of 2 with 64% of a power-law file's ratings (ids number users by first
 * appearance, so the heavy ones come first): its sort, merge and write took that much longer,
 * and the other rank's peak memory was 3.3x the arrays it ended with. The cut is made on
 * USER_BUCKETS_PER_RANK x P buckets of user ids, weighed by the ratings every rank parsed. */
#define USER_BUCKETS_PER_RANK 4096

/* Collective: the user bounds ub[0..size] of the blocks (see imf_block_owner). */
static imf_status user_blocks(ingest_ctx *c, int64_t nusers, int64_t *ub) {
  const int64_t nb = nusers < (int64_t)USER_BUCKETS_PER_RANK * c->size ? (nusers > 0 ? nusers : 1)
                                                                       : (int64_t)USER_BUCKETS_PER_RANK * c->size;
  ub[0] = 0;
  ub[c->size] = nusers;
  if (c->size == 1) return IMF_OK;
  int64_t *w = NULL;
  imf_status st = imf_agree(c->comm, imf_alloc(&w, (size_t)nb, sizeof *w));
  if (st != IMF_OK) {
    imf_free(&w); /* the ranks whose allocation succeeded */
    return st;
  }
  for (int64_t j = 0; j < c->nrec; j++) w[c->rec[j].user * nb / nusers]++;
  if (MPI_Allreduce(MPI_IN_PLACE, w, (int)nb, MPI_INT64_T, MPI_SUM, c->comm) != MPI_SUCCESS) {
    imf_free(&w);
    IMF_FAIL(IMF_ERR_RUNTIME, "MPI_Allreduce failed (user blocks)");
  }
  int64_t tot = 0;
  for (int64_t b = 0; b < nb; b++) tot += w[b];
  /* block r starts at the first bucket where the ratings before it reach r/size of all; bucket
   * b holds the users u with u*nb/nusers == b, the first of them ceil(b*nusers/nb) */
  int64_t acc = 0, b = 0, prev = 0, fullest = 0;
  for (int r = 1; r < c->size; r++) {
    const int64_t want = tot * r / c->size;
    while (b < nb && acc + w[b] <= want) acc += w[b++];
    /* the bucket that crosses the mark goes to whichever side leaves it closer */
    if (b < nb && want - acc > acc + w[b] - want) acc += w[b++];
    ub[r] = (b * nusers + nb - 1) / nb;
    if (ub[r] < ub[r - 1]) ub[r] = ub[r - 1];
    if (acc - prev > fullest) fullest = acc - prev;
    prev = acc;
  }
  if (tot - prev > fullest) fullest = tot - prev;
  imf_free(&w);
  imf_info("users cut into %d blocks by their ratings: the fullest holds %lld, %.3fx the mean", c->size,
           (long long)fullest, tot > 0 ? (double)fullest * c->size / (double)tot : 1.0);
  return IMF_OK;
}

/* The exchange runs in rounds, each moving about 1/XCHG_ROUNDS of what every rank sends to
 * every other; after a round the pages of the send buffer it has sent are handed back to the
 * kernel (the receive buffer's pages are only touched as records arrive). So the records never
 * exist twice in full: one copy plus about 1/XCHG_ROUNDS of one, instead of two, at the peak of
 * a parallel prepare (32-byte records, 1.6x the batch's final arrays each). */
#define XCHG_ROUNDS 8

/* give back the whole pages inside bytes [a, b) of buf (never read again) */
static void release_pages(const void *buf, size_t a, size_t b) {
#ifdef MADV_DONTNEED
  const uintptr_t pg = 4096, lo = ((uintptr_t)buf + a + pg - 1) & ~(pg - 1), hi = ((uintptr_t)buf + b) & ~(pg - 1);
  if (hi > lo) (void)madvise((void *)lo, hi - lo, MADV_DONTNEED);
#else
  (void)buf, (void)a, (void)b;
#endif
}

static imf_status redistribute(ingest_ctx *c, const int64_t *ub) {
  if (c->size == 1) return IMF_OK;
  imf_status st = IMF_OK;
  MPI_Datatype rt = MPI_DATATYPE_NULL;
  int *scount = NULL, *sdisp = NULL, *rcount = NULL, *rdisp = NULL;
  int64_t *pos = NULL;
  rec_t *out = NULL, *in = NULL;
  IMF_MPI_TRY(MPI_Type_contiguous((int)sizeof(rec_t), MPI_BYTE, &rt), done);
  IMF_MPI_TRY(MPI_Type_commit(&rt), done);
  IMF_TRY(imf_alloc(&scount, (size_t)c->size, sizeof(int)), done);
  IMF_TRY(imf_alloc(&sdisp, (size_t)c->size, sizeof(int)), done);
  IMF_TRY(imf_alloc(&rcount, (size_t)c->size, sizeof(int)), done);
  IMF_TRY(imf_alloc(&rdisp, (size_t)c->size, sizeof(int)), done);
  IMF_TRY(imf_alloc(&pos, (size_t)c->size, sizeof(int64_t)), done);
  int64_t *cnt64 = pos;
  for (int64_t j = 0; j < c->nrec; j++) cnt64[imf_block_owner(ub, c->size, c->rec[j].user)]++;
  int64_t acc = 0;
  for (int r = 0; r < c->size; r++) {
    if (cnt64[r] > INT32_MAX || acc > INT32_MAX) {
      st = IMF_RAISE(IMF_ERR_INPUT, "%s: more than 2^31 ratings move between two ranks; use more ranks", c->path);
      break;
    }
    scount[r] = (int)cnt64[r];
    sdisp[r] = (int)acc;
    acc += cnt64[r];
  }
  IMF_TRY(imf_agree(c->comm, st), done);
  /* group the records by destination in place (American flag sort: each record is swapped
   * straight into its rank's segment), so they are the send buffer: no second copy */
  {
    for (int r = 0; r < c->size; r++) pos[r] = sdisp[r];
    for (int b = 0; b < c->size; b++) {
      const int64_t end = (int64_t)sdisp[b] + scount[b];
      while (pos[b] < end) {
        const int o = imf_block_owner(ub, c->size, c->rec[pos[b]].user);
        if (o == b) pos[b]++;
        else {
          const rec_t t = c->rec[pos[o]];
          c->rec[pos[o]++] = c->rec[pos[b]];
          c->rec[pos[b]] = t;
        }
      }
    }
  }
  out = c->rec;
  c->rec = NULL;
  IMF_MPI_TRY(MPI_Alltoall(scount, 1, MPI_INT, rcount, 1, MPI_INT, c->comm), done);
  int64_t rtotal = 0;
  for (int r = 0; r < c->size; r++) {
    if (rtotal > INT32_MAX) st = IMF_RAISE(IMF_ERR_INPUT, "%s: a rank receives more than 2^31 ratings; use more ranks", c->path);
    rdisp[r] = (int)rtotal;
    rtotal += rcount[r];
  }
  if (st == IMF_OK) st = imf_alloc_nz(&in, (size_t)rtotal + 1, sizeof *in);
  IMF_TRY(imf_agree(c->comm, st), done);
  {
    int *sc = NULL, *sd = NULL, *rc = NULL, *rd = NULL;
    st = imf_alloc(&sc, (size_t)c->size * 4, sizeof(int));
    IMF_TRY(imf_agree(c->comm, st), done);
    sd = sc + c->size, rc = sd + c->size, rd = rc + c->size;
    for (int t = 0; t < XCHG_ROUNDS && st == IMF_OK; t++) {
      for (int r = 0; r < c->size; r++) {
        const int64_t s0 = (int64_t)scount[r] * t / XCHG_ROUNDS, s1 = (int64_t)scount[r] * (t + 1) / XCHG_ROUNDS;
        const int64_t r0 = (int64_t)rcount[r] * t / XCHG_ROUNDS, r1 = (int64_t)rcount[r] * (t + 1) / XCHG_ROUNDS;
        sc[r] = (int)(s1 - s0);
        sd[r] = sdisp[r] + (int)s0;
        rc[r] = (int)(r1 - r0);
        rd[r] = rdisp[r] + (int)r0;
      }
      const int rc_ = MPI_Alltoallv(out, sc, sd, rt, in, rc, rd, rt, c->comm);
      if (rc_ != MPI_SUCCESS) st = IMF_MPI_RAISE(rc_, "MPI_Alltoallv (redistribution)");
      for (int r = 0; r < c->size; r++)
        release_pages(out, (size_t)sdisp[r] * sizeof *out, (size_t)(sd[r] + sc[r]) * sizeof *out);
    }
    imf_free(&sc);
    IMF_TRY(st, done);
  }
  c->rec = in;
  in = NULL;
  c->nrec = c->caprec = rtotal;
done:
  if (rt != MPI_DATATYPE_NULL) MPI_Type_free(&rt);
  imf_free(&scount);
  imf_free(&sdisp);
  imf_free(&rcount);
  imf_free(&rdisp);
  imf_free(&pos);
  imf_free(&out);
  imf_free(&in);
  return st;
}

/* ---- sort, merge duplicates, filters ---- */

static int cmp_item_line(const void *a, const void *b) {
  const rec_t *x = a, *y = b;
  if (x->item != y->item) return x->item < y->item ? -1 : 1;
  return (x->line > y->line) - (x->line < y->line);
}

/* One stable counting pass on the digit (item >> shift) & (2^bits - 1) of each record. */
static void radix_pass_item(const rec_t *src, rec_t *dst, int64_t n, int shift, int bits, int64_t *cnt) {
  uint32_t nb = 1u << bits, mask = nb - 1;
  memset(cnt, 0, ((size_t)nb + 1) * sizeof *cnt);
#define DIGIT(r) ((((uint32_t)(r).item) >> shift) & mask)
  for (int64_t j = 0; j < n; j++) cnt[DIGIT(src[j]) + 1]++;
  for (uint32_t d = 0; d < nb; d++) cnt[d + 1] += cnt[d];
  for (int64_t j = 0; j < n; j++) dst[cnt[DIGIT(src[j])]++] = src[j];
#undef DIGIT
}

/* Insertion sort by (item, line): for a user's few ratings, and to finish a heavy user's once
 * they are in item order (then only repeated pairs are out of line order, and this costs a pass). */
static void insertion_item_line(rec_t *r, int64_t m) {
  for (int64_t a = 1; a < m; a++) {
    rec_t x = r[a];
    int64_t q = a;
    while (q > 0 && cmp_item_line(&r[q - 1], &x) > 0) {
      r[q] = r[q - 1];
      q--;
    }
    r[q] = x;
  }
}

static int bits_for(int64_t values) { /* bits to tell `values` keys apart */
  int b = 0;
  while (b < 62 && ((int64_t)1 << b) < values) b++;
  return b;
}

/* One level of an in-place most-significant-digit radix sort on the users (American flag
 * sort): the top `b` of `nbits` bits above `lowbit` of (user - base) pick one of 2^b buckets,
 * each record is carried to its bucket's next free place (picking up the record there), then
 * each bucket is sorted on the remaining bits one level down. Records of one bucket agree on
 * every bit above. */
#define RADIX_BITS 11
typedef struct {
  int64_t cnt[(1 << RADIX_BITS) + 1], head[1 << RADIX_BITS];
} flag_level;

static void flag_sort_users(rec_t *r, int64_t n, int32_t base, int lowbit, int nbits, flag_level *lv) {
  if (n < 2 || nbits <= 0) return;
  if (n <= 32) { /* small: insertion sort by user */
    for (int64_t a = 1; a < n; a++) {
      rec_t x = r[a];
      int64_t q = a;
      while (q > 0 && r[q - 1].user > x.user) {
        r[q] = r[q - 1];
        q--;
      }
      r[q] = x;
    }
    return;
  }
  int b = nbits < RADIX_BITS ? nbits : RADIX_BITS, shift = lowbit + nbits - b;
  uint32_t nb = 1u << b, mask = nb - 1;
  int64_t *cnt = lv->cnt, *head = lv->head;
#define DIGIT(x) ((((uint32_t)((x).user - base)) >> shift) & mask)
  memset(cnt, 0, ((size_t)nb + 1) * sizeof *cnt);
  for (int64_t j = 0; j < n; j++) cnt[DIGIT(r[j]) + 1]++;
  for (uint32_t d = 0; d < nb; d++) {
    cnt[d + 1] += cnt[d];
    head[d] = cnt[d];
  }
  for (uint32_t d = 0; d < nb; d++)
    while (head[d] < cnt[d + 1]) {
      rec_t x = r[head[d]];
      uint32_t dd = DIGIT(x);
      while (dd != d) {
        rec_t y = r[head[dd]];
        r[head[dd]++] = x;
        x = y;
        dd = DIGIT(x);
      }
      r[head[d]++] = x;
    }
#undef DIGIT
  if (nbits > b)
    for (uint32_t d = 0; d < nb; d++) flag_sort_users(r + cnt[d], cnt[d + 1] - cnt[d], base, lowbit, nbits - b, lv + 1);
}

/* Sort this rank's records by (user, item, line) in place: no scratch buffer of the records'
 * size, whose fresh pages the kernel would have to zero (on this project's VMs that was most of
 * the sort's time, and the scratch buffer set the peak memory of `prepare`). The users by an
 * in-place radix sort in 2048-bucket levels; then each user's ratings by (item, line): short
 * runs by insertion, long ones (heavy users) by stable radix passes on the item through a
 * scratch buffer of the longest run, after which runs of the same (user, item) are put in line
 * order (duplicates; short). Line numbers are unique, so the order is total: the same for any
 * algorithm and rank count. Users of this rank lie in [ulo, uhi); items in [0, nitems).
 * (Earlier: a comparison sort per user made qsort a sixth of `prepare`; then a stable
 * least-significant-digit sort through a scratch copy of all records.) */
static imf_status sort_records(ingest_ctx *c, int64_t ulo, int64_t uhi, int64_t nitems) {
  int64_t nu = uhi - ulo, n = c->nrec;
  flag_level *lv = NULL;
  int64_t *cnt = NULL;
  rec_t *run = NULL;
  imf_status st = IMF_OK;
  IMF_TRY(imf_alloc_nz(&lv, 4, sizeof *lv), done); /* 31 bits of users: at most 3 levels */
  flag_sort_users(c->rec, n, (int32_t)ulo, 0, bits_for(nu), lv);
  int64_t longest = 0;
  for (int64_t j = 0, e; j < n; j = e) {
    for (e = j + 1; e < n && c->rec[e].user == c->rec[j].user;) e++;
    if (e - j > longest) longest = e - j;
  }
  int ibits = bits_for(nitems), ipasses = (ibits + RADIX_BITS - 1) / RADIX_BITS;
  if (longest > 48) {
    IMF_TRY(imf_alloc_nz(&cnt, ((size_t)1 << RADIX_BITS) + 1, sizeof *cnt), done);
    IMF_TRY(imf_alloc_nz(&run, (size_t)longest, sizeof *run), done);
  }
  for (int64_t j = 0, e; j < n; j = e) {
    for (e = j + 1; e < n && c->rec[e].user == c->rec[j].user;) e++;
    rec_t *r = c->rec + j;
    int64_t m = e - j;
    if (m > 48) { /* a heavy user: into item order by radix passes first */
      rec_t *src = r, *dst = run;
      for (int q = 0; q < ipasses; q++) {
        int lo = ibits * q / ipasses, hi = ibits * (q + 1) / ipasses;
        radix_pass_item(src, dst, m, lo, hi - lo, cnt);
        rec_t *t = src;
        src = dst;
        dst = t;
      }
      if (src != r) memcpy(r, src, (size_t)m * sizeof *r);
      /* each item's repeats (in the flag sort's order) into line order: insertion where they
       * are few, qsort where they are many — a click log repeats one pair thousands of times,
       * and insertion over such a run is quadratic (20M synthetic ratings with heavy users
       * repeating pairs: 8.3 s of sorting, nearly all of it here) */
      for (int64_t a = 0, b; a < m; a = b) {
        for (b = a + 1; b < m && r[b].item == r[a].item;) b++;
        if (b - a > 32) qsort(r + a, (size_t)(b - a), sizeof *r, cmp_item_line);
        else insertion_item_line(r + a, b - a);
      }
      continue;
    }
    insertion_item_line(r, m);
  }
done:
  imf_free(&lv);
  imf_free(&cnt);
  imf_free(&run);
  return st;
}

/* The records, sorted and merged, become the batch's struct of arrays inside their own buffer,
 * without a byte of fresh memory (the kernel zeroing fresh pages costs more than these passes):
 * each 32-byte record is packed to 20 bytes at 20j (moving down: record j is read before any
 * write reaches it), user, item and value are unpacked into the free tail [20n, 32n), and the
 * times moved down to [0, 8n) (again never past what is still to be read). */
static imf_status records_to_batch(ingest_ctx *c, imf_ratings *out, int64_t *tmin, int64_t *tmax) {
  int64_t n = c->nrec;
  *tmin = INT64_MAX, *tmax = INT64_MIN;
  for (int64_t j = 0; j < n; j++)
    if (c->rec[j].time != IMF_NO_TIME) {
      if (c->rec[j].time < *tmin) *tmin = c->rec[j].time;
      if (c->rec[j].time > *tmax) *tmax = c->rec[j].time;
    }
  if (n == 0) return imf_ratings_reserve(out, 1); /* (a rank with no users) */
  char *b = (char *)c->rec;
  for (int64_t j = 0; j < n; j++) {
    rec_t x = c->rec[j];
    char *p = b + 20 * j;
    memcpy(p, &x.user, 4);
    memcpy(p + 4, &x.item, 4);
    memcpy(p + 8, &x.value, 4);
    memcpy(p + 12, &x.time, 8);
  }
  int32_t *user = (int32_t *)(void *)(b + 20 * n), *item = user + n;
  float *value = (float *)(void *)(item + n);
  for (int64_t j = 0; j < n; j++) {
    memcpy(&user[j], b + 20 * j, 4);
    memcpy(&item[j], b + 20 * j + 4, 4);
    memcpy(&value[j], b + 20 * j + 8, 4);
  }
  int64_t *time = (int64_t *)(void *)b;
  for (int64_t j = 0; j < n; j++) {
    int64_t t;
    memcpy(&t, b + 20 * j + 12, 8);
    time[j] = t;
  }
  imf_ratings_own(out, c->rec, user, item, value, time, n, n);
  c->rec = NULL; /* the buffer is the batch's now */
  c->nrec = c->caprec = 0;
  return IMF_OK;
}

typedef enum { DUP_LATEST, DUP_FIRST, DUP_MEAN } dup_policy;

/* Merge repeated (user,item) in place; returns the number of merged lines. */
static int64_t merge_duplicates(ingest_ctx *c, dup_policy pol) {
  int64_t w = 0, merged = 0;
  for (int64_t j = 0; j < c->nrec;) {
    int64_t e = j + 1;
    while (e < c->nrec && c->rec[e].user == c->rec[j].user && c->rec[e].item == c->rec[j].item) e++;
    rec_t keep = c->rec[j];
    if (e - j > 1) {
      if (pol == DUP_LATEST) {
        for (int64_t q = j + 1; q < e; q++) /* lines ascend: >= keeps the later line on ties */
          if (c->rec[q].time >= keep.time) keep = c->rec[q];
      } else if (pol == DUP_MEAN) {
        double s = 0;
        int64_t tmax = IMF_NO_TIME;
        for (int64_t q = j; q < e; q++) {
          s += c->rec[q].value;
          if (c->rec[q].time > tmax) tmax = c->rec[q].time;
        }
        keep.value = (float)(s / (double)(e - j));
        keep.time = tmax;
      }
      merged += e - j - 1;
    }
    c->rec[w++] = keep;
    j = e;
  }
  c->nrec = w;
  return merged;
}

static imf_status reject_record(ingest_ctx *c, const rec_t *r, int reason, const imf_idmap *users,
                                const imf_idmap *items) {
  size_t ul, il;
  const char *us = imf_idmap_get(users, r->user, &ul), *is = imf_idmap_get(items, r->item, &il);
  char text[2 * 300 + 64];
  int n = snprintf(text, sizeof text, "%.*s,%.*s,%g", (int)(ul > 300 ? 300 : ul), us,
                   (int)(il > 300 ? 300 : il), is, (double)r->value);
  if (r->time != IMF_NO_TIME && n < (int)sizeof text)
    n += snprintf(text + n, sizeof text - (size_t)n, ",%lld", (long long)r->time);
  if (n >= (int)sizeof text) n = (int)sizeof text - 1;
  return push_reject(c, r->line, reason, text, (size_t)n);
}

/* Cleaning filters; they apply to users and items new in this batch only (an append never
 * drops rows the store already holds). */
static imf_status apply_filters(ingest_ctx *c, const imf_config *cfg, int64_t ubefore, int64_t ibefore,
                                const imf_idmap *users, const imf_idmap *items) {
  int64_t minu = imf_cfg_int(cfg, "clean.min_user_ratings");
  int64_t maxu = imf_cfg_int(cfg, "clean.max_user_ratings");
  int64_t mini = imf_cfg_int(cfg, "clean.min_item_ratings");
  int constant = imf_cfg_bool(cfg, "clean.drop_constant_users");
  int64_t w = 0;
  /* users: all of a user's ratings are on this rank */
  if (minu > 1 || maxu > 0 || constant) {
    for (int64_t j = 0; j < c->nrec;) {
      int64_t e = j + 1;
      while (e < c->nrec && c->rec[e].user == c->rec[j].user) e++;
      int reason = 0;
      if (c->rec[j].user >= ubefore) {
        int64_t n = e - j;
        if (n < minu) reason = IMF_REJ_MIN_COUNT;
        else if (maxu > 0 && n > maxu) reason = IMF_REJ_NOISE;
        else if (constant && n >= 3) {
          int same = 1;
          for (int64_t q = j + 1; q < e && same; q++) same = c->rec[q].value == c->rec[j].value;
          if (same) reason = IMF_REJ_NOISE;
        }
      }
      for (int64_t q = j; q < e; q++) {
        if (reason) IMF_CHECK(reject_record(c, &c->rec[q], reason, users, items));
        else c->rec[w++] = c->rec[q];
      }
      j = e;
    }
    c->nrec = w;
  }
  if (mini > 1) {
    int64_t nnew = imf_idmap_size(items) - ibefore;
    int64_t *cnt = NULL;
    IMF_CHECK(imf_alloc(&cnt, (size_t)nnew + 1, sizeof *cnt));
    for (int64_t j = 0; j < c->nrec; j++)
      if (c->rec[j].item >= ibefore) cnt[c->rec[j].item - ibefore]++;
    if (nnew > 0) IMF_MPI(MPI_Allreduce(MPI_IN_PLACE, cnt, (int)nnew, MPI_INT64_T, MPI_SUM, c->comm));
    w = 0;
    imf_status st = IMF_OK;
    for (int64_t j = 0; j < c->nrec && st == IMF_OK; j++) {
      if (c->rec[j].item >= ibefore && cnt[c->rec[j].item - ibefore] < mini)
        st = reject_record(c, &c->rec[j], IMF_REJ_MIN_COUNT, users, items);
      else c->rec[w++] = c->rec[j];
    }
    c->nrec = w;
    imf_free(&cnt);
    IMF_CHECK(st);
  }
  return IMF_OK;
}

/* Drop new ids that lost all their ratings to the filters and renumber the rest, preserving
 * order, so every index the store hands out has at least one rating. */
static imf_status compact_ids(ingest_ctx *c, imf_idmap *map, int64_t before, int is_user) {
  int64_t nnew = imf_idmap_size(map) - before;
  if (nnew <= 0) return IMF_OK;
  imf_status st = IMF_OK;
  int64_t *cnt = NULL;
  imf_idlist tail = {0};
  IMF_TRY(imf_alloc(&cnt, (size_t)nnew, sizeof *cnt), done);
  for (int64_t j = 0; j < c->nrec; j++) {
    int32_t v = is_user ? c->rec[j].user : c->rec[j].item;
    if (v >= before) cnt[v - before] = 1;
  }
  IMF_MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, cnt, (int)nnew, MPI_INT64_T, MPI_MAX, c->comm), done);
  int64_t kept = 0;
  for (int64_t j = 0; j < nnew; j++) kept += cnt[j] != 0;
  if (kept == nnew) goto done;
  /* new index of each surviving id (cnt reused as the renumbering) */
  IMF_TRY(imf_idmap_tail(map, before, &tail), done);
  imf_idmap_truncate(map, before);
  for (int64_t j = 0; j < nnew; j++) {
    if (!cnt[j]) {
      cnt[j] = -1;
      continue;
    }
    int64_t idx;
    int added;
    IMF_TRY(imf_idmap_insert(map, tail.blob + tail.off[j], (size_t)(tail.off[j + 1] - tail.off[j]), &idx, &added), done);
    cnt[j] = idx;
  }
  for (int64_t j = 0; j < c->nrec; j++) {
    int32_t *v = is_user ? &c->rec[j].user : &c->rec[j].item;
    if (*v >= before) *v = (int32_t)cnt[*v - before];
  }
done:
  imf_idlist_free(&tail);
  imf_free(&cnt);
  return st;
}

/* ---- rejects file ---- */

static int cmp_line(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

static imf_status write_rejects(ingest_ctx *c, const char *rejects_path) {
  /* each rank serialises "line\treason\traw\n"; rank 0 sorts by line and writes with the file */
  imf_status st = IMF_OK;
  char *sbuf = NULL, *rbuf = NULL;
  int *rc = NULL, *rd = NULL;
  size_t bytes = 0;
  for (int64_t j = 0; j < c->nrej; j++) bytes += 48 + strlen(c->rej[j].raw);
  if (bytes > (size_t)INT32_MAX) IMF_TRY(IMF_RAISE(IMF_ERR_RUNTIME, "too many rejected lines to gather"), out);
  IMF_TRY(imf_alloc(&sbuf, bytes + 1, 1), out);
  size_t o = 0;
  for (int64_t j = 0; j < c->nrej; j++)
    o += (size_t)sprintf(sbuf + o, "%lld\t%s\t%s\n", (long long)c->rej[j].line,
                         imf_reject_reason_name(c->rej[j].reason), c->rej[j].raw);
  int mine = (int)o;
  int64_t total = 0;
  if (c->rank == 0) {
    IMF_TRY(imf_alloc(&rc, (size_t)c->size, sizeof *rc), out);
    IMF_TRY(imf_alloc(&rd, (size_t)c->size, sizeof *rd), out);
  }
  IMF_MPI_TRY(MPI_Gather(&mine, 1, MPI_INT, rc, 1, MPI_INT, 0, c->comm), out);
  if (c->rank == 0) {
    for (int r = 0; r < c->size; r++) {
      if (total + rc[r] > INT32_MAX) { st = IMF_RAISE(IMF_ERR_RUNTIME, "rejects exceed 2 GiB"); break; }
      rd[r] = (int)total;
      total += rc[r];
    }
    if (st == IMF_OK) st = imf_alloc(&rbuf, (size_t)total + 1, 1);
  }
  IMF_TRY(imf_agree(c->comm, st), out);
  IMF_MPI_TRY(MPI_Gatherv(sbuf, mine, MPI_CHAR, rbuf, rc, rd, MPI_CHAR, 0, c->comm), out);
  if (c->rank == 0) {
    /* index lines (line numbers are unique), sort, write */
    int64_t n = 0;
    for (int64_t q = 0; q < total; q++) n += rbuf[q] == '\n';
    int64_t *idx = NULL; /* pairs (line, offset) */
    char tmp[4200];
    st = imf_alloc(&idx, (size_t)(2 * n + 2), sizeof *idx);
    FILE *f = NULL;
    if (st == IMF_OK) {
      int64_t k = 0;
      for (int64_t q = 0; q < total;) {
        idx[2 * k] = strtoll(rbuf + q, NULL, 10);
        idx[2 * k + 1] = q;
        char *nl = memchr(rbuf + q, '\n', (size_t)(total - q));
        q = (nl - rbuf) + 1;
        k++;
      }
      qsort(idx, (size_t)n, 2 * sizeof *idx, cmp_line);
      imf_output_tmpname(rejects_path, tmp, sizeof tmp); /* renamed when complete (fsio.h) */
      f = fopen(tmp, "w");
      if (!f) st = imf_output_write_error(rejects_path, errno);
    }
    if (st == IMF_OK) {
      fprintf(f, "# incremf rejects: source\tline\treason\traw text (tabs, newlines, backslashes escaped)\n");
      for (int64_t k = 0; k < n; k++) {
        const char *s = rbuf + idx[2 * k + 1];
        const char *nl = memchr(s, '\n', (size_t)(total - idx[2 * k + 1]));
        fprintf(f, "%s\t%.*s\n", c->path, (int)(nl - s), s);
      }
      int e = ferror(f) ? (errno ? errno : EIO) : 0;
      if (fclose(f) != 0 && !e) e = errno;
      st = e ? imf_output_write_error(rejects_path, e) : imf_output_commit(tmp, rejects_path);
      if (st != IMF_OK) imf_output_discard(tmp, rejects_path);
    }
    imf_free(&idx);
  }
  IMF_TRY(imf_agree(c->comm, st), out);
out:
  imf_free(&sbuf);
  imf_free(&rbuf);
  imf_free(&rc);
  imf_free(&rd);
  return st;
}

/* The first reject of each reason, "line N (reason)", for the error message. */
static void first_rejects(ingest_ctx *c, char *out, size_t cap) {
  int64_t best = INT64_MAX;
  int reason = 0;
  for (int64_t j = 0; j < c->nrej; j++)
    if (c->rej[j].line < best) {
      best = c->rej[j].line;
      reason = c->rej[j].reason;
    }
  int64_t g[2] = {best, reason}, all[2] = {best, reason};
  /* lowest line over ranks: reduce the line, then its reason from its owner */
  MPI_Allreduce(&g[0], &all[0], 1, MPI_INT64_T, MPI_MIN, c->comm);
  int64_t r = best == all[0] ? reason : -1, rr = -1;
  MPI_Allreduce(&r, &rr, 1, MPI_INT64_T, MPI_MAX, c->comm);
  if (all[0] == INT64_MAX) snprintf(out, cap, "none");
  else snprintf(out, cap, "first at line %lld (%s)", (long long)all[0], imf_reject_reason_name((int)rr));
}

static void ctx_free(ingest_ctx *c) {
  imf_free(&c->du.slot);
  imf_free(&c->di.slot);
  imf_free(&c->rec);
  for (int64_t j = 0; j < c->nrej; j++) free(c->rej[j].raw);
  imf_free(&c->rej);
  imf_idmap_destroy(&c->lusers);
  imf_idmap_destroy(&c->litems);
  imf_free(&c->ufirst);
  imf_free(&c->ifirst);
  imf_free(&c->scratch);
}

typedef struct {
  int ok;
  int compression;
  int stream;  /* rank 0 reads it in sequence and scatters: compressed, or not a regular file */
  int64_t size;
  int64_t header_lines, header_bytes;
  imf_parse_opts opts;
  imf_file_id id; /* rank 0's open file: the other ranks' opens must be the same file */
  char sha[65];   /* empty for a stream until it was read to its end */
} sniff_t;

imf_status imf_parse_opts_from_config(const imf_config *cfg, imf_parse_opts *o) {
  memset(o, 0, sizeof *o);
  IMF_CHECK(imf_format_from_name(imf_cfg_str(cfg, "input.format"), &o->format));
  const char *hdr = imf_cfg_str(cfg, "input.header");
  o->header = !strcmp(hdr, "auto") ? -1 : !strcmp(hdr, "yes");
  const char *d = imf_cfg_str(cfg, "input.delimiter");
  /* 'semicolon': a ';' cannot be written as an INI value (config.c, check_value) */
  if (strlen(d) > 1 && strcmp(d, "tab") && strcmp(d, "semicolon"))
    IMF_FAIL(IMF_ERR_USAGE, "input.delimiter must be one character, 'tab' or 'semicolon', got '%s'", d);
  o->delim = !strcmp(d, "tab") ? '\t' : !strcmp(d, "semicolon") ? ';' : d[0];
  o->user_col = (int)imf_cfg_int(cfg, "input.user_col");
  o->item_col = (int)imf_cfg_int(cfg, "input.item_col");
  o->rating_col = (int)imf_cfg_int(cfg, "input.rating_col");
  o->time_col = (int)imf_cfg_int(cfg, "input.time_col");
  if (o->user_col < 1 || o->item_col < 1 || o->user_col == o->item_col)
    IMF_FAIL(IMF_ERR_USAGE, "input.user_col and input.item_col must be distinct columns >= 1");
  o->max_id_len = (size_t)imf_cfg_int(cfg, "input.max_id_length");
  o->max_line_len = (size_t)imf_cfg_int(cfg, "input.max_line_length");
  o->scale_min = imf_cfg_double(cfg, "clean.scale_min");
  o->scale_max = imf_cfg_double(cfg, "clean.scale_max");
  if (!isnan(o->scale_min) && !isnan(o->scale_max) && o->scale_min > o->scale_max)
    IMF_FAIL(IMF_ERR_USAGE, "clean.scale_min (%g) is above clean.scale_max (%g)", o->scale_min, o->scale_max);
  o->clip = !strcmp(imf_cfg_str(cfg, "clean.out_of_range"), "clip");
  return IMF_OK;
}

/* Rank 0 opens the input once and keeps it open (*rdp): the sample is peeked, not read and
 * re-read, so a FIFO or a pipe is consumed exactly once. A regular file is hashed here, from the
 * same descriptor, so that a file already in the store costs the hash and not the whole ingest;
 * a stream is hashed as it is read (imf_reader_stream_sha256 at its end). */
static imf_status sniff(const imf_config *cfg, const char *path, sniff_t *s, imf_reader **rdp) {
  imf_reader *rd = NULL;
  char *sample = NULL;
  imf_status st = IMF_OK;
  memset(s, 0, sizeof *s);
  imf_parse_opts *o = &s->opts;
  IMF_TRY(imf_parse_opts_from_config(cfg, o), done);
  IMF_TRY(imf_reader_open(path, &rd), done);
  s->compression = (int)imf_reader_compression(rd);
  s->stream = s->compression != IMF_COMP_NONE || !imf_reader_seekable(rd);
  s->size = imf_reader_file_size(rd);
  imf_reader_file_id(rd, &s->id);
  IMF_TRY(imf_alloc(&sample, SAMPLE_BYTES + 1, 1), done);
  size_t n = 0;
  IMF_TRY(imf_reader_peek(rd, sample, SAMPLE_BYTES, &n), done);
  IMF_TRY(imf_detect_format(path, sample, n, o), done);
  if (o->header < 0) o->header = 0;
  s->header_lines = o->header_lines;
  IMF_TRY(header_bytes(path, sample, n, s->header_lines, &s->header_bytes), done);
  if (imf_reader_seekable(rd)) IMF_TRY(imf_reader_sha256_prefix(rd, s->size, s->sha), done);
  s->ok = 1;
done:
  if (st == IMF_OK) *rdp = rd;
  else imf_reader_close(&rd);
  imf_free(&sample);
  return st;
}

/* A file the store already holds is refused before it is parsed where it can be hashed first:
 * re-running an append job costs the hash, not the whole ingest. Every rank has the same
 * manifest and sha256. */
static imf_status refuse_known(const imf_store *known, const char *path, const char *sha) {
  int64_t have = known && sha[0] ? imf_store_find_sha256(known, sha) : 0;
  if (have > 0)
    IMF_FAIL(IMF_ERR_INPUT, "%s is already in the store as batch %lld (same sha256 %.16s...); nothing was added", path,
             (long long)have, sha);
  return IMF_OK;
}

/* Test hook (tests/e2e_accidents.sh): another process changes the input after it was sniffed
 * and hashed, while it is read: IMF_FAULT=input_truncated halves it, input_touched only moves
 * its modification time. No timing needed to reproduce a file written while it is read. */
static void fault_change_input(const char *path, int64_t size) {
  const char *f = getenv("IMF_FAULT");
  if (!f) return;
  if (!strcmp(f, "input_truncated") && truncate(path, size / 2) != 0) imf_warn("IMF_FAULT: truncate failed");
  if (!strcmp(f, "input_touched")) {
    struct timespec ts[2] = {{0, UTIME_OMIT}, {1, 0}};
    if (utimensat(AT_FDCWD, path, ts, 0) != 0) imf_warn("IMF_FAULT: utimensat failed");
  }
}

/* After the parse: every rank's file is still what rank 0 opened (size, mtime, inode, device),
 * so the bytes parsed are the bytes hashed; a stream's digest (rank 0's) goes to every rank. */
static imf_status finish_read(MPI_Comm comm, int rank, imf_reader *rd, sniff_t *sn, const imf_store *known,
                              const char *path) {
  imf_status st = IMF_OK;
  if (rd) st = imf_reader_check_unchanged(rd, &sn->id);
  if (st == IMF_OK && rank == 0 && sn->stream && !sn->sha[0]) st = imf_reader_stream_sha256(rd, sn->sha);
  IMF_CHECK(imf_agree(comm, st));
  IMF_MPI(MPI_Bcast(sn->sha, (int)sizeof sn->sha, MPI_CHAR, 0, comm));
  return sn->stream ? refuse_known(known, path, sn->sha) : IMF_OK;
}

imf_status imf_ingest_file(MPI_Comm comm, const imf_config *cfg, const char *path,
                           const char *rejects_path, imf_idmap *users, imf_idmap *items,
                           const imf_store *known, imf_batch *out) {
  ingest_ctx c = {.comm = comm, .path = path};
  imf_status st = IMF_OK;
  imf_reader *rd = NULL;
  int32_t *umap = NULL, *imap = NULL;
  MPI_Comm_rank(comm, &c.rank);
  MPI_Comm_size(comm, &c.size);
  memset(out, 0, sizeof *out);
  int64_t ubefore = imf_idmap_size(users), ibefore = imf_idmap_size(items);
  double t0 = imf_wtime();

  /* 1. rank 0 sniffs: compression, format, header, sha256 (of a regular file) */
  sniff_t sn;
  if (c.rank == 0) st = sniff(cfg, path, &sn, &rd);
  st = imf_agree(comm, st);
  if (st != IMF_OK) {
    imf_reader_close(&rd);
    return st;
  }
  IMF_MPI_TRY(MPI_Bcast(&sn, (int)sizeof sn, MPI_BYTE, 0, comm), done);
  c.opts = sn.opts;
  if (c.rank == 0) fault_change_input(path, sn.size);
  st = refuse_known(known, path, sn.sha);
  if (st != IMF_OK) {
    imf_reader_close(&rd);
    return st;
  }
  imf_info("%s: %s%s, %s, %lld header line%s, %.1f MB on disk", path, imf_format_name(c.opts.format),
           sn.compression ? " (compressed)" : "", c.opts.rating_col ? "explicit ratings" : "implicit (no rating column)",
           (long long)sn.header_lines, sn.header_lines == 1 ? "" : "s", (double)sn.size / 1e6);

  /* 2. parse: byte ranges, or scattered pieces of a compressed stream */
  IMF_TRY(imf_idmap_create(&c.lusers), done);
  IMF_TRY(imf_idmap_create(&c.litems), done);
  IMF_TRY(imf_alloc(&c.scratch, c.opts.max_line_len + 16, 1), done);
  size_t chunk = (size_t)imf_cfg_int(cfg, "input.chunk_mb") << 20;
  if (chunk < c.opts.max_line_len + 2) chunk = c.opts.max_line_len + 2;
  IMF_TRY(imf_agree(comm, imf_mem_guard("input.chunk_mb", 3.0 * (double)chunk)), done); /* guard.h */
  c.line_base = sn.header_lines;
  if (!sn.stream) {
    /* the other ranks open the file by name: it must still be the file rank 0 sniffed */
    if (c.rank != 0) {
      st = imf_reader_open(path, &rd);
      if (st == IMF_OK) st = imf_reader_check_unchanged(rd, &sn.id);
    }
    IMF_TRY(imf_agree(comm, st), done);
    int64_t data = sn.size - sn.header_bytes;
    int64_t lo = sn.header_bytes + data * c.rank / c.size, hi = sn.header_bytes + data * (c.rank + 1) / c.size;
    c.size_hint = (hi - lo) / 20 + 1024; /* rating lines are rarely shorter than 20 bytes */
    st = read_range(&c, rd, lo, hi, chunk);
    IMF_TRY(imf_agree(comm, st), done);
    IMF_TRY(close_piece(&c), done);
  } else {
    IMF_TRY(read_stream(&c, rd, sn.header_lines, chunk), done);
  }
  IMF_TRY(finish_read(comm, c.rank, rd, &sn, known, path), done);
  imf_reader_close(&rd);
  double t_parse = imf_wtime();

  /* 3. number ids in order of first appearance; translate records */
  IMF_TRY(number_ids(&c, c.lusers, c.ufirst, users, &umap), done);
  IMF_TRY(number_ids(&c, c.litems, c.ifirst, items, &imap), done);
  for (int64_t j = 0; j < c.nrec; j++) {
    c.rec[j].user = umap[c.rec[j].user];
    c.rec[j].item = imap[c.rec[j].item];
  }
  imf_free(&umap);
  imf_free(&imap);
  imf_idmap_destroy(&c.lusers);
  imf_idmap_destroy(&c.litems);
  imf_free(&c.du.slot);
  imf_free(&c.di.slot);
  imf_free(&c.ufirst);
  imf_free(&c.ifirst);

  /* 4. move ratings to the rank owning their user; sort; merge; filter */
  int64_t nusers = imf_idmap_size(users);
  double t_number = imf_wtime();
  int64_t *ub = NULL;
  IMF_TRY(imf_agree(comm, imf_alloc(&ub, (size_t)c.size + 1, sizeof *ub)), done);
  st = user_blocks(&c, nusers, ub);
  if (st == IMF_OK) st = redistribute(&c, ub);
  const int64_t ulo = ub[c.rank], uhi = ub[c.rank + 1];
  imf_free(&ub);
  IMF_TRY(imf_agree(comm, st), done);
  double t_redist = imf_wtime();
  st = sort_records(&c, ulo, uhi, imf_idmap_size(items));
  IMF_TRY(imf_agree(comm, st), done);
  const char *dp = imf_cfg_str(cfg, "clean.duplicates");
  dup_policy pol = !strcmp(dp, "first") ? DUP_FIRST : !strcmp(dp, "mean") ? DUP_MEAN : DUP_LATEST;
  double t_sort = imf_wtime();
  int64_t merged = merge_duplicates(&c, pol);
  st = apply_filters(&c, cfg, ubefore, ibefore, users, items);
  IMF_TRY(imf_agree(comm, st), done);
  IMF_TRY(compact_ids(&c, users, ubefore, 1), done);
  IMF_TRY(compact_ids(&c, items, ibefore, 0), done);

  /* 5. counts and the invariant read = header + stored + merged + rejected */
  int64_t loc[4 + IMF_REJ_COUNT_] = {c.lines_total, c.nrec, merged, c.nrej};
  for (int k = 0; k < IMF_REJ_COUNT_; k++) loc[4 + k] = c.rejected_by[k];
  int64_t glob[4 + IMF_REJ_COUNT_];
  IMF_MPI_TRY(MPI_Allreduce(loc, glob, 4 + IMF_REJ_COUNT_, MPI_INT64_T, MPI_SUM, comm), done);
  imf_ingest_report *rep = &out->report;
  int64_t comments = glob[4 + 0]; /* in-data comment lines count as header */
  rep->lines_read = glob[0] + sn.header_lines;
  rep->header = sn.header_lines + comments;
  rep->stored = glob[1];
  rep->merged = glob[2];
  rep->rejected = glob[3];
  for (int k = 1; k < IMF_REJ_COUNT_ && k < IMF_REJECT_REASONS; k++) rep->rejected_by[k] = glob[4 + k];
  rep->new_users = imf_idmap_size(users) - ubefore;
  rep->new_items = imf_idmap_size(items) - ibefore;
  memcpy(rep->sha256, sn.sha, sizeof rep->sha256);
  if (rep->lines_read != rep->header + rep->stored + rep->merged + rep->rejected)
    IMF_TRY(IMF_RAISE(IMF_ERR_RUNTIME, "internal accounting error: %lld lines read != %lld header + %lld stored + %lld merged + %lld rejected",
                      (long long)rep->lines_read, (long long)rep->header, (long long)rep->stored,
                      (long long)rep->merged, (long long)rep->rejected), done);

  if (rejects_path) IMF_TRY(write_rejects(&c, rejects_path), done);
  double maxfrac = imf_cfg_double(cfg, "clean.max_reject_fraction");
  int64_t data_lines = rep->lines_read - rep->header;
  char first[160];
  first_rejects(&c, first, sizeof first);
  if (data_lines > 0 && (double)rep->rejected > maxfrac * (double)data_lines) {
    IMF_TRY(IMF_RAISE(IMF_ERR_INPUT, "%s: %lld of %lld lines rejected (%.1f%% > clean.max_reject_fraction %.1f%%), %s; "
                      "nothing was written%s",
                      path, (long long)rep->rejected, (long long)data_lines,
                      100.0 * (double)rep->rejected / (double)data_lines, 100.0 * maxfrac, first,
                      rejects_path ? " (see the rejects file)" : " (use --rejects FILE to see them)"), done);
  }
  if (rep->stored == 0)
    IMF_TRY(IMF_RAISE(IMF_ERR_INPUT, "%s holds no usable ratings (%lld lines read, rejects: %s)",
                      path, (long long)rep->lines_read, first), done);

  /* 6. the batch: struct of arrays in canonical (user, item) order, in the records' buffer */
  int64_t tmin, tmax;
  st = records_to_batch(&c, &out->r, &tmin, &tmax);
  IMF_TRY(imf_agree(comm, st), done);
  IMF_MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, &tmin, 1, MPI_INT64_T, MPI_MIN, comm), done);
  IMF_MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, &tmax, 1, MPI_INT64_T, MPI_MAX, comm), done);
  out->time_min = tmin == INT64_MAX ? IMF_NO_TIME : tmin;
  out->time_max = tmax == INT64_MIN ? IMF_NO_TIME : tmax;
  out->users_before = ubefore;
  out->items_before = ibefore;
  IMF_TRY(imf_idmap_tail(users, ubefore, &out->new_users), done);
  IMF_TRY(imf_idmap_tail(items, ibefore, &out->new_items), done);
  snprintf(out->source, sizeof out->source, "%s", path);
  imf_info("phases: read+parse %.2f s, number ids %.2f s, redistribute %.2f s, sort %.2f s, merge+clean %.2f s "
           "(%.0f MB/s overall)", t_parse - t0, t_number - t_parse, t_redist - t_number, t_sort - t_redist,
           imf_wtime() - t_sort, (double)sn.size / 1e6 / (imf_wtime() - t0));
done:
  imf_reader_close(&rd);
  imf_free(&umap);
  imf_free(&imap);
  ctx_free(&c);
  if (st != IMF_OK) {
    /* undo: the maps must not keep ids of a batch that was not stored */
    imf_idmap_truncate(users, ubefore);
    imf_idmap_truncate(items, ibefore);
    imf_batch_free(out);
  }
  return st;
}

void imf_ingest_print_report(const imf_ingest_report *r, const char *path) {
  imf_info("%s: %lld lines read = %lld header + %lld stored + %lld merged duplicates + %lld rejected",
           path, (long long)r->lines_read, (long long)r->header, (long long)r->stored, (long long)r->merged,
           (long long)r->rejected);
  for (int k = 1; k < IMF_REJECT_REASONS; k++)
    if (r->rejected_by[k]) imf_info("  rejected %-14s %lld", imf_reject_reason_name(k), (long long)r->rejected_by[k]);
  imf_info("  new users %lld, new items %lld%s", (long long)r->new_users, (long long)r->new_items, "");
}
