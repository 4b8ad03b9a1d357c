/* ease.c - EASE item-item model (ease.h) on ScaLAPACK: Gram assembly into a block-cyclic
 * distribution, Cholesky factorisation and inverse (pdpotrf, pdpotri), and B formed in place.
 *
 * Distribution: a BLACS grid over every rank of the communicator, nprow x npcol with nprow the
 * largest divisor of the rank count not above its square root (4 -> 2x2, 6 -> 2x3, a prime P ->
 * 1xP). The square-as-possible shape keeps the panel broadcasts of pdpotrf short in both
 * directions (communication ~ n^2 (1/nprow + 1/npcol)); using every rank, even as a 1xP grid,
 * keeps memory per rank at n^2/P, which is the point of distributing G at all. Block size
 * IMF_EASE_NB = 64: large enough for level-3 BLAS to run near peak on each block, small enough
 * that the cyclic layout balances the triangular work of potrf/potri over the grid (with
 * n = 2000 and 4 ranks each rank still holds ~8 x 8 blocks).
 *
 * Updates: the Gram matrix is X^T X without the ridge (integers, exact in double), so a change of
 * users' rows is an exact integer difference (imf_ease_add_delta) and growing by items appends
 * zero rows and columns; lambda I is added to a copy at each solve.
 *
 * ScaLAPACK and BLACS have no C header: the prototypes below follow the Fortran convention
 * (every argument by pointer, one hidden size_t length per character argument, appended).
 *
 * Scoring with B (top-K, single rows, similarity) is ease_score.c's; the state both files share
 * is ease_impl.h. */
#include "ease.h"
#include "ease_impl.h"
#include "error.h"
#include "exchange.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* BLACS (C interface) */
int Csys2blacs_handle(MPI_Comm comm);
void Cfree_blacs_system_handle(int handle);
void Cblacs_gridinit(int *context, const char *order, int nprow, int npcol);
void Cblacs_gridinfo(int context, int *nprow, int *npcol, int *myrow, int *mycol);
void Cblacs_gridexit(int context);
void Cblacs_freebuff(int context, int wait);
/* ScaLAPACK tools and drivers (Fortran) */
int numroc_(const int *n, const int *nb, const int *iproc, const int *isrcproc, const int *nprocs);
void descinit_(int *desc, const int *m, const int *n, const int *mb, const int *nb, const int *irsrc,
               const int *icsrc, const int *ictxt, const int *lld, int *info);
void pdpotrf_(const char *uplo, const int *n, double *a, const int *ia, const int *ja, const int *desca, int *info,
              size_t uplo_len);
void pdpotri_(const char *uplo, const int *n, double *a, const int *ia, const int *ja, const int *desca, int *info,
              size_t uplo_len);
void pdtran_(const int *m, const int *n, const double *alpha, const double *a, const int *ia, const int *ja,
             const int *desca, const double *beta, double *c, const int *ic, const int *jc, const int *descc);

/* In-place sum/max over comm in chunks whose counts fit an int. */
static imf_status allreduce_chunks(MPI_Comm comm, void *buf, size_t n, MPI_Datatype t, size_t esize, MPI_Op op) {
  const size_t chunk = (size_t)1 << 26;
  for (size_t o = 0; o < n; o += chunk) {
    size_t c = n - o < chunk ? n - o : chunk;
    IMF_MPI(MPI_Allreduce(MPI_IN_PLACE, (char *)buf + o * esize, (int)c, t, op, comm));
  }
  return IMF_OK;
}

/* Sum of every rank's buf into root's acc (acc += the others' bufs; the root's own part is
 * already in acc), in chunks whose counts fit an int. */
static imf_status reduce_into(MPI_Comm comm, const double *buf, double *acc, size_t n, int root, int rank) {
  const size_t chunk = (size_t)1 << 26;
  for (size_t o = 0; o < n; o += chunk) {
    size_t c = n - o < chunk ? n - o : chunk;
    if (rank == root) IMF_MPI(MPI_Reduce(MPI_IN_PLACE, acc + o, (int)c, MPI_DOUBLE, MPI_SUM, root, comm));
    else IMF_MPI(MPI_Reduce(buf + o, NULL, (int)c, MPI_DOUBLE, MPI_SUM, root, comm));
  }
  return IMF_OK;
}

static int cmp64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* This rank's users as CSR rows of distinct items (sorted). */
static imf_status user_rows(const imf_ratings *r, int64_t n, int64_t *nrows, int64_t **ptr, int32_t **idx) {
  imf_status st = IMF_OK;
  *ptr = NULL;
  *idx = NULL;
  int64_t m = r->n;
  /* sort (user, item) pairs through an index-free copy: user in the high half */
  int64_t *key = NULL;
  IMF_TRY(imf_alloc(&key, (size_t)(m > 0 ? m : 1), sizeof *key), fail);
  for (int64_t j = 0; j < m; j++) {
    if (r->item[j] < 0 || r->item[j] >= n) {
      st = IMF_RAISE(IMF_ERR_INPUT, "item index %d outside [0, %lld)", (int)r->item[j],
                     (long long)n);
      goto fail;
    }
    key[j] = ((int64_t)r->user[j] << 32) | (int64_t)(uint32_t)r->item[j];
  }
  int sorted = 1;
  for (int64_t j = 1; j < m && sorted; j++) sorted = key[j - 1] <= key[j];
  if (!sorted) /* the store and the splits already hand out (user, item) order: the rare path */
    qsort(key, (size_t)m, sizeof *key, cmp64);
  int64_t nr = 0;
  for (int64_t j = 0; j < m; j++)
    if (j == 0 || (key[j] >> 32) != (key[j - 1] >> 32)) nr++;
  IMF_TRY(imf_alloc(ptr, (size_t)nr + 1, sizeof **ptr), fail);
  IMF_TRY(imf_alloc(idx, (size_t)(m > 0 ? m : 1), sizeof **idx), fail);
  int64_t row = -1, w = 0;
  for (int64_t j = 0; j < m; j++) {
    int newu = j == 0 || (key[j] >> 32) != (key[j - 1] >> 32);
    if (newu) (*ptr)[++row] = w;
    else if (key[j] == key[j - 1]) continue; /* a repeated pair is one 1 in X */
    (*idx)[w++] = (int32_t)(key[j] & 0xffffffff);
  }
  (*ptr)[nr] = w;
  *nrows = nr;
  imf_free(&key);
  return IMF_OK;
fail:
  imf_free(&key);
  imf_free(ptr);
  imf_free(idx);
  return st;
}

void imf_ease_destroy(imf_ease **pe) {
  if (!pe || !*pe) return;
  imf_ease *e = *pe;
  imf_free(&e->A);
  imf_free(&e->G);
  imf_free(&e->P);
  free(e->grid_of_rank);
  free(e->rank_at);
  /* Only the grid is released: Cblacs_exit would tear BLACS down for the rest of the process
   * (and with 0 also MPI). The system handle is freed after its grid. Cblacs_freebuff(, 1)
   * first completes BLACS's outstanding asynchronous sends (every one is matched by then: the
   * ScaLAPACK calls returned on every rank) and frees its buffers; a pending send request
   * would keep the grid's communicator alive past Cblacs_gridexit, a leak per grid. */
  if (e->ctx >= 0) {
    Cblacs_freebuff(e->ctx, 1);
    Cblacs_gridexit(e->ctx);
  }
  if (e->handle >= 0) Cfree_blacs_system_handle(e->handle);
  if (e->blacs_comm != MPI_COMM_NULL) MPI_Comm_free(&e->blacs_comm);
  free(e);
  *pe = NULL;
}

void imf_ease_grid(const imf_ease *e, int *nprow, int *npcol) {
  *nprow = e->nprow;
  *npcol = e->npcol;
}

void imf_ease_times(const imf_ease *e, double *assemble_s, double *potrf_s, double *potri_s) {
  *assemble_s = e->t_assemble;
  *potrf_s = e->t_potrf;
  *potri_s = e->t_potri;
}

int64_t imf_ease_nitems(const imf_ease *e) { return e->n; }
double imf_ease_lambda(const imf_ease *e) { return e->lambda; }
double *imf_ease_gram(imf_ease *e) { return e->G; }
double *imf_ease_b(imf_ease *e) { return e->A; }
double *imf_ease_p(imf_ease *e) { return e->P; }
MPI_Comm imf_ease_comm(const imf_ease *e) { return e->comm; }
int imf_ease_legacy_format(void) {
  const char *v = getenv("IMF_EASE_LEGACY_FORMAT");
  return v && !strcmp(v, "1");
}

void imf_ease_get_layout(const imf_ease *e, imf_ease_layout *l) {
  l->n = e->n;
  l->nb = e->nb;
  l->nprow = e->nprow;
  l->npcol = e->npcol;
  l->myrow = e->myrow;
  l->mycol = e->mycol;
  l->mloc = e->mloc;
  l->nloc = e->nloc;
  l->lld = e->lld;
}

/* Local sizes and the descriptor for the current order n. Local index -> global index does not
 * depend on n (only on nb and the grid), which is what makes growing a copy of local blocks. */
static imf_status set_layout(imf_ease *e) {
  int zero = 0, info = 0;
  e->mloc = numroc_(&e->n, &e->nb, &e->myrow, &zero, &e->nprow);
  e->nloc = numroc_(&e->n, &e->nb, &e->mycol, &zero, &e->npcol);
  e->lld = e->mloc > 1 ? e->mloc : 1;
  descinit_(e->desc, &e->n, &e->n, &e->nb, &e->nb, &zero, &zero, &e->ctx, &e->lld, &info);
  if (info != 0) IMF_FAIL(IMF_ERR_RUNTIME, "descinit failed (info %d)", info);
  return IMF_OK;
}

/* not zeroed: a reader writes every element (one pass over the memory, not two) */
imf_status imf_ease_alloc_b(imf_ease *e) {
  if (e->A) return IMF_OK;
  return imf_alloc_nz(&e->A, cells(e), sizeof *e->A);
}

void imf_ease_drop_gram(imf_ease *e) { imf_free(&e->G); }
void imf_ease_drop_p(imf_ease *e) { imf_free(&e->P); }

imf_status imf_ease_alloc_p(imf_ease *e) {
  if (e->P) return IMF_OK;
  return imf_alloc_nz(&e->P, cells(e), sizeof *e->P);
}

void imf_ease_round_b(imf_ease *e) {
  if (!e->A) return;
  size_t c = cells(e);
  for (size_t x = 0; x < c; x++) e->A[x] = (double)(float)e->A[x];
}

static imf_status ease_create(MPI_Comm comm, int64_t nitems, double lambda, int grid, int gram, imf_ease **out);
imf_status imf_ease_create(MPI_Comm comm, int64_t nitems, double lambda, int grid, imf_ease **out) {
  return ease_create(comm, nitems, lambda, grid, 1, out);
}
imf_status imf_ease_create_empty(MPI_Comm comm, int64_t nitems, double lambda, int grid, imf_ease **out) {
  return ease_create(comm, nitems, lambda, grid, 0, out);
}

static imf_status ease_create(MPI_Comm comm, int64_t nitems, double lambda, int grid, int gram, imf_ease **out) {
  *out = NULL;
  imf_status st = IMF_OK;
  imf_ease *e = NULL;
  int size;
  IMF_MPI_TRY(MPI_Comm_size(comm, &size), fail);
  if (nitems < 1 || nitems > 1000000)
    IMF_TRY(IMF_RAISE(IMF_ERR_USAGE, "EASE needs 1 to 10^6 items (got %lld)", (long long)nitems), fail);
  if (!(lambda > 0) || !isfinite(lambda))
    IMF_TRY(IMF_RAISE(IMF_ERR_USAGE, "EASE needs lambda > 0 (got %g): G = X^T X + lambda I must be positive definite",
             lambda), fail);
  e = calloc(1, sizeof *e);
  if (!e) IMF_TRY(IMF_RAISE(IMF_ERR_NOMEM, "out of memory"), fail);
  e->comm = comm;
  e->blacs_comm = MPI_COMM_NULL;
  e->handle = e->ctx = -1;
  e->n = (int)nitems;
  e->nb = IMF_EASE_NB;
  e->lambda = lambda;
  e->nprow = 1;
  if (grid != IMF_EASE_GRID_COLUMNS)
    for (int p = 1; (int64_t)p * p <= size; p++)
      if (size % p == 0) e->nprow = p;
  e->npcol = size / e->nprow;
  /* BLACS keys its system handles by communicator: two live objects on one communicator would
   * share a handle, and the second to be destroyed would free it again (a BLACS warning on stderr,
   * seen with tune's rank groups). A duplicate per object makes every handle its own. */
  IMF_MPI_TRY(MPI_Comm_dup(comm, &e->blacs_comm), fail);
  e->handle = Csys2blacs_handle(e->blacs_comm);
  e->ctx = e->handle;
  Cblacs_gridinit(&e->ctx, "Row", e->nprow, e->npcol);
  int gr, gc;
  Cblacs_gridinfo(e->ctx, &gr, &gc, &e->myrow, &e->mycol);
  if (gr != e->nprow || gc != e->npcol || e->myrow < 0 || e->mycol < 0)
    st = IMF_RAISE(IMF_ERR_RUNTIME, "BLACS grid %dx%d not set up (got %dx%d)", e->nprow,
                   e->npcol, gr, gc);
  IMF_TRY(imf_agree(comm, st), fail);
  /* where each rank sits on the grid (the BLACS mapping, not assumed) */
  e->grid_of_rank = malloc(2 * (size_t)size * sizeof *e->grid_of_rank);
  e->rank_at = malloc((size_t)size * sizeof *e->rank_at);
  if (!e->grid_of_rank || !e->rank_at) st = IMF_RAISE(IMF_ERR_NOMEM, "out of memory");
  IMF_TRY(imf_agree(comm, st), fail);
  int mine[2] = {e->myrow, e->mycol};
  IMF_MPI_TRY(MPI_Allgather(mine, 2, MPI_INT, e->grid_of_rank, 2, MPI_INT, comm), fail);
  for (int r = 0; r < size; r++) e->rank_at[e->grid_of_rank[2 * r] * e->npcol + e->grid_of_rank[2 * r + 1]] = r;
  st = set_layout(e);
  if (st == IMF_OK && gram) st = imf_alloc(&e->G, cells(e), sizeof *e->G);
  IMF_TRY(imf_agree(comm, st), fail);
  *out = e;
  return IMF_OK;
fail:
  imf_ease_destroy(&e);
  return st;
}

/* Gram += w * sum of x_r^T x_r over this rank's CSR rows. For each destination rank in turn,
 * every rank builds the contributions of its own rows to that rank's local blocks and
 * MPI_Reduce sums them there (the destination adds its own straight into its Gram): at most one
 * local-sized buffer per rank, and the counts are integers, so the sum is exact and independent
 * of the reduction order (and of the rank count). */
static imf_status assemble_rows(imf_ease *e, int64_t nr, const int64_t *ptr, const int32_t *idx, double w) {
  imf_status st = IMF_OK;
  int size, rank, n = e->n, nb = e->nb;
  MPI_Comm_size(e->comm, &size);
  MPI_Comm_rank(e->comm, &rank);
  int32_t *rl = NULL, *cl = NULL;
  double *buf = NULL;
  size_t maxloc = 0;
  for (int d = 0; d < size; d++) {
    int pr = e->grid_of_rank[2 * d], pc = e->grid_of_rank[2 * d + 1], zero = 0;
    size_t c = (size_t)numroc_(&n, &nb, &pr, &zero, &e->nprow) * (size_t)numroc_(&n, &nb, &pc, &zero, &e->npcol);
    if (d != rank && c > maxloc) maxloc = c;
  }
  st = imf_alloc_nz(&buf, maxloc > 0 ? maxloc : 1, sizeof *buf);
  if (st == IMF_OK) st = imf_alloc(&rl, (size_t)n, sizeof *rl);
  if (st == IMF_OK) st = imf_alloc(&cl, (size_t)n, sizeof *cl);
  if (st == IMF_OK && !e->G) st = IMF_RAISE(IMF_ERR_RUNTIME, "EASE: the Gram matrix was dropped");
  IMF_TRY(imf_agree(e->comm, st), out);
  for (int d = 0; d < size; d++) {
    int pr = e->grid_of_rank[2 * d], pc = e->grid_of_rank[2 * d + 1], zero = 0;
    int ml = numroc_(&n, &nb, &pr, &zero, &e->nprow), nl = numroc_(&n, &nb, &pc, &zero, &e->npcol);
    size_t cnt = (size_t)ml * (size_t)nl;
    double *dst = d == rank ? e->G : buf; /* lld == ml whenever ml > 0 */
    if (d != rank) memset(buf, 0, cnt * sizeof *buf);
    for (int64_t r = 0; r < nr; r++) {
      int nrow = 0, ncol = 0; /* the row's items in the destination's rows and columns */
      for (int64_t j = ptr[r]; j < ptr[r + 1]; j++) {
        int64_t i = idx[j];
        if ((i / nb) % e->nprow == pr) rl[nrow++] = g2l(i, nb, e->nprow);
        if ((i / nb) % e->npcol == pc) cl[ncol++] = g2l(i, nb, e->npcol);
      }
      for (int b = 0; b < ncol; b++) {
        double *col = dst + (size_t)cl[b] * (size_t)ml;
        for (int a = 0; a < nrow; a++) col[rl[a]] += w;
      }
    }
    IMF_TRY(reduce_into(e->comm, buf, e->G, cnt, d, rank), out);
  }
out:
  imf_free(&buf);
  imf_free(&rl);
  imf_free(&cl);
  return st;
}

imf_status imf_ease_add_ratings(imf_ease *e, const imf_ratings *local) {
  int64_t nr = 0, *ptr = NULL;
  int32_t *idx = NULL;
  imf_status st = user_rows(local, e->n, &nr, &ptr, &idx);
  IMF_TRY(imf_agree(e->comm, st), out);
  IMF_MPI_TRY(MPI_Barrier(e->comm), out);
  double t0 = MPI_Wtime();
  IMF_TRY(assemble_rows(e, nr, ptr, idx, 1.0), out);
  IMF_MPI_TRY(MPI_Barrier(e->comm), out);
  e->t_assemble += MPI_Wtime() - t0;
out:
  imf_free(&ptr);
  imf_free(&idx);
  return st;
}

imf_status imf_ease_add_rows(imf_ease *e, int64_t nrows, const int64_t *ptr, const int32_t *idx) {
  IMF_MPI(MPI_Barrier(e->comm));
  double t0 = MPI_Wtime();
  IMF_CHECK(assemble_rows(e, nrows, ptr, idx, 1.0));
  IMF_MPI(MPI_Barrier(e->comm));
  e->t_assemble += MPI_Wtime() - t0;
  return IMF_OK;
}

/* ---- sparse Gram updates ---- */

typedef struct {
  int32_t i, j, w;
} gentry;

/* A row's change split into kept (old and new), added (new only) and removed (old only) items;
 * scratch holds room for old + new items. Returns the entries the change produces. */
static int64_t row_split(const int32_t *o, int64_t no, const int32_t *nw, int64_t nn, int32_t *scratch, int32_t **K,
                         int64_t *nk, int32_t **A, int64_t *na, int32_t **D, int64_t *nd) {
  *K = scratch;
  int64_t a = 0, b = 0, k = 0;
  /* kept first, then added and removed behind them (sizes bounded by no + nn in all) */
  while (a < no && b < nn) {
    if (o[a] == nw[b]) scratch[k++] = o[a], a++, b++;
    else if (o[a] < nw[b]) a++;
    else b++;
  }
  *nk = k;
  *A = scratch + k;
  int64_t x = 0;
  for (a = 0, b = 0; b < nn; b++) {
    while (a < no && o[a] < nw[b]) a++;
    if (a >= no || o[a] != nw[b]) (*A)[x++] = nw[b];
  }
  *na = x;
  *D = *A + x;
  int64_t y = 0;
  for (a = 0, b = 0; a < no; a++) {
    while (b < nn && nw[b] < o[a]) b++;
    if (b >= nn || nw[b] != o[a]) (*D)[y++] = o[a];
  }
  *nd = y;
  return 2 * k * x + x * x + 2 * k * y + y * y;
}

static int owner(const imf_ease *e, int64_t i, int64_t j) {
  return e->rank_at[((i / e->nb) % e->nprow) * e->npcol + (j / e->nb) % e->npcol];
}

/* The entries of one row's change: counted into cnt (buf == NULL) or written at pos[owner]. */
static void row_emit(const imf_ease *e, const int32_t *K, int64_t nk, const int32_t *A, int64_t na, const int32_t *D,
                     int64_t nd, int64_t *cnt, gentry *buf, int64_t *pos) {
  const int32_t *S[2] = {A, D};
  const int64_t ns[2] = {na, nd};
  for (int s = 0; s < 2; s++) {
    int32_t w = s == 0 ? 1 : -1;
    for (int64_t x = 0; x < ns[s]; x++) {
      int32_t p = S[s][x];
      for (int64_t y = 0; y < nk; y++) {
        int32_t q = K[y];
        int o1 = owner(e, p, q), o2 = owner(e, q, p);
        if (buf) {
          buf[pos[o1]++] = (gentry){p, q, w};
          buf[pos[o2]++] = (gentry){q, p, w};
        } else {
          cnt[o1]++;
          cnt[o2]++;
        }
      }
      for (int64_t y = 0; y < ns[s]; y++) {
        int32_t q = S[s][y];
        int o1 = owner(e, p, q);
        if (buf) buf[pos[o1]++] = (gentry){p, q, w};
        else cnt[o1]++;
      }
    }
  }
}

imf_status imf_ease_add_delta(imf_ease *e, int64_t nrows, const int64_t *optr, const int32_t *oidx,
                              const int64_t *nptr, const int32_t *nidx, int64_t *entries) {
  imf_status st = IMF_OK;
  int size, rank;
  MPI_Comm_size(e->comm, &size);
  MPI_Comm_rank(e->comm, &rank);
  int64_t *cnt = NULL, *sd = NULL, *rc = NULL, *rd = NULL, *pos = NULL;
  int32_t *scratch = NULL;
  gentry *sbuf = NULL, *rbuf = NULL;
  int64_t maxrow = 0, total = 0;
  MPI_Datatype et = MPI_DATATYPE_NULL;
  double t0 = MPI_Wtime();
  for (int64_t r = 0; r < nrows && st == IMF_OK; r++) {
    int64_t len = (optr[r + 1] - optr[r]) + (nptr[r + 1] - nptr[r]);
    if (len > maxrow) maxrow = len;
    for (int64_t j = optr[r]; j < optr[r + 1]; j++)
      if (oidx[j] < 0 || oidx[j] >= e->n || (j > optr[r] && oidx[j] <= oidx[j - 1]))
        st = IMF_RAISE(IMF_ERR_RUNTIME, "EASE update: an old row is not ascending items < %d", e->n);
    for (int64_t j = nptr[r]; j < nptr[r + 1]; j++)
      if (nidx[j] < 0 || nidx[j] >= e->n || (j > nptr[r] && nidx[j] <= nidx[j - 1]))
        st = IMF_RAISE(IMF_ERR_RUNTIME, "EASE update: a new row is not ascending items < %d", e->n);
  }
  if (st == IMF_OK && !e->G) st = IMF_RAISE(IMF_ERR_RUNTIME, "EASE: the Gram matrix was dropped");
  if (st == IMF_OK) st = imf_alloc(&scratch, (size_t)(maxrow ? maxrow : 1), sizeof *scratch);
  IMF_TRY(imf_agree(e->comm, st), out);
  for (int64_t r = 0; r < nrows; r++) {
    int32_t *K, *A, *D;
    int64_t nk, na, nd;
    int64_t c = row_split(oidx + optr[r], optr[r + 1] - optr[r], nidx + nptr[r], nptr[r + 1] - nptr[r], scratch, &K,
                          &nk, &A, &na, &D, &nd);
    total += c;
  }
  IMF_MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, &total, 1, MPI_INT64_T, MPI_SUM, e->comm), out);
  if (entries) *entries = total;
  /* A change touching most of the matrix is cheaper as two dense passes (-old, +new): the same
   * exact integers either way. */
  if ((double)total * sizeof(gentry) > (double)e->n * (double)e->n * sizeof(double)) {
    IMF_TRY(assemble_rows(e, nrows, optr, oidx, -1.0), out);
    IMF_TRY(assemble_rows(e, nrows, nptr, nidx, 1.0), out);
    goto out;
  }
  /* Rounds of rows with at most `limit` entries (a single larger row goes alone). */
  const int64_t limit = (int64_t)1 << 22;
  IMF_TRY(imf_alloc(&cnt, (size_t)size, sizeof *cnt), out);
  IMF_TRY(imf_alloc(&sd, (size_t)size, sizeof *sd), out);
  IMF_TRY(imf_alloc(&rc, (size_t)size, sizeof *rc), out);
  IMF_TRY(imf_alloc(&rd, (size_t)size, sizeof *rd), out);
  IMF_TRY(imf_alloc(&pos, (size_t)size, sizeof *pos), out);
  IMF_MPI_TRY(MPI_Type_contiguous(3, MPI_INT32_T, &et), out);
  IMF_MPI_TRY(MPI_Type_commit(&et), out);
  int64_t r0 = 0;
  for (;;) {
    int64_t r1 = r0, tot = 0;
    memset(cnt, 0, (size_t)size * sizeof *cnt);
    while (r1 < nrows) {
      int32_t *K, *A, *D;
      int64_t nk, na, nd;
      int64_t c = row_split(oidx + optr[r1], optr[r1 + 1] - optr[r1], nidx + nptr[r1], nptr[r1 + 1] - nptr[r1], scratch,
                            &K, &nk, &A, &na, &D, &nd);
      if (tot > 0 && tot + c > limit) break;
      row_emit(e, K, nk, A, na, D, nd, cnt, NULL, NULL);
      tot += c;
      r1++;
    }
    for (int d = 0; d < size; d++) sd[d] = pos[d] = d ? sd[d - 1] + cnt[d - 1] : 0;
    st = imf_realloc(&sbuf, (size_t)(tot ? tot : 1), sizeof *sbuf);
    if (st == IMF_OK)
      for (int64_t r = r0; r < r1; r++) {
        int32_t *K, *A, *D;
        int64_t nk, na, nd;
        row_split(oidx + optr[r], optr[r + 1] - optr[r], nidx + nptr[r], nptr[r + 1] - nptr[r], scratch, &K, &nk, &A,
                  &na, &D, &nd);
        row_emit(e, K, nk, A, na, D, nd, NULL, sbuf, pos);
      }
    IMF_TRY(imf_agree(e->comm, st), out);
    IMF_MPI_TRY(MPI_Alltoall(cnt, 1, MPI_INT64_T, rc, 1, MPI_INT64_T, e->comm), out);
    int64_t rtot = 0;
    for (int d = 0; d < size; d++) {
      rd[d] = rtot;
      rtot += rc[d];
    }
    IMF_TRY(imf_agree(e->comm, imf_realloc(&rbuf, (size_t)(rtot ? rtot : 1), sizeof *rbuf)), out);
    IMF_TRY(imf_alltoallv64(e->comm, sbuf, cnt, sd, rbuf, rc, rd, et), out);
    for (int64_t x = 0; x < rtot; x++) {
      int li = g2l(rbuf[x].i, e->nb, e->nprow), lj = g2l(rbuf[x].j, e->nb, e->npcol);
      e->G[(size_t)lj * (size_t)e->lld + (size_t)li] += (double)rbuf[x].w;
    }
    r0 = r1;
    int more = r0 < nrows;
    IMF_MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, &more, 1, MPI_INT, MPI_MAX, e->comm), out);
    if (!more) break;
  }
out:
  e->t_assemble += MPI_Wtime() - t0;
  if (et != MPI_DATATYPE_NULL) MPI_Type_free(&et);
  imf_free(&cnt);
  imf_free(&sd);
  imf_free(&rc);
  imf_free(&rd);
  imf_free(&pos);
  imf_free(&scratch);
  free(sbuf);
  free(rbuf);
  return st;
}

imf_status imf_ease_grow(imf_ease *e, int64_t n2) {
  if (n2 < e->n || n2 > 1000000)
    IMF_FAIL(IMF_ERR_USAGE, "EASE: cannot resize %d items to %lld", e->n, (long long)n2);
  if (n2 == e->n) return IMF_OK;
  imf_status st = IMF_OK;
  int oldm = e->mloc, oldn = e->nloc, oldl = e->lld, oldorder = e->n;
  double *G = NULL, *P = NULL;
  e->n = (int)n2;
  st = set_layout(e);
  /* not zeroed: every element is written below (one pass over memory instead of two) */
  if (st == IMF_OK && e->G) st = imf_alloc_nz(&G, cells(e), sizeof *G);
  if (st == IMF_OK && e->P) st = imf_alloc_nz(&P, cells(e), sizeof *P);
  st = imf_agree(e->comm, st);
  if (st != IMF_OK) {
    e->n = oldorder;
    set_layout(e);
    imf_free(&G);
    imf_free(&P);
    return st;
  }
  for (int lj = 0; lj < e->nloc; lj++) {
    size_t keep = lj < oldn ? (size_t)oldm : 0, at = (size_t)lj * (size_t)e->lld, rest = (size_t)e->mloc - keep;
    if (G) {
      if (keep) memcpy(G + at, e->G + (size_t)lj * (size_t)oldl, keep * sizeof *G);
      memset(G + at + keep, 0, rest * sizeof *G);
    }
    if (P) {
      if (keep) memcpy(P + at, e->P + (size_t)lj * (size_t)oldl, keep * sizeof *P);
      memset(P + at + keep, 0, rest * sizeof *P);
    }
  }
  if (G) {
    imf_free(&e->G);
    e->G = G;
  }
  if (P) {
    /* (G + lambda I)^-1 of the grown matrix: the new items' rows and columns of G are 0, so
     * the inverse is block diagonal with 1/lambda on their diagonal */
    for (int lj = 0; lj < e->nloc; lj++) {
      int64_t j = l2g(lj, e->nb, e->mycol, e->npcol);
      if (j >= oldorder && (j / e->nb) % e->nprow == e->myrow)
        P[(size_t)lj * (size_t)e->lld + (size_t)g2l(j, e->nb, e->nprow)] = 1.0 / e->lambda;
    }
    imf_free(&e->P);
    e->P = P;
  }
  imf_free(&e->A);
  return IMF_OK;
}

imf_status imf_ease_solve(imf_ease *e, int keep_gram) { return imf_ease_solve_p(e, keep_gram, 0); }

/* B = I - P diagMat(1/diag(P)) into e->A from the full symmetric P (src, local part; may be
 * e->A itself): B_ij = -P_ij / P_jj off the diagonal, diag(B) = 0 exactly. diag(P) is the only
 * replicated piece (n doubles, one owner per entry: the sum is exact). */
static imf_status form_b(imf_ease *e, const double *src) {
  double *dg = NULL;
  int lld = e->lld;
  IMF_CHECK(imf_agree(e->comm, imf_alloc(&dg, (size_t)e->n, sizeof *dg)));
  for (int lj = 0; lj < e->nloc; lj++) {
    int64_t j = l2g(lj, e->nb, e->mycol, e->npcol);
    if ((j / e->nb) % e->nprow == e->myrow) dg[j] = src[(size_t)lj * (size_t)lld + (size_t)g2l(j, e->nb, e->nprow)];
  }
  imf_status st = allreduce_chunks(e->comm, dg, (size_t)e->n, MPI_DOUBLE, sizeof *dg, MPI_SUM);
  if (st == IMF_OK)
    for (int lj = 0; lj < e->nloc; lj++) {
      int64_t j = l2g(lj, e->nb, e->mycol, e->npcol);
      double s = 1.0 / dg[j];
      for (int li = 0; li < e->mloc; li++) {
        int64_t i = l2g(li, e->nb, e->myrow, e->nprow);
        size_t at = (size_t)lj * (size_t)lld + (size_t)li;
        e->A[at] = i == j ? 0.0 : -src[at] * s;
      }
    }
  imf_free(&dg);
  return st;
}

imf_status imf_ease_b_from_p(imf_ease *e) {
  imf_status st = e->P ? IMF_OK : IMF_RAISE(IMF_ERR_RUNTIME, "EASE: no P to form B from");
  if (st == IMF_OK && !e->A) st = imf_alloc_nz(&e->A, cells(e), sizeof *e->A);
  IMF_CHECK(imf_agree(e->comm, st));
  return form_b(e, e->P);
}

imf_status imf_ease_solve_p(imf_ease *e, int keep_gram, int keep_p) {
  imf_status st = IMF_OK;
  MPI_Comm comm = e->comm;
  double *T = NULL;
  int one = 1, info = 0, lld = e->lld;
  size_t c = cells(e);
  if (!e->G) st = IMF_RAISE(IMF_ERR_RUNTIME, "EASE: no Gram matrix to solve");
  if (st == IMF_OK && !e->A) st = imf_alloc_nz(&e->A, c, sizeof *e->A);
  if (st == IMF_OK && keep_gram) st = imf_alloc_nz(&T, c, sizeof *T);
  if (st == IMF_OK && keep_p && !e->P) st = imf_alloc_nz(&e->P, c, sizeof *e->P);
  if (st == IMF_OK && !keep_p) imf_free(&e->P);
  IMF_TRY(imf_agree(comm, st), out);
  /* A = G + lambda I */
  memcpy(e->A, e->G, c * sizeof *e->A);
  for (int lj = 0; lj < e->nloc; lj++) {
    int64_t j = l2g(lj, e->nb, e->mycol, e->npcol);
    if ((j / e->nb) % e->nprow == e->myrow) e->A[(size_t)lj * (size_t)lld + (size_t)g2l(j, e->nb, e->nprow)] += e->lambda;
  }
  if (!keep_gram) { /* the Gram's memory becomes the transpose buffer */
    T = e->G;
    e->G = NULL;
  }
  IMF_MPI_TRY(MPI_Barrier(comm), out);
  double t1 = MPI_Wtime();
  /* P = G^-1: only the lower triangle is computed (and referenced) */
  pdpotrf_("L", &e->n, e->A, &one, &one, e->desc, &info, 1);
  int worst = 0, ainfo = info < 0 ? -info : info;
  IMF_MPI_TRY(MPI_Allreduce(&ainfo, &worst, 1, MPI_INT, MPI_MAX, comm), out);
  if (worst != 0)
    IMF_TRY(IMF_RAISE(IMF_ERR_INPUT, "pdpotrf failed (info %d): X^T X + %g I is not numerically positive definite", worst,
                      e->lambda), out);
  IMF_MPI_TRY(MPI_Barrier(comm), out);
  double t2 = MPI_Wtime();
  e->t_potrf = t2 - t1;
  pdpotri_("L", &e->n, e->A, &one, &one, e->desc, &info, 1);
  ainfo = info < 0 ? -info : info;
  IMF_MPI_TRY(MPI_Allreduce(&ainfo, &worst, 1, MPI_INT, MPI_MAX, comm), out);
  if (worst != 0) IMF_TRY(IMF_RAISE(IMF_ERR_INPUT, "pdpotri failed (info %d)", worst), out);
  IMF_MPI_TRY(MPI_Barrier(comm), out);
  e->t_potri = MPI_Wtime() - t2;

  /* Symmetrize: the upper triangle still holds G. T = A^T carries the lower triangle of P into
   * the upper positions (same descriptor, so local positions match element by element). */
  double done = 1.0, dzero = 0.0;
  pdtran_(&e->n, &e->n, &done, e->A, &one, &one, e->desc, &dzero, T, &one, &one, e->desc);
  for (int lj = 0; lj < e->nloc; lj++) {
    int64_t j = l2g(lj, e->nb, e->mycol, e->npcol);
    for (int li = 0; li < e->mloc; li++) {
      int64_t i = l2g(li, e->nb, e->myrow, e->nprow);
      size_t at = (size_t)lj * (size_t)lld + (size_t)li;
      if (i < j) e->A[at] = T[at];
    }
  }
  /* P itself, for a later low-rank update (imf_ease_woodbury), before A becomes B */
  if (keep_p) memcpy(e->P, e->A, c * sizeof *e->P);
  IMF_TRY(form_b(e, e->A), out);
out:
  imf_free(&T);
  if (st != IMF_OK) {
    imf_free(&e->A);
    imf_free(&e->P);
  }
  return st;
}

imf_status imf_ease_fit(MPI_Comm comm, const imf_ratings *local, int64_t nitems, double lambda, imf_ease **out) {
  *out = NULL;
  imf_ease *e = NULL;
  imf_status st = IMF_OK;
  IMF_TRY(imf_ease_create(comm, nitems, lambda, IMF_EASE_GRID_SQUARE, &e), fail);
  IMF_TRY(imf_ease_add_ratings(e, local), fail);
  IMF_TRY(imf_ease_solve(e, 0), fail);
  *out = e;
  return IMF_OK;
fail:
  imf_ease_destroy(&e);
  return st;
}

static imf_status gather_local(imf_ease *e, const double *src, int64_t j0, int64_t j1, double *out) {
  if (j0 < 0 || j1 > e->n || j0 > j1) IMF_FAIL(IMF_ERR_USAGE, "bad column range [%lld, %lld)", (long long)j0, (long long)j1);
  imf_status st = src ? IMF_OK : IMF_RAISE(IMF_ERR_RUNTIME, "EASE: that matrix is not held");
  IMF_CHECK(imf_agree(e->comm, st));
  size_t n = (size_t)e->n, cnt = n * (size_t)(j1 - j0);
  memset(out, 0, cnt * sizeof *out);
  for (int lj = 0; lj < e->nloc; lj++) {
    int64_t j = l2g(lj, e->nb, e->mycol, e->npcol);
    if (j < j0 || j >= j1) continue;
    for (int li = 0; li < e->mloc; li++)
      out[(size_t)(j - j0) * n + (size_t)l2g(li, e->nb, e->myrow, e->nprow)] = src[(size_t)lj * (size_t)e->lld + (size_t)li];
  }
  /* one owner per entry, zeros elsewhere: the sum is exact */
  return allreduce_chunks(e->comm, out, cnt, MPI_DOUBLE, sizeof *out, MPI_SUM);
}

imf_status imf_ease_gather_cols(imf_ease *e, int64_t j0, int64_t j1, double *out) {
  return gather_local(e, e->A, j0, j1, out);
}
imf_status imf_ease_gather_gram_cols(imf_ease *e, int64_t j0, int64_t j1, double *out) {
  return gather_local(e, e->G, j0, j1, out);
}

static uint64_t fmix64(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ULL;
  k ^= k >> 33;
  return k;
}

/* One element of an order-free hash (docs/FORMAT.md, "EASE state"). */
static void hash_add(uint64_t lane[2], uint64_t key, uint64_t v) {
  lane[0] += fmix64(fmix64(key + 0x243f6a8885a308d3ULL) ^ v);
  lane[1] += fmix64((key * 0x9e3779b97f4a7c15ULL) ^ fmix64(v + 0x13198a2e03707344ULL));
}

imf_status imf_ease_hash(imf_ease *e, int which, char hex[33]) {
  const double *src = which == 2 ? e->P : which ? e->A : e->G;
  imf_status st = src ? IMF_OK : IMF_RAISE(IMF_ERR_RUNTIME, "EASE: that matrix is not held");
  IMF_CHECK(imf_agree(e->comm, st));
  uint64_t lane[2] = {0, 0};
  for (int lj = 0; lj < e->nloc; lj++) {
    uint64_t j = (uint64_t)l2g(lj, e->nb, e->mycol, e->npcol);
    for (int li = 0; li < e->mloc; li++) {
      uint64_t i = (uint64_t)l2g(li, e->nb, e->myrow, e->nprow), v;
      double x = src[(size_t)lj * (size_t)e->lld + (size_t)li];
      memcpy(&v, &x, sizeof v);
      hash_add(lane, i * (uint64_t)e->n + j, v);
    }
  }
  IMF_MPI(MPI_Allreduce(MPI_IN_PLACE, lane, 2, MPI_UINT64_T, MPI_SUM, e->comm));
  snprintf(hex, 33, "%016llx%016llx", (unsigned long long)lane[0], (unsigned long long)lane[1]);
  return IMF_OK;
}

/* ---- X: sparse user rows ---- */

void imf_ease_rows_free(imf_ease_rows *x) {
  if (!x) return;
  imf_free(&x->ptr);
  free(x->idx);
  memset(x, 0, sizeof *x);
}

static int cmp_i32(const void *a, const void *b) {
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  return (x > y) - (x < y);
}

imf_status imf_ease_rows_from(const imf_ratings *r, int64_t lo, int64_t hi, int64_t nitems, imf_ease_rows *x) {
  memset(x, 0, sizeof *x);
  if (hi < lo) IMF_FAIL(IMF_ERR_USAGE, "bad user range [%lld, %lld)", (long long)lo, (long long)hi);
  for (int64_t j = 0; j < r->n; j++)
    if (r->user[j] < lo || r->user[j] >= hi || r->item[j] < 0 || r->item[j] >= nitems)
      IMF_FAIL(IMF_ERR_INPUT, "rating (%lld, %lld) outside users [%lld, %lld) x %lld items", (long long)r->user[j],
               (long long)r->item[j], (long long)lo, (long long)hi, (long long)nitems);
  int64_t n = hi - lo;
  imf_status st = imf_alloc(&x->ptr, (size_t)n + 1, sizeof *x->ptr);
  if (st == IMF_OK) st = imf_alloc(&x->idx, (size_t)(r->n ? r->n : 1), sizeof *x->idx);
  int64_t *fill = NULL;
  if (st == IMF_OK) st = imf_alloc(&fill, (size_t)(n ? n : 1), sizeof *fill);
  if (st != IMF_OK) {
    imf_ease_rows_free(x);
    return st;
  }
  x->lo = lo;
  x->hi = hi;
  for (int64_t j = 0; j < r->n; j++) x->ptr[r->user[j] - lo + 1]++;
  for (int64_t u = 0; u < n; u++) x->ptr[u + 1] += x->ptr[u];
  for (int64_t j = 0; j < r->n; j++) {
    int64_t u = r->user[j] - lo;
    x->idx[x->ptr[u] + fill[u]++] = r->item[j];
  }
  imf_free(&fill);
  /* sort each row, drop repeats, compact */
  int64_t w = 0;
  for (int64_t u = 0; u < n; u++) {
    int64_t a = x->ptr[u], b = x->ptr[u + 1];
    int sorted = 1;
    for (int64_t q = a + 1; q < b && sorted; q++) sorted = x->idx[q - 1] <= x->idx[q];
    if (!sorted) qsort(x->idx + a, (size_t)(b - a), sizeof *x->idx, cmp_i32);
    x->ptr[u] = w;
    for (int64_t q = a; q < b; q++)
      if (q == a || x->idx[q] != x->idx[q - 1]) x->idx[w++] = x->idx[q];
  }
  x->ptr[n] = w;
  return IMF_OK;
}

void imf_ease_rows_clear(imf_ease_rows *x, int64_t u) {
  if (u < x->lo || u >= x->hi) return;
  int64_t r = u - x->lo, n = x->hi - x->lo, len = x->ptr[r + 1] - x->ptr[r];
  if (!len) return;
  memmove(x->idx + x->ptr[r], x->idx + x->ptr[r + 1], (size_t)(x->ptr[n] - x->ptr[r + 1]) * sizeof *x->idx);
  for (int64_t q = r + 1; q <= n; q++) x->ptr[q] -= len;
}

imf_status imf_ease_rows_hash(MPI_Comm comm, const imf_ease_rows *x, int64_t nitems, int64_t *nnz, char hex[33]) {
  uint64_t lane[2] = {0, 0}, one;
  double v1 = 1.0;
  memcpy(&one, &v1, sizeof one);
  int64_t n = x->hi - x->lo, cnt = n > 0 ? x->ptr[n] : 0;
  for (int64_t r = 0; r < n; r++)
    for (int64_t q = x->ptr[r]; q < x->ptr[r + 1]; q++)
      hash_add(lane, (uint64_t)(x->lo + r) * (uint64_t)nitems + (uint64_t)x->idx[q], one);
  IMF_MPI(MPI_Allreduce(MPI_IN_PLACE, lane, 2, MPI_UINT64_T, MPI_SUM, comm));
  IMF_MPI(MPI_Allreduce(MPI_IN_PLACE, &cnt, 1, MPI_INT64_T, MPI_SUM, comm));
  *nnz = cnt;
  snprintf(hex, 33, "%016llx%016llx", (unsigned long long)lane[0], (unsigned long long)lane[1]);
  return IMF_OK;
}

static int cmp_range(const void *a, const void *b) {
  const int64_t *x = a, *y = b;
  return (x[0] > y[0]) - (x[0] < y[0]);
}

imf_status imf_ease_rows_cover(MPI_Comm comm, int64_t lo, int64_t hi, int64_t n) {
  int size;
  IMF_MPI(MPI_Comm_size(comm, &size));
  int64_t mine[2] = {lo < 0 ? 0 : lo > n ? n : lo, hi < 0 ? 0 : hi > n ? n : hi};
  if (mine[1] < mine[0]) mine[1] = mine[0];
  int64_t *all = malloc(2 * (size_t)size * sizeof *all);
  if (!all) IMF_FAIL(IMF_ERR_NOMEM, "out of memory");
  int rc = MPI_Allgather(mine, 2, MPI_INT64_T, all, 2, MPI_INT64_T, comm);
  if (rc != MPI_SUCCESS) {
    free(all);
    return IMF_MPI_RAISE(rc, "gathering row ranges");
  }
  qsort(all, (size_t)size, 2 * sizeof *all, cmp_range);
  int64_t at = 0;
  int ok = 1;
  for (int r = 0; r < size && ok; r++) {
    if (all[2 * r + 1] == all[2 * r]) continue; /* empty */
    ok = all[2 * r] == at;
    at = all[2 * r + 1];
  }
  free(all);
  if (!ok || at != n)
    IMF_FAIL(IMF_ERR_USAGE, "EASE: the ranks' user ranges do not cover [0, %lld) once each", (long long)n);
  return IMF_OK;
}

imf_status imf_ease_handle(imf_model *m) {
  if (m->kw == 1 && m->k == 1) return IMF_OK;
  IMF_CHECK(imf_model_set_kw(m, 1));
  m->k = 1;
  return IMF_OK;
}

imf_status imf_ease_model(MPI_Comm comm, const imf_ratings *local, int64_t ulo, int64_t uhi, int64_t nusers,
                          int64_t nitems, double lambda, imf_model **out, imf_ease **state, imf_ease_rows *x) {
  *out = NULL;
  if (state) *state = NULL;
  if (x) memset(x, 0, sizeof *x);
  imf_status st = IMF_OK;
  imf_ease *e = NULL;
  imf_model *m = NULL;
  imf_ease_rows rows = {0};
  double t0 = MPI_Wtime();
  if (nitems < 1) IMF_TRY(IMF_RAISE(IMF_ERR_INPUT, "EASE needs at least one item"), out);
  if (x) {
    st = imf_ease_rows_from(local, ulo, uhi, nitems, &rows);
    IMF_TRY(imf_agree(comm, st), out);
    IMF_TRY(imf_ease_rows_cover(comm, ulo, uhi, nusers), out);
  }
  IMF_TRY(imf_ease_create(comm, nitems, lambda, IMF_EASE_GRID_SQUARE, &e), out);
  IMF_TRY(imf_ease_add_ratings(e, local), out);
  /* the version keeps B and (in a P file) P, the start of the next low-rank update */
  IMF_TRY(imf_ease_solve_p(e, state != NULL && imf_ease_legacy_format(), state != NULL && !imf_ease_legacy_format()),
          out);
  IMF_TRY(imf_agree(comm, imf_model_create(IMF_MODEL_EASE, 1, nusers, nitems, 0, &m)), out);
  m->mu = 0;
  m->lambda = lambda;
  m->iteration = 1;
  imf_sweep_metrics h = {.iteration = 1, .train_loss = NAN, .train_rmse = NAN, .val_rmse = NAN, .val_mae = NAN,
                         .seconds = MPI_Wtime() - t0};
  IMF_TRY(imf_agree(comm, imf_model_push_history(m, &h)), out);
  *out = m;
  m = NULL;
  if (state) {
    *state = e;
    e = NULL;
  }
  if (x) {
    *x = rows;
    memset(&rows, 0, sizeof rows);
  }
out:
  imf_ease_rows_free(&rows);
  imf_model_destroy(&m);
  imf_ease_destroy(&e);
  return st;
}

imf_status imf_ease_b_finite(imf_ease *e, int *finite) {
  int ok = e->A != NULL;
  for (int lj = 0; lj < e->nloc && ok; lj++)
    for (int li = 0; li < e->mloc && ok; li++) ok = isfinite(e->A[(size_t)lj * (size_t)e->lld + (size_t)li]);
  IMF_MPI(MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, e->comm));
  *finite = ok;
  return IMF_OK;
}
