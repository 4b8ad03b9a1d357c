/* topk.c - tiled GEMM scoring with a bounded min-heap per user (see topk.h). The heap holds the
 * K best (score, item) pairs seen so far with the worst at the root, so the common case — a
 * candidate worse than the root — costs one comparison. Scores compared are P.Q + bi (the
 * user's constant mu + bu is added once at the end: it does not change the order). */
#include "topk.h"
#include "error.h"
#include "log.h"

#include <cblas.h>
#if defined(__SSE__)
#include <xmmintrin.h>
#endif
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* a is worse than b: the one ranking order of topk.h */
static inline __attribute__((always_inline)) int worse(float sa, int32_t ia, float sb, int32_t ib, const float *pc) {
  return imf_rank_worse(sa, ia, sb, ib, pc);
}

/* always_inline: called from the AVX-512 scan, a call into SSE-encoded code there costs an
 * AVX-SSE transition on every heap insertion (docs/DESIGN.md, "Top-K heaps"). */
static inline __attribute__((always_inline)) void sift_down(int32_t *it, float *sc, int n, int i, const float *pc) {
  for (;;) {
    int l = 2 * i + 1, r = l + 1, w = i;
    if (l < n && worse(sc[l], it[l], sc[w], it[w], pc)) w = l;
    if (r < n && worse(sc[r], it[r], sc[w], it[w], pc)) w = r;
    if (w == i) return;
    float ts = sc[i];
    sc[i] = sc[w];
    sc[w] = ts;
    int32_t ti = it[i];
    it[i] = it[w];
    it[w] = ti;
    i = w;
  }
}

static inline __attribute__((always_inline)) void sift_up(int32_t *it, float *sc, int i, const float *pc) {
  while (i > 0) {
    int p = (i - 1) / 2;
    if (!worse(sc[i], it[i], sc[p], it[p], pc)) return;
    float ts = sc[i];
    sc[i] = sc[p];
    sc[p] = ts;
    int32_t ti = it[i];
    it[i] = it[p];
    it[p] = ti;
    i = p;
  }
}

typedef struct {
  float s;
  int32_t i;
} pair;

static int cmp_pair(const void *a, const void *b, void *ctx) {
  const pair *x = a, *y = b;
  const float *pc = ctx;
  if (imf_rank_worse(x->s, x->i, y->s, y->i, pc)) return 1;
  if (imf_rank_worse(y->s, y->i, x->s, x->i, pc)) return -1;
  return 0;
}

void imf_topk_sort(int32_t *items, float *scores, int n) { imf_topk_sort_pop(items, scores, n, NULL); }

void imf_topk_sort_pop(int32_t *items, float *scores, int n, const float *pc) {
  pair stackbuf[256];
  pair *p = n <= 256 ? stackbuf : malloc(sizeof(pair) * (size_t)n);
  if (!p) { /* insertion sort fallback: never fails */
    for (int a = 1; a < n; a++)
      for (int b = a; b > 0 && worse(scores[b - 1], items[b - 1], scores[b], items[b], pc); b--) {
        float ts = scores[b]; scores[b] = scores[b - 1]; scores[b - 1] = ts;
        int32_t ti = items[b]; items[b] = items[b - 1]; items[b - 1] = ti;
      }
    return;
  }
  for (int j = 0; j < n; j++) p[j] = (pair){scores[j], items[j]};
  qsort_r(p, (size_t)n, sizeof *p, cmp_pair, (void *)pc);
  for (int j = 0; j < n; j++) {
    scores[j] = p[j].s;
    items[j] = p[j].i;
  }
  if (p != stackbuf) free(p);
}

/* Whether any of a block of scores (plus their item biases) reaches thr. Once a user's heap is
 * full nearly every candidate falls below its root, so testing a block at a time with vector
 * compares skips most of the tile at a few instructions per block; the sums are the same float
 * additions the exact loop makes, so a skipped block could never have entered the heap (scores
 * equal to the root fall through to the exact tie rule; NaN compares false and never ranks).
 * With AVX-512 one compare into a mask register tests the block, else four SSE compares. */
#if defined(__SSE__)
static inline int block_reaches16(const float *s, const float *b, float thr) {
  const __m128 t = _mm_set1_ps(thr);
  __m128 m = _mm_cmpge_ps(_mm_add_ps(_mm_loadu_ps(s), _mm_loadu_ps(b)), t);
  m = _mm_or_ps(m, _mm_cmpge_ps(_mm_add_ps(_mm_loadu_ps(s + 4), _mm_loadu_ps(b + 4)), t));
  m = _mm_or_ps(m, _mm_cmpge_ps(_mm_add_ps(_mm_loadu_ps(s + 8), _mm_loadu_ps(b + 8)), t));
  m = _mm_or_ps(m, _mm_cmpge_ps(_mm_add_ps(_mm_loadu_ps(s + 12), _mm_loadu_ps(b + 12)), t));
  return _mm_movemask_ps(m) != 0;
}
#else
static inline int block_reaches16(const float *s, const float *b, float thr) {
  int any = 0;
  for (int j = 0; j < 16; j++) any |= s[j] + b[j] >= thr;
  return any;
}
#endif

static const float zeros[16];

/* The scan of one GEMM tile into the users' heaps, instantiated per instruction set from
 * topk_scan.h (one body, so the two cannot drift apart). */
#define SCAN_NAME scan_tile16
#define SCAN_BLOCK 16
#define SCAN_REACHES block_reaches16
#define SCAN_TARGET
#include "topk_scan.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
__attribute__((target("avx512f"))) static inline int block_reaches512(const float *s, const float *b,
                                                                    float thr) {
  const __m512 t = _mm512_set1_ps(thr);
  return _mm512_cmp_ps_mask(_mm512_add_ps(_mm512_loadu_ps(s), _mm512_loadu_ps(b)), t, _CMP_GE_OQ) != 0;
}
#define SCAN_NAME scan_tile512
#define SCAN_BLOCK 16
#define SCAN_REACHES block_reaches512
#define SCAN_TARGET __attribute__((target("avx512f")))
#include "topk_scan.h"
#define IMF_HAVE_SCAN512 1
#endif

typedef void (*scan_fn)(const imf_topk_query *, int, int32_t *, float *, int *, int64_t *, const float *,
                        int64_t, int, int64_t, int);

/* Fixed for the process (a result never depends on it: both scans keep exactly the same heap). */
static scan_fn pick_scan(void) {
#ifdef IMF_HAVE_SCAN512
  /* IMF_TOPK_BLOCK=16 keeps the SSE scan: for side-by-side benchmarks and the test that runs
   * the brute-force check through both */
  const char *e = getenv("IMF_TOPK_BLOCK");
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && !(e && !strcmp(e, "16"))) return scan_tile512;
#endif
  return scan_tile16;
}

imf_status imf_topk(const imf_topk_query *q0, int K, int32_t *items, float *scores, int *count,
                    double *gemm_seconds) {
  float *C = NULL, *yb = NULL;
  int64_t *ep = NULL;
  imf_status st = IMF_OK;
  imf_topk_query qq = *q0;
  const imf_topk_query *q = &qq;
  const float *pc = q0->pop ? q0->pop->count : NULL;
  if (K < 1) IMF_TRY(IMF_RAISE(IMF_ERR_USAGE, "top-K needs K >= 1, got %d", K), out);
  if (q0->pop && q0->pop->prior && q0->ny > 0) {
    /* the popularity prior is one more item bias: added to the item's own (one float sum, the
     * same on every rank), so the scan and its block pre-test see it like any bias */
    IMF_TRY(imf_alloc(&yb, (size_t)q0->ny + 16, sizeof *yb), out);
    for (int64_t i = 0; i < q0->ny; i++) yb[i] = (q0->ybias ? q0->ybias[i] : 0.0f) + q0->pop->prior[i];
    qq.ybias = yb;
  }
  if (gemm_seconds) *gemm_seconds = 0;
  int64_t nr = q->nrows;
  for (int64_t r = 0; r < nr * K; r++) {
    items[r] = -1;
    scores[r] = NAN;
  }
  for (int64_t r = 0; r < nr; r++) count[r] = 0;
  if (nr == 0 || q->ny == 0) goto out;
  IMF_TRY(imf_alloc(&C, (size_t)IMF_TOPK_TILE_USERS * IMF_TOPK_TILE_ITEMS, sizeof(float)), out);
  IMF_TRY(imf_alloc(&ep, IMF_TOPK_TILE_USERS, sizeof(int64_t)), out);
  const int kw = q->kw;
  const scan_fn scan = pick_scan();
  for (int64_t u0 = 0; u0 < nr; u0 += IMF_TOPK_TILE_USERS) {
    int tu = (int)(nr - u0 < IMF_TOPK_TILE_USERS ? nr - u0 : IMF_TOPK_TILE_USERS);
    for (int a = 0; a < tu; a++) ep[a] = q->excl_ptr ? q->excl_ptr[u0 + a] : 0;
    for (int64_t i0 = 0; i0 < q->ny; i0 += IMF_TOPK_TILE_ITEMS) {
      int ti = (int)(q->ny - i0 < IMF_TOPK_TILE_ITEMS ? q->ny - i0 : IMF_TOPK_TILE_ITEMS);
      double tg = gemm_seconds ? imf_wtime() : 0;
      if (kw > 0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, tu, ti, kw, 1.0f, q->X + u0 * kw, kw,
                    q->Y + i0 * kw, kw, 0.0f, C, ti);
      else
        memset(C, 0, sizeof(float) * (size_t)tu * (size_t)ti);
      if (gemm_seconds) *gemm_seconds += imf_wtime() - tg;
      scan(q, K, items, scores, count, ep, C, u0, tu, i0, ti);
    }
    for (int a = 0; a < tu; a++) {
      int64_t r = u0 + a;
      float add = (float)(q->base + (q->xbias ? q->xbias[r] : 0.0));
      imf_topk_sort_pop(items + r * K, scores + r * K, count[r], pc);
      for (int j = 0; j < count[r]; j++) scores[r * K + j] += add;
    }
  }
out:
  imf_free(&C);
  imf_free(&ep);
  imf_free(&yb);
  return st;
}
