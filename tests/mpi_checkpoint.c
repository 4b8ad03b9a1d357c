/* mpi_checkpoint.c - model checkpoints and the model directory under 1, 2 and 3 ranks: bitwise
 * round trips (ALS with biases, BPMF with chain state and kw = 3k, fewer users than ranks,
 * arrays moved in many small rounds), a read on another rank count, the atomic replace under
 * an injected fault, damaged and foreign files, and versions / CURRENT / the writer lock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "checkpoint.h"
#include "error.h"
#include "modeldir.h"
#include "testutil.h"
#include "testassert.h"

static int rank, nprocs;

/* A deterministic value for cell j of array `which` of model variant `seed`: the same on every
 * rank, distinct enough that a misplaced row shows. */
static float val(int seed, int which, int64_t j) {
  return (float)(seed * 1000 + which * 100) + (float)j * 0.25f + 0.125f;
}


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
  if (m->chain.U) {
    for (int64_t j = 0; j < nu * k; j++) m->chain.U[j] = val(seed, 5, j);
    for (int64_t j = 0; j < ni * k; j++) m->chain.V[j] = val(seed, 6, j);
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
  m->mu = 3.25 + seed;
  m->lambda = 0.05;
  m->lambda_bias = type == IMF_MODEL_ALS ? 0.01 : NAN;
  m->alpha = NAN;
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

static void make_meta(imf_ckpt_meta *meta, const imf_model *m, int with_ids) {
  memset(meta, 0, sizeof *meta);
  meta->config = strdup("[model]\ntype = als\nk = 3\n\n[train]\niterations = 10\n");
  memset(meta->store_digest, 'a', 64);
  meta->batches_seen = 2;
  if (with_ids) {
    tu_make_ids(&meta->users, "user", m->nusers, 1);
    tu_make_ids(&meta->items, "item-", m->nitems, 1);
  }
}

static void same_ids(const imf_idlist *a, const imf_idlist *b) {
  assert_int_equal(a->n, b->n);
  if (!a->n) return;
  assert_memory_equal(a->off, b->off, (size_t)(a->n + 1) * 8);
  if (a->off[a->n]) assert_memory_equal(a->blob, b->blob, (size_t)a->off[a->n]);
}

static void same_meta(const imf_ckpt_meta *a, const imf_ckpt_meta *b) {
  assert_string_equal(a->config, b->config);
  assert_string_equal(a->store_digest, b->store_digest);
  assert_int_equal(a->batches_seen, b->batches_seen);
  same_ids(&a->users, &b->users);
  same_ids(&a->items, &b->items);
}

/* Bitwise equality, NaNs included. */
static void same_model(const imf_model *a, const imf_model *b) {
  assert_int_equal(a->type, b->type);
  assert_int_equal(a->k, b->k);
  assert_int_equal(a->kw, b->kw);
  assert_int_equal(a->with_bias, b->with_bias);
  assert_int_equal(a->nusers, b->nusers);
  assert_int_equal(a->nitems, b->nitems);
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

/* Write m, read it back on all ranks and on rank 0 alone, and compare. */
static void round_trip(const char *path, const imf_model *m, const imf_ckpt_meta *meta) {
  OK(imf_checkpoint_write(MPI_COMM_WORLD, path, m, meta));
  imf_model *r = NULL;
  imf_ckpt_meta rm;
  OK(imf_checkpoint_read(MPI_COMM_WORLD, path, &r, &rm));
  same_model(m, r);
  same_meta(meta, &rm);
  assert_string_equal(rm.kind, "run");
  assert_true(strlen(rm.openblas_core) > 0);
  assert_true(strlen(rm.created) == 20);
  assert_true(strlen(rm.incremf_version) > 0);
  imf_model_destroy(&r);
  imf_ckpt_meta_free(&rm);
  /* one copy per node (pretend nodes of 1 and 2 ranks, and the real node): the same model, in
   * a segment that the model releases; it refuses to grow, a copy of it does not */
  for (int rpn = 0; rpn <= 2; rpn++) {
    OK(imf_checkpoint_read_shared(MPI_COMM_WORLD, rpn, path, &r, &rm));
    assert_non_null(r->shm);
    same_model(m, r);
    same_meta(meta, &rm);
    assert_int_equal(imf_model_grow(r, r->nusers + 1, r->nitems), IMF_ERR_USAGE);
    imf_model *c = NULL;
    OK(imf_model_copy(r, &c));
    assert_null(c->shm);
    OK(imf_model_grow(c, c->nusers + 1, c->nitems + 1));
    imf_model_destroy(&c);
    imf_model_destroy(&r);
    imf_ckpt_meta_free(&rm);
  }
  if (rank == 0) { /* another rank count reads the same file */
    OK(imf_checkpoint_read(MPI_COMM_SELF, path, &r, &rm));
    same_model(m, r);
    same_meta(meta, &rm);
    imf_model_destroy(&r);
    imf_ckpt_meta_free(&rm);
    imf_ckpt_info info;
    OK(imf_checkpoint_info(path, &info));
    assert_int_equal(info.nusers, m->nusers);
    assert_int_equal(info.kw, m->kw);
    assert_int_equal(info.nhistory, m->nhistory);
    assert_int_equal(info.format_version, 1);
    assert_int_equal(strlen(info.content_sha256), 64);
    assert_string_equal(info.config, meta->config);
    imf_ckpt_info_free(&info);
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

static void test_roundtrip_als(void **state) {
  (void)state;
  const char *dir = tu_tmpdir("ckpt-als");
  char path[600];
  snprintf(path, sizeof path, "%s/m.h5", dir);
  /* fewer users (2) than ranks on 3 ranks: empty selections */
  imf_model *m = make_model(IMF_MODEL_ALS, 3, 1, 2, 7, 1);
  imf_ckpt_meta meta;
  make_meta(&meta, m, 1);
  round_trip(path, m, &meta);
  /* the same through many small rounds (3 rows of 3 floats per call) */
  imf_checkpoint_set_io_chunk(40);
  round_trip(path, m, &meta);
  imf_checkpoint_set_io_chunk(0);
  imf_model_destroy(&m);
  imf_ckpt_meta_free(&meta);
  /* no users at all, no ids, no history; a long config (past the 64 KiB attribute header) */
  m = make_model(IMF_MODEL_IALS, 2, 1, 0, 5, 2);
  m->nhistory = 0;
  make_meta(&meta, m, 0);
  free(meta.config);
  meta.config = malloc(100001);
  memset(meta.config, 'x', 100000);
  meta.config[100000] = '\0';
  round_trip(path, m, &meta);
  imf_model_destroy(&m);
  imf_ckpt_meta_free(&meta);
}

static void test_roundtrip_bpmf(void **state) {
  (void)state;
  const char *dir = tu_tmpdir("ckpt-bpmf");
  char path[600];
  snprintf(path, sizeof path, "%s/b.h5", dir);
  imf_model *m = make_model(IMF_MODEL_BPMF, 2, 3, 5, 4, 3);
  assert_int_equal(m->kw, 6);
  imf_ckpt_meta meta;
  make_meta(&meta, m, 1);
  round_trip(path, m, &meta);
  imf_checkpoint_set_io_chunk(1); /* one row per call */
  round_trip(path, m, &meta);
  imf_checkpoint_set_io_chunk(0);
  imf_model_destroy(&m);
  imf_ckpt_meta_free(&meta);
}

static void test_atomic(void **state) {
  (void)state;
  const char *dir = tu_tmpdir("ckpt-atomic");
  char path[600];
  snprintf(path, sizeof path, "%s/m.h5", dir);
  imf_model *a = make_model(IMF_MODEL_ALS, 3, 1, 4, 3, 1), *b = make_model(IMF_MODEL_ALS, 3, 1, 6, 3, 2);
  imf_ckpt_meta meta;
  make_meta(&meta, a, 0);
  OK(imf_checkpoint_write(MPI_COMM_WORLD, path, a, &meta));
  setenv("IMF_FAULT", "checkpoint-before-rename", 1);
  FAILS(imf_checkpoint_write(MPI_COMM_WORLD, path, b, &meta), IMF_ERR_RUNTIME, "injected fault");
  unsetenv("IMF_FAULT");
  imf_model *r = NULL;
  OK(imf_checkpoint_read(MPI_COMM_WORLD, path, &r, NULL));
  same_model(a, r);
  imf_model_destroy(&r);
  /* and a normal write afterwards replaces it (over the leftover tmp file) */
  OK(imf_checkpoint_write(MPI_COMM_WORLD, path, b, &meta));
  OK(imf_checkpoint_read(MPI_COMM_WORLD, path, &r, NULL));
  same_model(b, r);
  imf_model_destroy(&r);
  imf_model_destroy(&a);
  imf_model_destroy(&b);
  imf_ckpt_meta_free(&meta);
}

/* (rank 0) Flip bytes in the middle of /factors/P. */
static void flip_factor_bytes(const char *path) {
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  assert_true(f >= 0);
  hid_t d = H5Dopen2(f, "/factors/P", H5P_DEFAULT);
  assert_true(d >= 0);
  haddr_t off = H5Dget_offset(d);
  hsize_t size = H5Dget_storage_size(d);
  H5Dclose(d);
  H5Fclose(f);
  assert_true(off != HADDR_UNDEF && size > 16);
  int fd = open(path, O_RDWR);
  assert_true(fd >= 0);
  unsigned char buf[4];
  assert_int_equal(pread(fd, buf, 4, (off_t)(off + size / 2)), 4);
  for (int i = 0; i < 4; i++) buf[i] ^= 0x5a;
  assert_int_equal(pwrite(fd, buf, 4, (off_t)(off + size / 2)), 4);
  close(fd);
}

static void test_corrupt(void **state) {
  (void)state;
  const char *dir = tu_tmpdir("ckpt-bad");
  char path[600], p2[600], p3[600], p4[600], p5[600], p6[600];
  snprintf(path, sizeof path, "%s/flip.h5", dir);
  snprintf(p2, sizeof p2, "%s/half.h5", dir);
  snprintf(p3, sizeof p3, "%s/text.h5", dir);
  snprintf(p4, sizeof p4, "%s/plain.h5", dir);
  snprintf(p5, sizeof p5, "%s/v2.h5", dir);
  snprintf(p6, sizeof p6, "%s/missing.h5", dir);
  imf_model *m = make_model(IMF_MODEL_ALS, 4, 1, 50, 20, 1), *r = NULL;
  imf_ckpt_meta meta;
  make_meta(&meta, m, 1);
  OK(imf_checkpoint_write(MPI_COMM_WORLD, path, m, &meta));
  OK(imf_checkpoint_write(MPI_COMM_WORLD, p2, m, &meta));
  OK(imf_checkpoint_write(MPI_COMM_WORLD, p5, m, &meta));
  if (rank == 0) {
    flip_factor_bytes(path);
    struct stat sb;
    assert_int_equal(stat(p2, &sb), 0);
    assert_int_equal(truncate(p2, sb.st_size / 2), 0);
    assert_int_equal(tu_write_file(p3, "user,item,rating\n1,2,3\n"), 0);
    /* an HDF5 file that is not ours */
    hid_t f = H5Fcreate(p4, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t n = 4;
    hid_t sp = H5Screate_simple(1, &n, NULL);
    hid_t d = H5Dcreate2(f, "x", H5T_NATIVE_INT, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int x[4] = {1, 2, 3, 4};
    H5Dwrite(d, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x);
    H5Dclose(d);
    H5Sclose(sp);
    H5Fclose(f);
    /* a newer format version */
    f = H5Fopen(p5, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t a = H5Aopen(f, "format_version", H5P_DEFAULT);
    int64_t two = 2;
    assert_true(H5Awrite(a, H5T_NATIVE_INT64, &two) >= 0);
    H5Aclose(a);
    H5Fclose(f);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  FAILS(imf_checkpoint_read(MPI_COMM_WORLD, path, &r, NULL), IMF_ERR_INPUT,
        "is corrupt: its content digest does not match (restore an earlier version with "
        "`incremf rollback`)");
  /* the advice is a field of its own: the reason alone (train --resume's message) carries none */
  assert_string_equal(imf_err_advice(), "restore an earlier version with `incremf rollback`");
  assert_null(strstr(imf_err_reason(), "rollback"));
  assert_non_null(strstr(imf_err_reason(), "is corrupt: its content digest does not match"));
  assert_null(r);
  FAILS(imf_checkpoint_read(MPI_COMM_WORLD, p2, &r, NULL), IMF_ERR_INPUT,
        "half.h5 is not a readable HDF5 file (truncated or corrupt?)");
  FAILS(imf_checkpoint_read(MPI_COMM_WORLD, p3, &r, NULL), IMF_ERR_INPUT,
        "text.h5 is not a readable HDF5 file (truncated or corrupt?)");
  FAILS(imf_checkpoint_read(MPI_COMM_WORLD, p4, &r, NULL), IMF_ERR_INPUT,
        "plain.h5 is not an incremf model checkpoint");
  FAILS(imf_checkpoint_read(MPI_COMM_WORLD, p5, &r, NULL), IMF_ERR_INPUT,
        "v2.h5 was written by a newer incremf (model format 2); upgrade incremf");
  FAILS(imf_checkpoint_read(MPI_COMM_WORLD, p6, &r, NULL), IMF_ERR_NOTFOUND, "does not exist");
  FAILS(imf_checkpoint_read(MPI_COMM_WORLD, dir, &r, NULL), IMF_ERR_INPUT, "is a directory");
  assert_null(r);
  if (rank == 0) {
    imf_ckpt_info info;
    FAILS(imf_checkpoint_info(p4, &info), IMF_ERR_INPUT, "not an incremf model checkpoint");
    FAILS(imf_checkpoint_info(p5, &info), IMF_ERR_INPUT, "newer incremf");
  }
  /* a model whose ids do not match its shape is refused before anything is written */
  meta.users.n = 3;
  FAILS(imf_checkpoint_write(MPI_COMM_WORLD, p6, m, &meta), IMF_ERR_RUNTIME, "user ids");
  meta.users.n = 50;
  assert_int_equal(access(p6, F_OK), -1);
  imf_model_destroy(&m);
  imf_ckpt_meta_free(&meta);
}

static void test_modeldir(void **state) {
  (void)state;
  const char *base = tu_tmpdir("mdir");
  char dir[600], path[4400];
  snprintf(dir, sizeof dir, "%s/model", base);
  imf_modeldir *md = NULL, *other = NULL;
  FAILS(imf_modeldir_open(MPI_COMM_WORLD, dir, 0, 0, 0, &md), IMF_ERR_NOTFOUND, "does not exist");
  OK(imf_modeldir_open(MPI_COMM_WORLD, dir, 1, 1, 0, &md));
  assert_non_null(strstr(imf_modeldir_run_checkpoint(md), "/model/run/checkpoint.h5"));
  assert_non_null(strstr(imf_modeldir_log_path(md), "/model/train.jsonl"));
  int64_t v = -1;
  FAILS(imf_modeldir_current(md, path, sizeof path, &v), IMF_ERR_NOTFOUND, "no model version");
  assert_int_equal(v, 0);
  imf_model *a = make_model(IMF_MODEL_ALS, 3, 1, 4, 3, 1), *b = make_model(IMF_MODEL_BPMF, 2, 2, 3, 5, 2), *r = NULL;
  imf_ckpt_meta meta, rm;
  make_meta(&meta, a, 1);
  OK(imf_modeldir_commit(md, a, &meta, &v));
  assert_int_equal(v, 1);
  imf_ckpt_meta_free(&meta);
  make_meta(&meta, b, 1);
  OK(imf_modeldir_commit(md, b, &meta, &v));
  assert_int_equal(v, 2);
  OK(imf_modeldir_current(md, path, sizeof path, &v));
  assert_int_equal(v, 2);
  assert_non_null(strstr(path, "/model/versions/v000002.h5"));
  OK(imf_checkpoint_read(MPI_COMM_WORLD, path, &r, &rm));
  same_model(b, r);
  assert_string_equal(rm.kind, "version");
  imf_model_destroy(&r);
  imf_ckpt_meta_free(&rm);
  if (rank == 0) {
    char cur[700];
    snprintf(cur, sizeof cur, "%s/CURRENT", dir);
    char *text = tu_read_file(cur, NULL);
    assert_string_equal(text, "v000002.h5\n");
    free(text);
  }
  /* a second writer is refused; a reader is not */
  FAILS(imf_modeldir_open(MPI_COMM_WORLD, dir, 0, 1, 0, &other), IMF_ERR_LOCKED, "is locked");
  assert_null(other);
  OK(imf_modeldir_open(MPI_COMM_WORLD, dir, 0, 0, 0, &other));
  FAILS(imf_modeldir_set_current(other, 1), IMF_ERR_RUNTIME, "read-only");
  /* rollback */
  OK(imf_modeldir_set_current(md, 1));
  OK(imf_modeldir_current(other, path, sizeof path, &v));
  assert_int_equal(v, 1);
  OK(imf_checkpoint_read(MPI_COMM_WORLD, path, &r, NULL));
  same_model(a, r);
  imf_model_destroy(&r);
  FAILS(imf_modeldir_set_current(md, 9), IMF_ERR_NOTFOUND, "has no version 9");
  imf_modeldir_close(&other);
  /* a commit after a rollback takes a new number: versions are never overwritten */
  imf_ckpt_meta_free(&meta);
  make_meta(&meta, a, 1);
  OK(imf_modeldir_commit(md, a, &meta, &v));
  assert_int_equal(v, 3);
  int64_t *vs = NULL, n = 0;
  OK(imf_modeldir_list_versions(md, &vs, &n));
  assert_int_equal(n, 3);
  assert_int_equal(vs[0], 1);
  assert_int_equal(vs[2], 3);
  free(vs);
  /* a commit killed before its rename leaves CURRENT on the previous version */
  imf_ckpt_meta_free(&meta);
  make_meta(&meta, b, 1);
  setenv("IMF_FAULT", "checkpoint-before-rename", 1);
  FAILS(imf_modeldir_commit(md, b, &meta, &v), IMF_ERR_RUNTIME, "injected fault");
  unsetenv("IMF_FAULT");
  OK(imf_modeldir_current(md, path, sizeof path, &v));
  assert_int_equal(v, 3);
  /* CURRENT naming a version that is gone */
  if (rank == 0) {
    char cur[700];
    snprintf(cur, sizeof cur, "%s/CURRENT", dir);
    assert_int_equal(tu_write_file(cur, "v000007.h5\n"), 0);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  char want[900];
  snprintf(want, sizeof want, "%s/CURRENT names v000007.h5, which does not exist: run `incremf "
           "rollback --model %s --to 3`", dir, dir);
  FAILS(imf_modeldir_current(md, path, sizeof path, &v), IMF_ERR_INPUT, want);
  imf_modeldir_close(&md);
  assert_null(md);
  /* the lock went with the close; a reopen cleans the killed commit's tmp file */
  OK(imf_modeldir_open(MPI_COMM_WORLD, dir, 0, 1, 0, &md));
  if (rank == 0) {
    char tmp[700];
    snprintf(tmp, sizeof tmp, "%s/versions/v000004.h5.tmp", dir);
    assert_int_equal(access(tmp, F_OK), -1);
  }
  imf_modeldir_close(&md);
  /* a data store is not a model directory */
  if (rank == 0) {
    char mf[700];
    snprintf(mf, sizeof mf, "%s/MANIFEST", base);
    assert_int_equal(tu_write_file(mf, "x\n"), 0);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  FAILS(imf_modeldir_open(MPI_COMM_WORLD, base, 1, 1, 0, &md), IMF_ERR_USAGE, "is a data store");
  imf_model_destroy(&a);
  imf_model_destroy(&b);
  imf_ckpt_meta_free(&meta);
}

int main(int argc, char **argv) {
  imf_preinit();
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &nprocs);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roundtrip_als),
      cmocka_unit_test(test_roundtrip_bpmf),
      cmocka_unit_test(test_atomic),
      cmocka_unit_test(test_corrupt),
      cmocka_unit_test(test_modeldir),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  MPI_Finalize();
  return rc;
}
