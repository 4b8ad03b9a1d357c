/* store_write.c - writing one batch (imf_store_write_batch): the checks of the ranks' parts,
 * the per-user and per-item indexes, the copy of the standing holdout's rows, the batch's content
 * digest, the space check, the batch file written collectively under a .tmp name, made durable
 * and renamed (the IMF_FAULT crash point store-before-manifest sits here), then the manifest
 * replace that commits it, and the removal of stray files left by writes that crashed. Private
 * helpers: store_impl.h. */
#include "store_impl.h"
#include "error.h"
#include "fsio.h"
#include "log.h"
#include "exchange.h"
#include "partition.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Two independent 64-bit lanes per rating; sums over ratings are order independent, so the
 * digest does not depend on how the batch is split across ranks. */
static inline uint64_t mix_a(uint64_t z) { /* splitmix64 finaliser */
  z ^= z >> 30;
  z *= 0xbf58476d1ce4e5b9ULL;
  z ^= z >> 27;
  z *= 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
static inline uint64_t mix_b(uint64_t z) { /* murmur3 fmix64 */
  z ^= z >> 33;
  z *= 0xff51afd7ed558ccdULL;
  z ^= z >> 33;
  z *= 0xc4ceb9fe1a85ec53ULL;
  return z ^ (z >> 33);
}
static void rating_lanes(uint64_t j, int32_t u, int32_t i, float v, int64_t t, uint64_t *la,
                         uint64_t *lb) {
  uint32_t vb;
  memcpy(&vb, &v, sizeof vb);
  uint64_t x[4] = {j, ((uint64_t)(uint32_t)u << 32) | (uint32_t)i, vb, (uint64_t)t};
  uint64_t a = 0x243f6a8885a308d3ULL, b = 0x13198a2e03707344ULL;
  for (int k = 0; k < 4; k++) {
    a = mix_a(a ^ x[k]);
    b = mix_b(b + x[k] * 0x9e3779b97f4a7c15ULL + (uint64_t)k);
  }
  *la = a;
  *lb = b;
}

static void digest_idlist(EVP_MD_CTX *c, const imf_idlist *l) {
  store_sha_put_u64(c, (uint64_t)l->n);
  for (int64_t j = 0; j <= l->n; j++) store_sha_put_u64(c, l->off ? (uint64_t)l->off[j] : 0);
  if (l->n > 0) store_sha_put(c, l->blob, (size_t)l->off[l->n]);
}

static imf_status batch_digest(MPI_Comm comm, const imf_batch *b, int64_t row0, int64_t total,
                               char hex[65]) {
  uint64_t lanes[2] = {0, 0}, sums[2];
  const imf_ratings *r = &b->r;
  for (int64_t j = 0; j < r->n; j++) {
    uint64_t la, lb;
    rating_lanes((uint64_t)(row0 + j), r->user[j], r->item[j], r->value[j], r->time[j], &la, &lb);
    lanes[0] += la;
    lanes[1] += lb;
  }
  IMF_MPI(MPI_Allreduce(lanes, sums, 2, MPI_UINT64_T, MPI_SUM, comm));
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  if (!c) IMF_FAIL(IMF_ERR_NOMEM, "out of memory (digest)");
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  EVP_DigestInit_ex(c, EVP_sha256(), NULL);
  store_sha_put(c, "incremf-batch-digest-1", 22);
  store_sha_put_u64(c, sums[0]);
  store_sha_put_u64(c, sums[1]);
  store_sha_put_u64(c, (uint64_t)total);
  digest_idlist(c, &b->new_users);
  digest_idlist(c, &b->new_items);
  store_sha_put(c, b->report.sha256, strnlen(b->report.sha256, 64));
  EVP_DigestFinal_ex(c, d, &n);
  EVP_MD_CTX_free(c);
  store_hexify(d, n, hex);
  return IMF_OK;
}

/* Local checks of this rank's part: sorted by (user,item), unique, indices in range. */
static imf_status check_batch(const imf_store *s, const imf_batch *b) {
  const imf_ratings *r = &b->r;
  if (s->mode != IMF_STORE_WRITE)
    IMF_FAIL(IMF_ERR_RUNTIME, "%s: store opened read-only cannot take a batch", s->dir);
  if (b->users_before != s->m.users || b->items_before != s->m.items)
    IMF_FAIL(IMF_ERR_RUNTIME,
             "%s: batch built against %lld users / %lld items, store has %lld / %lld (stale id map)",
             s->dir, (long long)b->users_before, (long long)b->items_before, (long long)s->m.users,
             (long long)s->m.items);
  int64_t nu = b->users_before + b->new_users.n, ni = b->items_before + b->new_items.n;
  if (nu > INT32_MAX || ni > INT32_MAX)
    IMF_FAIL(IMF_ERR_INPUT, "%s: more than %d users or items (documented limit)", s->dir, INT32_MAX);
  for (int64_t j = 0; j < r->n; j++) {
    if (r->user[j] < 0 || r->user[j] >= nu || r->item[j] < 0 || r->item[j] >= ni)
      IMF_FAIL(IMF_ERR_RUNTIME, "%s: batch rating %lld has an index out of range (%d, %d)", s->dir,
               (long long)j, r->user[j], r->item[j]);
    if (j > 0 && (r->user[j] < r->user[j - 1] ||
                  (r->user[j] == r->user[j - 1] && r->item[j] <= r->item[j - 1])))
      IMF_FAIL(IMF_ERR_RUNTIME, "%s: batch ratings are not sorted by (user,item) without repeats "
               "(at local row %lld)", s->dir, (long long)j);
  }
  return IMF_OK;
}

/* (rank 0) Remove *.tmp leftovers and batch files the manifest does not name: debris of writes
 * that crashed before their commit. */
static void remove_strays(const imf_store *s) {
  DIR *d = opendir(s->dir);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    const char *n = e->d_name;
    size_t l = strlen(n);
    long long k = 0;
    char tail[8] = "";
    int stray = 0;
    if (l > 4 && strcmp(n + l - 4, ".tmp") == 0) stray = 1;
    else if (sscanf(n, "batch-%lld.h%7s", &k, tail) == 2 && strcmp(tail, "5") == 0 &&
             (k < 1 || k > s->m.nbatches || strcmp(s->m.b[k - 1].file, n) != 0))
      stray = 1;
    if (stray) {
      char p[4400];
      snprintf(p, sizeof p, "%s/%s", s->dir, n);
      if (unlink(p) == 0) imf_info("removed %s (left over by an interrupted write)", p);
    }
  }
  closedir(d);
}

/* The per-item index of a batch (docs/FORMAT.md, /index/item*): every row position (global,
 * 0-based) is sent to the owner of its item's block (items split evenly over the ranks), which
 * sorts them by item with a stable counting sort (arrival order is position order: ranks are
 * received in rank order and each sends its rows in order). Out: this rank's distinct items
 * (ascending), their row offsets into /index/item_pos (global; the last rank also gets the
 * closing offset at iptr[*ndi]) and its share of /index/item_pos; the global offsets of both
 * shares and the global count of distinct items. Collective. */
typedef struct {
  int32_t *item;
  int64_t *ptr, *pos; /* pos: int32_t elements when narrow */
  int64_t ndi, npos, di_off, pos_off, di_total;
  int narrow;
} item_index;

static void item_index_free(item_index *x) {
  imf_free(&x->item);
  imf_free(&x->ptr);
  imf_free(&x->pos);
}

/* What travels for one row: its item and its index on the sending rank (the receiver adds the
 * sender's first row). 8 bytes instead of an (item, global row) pair of int64s: on 10M
 * ratings the pairs, sent and received, were 320 MB of fresh pages, the largest allocation of
 * `prepare` (peak memory 3.6x the batch's arrays). One rank sends nothing: its rows are sorted
 * where they lie. */
typedef struct {
  int32_t item, j;
} item_row;

/* The rows sent to the owners of their items' blocks (more than one rank): *rbuf[0..*nr) the
 * rows this rank received, rc/rd the counts and displacements per sender, row0s every rank's
 * first row. Collective. */
typedef struct {
  item_row *rbuf;
  int64_t *rc, *rd, *row0s, nr;
} item_rows_recv;

static void item_rows_recv_free(item_rows_recv *v) {
  imf_free(&v->rbuf);
  imf_free(&v->rc);
  imf_free(&v->rd);
  imf_free(&v->row0s);
}

static imf_status item_rows_exchange(imf_store *s, const imf_ratings *r, int64_t row0, int64_t nitems,
                                     item_rows_recv *v) {
  const int P = s->size;
  int64_t *sc = NULL, *sd = NULL, *fill = NULL, *bounds = NULL;
  item_row *sbuf = NULL;
  MPI_Datatype pt = MPI_DATATYPE_NULL;
  imf_status st = imf_alloc(&bounds, (size_t)P + 1, sizeof *bounds);
  /* items split evenly; each row's owner is a search of these bounds (imf_block_owner): a
   * division per row, twice, was a visible part of the index build */
  if (st == IMF_OK)
    for (int q = 0; q <= P; q++) bounds[q] = nitems * q / P;
  if (st == IMF_OK) st = imf_alloc(&sc, (size_t)P, sizeof *sc);
  if (st == IMF_OK) st = imf_alloc(&sd, (size_t)P, sizeof *sd);
  if (st == IMF_OK) st = imf_alloc(&v->rc, (size_t)P, sizeof *v->rc);
  if (st == IMF_OK) st = imf_alloc(&v->rd, (size_t)P, sizeof *v->rd);
  if (st == IMF_OK) st = imf_alloc(&fill, (size_t)P, sizeof *fill);
  if (st == IMF_OK) st = imf_alloc(&v->row0s, (size_t)P, sizeof *v->row0s);
  if (st == IMF_OK) st = imf_alloc_nz(&sbuf, (size_t)r->n + 1, sizeof *sbuf);
  IMF_TRY(imf_agree(s->comm, st), out);
  for (int64_t j = 0; j < r->n; j++) sc[imf_block_owner(bounds, P, r->item[j])]++;
  for (int q = 1; q < P; q++) sd[q] = sd[q - 1] + sc[q - 1];
  memcpy(fill, sd, (size_t)P * sizeof *fill);
  for (int64_t j = 0; j < r->n; j++)
    sbuf[fill[imf_block_owner(bounds, P, r->item[j])]++] = (item_row){r->item[j], (int32_t)j};
  if (MPI_Alltoall(sc, 1, MPI_INT64_T, v->rc, 1, MPI_INT64_T, s->comm) != MPI_SUCCESS ||
      MPI_Allgather(&row0, 1, MPI_INT64_T, v->row0s, 1, MPI_INT64_T, s->comm) != MPI_SUCCESS)
    st = IMF_RAISE(IMF_ERR_RUNTIME, "MPI_Alltoall/MPI_Allgather failed (item index)");
  IMF_TRY(imf_agree(s->comm, st), out);
  v->nr = 0;
  for (int q = 0; q < P; q++) {
    v->rd[q] = v->nr;
    v->nr += v->rc[q];
  }
  st = imf_alloc_nz(&v->rbuf, (size_t)v->nr + 1, sizeof *v->rbuf);
  if (st == IMF_OK && MPI_Type_contiguous(2, MPI_INT32_T, &pt) != MPI_SUCCESS)
    st = IMF_RAISE(IMF_ERR_RUNTIME, "MPI_Type_contiguous failed");
  if (st == IMF_OK) MPI_Type_commit(&pt);
  IMF_TRY(imf_agree(s->comm, st), out);
  IMF_TRY(imf_alltoallv64(s->comm, sbuf, sc, sd, v->rbuf, v->rc, v->rd, pt), out);
out:
  if (pt != MPI_DATATYPE_NULL) MPI_Type_free(&pt);
  imf_free(&sc);
  imf_free(&sd);
  imf_free(&fill);
  imf_free(&bounds);
  imf_free(&sbuf);
  return st;
}

/* The distinct items of this rank's block [lo, lo + w) and their row offsets into
 * /index/item_pos (global), from cnt (after the scatter cnt[q] is the end of item lo+q; its
 * start is the previous end). Collective: the offsets of both shares and the global count. */
static imf_status item_index_offsets(imf_store *s, const int64_t *cnt, int64_t lo, int64_t w, item_index *x) {
  IMF_MPI(MPI_Exscan(&x->npos, &x->pos_off, 1, MPI_INT64_T, MPI_SUM, s->comm));
  IMF_MPI(MPI_Exscan(&x->ndi, &x->di_off, 1, MPI_INT64_T, MPI_SUM, s->comm));
  if (s->rank == 0) x->pos_off = x->di_off = 0;
  IMF_MPI(MPI_Allreduce(&x->ndi, &x->di_total, 1, MPI_INT64_T, MPI_SUM, s->comm));
  imf_status st = imf_alloc(&x->item, (size_t)x->ndi + 1, sizeof *x->item);
  if (st == IMF_OK) st = imf_alloc(&x->ptr, (size_t)x->ndi + 2, sizeof *x->ptr);
  if (st == IMF_OK) {
    int64_t q2 = 0, prev = 0;
    for (int64_t q = 0; q < w; q++) {
      if (cnt[q] > prev) {
        x->item[q2] = (int32_t)(lo + q);
        x->ptr[q2++] = x->pos_off + prev;
      }
      prev = cnt[q];
    }
    x->ptr[q2] = x->pos_off + x->npos; /* the closing offset (written by the last rank only) */
  }
  return imf_agree(s->comm, st);
}

static imf_status item_index_build(imf_store *s, const imf_ratings *r, int64_t row0, int64_t nitems, int narrow,
                                   item_index *x) {
  memset(x, 0, sizeof *x);
  x->narrow = narrow;
  const int P = s->size;
  imf_status st = IMF_OK;
  int64_t *cnt = NULL;
  item_rows_recv v;
  memset(&v, 0, sizeof v);
  const int64_t lo = nitems * s->rank / P, hi = nitems * (s->rank + 1) / P;
  int64_t nr = r->n;
  if (r->n > INT32_MAX) /* (ingest refuses more than 2^31 ratings on one rank before this) */
    st = IMF_RAISE(IMF_ERR_INPUT, "%s: more than 2^31 ratings on one rank; use more ranks", s->dir);
  IMF_TRY(imf_agree(s->comm, st), out);
  if (P > 1) {
    IMF_TRY(item_rows_exchange(s, r, row0, nitems, &v), out);
    nr = v.nr;
  }
  /* Stable counting sort by item over [lo, hi): arrival order is row order (senders in rank
   * order, each in row order), so each item's rows come out ascending. */
  const item_row *rbuf = v.rbuf;
  const int64_t w = hi - lo;
  st = imf_alloc(&cnt, (size_t)w + 1, sizeof *cnt);
  if (st == IMF_OK) st = imf_alloc_nz(&x->pos, (size_t)nr + 1, narrow ? sizeof(int32_t) : sizeof(int64_t));
  int32_t *pos32 = (int32_t *)(void *)x->pos;
#define PUT_POS(at, val) (narrow ? (void)(pos32[at] = (int32_t)(val)) : (void)(x->pos[at] = (val)))
#define ROW_ITEM(j) (P > 1 ? (int64_t)rbuf[j].item : (int64_t)r->item[j])
  for (int64_t j = 0; st == IMF_OK && j < nr; j++) {
    int64_t i = ROW_ITEM(j);
    if (i < lo || i >= hi) st = IMF_RAISE(IMF_ERR_RUNTIME, "item index: item %lld sent to the wrong rank", (long long)i);
    else cnt[i - lo + 1]++;
  }
  IMF_TRY(imf_agree(s->comm, st), out);
  for (int64_t q = 0; q < w; q++) {
    if (cnt[q + 1]) x->ndi++;
    cnt[q + 1] += cnt[q];
  }
  if (P > 1) {
    for (int q = 0; q < P; q++)
      for (int64_t j = v.rd[q]; j < v.rd[q] + v.rc[q]; j++) PUT_POS(cnt[rbuf[j].item - lo]++, v.row0s[q] + rbuf[j].j);
  } else {
    for (int64_t j = 0; j < nr; j++) PUT_POS(cnt[r->item[j] - lo]++, row0 + j);
  }
#undef ROW_ITEM
#undef PUT_POS
  x->npos = nr;
  st = item_index_offsets(s, cnt, lo, w, x);
out:
  item_rows_recv_free(&v);
  imf_free(&cnt);
  if (st != IMF_OK) item_index_free(x);
  return st;
}


/* Rank r's users must precede rank r+1's: that is what makes the file canonical. Out: this
 * rank's first row in the batch and the batch's row count. Collective. */
static imf_status rows_in_rank_order(imf_store *s, const imf_ratings *r, int64_t *row0, int64_t *total) {
  int64_t mine[3] = {r->n, r->n ? r->user[0] : 0, r->n ? r->user[r->n - 1] : 0};
  int64_t *all = NULL;
  IMF_CHECK(imf_alloc(&all, (size_t)s->size * 3, sizeof *all));
  if (MPI_Allgather(mine, 3, MPI_INT64_T, all, 3, MPI_INT64_T, s->comm) != MPI_SUCCESS) {
    imf_free(&all);
    IMF_FAIL(IMF_ERR_RUNTIME, "MPI_Allgather failed");
  }
  int64_t last = -1;
  int ordered = 1;
  *total = *row0 = 0;
  for (int p = 0; p < s->size; p++) {
    if (p == s->rank) *row0 = *total;
    *total += all[3 * p];
    if (all[3 * p] == 0) continue;
    if (all[3 * p + 1] <= last) ordered = 0;
    last = all[3 * p + 2];
  }
  imf_free(&all);
  if (!ordered) IMF_FAIL(IMF_ERR_RUNTIME, "%s: batch rows are not partitioned by user in rank order", s->dir);
  return IMF_OK;
}

/* The per-user index (docs/FORMAT.md, /index/user*): this rank's distinct users, their first
 * rows (global; the last rank also holds the closing offset at ptr[n]), the global offset of
 * this rank's share and the global count. Collective. */
typedef struct {
  int32_t *user;
  int64_t *ptr;
  int64_t n, off, total;
} user_index;

static void user_index_free(user_index *x) {
  imf_free(&x->user);
  imf_free(&x->ptr);
}

static imf_status user_index_build(imf_store *s, const imf_ratings *r, int64_t row0, int64_t total, user_index *x) {
  memset(x, 0, sizeof *x);
  for (int64_t j = 0; j < r->n; j++)
    if (j == 0 || r->user[j] != r->user[j - 1]) x->n++;
  IMF_MPI(MPI_Exscan(&x->n, &x->off, 1, MPI_INT64_T, MPI_SUM, s->comm));
  if (s->rank == 0) x->off = 0;
  IMF_MPI(MPI_Allreduce(&x->n, &x->total, 1, MPI_INT64_T, MPI_SUM, s->comm));
  imf_status st = imf_alloc(&x->user, (size_t)x->n + 1, sizeof *x->user);
  if (st == IMF_OK) st = imf_alloc(&x->ptr, (size_t)x->n + 2, sizeof *x->ptr);
  if (st == IMF_OK) {
    int64_t q = 0;
    for (int64_t j = 0; j < r->n; j++)
      if (j == 0 || r->user[j] != r->user[j - 1]) {
        x->user[q] = r->user[j];
        x->ptr[q++] = row0 + j;
      }
    if (s->rank == s->size - 1) x->ptr[q] = total; /* the closing offset */
  }
  st = imf_agree(s->comm, st);
  if (st != IMF_OK) user_index_free(x);
  return st;
}

/* The batch's time range into b->time_min/max (IMF_NO_TIME: none). *narrow: timestamps are
 * stored in 4 bytes when every row has one that fits (Unix seconds do until 2038): like the
 * positions, readers ask for int64 and get them widened. Collective. */
static imf_status batch_time_range(MPI_Comm comm, imf_batch *b, int64_t total, int *narrow) {
  const imf_ratings *r = &b->r;
  int64_t tl[3] = {INT64_MAX, INT64_MAX, 0}, tg[3]; /* min time, -(max time), -(any missing) */
  for (int64_t j = 0; j < r->n; j++)
    if (r->time[j] != IMF_NO_TIME) {
      if (r->time[j] < tl[0]) tl[0] = r->time[j];
      if (-r->time[j] < tl[1]) tl[1] = -r->time[j];
    } else tl[2] = -1;
  if (MPI_Allreduce(tl, tg, 3, MPI_INT64_T, MPI_MIN, comm) != MPI_SUCCESS)
    IMF_FAIL(IMF_ERR_RUNTIME, "MPI_Allreduce failed (time range)");
  b->time_min = tg[0] == INT64_MAX ? IMF_NO_TIME : tg[0];
  b->time_max = tg[1] == INT64_MAX ? IMF_NO_TIME : -tg[1];
  *narrow = tg[2] == 0 && (total == 0 || (b->time_min >= INT32_MIN && b->time_max <= INT32_MAX));
  return IMF_OK;
}

/* The manifest entry of batch k. */
static void batch_meta_fill(batch_meta *bm, int64_t k, const imf_batch *b, const char *digest, int64_t superseded,
                            int64_t total, const imf_scale *vscale) {
  memset(bm, 0, sizeof *bm);
  bm->number = k;
  snprintf(bm->file, sizeof bm->file, "batch-%06lld.h5", (long long)k);
  snprintf(bm->source, sizeof bm->source, "%s", b->source);
  snprintf(bm->sha256, sizeof bm->sha256, "%s", b->report.sha256);
  if (strlen(bm->sha256) != 64) snprintf(bm->sha256, sizeof bm->sha256, "%064d", 0);
  memcpy(bm->digest, digest, 65);
  bm->lines_read = b->report.lines_read;
  bm->header = b->report.header;
  bm->stored = b->report.stored;
  bm->merged = b->report.merged;
  bm->rejected = b->report.rejected;
  bm->superseded = superseded;
  bm->new_users = b->new_users.n;
  bm->new_items = b->new_items.n;
  bm->rows = total;
  bm->users_after = b->users_before + b->new_users.n;
  bm->items_after = b->items_before + b->new_items.n;
  bm->time_min = b->time_min;
  bm->time_max = b->time_max;
  bm->has_scale = 1;
  bm->scale = *vscale;
}

/* The batch's rows of the standing holdout (docs/FORMAT.md, /holdout): this rank's, in row order,
 * the global offset of its share and the batch's count. present: the store has a holdout. */
typedef struct {
  imf_ratings r;
  int64_t off, total;
  int present;
} holdout_part;

/* Collective: the rows of r that imf_is_holdout holds out under the store's fraction and seed
 * (none and nothing to write when the store has no holdout). */
static imf_status holdout_build(imf_store *s, const imf_ratings *r, holdout_part *h) {
  memset(h, 0, sizeof *h);
  double frac;
  uint64_t seed;
  if (!imf_store_holdout(s, &frac, &seed)) return IMF_OK; /* the manifest's: the same on every rank */
  h->present = 1;
  int64_t n = 0;
  for (int64_t j = 0; j < r->n; j++) n += imf_is_holdout(seed, frac, r->user[j], r->item[j]);
  imf_status st = imf_ratings_reserve(&h->r, n + 1);
  for (int64_t j = 0; st == IMF_OK && j < r->n; j++)
    if (imf_is_holdout(seed, frac, r->user[j], r->item[j]))
      st = imf_ratings_push(&h->r, r->user[j], r->item[j], r->value[j], r->time[j]);
  IMF_CHECK(imf_agree(s->comm, st));
  IMF_MPI(MPI_Exscan(&h->r.n, &h->off, 1, MPI_INT64_T, MPI_SUM, s->comm));
  if (s->rank == 0) h->off = 0;
  IMF_MPI(MPI_Allreduce(&h->r.n, &h->total, 1, MPI_INT64_T, MPI_SUM, s->comm));
  return IMF_OK;
}

/* What goes into the batch file besides the batch itself. */
typedef struct {
  int64_t row0, total; /* this rank's first row; the batch's rows */
  int narrow_time;     /* /ratings/time in 4 bytes */
  user_index ui;
  item_index ix;
  holdout_part ho;
} batch_parts;

/* (rank 0) A full disk is refused before HDF5 starts (see imf_fs_need_space). */
static imf_status batch_space_check(const imf_store *s, const imf_batch *b, const batch_parts *bp, const char *tmp) {
  const imf_idlist *u0 = &b->new_users, *i0 = &b->new_items;
  double need = 28.0 * (double)bp->total + 20.0 * (double)bp->ho.total + 12.0 * (double)(bp->ui.total + bp->ix.di_total) +
                16.0 * (double)(u0->n + i0->n) + (double)(u0->off ? u0->off[u0->n] : 0) +
                (double)(i0->off ? i0->off[i0->n] : 0) + 65536.0 + 4096.0; /* HDF5 metadata; the manifest after it */
  return imf_fs_need_space(s->dir, tmp, need);
}

/* Every step of a collective write is agreed on before the next: a rank that failed stops the others. */
#define W(expr) \
  do { \
    st = imf_agree(s->comm, (expr)); \
    if (st != IMF_OK) return st; \
  } while (0)

/* Collective: rows r under `group` (/ratings, or /holdout: a copy of some of them) as the four
 * columns user, item, value, time, each rank its n rows at offset o of T. The time column is
 * narrowed in place for the write (narrow: 4 bytes) and widened back after it, so no second copy
 * is made. */
static imf_status write_rows(imf_store *s, hid_t f, const char *group, imf_ratings *r, hsize_t T, hsize_t o,
                             int narrow, hid_t coll, const char *tmp) {
  imf_status st;
  const hsize_t n = (hsize_t)r->n;
  char name[32];
#define COL(c) (snprintf(name, sizeof name, "%s/%s", group, c), name)
  W(imf_h5_write_1d(f, COL("user"), H5T_STD_I32LE, H5T_NATIVE_INT32, T, o, n, r->user, coll, tmp));
  W(imf_h5_write_1d(f, COL("item"), H5T_STD_I32LE, H5T_NATIVE_INT32, T, o, n, r->item, coll, tmp));
  W(imf_h5_write_1d(f, COL("value"), H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, T, o, n, r->value, coll, tmp));
  if (narrow) {
    int32_t *t32 = (int32_t *)(void *)r->time; /* element j moves from byte 8j down to 4j */
    for (int64_t j = 0; j < r->n; j++) t32[j] = (int32_t)r->time[j];
    st = imf_h5_write_1d(f, COL("time"), H5T_STD_I32LE, H5T_NATIVE_INT32, T, o, n, t32, coll, tmp);
    for (int64_t j = r->n - 1; j >= 0; j--) r->time[j] = t32[j]; /* from the top: nothing unread is overwritten */
    W(st);
  } else
    W(imf_h5_write_1d(f, COL("time"), H5T_STD_I64LE, H5T_NATIVE_INT64, T, o, n, r->time, coll, tmp));
#undef COL
  return IMF_OK;
}

/* Collective: /index/user* and /index/item*, each rank its share; the last rank the closing offsets. */
static imf_status write_indexes(imf_store *s, hid_t f, const batch_parts *bp, hid_t coll, const char *tmp) {
  imf_status st;
  const user_index *u = &bp->ui;
  const item_index *x = &bp->ix;
  const hsize_t closing = s->rank == s->size - 1 ? 1 : 0;
  W(imf_h5_write_1d(f, "/index/user", H5T_STD_I32LE, H5T_NATIVE_INT32, (hsize_t)u->total, (hsize_t)u->off,
                    (hsize_t)u->n, u->user, coll, tmp));
  W(imf_h5_write_1d(f, "/index/user_ptr", H5T_STD_I64LE, H5T_NATIVE_INT64, (hsize_t)u->total + 1, (hsize_t)u->off,
                    (hsize_t)u->n + closing, u->ptr, coll, tmp));
  W(imf_h5_write_1d(f, "/index/item", H5T_STD_I32LE, H5T_NATIVE_INT32, (hsize_t)x->di_total, (hsize_t)x->di_off,
                    (hsize_t)x->ndi, x->item, coll, tmp));
  W(imf_h5_write_1d(f, "/index/item_ptr", H5T_STD_I64LE, H5T_NATIVE_INT64, (hsize_t)x->di_total + 1,
                    (hsize_t)x->di_off, (hsize_t)x->ndi + closing, x->ptr, coll, tmp));
  W(imf_h5_write_1d(f, "/index/item_pos", x->narrow ? H5T_STD_I32LE : H5T_STD_I64LE,
                    x->narrow ? H5T_NATIVE_INT32 : H5T_NATIVE_INT64, (hsize_t)bp->total, (hsize_t)x->pos_off,
                    (hsize_t)x->npos, x->pos, coll, tmp));
  return IMF_OK;
}

/* Collective: the /ids datasets, the batch's new user and item ids. They are replicated on every rank:
 * rank 0 writes them, the others take part. */
static imf_status write_ids(imf_store *s, hid_t f, const imf_batch *b, hid_t coll, const char *tmp) {
  imf_status st;
  const int r0 = s->rank == 0;
  const imf_idlist *nu = &b->new_users, *ni = &b->new_items;
  static const int64_t zero_off = 0;
  const int64_t *uoff = nu->off ? nu->off : &zero_off, *ioff = ni->off ? ni->off : &zero_off;
  const hsize_t ublob = (hsize_t)uoff[nu->n], iblob = (hsize_t)ioff[ni->n];
  const hsize_t nuo = (hsize_t)nu->n + 1, nio = (hsize_t)ni->n + 1;
  W(imf_h5_write_1d(f, "/ids/user_blob", H5T_STD_U8LE, H5T_NATIVE_UINT8, ublob, 0, r0 ? ublob : 0, nu->blob, coll, tmp));
  W(imf_h5_write_1d(f, "/ids/user_off", H5T_STD_I64LE, H5T_NATIVE_INT64, nuo, 0, r0 ? nuo : 0, uoff, coll, tmp));
  W(imf_h5_write_1d(f, "/ids/item_blob", H5T_STD_U8LE, H5T_NATIVE_UINT8, iblob, 0, r0 ? iblob : 0, ni->blob, coll, tmp));
  W(imf_h5_write_1d(f, "/ids/item_off", H5T_STD_I64LE, H5T_NATIVE_INT64, nio, 0, r0 ? nio : 0, ioff, coll, tmp));
  return IMF_OK;
}
#undef W

/* Collective: the root attributes, identical values on every rank (metadata writes are collective). */
static imf_status write_attrs(hid_t f, const imf_batch *b, const batch_meta *bm, const char *tmp) {
  const struct {
    const char *name;
    int64_t v;
  } ia[] = {{"format_version", BATCH_FORMAT_VERSION},
            {"batch", bm->number},
            {"users_before", b->users_before},
            {"items_before", b->items_before},
            {"lines_read", bm->lines_read},
            {"header", bm->header},
            {"stored", bm->stored},
            {"merged", bm->merged},
            {"rejected", bm->rejected},
            {"superseded", bm->superseded},
            {"new_users", bm->new_users},
            {"new_items", bm->new_items},
            {"rows", bm->rows},
            {"time_min", bm->time_min},
            {"time_max", bm->time_max}};
  IMF_CHECK(imf_h5_attr_str(f, "format", "incremf-batch", tmp));
  for (size_t i = 0; i < sizeof ia / sizeof ia[0]; i++) IMF_CHECK(imf_h5_attr_i64(f, ia[i].name, ia[i].v, tmp));
  IMF_CHECK(imf_h5_attr_put(f, "rejected_by", H5T_STD_I64LE, H5T_NATIVE_INT64, b->report.rejected_by,
                            IMF_REJECT_REASONS, tmp));
  IMF_CHECK(imf_h5_attr_str(f, "source", bm->source, tmp));
  IMF_CHECK(imf_h5_attr_str(f, "sha256", bm->sha256, tmp));
  IMF_CHECK(imf_h5_attr_str(f, "content_digest", bm->digest, tmp));
  return IMF_OK;
}

/* Collective: the batch file under its .tmp name, complete and closed (removed on failure). */
static imf_status batch_file_write(imf_store *s, imf_batch *b, const batch_meta *bm, batch_parts *bp,
                                   const char *tmp) {
  imf_status st = IMF_OK;
  hid_t fapl = imf_h5_fapl_mpio(s->comm, 1);
  hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  if (f < 0) imf_h5_reason();
  H5Pclose(fapl);
  /* H5Fcreate is collective: every rank failed alike */
  if (f < 0) IMF_FAIL(IMF_ERR_RUNTIME, "%s: cannot create: %s", tmp, imf_h5_last());
  hid_t coll = imf_h5_dxpl(1);
  st = write_rows(s, f, "/ratings", &b->r, (hsize_t)bp->total, (hsize_t)bp->row0, bp->narrow_time, coll, tmp);
  if (st == IMF_OK) st = write_indexes(s, f, bp, coll, tmp);
  if (st == IMF_OK) st = write_ids(s, f, b, coll, tmp);
  if (st == IMF_OK && bp->ho.present) /* the time column as wide as /ratings/time */
    st = write_rows(s, f, "/holdout", &bp->ho.r, (hsize_t)bp->ho.total, (hsize_t)bp->ho.off, bp->narrow_time, coll,
                    tmp);
  if (st == IMF_OK) st = imf_agree(s->comm, write_attrs(f, b, bm, tmp));
  H5Pclose(coll);
  if (H5Fclose(f) < 0 && st == IMF_OK)
    st = IMF_RAISE(IMF_ERR_RUNTIME, "%s: cannot close: %s", tmp, imf_h5_reason());
  st = imf_agree(s->comm, st);
  if (st != IMF_OK && s->rank == 0) unlink(tmp);
  return st;
}

/* (rank 0) Make the file durable under its final name; the batch is not committed yet. */
static imf_status batch_file_install(const imf_store *s, const char *tmp, const char *fin) {
  IMF_CHECK(imf_fsync_path(tmp, 0));
  if (rename(tmp, fin) != 0) IMF_FAIL(IMF_ERR_RUNTIME, "cannot rename %s to %s: %s", tmp, fin, strerror(errno));
  IMF_CHECK(imf_fsync_path(s->dir, 1));
  /* Testing hook: IMF_FAULT=store-before-manifest simulates a crash after the batch file is
   * in place but before the manifest names it (the fault-injection tests check that the
   * previous store is what remains). */
  if (imf_fault("store-before-manifest"))
    IMF_FAIL(IMF_ERR_RUNTIME, "injected fault (IMF_FAULT=store-before-manifest): %s written, manifest not replaced",
             fin);
  return IMF_OK;
}

/* Commit: the manifest replace is the one step that makes batch bm part of the store. */
static imf_status manifest_append(imf_store *s, const batch_meta *bm) {
  const int64_t k = bm->number;
  manifest m = s->m;
  batch_meta *nb = malloc((size_t)k * sizeof *nb);
  imf_status st = nb ? IMF_OK : IMF_RAISE(IMF_ERR_NOMEM, "out of memory");
  IMF_CHECK(imf_agree(s->comm, st));
  if (s->m.nbatches) memcpy(nb, s->m.b, (size_t)s->m.nbatches * sizeof *nb);
  nb[k - 1] = *bm;
  m.b = nb;
  m.nbatches = k;
  m.users = bm->users_after;
  m.items = bm->items_after;
  store_manifest_scale(&m);
  st = store_manifest_commit(s, &m);
  if (st != IMF_OK) {
    free(nb);
    return st;
  }
  free(s->m.b);
  s->m = m;
  store_digest_update(s);
  return IMF_OK;
}

imf_status imf_store_write_batch(imf_store *s, imf_batch *b) {
  const double t0 = imf_wtime(); /* for the phase line at the end (where an append's time goes) */
  const imf_ratings *r = &b->r;
  batch_parts bp;
  memset(&bp, 0, sizeof bp);
  imf_status st = check_batch(s, b);
  IMF_TRY(imf_agree(s->comm, st), out);
  IMF_TRY(rows_in_rank_order(s, r, &bp.row0, &bp.total), out);
  IMF_TRY(user_index_build(s, r, bp.row0, bp.total, &bp.ui), out);
  int64_t superseded = 0;
  const double t_uix = imf_wtime();
  IMF_TRY(store_count_superseded(s, b, &superseded), out);
  const double t_sup = imf_wtime();
  /* Positions of a batch under 2^31 rows are stored in 4 bytes (every reader asks for int64 and
   * imf_h5_read_1d widens them): the batch file is 14% smaller, and writing it into the page
   * cache (2.2-2.8 s of a 1.1 GB prepare, on one rank or two: ext4 takes one writer at a time)
   * shrinks with it, as does the index's memory at prepare's peak. */
  IMF_TRY(item_index_build(s, r, bp.row0, b->items_before + b->new_items.n, bp.total <= INT32_MAX, &bp.ix), out);
  const double t_idx = imf_wtime();
  char digest[65];
  IMF_TRY(batch_digest(s->comm, b, bp.row0, bp.total, digest), out);
  const double t_dig = imf_wtime();
  IMF_TRY(batch_time_range(s->comm, b, bp.total, &bp.narrow_time), out);
  imf_scale vscale; /* the observed value scale (min, max, step), recorded in the manifest */
  IMF_TRY(imf_scale_reduce(s->comm, r, &vscale), out);
  IMF_TRY(holdout_build(s, r, &bp.ho), out);
  const int64_t k = s->m.nbatches + 1;
  batch_meta bm;
  batch_meta_fill(&bm, k, b, digest, superseded, bp.total, &vscale);

  /* ---- the batch file, written collectively to a .tmp name ---- */
  char tmp[4200], fin[4200];
  store_batch_path(s, k, tmp, sizeof tmp, 1);
  store_batch_path(s, k, fin, sizeof fin, 0);
  if (s->rank == 0) st = batch_space_check(s, b, &bp, tmp);
  IMF_TRY(imf_agree(s->comm, st), out);
  const double t_create = imf_wtime();
  IMF_TRY(batch_file_write(s, b, &bm, &bp, tmp), out);
  const double t_h5 = imf_wtime();
  if (s->rank == 0) st = batch_file_install(s, tmp, fin);
  IMF_TRY(imf_agree(s->comm, st), out);
  IMF_TRY(manifest_append(s, &bm), out);
  if (s->rank == 0) remove_strays(s);
  imf_info("batch %lld: checks and user index %.2f s, superseded %.2f s, item index %.2f s, digest %.2f s, "
           "HDF5 write %.2f s, fsync+commit %.2f s (rank 0's clock)", (long long)k, t_uix - t0, t_sup - t_uix,
           t_idx - t_sup, t_dig - t_idx, t_h5 - t_create, imf_wtime() - t_h5);
  b->report.batch = k;
  b->report.superseded = superseded;
  b->report.new_users = bm.new_users;
  b->report.new_items = bm.new_items;
out:
  user_index_free(&bp.ui);
  item_index_free(&bp.ix);
  imf_ratings_free(&bp.ho.r);
  return st;
}
