/* update.c - `incremf update`: keep a model fresh as batches land (update.h, incremf.h).
 *
 * Sequence: [append --input to the store] -> champion = CURRENT version -> the batches it has not
 * seen (batches_seen < store batches) -> read the store, split off the standing holdout (a hash
 * of (seed, user, item) recorded in the store, so champion and challenger are judged on the same
 * ratings and no held-out rating is ever trained on) -> challenger by fold-in, warm or retrain
 * (auto escalates) -> both judged on the holdout by update.metric, user by user, with a paired
 * interval (judge.h) -> the challenger is written as a new version;
 * its registry record; CURRENT switched only when it is promoted.
 *
 * Crash safety comes from the order of those last steps: the version file is complete before
 * the registry names it, and CURRENT (one atomic rename) is switched last, so a kill at any
 * moment leaves CURRENT on a complete version; the store is only ever appended to (atomic
 * manifest), and a batch the current version has not seen is simply folded in by the next
 * update. Test hooks: IMF_FAULT=update-after-version / update-before-current fail there, and
 * IMF_KILL_AT=after-append|after-read|after-version|after-registry|after-current SIGKILLs every
 * rank there; IMF_TEST_CHALLENGER=worse|same|nan perturbs the challenger (imf_judge_test_hook). */
#include "update.h"
#include "baseline.h"
#include "checkpoint.h"
#include "config.h"
#include "ease.h"
#include "error.h"
#include "evaluate.h"
#include "exchange.h"
#include "idmap.h"
#include "judge.h"
#include "log.h"
#include "modeldir.h"
#include "registry.h"
#include "rowsolve.h"
#include "scale.h"
#include "store.h"
#include "train.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { S_FOLD = 0, S_WARM = 1, S_RETRAIN = 2 };
static const char *const SNAME[3] = {"fold-in", "warm", "retrain"};

static void kill_point(const char *name) {
  /* test hook: a real SIGTERM to rank 0 alone at this step (tests/e2e_accidents.sh) */
  const char *sg = getenv("IMF_SIGNAL_AT");
  int wr = 0;
  if (sg && !strcmp(sg, name) && MPI_Comm_rank(MPI_COMM_WORLD, &wr) == MPI_SUCCESS && wr == 0) raise(SIGTERM);
  const char *k = getenv("IMF_KILL_AT");
  if (k && !strcmp(k, name)) {
    fflush(NULL);
    kill(getpid(), SIGKILL);
  }
}
static imf_status fault_point(const char *name) {
  const char *f = getenv("IMF_FAULT");
  if (f && !strcmp(f, name)) IMF_FAIL(IMF_ERR_RUNTIME, "injected fault (IMF_FAULT=%s)", name);
  return IMF_OK;
}

/* ------------------------------------------------------------------------------ fold-in */

static void gram_all(const float *Y, int64_t n, int k, double *G) {
  memset(G, 0, (size_t)k * (size_t)k * sizeof *G);
  for (int64_t r = 0; r < n; r++) {
    const float *y = Y + (size_t)r * (size_t)k;
    for (int a = 0; a < k; a++)
      for (int b = 0; b < k; b++) G[a * k + b] += (double)y[a] * (double)y[b];
  }
}

/* Solve rows row_id[0..nt) of one side (0 users, 1 items) of m, row t with training ratings
 * idx/val[ptr[t] .. ptr[t+1]) (other-side indices, ascending), against the other side's current
 * factors, and replicate every rank's results into m. Per-row results do not depend on which
 * rank solves a row or what else it solves (rowsolve.h), so any split of the rows over the ranks
 * gives bitwise the same model. Collective. */
static imf_status foldin_rows(MPI_Comm comm, imf_model *m, int side, int64_t nt, const int64_t *row_id,
                              const int64_t *ptr, const int32_t *idx, const float *val, int64_t *nsolved) {
  float *self = side ? m->Q : m->P;
  int k = m->k, nr;
  MPI_Comm_size(comm, &nr);
  imf_status st = IMF_OK;
  if (m->type == IMF_MODEL_BPMF || m->kw != k || imf_baseline_type(m->type))
    st = imf_err_raise(IMF_ERR_USAGE, __FILE__, __LINE__, "fold-in needs an ALS or implicit ALS model");
  IMF_CHECK(imf_agree(comm, st));
  float *X = NULL, *B = NULL, *allX = NULL, *allB = NULL;
  int64_t *allid = NULL;
  double *G = NULL;
  int *cnt = NULL, *dsp = NULL;
  imf_rowsolve_ws *ws = NULL;
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
    gram_all(other.Y, other.n, k, G); /* O(n k^2) on replicated factors; no communication */
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
  /* Replicate the solved rows: every rank's (row id, factors, bias). */
  int mine = (int)nt;
  IMF_TRY(imf_alloc(&cnt, (size_t)nr, sizeof *cnt), out);
  IMF_TRY(imf_alloc(&dsp, (size_t)nr + 1, sizeof *dsp), out);
  IMF_MPI(MPI_Allgather(&mine, 1, MPI_INT, cnt, 1, MPI_INT, comm));
  int64_t tot = 0;
  for (int r = 0; r < nr; r++) {
    dsp[r] = (int)tot;
    tot += cnt[r];
  }
  IMF_TRY(imf_alloc(&allid, (size_t)tot + 1, sizeof *allid), out);
  IMF_TRY(imf_alloc(&allB, (size_t)tot + 1, sizeof *allB), out);
  IMF_TRY(imf_alloc(&allX, ((size_t)tot + 1) * (size_t)k, sizeof *allX), out);
  IMF_MPI(MPI_Allgatherv(row_id, mine, MPI_INT64_T, allid, cnt, dsp, MPI_INT64_T, comm));
  IMF_MPI(MPI_Allgatherv(B, mine, MPI_FLOAT, allB, cnt, dsp, MPI_FLOAT, comm));
  {
    MPI_Datatype rowt;
    MPI_Type_contiguous(k, MPI_FLOAT, &rowt);
    MPI_Type_commit(&rowt);
    int e = MPI_Allgatherv(X, mine, rowt, allX, cnt, dsp, rowt, comm);
    MPI_Type_free(&rowt);
    if (e != MPI_SUCCESS) IMF_TRY(imf_err_mpi(e, __FILE__, __LINE__, "MPI_Allgatherv"), out);
  }
  float *bias = side ? m->bi : m->bu;
  for (int64_t j = 0; j < tot; j++) {
    memcpy(self + (size_t)allid[j] * (size_t)k, allX + (size_t)j * (size_t)k, (size_t)k * sizeof(float));
    if (bias) bias[allid[j]] = allB[j];
  }
  if (nsolved) *nsolved = tot;
out:
  imf_free(&X);
  imf_free(&B);
  imf_free(&G);
  imf_free(&cnt);
  imf_free(&dsp);
  imf_free(&allid);
  imf_free(&allB);
  imf_free(&allX);
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

/* ------------------------------------------------------------------------------ judging */

imf_status imf_holdout_rmse(MPI_Comm comm, const imf_partition *p, const imf_model *a, const imf_model *b,
                            double *rmse_a, double *rmse_b, int64_t *n) {
  double sse[2];
  IMF_CHECK(imf_holdout_sse(comm, p, a, b, sse, n));
  double cntd = (double)p->nnz_holdout;
  *rmse_a = cntd > 0 ? sqrt(sse[0] / cntd) : NAN;
  if (rmse_b) *rmse_b = cntd > 0 && b ? sqrt(sse[1] / cntd) : NAN;
  return IMF_OK;
}

imf_status imf_holdout_sse(MPI_Comm comm, const imf_partition *p, const imf_model *a, const imf_model *b,
                           double sse[2], int64_t *n) {
  const imf_csr *h = &p->holdout;
  int64_t nu = h->hi - h->lo;
  double *v = NULL, sum[2] = {0, 0};
  IMF_CHECK(imf_alloc(&v, (size_t)(nu ? nu : 1) * 2, sizeof *v));
  for (int64_t r = 0; r < nu; r++) {
    int64_t u = h->lo + r;
    for (int64_t j = h->ptr[r]; j < h->ptr[r + 1]; j++) {
      double ea = (double)h->val[j] - imf_model_predict(a, u, h->idx[j]);
      v[2 * r] += ea * ea;
      if (b) {
        double eb = (double)h->val[j] - imf_model_predict(b, u, h->idx[j]);
        v[2 * r + 1] += eb * eb;
      }
    }
  }
  imf_status st = imf_det_sum_rows(comm, p->user_start, v, 2, sum);
  imf_free(&v);
  IMF_CHECK(st);
  sse[0] = sum[0];
  sse[1] = b ? sum[1] : NAN;
  if (n) *n = p->nnz_holdout;
  return IMF_OK;
}

/* ------------------------------------------------------------------------------ challengers */

typedef struct {
  MPI_Comm comm;
  const imf_config *cfg;      /* the champion's configuration */
  const imf_partition *part;
  const imf_model *champ;
  const unsigned char *tu, *ti;
  int64_t warm_sweeps;
} build_ctx;

static imf_status build_foldin(build_ctx *b, imf_model **out) {
  imf_model *m = NULL;
  *out = NULL;
  imf_status st = imf_model_copy(b->champ, &m);
  if (st == IMF_OK) st = imf_model_grow(m, b->part->nusers, b->part->nitems);
  IMF_CHECK(imf_agree(b->comm, st));
  if (m->type != IMF_MODEL_BPMF) {
    int64_t su = 0, si = 0;
    st = imf_foldin_side(b->comm, b->part, m, 0, b->tu, &su);
    if (st == IMF_OK) st = imf_foldin_side(b->comm, b->part, m, 1, b->ti, &si);
    if (st == IMF_OK) imf_info("fold-in: %lld users, then %lld items re-solved against their full history", (long long)su, (long long)si);
  }
  if (st != IMF_OK) imf_model_destroy(&m);
  *out = m;
  return st;
}

/* Sweeps of the trainer from `start` (same shape as the data: exact resume, so a BPMF chain
 * continues from the champion's last sample) or from scratch (start == NULL). */
static imf_status run_trainer(build_ctx *b, const imf_model *start, imf_model **out) {
  *out = NULL;
  imf_status st = IMF_OK;
  imf_config *c = NULL;
  imf_trainer *t = NULL;
  char *text = imf_config_dump(b->cfg);
  if (!text) IMF_FAIL(IMF_ERR_NOMEM, "out of memory");
  st = imf_config_create(&c);
  if (st == IMF_OK) st = imf_config_load_string(c, text, "the champion's configuration");
  free(text);
  if (st == IMF_OK && start) {
    char set[96];
    snprintf(set, sizeof set, "model.iterations=%lld", (long long)(start->iteration + b->warm_sweeps));
    st = imf_config_set(c, set);
    if (st == IMF_OK) st = imf_config_set(c, "model.tol=0");
  }
  IMF_TRY(imf_agree(b->comm, st), out);
  IMF_TRY(imf_train_create(b->comm, c, b->part, &t), out);
  if (start) IMF_TRY(imf_trainer_resume(t, start), out);
  IMF_TRY(imf_trainer_run(t), out);
  IMF_TRY(imf_agree(b->comm, imf_model_copy(imf_trainer_model(t), out)), out);
out:
  imf_trainer_destroy(&t);
  imf_config_destroy(&c);
  return st;
}

static imf_status build(build_ctx *b, int strategy, imf_model **out) {
  *out = NULL;
  if (imf_baseline_type(b->champ->type)) /* pop, bias: every strategy is an exact refit (cheap) */
    return imf_baseline_fit(b->comm, b->cfg, b->part, out);
  if (strategy == S_RETRAIN) return run_trainer(b, NULL, out);
  imf_model *f = NULL;
  IMF_CHECK(build_foldin(b, &f));
  if (strategy == S_FOLD) {
    *out = f;
    return IMF_OK;
  }
  /* warm: new rows start from their fold-in solution */
  imf_status st = run_trainer(b, f, out);
  imf_model_destroy(&f);
  return st;
}

/* Why a challenger may never be promoted, or NULL: non-finite factors, or a training loss that
 * diverged over the sweeps of this update (from `from` on in its history). */
static const char *unfit(const imf_model *m, int64_t from) {
  size_t np = (size_t)m->nusers * (size_t)m->kw, nq = (size_t)m->nitems * (size_t)m->kw;
  for (size_t j = 0; j < np; j++)
    if (!isfinite(m->P[j])) return "non-finite user factors";
  for (size_t j = 0; j < nq; j++)
    if (!isfinite(m->Q[j])) return "non-finite item factors";
  if (m->bu)
    for (int64_t j = 0; j < m->nusers; j++)
      if (!isfinite(m->bu[j])) return "non-finite user biases";
  if (m->bi)
    for (int64_t j = 0; j < m->nitems; j++)
      if (!isfinite(m->bi[j])) return "non-finite item biases";
  if (from < m->nhistory) {
    double first = m->history[from].train_loss, last = m->history[m->nhistory - 1].train_loss;
    if (m->type != IMF_MODEL_IALS) {
      first = m->history[from].train_rmse;
      last = m->history[m->nhistory - 1].train_rmse;
    }
    if (!isfinite(last)) return "non-finite training loss";
    if (isfinite(first) && last > 1.5 * fabs(first) + 1e-12) return "diverging training loss";
  }
  return NULL;
}

static void note_add(char *note, size_t cap, const char *fmt, ...) IMF_PRINTF(3, 4);
static void note_add(char *note, size_t cap, const char *fmt, ...) {
  size_t l = strlen(note);
  if (l + 3 >= cap) return;
  if (l) {
    strcat(note, "; ");
    l += 2;
  }
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(note + l, cap - l, fmt, ap);
  va_end(ap);
}

static int parse_strategy(const char *s) {
  for (int j = 0; j < 3; j++)
    if (!strcmp(s, SNAME[j])) return j;
  return !strcmp(s, "auto") ? 3 : -1;
}

/* ------------------------------------------------------------------------------ EASE */

/* update.ease_woodbury_max_rank: "auto" (items / 4: the crossover measured on 2 ranks, README
 * "EASE updates") or a count >= 0. */
static imf_status ease_max_rank(const imf_config *cfg, int64_t nitems, int64_t *out) {
  const char *v = imf_cfg_str(cfg, "update.ease_woodbury_max_rank");
  char *end = NULL;
  if (!strcmp(v, "auto")) *out = nitems / 4;
  else {
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < 0)
      IMF_FAIL(IMF_ERR_USAGE, "update.ease_woodbury_max_rank = '%s': give auto or a count >= 0", v);
    *out = x;
  }
  return IMF_OK;
}

/* An EASE champion's challenger. Every user of this rank's partition block whose training row
 * (binarized, standing holdout excluded) differs from the champion's X row (read sparse, each
 * rank its block's rows) changes G = X^T X by new^T new - old^T old: new interactions add, a
 * forgotten user's row subtracts, a superseded rating of a pair already present changes
 * nothing. When that change has rank m <= update.ease_woodbury_max_rank and the champion's P
 * file is there, P = (G + lambda I)^-1 is read (1 x P grid), grown to the store's items (1/lambda
 * on the new diagonal) and updated by the Woodbury identity (imf_ease_woodbury, 2 n^2 m flops);
 * otherwise — or when the capacitance matrix is ill-conditioned — G is assembled from the new
 * X rows (exact integers) and refactorised (pdpotrf + pdpotri, n^3). Either way B = I - P
 * diagMat(1/diag P), rounded to f32 as stored, and P is kept for the challenger's P file.
 * Every update strategy means this for EASE (recorded as strategy "gram"). *out: the
 * challenger's handle; *state its P and B; oldx, newx: the champion's and the challenger's X
 * rows of this rank's block; how: "woodbury" or "refactor" and the rank. */
static imf_status ease_build(MPI_Comm comm, const imf_config *cfg, const char *cpath, const imf_partition *p,
                             const imf_model *champ, imf_model **out, imf_ease **state, imf_ease_rows *oldx,
                             imf_ease_rows *newx, int64_t *changed, int64_t *entries, char *how, size_t howcap) {
  imf_status st = IMF_OK;
  imf_ease *e = NULL;
  imf_model *m = NULL;
  int64_t *optr = NULL, *nptr = NULL;
  int32_t *oidx = NULL, *nidx = NULL;
  *out = NULL;
  *state = NULL;
  memset(newx, 0, sizeof *newx);
  double t0 = imf_wtime();
  const imf_csr *c = &p->by_user;
  int64_t nu = p->nusers, ni = p->nitems, nloc = c->hi - c->lo, maxr = 0;
  IMF_TRY(ease_max_rank(cfg, ni, &maxr), out);
  IMF_TRY(imf_checkpoint_read_ease_x(comm, cpath, c->lo, c->hi, oldx), out);
  /* the new X: the block's training rows without repeats */
  st = imf_alloc(&newx->ptr, (size_t)nloc + 1, sizeof *newx->ptr);
  if (st == IMF_OK) st = imf_alloc(&newx->idx, (size_t)(c->nnz ? c->nnz : 1), sizeof *newx->idx);
  IMF_TRY(imf_agree(comm, st), out);
  newx->lo = c->lo;
  newx->hi = c->hi;
  for (int64_t r = 0, w = 0; r < nloc; r++) {
    for (int64_t j = c->ptr[r]; j < c->ptr[r + 1]; j++)
      if (w == newx->ptr[r] || newx->idx[w - 1] != c->idx[j]) newx->idx[w++] = c->idx[j];
    newx->ptr[r + 1] = w;
  }
  /* the changed rows: (old, new) as CSR */
  int64_t no = oldx->ptr[nloc], nn = newx->ptr[nloc];
  st = imf_alloc(&optr, (size_t)nloc + 1, sizeof *optr);
  if (st == IMF_OK) st = imf_alloc(&nptr, (size_t)nloc + 1, sizeof *nptr);
  if (st == IMF_OK) st = imf_alloc(&oidx, (size_t)(no ? no : 1), sizeof *oidx);
  if (st == IMF_OK) st = imf_alloc(&nidx, (size_t)(nn ? nn : 1), sizeof *nidx);
  IMF_TRY(imf_agree(comm, st), out);
  int64_t nr = 0;
  for (int64_t r = 0; r < nloc; r++) {
    int64_t lo_ = oldx->ptr[r + 1] - oldx->ptr[r], ln = newx->ptr[r + 1] - newx->ptr[r];
    const int32_t *ro = oldx->idx + oldx->ptr[r], *rn = newx->idx + newx->ptr[r];
    if (lo_ == ln && !memcmp(ro, rn, (size_t)ln * sizeof *ro)) continue;
    memcpy(oidx + optr[nr], ro, (size_t)lo_ * sizeof *ro);
    memcpy(nidx + nptr[nr], rn, (size_t)ln * sizeof *rn);
    optr[nr + 1] = optr[nr] + lo_;
    nptr[nr + 1] = nptr[nr] + ln;
    nr++;
  }
  int64_t g = nr;
  IMF_MPI(MPI_Allreduce(&g, changed, 1, MPI_INT64_T, MPI_SUM, comm));
  int64_t rk = 0;
  IMF_TRY(imf_ease_update_rank(comm, nr, optr, nptr, &rk), out);
  *entries = rk;
  snprintf(how, howcap, "refactor");
  if (rk <= maxr) {
    imf_status ws = imf_checkpoint_read_ease_p(comm, cpath, IMF_EASE_GRID_COLUMNS, &e);
    if (ws == IMF_OK) ws = imf_ease_grow(e, ni);
    if (ws == IMF_OK) ws = imf_ease_woodbury(e, c->lo, nr, optr, oidx, nptr, nidx, NULL);
    if (ws == IMF_OK) ws = imf_ease_b_from_p(e);
    if (ws == IMF_OK) snprintf(how, howcap, "woodbury");
    else if (ws == IMF_ERR_NOTFOUND || ws == IMF_ERR_INPUT) { /* no usable P: refactorise */
      imf_info("EASE update: refactorising instead of a rank-%lld update: %s", (long long)rk, imf_last_error());
      imf_err_clear();
      imf_ease_destroy(&e);
    } else
      IMF_TRY(ws, out);
  }
  if (!e) {
    IMF_TRY(imf_ease_create(comm, ni, champ->lambda, IMF_EASE_GRID_SQUARE, &e), out);
    IMF_TRY(imf_ease_add_rows(e, nloc, newx->ptr, newx->idx), out);
    IMF_TRY(imf_ease_solve_p(e, 0, 1), out);
  }
  imf_ease_round_b(e); /* what the version stores: the gate scores the same B */
  /* the challenger's handle */
  IMF_TRY(imf_agree(comm, imf_model_create(IMF_MODEL_EASE, 1, nu, ni, 0, &m)), out);
  m->mu = 0;
  m->lambda = champ->lambda;
  m->seed = champ->seed;
  m->iteration = champ->iteration + 1;
  for (int64_t j = 0; j < champ->nhistory; j++) IMF_TRY(imf_model_push_history(m, &champ->history[j]), out);
  imf_sweep_metrics h = {.iteration = m->iteration, .train_loss = NAN, .train_rmse = NAN, .val_rmse = NAN,
                         .val_mae = NAN, .seconds = imf_wtime() - t0};
  IMF_TRY(imf_model_push_history(m, &h), out);
  *out = m;
  m = NULL;
  *state = e;
  e = NULL;
out:
  imf_free(&optr);
  imf_free(&nptr);
  imf_free(&oidx);
  imf_free(&nidx);
  imf_model_destroy(&m);
  imf_ease_destroy(&e);
  return st;
}

/* Collective: the judgement of an EASE update by jm (a ranking metric), one B on the scoring
 * grid at a time: the champion's read from its version (each rank its columns; its X rows oldx),
 * then the challenger's redistributed from the solve's grid (newx); both on the standing holdout
 * of the champion's items. *newest: the champion's metric on the new batches' held-out ratings
 * `fresh` (drift). *why: "non-finite item-item weights" when the challenger's B is not finite
 * (never promoted). */
static imf_status ease_judge(MPI_Comm comm, const imf_judge_metric *jm, const char *cpath, const imf_partition *p,
                             const imf_model *champ, const imf_ease_rows *oldx, const imf_model *chall,
                             imf_ease *state, const imf_ease_rows *newx, const imf_ratings *fresh, imf_judgement *j,
                             double *newest, const char **why) {
  imf_ease *b = NULL;
  imf_status st = IMF_OK;
  int finite = 1;
  double *sa = NULL, *sb = NULL;
  int64_t nloc = p->by_user.hi - p->by_user.lo;
  *why = NULL;
  st = imf_alloc(&sa, (size_t)(nloc ? nloc : 1), sizeof *sa);
  if (st == IMF_OK) st = imf_alloc(&sb, (size_t)(nloc ? nloc : 1), sizeof *sb);
  IMF_TRY(imf_agree(comm, st), out);
  IMF_TRY(imf_ease_b_finite(state, &finite), out);
  if (!finite) *why = "non-finite item-item weights";
  IMF_TRY(imf_checkpoint_read_ease(comm, cpath, IMF_CKPT_EASE_B, IMF_EASE_GRID_COLUMNS, &b), out);
  IMF_TRY(imf_judge_drift_score(comm, jm, p, champ, b, oldx, fresh, newest), out);
  IMF_TRY(imf_judge_user_scores(comm, jm, p, champ, b, oldx, NULL, champ->nitems, sa), out);
  imf_ease_destroy(&b);
  IMF_TRY(imf_ease_to_columns(state, &b), out);
  IMF_TRY(imf_judge_user_scores(comm, jm, p, chall, b, newx, NULL, champ->nitems, sb), out);
  IMF_TRY(imf_judge_pair_scores(comm, p, sa, sb, j), out);
out:
  imf_free(&sa);
  imf_free(&sb);
  imf_ease_destroy(&b);
  return st;
}

/* Collective: the ranking judgement of a factor-model challenger (jm a ranking metric) on the
 * standing holdout of the champion's items (the users' current training items never ranked). */
static imf_status rank_judge(MPI_Comm comm, const imf_judge_metric *jm, const imf_partition *p, const imf_model *champ,
                             const imf_model *chall, imf_judgement *j) {
  int64_t nloc = p->by_user.hi - p->by_user.lo;
  double *sa = NULL, *sb = NULL;
  imf_status st = imf_alloc(&sa, (size_t)(nloc ? nloc : 1), sizeof *sa);
  if (st == IMF_OK) st = imf_alloc(&sb, (size_t)(nloc ? nloc : 1), sizeof *sb);
  IMF_TRY(imf_agree(comm, st), out);
  IMF_TRY(imf_judge_user_scores(comm, jm, p, champ, NULL, NULL, NULL, champ->nitems, sa), out);
  IMF_TRY(imf_judge_user_scores(comm, jm, p, chall, NULL, NULL, NULL, champ->nitems, sb), out);
  IMF_TRY(imf_judge_pair_scores(comm, p, sa, sb, j), out);
out:
  imf_free(&sa);
  imf_free(&sb);
  return st;
}

/* ------------------------------------------------------------------------------ reading */

/* The whole store, every rank its user range, into a partition (once). */
static imf_status load_full(MPI_Comm comm, imf_store *s, int64_t nu, int64_t ni, double hfrac, uint64_t hseed,
                            const imf_implicit_opts *io, imf_partition **part, double *secs) {
  if (*part) return IMF_OK;
  const double t0 = imf_wtime();
  int rank, size;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  imf_ratings local = {0};
  IMF_CHECK(imf_store_read_ratings(s, nu * rank / size, nu * (rank + 1) / size, &local));
  imf_implicit_apply(io, &local); /* an implicit model's positives and confidence (scale.h) */
  imf_status st = imf_partition_build(comm, &local, nu, ni, hfrac, hseed, part);
  imf_ratings_free(&local);
  IMF_CHECK(st);
  *secs += imf_wtime() - t0;
  kill_point("after-read");
  return IMF_OK;
}

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

/* Fold-in that reads only what the new batches touch (update.foldin_read = touched): the
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
static imf_status foldin_touched(MPI_Comm comm, imf_store *s, const imf_model *champ, int64_t seen,
                                 const unsigned char *tu, const unsigned char *ti, int64_t nu, int64_t ni, double hfrac,
                                 uint64_t hseed, double c_sse, int64_t c_n, int64_t c_users, const imf_implicit_opts *io,
                                 imf_model **out, double sse[2], int64_t *n, imf_judgement *jd, int64_t *users_now,
                                 double *read_secs) {
  *out = NULL;
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
  IMF_TRY(imf_store_read_histories(s, mu, nmu, mi, nmi, seen, &uh, &ih), out);
  imf_implicit_history(io, &uh); /* the same positives and values as load_full's partition */
  imf_implicit_history(io, &ih);
  double hist[2] = {(double)uh.ptr[uh.n], (double)ih.ptr[ih.n]};
  double t_read = imf_wtime() - t0;
  *read_secs += t_read;
  kill_point("after-read");
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
    IMF_MPI(MPI_Allreduce(MPI_IN_PLACE, v, 7, MPI_DOUBLE, MPI_SUM, comm));
    IMF_MPI(MPI_Allreduce(MPI_IN_PLACE, &most, 1, MPI_DOUBLE, MPI_MAX, comm));
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
  IMF_TRY(imf_judge_touched(comm, quad, nheld, tu, c_users, jd, users_now), out);
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

/* ------------------------------------------------------------------------------ lineage */

/* Whether version v (attributes ci) was built from the store at store_dir (issue 22): its
 * recorded store digest must be one of the store's states from the batches it has seen on
 * (imf_store_digest_matches); a version without one (older files) passes. Checked before
 * anything is appended. A foreign model is refused (IMF_ERR_INPUT, exit 3) unless `adopt`; then
 * *adopting = 1 and adopt_ids checks, once the model is read, that its ids are the store's
 * first ids in the same order (the only way its rows can mean the store's users and items).
 * Collective. */
static imf_status check_lineage(MPI_Comm comm, const imf_ckpt_info *ci, int64_t v, const char *store_dir,
                                const char *model_dir, int adopt, int *adopting) {
  *adopting = 0;
  imf_store *s = NULL;
  imf_status st = imf_store_open(comm, store_dir, IMF_STORE_READ, 0, &s);
  int ok = 1;
  int64_t nb = 0;
  if (st == IMF_OK) {
    nb = imf_store_nbatches(s);
    ok = !ci->store_digest[0] || imf_store_digest_matches(s, ci->batches_seen, ci->store_digest);
  }
  imf_store_close(&s);
  if (st == IMF_OK && !ok) {
    if (adopt) {
      *adopting = 1;
      imf_warn("--adopt: version %lld of %s was not built from %s (its store digest %.16s... is none of the store's "
               "states): adopted, if its ids are the store's first ids", (long long)v, model_dir, store_dir,
               ci->store_digest);
    } else
      st = imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__,
                         "version %lld of %s was not built from %s: its recorded store digest %.16s... is none of "
                         "the store's states from batch %lld to %lld; nothing was changed (`incremf update --adopt` "
                         "takes such a model over when its user and item ids are the store's first ids, in order)",
                         (long long)v, model_dir, store_dir, ci->store_digest, (long long)ci->batches_seen,
                         (long long)nb);
  }
  return imf_agree(comm, st);
}

/* --adopt: the model's ids (meta) must be the store's first ids, in order. Local (the maps and
 * the version's lists are the same on every rank). */
static imf_status adopt_ids(const imf_ckpt_meta *meta, const imf_idmap *users, const imf_idmap *items,
                            const imf_model *m) {
  const imf_idlist *l[2] = {&meta->users, &meta->items};
  const imf_idmap *map[2] = {users, items};
  const int64_t n[2] = {m->nusers, m->nitems};
  static const char *const side[2] = {"user", "item"};
  for (int k = 0; k < 2; k++) {
    if (l[k]->n != n[k] || imf_idmap_size(map[k]) < n[k])
      IMF_FAIL(IMF_ERR_INPUT, "--adopt: the version's %s ids (%lld) cannot be matched to the store's (%lld)", side[k],
               (long long)l[k]->n, (long long)imf_idmap_size(map[k]));
    for (int64_t j = 0; j < n[k]; j++) {
      size_t len = 0;
      const char *id = imf_idmap_get(map[k], j, &len);
      int64_t a = l[k]->off[j], b = l[k]->off[j + 1];
      if ((size_t)(b - a) != len || memcmp(id, l[k]->blob + a, len) != 0)
        IMF_FAIL(IMF_ERR_INPUT, "--adopt: %s %lld of the version is '%.*s' but the store's is '%.*s': the numbering "
                 "differs, the model cannot be adopted", side[k], (long long)j, (int)(b - a), l[k]->blob + a,
                 (int)len, id);
    }
  }
  return IMF_OK;
}

/* ------------------------------------------------------------------------------ update */

imf_status imf_update(MPI_Comm comm, const imf_config *cfg, const char *store_dir, const char *model_dir,
                      const imf_update_opts *o, imf_update_report *rep) {
  imf_status st = IMF_OK;
  imf_modeldir *md = NULL;
  imf_store *s = NULL;
  imf_model *champ = NULL, *chall = NULL;
  imf_ease *ease_state = NULL; /* EASE: the challenger's Gram matrix and B, stored with it */
  imf_ease_rows ease_old = {0}, ease_new = {0}; /* EASE: the champion's and challenger's X rows */
  imf_ckpt_meta cmeta = {0}, meta = {0};
  imf_config *cfgc = NULL;
  imf_idmap *users = NULL, *items = NULL;
  imf_ratings local = {0}, fresh = {0}, one = {0};
  imf_partition *part = NULL;
  unsigned char *tu = NULL, *ti = NULL;
  imf_registry_record *hist = NULL;
  int64_t nhist = 0;
  double hold_sse = NAN; /* the written version's holdout SSE and count (registry) */
  int64_t hold_n = 0;
  int rank;
  MPI_Comm_rank(comm, &rank);
  memset(rep, 0, sizeof *rep);
  rep->champion_rmse = rep->challenger_rmse = rep->champion_new_rmse = rep->challenger_new_rmse = NAN;
  rep->newest_rmse = rep->drift_baseline = NAN;
  rep->champion_score = rep->challenger_score = NAN;
  rep->diff_mean = rep->diff_lo = rep->diff_hi = rep->newest_score = NAN;
  imf_judge_metric jm;
  memset(&jm, 0, sizeof jm);
  int64_t hold_users = -1; /* the written version's held-out users (registry, RMSE judgements) */
  double t0 = imf_wtime();

  const char *req = o->strategy ? o->strategy : imf_cfg_str(cfg, "update.strategy");
  int want = parse_strategy(req);
  if (want < 0) IMF_FAIL(IMF_ERR_USAGE, "unknown update strategy '%s' (fold-in, warm, retrain or auto)", req);
  snprintf(rep->requested, sizeof rep->requested, "%s", req);
  double tol = imf_cfg_double(cfg, "update.tolerance"), share_max = imf_cfg_double(cfg, "update.auto_share");
  double drift_thr = imf_cfg_double(cfg, "update.drift_threshold");
  int64_t window = imf_cfg_int(cfg, "update.drift_window"), warm_every = imf_cfg_int(cfg, "update.auto_warm_every");

  /* One writer: the model directory's lock for the whole update (append takes the store's). */
  IMF_TRY(imf_modeldir_open(comm, model_dir, 0, 1, o->break_lock, &md), out);
  IMF_TRY(imf_stop_point(comm, "update", "before it began (nothing was changed)"), out); /* safe points: exit 75, lock released */
  int adopting = 0;
  {
    /* From the current version's attributes, before the store is touched: update.metric against
     * the model type, an EASE version must carry its state (versions written before it was
     * stored do not), and the version must belong to the store (check_lineage). Errors reading
     * it (no version yet, ...) are reported by the full read below. */
    char cp[4400];
    int64_t v = 0;
    imf_ckpt_info ci;
    memset(&ci, 0, sizeof ci);
    int no_gram = 0, have = 0;
    if (imf_modeldir_current(md, cp, sizeof cp, &v) == IMF_OK && imf_checkpoint_info(cp, &ci) == IMF_OK) {
      have = 1;
      no_gram = ci.type == IMF_MODEL_EASE && !ci.ease_has_gram && !ci.ease_has_b; /* no EASE state at all */
      imf_model stub;
      memset(&stub, 0, sizeof stub);
      stub.type = ci.type;
      if (imf_judge_metric_for(cfg, &stub, &jm) != IMF_OK) {
        imf_ckpt_info_free(&ci);
        IMF_TRY(IMF_ERR_USAGE, out);
      }
    }
    imf_err_clear();
    if (no_gram) {
      imf_ckpt_info_free(&ci);
      IMF_TRY(imf_err_raise(IMF_ERR_USAGE, __FILE__, __LINE__,
                            "%s holds an EASE version without its Gram matrix (written before incremf stored it): "
                            "retrain it once with `incremf train --set model.type=ease`", model_dir), out);
    }
    st = have ? check_lineage(comm, &ci, v, store_dir, model_dir, o->adopt, &adopting) : IMF_OK;
    imf_ckpt_info_free(&ci);
    IMF_TRY(st, out);
  }
  if (o->input) {
    const double ta = imf_wtime();
    imf_ingest_report irep;
    IMF_TRY(imf_append(comm, cfg, store_dir, o->input, NULL, &irep), out);
    rep->appended_batch = irep.batch;
    imf_info("appended %s as batch %lld (%lld ratings)", o->input, (long long)irep.batch, (long long)irep.stored);
    rep->append_seconds = imf_wtime() - ta;
    kill_point("after-append");
  }
  IMF_TRY(imf_stop_point(comm, "update", o->input ? "after the append (the batch is in the store, the model directory unchanged)"
                                                  : "before reading (the model directory is unchanged)"), out);
  const double tl = imf_wtime();
  char cpath[4400];
  IMF_TRY(imf_modeldir_current(md, cpath, sizeof cpath, &rep->parent), out);
  IMF_TRY(imf_checkpoint_read(comm, cpath, &champ, &cmeta), out);
  const int is_ease = champ->type == IMF_MODEL_EASE;
  IMF_TRY(imf_judge_metric_for(cfg, champ, &jm), out);
  const int ranking = jm.kind != IMF_JUDGE_RMSE;
  snprintf(rep->metric, sizeof rep->metric, "%s", jm.name);
  /* EASE: the model is a handle; a version of the replicated form drops its arrays here */
  if (is_ease) IMF_TRY(imf_agree(comm, imf_ease_handle(champ)), out);
  IMF_TRY(imf_store_open(comm, store_dir, IMF_STORE_READ, 0, &s), out);
  if (ranking) IMF_TRY(imf_agree(comm, imf_judge_relevance_threshold(cfg, champ, s, &jm.threshold)), out);
  /* an adopted model has seen none of this store's batches that can be checked: all are new */
  int64_t nb = imf_store_nbatches(s), seen = adopting ? 0 : cmeta.batches_seen;
  if (adopting)
    note_add(rep->note, sizeof rep->note, "adopted: built from another store, every batch of %s folded in", store_dir);
  rep->current = rep->parent;
  rep->batches_seen = seen;
  if (seen > nb)
    IMF_TRY(imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__,
                          "version %lld has seen %lld batches but %s has only %lld: is this the store it was trained on?",
                          (long long)rep->parent, (long long)seen, store_dir, (long long)nb), out);
  if (seen == nb) {
    snprintf(rep->decision, sizeof rep->decision, "up-to-date");
    imf_info("version %lld has seen all %lld batches of %s: nothing to update", (long long)rep->parent, (long long)nb,
             store_dir);
    rep->seconds = imf_wtime() - t0;
    goto out;
  }
  rep->new_batches = nb - seen;
  IMF_TRY(imf_config_create(&cfgc), out);
  IMF_TRY(imf_config_load_string(cfgc, cmeta.config ? cmeta.config : "", cpath), out);
  imf_implicit_opts io; /* from the champion's recorded configuration, never the command line */
  IMF_TRY(imf_agree(comm, imf_implicit_opts_from(cfgc, &io)), out);

  /* Data and the standing holdout. */
  IMF_TRY(imf_idmap_create(&users), out);
  IMF_TRY(imf_idmap_create(&items), out);
  IMF_TRY(imf_store_load_idmaps(s, users, items), out);
  int64_t nu = imf_store_nusers(s), ni = imf_store_nitems(s);
  if (adopting) IMF_TRY(adopt_ids(&cmeta, users, items, champ), out);
  if (champ->nusers > nu || champ->nitems > ni)
    IMF_TRY(imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__, "version %lld has more users or items than %s",
                          (long long)rep->parent, store_dir), out);
  double hfrac = imf_cfg_double(cfgc, "model.validation_fraction");
  uint64_t hseed = (uint64_t)imf_cfg_int(cfgc, "model.seed");
  const int store_holdout = imf_store_holdout(s, &hfrac, &hseed);
  if (!store_holdout && !(hfrac > 0))
    imf_warn("%s has no standing holdout (prepare with holdout.fraction > 0): champion and challenger cannot be "
             "compared, the challenger is promoted unjudged", store_dir);
  /* The whole store (every rank its user range) is read into a partition only when a strategy
   * needs it: warm, retrain, EASE, or fold-in with update.foldin_read = full (or without the
   * indexes and the cached holdout error the touched read needs; see foldin_touched). */

  /* The new batches: rows they touch, the champion's error on them (drift), their holdout. */
  IMF_TRY(imf_alloc(&tu, (size_t)(nu ? nu : 1), 1), out);
  IMF_TRY(imf_alloc(&ti, (size_t)(ni ? ni : 1), 1), out);
  double sums[3] = {0, 0, 0}; /* champion sq. error on known rows, their count, new ratings */
  for (int64_t k = seen + 1; k <= nb; k++) {
    IMF_TRY(imf_store_read_batch(s, k, &one), out);
    /* an implicit model sees the batch's positives only, with their training values (a
     * rating below model.positive_threshold is as if it were not there: it touches no row) */
    imf_implicit_apply(&io, &one);
    IMF_TRY(imf_ratings_reserve(&fresh, fresh.n + one.n + 1), out);
    for (int64_t j = 0; j < one.n; j++) {
      int32_t u = one.user[j], i = one.item[j];
      tu[u] = ti[i] = 1;
      if (u < champ->nusers && i < champ->nitems && !ranking) { /* ranking judgements: drift below */
        double e = (double)one.value[j] - imf_model_predict(champ, u, i);
        sums[0] += e * e;
        sums[1] += 1;
      }
      if (hfrac > 0 && imf_is_holdout(hseed, hfrac, u, i)) {
        fresh.user[fresh.n] = u;
        fresh.item[fresh.n] = i;
        fresh.value[fresh.n] = one.value[j];
        fresh.time[fresh.n] = one.time[j];
        fresh.n++;
      }
    }
    sums[2] += (double)one.n;
    imf_ratings_free(&one);
  }
  IMF_MPI(MPI_Allreduce(MPI_IN_PLACE, tu, (int)nu, MPI_UNSIGNED_CHAR, MPI_BOR, comm));
  IMF_MPI(MPI_Allreduce(MPI_IN_PLACE, ti, (int)ni, MPI_UNSIGNED_CHAR, MPI_BOR, comm));
  IMF_MPI(MPI_Allreduce(MPI_IN_PLACE, sums, 3, MPI_DOUBLE, MPI_SUM, comm));
  rep->new_ratings = (int64_t)sums[2];
  rep->newest_rmse = sums[1] > 0 ? sqrt(sums[0] / sums[1]) : NAN;

  /* Drift: the champion's error on the newest data against the history of that error. */
  IMF_TRY(imf_registry_load(comm, model_dir, &hist, &nhist), out);
  rep->load_seconds = imf_wtime() - tl;
  if (is_ease) {
    /* EASE: any strategy is "update the Gram matrix and re-solve"; judged by NDCG on the holdout */
    double tb = imf_wtime();
    int64_t changed = 0, entries = 0;
    IMF_TRY(load_full(comm, s, nu, ni, hfrac, hseed, &io, &part, &rep->read_seconds), out);
    char how[16] = "";
    IMF_TRY(ease_build(comm, cfg, cpath, part, champ, &chall, &ease_state, &ease_old, &ease_new, &changed, &entries,
                       how, sizeof how), out);
    rep->build_seconds = imf_wtime() - tb;
    snprintf(rep->strategy, sizeof rep->strategy, "gram");
    note_add(rep->note, sizeof rep->note,
             "EASE: the rows of %lld changed users (rank %lld) applied by %s (requested %s: every strategy does "
             "this for EASE)", (long long)changed, (long long)entries, how, req);
    const char *why = NULL;
    imf_judgement jd;
    IMF_TRY(imf_judge_test_hook(champ, chall, ease_state), out);
    IMF_TRY(ease_judge(comm, &jm, cpath, part, champ, &ease_old, chall, ease_state, &ease_new, &fresh, &jd,
                       &rep->newest_score, &why), out);
    imf_judge_drift(hist, nhist, &jm, window, drift_thr, rep);
    rep->eval_n = part->nnz_holdout;
    if (!why) why = unfit(chall, chall->nhistory);
    int worse = 0, promote = imf_judge_verdict(&jm, &jd, tol, why, &worse);
    imf_judge_report("gram", &jm, &jd, promote, why, rep);
    if (why) note_add(rep->note, sizeof rep->note, "never promoted: %s", why);
    else if (worse)
      note_add(rep->note, sizeof rep->note, "%s %.5f worse than the champion's %.5f beyond the tolerance", rep->metric,
               rep->challenger_score, rep->champion_score);
    snprintf(rep->decision, sizeof rep->decision, "%s", promote ? "promoted" : "rejected");
  } else {
    int64_t foldins = 0, counting = 1;
    for (int64_t j = nhist - 1; j >= 0; j--) {
      if (strcmp(hist[j].event, "update") && strcmp(hist[j].event, "train")) continue;
      if (counting) {
        if (!strcmp(hist[j].event, "update") && !strcmp(hist[j].strategy, "fold-in") &&
            !strcmp(hist[j].decision, "promoted"))
          foldins++;
        else if (!strcmp(hist[j].decision, "promoted") || !strcmp(hist[j].event, "train"))
          counting = 0;
      }
    }
    if (ranking) { /* a ranking judgement ranks every held-out user's items: the whole store */
      const double tr = imf_wtime();
      IMF_TRY(load_full(comm, s, nu, ni, hfrac, hseed, &io, &part, &rep->read_seconds), out);
      rep->build_seconds += imf_wtime() - tr;
      IMF_TRY(imf_judge_drift_score(comm, &jm, part, champ, NULL, NULL, &fresh, &rep->newest_score), out);
    }
    imf_judge_drift(hist, nhist, &jm, window, drift_thr, rep);
    /* The strategy to start with. */
    int strat = want == 3 ? S_FOLD : want;
    /* Fold-in from the touched rows' histories alone needs the per-item index in every batch
     * (checked when reading) and the champion's holdout error recorded for the data it has
     * seen (its registry record: holdout_sse, holdout_n, with the store's forgotten users then
     * as now); otherwise, or with update.foldin_read = full, the whole store is read. */
    int touched = 0;
    double c_sse = NAN;
    int64_t c_n = 0;
    int64_t c_users = -1;
    /* (the test hook changes the challenger after it is built: judged on the whole store) */
    if (!strcmp(imf_cfg_str(cfg, "update.foldin_read"), "touched") && champ->type != IMF_MODEL_BPMF && store_holdout &&
        !ranking && !getenv("IMF_TEST_CHALLENGER")) {
      const imf_registry_record *cr = imf_registry_find(hist, nhist, rep->parent);
      if (cr && isfinite(cr->holdout_sse) && cr->batches_seen == seen && cr->holdout_users >= 0 &&
          cr->holdout_forgotten == imf_store_nforgotten(s)) {
        touched = 1;
        c_sse = cr->holdout_sse;
        c_n = cr->holdout_n;
        c_users = cr->holdout_users;
      } else
        imf_info("fold-in reads the whole store: version %lld has no recorded holdout error for the data it has seen",
                 (long long)rep->parent);
    }
    if (!touched || want == S_WARM || want == S_RETRAIN) {
      const double tr = imf_wtime(); /* the read counts as building, as inside the loop below */
      IMF_TRY(load_full(comm, s, nu, ni, hfrac, hseed, &io, &part, &rep->read_seconds), out);
      rep->build_seconds += imf_wtime() - tr;
    }
    double total_ratings = 0;
    if (part) total_ratings = (double)(part->nnz_train + part->nnz_holdout);
    else {
      imf_store_info info;
      IMF_TRY(imf_store_get_info(s, &info), out);
      total_ratings = (double)info.ratings; /* the manifest's effective count (forgotten users included) */
    }
    double share = (double)rep->new_ratings / (total_ratings > 0 ? total_ratings : 1);
    if (want == 3) {
      if (share > share_max) {
        strat = S_WARM;
        note_add(rep->note, sizeof rep->note, "auto: new data is %.1f%% of all ratings > update.auto_share %.1f%%: warm",
                 100 * share, 100 * share_max);
      }
      if (rep->drift && strat < S_WARM) {
        strat = S_WARM;
        note_add(rep->note, sizeof rep->note, "auto: drift detected: warm");
      }
      if (warm_every > 0 && foldins + 1 >= warm_every && strat < S_WARM) {
        strat = S_WARM;
        note_add(rep->note, sizeof rep->note, "auto: %lld fold-ins in a row (update.auto_warm_every = %lld): warm",
                 (long long)foldins, (long long)warm_every);
      }
    }
    if (strat == S_FOLD && champ->type == IMF_MODEL_BPMF) {
      strat = S_WARM;
      note_add(rep->note, sizeof rep->note, "BPMF has no fold-in: the chain continues (warm)");
    }
    if (strat != S_RETRAIN && imf_baseline_type(champ->type)) {
      strat = S_RETRAIN;
      note_add(rep->note, sizeof rep->note, "%s: every strategy retrains (exact and cheap)", imf_model_type_name(champ->type));
    }
    build_ctx bc = {comm, cfgc, NULL, champ, tu, ti, imf_cfg_int(cfg, "update.warm_sweeps")};
    if (bc.warm_sweeps < 1) bc.warm_sweeps = 1;
    const char *why = NULL;
    int promote = 0;
    for (;;) {
      double tb = imf_wtime();
      imf_model_destroy(&chall);
      imf_info("building the challenger by %s from version %lld (%lld new batches, %lld new ratings)", SNAME[strat],
               (long long)rep->parent, (long long)rep->new_batches, (long long)rep->new_ratings);
      double sse[2] = {NAN, NAN};
      int64_t hn = 0, husers = -1;
      imf_judgement jd;
      if (strat == S_FOLD && touched) {
        st = foldin_touched(comm, s, champ, seen, tu, ti, nu, ni, hfrac, hseed, c_sse, c_n, c_users, &io, &chall, sse,
                            &hn, &jd, &husers, &rep->read_seconds);
        if (st == IMF_ERR_NOTFOUND) { /* a batch written before the per-item index: read it all */
          imf_info("fold-in reads the whole store: %s", imf_last_error());
          imf_err_clear();
          st = IMF_OK;
          touched = 0;
        }
        IMF_TRY(st, out);
      }
      if (!chall) {
        IMF_TRY(load_full(comm, s, nu, ni, hfrac, hseed, &io, &part, &rep->read_seconds), out);
        bc.part = part;
        IMF_TRY(build(&bc, strat, &chall), out);
        IMF_TRY(imf_judge_test_hook(champ, chall, NULL), out);
        if (ranking) IMF_TRY(rank_judge(comm, &jm, part, champ, chall, &jd), out);
        else IMF_TRY(imf_judge_rmse(comm, part, champ, chall, &jd, sse, &hn, &husers), out);
      }
      rep->build_seconds += imf_wtime() - tb;
      snprintf(rep->strategy, sizeof rep->strategy, "%s", SNAME[strat]);
      rep->eval_n = ranking ? part->nnz_holdout : hn;
      hold_sse = sse[1];
      hold_n = hn;
      hold_users = husers;
      why = unfit(chall, strat == S_RETRAIN ? 0 : champ->nhistory);
      int worse = 0;
      promote = imf_judge_verdict(&jm, &jd, tol, why, &worse);
      imf_judge_report(SNAME[strat], &jm, &jd, promote, why, rep);
      if (promote || want != 3 || strat == S_RETRAIN) break;
      note_add(rep->note, sizeof rep->note, "auto: %s challenger %s (%s %.5f vs %.5f): %s", SNAME[strat],
               why ? why : "worse than the champion beyond the tolerance", rep->metric, rep->challenger_score,
               rep->champion_score, SNAME[strat + 1]);
      imf_warn("auto: escalating from %s to %s", SNAME[strat], SNAME[strat + 1]);
      strat++;
    }
    if (why) note_add(rep->note, sizeof rep->note, "never promoted: %s", why);
    snprintf(rep->decision, sizeof rep->decision, "%s", promote ? "promoted" : "rejected");
  }
  /* The newest held-out ratings alone (reported; the decision used the whole holdout). Ranking
   * judgements (EASE, iALS, ...): their scores are not ratings, no RMSE. */
  if (!ranking) {
    double v[3] = {0, 0, (double)fresh.n};
    for (int64_t j = 0; j < fresh.n; j++) {
      double a = (double)fresh.value[j] - imf_model_predict(champ, fresh.user[j], fresh.item[j]);
      double b = (double)fresh.value[j] - imf_model_predict(chall, fresh.user[j], fresh.item[j]);
      v[0] += a * a;
      v[1] += b * b;
    }
    IMF_MPI(MPI_Allreduce(MPI_IN_PLACE, v, 3, MPI_DOUBLE, MPI_SUM, comm));
    rep->eval_new_n = (int64_t)v[2];
    if (v[2] > 0) {
      rep->champion_new_rmse = sqrt(v[0] / v[2]);
      rep->challenger_new_rmse = sqrt(v[1] / v[2]);
    }
  }

  /* Commit: version file, then its record, then (promoted only) CURRENT. */
  const double tw = imf_wtime();
  meta.config = cmeta.config ? strdup(cmeta.config) : NULL;
  snprintf(meta.store_digest, sizeof meta.store_digest, "%s", imf_store_digest(s));
  meta.batches_seen = nb;
  meta.ease = ease_state;
  if (is_ease) meta.ease_x = &ease_new;
  IMF_TRY(imf_store_user_ids(s, users, &meta.users), out);
  IMF_TRY(imf_idmap_tail(items, 0, &meta.items), out);
  IMF_TRY(imf_stop_point(comm, "update", "before writing its version (the model directory is unchanged)"), out);
  IMF_TRY(imf_modeldir_write_version(md, chall, &meta, &rep->version), out);
  kill_point("after-version");
  IMF_TRY(imf_agree(comm, fault_point("update-after-version")), out);
  {
    imf_registry_record rec;
    imf_registry_record_init(&rec);
    snprintf(rec.event, sizeof rec.event, "update");
    rec.version = rep->version;
    rec.parent = rep->parent;
    rec.batches_seen = nb;
    snprintf(rec.requested, sizeof rec.requested, "%s", rep->requested);
    snprintf(rec.strategy, sizeof rec.strategy, "%s", rep->strategy);
    snprintf(rec.decision, sizeof rec.decision, "%s", rep->decision);
    rec.champion_rmse = rep->champion_rmse;
    rec.challenger_rmse = rep->challenger_rmse;
    rec.newest_rmse = rep->newest_rmse;
    rec.drift_baseline = rep->drift_baseline;
    rec.drift = rep->drift;
    rec.new_batches = rep->new_batches;
    rec.new_ratings = rep->new_ratings;
    rec.eval_n = rep->eval_n;
    rec.seconds = imf_wtime() - t0;
    if (!realpath(store_dir, rec.store)) snprintf(rec.store, sizeof rec.store, "%s", store_dir);
    snprintf(rec.note, sizeof rec.note, "%s", rep->note);
    snprintf(rec.metric, sizeof rec.metric, "%s", rep->metric);
    rec.champion_score = rep->champion_score;
    rec.challenger_score = rep->challenger_score;
    rec.diff_mean = rep->diff_mean;
    rec.diff_lo = rep->diff_lo;
    rec.diff_hi = rep->diff_hi;
    rec.diff_users = rep->diff_users;
    rec.newest_score = rep->newest_score;
    if (!ranking && store_holdout && isfinite(hold_sse)) {
      rec.holdout_sse = hold_sse;
      rec.holdout_n = hold_n;
      rec.holdout_users = hold_users;
      rec.holdout_forgotten = imf_store_nforgotten(s);
    }
    IMF_TRY(imf_registry_append(comm, model_dir, &rec), out);
  }
  kill_point("after-registry");
  IMF_TRY(imf_agree(comm, fault_point("update-before-current")), out);
  if (!strcmp(rep->decision, "promoted")) {
    IMF_TRY(imf_modeldir_set_current(md, rep->version), out);
    rep->current = rep->version;
    kill_point("after-current");
    imf_info("promoted: version %lld (%s) is current (holdout %s %.5f, champion %.5f)", (long long)rep->version,
             rep->strategy, rep->metric, rep->challenger_score, rep->champion_score);
  } else {
    imf_warn("champion kept: version %lld stays current; the challenger is kept as rejected version %lld (%s)",
             (long long)rep->parent, (long long)rep->version, rep->note[0] ? rep->note : "worse beyond the tolerance");
  }
  /* EASE: P files are kept for CURRENT and the newest version only (older ones refactorise) */
  if (is_ease && imf_modeldir_gc_ease(md, 0, NULL) != IMF_OK) { /* the update is done: only warn */
    imf_warn("EASE P files not collected: %s", imf_last_error());
    imf_err_clear();
  }
  rep->write_seconds = imf_wtime() - tw;
  rep->seconds = imf_wtime() - t0;
  imf_info("update took %.2f s: append %.2f, load %.2f, read ratings %.2f, solve and judge %.2f, write %.2f",
           rep->seconds, rep->append_seconds, rep->load_seconds, rep->read_seconds,
           rep->build_seconds - rep->read_seconds, rep->write_seconds);
out:
  imf_free(&tu);
  imf_free(&ti);
  imf_free(&hist);
  imf_ratings_free(&local);
  imf_ratings_free(&fresh);
  imf_ratings_free(&one);
  imf_partition_destroy(&part);
  imf_idmap_destroy(&users);
  imf_idmap_destroy(&items);
  imf_config_destroy(&cfgc);
  imf_ckpt_meta_free(&cmeta);
  imf_ckpt_meta_free(&meta);
  imf_model_destroy(&champ);
  imf_model_destroy(&chall);
  imf_ease_destroy(&ease_state);
  imf_ease_rows_free(&ease_old);
  imf_ease_rows_free(&ease_new);
  imf_store_close(&s);
  imf_modeldir_close(&md);
  return st;
}
