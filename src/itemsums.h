/* itemsums.h - per-item normal-equation sums: what an item's ALS or implicit-ALS re-solve needs
 * besides the other side's Gram (issue 24; docs/DESIGN.md, "An update that costs the batch").
 * For item j and its training raters u (explicit ALS with biases: y_u = [p_u; 1], target
 * t = r - mu - b_u; without biases y_u = p_u, t = r - mu; implicit ALS: weight w = alpha r,
 * target 1 + w):
 *   A_j = sum_u w y_u y_u^T   (packed upper triangle, d = k or k + 1),   b_j = sum_u t y_u,
 *   n_j = number of raters.
 * With them an item is re-solved in O(d^3) without reading its history, exactly as the row
 * solver does from the history (rowsolve.h: the same regulariser), and a fold-in keeps them
 * current from the touched users' histories alone: a touched user's pair leaves with its old
 * factor and value and comes back with its new ones (imf_itemsums_apply).
 *
 * The sums are partitioned by item owner (never replicated): a rank holds items [lo, hi).
 * Accumulated in double; the row solver accumulates a history's Gram in float arithmetic, so
 * a re-solve from the sums agrees with one from the history to float rounding, not bitwise. */
#ifndef IMF_ITEMSUMS_H
#define IMF_ITEMSUMS_H
#include "model.h"
#include "partition.h"
#include <mpi.h>

typedef struct {
  int k, d;          /* factors; d = k + 1 with biases */
  int implicit;      /* implicit ALS weights and targets */
  double mu, alpha;  /* from the model the sums were taken against */
  int64_t lo, hi;    /* items held: [lo, hi) */
  size_t tri;        /* d (d + 1) / 2 */
  double *A;         /* (hi - lo) x tri, packed upper, column-major (LAPACK's 'U' packing) */
  double *b;         /* (hi - lo) x d */
  int64_t *n;        /* (hi - lo) raters */
  double *y;         /* scratch: one rater's row (d) */
} imf_itemsums;

/* One training pair of a touched user before and after an update: value NaN where the pair
 * was not (or is no longer) a training rating (new, held out, or not a positive). */
typedef struct {
  int32_t u, i;
  float before, after;
} imf_pair_change;

/* Zero sums for items [lo, hi) of an ALS or implicit ALS model's shape (local). */
imf_status imf_itemsums_create(const imf_model *m, int64_t lo, int64_t hi, imf_itemsums **out);
void imf_itemsums_destroy(imf_itemsums **s);

/* (local) Add (sign +1) or remove (-1) one rating r of user u on item i (lo <= i < hi) with the
 * user's factor row of m. */
void imf_itemsums_add(imf_itemsums *s, const imf_model *m, int64_t u, int64_t i, float r, double sign);

/* (local) The sums of items [lo, hi) from their training ratings: c is an item-side CSR whose
 * rows cover [lo, hi) (a partition's by_item, or histories laid out the same way). */
imf_status imf_itemsums_build(imf_itemsums *s, const imf_csr *c, const imf_model *m);

/* Collective: each rank's pair changes (any items) are sent to the item's owner (item_start:
 * nranks + 1 boundaries, rank r holding [item_start[r], item_start[r+1]) = [s->lo, s->hi)),
 * which removes the pair's old contribution (user factors of `before`, value `before`) and
 * adds its new one (`after`). Items past before's item count take only the new one. */
imf_status imf_itemsums_apply(MPI_Comm comm, imf_itemsums *s, const int64_t *item_start, const imf_pair_change *ch,
                              int64_t nch, const imf_model *before, const imf_model *after);

/* (local) An order-free checksum of held rows [lo, hi) (the sum over rows of a hash of the row's
 * index and its A, b and n bytes, mod 2^64): the ranks' partial sums add up to the same value
 * whatever ranges they hold, which is what a version stores and a reader checks. */
uint64_t imf_itemsums_hash(const imf_itemsums *s, int64_t lo, int64_t hi);

/* Collective: the sums of every item of m over the partition's training ratings (its by_item
 * block: each rank the items the partition gives it), taken against m (replicated). */
imf_status imf_itemsums_from_partition(MPI_Comm comm, const imf_partition *p, const imf_model *m,
                                       imf_itemsums **out);

/* Collective: re-solve the held items flagged in `touched` (indexed by item, length >= hi) from
 * their sums with m's regulariser (and, for implicit ALS, the Gram of all of m's user factors),
 * and replicate the results into m's Q (and bi). *nsolved: items solved on all ranks. */
imf_status imf_itemsums_solve(MPI_Comm comm, const imf_itemsums *s, const unsigned char *touched, imf_model *m,
                              int64_t *nsolved);
#endif
