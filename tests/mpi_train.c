/* mpi_train.c - the distributed training engine: bitwise determinism across rank counts (each
 * run is compared with the same training on MPI_COMM_SELF of rank 0), resume after a stop,
 * and model quality on planted data (ALS, BPMF, implicit ALS). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "config.h"
#include "error.h"
#include "exchange.h"
#include "log.h"
#include "modelblock.h"
#include "partition.h"
#include "rng.h"
#include "train.h"

static int rank_, size_;

/* ---------------------------------------------------------------- data */

typedef struct {
  int64_t nu, ni;
  imf_ratings all;  /* every rating, same on every rank */
  imf_ratings mine; /* rating j on rank j mod P */
} dataset;

static void split(dataset *d) {
  memset(&d->mine, 0, sizeof d->mine);
  for (int64_t j = 0; j < d->all.n; j++)
    if (j % size_ == rank_)
      assert_int_equal(imf_ratings_push(&d->mine, d->all.user[j], d->all.item[j], d->all.value[j], IMF_NO_TIME), IMF_OK);
}

static void free_data(dataset *d) {
  imf_ratings_free(&d->all);
  imf_ratings_free(&d->mine);
}

/* Planted rank-3 model with biases: r = 3 + bu + bi + u.v + noise, n distinct (user, item). */
static void planted(int64_t nu, int64_t ni, int64_t n, double noise, uint64_t seed, dataset *d) {
  memset(d, 0, sizeof *d);
  d->nu = nu;
  d->ni = ni;
  const int K = 3;
  double *U = malloc((size_t)(nu * K) * sizeof(double)), *V = malloc((size_t)(ni * K) * sizeof(double));
  double *bu = malloc((size_t)nu * sizeof(double)), *bi = malloc((size_t)ni * sizeof(double));
  imf_rng g;
  imf_rng_init(&g, seed, 11);
  for (int64_t j = 0; j < nu * K; j++) U[j] = 0.6 * imf_rng_normal(&g);
  for (int64_t j = 0; j < ni * K; j++) V[j] = 0.6 * imf_rng_normal(&g);
  for (int64_t j = 0; j < nu; j++) bu[j] = 0.3 * imf_rng_normal(&g);
  for (int64_t j = 0; j < ni; j++) bi[j] = 0.3 * imf_rng_normal(&g);
  uint8_t *seen = calloc((size_t)(nu * ni), 1);
  while (d->all.n < n) {
    int32_t u = (int32_t)(imf_rng_uniform(&g) * (double)nu), i = (int32_t)(imf_rng_uniform(&g) * (double)ni);
    if (seen[u * ni + i]) continue;
    seen[u * ni + i] = 1;
    double r = 3 + bu[u] + bi[i] + noise * imf_rng_normal(&g);
    for (int a = 0; a < K; a++) r += U[u * K + a] * V[i * K + a];
    assert_int_equal(imf_ratings_push(&d->all, u, i, (float)r, IMF_NO_TIME), IMF_OK);
  }
  free(seen);
  free(U);
  free(V);
  free(bu);
  free(bi);
  split(d);
}

/* Implicit data: each user's positives are its top-`pos` items under a planted rank-3 score. */
static void implicit_planted(int64_t nu, int64_t ni, int pos, dataset *d) {
  memset(d, 0, sizeof *d);
  d->nu = nu;
  d->ni = ni;
  const int K = 3;
  double *U = malloc((size_t)(nu * K) * sizeof(double)), *V = malloc((size_t)(ni * K) * sizeof(double));
  double *s = malloc((size_t)ni * sizeof(double));
  imf_rng g;
  imf_rng_init(&g, 5, 12);
  for (int64_t j = 0; j < nu * K; j++) U[j] = imf_rng_normal(&g);
  for (int64_t j = 0; j < ni * K; j++) V[j] = imf_rng_normal(&g);
  for (int64_t u = 0; u < nu; u++) {
    for (int64_t i = 0; i < ni; i++) {
      s[i] = 0;
      for (int a = 0; a < K; a++) s[i] += U[u * K + a] * V[i * K + a];
    }
    for (int64_t i = 0; i < ni; i++) {
      int above = 0;
      for (int64_t j = 0; j < ni; j++) above += s[j] > s[i] || (s[j] == s[i] && j < i);
      if (above < pos) assert_int_equal(imf_ratings_push(&d->all, (int32_t)u, (int32_t)i, 1.0f, IMF_NO_TIME), IMF_OK);
    }
  }
  free(U);
  free(V);
  free(s);
  split(d);
}

/* ---------------------------------------------------------------- helpers */

static imf_config *config(const char *const *sets) {
  imf_config *c;
  assert_int_equal(imf_config_create(&c), IMF_OK);
  for (; *sets; sets++) assert_int_equal(imf_config_set(c, *sets), IMF_OK);
  return c;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t j = 0; j < n; j++) h = (h ^ b[j]) * 0x100000001B3ULL;
  return h;
}

/* 64-bit hash of every factor byte of the model (and the BPMF chain). */
static uint64_t model_hash(const imf_model *m) {
  uint64_t h = 0xCBF29CE484222325ULL;
  h = fnv(h, m->P, (size_t)(m->nusers * m->kw) * 4);
  h = fnv(h, m->Q, (size_t)(m->nitems * m->kw) * 4);
  if (m->bu) h = fnv(h, m->bu, (size_t)m->nusers * 4);
  if (m->bi) h = fnv(h, m->bi, (size_t)m->nitems * 4);
  if (m->chain.U) {
    h = fnv(h, m->chain.U, (size_t)(m->nusers * m->k) * 4);
    h = fnv(h, m->chain.V, (size_t)(m->nitems * m->k) * 4);
    h = fnv(h, m->chain.Lam_u, (size_t)(m->k * m->k) * 8);
    h = fnv(h, m->chain.Lam_v, (size_t)(m->k * m->k) * 8);
    h = fnv(h, m->chain.mu_u, (size_t)m->k * 8);
    h = fnv(h, m->chain.mu_v, (size_t)m->k * 8);
  }
  h = fnv(h, &m->mu, sizeof m->mu);
  for (int64_t j = 0; j < m->nhistory; j++) { /* metrics too, except wall time */
    h = fnv(h, &m->history[j].train_loss, 8);
    h = fnv(h, &m->history[j].val_rmse, 8);
    h = fnv(h, &m->history[j].val_mae, 8);
  }
  return h;
}

/* Train on comm with `local` ratings; return the model (caller destroys) and the partition. */
static imf_model *train(MPI_Comm comm, const imf_ratings *local, int64_t nu, int64_t ni,
                        const imf_config *cfg, int sweeps, imf_partition **part_out) {
  imf_partition *part;
  assert_int_equal(imf_partition_build(comm, local, nu, ni, imf_cfg_double(cfg, "model.validation_fraction"),
                                       (uint64_t)imf_cfg_int(cfg, "model.seed"), &part), IMF_OK);
  imf_trainer *t;
  assert_int_equal(imf_train_create(comm, cfg, part, &t), IMF_OK);
  for (int s = 0; s < sweeps && !imf_trainer_converged(t); s++) assert_int_equal(imf_trainer_sweep(t), IMF_OK);
  imf_model *m; /* whole, also when trained out-block */
  assert_int_equal(imf_model_gather(comm, imf_trainer_model(t), &m), IMF_OK);
  if (getenv("IMF_TEST_VERBOSE")) assert_int_equal(imf_trainer_log_view(t, stderr), IMF_OK);
  imf_trainer_destroy(&t);
  if (part_out) *part_out = part;
  else imf_partition_destroy(&part);
  return m;
}

/* Same data, config and seed on all ranks of WORLD and on rank 0 alone: identical bits. */
static void check_determinism(const dataset *d, const char *const *sets, int sweeps) {
  imf_config *cfg = config(sets);
  imf_model *m = train(MPI_COMM_WORLD, &d->mine, d->nu, d->ni, cfg, sweeps, NULL);
  uint64_t hw = model_hash(m), hs = 0;
  if (rank_ == 0) {
    imf_model *s = train(MPI_COMM_SELF, &d->all, d->nu, d->ni, cfg, sweeps, NULL);
    hs = model_hash(s);
    assert_int_equal(s->kw, m->kw);
    imf_model_destroy(&s);
  }
  /* every rank holds the same replicated model */
  uint64_t h0 = hw;
  MPI_Bcast(&h0, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
  MPI_Bcast(&hs, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
  if (rank_ == 0) fprintf(stderr, "[determinism] %s on %d ranks: %016llx, on 1 rank: %016llx\n",
                          sets[0], size_, (unsigned long long)h0, (unsigned long long)hs);
  assert_true(hw == h0);
  assert_true(hw == hs);
  imf_model_destroy(&m);
  imf_config_destroy(&cfg);
}

static void test_determinism_als(void **state) {
  (void)state;
  dataset d;
  planted(200, 100, 5000, 0.1, 1, &d);
  const char *sets[] = {"model.type=als", "model.k=4", "model.seed=7", "model.validation_fraction=0.1", NULL};
  check_determinism(&d, sets, 5);
  free_data(&d);
}

static void test_determinism_bpmf(void **state) {
  (void)state;
  dataset d;
  planted(200, 100, 5000, 0.1, 1, &d);
  const char *sets[] = {"model.type=bpmf", "model.k=4", "model.iterations=8", "model.burn_in=3",
                        "model.validation_fraction=0.1", NULL};
  check_determinism(&d, sets, 8);
  free_data(&d);
}

static void test_determinism_ials(void **state) {
  (void)state;
  dataset d;
  implicit_planted(200, 100, 20, &d);
  const char *chol[] = {"model.type=ials", "model.k=4", "model.lambda=0.1", "model.alpha=5", NULL};
  check_determinism(&d, chol, 4);
  const char *cg[] = {"model.type=ials", "model.k=4", "model.solver=cg", "model.cg_steps=3", NULL};
  check_determinism(&d, cg, 4);
  free_data(&d);
}

/* More rows than one deterministic-sum chunk (4096) on both sides, many empty rows: the chunk
 * partials straddle rank boundaries. */
static void test_determinism_large(void **state) {
  (void)state;
  dataset d;
  planted(9000, 5000, 40000, 0.3, 3, &d);
  const char *als[] = {"model.type=als", "model.k=4", "model.validation_fraction=0.05", NULL};
  check_determinism(&d, als, 3);
  const char *ials[] = {"model.type=ials", "model.k=4", NULL};
  check_determinism(&d, ials, 2);
  const char *bpmf[] = {"model.type=bpmf", "model.k=4", "model.iterations=3", "model.burn_in=1",
                        "model.validation_fraction=0.05", NULL};
  check_determinism(&d, bpmf, 3);
  free_data(&d);
}

/* ---------------------------------------------------------------- stop and resume */

typedef struct {
  int calls, stop_at;
} stopper;

static int stop_hook(void *ctx) {
  stopper *s = ctx;
  int mine = ++s->calls == s->stop_at, any = 0;
  MPI_Allreduce(&mine, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  return any;
}

/* Stopping at a sweep's end and resuming from the model gives the same bits as an
 * uninterrupted run. The trainer asks once a sweep, at its end (the rows are solved in place, so
 * a sweep is never abandoned half-way): call 2 ends sweep 2. */
static void check_resume(const dataset *d, const char *const *sets, int sweeps) {
  imf_config *cfg = config(sets);
  imf_model *ref = train(MPI_COMM_WORLD, &d->mine, d->nu, d->ni, cfg, sweeps, NULL);
  imf_partition *part;
  assert_int_equal(imf_partition_build(MPI_COMM_WORLD, &d->mine, d->nu, d->ni,
                                       imf_cfg_double(cfg, "model.validation_fraction"),
                                       (uint64_t)imf_cfg_int(cfg, "model.seed"), &part), IMF_OK);
  imf_trainer *t;
  assert_int_equal(imf_train_create(MPI_COMM_WORLD, cfg, part, &t), IMF_OK);
  stopper s = {0, 2};
  imf_trainer_set_stop_hook(t, stop_hook, &s);
  while (!imf_trainer_stopped(t)) assert_int_equal(imf_trainer_sweep(t), IMF_OK);
  assert_int_equal(imf_trainer_model(t)->iteration, 2);
  imf_model *saved;
  assert_int_equal(imf_model_copy(imf_trainer_model(t), &saved), IMF_OK);
  imf_trainer_destroy(&t);
  assert_int_equal(imf_train_create(MPI_COMM_WORLD, cfg, part, &t), IMF_OK);
  assert_int_equal(imf_trainer_resume(t, saved), IMF_OK);
  while (imf_trainer_model(t)->iteration < sweeps) assert_int_equal(imf_trainer_sweep(t), IMF_OK);
  assert_true(model_hash(imf_trainer_model(t)) == model_hash(ref));
  imf_trainer_destroy(&t);
  imf_model_destroy(&saved);
  imf_model_destroy(&ref);
  imf_partition_destroy(&part);
  imf_config_destroy(&cfg);
}

/* Warm start on grown data: a model of the first users and items seeds a trainer over more. */
static void test_warm_start(void **state) {
  (void)state;
  dataset d;
  planted(200, 100, 5000, 0.1, 1, &d);
  const char *sets[] = {"model.type=als", "model.k=4", NULL};
  imf_config *cfg = config(sets);
  imf_ratings small;
  memset(&small, 0, sizeof small);
  for (int64_t j = 0; j < d.mine.n; j++)
    if (d.mine.user[j] < 150 && d.mine.item[j] < 80)
      imf_ratings_push(&small, d.mine.user[j], d.mine.item[j], d.mine.value[j], IMF_NO_TIME);
  imf_model *old = train(MPI_COMM_WORLD, &small, 150, 80, cfg, 4, NULL);
  imf_partition *part;
  assert_int_equal(imf_partition_build(MPI_COMM_WORLD, &d.mine, 200, 100, 0, 42, &part), IMF_OK);
  imf_trainer *t;
  assert_int_equal(imf_train_create(MPI_COMM_WORLD, cfg, part, &t), IMF_OK);
  assert_int_equal(imf_trainer_resume(t, old), IMF_OK);
  imf_model *m = imf_trainer_model(t);
  assert_int_equal(m->iteration, 0);
  assert_memory_equal(m->P, old->P, 150 * 4 * sizeof(float));
  assert_memory_equal(m->Q, old->Q, 80 * 4 * sizeof(float));
  assert_memory_equal(m->bu, old->bu, 150 * sizeof(float));
  assert_int_equal(imf_trainer_sweep(t), IMF_OK);
  assert_true(m->history[0].train_rmse < 0.5);
  /* a model of another type or k is refused */
  imf_model *other;
  assert_int_equal(imf_model_create(IMF_MODEL_ALS, 5, 10, 10, 1, &other), IMF_OK);
  assert_int_equal(imf_trainer_resume(t, other), IMF_ERR_INPUT);
  imf_model_destroy(&other);
  imf_trainer_destroy(&t);
  imf_partition_destroy(&part);
  imf_model_destroy(&old);
  imf_ratings_free(&small);
  imf_config_destroy(&cfg);
  free_data(&d);
}

static void test_resume(void **state) {
  (void)state;
  dataset d;
  planted(200, 100, 5000, 0.1, 1, &d);
  const char *als[] = {"model.type=als", "model.k=4", "model.validation_fraction=0.1", NULL};
  check_resume(&d, als, 5);
  const char *bpmf[] = {"model.type=bpmf", "model.k=4", "model.iterations=6", "model.burn_in=2", NULL};
  check_resume(&d, bpmf, 6);
  free_data(&d);
  implicit_planted(200, 100, 20, &d);
  const char *ials[] = {"model.type=ials", "model.k=4", "model.solver=cg", NULL};
  check_resume(&d, ials, 5);
  free_data(&d);
}

/* ---------------------------------------------------------------- quality */

static void test_als_quality(void **state) {
  (void)state;
  dataset d;
  planted(200, 100, 5000, 0.1, 1, &d);
  const char *sets[] = {"model.type=als", "model.k=3", "model.lambda=0.02", "model.lambda_bias=1",
                        "model.validation_fraction=0.1", NULL};
  imf_config *cfg = config(sets);
  imf_model *m = train(MPI_COMM_WORLD, &d.mine, d.nu, d.ni, cfg, 12, NULL);
  for (int64_t j = 1; j < m->nhistory; j++) /* exact block minimisation: loss never rises */
    assert_true(m->history[j].train_loss <= m->history[j - 1].train_loss * (1 + 1e-6));
  assert_true(m->history[m->nhistory - 1].train_loss < 0.5 * m->history[0].train_loss);
  double tr = m->history[m->nhistory - 1].train_rmse, va = m->history[m->nhistory - 1].val_rmse;
  if (rank_ == 0) fprintf(stderr, "[als] train rmse %.4f val rmse %.4f\n", tr, va);
  assert_true(tr < 0.15);
  assert_true(va < 0.3);
  /* cold rows: unknown user gets mu + bi, unknown item mu + bu */
  assert_true(imf_model_predict(m, -1, 3) == m->mu + m->bi[3]);
  assert_true(imf_model_predict(m, 4, m->nitems) == m->mu + m->bu[4]);
  assert_true(imf_model_predict(m, -1, -1) == m->mu);
  imf_model_destroy(&m);
  imf_config_destroy(&cfg);
  free_data(&d);
}

static void test_bpmf_vs_als(void **state) {
  (void)state;
  dataset d;
  planted(200, 100, 3000, 0.6, 2, &d);
  const char *als[] = {"model.type=als", "model.k=8", "model.lambda=0.05", "model.validation_fraction=0.15", NULL};
  const char *bpmf[] = {"model.type=bpmf", "model.k=8", "model.iterations=40", "model.burn_in=10",
                        "model.samples=8", "model.validation_fraction=0.15", NULL};
  imf_config *ca = config(als), *cb = config(bpmf);
  imf_model *ma = train(MPI_COMM_WORLD, &d.mine, d.nu, d.ni, ca, 15, NULL);
  imf_model *mb = train(MPI_COMM_WORLD, &d.mine, d.nu, d.ni, cb, 40, NULL);
  double ra = ma->history[ma->nhistory - 1].val_rmse, rb = mb->history[mb->nhistory - 1].val_rmse;
  if (rank_ == 0) fprintf(stderr, "[bpmf vs als] val rmse ALS %.4f BPMF %.4f (%d samples, kw %d)\n", ra, rb,
                          mb->nsamples, mb->kw);
  assert_int_equal(mb->nsamples, 8); /* model.samples, thinned over the 30 sweeps after burn-in */
  assert_int_equal(mb->kw, mb->k * mb->nsamples);
  assert_true(rb < ra + 0.02);
  imf_model_destroy(&ma);
  imf_model_destroy(&mb);
  imf_config_destroy(&ca);
  imf_config_destroy(&cb);
  free_data(&d);
}

static void test_ials_ranking(void **state) {
  (void)state;
  dataset d;
  implicit_planted(200, 100, 15, &d);
  const char *sets[] = {"model.type=ials", "model.k=6", "model.lambda=0.1", "model.alpha=10",
                        "model.validation_fraction=0.1", NULL};
  imf_config *cfg = config(sets);
  imf_partition *part;
  imf_model *m = train(MPI_COMM_WORLD, &d.mine, d.nu, d.ni, cfg, 10, &part);
  /* each held-out positive against 20 random items the user has not interacted with */
  int64_t wins[2] = {0, 0};
  imf_rng g;
  imf_rng_init(&g, 1, (uint64_t)rank_);
  const imf_csr *h = &part->holdout, *tr = &part->by_user;
  for (int64_t r = 0; r < h->hi - h->lo; r++) {
    int64_t u = h->lo + r;
    for (int64_t j = h->ptr[r]; j < h->ptr[r + 1]; j++) {
      double sp = imf_model_predict(m, u, h->idx[j]);
      for (int c = 0; c < 20;) {
        int32_t i = (int32_t)(imf_rng_uniform(&g) * (double)d.ni);
        int rated = 0;
        for (int64_t q = tr->ptr[r]; q < tr->ptr[r + 1]; q++) rated |= tr->idx[q] == i;
        for (int64_t q = h->ptr[r]; q < h->ptr[r + 1]; q++) rated |= h->idx[q] == i;
        if (rated) continue;
        wins[0] += sp > imf_model_predict(m, u, i);
        wins[1]++;
        c++;
      }
    }
  }
  MPI_Allreduce(MPI_IN_PLACE, wins, 2, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
  double auc = (double)wins[0] / (double)wins[1];
  if (rank_ == 0) fprintf(stderr, "[ials] held-out AUC %.4f over %lld pairs\n", auc, (long long)wins[1]);
  assert_true(wins[1] > 1000);
  assert_true(auc > 0.85);
  for (int64_t j = 1; j < m->nhistory; j++)
    assert_true(m->history[j].train_loss <= m->history[j - 1].train_loss * (1 + 1e-6));
  imf_model_destroy(&m);
  imf_partition_destroy(&part);
  imf_config_destroy(&cfg);
  free_data(&d);
}

/* The classic tiny case: 10 users x 5 items, binary, K = 2 converges (implicit ALS). */
static void test_ials_tiny(void **state) {
  (void)state;
  static const char *rows[10] = {"11000", "01100", "00110", "00011", "10001",
                                 "11100", "00111", "10101", "01010", "11111"};
  dataset d;
  memset(&d, 0, sizeof d);
  d.nu = 10;
  d.ni = 5;
  for (int u = 0; u < 10; u++)
    for (int i = 0; i < 5; i++)
      if (rows[u][i] == '1') imf_ratings_push(&d.all, u, i, 1.0f, IMF_NO_TIME);
  split(&d);
  const char *sets[] = {"model.type=ials", "model.k=2", "model.lambda=0.1", "model.alpha=2",
                        "model.tol=1e-7", "model.iterations=200", NULL};
  imf_config *cfg = config(sets);
  imf_model *m = train(MPI_COMM_WORLD, &d.mine, 10, 5, cfg, 200, NULL);
  const imf_sweep_metrics *last = &m->history[m->nhistory - 1];
  if (rank_ == 0) fprintf(stderr, "[ials tiny] %lld sweeps, loss %.6f\n", (long long)m->nhistory, last->train_loss);
  assert_true(m->nhistory < 200); /* converged before the sweep limit */
  assert_true(isfinite(last->train_loss));
  for (int64_t j = 1; j < m->nhistory; j++)
    assert_true(m->history[j].train_loss <= m->history[j - 1].train_loss * (1 + 1e-9));
  /* observed pairs score higher on average than unobserved ones */
  double so = 0, su = 0;
  int no = 0, nun = 0;
  for (int u = 0; u < 10; u++)
    for (int i = 0; i < 5; i++) {
      if (rows[u][i] == '1') so += imf_model_predict(m, u, i), no++;
      else su += imf_model_predict(m, u, i), nun++;
    }
  assert_true(so / no > su / nun + 0.3);
  imf_model_destroy(&m);
  imf_config_destroy(&cfg);
  free_data(&d);
}

/* More ranks than users: one user, every other rank owns nothing, training still works. */
static void test_tiny_more_ranks(void **state) {
  (void)state;
  dataset d;
  memset(&d, 0, sizeof d);
  d.nu = 1;
  d.ni = 2;
  imf_ratings_push(&d.all, 0, 0, 4.0f, IMF_NO_TIME);
  imf_ratings_push(&d.all, 0, 1, 2.0f, IMF_NO_TIME);
  split(&d);
  for (int type = 0; type < 3; type++) {
    const char *als[] = {type == 0 ? "model.type=als" : type == 1 ? "model.type=ials" : "model.type=bpmf",
                         "model.k=2", "model.iterations=4", "model.burn_in=1", NULL};
    check_determinism(&d, als, 4);
  }
  free_data(&d);
}

/* The node layout and the traffic counters (issue 25; docs/SCALING.md): for the real node and
 * pretend nodes of 1, 2 and 3 ranks, the factor rows one sweep moves are what the formula says —
 * each rank receives every other rank's user and item block, 4 (k + 1) bytes a row with its bias,
 * counted as between nodes exactly when the other rank is on another node — and the model is
 * bitwise the same on every layout. */
static void test_traffic_layouts(void **state) {
  (void)state;
  dataset d;
  planted(300, 150, 6000, 0.1, 3, &d);
  const int k = 5, rpn[] = {0, 1, 2, 3};
  uint64_t first = 0;
  for (int shared = 0; shared < 2; shared++)
    for (size_t c = 0; c < sizeof rpn / sizeof rpn[0]; c++) {
      char kset[32], lset[48], sset[48];
      snprintf(kset, sizeof kset, "model.k=%d", k);
      snprintf(lset, sizeof lset, "dist.ranks_per_node=%d", rpn[c]);
      snprintf(sset, sizeof sset, "dist.node_shared=%s", shared ? "true" : "false");
      const char *sets[] = {"model.type=als", kset, lset, sset, NULL};
      imf_config *cfg = config(sets);
      imf_partition *part;
      assert_int_equal(imf_partition_build(MPI_COMM_WORLD, &d.mine, d.nu, d.ni, 0, 42, &part), IMF_OK);
      imf_trainer *t;
      assert_int_equal(imf_train_create(MPI_COMM_WORLD, cfg, part, &t), IMF_OK);
      const imf_layout *l = imf_trainer_layout(t);
      const int want_nodes = rpn[c] ? (size_ + rpn[c] - 1) / rpn[c] : 1; /* one machine */
      assert_int_equal(l->nnodes, want_nodes);
      assert_true(l->contiguous);
      for (int r = 0; r < size_; r++) assert_int_equal(l->node_of[r], rpn[c] ? r / rpn[c] : 0);
      const int64_t seg = imf_trainer_shared_bytes(t);
      assert_int_equal(seg, shared ? 4 * (k + 1) * (d.nu + d.ni) : 0); /* one copy: factors and biases */
      assert_int_equal(imf_trainer_sweep(t), IMF_OK);
      imf_traffic a, b;
      imf_exchange_traffic(&a);
      assert_int_equal(imf_trainer_sweep(t), IMF_OK);
      imf_exchange_traffic(&b);
      /* replicated: every rank receives every other rank's blocks; node-shared: only a node's
       * first rank receives, the other nodes' rows, once; nothing moves inside a node */
      int64_t want[2] = {0, 0}, sent[2] = {0, 0};
#define BLOCK(r) (4 * (k + 1) * ((part->user_start[(r) + 1] - part->user_start[r]) + \
                                 (part->item_start[(r) + 1] - part->item_start[r])))
      int64_t node_rows = 0;
      for (int r = 0; r < size_; r++)
        if (l->node_of[r] == l->node) node_rows += BLOCK(r);
      for (int r = 0; r < size_; r++) {
        if (r == rank_) continue;
        const int far = l->node_of[r] != l->node;
        if (!shared) {
          want[far] += BLOCK(r);
          sent[far] += BLOCK(rank_);
        } else if (far && l->node_rank == 0) {
          want[1] += BLOCK(r);
        }
      }
      if (shared && l->node_rank == 0) sent[1] = node_rows * (l->nnodes - 1);
#undef BLOCK
      for (int f = 0; f < 2; f++) {
        assert_int_equal(b.rows_recv[f] - a.rows_recv[f], want[f]);
        assert_int_equal(b.rows_sent[f] - a.rows_sent[f], sent[f]);
        assert_true(b.recv[f] - a.recv[f] >= want[f]); /* plus the metrics' partial sums */
      }
      int64_t net[6];
      imf_trainer_traffic(t, net);
      assert_true(net[3] >= want[1] && net[2] >= want[0]);
      if (rank_ == 0)
        fprintf(stderr, "[traffic] %d ranks, dist.ranks_per_node=%d, %s: %d nodes; rank 0 received %lld row bytes "
                "inside its node and %lld from other nodes in one sweep\n", size_, rpn[c],
                shared ? "node-shared" : "replicated", l->nnodes, (long long)want[0], (long long)want[1]);
      uint64_t h = model_hash(imf_trainer_model(t));
      if (shared == 0 && c == 0) first = h;
      assert_true(h == first); /* the same bits on every layout and exchange */
      imf_trainer_destroy(&t);
      imf_partition_destroy(&part);
      imf_config_destroy(&cfg);
    }
  /* a negative layout is refused */
  imf_config *cfg;
  assert_int_equal(imf_config_create(&cfg), IMF_OK);
  assert_int_not_equal(imf_config_set(cfg, "dist.ranks_per_node=-1"), IMF_OK);
  imf_config_destroy(&cfg);
  free_data(&d);
}

/* Node-shared factors for implicit ALS, and a warm start into them: bitwise the replicated run. */
static void test_node_shared_ials(void **state) {
  (void)state;
  dataset d;
  implicit_planted(120, 60, 8, &d);
  uint64_t h[2];
  for (int shared = 0; shared < 2; shared++) {
    const char *sets[] = {"model.type=ials", "model.k=4", "dist.ranks_per_node=2",
                          shared ? "dist.node_shared=true" : "dist.node_shared=false", NULL};
    imf_config *cfg = config(sets);
    imf_model *old = train(MPI_COMM_WORLD, &d.mine, d.nu, d.ni, cfg, 2, NULL);
    imf_partition *part;
    assert_int_equal(imf_partition_build(MPI_COMM_WORLD, &d.mine, d.nu, d.ni, 0, 42, &part), IMF_OK);
    imf_trainer *t;
    assert_int_equal(imf_train_create(MPI_COMM_WORLD, cfg, part, &t), IMF_OK);
    assert_int_equal(imf_trainer_resume(t, old), IMF_OK);
    assert_int_equal(imf_trainer_sweep(t), IMF_OK);
    h[shared] = model_hash(imf_trainer_model(t));
    imf_trainer_destroy(&t);
    imf_partition_destroy(&part);
    imf_model_destroy(&old);
    imf_config_destroy(&cfg);
  }
  assert_true(h[0] == h[1]);
  free_data(&d);
}

/* Node-shared BPMF: the kept samples regrow P and Q in the node's segment (in place, up to
 * model.samples); bitwise the replicated chain, and a chain stopped on the node-shared layout
 * resumes replicated (and the other way round) where an uninterrupted one ends. */
static void test_node_shared_bpmf(void **state) {
  (void)state;
  dataset d;
  planted(150, 90, 3000, 0.2, 9, &d);
  const char *rep[] = {"model.type=bpmf", "model.k=4", "model.iterations=15", "model.burn_in=3", "model.samples=4",
                       "dist.ranks_per_node=2", NULL};
  const char *shr[] = {"model.type=bpmf", "model.k=4", "model.iterations=15", "model.burn_in=3", "model.samples=4",
                       "dist.ranks_per_node=2", "dist.node_shared=true", NULL};
  imf_config *cr = config(rep), *cs = config(shr);
  imf_model *a = train(MPI_COMM_WORLD, &d.mine, d.nu, d.ni, cr, 15, NULL);
  imf_model *b = train(MPI_COMM_WORLD, &d.mine, d.nu, d.ni, cs, 15, NULL);
  assert_int_equal(a->nsamples, 4); /* the segment's room used to the last sample */
  assert_int_equal(b->kw, a->kw);
  assert_true(model_hash(a) == model_hash(b));
  for (int from = 0; from < 2; from++) { /* stop on one, resume on the other */
    imf_model *half = train(MPI_COMM_WORLD, &d.mine, d.nu, d.ni, from ? cs : cr, 8, NULL);
    imf_partition *part;
    assert_int_equal(imf_partition_build(MPI_COMM_WORLD, &d.mine, d.nu, d.ni, 0, 42, &part), IMF_OK);
    imf_trainer *t;
    assert_int_equal(imf_train_create(MPI_COMM_WORLD, from ? cr : cs, part, &t), IMF_OK);
    assert_int_equal(imf_trainer_resume(t, half), IMF_OK);
    assert_int_equal(imf_trainer_run(t), IMF_OK);
    assert_true(model_hash(imf_trainer_model(t)) == model_hash(a));
    imf_trainer_destroy(&t);
    imf_partition_destroy(&part);
    imf_model_destroy(&half);
  }
  imf_model_destroy(&a);
  imf_model_destroy(&b);
  imf_config_destroy(&cr);
  imf_config_destroy(&cs);
  free_data(&d);
}

/* ---------------------------------------------------------------- the out-block exchange */

/* dist.exchange = outblock: ALS, iALS (Cholesky and CG) and BPMF bitwise the one-rank replicated
 * run, on data whose deterministic-sum chunks straddle the blocks (9000 x 5000 rows, many of
 * them empty), on every pretend-node layout, the rows sent in one round or many; the trainer's
 * model is a block model. */
static void test_outblock_bitwise(void **state) {
  (void)state;
  dataset d;
  planted(9000, 5000, 40000, 0.3, 3, &d);
  const char *types[][6] = {
      {"model.type=als", "model.k=4", "model.validation_fraction=0.05", NULL},
      {"model.type=ials", "model.k=4", NULL},
      {"model.type=ials", "model.k=4", "model.solver=cg", "model.cg_steps=3", NULL},
      {"model.type=bpmf", "model.k=4", "model.iterations=4", "model.burn_in=1", "model.samples=3",
       "model.validation_fraction=0.05"}};
  for (size_t ty = 0; ty < sizeof types / sizeof types[0]; ty++) {
    const char *const *base = types[ty];
    const char *sets[12];
    int n = 0;
    for (; n < 6 && base[n]; n++) sets[n] = base[n];
    sets[n] = NULL;
    imf_config *rc = config(sets);
    uint64_t want = 0;
    if (rank_ == 0) { /* one rank, replicated */
      imf_model *s = train(MPI_COMM_SELF, &d.all, d.nu, d.ni, rc, 4, NULL);
      want = model_hash(s);
      imf_model_destroy(&s);
    }
    MPI_Bcast(&want, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    const char *lay[] = {"dist.ranks_per_node=0", "dist.ranks_per_node=1", "dist.ranks_per_node=2"};
    for (int l = 0; l < 6; l++) { /* per rank, then node-shared (one copy of the node's slots) */
      sets[n] = "dist.exchange=outblock";
      sets[n + 1] = lay[l % 3];
      sets[n + 2] = l < 3 ? "dist.node_shared=false" : "dist.node_shared=true";
      sets[n + 3] = NULL;
      imf_config *oc = config(sets);
      imf_partition *part;
      assert_int_equal(imf_partition_build(MPI_COMM_WORLD, &d.mine, d.nu, d.ni,
                                           imf_cfg_double(oc, "model.validation_fraction"),
                                           (uint64_t)imf_cfg_int(oc, "model.seed"), &part), IMF_OK);
      imf_trainer *t;
      assert_int_equal(imf_train_create(MPI_COMM_WORLD, oc, part, &t), IMF_OK);
      assert_true(imf_trainer_outblock_rows(t) > 0);
      /* one layout of each kind in rounds of a few hundred rows (1 MiB a rank by default) */
      if (l == 1 || l == 4) setenv("IMF_EXCHANGE_ROUND", "20000", 1);
      for (int sw = 0; sw < 4; sw++) assert_int_equal(imf_trainer_sweep(t), IMF_OK);
      unsetenv("IMF_EXCHANGE_ROUND");
      const imf_model *b = imf_trainer_model(t);
      assert_true(b->blocked);
      assert_int_equal(b->ublock[0], part->user_start[rank_]);
      assert_int_equal(b->iblock[1], part->item_start[rank_ + 1]);
      if (size_ > 1 && (l < 3 || imf_trainer_layout(t)->nnodes > 1)) /* not the whole model */
        assert_true(imf_trainer_outblock_rows(t) < d.nu + d.ni);
      assert_int_equal(imf_trainer_shared_bytes(t) > 0, l >= 3); /* the node's slots in one segment */
      imf_model *g;
      assert_int_equal(imf_model_gather(MPI_COMM_WORLD, b, &g), IMF_OK);
      if (rank_ == 0)
        fprintf(stderr, "[outblock] %s %s on %d ranks (%s): %016llx, one rank replicated %016llx; rank 0 holds %lld "
                "of %lld rows%s\n", base[0], base[2] ? base[2] : "", size_, lay[l % 3], (unsigned long long)model_hash(g),
                (unsigned long long)want, (long long)imf_trainer_outblock_rows(t), (long long)(d.nu + d.ni),
                l >= 3 ? " (node-shared)" : "");
      assert_true(model_hash(g) == want);
      /* the partition's columns are global rows again once the trainer is gone */
      const int32_t *idx = part->by_user.idx;
      int64_t maxc = 0;
      imf_trainer_destroy(&t);
      for (int64_t j = 0; j < part->by_user.nnz; j++) maxc = idx[j] > maxc ? idx[j] : maxc;
      assert_true(maxc < d.ni);
      imf_model_destroy(&g);
      imf_partition_destroy(&part);
      imf_config_destroy(&oc);
    }
    imf_config_destroy(&rc);
  }
  free_data(&d);
}

/* The out-block traffic equals its formula: each rank receives, per half-sweep, the rows of the
 * other side its ratings reference and it does not own (4 (k + 1) bytes each for ALS), and sends
 * each other rank the own rows that rank references; counted inside and between pretend nodes.
 * The reference sets are computed here from all the ratings and the partition's blocks. */
static void test_outblock_traffic(void **state) {
  (void)state;
  dataset d;
  planted(300, 150, 6000, 0.1, 3, &d);
  const int k = 5;
  const char *sets[] = {"model.type=als", "model.k=5", "dist.exchange=outblock", "dist.ranks_per_node=2", NULL};
  imf_config *cfg = config(sets);
  imf_partition *part;
  assert_int_equal(imf_partition_build(MPI_COMM_WORLD, &d.mine, d.nu, d.ni, 0, 42, &part), IMF_OK);
  /* ref[r][side][row]: rank r references that row of the side (users via its items' ratings,
   * items via its users' ratings) */
  char *ref = calloc((size_t)size_ * (size_t)(d.nu + d.ni), 1);
  assert_non_null(ref);
  for (int64_t j = 0; j < d.all.n; j++) {
    const int64_t u = d.all.user[j], i = d.all.item[j];
    const int ru = (int)imf_block_owner(part->user_start, size_, u), ri = (int)imf_block_owner(part->item_start, size_, i);
    ref[(size_t)ri * (size_t)(d.nu + d.ni) + (size_t)u] = 1;          /* ri solves item i against user u */
    ref[(size_t)ru * (size_t)(d.nu + d.ni) + (size_t)(d.nu + i)] = 1; /* ru solves user u against item i */
  }
  const int64_t *start[2] = {part->user_start, part->item_start};
  int64_t want_recv[2] = {0, 0}, want_sent[2] = {0, 0}, node_recv[2] = {0, 0}, node_sent[2] = {0, 0};
  for (int side = 0; side < 2; side++)
    for (int64_t x = 0; x < (side ? d.ni : d.nu); x++) {
      const int owner = (int)imf_block_owner(start[side], size_, x);
      const size_t col = (size_t)(side ? d.nu + x : x);
      for (int r = 0; r < size_; r++) {
        if (r == owner || !ref[(size_t)r * (size_t)(d.nu + d.ni) + col]) continue;
        const int far = r / 2 != owner / 2;
        if (r == rank_) want_recv[far] += 4 * (k + 1);
        if (owner == rank_) want_sent[far] += 4 * (k + 1);
      }
      /* node-shared, nodes of g = 1 and 2 ranks: node j holds the row when one of its ranks
       * references or owns it; the first ranks move a row once per node that references it from
       * another node */
      for (int g = 1; g <= 2; g++)
        for (int j = 0; j < (size_ + g - 1) / g; j++) {
          int refd = 0;
          for (int r = g * j; r < g * j + g && r < size_; r++) refd |= ref[(size_t)r * (size_t)(d.nu + d.ni) + col];
          if (!refd || j == owner / g || rank_ % g) continue;
          if (j == rank_ / g) node_recv[g - 1] += 4 * (k + 1);
          if (owner / g == rank_ / g) node_sent[g - 1] += 4 * (k + 1);
        }
    }
  free(ref);
  imf_trainer *t;
  assert_int_equal(imf_train_create(MPI_COMM_WORLD, cfg, part, &t), IMF_OK);
  assert_int_equal(imf_trainer_sweep(t), IMF_OK);
  imf_traffic a, b;
  imf_exchange_traffic(&a);
  assert_int_equal(imf_trainer_sweep(t), IMF_OK);
  imf_exchange_traffic(&b);
  for (int f = 0; f < 2; f++) {
    assert_int_equal(b.rows_recv[f] - a.rows_recv[f], want_recv[f]);
    assert_int_equal(b.rows_sent[f] - a.rows_sent[f], want_sent[f]);
  }
  if (rank_ == 0)
    fprintf(stderr, "[outblock traffic] %d ranks as nodes of 2: rank 0 received %lld row bytes inside its node and "
            "%lld from other nodes (replicated: every other rank's whole block)\n", size_, (long long)want_recv[0],
            (long long)want_recv[1]);
  imf_trainer_destroy(&t);
  imf_config_destroy(&cfg);
  /* node-shared out-block: nothing moves inside a node; the first ranks receive the rows their
   * node references from the other nodes, once (nodes of one rank: each rank is its node's
   * first, and the leaders' communicator is the whole one: counted once all the same) */
  for (int g = 1; g <= 2; g++) {
    const char *ns[] = {"model.type=als", "model.k=5", "dist.exchange=outblock",
                        g == 1 ? "dist.ranks_per_node=1" : "dist.ranks_per_node=2", "dist.node_shared=true", NULL};
    cfg = config(ns);
    assert_int_equal(imf_train_create(MPI_COMM_WORLD, cfg, part, &t), IMF_OK);
    assert_int_equal(imf_trainer_sweep(t), IMF_OK);
    imf_exchange_traffic(&a);
    assert_int_equal(imf_trainer_sweep(t), IMF_OK);
    imf_exchange_traffic(&b);
    assert_int_equal(b.rows_recv[0] - a.rows_recv[0], 0);
    assert_int_equal(b.rows_sent[0] - a.rows_sent[0], 0);
    assert_int_equal(b.rows_recv[1] - a.rows_recv[1], node_recv[g - 1]);
    assert_int_equal(b.rows_sent[1] - a.rows_sent[1], node_sent[g - 1]);
    if (rank_ == 0)
      fprintf(stderr, "[outblock traffic] node-shared, nodes of %d: node 0 received %lld row bytes from other nodes\n",
              g, (long long)node_recv[g - 1]);
    imf_trainer_destroy(&t);
    imf_config_destroy(&cfg);
  }
  /* dist.exchange = auto: out-block when the node's copies would pass half its memory */
  for (int small = 0; small < 2; small++) {
    const char *au[] = {"model.type=als", "model.k=5", "dist.exchange=auto",
                        small ? "dist.node_memory=0.01" : "dist.node_memory=1000000", NULL};
    cfg = config(au); /* a copy is 4 * 6 * 450 bytes: past half of 0.01 MiB, far below half of 1 TB */
    assert_int_equal(imf_train_create(MPI_COMM_WORLD, cfg, part, &t), IMF_OK);
    assert_int_equal(imf_trainer_outblock_rows(t) > 0, small);
    imf_trainer_destroy(&t);
    imf_config_destroy(&cfg);
  }
  imf_partition_destroy(&part);
  free_data(&d);
}

/* A BPMF chain stopped out-block resumes replicated, and the other way round, where an
 * uninterrupted one ends; an iALS warm start into grown data out-block equals the replicated one. */
static void test_outblock_resume(void **state) {
  (void)state;
  dataset d;
  planted(150, 90, 3000, 0.2, 9, &d);
  const char *rep[] = {"model.type=bpmf", "model.k=4", "model.iterations=12", "model.burn_in=3", "model.samples=4", NULL};
  const char *ob[] = {"model.type=bpmf", "model.k=4", "model.iterations=12", "model.burn_in=3", "model.samples=4",
                      "dist.exchange=outblock", NULL};
  imf_config *cr = config(rep), *co = config(ob);
  imf_model *a = train(MPI_COMM_WORLD, &d.mine, d.nu, d.ni, cr, 12, NULL);
  for (int from = 0; from < 2; from++) {
    imf_model *half = train(MPI_COMM_WORLD, &d.mine, d.nu, d.ni, from ? co : cr, 7, NULL);
    imf_partition *part;
    assert_int_equal(imf_partition_build(MPI_COMM_WORLD, &d.mine, d.nu, d.ni, 0, 42, &part), IMF_OK);
    imf_trainer *t;
    assert_int_equal(imf_train_create(MPI_COMM_WORLD, from ? cr : co, part, &t), IMF_OK);
    assert_int_equal(imf_trainer_resume(t, half), IMF_OK);
    assert_int_equal(imf_trainer_run(t), IMF_OK);
    imf_model *g;
    assert_int_equal(imf_model_gather(MPI_COMM_WORLD, imf_trainer_model(t), &g), IMF_OK);
    assert_true(model_hash(g) == model_hash(a));
    imf_model_destroy(&g);
    imf_trainer_destroy(&t);
    imf_partition_destroy(&part);
    imf_model_destroy(&half);
  }
  imf_model_destroy(&a);
  imf_config_destroy(&cr);
  imf_config_destroy(&co);
  free_data(&d);
  /* iALS: a model of fewer users and items warm-starts the grown data the same either way */
  dataset e;
  implicit_planted(120, 60, 8, &e);
  uint64_t h[2];
  for (int o = 0; o < 2; o++) {
    const char *sets[] = {"model.type=ials", "model.k=4", o ? "dist.exchange=outblock" : "dist.exchange=replicated", NULL};
    imf_config *cfg = config(sets);
    imf_ratings small = e.mine; /* the first users and items only */
    imf_ratings keep = {0};
    assert_int_equal(imf_ratings_reserve(&keep, e.mine.n), IMF_OK);
    for (int64_t j = 0; j < small.n; j++)
      if (small.user[j] < 100 && small.item[j] < 50) imf_ratings_push(&keep, small.user[j], small.item[j], small.value[j], 0);
    imf_model *old = train(MPI_COMM_WORLD, &keep, 100, 50, cfg, 2, NULL);
    imf_partition *part;
    assert_int_equal(imf_partition_build(MPI_COMM_WORLD, &e.mine, e.nu, e.ni, 0, 42, &part), IMF_OK);
    imf_trainer *t;
    assert_int_equal(imf_train_create(MPI_COMM_WORLD, cfg, part, &t), IMF_OK);
    assert_int_equal(imf_trainer_resume(t, old), IMF_OK);
    assert_int_equal(imf_trainer_sweep(t), IMF_OK);
    imf_model *g;
    assert_int_equal(imf_model_gather(MPI_COMM_WORLD, imf_trainer_model(t), &g), IMF_OK);
    h[o] = model_hash(g);
    imf_model_destroy(&g);
    imf_trainer_destroy(&t);
    imf_partition_destroy(&part);
    imf_model_destroy(&old);
    imf_ratings_free(&keep);
    imf_config_destroy(&cfg);
  }
  assert_true(h[0] == h[1]);
  free_data(&e);
}

int main(int argc, char **argv) {
  imf_preinit();
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  imf_log_setup(rank_, getenv("IMF_TEST_VERBOSE") == NULL, IMF_LOG_TEXT);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_determinism_als),  cmocka_unit_test(test_determinism_bpmf),
      cmocka_unit_test(test_determinism_ials), cmocka_unit_test(test_determinism_large),
      cmocka_unit_test(test_resume),           cmocka_unit_test(test_warm_start),
      cmocka_unit_test(test_als_quality),      cmocka_unit_test(test_bpmf_vs_als),
      cmocka_unit_test(test_ials_ranking),     cmocka_unit_test(test_ials_tiny),
      cmocka_unit_test(test_tiny_more_ranks), cmocka_unit_test(test_traffic_layouts),
      cmocka_unit_test(test_node_shared_ials),  cmocka_unit_test(test_node_shared_bpmf),
      cmocka_unit_test(test_outblock_bitwise),  cmocka_unit_test(test_outblock_traffic),
      cmocka_unit_test(test_outblock_resume),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  MPI_Finalize();
  return rc;
}
