/* ease_score.c - scoring with EASE's B (ease.h): B redistributed to a 1 x P grid of column
 * blocks (imf_ease_to_columns), then each user's top-K items from the columns every rank holds
 * (candidates merged over the ranks, ties broken by item), single rows' scores and item-item
 * similarity. The state and its layout: ease_impl.h; the solve that makes B: ease.c. */
#include "ease.h"
#include "ease_impl.h"
#include "error.h"
#include "topk.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* ---- distributed scoring ---- */

void Cpdgemr2d(int m, int n, double *a, int ia, int ja, int *desca, double *b, int ib, int jb, int *descb,
               int gcontext);

imf_status imf_ease_to_columns(imf_ease *e, imf_ease **out) {
  *out = NULL;
  imf_ease *c = NULL;
  imf_status st = e->A ? IMF_OK : IMF_RAISE(IMF_ERR_RUNTIME, "EASE: no B to redistribute");
  IMF_TRY(imf_agree(e->comm, st), fail);
  IMF_TRY(imf_ease_create_empty(e->comm, e->n, e->lambda, IMF_EASE_GRID_COLUMNS, &c), fail);
  IMF_TRY(imf_agree(e->comm, imf_alloc_nz(&c->A, cells(c), sizeof *c->A)), fail); /* filled below */
  /* Already 1 x P with every rank in the same column (a low-rank update's state, or the solve's
   * grid on a prime rank count): the local parts are the same blocks, a copy. Otherwise
   * ScaLAPACK's redistribution between two grids of the same ranks (the 1 x P context holds
   * every process of both, as the routine requires), several times slower. */
  int same = e->nprow == 1 && e->npcol == c->npcol && e->mycol == c->mycol && e->nloc == c->nloc && e->lld == c->lld;
  IMF_MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, &same, 1, MPI_INT, MPI_MIN, e->comm), fail);
  if (same) memcpy(c->A, e->A, cells(e) * sizeof *c->A);
  else Cpdgemr2d(e->n, e->n, e->A, 1, 1, e->desc, c->A, 1, 1, c->desc, c->ctx);
  *out = c;
  return IMF_OK;
fail:
  imf_ease_destroy(&c);
  return st;
}

/* Candidates of one user, kept in a bounded min-heap: the root is the worst kept in topk.h's one
 * ranking order (lowest score, then least popular, then highest item), so that the final order
 * does not depend on the order columns are visited in. pc: the items' popularity (NULL: ties by
 * item alone). */
typedef struct {
  double s;
  int32_t i;
} cand;
static int worse(cand a, cand b, const float *pc) { return imf_rank_worse(a.s, a.i, b.s, b.i, pc); }
static void heap_push(cand *h, int *n, int K, cand c, const float *pc) {
  if (*n < K) {
    int x = (*n)++;
    h[x] = c;
    while (x > 0 && worse(h[x], h[(x - 1) / 2], pc)) {
      cand t = h[x];
      h[x] = h[(x - 1) / 2];
      h[(x - 1) / 2] = t;
      x = (x - 1) / 2;
    }
    return;
  }
  if (!worse(h[0], c, pc)) return;
  h[0] = c;
  for (int x = 0;;) {
    int l = 2 * x + 1, r = l + 1, w = x;
    if (l < *n && worse(h[l], h[w], pc)) w = l;
    if (r < *n && worse(h[r], h[w], pc)) w = r;
    if (w == x) break;
    cand t = h[x];
    h[x] = h[w];
    h[w] = t;
    x = w;
  }
}
/* The MPI datatype of one cand (score, item), resized to the struct's extent; the caller frees
 * it (MPI_DATATYPE_NULL on failure). */
static imf_status cand_type(MPI_Datatype *out) {
  int bl[2] = {1, 1};
  MPI_Aint dl[2] = {offsetof(cand, s), offsetof(cand, i)};
  MPI_Datatype ty[2] = {MPI_DOUBLE, MPI_INT32_T}, tmp;
  *out = MPI_DATATYPE_NULL;
  IMF_MPI(MPI_Type_create_struct(2, bl, dl, ty, &tmp));
  int rc = MPI_Type_create_resized(tmp, 0, sizeof(cand), out);
  MPI_Type_free(&tmp);
  if (rc != MPI_SUCCESS) {
    *out = MPI_DATATYPE_NULL;
    return IMF_MPI_RAISE(rc, "MPI_Type_create_resized");
  }
  rc = MPI_Type_commit(out);
  if (rc != MPI_SUCCESS) {
    MPI_Type_free(out);
    return IMF_MPI_RAISE(rc, "MPI_Type_commit");
  }
  return IMF_OK;
}

static int cand_cmp(const void *a, const void *b, void *ctx) {
  const cand *x = a, *y = b;
  const float *pc = ctx;
  if (x->i < 0 || y->i < 0) return (x->i < 0) - (y->i < 0); /* padding last */
  if (worse(*x, *y, pc)) return 1;
  if (worse(*y, *x, pc)) return -1;
  return 0;
}

#define EASE_TILE 256
#define EASE_COLS 256

/* This rank's K best columns for each of nt users (x rows and exclusions as CSR, offsets from
 * 0); out: nt x K candidates, best first, padded with item -1. score(u, j) = sum over the items i
 * of x_u, ascending, of B(i, j), in double, plus pop's prior of j if any: the same value on any
 * grid and rank count. */
static imf_status score_local(const imf_ease *e, int64_t nt, const int64_t *xp, const int32_t *xi, const int64_t *ep,
                              const int32_t *ei, int K, const imf_item_pop *pop, cand *out) {
  const float *pc = pop ? pop->count : NULL, *prior = pop ? pop->prior : NULL;
  cand *heap = NULL;
  int *hn = NULL;
  double *S = NULL;
  int64_t *epos = NULL;
  imf_status st = imf_alloc(&heap, (size_t)(nt ? nt : 1) * (size_t)K, sizeof *heap);
  if (st == IMF_OK) st = imf_alloc(&hn, (size_t)(nt ? nt : 1), sizeof *hn);
  if (st == IMF_OK) st = imf_alloc_nz(&S, (size_t)(nt ? nt : 1) * EASE_COLS, sizeof *S);
  if (st == IMF_OK) st = imf_alloc(&epos, (size_t)(nt ? nt : 1), sizeof *epos);
  if (st != IMF_OK) goto out;
  for (int64_t t = 0; t < nt; t++) epos[t] = ep ? ep[t] : 0;
  for (int c0 = 0; c0 < e->nloc; c0 += EASE_COLS) {
    int nc = e->nloc - c0 < EASE_COLS ? e->nloc - c0 : EASE_COLS;
    /* a chunk of columns stays in cache while every user of the tile sums over it */
    for (int c = 0; c < nc; c++) {
      const double *col = e->A + (size_t)(c0 + c) * (size_t)e->lld;
      for (int64_t t = 0; t < nt; t++) {
        double s = 0;
        for (int64_t q = xp[t]; q < xp[t + 1]; q++) s += col[xi[q]];
        S[(size_t)t * EASE_COLS + (size_t)c] = s;
      }
    }
    for (int64_t t = 0; t < nt; t++)
      for (int c = 0; c < nc; c++) {
        int32_t j = (int32_t)l2g(c0 + c, e->nb, e->mycol, e->npcol);
        if (ep) { /* exclusions ascending; local columns visit ascending global items */
          while (epos[t] < ep[t + 1] && ei[epos[t]] < j) epos[t]++;
          if (epos[t] < ep[t + 1] && ei[epos[t]] == j) continue;
        }
        double s = S[(size_t)t * EASE_COLS + (size_t)c];
        if (prior) s += (double)prior[j];
        heap_push(heap + (size_t)t * (size_t)K, &hn[t], K, (cand){s, j}, pc);
      }
  }
  for (int64_t t = 0; t < nt; t++) {
    cand *h = heap + (size_t)t * (size_t)K, *o = out + (size_t)t * (size_t)K;
    qsort_r(h, (size_t)hn[t], sizeof *h, cand_cmp, (void *)pc);
    for (int j = 0; j < K; j++) o[j] = j < hn[t] ? h[j] : (cand){-INFINITY, -1};
  }
out:
  imf_free(&heap);
  imf_free(&hn);
  imf_free(&S);
  imf_free(&epos);
  return st;
}

imf_status imf_ease_topk(imf_ease *e, int own, int64_t nrows, const int64_t *xptr, const int32_t *xidx,
                         const int64_t *eptr, const int32_t *eidx, int K, const imf_item_pop *pop, int32_t *items,
                         float *scores, int *count) {
  imf_status st = IMF_OK;
  const float *pc = pop ? pop->count : NULL;
  int size, rank;
  MPI_Comm_size(e->comm, &size);
  MPI_Comm_rank(e->comm, &rank);
  int64_t *tp = NULL, *tq = NULL;
  int32_t *ti = NULL, *tj = NULL;
  cand *mine = NULL, *all = NULL, *mrg = NULL;
  MPI_Datatype ct = MPI_DATATYPE_NULL;
  if (!e->A || e->nprow != 1 || K < 1)
    st = IMF_RAISE(IMF_ERR_RUNTIME, "EASE scoring needs B on a 1 x P grid and K >= 1");
  if (st == IMF_OK) st = imf_alloc(&tp, EASE_TILE + 1, sizeof *tp);
  if (st == IMF_OK) st = imf_alloc(&tq, EASE_TILE + 1, sizeof *tq);
  if (st == IMF_OK) st = imf_alloc(&mine, (size_t)EASE_TILE * (size_t)K, sizeof *mine);
  if (st == IMF_OK) st = imf_alloc(&all, (size_t)size * EASE_TILE * (size_t)K, sizeof *all);
  if (st == IMF_OK) st = imf_alloc(&mrg, (size_t)size * (size_t)K, sizeof *mrg);
  IMF_TRY(imf_agree(e->comm, st), out);
  IMF_TRY(cand_type(&ct), out);
  /* own: every source rank's rows in turn (each rank scores its columns for them and the
   * candidates go back to the source); shared: one pass, candidates to everyone */
  for (int src = 0; src < (own ? size : 1); src++) {
    int64_t n = nrows;
    if (own) IMF_MPI_TRY(MPI_Bcast(&n, 1, MPI_INT64_T, src, e->comm), out);
    for (int64_t t0 = 0; t0 < n; t0 += EASE_TILE) {
      int64_t nt = n - t0 < EASE_TILE ? n - t0 : EASE_TILE;
      const int64_t *xp = tp, *ep;
      const int32_t *xi, *ei;
      int64_t sz[3] = {0, 0, eptr != NULL};
      if (!own || rank == src) {
        for (int64_t t = 0; t <= nt; t++) {
          tp[t] = xptr[t0 + t] - xptr[t0];
          tq[t] = eptr ? eptr[t0 + t] - eptr[t0] : 0;
        }
        sz[0] = tp[nt];
        sz[1] = tq[nt];
      }
      if (own) IMF_MPI_TRY(MPI_Bcast(sz, 3, MPI_INT64_T, src, e->comm), out);
      if (own && rank != src) {
        st = imf_realloc(&ti, (size_t)(sz[0] ? sz[0] : 1), sizeof *ti);
        if (st == IMF_OK) st = imf_realloc(&tj, (size_t)(sz[1] ? sz[1] : 1), sizeof *tj);
        IMF_TRY(imf_agree(e->comm, st), out);
        xi = ti;
        ei = tj;
      } else {
        IMF_TRY(imf_agree(e->comm, IMF_OK), out);
        xi = xidx + xptr[t0];
        ei = eptr ? eidx + eptr[t0] : NULL;
      }
      if (own) {
        IMF_MPI_TRY(MPI_Bcast(tp, (int)nt + 1, MPI_INT64_T, src, e->comm), out);
        IMF_MPI_TRY(MPI_Bcast((void *)xi, (int)sz[0], MPI_INT32_T, src, e->comm), out);
        if (sz[2]) {
          IMF_MPI_TRY(MPI_Bcast(tq, (int)nt + 1, MPI_INT64_T, src, e->comm), out);
          IMF_MPI_TRY(MPI_Bcast((void *)ei, (int)sz[1], MPI_INT32_T, src, e->comm), out);
        }
      }
      ep = sz[2] ? tq : NULL;
      st = score_local(e, nt, xp, xi, ep, sz[2] ? ei : NULL, K, pop, mine);
      IMF_TRY(imf_agree(e->comm, st), out);
      int cnt = (int)(nt * K);
      if (own) IMF_MPI_TRY(MPI_Gather(mine, cnt, ct, all, cnt, ct, src, e->comm), out);
      else IMF_MPI_TRY(MPI_Allgather(mine, cnt, ct, all, cnt, ct, e->comm), out);
      if (own && rank != src) continue;
      /* merge: each user's P x K candidates, best K */
      for (int64_t t = 0; t < nt; t++) {
        int c = 0; /* user t's candidates of every rank (gather layout: rank, user, K) */
        for (int r = 0; r < size; r++)
          for (int j = 0; j < K; j++) {
            cand x = all[((size_t)r * (size_t)nt + (size_t)t) * (size_t)K + (size_t)j];
            if (x.i >= 0) mrg[c++] = x;
          }
        qsort_r(mrg, (size_t)c, sizeof *mrg, cand_cmp, (void *)pc);
        int64_t row = t0 + t;
        int k = c < K ? c : K;
        for (int j = 0; j < K; j++) {
          items[row * K + j] = j < k ? mrg[j].i : -1;
          scores[row * K + j] = j < k ? (float)mrg[j].s : NAN;
        }
        count[row] = k;
      }
    }
  }
out:
  if (ct != MPI_DATATYPE_NULL) MPI_Type_free(&ct);
  imf_free(&tp);
  imf_free(&tq);
  free(ti);
  free(tj);
  imf_free(&mine);
  imf_free(&all);
  imf_free(&mrg);
  return st;
}

/* ---- single rows and item-item similarity on the 1 x P grid ---- */

imf_status imf_ease_score_items(imf_ease *e, int64_t nx, const int32_t *x, int n, const int32_t *items, double *out) {
  imf_status st = e->A && e->nprow == 1 ? IMF_OK
                                         : IMF_RAISE(IMF_ERR_RUNTIME, "EASE scoring needs B on a 1 x P grid");
  for (int64_t q = 0; q < nx && st == IMF_OK; q++)
    if (x[q] < 0 || x[q] >= e->n)
      st = IMF_RAISE(IMF_ERR_RUNTIME, "EASE: item %d of a row outside [0, %d)", (int)x[q], e->n);
  IMF_CHECK(imf_agree(e->comm, st));
  for (int j = 0; j < n; j++) {
    out[j] = 0.0;
    int64_t it = items[j];
    if (it < 0 || it >= e->n || (it / e->nb) % e->npcol != e->mycol) continue;
    const double *col = e->A + (size_t)g2l(it, e->nb, e->npcol) * (size_t)e->lld;
    double s = 0; /* the sum score_local forms, in the same order */
    for (int64_t q = 0; q < nx; q++) s += col[x[q]];
    out[j] = s;
  }
  /* one owner per item, zeros elsewhere: the sum is exact */
  if (n > 0) IMF_MPI(MPI_Allreduce(MPI_IN_PLACE, out, n, MPI_DOUBLE, MPI_SUM, e->comm));
  return IMF_OK;
}

imf_status imf_ease_similar(imf_ease *e, int64_t t, int K, int32_t *items, float *scores, int *count) {
  int size;
  MPI_Comm_size(e->comm, &size);
  imf_status st = e->A && e->nprow == 1 && K >= 1 && t >= 0 && t < e->n
                      ? IMF_OK
                      : IMF_RAISE(IMF_ERR_RUNTIME, "EASE similar needs B on a 1 x P grid, K >= 1 "
                                  "and an item of the model");
  double *ct = NULL;
  cand *heap = NULL, *all = NULL;
  MPI_Datatype ctype = MPI_DATATYPE_NULL;
  if (st == IMF_OK) st = imf_alloc_nz(&ct, (size_t)e->n, sizeof *ct);
  if (st == IMF_OK) st = imf_alloc(&heap, (size_t)K, sizeof *heap);
  if (st == IMF_OK) st = imf_alloc(&all, (size_t)size * (size_t)K, sizeof *all);
  IMF_TRY(imf_agree(e->comm, st), out);
  int tc = (int)((t / e->nb) % e->npcol);
  if (tc == e->mycol)
    memcpy(ct, e->A + (size_t)g2l(t, e->nb, e->npcol) * (size_t)e->lld, (size_t)e->n * sizeof *ct);
  IMF_MPI_TRY(MPI_Bcast(ct, e->n, MPI_DOUBLE, e->rank_at[tc], e->comm), out);
  double nt = 0;
  for (int i = 0; i < e->n; i++) nt += ct[i] * ct[i];
  nt = sqrt(nt);
  int hn = 0;
  for (int lj = 0; lj < e->nloc; lj++) {
    int64_t j = l2g(lj, e->nb, e->mycol, e->npcol);
    if (j == t) continue;
    const double *col = e->A + (size_t)lj * (size_t)e->lld;
    double dot = 0, nj = 0;
    for (int i = 0; i < e->n; i++) {
      dot += col[i] * ct[i];
      nj += col[i] * col[i];
    }
    double s = nt > 0 && nj > 0 ? dot / (nt * sqrt(nj)) : 0.0;
    heap_push(heap, &hn, K, (cand){s, (int32_t)j}, NULL);
  }
  qsort_r(heap, (size_t)hn, sizeof *heap, cand_cmp, NULL);
  for (int j = hn; j < K; j++) heap[j] = (cand){-INFINITY, -1};
  IMF_TRY(cand_type(&ctype), out);
  IMF_MPI_TRY(MPI_Allgather(heap, K, ctype, all, K, ctype, e->comm), out);
  qsort_r(all, (size_t)size * (size_t)K, sizeof *all, cand_cmp, NULL); /* padding sorts last */
  int c = 0;
  for (int j = 0; j < K; j++) {
    int ok = all[j].i >= 0;
    items[j] = ok ? all[j].i : -1;
    scores[j] = ok ? (float)all[j].s : NAN;
    c += ok;
  }
  *count = c;
out:
  if (ctype != MPI_DATATYPE_NULL) MPI_Type_free(&ctype);
  imf_free(&ct);
  imf_free(&heap);
  imf_free(&all);
  return st;
}
