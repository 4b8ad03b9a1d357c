/* topk.h - the top-K kernel behind `recommend` and the ranking metrics of `evaluate`: a block
 * of user factor rows is scored against all item factors in tiles (one cblas_sgemm per tile,
 * OpenBLAS), and each user keeps its best K items in a bounded min-heap while the tile is still
 * in cache. The full users x items score matrix never exists: memory is one tile
 * (IMF_TOPK_TILE_USERS x IMF_TOPK_TILE_ITEMS floats) plus K entries per user.
 *
 * Order: higher score first; equal scores by lower item index (so results do not depend on the
 * tiling or the rank count). Items listed in a user's exclusion list (sorted ascending: the
 * items they rated in training) are never returned. */
#ifndef IMF_TOPK_H
#define IMF_TOPK_H
#include "incremf.h"
#include <stdint.h>

/* 512 x 512 floats (1 MB, within L2): measured against 128 x 2048 on 100k users x 20k items at
 * k = 64, the larger user tile packs each item tile for 4x as many users (OpenBLAS packs the item
 * operand per call), 5-10% faster scoring. */
#define IMF_TOPK_TILE_USERS 512
#define IMF_TOPK_TILE_ITEMS 512

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
} imf_topk_query;

/* For each row: up to K best items (items[r*K + j], scores[r*K + j], j < count[r]; the rest
 * padded with -1 / NaN), best first. Local (no communication). gemm_seconds (may be NULL)
 * receives the time spent inside sgemm. */
imf_status imf_topk(const imf_topk_query *q, int K, int32_t *items, float *scores, int *count,
                    double *gemm_seconds);

/* Sort n (item, score) pairs best first (score descending, then item ascending). */
void imf_topk_sort(int32_t *items, float *scores, int n);
#endif
