/* partition.h - how the training ratings are laid out over the ranks (Spark MLlib ALS style).
 *
 * Users and items are split into contiguous blocks, one per rank, balanced by training rating
 * count; each rank then holds its ratings twice: by user (CSR over its user block, columns are
 * global item indices) for the user half-sweep and by item (CSR over its item block, columns are
 * global user indices) for the item half-sweep. A standing validation set, chosen by a hash of
 * (seed, user, item) and therefore independent of the rank count, is held by user.
 *
 * Within a row the columns are sorted (by index, then value), so a row's data — and so its
 * solve — is the same on any number of ranks. A rank may own no users or no items.
 */
#ifndef IMF_PARTITION_H
#define IMF_PARTITION_H
#include "ratings.h"
#include <mpi.h>

/* Rows [lo, hi) of one side in CSR form: row r (0-based in the block, global id lo + r) has
 * columns idx[ptr[r] .. ptr[r+1]) (other-side global indices) with values val[...]. */
/* Work of one row beyond its ratings, in ratings (see balance() in partition.c). */
#define IMF_ROW_COST 100

typedef struct {
  int64_t lo, hi;
  int64_t nnz;
  int64_t *ptr;     /* hi - lo + 1 entries */
  int32_t *idx;
  float *val;
  int64_t *row_id;  /* lo .. hi-1, for imf_row_batch */
} imf_csr;

typedef struct {
  int nranks, rank;
  int64_t nusers, nitems;
  int64_t *user_start, *item_start; /* nranks + 1 block boundaries, replicated */
  int64_t *user_count, *item_count; /* global training-rating counts per row: NULL once built
                                       (a row's count is its CSR row's length) */
  imf_csr by_user;                  /* training ratings of this rank's user block */
  imf_csr by_item;                  /* training ratings of this rank's item block */
  imf_csr holdout;                  /* validation ratings of this rank's user block */
  int64_t nnz_train, nnz_holdout;   /* global counts */
  double holdout_fraction;
  uint64_t holdout_seed;
  double seconds;                   /* wall time of imf_partition_build on this rank */
} imf_partition;

/* True when (user, item) belongs to the validation set: imf_hash3(seed, user, item) mapped to
 * [0, 1) is below fraction. */
int imf_is_holdout(uint64_t seed, double fraction, int64_t user, int64_t item);

/* Collective. `local` is this rank's share of the ratings (global dense indices, any
 * distribution, may be empty); nusers/nitems the global counts (same on every rank).
 * holdout_fraction in [0, 1) carves the validation set (0: none). IMF_ERR_INPUT for an index
 * out of range. The input is not modified. */
imf_status imf_partition_build(MPI_Comm comm, const imf_ratings *local, int64_t nusers,
                               int64_t nitems, double holdout_fraction, uint64_t holdout_seed,
                               imf_partition **out);
/* The same, freeing local (its times at once, the rest as soon as the by-user side is built: the
 * by-item side is sent from it), success or not: a training job's peak memory is the partition
 * build's (docs/SCALING.md). */
imf_status imf_partition_build_consume(MPI_Comm comm, imf_ratings *local, int64_t nusers, int64_t nitems,
                                       double holdout_fraction, uint64_t holdout_seed, imf_partition **out);
void imf_partition_destroy(imf_partition **p);

/* Bytes held by this rank's partition (for the memory report). */
int64_t imf_partition_bytes(const imf_partition *p);
#endif
