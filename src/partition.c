/* partition.c - block the users and items over the ranks by rating count and redistribute the
 * ratings twice (by user and by item), each in rounds of bounded all-to-alls (see partition.h).
 *
 * Steps: count training ratings per user and per item (integer MPI_Allreduce), cut both sides
 * into contiguous blocks of about total/P ratings, size the CSR blocks from those counts, send
 * every rating to its user's owner (straight into the by-user CSR; held-out ones aside) and then
 * every by-user training rating to its item's owner, and sort each row. Nothing here depends on
 * how the input was distributed or in which order ratings arrive, so the blocks' contents are a
 * function of the data and P only, and each row's contents a function of the data only. */
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

/* Sort each row's columns by (i, v) through a buffer of the longest row's size: the row's
 * contents are then a function of the data alone, whatever order the ratings arrived in. */
static imf_status sort_rows(imf_csr *c) {
  int64_t longest = 0;
  for (int64_t r = 0; r < c->hi - c->lo; r++)
    longest = c->ptr[r + 1] - c->ptr[r] > longest ? c->ptr[r + 1] - c->ptr[r] : longest;
  wire_rating *row = NULL;
  IMF_CHECK(imf_alloc(&row, (size_t)(longest ? longest : 1), sizeof *row));
  for (int64_t r = 0; r < c->hi - c->lo; r++) {
    const int64_t a = c->ptr[r], m = c->ptr[r + 1] - a;
    if (m < 2) continue;
    for (int64_t j = 0; j < m; j++) row[j] = (wire_rating){0, c->idx[a + j], c->val[a + j]};
    qsort(row, (size_t)m, sizeof *row, cmp_col);
    for (int64_t j = 0; j < m; j++) {
      c->idx[a + j] = row[j].i;
      c->val[a + j] = row[j].v;
    }
  }
  imf_free(&row);
  return IMF_OK;
}

/* An empty CSR over rows [lo, hi), row lo + r sized for count[r] entries; *fill: each row's next
 * free slot. */
static imf_status csr_alloc(imf_csr *c, int64_t lo, int64_t hi, const int64_t *count, int64_t **fill) {
  const int64_t nr = hi - lo;
  c->lo = lo;
  c->hi = hi;
  IMF_CHECK(imf_alloc(&c->ptr, (size_t)nr + 1, sizeof(int64_t)));
  IMF_CHECK(imf_alloc(&c->row_id, (size_t)(nr ? nr : 1), sizeof(int64_t)));
  for (int64_t r = 0; r < nr; r++) {
    c->row_id[r] = lo + r;
    c->ptr[r + 1] = c->ptr[r] + count[r];
  }
  c->nnz = c->ptr[nr];
  IMF_CHECK(imf_alloc_hot(&c->idx, (size_t)(c->nnz ? c->nnz : 1), sizeof(int32_t)));
  IMF_CHECK(imf_alloc_hot(&c->val, (size_t)(c->nnz ? c->nnz : 1), sizeof(float)));
  IMF_CHECK(imf_alloc(fill, (size_t)(nr ? nr : 1), sizeof(int64_t)));
  for (int64_t r = 0; r < nr; r++) (*fill)[r] = c->ptr[r];
  return IMF_OK;
}

/* Build CSR over rows [lo, hi) from n wire ratings whose row is w.u (the holdout's, gathered
 * whole: it is the small side). */
static imf_status build_csr(const wire_rating *w, int64_t n, int64_t lo, int64_t hi, imf_csr *c) {
  int64_t *count = NULL, *fill = NULL;
  imf_status st = imf_alloc(&count, (size_t)(hi - lo ? hi - lo : 1), sizeof *count);
  for (int64_t j = 0; st == IMF_OK && j < n; j++) count[w[j].u - lo]++;
  if (st == IMF_OK) st = csr_alloc(c, lo, hi, count, &fill);
  for (int64_t j = 0; st == IMF_OK && j < n; j++) {
    const int64_t q = fill[w[j].u - lo]++;
    c->idx[q] = w[j].i;
    c->val[q] = w[j].v;
  }
  if (st == IMF_OK) st = sort_rows(c);
  imf_free(&count);
  imf_free(&fill);
  return st;
}

/* Where the ratings of one side go on arrival: straight into that side's CSR (its rows' sizes
 * are the global training counts, known before the exchange), and with by_user the held-out
 * ones into a list for the holdout's CSR. */
typedef struct {
  imf_csr *c;
  int64_t *fill;
  int holdout_split; /* by user: split off the held-out ratings */
  uint64_t seed;
  double fraction;
  wire_rating *held;
  int64_t nheld, capheld;
} sink;

static imf_status sink_put(sink *k, const wire_rating *w, int64_t n) {
  for (int64_t j = 0; j < n; j++) {
    if (k->holdout_split && imf_is_holdout(k->seed, k->fraction, w[j].u, w[j].i)) {
      if (k->nheld == k->capheld) {
        k->capheld = k->capheld < 1024 ? 1024 : 2 * k->capheld;
        IMF_CHECK(imf_realloc(&k->held, (size_t)k->capheld, sizeof *k->held));
      }
      k->held[k->nheld++] = w[j];
      continue;
    }
    const int64_t r = w[j].u - k->c->lo;
    if (r < 0 || r >= k->c->hi - k->c->lo || k->fill[r] >= k->c->ptr[r + 1])
      IMF_FAIL(IMF_ERR_RUNTIME, "partition: a rating of row %d arrived at the wrong rank or beyond its count", w[j].u);
    k->c->idx[k->fill[r]] = w[j].i;
    k->c->val[k->fill[r]++] = w[j].v;
  }
  return IMF_OK;
}

/* Bytes a rank sends (and at most receives) in one round of the partition's exchange.
 * IMF_PARTITION_ROUND overrides it (tests use a tiny one to run many rounds on small data). */
static int64_t round_bytes(void) {
  const char *e = getenv("IMF_PARTITION_ROUND");
  const long long v = e ? atoll(e) : 0;
  return v > 0 ? (int64_t)v : (int64_t)4 << 20;
}

/* Send each rating to the owner of its row (by user: row = u; by
 * item: row = i, and the pair is swapped so that .u is the row and .i the column on arrival),
 * in rounds of at most round_bytes() a rank: each rank sends every other at most Q ratings a
 * round, so it sends and receives at most P Q. Built whole, the send and receive copies were
 * 24 B a rating on top of the input and the CSR, the largest part of a rank's peak
 * (docs/SCALING.md); in rounds they are a few MB, and the order of the ratings is 4 B a rating. */
static imf_status redistribute(MPI_Comm comm, MPI_Datatype wt, const imf_ratings *in, int by_item, const int64_t *start, int P, sink *k) {
  imf_status st = IMF_OK;
  int64_t *sc = NULL, *seg = NULL, *sent = NULL, *cnt = NULL, *sd = NULL, *rc = NULL, *rd = NULL;
  uint32_t *order = NULL;
  wire_rating *sbuf = NULL, *rbuf = NULL;
  if (in->n > (int64_t)UINT32_MAX)
    st = IMF_RAISE(IMF_ERR_NOMEM, "partition: %lld ratings on one rank (at most 2^32): run on more ranks",
                   (long long)in->n);
  IMF_TRY(imf_agree(comm, st), done);
  IMF_TRY(imf_alloc(&sc, (size_t)P, sizeof(int64_t)), done);
  IMF_TRY(imf_alloc(&seg, (size_t)P + 1, sizeof(int64_t)), done);
  IMF_TRY(imf_alloc(&sent, (size_t)P, sizeof(int64_t)), done);
  IMF_TRY(imf_alloc(&cnt, (size_t)P, sizeof(int64_t)), done);
  IMF_TRY(imf_alloc(&sd, (size_t)P, sizeof(int64_t)), done);
  IMF_TRY(imf_alloc(&rc, (size_t)P, sizeof(int64_t)), done);
  IMF_TRY(imf_alloc(&rd, (size_t)P, sizeof(int64_t)), done);
  for (int64_t j = 0; j < in->n; j++) sc[imf_block_owner(start, P, by_item ? in->item[j] : in->user[j])]++;
  for (int r = 0; r < P; r++) seg[r + 1] = seg[r] + sc[r];
  /* the ratings' indices grouped by owner (a counting sort; input order kept) */
  IMF_TRY(imf_alloc(&order, (size_t)(seg[P] ? seg[P] : 1), sizeof *order), done);
  memcpy(sent, seg, (size_t)P * sizeof(int64_t));
  for (int64_t j = 0; j < in->n; j++)
    order[sent[imf_block_owner(start, P, by_item ? in->item[j] : in->user[j])]++] = (uint32_t)j;
  memset(sent, 0, (size_t)P * sizeof(int64_t));
  int64_t q = round_bytes() / (int64_t)sizeof(wire_rating) / P;
  if (q < 1) q = 1;
  int64_t rounds = 0;
  for (int r = 0; r < P; r++) rounds = (sc[r] + q - 1) / q > rounds ? (sc[r] + q - 1) / q : rounds;
  IMF_MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, &rounds, 1, MPI_INT64_T, MPI_MAX, comm), done);
  IMF_TRY(imf_alloc(&sbuf, (size_t)(q * P), sizeof *sbuf), done);
  IMF_TRY(imf_alloc(&rbuf, (size_t)(q * P), sizeof *rbuf), done);
  for (int64_t round = 0; round < rounds; round++) {
    int64_t ns = 0;
    for (int r = 0; r < P; r++) {
      cnt[r] = sc[r] - sent[r] < q ? sc[r] - sent[r] : q;
      sd[r] = ns;
      for (int64_t a = 0; a < cnt[r]; a++) {
        const int64_t j = order[seg[r] + sent[r] + a];
        const int32_t row = by_item ? in->item[j] : in->user[j], col = by_item ? in->user[j] : in->item[j];
        sbuf[ns++] = (wire_rating){row, col, in->value[j]};
      }
      sent[r] += cnt[r];
    }
    IMF_MPI_TRY(MPI_Alltoall(cnt, 1, MPI_INT64_T, rc, 1, MPI_INT64_T, comm), done);
    int64_t nr = 0;
    for (int r = 0; r < P; r++) {
      rd[r] = nr;
      nr += rc[r];
    }
    IMF_TRY(imf_alltoallv64(comm, sbuf, cnt, sd, rbuf, rc, rd, wt), done);
    st = sink_put(k, rbuf, nr);
    IMF_TRY(imf_agree(comm, st), done);
  }
done:
  imf_free(&sc);
  imf_free(&seg);
  imf_free(&sent);
  imf_free(&cnt);
  imf_free(&sd);
  imf_free(&rc);
  imf_free(&rd);
  imf_free(&order);
  imf_free(&sbuf);
  imf_free(&rbuf);
  return st;
}

/* The by-item side from the by-user one (its training ratings, with each entry's user spelled
 * out: 4 B a rating), so that the input can be gone by then. */
static imf_status send_by_item(MPI_Comm comm, MPI_Datatype wt, int P, imf_partition *p, sink *k) {
  const imf_csr *c = &p->by_user;
  int32_t *user = NULL;
  IMF_CHECK(imf_alloc(&user, (size_t)(c->nnz ? c->nnz : 1), sizeof *user));
  for (int64_t r = 0; r < c->hi - c->lo; r++)
    for (int64_t j = c->ptr[r]; j < c->ptr[r + 1]; j++) user[j] = (int32_t)(c->lo + r);
  imf_ratings view = {c->nnz, c->nnz, user, c->idx, c->val, NULL, NULL};
  imf_status st = redistribute(comm, wt, &view, 1, p->item_start, P, k);
  imf_free(&user);
  return st;
}

static imf_status build(MPI_Comm comm, imf_ratings *local, int consume, int64_t nusers, int64_t nitems,
                        double holdout_fraction, uint64_t holdout_seed, imf_partition **out) {
  double t0 = imf_wtime();
  *out = NULL;
  int P, rank;
  imf_status st = IMF_OK;
  imf_partition *p = NULL;
  int64_t *fillu = NULL, *filli = NULL;
  sink ku = {0}, ki = {0};
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
  int64_t cnt[2] = {0, 0};
  for (int64_t j = 0; j < local->n; j++) {
    const int train = !imf_is_holdout(holdout_seed, holdout_fraction, local->user[j], local->item[j]);
    if (train) {
      p->user_count[local->user[j]]++;
      p->item_count[local->item[j]]++;
    }
    cnt[train ? 0 : 1]++;
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
  /* one side at a time, each in bounded rounds straight into its CSR, the by-item side sent
   * from the by-user one: the build's peak is the input, the by-user CSR, the input's order by
   * owner (4 B a rating) and a round's buffers; the input can be freed before the by-item side
   * (consume), whose peak is then both CSRs and 8 B a rating (docs/SCALING.md) */
  const int64_t ulo = p->user_start[rank], uhi = p->user_start[rank + 1];
  const int64_t ilo = p->item_start[rank], ihi = p->item_start[rank + 1];
  IMF_TRY(csr_alloc(&p->by_user, ulo, uhi, p->user_count + ulo, &fillu), done);
  ku = (sink){&p->by_user, fillu, 1, holdout_seed, holdout_fraction, NULL, 0, 0};
  IMF_TRY(redistribute(comm, wt, local, 0, p->user_start, P, &ku), done);
  IMF_TRY(sort_rows(&p->by_user), done);
  IMF_TRY(build_csr(ku.held, ku.nheld, ulo, uhi, &p->holdout), done);
  imf_free(&ku.held);
  if (consume) imf_ratings_free(local);
  IMF_TRY(csr_alloc(&p->by_item, ilo, ihi, p->item_count + ilo, &filli), done);
  ki = (sink){&p->by_item, filli, 0, 0, 0, NULL, 0, 0};
  IMF_TRY(send_by_item(comm, wt, P, p, &ki), done);
  IMF_TRY(sort_rows(&p->by_item), done);
  /* every slot filled: the counts the CSR was sized by and the ratings that arrived agree */
  for (int64_t r = 0; r < p->by_user.hi - p->by_user.lo && st == IMF_OK; r++)
    if (fillu[r] != p->by_user.ptr[r + 1])
      st = IMF_RAISE(IMF_ERR_RUNTIME, "partition: user %lld got fewer ratings than counted", (long long)(p->by_user.lo + r));
  for (int64_t r = 0; r < p->by_item.hi - p->by_item.lo && st == IMF_OK; r++)
    if (filli[r] != p->by_item.ptr[r + 1])
      st = IMF_RAISE(IMF_ERR_RUNTIME, "partition: item %lld got fewer ratings than counted", (long long)(p->by_item.lo + r));
  IMF_TRY(imf_agree(comm, st), done);
  /* the counts were for the blocks and the CSR's sizes; a row's count is its CSR row's length
   * from here on (8 B a row of both sides on every rank: docs/SCALING.md) */
  imf_free(&p->user_count);
  imf_free(&p->item_count);
  p->seconds = imf_wtime() - t0;
done:
  if (wt != MPI_DATATYPE_NULL) MPI_Type_free(&wt);
  imf_free(&fillu);
  imf_free(&filli);
  imf_free(&ku.held);
  st = imf_agree(comm, st);
  if (st != IMF_OK) imf_partition_destroy(&p);
  *out = p;
  return st;
}

int64_t imf_partition_bytes(const imf_partition *p) {
  int64_t b = 2 * (int64_t)(p->nranks + 1) * 8;
  const imf_csr *c[3] = {&p->by_user, &p->by_item, &p->holdout};
  for (int j = 0; j < 3; j++) b += (c[j]->hi - c[j]->lo) * 16 + 8 + c[j]->nnz * 8;
  return b;
}

imf_status imf_partition_build(MPI_Comm comm, const imf_ratings *local, int64_t nusers, int64_t nitems,
                               double holdout_fraction, uint64_t holdout_seed, imf_partition **out) {
  /* not consumed: build() only reads it */
  return build(comm, (imf_ratings *)local, 0, nusers, nitems, holdout_fraction, holdout_seed, out);
}

imf_status imf_partition_build_consume(MPI_Comm comm, imf_ratings *local, int64_t nusers, int64_t nitems,
                                       double holdout_fraction, uint64_t holdout_seed, imf_partition **out) {
  if (!local->block) imf_free(&local->time); /* the build takes no times: 8 B a rating less at its peak */
  imf_status st = build(comm, local, 1, nusers, nitems, holdout_fraction, holdout_seed, out);
  imf_ratings_free(local); /* whatever happened */
  return st;
}
