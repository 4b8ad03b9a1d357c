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
 * ScaLAPACK and BLACS have no C header: the prototypes below follow the Fortran convention
 * (every argument by pointer, one hidden size_t length per character argument, appended). */
#include "ease.h"
#include "error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* BLACS (C interface) */
int Csys2blacs_handle(MPI_Comm comm);
void Cfree_blacs_system_handle(int handle);
void Cblacs_gridinit(int *context, const char *order, int nprow, int npcol);
void Cblacs_gridinfo(int context, int *nprow, int *npcol, int *myrow, int *mycol);
void Cblacs_gridexit(int context);
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

struct imf_ease {
  MPI_Comm comm;
  int handle, ctx;            /* BLACS system handle and grid context */
  int nprow, npcol, myrow, mycol;
  int n, nb;                  /* global order, block size */
  int mloc, nloc;             /* local rows and columns of the distributed matrices */
  int desc[9];
  double *A;                  /* local part of B (column-major, lld = max(1, mloc)) */
  double t_assemble, t_potrf, t_potri;
};

/* Global index of local index l on process coordinate p of np (block-cyclic, source 0). */
static int64_t l2g(int l, int nb, int p, int np) { return ((int64_t)(l / nb) * np + p) * nb + l % nb; }
/* Local index of global index g (on its owner (g / nb) % np). */
static int g2l(int64_t g, int nb, int np) { return (int)((g / ((int64_t)nb * np)) * nb + g % nb); }

/* In-place sum/max over comm in chunks whose counts fit an int. */
static imf_status allreduce_chunks(MPI_Comm comm, void *buf, size_t n, MPI_Datatype t, size_t esize, MPI_Op op) {
  const size_t chunk = (size_t)1 << 26;
  for (size_t o = 0; o < n; o += chunk) {
    size_t c = n - o < chunk ? n - o : chunk;
    IMF_MPI(MPI_Allreduce(MPI_IN_PLACE, (char *)buf + o * esize, (int)c, t, op, comm));
  }
  return IMF_OK;
}

static imf_status reduce_chunks(MPI_Comm comm, const double *send, double *recv, size_t n, int root) {
  const size_t chunk = (size_t)1 << 26;
  for (size_t o = 0; o < n; o += chunk) {
    size_t c = n - o < chunk ? n - o : chunk;
    IMF_MPI(MPI_Reduce(send + o, recv ? recv + o : NULL, (int)c, MPI_DOUBLE, MPI_SUM, root, comm));
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
      st = imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__, "item index %d outside [0, %lld)", (int)r->item[j],
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
  /* Only the grid is released: Cblacs_exit would tear BLACS down for the rest of the process
   * (and with 0 also MPI). The system handle is freed after its grid. */
  if (e->ctx >= 0) Cblacs_gridexit(e->ctx);
  if (e->handle >= 0) Cfree_blacs_system_handle(e->handle);
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

/* G = X^T X into e->A (lambda I is added by the caller). For each destination rank in turn, every rank builds the
 * contributions of its own users to that rank's local blocks and MPI_Reduce sums them there:
 * at most two local-sized arrays per rank at any time, and the counts are integers, so the sum
 * is exact and independent of the reduction order (and of the rank count). */
static imf_status assemble(imf_ease *e, const imf_ratings *local, const int *grid_of_rank) {
  imf_status st = IMF_OK;
  int size, rank, n = e->n, nb = e->nb;
  MPI_Comm_size(e->comm, &size);
  MPI_Comm_rank(e->comm, &rank);
  int64_t nr = 0, *ptr = NULL;
  int32_t *idx = NULL, *rl = NULL, *cl = NULL;
  double *buf = NULL;
  st = user_rows(local, n, &nr, &ptr, &idx);
  size_t maxloc = 0;
  for (int d = 0; d < size; d++) {
    int pr = grid_of_rank[2 * d], pc = grid_of_rank[2 * d + 1], zero = 0;
    size_t c = (size_t)numroc_(&n, &nb, &pr, &zero, &e->nprow) * (size_t)numroc_(&n, &nb, &pc, &zero, &e->npcol);
    if (c > maxloc) maxloc = c;
  }
  if (st == IMF_OK) st = imf_alloc_nz(&buf, maxloc > 0 ? maxloc : 1, sizeof *buf);
  if (st == IMF_OK) st = imf_alloc(&rl, (size_t)n, sizeof *rl);
  if (st == IMF_OK) st = imf_alloc(&cl, (size_t)n, sizeof *cl);
  IMF_TRY(imf_agree(e->comm, st), out);
  for (int d = 0; d < size; d++) {
    int pr = grid_of_rank[2 * d], pc = grid_of_rank[2 * d + 1], zero = 0;
    int ml = numroc_(&n, &nb, &pr, &zero, &e->nprow), nl = numroc_(&n, &nb, &pc, &zero, &e->npcol);
    size_t cnt = (size_t)ml * (size_t)nl;
    memset(buf, 0, cnt * sizeof *buf);
    for (int64_t r = 0; r < nr; r++) {
      int nrow = 0, ncol = 0; /* the user's items in the destination's rows and columns */
      for (int64_t j = ptr[r]; j < ptr[r + 1]; j++) {
        int64_t i = idx[j];
        if ((i / nb) % e->nprow == pr) rl[nrow++] = g2l(i, nb, e->nprow);
        if ((i / nb) % e->npcol == pc) cl[ncol++] = g2l(i, nb, e->npcol);
      }
      for (int b = 0; b < ncol; b++) {
        double *col = buf + (size_t)cl[b] * (size_t)ml;
        for (int a = 0; a < nrow; a++) col[rl[a]] += 1.0;
      }
    }
    IMF_TRY(reduce_chunks(e->comm, buf, d == rank ? e->A : NULL, cnt, d), out);
  }
out:
  imf_free(&buf);
  imf_free(&rl);
  imf_free(&cl);
  imf_free(&ptr);
  imf_free(&idx);
  return st;
}

imf_status imf_ease_fit(MPI_Comm comm, const imf_ratings *local, int64_t nitems, double lambda, imf_ease **out) {
  *out = NULL;
  imf_status st = IMF_OK;
  int size, rank;
  IMF_MPI(MPI_Comm_size(comm, &size));
  IMF_MPI(MPI_Comm_rank(comm, &rank));
  if (nitems < 1 || nitems > 1000000)
    IMF_FAIL(IMF_ERR_USAGE, "EASE needs 1 to 10^6 items (got %lld)", (long long)nitems);
  if (!(lambda > 0) || !isfinite(lambda))
    IMF_FAIL(IMF_ERR_USAGE, "EASE needs lambda > 0 (got %g): G = X^T X + lambda I must be positive definite",
             lambda);
  imf_ease *e = calloc(1, sizeof *e);
  if (!e) IMF_FAIL(IMF_ERR_NOMEM, "out of memory");
  e->comm = comm;
  e->handle = e->ctx = -1;
  e->n = (int)nitems;
  e->nb = IMF_EASE_NB;
  int *grid_of_rank = NULL;
  double *T = NULL, *dg = NULL;

  e->nprow = 1;
  for (int p = 1; (int64_t)p * p <= size; p++)
    if (size % p == 0) e->nprow = p;
  e->npcol = size / e->nprow;
  e->handle = Csys2blacs_handle(comm);
  e->ctx = e->handle;
  Cblacs_gridinit(&e->ctx, "Row", e->nprow, e->npcol);
  int gr, gc;
  Cblacs_gridinfo(e->ctx, &gr, &gc, &e->myrow, &e->mycol);
  if (gr != e->nprow || gc != e->npcol || e->myrow < 0 || e->mycol < 0)
    st = imf_err_raise(IMF_ERR_RUNTIME, __FILE__, __LINE__, "BLACS grid %dx%d not set up (got %dx%d)", e->nprow,
                       e->npcol, gr, gc);
  IMF_TRY(imf_agree(comm, st), fail);
  /* where each rank sits on the grid (the BLACS mapping, not assumed) */
  IMF_TRY(imf_alloc(&grid_of_rank, 2 * (size_t)size, sizeof *grid_of_rank), fail);
  int mine[2] = {e->myrow, e->mycol};
  IMF_MPI(MPI_Allgather(mine, 2, MPI_INT, grid_of_rank, 2, MPI_INT, comm));

  int zero = 0, one = 1, info = 0;
  e->mloc = numroc_(&e->n, &e->nb, &e->myrow, &zero, &e->nprow);
  e->nloc = numroc_(&e->n, &e->nb, &e->mycol, &zero, &e->npcol);
  int lld = e->mloc > 1 ? e->mloc : 1;
  descinit_(e->desc, &e->n, &e->n, &e->nb, &e->nb, &zero, &zero, &e->ctx, &lld, &info);
  if (info != 0) st = imf_err_raise(IMF_ERR_RUNTIME, __FILE__, __LINE__, "descinit failed (info %d)", info);
  size_t cells = (size_t)lld * (size_t)(e->nloc > 0 ? e->nloc : 1);
  if (st == IMF_OK) st = imf_alloc(&e->A, cells, sizeof *e->A);
  if (st == IMF_OK) st = imf_alloc(&T, cells, sizeof *T);
  if (st == IMF_OK) st = imf_alloc(&dg, (size_t)e->n, sizeof *dg);
  IMF_TRY(imf_agree(comm, st), fail);

  IMF_MPI(MPI_Barrier(comm));
  double t0 = MPI_Wtime();
  IMF_TRY(assemble(e, local, grid_of_rank), fail);
  for (int lj = 0; lj < e->nloc; lj++) {
    int64_t j = l2g(lj, e->nb, e->mycol, e->npcol);
    if ((j / e->nb) % e->nprow == e->myrow) e->A[(size_t)lj * (size_t)lld + (size_t)g2l(j, e->nb, e->nprow)] += lambda;
  }
  IMF_MPI(MPI_Barrier(comm));
  double t1 = MPI_Wtime();
  e->t_assemble = t1 - t0;

  /* P = G^-1: only the lower triangle is computed (and referenced) */
  pdpotrf_("L", &e->n, e->A, &one, &one, e->desc, &info, 1);
  int worst = 0, ainfo = info < 0 ? -info : info;
  IMF_MPI(MPI_Allreduce(&ainfo, &worst, 1, MPI_INT, MPI_MAX, comm));
  if (worst != 0)
    IMF_TRY(imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__,
                          "pdpotrf failed (info %d): X^T X + %g I is not numerically positive definite", worst,
                          lambda), fail);
  IMF_MPI(MPI_Barrier(comm));
  double t2 = MPI_Wtime();
  e->t_potrf = t2 - t1;
  pdpotri_("L", &e->n, e->A, &one, &one, e->desc, &info, 1);
  ainfo = info < 0 ? -info : info;
  IMF_MPI(MPI_Allreduce(&ainfo, &worst, 1, MPI_INT, MPI_MAX, comm));
  if (worst != 0)
    IMF_TRY(imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__, "pdpotri failed (info %d)", worst), fail);
  IMF_MPI(MPI_Barrier(comm));
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
      if (i == j) dg[i] = e->A[at];
    }
  }
  /* diag(P) replicated (n doubles: the only replicated piece of the solve) */
  IMF_TRY(allreduce_chunks(comm, dg, (size_t)e->n, MPI_DOUBLE, sizeof *dg, MPI_SUM), fail);
  /* B = I - P diagMat(1/diag(P)): B_ij = -P_ij / P_jj off the diagonal, diag(B) = 0 exactly */
  for (int lj = 0; lj < e->nloc; lj++) {
    int64_t j = l2g(lj, e->nb, e->mycol, e->npcol);
    double s = 1.0 / dg[j];
    for (int li = 0; li < e->mloc; li++) {
      int64_t i = l2g(li, e->nb, e->myrow, e->nprow);
      size_t at = (size_t)lj * (size_t)lld + (size_t)li;
      e->A[at] = i == j ? 0.0 : -e->A[at] * s;
    }
  }
  imf_free(&T);
  imf_free(&dg);
  imf_free(&grid_of_rank);
  *out = e;
  return IMF_OK;
fail:
  imf_free(&T);
  imf_free(&dg);
  imf_free(&grid_of_rank);
  imf_ease_destroy(&e);
  return st;
}

imf_status imf_ease_gather_cols(imf_ease *e, int64_t j0, int64_t j1, double *out) {
  if (j0 < 0 || j1 > e->n || j0 > j1) IMF_FAIL(IMF_ERR_USAGE, "bad column range [%lld, %lld)", (long long)j0, (long long)j1);
  size_t n = (size_t)e->n, cnt = n * (size_t)(j1 - j0);
  memset(out, 0, cnt * sizeof *out);
  int lld = e->mloc > 1 ? e->mloc : 1;
  for (int lj = 0; lj < e->nloc; lj++) {
    int64_t j = l2g(lj, e->nb, e->mycol, e->npcol);
    if (j < j0 || j >= j1) continue;
    for (int li = 0; li < e->mloc; li++)
      out[(size_t)(j - j0) * n + (size_t)l2g(li, e->nb, e->myrow, e->nprow)] = e->A[(size_t)lj * (size_t)lld + (size_t)li];
  }
  /* one owner per entry, zeros elsewhere: the sum is exact */
  return allreduce_chunks(e->comm, out, cnt, MPI_DOUBLE, sizeof *out, MPI_SUM);
}

imf_status imf_ease_model(MPI_Comm comm, const imf_ratings *local, int64_t nusers, int64_t nitems, double lambda,
                          imf_model **out) {
  *out = NULL;
  imf_status st = IMF_OK;
  imf_ease *e = NULL;
  imf_model *m = NULL;
  double *buf = NULL;
  double t0 = MPI_Wtime();
  if (nitems < 1) IMF_FAIL(IMF_ERR_INPUT, "EASE needs at least one item");
  IMF_CHECK(imf_ease_fit(comm, local, nitems, lambda, &e));
  size_t n = (size_t)nitems;
  int64_t cols = (int64_t)(((size_t)1 << 24) / n);
  if (cols < 1) cols = 1;
  if (cols > nitems) cols = nitems;
  st = imf_model_create(IMF_MODEL_EASE, (int)nitems, nusers, nitems, 0, &m);
  if (st == IMF_OK) st = imf_alloc_nz(&buf, n * (size_t)cols, sizeof *buf);
  if (st == IMF_OK) {
    /* P = X: each rank its own users' rows, the rest 0; MAX merges them */
    for (int64_t j = 0; j < local->n; j++) {
      int64_t u = local->user[j], i = local->item[j];
      if (u < 0 || u >= nusers || i < 0 || i >= nitems) {
        st = imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__, "rating (%lld, %lld) outside the %lld x %lld matrix",
                           (long long)u, (long long)i, (long long)nusers, (long long)nitems);
        break;
      }
      m->P[(size_t)u * n + (size_t)i] = 1.0f;
    }
  }
  IMF_TRY(imf_agree(comm, st), out);
  IMF_TRY(allreduce_chunks(comm, m->P, (size_t)nusers * n, MPI_FLOAT, sizeof(float), MPI_MAX), out);
  /* Q = B^T row-major is B column-major: gather B a slab of columns at a time */
  for (int64_t j0 = 0; j0 < nitems; j0 += cols) {
    int64_t j1 = j0 + cols < nitems ? j0 + cols : nitems;
    IMF_TRY(imf_ease_gather_cols(e, j0, j1, buf), out);
    for (size_t c = 0; c < (size_t)(j1 - j0) * n; c++) m->Q[(size_t)j0 * n + c] = (float)buf[c];
  }
  m->mu = 0;
  m->lambda = lambda;
  m->iteration = 1;
  imf_sweep_metrics h = {.iteration = 1, .train_loss = NAN, .train_rmse = NAN, .val_rmse = NAN, .val_mae = NAN,
                         .seconds = MPI_Wtime() - t0};
  IMF_TRY(imf_model_push_history(m, &h), out);
  *out = m;
  m = NULL;
out:
  imf_free(&buf);
  imf_model_destroy(&m);
  imf_ease_destroy(&e);
  return st;
}
