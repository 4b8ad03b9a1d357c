/* ease.h - EASE (Steck 2019, "Embarrassingly Shallow Autoencoders"), trained with ScaLAPACK.
 *
 * X is the binarized user x item matrix (every stored rating -> 1). With G = X^T X + lambda I
 * and P = G^-1, the item-item weights are B = I - P diagMat(1/diag(P)) with diag(B) = 0, and the
 * scores of user u are x_u B. The Gram matrix X^T X (without the ridge: it is the sufficient
 * statistic, kept exact in integers), P and B live in a 2-D block-cyclic distribution on a BLACS
 * process grid over all ranks of the communicator; no rank ever holds the whole of any of them.
 *
 * State (imf_ease): the Gram matrix and, after a solve, B. The Gram matrix is updated in place
 * when users' rows change (imf_ease_add_delta: the exact integer difference of their outer
 * products, sent to the owning blocks), grown for new items (imf_ease_grow: zero rows and
 * columns; the ridge is added at every solve, so a new item gets lambda on the diagonal) and
 * re-solved (imf_ease_solve). A solve may keep P = (G + lambda I)^-1 (imf_ease_solve_p); an
 * update then changes P by a low-rank term instead of re-solving (imf_ease_woodbury,
 * ease_lowrank.c). checkpoint_ease.c stores B (f32) in a model version and P in a P file next to it,
 * as block-cyclic hyperslabs of the global matrices (docs/FORMAT.md, "EASE state", "EASE P file").
 *
 * How it fits: a version stores B (checkpoint_ease.c, block-cyclic; the Gram matrix too before
 * 2026-12-07), references its P file, and stores X — the
 * binarized user rows — sparse (imf_ease_rows, CSR by user, each rank a range of users); its
 * imf_model is only a handle of type IMF_MODEL_EASE (k = kw = 1, P and Q zero placeholders: users,
 * items, lambda, history). Scoring — recommend --user/--all/--items, --similar, evaluate and the
 * update gate — uses B on a 1 x P grid (imf_ease_topk, imf_ease_score_items, imf_ease_similar):
 * each rank holds whole columns of B and no rank ever holds all of it (see docs/DESIGN.md, EASE).
 * Versions written before X was stored sparse carry the replicated factor form instead (P = X,
 * Q = B^T, kw = nitems); they still load (imf_checkpoint_read_ease_x reads their X from P), and
 * imf_ease_handle drops the replicated arrays once B is read.
 */
#ifndef IMF_EASE_H
#define IMF_EASE_H
#include "model.h"
#include "ratings.h"
#include "topk.h"
#include <mpi.h>

/* Block size of the block-cyclic distribution (rows and columns). */
#define IMF_EASE_NB 64

typedef struct imf_ease imf_ease;

/* Grid shapes: SQUARE is nprow x npcol with nprow the largest divisor of the rank count not
 * above its square root (the solve's layout); COLUMNS is 1 x P, every rank holding whole
 * columns (the scoring layout: x_u B for a rank's columns needs no reduction). */
#define IMF_EASE_GRID_SQUARE 0
#define IMF_EASE_GRID_COLUMNS 1

/* Collective: an empty state for nitems items on a BLACS grid over comm: Gram matrix 0, no B.
 * IMF_ERR_USAGE for lambda <= 0 (G = X^T X + lambda I must be positive definite) or nitems
 * outside [1, 10^6]. */
imf_status imf_ease_create(MPI_Comm comm, int64_t nitems, double lambda, int grid, imf_ease **out);
/* Collective: the same without the Gram matrix's memory (readers, redistribution). */
imf_status imf_ease_create_empty(MPI_Comm comm, int64_t nitems, double lambda, int grid, imf_ease **out);
void imf_ease_destroy(imf_ease **e);

/* Collective: Gram += X^T X of this rank's ratings (any users; a repeated (user, item) pair
 * counts once; a user's ratings must all be on one rank). Dense: every rank reduces a full local
 * block to its owner, O(n^2) traffic: for building from scratch. */
imf_status imf_ease_add_ratings(imf_ease *e, const imf_ratings *local);

/* Collective: Gram += sum over this rank's rows r of (new_r^T new_r - old_r^T old_r), rows as
 * CSR of distinct ascending item indices (< nitems; a row may be empty: a removed user). Only the
 * difference is formed — with K = old & new, A = new - old, D = old - new:
 * K^T A + A^T K + A^T A - K^T D - D^T K - D^T D — so the traffic follows the change, not the
 * rows; the entries go to their owners with MPI_Alltoallv, in rounds. Integer counts in double:
 * the result is exactly the Gram of the new rows. *entries (may be NULL): entries sent, all
 * ranks. */
imf_status imf_ease_add_delta(imf_ease *e, int64_t nrows, const int64_t *old_ptr, const int32_t *old_idx,
                              const int64_t *new_ptr, const int32_t *new_idx, int64_t *entries);

/* Collective: Gram += X^T X of nrows CSR rows (distinct ascending items < nitems), this rank's
 * users: the dense assembly of imf_ease_add_ratings, from rows instead of ratings. */
imf_status imf_ease_add_rows(imf_ease *e, int64_t nrows, const int64_t *ptr, const int32_t *idx);

/* Collective: grow to n2 >= nitems items; the new rows and columns of the Gram are 0 (their
 * ridge comes with the solve). B is dropped (solve again). */
imf_status imf_ease_grow(imf_ease *e, int64_t n2);

/* Collective: B from Gram + lambda I (pdpotrf, pdpotri, symmetrize, scale). keep_gram = 0 lets
 * the Gram's memory be reused (it is gone afterwards): peak 2 local matrices instead of 3.
 * IMF_ERR_INPUT when G is not numerically positive definite. */
imf_status imf_ease_solve(imf_ease *e, int keep_gram);

/* Collective: imf_ease_solve, and keep_p = 1 also keeps P = (G + lambda I)^-1 (both triangles,
 * imf_ease_p) for a later low-rank update (imf_ease_woodbury); peak 3 local matrices. */
imf_status imf_ease_solve_p(imf_ease *e, int keep_gram, int keep_p);

/* ---- P: the inverse an update starts from (ease_lowrank.c) ---- */

/* (local) The local part of P (NULL when not held); allocate it (not zeroed) for a reader; drop it. */
double *imf_ease_p(imf_ease *e);
imf_status imf_ease_alloc_p(imf_ease *e);
void imf_ease_drop_p(imf_ease *e);
MPI_Comm imf_ease_comm(const imf_ease *e);
/* Collective: B = I - P diagMat(1/diag(P)) from the held P (B allocated when missing). */
imf_status imf_ease_b_from_p(imf_ease *e);
/* (local) Round B to float32 precision in place: what a version stores (B is only scored), so
 * that scores from memory and from the file agree. */
void imf_ease_round_b(imf_ease *e);
/* Collective: m, the rank of the change of nrows rows (CSR as imf_ease_add_delta): one per
 * non-empty old row and one per non-empty new row, summed over the ranks. */
imf_status imf_ease_update_rank(MPI_Comm comm, int64_t nrows, const int64_t *optr, const int64_t *nptr,
                                int64_t *m);
/* Collective; e holds P on a 1 x P grid (imf_ease_grow first for new items: their P is
 * 1/lambda on the diagonal). P becomes (G' + lambda I)^-1 for G' = G + sum over the rows of
 * (new^T new - old^T old), by the Woodbury identity (ease_lowrank.c); B is not touched (call
 * imf_ease_b_from_p). key: the first user of this rank's block (the rows' global order is
 * by key, then by row). Memory: n x m doubles replicated (m = *rank_out). IMF_ERR_INPUT when the
 * m x m capacitance matrix is ill-conditioned (then refactorise instead). */
imf_status imf_ease_woodbury(imf_ease *e, int64_t key, int64_t nrows, const int64_t *optr, const int32_t *oidx,
                             const int64_t *nptr, const int32_t *nidx, int64_t *rank_out);
/* (local) Test hook: IMF_EASE_LEGACY_FORMAT=1 makes train keep the Gram matrix and the writer
 * store versions as before 2026-12-07 (B and the Gram matrix in f64, no P file). */
int imf_ease_legacy_format(void);

/* Collective. imf_ease_create + imf_ease_add_ratings + imf_ease_solve(e, 0): B only. */
imf_status imf_ease_fit(MPI_Comm comm, const imf_ratings *local, int64_t nitems, double lambda, imf_ease **out);

/* (local) Grid shape and the seconds spent in assembly, pdpotrf and pdpotri (rank's own). */
void imf_ease_grid(const imf_ease *e, int *nprow, int *npcol);
void imf_ease_times(const imf_ease *e, double *assemble_s, double *potrf_s, double *potri_s);
int64_t imf_ease_nitems(const imf_ease *e);
double imf_ease_lambda(const imf_ease *e);

/* (local) Where this rank's part of the global n x n matrices is: local element (li, lj) at
 * local[lj * lld + li] is global (l2g(li, myrow, nprow), l2g(lj, mycol, npcol)), where global
 * block b of nb rows/columns sits on process row/column b mod nprow/npcol. lld = mloc when
 * mloc > 0. */
typedef struct {
  int64_t n;
  int nb, nprow, npcol, myrow, mycol, mloc, nloc, lld;
} imf_ease_layout;
void imf_ease_get_layout(const imf_ease *e, imf_ease_layout *l);
static inline int64_t imf_ease_l2g(int l, int nb, int p, int np) {
  return ((int64_t)(l / nb) * np + p) * nb + l % nb;
}
/* (local) The local parts: Gram (NULL once dropped) and B (NULL before a solve). */
double *imf_ease_gram(imf_ease *e);
double *imf_ease_b(imf_ease *e);
/* (local) Allocate B (not zeroed) for a reader to fill every element of; drop the Gram. */
imf_status imf_ease_alloc_b(imf_ease *e);
void imf_ease_drop_gram(imf_ease *e);

/* Collective: columns [j0, j1) of B (which = 1) or of the Gram (which = 0), column-major (M(i, j)
 * at out[(j - j0) * nitems + i]), replicated on every rank. Memory: nitems * (j1 - j0) doubles.
 * For tests and benchmarks only: no command gathers B. */
imf_status imf_ease_gather_cols(imf_ease *e, int64_t j0, int64_t j1, double *out);
imf_status imf_ease_gather_gram_cols(imf_ease *e, int64_t j0, int64_t j1, double *out);

/* Collective: an order-free digest of the Gram (which = 0), B (which = 1) or P (which = 2): two 64-bit lanes
 * of sum over elements of a hash of (global row, global column, value bits), mod 2^64, as 32
 * hex characters. The same on any grid and rank count (the checkpoint's integrity check). */
imf_status imf_ease_hash(imf_ease *e, int which, char hex[33]);

/* ---- X: the binarized user rows a version stores next to B ---- */

/* Rows [lo, hi) of X as CSR: row u's items (distinct, ascending) are idx[ptr[u - lo] ..
 * ptr[u - lo + 1]), ptr[0] = 0. Over the ranks of a communicator the ranges are disjoint and,
 * clipped to [0, nusers), cover [0, nusers) (each rank may hold any range, also an empty one). */
typedef struct {
  int64_t lo, hi;
  int64_t *ptr; /* hi - lo + 1 offsets */
  int32_t *idx;
} imf_ease_rows;
void imf_ease_rows_free(imf_ease_rows *x);

/* (local) Rows [lo, hi) of X from ratings of those users (a repeated pair counts once, any
 * order). IMF_ERR_INPUT for a user outside [lo, hi) or an item outside [0, nitems). */
imf_status imf_ease_rows_from(const imf_ratings *r, int64_t lo, int64_t hi, int64_t nitems, imf_ease_rows *x);

/* (local) Empty row u of x (nothing when u is outside [lo, hi)). */
void imf_ease_rows_clear(imf_ease_rows *x, int64_t u);

/* Collective, over ranks whose ranges cover [0, nusers): the order-free hash of X (imf_ease_hash's
 * lanes over its ones: key u * nitems + i, value 1.0) and its number of entries. */
imf_status imf_ease_rows_hash(MPI_Comm comm, const imf_ease_rows *x, int64_t nitems, int64_t *nnz, char hex[33]);

/* Collective: whether the ranges [lo, hi) of the ranks, clipped to [0, n), are disjoint and
 * cover [0, n) (IMF_ERR_USAGE otherwise, the same on every rank). */
imf_status imf_ease_rows_cover(MPI_Comm comm, int64_t lo, int64_t hi, int64_t n);

/* (local) Make an EASE model a handle: P and Q become zero placeholders of width k = kw = 1 (a
 * version read in the replicated form drops its nusers x nitems and nitems^2 arrays). */
imf_status imf_ease_handle(imf_model *m);

/* Collective: an EASE model from this rank's ratings of users [ulo, uhi) (ranges disjoint over
 * ranks, covering [0, nusers)): the handle (type IMF_MODEL_EASE, k = kw = 1, mu = 0, no biases,
 * lambda recorded, one history row). state: NULL, or receives the distributed state (Gram kept,
 * B) for the version file; x: NULL, or receives this rank's rows [ulo, uhi) of X. */
imf_status imf_ease_model(MPI_Comm comm, const imf_ratings *local, int64_t ulo, int64_t uhi, int64_t nusers,
                          int64_t nitems, double lambda, imf_model **out, imf_ease **state, imf_ease_rows *x);

/* ---- distributed scoring (B in the COLUMNS layout: no rank holds all of B) ---- */

/* Collective: B of e (any grid) redistributed onto a 1 x P grid of the same ranks (ScaLAPACK's
 * Cpdgemr2d), in a new state without a Gram matrix. */
imf_status imf_ease_to_columns(imf_ease *e, imf_ease **out);

/* Collective; e holds B on a 1 x P grid (every rank whole columns: imf_ease_to_columns, or
 * imf_checkpoint_read_ease with IMF_EASE_GRID_COLUMNS). Top K of nrows users: user t's row of X
 * is xidx[xptr[t] .. xptr[t+1]) and the items never returned are eidx[eptr[t] .. eptr[t+1])
 * (both ascending; eptr NULL: none excluded). Each rank scores its own columns — score(u, j) =
 * sum over the items i of x_u, ascending, of B(i, j), in double, so a score is the same on any
 * rank count — keeps its K best per user, and the candidates are merged into each user's top K
 * (topk.h's order: score descending, then pop's count descending, then item ascending; padded
 * with -1 / NaN; count[t] kept; pop NULL: ties by item alone; pop's prior, if any, is added to
 * every score of its item before ranking, and is in the returned scores). own = 0: every
 * rank passes the same users and gets every result; own = 1: each rank passes its own users
 * (any number) and gets its own results back, the rows travelling to the other ranks by
 * broadcast, a tile at a time. Memory per rank: its columns of B plus tile x K x P candidates. */
imf_status imf_ease_topk(imf_ease *e, int own, int64_t nrows, const int64_t *xptr, const int32_t *xidx,
                         const int64_t *eptr, const int32_t *eidx, int K, const imf_item_pop *pop, int32_t *items,
                         float *scores, int *count);

/* Collective; e holds B on a 1 x P grid; every rank passes the same row x (nx items, ascending,
 * < nitems) and the same n items. out[j] = score(x, items[j]) summed exactly as imf_ease_topk
 * sums it (so it equals the score a top-K list shows), 0 for an item outside [0, nitems); on
 * every rank. Each item's column is summed by its owner alone. */
imf_status imf_ease_score_items(imf_ease *e, int64_t nx, const int32_t *x, int n, const int32_t *items, double *out);

/* Collective; e holds B on a 1 x P grid. The K items whose columns of B are nearest to column t
 * by cosine (dot products and norms in double, in ascending row order; a zero column scores 0),
 * t itself excluded: score descending, then item ascending, padded with -1 / NaN; *count kept;
 * on every rank. Column t travels by one broadcast from its owner; each rank scores its own
 * columns and keeps its K best; the candidates are merged. */
imf_status imf_ease_similar(imf_ease *e, int64_t t, int K, int32_t *items, float *scores, int *count);

/* Collective: *finite = 1 when every element of B is finite (0 on every rank otherwise). */
imf_status imf_ease_b_finite(imf_ease *e, int *finite);
#endif
