/* judge.c - the champion/challenger judgement of `update` (judge.h; docs/METRICS.md, "Judging an
 * update"): the metric each model type is judged by, per-user scores on the standing holdout
 * through evaluate.c's ranking kernel (imf_eval_block / imf_eval_block_ease with their per-user
 * output), and the paired bootstrap interval of the per-user differences.
 *
 * Determinism: the differences are gathered to rank 0 and sorted by value before resampling, so
 * the interval depends on the multiset of differences only — not on the rank count, nor on the
 * order in which a fold-in that read only the touched rows found them. Test hook:
 * IMF_JUDGE_DUMP=FILE makes rank 0 write each judgement's sorted differences there (the last
 * judgement of the run wins), for a check of the interval by direct computation. */
#include "judge.h"
#include "scale.h"
#include "error.h"
#include "evaluate.h"
#include "exchange.h"
#include "itempop.h"
#include "log.h"
#include "registry.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int imf_judge_metric_parse(const char *text, imf_judge_kind *kind, int *k) {
  imf_judge_kind kd = IMF_JUDGE_AUTO;
  int kk = 0;
  if (!strcmp(text, "auto")) kd = IMF_JUDGE_AUTO;
  else if (!strcmp(text, "rmse")) kd = IMF_JUDGE_RMSE;
  else {
    static const struct {
      const char *pre;
      imf_judge_kind kind;
    } names[] = {{"ndcg@", IMF_JUDGE_NDCG}, {"recall@", IMF_JUDGE_RECALL}, {"map@", IMF_JUDGE_MAP}};
    int found = 0;
    for (size_t j = 0; j < sizeof names / sizeof names[0] && !found; j++) {
      size_t l = strlen(names[j].pre);
      if (strncmp(text, names[j].pre, l)) continue;
      const char *d = text + l;
      char *end = NULL;
      if (*d < '1' || *d > '9') return 0;
      long v = strtol(d, &end, 10);
      if (*end || v < 1 || v > 100000) return 0;
      kd = names[j].kind;
      kk = (int)v;
      found = 1;
    }
    if (!found) return 0;
  }
  if (kind) *kind = kd;
  if (k) *k = kk;
  return 1;
}

/* The single place the judgement's relevance threshold is decided (see judge.h). */
imf_status imf_judge_relevance_threshold(const imf_config *cfg, const imf_model *m, const imf_store *s, double *thr) {
  /* an implicit model's holdout holds its positives alone (the champion's positive threshold was
   * applied when the store was read, scale.h): every held-out item is relevant */
  *thr = NAN;
  if (m->type == IMF_MODEL_IALS || m->type == IMF_MODEL_EASE || m->type == IMF_MODEL_POP) return IMF_OK;
  return imf_relevance_threshold(cfg, s, thr); /* auto: against the store's recorded scale */
}

imf_status imf_judge_metric_for(const imf_config *cfg, const imf_model *m, imf_judge_metric *out) {
  memset(out, 0, sizeof *out);
  const char *text = imf_cfg_str(cfg, "update.metric");
  imf_judge_kind kind;
  int k = 0;
  if (!imf_judge_metric_parse(text, &kind, &k))
    IMF_FAIL(IMF_ERR_USAGE, "update.metric must be auto, rmse, ndcg@K, recall@K or map@K, got '%s'", text);
  const char *type = imf_model_type_name(m->type);
  if (kind == IMF_JUDGE_AUTO) {
    if (!imf_model_type_is_implicit(type)) kind = IMF_JUDGE_RMSE;
    else {
      kind = IMF_JUDGE_NDCG;
      k = (int)imf_cfg_int(cfg, "update.k");
    }
  }
  if (kind == IMF_JUDGE_RMSE && m->type == IMF_MODEL_EASE)
    IMF_FAIL(IMF_ERR_USAGE, "update.metric = rmse cannot judge an EASE model (its scores are not ratings): use "
                            "auto, ndcg@K, recall@K or map@K");
  out->kind = kind;
  out->k = kind == IMF_JUDGE_RMSE ? 0 : k;
  static const char *const pre[] = {"rmse", "ndcg", "recall", "map"};
  if (kind == IMF_JUDGE_RMSE) snprintf(out->name, sizeof out->name, "rmse");
  else snprintf(out->name, sizeof out->name, "%s@%d", pre[kind], k);
  out->threshold = NAN; /* imf_judge_relevance_threshold, once the store is open */
  out->pop_prior = m->type == IMF_MODEL_IALS || m->type == IMF_MODEL_EASE ? imf_item_pop_beta(cfg) : 0.0;
  return IMF_OK;
}

/* ------------------------------------------------------------------------------ scores */

imf_status imf_judge_user_scores(MPI_Comm comm, const imf_judge_metric *jm, const imf_partition *p,
                                 const imf_model *m, imf_ease *ease, const imf_ease_rows *x,
                                 const imf_ratings *test, int64_t item_limit, double *out) {
  imf_eval_opts o;
  memset(&o, 0, sizeof o);
  o.nk = 1;
  o.ks[0] = jm->k > 0 ? jm->k : 10;
  o.threshold = jm->threshold;
  o.clip_lo = o.clip_hi = NAN;
  o.rating_metrics = 0;
  o.per_user = out;
  o.pop_prior = jm->pop_prior;
  o.per_user_metric = jm->kind == IMF_JUDGE_RECALL ? IMF_PER_USER_RECALL
                      : jm->kind == IMF_JUDGE_MAP  ? IMF_PER_USER_AP
                                                   : IMF_PER_USER_NDCG;
  const imf_csr *h = &p->holdout, *c = &p->by_user;
  imf_ratings t = {0};
  imf_status st = IMF_OK;
  if (!test) { /* the standing holdout of this block */
    st = imf_ratings_reserve(&t, h->nnz + 1);
    for (int64_t r = 0; st == IMF_OK && r < h->hi - h->lo; r++)
      for (int64_t j = h->ptr[r]; j < h->ptr[r + 1]; j++)
        if (h->idx[j] < item_limit) st = imf_ratings_push(&t, (int32_t)(h->lo + r), h->idx[j], h->val[j], IMF_NO_TIME);
  } else {
    st = imf_ratings_reserve(&t, test->n + 1);
    for (int64_t j = 0; st == IMF_OK && j < test->n; j++)
      if (test->item[j] < item_limit)
        st = imf_ratings_push(&t, test->user[j], test->item[j], test->value[j], IMF_NO_TIME);
  }
  imf_metrics res;
  if (imf_agree(comm, st) == IMF_OK) {
    if (ease)
      st = imf_eval_block_ease(comm, m, ease, c->lo, c->hi, x ? x->ptr : NULL, x ? x->idx : NULL, c->ptr, c->idx, &t,
                               &o, &res);
    else st = imf_eval_block(comm, m, c->lo, c->hi, NULL, NULL, c->ptr, c->idx, &t, &o, &res);
  } else st = IMF_ERR_NOMEM;
  imf_ratings_free(&t);
  return st;
}

/* Every rank's w-wide rows (nloc of them) on rank 0, in rank order (*all, *nall: rank 0 only). */
static imf_status gather_rows(MPI_Comm comm, const double *v, int64_t nloc, int w, double **all, int64_t *nall) {
  int rank, size;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  *all = NULL;
  *nall = 0;
  int cnt = (int)(nloc * w), *counts = NULL, *displs = NULL;
  imf_status st = IMF_OK;
  if (rank == 0) {
    st = imf_alloc(&counts, (size_t)size, sizeof *counts);
    if (st == IMF_OK) st = imf_alloc(&displs, (size_t)size, sizeof *displs);
  }
  IMF_TRY(imf_agree(comm, st), out);
  IMF_MPI_TRY(MPI_Gather(&cnt, 1, MPI_INT, counts, 1, MPI_INT, 0, comm), out);
  int64_t tot = 0;
  if (rank == 0) {
    for (int r = 0; r < size; r++) {
      displs[r] = (int)tot;
      tot += counts[r];
    }
    if (tot > INT32_MAX)
      st = IMF_RAISE(IMF_ERR_RUNTIME, "too many users to judge (%lld)", (long long)tot);
    if (st == IMF_OK) st = imf_alloc(all, (size_t)(tot ? tot : 1), sizeof **all);
  }
  IMF_TRY(imf_agree(comm, st), out);
  IMF_MPI_TRY(MPI_Gatherv(v, cnt, MPI_DOUBLE, *all, counts, displs, MPI_DOUBLE, 0, comm), out);
  *nall = tot / w;
out:
  if (st != IMF_OK) imf_free(all);
  imf_free(&counts);
  imf_free(&displs);
  return st;
}

imf_status imf_judge_mean(MPI_Comm comm, const imf_partition *p, const double *v, double *mean, int64_t *users) {
  double *all = NULL, r[2] = {0, 0};
  int64_t n = 0;
  IMF_CHECK(gather_rows(comm, v, p->by_user.hi - p->by_user.lo, 1, &all, &n));
  for (int64_t j = 0; j < n; j++)
    if (isfinite(all[j])) {
      r[0] += all[j];
      r[1] += 1;
    }
  imf_free(&all);
  IMF_MPI(MPI_Bcast(r, 2, MPI_DOUBLE, 0, comm));
  *mean = r[1] > 0 ? r[0] / r[1] : NAN;
  if (users) *users = (int64_t)r[1];
  return IMF_OK;
}

/* ------------------------------------------------------------------------------ interval */

static uint64_t splitmix64(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
static int cmp_dbl(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Resamples b = first, first + step, ... below IMF_JUDGE_RESAMPLES of the n sorted differences d:
 * resample b's draw j (0-based) is d[index], index = floor(z * n / 2^64) (Lemire's multiply-shift,
 * no rejection) of z = splitmix64 at counter k = b * n + j + 1 of the one stream seeded
 * IMF_JUDGE_SEED (state = seed + k * 0x9E3779B97F4A7C15, mod 2^64) — counter-based, so any rank
 * computes any resample; means[b] = the sequential sum of its draws / n. */
static void resample_means(const double *d, int64_t n, int first, int step, double *means) {
  for (int b = first; b < IMF_JUDGE_RESAMPLES; b += step) {
    uint64_t state = IMF_JUDGE_SEED + (uint64_t)b * (uint64_t)n * 0x9E3779B97F4A7C15ull;
    double t = 0;
    for (int64_t j = 0; j < n; j++)
      t += d[(uint64_t)(((unsigned __int128)splitmix64(&state) * (uint64_t)n) >> 64)];
    means[b] = t / (double)n;
  }
}

/* The interval from all resample means (sorted in place): positions floor(0.025 B) and
 * ceil(0.975 B) - 1 (0-based) of the B sorted means. */
static void percentile(double *means, double *lo, double *hi) {
  qsort(means, IMF_JUDGE_RESAMPLES, sizeof *means, cmp_dbl);
  *lo = means[(int)floor(0.025 * IMF_JUDGE_RESAMPLES)];
  *hi = means[(int)ceil(0.975 * IMF_JUDGE_RESAMPLES) - 1];
}

static double sorted_mean(double *d, int64_t n) {
  qsort(d, (size_t)n, sizeof *d, cmp_dbl);
  double s = 0;
  for (int64_t j = 0; j < n; j++) s += d[j];
  return s / (double)n;
}

/* Above IMF_JUDGE_BOOT_MAX users the interval is the normal one, mean -/+ 1.96 sd / sqrt(n) (sd
 * with n - 1; sums over the sorted differences, so rank-count independent): the bootstrap's cost
 * grows as resamples x users (about 2 s at 200K users on one core, a tenth of a 10M fold-in),
 * while at that many users the mean's sampling distribution is normal to well within the
 * interval's own resampling noise. */
static void normal_interval(const double *d, int64_t n, double mean, double *lo, double *hi) {
  double ss = 0;
  for (int64_t j = 0; j < n; j++) ss += (d[j] - mean) * (d[j] - mean);
  double se = n > 1 ? sqrt(ss / (double)(n - 1) / (double)n) : NAN;
  *lo = mean - 1.959963984540054 * se;
  *hi = mean + 1.959963984540054 * se;
}

void imf_judge_bootstrap(double *d, int64_t n, double *mean, double *lo, double *hi) {
  *mean = *lo = *hi = NAN;
  if (n <= 0) return;
  *mean = sorted_mean(d, n);
  if (n > IMF_JUDGE_BOOT_MAX) {
    normal_interval(d, n, *mean, lo, hi);
    return;
  }
  double *means = calloc(IMF_JUDGE_RESAMPLES, sizeof *means);
  if (!means) return; /* no interval (NaN) rather than a failed update */
  resample_means(d, n, 0, 1, means);
  percentile(means, lo, hi);
  free(means);
}

/* Rank 0's sorted differences to every rank, each rank its share of the resamples (b = rank,
 * rank + size, ...), summed into one array (the other entries are 0: exact), the percentile on
 * every rank: the same numbers as imf_judge_bootstrap on any rank count, in 1/size of its time. */
imf_status imf_judge_differences(MPI_Comm comm, const double *d, int64_t nloc, int64_t zeros, imf_judgement *j) {
  int rank, size;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  double *all = NULL, *means = NULL, r[3] = {NAN, NAN, NAN};
  int64_t n = 0;
  imf_status st = IMF_OK;
  IMF_TRY(gather_rows(comm, d, nloc, 1, &all, &n), out);
  if (rank == 0 && zeros > 0) {
    st = imf_realloc(&all, (size_t)(n + zeros), sizeof *all);
    for (int64_t q = 0; st == IMF_OK && q < zeros; q++) all[n++] = 0.0;
  }
  if (st == IMF_OK && rank == 0 && n > 0) r[0] = sorted_mean(all, n);
  IMF_TRY(imf_agree(comm, st), out);
  IMF_MPI_TRY(MPI_Bcast(&n, 1, MPI_INT64_T, 0, comm), out);
  if (rank != 0 && n > 0) st = imf_alloc(&all, (size_t)n, sizeof *all);
  if (st == IMF_OK) st = imf_alloc(&means, IMF_JUDGE_RESAMPLES, sizeof *means);
  IMF_TRY(imf_agree(comm, st), out);
  if (n > IMF_JUDGE_BOOT_MAX) {
    if (rank == 0) normal_interval(all, n, r[0], &r[1], &r[2]);
    IMF_MPI_TRY(MPI_Bcast(r, 3, MPI_DOUBLE, 0, comm), out);
  } else if (n > 0) {
    IMF_MPI_TRY(MPI_Bcast(all, (int)n, MPI_DOUBLE, 0, comm), out);
    resample_means(all, n, rank, size, means);
    IMF_MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, means, IMF_JUDGE_RESAMPLES, MPI_DOUBLE, MPI_SUM, comm), out);
    percentile(means, &r[1], &r[2]);
  }
  IMF_MPI_TRY(MPI_Bcast(r, 1, MPI_DOUBLE, 0, comm), out);
  const char *dump = getenv("IMF_JUDGE_DUMP");
  if (rank == 0 && dump && dump[0]) {
    FILE *f = fopen(dump, "w");
    if (f) {
      fprintf(f, "users %lld resamples %d seed %u mean %.17g lo %.17g hi %.17g\n", (long long)n,
              n > IMF_JUDGE_BOOT_MAX ? 0 : IMF_JUDGE_RESAMPLES, IMF_JUDGE_SEED, r[0], r[1], r[2]);
      for (int64_t q = 0; q < n; q++) fprintf(f, "%.17g\n", all[q]);
      fclose(f);
    }
  }
  j->diff_mean = r[0];
  j->diff_lo = r[1];
  j->diff_hi = r[2];
  j->users = n;
out:
  imf_free(&all);
  imf_free(&means);
  return st;
}

imf_status imf_judge_pair_scores(MPI_Comm comm, const imf_partition *p, const double *champ, const double *chall,
                                 imf_judgement *j) {
  int64_t nloc = p->by_user.hi - p->by_user.lo, np = 0;
  double *d = NULL, *pairs = NULL, *all = NULL, r[2] = {0, 0};
  imf_status st = imf_alloc(&d, (size_t)(nloc ? nloc : 1), sizeof *d);
  if (st == IMF_OK) st = imf_alloc(&pairs, (size_t)(nloc ? nloc : 1) * 2, sizeof *pairs);
  IMF_TRY(imf_agree(comm, st), out);
  for (int64_t u = 0; u < nloc; u++)
    if (isfinite(champ[u]) && isfinite(chall[u])) {
      d[np] = chall[u] - champ[u]; /* positive: the challenger ranks this user's items better */
      pairs[2 * np] = champ[u];
      pairs[2 * np + 1] = chall[u];
      np++;
    }
  /* the headline scores: both means over the paired users, summed in user order on rank 0 */
  int64_t nall = 0;
  IMF_TRY(gather_rows(comm, pairs, np, 2, &all, &nall), out);
  for (int64_t q = 0; q < nall; q++) {
    r[0] += all[2 * q];
    r[1] += all[2 * q + 1];
  }
  IMF_MPI_TRY(MPI_Bcast(r, 2, MPI_DOUBLE, 0, comm), out);
  IMF_TRY(imf_judge_differences(comm, d, np, 0, j), out);
  j->champion = j->users > 0 ? r[0] / (double)j->users : NAN;
  j->challenger = j->users > 0 ? r[1] / (double)j->users : NAN;
out:
  imf_free(&d);
  imf_free(&pairs);
  imf_free(&all);
  return st;
}

imf_status imf_judge_rmse(MPI_Comm comm, const imf_partition *p, const imf_model *champ, const imf_model *chall,
                          imf_judgement *j, double sse[2], int64_t *n, int64_t *users) {
  const imf_csr *h = &p->holdout;
  int64_t nu = h->hi - h->lo, nd = 0;
  double *v = NULL, *d = NULL, sum[2] = {0, 0};
  imf_status st = imf_alloc(&v, (size_t)(nu ? nu : 1) * 2, sizeof *v);
  if (st == IMF_OK) st = imf_alloc(&d, (size_t)(nu ? nu : 1), sizeof *d);
  IMF_TRY(imf_agree(comm, st), out);
  for (int64_t r = 0; r < nu; r++) {
    int64_t u = h->lo + r;
    double du = 0;
    for (int64_t q = h->ptr[r]; q < h->ptr[r + 1]; q++) {
      double ea = (double)h->val[q] - imf_model_predict(champ, u, h->idx[q]);
      double eb = (double)h->val[q] - imf_model_predict(chall, u, h->idx[q]);
      v[2 * r] += ea * ea;
      v[2 * r + 1] += eb * eb;
      du += imf_judge_sq_gain(ea, eb); /* positive: the challenger's squared error is smaller */
    }
    if (h->ptr[r + 1] > h->ptr[r]) d[nd++] = du;
  }
  /* the headline RMSEs exactly as imf_holdout_sse sums them (bitwise on any rank count) */
  IMF_TRY(imf_det_sum_rows(comm, p->user_start, v, 2, sum), out);
  IMF_TRY(imf_judge_differences(comm, d, nd, 0, j), out);
  double cnt = (double)p->nnz_holdout;
  j->champion = cnt > 0 ? sqrt(sum[0] / cnt) : NAN;
  j->challenger = cnt > 0 ? sqrt(sum[1] / cnt) : NAN;
  if (sse) {
    sse[0] = sum[0];
    sse[1] = sum[1];
  }
  if (n) *n = p->nnz_holdout;
  if (users) *users = j->users;
out:
  imf_free(&v);
  imf_free(&d);
  return st;
}

imf_status imf_judge_holdout_users(MPI_Comm comm, const imf_partition *p, int64_t *users) {
  const imf_csr *h = &p->holdout;
  int64_t c = 0;
  for (int64_t r = 0; r < h->hi - h->lo; r++) c += h->ptr[r + 1] > h->ptr[r];
  IMF_MPI(MPI_Allreduce(&c, users, 1, MPI_INT64_T, MPI_SUM, comm));
  return IMF_OK;
}

imf_status imf_judge_drift_score(MPI_Comm comm, const imf_judge_metric *jm, const imf_partition *p, const imf_model *m,
                                 imf_ease *ease, const imf_ease_rows *x, const imf_ratings *fresh, double *score) {
  *score = NAN;
  if (jm->kind == IMF_JUDGE_RMSE) return IMF_OK;
  int size;
  MPI_Comm_size(comm, &size);
  /* every rank's share of the new held-out ratings, to the rank whose user block holds them */
  int cnt = (int)fresh->n, *counts = NULL, *displs = NULL;
  int64_t lo = p->by_user.lo, hi = p->by_user.hi, tot = 0;
  int32_t *u = NULL, *it = NULL;
  float *val = NULL;
  double *s = NULL;
  imf_ratings mine = {0};
  imf_status st = imf_alloc(&counts, (size_t)size, sizeof *counts);
  if (st == IMF_OK) st = imf_alloc(&displs, (size_t)size, sizeof *displs);
  IMF_TRY(imf_agree(comm, st), out);
  IMF_MPI_TRY(MPI_Allgather(&cnt, 1, MPI_INT, counts, 1, MPI_INT, comm), out);
  for (int r = 0; r < size; r++) {
    displs[r] = (int)tot;
    tot += counts[r];
  }
  if (tot > INT32_MAX) st = IMF_RAISE(IMF_ERR_RUNTIME, "too many new held-out ratings");
  if (st == IMF_OK) st = imf_alloc(&u, (size_t)(tot ? tot : 1), sizeof *u);
  if (st == IMF_OK) st = imf_alloc(&it, (size_t)(tot ? tot : 1), sizeof *it);
  if (st == IMF_OK) st = imf_alloc(&val, (size_t)(tot ? tot : 1), sizeof *val);
  if (st == IMF_OK) st = imf_alloc(&s, (size_t)(hi - lo ? hi - lo : 1), sizeof *s);
  IMF_TRY(imf_agree(comm, st), out);
  IMF_MPI_TRY(MPI_Allgatherv(fresh->user, cnt, MPI_INT32_T, u, counts, displs, MPI_INT32_T, comm), out);
  IMF_MPI_TRY(MPI_Allgatherv(fresh->item, cnt, MPI_INT32_T, it, counts, displs, MPI_INT32_T, comm), out);
  IMF_MPI_TRY(MPI_Allgatherv(fresh->value, cnt, MPI_FLOAT, val, counts, displs, MPI_FLOAT, comm), out);
  st = imf_ratings_reserve(&mine, tot + 1);
  for (int64_t j = 0; st == IMF_OK && j < tot; j++)
    if (u[j] >= lo && u[j] < hi) st = imf_ratings_push(&mine, u[j], it[j], val[j], IMF_NO_TIME);
  IMF_TRY(imf_agree(comm, st), out);
  IMF_TRY(imf_judge_user_scores(comm, jm, p, m, ease, x, &mine, m->nitems, s), out);
  IMF_TRY(imf_judge_mean(comm, p, s, score, NULL), out);
out:
  imf_free(&counts);
  imf_free(&displs);
  imf_free(&u);
  imf_free(&it);
  imf_free(&val);
  imf_free(&s);
  imf_ratings_free(&mine);
  return st;
}

static int cmp_quad(const void *a, const void *b) {
  const double *x = a, *y = b;
  if (x[0] != y[0]) return x[0] < y[0] ? -1 : 1;
  return (x[1] > y[1]) - (x[1] < y[1]);
}

imf_status imf_judge_touched(MPI_Comm comm, const double *quad, int64_t nloc, const unsigned char *tu, int64_t c_users,
                             imf_judgement *j, int64_t *users_now) {
  int rank;
  MPI_Comm_rank(comm, &rank);
  double *all = NULL, *d = NULL;
  int64_t n = 0, nd = 0, zeros = 0, now = 0;
  imf_status st = IMF_OK;
  IMF_TRY(gather_rows(comm, quad, nloc, 4, &all, &n), out);
  if (rank == 0) {
    /* (user, item) order: each user's terms summed in item order, as imf_judge_rmse does */
    qsort(all, (size_t)n, 4 * sizeof *all, cmp_quad);
    st = imf_alloc(&d, (size_t)(n ? n : 1), sizeof *d);
    int64_t had = 0, has = 0;
    for (int64_t a = 0; st == IMF_OK && a < n;) {
      int64_t u = (int64_t)all[4 * a], b = a;
      double du = 0;
      int old = 0;
      for (; b < n && (int64_t)all[4 * b] == u; b++) {
        du += all[4 * b + 2];
        old |= all[4 * b + 3] != 0;
      }
      d[nd++] = du;
      if (tu[u]) {
        had += old;
        has++;
      }
      a = b;
    }
    now = c_users - had + has;
    zeros = now - nd;
    if (zeros < 0) zeros = 0;
  }
  imf_free(&all);
  IMF_TRY(imf_agree(comm, st), out);
  IMF_TRY(imf_judge_differences(comm, d, nd, zeros, j), out);
  IMF_MPI_TRY(MPI_Bcast(&now, 1, MPI_INT64_T, 0, comm), out);
  *users_now = now;
out:
  imf_free(&d);
  return st;
}

/* ------------------------------------------------------------------------------ verdict */

/* The verdict on a judgement (docs/METRICS.md, "Judging an update"): never a challenger with a
 * reason `why` (non-finite factors or weights, a diverging loss) or a non-finite score where the
 * champion's is finite; otherwise promoted unless worse than the champion by more than the
 * tolerance (a share of the champion's score): RMSE above champion x (1 + tol), a ranking
 * metric's mean paired difference below -tol x champion. Nothing judged (no held-out users):
 * promoted unjudged, as before. */
int imf_judge_verdict(const imf_judge_metric *jm, const imf_judgement *j, double tol, const char *why, int *worse) {
  *worse = 0;
  if (why) return 0;
  if (isfinite(j->champion) && !isfinite(j->challenger)) {
    *worse = 1;
    return 0;
  }
  if (!isfinite(j->champion)) return 1;
  if (jm->kind == IMF_JUDGE_RMSE) *worse = !(j->challenger <= j->champion * (1.0 + tol));
  else *worse = !(j->diff_mean >= -tol * j->champion);
  return !*worse;
}

/* The judgement as one log line and the report's figures. */
void imf_judge_report(const char *strat, const imf_judge_metric *jm, const imf_judgement *j, int promote,
                      const char *why, imf_update_report *rep) {
  snprintf(rep->metric, sizeof rep->metric, "%s", jm->name);
  rep->champion_score = j->champion;
  rep->challenger_score = j->challenger;
  rep->diff_mean = j->diff_mean;
  rep->diff_lo = j->diff_lo;
  rep->diff_hi = j->diff_hi;
  rep->diff_users = j->users;
  if (jm->kind == IMF_JUDGE_RMSE) {
    rep->champion_rmse = j->champion;
    rep->challenger_rmse = j->challenger;
  }
  char up[16];
  snprintf(up, sizeof up, "%s", jm->name);
  for (char *c = up; *c && *c != '@'; c++)
    if (*c >= 'a' && *c <= 'z') *c = (char)(*c - 'a' + 'A');
  const char *sig = !(j->users > 1) ? ""
                    : j->diff_lo > 0   ? ", interval above 0"
                    : j->diff_hi < 0   ? ", interval below 0"
                                       : ", interval includes 0";
  imf_info("%s challenger: holdout %s %.5f vs champion %.5f, diff %+.5g [95%% CI %+.5g, %+.5g] over %lld users "
           "(%s%s%s) -> %s%s%s", strat, up, j->challenger, j->champion, j->diff_mean, j->diff_lo,
           j->diff_hi, (long long)j->users, j->users > IMF_JUDGE_BOOT_MAX ? "paired, normal interval" : "paired bootstrap",
           jm->kind == IMF_JUDGE_RMSE ? ", d = champion SSE - challenger SSE" : "",
           sig, promote ? "promoted" : "rejected", why ? ": " : "", why ? why : "");
}

/* Drift: the champion's figure on the newest data (newest_rmse for RMSE; newest_score for a
 * ranking metric) against its mean over the last `window` updates judged by the same metric;
 * drift is a rise of RMSE, or a fall of the ranking metric, beyond update.drift_threshold. */
void imf_judge_drift(const imf_registry_record *hist, int64_t nhist, const imf_judge_metric *jm, int64_t window,
                     double thr, imf_update_report *rep) {
  const int ranking = jm->kind != IMF_JUDGE_RMSE;
  double acc = 0, now = ranking ? rep->newest_score : rep->newest_rmse;
  int64_t used = 0;
  for (int64_t j = nhist - 1; j >= 0 && used < window; j--) {
    if (strcmp(hist[j].event, "update")) continue;
    double v = ranking ? hist[j].newest_score : hist[j].newest_rmse;
    if (ranking && strcmp(hist[j].metric, jm->name)) continue;
    if (isfinite(v)) {
      acc += v;
      used++;
    }
  }
  if (used >= 2) rep->drift_baseline = acc / (double)used;
  if (!isfinite(rep->drift_baseline) || !isfinite(now)) return;
  rep->drift = ranking ? now < rep->drift_baseline * (1.0 - thr) : now > rep->drift_baseline * (1.0 + thr);
  if (rep->drift)
    imf_warn("drift: version %lld's %s on the new batches is %.5f, %.1f%% %s its history (%.5f over %lld updates; "
             "update.drift_threshold = %g)", (long long)rep->parent, jm->name, now,
             100.0 * fabs(now / rep->drift_baseline - 1.0), ranking ? "below" : "above", rep->drift_baseline,
             (long long)used, thr);
}

/* Test hook IMF_TEST_CHALLENGER (docs/METRICS.md): "worse" gives a factor model's challenger its
 * item factors and item biases shifted by one row (item i scored with item i+1's; a pop model's
 * counts) and an EASE
 * challenger -B (its ranking reversed), both finite and worse; "same" makes a factor model's
 * challenger the champion itself (grown to the store's shape); "nan" puts a NaN into the
 * challenger's item factors or B (never promoted). Applied to the version written as well. */
imf_status imf_judge_test_hook(const imf_model *champ, imf_model *chall, imf_ease *state) {
  const char *t = getenv("IMF_TEST_CHALLENGER");
  if (!t || !t[0]) return IMF_OK;
  if (state) {
    double *b = imf_ease_b(state);
    imf_ease_layout l;
    imf_ease_get_layout(state, &l);
    size_t n = (size_t)l.lld * (size_t)l.nloc;
    if (b && !strcmp(t, "worse"))
      for (size_t j = 0; j < n; j++) b[j] = -b[j];
    if (b && n && !strcmp(t, "nan")) b[0] = NAN;
    return IMF_OK;
  }
  size_t kw = (size_t)chall->kw, ni = (size_t)chall->nitems;
  if (!strcmp(t, "worse") && ni > 1) {
    float *q0 = NULL;
    IMF_CHECK(imf_alloc(&q0, kw, sizeof *q0));
    memcpy(q0, chall->Q, kw * sizeof *q0);
    memmove(chall->Q, chall->Q + kw, (ni - 1) * kw * sizeof *q0);
    memcpy(chall->Q + (ni - 1) * kw, q0, kw * sizeof *q0);
    imf_free(&q0);
    if (chall->bi) { /* the item biases too: all a pop model's scores are (its counts) */
      float b0 = chall->bi[0];
      memmove(chall->bi, chall->bi + 1, (ni - 1) * sizeof *chall->bi);
      chall->bi[ni - 1] = b0;
    }
  } else if (!strcmp(t, "same")) {
    size_t np = (size_t)champ->nusers * kw;
    memcpy(chall->P, champ->P, np * sizeof *chall->P);
    memset(chall->P + np, 0, ((size_t)chall->nusers * kw - np) * sizeof *chall->P);
    memcpy(chall->Q, champ->Q, (size_t)champ->nitems * kw * sizeof *chall->Q);
    memset(chall->Q + (size_t)champ->nitems * kw, 0, (ni - (size_t)champ->nitems) * kw * sizeof *chall->Q);
    if (chall->bu && champ->bu) memcpy(chall->bu, champ->bu, (size_t)champ->nusers * sizeof *chall->bu);
    if (chall->bi && champ->bi) memcpy(chall->bi, champ->bi, (size_t)champ->nitems * sizeof *chall->bi);
  } else if (!strcmp(t, "nan") && ni > 0) chall->Q[0] = NAN;
  return IMF_OK;
}
