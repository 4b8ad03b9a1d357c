/* store_read.c - reading ratings from the batch files: a user range over every batch with
 * repeated (user,item) pairs resolved by the store's duplicate policy, one batch alone with the
 * order checked across the ranks' seams, the standing holdout from the batches' /holdout copies
 * (resolved the same way, spread over the ranks by user), the id maps, and the superseded count
 * of a batch being written (the rows of earlier batches for the users it touches). Every row
 * read is checked against the batch's user and item counts and the (user, item) order: HDF5 does
 * not checksum raw data. Private helpers: store_impl.h. */
#include "store_impl.h"
#include "error.h"
#include "fsio.h"
#include "log.h"
#include "exchange.h"
#include "partition.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Position of the first index entry >= key, by point reads (independent: each rank its own
 * searches), so locating a user range costs O(log n) small reads, not the whole index. */
imf_status store_lower_bound(hid_t d, hsize_t n, int64_t key, hid_t dxpl_ind, const char *path,
                              hsize_t *pos) {
  hsize_t lo = 0, hi = n;
  while (lo < hi) {
    hsize_t mid = lo + (hi - lo) / 2;
    int32_t v;
    IMF_CHECK(imf_h5_read_1d(d, H5T_NATIVE_INT32, mid, 1, &v, dxpl_ind, path, "/index/user"));
    if ((int64_t)v < key) lo = mid + 1;
    else hi = mid;
  }
  *pos = lo;
  return IMF_OK;
}

/* Rows [r0, r1) of batch h holding users [lo, hi) (local, independent point reads). */
static imf_status user_rows(const batch_h *h, int64_t lo, int64_t hi, hid_t ind, const char *path,
                            hsize_t *r0, hsize_t *r1) {
  *r0 = *r1 = 0;
  if (lo >= hi || h->nindex == 0) return IMF_OK;
  hsize_t pa, pb;
  IMF_CHECK(store_lower_bound(h->iuser, h->nindex, lo, ind, path, &pa));
  IMF_CHECK(store_lower_bound(h->iuser, h->nindex, hi, ind, path, &pb));
  if (pa == pb) return IMF_OK;
  int64_t a, b;
  IMF_CHECK(imf_h5_read_1d(h->iptr, H5T_NATIVE_INT64, pa, 1, &a, ind, path, "/index/user_ptr"));
  IMF_CHECK(imf_h5_read_1d(h->iptr, H5T_NATIVE_INT64, pb, 1, &b, ind, path, "/index/user_ptr"));
  if (a < 0 || b < a || (hsize_t)b > h->nrows)
    IMF_FAIL(IMF_ERR_INPUT, "%s: /index/user_ptr is inconsistent", path);
  *r0 = (hsize_t)a;
  *r1 = (hsize_t)b;
  return IMF_OK;
}

/* Two consecutive rows of a batch, (u0, i0) then (u1, i1): strictly ascending, or the file is
 * corrupt. (local) */
static imf_status check_pair_order(const char *path, int32_t u0, int32_t i0, int32_t u1, int32_t i1) {
  if (u0 < u1 || (u0 == u1 && i0 < i1)) return IMF_OK;
  IMF_FAIL(IMF_ERR_INPUT, "%s is corrupt: its ratings are not in (user, item) order (user %d item %d "
           "before user %d item %d): restore that file from a backup or re-run prepare", path, u0, i0, u1, i1);
}

/* Rows read from batch k must name users of [ulo, uhi) and items that batch k knows, in the
 * strict (user, item) order every batch is written in: HDF5 does not checksum raw data, and a
 * flipped bit must not reach the callers as an index out of bounds, nor as a store whose ratings
 * are out of order (a one-batch read is not re-sorted) or repeat a pair. (local) */
static imf_status check_rows(const imf_store *s, int64_t k, const imf_ratings *r, int64_t from,
                             int64_t n, int64_t ulo, int64_t uhi, const char *path) {
  const batch_meta *b = &s->m.b[k - 1];
  if (uhi > b->users_after) uhi = b->users_after;
  if (ulo < 0) ulo = 0;
  for (int64_t j = from; j < from + n; j++) {
    if (r->user[j] < ulo || r->user[j] >= uhi || r->item[j] < 0 || r->item[j] >= b->items_after)
      IMF_FAIL(IMF_ERR_INPUT, "%s is corrupt: a rating names user %d and item %d, outside the "
               "batch's %lld users and %lld items: restore that file from a backup or re-run "
               "prepare", path, r->user[j], r->item[j], (long long)b->users_after,
               (long long)b->items_after);
    if (j > from) IMF_CHECK(check_pair_order(path, r->user[j - 1], r->item[j - 1], r->user[j], r->item[j]));
  }
  return IMF_OK;
}

/* Collective: check_rows sees the order inside each rank's share of a batch; this checks it
 * across the seams between the shares (each non-empty share's last row against the next
 * non-empty share's first), so that a corrupt batch is reported whatever the rank count. */
static imf_status check_row_seams(const imf_store *s, const imf_ratings *r, int64_t n, const char *path) {
  int32_t mine[5] = {n > 0, n ? r->user[0] : 0, n ? r->item[0] : 0, n ? r->user[n - 1] : 0, n ? r->item[n - 1] : 0};
  int32_t *all = NULL;
  imf_status st = imf_agree(s->comm, imf_alloc(&all, (size_t)s->size * 5, sizeof *all));
  if (st != IMF_OK) {
    imf_free(&all); /* the ranks whose allocation succeeded */
    return st;
  }
  if (MPI_Allgather(mine, 5, MPI_INT32_T, all, 5, MPI_INT32_T, s->comm) != MPI_SUCCESS) {
    imf_free(&all);
    IMF_FAIL(IMF_ERR_RUNTIME, "MPI_Allgather failed (batch row order)");
  }
  int64_t prev = -1; /* the last non-empty share so far */
  for (int q = 0; q < s->size && st == IMF_OK; q++) {
    const int32_t *e = all + 5 * q;
    if (!e[0]) continue;
    if (prev >= 0) {
      const int32_t *p = all + 5 * prev;
      st = check_pair_order(path, p[3], p[4], e[1], e[2]);
    }
    prev = q;
  }
  imf_free(&all);
  return st; /* the same verdict on every rank: all computed it from the same gathered ends */
}

typedef struct {
  const imf_ratings *r;
  const int32_t *tag;
} sort_ctx;
static sort_ctx g_sort; /* qsort has no context argument in C17 */

static int cmp_rows(const void *pa, const void *pb) {
  int64_t a = *(const int64_t *)pa, b = *(const int64_t *)pb;
  const imf_ratings *r = g_sort.r;
  if (r->user[a] != r->user[b]) return r->user[a] < r->user[b] ? -1 : 1;
  if (r->item[a] != r->item[b]) return r->item[a] < r->item[b] ? -1 : 1;
  if (g_sort.tag[a] != g_sort.tag[b]) return g_sort.tag[a] < g_sort.tag[b] ? -1 : 1;
  return a < b ? -1 : a > b;
}

/* The resolved value and time of the rows perm[a..b) of `all`, one (user, item) pair in batch
 * order, under duplicate policy `policy` (docs/FORMAT.md "Reading"); *w: the row the value comes
 * from (latest: the chosen row; first: the earliest batch's; mean: the latest batch's). (local) */
static void resolve_pair(const imf_ratings *all, const int64_t *perm, int64_t a, int64_t b, int policy, float *v,
                         int64_t *t, int64_t *w) {
  int64_t j = perm[a];
  *v = all->value[j];
  *t = all->time[j];
  *w = j;
  if (b - a < 2) return;
  if (policy == 0) { /* latest: greatest time; ties (and no times) go to the later batch */
    for (int64_t c = a + 1; c < b; c++)
      if (all->time[perm[c]] >= *t) {
        *t = all->time[perm[c]];
        *v = all->value[perm[c]];
        *w = perm[c];
      }
  } else if (policy == 2) {
    double sum = 0;
    for (int64_t c = a; c < b; c++) {
      sum += all->value[perm[c]];
      if (all->time[perm[c]] > *t) *t = all->time[perm[c]];
    }
    *v = (float)(sum / (double)(b - a));
    *w = perm[b - 1];
  }
}

/* The rows of `all` (tag: each row's batch) sorted by (user, item, batch) and each pair resolved
 * with the store's policy into res, forgotten users dropped; res_tag (may be NULL) gets the batch
 * of each result's row (resolve_pair's *w). A pair twice in one batch is a damaged store. (local) */
static imf_status merge_pairs(const imf_store *s, const imf_ratings *all, const int32_t *tag, imf_ratings *res,
                              int32_t **res_tag) {
  int64_t *perm = NULL;
  imf_status st = imf_alloc(&perm, (size_t)all->n + 1, sizeof *perm);
  if (st == IMF_OK) st = imf_ratings_reserve(res, all->n + 1);
  if (st == IMF_OK && res_tag) st = imf_alloc(res_tag, (size_t)all->n + 1, sizeof **res_tag);
  if (st != IMF_OK) {
    imf_free(&perm);
    return st;
  }
  for (int64_t j = 0; j < all->n; j++) perm[j] = j;
  g_sort.r = all;
  g_sort.tag = tag;
  qsort(perm, (size_t)all->n, sizeof *perm, cmp_rows);
  const int policy = store_dup_policy(s);
  for (int64_t a = 0, b; a < all->n && st == IMF_OK; a = b) {
    const int64_t j = perm[a];
    for (b = a + 1; b < all->n && all->user[perm[b]] == all->user[j] && all->item[perm[b]] == all->item[j]; b++)
      if (tag[perm[b]] == tag[perm[b - 1]]) {
        char path[4200];
        store_batch_path(s, tag[j], path, sizeof path, 0);
        st = IMF_RAISE(IMF_ERR_INPUT, "%s is corrupt: it holds user %d item %d twice: restore that file from a "
                       "backup or re-run prepare", path, all->user[j], all->item[j]);
      }
    if (st != IMF_OK || imf_store_is_forgotten(s, all->user[j])) continue;
    float v;
    int64_t t, w;
    resolve_pair(all, perm, a, b, policy, &v, &t, &w);
    if (res_tag) (*res_tag)[res->n] = tag[w];
    res->user[res->n] = all->user[j];
    res->item[res->n] = all->item[j];
    res->value[res->n] = v;
    res->time[res->n] = t;
    res->n++;
  }
  imf_free(&perm);
  return st;
}

imf_status imf_store_read_ratings(imf_store *s, int64_t user_lo, int64_t user_hi, imf_ratings *out) {
  imf_status st = IMF_OK;
  imf_ratings all = {0}, res = {0};
  int32_t *tag = NULL;
  hid_t ind = imf_h5_dxpl(0), coll = imf_h5_dxpl(1);
  if (user_hi < user_lo) user_hi = user_lo;
  for (int64_t k = 1; k <= s->m.nbatches; k++) {
    batch_h h;
    char path[4200];
    store_batch_path(s, k, path, sizeof path, 0);
    IMF_TRY(imf_agree(s->comm, st), done);
    IMF_TRY(store_batch_h_open(s, k, &h), done);
    hsize_t r0 = 0, r1 = 0;
    st = user_rows(&h, user_lo, user_hi, ind, path, &r0, &r1);
    hsize_t n = r1 - r0;
    if (st == IMF_OK) st = imf_ratings_reserve(&all, all.n + (int64_t)n + 1);
    if (st == IMF_OK && s->m.nbatches > 1) st = imf_realloc(&tag, (size_t)(all.n + (int64_t)n + 1), sizeof *tag);
    if (st != IMF_OK) n = r0 = 0; /* still take part in the collective reads below */
    st = imf_agree(s->comm, st);
    if (st == IMF_OK) {
      /* all four collective reads run on every rank; the first failure is kept */
      imf_status rs[4];
      rs[0] = imf_h5_read_1d(h.user, H5T_NATIVE_INT32, r0, n, all.user + all.n, coll, path, "/ratings/user");
      rs[1] = imf_h5_read_1d(h.item, H5T_NATIVE_INT32, r0, n, all.item + all.n, coll, path, "/ratings/item");
      rs[2] = imf_h5_read_1d(h.value, H5T_NATIVE_FLOAT, r0, n, all.value + all.n, coll, path, "/ratings/value");
      rs[3] = imf_h5_read_1d(h.time, H5T_NATIVE_INT64, r0, n, all.time + all.n, coll, path, "/ratings/time");
      for (int q = 3; q >= 0; q--)
        if (rs[q] != IMF_OK) st = rs[q];
      if (st == IMF_OK) st = check_rows(s, k, &all, all.n, (int64_t)n, user_lo, user_hi, path);
      st = imf_agree(s->comm, st);
    }
    store_batch_h_close(&h);
    if (st != IMF_OK) goto done;
    for (hsize_t j = 0; tag && j < n; j++) tag[all.n + (int64_t)j] = (int32_t)k;
    all.n += (int64_t)n;
  }
  /* One batch: its rows are already in strict (user, item) order (check_rows), so there is
   * nothing to merge: the forgotten users are dropped in place, and the read holds one copy of
   * the ratings instead of three (the training peak: docs/SCALING.md). */
  if (st == IMF_OK && s->m.nbatches == 1) {
    int64_t w = 0;
    for (int64_t j = 0; j < all.n; j++) {
      if (imf_store_is_forgotten(s, all.user[j])) continue;
      all.user[w] = all.user[j];
      all.item[w] = all.item[j];
      all.value[w] = all.value[j];
      all.time[w] = all.time[j];
      w++;
    }
    all.n = w;
    res = all;
    memset(&all, 0, sizeof all);
  }
  /* Merge the batches and resolve repeated (user,item) pairs with the store's policy. */
  if (st == IMF_OK && all.n > 0 && s->m.nbatches > 1) st = merge_pairs(s, &all, tag, &res, NULL);
done:
  H5Pclose(ind);
  H5Pclose(coll);
  imf_ratings_free(&all);
  imf_free(&tag);
  st = imf_agree(s->comm, st);
  if (st != IMF_OK) {
    imf_ratings_free(&res);
    return st;
  }
  *out = res;
  return IMF_OK;
}

imf_status imf_store_read_batch(imf_store *s, int64_t k, imf_ratings *out) {
  memset(out, 0, sizeof *out);
  if (k < 1 || k > s->m.nbatches)
    IMF_FAIL(IMF_ERR_NOTFOUND, "%s has no batch %lld", s->dir, (long long)k);
  imf_status st = IMF_OK;
  imf_ratings r = {0};
  batch_h h;
  char path[4200];
  store_batch_path(s, k, path, sizeof path, 0);
  IMF_CHECK(store_batch_h_open(s, k, &h));
  hid_t coll = imf_h5_dxpl(1);
  hsize_t R = h.nrows;
  hsize_t r0 = R * (hsize_t)s->rank / (hsize_t)s->size, r1 = R * (hsize_t)(s->rank + 1) / (hsize_t)s->size;
  hsize_t n = r1 - r0;
  st = imf_ratings_reserve(&r, (int64_t)n + 1);
  if (st != IMF_OK) n = r0 = 0;
  st = imf_agree(s->comm, st);
  if (st == IMF_OK) {
    imf_status rs[4];
    rs[0] = imf_h5_read_1d(h.user, H5T_NATIVE_INT32, r0, n, r.user, coll, path, "/ratings/user");
    rs[1] = imf_h5_read_1d(h.item, H5T_NATIVE_INT32, r0, n, r.item, coll, path, "/ratings/item");
    rs[2] = imf_h5_read_1d(h.value, H5T_NATIVE_FLOAT, r0, n, r.value, coll, path, "/ratings/value");
    rs[3] = imf_h5_read_1d(h.time, H5T_NATIVE_INT64, r0, n, r.time, coll, path, "/ratings/time");
    for (int q = 3; q >= 0; q--)
      if (rs[q] != IMF_OK) st = rs[q];
    if (st == IMF_OK) st = check_rows(s, k, &r, 0, (int64_t)n, 0, INT64_MAX, path);
    st = imf_agree(s->comm, st);
  }
  if (st == IMF_OK && s->size > 1) st = check_row_seams(s, &r, (int64_t)n, path);
  H5Pclose(coll);
  store_batch_h_close(&h);
  if (st != IMF_OK) {
    imf_ratings_free(&r);
    return st;
  }
  r.n = 0;
  for (hsize_t j = 0; j < n; j++) {
    if (imf_store_is_forgotten(s, r.user[j])) continue;
    r.user[r.n] = r.user[j];
    r.item[r.n] = r.item[j];
    r.value[r.n] = r.value[j];
    r.time[r.n] = r.time[j];
    r.n++;
  }
  *out = r;
  return IMF_OK;
}

imf_status imf_store_read_ratings_unfiltered(imf_store *s, int64_t user_lo, int64_t user_hi,
                                             imf_ratings *out) {
  int64_t nf = s->m.nforgotten;
  s->m.nforgotten = 0; /* imf_store_is_forgotten finds nobody while the list is hidden */
  imf_status st = imf_store_read_ratings(s, user_lo, user_hi, out);
  s->m.nforgotten = nf;
  return st;
}


/* ------------------------------------------------------------------------------------------ */
/* the standing holdout's copy in each batch file (/holdout, docs/FORMAT.md)                   */

static const char *const HOLD_NAMES[4] = {"/holdout/user", "/holdout/item", "/holdout/value", "/holdout/time"};

/* Open batch file f's /holdout datasets into d[4] and their common length *n: IMF_ERR_NOTFOUND
 * when the file has no /holdout, IMF_ERR_INPUT for a part missing or of another length. (local) */
static imf_status holdout_open(hid_t f, const char *path, hid_t d[4], hsize_t *n) {
  if (H5Lexists(f, "/holdout", H5P_DEFAULT) <= 0 || H5Lexists(f, "/holdout/user", H5P_DEFAULT) <= 0) {
    H5Eclear2(H5E_DEFAULT);
    IMF_FAIL(IMF_ERR_NOTFOUND, "%s has no /holdout (written before batch files kept the standing holdout's "
             "rows, or by a store without a holdout)", path);
  }
  for (int q = 0; q < 4; q++) {
    hsize_t len = 0;
    d[q] = H5Dopen2(f, HOLD_NAMES[q], H5P_DEFAULT);
    if (d[q] < 0) IMF_FAIL(IMF_ERR_INPUT, "%s: no dataset %s: %s", path, HOLD_NAMES[q], imf_h5_reason());
    IMF_CHECK(imf_h5_len_check(d[q], path, HOLD_NAMES[q], &len));
    if (q == 0) *n = len;
    else if (len != *n)
      IMF_FAIL(IMF_ERR_INPUT, "%s is corrupt: the datasets under /holdout differ in length: restore that file "
               "from a backup or re-run prepare", path);
  }
  return IMF_OK;
}

/* Rows [from, from + n) of `all`, read from batch k's /holdout: ids within the batch's counts, in
 * (user, item) order (check_rows), and every pair one the standing holdout holds. (local) */
static imf_status holdout_check(const imf_store *s, int64_t k, const imf_ratings *all, int64_t from, int64_t n,
                                const char *path) {
  IMF_CHECK(check_rows(s, k, all, from, n, 0, INT64_MAX, path));
  for (int64_t j = from; j < from + n; j++)
    if (!imf_is_holdout((uint64_t)s->m.holdout_seed, s->m.holdout_fraction, all->user[j], all->item[j]))
      IMF_FAIL(IMF_ERR_INPUT, "%s is corrupt: /holdout names user %d and item %d, a pair outside the standing "
               "holdout: restore that file from a backup or re-run prepare", path, all->user[j], all->item[j]);
  return IMF_OK;
}

/* Collective: this rank's contiguous slice of batch k's /holdout appended to all, each row tagged
 * with k in *tag (grown with it). */
static imf_status holdout_read_batch(imf_store *s, int64_t k, imf_ratings *all, int32_t **tag) {
  char path[4200];
  hid_t f = -1, d[4] = {-1, -1, -1, -1}, coll = -1;
  hsize_t H = 0;
  store_batch_path(s, k, path, sizeof path, 0);
  IMF_CHECK(store_batch_open(s, k, &f));
  imf_status st = imf_agree(s->comm, holdout_open(f, path, d, &H));
  if (st == IMF_OK) {
    hsize_t r0 = H * (hsize_t)s->rank / (hsize_t)s->size, n = H * (hsize_t)(s->rank + 1) / (hsize_t)s->size - r0;
    st = imf_ratings_reserve(all, all->n + (int64_t)n + 1);
    if (st == IMF_OK) st = imf_realloc(tag, (size_t)(all->n + (int64_t)n + 1), sizeof **tag);
    if (st != IMF_OK) n = r0 = 0; /* still take part in the collective reads */
    st = imf_agree(s->comm, st);
    coll = imf_h5_dxpl(1);
    imf_status rs[4]; /* all four collective reads run on every rank; the first failure is kept */
    rs[0] = imf_h5_read_1d(d[0], H5T_NATIVE_INT32, r0, n, all->user + all->n, coll, path, HOLD_NAMES[0]);
    rs[1] = imf_h5_read_1d(d[1], H5T_NATIVE_INT32, r0, n, all->item + all->n, coll, path, HOLD_NAMES[1]);
    rs[2] = imf_h5_read_1d(d[2], H5T_NATIVE_FLOAT, r0, n, all->value + all->n, coll, path, HOLD_NAMES[2]);
    rs[3] = imf_h5_read_1d(d[3], H5T_NATIVE_INT64, r0, n, all->time + all->n, coll, path, HOLD_NAMES[3]);
    for (int q = 3; q >= 0; q--)
      if (rs[q] != IMF_OK && st == IMF_OK) st = rs[q];
    if (st == IMF_OK) st = holdout_check(s, k, all, all->n, (int64_t)n, path);
    st = imf_agree(s->comm, st);
    for (hsize_t j = 0; st == IMF_OK && j < n; j++) (*tag)[all->n + (int64_t)j] = (int32_t)k;
    if (st == IMF_OK) all->n += (int64_t)n;
  }
  for (int q = 0; q < 4; q++)
    if (d[q] >= 0) H5Dclose(d[q]);
  if (coll >= 0) H5Pclose(coll);
  H5Fclose(f);
  return st;
}

/* One held-out row on its way to the rank of its user. */
typedef struct {
  int64_t time;
  int32_t user, item;
  float value;
  int32_t batch;
} hold_row;

/* Pack all's rows (with their batch tags) by destination rank, user % size, into *sb; sc/sd the
 * counts and displacements per rank. (local) */
static void holdout_pack(const imf_ratings *all, const int32_t *tag, int P, int64_t *sc, int64_t *sd, int64_t *fill,
                         hold_row *sb) {
  for (int64_t j = 0; j < all->n; j++) sc[all->user[j] % P]++;
  for (int q = 1; q < P; q++) sd[q] = sd[q - 1] + sc[q - 1];
  memcpy(fill, sd, (size_t)P * sizeof *fill);
  for (int64_t j = 0; j < all->n; j++)
    sb[fill[all->user[j] % P]++] = (hold_row){all->time[j], all->user[j], all->item[j], all->value[j], tag[j]};
}

/* Collective: every row of all (and its tag) sent to rank user % size; all and *tag are replaced
 * by the rows this rank received. */
static imf_status holdout_route(imf_store *s, imf_ratings *all, int32_t **tag) {
  const int P = s->size;
  int64_t *sc = NULL, *sd = NULL, *rc = NULL, *rd = NULL, *fill = NULL, nr = 0;
  hold_row *sb = NULL, *rb = NULL;
  imf_ratings got = {0};
  int32_t *gtag = NULL;
  MPI_Datatype rt = MPI_DATATYPE_NULL;
  imf_status st = imf_alloc(&sc, (size_t)P, sizeof *sc);
  if (st == IMF_OK) st = imf_alloc(&sd, (size_t)P, sizeof *sd);
  if (st == IMF_OK) st = imf_alloc(&rc, (size_t)P, sizeof *rc);
  if (st == IMF_OK) st = imf_alloc(&rd, (size_t)P, sizeof *rd);
  if (st == IMF_OK) st = imf_alloc(&fill, (size_t)P, sizeof *fill);
  if (st == IMF_OK) st = imf_alloc_nz(&sb, (size_t)all->n + 1, sizeof *sb);
  if (st == IMF_OK && MPI_Type_contiguous((int)sizeof(hold_row), MPI_BYTE, &rt) != MPI_SUCCESS)
    st = IMF_RAISE(IMF_ERR_RUNTIME, "MPI_Type_contiguous failed (holdout rows)");
  if (st == IMF_OK) MPI_Type_commit(&rt);
  IMF_TRY(imf_agree(s->comm, st), out);
  holdout_pack(all, *tag, P, sc, sd, fill, sb);
  IMF_MPI_TRY(MPI_Alltoall(sc, 1, MPI_INT64_T, rc, 1, MPI_INT64_T, s->comm), out);
  for (int q = 0; q < P; q++) {
    rd[q] = nr;
    nr += rc[q];
  }
  st = imf_alloc_nz(&rb, (size_t)nr + 1, sizeof *rb);
  if (st == IMF_OK) st = imf_ratings_reserve(&got, nr + 1);
  if (st == IMF_OK) st = imf_alloc(&gtag, (size_t)nr + 1, sizeof *gtag);
  IMF_TRY(imf_agree(s->comm, st), out);
  IMF_TRY(imf_alltoallv64(s->comm, sb, sc, sd, rb, rc, rd, rt), out);
  for (int64_t j = 0; j < nr; j++) {
    got.user[j] = rb[j].user;
    got.item[j] = rb[j].item;
    got.value[j] = rb[j].value;
    got.time[j] = rb[j].time;
    gtag[j] = rb[j].batch;
  }
  got.n = nr;
  imf_ratings_free(all);
  imf_free(tag);
  *all = got;
  *tag = gtag;
  memset(&got, 0, sizeof got);
  gtag = NULL;
out:
  if (rt != MPI_DATATYPE_NULL) MPI_Type_free(&rt);
  imf_free(&sc);
  imf_free(&sd);
  imf_free(&rc);
  imf_free(&rd);
  imf_free(&fill);
  imf_free(&sb);
  imf_free(&rb);
  imf_ratings_free(&got);
  imf_free(&gtag);
  return st;
}

/* Collective: batches 1..upto's /holdout rows, routed and resolved into *res (merge_pairs drops
 * forgotten users), and the batch of each value in *rtag. */
static imf_status holdout_collect(imf_store *s, int64_t upto, imf_ratings *res, int32_t **rtag) {
  imf_status st = IMF_OK;
  imf_ratings all = {0};
  int32_t *tag = NULL;
  for (int64_t k = 1; k <= upto; k++) IMF_TRY(holdout_read_batch(s, k, &all, &tag), done);
  IMF_TRY(holdout_route(s, &all, &tag), done);
  st = merge_pairs(s, &all, tag, res, rtag);
done:
  imf_ratings_free(&all);
  imf_free(&tag);
  return imf_agree(s->comm, st);
}

imf_status imf_store_read_holdout(imf_store *s, int64_t upto, imf_ratings *out) {
  double frac;
  uint64_t seed;
  memset(out, 0, sizeof *out);
  if (upto < 0 || upto > s->m.nbatches)
    IMF_FAIL(IMF_ERR_RUNTIME, "%s: the holdout of batches 1..%lld asked of a store of %lld batches", s->dir,
             (long long)upto, (long long)s->m.nbatches);
  if (!imf_store_holdout(s, &frac, &seed))
    IMF_FAIL(IMF_ERR_NOTFOUND, "%s has no standing holdout (prepared with holdout.fraction = 0)", s->dir);
  imf_ratings res = {0};
  int32_t *rtag = NULL;
  imf_status st = holdout_collect(s, upto, &res, &rtag);
  if (st != IMF_OK) {
    imf_ratings_free(&res);
    imf_free(&rtag);
    return st;
  }
  for (int64_t j = 0; j < res.n; j++) res.time[j] = rtag[j]; /* the batch of the pair's value */
  imf_free(&rtag);
  *out = res;
  return IMF_OK;
}

/* (rank 0, serial HDF5) Read one id list of a batch file. */
static imf_status read_idlist(hid_t f, const char *path, const char *kind, imf_idlist *l) {
  char nb[64], no[64];
  snprintf(nb, sizeof nb, "/ids/%s_blob", kind);
  snprintf(no, sizeof no, "/ids/%s_off", kind);
  hid_t db = H5Dopen2(f, nb, H5P_DEFAULT), dof = H5Dopen2(f, no, H5P_DEFAULT);
  imf_status st = IMF_OK;
  hsize_t nbytes = 0, noff = 0;
  memset(l, 0, sizeof *l);
  if (db < 0 || dof < 0) {
    st = IMF_RAISE(IMF_ERR_INPUT, "%s: no dataset %s: %s", path,
                       db < 0 ? nb : no, imf_h5_reason());
    goto out;
  }
  IMF_TRY(imf_h5_len_check(db, path, nb, &nbytes), out);
  IMF_TRY(imf_h5_len_check(dof, path, no, &noff), out);
  if (noff < 1) {
    st = IMF_RAISE(IMF_ERR_INPUT, "%s: %s is empty", path, no);
    goto out;
  }
  IMF_TRY(imf_alloc(&l->off, noff, sizeof *l->off), out);
  IMF_TRY(imf_alloc(&l->blob, nbytes + 1, 1), out);
  IMF_TRY(imf_h5_read_1d(dof, H5T_NATIVE_INT64, 0, noff, l->off, H5P_DEFAULT, path, no), out);
  IMF_TRY(imf_h5_read_1d(db, H5T_NATIVE_UINT8, 0, nbytes, l->blob, H5P_DEFAULT, path, nb), out);
  l->n = (int64_t)noff - 1;
  for (int64_t j = 0; j < l->n; j++)
    if (l->off[j] < 0 || l->off[j] > l->off[j + 1] || l->off[j + 1] > (int64_t)nbytes) {
      st = IMF_RAISE(IMF_ERR_INPUT, "%s: %s is not a valid offset list",
                         path, no);
      break;
    }
out:
  if (db >= 0) H5Dclose(db);
  if (dof >= 0) H5Dclose(dof);
  if (st != IMF_OK) imf_idlist_free(l);
  return st;
}

static imf_status bcast_idlist(MPI_Comm comm, int rank, imf_idlist *l) {
  int64_t n = l->n, bytes = rank == 0 ? l->off[l->n] : 0, offbytes = (n + 1) * 8;
  IMF_MPI(MPI_Bcast(&n, 1, MPI_INT64_T, 0, comm));
  l->n = n;
  char *o = (char *)l->off;
  offbytes = (n + 1) * 8;
  IMF_CHECK(store_bcast_bytes(comm, 0, &o, &offbytes));
  l->off = (int64_t *)o;
  IMF_CHECK(store_bcast_bytes(comm, 0, &l->blob, &bytes));
  return IMF_OK;
}

/* Append list b to list a (a's arrays grown; b is left as it was). */
static imf_status idlist_append(imf_idlist *a, const imf_idlist *b) {
  const int64_t bytes = a->n ? a->off[a->n] : 0, add = b->off[b->n];
  IMF_CHECK(imf_realloc(&a->off, (size_t)(a->n + b->n + 1), sizeof *a->off));
  IMF_CHECK(imf_realloc(&a->blob, (size_t)(bytes + add + 1), 1));
  if (a->n == 0) a->off[0] = 0;
  for (int64_t j = 1; j <= b->n; j++) a->off[a->n + j] = bytes + b->off[j];
  memcpy(a->blob + bytes, b->blob, (size_t)add);
  a->n += b->n;
  return IMF_OK;
}

/* The id lists on every rank (every = 1) or on rank 0 alone (the others get empty lists). */
static imf_status load_idlists(imf_store *s, imf_idlist *users, imf_idlist *items, int every) {
  imf_status st = IMF_OK;
  memset(users, 0, sizeof *users);
  memset(items, 0, sizeof *items);
  for (int64_t k = 1; k <= s->m.nbatches; k++) {
    imf_idlist lu = {0}, li = {0};
    char path[4200];
    store_batch_path(s, k, path, sizeof path, 0);
    if (s->rank == 0) {
      /* One reader and a broadcast: the id lists are small next to the ratings, and this spares
       * the file system N identical reads. */
      imf_h5_quiet();
      hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
      if (f < 0) {
        imf_h5_reason();
        st = IMF_RAISE(IMF_ERR_INPUT, store_path_exists(path) ? "%s is not a readable HDF5 file (truncated or corrupt?): the "
                                               "store is damaged; restore that file from a backup or re-run prepare"
                                             : "%s is missing: the store is damaged (restore it or re-run prepare)",
                           path);
      } else {
        st = store_batch_check(f, path, s->m.b[k - 1].digest);
        if (st == IMF_OK) st = read_idlist(f, path, "user", &lu);
        if (st == IMF_OK) st = read_idlist(f, path, "item", &li);
        H5Fclose(f);
      }
    }
    st = imf_agree(s->comm, st);
    if (st == IMF_OK && every) st = bcast_idlist(s->comm, s->rank, &lu);
    if (st == IMF_OK && every) st = bcast_idlist(s->comm, s->rank, &li);
    const int keep = every || s->rank == 0;
    if (st == IMF_OK && keep &&
        (users->n + lu.n != s->m.b[k - 1].users_after || items->n + li.n != s->m.b[k - 1].items_after))
      st = IMF_RAISE(IMF_ERR_INPUT, "%s: id lists do not match the manifest counts", path);
    if (st == IMF_OK && keep) st = idlist_append(users, &lu);
    if (st == IMF_OK && keep) st = idlist_append(items, &li);
    imf_idlist_free(&lu);
    imf_idlist_free(&li);
    st = imf_agree(s->comm, st);
    if (st != IMF_OK) break;
  }
  if (st == IMF_OK) { /* no batches, or not rank 0: empty lists (the agreement is every rank's) */
    if (!users->off) st = imf_alloc(&users->off, 1, sizeof *users->off);
    if (st == IMF_OK && !items->off) st = imf_alloc(&items->off, 1, sizeof *items->off);
    st = imf_agree(s->comm, st);
  }
  if (st != IMF_OK) {
    imf_idlist_free(users);
    imf_idlist_free(items);
  }
  return st;
}

imf_status imf_store_load_idlists(imf_store *s, imf_idlist *users, imf_idlist *items) {
  return load_idlists(s, users, items, 1);
}

imf_status imf_store_load_idlists_root(imf_store *s, imf_idlist *users, imf_idlist *items) {
  return load_idlists(s, users, items, 0);
}

imf_status imf_store_load_idmaps(imf_store *s, imf_idmap *users, imf_idmap *items) {
  imf_status st = IMF_OK;
  if (imf_idmap_size(users) != 0 || imf_idmap_size(items) != 0)
    st = IMF_RAISE(IMF_ERR_RUNTIME, "imf_store_load_idmaps needs empty maps");
  IMF_CHECK(imf_agree(s->comm, st));
  imf_idlist lu = {0}, li = {0};
  IMF_CHECK(imf_store_load_idlists(s, &lu, &li));
  /* sized once: growing the table while inserting rehashes it log2(n) times */
  st = imf_idmap_reserve(users, lu.n, lu.off[lu.n]);
  if (st == IMF_OK) st = imf_idmap_reserve(items, li.n, li.off[li.n]);
  if (st == IMF_OK) st = imf_idmap_add_list(users, &lu);
  if (st == IMF_OK) st = imf_idmap_add_list(items, &li);
  imf_idlist_free(&lu);
  imf_idlist_free(&li);
  return imf_agree(s->comm, st);
}

/* ------------------------------------------------------------------------------------------ */
/* the superseded count of a batch being written                                              */

/* Superseded: ratings of this batch whose (user,item) an earlier batch already holds. Only
 * users known before this batch can repeat a pair, and only their rows of earlier batches are
 * read, located through each batch's /index. */

/* Rows one window of the superseded reads may span (4-byte items: 16 MB). IMF_SUPERSEDE_WINDOW
 * overrides it (tests use a tiny one to exercise many windows on small data). */
static hsize_t supersede_window(void) {
  const char *e = getenv("IMF_SUPERSEDE_WINDOW");
  long long v = e ? atoll(e) : 0;
  return v > 0 ? (hsize_t)v : (hsize_t)1 << 22;
}

typedef struct {
  hsize_t a, b;
} sup_window;

/* One superseded count: the new batch's touched users (known before it) and a flag per row,
 * and, for the earlier batch being read, the index slice of those users, their row runs and the
 * windows the runs are read in. */
typedef struct {
  imf_store *s;
  const imf_ratings *r;  /* the new batch's rows on this rank */
  unsigned char *flag;   /* per row: an earlier batch holds its pair */
  int32_t *tu;           /* touched users, ascending */
  int64_t *tstart, ntu;  /* their first rows in r */
  int32_t *slice_u;      /* batch k: /index/user entries [pa, pa + ns) */
  int64_t *slice_p;      /* and their /index/user_ptr offsets (ns + 1) */
  hsize_t ns, nruns, nread;
  hsize_t *run0, *run1;  /* merged row ranges of the touched users */
  hsize_t *match_row;    /* per matched user (in row order): first row, */
  int64_t *match_t, nmatch; /* and its touched-user position */
  sup_window *win;
  int64_t nwin;
  int32_t *items;        /* one window of /ratings/item */
  hid_t ind, coll;
} sup_ctx;

static void sup_free(sup_ctx *x) {
  if (x->ind > 0) H5Pclose(x->ind);
  if (x->coll > 0) H5Pclose(x->coll);
  imf_free(&x->flag);
  imf_free(&x->tu);
  imf_free(&x->tstart);
  imf_free(&x->items);
  imf_free(&x->slice_u);
  imf_free(&x->slice_p);
  imf_free(&x->run0);
  imf_free(&x->run1);
  imf_free(&x->match_row);
  imf_free(&x->match_t);
  imf_free(&x->win);
}

/* The touched users: this rank's users of the batch known before it (local). */
static imf_status sup_touched(sup_ctx *x, int64_t users_before) {
  const imf_ratings *r = x->r;
  int64_t nknown = 0;
  for (int64_t j = 0; j < r->n; j++)
    nknown += r->user[j] < users_before && (j == 0 || r->user[j] != r->user[j - 1]);
  IMF_CHECK(imf_alloc(&x->flag, (size_t)r->n + 1, 1));
  IMF_CHECK(imf_alloc(&x->tu, (size_t)nknown + 1, sizeof *x->tu));
  IMF_CHECK(imf_alloc(&x->tstart, (size_t)nknown + 2, sizeof *x->tstart));
  for (int64_t j = 0; j < r->n; j++)
    if (r->user[j] < users_before && (j == 0 || r->user[j] != r->user[j - 1])) {
      x->tu[x->ntu] = r->user[j];
      x->tstart[x->ntu++] = j;
    }
  return IMF_OK;
}

/* Collective: the slice of batch h's /index/user covering the touched users, with its offsets. */
static imf_status sup_slice(sup_ctx *x, const batch_h *h, const char *path) {
  imf_status st = IMF_OK;
  hsize_t pa = 0, pb = 0;
  if (x->ntu > 0 && h->nindex > 0) {
    st = store_lower_bound(h->iuser, h->nindex, x->tu[0], x->ind, path, &pa);
    if (st == IMF_OK) st = store_lower_bound(h->iuser, h->nindex, (int64_t)x->tu[x->ntu - 1] + 1, x->ind, path, &pb);
  }
  x->ns = pb > pa ? pb - pa : 0;
  if (st == IMF_OK) st = imf_realloc(&x->slice_u, x->ns + 1, sizeof *x->slice_u);
  if (st == IMF_OK) st = imf_realloc(&x->slice_p, x->ns + 2, sizeof *x->slice_p);
  if (st != IMF_OK) x->ns = 0;
  IMF_CHECK(imf_agree(x->s->comm, st));
  /* both collective reads run on every rank whatever the first returned */
  const hsize_t ns = x->ns;
  imf_status s1 = imf_h5_read_1d(h->iuser, H5T_NATIVE_INT32, pa, ns, x->slice_u, x->coll, path, "/index/user");
  imf_status s2 = imf_h5_read_1d(h->iptr, H5T_NATIVE_INT64, pa, ns ? ns + 1 : 0, x->slice_p, x->coll, path,
                                 "/index/user_ptr");
  return imf_agree(x->s->comm, s1 != IMF_OK ? s1 : s2);
}

/* Match the touched users against the slice: their row ranges in batch h, merged into runs
 * where adjacent (local). */
static imf_status sup_match(sup_ctx *x, const batch_h *h, const char *path) {
  x->nruns = 0;
  x->nmatch = 0;
  IMF_CHECK(imf_realloc(&x->run0, (size_t)x->ntu + 1, sizeof *x->run0));
  IMF_CHECK(imf_realloc(&x->run1, (size_t)x->ntu + 1, sizeof *x->run1));
  IMF_CHECK(imf_realloc(&x->match_row, (size_t)x->ntu + 1, sizeof *x->match_row));
  IMF_CHECK(imf_realloc(&x->match_t, (size_t)x->ntu + 1, sizeof *x->match_t));
  hsize_t q = 0;
  for (int64_t t = 0; t < x->ntu && q < x->ns; t++) {
    while (q < x->ns && x->slice_u[q] < x->tu[t]) q++;
    if (q < x->ns && x->slice_u[q] == x->tu[t]) {
      hsize_t a = (hsize_t)x->slice_p[q], e = (hsize_t)x->slice_p[q + 1];
      if (e == a) continue; /* no rows: nothing to match */
      if (e < a || e > h->nrows) IMF_FAIL(IMF_ERR_INPUT, "%s: /index/user_ptr is inconsistent", path);
      x->match_t[x->nmatch] = t;
      x->match_row[x->nmatch++] = a;
      if (x->nruns > 0 && x->run1[x->nruns - 1] == a) x->run1[x->nruns - 1] = e;
      else {
        x->run0[x->nruns] = a;
        x->run1[x->nruns++] = e;
      }
    }
  }
  return IMF_OK;
}

/* The touched users' rows are read in windows: consecutive runs grouped while the window spans
 * at most supersede_window() rows (a single longer run is a window of its own), one contiguous
 * collective read each, gaps inside a window read and ignored. A union of per-run hyperslabs
 * would read only the runs, but building one costs HDF5 1.10 time quadratic in the number of
 * runs (11 s for 40k runs per rank, measured on a 5M store). (local) */
static imf_status sup_windows(sup_ctx *x) {
  const hsize_t window = supersede_window();
  x->nwin = 0;
  x->nread = 0;
  IMF_CHECK(imf_realloc(&x->win, (size_t)x->nruns + 1, sizeof *x->win));
  for (hsize_t q = 0; q < x->nruns;) {
    hsize_t w0 = x->run0[q], w1 = x->run1[q];
    q++;
    while (q < x->nruns && x->run1[q] - w0 <= window) w1 = x->run1[q++];
    x->win[x->nwin].a = w0;
    x->win[x->nwin].b = w1;
    if (w1 - w0 > x->nread) x->nread = w1 - w0;
    x->nwin++;
  }
  return imf_realloc(&x->items, x->nread + 1, sizeof *x->items);
}

/* Flag the rows of the new batch whose pair the matched user m has in window w0 (items read). */
static void sup_flag_user(sup_ctx *x, int64_t m, hsize_t w0) {
  const imf_ratings *r = x->r;
  const int64_t t = x->match_t[m];
  const hsize_t base = x->match_row[m] - w0;
  /* this user's rows in the new batch */
  int64_t j = x->tstart[t], jend = j;
  while (jend < r->n && r->user[jend] == x->tu[t]) jend++;
  /* the earlier batch's rows for the user end where its ptr says: find the slice entry again
   * (slice_u is sorted: binary search) */
  hsize_t lo = 0, hi = x->ns;
  while (lo < hi) {
    hsize_t mid = (lo + hi) / 2;
    if (x->slice_u[mid] < x->tu[t]) lo = mid + 1;
    else hi = mid;
  }
  const hsize_t len = (hsize_t)(x->slice_p[lo + 1] - x->slice_p[lo]);
  hsize_t e = 0;
  while (j < jend && e < len) {
    int32_t ei = x->items[base + e];
    if (ei < r->item[j]) e++;
    else if (ei > r->item[j]) j++;
    else {
      x->flag[j] = 1;
      j++;
      e++;
    }
  }
}

/* Collective: every rank reads its windows of batch h's /ratings/item (nwin_all rounds, the
 * most any rank has; empty selections past its own) and flags the pairs found. */
static imf_status sup_read_windows(sup_ctx *x, const batch_h *h, int64_t nwin_all, const char *path) {
  imf_status st = IMF_OK;
  int64_t m = 0; /* matches are in row order: each window takes the next ones */
  for (int64_t w = 0; w < nwin_all; w++) {
    hsize_t w0 = w < x->nwin ? x->win[w].a : 0, cnt = w < x->nwin ? x->win[w].b - x->win[w].a : 0;
    if (imf_h5_xfer_1d(h->item, H5T_NATIVE_INT32, w0, cnt, x->items, x->coll, 0) < 0 && st == IMF_OK)
      st = IMF_RAISE(IMF_ERR_RUNTIME, "%s: cannot read /ratings/item: %s", path,
                         imf_h5_last());
    for (; st == IMF_OK && cnt > 0 && m < x->nmatch && x->match_row[m] < w0 + cnt; m++) sup_flag_user(x, m, w0);
  }
  return st;
}

/* Batch k's part of the count: its rows of the touched users read and matched (collective). */
static imf_status sup_batch(sup_ctx *x, int64_t k) {
  imf_store *s = x->s;
  batch_h h;
  char path[4200];
  store_batch_path(s, k, path, sizeof path, 0);
  IMF_CHECK(store_batch_h_open(s, k, &h));
  imf_status st = sup_slice(x, &h, path);
  int64_t nwin_all = 0;
  if (st == IMF_OK) {
    st = sup_match(x, &h, path);
    if (st == IMF_OK) st = sup_windows(x);
    if (st != IMF_OK) x->nwin = 0;
    st = imf_agree(s->comm, st);
  }
  if (st == IMF_OK && MPI_Allreduce(&x->nwin, &nwin_all, 1, MPI_INT64_T, MPI_MAX, s->comm) != MPI_SUCCESS)
    st = IMF_RAISE(IMF_ERR_RUNTIME, "MPI_Allreduce failed (superseded windows)");
  if (st == IMF_OK) st = imf_agree(s->comm, sup_read_windows(x, &h, nwin_all, path));
  store_batch_h_close(&h);
  return st;
}

imf_status store_count_superseded(imf_store *s, const imf_batch *b, int64_t *out) {
  *out = 0;
  /* A first batch, or one after batches without users, has nothing to supersede (the same on
   * every rank: the manifest is replicated). Its buffers would be 13 bytes a row of zeroed
   * memory: 0.5 s of a 42M-rating prepare. */
  if (s->m.nbatches == 0 || b->users_before == 0) return IMF_OK;
  sup_ctx x;
  memset(&x, 0, sizeof x);
  x.s = s;
  x.r = &b->r;
  x.ind = imf_h5_dxpl(0);
  x.coll = imf_h5_dxpl(1);
  imf_status st = sup_touched(&x, b->users_before);
  for (int64_t k = 1; k <= s->m.nbatches; k++) {
    IMF_TRY(imf_agree(s->comm, st), done);
    IMF_TRY(sup_batch(&x, k), done);
  }
  IMF_TRY(imf_agree(s->comm, st), done);
  int64_t local = 0;
  for (int64_t j = 0; j < b->r.n; j++) local += x.flag[j];
  if (MPI_Allreduce(&local, out, 1, MPI_INT64_T, MPI_SUM, s->comm) != MPI_SUCCESS)
    st = IMF_RAISE(IMF_ERR_RUNTIME, "MPI_Allreduce failed (superseded)");
done:
  sup_free(&x);
  return st;
}
