/* mpi_partition.c - the two-way block partition and the exchange collectives it rests on:
 * every rating lands exactly once by user and once by item, blocks are balanced by rating
 * count, more ranks than users works, the split (large-count) all-to-all path and an exchange
 * in many small rounds give the same result, and the deterministic sums do not depend on the rank count. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include "error.h"
#include "exchange.h"
#include "partition.h"
#include "rng.h"

static int rank_, size_;

/* A deterministic data set; rating j goes to rank j mod P. Power-law-ish user activity so
 * that balancing by count differs from balancing by rows. */
static void make_data(int64_t nu, int64_t ni, int64_t n, imf_ratings *mine) {
  memset(mine, 0, sizeof *mine);
  uint8_t *seen = calloc((size_t)(nu * ni), 1);
  imf_rng g;
  imf_rng_init(&g, 7, 1);
  int64_t j = 0;
  while (j < n) {
    double x = imf_rng_uniform(&g);
    int32_t u = (int32_t)(x * x * (double)nu), i = (int32_t)(imf_rng_uniform(&g) * (double)ni);
    float v = (float)(1 + imf_rng_u32(&g) % 5);
    if (seen[u * ni + i]) continue;
    seen[u * ni + i] = 1;
    if (j % size_ == rank_) assert_int_equal(imf_ratings_push(mine, u, i, v, IMF_NO_TIME), IMF_OK);
    j++;
  }
  free(seen);
}

static uint64_t mix(uint64_t u, uint64_t i, float v) {
  uint32_t bits;
  memcpy(&bits, &v, 4);
  return imf_hash3(99, (u << 32) | i, bits);
}

/* Order-independent digest (integer sum of hashes) and count of a CSR block. */
static void csr_digest(const imf_csr *c, int by_item, uint64_t *dig, int64_t *cnt) {
  for (int64_t r = 0; r < c->hi - c->lo; r++) {
    for (int64_t j = c->ptr[r]; j < c->ptr[r + 1]; j++) {
      uint64_t row = (uint64_t)(c->lo + r), col = (uint64_t)c->idx[j];
      *dig += by_item ? mix(col, row, c->val[j]) : mix(row, col, c->val[j]);
      (*cnt)++;
      if (j > c->ptr[r]) assert_true(c->idx[j - 1] <= c->idx[j]); /* sorted within the row */
    }
  }
}

static void check_partition(int64_t nu, int64_t ni, int64_t n, double frac) {
  imf_ratings mine;
  make_data(nu, ni, n, &mine);
  imf_partition *p;
  assert_int_equal(imf_partition_build(MPI_COMM_WORLD, &mine, nu, ni, frac, 5, &p), IMF_OK);
  /* expected digests of all ratings, of the training ratings and of the holdout */
  uint64_t exp_all = 0, exp_train = 0, exp_ho = 0;
  int64_t n_train = 0, n_ho = 0;
  for (int64_t j = 0; j < mine.n; j++) {
    uint64_t h = mix((uint64_t)mine.user[j], (uint64_t)mine.item[j], mine.value[j]);
    exp_all += h;
    if (imf_is_holdout(5, frac, mine.user[j], mine.item[j])) {
      exp_ho += h;
      n_ho++;
    } else {
      exp_train += h;
      n_train++;
    }
  }
  uint64_t d[5] = {exp_all, exp_train, exp_ho, 0, 0};
  int64_t c[5] = {(int64_t)mine.n, n_train, n_ho, 0, 0};
  uint64_t du = 0, di = 0, dh = 0;
  int64_t cu = 0, ci = 0, chh = 0;
  csr_digest(&p->by_user, 0, &du, &cu);
  csr_digest(&p->by_item, 1, &di, &ci);
  csr_digest(&p->holdout, 0, &dh, &chh);
  uint64_t got[6] = {du, di, dh, 0, 0, 0};
  int64_t gotc[3] = {cu, ci, chh};
  MPI_Allreduce(MPI_IN_PLACE, d, 3, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
  MPI_Allreduce(MPI_IN_PLACE, c, 3, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
  MPI_Allreduce(MPI_IN_PLACE, got, 3, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
  MPI_Allreduce(MPI_IN_PLACE, gotc, 3, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
  assert_int_equal(c[0], n);
  assert_int_equal(gotc[0], c[1]); /* training ratings by user: each exactly once */
  assert_int_equal(gotc[1], c[1]); /* ... and by item */
  assert_int_equal(gotc[2], c[2]); /* validation ratings by user */
  assert_true(got[0] == d[1]);
  assert_true(got[1] == d[1]);
  assert_true(got[2] == d[2]);
  assert_true(got[0] + got[2] == d[0]);
  assert_int_equal(p->nnz_train, c[1]);
  assert_int_equal(p->nnz_holdout, c[2]);
  if (frac > 0) assert_true(c[2] > 0);

  /* blocks: contiguous, cover everything, balanced to within a row's weight (ratings plus
   * IMF_ROW_COST) of total/P; each row's CSR length its training-rating count (counted here from
   * the data: the partition keeps no count arrays once built) */
  assert_null(p->user_count);
  assert_null(p->item_count);
  int64_t *counts[2] = {calloc((size_t)nu, 8), calloc((size_t)ni, 8)};
  for (int64_t j = 0; j < mine.n; j++)
    if (!imf_is_holdout(5, frac, mine.user[j], mine.item[j])) {
      counts[0][mine.user[j]]++;
      counts[1][mine.item[j]]++;
    }
  MPI_Allreduce(MPI_IN_PLACE, counts[0], (int)nu, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
  MPI_Allreduce(MPI_IN_PLACE, counts[1], (int)ni, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
  for (int side = 0; side < 2; side++) {
    const int64_t *st = side ? p->item_start : p->user_start, *cnt = counts[side];
    int64_t nrows = side ? ni : nu, maxrow = 0, total = 0;
    assert_int_equal(st[0], 0);
    assert_int_equal(st[size_], nrows);
    int64_t wtotal = 0;
    for (int64_t r = 0; r < nrows; r++) {
      total += cnt[r];
      wtotal += cnt[r] + IMF_ROW_COST;
      if (cnt[r] + IMF_ROW_COST > maxrow) maxrow = cnt[r] + IMF_ROW_COST;
    }
    assert_int_equal(total, c[1]);
    for (int r = 0; r < size_; r++) {
      assert_true(st[r] <= st[r + 1]);
      int64_t blk = 0;
      for (int64_t x = st[r]; x < st[r + 1]; x++) blk += cnt[x] + IMF_ROW_COST;
      assert_true(blk <= wtotal / size_ + 2 * maxrow + 1);
      for (int64_t x = st[r]; x < st[r + 1]; x++) assert_int_equal(imf_block_owner(st, size_, x), r);
    }
    const imf_csr *cc = side ? &p->by_item : &p->by_user;
    assert_int_equal(cc->lo, st[rank_]);
    assert_int_equal(cc->hi, st[rank_ + 1]);
    for (int64_t r = 0; r < cc->hi - cc->lo; r++) assert_int_equal(cc->ptr[r + 1] - cc->ptr[r], cnt[cc->lo + r]);
  }
  free(counts[0]);
  free(counts[1]);

  /* the split all-to-all path (messages of at most 7 ratings) builds the same CSR */
  imf_exchange_set_max_count(7);
  imf_partition *q;
  assert_int_equal(imf_partition_build(MPI_COMM_WORLD, &mine, nu, ni, frac, 5, &q), IMF_OK);
  imf_exchange_set_max_count(0);
  assert_int_equal(q->by_user.nnz, p->by_user.nnz);
  assert_int_equal(q->by_item.nnz, p->by_item.nnz);
  assert_memory_equal(q->by_user.idx, p->by_user.idx, (size_t)p->by_user.nnz * 4);
  assert_memory_equal(q->by_user.val, p->by_user.val, (size_t)p->by_user.nnz * 4);
  assert_memory_equal(q->by_item.idx, p->by_item.idx, (size_t)p->by_item.nnz * 4);
  assert_memory_equal(q->by_item.val, p->by_item.val, (size_t)p->by_item.nnz * 4);
  imf_partition_destroy(&q);
  /* rounds of a few dozen ratings (IMF_PARTITION_ROUND bytes a rank; 4 MiB by default): the ratings
   * arrive in another order, round by round, and the rows come out the same */
  setenv("IMF_PARTITION_ROUND", "2000", 1);
  assert_int_equal(imf_partition_build(MPI_COMM_WORLD, &mine, nu, ni, frac, 5, &q), IMF_OK);
  unsetenv("IMF_PARTITION_ROUND");
  const imf_csr *pc[3] = {&p->by_user, &p->by_item, &p->holdout}, *qc[3] = {&q->by_user, &q->by_item, &q->holdout};
  for (int s = 0; s < 3; s++) {
    assert_int_equal(qc[s]->nnz, pc[s]->nnz);
    assert_memory_equal(qc[s]->ptr, pc[s]->ptr, (size_t)(pc[s]->hi - pc[s]->lo + 1) * 8);
    assert_memory_equal(qc[s]->idx, pc[s]->idx, (size_t)pc[s]->nnz * 4);
    assert_memory_equal(qc[s]->val, pc[s]->val, (size_t)pc[s]->nnz * 4);
  }
  imf_partition_destroy(&q);
  imf_partition_destroy(&p);
  assert_null(p);
  imf_ratings_free(&mine);
}

static void test_partition_exact(void **state) {
  (void)state;
  check_partition(300, 120, 4000, 0.0);
}

static void test_partition_holdout(void **state) {
  (void)state;
  check_partition(300, 120, 4000, 0.1);
}

/* One user and one item: with 2 or 3 ranks most ranks own nothing. */
static void test_more_ranks_than_users(void **state) {
  (void)state;
  check_partition(1, 1, 1, 0.0);
  check_partition(2, 3, 5, 0.0);
  imf_ratings none;
  memset(&none, 0, sizeof none);
  imf_partition *p;
  assert_int_equal(imf_partition_build(MPI_COMM_WORLD, &none, 2, 2, 0.0, 1, &p), IMF_OK);
  assert_int_equal(p->nnz_train, 0);
  imf_partition_destroy(&p);
}

static void test_bad_index(void **state) {
  (void)state;
  imf_ratings r;
  memset(&r, 0, sizeof r);
  if (rank_ == size_ - 1) imf_ratings_push(&r, 5, 0, 1.0f, IMF_NO_TIME);
  imf_partition *p;
  assert_int_equal(imf_partition_build(MPI_COMM_WORLD, &r, 3, 3, 0.0, 1, &p), IMF_ERR_INPUT);
  assert_null(p);
  imf_ratings_free(&r);
}

/* The deterministic sums give the same bits as a serial chunked sum for any block layout. */
static void test_det_sums(void **state) {
  (void)state;
  const int64_t n = 3 * IMF_DET_CHUNK + 123;
  const int m = 2;
  double *all = malloc((size_t)n * m * sizeof(double));
  imf_rng g;
  imf_rng_init(&g, 3, 3);
  for (int64_t j = 0; j < n * m; j++) all[j] = imf_rng_normal(&g) * 1e3;
  double ref[2] = {0, 0};
  for (int64_t c = 0; c * IMF_DET_CHUNK < n; c++) {
    double acc[2] = {0, 0};
    for (int64_t r = c * IMF_DET_CHUNK; r < n && r < (c + 1) * IMF_DET_CHUNK; r++)
      for (int j = 0; j < m; j++) acc[j] += all[r * m + j];
    for (int j = 0; j < m; j++) ref[j] += acc[j];
  }
  /* a few uneven layouts, some with empty blocks */
  for (int layout = 0; layout < 3; layout++) {
    int64_t *start = malloc((size_t)(size_ + 1) * sizeof(int64_t));
    start[0] = 0;
    for (int r = 1; r < size_; r++) {
      int64_t cut = layout == 0 ? n * r / size_ : layout == 1 ? 17 * r : n - 5 * (size_ - r);
      start[r] = cut > start[r - 1] ? cut : start[r - 1];
    }
    start[size_] = n;
    double out[2];
    assert_int_equal(imf_det_sum_rows(MPI_COMM_WORLD, start, all + start[rank_] * m, m, out), IMF_OK);
    assert_memory_equal(out, ref, sizeof ref);
    free(start);
  }
  free(all);
}

int main(int argc, char **argv) {
  imf_preinit();
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_partition_exact),
      cmocka_unit_test(test_partition_holdout),
      cmocka_unit_test(test_more_ranks_than_users),
      cmocka_unit_test(test_bad_index),
      cmocka_unit_test(test_det_sums),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  MPI_Finalize();
  return rc;
}
