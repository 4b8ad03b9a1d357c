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
 * sorts them by that line and numbers them. The result is the same for any rank count.
 *
 * The files: this one sniffs the input, redistributes, sorts, merges, filters, writes the
 * rejects file and drives the steps (imf_ingest_file); ingest_read.c reads and parses,
 * ingest_ids.c numbers and compacts ids; ingest_impl.h is what they share. */
#include "ingest.h"
#include "ingest_impl.h"
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
  return ingest_push_reject(c, r->line, reason, text, (size_t)n);
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
  /* auto columns hold their positional default until a header names them (imf_detect_format) */
  static const char *const keys[4] = {"input.user_col", "input.item_col", "input.rating_col", "input.time_col"};
  int *cols[4] = {&o->user_col, &o->item_col, &o->rating_col, &o->time_col};
  for (int k = 0; k < 4; k++) {
    if (!strcmp(imf_cfg_str(cfg, keys[k]), "auto")) {
      *cols[k] = k + 1;
      o->col_auto |= 1u << k;
    } else {
      *cols[k] = (int)imf_cfg_int(cfg, keys[k]);
    }
  }
  if ((!(o->col_auto & IMF_COL_USER) && o->user_col < 1) || (!(o->col_auto & IMF_COL_ITEM) && o->item_col < 1) ||
      (!(o->col_auto & (IMF_COL_USER | IMF_COL_ITEM)) && o->user_col == o->item_col))
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
  if (o->cols_named) {
    char cols[1024];
    imf_header_describe(o, sample, n, cols, sizeof cols);
    imf_info("%s: columns by header name: %s", path, cols);
  }
  s->header_lines = o->header_lines;
  IMF_TRY(ingest_header_bytes(path, sample, n, s->header_lines, &s->header_bytes), done);
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

/* Step 1: rank 0 sniffs compression, format, header and the sha256 (of a regular file); every
 * rank gets the result, and a file the store already holds is refused. *rd: rank 0's open
 * input (closed here on failure). */
static imf_status open_input(ingest_ctx *c, const imf_config *cfg, const imf_store *known, sniff_t *sn,
                             imf_reader **rd) {
  MPI_Comm comm = c->comm;
  const char *path = c->path;
  imf_status st = IMF_OK;
  if (c->rank == 0) st = sniff(cfg, path, sn, rd);
  IMF_TRY(imf_agree(comm, st), fail);
  IMF_MPI_TRY(MPI_Bcast(sn, (int)sizeof *sn, MPI_BYTE, 0, comm), fail);
  c->opts = sn->opts;
  if (c->rank == 0) fault_change_input(path, sn->size);
  IMF_TRY(refuse_known(known, path, sn->sha), fail);
  imf_info("%s: %s%s, %s, %lld header line%s, %.1f MB on disk", path, imf_format_name(c->opts.format),
           sn->compression ? " (compressed)" : "", c->opts.rating_col ? "explicit ratings" : "implicit (no rating column)",
           (long long)sn->header_lines, sn->header_lines == 1 ? "" : "s", (double)sn->size / 1e6);
  return IMF_OK;
fail:
  imf_reader_close(rd);
  return st;
}

/* Step 2: parse byte ranges of a plain file, or scattered pieces of a stream; then check the
 * file did not change while it was read. *rd is closed at the end. */
static imf_status parse_input(ingest_ctx *c, const imf_config *cfg, sniff_t *sn, const imf_store *known,
                              imf_reader **rd) {
  MPI_Comm comm = c->comm;
  const char *path = c->path;
  imf_status st = IMF_OK;
  IMF_CHECK(imf_idmap_create(&c->lusers));
  IMF_CHECK(imf_idmap_create(&c->litems));
  IMF_CHECK(imf_alloc(&c->scratch, c->opts.max_line_len + 16, 1));
  size_t chunk = (size_t)imf_cfg_int(cfg, "input.chunk_mb") << 20;
  if (chunk < c->opts.max_line_len + 2) chunk = c->opts.max_line_len + 2;
  IMF_CHECK(imf_agree(comm, imf_mem_guard("input.chunk_mb", 3.0 * (double)chunk))); /* guard.h */
  c->line_base = sn->header_lines;
  if (!sn->stream) {
    /* the other ranks open the file by name: it must still be the file rank 0 sniffed */
    if (c->rank != 0) {
      st = imf_reader_open(path, rd);
      if (st == IMF_OK) st = imf_reader_check_unchanged(*rd, &sn->id);
    }
    IMF_CHECK(imf_agree(comm, st));
    int64_t data = sn->size - sn->header_bytes;
    int64_t lo = sn->header_bytes + data * c->rank / c->size, hi = sn->header_bytes + data * (c->rank + 1) / c->size;
    c->size_hint = (hi - lo) / 20 + 1024; /* rating lines are rarely shorter than 20 bytes */
    st = ingest_read_range(c, *rd, lo, hi, chunk);
    IMF_CHECK(imf_agree(comm, st));
    IMF_CHECK(ingest_close_piece(c));
  } else {
    IMF_CHECK(ingest_read_stream(c, *rd, sn->header_lines, chunk));
  }
  IMF_CHECK(finish_read(comm, c->rank, *rd, sn, known, path));
  imf_reader_close(rd);
  return IMF_OK;
}

/* Step 4: move ratings to the rank owning their user; sort; merge duplicates; filter; compact
 * the ids the filters emptied. t[0..2]: when numbering, redistribution and the sort ended. */
static imf_status arrange_records(ingest_ctx *c, const imf_config *cfg, imf_idmap *users, imf_idmap *items,
                                  int64_t ubefore, int64_t ibefore, double t[3], int64_t *merged) {
  MPI_Comm comm = c->comm;
  imf_status st = IMF_OK;
  int64_t nusers = imf_idmap_size(users);
  t[0] = imf_wtime();
  int64_t *ub = NULL;
  IMF_CHECK(imf_agree(comm, imf_alloc(&ub, (size_t)c->size + 1, sizeof *ub)));
  st = user_blocks(c, nusers, ub);
  if (st == IMF_OK) st = redistribute(c, ub);
  const int64_t ulo = ub[c->rank], uhi = ub[c->rank + 1];
  imf_free(&ub);
  IMF_CHECK(imf_agree(comm, st));
  t[1] = imf_wtime();
  st = sort_records(c, ulo, uhi, imf_idmap_size(items));
  IMF_CHECK(imf_agree(comm, st));
  const char *dp = imf_cfg_str(cfg, "clean.duplicates");
  dup_policy pol = !strcmp(dp, "first") ? DUP_FIRST : !strcmp(dp, "mean") ? DUP_MEAN : DUP_LATEST;
  t[2] = imf_wtime();
  *merged = merge_duplicates(c, pol);
  st = apply_filters(c, cfg, ubefore, ibefore, users, items);
  IMF_CHECK(imf_agree(comm, st));
  IMF_CHECK(ingest_compact_ids(c, users, ubefore, 1));
  IMF_CHECK(ingest_compact_ids(c, items, ibefore, 0));
  return IMF_OK;
}

/* Step 5: the counts over all ranks and the invariant read = header + stored + merged +
 * rejected. */
static imf_status count_lines(ingest_ctx *c, const sniff_t *sn, int64_t merged, const imf_idmap *users,
                              const imf_idmap *items, int64_t ubefore, int64_t ibefore, imf_ingest_report *rep) {
  MPI_Comm comm = c->comm;
  int64_t loc[4 + IMF_REJ_COUNT_] = {c->lines_total, c->nrec, merged, c->nrej};
  for (int k = 0; k < IMF_REJ_COUNT_; k++) loc[4 + k] = c->rejected_by[k];
  int64_t glob[4 + IMF_REJ_COUNT_];
  IMF_MPI(MPI_Allreduce(loc, glob, 4 + IMF_REJ_COUNT_, MPI_INT64_T, MPI_SUM, comm));
  int64_t comments = glob[4 + 0]; /* in-data comment lines count as header */
  rep->lines_read = glob[0] + sn->header_lines;
  rep->header = sn->header_lines + comments;
  rep->stored = glob[1];
  rep->merged = glob[2];
  rep->rejected = glob[3];
  for (int k = 1; k < IMF_REJ_COUNT_ && k < IMF_REJECT_REASONS; k++) rep->rejected_by[k] = glob[4 + k];
  rep->new_users = imf_idmap_size(users) - ubefore;
  rep->new_items = imf_idmap_size(items) - ibefore;
  memcpy(rep->sha256, sn->sha, sizeof rep->sha256);
  if (rep->lines_read != rep->header + rep->stored + rep->merged + rep->rejected)
    IMF_FAIL(IMF_ERR_RUNTIME, "internal accounting error: %lld lines read != %lld header + %lld stored + %lld merged + %lld rejected",
             (long long)rep->lines_read, (long long)rep->header, (long long)rep->stored,
             (long long)rep->merged, (long long)rep->rejected);
  return IMF_OK;
}

/* Step 5, continued: the rejects file, and the refusals: too many rejects, or nothing left. */
static imf_status check_rejects(ingest_ctx *c, const imf_config *cfg, const char *rejects_path,
                                const imf_ingest_report *rep) {
  const char *path = c->path;
  if (rejects_path) IMF_CHECK(write_rejects(c, rejects_path));
  double maxfrac = imf_cfg_double(cfg, "clean.max_reject_fraction");
  int64_t data_lines = rep->lines_read - rep->header;
  char first[160];
  first_rejects(c, first, sizeof first);
  if (data_lines > 0 && (double)rep->rejected > maxfrac * (double)data_lines) {
    IMF_FAIL(IMF_ERR_INPUT, "%s: %lld of %lld lines rejected (%.1f%% > clean.max_reject_fraction %.1f%%), %s; "
             "nothing was written%s",
             path, (long long)rep->rejected, (long long)data_lines,
             100.0 * (double)rep->rejected / (double)data_lines, 100.0 * maxfrac, first,
             rejects_path ? " (see the rejects file)" : " (use --rejects FILE to see them)");
  }
  if (rep->stored == 0)
    IMF_FAIL(IMF_ERR_INPUT, "%s holds no usable ratings (%lld lines read, rejects: %s)",
             path, (long long)rep->lines_read, first);
  return IMF_OK;
}

/* Step 6: the batch: struct of arrays in canonical (user, item) order, in the records' buffer,
 * with its time range and the new ids. */
static imf_status make_batch(ingest_ctx *c, const imf_idmap *users, const imf_idmap *items, int64_t ubefore,
                             int64_t ibefore, imf_batch *out) {
  MPI_Comm comm = c->comm;
  int64_t tmin, tmax;
  imf_status st = records_to_batch(c, &out->r, &tmin, &tmax);
  IMF_CHECK(imf_agree(comm, st));
  IMF_MPI(MPI_Allreduce(MPI_IN_PLACE, &tmin, 1, MPI_INT64_T, MPI_MIN, comm));
  IMF_MPI(MPI_Allreduce(MPI_IN_PLACE, &tmax, 1, MPI_INT64_T, MPI_MAX, comm));
  out->time_min = tmin == INT64_MAX ? IMF_NO_TIME : tmin;
  out->time_max = tmax == INT64_MIN ? IMF_NO_TIME : tmax;
  out->users_before = ubefore;
  out->items_before = ibefore;
  IMF_CHECK(imf_idmap_tail(users, ubefore, &out->new_users));
  IMF_CHECK(imf_idmap_tail(items, ibefore, &out->new_items));
  snprintf(out->source, sizeof out->source, "%s", c->path);
  return IMF_OK;
}

imf_status imf_ingest_file(MPI_Comm comm, const imf_config *cfg, const char *path,
                           const char *rejects_path, imf_idmap *users, imf_idmap *items,
                           const imf_store *known, imf_batch *out) {
  ingest_ctx c = {.comm = comm, .path = path};
  imf_status st = IMF_OK;
  imf_reader *rd = NULL;
  MPI_Comm_rank(comm, &c.rank);
  MPI_Comm_size(comm, &c.size);
  memset(out, 0, sizeof *out);
  int64_t ubefore = imf_idmap_size(users), ibefore = imf_idmap_size(items);
  double t0 = imf_wtime(), t[3];
  int64_t merged = 0;
  sniff_t sn;
  st = open_input(&c, cfg, known, &sn, &rd);
  if (st != IMF_OK) return st; /* nothing to undo yet */
  IMF_TRY(parse_input(&c, cfg, &sn, known, &rd), done);
  double t_parse = imf_wtime();
  IMF_TRY(ingest_number(&c, users, items), done); /* 3. ids in order of first appearance */
  IMF_TRY(arrange_records(&c, cfg, users, items, ubefore, ibefore, t, &merged), done);
  IMF_TRY(count_lines(&c, &sn, merged, users, items, ubefore, ibefore, &out->report), done);
  IMF_TRY(check_rejects(&c, cfg, rejects_path, &out->report), done);
  IMF_TRY(make_batch(&c, users, items, ubefore, ibefore, out), done);
  imf_info("phases: read+parse %.2f s, number ids %.2f s, redistribute %.2f s, sort %.2f s, merge+clean %.2f s "
           "(%.0f MB/s overall)", t_parse - t0, t[0] - t_parse, t[1] - t[0], t[2] - t[1],
           imf_wtime() - t[2], (double)sn.size / 1e6 / (imf_wtime() - t0));
done:
  imf_reader_close(&rd);
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
