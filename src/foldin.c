/* foldin.c - the fold-in of `incremf update` (foldin.h): the touched users, then items, re-solved
 * against the fixed other side with the training row solver (rowsolve.h), from a partition of
 * the whole store or from the touched rows' histories alone (read through the store's per-user
 * and per-item indexes), then replicated to every rank (exchange.c). update.c decides when to
 * fold in (update_policy.h) and judges the result; `forget` (maintain.c) re-solves items with
 * imf_foldin_side. */
#include "foldin.h"
#include "checkpoint.h"
#include "itemsums.h"
#include "baseline.h"
#include "error.h"
#include "exchange.h"
#include "log.h"
#include "rowsolve.h"
#include "scale.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Solve rows row_id[0..nt) of one side (0 users, 1 items) of m, row t with training ratings
 * idx/val[ptr[t] .. ptr[t+1]) (other-side indices, ascending), against the other side's current
 * factors, and replicate every rank's results into m. Per-row results do not depend on which
 * rank solves a row or what else it solves (rowsolve.h), so any split of the rows over the ranks
 * gives bitwise the same model. Collective. */
static imf_status foldin_rows(MPI_Comm comm, imf_model *m, int side, int64_t nt, const int64_t *row_id,
                              const int64_t *ptr, const int32_t *idx, const float *val, int64_t *nsolved) {
  float *self = side ? m->Q : m->P;
  int k = m->k;
  imf_status st = IMF_OK;
  float *X = NULL, *B = NULL;
  double *G = NULL;
  imf_rowsolve_ws *ws = NULL;
  if (m->type == IMF_MODEL_BPMF || m->kw != k || imf_baseline_type(m->type))
    st = IMF_RAISE(IMF_ERR_USAGE, "fold-in needs an ALS or implicit ALS model");
  IMF_TRY(imf_agree(comm, st), out); /* nothing solved: straight to the cleanup */
  IMF_TRY(imf_alloc(&X, ((size_t)nt + 1) * (size_t)k, sizeof *X), done);
  IMF_TRY(imf_alloc(&B, (size_t)nt + 1, sizeof *B), done);
  for (int64_t t = 0; t < nt; t++)
    memcpy(X + (size_t)t * (size_t)k, self + (size_t)row_id[t] * (size_t)k, (size_t)k * sizeof *X);
  imf_row_params prm;
  memset(&prm, 0, sizeof prm);
  prm.k = k;
  prm.seed = m->seed;
  prm.side = (uint32_t)side;
  prm.lambda = m->lambda;
  prm.lambda_bias = m->lambda_bias;
  imf_other_side other = {side ? m->nusers : m->nitems, side ? m->P : m->Q, NULL};
  if (m->type == IMF_MODEL_ALS) {
    prm.kind = IMF_ROW_ALS;
    prm.with_bias = m->with_bias;
    prm.mu = m->mu;
    other.bias = side ? m->bu : m->bi;
  } else {
    prm.kind = IMF_ROW_IALS;
    prm.alpha = m->alpha;
    IMF_TRY(imf_alloc(&G, (size_t)k * (size_t)k, sizeof *G), done);
    imf_rowsolve_gram(other.Y, other.n, k, G); /* O(n k^2) on replicated factors; no communication */
    prm.YtY = G;
  }
  IMF_TRY(imf_rowsolve_ws_create(k, &ws), done);
  if (nt > 0) {
    imf_row_batch rows = {nt, row_id, ptr, idx, val};
    IMF_TRY(imf_rowsolve(&prm, &rows, &other, X, m->with_bias ? B : NULL, ws), done);
  }
done:
  st = imf_agree(comm, st);
  if (st != IMF_OK) goto out;
  /* Replicate the solved rows: every rank's (row id, factors, bias), exchange.c */
  st = imf_allgather_rows_by_id(comm, k, nt, row_id, X, B, self, side ? m->bi : m->bu, nsolved);
out:
  imf_free(&X);
  imf_free(&B);
  imf_free(&G);
  imf_rowsolve_ws_destroy(&ws);
  return imf_agree(comm, st);
}

imf_status imf_foldin_side(MPI_Comm comm, const imf_partition *p, imf_model *m, int side,
                           const unsigned char *touched, int64_t *nsolved) {
  const imf_csr *c = side ? &p->by_item : &p->by_user;
  int64_t nloc = c->hi - c->lo, nt = 0, nnz = 0;
  for (int64_t r = 0; r < nloc; r++)
    if (touched[c->lo + r]) {
      nt++;
      nnz += c->ptr[r + 1] - c->ptr[r];
    }
  int64_t *row_id = NULL, *ptr = NULL;
  int32_t *idx = NULL;
  float *val = NULL;
  imf_status st = imf_alloc(&row_id, (size_t)nt + 1, sizeof *row_id);
  if (st == IMF_OK) st = imf_alloc(&ptr, (size_t)nt + 1, sizeof *ptr);
  if (st == IMF_OK) st = imf_alloc(&idx, (size_t)nnz + 1, sizeof *idx);
  if (st == IMF_OK) st = imf_alloc(&val, (size_t)nnz + 1, sizeof *val);
  if (st == IMF_OK)
    for (int64_t r = 0, t = 0; r < nloc; r++) {
      if (!touched[c->lo + r]) continue;
      int64_t a = c->ptr[r], b = c->ptr[r + 1];
      row_id[t] = c->lo + r;
      memcpy(idx + ptr[t], c->idx + a, (size_t)(b - a) * sizeof *idx);
      memcpy(val + ptr[t], c->val + a, (size_t)(b - a) * sizeof *val);
      ptr[t + 1] = ptr[t] + (b - a);
      t++;
    }
  st = imf_agree(comm, st);
  if (st == IMF_OK) st = foldin_rows(comm, m, side, nt, row_id, ptr, idx, val, nsolved);
  imf_free(&row_id);
  imf_free(&ptr);
  imf_free(&idx);
  imf_free(&val);
  return st;
}

imf_status imf_foldin_model(MPI_Comm comm, const imf_partition *part, const imf_model *champ,
                            const unsigned char *tu, const unsigned char *ti, imf_model **out) {
  imf_model *m = NULL;
  *out = NULL;
  imf_status st = imf_model_copy(champ, &m);
  if (st == IMF_OK) st = imf_model_grow(m, part->nusers, part->nitems);
  IMF_CHECK(imf_agree(comm, st));
  if (m->type != IMF_MODEL_BPMF) {
    int64_t su = 0, si = 0;
    st = imf_foldin_side(comm, part, m, 0, tu, &su);
    if (st == IMF_OK) st = imf_foldin_side(comm, part, m, 1, ti, &si);
    if (st == IMF_OK) imf_info("fold-in: %lld users, then %lld items re-solved against their full history", (long long)su, (long long)si);
  }
  if (st != IMF_OK) imf_model_destroy(&m);
  *out = m;
  return st;
}

/* ------------------------------------------------------------------------------ touched read */

/* This rank's share of the flagged rows: every size-th of the ascending list of flagged
 * indices, from the rank-th (local). Dealt out, not cut in pieces: ids are numbered by first
 * appearance, so the oldest rows, with the longest histories, sit at the front — contiguous
 * pieces gave rank 0 of 2 seven times rank 1's pairs on the 10M replay (dealt: within 2%). */
static imf_status my_share(const unsigned char *flag, int64_t n, int rank, int size, int32_t **out, int64_t *nout) {
  int64_t tot = 0;
  for (int64_t j = 0; j < n; j++) tot += flag[j] != 0;
  IMF_CHECK(imf_alloc(out, (size_t)(tot / size) + 2, sizeof **out));
  int64_t q = 0, w = 0;
  for (int64_t j = 0; j < n; j++)
    if (flag[j]) {
      if (q % size == rank) (*out)[w++] = (int32_t)j;
      q++;
    }
  *nout = w;
  return IMF_OK;
}

/* A held-out pair of a touched row, kept for judging (see foldin_touched). */
typedef struct {
  int32_t u, i;
  float value, old;
} heldout;

/* In place, row r of h being rows[r]: the pairs of the standing holdout leave each row (the
 * rest keep their order, as the solver's CSR) and are appended to *held — except, in an item's
 * history (by_item), those of a touched user (tu), already there from the user's. *row_id: the
 * rows, as the solver takes them. */
static imf_status history_split(imf_history *h, const int32_t *rows, int by_item, const unsigned char *tu,
                                uint64_t hseed, double hfrac, heldout **held, int64_t *nheld, int64_t *cap,
                                int64_t **row_id) {
  IMF_CHECK(imf_alloc_nz(row_id, (size_t)h->n + 1, sizeof **row_id));
  int64_t w = 0, a = h->ptr[0];
  for (int64_t r = 0; r < h->n; r++) {
    const int64_t b = h->ptr[r + 1];
    (*row_id)[r] = rows[r];
    h->ptr[r] = w;
    for (int64_t j = a; j < b; j++) {
      const int32_t u = by_item ? h->other[j] : rows[r], i = by_item ? rows[r] : h->other[j];
      if (!imf_is_holdout(hseed, hfrac, u, i)) {
        h->other[w] = h->other[j];
        h->old[w] = h->old[j];
        h->value[w++] = h->value[j];
        continue;
      }
      if (by_item && tu[u]) continue;
      if (*nheld == *cap) {
        int64_t c = *cap ? 2 * *cap : 4096;
        IMF_CHECK(imf_realloc(held, (size_t)c, sizeof **held));
        *cap = c;
      }
      (*held)[(*nheld)++] = (heldout){u, i, h->value[j], h->old[j]};
    }
    a = b;
  }
  h->ptr[h->n] = w;
  return IMF_OK;
}

/* Fold-in that reads only what the new batches touch (update.foldin_read = touched; foldin.h): the
 * touched users (tu) and items (ti) are split over the ranks, their full histories read through
 * the store's per-user and per-item indexes (imf_store_read_histories), the users re-solved
 * against the champion's item factors, then the items against the updated user factors — the
 * same rows, ratings (standing holdout removed) and order as imf_foldin_side on the whole
 * partition, so the model is bitwise the same.
 *
 * Judging without the whole holdout: the challenger differs from the champion only on touched
 * rows, and a held-out pair whose value changed has a touched user and item. With H_old the
 * holdout the champion was recorded on (c_sse = its SSE, c_n = its count) and A the held-out
 * pairs of touched users or items (taken from the touched users' histories, and from the
 * touched items' histories for untouched users),
 *   SSE_champion   = c_sse - sum_{A in H_old} e_champion(old value)^2 + sum_A e_champion(value)^2
 *   SSE_challenger = c_sse - sum_{A in H_old} e_champion(old value)^2 + sum_A e_challenger(value)^2
 *   n              = c_n   - |A in H_old| + |A|
 * (old value: the pair's value over the batches the champion had seen). sse[0], sse[1], *n:
 * these totals over the whole current holdout. */
imf_status imf_foldin_touched(MPI_Comm comm, const imf_foldin_touched_in *in, imf_model **out, double sse[2],
                              int64_t *n, imf_judgement *jd, int64_t *users_now, double *read_secs) {
  *out = NULL;
  const imf_model *champ = in->champ;
  const unsigned char *tu = in->tu, *ti = in->ti;
  const double hfrac = in->hfrac, c_sse = in->c_sse;
  const uint64_t hseed = in->hseed;
  const int64_t nu = in->nu, ni = in->ni, c_n = in->c_n;
  int rank, size;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  imf_status st = IMF_OK;
  int32_t *mu = NULL, *mi = NULL;
  int64_t nmu = 0, nmi = 0, *row_id = NULL, nheld = 0, cap = 0;
  heldout *held = NULL;
  double *quad = NULL; /* per held pair: user, item, d_u term, held out before (imf_judge_touched) */
  imf_history uh = {0}, ih = {0};
  imf_model *m = NULL;
  double t0 = imf_wtime();
  st = my_share(tu, nu, rank, size, &mu, &nmu);
  if (st == IMF_OK) st = my_share(ti, ni, rank, size, &mi, &nmi);
  IMF_TRY(imf_agree(comm, st), out);
  IMF_TRY(imf_store_read_histories(in->s, mu, nmu, mi, nmi, in->seen, &uh, &ih), out);
  imf_implicit_history(in->io, &uh); /* the same positives and values as load_full's partition */
  imf_implicit_history(in->io, &ih);
  double hist[2] = {(double)uh.ptr[uh.n], (double)ih.ptr[ih.n]};
  double t_read = imf_wtime() - t0;
  *read_secs += t_read;
  if (in->after_read) in->after_read("after-read");
  st = imf_model_copy(champ, &m);
  if (st == IMF_OK) st = imf_model_grow(m, nu, ni);
  IMF_TRY(imf_agree(comm, st), out);
  int64_t su = 0, si = 0;
  st = history_split(&uh, mu, 0, tu, hseed, hfrac, &held, &nheld, &cap, &row_id);
  IMF_TRY(imf_agree(comm, st), out);
  IMF_TRY(foldin_rows(comm, m, 0, nmu, row_id, uh.ptr, uh.other, uh.value, &su), out);
  imf_free(&row_id);
  imf_history_free(&uh);
  st = history_split(&ih, mi, 1, tu, hseed, hfrac, &held, &nheld, &cap, &row_id);
  IMF_TRY(imf_agree(comm, st), out);
  IMF_TRY(foldin_rows(comm, m, 1, nmi, row_id, ih.ptr, ih.other, ih.value, &si), out);
  {
    /* sub_champ, sub_n, add_champ, add_chall, add_n, then the pairs read (users', items') */
    double v[7] = {0, 0, 0, 0, 0, hist[0], hist[1]};
    IMF_TRY(imf_agree(comm, imf_alloc(&quad, (size_t)(nheld ? nheld : 1) * 4, sizeof *quad)), out);
    for (int64_t j = 0; j < nheld; j++) {
      const heldout *x = &held[j];
      if (isfinite(x->old)) {
        double e = (double)x->old - imf_model_predict(champ, x->u, x->i);
        v[0] += e * e;
        v[1] += 1;
      }
      double a = (double)x->value - imf_model_predict(champ, x->u, x->i);
      double b = (double)x->value - imf_model_predict(m, x->u, x->i);
      v[2] += a * a;
      v[3] += b * b;
      v[4] += 1;
      quad[4 * j] = x->u;
      quad[4 * j + 1] = x->i;
      quad[4 * j + 2] = imf_judge_sq_gain(a, b);
      quad[4 * j + 3] = isfinite(x->old);
    }
    double most = hist[0] + hist[1];
    int rc = MPI_Allreduce(MPI_IN_PLACE, v, 7, MPI_DOUBLE, MPI_SUM, comm);
    if (rc == MPI_SUCCESS) rc = MPI_Allreduce(MPI_IN_PLACE, &most, 1, MPI_DOUBLE, MPI_MAX, comm);
    if (rc != MPI_SUCCESS) IMF_TRY(IMF_MPI_RAISE(rc, "MPI_Allreduce (touched fold-in sums)"), out);
    hist[0] = v[5];
    hist[1] = v[6];
    sse[0] = c_sse - v[0] + v[2];
    sse[1] = c_sse - v[0] + v[3];
    *n = c_n - (int64_t)v[1] + (int64_t)v[4];
    if (sse[0] < 0) sse[0] = 0; /* rounding of the difference */
    if (sse[1] < 0) sse[1] = 0;
    imf_info("fold-in (touched read): %lld users, then %lld items re-solved against their full history "
             "(%.0f + %.0f ratings read in %.2f s, the most on one rank %.2fx the mean); judged on %lld held-out "
             "ratings of touched rows of %lld", (long long)su, (long long)si, hist[0], hist[1], t_read,
             hist[0] + hist[1] > 0 ? most * size / (hist[0] + hist[1]) : 1.0, (long long)v[4], (long long)*n);
  }
  IMF_TRY(imf_judge_touched(comm, quad, nheld, tu, in->c_users, jd, users_now), out);
  jd->champion = *n > 0 ? sqrt(sse[0] / (double)*n) : NAN;
  jd->challenger = *n > 0 ? sqrt(sse[1] / (double)*n) : NAN;
  *out = m;
  m = NULL;
out:
  imf_free(&mu);
  imf_free(&mi);
  imf_free(&row_id);
  imf_free(&held);
  imf_free(&quad);
  imf_history_free(&uh);
  imf_history_free(&ih);
  imf_model_destroy(&m);
  return st;
}

/* ------------------------------------------------------------------------------ item sums */

/* The touched users' training pairs as changes for the item sums (imf_itemsums_apply): each
 * pair's value before (NaN: not a training rating the champion saw) and now. */
static imf_status pair_changes(const imf_history *h, const int64_t *row_id, imf_pair_change **out, int64_t *n) {
  *n = h->ptr[h->n];
  IMF_CHECK(imf_alloc_nz(out, (size_t)*n + 1, sizeof **out));
  for (int64_t r = 0; r < h->n; r++)
    for (int64_t j = h->ptr[r]; j < h->ptr[r + 1]; j++)
      (*out)[j] = (imf_pair_change){(int32_t)row_id[r], h->other[j], h->old[j], h->value[j]};
  return IMF_OK;
}

/* The RMSE judgement over the whole current holdout (this rank's users' pairs, in (user, item)
 * order): both models' squared errors, each user's paired difference summed in item order. */
static imf_status judge_holdout(MPI_Comm comm, const imf_ratings *hold, const imf_model *champ, const imf_model *chall,
                                double sse[2], int64_t *n, imf_judgement *jd, int64_t *users) {
  double *d = NULL, v[3] = {0, 0, (double)hold->n};
  int64_t nd = 0;
  IMF_CHECK(imf_agree(comm, imf_alloc(&d, (size_t)hold->n + 1, sizeof *d)));
  for (int64_t j = 0; j < hold->n;) {
    const int32_t u = hold->user[j];
    double du = 0;
    for (; j < hold->n && hold->user[j] == u; j++) {
      const double a = (double)hold->value[j] - imf_model_predict(champ, u, hold->item[j]);
      const double b = (double)hold->value[j] - imf_model_predict(chall, u, hold->item[j]);
      v[0] += a * a;
      v[1] += b * b;
      du += imf_judge_sq_gain(a, b);
    }
    d[nd++] = du;
  }
  double cnt[2] = {v[2], (double)nd};
  imf_status st = IMF_OK;
  int rc = MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_DOUBLE, MPI_SUM, comm);
  if (rc == MPI_SUCCESS) rc = MPI_Allreduce(MPI_IN_PLACE, cnt, 2, MPI_DOUBLE, MPI_SUM, comm);
  if (rc != MPI_SUCCESS) st = IMF_MPI_RAISE(rc, "MPI_Allreduce (holdout judgement)");
  if (st == IMF_OK) st = imf_judge_differences(comm, d, nd, 0, jd);
  imf_free(&d);
  IMF_CHECK(st);
  sse[0] = v[0];
  sse[1] = v[1];
  *n = (int64_t)cnt[0];
  *users = (int64_t)cnt[1];
  jd->champion = *n > 0 ? sqrt(sse[0] / (double)*n) : NAN;
  jd->challenger = *n > 0 ? sqrt(sse[1] / (double)*n) : NAN;
  return IMF_OK;
}

/* The item sums' owners: contiguous blocks of about equal work, an item weighing its raters
 * (the pairs that move its sums grow with them) plus a solve. Ids number items by first
 * appearance, so even blocks of ids gave rank 0 of 2 83% of the changes on the growth bench. */
static imf_status sums_blocks(int size, int64_t ni, const int64_t *n, int64_t stored, int64_t **start) {
  IMF_CHECK(imf_alloc(start, (size_t)size + 1, sizeof **start));
  double total = 0, acc = 0;
  for (int64_t j = 0; j < ni; j++) total += (double)(j < stored ? n[j] : 0) + IMF_ROW_COST;
  int r = 1;
  for (int64_t j = 0; j < ni && r < size; j++) {
    acc += (double)(j < stored ? n[j] : 0) + IMF_ROW_COST;
    while (r < size && acc >= total * r / size) (*start)[r++] = j + 1;
  }
  for (; r < size; r++) (*start)[r] = ni;
  (*start)[size] = ni;
  return IMF_OK;
}

/* Fold-in from the champion's per-item sums (update.foldin_read = touched, an ALS champion that
 * carries them, a store that keeps its holdout apart; foldin.h): the touched users are read and
 * re-solved as by imf_foldin_touched; their pairs then move the sums (old factor and value
 * out, new ones in), and the touched items are solved from the sums, not their histories. Judged
 * on the whole standing holdout, read on its own. */
imf_status imf_foldin_sums(MPI_Comm comm, const imf_foldin_touched_in *in, const char *champ_path, imf_model **out,
                           imf_itemsums **sums_out, double sse[2], int64_t *n, imf_judgement *jd, int64_t *users_now,
                           double *read_secs) {
  *out = NULL;
  *sums_out = NULL;
  int rank, size;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  imf_status st = IMF_OK;
  imf_model *m = NULL;
  imf_itemsums *sums = NULL;
  imf_ratings hold = {0};
  imf_history uh = {0}, ih = {0};
  int32_t *mu = NULL;
  int64_t nmu = 0, *row_id = NULL, *istart = NULL, *cnt = NULL, stored = 0, nheld = 0, cap = 0, nch = 0, su = 0,
          si = 0;
  heldout *held = NULL;
  imf_pair_change *ch = NULL;
  const double t0 = imf_wtime();
  if (in->champ->type != IMF_MODEL_ALS) st = IMF_RAISE(IMF_ERR_NOTFOUND, "item sums: the champion is not ALS");
  if (st == IMF_OK) st = imf_model_copy(in->champ, &m);
  if (st == IMF_OK) st = imf_model_grow(m, in->nu, in->ni);
  IMF_TRY(imf_agree(comm, st), out);
  /* both derived inputs first: either missing means the touched read, nothing spent */
  st = imf_checkpoint_read_itemsums_counts(comm, champ_path, m, &cnt, &stored);
  if (st == IMF_OK) st = imf_agree(comm, sums_blocks(size, in->ni, cnt, stored, &istart));
  if (st == IMF_OK) st = imf_checkpoint_read_itemsums(comm, champ_path, m, istart[rank], istart[rank + 1], &sums);
  if (st == IMF_ERR_INPUT) { /* derived data: damaged sums cost the items' read, never the update */
    imf_warn("%s; the fold-in reads the items' histories instead", imf_last_error());
    imf_err_clear();
    st = IMF_RAISE(IMF_ERR_NOTFOUND, "the champion's item sums are damaged");
  }
  IMF_TRY(st, out);
  IMF_TRY(imf_store_read_holdout(in->s, imf_store_nbatches(in->s), &hold), out);
  IMF_TRY(imf_agree(comm, my_share(in->tu, in->nu, rank, size, &mu, &nmu)), out);
  IMF_TRY(imf_store_read_histories(in->s, mu, nmu, NULL, 0, in->seen, &uh, &ih), out);
  imf_implicit_history(in->io, &uh);
  const double t_read = imf_wtime() - t0;
  *read_secs += t_read;
  if (in->after_read) in->after_read("after-read");
  st = history_split(&uh, mu, 0, in->tu, in->hseed, in->hfrac, &held, &nheld, &cap, &row_id);
  IMF_TRY(imf_agree(comm, st), out);
  IMF_TRY(foldin_rows(comm, m, 0, nmu, row_id, uh.ptr, uh.other, uh.value, &su), out);
  IMF_TRY(imf_agree(comm, pair_changes(&uh, row_id, &ch, &nch)), out);
  IMF_TRY(imf_itemsums_apply(comm, sums, istart, ch, nch, in->champ, m), out);
  IMF_TRY(imf_itemsums_solve(comm, sums, in->ti, m, &si), out);
  IMF_TRY(judge_holdout(comm, &hold, in->champ, m, sse, n, jd, users_now), out);
  double v[2] = {(double)uh.ptr[uh.n], (double)nch};
  IMF_MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_DOUBLE, MPI_SUM, comm), out);
  imf_info("fold-in (item sums): %lld users re-solved against their full history (%.0f ratings read), then %lld "
           "items from their sums (%.0f pairs moved); judged on the whole holdout, %lld ratings of %lld users "
           "(read in %.2f s)", (long long)su, v[0], (long long)si, v[1], (long long)*n, (long long)*users_now, t_read);
  *out = m;
  *sums_out = sums;
  m = NULL;
  sums = NULL;
out:
  imf_free(&mu);
  imf_free(&row_id);
  imf_free(&istart);
  imf_free(&cnt);
  imf_free(&held);
  imf_free(&ch);
  imf_ratings_free(&hold);
  imf_history_free(&uh);
  imf_history_free(&ih);
  imf_itemsums_destroy(&sums);
  imf_model_destroy(&m);
  return st;
}
