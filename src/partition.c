/* partition.c - block the users and items over the ranks by rating count and redistribute the
 * ratings twice (by user and by item) with one all-to-all each (see partition.h).
 *
 * Steps: count training ratings per user and per item (integer MPI_Allreduce), cut both sides
 * into contiguous blocks of about total/P ratings, send every rating to its user's owner and
 * every training rating to its item's owner, and build sorted CSR blocks. Nothing here depends
 * on how the input was distributed, so the blocks' contents are a function of the data and P
 * only, and each row's contents a function of the data only. */
#include "partition.h"
#include "error.h"
#include "exchange.h"
#include "log.h"
#include "rng.h"
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* One rating on the wire. */
typedef struct {
  int32_t u, i;
  float v;
} wire_rating;

int imf_is_holdout(uint64_t seed, double fraction, int64_t user, int64_t item) {
  if (!(fraction > 0)) return 0;
  double h = (double)(imf_hash3(seed, (uint64_t)user, (uint64_t)item) >> 11) * (1.0 / 9007199254740992.0);
  return h < fraction;
}

/* Contiguous blocks of about equal work: block r starts at the first row whose prefix weight
 * is nearest to total * r / P. A row weighs its rating count plus IMF_ROW_COST: besides one Gram
 * update per rating, every row pays a Cholesky, its substitutions and bookkeeping. Measured with
 * the solve phase's max/avg over 2 ranks (10M ratings, 200k users x 20k items, k = 16-128): a
 * weight of 16 left the rank with the many light users 11-15% behind; with LAPACK's dpotrf a row
 * cost about 200 ratings (1.00-1.01 at every k), with the hand-written Cholesky about 100
 * (1.00-1.03 at k = 16-64, 1.06 at k = 128, where 200 fits better). (Where the blocks fall never
 * changes the results, only who computes them.) */
static void balance(const int64_t *count, int64_t n, int P, int64_t *start) {
  int64_t total = 0;
  for (int64_t j = 0; j < n; j++) total += count[j] + IMF_ROW_COST;
  start[0] = 0;
  int64_t row = 0, prefix = 0;
  for (int r = 1; r < P; r++) {
    /* total * r / P without overflow for any realistic total (< 2^63 / 2^20) */
    int64_t target = (int64_t)((__int128)total * r / P);
    while (row < n && prefix < target) {
      int64_t next = prefix + count[row] + IMF_ROW_COST;
      if (next > target && next - target > target - prefix) break; /* nearer to stop before */
      prefix = next;
      row++;
    }
    if (total == 0) row = n * r / P; /* no ratings at all: split rows evenly */
    start[r] = row;
  }
  start[P] = n;
}

static void csr_free(imf_csr *c) {
  imf_free(&c->ptr);
  imf_free(&c->idx);
  imf_free(&c->val);
  imf_free(&c->row_id);
}

void imf_partition_destroy(imf_partition **pp) {
  if (!pp || !*pp) return;
  imf_partition *p = *pp;
  imf_free(&p->user_start);
  imf_free(&p->item_start);
  imf_free(&p->user_count);
  imf_free(&p->item_count);
  csr_free(&p->by_user);
  csr_free(&p->by_item);
  csr_free(&p->holdout);
  free(p);
  *pp = NULL;
}

static int cmp_col(const void *a, const void *b) {
  const wire_rating *x = a, *y = b;
  if (x->i != y->i) return x->i < y->i ? -1 : 1;
  if (x->v != y->v) return x->v < y->v ? -1 : 1;
  return 0;
}

/* Build CSR over rows [lo, hi) from wire ratings whose row is w.u (rows are local after the
 * exchange); `keep` selects which ones (NULL: all). Columns sorted by (i, v). The ratings are
 * scattered straight into the CSR arrays and each row sorted through a buffer of the longest
 * row's size, so that building holds no second copy of the ratings (the partition build's
 * peak: docs/SCALING.md). */
static imf_status build_csr(const wire_rating *w, int64_t n, int64_t lo, int64_t hi, const uint8_t *keep,
                            imf_csr *c) {
  int64_t nr = hi - lo, nnz = 0, longest = 0;
  c->lo = lo;
  c->hi = hi;
  IMF_CHECK(imf_alloc(&c->ptr, (size_t)nr + 1, sizeof(int64_t)));
  IMF_CHECK(imf_alloc(&c->row_id, (size_t)(nr ? nr : 1), sizeof(int64_t)));
  for (int64_t r = 0; r < nr; r++) c->row_id[r] = lo + r;
  for (int64_t j = 0; j < n; j++)
    if (!keep || keep[j]) {
      c->ptr[w[j].u - lo + 1]++;
      nnz++;
    }
  for (int64_t r = 0; r < nr; r++) {
    longest = c->ptr[r + 1] > longest ? c->ptr[r + 1] : longest;
    c->ptr[r + 1] += c->ptr[r];
  }
  c->nnz = nnz;
  IMF_CHECK(imf_alloc_hot(&c->idx, (size_t)(nnz ? nnz : 1), sizeof(int32_t)));
  IMF_CHECK(imf_alloc_hot(&c->val, (size_t)(nnz ? nnz : 1), sizeof(float)));
  int64_t *fill = NULL;
  wire_rating *row = NULL;
  imf_status st = imf_alloc(&fill, (size_t)(nr ? nr : 1), sizeof(int64_t));
  if (st == IMF_OK) st = imf_alloc(&row, (size_t)(longest ? longest : 1), sizeof *row);
  if (st == IMF_OK) {
    for (int64_t r = 0; r < nr; r++) fill[r] = c->ptr[r];
    for (int64_t j = 0; j < n; j++)
      if (!keep || keep[j]) {
        const int64_t q = fill[w[j].u - lo]++;
        c->idx[q] = w[j].i;
        c->val[q] = w[j].v;
      }
    for (int64_t r = 0; r < nr; r++) {
      const int64_t a = c->ptr[r], m = c->ptr[r + 1] - a;
      if (m < 2) continue;
      for (int64_t j = 0; j < m; j++) row[j] = (wire_rating){0, c->idx[a + j], c->val[a + j]};
      qsort(row, (size_t)m, sizeof *row, cmp_col);
      for (int64_t j = 0; j < m; j++) {
        c->idx[a + j] = row[j].i;
        c->val[a + j] = row[j].v;
      }
    }
  }
  imf_free(&fill);
  imf_free(&row);
  return st;
}

/* Send each selected rating to the owner of its row (by user: row = u; by item: row = i, and
 * the pair is swapped so that .u is the row and .i the column on arrival). */
static imf_status redistribute(MPI_Comm comm, MPI_Datatype wt, const imf_ratings *in,
                               const uint8_t *sel, int by_item, const int64_t *start, int P,
                               wire_rating **out, int64_t *nout) {
  imf_status st = IMF_OK;
  int64_t *sc = NULL, *sd = NULL, *rc = NULL, *rd = NULL, *pos = NULL;
  wire_rating *sbuf = NULL, *rbuf = NULL;
  IMF_TRY(imf_alloc(&sc, (size_t)P, sizeof(int64_t)), done);
  IMF_TRY(imf_alloc(&sd, (size_t)P, sizeof(int64_t)), done);
  IMF_TRY(imf_alloc(&rc, (size_t)P, sizeof(int64_t)), done);
  IMF_TRY(imf_alloc(&rd, (size_t)P, sizeof(int64_t)), done);
  IMF_TRY(imf_alloc(&pos, (size_t)P, sizeof(int64_t)), done);
  int64_t ns = 0;
  for (int64_t j = 0; j < in->n; j++)
    if (sel[j]) {
      sc[imf_block_owner(start, P, by_item ? in->item[j] : in->user[j])]++;
      ns++;
    }
  for (int r = 1; r < P; r++) sd[r] = sd[r - 1] + sc[r - 1];
  IMF_TRY(imf_alloc(&sbuf, (size_t)(ns ? ns : 1), sizeof *sbuf), done);
  memcpy(pos, sd, (size_t)P * sizeof(int64_t));
  for (int64_t j = 0; j < in->n; j++)
    if (sel[j]) {
      int32_t row = by_item ? in->item[j] : in->user[j], col = by_item ? in->user[j] : in->item[j];
      wire_rating w = {row, col, in->value[j]};
      sbuf[pos[imf_block_owner(start, P, row)]++] = w;
    }
  {
    int e = MPI_Alltoall(sc, 1, MPI_INT64_T, rc, 1, MPI_INT64_T, comm);
    if (e != MPI_SUCCESS) {
      st = IMF_MPI_RAISE(e, "MPI_Alltoall of counts");
      goto done;
    }
  }
  int64_t nr = 0;
  for (int r = 0; r < P; r++) {
    rd[r] = nr;
    nr += rc[r];
  }
  IMF_TRY(imf_alloc(&rbuf, (size_t)(nr ? nr : 1), sizeof *rbuf), done);
  IMF_TRY(imf_alltoallv64(comm, sbuf, sc, sd, rbuf, rc, rd, wt), done);
  *out = rbuf;
  *nout = nr;
  rbuf = NULL;
done:
  imf_free(&sc);
  imf_free(&sd);
  imf_free(&rc);
  imf_free(&rd);
  imf_free(&pos);
  imf_free(&sbuf);
  imf_free(&rbuf);
  return st;
}

imf_status imf_partition_build(MPI_Comm comm, const imf_ratings *local, int64_t nusers,
                               int64_t nitems, double holdout_fraction, uint64_t holdout_seed,
                               imf_partition **out) {
  double t0 = imf_wtime();
  *out = NULL;
  int P, rank;
  imf_status st = IMF_OK;
  imf_partition *p = NULL;
  uint8_t *all = NULL, *train = NULL, *keep = NULL;
  wire_rating *wu = NULL, *wi = NULL;
  MPI_Datatype wt = MPI_DATATYPE_NULL;
  IMF_MPI_TRY(MPI_Comm_size(comm, &P), done);
  IMF_MPI_TRY(MPI_Comm_rank(comm, &rank), done);
  if (nusers < 0 || nitems < 0 || nusers > INT32_MAX || nitems > INT32_MAX)
    st = IMF_RAISE(IMF_ERR_INPUT, "bad matrix shape %lld x %lld",
                   (long long)nusers, (long long)nitems);
  else if (!(holdout_fraction >= 0 && holdout_fraction < 1))
    st = IMF_RAISE(IMF_ERR_USAGE, "validation fraction %g not in [0, 1)",
                   holdout_fraction);
  for (int64_t j = 0; st == IMF_OK && j < local->n; j++)
    if (local->user[j] < 0 || local->user[j] >= nusers || local->item[j] < 0 || local->item[j] >= nitems)
      st = IMF_RAISE(IMF_ERR_INPUT, "rating (%d, %d) outside the %lld x %lld matrix", local->user[j],
                     local->item[j], (long long)nusers, (long long)nitems);
  IMF_TRY(imf_agree(comm, st), done);

  p = calloc(1, sizeof *p);
  if (!p) {
    st = IMF_RAISE(IMF_ERR_NOMEM, "out of memory");
    goto done;
  }
  p->nranks = P;
  p->rank = rank;
  p->nusers = nusers;
  p->nitems = nitems;
  p->holdout_fraction = holdout_fraction;
  p->holdout_seed = holdout_seed;
  IMF_TRY(imf_alloc(&p->user_start, (size_t)P + 1, sizeof(int64_t)), done);
  IMF_TRY(imf_alloc(&p->item_start, (size_t)P + 1, sizeof(int64_t)), done);
  IMF_TRY(imf_alloc(&p->user_count, (size_t)(nusers ? nusers : 1), sizeof(int64_t)), done);
  IMF_TRY(imf_alloc(&p->item_count, (size_t)(nitems ? nitems : 1), sizeof(int64_t)), done);
  IMF_TRY(imf_alloc(&all, (size_t)(local->n ? local->n : 1), 1), done);
  IMF_TRY(imf_alloc(&train, (size_t)(local->n ? local->n : 1), 1), done);
  int64_t cnt[2] = {0, 0};
  for (int64_t j = 0; j < local->n; j++) {
    all[j] = 1;
    train[j] = !imf_is_holdout(holdout_seed, holdout_fraction, local->user[j], local->item[j]);
    if (train[j]) {
      p->user_count[local->user[j]]++;
      p->item_count[local->item[j]]++;
    }
    cnt[train[j] ? 0 : 1]++;
  }
  /* Integer sums: exact, so their order does not matter. Row counts < 2^31 elements. */
  {
    int e = MPI_SUCCESS;
    if (nusers) e = MPI_Allreduce(MPI_IN_PLACE, p->user_count, (int)nusers, MPI_INT64_T, MPI_SUM, comm);
    if (e == MPI_SUCCESS && nitems)
      e = MPI_Allreduce(MPI_IN_PLACE, p->item_count, (int)nitems, MPI_INT64_T, MPI_SUM, comm);
    if (e == MPI_SUCCESS) e = MPI_Allreduce(MPI_IN_PLACE, cnt, 2, MPI_INT64_T, MPI_SUM, comm);
    if (e != MPI_SUCCESS) {
      st = IMF_MPI_RAISE(e, "MPI_Allreduce of rating counts");
      goto done;
    }
  }
  p->nnz_train = cnt[0];
  p->nnz_holdout = cnt[1];
  balance(p->user_count, nusers, P, p->user_start);
  balance(p->item_count, nitems, P, p->item_start);

  {
    int bl[2] = {2, 1};
    MPI_Aint disp[2] = {offsetof(wire_rating, u), offsetof(wire_rating, v)};
    MPI_Datatype ty[2] = {MPI_INT32_T, MPI_FLOAT}, tmp;
    int e = MPI_Type_create_struct(2, bl, disp, ty, &tmp);
    if (e == MPI_SUCCESS) e = MPI_Type_create_resized(tmp, 0, sizeof(wire_rating), &wt);
    if (e == MPI_SUCCESS) MPI_Type_free(&tmp);
    if (e == MPI_SUCCESS) e = MPI_Type_commit(&wt);
    if (e != MPI_SUCCESS) {
      st = IMF_MPI_RAISE(e, "rating datatype");
      goto done;
    }
  }
  /* one side at a time, its wire copy freed before the other side's exchange: the build's peak
   * is the input, one side's CSR and one exchange's buffers (docs/SCALING.md) */
  int64_t nu = 0, ni = 0;
  IMF_TRY(redistribute(comm, wt, local, all, 0, p->user_start, P, &wu, &nu), done);
  IMF_TRY(imf_alloc(&keep, (size_t)(nu ? nu : 1), 1), done);
  for (int64_t j = 0; j < nu; j++) keep[j] = !imf_is_holdout(holdout_seed, holdout_fraction, wu[j].u, wu[j].i);
  IMF_TRY(build_csr(wu, nu, p->user_start[rank], p->user_start[rank + 1], keep, &p->by_user), done);
  for (int64_t j = 0; j < nu; j++) keep[j] = !keep[j];
  IMF_TRY(build_csr(wu, nu, p->user_start[rank], p->user_start[rank + 1], keep, &p->holdout), done);
  imf_free(&wu);
  imf_free(&keep);
  IMF_TRY(redistribute(comm, wt, local, train, 1, p->item_start, P, &wi, &ni), done);
  IMF_TRY(build_csr(wi, ni, p->item_start[rank], p->item_start[rank + 1], NULL, &p->by_item), done);
  p->seconds = imf_wtime() - t0;
done:
  if (wt != MPI_DATATYPE_NULL) MPI_Type_free(&wt);
  imf_free(&all);
  imf_free(&train);
  imf_free(&keep);
  imf_free(&wu);
  imf_free(&wi);
  st = imf_agree(comm, st);
  if (st != IMF_OK) imf_partition_destroy(&p);
  *out = p;
  return st;
}

int64_t imf_partition_bytes(const imf_partition *p) {
  int64_t b = 2 * (int64_t)(p->nranks + 1) * 8 + (p->nusers + p->nitems) * 8;
  const imf_csr *c[3] = {&p->by_user, &p->by_item, &p->holdout};
  for (int j = 0; j < 3; j++) b += (c[j]->hi - c[j]->lo) * 16 + 8 + c[j]->nnz * 8;
  return b;
}
