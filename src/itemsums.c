/* itemsums.c - per-item normal-equation sums (itemsums.h): kept current by a fold-in from the
 * touched users' pairs, routed to each item's owner, and solved with LAPACK's packed Cholesky.
 * The regulariser is the row solver's (rowsolve.c, solve_row), so an item solved from its sums
 * is the item the row solver would solve from its history, to rounding. */
#include "itemsums.h"
#include "error.h"
#include "exchange.h"
#include "rowsolve.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

imf_status imf_itemsums_create(const imf_model *m, int64_t lo, int64_t hi, imf_itemsums **out) {
  *out = NULL;
  if (m->type != IMF_MODEL_ALS && m->type != IMF_MODEL_IALS)
    IMF_FAIL(IMF_ERR_USAGE, "per-item sums need an ALS or implicit ALS model");
  if (lo < 0 || hi < lo) IMF_FAIL(IMF_ERR_USAGE, "per-item sums: bad item range [%lld, %lld)", (long long)lo, (long long)hi);
  imf_itemsums *s = NULL;
  IMF_CHECK(imf_alloc(&s, 1, sizeof *s));
  s->k = m->k;
  s->implicit = m->type == IMF_MODEL_IALS;
  s->d = m->k + (!s->implicit && m->with_bias);
  s->mu = m->mu;
  s->alpha = m->alpha;
  s->lo = lo;
  s->hi = hi;
  s->tri = (size_t)s->d * (size_t)(s->d + 1) / 2;
  size_t n = (size_t)(hi - lo) + 1; /* + 1: no zero-size allocation */
  imf_status st = imf_alloc(&s->A, n * s->tri, sizeof *s->A);
  if (st == IMF_OK) st = imf_alloc(&s->b, n * (size_t)s->d, sizeof *s->b);
  if (st == IMF_OK) st = imf_alloc(&s->n, n, sizeof *s->n);
  if (st == IMF_OK) st = imf_alloc(&s->y, (size_t)s->d, sizeof *s->y);
  if (st != IMF_OK) imf_itemsums_destroy(&s);
  *out = s;
  return st;
}

void imf_itemsums_destroy(imf_itemsums **s) {
  if (!*s) return;
  imf_free(&(*s)->A);
  imf_free(&(*s)->b);
  imf_free(&(*s)->n);
  imf_free(&(*s)->y);
  imf_free(s);
}

void imf_itemsums_add(imf_itemsums *s, const imf_model *m, int64_t u, int64_t i, float r, double sign) {
  const int k = s->k, d = s->d;
  double *y = s->y, w, t;
  const float *p = m->P + (size_t)u * (size_t)m->kw;
  for (int a = 0; a < k; a++) y[a] = (double)p[a];
  if (s->implicit) {
    w = s->alpha * (double)r;
    t = 1.0 + w;
  } else {
    w = 1.0;
    t = (double)r - s->mu;
    if (d > k) {
      y[k] = 1.0;
      t -= (double)m->bu[u];
    }
  }
  const size_t row = (size_t)(i - s->lo);
  double *A = s->A + row * s->tri, *b = s->b + row * (size_t)d;
  const double sw = sign * w, st = sign * t;
  for (int c = 0; c < d; c++) {
    double *col = A + (size_t)c * (size_t)(c + 1) / 2; /* column c: rows 0..c */
    const double yc = sw * y[c];
    for (int a = 0; a <= c; a++) col[a] += y[a] * yc;
    b[c] += st * y[c];
  }
  s->n[row] += sign > 0 ? 1 : -1;
}

/* One pair's contribution to item row `row`: b += sign t y directly (exact also where the weight
 * w is 0, as implicit ALS with alpha = 0 gives), and y scaled by sqrt(w) into Y for A's rank-n
 * update (add_rows). */
static void contribution_row(imf_itemsums *s, size_t row, const imf_model *m, int64_t u, float r, double sign,
                             double *Y) {
  const int k = s->k, d = s->d;
  const float *p = m->P + (size_t)u * (size_t)m->kw;
  double w, tv;
  if (s->implicit) {
    w = s->alpha * (double)r;
    tv = 1.0 + w;
  } else {
    w = 1.0;
    tv = (double)r - s->mu;
    if (d > k) tv -= (double)m->bu[u];
  }
  const double sw = sqrt(w), st = sign * tv;
  double *b = s->b + row * (size_t)d;
  for (int a = 0; a < k; a++) {
    b[a] += st * (double)p[a];
    Y[a] = sw * (double)p[a];
  }
  if (d > k) {
    b[k] += st;
    Y[k] = sw;
  }
}

/* A += sign Y^T Y for one item from its n rows (Y row-major, n x d): one BLAS rank-n update into
 * a full scratch G, then folded into the packed upper triangle. */
static void add_rows(imf_itemsums *s, size_t row, const double *Y, int64_t n, double sign, double *G) {
  const int d = s->d;
  if (n == 0) return;
  cblas_dsyrk(CblasColMajor, CblasUpper, CblasNoTrans, d, (int)n, sign, Y, d, 0.0, G, d);
  double *A = s->A + row * s->tri;
  for (int c = 0; c < d; c++) {
    double *col = A + (size_t)c * (size_t)(c + 1) / 2;
    for (int q = 0; q <= c; q++) col[q] += G[(size_t)c * (size_t)d + (size_t)q];
  }
}

imf_status imf_itemsums_build(imf_itemsums *s, const imf_csr *c, const imf_model *m) {
  if (c->lo > s->lo || c->hi < s->hi)
    IMF_FAIL(IMF_ERR_USAGE, "per-item sums: the ratings cover items [%lld, %lld), not [%lld, %lld)",
             (long long)c->lo, (long long)c->hi, (long long)s->lo, (long long)s->hi);
  int64_t most = 0;
  for (int64_t i = s->lo; i < s->hi; i++) {
    const int64_t r = i - c->lo;
    if (c->ptr[r + 1] - c->ptr[r] > most) most = c->ptr[r + 1] - c->ptr[r];
    for (int64_t j = c->ptr[r]; j < c->ptr[r + 1]; j++)
      if (c->idx[j] >= m->nusers)
        IMF_FAIL(IMF_ERR_USAGE, "per-item sums: user %d past the model's %lld", c->idx[j], (long long)m->nusers);
  }
  double *Y = NULL, *G = NULL;
  imf_status st = imf_alloc(&Y, (size_t)(most + 1) * (size_t)s->d, sizeof *Y);
  if (st == IMF_OK) st = imf_alloc(&G, (size_t)s->d * (size_t)s->d, sizeof *G);
  for (int64_t i = s->lo; st == IMF_OK && i < s->hi; i++) { /* each item's raters: one rank-n update */
    const int64_t r = i - c->lo, n = c->ptr[r + 1] - c->ptr[r];
    const size_t row = (size_t)(i - s->lo);
    for (int64_t j = 0; j < n; j++)
      contribution_row(s, row, m, c->idx[c->ptr[r] + j], c->val[c->ptr[r] + j], 1.0, Y + (size_t)j * (size_t)s->d);
    add_rows(s, row, Y, n, 1.0, G);
    s->n[row] += n;
  }
  imf_free(&Y);
  imf_free(&G);
  return st;
}

static uint64_t mix64(uint64_t z) { /* splitmix64 finaliser */
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static uint64_t hash_words(uint64_t h, const void *p, size_t bytes) {
  const unsigned char *c = p;
  for (size_t j = 0; j + 8 <= bytes; j += 8) {
    uint64_t w;
    memcpy(&w, c + j, 8);
    h = mix64(h ^ w) + 0x9e3779b97f4a7c15ULL;
  }
  return h;
}

uint64_t imf_itemsums_hash(const imf_itemsums *s, int64_t lo, int64_t hi) {
  uint64_t sum = 0;
  for (int64_t i = lo; i < hi; i++) {
    const size_t row = (size_t)(i - s->lo);
    uint64_t h = mix64((uint64_t)i + 0x632be59bd9b4e019ULL);
    h = hash_words(h, s->A + row * s->tri, s->tri * sizeof *s->A);
    h = hash_words(h, s->b + row * (size_t)s->d, (size_t)s->d * sizeof *s->b);
    h = hash_words(h, s->n + row, sizeof *s->n);
    sum += mix64(h);
  }
  return sum;
}

imf_status imf_itemsums_from_partition(MPI_Comm comm, const imf_partition *p, const imf_model *m,
                                       imf_itemsums **out) {
  *out = NULL;
  imf_status st = imf_itemsums_create(m, p->by_item.lo, p->by_item.hi, out);
  if (st == IMF_OK) st = imf_itemsums_build(*out, &p->by_item, m);
  if (st != IMF_OK) imf_itemsums_destroy(out);
  return imf_agree(comm, st);
}

/* Send each change to its item's owner (4 int32 words a change: u, i and the two values' bits). */
static imf_status route(MPI_Comm comm, const int64_t *item_start, const imf_pair_change *ch, int64_t nch,
                        imf_pair_change **got, int64_t *ngot) {
  int size;
  MPI_Comm_size(comm, &size);
  int64_t *sc = NULL, *sd = NULL, *rc = NULL, *rd = NULL, *fill = NULL;
  imf_pair_change *sbuf = NULL;
  imf_status st = imf_alloc(&sc, (size_t)size, sizeof *sc);
  if (st == IMF_OK) st = imf_alloc(&sd, (size_t)size, sizeof *sd);
  if (st == IMF_OK) st = imf_alloc(&rc, (size_t)size, sizeof *rc);
  if (st == IMF_OK) st = imf_alloc(&rd, (size_t)size, sizeof *rd);
  if (st == IMF_OK) st = imf_alloc(&fill, (size_t)size, sizeof *fill);
  if (st == IMF_OK) st = imf_alloc_nz(&sbuf, (size_t)nch + 1, sizeof *sbuf);
  IMF_TRY(imf_agree(comm, st), out);
  for (int64_t j = 0; j < nch; j++) sc[imf_block_owner(item_start, size, ch[j].i)]++;
  for (int r = 1; r < size; r++) sd[r] = sd[r - 1] + sc[r - 1];
  memcpy(fill, sd, (size_t)size * sizeof *fill);
  for (int64_t j = 0; j < nch; j++) sbuf[fill[imf_block_owner(item_start, size, ch[j].i)]++] = ch[j];
  IMF_MPI_TRY(MPI_Alltoall(sc, 1, MPI_INT64_T, rc, 1, MPI_INT64_T, comm), out);
  *ngot = 0;
  for (int r = 0; r < size; r++) {
    rd[r] = *ngot;
    *ngot += rc[r];
  }
  IMF_TRY(imf_agree(comm, imf_alloc_nz(got, (size_t)*ngot + 1, sizeof **got)), out);
  for (int r = 0; r < size; r++) { /* in int32 words */
    sc[r] *= 4;
    sd[r] *= 4;
    rc[r] *= 4;
    rd[r] *= 4;
  }
  st = imf_alltoallv64(comm, sbuf, sc, sd, *got, rc, rd, MPI_INT32_T);
out:
  imf_free(&sc);
  imf_free(&sd);
  imf_free(&rc);
  imf_free(&rd);
  imf_free(&fill);
  imf_free(&sbuf);
  return st;
}

/* The received changes in item order (a counting sort over [lo, hi)): *order indexes got. */
static imf_status by_item(const imf_itemsums *s, const imf_pair_change *got, int64_t ngot, int64_t **order,
                          int64_t **start) {
  const int64_t ni = s->hi - s->lo;
  IMF_CHECK(imf_alloc(start, (size_t)ni + 2, sizeof **start));
  IMF_CHECK(imf_alloc_nz(order, (size_t)ngot + 1, sizeof **order));
  for (int64_t j = 0; j < ngot; j++) (*start)[got[j].i - s->lo + 2]++;
  for (int64_t q = 2; q <= ni + 1; q++) (*start)[q] += (*start)[q - 1];
  for (int64_t j = 0; j < ngot; j++) (*order)[(*start)[got[j].i - s->lo + 1]++] = j;
  return IMF_OK; /* item q's changes: order[start[q] .. start[q + 1]) */
}

/* How many changes ahead apply_sorted asks for a factor row (random reads: the latency, not the
 * bandwidth, was half its time). */
#define PREFETCH_AHEAD 16

/* Apply the changes of each item: old contributions out, new ones in, by add_rows. */
static imf_status apply_sorted(imf_itemsums *s, const imf_pair_change *got, const int64_t *order,
                               const int64_t *start, const imf_model *before, const imf_model *after) {
  const int d = s->d;
  int64_t most = 0;
  for (int64_t q = 0; q < s->hi - s->lo; q++)
    if (start[q + 1] - start[q] > most) most = start[q + 1] - start[q];
  double *Y = NULL, *G = NULL;
  imf_status st = imf_alloc(&Y, (size_t)(most + 1) * (size_t)d, sizeof *Y);
  if (st == IMF_OK) st = imf_alloc(&G, (size_t)d * (size_t)d, sizeof *G);
  for (int64_t q = 0; st == IMF_OK && q < s->hi - s->lo; q++) {
    for (int side = 0; side < 2; side++) { /* 0: out with the old factors, 1: in with the new */
      const imf_model *m = side ? after : before;
      int64_t n = 0, dn = 0;
      for (int64_t x = start[q]; x < start[q + 1]; x++) {
        if (x + PREFETCH_AHEAD < start[q + 1]) { /* the rows are random: ask for them early */
          const int32_t pu = got[order[x + PREFETCH_AHEAD]].u;
          if (pu < m->nusers) {
            __builtin_prefetch(m->P + (size_t)pu * (size_t)m->kw, 0, 0);
            if (m->bu) __builtin_prefetch(m->bu + pu, 0, 0);
          }
        }
        const imf_pair_change *c = &got[order[x]];
        const float r = side ? c->after : c->before;
        if (!isfinite(r) || (!side && (c->u >= before->nusers || c->i >= before->nitems))) continue;
        contribution_row(s, (size_t)q, m, c->u, r, side ? 1.0 : -1.0, Y + (size_t)n * (size_t)d);
        n++;
      }
      dn = side ? n : -n;
      add_rows(s, (size_t)q, Y, n, side ? 1.0 : -1.0, G);
      s->n[q] += dn;
    }
  }
  imf_free(&Y);
  imf_free(&G);
  return st;
}

imf_status imf_itemsums_apply(MPI_Comm comm, imf_itemsums *s, const int64_t *item_start, const imf_pair_change *ch,
                              int64_t nch, const imf_model *before, const imf_model *after) {
  imf_pair_change *got = NULL;
  int64_t ngot = 0, *order = NULL, *start = NULL;
  imf_status st = route(comm, item_start, ch, nch, &got, &ngot);
  for (int64_t j = 0; st == IMF_OK && j < ngot; j++) {
    const imf_pair_change *c = &got[j];
    if (c->i < s->lo || c->i >= s->hi || c->u < 0 || c->u >= after->nusers)
      st = IMF_RAISE(IMF_ERR_USAGE, "per-item sums: change (%d, %d) outside items [%lld, %lld) or the users",
                     c->u, c->i, (long long)s->lo, (long long)s->hi);
  }
  if (st == IMF_OK) st = by_item(s, got, ngot, &order, &start);
  if (st == IMF_OK) st = apply_sorted(s, got, order, start, before, after);
  imf_free(&got);
  imf_free(&order);
  imf_free(&start);
  return imf_agree(comm, st);
}

/* Solve one item from its sums into x (k floats) and *bias; M, r: scratch of tri and d. */
static imf_status solve_one(const imf_itemsums *s, const imf_model *m, const double *YtY, int64_t i, double *M,
                            double *r, float *x, float *bias) {
  const int k = s->k, d = s->d;
  const size_t row = (size_t)(i - s->lo);
  const int64_t n = s->n[row];
  *bias = 0.0f;
  if (n <= 0) { /* no raters: the row solver's empty row */
    memset(x, 0, (size_t)k * sizeof *x);
    return IMF_OK;
  }
  memcpy(M, s->A + row * s->tri, s->tri * sizeof *M);
  memcpy(r, s->b + row * (size_t)d, (size_t)d * sizeof *r);
  for (int c = 0; c < k; c++) {
    double *col = M + (size_t)c * (size_t)(c + 1) / 2;
    if (s->implicit) {
      for (int a = 0; a <= c; a++) col[a] += YtY[(size_t)a * (size_t)k + (size_t)c];
      col[c] += m->lambda;
    } else {
      col[c] += m->lambda * (double)n;
    }
  }
  if (d > k) M[(size_t)k * (size_t)(k + 1) / 2 + (size_t)k] += m->lambda_bias;
  lapack_int info = LAPACKE_dpptrf(LAPACK_COL_MAJOR, 'U', d, M);
  if (info == 0) info = LAPACKE_dpptrs(LAPACK_COL_MAJOR, 'U', d, 1, M, r, d);
  if (info != 0)
    IMF_FAIL(IMF_ERR_RUNTIME, "per-item sums: item %lld's normal equations are not positive definite (LAPACK info %d)",
             (long long)i, (int)info);
  int finite = 1;
  for (int c = 0; c < k; c++) {
    x[c] = (float)r[c];
    finite &= isfinite(x[c]);
  }
  if (d > k) *bias = (float)r[k];
  if (!finite || !isfinite(*bias))
    IMF_FAIL(IMF_ERR_RUNTIME, "per-item sums: non-finite factors for item %lld (%lld ratings)", (long long)i, (long long)n);
  return IMF_OK;
}

imf_status imf_itemsums_solve(MPI_Comm comm, const imf_itemsums *s, const unsigned char *touched, imf_model *m,
                              int64_t *nsolved) {
  const int k = s->k;
  int64_t nt = 0;
  for (int64_t i = s->lo; i < s->hi; i++) nt += touched[i] != 0;
  int64_t *row_id = NULL;
  float *X = NULL, *B = NULL;
  double *M = NULL, *r = NULL, *YtY = NULL;
  imf_status st = IMF_OK;
  if (m->k != k || m->kw != k || m->nitems < s->hi || (m->type == IMF_MODEL_IALS) != s->implicit)
    st = IMF_RAISE(IMF_ERR_USAGE, "per-item sums: taken for another model's shape");
  if (st == IMF_OK) st = imf_alloc(&row_id, (size_t)nt + 1, sizeof *row_id);
  if (st == IMF_OK) st = imf_alloc(&X, ((size_t)nt + 1) * (size_t)k, sizeof *X);
  if (st == IMF_OK) st = imf_alloc(&B, (size_t)nt + 1, sizeof *B);
  if (st == IMF_OK) st = imf_alloc(&M, s->tri, sizeof *M);
  if (st == IMF_OK) st = imf_alloc(&r, (size_t)s->d, sizeof *r);
  if (st == IMF_OK && s->implicit) {
    st = imf_alloc(&YtY, (size_t)k * (size_t)k, sizeof *YtY);
    if (st == IMF_OK) imf_rowsolve_gram(m->P, m->nusers, k, YtY); /* replicated: no communication */
  }
  for (int64_t i = s->lo, t = 0; st == IMF_OK && i < s->hi; i++) {
    if (!touched[i]) continue;
    row_id[t] = i;
    st = solve_one(s, m, YtY, i, M, r, X + (size_t)t * (size_t)k, B + t);
    t++;
  }
  IMF_TRY(imf_agree(comm, st), out);
  st = imf_allgather_rows_by_id(comm, k, nt, row_id, X, B, m->Q, m->with_bias ? m->bi : NULL, nsolved);
out:
  imf_free(&row_id);
  imf_free(&X);
  imf_free(&B);
  imf_free(&M);
  imf_free(&r);
  imf_free(&YtY);
  return imf_agree(comm, st);
}
