/* mpi_modelblock.c - block models (modelblock.h) under 1, 2 and 3 ranks: a model cut into uneven
 * blocks (a rank with an empty block on 3 ranks) and written by imf_checkpoint_write gives the
 * file its replicated form gives (same datasets, bytes, attributes and content digest), reads
 * back whole, and gathers back bitwise (ALS with biases, iALS, BPMF with its chain and kept
 * samples), also with arrays and digest moved in many small rounds; blocks that do not tile the
 * rows are refused on every rank and leave no file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <hdf5.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "checkpoint.h"
#include "error.h"
#include "modelblock.h"
#include "testutil.h"
#include "testassert.h"

static int rank, nprocs;

/* A deterministic nonzero value for cell j of array `which` of model variant `seed`: the same on
 * every rank, distinct enough that a misplaced row shows. */
static float val(int seed, int which, int64_t j) {
  return (float)(seed * 1000 + which * 100) + (float)j * 0.25f + 0.125f;
}


/* The BPMF chain state and kept samples (kw = k * S). */
static void fill_chain(imf_model *m, int k, int S, int seed) {
  for (int64_t j = 0; j < m->nusers * k; j++) m->chain.U[j] = val(seed, 5, j);
  for (int64_t j = 0; j < m->nitems * k; j++) m->chain.V[j] = val(seed, 6, j);
  for (int a = 0; a < k; a++) {
    m->chain.mu_u[a] = 0.5 + a;
    m->chain.mu_v[a] = -0.5 - a;
    for (int b = 0; b < k; b++) {
      m->chain.Lam_u[a * k + b] = a == b ? 2.0 + a : 0.1 * (a + b);
      m->chain.Lam_v[a * k + b] = a == b ? 3.0 + a : 0.2 * (a + b);
    }
  }
  m->chain.sweeps = 17;
  m->nsamples = S;
  m->max_samples = S;
  m->burn_in = 5;
  m->thin = 2;
}

/* A replicated model with every array and a history filled (biases for ALS). */
static imf_model *make_model(imf_model_type type, int k, int S, int64_t nu, int64_t ni, int seed) {
  imf_model *m = NULL;
  OK(imf_model_create(type, k, nu, ni, type == IMF_MODEL_ALS, &m));
  if (S > 1) OK(imf_model_set_kw(m, k * S));
  for (int64_t j = 0; j < nu * m->kw; j++) m->P[j] = val(seed, 1, j);
  for (int64_t j = 0; j < ni * m->kw; j++) m->Q[j] = val(seed, 2, j);
  if (m->with_bias) {
    for (int64_t j = 0; j < nu; j++) m->bu[j] = val(seed, 3, j);
    for (int64_t j = 0; j < ni; j++) m->bi[j] = -val(seed, 4, j);
  }
  if (m->chain.U) fill_chain(m, k, S, seed);
  m->mu = type == IMF_MODEL_IALS ? 0.0 : 3.25 + seed;
  m->lambda = 0.05;
  m->lambda_bias = type == IMF_MODEL_ALS ? 0.01 : NAN;
  m->alpha = type == IMF_MODEL_IALS ? 40.0 : NAN;
  m->seed = 0x9e3779b97f4a7c15ull + (uint64_t)seed;
  m->iteration = 4 + seed;
  for (int j = 0; j < 3; j++) {
    imf_sweep_metrics h = {.iteration = j + 1, .train_loss = 100.0 / (j + 1),
                           .train_rmse = 1.5 - 0.25 * j, .val_rmse = j == 1 ? NAN : 0.9 - 0.1 * j,
                           .val_mae = 0.7, .seconds = 0.01 * j};
    OK(imf_model_push_history(m, &h));
  }
  return m;
}

/* Meta with ids and a fixed creation time, so that two writes give the same attributes. */
static void make_meta(imf_ckpt_meta *meta, const imf_model *m) {
  memset(meta, 0, sizeof *meta);
  meta->config = strdup("[model]\ntype = als\nk = 3\n");
  memset(meta->store_digest, 'a', 64);
  meta->batches_seen = 2;
  snprintf(meta->created, sizeof meta->created, "2026-01-02T03:04:05Z");
  tu_make_ids(&meta->users, "user", m->nusers, 0);
  tu_make_ids(&meta->items, "item-", m->nitems, 0);
}

/* Bitwise equality, NaNs included. */
static void same_model(const imf_model *a, const imf_model *b) {
  assert_int_equal(a->type, b->type);
  assert_int_equal(a->k, b->k);
  assert_int_equal(a->kw, b->kw);
  assert_int_equal(a->with_bias, b->with_bias);
  assert_int_equal(a->nusers, b->nusers);
  assert_int_equal(a->nitems, b->nitems);
  assert_int_equal(a->blocked, 0);
  assert_int_equal(b->blocked, 0);
  assert_memory_equal(&a->mu, &b->mu, 8);
  assert_memory_equal(&a->lambda, &b->lambda, 8);
  assert_memory_equal(&a->lambda_bias, &b->lambda_bias, 8);
  assert_memory_equal(&a->alpha, &b->alpha, 8);
  assert_true(a->seed == b->seed);
  assert_int_equal(a->iteration, b->iteration);
  assert_int_equal(a->nsamples, b->nsamples);
  assert_int_equal(a->max_samples, b->max_samples);
  assert_int_equal(a->burn_in, b->burn_in);
  assert_int_equal(a->thin, b->thin);
  size_t nu = (size_t)a->nusers, ni = (size_t)a->nitems, k = (size_t)a->k, kw = (size_t)a->kw;
  if (nu) assert_memory_equal(a->P, b->P, nu * kw * 4);
  if (ni) assert_memory_equal(a->Q, b->Q, ni * kw * 4);
  assert_true((a->bu == NULL) == (b->bu == NULL));
  if (a->bu && nu) assert_memory_equal(a->bu, b->bu, nu * 4);
  if (a->bi && ni) assert_memory_equal(a->bi, b->bi, ni * 4);
  assert_true((a->chain.U == NULL) == (b->chain.U == NULL));
  if (a->chain.U) {
    if (nu) assert_memory_equal(a->chain.U, b->chain.U, nu * k * 4);
    if (ni) assert_memory_equal(a->chain.V, b->chain.V, ni * k * 4);
    assert_memory_equal(a->chain.mu_u, b->chain.mu_u, k * 8);
    assert_memory_equal(a->chain.mu_v, b->chain.mu_v, k * 8);
    assert_memory_equal(a->chain.Lam_u, b->chain.Lam_u, k * k * 8);
    assert_memory_equal(a->chain.Lam_v, b->chain.Lam_v, k * k * 8);
    assert_int_equal(a->chain.sweeps, b->chain.sweeps);
  }
  assert_int_equal(a->nhistory, b->nhistory);
  if (a->nhistory) assert_memory_equal(a->history, b->history, (size_t)a->nhistory * sizeof *a->history);
}

/* Rank r's block of n rows (side 0 users, 1 items), uneven and not the even split: on 2 ranks a
 * third and the rest (two thirds and the rest for items); on 3 ranks rank 1 holds no users and
 * rank 0 no items. */
static void cut(int64_t n, int side, int r, int64_t b[2]) {
  int64_t s[4] = {0, n, n, n};
  if (nprocs == 2) s[1] = side ? 2 * n / 3 : n / 3;
  if (nprocs == 3) {
    s[1] = side ? 0 : n / 3;
    s[2] = side ? 2 * n / 3 : n / 3;
  }
  if (nprocs > 3) { /* (the tests run on 1 to 3 ranks) */
    b[0] = n * r / nprocs;
    b[1] = n * (r + 1) / nprocs;
    return;
  }
  b[0] = s[r];
  b[1] = s[r + 1];
}

/* This rank's block model of m, cut as cut() says. */
static imf_model *block_of(const imf_model *m) {
  int64_t u[2], it[2];
  cut(m->nusers, 0, rank, u);
  cut(m->nitems, 1, rank, it);
  imf_model *b = NULL;
  OK(imf_model_block_of(m, u[0], u[1], it[0], it[1], &b));
  assert_int_equal(b->blocked, 1);
  assert_int_equal(imf_model_urows(b), u[1] - u[0]);
  assert_int_equal(imf_model_irows(b), it[1] - it[0]);
  if (u[1] > u[0]) assert_memory_equal(b->P, m->P + u[0] * m->kw, (size_t)(u[1] - u[0]) * (size_t)m->kw * 4);
  if (it[1] > it[0]) assert_memory_equal(b->Q, m->Q + it[0] * m->kw, (size_t)(it[1] - it[0]) * (size_t)m->kw * 4);
  return b;
}

static void same_info(const imf_ckpt_info *a, const imf_ckpt_info *b) {
  const int64_t ia[] = {a->type, a->k, a->kw, a->with_bias, a->has_chain, a->nusers, a->nitems, a->iteration,
                        a->nsamples, a->max_samples, a->burn_in, a->thin, a->chain_sweeps, a->batches_seen,
                        a->nhistory, a->nuser_ids, a->nitem_ids, a->format_version};
  const int64_t ib[] = {b->type, b->k, b->kw, b->with_bias, b->has_chain, b->nusers, b->nitems, b->iteration,
                        b->nsamples, b->max_samples, b->burn_in, b->thin, b->chain_sweeps, b->batches_seen,
                        b->nhistory, b->nuser_ids, b->nitem_ids, b->format_version};
  assert_memory_equal(ia, ib, sizeof ia);
  const double da[] = {a->mu, a->lambda, a->lambda_bias, a->alpha}, db[] = {b->mu, b->lambda, b->lambda_bias, b->alpha};
  assert_memory_equal(da, db, sizeof da);
  assert_true(a->seed == b->seed);
  assert_string_equal(a->content_sha256, b->content_sha256);
  assert_int_equal(strlen(a->content_sha256), 64);
  assert_string_equal(a->store_digest, b->store_digest);
  assert_string_equal(a->kind, b->kind);
  assert_string_equal(a->openblas_core, b->openblas_core);
  assert_string_equal(a->created, b->created);
  assert_string_equal(a->incremf_version, b->incremf_version);
  assert_string_equal(a->config, b->config);
}

/* (rank 0) The datasets of two files, raw: the same names in each group, the same bytes. */
static void same_datasets(const char *pa, const char *pb) {
  static const char *groups[] = {"/", "/factors", "/bias", "/bpmf", "/history", "/ids"};
  static const char *sets[] = {"/factors/P", "/factors/Q", "/bias/user", "/bias/item", "/bpmf/U", "/bpmf/V",
                               "/bpmf/mu_u", "/bpmf/mu_v", "/bpmf/Lam_u", "/bpmf/Lam_v", "/history/iteration",
                               "/history/train_loss", "/history/train_rmse", "/history/val_rmse",
                               "/history/val_mae", "/history/seconds", "/ids/user_blob", "/ids/item_blob",
                               "/ids/user_off", "/ids/item_off"};
  hid_t f[2] = {H5Fopen(pa, H5F_ACC_RDONLY, H5P_DEFAULT), H5Fopen(pb, H5F_ACC_RDONLY, H5P_DEFAULT)};
  assert_true(f[0] >= 0 && f[1] >= 0);
  for (size_t g = 0; g < sizeof groups / sizeof *groups; g++) {
    int ex = g == 0 || H5Lexists(f[0], groups[g], H5P_DEFAULT) > 0;
    assert_int_equal(ex, g == 0 || H5Lexists(f[1], groups[g], H5P_DEFAULT) > 0);
    if (!ex) continue;
    H5G_info_t ga, gb;
    assert_true(H5Gget_info_by_name(f[0], groups[g], &ga, H5P_DEFAULT) >= 0);
    assert_true(H5Gget_info_by_name(f[1], groups[g], &gb, H5P_DEFAULT) >= 0);
    assert_int_equal(ga.nlinks, gb.nlinks);
  }
  for (size_t j = 0; j < sizeof sets / sizeof *sets; j++) {
    char grp[32];
    snprintf(grp, sizeof grp, "%.*s", (int)(strchr(sets[j] + 1, '/') - sets[j]), sets[j]);
    if (H5Lexists(f[0], grp, H5P_DEFAULT) <= 0) continue; /* (the groups of both files agree) */
    char *buf[2] = {NULL, NULL};
    size_t bytes[2] = {0, 0};
    for (int s = 0; s < 2; s++) {
      hid_t d = H5Dopen2(f[s], sets[j], H5P_DEFAULT);
      assert_true(d >= 0);
      hid_t t = H5Dget_type(d), sp = H5Dget_space(d);
      bytes[s] = (size_t)H5Sget_simple_extent_npoints(sp) * H5Tget_size(t);
      buf[s] = calloc(bytes[s] + 1, 1);
      if (bytes[s]) assert_true(H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf[s]) >= 0);
      H5Sclose(sp);
      H5Tclose(t);
      H5Dclose(d);
    }
    assert_int_equal(bytes[0], bytes[1]);
    if (bytes[0]) assert_memory_equal(buf[0], buf[1], bytes[0]);
    free(buf[0]);
    free(buf[1]);
  }
  H5Fclose(f[0]);
  H5Fclose(f[1]);
}

/* Write m's block model and m itself; the two files must be the same, read back as m, and the
 * block model gather back to m. */
static void check_blocked(const char *dir, const char *tag, const imf_model *m, const imf_ckpt_meta *meta) {
  char pb[700], pr[700];
  snprintf(pb, sizeof pb, "%s/%s-blocked.h5", dir, tag);
  snprintf(pr, sizeof pr, "%s/%s-replicated.h5", dir, tag);
  imf_model *blk = block_of(m), *r = NULL;
  OK(imf_checkpoint_write(MPI_COMM_WORLD, pb, blk, meta));
  OK(imf_checkpoint_write(MPI_COMM_WORLD, pr, m, meta));
  if (rank == 0) {
    imf_ckpt_info a, b;
    OK(imf_checkpoint_info(pb, &a));
    OK(imf_checkpoint_info(pr, &b));
    same_info(&a, &b);
    imf_ckpt_info_free(&a);
    imf_ckpt_info_free(&b);
    same_datasets(pb, pr);
    /* another rank count reads it (and checks its digest) */
    OK(imf_checkpoint_read(MPI_COMM_SELF, pb, &r, NULL));
    same_model(m, r);
    imf_model_destroy(&r);
  }
  imf_ckpt_meta rm;
  OK(imf_checkpoint_read(MPI_COMM_WORLD, pb, &r, &rm));
  same_model(m, r);
  assert_string_equal(rm.config, meta->config);
  imf_model_destroy(&r);
  imf_ckpt_meta_free(&rm);
  OK(imf_model_gather(MPI_COMM_WORLD, blk, &r));
  same_model(m, r);
  imf_model_destroy(&r);
  imf_model_destroy(&blk);
  MPI_Barrier(MPI_COMM_WORLD);
}

/* check_blocked with the default io chunk and in many small rounds (rows of 3 and of 1 float
 * a call at 12 bytes; one row a call at 4), in the write and in the streamed digest. */
static void check_all_chunks(const char *tag, const imf_model *m) {
  const char *dir = tu_tmpdir(tag);
  imf_ckpt_meta meta;
  make_meta(&meta, m);
  const int64_t chunks[] = {0, 12, 4};
  for (int c = 0; c < 3; c++) {
    char t[64];
    snprintf(t, sizeof t, "%s-%d", tag, c);
    imf_checkpoint_set_io_chunk(chunks[c]);
    check_blocked(dir, t, m, &meta);
  }
  imf_checkpoint_set_io_chunk(0);
  imf_ckpt_meta_free(&meta);
}

static void test_als(void **state) {
  (void)state;
  imf_model *m = make_model(IMF_MODEL_ALS, 3, 1, 11, 7, 1);
  check_all_chunks("mb-als", m);
  imf_model_destroy(&m);
}

static void test_ials(void **state) {
  (void)state;
  imf_model *m = make_model(IMF_MODEL_IALS, 2, 1, 9, 13, 2);
  check_all_chunks("mb-ials", m);
  imf_model_destroy(&m);
  /* fewer users than ranks: on 3 ranks two of the user blocks are empty */
  m = make_model(IMF_MODEL_IALS, 2, 1, 2, 5, 3);
  check_all_chunks("mb-ials-few", m);
  imf_model_destroy(&m);
}

static void test_bpmf(void **state) {
  (void)state;
  imf_model *m = make_model(IMF_MODEL_BPMF, 2, 3, 8, 10, 4);
  assert_int_equal(m->kw, 6);
  assert_non_null(m->chain.U);
  check_all_chunks("mb-bpmf", m);
  imf_model_destroy(&m);
}

/* A model that is not a block model gathers to its copy; block_of refuses rows out of range. */
static void test_gather_plain(void **state) {
  (void)state;
  imf_model *m = make_model(IMF_MODEL_ALS, 3, 1, 5, 4, 5), *g = NULL, *b = NULL;
  OK(imf_model_gather(MPI_COMM_WORLD, m, &g));
  assert_true(g != m && g->P != m->P);
  same_model(m, g);
  imf_model_destroy(&g);
  FAILS(imf_model_block_of(m, 0, 6, 0, 4, &b), IMF_ERR_USAGE, "not within the model's 5 users and 4 items");
  FAILS(imf_model_block_of(m, 3, 2, 0, 4, &b), IMF_ERR_USAGE, "not within");
  assert_null(b);
  OK(imf_model_block_of(m, 1, 3, 2, 2, &b));
  imf_model *bb = NULL;
  FAILS(imf_model_block_of(b, 0, 1, 0, 0, &bb), IMF_ERR_USAGE, "a block model already");
  imf_model_destroy(&b);
  imf_model_destroy(&m);
}

/* Write the block model blk (this rank's, spoiled by the caller) to a fresh path: it must fail on
 * every rank with a message containing text and leave neither the file nor its tmp file. */
static void refused(const char *dir, const char *name, const imf_model *blk, const char *text) {
  char path[700], tmp[800];
  snprintf(path, sizeof path, "%s/%s.h5", dir, name);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  imf_ckpt_meta meta;
  make_meta(&meta, blk);
  FAILS(imf_checkpoint_write(MPI_COMM_WORLD, path, blk, &meta), IMF_ERR_RUNTIME, text);
  MPI_Barrier(MPI_COMM_WORLD);
  assert_int_equal(access(path, F_OK), -1);
  assert_int_equal(access(tmp, F_OK), -1);
  imf_ckpt_meta_free(&meta);
}

static void test_not_tiling(void **state) {
  (void)state;
  const char *dir = tu_tmpdir("mb-bad");
  imf_model *m = make_model(IMF_MODEL_BPMF, 2, 2, 8, 10, 6), *b = block_of(m), *g = NULL;
  /* a gap: the last rank's user block starts a row late (on 1 rank: ends a row early) */
  int64_t keep[2] = {b->ublock[0], b->ublock[1]};
  if (rank == nprocs - 1) {
    if (nprocs > 1) b->ublock[0]++;
    else b->ublock[1]--;
  }
  refused(dir, "gap", b, nprocs > 1 ? "must tile the 8 users in rank order" : "short of the 8 users");
  FAILS(imf_model_gather(MPI_COMM_WORLD, b, &g), IMF_ERR_RUNTIME, "block model: ");
  assert_null(g);
  b->ublock[0] = keep[0];
  b->ublock[1] = keep[1];
  /* an overlap: rank 0's item block reaches into rank 1's */
  if (nprocs > 1) {
    if (rank == 0) b->iblock[1]++;
    refused(dir, "overlap", b, "must tile the 10 items in rank order");
    if (rank == 0) b->iblock[1]--;
  }
  /* a block past the rows, seen by its rank alone */
  if (rank == 0) b->ublock[1] = 9;
  refused(dir, "past", b, "are not within its 8 users and 10 items");
  b->ublock[1] = keep[1];
  /* a block model on some ranks only */
  if (nprocs > 1) refused(dir, "some", rank == 0 ? m : b, "a block model on some ranks only");
  /* and after all that, the good blocks still write */
  imf_ckpt_meta meta;
  make_meta(&meta, m);
  check_blocked(dir, "after", m, &meta);
  imf_ckpt_meta_free(&meta);
  imf_model_destroy(&b);
  imf_model_destroy(&m);
}

int main(int argc, char **argv) {
  imf_preinit();
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &nprocs);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_als),
      cmocka_unit_test(test_ials),
      cmocka_unit_test(test_bpmf),
      cmocka_unit_test(test_gather_plain),
      cmocka_unit_test(test_not_tiling),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  MPI_Finalize();
  return rc;
}
