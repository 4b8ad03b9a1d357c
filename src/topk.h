/* topk.h - the top-K kernel behind `recommend` and the ranking metrics of `evaluate`: a block
 * of user factor rows is scored against all item factors in tiles (one cblas_sgemm per tile,
 * OpenBLAS), and each user keeps its best K items in a bounded min-heap while the tile is still
 * in cache. The full users x items score matrix never exists: memory is one tile
 * (IMF_TOPK_TILE_USERS x IMF_TOPK_TILE_ITEMS floats) plus K entries per user.
 *
 * Order (every ranked list of incremf: recommend, evaluate, the update judge, the EASE kernel of
 * ease.h): higher score first; equal scores by higher item popularity (imf_item_pop: the item's
 * count of positive training ratings, the pop model's score), then by lower item index — so a
 * user whose scores all tie (an implicit model's user without positives) gets the popularity
 * ranking, and results do not depend on the tiling or the rank count. Without a popularity
 * (NULL) ties go by item index alone. Items listed in a user's exclusion list (sorted ascending:
 * the items they rated in training) are never returned. */
#ifndef IMF_TOPK_H
#define IMF_TOPK_H
#include "incremf.h"
#include <stdint.h>

/* 512 x 512 floats (1 MB, within L2): measured against 128 x 2048 on 100k users x 20k items at
 * k = 64, the larger user tile packs each item tile for 4x as many users (OpenBLAS packs the item
 * operand per call), 5-10% faster scoring. */
#define IMF_TOPK_TILE_USERS 512
#define IMF_TOPK_TILE_ITEMS 512

/* Item popularity as the rankers use it (computed by itempop.h): count[i], the item's number of
 * positive training ratings (every training rating for explicit models), breaks score ties;
 * prior[i] (NULL: no prior) is added to every score of item i before ranking (model.pop_prior:
 * beta * log(1 + count[i]) / log(1 + max count)). Replicated, the same on every rank. */
typedef struct {
  int64_t n;     /* items */
  float *count;  /* n */
  float *prior;  /* n, or NULL */
  double beta;   /* model.pop_prior (0: prior NULL) */
} imf_item_pop;

/* The one ranking order: is (sa, item ia) ranked below (sb, item ib)? Score descending, then
 * popularity descending (count may be NULL), then item ascending. NaN scores compare as neither
 * worse nor better by score and never rank (the kernels drop them). */
static inline int imf_rank_worse(double sa, int32_t ia, double sb, int32_t ib, const float *count) {
  if (sa != sb) return sa < sb;
  if (count && count[ia] != count[ib]) return count[ia] < count[ib];
  return ia > ib;
}

typedef struct {
  int64_t nrows;          /* users to rank */
  int kw;                 /* factor length (stride of X and Y) */
  const float *X;         /* nrows x kw user factors */
  const float *xbias;     /* nrows user biases, or NULL */
  int64_t ny;             /* items */
  const float *Y;         /* ny x kw item factors */
  const float *ybias;     /* ny item biases, or NULL */
  double base;            /* added to every score (the global mean) */
  const int64_t *excl_ptr;/* nrows + 1 offsets into excl_idx, or NULL (nothing excluded) */
  const int32_t *excl_idx;/* sorted excluded item indices of each row */
  const imf_item_pop *pop;/* tie-break and prior (NULL: ties by item index, no prior) */
} imf_topk_query;

/* For each row: up to K best items (items[r*K + j], scores[r*K + j], j < count[r]; the rest
 * padded with -1 / NaN), best first. Local (no communication). gemm_seconds (may be NULL)
 * receives the time spent inside sgemm. */
imf_status imf_topk(const imf_topk_query *q, int K, int32_t *items, float *scores, int *count,
                    double *gemm_seconds);

/* Sort n (item, score) pairs best first (score descending, then item ascending). */
void imf_topk_sort(int32_t *items, float *scores, int n);
/* The same in the full ranking order (imf_rank_worse with count; NULL: imf_topk_sort's). */
void imf_topk_sort_pop(int32_t *items, float *scores, int n, const float *count);
#endif
