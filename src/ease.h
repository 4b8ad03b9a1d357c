/* ease.h - EASE (Steck 2019, "Embarrassingly Shallow Autoencoders"), trained with ScaLAPACK.
 *
 * X is the binarized user x item matrix (every stored rating -> 1). With G = X^T X + lambda I
 * and P = G^-1, the item-item weights are B = I - P diagMat(1/diag(P)) with diag(B) = 0, and the
 * scores of user u are x_u B. G, P and B live in a 2-D block-cyclic distribution on a BLACS
 * process grid over all ranks of the communicator; no rank ever holds the whole of G or P.
 *
 * How it fits: train (trainrun.c) and evaluate (evaluate.c) turn B into a replicated imf_model
 * of type IMF_MODEL_EASE with P = X (kw = nitems) and Q = B^T, so that P_u . Q_i = (X B)_{u,i}
 * and every scoring path (topk.h, recommend, evaluate) works unchanged. That replicated form
 * costs nitems^2 floats per rank: valid for small catalogues only (see docs/DESIGN.md, EASE).
 */
#ifndef IMF_EASE_H
#define IMF_EASE_H
#include "model.h"
#include "ratings.h"
#include <mpi.h>

/* Block size of the block-cyclic distribution (rows and columns). */
#define IMF_EASE_NB 64

typedef struct imf_ease imf_ease;

/* Collective over comm. local: this rank's ratings (any users; each rank its own, no user on two
 * ranks is required only for speed — contributions are summed), items in [0, nitems). A
 * repeated (user, item) pair counts once. Fails with IMF_ERR_INPUT when G is not positive
 * definite (lambda <= 0 and an item nobody rated). */
imf_status imf_ease_fit(MPI_Comm comm, const imf_ratings *local, int64_t nitems, double lambda, imf_ease **out);
void imf_ease_destroy(imf_ease **e);

/* (local) Grid shape and the seconds spent in assembly, pdpotrf and pdpotri (rank's own). */
void imf_ease_grid(const imf_ease *e, int *nprow, int *npcol);
void imf_ease_times(const imf_ease *e, double *assemble_s, double *potrf_s, double *potri_s);

/* Collective: columns [j0, j1) of B, column-major (B(i, j) at out[(j - j0) * nitems + i]),
 * replicated on every rank. Memory: nitems * (j1 - j0) doubles. */
imf_status imf_ease_gather_cols(imf_ease *e, int64_t j0, int64_t j1, double *out);

/* Collective: a replicated EASE model from this rank's ratings of users [ulo, uhi) (ranges
 * disjoint over ranks, covering [0, nusers)): type IMF_MODEL_EASE, k = kw = nitems, P = X,
 * Q = B^T, mu = 0, no biases, lambda recorded. */
imf_status imf_ease_model(MPI_Comm comm, const imf_ratings *local, int64_t nusers, int64_t nitems, double lambda,
                          imf_model **out);
#endif
