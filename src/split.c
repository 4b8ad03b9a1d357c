/* split.c - datasets by user range and the split protocols (see split.h). */
#include "split.h"
#include "config.h"
#include "error.h"
#include "ingest.h"
#include "partition.h"
#include "rng.h"
#include "store.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void imf_dataset_free(imf_dataset *d) {
  imf_ratings_free(&d->r);
  imf_idmap_destroy(&d->users);
  imf_idmap_destroy(&d->items);
  memset(d, 0, sizeof *d);
}

void imf_user_range(MPI_Comm comm, int64_t n, int64_t *lo, int64_t *hi) {
  int rank, size;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  *lo = n * rank / size;
  *hi = n * (rank + 1) / size;
}

double imf_split_u01(uint64_t seed, int64_t a, int64_t b) {
  return (double)(imf_hash3(seed, (uint64_t)a, (uint64_t)b) >> 11) * 0x1.0p-53;
}

static int cmp_rating(const void *a, const void *b, void *ctx) {
  const imf_ratings *r = ctx;
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  if (r->user[x] != r->user[y]) return r->user[x] < r->user[y] ? -1 : 1;
  if (r->item[x] != r->item[y]) return r->item[x] < r->item[y] ? -1 : 1;
  return (x > y) - (x < y);
}

/* Sort by (user, item) through a permutation (qsort_r: glibc). */
static imf_status sort_ratings(imf_ratings *r) {
  int64_t *perm = NULL;
  imf_ratings o = {0};
  imf_status st = IMF_OK;
  IMF_TRY(imf_alloc(&perm, (size_t)(r->n ? r->n : 1), sizeof *perm), out);
  for (int64_t j = 0; j < r->n; j++) perm[j] = j;
  qsort_r(perm, (size_t)r->n, sizeof *perm, cmp_rating, r);
  IMF_TRY(imf_ratings_reserve(&o, r->n ? r->n : 1), out);
  for (int64_t j = 0; j < r->n; j++)
    IMF_TRY(imf_ratings_push(&o, r->user[perm[j]], r->item[perm[j]], r->value[perm[j]],
                             r->time ? r->time[perm[j]] : IMF_NO_TIME), out);
  imf_ratings_free(r);
  *r = o;
  memset(&o, 0, sizeof o);
out:
  imf_ratings_free(&o);
  imf_free(&perm);
  return st;
}

imf_status imf_ratings_to_owners(MPI_Comm comm, imf_ratings *r, int64_t nusers) {
  int rank, size;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  imf_status st = IMF_OK;
  int *scount = NULL, *rcount = NULL, *sdisp = NULL, *rdisp = NULL;
  int64_t *order = NULL, *fill = NULL;
  int32_t *su = NULL, *si = NULL, *ru = NULL, *ri = NULL;
  float *sv = NULL, *rv = NULL;
  int64_t *stt = NULL, *rt = NULL;
  imf_ratings o = {0};
  IMF_TRY(imf_alloc(&scount, (size_t)size, sizeof(int)), out);
  IMF_TRY(imf_alloc(&rcount, (size_t)size, sizeof(int)), out);
  IMF_TRY(imf_alloc(&sdisp, (size_t)size + 1, sizeof(int)), out);
  IMF_TRY(imf_alloc(&rdisp, (size_t)size + 1, sizeof(int)), out);
  IMF_TRY(imf_alloc(&fill, (size_t)size, sizeof(int64_t)), out);
  size_t n1 = (size_t)(r->n ? r->n : 1);
  IMF_TRY(imf_alloc(&order, n1, sizeof(int64_t)), out);
  for (int64_t j = 0; j < r->n; j++) {
    /* owner of user u in the ranges n*rank/size: the largest p with n*p/size <= u */
    int64_t u = r->user[j];
    int p = (int)(((u + 1) * size - 1) / (nusers > 0 ? nusers : 1));
    while (p > 0 && nusers * p / size > u) p--;
    while (p + 1 < size && nusers * (p + 1) / size <= u) p++;
    order[j] = p;
    scount[p]++;
  }
  for (int p = 0; p < size; p++) sdisp[p + 1] = sdisp[p] + scount[p];
  IMF_TRY(imf_alloc(&su, n1, 4), out);
  IMF_TRY(imf_alloc(&si, n1, 4), out);
  IMF_TRY(imf_alloc(&sv, n1, 4), out);
  IMF_TRY(imf_alloc(&stt, n1, 8), out);
  for (int64_t j = 0; j < r->n; j++) {
    int p = (int)order[j];
    int64_t at = sdisp[p] + fill[p]++;
    su[at] = r->user[j];
    si[at] = r->item[j];
    sv[at] = r->value[j];
    stt[at] = r->time ? r->time[j] : IMF_NO_TIME;
  }
  st = imf_agree(comm, st);
  if (st != IMF_OK) goto out;
  IMF_MPI_TRY(MPI_Alltoall(scount, 1, MPI_INT, rcount, 1, MPI_INT, comm), out);
  for (int p = 0; p < size; p++) rdisp[p + 1] = rdisp[p] + rcount[p];
  size_t m = (size_t)(rdisp[size] ? rdisp[size] : 1);
  IMF_TRY(imf_alloc(&ru, m, 4), out);
  IMF_TRY(imf_alloc(&ri, m, 4), out);
  IMF_TRY(imf_alloc(&rv, m, 4), out);
  IMF_TRY(imf_alloc(&rt, m, 8), out);
  IMF_MPI_TRY(MPI_Alltoallv(su, scount, sdisp, MPI_INT32_T, ru, rcount, rdisp, MPI_INT32_T, comm), out);
  IMF_MPI_TRY(MPI_Alltoallv(si, scount, sdisp, MPI_INT32_T, ri, rcount, rdisp, MPI_INT32_T, comm), out);
  IMF_MPI_TRY(MPI_Alltoallv(sv, scount, sdisp, MPI_FLOAT, rv, rcount, rdisp, MPI_FLOAT, comm), out);
  IMF_MPI_TRY(MPI_Alltoallv(stt, scount, sdisp, MPI_INT64_T, rt, rcount, rdisp, MPI_INT64_T, comm), out);
  IMF_TRY(imf_ratings_reserve(&o, (int64_t)m), out);
  for (int j = 0; j < rdisp[size]; j++) IMF_TRY(imf_ratings_push(&o, ru[j], ri[j], rv[j], rt[j]), out);
  imf_ratings_free(r);
  *r = o;
  memset(&o, 0, sizeof o);
  IMF_TRY(sort_ratings(r), out);
out:
  imf_ratings_free(&o);
  imf_free(&scount);
  imf_free(&rcount);
  imf_free(&sdisp);
  imf_free(&rdisp);
  imf_free(&fill);
  imf_free(&order);
  imf_free(&su);
  imf_free(&si);
  imf_free(&sv);
  imf_free(&stt);
  imf_free(&ru);
  imf_free(&ri);
  imf_free(&rv);
  imf_free(&rt);
  return st;
}

imf_status imf_dataset_from_store(MPI_Comm comm, const char *store_dir, imf_dataset *d) {
  imf_store *s = NULL;
  imf_status st = IMF_OK;
  memset(d, 0, sizeof *d);
  IMF_TRY(imf_store_open(comm, store_dir, IMF_STORE_READ, 0, &s), out);
  IMF_TRY(imf_idmap_create(&d->users), out);
  IMF_TRY(imf_idmap_create(&d->items), out);
  IMF_TRY(imf_store_load_idmaps(s, d->users, d->items), out);
  d->nusers = imf_store_nusers(s);
  d->nitems = imf_store_nitems(s);
  imf_user_range(comm, d->nusers, &d->ulo, &d->uhi);
  IMF_TRY(imf_store_read_ratings(s, d->ulo, d->uhi, &d->r), out);
  imf_store_info info;
  IMF_TRY(imf_store_get_info(s, &info), out);
  d->scale_min = info.scale_min;
  d->scale_max = info.scale_max;
  if (info.value_known) {
    d->values.n = info.ratings > 0 ? info.ratings : 1;
    d->values.min = info.value_min;
    d->values.max = info.value_max;
    d->values.step = isnan(info.value_step) ? -1 : info.value_step;
  }
out:
  imf_store_close(&s);
  return st;
}

imf_status imf_dataset_from_file(MPI_Comm comm, const imf_config *cfg, const char *path, imf_idmap *users,
                                 imf_idmap *items, imf_dataset *d) {
  imf_status st = IMF_OK;
  imf_batch b;
  memset(&b, 0, sizeof b);
  memset(d, 0, sizeof *d);
  imf_idmap *U = users, *I = items;
  if (!U) {
    IMF_TRY(imf_idmap_create(&d->users), out);
    IMF_TRY(imf_idmap_create(&d->items), out);
    U = d->users;
    I = d->items;
  }
  IMF_TRY(imf_ingest_file(comm, cfg, path, NULL, U, I, NULL, &b), out);
  d->r = b.r;
  memset(&b.r, 0, sizeof b.r);
  d->nusers = imf_idmap_size(U);
  d->nitems = imf_idmap_size(I);
  d->scale_min = imf_cfg_double(cfg, "clean.scale_min");
  d->scale_max = imf_cfg_double(cfg, "clean.scale_max");
  IMF_TRY(imf_scale_reduce(comm, &d->r, &d->values), out); /* no store: measure the scale here */
  imf_user_range(comm, d->nusers, &d->ulo, &d->uhi);
  IMF_TRY(imf_ratings_to_owners(comm, &d->r, d->nusers), out);
out:
  imf_batch_free(&b);
  return st;
}

imf_status imf_dataset_relayout(MPI_Comm comm, imf_dataset *d, int64_t nusers, int64_t nitems) {
  d->nusers = nusers;
  d->nitems = nitems;
  imf_user_range(comm, nusers, &d->ulo, &d->uhi);
  return imf_ratings_to_owners(comm, &d->r, nusers);
}

/* Temporal: the smallest timestamp cut t such that at most `fraction` of the ratings with a
 * timestamp are newer than t (ratings at t stay in training) — found by bisection on the
 * timestamp range with one Allreduce per step, so no rank ever gathers all timestamps. */
static imf_status temporal_cut(MPI_Comm comm, const imf_ratings *r, double fraction, int64_t *cut) {
  int64_t lo = INT64_MAX, hi = INT64_MIN, n = 0;
  for (int64_t j = 0; j < r->n; j++) {
    int64_t t = r->time[j];
    if (t == IMF_NO_TIME) continue;
    n++;
    if (t < lo) lo = t;
    if (t > hi) hi = t;
  }
  int64_t g[2] = {lo, -hi}, gn = 0;
  IMF_MPI(MPI_Allreduce(MPI_IN_PLACE, g, 2, MPI_INT64_T, MPI_MIN, comm));
  IMF_MPI(MPI_Allreduce(&n, &gn, 1, MPI_INT64_T, MPI_SUM, comm));
  if (gn == 0) IMF_FAIL(IMF_ERR_INPUT, "the temporal protocol needs timestamps, and the data has none");
  lo = g[0] - 1;
  hi = -g[1];
  double want = fraction * (double)gn;
  /* invariant: newer(hi) <= want, newer(lo) > want (or lo below every timestamp) */
  while (hi - lo > 1) {
    int64_t mid = lo + (hi - lo) / 2, c = 0, gc = 0;
    for (int64_t j = 0; j < r->n; j++) c += r->time[j] != IMF_NO_TIME && r->time[j] > mid;
    IMF_MPI(MPI_Allreduce(&c, &gc, 1, MPI_INT64_T, MPI_SUM, comm));
    if ((double)gc <= want) hi = mid;
    else lo = mid;
  }
  *cut = hi;
  return IMF_OK;
}

typedef struct {
  double h;
  int64_t j;
} hj;
static int cmp_hj(const void *a, const void *b) {
  const hj *x = a, *y = b;
  if (x->h != y->h) return x->h < y->h ? -1 : 1;
  return (x->j > y->j) - (x->j < y->j);
}

imf_status imf_split(MPI_Comm comm, const imf_dataset *d, const imf_split_spec *s, imf_ratings *train,
                     imf_ratings *foldin, imf_ratings *test) {
  const imf_ratings *r = &d->r;
  memset(train, 0, sizeof *train);
  memset(test, 0, sizeof *test);
  if (foldin) memset(foldin, 0, sizeof *foldin);
  imf_status st = IMF_OK;
  int64_t cut = 0;
  char *is_test = NULL; /* 0 train, 1 test, 2 fold-in */
  hj *tmp = NULL;
  if (s->kind == IMF_SPLIT_TEMPORAL) st = temporal_cut(comm, r, s->fraction, &cut);
  else st = IMF_OK;
  IMF_TRY(st, out);
  IMF_TRY(imf_alloc(&is_test, (size_t)(r->n ? r->n : 1), 1), out);
  for (int64_t a = 0; a < r->n;) {
    int64_t b = a;
    int32_t u = r->user[a];
    while (b < r->n && r->user[b] == u) b++;
    int64_t n = b - a;
    switch (s->kind) {
    case IMF_SPLIT_RANDOM:
      for (int64_t j = a; j < b; j++) is_test[j] = imf_split_u01(s->seed, u, r->item[j]) < s->fraction;
      break;
    case IMF_SPLIT_STANDING:
      for (int64_t j = a; j < b; j++) is_test[j] = (char)imf_is_holdout(s->seed, s->fraction, u, r->item[j]);
      break;
    case IMF_SPLIT_TEMPORAL:
      for (int64_t j = a; j < b; j++) is_test[j] = r->time[j] != IMF_NO_TIME && r->time[j] > cut;
      break;
    case IMF_SPLIT_FOLD:
      for (int64_t j = a; j < b; j++) {
        int f = (int)(imf_split_u01(s->seed, u, r->item[j]) * s->nfolds);
        is_test[j] = f == s->fold;
      }
      break;
    case IMF_SPLIT_LEAVE_K:
      if (n > s->leave_k) {
        IMF_TRY(imf_realloc(&tmp, (size_t)n, sizeof *tmp), out);
        for (int64_t j = a; j < b; j++) tmp[j - a] = (hj){imf_split_u01(s->seed, u, r->item[j]), j};
        qsort(tmp, (size_t)n, sizeof *tmp, cmp_hj);
        for (int64_t j = 0; j < s->leave_k; j++) is_test[tmp[j].j] = 1;
      }
      break;
    case IMF_SPLIT_HELDOUT_USERS:
      /* with folds, the user's hash picks one of nfolds slices: the folds are disjoint and cover
       * every eligible user */
      if (n >= s->min_user_ratings && (s->nfolds > 1 ? (int)(imf_split_u01(s->seed, u, -1) * s->nfolds) == s->fold
                                                     : imf_split_u01(s->seed, u, -1) < s->fraction)) {
        /* the user's items in hash order: the first ceil(foldin * n) fold them in */
        IMF_TRY(imf_realloc(&tmp, (size_t)n, sizeof *tmp), out);
        for (int64_t j = a; j < b; j++) tmp[j - a] = (hj){imf_split_u01(s->seed ^ 0x5bd1e995u, u, r->item[j]), j};
        qsort(tmp, (size_t)n, sizeof *tmp, cmp_hj);
        int64_t nf = (int64_t)ceil(s->foldin_fraction * (double)n);
        if (nf >= n) nf = n - 1;
        if (nf < 1) nf = 1;
        for (int64_t j = 0; j < n; j++) is_test[tmp[j].j] = j < nf ? 2 : 1;
      }
      break;
    }
    a = b;
  }
  for (int64_t j = 0; j < r->n; j++) {
    imf_ratings *dst = is_test[j] == 1 ? test : is_test[j] == 2 ? foldin : train;
    if (!dst) continue;
    IMF_TRY(imf_ratings_push(dst, r->user[j], r->item[j], r->value[j], r->time ? r->time[j] : IMF_NO_TIME), out);
  }
out:
  imf_free(&is_test);
  free(tmp);
  if (st != IMF_OK) {
    imf_ratings_free(train);
    imf_ratings_free(test);
    if (foldin) imf_ratings_free(foldin);
  }
  return st;
}
