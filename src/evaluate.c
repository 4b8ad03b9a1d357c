/* evaluate.c - RMSE/MAE of a model on a test file (imf_eval_file: the file is small next to the
 * training data and the model is replicated, so rank 0 scores it alone and broadcasts), and the
 * `evaluate` command: split protocols (split.h), in-memory retraining (train.h), fold-in of
 * held-out users (rowsolve.h) and distributed rating + ranking metrics (metrics.h, topk.h).
 * Every rank scores the users of its own range; only sums and one item coverage vector are
 * reduced. */
#include "evaluate.h"
#include "baseline.h"
#include "ingest.h"
#include "store.h"
#include "checkpoint.h"
#include "config.h"
#include "ease.h"
#include "error.h"
#include "guard.h"
#include "itempop.h"
#include "log.h"
#include "modeldir.h"
#include "parse.h"
#include "modelblock.h"
#include "partition.h"
#include "reader.h"
#include "rowsolve.h"
#include "scale.h"
#include "topk.h"
#include "train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static imf_status score_file(const imf_config *cfg, const imf_model *m, const imf_idmap *users,
                             const imf_idmap *items, const char *path, double lo, double hi,
                             imf_eval_result *r) {
  imf_reader *rd = NULL;
  char *buf = NULL, *scratch = NULL;
  imf_status st = IMF_OK;
  imf_parse_opts o;
  IMF_TRY(imf_parse_opts_from_config(cfg, &o), done);
  /* a test rating is scored whatever its value: no scale rejection or clipping here */
  o.clip = 0;
  o.scale_min = o.scale_max = NAN;
  size_t cap = (size_t)1 << 22, have = 0;
  if (cap < o.max_line_len + 2) cap = o.max_line_len + 2;
  IMF_TRY(imf_reader_open(path, &rd), done);
  IMF_TRY(imf_alloc(&buf, cap + 1, 1), done);
  IMF_TRY(imf_alloc(&scratch, o.max_line_len + 16, 1), done);
  int first = 1, eof = 0;
  int64_t lineno = 0;
  double se = 0, ae = 0;
  while (!eof || have > 0) {
    size_t got = 0;
    if (!eof) {
      IMF_TRY(imf_reader_read(rd, buf + have, cap - have, &got), done);
      if (got == 0) eof = 1;
    }
    have += got;
    if (first) {
      IMF_TRY(imf_detect_format(path, buf, have, &o), done);
      if (o.cols_named) {
        char cols[1024];
        imf_header_describe(&o, buf, have, cols, sizeof cols);
        imf_info("%s: columns by header name: %s", path, cols);
      }
      first = 0;
    }
    size_t pos = 0;
    for (;;) {
      char *nl = memchr(buf + pos, '\n', have - pos);
      if (!nl && !(eof && pos < have)) break;
      size_t len = nl ? (size_t)(nl - (buf + pos)) : have - pos;
      lineno++;
      imf_record rec;
      imf_reject_reason why;
      imf_line_kind k = len > o.max_line_len ? IMF_LINE_REJECT
                                             : imf_parse_line(&o, buf + pos, len, lineno, scratch, &rec, &why);
      if (k == IMF_LINE_OK) {
        int64_t u = imf_idmap_find(users, rec.user, rec.user_len);
        int64_t i = imf_idmap_find(items, rec.item, rec.item_len);
        double p = imf_model_predict(m, u, i);
        if (!isnan(lo) && p < lo) p = lo;
        if (!isnan(hi) && p > hi) p = hi;
        double e = p - rec.rating;
        se += e * e;
        ae += fabs(e);
        r->n++;
        r->cold += (u < 0 || i < 0);
      } else {
        r->skipped++;
      }
      pos = nl ? (size_t)(nl - buf) + 1 : have;
    }
    if (pos == 0 && have == cap)
      IMF_TRY(IMF_RAISE(IMF_ERR_INPUT, "%s, line %lld: line longer than %zu bytes", path,
                        (long long)lineno + 1, o.max_line_len), done);
    memmove(buf, buf + pos, have - pos);
    have -= pos;
  }
  if (r->n == 0) IMF_TRY(IMF_RAISE(IMF_ERR_INPUT, "%s holds no ratings to evaluate", path), done);
  r->rmse = sqrt(se / (double)r->n);
  r->mae = ae / (double)r->n;
done:
  imf_reader_close(&rd);
  imf_free(&buf);
  imf_free(&scratch);
  return st;
}

imf_status imf_eval_file(MPI_Comm comm, const imf_config *cfg, const imf_model *m, const imf_idmap *users,
                         const imf_idmap *items, const char *path, double clip_lo, double clip_hi,
                         imf_eval_result *out) {
  int rank;
  MPI_Comm_rank(comm, &rank);
  memset(out, 0, sizeof *out);
  imf_status st = IMF_OK;
  if (rank == 0) st = score_file(cfg, m, users, items, path, clip_lo, clip_hi, out);
  IMF_CHECK(imf_agree(comm, st));
  IMF_MPI(MPI_Bcast(out, (int)sizeof *out, MPI_BYTE, 0, comm));
  return IMF_OK;
}

/* ======================= ranking and rating metrics over user blocks ======================= */

static int cmp_by_user_item(const void *a, const void *b, void *ctx) {
  const imf_ratings *r = ctx;
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  if (r->user[x] != r->user[y]) return r->user[x] < r->user[y] ? -1 : 1;
  if (r->item[x] != r->item[y]) return r->item[x] < r->item[y] ? -1 : 1;
  return (x > y) - (x < y);
}

#define EVAL_CHUNK 1024

/* The per-user output (imf_eval_opts.per_user): user u's metric at the first cut-off. */
static void per_user_put(const imf_eval_opts *o, int64_t ulo, int64_t u, const int32_t *rec, int nrec,
                         const int32_t *rel, int64_t nrel) {
  if (!o->per_user) return;
  imf_rank_sums t;
  memset(&t, 0, sizeof t);
  t.k = o->ks[0];
  imf_rank_metrics_add(rec, nrec, rel, nrel, o->ks[0], &t);
  o->per_user[u - ulo] = o->per_user_metric == IMF_PER_USER_RECALL ? t.recall
                         : o->per_user_metric == IMF_PER_USER_AP   ? t.ap
                                                                   : t.ndcg;
}

/* What eval_block scores: model m on the test ratings of users [ulo, uhi) (this rank's block).
 * Factor models: the users' factors are X ((uhi - ulo) x kw, biases xbias) or, with X NULL, the
 * model's own rows. EASE with its distributed state `ease` (B on a 1 x P grid): every user's X
 * row is xptr/xidx (NULL: their training row tptr/tidx: training plus fold-in items, which are
 * also the items excluded), X and xbias are unused and the ranking is one collective
 * imf_ease_topk over all ranks' users (each rank scores its own columns of B; no rank holds B
 * whole). tptr/tidx: each user's training items (never ranked). */
typedef struct {
  const imf_model *m;
  imf_ease *ease;
  int64_t ulo, uhi;
  const float *X, *xbias;
  const int64_t *xptr;
  const int32_t *xidx;
  const int64_t *tptr;
  const int32_t *tidx;
  const imf_ratings *test;
  const imf_eval_opts *o;
} eval_in;

/* eval_block's working state and running sums (eval_ws_free releases the arrays). */
typedef struct {
  int kw, K;
  int64_t *perm, *eptr, *qptr;
  int32_t *rel, *eidx, *qidx, *titems, *minpos;
  float *Xc, *xbc, *tscores;
  int *tcount;
  int64_t *ulist, *rlo, *rhi; /* the ranked users, their relevant items rel[rlo, rhi) */
  imf_rank_sums sums[IMF_MAX_CUTOFFS];
  double acc[4];     /* se, ae, n, cold */
  int64_t ucount[2]; /* ranked, cold */
  int64_t nusers_eval, nrel_all;
  imf_item_pop pop;  /* the ranking's tie-break and prior (itempop.h) */
} eval_ws;

static void eval_ws_free(eval_ws *w) {
  imf_free(&w->perm);
  imf_free(&w->rel);
  imf_free(&w->ulist);
  imf_free(&w->rlo);
  imf_free(&w->rhi);
  imf_free(&w->minpos);
  imf_free(&w->Xc);
  imf_free(&w->xbc);
  imf_free(&w->eptr);
  free(w->eidx);
  imf_free(&w->qptr);
  imf_free(&w->qidx);
  imf_free(&w->titems);
  imf_free(&w->tscores);
  imf_free(&w->tcount);
  imf_item_pop_free(&w->pop);
}

/* One ranked user's top list into the sums, the per-user output and the item coverage. */
static void eval_add_ranked(const eval_in *in, eval_ws *w, int64_t e, const int32_t *items, int count) {
  const imf_eval_opts *o = in->o;
  for (int kk = 0; kk < o->nk; kk++)
    imf_rank_metrics_add(items, count, w->rel + w->rlo[e], w->rhi[e] - w->rlo[e], o->ks[kk], &w->sums[kk]);
  per_user_put(o, in->ulo, w->ulist[e], items, count, w->rel + w->rlo[e], w->rhi[e] - w->rlo[e]);
  for (int j = 0; j < count; j++)
    if (w->minpos[items[j]] > j) w->minpos[items[j]] = j;
}

/* The test ratings sorted by (user, item): rating metrics, and the relevant items of each user
 * (sorted, as the metrics want); the users with some, a known user and training items are the
 * ranked ones (ulist), the rest counted cold. Local. */
static imf_status eval_ratings(const eval_in *in, eval_ws *w) {
  const imf_model *m = in->m;
  const imf_ratings *test = in->test;
  const imf_eval_opts *o = in->o;
  const int kw = w->kw;
  size_t nt = (size_t)(test->n ? test->n : 1);
  IMF_CHECK(imf_alloc(&w->perm, nt, sizeof *w->perm));
  IMF_CHECK(imf_alloc(&w->rel, nt, sizeof *w->rel));
  IMF_CHECK(imf_alloc(&w->ulist, nt, sizeof *w->ulist));
  IMF_CHECK(imf_alloc(&w->rlo, nt, sizeof *w->rlo));
  IMF_CHECK(imf_alloc(&w->rhi, nt, sizeof *w->rhi));
  IMF_CHECK(imf_alloc(&w->minpos, (size_t)(m->nitems ? m->nitems : 1), sizeof *w->minpos));
  for (int64_t i = 0; i < m->nitems; i++) w->minpos[i] = INT32_MAX;
  for (int64_t j = 0; j < test->n; j++) w->perm[j] = j;
  for (int64_t r = 0; o->per_user && r < in->uhi - in->ulo; r++) o->per_user[r] = NAN;
  qsort_r(w->perm, (size_t)test->n, sizeof *w->perm, cmp_by_user_item, (void *)test);
  const int64_t *perm = w->perm, ulo = in->ulo;
  int32_t *rel = w->rel;
  for (int64_t a = 0; a < test->n;) {
    int64_t u = test->user[perm[a]], b = a;
    if (u < ulo || u >= in->uhi)
      IMF_FAIL(IMF_ERR_RUNTIME, "test user %lld outside this rank's users [%lld, %lld)", (long long)u, (long long)ulo,
               (long long)in->uhi);
    int known_u = in->X ? 1 : u < m->nusers;
    int has_train = in->tptr[u - ulo + 1] > in->tptr[u - ulo];
    const float *xr = in->X ? in->X + (u - ulo) * kw : (known_u && !in->ease ? m->P + u * kw : NULL);
    double xb = in->X ? (in->xbias ? in->xbias[u - ulo] : 0) : (known_u && m->bu ? m->bu[u] : 0);
    int64_t r0 = w->nrel_all;
    for (; b < test->n && test->user[perm[b]] == u; b++) {
      int64_t j = perm[b], i = test->item[j];
      double v = test->value[j];
      int known_i = i < m->nitems;
      if (o->rating_metrics) {
        double p;
        if (known_u && known_i) {
          double d = 0;
          for (int c = 0; c < kw; c++) d += (double)xr[c] * (double)m->Q[i * kw + c];
          p = m->mu + xb + (m->bi ? m->bi[i] : 0) + d;
        } else if (known_u) {
          p = m->mu + xb;
        } else {
          p = imf_model_predict(m, -1, known_i ? i : -1);
        }
        if (!isnan(o->clip_lo) && p < o->clip_lo) p = o->clip_lo;
        if (!isnan(o->clip_hi) && p > o->clip_hi) p = o->clip_hi;
        w->acc[0] += (p - v) * (p - v);
        w->acc[1] += fabs(p - v);
        w->acc[2] += 1;
        w->acc[3] += !known_u || !known_i || !has_train;
      }
      if (known_i && (isnan(o->threshold) || v >= o->threshold)) {
        if (w->nrel_all == r0 || rel[w->nrel_all - 1] != (int32_t)i) rel[w->nrel_all++] = (int32_t)i;
      }
    }
    if (w->nrel_all > r0) {
      if (!known_u || !has_train) {
        w->ucount[1]++;
        w->nrel_all = r0;
      } else {
        w->ulist[w->nusers_eval] = u;
        w->rlo[w->nusers_eval] = r0;
        w->rhi[w->nusers_eval] = w->nrel_all;
        w->nusers_eval++;
      }
    }
    a = b;
  }
  w->ucount[0] = w->nusers_eval;
  return IMF_OK;
}

/* Ranking of a factor model: chunks of this rank's users through the top-K kernel. Local. */
static imf_status eval_rank_factors(const eval_in *in, eval_ws *w) {
  const imf_model *m = in->m;
  const int kw = w->kw, K = w->K;
  const int64_t ulo = in->ulo, *tptr = in->tptr;
  if (w->nusers_eval == 0 || m->nitems == 0) return IMF_OK;
  IMF_CHECK(imf_alloc(&w->Xc, (size_t)EVAL_CHUNK * (size_t)(kw ? kw : 1), sizeof *w->Xc));
  IMF_CHECK(imf_alloc(&w->xbc, EVAL_CHUNK, sizeof *w->xbc));
  IMF_CHECK(imf_alloc(&w->eptr, EVAL_CHUNK + 1, sizeof *w->eptr));
  IMF_CHECK(imf_alloc(&w->titems, (size_t)EVAL_CHUNK * (size_t)K, sizeof *w->titems));
  IMF_CHECK(imf_alloc(&w->tscores, (size_t)EVAL_CHUNK * (size_t)K, sizeof *w->tscores));
  IMF_CHECK(imf_alloc(&w->tcount, EVAL_CHUNK, sizeof *w->tcount));
  for (int64_t c0 = 0; c0 < w->nusers_eval; c0 += EVAL_CHUNK) {
    int64_t nc = w->nusers_eval - c0 < EVAL_CHUNK ? w->nusers_eval - c0 : EVAL_CHUNK, ne = 0;
    for (int64_t a = 0; a < nc; a++) {
      int64_t u = w->ulist[c0 + a];
      ne += tptr[u - ulo + 1] - tptr[u - ulo];
    }
    IMF_CHECK(imf_realloc(&w->eidx, (size_t)(ne ? ne : 1), sizeof *w->eidx));
    w->eptr[0] = 0;
    for (int64_t a = 0; a < nc; a++) {
      int64_t u = w->ulist[c0 + a], l = u - ulo;
      memcpy(w->Xc + a * kw, in->X ? in->X + l * kw : m->P + u * kw, sizeof(float) * (size_t)kw);
      w->xbc[a] = in->X ? (in->xbias ? in->xbias[l] : 0.0f) : (m->bu ? m->bu[u] : 0.0f);
      int64_t len = tptr[l + 1] - tptr[l];
      memcpy(w->eidx + w->eptr[a], in->tidx + tptr[l], sizeof(int32_t) * (size_t)len);
      w->eptr[a + 1] = w->eptr[a] + len;
    }
    imf_topk_query q = {nc, kw, w->Xc, w->xbc, m->nitems, m->Q, m->bi, m->mu, w->eptr, w->eidx, &w->pop};
    IMF_CHECK(imf_topk(&q, K, w->titems, w->tscores, w->tcount, NULL));
    for (int64_t a = 0; a < nc; a++) eval_add_ranked(in, w, c0 + a, w->titems + a * K, w->tcount[a]);
  }
  return IMF_OK;
}

/* Ranking of EASE: every rank's users at once; each rank scores its columns of B for all of
 * them. Collective. */
static imf_status eval_rank_ease(MPI_Comm comm, const eval_in *in, eval_ws *w) {
  const int K = w->K;
  const int64_t ulo = in->ulo, *tptr = in->tptr, *xptr = in->xptr, nusers = w->nusers_eval;
  int64_t ne = 0, nq = 0;
  for (int64_t a = 0; a < nusers; a++) {
    ne += tptr[w->ulist[a] - ulo + 1] - tptr[w->ulist[a] - ulo];
    if (xptr) nq += xptr[w->ulist[a] - ulo + 1] - xptr[w->ulist[a] - ulo];
  }
  int64_t nn = nusers ? nusers : 1;
  imf_status st = imf_realloc(&w->eptr, (size_t)nn + 1, sizeof *w->eptr);
  if (st == IMF_OK) st = imf_realloc(&w->eidx, (size_t)(ne ? ne : 1), sizeof *w->eidx);
  if (st == IMF_OK && xptr) st = imf_alloc(&w->qptr, (size_t)nn + 1, sizeof *w->qptr);
  if (st == IMF_OK && xptr) st = imf_alloc(&w->qidx, (size_t)(nq ? nq : 1), sizeof *w->qidx);
  if (st == IMF_OK) st = imf_realloc(&w->titems, (size_t)nn * (size_t)K, sizeof *w->titems);
  if (st == IMF_OK) st = imf_realloc(&w->tscores, (size_t)nn * (size_t)K, sizeof *w->tscores);
  if (st == IMF_OK) st = imf_realloc(&w->tcount, (size_t)nn, sizeof *w->tcount);
  if (st == IMF_OK) {
    w->eptr[0] = 0;
    for (int64_t a = 0; a < nusers; a++) {
      int64_t l = w->ulist[a] - ulo, len = tptr[l + 1] - tptr[l];
      memcpy(w->eidx + w->eptr[a], in->tidx + tptr[l], sizeof(int32_t) * (size_t)len);
      w->eptr[a + 1] = w->eptr[a] + len;
      if (xptr) {
        int64_t xl = xptr[l + 1] - xptr[l];
        memcpy(w->qidx + w->qptr[a], in->xidx + xptr[l], sizeof(int32_t) * (size_t)xl);
        w->qptr[a + 1] = w->qptr[a] + xl;
      }
    }
  }
  IMF_CHECK(imf_agree(comm, st));
  IMF_CHECK(imf_ease_topk(in->ease, 1, nusers, xptr ? w->qptr : w->eptr, xptr ? w->qidx : w->eidx, w->eptr, w->eidx, K,
                          &w->pop, w->titems, w->tscores, w->tcount));
  for (int64_t a = 0; a < nusers; a++) eval_add_ranked(in, w, a, w->titems + a * K, w->tcount[a]);
  return IMF_OK;
}

/* The sums of every rank into out: means, coverage, counts. Collective. */
static void eval_reduce(MPI_Comm comm, const eval_in *in, eval_ws *w, imf_metrics *out) {
  const imf_model *m = in->m;
  const imf_eval_opts *o = in->o;
  double s[7 * IMF_MAX_CUTOFFS];
  for (int a = 0; a < o->nk; a++) {
    s[7 * a + 0] = w->sums[a].precision;
    s[7 * a + 1] = w->sums[a].recall;
    s[7 * a + 2] = w->sums[a].f1;
    s[7 * a + 3] = w->sums[a].ndcg;
    s[7 * a + 4] = w->sums[a].ap;
    s[7 * a + 5] = w->sums[a].hit;
    s[7 * a + 6] = w->sums[a].users;
  }
  MPI_Allreduce(MPI_IN_PLACE, s, 7 * o->nk, MPI_DOUBLE, MPI_SUM, comm);
  MPI_Allreduce(MPI_IN_PLACE, w->acc, 4, MPI_DOUBLE, MPI_SUM, comm);
  MPI_Allreduce(MPI_IN_PLACE, w->ucount, 2, MPI_INT64_T, MPI_SUM, comm);
  if (m->nitems > 0) MPI_Allreduce(MPI_IN_PLACE, w->minpos, (int)m->nitems, MPI_INT32_T, MPI_MIN, comm);
  for (int a = 0; a < o->nk; a++) {
    imf_rank_sums g = {o->ks[a], s[7 * a], s[7 * a + 1], s[7 * a + 2], s[7 * a + 3], s[7 * a + 4], s[7 * a + 5], s[7 * a + 6]};
    int64_t covered = 0;
    for (int64_t i = 0; i < m->nitems; i++) covered += w->minpos[i] < o->ks[a];
    imf_rank_means_of(&g, m->nitems > 0 ? (double)covered / (double)m->nitems : NAN, &out->rank[a]);
  }
  const double *acc = w->acc;
  out->n_ratings = (int64_t)acc[2];
  out->n_cold = (int64_t)acc[3];
  out->rmse = o->rating_metrics && acc[2] > 0 ? sqrt(acc[0] / acc[2]) : NAN;
  out->mae = o->rating_metrics && acc[2] > 0 ? acc[1] / acc[2] : NAN;
  out->users_ranked = w->ucount[0];
  out->users_cold = w->ucount[1];
}

/* Rating and ranking metrics of in->m on this rank's block of test users (eval_in), summed over
 * the ranks into out. Collective. */
static imf_status eval_block(MPI_Comm comm, const eval_in *in, imf_metrics *out) {
  double t0 = imf_wtime();
  const imf_eval_opts *o = in->o;
  memset(out, 0, sizeof *out);
  out->nk = o->nk;
  eval_ws w;
  memset(&w, 0, sizeof w);
  w.kw = in->m->kw;
  /* a cut-off beyond the item count ranks every item: lists of at most nitems (guard.h) */
  w.K = (int)imf_cap_count(o->ks[o->nk - 1], in->m->nitems);
  for (int a = 0; a < o->nk; a++) w.sums[a].k = o->ks[a];
  imf_status st = imf_agree(comm, eval_ratings(in, &w));
  /* the items' popularity in every rank's training rows: ties, and the prior (itempop.h) */
  if (st == IMF_OK)
    st = imf_item_pop_csr(comm, in->m->nitems, in->uhi - in->ulo, in->tptr, in->tidx, o->pop_prior, &w.pop);
  /* (EASE's distributed kernel is below, where every rank takes part) */
  if (st == IMF_OK && !in->ease) st = eval_rank_factors(in, &w);
  st = imf_agree(comm, st);
  if (st == IMF_OK && in->ease) st = eval_rank_ease(comm, in, &w);
  if (st == IMF_OK) {
    eval_reduce(comm, in, &w, out);
    out->seconds = imf_wtime() - t0;
  }
  eval_ws_free(&w);
  return st;
}

imf_status imf_eval_block(MPI_Comm comm, const imf_model *m, int64_t ulo, int64_t uhi, const float *X,
                          const float *xbias, const int64_t *tptr, const int32_t *tidx,
                          const imf_ratings *test, const imf_eval_opts *o, imf_metrics *out) {
  const eval_in in = {.m = m, .ulo = ulo, .uhi = uhi, .X = X, .xbias = xbias, .tptr = tptr, .tidx = tidx,
                      .test = test, .o = o};
  return eval_block(comm, &in, out);
}

imf_status imf_eval_block_ease(MPI_Comm comm, const imf_model *m, imf_ease *ease, int64_t ulo, int64_t uhi,
                               const int64_t *xptr, const int32_t *xidx, const int64_t *tptr, const int32_t *tidx,
                               const imf_ratings *test, const imf_eval_opts *o, imf_metrics *out) {
  const eval_in in = {.m = m, .ease = ease, .ulo = ulo, .uhi = uhi, .xptr = xptr, .xidx = xidx, .tptr = tptr,
                      .tidx = tidx, .test = test, .o = o};
  return eval_block(comm, &in, out);
}

int imf_metrics_list(const imf_metrics *r, char names[][32], double *values) {
  int n = 0;
  snprintf(names[n], 32, "rmse");
  values[n++] = r->rmse;
  snprintf(names[n], 32, "mae");
  values[n++] = r->mae;
  static const char *nm[7] = {"precision", "recall", "f1", "ndcg", "map", "hit_rate", "coverage"};
  for (int a = 0; a < r->nk; a++) {
    const imf_rank_means *q = &r->rank[a];
    const double v[7] = {q->precision, q->recall, q->f1, q->ndcg, q->map, q->hit_rate, q->coverage};
    for (int j = 0; j < 7; j++) {
      snprintf(names[n], 32, "%s@%d", nm[j], q->k);
      values[n++] = v[j];
    }
  }
  return n;
}

/* ============================ protocols: train, fold in, score ============================ */

/* CSR over users [ulo, uhi) of the union of up to two rating sets (each sorted by (user, item),
 * users of the two sets disjoint or interleaved: rows are merged and re-sorted). */
static int cmp_i32(const void *a, const void *b) {
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  return (x > y) - (x < y);
}
static imf_status build_csr(int64_t ulo, int64_t uhi, const imf_ratings *a, const imf_ratings *b, int64_t **ptr,
                            int32_t **idx) {
  int64_t n = uhi - ulo, tot = a->n + (b ? b->n : 0);
  IMF_CHECK(imf_alloc(ptr, (size_t)n + 1, sizeof **ptr));
  IMF_CHECK(imf_alloc(idx, (size_t)(tot ? tot : 1), sizeof **idx));
  int64_t *p = *ptr;
  const imf_ratings *src[2] = {a, b};
  for (int s = 0; s < 2; s++)
    if (src[s])
      for (int64_t j = 0; j < src[s]->n; j++) p[src[s]->user[j] - ulo + 1]++;
  for (int64_t r = 0; r < n; r++) p[r + 1] += p[r];
  int64_t *fill = NULL;
  IMF_CHECK(imf_alloc(&fill, (size_t)(n ? n : 1), sizeof *fill));
  for (int s = 0; s < 2; s++)
    if (src[s])
      for (int64_t j = 0; j < src[s]->n; j++) {
        int64_t r = src[s]->user[j] - ulo;
        (*idx)[p[r] + fill[r]++] = src[s]->item[j];
      }
  imf_free(&fill);
  if (b)
    for (int64_t r = 0; r < n; r++) qsort(*idx + p[r], (size_t)(p[r + 1] - p[r]), sizeof(int32_t), cmp_i32);
  return IMF_OK;
}

static imf_status opts_from(const imf_config *cfg, const char *cutoffs, const imf_model *m, double lo, double hi,
                            const imf_dataset *d, imf_eval_opts *o) {
  memset(o, 0, sizeof *o);
  IMF_CHECK(imf_parse_cutoffs(cutoffs ? cutoffs : imf_cfg_str(cfg, "eval.k"), o->ks, &o->nk));
  /* implicit-feedback models (iALS, EASE) score preferences, pop counts: no rating metrics, and
   * relevant = a positive (model.positive_threshold; none: every test rating); explicit ones:
   * eval.relevance_threshold, auto resolved against the data's scale (scale.h) */
  int implicit = m->type == IMF_MODEL_IALS || m->type == IMF_MODEL_EASE || m->type == IMF_MODEL_POP;
  o->threshold = NAN;
  if (!implicit) IMF_CHECK(imf_relevance_threshold_scale(cfg, d && d->values.n ? &d->values : NULL, &o->threshold));
  else o->threshold = imf_cfg_double(cfg, "model.positive_threshold"); /* relevant = a positive */
  o->clip_lo = lo;
  o->clip_hi = hi;
  o->rating_metrics = !implicit;
  /* the popularity prior of implicit rankers (pop's own scores are the popularity) */
  o->pop_prior = m->type == IMF_MODEL_IALS || m->type == IMF_MODEL_EASE ? imf_item_pop_beta(cfg) : 0.0;
  return IMF_OK;
}

/* Train a model in memory on this rank's share of the training ratings (no validation carve).
 * EASE: one ScaLAPACK solve (ease.h); *ease receives B redistributed to a 1 x P grid for the
 * distributed scorer, and *out is only a handle (type, users, items; k = 1): B is never
 * replicated. */
static imf_status train_on(MPI_Comm comm, const imf_config *cfg, const imf_ratings *train, int64_t nu, int64_t ni,
                           imf_model **out, imf_ease **ease) {
  imf_partition *part = NULL;
  imf_trainer *t = NULL;
  imf_status st = IMF_OK;
  *ease = NULL;
  if (!strcmp(imf_cfg_str(cfg, "model.type"), "ease")) {
    imf_ease *e = NULL;
    IMF_TRY(imf_ease_fit(comm, train, ni, imf_cfg_double(cfg, "model.ease_lambda"), &e), done);
    st = imf_ease_to_columns(e, ease);
    imf_ease_destroy(&e);
    IMF_TRY(st, done);
    st = imf_agree(comm, imf_model_create(IMF_MODEL_EASE, 1, nu, ni, 0, out));
    if (st == IMF_OK) (*out)->lambda = imf_cfg_double(cfg, "model.ease_lambda");
    else imf_ease_destroy(ease);
    return st;
  }
  IMF_TRY(imf_partition_build(comm, train, nu, ni, 0.0, (uint64_t)imf_cfg_int(cfg, "model.seed"), &part), done);
  if (!strcmp(imf_cfg_str(cfg, "model.type"), "pop") || !strcmp(imf_cfg_str(cfg, "model.type"), "bias")) {
    IMF_TRY(imf_baseline_fit(comm, cfg, part, out), done);
    goto done;
  }
  IMF_TRY(imf_train_create(comm, cfg, part, &t), done);
  IMF_TRY(imf_trainer_run(t), done);
  IMF_TRY(imf_model_gather(comm, imf_trainer_model(t), out), done); /* whole, if trained out-block */
done:
  imf_trainer_destroy(&t);
  imf_partition_destroy(&part);
  return st;
}

/* Fold in the users of `foldin` (this rank's held-out users) against the fixed item side with
 * the training row solver: X and xb get their rows (others keep the model's rows). */
static imf_status fold_in(const imf_model *m, int64_t ulo, const imf_ratings *foldin, float *X, float *xb) {
  if (foldin->n == 0) return IMF_OK;
  if (m->type == IMF_MODEL_EASE) {
    /* an EASE user row is the user's binarized ratings: folding in is writing them */
    for (int64_t j = 0; j < foldin->n; j++) {
      float *x = X + (foldin->user[j] - ulo) * m->kw;
      if (foldin->item[j] >= 0 && foldin->item[j] < m->kw) x[foldin->item[j]] = 1.0f;
      xb[foldin->user[j] - ulo] = 0.0f;
    }
    return IMF_OK;
  }
  if (imf_baseline_type(m->type)) { /* pop: no user row; bias: the user's bias against bi */
    imf_baseline_foldin(m, ulo, foldin, X, xb);
    return IMF_OK;
  }
  imf_status st = IMF_OK;
  int64_t *ptr = NULL, *rid = NULL;
  float *Xr = NULL, *br = NULL;
  double *YtY = NULL;
  imf_rowsolve_ws *ws = NULL;
  if (m->type == IMF_MODEL_BPMF || m->kw != m->k)
    IMF_TRY(IMF_RAISE(IMF_ERR_USAGE, "the held-out-users protocol folds users in with ALS or implicit ALS; not with bpmf"), out);
  int k = m->k;
  int64_t nr = 0;
  for (int64_t j = 0; j < foldin->n; j++)
    if (j == 0 || foldin->user[j] != foldin->user[j - 1]) nr++;
  IMF_TRY(imf_alloc(&ptr, (size_t)nr + 1, sizeof *ptr), out);
  IMF_TRY(imf_alloc(&rid, (size_t)nr, sizeof *rid), out);
  IMF_TRY(imf_alloc(&Xr, (size_t)nr * (size_t)k, sizeof *Xr), out);
  IMF_TRY(imf_alloc(&br, (size_t)nr, sizeof *br), out);
  int64_t r = -1;
  for (int64_t j = 0; j < foldin->n; j++) {
    if (j == 0 || foldin->user[j] != foldin->user[j - 1]) {
      r++;
      rid[r] = foldin->user[j];
      ptr[r] = j;
    }
  }
  ptr[nr] = foldin->n;
  imf_row_params p;
  memset(&p, 0, sizeof p);
  p.k = k;
  p.mu = m->mu;
  p.lambda = m->lambda;
  p.lambda_bias = m->lambda_bias;
  p.alpha = m->alpha;
  if (m->type == IMF_MODEL_IALS) {
    p.kind = IMF_ROW_IALS;
    IMF_TRY(imf_alloc(&YtY, (size_t)k * (size_t)k, sizeof *YtY), out);
    imf_rowsolve_gram(m->Q, m->nitems, k, YtY);
    p.YtY = YtY;
  } else {
    p.kind = IMF_ROW_ALS;
    p.with_bias = m->with_bias;
  }
  imf_row_batch batch = {nr, rid, ptr, foldin->item, foldin->value};
  imf_other_side other = {m->nitems, m->Q, m->bi};
  IMF_TRY(imf_rowsolve_ws_create(k, &ws), out);
  IMF_TRY(imf_rowsolve(&p, &batch, &other, Xr, m->with_bias ? br : NULL, ws), out);
  for (r = 0; r < nr; r++) {
    memcpy(X + (rid[r] - ulo) * k, Xr + r * k, sizeof(float) * (size_t)k);
    xb[rid[r] - ulo] = m->with_bias ? br[r] : 0.0f;
  }
out:
  imf_rowsolve_ws_destroy(&ws);
  imf_free(&ptr);
  imf_free(&rid);
  imf_free(&Xr);
  imf_free(&br);
  imf_free(&YtY);
  return st;
}

/* Score model m on this rank's test ratings; training (and fold-in) ratings are excluded. With
 * foldin non-empty the held-out users are folded in first. */
static imf_status score_split(MPI_Comm comm, const imf_model *m, imf_ease *ease, int64_t ulo, int64_t uhi,
                              const imf_ratings *train, const imf_ratings *foldin, const imf_ratings *test,
                              const imf_eval_opts *o, imf_metrics *res) {
  int64_t *ptr = NULL;
  int32_t *idx = NULL;
  float *X = NULL, *xb = NULL;
  imf_status st = IMF_OK;
  int64_t nb = uhi - ulo;
  IMF_TRY(build_csr(ulo, uhi, train, foldin, &ptr, &idx), out);
  if (foldin && !ease) { /* EASE's distributed scorer takes the rows of the CSR: no X */
    /* the block's own factor rows, with the folded-in users replaced */
    IMF_TRY(imf_alloc(&X, (size_t)(nb ? nb : 1) * (size_t)m->kw, sizeof *X), out);
    IMF_TRY(imf_alloc(&xb, (size_t)(nb ? nb : 1), sizeof *xb), out);
    for (int64_t u = ulo; u < uhi && u < m->nusers; u++) {
      memcpy(X + (u - ulo) * m->kw, m->P + u * m->kw, sizeof(float) * (size_t)m->kw);
      xb[u - ulo] = m->bu ? m->bu[u] : 0.0f;
    }
    IMF_TRY(fold_in(m, ulo, foldin, X, xb), out);
  }
out:
  st = imf_agree(comm, st);
  if (st == IMF_OK) {
    const eval_in in = {.m = m, .ease = ease, .ulo = ulo, .uhi = uhi, .X = X, .xbias = xb, .tptr = ptr, .tidx = idx,
                        .test = test, .o = o};
    st = eval_block(comm, &in, res);
  }
  res->relevance_threshold = o->threshold;
  imf_free(&ptr);
  imf_free(&idx);
  imf_free(&X);
  imf_free(&xb);
  return st;
}

/* Mean and sample sd over n folds of each metric; the sd of one fold is NaN (printed as no
 * "± sd" and as JSON null: one number has no spread). */
static int summarise_folds(const imf_metrics *fold, int n, char names[][32], double *mean, double *sd) {
  double vals[IMF_EVAL_MAX_FOLDS][IMF_EVAL_MAX_NAMES];
  int nm = 0;
  for (int f = 0; f < n; f++) nm = imf_metrics_list(&fold[f], names, vals[f]);
  for (int j = 0; j < nm; j++) {
    double s = 0, ss = 0;
    for (int f = 0; f < n; f++) s += vals[f][j];
    double mu = s / n;
    for (int f = 0; f < n; f++) ss += (vals[f][j] - mu) * (vals[f][j] - mu);
    mean[j] = mu;
    sd[j] = n > 1 ? sqrt(ss / (n - 1)) : NAN;
  }
  return nm;
}

static void summarise(imf_eval_report *rep) {
  rep->nmetrics = summarise_folds(rep->fold, rep->nfolds, rep->names, rep->mean, rep->sd);
  char names[IMF_EVAL_MAX_NAMES][32];
  for (int b = 0; b < rep->nbaselines; b++)
    summarise_folds(rep->base[b].fold, rep->nfolds, names, rep->base[b].mean, rep->base[b].sd);
}

/* A copy of cfg with model.type = type (a baseline's configuration: its other model.* keys,
 * model.lambda_bias, model.iterations, model.seed, are the run's). */
static imf_status cfg_of_type(const imf_config *cfg, imf_model_type type, imf_config **out) {
  char *text = imf_config_dump(cfg), set[64];
  if (!text) IMF_FAIL(IMF_ERR_NOMEM, "out of memory");
  imf_status st = imf_config_create(out);
  if (st == IMF_OK) st = imf_config_load_string(*out, text, "configuration");
  free(text);
  snprintf(set, sizeof set, "model.type=%s", imf_model_type_name(type));
  if (st == IMF_OK) st = imf_config_set(*out, set);
  if (st != IMF_OK) imf_config_destroy(out);
  return st;
}

/* The --baseline rows of one split (fold `fold` of rep): each baseline is fitted on exactly the
 * training ratings of that split (less a standing holdout hfrac/hseed where the model was trained
 * without it; 0: none) over nu x ni rows, folded in and scored on the same test ratings with the
 * model's options (same relevance and cut-offs; rating metrics for bias only, pop's scores are
 * counts). No spec or no baselines: nothing. */
static imf_status score_baselines(MPI_Comm comm, const imf_config *cfg, const imf_eval_spec *spec,
                                  imf_eval_report *rep, int fold, int64_t ulo, int64_t uhi, int64_t nu, int64_t ni,
                                  double hfrac, uint64_t hseed, const imf_ratings *train, const imf_ratings *foldin,
                                  const imf_ratings *test, const imf_eval_opts *o) {
  if (!spec || !rep) return IMF_OK;
  rep->nbaselines = spec->nbaselines;
  for (int b = 0; b < spec->nbaselines; b++) {
    double t0 = imf_wtime();
    imf_config *c = NULL;
    imf_partition *part = NULL;
    imf_model *bm = NULL;
    rep->base[b].type = spec->baseline[b];
    imf_status st = imf_agree(comm, cfg_of_type(cfg, spec->baseline[b], &c));
    if (st == IMF_OK) st = imf_partition_build(comm, train, nu, ni, hfrac, hseed, &part);
    if (st == IMF_OK) st = imf_baseline_fit(comm, c, part, &bm);
    imf_eval_opts bo = *o;
    bo.rating_metrics = spec->baseline[b] == IMF_MODEL_BIAS;
    bo.pop_prior = 0; /* a baseline ranks by its own scores (ties by popularity all the same) */
    if (st == IMF_OK) st = score_split(comm, bm, NULL, ulo, uhi, train, foldin, test, &bo, &rep->base[b].fold[fold]);
    if (st == IMF_OK) rep->base[b].fold[fold].seconds = imf_wtime() - t0;
    imf_model_destroy(&bm);
    imf_partition_destroy(&part);
    imf_config_destroy(&c);
    IMF_CHECK(st);
  }
  return IMF_OK;
}

/* Implicit evaluation: keep ratings >= eval.binarize as interactions of value 1. Refused with an
 * implicit model's own model.positive_threshold: the threshold would then see only 1s and, above
 * 1, leave nothing to train or score on (every metric null, silently: found on ml-100k with both
 * at 4); the two say the same thing, and the model's key is the one recorded with the model. */
imf_status imf_eval_binarize(const imf_config *cfg, imf_dataset *d) {
  double thr = imf_cfg_double(cfg, "eval.binarize");
  if (isnan(thr)) return IMF_OK;
  imf_implicit_opts io;
  IMF_CHECK(imf_implicit_opts_from(cfg, &io));
  if (io.active && !isnan(io.positive_threshold))
    IMF_FAIL(IMF_ERR_USAGE, "eval.binarize = %g and model.positive_threshold = %g are both set: binarize turns the "
             "ratings into 1s before the model's threshold sees them; set only model.positive_threshold (an "
             "implicit model's held-out positives are then its relevant items)", thr, io.positive_threshold);
  int64_t w = 0;
  for (int64_t j = 0; j < d->r.n; j++) {
    if (!(d->r.value[j] >= thr)) continue;
    d->r.user[w] = d->r.user[j];
    d->r.item[w] = d->r.item[j];
    d->r.value[w] = 1.0f;
    d->r.time[w] = d->r.time[j];
    w++;
  }
  d->r.n = w;
  return IMF_OK;
}

/* One split of a dataset: train on its training part, score the test part (and the --baseline
 * rows of spec into fold `fold` of rep, when given). */
static imf_status run_split(MPI_Comm comm, const imf_config *cfg, const imf_dataset *d, const imf_split_spec *sp,
                            const char *cutoffs, double lo, double hi, imf_metrics *res, const imf_eval_spec *spec,
                            imf_eval_report *rep, int fold) {
  imf_ratings train = {0}, foldin = {0}, test = {0};
  imf_model *m = NULL;
  imf_ease *ease = NULL;
  imf_status st = IMF_OK;
  double t0 = imf_wtime();
  IMF_TRY(imf_split(comm, d, sp, &train, &foldin, &test), out);
  /* an implicit model trains (and folds users in) on its positives and confidence values */
  IMF_TRY(imf_agree(comm, imf_implicit_transform(cfg, &train)), out);
  IMF_TRY(imf_implicit_transform(cfg, &foldin), out);
  IMF_TRY(train_on(comm, cfg, &train, d->nusers, d->nitems, &m, &ease), out);
  imf_eval_opts o;
  st = opts_from(cfg, cutoffs, m, lo, hi, d, &o);
  IMF_TRY(imf_agree(comm, st), out);
  IMF_TRY(score_split(comm, m, ease, d->ulo, d->uhi, &train, sp->kind == IMF_SPLIT_HELDOUT_USERS ? &foldin : NULL,
                      &test, &o, res), out);
  res->seconds = imf_wtime() - t0;
  IMF_TRY(score_baselines(comm, cfg, spec, rep, fold, d->ulo, d->uhi, d->nusers, d->nitems, 0.0, 0, &train,
                          sp->kind == IMF_SPLIT_HELDOUT_USERS ? &foldin : NULL, &test, &o), out);
out:
  imf_ratings_free(&train);
  imf_ratings_free(&foldin);
  imf_ratings_free(&test);
  imf_model_destroy(&m);
  imf_ease_destroy(&ease);
  return st;
}

static imf_status eval_cv(MPI_Comm comm, const imf_config *cfg, const imf_dataset *d, int folds,
                          const imf_eval_spec *spec, imf_eval_report *rep) {
  if (folds < 2 || folds > IMF_EVAL_MAX_FOLDS) IMF_FAIL(IMF_ERR_USAGE, "folds must be 2..%d, got %d", IMF_EVAL_MAX_FOLDS, folds);
  double t0 = imf_wtime();
  snprintf(rep->protocol, sizeof rep->protocol, "kfold");
  imf_split_spec sp = {.kind = IMF_SPLIT_FOLD, .seed = (uint64_t)imf_cfg_int(cfg, "eval.seed"), .nfolds = folds};
  double lo = d->scale_min, hi = d->scale_max;
  for (int f = 0; f < folds; f++) {
    sp.fold = f;
    IMF_CHECK(run_split(comm, cfg, d, &sp, spec ? spec->cutoffs : NULL, lo, hi, &rep->fold[f], spec, rep, f));
  }
  rep->nfolds = folds;
  summarise(rep);
  rep->seconds = imf_wtime() - t0;
  return IMF_OK;
}

imf_status imf_eval_cv(MPI_Comm comm, const imf_config *cfg, const imf_dataset *d, int folds, imf_eval_report *rep) {
  memset(rep, 0, sizeof *rep);
  rep->train_overlap = NAN;
  return eval_cv(comm, cfg, d, folds, NULL, rep);
}

static imf_status protocol_kind(const char *name, imf_split_kind *k) {
  static const struct {
    const char *n;
    imf_split_kind k;
  } T[] = {{"random", IMF_SPLIT_RANDOM},     {"leave-k-out", IMF_SPLIT_LEAVE_K},
           {"temporal", IMF_SPLIT_TEMPORAL}, {"standing", IMF_SPLIT_STANDING},
           {"kfold", IMF_SPLIT_FOLD},        {"heldout-users", IMF_SPLIT_HELDOUT_USERS}};
  for (size_t j = 0; j < sizeof T / sizeof T[0]; j++)
    if (!strcmp(name, T[j].n)) {
      *k = T[j].k;
      return IMF_OK;
    }
  IMF_FAIL(IMF_ERR_USAGE, "unknown protocol '%s' (test, standing, random, leave-k-out, temporal, kfold, heldout-users)",
           name);
}

/* Expand "DIR/u%d.base" for fold f (1-based, as the MovieLens files are numbered). */
static imf_status fold_path(const char *pat, int f, char *out, size_t cap) {
  const char *p = strstr(pat, "%d");
  if (!p || strstr(p + 2, "%")) IMF_FAIL(IMF_ERR_USAGE, "--fold-files patterns need exactly one %%d, got '%s'", pat);
  snprintf(out, cap, "%.*s%d%s", (int)(p - pat), pat, f, p + 2);
  return IMF_OK;
}

/* The official folds: fold f trains on BASE(f) and tests on TEST(f); ids are numbered over the
 * base file first, so test-only ids are cold. */
static imf_status run_fold_files(MPI_Comm comm, const imf_config *cfg, const imf_eval_spec *sp, int f,
                                 imf_eval_report *rep) {
  imf_metrics *res = &rep->fold[f - 1];
  char pats[2][4096], base[4096], test[4096];
  imf_dataset tr, te;
  imf_model *m = NULL;
  imf_ease *ease = NULL;
  imf_status st = IMF_OK;
  double t0 = imf_wtime();
  memset(&tr, 0, sizeof tr);
  memset(&te, 0, sizeof te);
  const char *comma = strchr(sp->fold_files, ',');
  if (!comma) IMF_TRY(IMF_RAISE(IMF_ERR_USAGE, "--fold-files wants BASE_PATTERN,TEST_PATTERN (e.g. d/u%%d.base,d/u%%d.test)"), out);
  snprintf(pats[0], sizeof pats[0], "%.*s", (int)(comma - sp->fold_files), sp->fold_files);
  snprintf(pats[1], sizeof pats[1], "%s", comma + 1);
  IMF_TRY(fold_path(pats[0], f, base, sizeof base), out);
  IMF_TRY(fold_path(pats[1], f, test, sizeof test), out);
  IMF_TRY(imf_dataset_from_file(comm, cfg, base, NULL, NULL, &tr), out);
  int64_t nu0 = tr.nusers, ni0 = tr.nitems;
  IMF_TRY(imf_dataset_from_file(comm, cfg, test, tr.users, tr.items, &te), out);
  /* one layout over all ids for both parts */
  IMF_TRY(imf_dataset_relayout(comm, &tr, te.nusers, te.nitems), out);
  IMF_TRY(imf_eval_binarize(cfg, &tr), out);
  IMF_TRY(imf_eval_binarize(cfg, &te), out);
  IMF_TRY(imf_agree(comm, imf_implicit_transform(cfg, &tr.r)), out);
  IMF_TRY(train_on(comm, cfg, &tr.r, nu0, ni0, &m, &ease), out);
  /* test ratings of ids unseen in training stay (cold), rank with the model's rows only */
  imf_eval_opts o;
  st = opts_from(cfg, sp->cutoffs, m, imf_cfg_double(cfg, "clean.scale_min"), imf_cfg_double(cfg, "clean.scale_max"),
                 &tr, &o);
  IMF_TRY(imf_agree(comm, st), out);
  IMF_TRY(score_split(comm, m, ease, tr.ulo, tr.uhi, &tr.r, NULL, &te.r, &o, res), out);
  res->seconds = imf_wtime() - t0;
  IMF_TRY(score_baselines(comm, cfg, sp, rep, f - 1, tr.ulo, tr.uhi, nu0, ni0, 0.0, 0, &tr.r, NULL, &te.r, &o), out);
out:
  imf_model_destroy(&m);
  imf_ease_destroy(&ease);
  imf_dataset_free(&te);
  imf_dataset_free(&tr);
  return st;
}

/* The model's own id maps (dense index = position in the checkpoint's id lists). */
static imf_status model_idmaps(const imf_ckpt_meta *meta, imf_idmap **u, imf_idmap **i) {
  IMF_CHECK(imf_idmap_create(u));
  IMF_CHECK(imf_idmap_create(i));
  IMF_CHECK(imf_idmap_add_list(*u, &meta->users));
  IMF_CHECK(imf_idmap_add_list(*i, &meta->items));
  return IMF_OK;
}

/* Keep only ratings of users and items the model knows (a store may have grown since). */
/* (local) The model's dense indices must mean what they mean in the store: its id lists are a
 * prefix of the store's (an id `forget` removed is empty in the model). A store that only grew
 * since training is fine (stale: the new users and items are left out); any other store holds
 * other data, and scoring the model against it would pair wrong rows with wrong ratings. */
static imf_status check_model_store(const char *model_dir, const char *store_dir, const imf_ckpt_meta *meta,
                                    const imf_dataset *d, int64_t mnu, int64_t mni) {
  const imf_idlist *l[2] = {&meta->users, &meta->items};
  const imf_idmap *sm[2] = {d->users, d->items};
  for (int s = 0; s < 2; s++) {
    int64_t bad = l[s]->n > imf_idmap_size(sm[s]) ? imf_idmap_size(sm[s]) : -1;
    for (int64_t j = 0; j < l[s]->n && bad < 0; j++) {
      size_t len = 0, ml = (size_t)(l[s]->off[j + 1] - l[s]->off[j]);
      const char *id = imf_idmap_get(sm[s], j, &len);
      if (ml && (ml != len || memcmp(id, l[s]->blob + l[s]->off[j], len) != 0)) bad = j;
    }
    if (bad >= 0)
      IMF_FAIL(IMF_ERR_INPUT,
               "the model in %s was trained on other data than the store %s (their %s ids differ from "
               "index %lld on; the model's store digest is %.12s...): give --data the store it was trained "
               "on, or train a model on this one", model_dir, store_dir, s ? "item" : "user", (long long)bad,
               meta->store_digest);
  }
  if (d->nusers > mnu || d->nitems > mni)
    imf_warn("the store %s has users or items the model has not seen (%lld users, %lld items; the model "
             "knows %lld, %lld): their ratings are left out (run update)", store_dir, (long long)d->nusers,
             (long long)d->nitems, (long long)mnu, (long long)mni);
  return IMF_OK;
}

static void restrict_to_model(imf_ratings *r, const imf_model *m) {
  int64_t w = 0;
  for (int64_t j = 0; j < r->n; j++) {
    if (r->user[j] >= m->nusers || r->item[j] >= m->nitems) continue;
    r->user[w] = r->user[j];
    r->item[w] = r->item[j];
    r->value[w] = r->value[j];
    r->time[w] = r->time[j];
    w++;
  }
  r->n = w;
}

static const char *EVAL_KEYS[] = {"eval.k", "eval.relevance_threshold", "eval.binarize", "eval.test_fraction",
                                  "eval.leave_k", "eval.folds", "eval.seed", "eval.heldout_users",
                                  "eval.foldin_fraction", "eval.min_user_ratings"};
static const char *INPUT_KEYS[] = {"input.format",   "input.header",     "input.delimiter",
                                   "input.user_col", "input.item_col",   "input.rating_col",
                                   "input.time_col", "input.max_line_length", "input.max_id_length"};

/* The current version of a model directory (or the kept version *ver when *ver > 0: a missing
 * one is IMF_ERR_NOTFOUND) with its configuration; the eval.* keys of the command line win over
 * the stored ones, and so do the input.* keys it gives. *ver receives the version read. */
static imf_status load_model(MPI_Comm comm, const imf_config *cli, const char *dir, int64_t *ver, imf_model **m,
                             imf_ckpt_meta *meta, imf_config *cfg, imf_ease **ease) {
  imf_modeldir *md = NULL;
  char path[4096];
  imf_status st = IMF_OK;
  IMF_TRY(imf_modeldir_open(comm, dir, 0, 0, 0, &md), out);
  IMF_TRY(imf_modeldir_version(md, *ver, path, sizeof path, ver), out);
  if (imf_cfg_bool(cli, "dist.node_shared")) /* one copy per node (checkpoint.h) */
    IMF_TRY(imf_checkpoint_read_shared(comm, (int)imf_cfg_int(cli, "dist.ranks_per_node"), path, m, meta), out);
  else
    IMF_TRY(imf_checkpoint_read(comm, path, m, meta), out);
  {
    /* an EASE version scores with its B read block-cyclically (each rank its columns) and the
     * store's training rows as X; one written before B was stored scores with its replicated Q */
    imf_ckpt_info ci;
    imf_status is = imf_checkpoint_info(path, &ci);
    int has_b = is == IMF_OK && ci.ease_has_b;
    if (is == IMF_OK) imf_ckpt_info_free(&ci);
    IMF_TRY(imf_agree(comm, is), out);
    if (has_b) {
      IMF_TRY(imf_checkpoint_read_ease(comm, path, IMF_CKPT_EASE_B, IMF_EASE_GRID_COLUMNS, ease), out);
      IMF_TRY(imf_agree(comm, imf_ease_handle(*m)), out); /* the replicated form, if any, is not used */
    }
  }
  if (meta->config && *meta->config) IMF_TRY(imf_config_load_string(cfg, meta->config, path), out);
  for (size_t j = 0; j < sizeof EVAL_KEYS / sizeof EVAL_KEYS[0]; j++) {
    const char *v;
    char as[512];
    IMF_TRY(imf_config_get_str(cli, EVAL_KEYS[j], &v), out);
    snprintf(as, sizeof as, "%s=%s", EVAL_KEYS[j], v);
    IMF_TRY(imf_config_set(cfg, as), out);
  }
  /* how a --test/--input file is read: the command line's input.* keys, where it gives them */
  for (size_t j = 0; j < sizeof INPUT_KEYS / sizeof INPUT_KEYS[0]; j++) {
    const char *v;
    char as[512];
    if (!imf_config_is_set(cli, INPUT_KEYS[j])) continue;
    IMF_TRY(imf_config_get_str(cli, INPUT_KEYS[j], &v), out);
    snprintf(as, sizeof as, "%s=%s", INPUT_KEYS[j], v);
    IMF_TRY(imf_config_set(cfg, as), out);
  }
out:
  imf_modeldir_close(&md);
  return st;
}

/* No flag is silently ignored: a combination the protocols do not use is a usage error naming
 * both. */
static imf_status check_spec(const imf_eval_spec *sp, const char *proto) {
  const int fixed = !strcmp(proto, "test") || !strcmp(proto, "standing"); /* score --model, no retraining */
  if (sp->store && sp->input) IMF_FAIL(IMF_ERR_USAGE, "--data and --input both name the data: give one");
  if (sp->test_path && strcmp(proto, "test"))
    IMF_FAIL(IMF_ERR_USAGE, "--test FILE does not apply to --protocol %s (it is the test protocol's file)", proto);
  if (sp->fold_files && strcmp(proto, "kfold"))
    IMF_FAIL(IMF_ERR_USAGE, "--fold-files does not apply to --protocol %s (it gives kfold's folds)", proto);
  if (sp->fold_files && (sp->store || sp->input))
    IMF_FAIL(IMF_ERR_USAGE, "--fold-files reads its own files: not with --%s", sp->store ? "data" : "input");
  if (sp->folds > 0 && strcmp(proto, "kfold") && strcmp(proto, "heldout-users"))
    IMF_FAIL(IMF_ERR_USAGE, "--folds %d does not apply to --protocol %s (only kfold and heldout-users have folds)",
             sp->folds, proto);
  if (sp->folds == 1 && !strcmp(proto, "heldout-users"))
    IMF_FAIL(IMF_ERR_USAGE, "--folds 1 with --protocol heldout-users would hold out every user: give --folds N >= 2 "
             "(or no --folds: eval.heldout_users of the users, once)");
  if (fixed && sp->input)
    IMF_FAIL(IMF_ERR_USAGE, "--input does not apply to --protocol %s (it scores --model against --data STORE)", proto);
  if (sp->version && !sp->model) IMF_FAIL(IMF_ERR_USAGE, "--version %lld needs --model DIR", (long long)sp->version);
  return IMF_OK;
}

/* (collective) The share of the test ratings whose (user, item) pair is in the training data:
 * `store` (this rank's users, sorted like `test`) less the standing holdout hfrac/hseed. */
static imf_status train_overlap(MPI_Comm comm, const imf_ratings *store, const imf_ratings *test, double hfrac,
                                uint64_t hseed, imf_eval_report *rep) {
  int64_t c[2] = {0, test->n};
  for (int64_t a = 0, b = 0; a < test->n; a++) {
    while (b < store->n && (store->user[b] < test->user[a] ||
                            (store->user[b] == test->user[a] && store->item[b] < test->item[a])))
      b++;
    c[0] += b < store->n && store->user[b] == test->user[a] && store->item[b] == test->item[a] &&
            !(hfrac > 0 && imf_is_holdout(hseed, hfrac, test->user[a], test->item[a]));
  }
  IMF_MPI(MPI_Allreduce(MPI_IN_PLACE, c, 2, MPI_INT64_T, MPI_SUM, comm));
  rep->overlap_pairs = c[0];
  rep->test_pairs = c[1];
  rep->train_overlap = c[1] > 0 ? (double)c[0] / (double)c[1] : NAN;
  return IMF_OK;
}

/* Protocols test and standing: the model m of --model against the store's data (the training
 * items excluded from its rankings), its --baseline rows fitted on what m was trained on. */
static imf_status score_model(MPI_Comm comm, const imf_config *cfg, const imf_config *user, const imf_eval_spec *sp,
                              const char *proto, const imf_model *m, imf_ease *ease, const imf_ckpt_meta *meta,
                              imf_eval_report *rep) {
  imf_status st = IMF_OK;
  imf_dataset d, te;
  imf_idmap *mu = NULL, *mi = NULL;
  imf_ratings train = {0}, test = {0};
  imf_store *hs = NULL;
  memset(&d, 0, sizeof d);
  memset(&te, 0, sizeof te);
  if (!m || !sp->store)
    IMF_TRY(IMF_RAISE(IMF_ERR_USAGE, "protocol %s needs --model DIR and --data STORE (the store supplies the training items "
             "excluded from the rankings)", proto), out);
  IMF_TRY(imf_dataset_from_store(comm, sp->store, &d), out);
  IMF_TRY(check_model_store(sp->model, sp->store, meta, &d, m->nusers, m->nitems), out);
  restrict_to_model(&d.r, m);
  imf_eval_opts o;
  IMF_TRY(opts_from(cfg, sp->cutoffs, m, d.scale_min, d.scale_max, &d, &o), out);
  /* The store's standing holdout (recorded at prepare), which train and update never train on;
   * a store without one falls back to the model's own validation carve-out. */
  double frac = imf_cfg_double(cfg, "model.validation_fraction");
  uint64_t hseed = (uint64_t)imf_cfg_int(cfg, "model.seed");
  IMF_TRY(imf_store_open(comm, sp->store, IMF_STORE_READ, 0, &hs), out);
  /* user: the command's own configuration (cfg is the model's): a holdout it names that differs
   * from the store's is warned about, as by train and update */
  if (imf_store_holdout(hs, &frac, &hseed)) imf_store_warn_holdout(hs, user, sp->store);
  if (!strcmp(proto, "test")) {
    if (!sp->test_path) IMF_TRY(IMF_RAISE(IMF_ERR_USAGE, "protocol test needs --test FILE"), out);
    IMF_TRY(model_idmaps(meta, &mu, &mi), out);
    IMF_TRY(imf_dataset_from_file(comm, cfg, sp->test_path, mu, mi, &te), out);
    IMF_TRY(imf_dataset_relayout(comm, &d, te.nusers, te.nitems), out);
    IMF_TRY(train_overlap(comm, &d.r, &te.r, frac, hseed, rep), out);
    /* the model's recorded positives (cfg: its configuration): an EASE user's row is its
     * positives; the test ratings stay as they are (relevance compares their values) */
    IMF_TRY(imf_agree(comm, imf_implicit_transform(cfg, &d.r)), out);
    IMF_TRY(score_split(comm, m, ease, d.ulo, d.uhi, &d.r, NULL, &te.r, &o, &rep->fold[0]), out);
    if (rep->overlap_pairs > 0)
      imf_warn("%.1f%% of the (user, item) pairs of %s (%lld of %lld) are in the training data of the model: their "
               "scores are not a test", 100.0 * rep->train_overlap, sp->test_path, (long long)rep->overlap_pairs,
               (long long)rep->test_pairs);
    IMF_TRY(score_baselines(comm, cfg, sp, rep, 0, d.ulo, d.uhi, m->nusers, m->nitems, frac > 0 ? frac : 0.0, hseed,
                            &d.r, NULL, &te.r, &o), out);
  } else {
    if (meta->store_digest[0] && strcmp(meta->store_digest, imf_store_digest(hs)) != 0)
      imf_warn("the store %s has changed since the model was trained (it has seen %lld of %lld batches): "
               "the model is stale (run update)", sp->store, (long long)meta->batches_seen,
               (long long)imf_store_nbatches(hs));
    if (!(frac > 0))
      IMF_TRY(IMF_RAISE(IMF_ERR_USAGE, "neither the store nor the model has a standing "
                        "holdout (holdout.fraction = 0 at prepare): use another protocol"), out);
    imf_split_spec ss = {.kind = IMF_SPLIT_STANDING, .seed = hseed, .fraction = frac};
    IMF_TRY(imf_split(comm, &d, &ss, &train, NULL, &test), out);
    IMF_TRY(imf_agree(comm, imf_implicit_transform(cfg, &train)), out); /* as above: the model's positives */
    IMF_TRY(score_split(comm, m, ease, d.ulo, d.uhi, &train, NULL, &test, &o, &rep->fold[0]), out);
    IMF_TRY(score_baselines(comm, cfg, sp, rep, 0, d.ulo, d.uhi, m->nusers, m->nitems, 0.0, 0, &train, NULL, &test,
                            &o), out);
  }
  rep->nfolds = 1;
out:
  imf_store_close(&hs);
  imf_ratings_free(&train);
  imf_ratings_free(&test);
  imf_dataset_free(&d);
  imf_dataset_free(&te);
  imf_idmap_destroy(&mu);
  imf_idmap_destroy(&mi);
  return st;
}

imf_status imf_evaluate(MPI_Comm comm, const imf_config *cli, const imf_eval_spec *sp, imf_eval_report *rep) {
  memset(rep, 0, sizeof *rep);
  rep->train_overlap = NAN;
  double t0 = imf_wtime();
  imf_status st = IMF_OK;
  imf_config *cfg = NULL;
  imf_model *m = NULL;
  imf_ease *ease = NULL; /* an EASE version's B on a 1 x P grid (distributed scoring) */
  imf_ckpt_meta meta;
  imf_dataset d;
  memset(&meta, 0, sizeof meta);
  memset(&d, 0, sizeof d);
  const char *proto = sp->protocol ? sp->protocol
                      : sp->test_path ? "test"
                      : (sp->folds > 0 || sp->fold_files) ? "kfold"
                                                          : "random";
  snprintf(rep->protocol, sizeof rep->protocol, "%s", proto);
  IMF_TRY(check_spec(sp, proto), out);
  IMF_TRY(imf_config_create(&cfg), out);
  {
    char *text = imf_config_dump(cli);
    if (!text) IMF_TRY(IMF_RAISE(IMF_ERR_NOMEM, "out of memory"), out);
    st = imf_config_load_string(cfg, text, "configuration");
    free(text);
    IMF_TRY(st, out);
  }
  rep->version = sp->version;
  if (sp->model) IMF_TRY(load_model(comm, cli, sp->model, &rep->version, &m, &meta, cfg, &ease), out);
  if (!strcmp(proto, "test") || !strcmp(proto, "standing")) {
    IMF_TRY(score_model(comm, cfg, cli, sp, proto, m, ease, &meta, rep), out);
    rep->fold[0].seconds = imf_wtime() - t0;
  } else if (!strcmp(proto, "kfold") && sp->fold_files) {
    int folds = sp->folds > 0 ? sp->folds : (int)imf_cfg_int(cfg, "eval.folds");
    if (folds < 1 || folds > IMF_EVAL_MAX_FOLDS) IMF_TRY(IMF_RAISE(IMF_ERR_USAGE, "bad --folds %d", folds), out);
    for (int f = 0; f < folds; f++) {
      IMF_TRY(run_fold_files(comm, cfg, sp, f + 1, rep), out);
      imf_info("fold %d/%d done in %.1f s", f + 1, folds, rep->fold[f].seconds);
    }
    rep->nfolds = folds;
  } else {
    imf_split_kind kind = IMF_SPLIT_RANDOM;
    IMF_TRY(protocol_kind(proto, &kind), out);
    if (kind == IMF_SPLIT_STANDING)
      IMF_TRY(IMF_RAISE(IMF_ERR_USAGE, "protocol standing needs --model DIR and --data STORE"), out);
    if (sp->store) IMF_TRY(imf_dataset_from_store(comm, sp->store, &d), out);
    else if (sp->input) IMF_TRY(imf_dataset_from_file(comm, cfg, sp->input, NULL, NULL, &d), out);
    else IMF_TRY(IMF_RAISE(IMF_ERR_USAGE, "protocol %s needs --data STORE or --input FILE", proto), out);
    IMF_TRY(imf_eval_binarize(cfg, &d), out);
    imf_split_spec ss = {.kind = kind,
                         .seed = (uint64_t)imf_cfg_int(cfg, "eval.seed"),
                         .fraction = kind == IMF_SPLIT_HELDOUT_USERS ? imf_cfg_double(cfg, "eval.heldout_users")
                                                                     : imf_cfg_double(cfg, "eval.test_fraction"),
                         .leave_k = imf_cfg_int(cfg, "eval.leave_k"),
                         .foldin_fraction = imf_cfg_double(cfg, "eval.foldin_fraction"),
                         .min_user_ratings = imf_cfg_int(cfg, "eval.min_user_ratings")};
    if (kind == IMF_SPLIT_FOLD) {
      int folds = sp->folds > 0 ? sp->folds : (int)imf_cfg_int(cfg, "eval.folds");
      if (folds < 2 || folds > IMF_EVAL_MAX_FOLDS)
        IMF_TRY(IMF_RAISE(IMF_ERR_USAGE, "folds must be 2..%d, got %d", IMF_EVAL_MAX_FOLDS, folds), out);
      IMF_TRY(eval_cv(comm, cfg, &d, folds, sp, rep), out);
      snprintf(rep->protocol, sizeof rep->protocol, "%s", proto);
    } else {
      /* heldout-users --folds N: every eligible user is held out in exactly one of N folds */
      int folds = kind == IMF_SPLIT_HELDOUT_USERS && sp->folds > 1 ? sp->folds : 1;
      if (folds > IMF_EVAL_MAX_FOLDS)
        IMF_TRY(IMF_RAISE(IMF_ERR_USAGE, "--folds %d: at most %d", folds, IMF_EVAL_MAX_FOLDS), out);
      for (int f = 0; f < folds; f++) {
        ss.fold = f;
        ss.nfolds = folds > 1 ? folds : 0;
        IMF_TRY(run_split(comm, cfg, &d, &ss, sp->cutoffs, d.scale_min, d.scale_max, &rep->fold[f], sp, rep, f), out);
        if (folds > 1) imf_info("fold %d/%d done in %.1f s", f + 1, folds, rep->fold[f].seconds);
      }
      rep->nfolds = folds;
    }
  }
  summarise(rep);
  IMF_TRY(imf_parse_cutoffs(sp->cutoffs ? sp->cutoffs : imf_cfg_str(cfg, "eval.k"), rep->ks, &rep->nk), out);
  rep->seconds = imf_wtime() - t0;
out:
  imf_dataset_free(&d);
  imf_ckpt_meta_free(&meta);
  imf_model_destroy(&m);
  imf_ease_destroy(&ease);
  imf_config_destroy(&cfg);
  return st;
}
