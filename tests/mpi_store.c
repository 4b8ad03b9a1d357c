/* mpi_store.c - the rating data store under 1, 2 and 3 ranks: batches split across ranks
 * (empty ranks included), reads by user range, duplicate policies across batches, a digest
 * independent of the split and of the rank count, the crash hook, the writer lock, a corrupt
 * manifest and id map reloads; the standing holdout's copy in each batch (/holdout), read back
 * alone against the whole-store read, through forget and scrub. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <hdf5.h>
#include "config.h"
#include "error.h"
#include "idmap.h"
#include "partition.h"
#include "scale.h"
#include "store.h"
#include "testutil.h"
#include "testassert.h"

static int rank, nprocs;
#define NT IMF_NO_TIME

typedef struct {
  int32_t u, i;
  float v;
  int64_t t;
} row;

/* batch 1: users u0..u3, items i0..i4 */
static const row B1[] = {{0, 0, 1.0f, 100}, {0, 1, 2.0f, 100}, {1, 1, 3.0f, 100}, {1, 2, 4.0f, 100},
                         {2, 0, 5.0f, NT},  {3, 3, 1.5f, 100}, {3, 4, 2.5f, 100}};
/* batch 2: new user u4, new item i5; (0,0), (1,2), (3,3) repeat pairs of batch 1 */
static const row B2[] = {{0, 0, 4.0f, 200}, {1, 2, 1.0f, 50},  {2, 5, 3.0f, 200},
                         {3, 3, 2.0f, 100}, {4, 0, 5.0f, 300}};
#define N1 7
#define N2 5

static const row LATEST[] = {{0, 0, 4.0f, 200}, {0, 1, 2.0f, 100}, {1, 1, 3.0f, 100},
                             {1, 2, 4.0f, 100}, {2, 0, 5.0f, NT},  {2, 5, 3.0f, 200},
                             {3, 3, 2.0f, 100}, {3, 4, 2.5f, 100}, {4, 0, 5.0f, 300}};
static const row FIRST[] = {{0, 0, 1.0f, 100}, {0, 1, 2.0f, 100}, {1, 1, 3.0f, 100},
                            {1, 2, 4.0f, 100}, {2, 0, 5.0f, NT},  {2, 5, 3.0f, 200},
                            {3, 3, 1.5f, 100}, {3, 4, 2.5f, 100}, {4, 0, 5.0f, 300}};
static const row MEAN[] = {{0, 0, 2.5f, 200}, {0, 1, 2.0f, 100}, {1, 1, 3.0f, 100},
                           {1, 2, 2.5f, 100}, {2, 0, 5.0f, NT},  {2, 5, 3.0f, 200},
                           {3, 3, 1.75f, 100}, {3, 4, 2.5f, 100}, {4, 0, 5.0f, 300}};
#define NR 9

static void make_list(imf_idlist *l, const char *prefix, int from, int n) {
  l->n = n;
  l->off = calloc((size_t)n + 1, sizeof *l->off);
  l->blob = calloc((size_t)n * 16 + 1, 1);
  for (int j = 0; j < n; j++) {
    int w = sprintf(l->blob + l->off[j], "%s%d", prefix, from + j);
    l->off[j + 1] = l->off[j] + w;
  }
}

/* Which rank holds user u: split 0 = all on rank 0, 1 = even blocks of users, 2 = all on the
 * last rank (ranks before it empty). */
static int owner(int split, int u, int nusers) {
  if (split == 0) return 0;
  if (split == 2) return nprocs - 1;
  return (int)((int64_t)u * nprocs / nusers);
}

static void make_batch(imf_batch *b, const row *rows, int n, int split, int nusers, int64_t ub,
                       int64_t ib, int new_u, int new_i, char shachar) {
  memset(b, 0, sizeof *b);
  for (int j = 0; j < n; j++)
    if (owner(split, rows[j].u, nusers) == rank)
      OK(imf_ratings_push(&b->r, rows[j].u, rows[j].i, rows[j].v, rows[j].t));
  b->users_before = ub;
  b->items_before = ib;
  make_list(&b->new_users, "u", (int)ub, new_u);
  make_list(&b->new_items, "i", (int)ib, new_i);
  b->report.lines_read = n;
  b->report.stored = n;
  memset(b->report.sha256, shachar, 64);
  b->report.sha256[64] = '\0';
  snprintf(b->source, sizeof b->source, "input %c\nwith space.csv", shachar);
}

static void check_rows(const imf_ratings *r, const row *want, int nwant, int lo, int hi) {
  int64_t k = 0;
  for (int j = 0; j < nwant; j++) {
    if (want[j].u < lo || want[j].u >= hi) continue;
    assert_true(k < r->n);
    assert_int_equal(r->user[k], want[j].u);
    assert_int_equal(r->item[k], want[j].i);
    assert_true(fabsf(r->value[k] - want[j].v) < 1e-6f);
    assert_true(r->time[k] == want[j].t);
    k++;
  }
  assert_int_equal(k, r->n);
}

static void read_and_check(imf_store *s, const row *want, int nwant, int nusers) {
  /* every rank the whole range, then each rank its own block, then an empty range */
  imf_ratings r = {0};
  OK(imf_store_read_ratings(s, 0, nusers, &r));
  check_rows(&r, want, nwant, 0, nusers);
  imf_ratings_free(&r);
  int lo = rank * nusers / nprocs, hi = (rank + 1) * nusers / nprocs;
  OK(imf_store_read_ratings(s, lo, hi, &r));
  check_rows(&r, want, nwant, lo, hi);
  imf_ratings_free(&r);
  OK(imf_store_read_ratings(s, 2, 2, &r));
  assert_int_equal(r.n, 0);
  imf_ratings_free(&r);
  /* ranks ask for different, partly overlapping ranges (1 user each, rank 0 past the end) */
  int a = rank == 0 ? nusers + 3 : rank, z = a + 1;
  OK(imf_store_read_ratings(s, a, z, &r));
  check_rows(&r, want, nwant, a, z);
  imf_ratings_free(&r);
}

static imf_config *cfg_with(const char *dup) {
  imf_config *c;
  OK(imf_config_create(&c));
  char a[64];
  snprintf(a, sizeof a, "clean.duplicates=%s", dup);
  OK(imf_config_set(c, a));
  OK(imf_config_set(c, "clean.scale_min=0.5"));
  OK(imf_config_set(c, "clean.scale_max=5"));
  return c;
}

static void path_in(char *out, size_t cap, const char *dir, const char *name) {
  snprintf(out, cap, "%s/%s", dir, name);
}

/* Two batches under each policy: superseded counts, policy results, info. */
static void test_two_batches_policies(void **state) {
  (void)state;
  const char *pol[3] = {"latest", "first", "mean"};
  const row *want[3] = {LATEST, FIRST, MEAN};
  for (int p = 0; p < 3; p++) {
    char dir[600];
    snprintf(dir, sizeof dir, "%s/store", tu_tmpdir(pol[p]));
    imf_config *c = cfg_with(pol[p]);
    imf_store *s;
    OK(imf_store_create(MPI_COMM_WORLD, dir, c, &s));
    assert_int_equal(imf_store_nbatches(s), 0);
    assert_string_equal(imf_store_duplicate_policy(s), pol[p]);
    imf_batch b;
    make_batch(&b, B1, N1, 1 + p % 2, 4, 0, 0, 4, 5, 'a');
    OK(imf_store_write_batch(s, &b));
    assert_int_equal(b.report.batch, 1);
    assert_int_equal(b.report.superseded, 0);
    assert_int_equal(b.time_min, 100);
    assert_int_equal(b.time_max, 100);
    imf_batch_free(&b);
    read_and_check(s, B1, N1, 4);
    make_batch(&b, B2, N2, p % 2 ? 0 : 1, 5, 4, 5, 1, 1, 'b');
    OK(imf_store_write_batch(s, &b));
    assert_int_equal(b.report.batch, 2);
    assert_int_equal(b.report.superseded, 3);
    imf_batch_free(&b);
    assert_int_equal(imf_store_nusers(s), 5);
    assert_int_equal(imf_store_nitems(s), 6);
    read_and_check(s, want[p], NR, 5);
    imf_store_close(&s);
    assert_null(s);
    /* reopened read-only: the same answers */
    OK(imf_store_open(MPI_COMM_WORLD, dir, IMF_STORE_READ, 0, &s));
    assert_int_equal(imf_store_nbatches(s), 2);
    read_and_check(s, want[p], NR, 5);
    imf_store_info info;
    OK(imf_store_get_info(s, &info));
    assert_int_equal(info.users, 5);
    assert_int_equal(info.items, 6);
    assert_int_equal(info.ratings, NR);
    assert_int_equal(info.batches, 2);
    assert_true(info.scale_min == 0.5 && info.scale_max == 5.0);
    assert_int_equal(info.time_min, 50);
    assert_int_equal(info.time_max, 300);
    assert_string_equal(info.normalize, "none");
    assert_string_equal(info.digest, imf_store_digest(s));
    /* the observed scale, measured over the ranks' shares: batch 1 in half steps, batch 2 in
     * whole ones, the store's combined; the auto relevance threshold from it (scale.h) */
    double lo, hi, step, thr = 0;
    assert_int_equal(imf_store_batch_scale(s, 1, &lo, &hi, &step), 1);
    assert_true(lo == 1 && hi == 5 && step == 0.5);
    assert_int_equal(imf_store_batch_scale(s, 2, &lo, &hi, &step), 1);
    assert_true(lo == 1 && hi == 5 && step == 1);
    assert_int_equal(imf_store_scale(s, &lo, &hi, &step), 1);
    assert_true(lo == 1 && hi == 5 && step == 0.5 && info.value_known && info.value_step == 0.5);
    OK(imf_relevance_threshold(c, s, &thr));
    assert_true(thr == 4);
    char sha[65];
    memset(sha, 'b', 64);
    sha[64] = '\0';
    assert_int_equal(imf_store_find_sha256(s, sha), 2);
    memset(sha, 'c', 64);
    assert_int_equal(imf_store_find_sha256(s, sha), 0);
    /* id maps reload in order */
    imf_idmap *mu, *mi;
    OK(imf_idmap_create(&mu));
    OK(imf_idmap_create(&mi));
    OK(imf_store_load_idmaps(s, mu, mi));
    assert_int_equal(imf_idmap_size(mu), 5);
    assert_int_equal(imf_idmap_size(mi), 6);
    assert_int_equal(imf_idmap_find(mu, "u4", 2), 4);
    assert_int_equal(imf_idmap_find(mi, "i5", 2), 5);
    assert_int_equal(imf_idmap_find(mi, "i0", 2), 0);
    imf_idmap_destroy(&mu);
    imf_idmap_destroy(&mi);
    imf_store_close(&s);
    imf_config_destroy(&c);
  }
}

/* The content digest of the batch written with every row on rank 0 and with rows spread out;
 * the value is pinned, so runs under 1, 2 and 3 ranks also agree with each other. */
#define B1_DIGEST_PIN "c7f1249550af330dbdd4df598ce3e247bb40136c7eeb740cb2ac28f9865af881"
static void test_digest_independent(void **state) {
  (void)state;
  char d[3][65];
  for (int split = 0; split < 3; split++) {
    char dir[600];
    snprintf(dir, sizeof dir, "%s/store", tu_tmpdir("digest"));
    imf_store *s;
    OK(imf_store_create(MPI_COMM_WORLD, dir, NULL, &s));
    imf_batch b;
    make_batch(&b, B1, N1, split, 4, 0, 0, 4, 5, 'a');
    OK(imf_store_write_batch(s, &b));
    imf_batch_free(&b);
    snprintf(d[split], 65, "%s", imf_store_digest(s));
    read_and_check(s, B1, N1, 4);
    imf_store_close(&s);
  }
  assert_string_equal(d[0], d[1]);
  assert_string_equal(d[0], d[2]);
  if (rank == 0) printf("# store digest of batch 1: %s\n", d[0]);
  assert_string_equal(d[0], B1_DIGEST_PIN);
}

/* Bytes per stored timestamp in batch k of the store at dir (rank 0 reads, the others wait). */
static int time_width(const char *dir, int k) {
  int w = 0;
  if (rank == 0) {
    char p[700];
    snprintf(p, sizeof p, "%s/batch-%06d.h5", dir, k);
    hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "/ratings/time", H5P_DEFAULT);
    hid_t t = H5Dget_type(d);
    w = (int)H5Tget_size(t);
    H5Tclose(t);
    H5Dclose(d);
    H5Fclose(f);
  }
  MPI_Bcast(&w, 1, MPI_INT, 0, MPI_COMM_WORLD);
  return w;
}

/* Timestamps are stored in 4 bytes only when every row has one within int32 (the bounds
 * included), else in 8; reads give the same values either way, across batches of both widths
 * (the latest-by-time policy compares them), and the writer hands the caller's rows back intact. */
static void test_time_width(void **state) {
  (void)state;
  static const row E[] = {{0, 0, 1.0f, INT32_MIN}, {0, 1, 2.0f, INT32_MAX}, {1, 0, 3.0f, -7}};
  static const row M[] = {{0, 0, 4.0f, (int64_t)INT32_MIN - 1}, {0, 1, 5.0f, 1700000000123LL}, {2, 2, 1.0f, 0}};
  static const row WANT[] = {{0, 0, 1.0f, INT32_MIN}, {0, 1, 5.0f, 1700000000123LL}, {1, 0, 3.0f, -7}, {2, 2, 1.0f, 0}};
  char dir[600];
  snprintf(dir, sizeof dir, "%s/store", tu_tmpdir("timewidth"));
  imf_config *c = cfg_with("latest");
  imf_store *s;
  OK(imf_store_create(MPI_COMM_WORLD, dir, c, &s));
  imf_batch b;
  make_batch(&b, E, 3, 1, 2, 0, 0, 2, 2, 'e');
  OK(imf_store_write_batch(s, &b));
  for (int64_t j = 0; j < b.r.n; j++) /* narrowed for the write, widened back */
    assert_true(b.r.time[j] == INT32_MIN || b.r.time[j] == INT32_MAX || b.r.time[j] == -7);
  imf_batch_free(&b);
  assert_int_equal(time_width(dir, 1), 4);
  read_and_check(s, E, 3, 2);
  make_batch(&b, M, 3, 2, 3, 2, 2, 1, 1, 'f');
  OK(imf_store_write_batch(s, &b));
  assert_int_equal(b.time_min, (int64_t)INT32_MIN - 1);
  imf_batch_free(&b);
  assert_int_equal(time_width(dir, 2), 8);
  read_and_check(s, WANT, 4, 3);
  imf_store_close(&s);
  OK(imf_store_open(MPI_COMM_WORLD, dir, IMF_STORE_READ, 0, &s));
  read_and_check(s, WANT, 4, 3);
  imf_store_close(&s);
  imf_config_destroy(&c);
  /* B1 has a row without a time (8 bytes), B2 has times that fit (4): the policy tests above
   * read across both */
  snprintf(dir, sizeof dir, "%s/store", tu_tmpdir("timewidth2"));
  c = cfg_with("latest");
  OK(imf_store_create(MPI_COMM_WORLD, dir, c, &s));
  make_batch(&b, B1, N1, 1, 4, 0, 0, 4, 5, 'a');
  OK(imf_store_write_batch(s, &b));
  imf_batch_free(&b);
  make_batch(&b, B2, N2, 0, 5, 4, 5, 1, 1, 'b');
  OK(imf_store_write_batch(s, &b));
  imf_batch_free(&b);
  assert_int_equal(time_width(dir, 1), 8);
  assert_int_equal(time_width(dir, 2), 4);
  read_and_check(s, LATEST, NR, 5);
  imf_store_close(&s);
  imf_config_destroy(&c);
}

/* Overwrite rows [0, n) of a batch file's /ratings/user (rank 0, serial HDF5; the store must
 * be closed): raw data carries no checksum, so this is what a flipped bit on disk looks like. */
static void poke_users(const char *dir, int k, const int32_t *users, int n) {
  if (rank == 0) {
    char p[700];
    snprintf(p, sizeof p, "%s/batch-%06d.h5", dir, k);
    hid_t f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t d = H5Dopen2(f, "/ratings/user", H5P_DEFAULT);
    hid_t fs = H5Dget_space(d);
    hsize_t off = 0, cnt = (hsize_t)n;
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, &off, NULL, &cnt, NULL);
    hid_t ms = H5Screate_simple(1, &cnt, NULL);
    assert_true(H5Dwrite(d, H5T_NATIVE_INT32, ms, fs, H5P_DEFAULT, users) >= 0);
    H5Sclose(ms);
    H5Sclose(fs);
    H5Dclose(d);
    H5Fclose(f);
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

/* A batch whose rows are within bounds but out of (user, item) order, or repeat a pair, is
 * reported as corrupt by every read instead of handed on (a one-batch read is not re-sorted:
 * found by fuzz_store, where the ratings came back unsorted). */
static void test_rows_out_of_order(void **state) {
  (void)state;
  static const int32_t SWAPPED[] = {0, 3, 1}; /* rows 0-2 were users 0, 0, 1 */
  static const int32_t REPEAT[] = {0, 0, 0};  /* row 2 (1,1) becomes (0,1), a repeat of row 1 */
  const int32_t *bad[] = {SWAPPED, REPEAT};
  for (int c = 0; c < 2; c++) {
    char dir[600];
    snprintf(dir, sizeof dir, "%s/store", tu_tmpdir(c ? "rowsrepeat" : "rowsorder"));
    imf_store *s;
    OK(imf_store_create(MPI_COMM_WORLD, dir, NULL, &s));
    imf_batch b;
    make_batch(&b, B1, N1, 1, 4, 0, 0, 4, 5, 'o');
    OK(imf_store_write_batch(s, &b));
    imf_batch_free(&b);
    imf_store_close(&s);
    poke_users(dir, 1, bad[c], 3);
    OK(imf_store_open(MPI_COMM_WORLD, dir, IMF_STORE_READ, 0, &s));
    imf_ratings r = {0};
    assert_int_equal(imf_store_read_ratings(s, 0, 4, &r), IMF_ERR_INPUT);
    assert_non_null(strstr(imf_last_error(), "batch-000001.h5 is corrupt: its ratings are not in (user, item) order"));
    assert_int_equal(r.n, 0);
    /* read_batch splits the rows over the ranks: on 3 ranks the bad pair straddles a seam */
    assert_int_equal(imf_store_read_batch(s, 1, &r), IMF_ERR_INPUT);
    assert_non_null(strstr(imf_last_error(), "is corrupt: its ratings are not in (user, item) order"));
    assert_int_equal(r.n, 0);
    imf_ratings_free(&r);
    imf_store_close(&s);
  }
}

/* More ranks than users: some ranks hold no rows at all. */
static void test_tiny_batch(void **state) {
  (void)state;
  static const row T[] = {{0, 1, 3.0f, NT}, {1, 0, 4.0f, NT}};
  char dir[600];
  snprintf(dir, sizeof dir, "%s/store", tu_tmpdir("tiny"));
  imf_store *s;
  OK(imf_store_create(MPI_COMM_WORLD, dir, NULL, &s));
  imf_batch b;
  make_batch(&b, T, 2, 1, 2, 0, 0, 2, 2, 'c');
  OK(imf_store_write_batch(s, &b));
  assert_int_equal(b.time_min, NT);
  imf_batch_free(&b);
  read_and_check(s, T, 2, 2);
  /* an empty batch (no ratings, no new ids) is a valid batch too */
  make_batch(&b, T, 0, 1, 2, 2, 2, 0, 0, 'd');
  OK(imf_store_write_batch(s, &b));
  assert_int_equal(b.report.batch, 2);
  imf_batch_free(&b);
  read_and_check(s, T, 2, 2);
  imf_store_info info;
  OK(imf_store_get_info(s, &info));
  assert_true(info.time_min == INT64_MIN && info.time_max == INT64_MAX);
  assert_true(isnan(info.scale_min));
  imf_store_close(&s);
}

/* The crash hook, stray cleanup, the writer lock and the manifest checks. */
static void test_fault_lock_manifest(void **state) {
  (void)state;
  char dir[600], p[700], q[700];
  snprintf(dir, sizeof dir, "%s/store", tu_tmpdir("fault"));
  imf_store *s, *s2 = NULL;
  OK(imf_store_create(MPI_COMM_WORLD, dir, NULL, &s));
  imf_batch b;
  make_batch(&b, B1, N1, 1, 4, 0, 0, 4, 5, 'a');
  OK(imf_store_write_batch(s, &b));
  imf_batch_free(&b);
  char digest1[65];
  snprintf(digest1, sizeof digest1, "%s", imf_store_digest(s));

  /* a second writer is refused while the first holds the lock; readers are not */
  assert_int_equal(imf_store_open(MPI_COMM_WORLD, dir, IMF_STORE_WRITE, 0, &s2), IMF_ERR_LOCKED);
  assert_null(s2);
  assert_non_null(strstr(imf_last_error(), "another writer is running"));
  assert_int_equal(imf_store_create(MPI_COMM_WORLD, dir, NULL, &s2), IMF_ERR_INPUT);
  OK(imf_store_open(MPI_COMM_WORLD, dir, IMF_STORE_READ, 0, &s2));
  imf_store_close(&s2);

  /* crash between the batch file and the manifest */
  setenv("IMF_FAULT", "store-before-manifest", 1);
  make_batch(&b, B2, N2, 1, 5, 4, 5, 1, 1, 'b');
  assert_int_equal(imf_store_write_batch(s, &b), IMF_ERR_RUNTIME);
  assert_non_null(strstr(imf_last_error(), "injected fault"));
  unsetenv("IMF_FAULT");
  assert_int_equal(imf_store_nbatches(s), 1);
  imf_store_close(&s);
  path_in(p, sizeof p, dir, "batch-000002.h5");
  if (rank == 0) assert_int_equal(access(p, F_OK), 0); /* written but not committed */
  OK(imf_store_open(MPI_COMM_WORLD, dir, IMF_STORE_READ, 0, &s));
  assert_int_equal(imf_store_nbatches(s), 1);
  assert_string_equal(imf_store_digest(s), digest1);
  read_and_check(s, B1, N1, 4);
  imf_store_close(&s);

  /* the next successful write replaces the debris */
  path_in(q, sizeof q, dir, "batch-000007.h5");
  if (rank == 0) {
    assert_int_equal(tu_write_file(q, "junk"), 0);
    path_in(p, sizeof p, dir, "MANIFEST.tmp");
    assert_int_equal(tu_write_file(p, "junk"), 0);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  OK(imf_store_open(MPI_COMM_WORLD, dir, IMF_STORE_WRITE, 0, &s));
  OK(imf_store_write_batch(s, &b));
  assert_int_equal(b.report.superseded, 3);
  imf_batch_free(&b);
  read_and_check(s, LATEST, NR, 5);
  imf_store_close(&s);
  if (rank == 0) {
    assert_int_not_equal(access(q, F_OK), 0);
    assert_int_not_equal(access(p, F_OK), 0);
    path_in(p, sizeof p, dir, "LOCK");
    assert_int_not_equal(access(p, F_OK), 0); /* released on close */
  }

  /* an edited manifest is detected */
  path_in(p, sizeof p, dir, "MANIFEST");
  size_t len = 0;
  char *orig = tu_read_file(p, &len);
  assert_non_null(orig);
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == 0) {
    char *ed = strdup(orig);
    char *u = strstr(ed, "\nusers 5\n");
    assert_non_null(u);
    u[7] = '6';
    assert_int_equal(tu_write_file(p, ed), 0);
    free(ed);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  assert_int_equal(imf_store_open(MPI_COMM_WORLD, dir, IMF_STORE_READ, 0, &s), IMF_ERR_INPUT);
  assert_non_null(strstr(imf_last_error(), "/MANIFEST is corrupt (checksum mismatch): restore it or re-run prepare"));
  /* a truncated manifest too */
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == 0) {
    char *tr = strdup(orig);
    tr[len / 2] = '\0';
    assert_int_equal(tu_write_file(p, tr), 0);
    free(tr);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  assert_int_equal(imf_store_open(MPI_COMM_WORLD, dir, IMF_STORE_WRITE, 0, &s), IMF_ERR_INPUT);
  assert_non_null(strstr(imf_last_error(), "checksum mismatch"));
  /* a newer format */
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == 0) assert_int_equal(tu_write_file(p, "incremf-store 2\nwhatever\n"), 0);
  MPI_Barrier(MPI_COMM_WORLD);
  assert_int_equal(imf_store_open(MPI_COMM_WORLD, dir, IMF_STORE_READ, 0, &s), IMF_ERR_INPUT);
  assert_non_null(strstr(imf_last_error(), "was written by a newer incremf (store format 2"));
  assert_non_null(strstr(imf_last_error(), "upgrade incremf"));
  /* restored, it opens again */
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == 0) assert_int_equal(tu_write_file(p, orig), 0);
  MPI_Barrier(MPI_COMM_WORLD);
  OK(imf_store_open(MPI_COMM_WORLD, dir, IMF_STORE_READ, 0, &s));
  assert_int_equal(imf_store_nbatches(s), 2);
  imf_store_close(&s);
  free(orig);

  /* not a store */
  const char *empty = tu_tmpdir("notastore");
  assert_int_equal(imf_store_open(MPI_COMM_WORLD, empty, IMF_STORE_READ, 0, &s), IMF_ERR_INPUT);
  assert_non_null(strstr(imf_last_error(), "is not an incremf store (no MANIFEST)"));
}


/* Appends that touch a few users of a large earlier batch: the superseded count reads a
 * scattered selection of rows, and a pair held by two earlier batches counts once. */
static void test_sparse_supersede(void **state) {
  (void)state;
  enum { U = 50, I = 20 };
  static row b1[U * 4], b2[6], b3[9];
  int n1 = 0, n2 = 0, n3 = 0;
  for (int u = 0; u < U; u++) {
    int it[4];
    for (int k = 0; k < 4; k++) it[k] = (u + k) % I;
    for (int a = 0; a < 4; a++) /* sort the four items */
      for (int c = a + 1; c < 4; c++)
        if (it[c] < it[a]) {
          int t = it[a];
          it[a] = it[c];
          it[c] = t;
        }
    for (int k = 0; k < 4; k++) b1[n1++] = (row){u, it[k], 1.0f, 10};
  }
  const int touched[3] = {0, 25, 49};
  for (int t = 0; t < 3; t++) {
    int u = touched[t];
    row x[3] = {{u, (u + 1) % I, 2.0f, 20}, {u, (u + 10) % I, 3.0f, 20}};
    row y[3] = {{u, (u + 1) % I, 4.0f, 30}, {u, (u + 10) % I, 5.0f, 5}, {u, (u + 11) % I, 6.0f, 30}};
    for (int a = 0; a < 2; a++) /* keep rows sorted by item */
      for (int c = a + 1; c < 2; c++)
        if (x[c].i < x[a].i) { row z = x[a]; x[a] = x[c]; x[c] = z; }
    for (int a = 0; a < 3; a++)
      for (int c = a + 1; c < 3; c++)
        if (y[c].i < y[a].i) { row z = y[a]; y[a] = y[c]; y[c] = z; }
    for (int k = 0; k < 2; k++) b2[n2++] = x[k];
    for (int k = 0; k < 3; k++) b3[n3++] = y[k];
  }
  char dir[600];
  snprintf(dir, sizeof dir, "%s/store", tu_tmpdir("sparse"));
  imf_store *s;
  OK(imf_store_create(MPI_COMM_WORLD, dir, NULL, &s));
  imf_batch b;
  make_batch(&b, b1, n1, 1, U, 0, 0, U, I, 'e');
  OK(imf_store_write_batch(s, &b));
  imf_batch_free(&b);
  make_batch(&b, b2, n2, 1, U, U, I, 0, 0, 'f');
  OK(imf_store_write_batch(s, &b));
  assert_int_equal(b.report.superseded, 3);
  imf_batch_free(&b);
  make_batch(&b, b3, n3, 2, U, U, I, 0, 0, '0');
  OK(imf_store_write_batch(s, &b));
  assert_int_equal(b.report.superseded, 6);
  imf_batch_free(&b);
  imf_store_info info;
  OK(imf_store_get_info(s, &info));
  assert_int_equal(info.ratings, U * 4 + 6);
  imf_ratings r = {0};
  OK(imf_store_read_ratings(s, 25, 26, &r));
  static const row want[] = {{25, 5, 1.0f, 10}, {25, 6, 4.0f, 30}, {25, 7, 1.0f, 10},
                             {25, 8, 1.0f, 10}, {25, 15, 3.0f, 20}, {25, 16, 6.0f, 30}};
  check_rows(&r, want, 6, 25, 26);
  imf_ratings_free(&r);
  imf_store_close(&s);
}

/* ---- the standing holdout's copy (/holdout) ---- */

#define HO_FRAC 0.3
#define HO_SEED 11
enum { HO_U1 = 20, HO_U2 = 22, HO_U3 = 24, HO_I1 = 8, HO_I2 = 9, HO_I3 = 10, HO_MAXROWS = 200 };

static int ho_held(int u, int i) { return imf_is_holdout(HO_SEED, HO_FRAC, u, i); }

/* Three batches of rows sorted by (user, item). Batch 2 re-rates the pairs of batch 1's even users
 * with other values, at a later time, except users u % 4 == 2 at an earlier one (the latest policy
 * keeps batch 1's value there); user 3 has a row without a time (batch 2's times stored in 8
 * bytes). Batch 3 re-rates the first pair of users u % 3 == 0 once more. New users and items in
 * each batch. */
static int ho_batch(int k, row *out) {
  int n = 0;
  for (int u = 0; u < (k == 1 ? HO_U1 : k == 2 ? HO_U2 : HO_U3); u++) {
    int it[5], m = 0;
    for (int q = 0; q < 4 && u < HO_U1; q++) {
      int i = (u + q * 3) % 8, dup = 0;
      for (int c = 0; c < m; c++) dup |= it[c] == i;
      if (!dup) it[m++] = i;
    }
    for (int a = 0; a < m; a++) /* sort */
      for (int c = a + 1; c < m; c++)
        if (it[c] < it[a]) {
          int t = it[a];
          it[a] = it[c];
          it[c] = t;
        }
    if (k == 1)
      for (int q = 0; q < m; q++) out[n++] = (row){u, it[q], (float)(1 + (u * 7 + it[q]) % 5), 1000 + u};
    else if (k == 2 && u < HO_U1 && u % 2 == 0) {
      for (int q = 0; q < m; q++)
        out[n++] = (row){u, it[q], (float)(1 + (u * 7 + it[q] + 2) % 5), u % 4 == 2 ? 500 : 2000};
      out[n++] = (row){u, 8, 4.5f, 2000};
    } else if (k == 2 && u == 3)
      out[n++] = (row){u, 8, 2.5f, NT};
    else if (k == 2 && u >= HO_U1)
      for (int i = 0; i < 9; i += 4) out[n++] = (row){u, i, 3.0f, 2100}; /* items 0, 4, 8 */
    else if (k == 3 && u < HO_U1 && u % 3 == 0)
      out[n++] = (row){u, it[0], 0.5f + (float)(u % 4), 3000};
    else if (k == 3 && u >= HO_U2)
      for (int i = 1; i < 10; i += 4) out[n++] = (row){u, i, 1.5f, 3100}; /* items 1, 5, 9 */
  }
  assert_true(n <= HO_MAXROWS);
  return n;
}

/* Held-out pairs of the rows that a later batch rates again with another value, and those
 * whose later rating is the older (kept under `latest`): the data must exercise both. */
static void ho_coverage(const row *b1, int n1, const row *b2, int n2, int *changed, int *older) {
  *changed = *older = 0;
  for (int a = 0; a < n1; a++)
    for (int c = 0; c < n2; c++)
      if (b1[a].u == b2[c].u && b1[a].i == b2[c].i && ho_held(b1[a].u, b1[a].i) && b1[a].v != b2[c].v) {
        (*changed)++;
        *older += b2[c].t < b1[a].t;
      }
}

/* The holdout read alone against the whole store's read filtered by imf_is_holdout: this rank's
 * users (u % size == rank), every pair once, ascending, values bitwise equal, the batch of each
 * value within 1..upto. Returns the global count. */
static int64_t ho_compare(imf_store *s, int64_t upto, const imf_ratings *whole) {
  imf_ratings h = {0};
  OK(imf_store_read_holdout(s, upto, &h));
  int64_t k = 0;
  for (int64_t j = 0; j < whole->n; j++) {
    if (!ho_held(whole->user[j], whole->item[j]) || whole->user[j] % nprocs != rank) continue;
    assert_true(k < h.n);
    assert_int_equal(h.user[k], whole->user[j]);
    assert_int_equal(h.item[k], whole->item[j]);
    assert_true(h.value[k] == whole->value[j]);
    assert_true(h.time[k] >= 1 && h.time[k] <= upto);
    k++;
  }
  assert_int_equal(k, h.n);
  for (int64_t j = 1; j < h.n; j++)
    assert_true(h.user[j - 1] < h.user[j] || (h.user[j - 1] == h.user[j] && h.item[j - 1] < h.item[j]));
  int64_t total = 0;
  MPI_Allreduce(&h.n, &total, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
  imf_ratings_free(&h);
  return total;
}

/* The whole store's effective ratings on every rank. */
static void ho_whole(imf_store *s, imf_ratings *r) {
  memset(r, 0, sizeof *r);
  OK(imf_store_read_ratings(s, 0, imf_store_nusers(s), r));
}

/* (rank 0, serial HDF5) Length of /holdout/user in batch k (-1: absent) and whether it names user u. */
static int64_t ho_file_rows(const char *dir, int k, int u, int *has_u) {
  int64_t n = -1;
  *has_u = 0;
  char p[700];
  snprintf(p, sizeof p, "%s/batch-%06d.h5", dir, k);
  hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
  assert_true(f >= 0);
  if (H5Lexists(f, "/holdout", H5P_DEFAULT) > 0) {
    hid_t d = H5Dopen2(f, "/holdout/user", H5P_DEFAULT), sp = H5Dget_space(d);
    hsize_t len = 0;
    H5Sget_simple_extent_dims(sp, &len, NULL);
    int32_t *buf = calloc(len + 1, sizeof *buf);
    if (len) assert_true(H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0);
    for (hsize_t j = 0; j < len; j++) *has_u |= buf[j] == u;
    free(buf);
    H5Sclose(sp);
    H5Dclose(d);
    n = (int64_t)len;
  }
  H5Fclose(f);
  return n;
}

/* Held-out rows of rows[0..n) (the batch as written: what /holdout must hold). */
static int64_t ho_count(const row *rows, int n, int skip_user) {
  int64_t c = 0;
  for (int j = 0; j < n; j++) c += ho_held(rows[j].u, rows[j].i) && rows[j].u != skip_user;
  return c;
}

static imf_config *ho_cfg(const char *dup) {
  imf_config *c = cfg_with(dup);
  OK(imf_config_set(c, "holdout.fraction=0.3"));
  OK(imf_config_set(c, "holdout.seed=11"));
  return c;
}

/* Three batches (split three ways over the ranks, one leaving ranks empty), each compared after
 * it is written and with an earlier `upto`; then a forgotten user (tombstone, then scrub: the
 * rewritten files keep /holdout without the user's rows). Under each duplicate policy. */
static void test_holdout_copy(void **state) {
  (void)state;
  static row B[3][HO_MAXROWS];
  int n[3];
  for (int k = 0; k < 3; k++) n[k] = ho_batch(k + 1, B[k]);
  int changed, older;
  ho_coverage(B[0], n[0], B[1], n[1], &changed, &older);
  assert_true(changed >= 2 && older >= 1);
  const char *pol[3] = {"latest", "first", "mean"};
  for (int p = 0; p < 3; p++) {
    char dir[600];
    snprintf(dir, sizeof dir, "%s/store", tu_tmpdir("holdout"));
    imf_config *c = ho_cfg(pol[p]);
    imf_store *s;
    OK(imf_store_create(MPI_COMM_WORLD, dir, c, &s));
    const int64_t ub[3] = {0, HO_U1, HO_U2}, ib[3] = {0, HO_I1, HO_I2};
    const int nu[3] = {HO_U1, HO_U2 - HO_U1, HO_U3 - HO_U2}, ni[3] = {HO_I1, HO_I2 - HO_I1, HO_I3 - HO_I2};
    int64_t first_total = -1;
    for (int k = 0; k < 3; k++) {
      imf_batch b;
      make_batch(&b, B[k], n[k], (k + 1) % 3, (int)(ub[k] + nu[k]), ub[k], ib[k], nu[k], ni[k], (char)('p' + k));
      OK(imf_store_write_batch(s, &b));
      imf_batch_free(&b);
      imf_ratings w;
      ho_whole(s, &w);
      int64_t t = ho_compare(s, k + 1, &w);
      imf_ratings_free(&w);
      if (k == 0) first_total = t;
      int has = 0;
      if (rank == 0) assert_int_equal(ho_file_rows(dir, k + 1, -1, &has), ho_count(B[k], n[k], -1));
    }
    assert_true(first_total > 5);
    /* upto 1 of the three-batch store: batch 1's holdout alone */
    imf_ratings h = {0};
    OK(imf_store_read_holdout(s, 1, &h));
    int64_t t1 = 0;
    MPI_Allreduce(&h.n, &t1, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
    for (int64_t j = 0; j < h.n; j++) assert_true(h.time[j] == 1 && h.user[j] % nprocs == rank);
    imf_ratings_free(&h);
    assert_int_equal(t1, first_total);
    /* a forgotten user with held-out pairs in batches 1 and 2 */
    int fu = -1;
    for (int j = 0; j < n[0] && fu < 0; j++)
      if (B[0][j].u % 2 == 0 && ho_held(B[0][j].u, B[0][j].i)) fu = B[0][j].u;
    assert_true(fu >= 0);
    OK(imf_store_forget_user(s, fu));
    imf_ratings w;
    ho_whole(s, &w);
    int64_t after_tomb = ho_compare(s, 3, &w);
    int64_t rows_rm = 0, files_rw = 0;
    OK(imf_store_scrub(s, &rows_rm, &files_rw));
    assert_true(files_rw >= 2);
    assert_int_equal(ho_compare(s, 3, &w), after_tomb);
    imf_ratings_free(&w);
    imf_store_close(&s);
    for (int k = 0; rank == 0 && k < 3; k++) {
      int has = 1;
      assert_int_equal(ho_file_rows(dir, k + 1, fu, &has), ho_count(B[k], n[k], fu));
      assert_false(has);
    }
    /* reopened read-only: the same answer */
    OK(imf_store_open(MPI_COMM_WORLD, dir, IMF_STORE_READ, 0, &s));
    ho_whole(s, &w);
    assert_int_equal(ho_compare(s, 3, &w), after_tomb);
    imf_ratings_free(&w);
    imf_store_close(&s);
    imf_config_destroy(&c);
  }
}

/* (rank 0) Overwrite /holdout/user[0] of batch k, or delete the group (user < 0). */
static void ho_poke(const char *dir, int k, int32_t user) {
  if (rank == 0) {
    char p[700];
    snprintf(p, sizeof p, "%s/batch-%06d.h5", dir, k);
    hid_t f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    if (user < 0) assert_true(H5Ldelete(f, "/holdout", H5P_DEFAULT) >= 0);
    else {
      hid_t d = H5Dopen2(f, "/holdout/user", H5P_DEFAULT), fs = H5Dget_space(d);
      hsize_t off = 0, cnt = 1;
      H5Sselect_hyperslab(fs, H5S_SELECT_SET, &off, NULL, &cnt, NULL);
      hid_t ms = H5Screate_simple(1, &cnt, NULL);
      assert_true(H5Dwrite(d, H5T_NATIVE_INT32, ms, fs, H5P_DEFAULT, &user) >= 0);
      H5Sclose(ms);
      H5Sclose(fs);
      H5Dclose(d);
    }
    H5Fclose(f);
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

/* No holdout, no /holdout: IMF_ERR_NOTFOUND (the caller reads histories); the same for a batch
 * without the group (written before it existed); a damaged copy is IMF_ERR_INPUT naming the file. */
static void test_holdout_absent_damaged(void **state) {
  (void)state;
  char dir[600];
  snprintf(dir, sizeof dir, "%s/store", tu_tmpdir("noholdout"));
  imf_config *c = cfg_with("latest");
  OK(imf_config_set(c, "holdout.fraction=0")); /* the default is 0.1 */
  imf_store *s;
  OK(imf_store_create(MPI_COMM_WORLD, dir, c, &s));
  imf_batch b;
  make_batch(&b, B1, N1, 1, 4, 0, 0, 4, 5, 'a');
  OK(imf_store_write_batch(s, &b));
  imf_batch_free(&b);
  imf_ratings h = {0};
  assert_int_equal(imf_store_read_holdout(s, 1, &h), IMF_ERR_NOTFOUND);
  assert_int_equal(h.n, 0);
  int has = 0;
  if (rank == 0) assert_int_equal(ho_file_rows(dir, 1, 0, &has), -1);
  imf_store_close(&s);
  imf_config_destroy(&c);

  static row R[HO_MAXROWS];
  const int nr = ho_batch(1, R);
  const char *what[2] = {"holdoutgone", "holdoutbad"};
  for (int v = 0; v < 2; v++) {
    snprintf(dir, sizeof dir, "%s/store", tu_tmpdir(what[v]));
    c = ho_cfg("latest");
    OK(imf_store_create(MPI_COMM_WORLD, dir, c, &s));
    make_batch(&b, R, nr, 1, HO_U1, 0, 0, HO_U1, HO_I1, 'h');
    OK(imf_store_write_batch(s, &b));
    imf_batch_free(&b);
    imf_store_close(&s);
    ho_poke(dir, 1, v == 0 ? -1 : 999);
    OK(imf_store_open(MPI_COMM_WORLD, dir, IMF_STORE_READ, 0, &s));
    assert_int_equal(imf_store_read_holdout(s, 1, &h), v == 0 ? IMF_ERR_NOTFOUND : IMF_ERR_INPUT);
    assert_non_null(strstr(imf_last_error(), v == 0 ? "batch-000001.h5 has no /holdout" : "batch-000001.h5 is corrupt"));
    assert_int_equal(h.n, 0);
    OK(imf_store_read_holdout(s, 0, &h)); /* no batch asked: nothing read, nothing held out */
    assert_int_equal(h.n, 0);
    imf_ratings_free(&h);
    imf_store_close(&s);
    imf_config_destroy(&c);
  }
}

int main(int argc, char **argv) {
  imf_preinit();
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &nprocs);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_two_batches_policies),
      cmocka_unit_test(test_digest_independent),
      cmocka_unit_test(test_tiny_batch),
      cmocka_unit_test(test_time_width),
      cmocka_unit_test(test_rows_out_of_order),
      cmocka_unit_test(test_sparse_supersede),
      cmocka_unit_test(test_fault_lock_manifest),
      cmocka_unit_test(test_holdout_copy),
      cmocka_unit_test(test_holdout_absent_damaged),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  MPI_Finalize();
  return rc;
}
