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
 * rank there; IMF_TEST_CHALLENGER=worse|same|nan perturbs the challenger (imf_judge_test_hook).
 *
 * imf_update runs that sequence as stages over one state (upd): scan_* (settings, lock, lineage,
 * append, champion, new batches), policy_* (the read plan and the strategy: the rule itself is
 * update_policy.c), build_and_judge (the fold-in lives in foldin.c; warm and retrain are the
 * trainer), judge_newest, commit (version, record, CURRENT). Factor rows move between ranks only
 * through exchange.c. */
#include "update.h"
#include "baseline.h"
#include "checkpoint.h"
#include "config.h"
#include "ease.h"
#include "error.h"
#include "evaluate.h"
#include "exchange.h"
#include "foldin.h"
#include "idmap.h"
#include "itemsums.h"
#include "judge.h"
#include "log.h"
#include "modelblock.h"
#include "modeldir.h"
#include "registry.h"
#include "rowsolve.h"
#include "scale.h"
#include "store.h"
#include "train.h"
#include "update_policy.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* A champion's configuration may say model.lambda or model.lambda_bias = auto: that meant what
 * the binary that trained it gave it (the defaults were re-chosen on 2026-12-07), and the model
 * records the values. Warm and retrain challengers are built from this configuration, so they
 * take the recorded values, not what auto means to this binary. */
static imf_status pin_champion_auto(imf_config *c, const imf_model *champ) {
  const struct {
    const char *key;
    double v;
  } pin[] = {{"model.lambda", champ->lambda}, {"model.lambda_bias", champ->lambda_bias}};
  for (size_t j = 0; j < sizeof pin / sizeof pin[0]; j++) {
    if (strcmp(imf_cfg_str(c, pin[j].key), "auto") || !isfinite(pin[j].v)) continue;
    char set[96];
    snprintf(set, sizeof set, "%s=%.17g", pin[j].key, pin[j].v);
    IMF_CHECK(imf_config_set(c, set));
  }
  return IMF_OK;
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
  imf_partition *part;        /* (an out-block trainer rewrites its columns while it lives) */
  const imf_model *champ;
  const unsigned char *tu, *ti;
  int64_t warm_sweeps;
  imf_update_report *rep;     /* where the sweeps' exchange and bytes go */
} build_ctx;

/* Sweeps of the trainer from `start` (same shape as the data: exact resume, so a BPMF chain
 * continues from the champion's last sample) or from scratch (start == NULL). */
static imf_status run_trainer(build_ctx *b, const imf_model *start, imf_model **out) {
  *out = NULL;
  imf_status st = IMF_OK;
  imf_config *c = NULL;
  imf_trainer *t = NULL;
  char *text = imf_config_dump(b->cfg);
  if (!text) IMF_TRY(IMF_RAISE(IMF_ERR_NOMEM, "out of memory"), out);
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
  { /* how the sweeps ran, for update --json (as train reports it) */
    const int ob = imf_trainer_outblock_rows(t) > 0, sh = imf_trainer_shared_bytes(t) > 0;
    snprintf(b->rep->exchange, sizeof b->rep->exchange, "%s",
             ob ? (sh ? "node-shared+outblock" : "outblock") : sh ? "node-shared" : "replicated");
    b->rep->nodes = imf_trainer_layout(t)->nnodes;
    imf_trainer_traffic(t, b->rep->sweep_bytes);
  }
  /* replicated: the judge and the version writer score it whole (dist.exchange = outblock
   * trains in blocks and gathers here) */
  IMF_TRY(imf_model_gather(b->comm, imf_trainer_model(t), out), out);
out:
  imf_trainer_destroy(&t);
  imf_config_destroy(&c);
  return st;
}

static imf_status build(build_ctx *b, imf_update_strategy strategy, imf_model **out) {
  *out = NULL;
  if (imf_baseline_type(b->champ->type)) /* pop, bias: every strategy is an exact refit (cheap) */
    return imf_baseline_fit(b->comm, b->cfg, b->part, out);
  if (strategy == IMF_UPDATE_RETRAIN) return run_trainer(b, NULL, out);
  imf_model *f = NULL;
  IMF_CHECK(imf_foldin_model(b->comm, b->part, b->champ, b->tu, b->ti, &f));
  if (strategy == IMF_UPDATE_FOLD_IN) {
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
  const int rc = MPI_Allreduce(&g, changed, 1, MPI_INT64_T, MPI_SUM, comm);
  if (rc != MPI_SUCCESS) IMF_TRY(IMF_MPI_RAISE(rc, "MPI_Allreduce (changed users)"), out);
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
  IMF_CHECK(imf_partition_build_consume(comm, &local, nu, ni, hfrac, hseed, part)); /* frees local */
  *secs += imf_wtime() - t0;
  kill_point("after-read");
  return IMF_OK;
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
      st = IMF_RAISE(IMF_ERR_INPUT, "version %lld of %s was not built from %s: its recorded store digest %.16s... is none of "
                         "the store's states from batch %lld to %lld; nothing was changed (`incremf update --adopt` "
                         "takes such a model over when its user and item ids are the store's first ids, in order)",
                         (long long)v, model_dir, store_dir, ci->store_digest, (long long)ci->batches_seen,
                         (long long)nb);
  }
  return imf_agree(comm, st);
}

/* --adopt: the model's ids (meta) must be the store's first ids, in order. Local (the maps and
 * the version's lists are the same on every rank). */
static imf_status adopt_ids(const imf_ckpt_meta *meta, const imf_idlist *users, const imf_idlist *items,
                            const imf_model *m) {
  const imf_idlist *l[2] = {&meta->users, &meta->items}, *st[2] = {users, items};
  const int64_t n[2] = {m->nusers, m->nitems};
  static const char *const side[2] = {"user", "item"};
  for (int k = 0; k < 2; k++) {
    if (l[k]->n != n[k] || st[k]->n < n[k])
      IMF_FAIL(IMF_ERR_INPUT, "--adopt: the version's %s ids (%lld) cannot be matched to the store's (%lld)", side[k],
               (long long)l[k]->n, (long long)st[k]->n);
    for (int64_t j = 0; j < n[k]; j++) {
      const size_t len = (size_t)(st[k]->off[j + 1] - st[k]->off[j]);
      const char *id = st[k]->blob + st[k]->off[j];
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

/* One update's state, passed through the stages: scan (settings, lock, lineage, append,
 * champion, new batches), policy (the strategy, update_policy.h), build and judge (the
 * challenger, escalated under auto), commit (version, record, CURRENT). upd_free releases it. */
typedef struct {
  MPI_Comm comm;
  const imf_config *cfg;
  const char *store_dir, *model_dir;
  const imf_update_opts *o;
  imf_update_report *rep;
  double t0, tl;           /* start of the update, of loading */
  /* settings (update.*) */
  const char *req;
  imf_update_strategy want;
  double tol, share_max, drift_thr;
  int64_t window, warm_every;
  double growth_max;
  /* the champion and the store */
  imf_modeldir *md;
  imf_store *s;
  imf_model *champ, *chall;
  imf_ckpt_meta cmeta, meta;
  imf_config *cfgc;          /* the champion's configuration */
  imf_implicit_opts io;      /* from it, never the command line */
  char cpath[4400];
  imf_judge_metric jm;
  int ranking, is_ease, adopting, store_holdout;
  imf_idlist users, items; /* the store's ids, for the version (no lookups: no maps) */
  int64_t nb, seen, nu, ni;
  double hfrac;
  uint64_t hseed;
  /* the new batches */
  imf_ratings fresh;         /* their held-out ratings */
  unsigned char *tu, *ti;    /* the users and items they touch (replicated) */
  imf_registry_record *hist;
  int64_t nhist;
  imf_partition *part;       /* the whole store, read when a stage needs it (load_full) */
  /* EASE: the challenger's Gram matrix and B, stored with it; the champion's and challenger's X rows */
  imf_ease *ease_state;
  imf_ease_rows ease_old, ease_new;
  /* the challenger's per-item sums (ALS, update.item_sums), written with its version */
  imf_itemsums *chall_sums;
  /* the written version's holdout SSE, count and held-out users (registry, RMSE judgements) */
  double hold_sse;
  int64_t hold_n, hold_users;
} upd;

static void upd_free(upd *u) {
  imf_free(&u->tu);
  imf_free(&u->ti);
  imf_free(&u->hist);
  imf_ratings_free(&u->fresh);
  imf_partition_destroy(&u->part);
  imf_idlist_free(&u->users);
  imf_idlist_free(&u->items);
  imf_config_destroy(&u->cfgc);
  imf_ckpt_meta_free(&u->cmeta);
  imf_ckpt_meta_free(&u->meta);
  imf_model_destroy(&u->champ);
  imf_model_destroy(&u->chall);
  imf_itemsums_destroy(&u->chall_sums);
  imf_ease_destroy(&u->ease_state);
  imf_ease_rows_free(&u->ease_old);
  imf_ease_rows_free(&u->ease_new);
  imf_store_close(&u->s);
  imf_modeldir_close(&u->md);
}

static imf_status upd_load_full(upd *u) {
  return load_full(u->comm, u->s, u->nu, u->ni, u->hfrac, u->hseed, &u->io, &u->part, &u->rep->read_seconds);
}

/* scan: the update.* settings. */
static imf_status scan_settings(upd *u) {
  imf_update_report *rep = u->rep;
  u->req = u->o->strategy ? u->o->strategy : imf_cfg_str(u->cfg, "update.strategy");
  if (!imf_update_strategy_parse(u->req, &u->want))
    IMF_FAIL(IMF_ERR_USAGE, "unknown update strategy '%s' (fold-in, warm, retrain or auto)", u->req);
  snprintf(rep->requested, sizeof rep->requested, "%s", u->req);
  u->tol = imf_cfg_double(u->cfg, "update.tolerance");
  u->share_max = imf_cfg_double(u->cfg, "update.auto_share");
  u->drift_thr = imf_cfg_double(u->cfg, "update.drift_threshold");
  u->window = imf_cfg_int(u->cfg, "update.drift_window");
  u->warm_every = imf_cfg_int(u->cfg, "update.auto_warm_every");
  u->growth_max = imf_cfg_double(u->cfg, "update.auto_warm_growth");
  return IMF_OK;
}

/* scan: from the current version's attributes, before the store is touched: update.metric
 * against the model type, an EASE version must carry its state (versions written before it was
 * stored do not), and the version must belong to the store (check_lineage). Errors reading it
 * (no version yet, ...) are reported by the full read (scan_champion). */
static imf_status scan_precheck(upd *u) {
  char cp[4400];
  int64_t v = 0;
  imf_ckpt_info ci;
  memset(&ci, 0, sizeof ci);
  imf_status st = IMF_OK;
  int no_gram = 0, have = 0;
  if (imf_modeldir_current(u->md, cp, sizeof cp, &v) == IMF_OK && imf_checkpoint_info(cp, &ci) == IMF_OK) {
    have = 1;
    no_gram = ci.type == IMF_MODEL_EASE && !ci.ease_has_gram && !ci.ease_has_b; /* no EASE state at all */
    imf_model stub;
    memset(&stub, 0, sizeof stub);
    stub.type = ci.type;
    if (imf_judge_metric_for(u->cfg, &stub, &u->jm) != IMF_OK) IMF_TRY(IMF_ERR_USAGE, out);
  }
  imf_err_clear();
  if (no_gram)
    IMF_TRY(IMF_RAISE(IMF_ERR_USAGE, "%s holds an EASE version without its Gram matrix (written before incremf stored it): "
                          "retrain it once with `incremf train --set model.type=ease`", u->model_dir), out);
  if (have) st = check_lineage(u->comm, &ci, v, u->store_dir, u->model_dir, u->o->adopt, &u->adopting);
out:
  imf_ckpt_info_free(&ci);
  return st;
}

/* scan: the lock, the precheck and the append (--input). */
static imf_status scan_begin(upd *u) {
  imf_update_report *rep = u->rep;
  IMF_CHECK(scan_settings(u));
  /* One writer: the model directory's lock for the whole update (append takes the store's). */
  IMF_CHECK(imf_modeldir_open(u->comm, u->model_dir, 0, 1, u->o->break_lock, &u->md));
  /* safe points: exit 75, lock released */
  IMF_CHECK(imf_stop_point(u->comm, "update", "before it began (nothing was changed)"));
  IMF_CHECK(scan_precheck(u));
  if (u->o->input) {
    const double ta = imf_wtime();
    imf_ingest_report irep;
    IMF_CHECK(imf_append(u->comm, u->cfg, u->store_dir, u->o->input, NULL, &irep));
    rep->appended_batch = irep.batch;
    imf_info("appended %s as batch %lld (%lld ratings)", u->o->input, (long long)irep.batch, (long long)irep.stored);
    rep->append_seconds = imf_wtime() - ta;
    kill_point("after-append");
  }
  return imf_stop_point(u->comm, "update",
                        u->o->input ? "after the append (the batch is in the store, the model directory unchanged)"
                                    : "before reading (the model directory is unchanged)");
}

/* scan: the champion (CURRENT), its metric, the store, the batches it has not seen (*uptodate:
 * none), its configuration, the id maps and the standing holdout. */
static imf_status scan_champion(upd *u, int *uptodate) {
  imf_update_report *rep = u->rep;
  MPI_Comm comm = u->comm;
  *uptodate = 0;
  u->tl = imf_wtime();
  IMF_CHECK(imf_modeldir_current(u->md, u->cpath, sizeof u->cpath, &rep->parent));
  IMF_CHECK(imf_checkpoint_read(comm, u->cpath, &u->champ, &u->cmeta));
  u->is_ease = u->champ->type == IMF_MODEL_EASE;
  IMF_CHECK(imf_judge_metric_for(u->cfg, u->champ, &u->jm));
  u->ranking = u->jm.kind != IMF_JUDGE_RMSE;
  snprintf(rep->metric, sizeof rep->metric, "%s", u->jm.name);
  /* EASE: the model is a handle; a version of the replicated form drops its arrays here */
  if (u->is_ease) IMF_CHECK(imf_agree(comm, imf_ease_handle(u->champ)));
  IMF_CHECK(imf_store_open(comm, u->store_dir, IMF_STORE_READ, 0, &u->s));
  imf_store_warn_holdout(u->s, u->cfg, u->store_dir);
  if (u->ranking) IMF_CHECK(imf_agree(comm, imf_judge_relevance_threshold(u->cfg, u->champ, u->s, &u->jm.threshold)));
  /* an adopted model has seen none of this store's batches that can be checked: all are new */
  u->nb = imf_store_nbatches(u->s);
  u->seen = u->adopting ? 0 : u->cmeta.batches_seen;
  if (u->adopting)
    imf_update_note_add(rep->note, sizeof rep->note, "adopted: built from another store, every batch of %s folded in",
                        u->store_dir);
  rep->current = rep->parent;
  rep->batches_seen = u->seen;
  if (u->seen > u->nb)
    IMF_FAIL(IMF_ERR_INPUT, "version %lld has seen %lld batches but %s has only %lld: is this the store it was trained on?",
             (long long)rep->parent, (long long)u->seen, u->store_dir, (long long)u->nb);
  if (u->seen == u->nb) {
    snprintf(rep->decision, sizeof rep->decision, "up-to-date");
    imf_info("version %lld has seen all %lld batches of %s: nothing to update", (long long)rep->parent,
             (long long)u->nb, u->store_dir);
    *uptodate = 1;
    return IMF_OK;
  }
  rep->new_batches = u->nb - u->seen;
  IMF_CHECK(imf_config_create(&u->cfgc));
  IMF_CHECK(imf_config_load_string(u->cfgc, u->cmeta.config ? u->cmeta.config : "", u->cpath));
  IMF_CHECK(imf_config_take_run_keys(u->cfgc, u->cfg)); /* dist.*: how this job runs, not the champion's */
  IMF_CHECK(pin_champion_auto(u->cfgc, u->champ));
  IMF_CHECK(imf_agree(comm, imf_implicit_opts_from(u->cfgc, &u->io)));
  /* Data and the standing holdout. */
  /* the ids only name the new version's rows, which rank 0 writes and digests (checkpoint.c) */
  IMF_CHECK(imf_store_load_idlists_root(u->s, &u->users, &u->items));
  u->nu = imf_store_nusers(u->s);
  u->ni = imf_store_nitems(u->s);
  if (u->adopting) {
    int rank = 0;
    MPI_Comm_rank(comm, &rank);
    IMF_CHECK(imf_agree(comm, rank == 0 ? adopt_ids(&u->cmeta, &u->users, &u->items, u->champ) : IMF_OK));
  }
  if (u->champ->nusers > u->nu || u->champ->nitems > u->ni)
    IMF_FAIL(IMF_ERR_INPUT, "version %lld has more users or items than %s", (long long)rep->parent, u->store_dir);
  u->hfrac = imf_cfg_double(u->cfgc, "model.validation_fraction");
  u->hseed = (uint64_t)imf_cfg_int(u->cfgc, "model.seed");
  u->store_holdout = imf_store_holdout(u->s, &u->hfrac, &u->hseed);
  if (!u->store_holdout && !(u->hfrac > 0))
    imf_warn("%s has no standing holdout (prepare with holdout.fraction > 0): champion and challenger cannot be "
             "compared, the challenger is promoted unjudged", u->store_dir);
  /* The whole store (every rank its user range) is read into a partition only when a strategy
   * needs it: warm, retrain, EASE, or fold-in with update.foldin_read = full (or without the
   * indexes and the cached holdout error the touched read needs; see imf_foldin_touched). */
  return IMF_OK;
}

/* scan: read the new batches: the rows they touch (tu, ti), their held-out ratings (fresh), and
 * sums[0], sums[1]: the champion's squared error on the ratings of known rows and their count
 * (RMSE judgements: the drift signal), sums[2]: the new ratings. Local. */
static imf_status scan_read_batches(upd *u, double sums[3]) {
  imf_status st = IMF_OK;
  imf_ratings one = {0};
  for (int64_t k = u->seen + 1; k <= u->nb; k++) {
    IMF_TRY(imf_store_read_batch(u->s, k, &one), out);
    /* an implicit model sees the batch's positives only, with their training values (a
     * rating below model.positive_threshold is as if it were not there: it touches no row) */
    imf_implicit_apply(&u->io, &one);
    IMF_TRY(imf_ratings_reserve(&u->fresh, u->fresh.n + one.n + 1), out);
    for (int64_t j = 0; j < one.n; j++) {
      int32_t a = one.user[j], i = one.item[j];
      u->tu[a] = u->ti[i] = 1;
      if (a < u->champ->nusers && i < u->champ->nitems && !u->ranking) { /* ranking judgements: drift below */
        double e = (double)one.value[j] - imf_model_predict(u->champ, a, i);
        sums[0] += e * e;
        sums[1] += 1;
      }
      if (u->hfrac > 0 && imf_is_holdout(u->hseed, u->hfrac, a, i)) {
        imf_ratings *f = &u->fresh;
        f->user[f->n] = a;
        f->item[f->n] = i;
        f->value[f->n] = one.value[j];
        f->time[f->n] = one.time[j];
        f->n++;
      }
    }
    sums[2] += (double)one.n;
    imf_ratings_free(&one);
  }
out:
  imf_ratings_free(&one);
  return st;
}

/* scan: the new batches (scan_read_batches, then replicated), and the registry (the lineage
 * drift and auto look back on). Collective. */
static imf_status scan_batches(upd *u) {
  imf_update_report *rep = u->rep;
  MPI_Comm comm = u->comm;
  const int64_t nu = u->nu, ni = u->ni;
  IMF_CHECK(imf_alloc(&u->tu, (size_t)(nu ? nu : 1), 1));
  IMF_CHECK(imf_alloc(&u->ti, (size_t)(ni ? ni : 1), 1));
  double sums[3] = {0, 0, 0};
  IMF_CHECK(scan_read_batches(u, sums));
  IMF_MPI(MPI_Allreduce(MPI_IN_PLACE, u->tu, (int)nu, MPI_UNSIGNED_CHAR, MPI_BOR, comm));
  IMF_MPI(MPI_Allreduce(MPI_IN_PLACE, u->ti, (int)ni, MPI_UNSIGNED_CHAR, MPI_BOR, comm));
  IMF_MPI(MPI_Allreduce(MPI_IN_PLACE, sums, 3, MPI_DOUBLE, MPI_SUM, comm));
  rep->new_ratings = (int64_t)sums[2];
  rep->newest_rmse = sums[1] > 0 ? sqrt(sums[0] / sums[1]) : NAN;
  /* Drift: the champion's error on the newest data against the history of that error. */
  IMF_CHECK(imf_registry_load(comm, u->model_dir, &u->hist, &u->nhist));
  rep->load_seconds = imf_wtime() - u->tl;
  return IMF_OK;
}

/* build + judge, EASE: any strategy is "update the Gram matrix and re-solve"; judged by its
 * ranking metric on the holdout. */
static imf_status ease_update(upd *u) {
  imf_update_report *rep = u->rep;
  MPI_Comm comm = u->comm;
  double tb = imf_wtime();
  int64_t changed = 0, entries = 0;
  IMF_CHECK(upd_load_full(u));
  char how[16] = "";
  IMF_CHECK(ease_build(comm, u->cfg, u->cpath, u->part, u->champ, &u->chall, &u->ease_state, &u->ease_old,
                       &u->ease_new, &changed, &entries, how, sizeof how));
  rep->build_seconds = imf_wtime() - tb;
  snprintf(rep->strategy, sizeof rep->strategy, "gram");
  imf_update_note_add(rep->note, sizeof rep->note,
                      "EASE: the rows of %lld changed users (rank %lld) applied by %s (requested %s: every strategy "
                      "does this for EASE)", (long long)changed, (long long)entries, how, u->req);
  const char *why = NULL;
  imf_judgement jd;
  IMF_CHECK(imf_judge_test_hook(u->champ, u->chall, u->ease_state));
  IMF_CHECK(ease_judge(comm, &u->jm, u->cpath, u->part, u->champ, &u->ease_old, u->chall, u->ease_state,
                       &u->ease_new, &u->fresh, &jd, &rep->newest_score, &why));
  imf_judge_drift(u->hist, u->nhist, &u->jm, u->window, u->drift_thr, rep);
  rep->eval_n = u->part->nnz_holdout;
  if (!why) why = unfit(u->chall, u->chall->nhistory);
  int worse = 0, promote = imf_judge_verdict(&u->jm, &jd, u->tol, why, &worse);
  imf_judge_report("gram", &u->jm, &jd, promote, why, rep);
  if (why) imf_update_note_add(rep->note, sizeof rep->note, "never promoted: %s", why);
  else if (worse)
    imf_update_note_add(rep->note, sizeof rep->note, "%s %.5f worse than the champion's %.5f beyond the tolerance",
                        rep->metric, rep->challenger_score, rep->champion_score);
  snprintf(rep->decision, sizeof rep->decision, "%s", promote ? "promoted" : "rejected");
  return IMF_OK;
}

/* How the fold-in reads: touched = 1 with the champion's recorded holdout (c_*) for the touched
 * read, else the whole store. */
typedef struct {
  int touched;
  double c_sse;
  int64_t c_n, c_users;
  int sums; /* try the fold-in from the champion's per-item sums first (imf_foldin_sums) */
} read_plan;

/* Whether the challenger's version carries per-item sums (checkpoint.h): ALS, replicated,
 * update.item_sums. */
static int want_sums(const upd *u, const imf_model *m) {
  return m->type == IMF_MODEL_ALS && !m->blocked && imf_cfg_bool(u->cfg, "update.item_sums");
}

/* policy: whether the fold-in can read only the touched rows. That needs the per-item index in
 * every batch (checked when reading) and the champion's holdout error recorded for the data it
 * has seen (its registry record: holdout_sse, holdout_n, with the store's forgotten users then
 * as now); otherwise, or with update.foldin_read = full, the whole store is read. (The test
 * hook changes the challenger after it is built: judged on the whole store.) */
static void policy_read_plan(const upd *u, read_plan *rp) {
  memset(rp, 0, sizeof *rp);
  rp->c_sse = NAN;
  rp->c_users = -1;
  if (strcmp(imf_cfg_str(u->cfg, "update.foldin_read"), "touched") || u->champ->type == IMF_MODEL_BPMF ||
      !u->store_holdout || u->ranking || getenv("IMF_TEST_CHALLENGER"))
    return;
  rp->sums = want_sums(u, u->champ) && !u->adopting;
  const imf_registry_record *cr = imf_registry_find(u->hist, u->nhist, u->rep->parent);
  if (cr && isfinite(cr->holdout_sse) && cr->batches_seen == u->seen && cr->holdout_users >= 0 &&
      cr->holdout_forgotten == imf_store_nforgotten(u->s)) {
    rp->touched = 1;
    rp->c_sse = cr->holdout_sse;
    rp->c_n = cr->holdout_n;
    rp->c_users = cr->holdout_users;
  } else
    imf_info("fold-in reads the whole store: version %lld has no recorded holdout error for the data it has seen",
             (long long)u->rep->parent);
}

/* policy: drift, the read plan and the first strategy (update_policy.h). */
static imf_status policy_plan(upd *u, read_plan *rp, imf_update_strategy *strat) {
  imf_update_report *rep = u->rep;
  const int64_t foldins = imf_update_foldins_in_row(u->hist, u->nhist);
  if (u->ranking) { /* a ranking judgement ranks every held-out user's items: the whole store */
    const double tr = imf_wtime();
    IMF_CHECK(upd_load_full(u));
    rep->build_seconds += imf_wtime() - tr;
    IMF_CHECK(imf_judge_drift_score(u->comm, &u->jm, u->part, u->champ, NULL, NULL, &u->fresh, &rep->newest_score));
  }
  imf_judge_drift(u->hist, u->nhist, &u->jm, u->window, u->drift_thr, rep);
  policy_read_plan(u, rp);
  if ((!rp->touched && !rp->sums) || u->want == IMF_UPDATE_WARM || u->want == IMF_UPDATE_RETRAIN) {
    const double tr = imf_wtime(); /* the read counts as building, as in build_and_judge */
    IMF_CHECK(upd_load_full(u));
    rep->build_seconds += imf_wtime() - tr;
  }
  double total_ratings = 0;
  if (u->part) total_ratings = (double)(u->part->nnz_train + u->part->nnz_holdout);
  else {
    imf_store_info info;
    IMF_CHECK(imf_store_get_info(u->s, &info));
    total_ratings = (double)info.ratings; /* the manifest's effective count (forgotten users included) */
  }
  /* what the last full sweep has not seen: the ratings folded in since, and this batch */
  const double unseen = (double)imf_update_foldin_ratings_in_row(u->hist, u->nhist) + (double)rep->new_ratings;
  imf_update_policy_in in = {
      .requested = u->want,
      .share = (double)rep->new_ratings / (total_ratings > 0 ? total_ratings : 1),
      .share_max = u->share_max,
      .drift = rep->drift,
      .foldins = foldins,
      .warm_every = u->warm_every,
      .unseen = unseen,
      .seen = total_ratings - unseen,
      .growth_max = u->growth_max,
      .bpmf = u->champ->type == IMF_MODEL_BPMF,
      .baseline = imf_baseline_type(u->champ->type),
      .type_name = imf_model_type_name(u->champ->type),
  };
  *strat = imf_update_policy_start(&in, rep->note, sizeof rep->note);
  return IMF_OK;
}

/* build + judge: one challenger by `strat` (the touched read where the plan allows, else on the
 * whole store), judged against the champion; *promote and *why: the verdict. */
static imf_status build_and_judge(upd *u, read_plan *rp, build_ctx *bc, imf_update_strategy strat, int *promote,
                                  const char **why) {
  imf_update_report *rep = u->rep;
  MPI_Comm comm = u->comm;
  double tb = imf_wtime();
  imf_model_destroy(&u->chall);
  imf_itemsums_destroy(&u->chall_sums);
  imf_info("building the challenger by %s from version %lld (%lld new batches, %lld new ratings)",
           imf_update_strategy_name(strat), (long long)rep->parent, (long long)rep->new_batches,
           (long long)rep->new_ratings);
  double sse[2] = {NAN, NAN};
  int64_t hn = 0, husers = -1;
  imf_judgement jd;
  imf_foldin_touched_in in = {.s = u->s, .champ = u->champ, .seen = u->seen, .tu = u->tu, .ti = u->ti,
                              .nu = u->nu, .ni = u->ni, .hfrac = u->hfrac, .hseed = u->hseed, .c_sse = rp->c_sse,
                              .c_n = rp->c_n, .c_users = rp->c_users, .io = &u->io, .after_read = kill_point};
  if (strat == IMF_UPDATE_FOLD_IN && rp->sums) {
    imf_status st = imf_foldin_sums(comm, &in, u->cpath, &u->chall, &u->chall_sums, sse, &hn, &jd, &husers,
                                    &rep->read_seconds);
    if (st == IMF_ERR_NOTFOUND) { /* no sums with the champion, or no holdout kept apart */
      imf_info("fold-in reads the items' histories: %s", imf_last_error());
      imf_err_clear();
      st = IMF_OK;
    }
    IMF_CHECK(st);
  }
  if (strat == IMF_UPDATE_FOLD_IN && rp->touched && !u->chall) {
    imf_status st = imf_foldin_touched(comm, &in, &u->chall, sse, &hn, &jd, &husers, &rep->read_seconds);
    if (st == IMF_ERR_NOTFOUND) { /* a batch written before the per-item index: read it all */
      imf_info("fold-in reads the whole store: %s", imf_last_error());
      imf_err_clear();
      st = IMF_OK;
      rp->touched = 0;
    }
    IMF_CHECK(st);
  }
  if (!u->chall) {
    IMF_CHECK(upd_load_full(u));
    bc->part = u->part;
    IMF_CHECK(build(bc, strat, &u->chall));
    IMF_CHECK(imf_judge_test_hook(u->champ, u->chall, NULL));
    if (want_sums(u, u->chall)) /* the next fold-in's: from the partition, as train takes them */
      IMF_CHECK(imf_itemsums_from_partition(comm, u->part, u->chall, &u->chall_sums));
    if (u->ranking) IMF_CHECK(rank_judge(comm, &u->jm, u->part, u->champ, u->chall, &jd));
    else IMF_CHECK(imf_judge_rmse(comm, u->part, u->champ, u->chall, &jd, sse, &hn, &husers));
  }
  rep->build_seconds += imf_wtime() - tb;
  snprintf(rep->strategy, sizeof rep->strategy, "%s", imf_update_strategy_name(strat));
  rep->eval_n = u->ranking ? u->part->nnz_holdout : hn;
  u->hold_sse = sse[1];
  u->hold_n = hn;
  u->hold_users = husers;
  *why = unfit(u->chall, strat == IMF_UPDATE_RETRAIN ? 0 : u->champ->nhistory);
  int worse = 0;
  *promote = imf_judge_verdict(&u->jm, &jd, u->tol, *why, &worse);
  imf_judge_report(imf_update_strategy_name(strat), &u->jm, &jd, *promote, *why, rep);
  return IMF_OK;
}

/* policy, build, judge for a factor model or a baseline: the first strategy, then auto's
 * escalations (fold-in -> warm -> retrain) while the challenger is not promoted. */
static imf_status factor_update(upd *u) {
  imf_update_report *rep = u->rep;
  read_plan rp;
  imf_update_strategy strat;
  IMF_CHECK(policy_plan(u, &rp, &strat));
  build_ctx bc = {u->comm, u->cfgc, NULL, u->champ, u->tu, u->ti, imf_cfg_int(u->cfg, "update.warm_sweeps"), rep};
  if (bc.warm_sweeps < 1) bc.warm_sweeps = 1;
  const char *why = NULL;
  int promote = 0;
  imf_update_strategy next;
  for (;;) {
    IMF_CHECK(build_and_judge(u, &rp, &bc, strat, &promote, &why));
    if (!imf_update_policy_next(u->want, strat, promote, &next)) break;
    imf_update_note_add(rep->note, sizeof rep->note, "auto: %s challenger %s (%s %.5f vs %.5f): %s",
                        imf_update_strategy_name(strat), why ? why : "worse than the champion beyond the tolerance",
                        rep->metric, rep->challenger_score, rep->champion_score, imf_update_strategy_name(next));
    imf_warn("auto: escalating from %s to %s", imf_update_strategy_name(strat), imf_update_strategy_name(next));
    strat = next;
  }
  if (why) imf_update_note_add(rep->note, sizeof rep->note, "never promoted: %s", why);
  snprintf(rep->decision, sizeof rep->decision, "%s", promote ? "promoted" : "rejected");
  return IMF_OK;
}

/* judge: the newest held-out ratings alone (reported; the decision used the whole holdout).
 * Ranking judgements (EASE, iALS, ...): their scores are not ratings, no RMSE. */
static imf_status judge_newest(upd *u) {
  if (u->ranking) return IMF_OK;
  const imf_ratings *f = &u->fresh;
  double v[3] = {0, 0, (double)f->n};
  for (int64_t j = 0; j < f->n; j++) {
    double a = (double)f->value[j] - imf_model_predict(u->champ, f->user[j], f->item[j]);
    double b = (double)f->value[j] - imf_model_predict(u->chall, f->user[j], f->item[j]);
    v[0] += a * a;
    v[1] += b * b;
  }
  IMF_MPI(MPI_Allreduce(MPI_IN_PLACE, v, 3, MPI_DOUBLE, MPI_SUM, u->comm));
  u->rep->eval_new_n = (int64_t)v[2];
  if (v[2] > 0) {
    u->rep->champion_new_rmse = sqrt(v[0] / v[2]);
    u->rep->challenger_new_rmse = sqrt(v[1] / v[2]);
  }
  return IMF_OK;
}

/* commit: the version's registry record. */
static imf_status commit_record(upd *u) {
  const imf_update_report *rep = u->rep;
  imf_registry_record rec;
  imf_registry_record_init(&rec);
  snprintf(rec.event, sizeof rec.event, "update");
  rec.version = rep->version;
  rec.parent = rep->parent;
  rec.batches_seen = u->nb;
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
  rec.seconds = imf_wtime() - u->t0;
  if (!realpath(u->store_dir, rec.store)) snprintf(rec.store, sizeof rec.store, "%s", u->store_dir);
  snprintf(rec.note, sizeof rec.note, "%s", rep->note);
  snprintf(rec.metric, sizeof rec.metric, "%s", rep->metric);
  rec.champion_score = rep->champion_score;
  rec.challenger_score = rep->challenger_score;
  rec.diff_mean = rep->diff_mean;
  rec.diff_lo = rep->diff_lo;
  rec.diff_hi = rep->diff_hi;
  rec.diff_users = rep->diff_users;
  rec.newest_score = rep->newest_score;
  if (!u->ranking && u->store_holdout && isfinite(u->hold_sse)) {
    rec.holdout_sse = u->hold_sse;
    rec.holdout_n = u->hold_n;
    rec.holdout_users = u->hold_users;
    rec.holdout_forgotten = imf_store_nforgotten(u->s);
  }
  return imf_registry_append(u->comm, u->model_dir, &rec);
}

/* commit: version file, then its record, then (promoted only) CURRENT — in this order, so a
 * kill at any point leaves CURRENT on a complete version. */
static imf_status commit(upd *u) {
  imf_update_report *rep = u->rep;
  MPI_Comm comm = u->comm;
  const double tw = imf_wtime();
  imf_ckpt_meta *meta = &u->meta;
  meta->config = u->cmeta.config ? strdup(u->cmeta.config) : NULL;
  snprintf(meta->store_digest, sizeof meta->store_digest, "%s", imf_store_digest(u->s));
  meta->batches_seen = u->nb;
  meta->ease = u->ease_state;
  if (u->is_ease) meta->ease_x = &u->ease_new;
  meta->itemsums = u->chall_sums;
  imf_store_strip_forgotten(u->s, &u->users); /* handed to the version's record */
  meta->users = u->users;
  meta->items = u->items;
  memset(&u->users, 0, sizeof u->users);
  memset(&u->items, 0, sizeof u->items);
  IMF_CHECK(imf_stop_point(comm, "update", "before writing its version (the model directory is unchanged)"));
  IMF_CHECK(imf_modeldir_write_version(u->md, u->chall, meta, &rep->version));
  kill_point("after-version");
  IMF_CHECK(imf_agree(comm, fault_point("update-after-version")));
  IMF_CHECK(commit_record(u));
  kill_point("after-registry");
  IMF_CHECK(imf_agree(comm, fault_point("update-before-current")));
  if (!strcmp(rep->decision, "promoted")) {
    IMF_CHECK(imf_modeldir_set_current(u->md, rep->version));
    rep->current = rep->version;
    kill_point("after-current");
    imf_info("promoted: version %lld (%s) is current (holdout %s %.5f, champion %.5f)", (long long)rep->version,
             rep->strategy, rep->metric, rep->challenger_score, rep->champion_score);
  } else {
    imf_warn("champion kept: version %lld stays current; the challenger is kept as rejected version %lld (%s)",
             (long long)rep->parent, (long long)rep->version, rep->note[0] ? rep->note : "worse beyond the tolerance");
  }
  /* EASE: P files are kept for CURRENT and the newest version only (older ones refactorise) */
  if (u->is_ease && imf_modeldir_gc_ease(u->md, 0, NULL) != IMF_OK) { /* the update is done: only warn */
    imf_warn("EASE P files not collected: %s", imf_last_error());
    imf_err_clear();
  }
  rep->write_seconds = imf_wtime() - tw;
  return IMF_OK;
}

imf_status imf_update(MPI_Comm comm, const imf_config *cfg, const char *store_dir, const char *model_dir,
                      const imf_update_opts *o, imf_update_report *rep) {
  imf_status st = IMF_OK;
  upd u;
  memset(&u, 0, sizeof u);
  u.comm = comm;
  u.cfg = cfg;
  u.store_dir = store_dir;
  u.model_dir = model_dir;
  u.o = o;
  u.rep = rep;
  u.hold_sse = NAN;
  u.hold_users = -1;
  memset(rep, 0, sizeof *rep);
  rep->champion_rmse = rep->challenger_rmse = rep->champion_new_rmse = rep->challenger_new_rmse = NAN;
  rep->newest_rmse = rep->drift_baseline = NAN;
  rep->champion_score = rep->challenger_score = NAN;
  rep->diff_mean = rep->diff_lo = rep->diff_hi = rep->newest_score = NAN;
  snprintf(rep->exchange, sizeof rep->exchange, "none");
  u.t0 = imf_wtime();
  int uptodate = 0;
  IMF_TRY(scan_begin(&u), out);
  IMF_TRY(scan_champion(&u, &uptodate), out);
  if (uptodate) {
    rep->seconds = imf_wtime() - u.t0;
    goto out;
  }
  IMF_TRY(scan_batches(&u), out);
  IMF_TRY(u.is_ease ? ease_update(&u) : factor_update(&u), out);
  IMF_TRY(judge_newest(&u), out);
  IMF_TRY(commit(&u), out);
  rep->seconds = imf_wtime() - u.t0;
  imf_info("update took %.2f s: append %.2f, load %.2f, read ratings %.2f, solve and judge %.2f, write %.2f",
           rep->seconds, rep->append_seconds, rep->load_seconds, rep->read_seconds,
           rep->build_seconds - rep->read_seconds, rep->write_seconds);
out:
  upd_free(&u);
  return st;
}
