/* ease_impl.h - PRIVATE to src/ease.c and src/ease_score.c: the EASE state (its ScaLAPACK
 * layout and local parts) and the block-cyclic index helpers they share. No other file includes
 * it; ease.h is the module's only interface (ease_lowrank.c uses ease.h alone).
 *
 * Who does what: ease.c the grid, Gram assembly and updates, the solve, X's sparse rows and the
 * hashes; ease_score.c scoring with B: the redistribution to a 1 x P grid, top-K per user,
 * single rows and item-item similarity. */
#ifndef IMF_EASE_IMPL_H
#define IMF_EASE_IMPL_H
#include "ease.h"

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

struct imf_ease {
  MPI_Comm comm;
  MPI_Comm blacs_comm;        /* this object's own duplicate of comm, behind its BLACS handle */
  int handle, ctx;            /* BLACS system handle and grid context */
  int nprow, npcol, myrow, mycol;
  int n, nb;                  /* global order, block size */
  int mloc, nloc, lld;        /* local rows, columns, leading dimension (max(1, mloc)) */
  int desc[9];
  int *grid_of_rank;          /* (row, col) of every rank of comm, 2 per rank */
  int *rank_at;               /* rank of comm at grid position row * npcol + col */
  double lambda;
  double *G;                  /* local part of the Gram matrix X^T X (no ridge), or NULL */
  double *A;                  /* local part of B, or NULL before a solve */
  double *P;                  /* local part of P = (G + lambda I)^-1 (both triangles), or NULL:
                                 kept by imf_ease_solve_p, updated by imf_ease_woodbury */
  double t_assemble, t_potrf, t_potri;
};

/* Global index of local index l on process coordinate p of np (block-cyclic, source 0). */
static inline int64_t l2g(int l, int nb, int p, int np) { return imf_ease_l2g(l, nb, p, np); }
/* Local index of global index g (on its owner (g / nb) % np). */
static inline int g2l(int64_t g, int nb, int np) { return (int)((g / ((int64_t)nb * np)) * nb + g % nb); }
/* Doubles of one local part (at least one column). */
static inline size_t cells(const imf_ease *e) { return (size_t)e->lld * (size_t)(e->nloc > 0 ? e->nloc : 1); }
#endif
