/* ingest_read.c - the read and parse of ingest: a rank's byte range of a plain file, or the
 * line-aligned pieces rank 0 scatters from a stream (compressed, a FIFO, a pipe), parsed into
 * records with piece-local line indices, ids interned locally with the line of their first
 * appearance, rejected lines kept with their reason. ingest_close_piece turns the piece-local
 * lines into global line numbers after each piece. Numbering is ingest_ids.c's, the driver
 * ingest.c's; the shared context is ingest_impl.h. */
#include "error.h"
#include "ingest_impl.h"
#include "log.h"
#include "parse.h"

#include <stdlib.h>
#include <string.h>

imf_status ingest_push_reject(ingest_ctx *c, int64_t line, int reason, const char *text, size_t len) {
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
      IMF_CHECK(ingest_push_reject(c, line, (int)why, p, ll));
    }
    p = nl ? nl + 1 : end;
  }
  return flush_pending(c, pend, &np);
}

/* End of a piece: shift this piece's local line indices to global line numbers. */
imf_status ingest_close_piece(ingest_ctx *c) {
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
imf_status ingest_header_bytes(const char *path, const char *s, size_t n, int64_t nlines, int64_t *out) {
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
imf_status ingest_read_range(ingest_ctx *c, imf_reader *rd, int64_t lo, int64_t hi, size_t chunk) {
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
      IMF_TRY(ingest_push_reject(c, c->lines++, IMF_REJ_LINE_TOO_LONG, note, strlen(note)), done);
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
imf_status ingest_read_stream(ingest_ctx *c, imf_reader *rd, int64_t skip_lines, size_t chunk) {
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
            lst = ingest_push_reject(c, c->lines++, IMF_REJ_LINE_TOO_LONG, note, strlen(note));
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
    IMF_TRY(ingest_close_piece(c), done);
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
