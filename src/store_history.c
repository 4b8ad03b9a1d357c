/* store_history.c - the full histories of chosen users and items for fold-in
 * (imf_store_read_histories): a first pass over the batches locates their rows through the
 * per-user and per-item indexes and plans the runs to read, a second reads them into place, and
 * each row's pairs are then resolved as imf_store_read_ratings resolves them. Private helpers:
 * store_impl.h. */
#include "store_impl.h"
#include "error.h"
#include "fsio.h"
#include "log.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* One raw row of a history, from batch `tag`. */
typedef struct {
  int32_t u, i;
  float v;
  int32_t tag;
  int64_t t;
} hrow;

/* The raw rows of one side (the users' or the items' histories), grouped by slot (the row's
 * position in the caller's list): slot j's rows are r[start[j] .. start[j+1]), filled up to
 * fill[j]. The store's indexes give every slot's row count before a row is read, so each row is
 * placed once, where it belongs, in the order it is read (batch order). */
typedef struct {
  hrow *r;
  int64_t *start, *fill, nslots;
} hrows;

/* Room for n slots of cnt[0..n) rows each, every slot's fill at its start. */
static imf_status hrows_place(hrows *h, const int64_t *cnt, int64_t n) {
  IMF_CHECK(imf_alloc_nz(&h->start, (size_t)n + 1, sizeof *h->start));
  IMF_CHECK(imf_alloc_nz(&h->fill, (size_t)n + 1, sizeof *h->fill));
  h->nslots = n;
  int64_t tot = 0;
  for (int64_t j = 0; j < n; j++) {
    h->start[j] = h->fill[j] = tot;
    tot += cnt[j];
  }
  h->start[n] = tot;
  if (tot > 0) IMF_CHECK(imf_alloc_nz(&h->r, (size_t)tot, sizeof *h->r));
  return IMF_OK;
}

/* A row that is not where its batch's index put it (or is missing): a damaged store. */
static imf_status index_disagrees(const char *path) {
  return IMF_RAISE(IMF_ERR_INPUT, "%s: the ratings disagree with the per-user or per-item "
                       "index: the store is damaged (restore it from a backup or re-run prepare)", path);
}

static void hrows_free(hrows *h) {
  imf_free(&h->r);
  imf_free(&h->start);
  imf_free(&h->fill);
}

/* The store's duplicate rule over rows g[0..n) of one pair in batch order (as
 * imf_store_read_ratings resolves them). */
static void resolve_pair(const hrow *g, int64_t n, int policy, float *v, int64_t *t) {
  *v = g[0].v;
  *t = g[0].t;
  if (n < 2) return;
  if (policy == 0) {
    for (int64_t c = 1; c < n; c++)
      if (g[c].t >= *t) {
        *t = g[c].t;
        *v = g[c].v;
      }
  } else if (policy == 2) {
    double sum = 0;
    for (int64_t c = 0; c < n; c++) {
      sum += g[c].v;
      if (g[c].t > *t) *t = g[c].t;
    }
    *v = (float)(sum / (double)n);
  }
}

/* Stable natural merge sort of g[0..n) by the other index (item for a user's history, user for
 * an item's); scratch holds n rows. A slot's rows arrive as one ascending run per batch (a batch
 * is sorted by (user, item) and holds a pair once), so this is a merge of a few runs, and
 * nothing when the slot is in one batch; any order still sorts (a damaged file). */
static void hrows_sort(hrow *g, int64_t n, int by_item, hrow *scratch) {
#define HKEY(x) (by_item ? (x).u : (x).i)
  int64_t nruns = 1;
  for (int64_t j = 1; j < n; j++) nruns += HKEY(g[j]) < HKEY(g[j - 1]);
  if (nruns <= 1) return;
  hrow *src = g, *dst = scratch;
  while (nruns > 1) {
    int64_t out = 0, a = 0;
    nruns = 0;
    while (a < n) {
      int64_t m = a + 1;
      while (m < n && HKEY(src[m]) >= HKEY(src[m - 1])) m++;
      int64_t e = m < n ? m + 1 : n;
      while (e < n && HKEY(src[e]) >= HKEY(src[e - 1])) e++;
      int64_t x = a, y = m; /* merge [a, m) and [m, e): ties from the left, so batch order holds */
      while (x < m && y < e) dst[out++] = HKEY(src[y]) < HKEY(src[x]) ? src[y++] : src[x++];
      while (x < m) dst[out++] = src[x++];
      while (y < e) dst[out++] = src[y++];
      nruns++;
      a = e;
    }
    hrow *t = src;
    src = dst;
    dst = t;
  }
  if (src != g) memcpy(g, src, (size_t)n * sizeof *g);
#undef HKEY
}

void imf_history_free(imf_history *h) {
  imf_free(&h->ptr);
  imf_free(&h->other);
  imf_free(&h->value);
  imf_free(&h->old);
  h->n = 0;
}

/* Each slot's rows into (other index, batch) order, then the pairs resolved by the store's
 * duplicate rule into `out`, slot by slot. */
static imf_status hrows_resolve(const imf_store *s, hrows *h, int by_item, int64_t seen, imf_history *out) {
  memset(out, 0, sizeof *out);
  const int64_t n = h->nslots > 0 ? h->start[h->nslots] : 0;
  int64_t big = 0;
  for (int64_t j = 0; j < h->nslots; j++)
    if (h->start[j + 1] - h->start[j] > big) big = h->start[j + 1] - h->start[j];
  hrow *scratch = NULL;
  imf_status st = imf_alloc_nz(&scratch, (size_t)big + 1, sizeof *scratch);
  if (st == IMF_OK) st = imf_alloc_nz(&out->ptr, (size_t)h->nslots + 1, sizeof *out->ptr);
  if (st == IMF_OK) st = imf_alloc_nz(&out->other, (size_t)n + 1, sizeof *out->other);
  if (st == IMF_OK) st = imf_alloc_nz(&out->value, (size_t)n + 1, sizeof *out->value);
  if (st == IMF_OK) st = imf_alloc_nz(&out->old, (size_t)n + 1, sizeof *out->old);
  if (st != IMF_OK) goto done;
  out->n = h->nslots;
  const int policy = store_dup_policy(s);
  int64_t w = 0;
  for (int64_t j = 0; j < h->nslots; j++) {
    out->ptr[j] = w;
    const int64_t b = h->start[j + 1] - h->start[j];
    if (b == 0) continue; /* h->r is NULL when no slot has a row: no pointer arithmetic on it */
    hrow *g = h->r + h->start[j];
    hrows_sort(g, b, by_item, scratch);
    for (int64_t c = 0; c < b;) {
      int64_t e = c + 1;
      while (e < b && g[e].u == g[c].u && g[e].i == g[c].i) e++;
      if (!imf_store_is_forgotten(s, g[c].u)) {
        float v;
        int64_t t, m = 0;
        resolve_pair(g + c, e - c, policy, &v, &t);
        while (c + m < e && g[c + m].tag <= seen) m++;
        float ov = NAN;
        if (m > 0) {
          int64_t ot;
          resolve_pair(g + c, m, policy, &ov, &ot);
        }
        out->other[w] = by_item ? g[c].u : g[c].i;
        out->value[w] = v;
        out->old[w++] = ov;
      }
      c = e;
    }
  }
  out->ptr[h->nslots] = w;
done:
  imf_free(&scratch);
  if (st != IMF_OK) imf_history_free(out);
  return st;
}

#define HIST_CHUNK ((hsize_t)1 << 20) /* rows per read */
#define HIST_GAP ((hsize_t)16384)     /* rows between two needed runs still read through */

typedef struct {
  hsize_t a, b;
} hrun;

/* One batch's part of a history read: the row runs to read (planned in a first pass over the
 * batches, which also counts every slot's rows, then read in a second; each pass opens the
 * batch files one at a time, since a store may hold more batches than a process may open). */
typedef struct {
  hrun *runs;
  int64_t nruns;
} hplan;

static int cmp_i64(const void *pa, const void *pb) {
  int64_t a = *(const int64_t *)pa, b = *(const int64_t *)pb;
  return (a > b) - (a < b);
}

/* One history read: the rows asked for (each user's and item's slot in the caller's lists), the
 * plan of every batch, the rows placed by slot, and the buffers both passes reuse. */
typedef struct {
  imf_store *s;
  const int32_t *users, *items;
  int64_t nu, ni;
  int32_t *uslot, *islot;       /* slot of each user / item index; -1: not asked for */
  int64_t *cnt_u, *cnt_i;       /* rows per slot, from the indexes */
  hplan *plans;                 /* one per batch */
  hrows HU, HI;                 /* the rows, placed by slot */
  size_t chunk;                 /* rows per read: never more than the largest batch */
  hid_t ind;                    /* independent transfers: every rank reads its own rows */
  int32_t *su, *cu;             /* first pass: slices of the user and item indexes */
  int64_t *sp, *cp, *pos, *pbuf;
  hrun *ur, *ir, *runs;         /* first pass: user ranges, item ranges, the runs to read */
  int32_t *bu, *bi;             /* second pass: one chunk of rows */
  float *bv;
  int64_t *bt;
} hread;

static void hread_free(hread *x) {
  if (x->ind > 0) H5Pclose(x->ind);
  imf_free(&x->uslot);
  imf_free(&x->islot);
  imf_free(&x->su);
  imf_free(&x->cu);
  imf_free(&x->sp);
  imf_free(&x->cp);
  imf_free(&x->pos);
  imf_free(&x->pbuf);
  imf_free(&x->ur);
  imf_free(&x->ir);
  imf_free(&x->runs);
  imf_free(&x->bu);
  imf_free(&x->bi);
  imf_free(&x->bv);
  imf_free(&x->bt);
  hrows_free(&x->HU);
  hrows_free(&x->HI);
  imf_free(&x->cnt_u);
  imf_free(&x->cnt_i);
  if (x->plans)
    for (int64_t k = 0; k < x->s->m.nbatches; k++) imf_free(&x->plans[k].runs);
  imf_free(&x->plans);
}

/* The buffers and the slot maps, checking the lists are ascending and in range (local). */
static imf_status hread_init(hread *x) {
  const imf_store *s = x->s;
  const int64_t NU = s->m.users, NI = s->m.items;
  x->ind = imf_h5_dxpl(0);
  x->chunk = 1; /* imf_alloc_nz: no zeroing pass */
  for (int64_t k = 0; k < s->m.nbatches; k++)
    if ((size_t)s->m.b[k].rows > x->chunk) x->chunk = (size_t)s->m.b[k].rows;
  if (x->chunk > HIST_CHUNK) x->chunk = HIST_CHUNK;
  IMF_CHECK(imf_alloc_nz(&x->uslot, (size_t)NU + 1, sizeof *x->uslot));
  IMF_CHECK(imf_alloc_nz(&x->islot, (size_t)NI + 1, sizeof *x->islot));
  IMF_CHECK(imf_alloc_nz(&x->bu, x->chunk, sizeof *x->bu));
  IMF_CHECK(imf_alloc_nz(&x->bi, x->chunk, sizeof *x->bi));
  IMF_CHECK(imf_alloc_nz(&x->bv, x->chunk, sizeof *x->bv));
  IMF_CHECK(imf_alloc_nz(&x->bt, x->chunk, sizeof *x->bt));
  IMF_CHECK(imf_alloc_nz(&x->pbuf, x->chunk, sizeof *x->pbuf));
  IMF_CHECK(imf_alloc(&x->plans, (size_t)s->m.nbatches + 1, sizeof *x->plans));
  IMF_CHECK(imf_alloc(&x->cnt_u, (size_t)x->nu + 1, sizeof *x->cnt_u));
  IMF_CHECK(imf_alloc(&x->cnt_i, (size_t)x->ni + 1, sizeof *x->cnt_i));
  for (int64_t j = 0; j < NU; j++) x->uslot[j] = -1;
  for (int64_t j = 0; j < NI; j++) x->islot[j] = -1;
  for (int64_t j = 0; j < x->nu; j++) {
    if (x->users[j] < 0 || x->users[j] >= NU || (j && x->users[j] <= x->users[j - 1]))
      IMF_FAIL(IMF_ERR_USAGE, "read_histories: users not ascending in range");
    x->uslot[x->users[j]] = (int32_t)j;
  }
  for (int64_t j = 0; j < x->ni; j++) {
    if (x->items[j] < 0 || x->items[j] >= NI || (j && x->items[j] <= x->items[j - 1]))
      IMF_FAIL(IMF_ERR_USAGE, "read_histories: items not ascending in range");
    x->islot[x->items[j]] = (int32_t)j;
  }
  return IMF_OK;
}

/* This rank's users in batch h: their row ranges into x->ur (*nur), their rows counted per slot
 * and into *need. */
static imf_status plan_users(hread *x, const batch_h *h, const char *path, int64_t *nur, hsize_t *need) {
  const int64_t nu = x->nu, NU = x->s->m.users;
  if (nu == 0 || h->nindex == 0) return IMF_OK;
  hsize_t pa = 0, pb = 0;
  IMF_CHECK(store_lower_bound(h->iuser, h->nindex, x->users[0], x->ind, path, &pa));
  IMF_CHECK(store_lower_bound(h->iuser, h->nindex, (int64_t)x->users[nu - 1] + 1, x->ind, path, &pb));
  hsize_t ns = pb > pa ? pb - pa : 0;
  if (ns == 0) return IMF_OK;
  IMF_CHECK(imf_realloc(&x->su, ns, sizeof *x->su));
  IMF_CHECK(imf_realloc(&x->sp, ns + 1, sizeof *x->sp));
  IMF_CHECK(imf_realloc(&x->ur, ns, sizeof *x->ur));
  IMF_CHECK(imf_h5_read_1d(h->iuser, H5T_NATIVE_INT32, pa, ns, x->su, x->ind, path, "/index/user"));
  IMF_CHECK(imf_h5_read_1d(h->iptr, H5T_NATIVE_INT64, pa, ns + 1, x->sp, x->ind, path, "/index/user_ptr"));
  const int32_t *su = x->su;
  const int64_t *sp = x->sp;
  for (hsize_t q = 0; q < ns; q++) {
    if (su[q] < 0 || su[q] >= NU || x->uslot[su[q]] < 0) continue;
    if (sp[q] < 0 || sp[q + 1] < sp[q] || (hsize_t)sp[q + 1] > h->nrows)
      IMF_FAIL(IMF_ERR_INPUT, "%s: /index/user_ptr is inconsistent", path);
    if (sp[q + 1] == sp[q]) continue;
    x->ur[*nur].a = (hsize_t)sp[q];
    x->ur[(*nur)++].b = (hsize_t)sp[q + 1];
    x->cnt_u[x->uslot[su[q]]] += sp[q + 1] - sp[q];
    *need += (hsize_t)(sp[q + 1] - sp[q]);
  }
  return IMF_OK;
}

/* This rank's items in batch h (per-item index di, dp of dn entries): their ranges of
 * /index/item_pos into x->ir (*nir, adjacent ranges merged), their rows counted per slot and
 * into *need. */
static imf_status plan_items(hread *x, const batch_h *h, hid_t di, hid_t dp, hsize_t dn, const char *path,
                             int64_t *nir, hsize_t *need) {
  const int64_t ni = x->ni, NI = x->s->m.items;
  if (ni == 0 || dn == 0) return IMF_OK;
  hsize_t pa = 0, pb = 0;
  IMF_CHECK(store_lower_bound(di, dn, x->items[0], x->ind, path, &pa));
  IMF_CHECK(store_lower_bound(di, dn, (int64_t)x->items[ni - 1] + 1, x->ind, path, &pb));
  hsize_t ns = pb > pa ? pb - pa : 0;
  if (ns == 0) return IMF_OK;
  IMF_CHECK(imf_realloc(&x->cu, ns, sizeof *x->cu));
  IMF_CHECK(imf_realloc(&x->cp, ns + 1, sizeof *x->cp));
  IMF_CHECK(imf_realloc(&x->ir, ns, sizeof *x->ir));
  IMF_CHECK(imf_h5_read_1d(di, H5T_NATIVE_INT32, pa, ns, x->cu, x->ind, path, "/index/item"));
  IMF_CHECK(imf_h5_read_1d(dp, H5T_NATIVE_INT64, pa, ns + 1, x->cp, x->ind, path, "/index/item_ptr"));
  const int32_t *cu = x->cu;
  const int64_t *cp = x->cp;
  hrun *ir = x->ir;
  for (hsize_t q = 0; q < ns; q++) {
    if (cu[q] < 0 || cu[q] >= NI || x->islot[cu[q]] < 0) continue;
    if (cp[q] < 0 || cp[q + 1] < cp[q] || (hsize_t)cp[q + 1] > h->nrows)
      IMF_FAIL(IMF_ERR_INPUT, "%s: /index/item_ptr is inconsistent", path);
    if (cp[q + 1] == cp[q]) continue;
    x->cnt_i[x->islot[cu[q]]] += cp[q + 1] - cp[q];
    if (*nir > 0 && ir[*nir - 1].b == (hsize_t)cp[q]) ir[*nir - 1].b = (hsize_t)cp[q + 1];
    else {
      ir[*nir].a = (hsize_t)cp[q];
      ir[(*nir)++].b = (hsize_t)cp[q + 1];
    }
    *need += (hsize_t)(cp[q + 1] - cp[q]);
  }
  return IMF_OK;
}

/* The row positions of the item ranges x->ir[0..nir) (dataset dq, /index/item_pos), read in
 * grouped runs (gaps under HIST_GAP entries read through), checked against the batch's nrows
 * and sorted: x->pos[0..*npos). */
static imf_status plan_item_positions(hread *x, hid_t dq, int64_t nir, hsize_t nrows, const char *path,
                                      int64_t *npos) {
  const hrun *ir = x->ir;
  const size_t chunk = x->chunk;
  int64_t ipos = 0;
  for (int64_t q = 0; q < nir; q++) ipos += (int64_t)(ir[q].b - ir[q].a);
  IMF_CHECK(imf_realloc(&x->pos, (size_t)ipos + 1, sizeof *x->pos));
  int64_t *pos = x->pos;
  for (int64_t q = 0; q < nir;) {
    hsize_t g0 = ir[q].a, g1 = ir[q].b;
    int64_t qe = q + 1;
    while (qe < nir && ir[qe].a <= g1 + HIST_GAP && ir[qe].b - g0 <= chunk) g1 = ir[qe++].b;
    if (g1 - g0 > chunk) { /* one long range: in pieces */
      for (hsize_t a = g0; a < g1; a += chunk) {
        hsize_t c = g1 - a < chunk ? g1 - a : chunk;
        IMF_CHECK(imf_h5_read_1d(dq, H5T_NATIVE_INT64, a, c, pos + *npos, x->ind, path, "/index/item_pos"));
        *npos += (int64_t)c;
      }
    } else {
      IMF_CHECK(imf_h5_read_1d(dq, H5T_NATIVE_INT64, g0, g1 - g0, x->pbuf, x->ind, path, "/index/item_pos"));
      for (int64_t r = q; r < qe; r++) {
        memcpy(pos + *npos, x->pbuf + (ir[r].a - g0), (size_t)(ir[r].b - ir[r].a) * sizeof *pos);
        *npos += (int64_t)(ir[r].b - ir[r].a);
      }
    }
    q = qe;
  }
  for (int64_t r = 0; r < *npos; r++)
    if (pos[r] < 0 || (hsize_t)pos[r] >= nrows) IMF_FAIL(IMF_ERR_INPUT, "%s: /index/item_pos is inconsistent", path);
  qsort(pos, (size_t)*npos, sizeof *pos, cmp_i64);
  return IMF_OK;
}

/* The runs to read of a batch of nrows rows: when the rows needed are a good share of the
 * batch, all of it (one pass); otherwise the user ranges x->ur[0..nur) and the item rows,
 * located through /index/item_pos (dq), merged into runs. Into x->runs[0..*nruns). */
static imf_status plan_runs(hread *x, hid_t dq, hsize_t nrows, hsize_t need, int64_t nur, int64_t nir,
                            const char *path, int64_t *nruns) {
  *nruns = 0;
  if (need == 0) return IMF_OK;
  if (need * 4 >= nrows) {
    IMF_CHECK(imf_realloc(&x->runs, 1, sizeof *x->runs));
    x->runs[0].a = 0;
    x->runs[0].b = nrows;
    *nruns = 1;
    return IMF_OK;
  }
  int64_t npos = 0;
  IMF_CHECK(plan_item_positions(x, dq, nir, nrows, path, &npos));
  /* merge user ranges (ascending, disjoint) and item positions (ascending) into runs */
  IMF_CHECK(imf_realloc(&x->runs, (size_t)(nur + npos) + 1, sizeof *x->runs));
  const hrun *ur = x->ur;
  const int64_t *pos = x->pos;
  hrun *runs = x->runs;
  int64_t a = 0, b = 0;
  while (a < nur || b < npos) {
    hrun r;
    if (b >= npos || (a < nur && ur[a].a <= (hsize_t)pos[b])) r = ur[a++];
    else {
      r.a = (hsize_t)pos[b++];
      r.b = r.a + 1;
    }
    if (*nruns > 0 && r.a <= runs[*nruns - 1].b) {
      if (r.b > runs[*nruns - 1].b) runs[*nruns - 1].b = r.b;
    } else runs[(*nruns)++] = r;
  }
  return IMF_OK;
}

/* First pass, batch k (collective open; then every rank on its own): count this rank's rows per
 * slot and plan the runs to read into x->plans[k - 1]. IMF_ERR_NOTFOUND when the batch has no
 * per-item index. */
static imf_status plan_batch(hread *x, int64_t k) {
  imf_store *s = x->s;
  char path[4200];
  store_batch_path(s, k, path, sizeof path, 0);
  batch_h h;
  IMF_CHECK(store_batch_h_open(s, k, &h));
  hid_t di = -1, dp = -1, dq = -1;
  hsize_t dn = 0;
  imf_status st = IMF_OK;
  int has = H5Lexists(h.f, "/index/item_pos", H5P_DEFAULT) > 0;
  H5Eclear2(H5E_DEFAULT);
  if (!has)
    st = IMF_RAISE(IMF_ERR_NOTFOUND, "%s has no per-item index (written before incremf "
                       "stored one)", path);
  else {
    di = H5Dopen2(h.f, "/index/item", H5P_DEFAULT);
    dp = H5Dopen2(h.f, "/index/item_ptr", H5P_DEFAULT);
    dq = H5Dopen2(h.f, "/index/item_pos", H5P_DEFAULT);
    if (di < 0 || dp < 0 || dq < 0)
      st = IMF_RAISE(IMF_ERR_INPUT, "%s: cannot open its item index: %s", path, imf_h5_reason());
    if (st == IMF_OK) st = imf_h5_len_check(di, path, "/index/item", &dn);
  }
  st = imf_agree(s->comm, st); /* from here on every rank reads independently */
  int64_t nur = 0, nir = 0, nruns = 0;
  hsize_t need = 0;
  if (st == IMF_OK) st = plan_users(x, &h, path, &nur, &need);
  if (st == IMF_OK) st = plan_items(x, &h, di, dp, dn, path, &nir, &need);
  if (st == IMF_OK) st = plan_runs(x, dq, h.nrows, need, nur, nir, path, &nruns);
  if (st == IMF_OK) { /* this batch's plan: the runs to read */
    hplan *pl = &x->plans[k - 1];
    pl->nruns = nruns;
    if (nruns > 0) {
      pl->runs = x->runs; /* handed over */
      x->runs = NULL;
    }
  }
  if (di >= 0) H5Dclose(di);
  if (dp >= 0) H5Dclose(dp);
  if (dq >= 0) H5Dclose(dq);
  store_batch_h_close(&h);
  return st;
}

/* Rows [a, a + c) of batch k just read into x->bu.. : those inside runs rr[q..qe) go to their
 * users' and items' slots, each checked against the batch's counts and the indexes' promises. */
static imf_status place_rows(hread *x, int64_t k, const hrun *rr, int64_t q, int64_t qe, hsize_t a, hsize_t c,
                             const char *path) {
  const batch_meta *bm = &x->s->m.b[k - 1];
  hrows *HU = &x->HU, *HI = &x->HI;
  for (int64_t r = q; r < qe; r++) {
    hsize_t r0 = rr[r].a > a ? rr[r].a : a, r1 = rr[r].b < a + c ? rr[r].b : a + c;
    for (hsize_t p = r0; p < r1; p++) {
      hsize_t o = p - a;
      int32_t u = x->bu[o], i = x->bi[o];
      if (u < 0 || u >= bm->users_after || i < 0 || i >= bm->items_after)
        IMF_FAIL(IMF_ERR_INPUT, "%s is corrupt: a rating names user %d and item %d, outside the batch's users and "
                 "items: restore that file from a backup or re-run prepare", path, u, i);
      const hrow hr = {u, i, x->bv[o], (int32_t)k, x->bt[o]};
      const int32_t a1 = x->uslot[u], a2 = x->islot[i];
      if ((a1 >= 0 && HU->fill[a1] >= HU->start[a1 + 1]) || (a2 >= 0 && HI->fill[a2] >= HI->start[a2 + 1]))
        return index_disagrees(path);
      if (a1 >= 0) HU->r[HU->fill[a1]++] = hr;
      if (a2 >= 0) HI->r[HI->fill[a2]++] = hr;
    }
  }
  return IMF_OK;
}

/* Second pass, batch k: read its planned runs in groups (gaps under HIST_GAP rows read
 * through) and keep the rows of this rank's users and items. */
static imf_status read_batch_runs(hread *x, int64_t k) {
  const hplan *pl = &x->plans[k - 1];
  const hrun *rr = pl->runs;
  const int64_t nruns = pl->nruns;
  const size_t chunk = x->chunk;
  char path[4200];
  store_batch_path(x->s, k, path, sizeof path, 0);
  batch_h h;
  IMF_CHECK(store_batch_h_open(x->s, k, &h));
  imf_status st = IMF_OK;
  for (int64_t q = 0; st == IMF_OK && q < nruns;) {
    hsize_t g0 = rr[q].a, g1 = rr[q].b;
    int64_t qe = q + 1;
    while (qe < nruns && rr[qe].a <= g1 + HIST_GAP && rr[qe].b - g0 <= chunk) g1 = rr[qe++].b;
    for (hsize_t a = g0; st == IMF_OK && a < g1; a += chunk) {
      hsize_t c = g1 - a < chunk ? g1 - a : chunk;
      st = imf_h5_read_1d(h.user, H5T_NATIVE_INT32, a, c, x->bu, x->ind, path, "/ratings/user");
      if (st == IMF_OK) st = imf_h5_read_1d(h.item, H5T_NATIVE_INT32, a, c, x->bi, x->ind, path, "/ratings/item");
      if (st == IMF_OK) st = imf_h5_read_1d(h.value, H5T_NATIVE_FLOAT, a, c, x->bv, x->ind, path, "/ratings/value");
      if (st == IMF_OK) st = imf_h5_read_1d(h.time, H5T_NATIVE_INT64, a, c, x->bt, x->ind, path, "/ratings/time");
      if (st == IMF_OK) st = place_rows(x, k, rr, q, qe, a, c, path);
    }
    q = qe;
  }
  store_batch_h_close(&h);
  return st;
}

imf_status imf_store_read_histories(imf_store *s, const int32_t *users, int64_t nu, const int32_t *items,
                                    int64_t ni, int64_t seen, imf_history *uh, imf_history *ih) {
  memset(uh, 0, sizeof *uh);
  memset(ih, 0, sizeof *ih);
  hread x;
  memset(&x, 0, sizeof x);
  x.s = s;
  x.users = users;
  x.items = items;
  x.nu = nu;
  x.ni = ni;
  imf_status st = hread_init(&x);
  for (int64_t k = 1; k <= s->m.nbatches; k++) {
    IMF_TRY(imf_agree(s->comm, st), done);
    st = plan_batch(&x, k);
  }
  /* Room for every batch's rows at once, each slot's where it belongs (the indexes counted
   * them): growing per batch copied the rows read so far into fresh pages each time, and two
   * counting sorts through a second copy cost as much again — on a virtual machine, first
   * touches of fresh pages were most of a fold-in's read. */
  IMF_TRY(imf_agree(s->comm, st), done);
  st = hrows_place(&x.HU, x.cnt_u, nu);
  if (st == IMF_OK) st = hrows_place(&x.HI, x.cnt_i, ni);
  for (int64_t k = 1; k <= s->m.nbatches; k++) {
    IMF_TRY(imf_agree(s->comm, st), done);
    st = read_batch_runs(&x, k);
  }
  for (int64_t j = 0; st == IMF_OK && j < nu; j++)
    if (x.HU.fill[j] != x.HU.start[j + 1]) st = index_disagrees(s->dir);
  for (int64_t j = 0; st == IMF_OK && j < ni; j++)
    if (x.HI.fill[j] != x.HI.start[j + 1]) st = index_disagrees(s->dir);
  IMF_TRY(imf_agree(s->comm, st), done);
  st = hrows_resolve(s, &x.HU, 0, seen, uh);
  if (st == IMF_OK) {
    hrows_free(&x.HU); /* its memory goes to the items' side */
    st = hrows_resolve(s, &x.HI, 1, seen, ih);
  }
done:
  hread_free(&x);
  st = imf_agree(s->comm, st);
  if (st != IMF_OK) {
    imf_history_free(uh);
    imf_history_free(ih);
  }
  return st;
}
