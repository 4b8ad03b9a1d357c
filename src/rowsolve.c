/* rowsolve.c - the shared row solver (see rowsolve.h): for each row, gather the other side's
 * factor rows it rated, accumulate the Gram matrix, and solve the regularised normal equations
 * (ALS-WR with biases, implicit ALS by Cholesky or warm-started CG) or draw from the BPMF
 * Gaussian conditional.
 *
 * Numerics: factor rows are float, so the Gram of a chunk of gathered rows is accumulated in
 * float (the only O(n k^2) step: a register-tiled AVX-512 or AVX2/FMA kernel on x86, else
 * cblas_ssyrk; why and how fast: docs/DESIGN.md, "The row solver's Gram kernel"), and each
 * chunk's Gram is added into a double matrix; everything after that (regulariser, Cholesky and
 * solve: by hand where the Gram kernel runs, else LAPACKE dpotrf/dpotrs; right-hand sides) is
 * double. Chunking bounds both the workspace and the float accumulation length.
 *
 * Determinism: every decision (chunk boundaries, BLAS or hand loop) depends only on the row's
 * own ratings, and each row is computed from scratch in the same workspace buffers (always
 * 64-byte aligned), so a row gives bitwise-identical results whether solved alone or inside
 * any batch, on any rank. */
#include "rowsolve.h"
#include "error.h"
#include "rng.h"
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define IMF_HAVE_X86_KERNEL 1
#endif

/* Rows per Gram-kernel call: long enough for the kernel to reach its peak, short enough that the float
 * accumulation stays accurate and the gather buffer stays in L2. */
#define IMF_ROW_CHUNK 1024
/* Chunks of at most this many rows would use the double hand loop instead of the float Gram
 * kernel. Measured with `bench_rowsolve fixed`: the AVX2 kernel wins even at n = 1 (the hand
 * loop is scalar), so only rows with negative implicit weights take the hand loop. */
#ifndef IMF_ROW_TINY
#define IMF_ROW_TINY 0
#endif
/* Gathered rows are prefetched this many ratings ahead, across row boundaries: the other
 * side's rows are scattered, and without prefetching the gather's cache misses cost more than
 * the Gram itself. (The distances and hints tried and rejected: docs/DESIGN.md, "The row
 * solver's Gram kernel".) */
#define IMF_ROW_PREFETCH 8
/* The kernel's copy of the next chunk (see plan_ahead) prefetches this many rows ahead of it:
 * a copy whose load misses the cache would otherwise stall the kernel's retirement. */
#ifndef IMF_AHEAD_PREFETCH
#define IMF_AHEAD_PREFETCH 32
#endif

struct imf_rowsolve_ws {
  int k;          /* latent factors this workspace was sized for */
  int ld;         /* float stride of a gathered row: k + 2 rounded up to 16 (32 with AVX-512) */
  int64_t cap;    /* rows the gather buffers hold */
  float *F;       /* cap x ld gathered (possibly scaled) factor rows */
  double *w;      /* cap: per-gathered-row weight (hand loop and CG) */
  float *G;       /* (k+1) x ld float Gram of one chunk */
  float *T;       /* k+1: one chunk's right-hand side from the fused target column */
  float *Bc;      /* k+1: one chunk's Gram column of the constant feature */
  double *A;      /* (k+1)^2 double system, column-major lower triangle */
  double *rhs;    /* k+1 */
  double *x;      /* k+1: the row being solved, in double */
  double *v1, *v2, *v3, *v4; /* k+1 each: CG vectors / random draw */
  const int32_t *idx_end; /* end of the batch's ratings: prefetching runs across rows */
  /* the gather-ahead (AVX-512 explicit path, see plan_ahead): F2 receives the next chunk's
   * rows while the kernel runs on F; pre_beg is that chunk's position in the batch (-1: none) */
  float *F2;
  int64_t pre_beg, pre_m, pre_n;
  const imf_row_batch *batch; /* the batch being solved and the row in it */
  int64_t cur_r;
  imf_rowsolve_stats stats;
};

/* The chunk the AVX-512 kernel gathers between its fmas (see plan_ahead): row i of dst
 * (stride ld) = the other side's row pidx[i] (k floats), the constant feature in column k
 * (bias_col) and the target in column tcol, exactly as gather() writes them. */
typedef struct {
  float *dst;
  int64_t n;
  int k, bias_col, tcol;
  const int32_t *pidx, *pend; /* the chunk's indices; the batch's end (prefetching runs on) */
  const float *val;           /* the chunk's ratings */
  const float *Y, *bias;      /* bias: the other side's biases when the target subtracts them */
  int64_t ny;
  double mu;
} copy_job;

static int use_avx2_kernel(void);
static int use_avx512_kernel(void);

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void free_k_buffers(imf_rowsolve_ws *ws) {
  imf_free(&ws->G);
  imf_free(&ws->T);
  imf_free(&ws->Bc);
  imf_free(&ws->A);
  imf_free(&ws->rhs);
  imf_free(&ws->x);
  imf_free(&ws->v1);
  imf_free(&ws->v2);
  imf_free(&ws->v3);
  imf_free(&ws->v4);
  imf_free(&ws->F);
  imf_free(&ws->F2);
  imf_free(&ws->w);
  ws->pre_beg = -1;
  ws->cap = 0;
}

/* (Re)size everything that depends on k; the gather buffers start at one chunk. */
static imf_status setup_k(imf_rowsolve_ws *ws, int k) {
  if (k < 1 || k > 65535) IMF_FAIL(IMF_ERR_USAGE, "row solver: bad number of factors k=%d", k);
  free_k_buffers(ws);
  ws->k = k;
  /* the AVX-512 kernel reads and writes 32-column tiles, which must stay inside a row */
  const int align = use_avx512_kernel() ? 32 : 16;
  /* room for the bias column k and the target column k + 1 */
  ws->ld = ((k + 2) + align - 1) & ~(align - 1);
  size_t d = (size_t)k + 1;
  IMF_CHECK(imf_alloc(&ws->G, d, (size_t)ws->ld * sizeof(float)));
  IMF_CHECK(imf_alloc(&ws->T, d, sizeof(float)));
  IMF_CHECK(imf_alloc(&ws->Bc, d, sizeof(float)));
  IMF_CHECK(imf_alloc(&ws->A, d * d, sizeof(double)));
  IMF_CHECK(imf_alloc(&ws->rhs, d, sizeof(double)));
  IMF_CHECK(imf_alloc(&ws->x, d, sizeof(double)));
  IMF_CHECK(imf_alloc(&ws->v1, d, sizeof(double)));
  IMF_CHECK(imf_alloc(&ws->v2, d, sizeof(double)));
  IMF_CHECK(imf_alloc(&ws->v3, d, sizeof(double)));
  IMF_CHECK(imf_alloc(&ws->v4, d, sizeof(double)));
  return IMF_OK;
}

static imf_status ensure_rows(imf_rowsolve_ws *ws, int64_t rows) {
  if (rows <= ws->cap) return IMF_OK;
  int64_t cap = ws->cap ? ws->cap : IMF_ROW_CHUNK;
  while (cap < rows) cap *= 2;
  imf_free(&ws->F);
  imf_free(&ws->F2);
  imf_free(&ws->w);
  ws->pre_beg = -1;
  ws->cap = 0;
  size_t n;
  IMF_CHECK(imf_mul_size((size_t)cap, (size_t)ws->ld, &n));
  IMF_CHECK(imf_alloc(&ws->F, n, sizeof(float)));
  IMF_CHECK(imf_alloc(&ws->F2, n, sizeof(float)));
  IMF_CHECK(imf_alloc(&ws->w, (size_t)cap, sizeof(double)));
  ws->cap = cap;
  return IMF_OK;
}

imf_status imf_rowsolve_ws_create(int k, imf_rowsolve_ws **out) {
  *out = NULL;
  imf_rowsolve_ws *ws;
  IMF_CHECK(imf_alloc(&ws, 1, sizeof *ws));
  imf_status st = setup_k(ws, k);
  if (st == IMF_OK) st = ensure_rows(ws, IMF_ROW_CHUNK);
  if (st != IMF_OK) {
    imf_rowsolve_ws_destroy(&ws);
    return st;
  }
  *out = ws;
  return IMF_OK;
}

void imf_rowsolve_ws_destroy(imf_rowsolve_ws **ws) {
  if (!ws || !*ws) return;
  free_k_buffers(*ws);
  imf_free(ws);
}

void imf_rowsolve_ws_stats(const imf_rowsolve_ws *ws, imf_rowsolve_stats *out) {
  *out = ws->stats;
}

void imf_rowsolve_ws_reset_stats(imf_rowsolve_ws *ws) {
  memset(&ws->stats, 0, sizeof ws->stats);
}

/* The per-rating target t (right-hand side coefficient) and Gram weight w of each kind. */
static inline void target_weight(const imf_row_params *p, const imf_other_side *o, int32_t j,
                                 float r, double *t, double *w) {
  switch (p->kind) {
  case IMF_ROW_ALS:
    *t = (double)r - p->mu - (p->with_bias && o->bias ? (double)o->bias[j] : 0.0);
    *w = 1.0;
    break;
  case IMF_ROW_IALS:
    *w = p->alpha * (double)r;
    *t = 1.0 + *w;
    break;
  default: /* BPMF: beta is applied to the whole sum afterwards */
    *t = (double)r - p->mu;
    *w = 1.0;
    break;
  }
}

/* Which float Gram kernel this process uses: fixed for the process, so a row's result never
 * depends on the batch. The AVX2 kernel beats OpenBLAS ssyrk by 1.2-2x at these shapes (few
 * hundred rows, k <= 128: ssyrk's packing dominates); elsewhere ssyrk. */
static int use_avx2_kernel(void) {
#ifdef IMF_HAVE_X86_KERNEL
  static int have = -1; /* a benign race: every thread computes the same value */
  if (have < 0) {
    __builtin_cpu_init();
    have = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }
  return have;
#else
  return 0;
#endif
}

/* Whether the Gram kernel may use 512-bit vectors (AVX-512F): twice the lanes per fused
 * multiply-add where the core has them (OpenBLAS's sgemm uses them too, so without this the
 * kernel would be measured against a limit it cannot reach). Every element is still the same
 * chain of fmas as in the AVX2 kernel, so the choice never changes a result. */
static int use_avx512_kernel(void) {
#ifdef IMF_HAVE_X86_KERNEL
  static int have = -1; /* a benign race, as above */
  if (have < 0) {
    __builtin_cpu_init();
    /* IMF_GRAM_KERNEL=avx2 keeps the 256-bit kernel: for side-by-side benchmarks and the
     * test that both kernels give the same factors */
    const char *e = getenv("IMF_GRAM_KERNEL");
    have = use_avx2_kernel() && __builtin_cpu_supports("avx512f") && !(e && !strcmp(e, "avx2"));
  }
  return have;
#else
  return 0;
#endif
}

/* Whether the Gram kernels can form the right-hand side from a target column (x86 only; the
 * ssyrk fallback forms the Gram alone). */
static int can_fuse_rhs(void) { return use_avx2_kernel(); }

/* rhs += t * y in double, element by element (separate multiply and add, so the vector and
 * scalar versions agree bit for bit). */
#ifdef IMF_HAVE_X86_KERNEL
__attribute__((target("avx2"))) static void axpy_f2d_avx2(int k, double t, const float *y,
                                                          double *rhs) {
  const __m256d tv = _mm256_set1_pd(t);
  int c = 0;
  for (; c + 4 <= k; c += 4) {
    __m256d yv = _mm256_cvtps_pd(_mm_loadu_ps(y + c));
    _mm256_storeu_pd(rhs + c, _mm256_add_pd(_mm256_loadu_pd(rhs + c), _mm256_mul_pd(tv, yv)));
  }
  for (; c < k; c++) rhs[c] += t * (double)y[c];
}
#endif

static void axpy_f2d(int k, double t, const float *y, double *rhs) {
#ifdef IMF_HAVE_X86_KERNEL
  if (use_avx2_kernel()) {
    axpy_f2d_avx2(k, t, y, rhs);
    return;
  }
#endif
  for (int c = 0; c < k; c++) rhs[c] += t * (double)y[c];
}

/* Gather m ratings starting at position j0 of the row into F (row i at F + i*ld), adding
 * t * [y; 1] to rhs (in rating order, double). scaled: store sqrt(w) * y for ssyrk (w >= 0);
 * otherwise store y and keep w for the hand loop / CG. bias_col: append the constant feature.
 * tcol >= 0 (explicit kinds, where every w is 1): store t in column tcol instead of adding to
 * rhs, so that the column kernel forms the right-hand side with the bias column in one pass
 * (the separate double axpy was a fifth of the accumulation's time at k = 64). */
static imf_status gather(const imf_row_params *p, const imf_other_side *o, const int32_t *idx,
                         const float *val, int64_t m, int scaled, int bias_col, int tcol,
                         int64_t row, imf_rowsolve_ws *ws) {
  const int k = p->k, ld = ws->ld;
  double *rhs = ws->rhs;
  for (int64_t i = 0; i < m; i++) {
    int32_t j = idx[i];
    if (j < 0 || (int64_t)j >= o->n)
      IMF_FAIL(IMF_ERR_INPUT, "row solver: row %lld rates other-side row %d, outside [0, %lld)",
               (long long)row, (int)j, (long long)o->n);
    double t, w;
    target_weight(p, o, j, val[i], &t, &w);
    if (idx + i + IMF_ROW_PREFETCH < ws->idx_end) {
      int32_t jp = idx[i + IMF_ROW_PREFETCH];
      if (jp >= 0 && (int64_t)jp < o->n) {
        const char *q = (const char *)(o->Y + (size_t)jp * (size_t)k);
        for (size_t off = 0; off < (size_t)k * sizeof(float); off += 64) __builtin_prefetch(q + off, 0, 2);
        if (o->bias) __builtin_prefetch(o->bias + jp, 0, 2);
          }
    }
    const float *y = o->Y + (size_t)j * (size_t)k;
    float *f = ws->F + (size_t)i * (size_t)ld;
    if (scaled && w != 1.0) {
      float s = (float)sqrt(w);
      for (int c = 0; c < k; c++) f[c] = s * y[c];
      if (bias_col) f[k] = s;
    } else {
      memcpy(f, y, (size_t)k * sizeof(float));
      if (bias_col) f[k] = 1.0f;
    }
    ws->w[i] = w;
    if (tcol >= 0) {
      f[tcol] = (float)t;
      continue;
    }
    axpy_f2d(k, t, y, rhs);
    if (bias_col) rhs[k] += t;
  }
  return IMF_OK;
}

/* A (d x d, column-major lower: element (b, a), b >= a, at A[a*d + b]) += w_i f_i f_i^T for
 * the m unscaled gathered rows, in double. */
static void hand_gram(imf_rowsolve_ws *ws, int d, int64_t m) {
  for (int64_t i = 0; i < m; i++) {
    const float *f = ws->F + (size_t)i * (size_t)ws->ld;
    double wi = ws->w[i];
    for (int a = 0; a < d; a++) {
      double fa = wi * (double)f[a];
      double *Aa = ws->A + (size_t)a * (size_t)d;
      for (int b = a; b < d; b++) Aa[b] += fa * (double)f[b];
    }
  }
}

#ifdef IMF_HAVE_X86_KERNEL
/* C (row-major, upper triangle, stride ldc) = F^T F over the m gathered rows, d columns.
 * Register tiles of 6 rows x 16 columns read straight from the gathered rows (no packing):
 * for each j, 2 vector loads and 6 broadcasts feed 12 fused multiply-adds. Each element is
 * one chain fma(f_ja, f_jb, acc) over j = 0..m-1 - the same order for any tile shape or
 * vector width. Reads columns up to d rounded up to 16 (within ld; their results are
 * discarded), and clamps row indices past d to d - 1 (results discarded too). */
__attribute__((target("avx2,fma"))) static void gram_avx2(const float *F, int ld, int64_t m,
                                                           int d, float *C, int ldc) {
  for (int a0 = 0; a0 < d; a0 += 6) {
    int ai[6];
    for (int i = 0; i < 6; i++) ai[i] = a0 + i < d ? a0 + i : d - 1;
    for (int b0 = a0 & ~15; b0 < d; b0 += 16) {
      __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
             c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
      const float *f = F;
      for (int64_t j = 0; j < m; j++, f += ld) {
        __m256 y0 = _mm256_load_ps(f + b0), y1 = _mm256_load_ps(f + b0 + 8), s;
        s = _mm256_broadcast_ss(f + ai[0]);
        c00 = _mm256_fmadd_ps(s, y0, c00);
        c01 = _mm256_fmadd_ps(s, y1, c01);
        s = _mm256_broadcast_ss(f + ai[1]);
        c10 = _mm256_fmadd_ps(s, y0, c10);
        c11 = _mm256_fmadd_ps(s, y1, c11);
        s = _mm256_broadcast_ss(f + ai[2]);
        c20 = _mm256_fmadd_ps(s, y0, c20);
        c21 = _mm256_fmadd_ps(s, y1, c21);
        s = _mm256_broadcast_ss(f + ai[3]);
        c30 = _mm256_fmadd_ps(s, y0, c30);
        c31 = _mm256_fmadd_ps(s, y1, c31);
        s = _mm256_broadcast_ss(f + ai[4]);
        c40 = _mm256_fmadd_ps(s, y0, c40);
        c41 = _mm256_fmadd_ps(s, y1, c41);
        s = _mm256_broadcast_ss(f + ai[5]);
        c50 = _mm256_fmadd_ps(s, y0, c50);
        c51 = _mm256_fmadd_ps(s, y1, c51);
      }
      const __m256 cc[12] = {c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51};
      for (int i = 0; i < 6 && a0 + i < d; i++) {
        _mm256_store_ps(C + (size_t)(a0 + i) * (size_t)ldc + b0, cc[2 * i]);
        _mm256_store_ps(C + (size_t)(a0 + i) * (size_t)ldc + b0 + 8, cc[2 * i + 1]);
      }
    }
  }
}
#endif

#ifdef IMF_HAVE_X86_KERNEL
/* One 8-row register tile of the AVX-512 kernel: rows ai[0..7] against NV (1 or 2) 16-column
 * vectors from column b0; per j NV vector loads and 8 broadcasts feed 8 NV fmas. */
#define IMF_TILE512(NV)                                                                          \
  do {                                                                                           \
    __m512 c0[8], c1[8];                                                                         \
    _Pragma("GCC unroll 8") for (int i = 0; i < 8; i++) c0[i] = c1[i] = _mm512_setzero_ps();                             \
    const float *fy = F + b0, *fs = F + a0;                                                      \
    for (int64_t j = 0; j < m; j++, fy += ld, fs += ld) {                                        \
      if (--gap == 0) {                                                                          \
        gap = stride;                                                                            \
        if (ci < cn) {                                                                           \
          ahead(cj, ci);                                                                         \
          copy_one(cj, ci, ld);                                                                  \
          ci++;                                                                                  \
        }                                                                                        \
      }                                                                                          \
      const __m512 y0 = _mm512_load_ps(fy);                                                      \
      const __m512 y1 = (NV) > 1 ? _mm512_load_ps(fy + 16) : y0;                                 \
      _Pragma("GCC unroll 8") for (int i = 0; i < 8; i++) {                                      \
        const __m512 s = _mm512_set1_ps(fs[i]);                                                  \
        c0[i] = _mm512_fmadd_ps(s, y0, c0[i]);                                                   \
        if ((NV) > 1) c1[i] = _mm512_fmadd_ps(s, y1, c1[i]);                                     \
      }                                                                                          \
    }                                                                                            \
    _Pragma("GCC unroll 8") for (int i = 0; i < 8; i++) {                                     \
      if (a0 + i >= d) break;                                                                    \
      double *Ar = A + (size_t)(a0 + i) * (size_t)lda;                                           \
      store_row_pd(Ar, b0, a0 + i, d, c0[i], add);                                               \
      if ((NV) > 1) store_row_pd(Ar, b0 + 16, a0 + i, d, c1[i], add);                            \
    }                                                                                            \
  } while (0)

/* the first n lanes of 16 (n clamped to 0..16) */
__attribute__((target("avx512f"))) static inline __mmask16 lanes16(int n) {
  return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1u);
}

/* the cache lines of a factor row of k floats, into L2 */
static inline void prefetch_row(const float *y, int k) {
  const uintptr_t q = (uintptr_t)y, e = q + (uintptr_t)k * sizeof(float);
  for (uintptr_t l = q & ~(uintptr_t)63; l < e; l += 64) __builtin_prefetch((const void *)l, 0, 2);
}

/* prefetch the row (and bias) IMF_AHEAD_PREFETCH ratings after the copy's row ci */
static inline void ahead(const copy_job *cj, int64_t ci) {
  const int32_t *q = cj->pidx + ci + IMF_AHEAD_PREFETCH;
  if (q < cj->pend && *q >= 0 && (int64_t)*q < cj->ny) {
    prefetch_row(cj->Y + (size_t)*q * (size_t)cj->k, cj->k);
    if (cj->bias) __builtin_prefetch(cj->bias + *q, 0, 2);
  }
}

/* dst[0..k-1] = src[0..k-1] (dst's columns past k untouched) */
__attribute__((target("avx512f"))) static inline void copy_row(float *dst, const float *src, int k) {
  int c = 0;
  for (; c + 16 <= k; c += 16) _mm512_storeu_ps(dst + c, _mm512_loadu_ps(src + c));
  if (c < k) {
    const __mmask16 mk = lanes16(k - c);
    _mm512_mask_storeu_ps(dst + c, mk, _mm512_maskz_loadu_ps(mk, src + c));
  }
}

/* row ci of the copy job, as gather() writes it */
__attribute__((target("avx512f"))) static inline void copy_one(const copy_job *cj, int64_t ci, int ld) {
  const int32_t j = cj->pidx[ci];
  float *f = cj->dst + (size_t)ci * (size_t)ld;
  copy_row(f, cj->Y + (size_t)j * (size_t)cj->k, cj->k);
  if (cj->bias_col) f[cj->k] = 1.0f;
  f[cj->tcol] = (float)((double)cj->val[ci] - cj->mu - (cj->bias ? (double)cj->bias[j] : 0.0));
}

/* Row a of A (Ar = A + a * lda) at columns b0..b0+15 = or += the 16 floats of c in double,
 * only where a <= column < d (the part of the row the solver reads). */
__attribute__((target("avx512f"))) static inline void store_row_pd(double *Ar, int b0, int a,
                                                                   int d, __m512 c, int add) {
  const __mmask16 mk = (__mmask16)(lanes16(d - b0) & ~lanes16(a - b0));
  if (!mk) return;
  const __mmask8 ml = (__mmask8)(mk & 0xFF), mh = (__mmask8)(mk >> 8);
  __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(c));
  __m512d hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(c), 1)));
  if (add) {
    lo = _mm512_add_pd(_mm512_maskz_loadu_pd(ml, Ar + b0), lo);
    hi = _mm512_add_pd(_mm512_maskz_loadu_pd(mh, Ar + b0 + 8), hi);
  }
  _mm512_mask_storeu_pd(Ar + b0, ml, lo);
  _mm512_mask_storeu_pd(Ar + b0 + 8, mh, hi);
}

/* gram_avx2 with 512-bit vectors: register tiles of 8 rows x 32 columns (16 accumulators of the
 * 32 zmm registers; per j 2 vector loads and 8 broadcasts feed 16 fmas). Where half of a tile
 * would lie wholly below the diagonal or past column d, the tile is 8 x 16 instead: at k = 64
 * that cuts the kernel's fmas from 192 to 160 per gathered row (130 are needed). Same element
 * chains, so bitwise the AVX2 kernel's result. Unlike it, the tiles go straight into the
 * double system A (row-major upper, stride lda: the solver's column-major lower), assigned or
 * (add) added, only where column >= row and < d: that saves the float Gram's round trip
 * through memory, a tenth of the accumulation at k = 64. Reads columns up to d rounded up to
 * 16 (ld is a multiple of 32 when this kernel is in use). */
__attribute__((target("avx512f"))) static void gram_avx512(const float *F, int ld, int64_t m,
                                                            int d, double *A, int lda, int add,
                                                            copy_job *cj) {
  const int dv = (d + 15) & ~15; /* columns covered by whole vectors */
  /* the copy job's rows, spread evenly over the kernel's steps */
  int64_t ci = 0, cn = cj ? cj->n : 0, stride = 1, gap = 1;
  if (cn > 0) {
    int64_t steps = 0;
    for (int a0 = 0; a0 < d; a0 += 8)
      for (int t0 = a0 & ~31; t0 < d; t0 += 32) steps += m;
    stride = gap = steps / cn > 1 ? steps / cn : 1;
  } else {
    gap = INT64_MAX;
  }

  /* rows a0..a0+7 of a tile are broadcast from constant offsets (no clamping at d: the last
   * tile's rows past d read columns inside the row's ld, and their results are dropped) */
  for (int a0 = 0; a0 < d; a0 += 8) {
    for (int t0 = a0 & ~31; t0 < d; t0 += 32) {
      int b0 = t0, end = t0 + 32 < dv ? t0 + 32 : dv;
      if (a0 >= t0 + 16) b0 = t0 + 16; /* the tile's left half is below the diagonal */
      if (end - b0 > 16) IMF_TILE512(2);
      else IMF_TILE512(1);
    }
  }
  for (; ci < cn; ci++) copy_one(cj, ci, ld);
}
#undef IMF_TILE512
#endif

#ifdef IMF_HAVE_X86_KERNEL
/* The extra columns of F besides the k x k block, for rows 0..d-1: the ALS bias column cb (the
 * constant feature) and the target column
 * ct (the ratings' targets; its dot products, the right-hand side, go to tout). Either may be
 * -1; the bias column's dot products go to bout. Done apart from the tile kernel because as more columns of it they would cost a whole
 * tile column on every row tile for d useful dot products each. Every element is one chain
 * fma(f_ja, f_jc, acc) over j = 0..m-1, the same as the tile kernels', so the result does not
 * depend on which code made it. Reads rows up to d rounded up to 8 (AVX2) or 16 (AVX-512),
 * within ld. */
#define IMF_COLS(VEC, W, LOAD, SET1, FMA, ZERO, STORE, NV)                                        \
  do {                                                                                           \
    VEC ab[NV], at[NV];                                                                          \
    _Pragma("GCC unroll 8") for (int v = 0; v < (NV); v++) ab[v] = at[v] = ZERO();                                       \
    const float *f = F;                                                                          \
    if (cb >= 0 && ct >= 0) {                                                                    \
      for (int64_t j = 0; j < m; j++, f += ld) {                                                 \
        const VEC sb = SET1(f[cb]), st = SET1(f[ct]);                                            \
        _Pragma("GCC unroll 8") for (int v = 0; v < (NV); v++) {                                                         \
          const VEC x = LOAD(f + a0 + (W) * v);                                                  \
          ab[v] = FMA(x, sb, ab[v]);                                                             \
          at[v] = FMA(x, st, at[v]);                                                             \
        }                                                                                        \
      }                                                                                          \
    } else {                                                                                     \
      const int c = cb >= 0 ? cb : ct;                                                           \
      for (int64_t j = 0; j < m; j++, f += ld) {                                                 \
        const VEC sc = SET1(f[c]);                                                               \
        _Pragma("GCC unroll 8") for (int v = 0; v < (NV); v++) ab[v] = FMA(LOAD(f + a0 + (W) * v), sc, ab[v]);            \
      }                                                                                          \
      if (cb < 0)                                                                                \
        _Pragma("GCC unroll 8") for (int v = 0; v < (NV); v++) at[v] = ab[v];                                            \
    }                                                                                            \
    _Pragma("GCC unroll 8") for (int v = 0; v < (NV); v++) {                                                             \
      float ob[W] __attribute__((aligned(64))), ot[W] __attribute__((aligned(64)));               \
      STORE(ob, ab[v]);                                                                          \
      STORE(ot, at[v]);                                                                          \
      for (int i = 0; i < (W) && a0 + (W) * v + i < d; i++) {                                    \
        const int a = a0 + (W) * v + i;                                                          \
        if (cb >= 0) bout[a] = ob[i];                                                            \
        if (ct >= 0) tout[a] = ot[i];                                                            \
      }                                                                                          \
    }                                                                                            \
  } while (0)

#define IMF_COLS_SWITCH(VEC, W, LOAD, SET1, FMA, ZERO, STORE)                                     \
  for (int a0 = 0; a0 < d; a0 += 8 * (W)) {                                                      \
    int nv = (d - a0 + (W) - 1) / (W);                                                           \
    switch (nv > 8 ? 8 : nv) {                                                                   \
    case 1: IMF_COLS(VEC, W, LOAD, SET1, FMA, ZERO, STORE, 1); break;                            \
    case 2: IMF_COLS(VEC, W, LOAD, SET1, FMA, ZERO, STORE, 2); break;                            \
    case 3: IMF_COLS(VEC, W, LOAD, SET1, FMA, ZERO, STORE, 3); break;                            \
    case 4: IMF_COLS(VEC, W, LOAD, SET1, FMA, ZERO, STORE, 4); break;                            \
    case 5: IMF_COLS(VEC, W, LOAD, SET1, FMA, ZERO, STORE, 5); break;                            \
    case 6: IMF_COLS(VEC, W, LOAD, SET1, FMA, ZERO, STORE, 6); break;                            \
    case 7: IMF_COLS(VEC, W, LOAD, SET1, FMA, ZERO, STORE, 7); break;                            \
    default: IMF_COLS(VEC, W, LOAD, SET1, FMA, ZERO, STORE, 8); break;                           \
    }                                                                                            \
  }

__attribute__((target("avx2,fma"))) static void gram_cols_avx2(const float *F, int ld, int64_t m,
                                                                int d, int cb, int ct, float *bout,
                                                                float *tout) {
  IMF_COLS_SWITCH(__m256, 8, _mm256_load_ps, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_setzero_ps,
                  _mm256_store_ps)
}

__attribute__((target("avx512f"))) static void gram_cols_avx512(const float *F, int ld, int64_t m,
                                                                 int d, int cb, int ct, float *bout,
                                                                 float *tout) {
  IMF_COLS_SWITCH(__m512, 16, _mm512_load_ps, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_setzero_ps,
                  _mm512_store_ps)
}
#undef IMF_COLS_SWITCH
#undef IMF_COLS
#endif

/* The Gram of m gathered rows, d columns (with bias_col the last is the constant feature):
 * with AVX-512 straight into the double system A (assigned, or added when add), returning 1;
 * otherwise into G (row-major upper, stride ld), returning 0, and the caller converts. fused:
 * column d of F holds the targets, and tout (d floats) receives their dot products with
 * columns 0..d-1 (the chunk's right-hand side); only where can_fuse_rhs(). */
static int gram_f32(imf_rowsolve_ws *ws, int64_t m, int d, int bias_col, int fused, int add,
                    float *tout, copy_job *cj) {
#ifdef IMF_HAVE_X86_KERNEL
  if (use_avx2_kernel()) {
    const int avx512 = use_avx512_kernel();
    const int kd = bias_col ? d - 1 : d;
    if (avx512) {
      if (kd > 0) gram_avx512(ws->F, ws->ld, m, kd, ws->A, d, add, cj);
      else if (cj)
        for (int64_t i = 0; i < cj->n; i++) copy_one(cj, i, ws->ld);
      if (bias_col || fused)
        gram_cols_avx512(ws->F, ws->ld, m, d, bias_col ? d - 1 : -1, fused ? d : -1, ws->Bc, tout);
      if (bias_col)
        for (int a = 0; a < d; a++) {
          double *e = ws->A + (size_t)a * (size_t)d + (size_t)(d - 1);
          *e = add ? *e + (double)ws->Bc[a] : (double)ws->Bc[a];
        }
      return 1;
    }
    /* the k x k block first: its last tile may spill into the extra columns, whose Gram
     * column is then written over */
    if (kd > 0) gram_avx2(ws->F, ws->ld, m, kd, ws->G, ws->ld);
    if (bias_col || fused)
      gram_cols_avx2(ws->F, ws->ld, m, d, bias_col ? d - 1 : -1, fused ? d : -1, ws->Bc, tout);
    if (bias_col)
      for (int a = 0; a < d; a++) ws->G[(size_t)a * (size_t)ws->ld + (size_t)(d - 1)] = ws->Bc[a];
    return 0;
  }
#endif
  (void)bias_col;
  (void)fused;
  (void)add;
  (void)tout;
  (void)cj;
  cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, d, (int)m, 1.0f, ws->F, ws->ld, 0.0f,
              ws->G, ws->ld);
  return 0;
}

/* A's lower triangle (column-major: A[a*d + b], b >= a) = or += the float Gram G (row-major
 * upper, stride ld). Assigning the first chunk saves zeroing all of A (d^2 doubles per row, as
 * much memory traffic as the Gram kernel's output): only the lower triangle is ever read
 * (dpotrf/dpotrs/dtrsv with 'L'). */
#ifdef IMF_HAVE_X86_KERNEL
__attribute__((target("avx2"))) static void gram_to_double_avx2(const float *G, int ld, int d, double *A, int add) {
  for (int a = 0; a < d; a++) {
    const float *g = G + (size_t)a * (size_t)ld;
    double *Aa = A + (size_t)a * (size_t)d;
    int b = a;
    if (add)
      for (; b + 4 <= d; b += 4)
        _mm256_storeu_pd(Aa + b, _mm256_add_pd(_mm256_loadu_pd(Aa + b), _mm256_cvtps_pd(_mm_loadu_ps(g + b))));
    else
      for (; b + 4 <= d; b += 4) _mm256_storeu_pd(Aa + b, _mm256_cvtps_pd(_mm_loadu_ps(g + b)));
    for (; b < d; b++) Aa[b] = add ? Aa[b] + (double)g[b] : (double)g[b];
  }
}
#endif

static void gram_to_double(const imf_rowsolve_ws *ws, int d, int add) {
#ifdef IMF_HAVE_X86_KERNEL
  if (use_avx2_kernel()) {
    gram_to_double_avx2(ws->G, ws->ld, d, ws->A, add);
    return;
  }
#endif
  for (int a = 0; a < d; a++) {
    const float *g = ws->G + (size_t)a * (size_t)ws->ld;
    double *Aa = ws->A + (size_t)a * (size_t)d;
    for (int b = a; b < d; b++) Aa[b] = add ? Aa[b] + (double)g[b] : (double)g[b];
  }
}

/* The gather-ahead. Copying the other side's rows into F is a stream of random reads (L3 or
 * DRAM misses when that side is large): done in its own loop every miss stalls it, and it
 * cost half as much as the Gram kernel at k = 64 however far ahead it prefetched. The kernel
 * is bound by its fmas instead, so it copies the next chunk's rows (into F2) between them,
 * where the out-of-order core overlaps the misses with the arithmetic. The next chunk is the
 * rest of this row or the next row's first chunk. This finds that chunk and checks its
 * indices; returns its rows (0: none, e.g. after the last row, or an index out of range, which
 * the plain gather then reports). */
static int64_t plan_ahead(imf_rowsolve_ws *ws, const imf_row_params *p, const imf_other_side *o,
                          int64_t q, int d, int bias_col) {
  ws->pre_beg = -1;
  const imf_row_batch *b = ws->batch;
  if (!b) return 0;
  const int64_t r = ws->cur_r;
  int64_t m2;
  if (q < b->ptr[r + 1]) {
    m2 = b->ptr[r + 1] - q;
  } else {
    if (r + 1 >= b->nrows) return 0;
    q = b->ptr[r + 1];
    m2 = b->ptr[r + 2] - q;
    if (m2 <= 0) return 0;
  }
  if (m2 > IMF_ROW_CHUNK) m2 = IMF_ROW_CHUNK;
  for (int64_t i = 0; i < m2; i++)
    if (b->idx[q + i] < 0 || (int64_t)b->idx[q + i] >= o->n) return 0;
  (void)p;
  (void)d;
  (void)bias_col;
  ws->pre_beg = q;
  ws->pre_m = m2;
  return m2;
}

/* Accumulate the row's weighted Gram (into A's lower triangle) and right-hand side (into rhs)
 * from scratch, chunk by chunk. */
static imf_status accumulate(const imf_row_params *p, const imf_other_side *o, const int32_t *idx,
                             const float *val, int64_t n, int d, int64_t row, imf_rowsolve_ws *ws) {
  const int bias_col = d > p->k;
  int have = 0; /* A holds a chunk's Gram already */
  memset(ws->rhs, 0, (size_t)d * sizeof(double));
  for (int64_t j0 = 0; j0 < n; j0 += IMF_ROW_CHUNK) {
    int64_t m = n - j0 < IMF_ROW_CHUNK ? n - j0 : IMF_ROW_CHUNK;
    int hand = m <= IMF_ROW_TINY;
    /* A negative implicit weight has no real square root: such a chunk (not expected with
     * implicit data, but possible) takes the exact hand loop. */
    if (!hand && p->kind == IMF_ROW_IALS)
      for (int64_t i = 0; i < m; i++)
        if (!(p->alpha * (double)val[j0 + i] >= 0.0)) {
          hand = 1;
          break;
        }
    /* explicit kinds (every weight 1) form the right-hand side in the column kernel */
    const int fused = !hand && p->kind != IMF_ROW_IALS && can_fuse_rhs();
    copy_job cj = {0}, *cjp = NULL;
    if (fused && use_avx512_kernel() && ws->batch) {
      const int64_t g = ws->batch->ptr[ws->cur_r] + j0; /* this chunk's position in the batch */
      if (ws->pre_beg == g && ws->pre_m == m) { /* gathered during the last kernel call */
        float *t = ws->F;
        ws->F = ws->F2;
        ws->F2 = t;
      } else {
        IMF_CHECK(gather(p, o, idx + j0, val + j0, m, 1, bias_col, d, row, ws));
      }
      const int64_t nn = plan_ahead(ws, p, o, g + m, d, bias_col);
      if (nn > 0) {
        const float *bias = p->kind == IMF_ROW_ALS && p->with_bias ? o->bias : NULL;
        cj = (copy_job){ws->F2, nn, p->k, bias_col, d, ws->batch->idx + ws->pre_beg, ws->idx_end,
                        ws->batch->val + ws->pre_beg, o->Y, bias, o->n, p->mu};
        cjp = &cj;
      }
    } else {
      IMF_CHECK(gather(p, o, idx + j0, val + j0, m, !hand, bias_col, fused ? d : -1, row, ws));
    }
    if (hand) {
      if (!have) memset(ws->A, 0, (size_t)d * (size_t)d * sizeof(double));
      hand_gram(ws, d, m);
    } else {
      const int direct = gram_f32(ws, m, d, bias_col, fused, have, ws->T, cjp);
      if (!direct) gram_to_double(ws, d, have);
      if (fused)
        for (int a = 0; a < d; a++) ws->rhs[a] += (double)ws->T[a];
    }
    have = 1;
  }
  if (!have) memset(ws->A, 0, (size_t)d * (size_t)d * sizeof(double)); /* no ratings (BPMF) */
  return IMF_OK;
}

/* The row's Cholesky factorisation and solve, by hand where the Gram kernels run (x86 with AVX2
 * and FMA). LAPACK's dpotrf/dpotrs are built for large matrices: on the row solver's (k+1)^2
 * systems their blocking, packing and one-column dtrsm calls cost more than the arithmetic, and
 * they took about as long as 200 ratings' Gram updates per row (k = 64: 37% of a sweep on one
 * rank, more than the Gram itself). Left-looking, column by column: column j of A (rows j..d-1,
 * contiguous) takes one fused multiply-subtract per earlier column p, in order p = 0..j-1, then
 * is scaled by 1/sqrt of its diagonal. Every element is that same chain of fmas in the AVX-512
 * version (two columns at a time, 32 rows per block: 4 zmm each) and the AVX2 one (one column,
 * 32 rows: 8 ymm), so they agree bit for bit. */
#ifdef IMF_HAVE_X86_KERNEL
/* the first n of 8 double lanes (n clamped to 0..8) */
__attribute__((target("avx512f"))) static inline __mmask8 lanes8(int n) {
  return n >= 8 ? (__mmask8)0xFF : n <= 0 ? (__mmask8)0 : (__mmask8)((1u << n) - 1u);
}

/* column j of the factor from its updated values: the pivot's square root, the rest scaled */
static inline int chol_finish(double *Aj, int j, int d) {
  const double ajj = Aj[j];
  if (!(ajj > 0)) return j + 1; /* not positive definite, or NaN */
  const double ljj = sqrt(ajj), inv = 1.0 / ljj;
  Aj[j] = ljj;
  for (int i = j + 1; i < d; i++) Aj[i] *= inv;
  return 0;
}

/* Columns j and j+1 together: each earlier column's rows are loaded once for both (the factor
 * outgrows L1 from k = 64 on, and single columns were bound by L2 loads at k = 128), then
 * column j is finished, its own term applied to column j+1, and that finished. Each element's
 * chain is still p = 0, 1, ..., in order, so the result is that of one column at a time. Rows
 * from j on in both columns: column j+1's row j lies in the upper triangle, never read. */
__attribute__((target("avx512f"))) static int chol_avx512(double *A, int d) {
  int j = 0;
  for (; j + 1 < d; j += 2) {
    double *Aj = A + (size_t)j * (size_t)d, *Ak = Aj + d;
    for (int i0 = j; i0 < d; i0 += 32) {
      const int n = d - i0;
      __mmask8 m[4];
      __m512d a[4], c[4];
      _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++) {
        m[v] = lanes8(n - 8 * v);
        a[v] = _mm512_maskz_loadu_pd(m[v], Aj + i0 + 8 * v);
        c[v] = _mm512_maskz_loadu_pd(m[v], Ak + i0 + 8 * v);
      }
      const double *Lp = A + i0;
      for (int p = 0; p < j; p++, Lp += d) {
        const __m512d lj = _mm512_set1_pd(Lp[j - i0]), lk = _mm512_set1_pd(Lp[j + 1 - i0]);
        _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++) {
          if (v > 0 && n <= 8 * v) break; /* past the block's last row */
          const __m512d x = _mm512_maskz_loadu_pd(m[v], Lp + 8 * v);
          a[v] = _mm512_fnmadd_pd(x, lj, a[v]);
          c[v] = _mm512_fnmadd_pd(x, lk, c[v]);
        }
      }
      _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++) {
        _mm512_mask_storeu_pd(Aj + i0 + 8 * v, m[v], a[v]);
        _mm512_mask_storeu_pd(Ak + i0 + 8 * v, m[v], c[v]);
      }
    }
    int info = chol_finish(Aj, j, d);
    if (info) return info;
    const __m512d lk = _mm512_set1_pd(Aj[j + 1]); /* column j's term in column j+1 */
    for (int i0 = j + 1; i0 < d; i0 += 8) {
      const __mmask8 m = lanes8(d - i0);
      _mm512_mask_storeu_pd(Ak + i0, m, _mm512_fnmadd_pd(_mm512_maskz_loadu_pd(m, Aj + i0), lk,
                                                         _mm512_maskz_loadu_pd(m, Ak + i0)));
    }
    info = chol_finish(Ak, j + 1, d);
    if (info) return info;
  }
  for (; j < d; j++) { /* the last column of an odd d */
    double *Aj = A + (size_t)j * (size_t)d;
    for (int i0 = j; i0 < d; i0 += 8) {
      const __mmask8 m = lanes8(d - i0);
      __m512d a = _mm512_maskz_loadu_pd(m, Aj + i0);
      const double *Lp = A + i0;
      for (int p = 0; p < j; p++, Lp += d)
        a = _mm512_fnmadd_pd(_mm512_maskz_loadu_pd(m, Lp), _mm512_set1_pd(Lp[j - i0]), a);
      _mm512_mask_storeu_pd(Aj + i0, m, a);
    }
    const int info = chol_finish(Aj, j, d);
    if (info) return info;
  }
  return 0;
}

/* the first n of 4 double lanes, as _mm256_maskload_pd wants them (sign bits) */
__attribute__((target("avx2"))) static inline __m256i lanes4(int n) {
  const __m256i idx = _mm256_setr_epi64x(0, 1, 2, 3);
  return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n < 0 ? 0 : n), idx);
}

__attribute__((target("avx2,fma"))) static int chol_avx2(double *A, int d) {
  for (int j = 0; j < d; j++) {
    double *Aj = A + (size_t)j * (size_t)d;
    for (int i0 = j; i0 < d; i0 += 32) {
      const int n = d - i0, nv = n >= 32 ? 8 : (n + 3) / 4;
      __m256i mk[8];
      __m256d a[8];
      for (int v = 0; v < 8; v++) {
        mk[v] = lanes4(n - 4 * v);
        a[v] = v < nv ? _mm256_maskload_pd(Aj + i0 + 4 * v, mk[v]) : _mm256_setzero_pd();
      }
      const double *Lp = A + i0;
      for (int p = 0; p < j; p++, Lp += d) {
        const __m256d l = _mm256_set1_pd(Lp[j - i0]);
        for (int v = 0; v < nv; v++) a[v] = _mm256_fnmadd_pd(_mm256_maskload_pd(Lp + 4 * v, mk[v]), l, a[v]);
      }
      for (int v = 0; v < nv; v++) _mm256_maskstore_pd(Aj + i0 + 4 * v, mk[v], a[v]);
    }
    const int info = chol_finish(Aj, j, d);
    if (info) return info;
  }
  return 0;
}

/* L L^T x = b in place (b becomes x), in a fixed order of operations (one function serves both
 * x86 kernels): forward substitution as fmas down the columns of L (contiguous), then back
 * substitution, where x_j = (y_j - L[j+1.., j] . x[j+1..]) / L_jj is a dot product along the
 * contiguous column j, summed in 4 lanes of fmas (lane = offset mod 4) and then
 * (l0 + l2) + (l1 + l3). */
__attribute__((target("avx2,fma"))) static void chol_solve_x86(const double *L, int d, double *b) {
  for (int j = 0; j < d; j++) {
    const double *Lj = L + (size_t)j * (size_t)d;
    const double y = b[j] / Lj[j];
    b[j] = y;
    const __m256d vy = _mm256_set1_pd(y);
    int i = j + 1;
    for (; i + 4 <= d; i += 4)
      _mm256_storeu_pd(b + i, _mm256_fnmadd_pd(_mm256_loadu_pd(Lj + i), vy, _mm256_loadu_pd(b + i)));
    for (; i < d; i++) b[i] = fma(-Lj[i], y, b[i]);
  }
  for (int j = d - 1; j >= 0; j--) {
    const double *Lj = L + (size_t)j * (size_t)d;
    const int n = d - 1 - j;
    __m256d acc = _mm256_setzero_pd();
    int o = 0;
    for (; o + 4 <= n; o += 4) acc = _mm256_fmadd_pd(_mm256_loadu_pd(Lj + j + 1 + o), _mm256_loadu_pd(b + j + 1 + o), acc);
    if (o < n) {
      const __m256i mk = lanes4(n - o);
      acc = _mm256_fmadd_pd(_mm256_maskload_pd(Lj + j + 1 + o, mk), _mm256_maskload_pd(b + j + 1 + o, mk), acc);
    }
    double l[4];
    _mm256_storeu_pd(l, acc);
    b[j] = (b[j] - ((l[0] + l[2]) + (l[1] + l[3]))) / Lj[j];
  }
}
#endif

/* Cholesky of A (d x d, lower, column-major) in place. */
static imf_status cholesky(double *A, int d, int64_t row) {
  lapack_int info;
#ifdef IMF_HAVE_X86_KERNEL
  if (use_avx2_kernel()) info = use_avx512_kernel() ? chol_avx512(A, d) : chol_avx2(A, d);
  else
#endif
    info = LAPACKE_dpotrf_work(LAPACK_COL_MAJOR, 'L', d, A, d);
  if (info > 0)
    IMF_FAIL(IMF_ERR_RUNTIME,
             "row solver: the system of row %lld is not positive definite (pivot %d); "
             "check the regularisation and the input factors for NaN/Inf",
             (long long)row, (int)info);
  if (info < 0) IMF_FAIL(IMF_ERR_RUNTIME, "row solver: dpotrf argument %d invalid", (int)-info);
  return IMF_OK;
}

static imf_status chol_solve(const double *L, int d, double *b, int64_t row) {
#ifdef IMF_HAVE_X86_KERNEL
  if (use_avx2_kernel()) {
    chol_solve_x86(L, d, b);
    return IMF_OK;
  }
#endif
  lapack_int info = LAPACKE_dpotrs_work(LAPACK_COL_MAJOR, 'L', d, 1, L, d, b, d);
  if (info != 0) IMF_FAIL(IMF_ERR_RUNTIME, "row solver: dpotrs failed for row %lld (%d)",
                          (long long)row, (int)info);
  return IMF_OK;
}

/* out = (YtY + lambda I + sum_i w_i y_i y_i^T) v, matrix-free over the n gathered rows. */
static void ials_apply(const imf_row_params *p, const imf_rowsolve_ws *ws, int64_t n,
                       const double *v, double *out) {
  const int k = p->k;
  for (int a = 0; a < k; a++) {
    const double *ya = p->YtY + (size_t)a * (size_t)k;
    double s = 0.0;
    for (int b = 0; b < k; b++) s += ya[b] * v[b];
    out[a] = s + p->lambda * v[a];
  }
  for (int64_t i = 0; i < n; i++) {
    const float *f = ws->F + (size_t)i * (size_t)ws->ld;
    double dot = 0.0;
    for (int c = 0; c < k; c++) dot += (double)f[c] * v[c];
    dot *= ws->w[i];
    for (int c = 0; c < k; c++) out[c] += dot * (double)f[c];
  }
}

static double dotd(const double *a, const double *b, int n) {
  double s = 0.0;
  for (int i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}

/* cg_steps conjugate-gradient iterations on the implicit-ALS system from x (as the `implicit`
 * library does); x in/out. */
static imf_status ials_cg(const imf_row_params *p, const int32_t *idx, const float *val,
                          const imf_other_side *o, int64_t n, int64_t row, double *x,
                          imf_rowsolve_ws *ws) {
  const int k = p->k;
  IMF_CHECK(ensure_rows(ws, n));
  memset(ws->rhs, 0, (size_t)k * sizeof(double));
  IMF_CHECK(gather(p, o, idx, val, n, 0, 0, -1, row, ws));
  double *r = ws->v2, *pp = ws->v3, *Ap = ws->v4;
  ials_apply(p, ws, n, x, Ap);
  for (int c = 0; c < k; c++) r[c] = ws->rhs[c] - Ap[c];
  memcpy(pp, r, (size_t)k * sizeof(double));
  double rsold = dotd(r, r, k);
  for (int it = 0; it < p->cg_steps; it++) {
    if (rsold < 1e-20) break; /* converged; also keeps 0/0 out of alpha */
    ials_apply(p, ws, n, pp, Ap);
    double pAp = dotd(pp, Ap, k);
    if (!(pAp > 0.0))
      IMF_FAIL(IMF_ERR_RUNTIME, "row solver: implicit-ALS system of row %lld is not positive "
               "definite (p'Ap = %g in CG step %d)", (long long)row, pAp, it + 1);
    double alpha = rsold / pAp;
    for (int c = 0; c < k; c++) {
      x[c] += alpha * pp[c];
      r[c] -= alpha * Ap[c];
    }
    double rsnew = dotd(r, r, k);
    double beta = rsnew / rsold;
    for (int c = 0; c < k; c++) pp[c] = r[c] + beta * pp[c];
    rsold = rsnew;
  }
  return IMF_OK;
}

static imf_status check_params(const imf_row_params *p, const imf_row_batch *rows,
                               const imf_other_side *o, const float *X, const float *bias_out,
                               const imf_rowsolve_ws *ws) {
  if (!p || !rows || !o || !ws) IMF_FAIL(IMF_ERR_USAGE, "row solver: NULL argument");
  if (p->kind != IMF_ROW_ALS && p->kind != IMF_ROW_IALS && p->kind != IMF_ROW_BPMF)
    IMF_FAIL(IMF_ERR_USAGE, "row solver: unknown kind %d", (int)p->kind);
  if (p->k < 1) IMF_FAIL(IMF_ERR_USAGE, "row solver: bad number of factors k=%d", p->k);
  if (rows->nrows < 0) IMF_FAIL(IMF_ERR_USAGE, "row solver: negative row count");
  if (rows->nrows > 0 && (!rows->ptr || !X))
    IMF_FAIL(IMF_ERR_USAGE, "row solver: missing row pointers or output factors");
  if (o->n > 0 && !o->Y) IMF_FAIL(IMF_ERR_USAGE, "row solver: missing other-side factors");
  if (p->kind == IMF_ROW_ALS && p->with_bias && !bias_out && rows->nrows > 0)
    IMF_FAIL(IMF_ERR_USAGE, "row solver: with_bias needs bias_out");
  if (p->kind == IMF_ROW_IALS && !p->YtY)
    IMF_FAIL(IMF_ERR_USAGE, "row solver: implicit ALS needs YtY");
  if (p->kind == IMF_ROW_IALS && p->use_cg && p->cg_steps < 1)
    IMF_FAIL(IMF_ERR_USAGE, "row solver: use_cg needs cg_steps >= 1 (got %d)", p->cg_steps);
  if (p->kind == IMF_ROW_BPMF && (!p->prior_mean || !p->prior_prec))
    IMF_FAIL(IMF_ERR_USAGE, "row solver: BPMF needs prior_mean and prior_prec");
  return IMF_OK;
}

/* Solve one row into x (k doubles) and *b; x holds the current factors on entry (CG start). */
static imf_status solve_row(const imf_row_params *p, const imf_row_batch *rows,
                            const imf_other_side *o, int64_t r, int64_t row, double *x,
                            double *b, imf_rowsolve_ws *ws) {
  const int k = p->k;
  const int64_t beg = rows->ptr[r], n = rows->ptr[r + 1] - beg;
  if (n < 0) IMF_FAIL(IMF_ERR_INPUT, "row solver: row %lld has a negative rating count",
                      (long long)row);
  const int32_t *idx = rows->idx + beg;
  const float *val = rows->val + beg;
  *b = 0.0;
  if (n == 0 && p->kind != IMF_ROW_BPMF) {
    memset(x, 0, (size_t)k * sizeof(double));
    return IMF_OK;
  }
  if (p->kind == IMF_ROW_IALS && p->use_cg) {
    return ials_cg(p, idx, val, o, n, row, x, ws); /* never forms the Gram */
  }
  const int d = (p->kind == IMF_ROW_ALS && p->with_bias) ? k + 1 : k;
  double t0 = now_s();
  IMF_CHECK(accumulate(p, o, idx, val, n, d, row, ws));
  ws->stats.gram_seconds += now_s() - t0;
  ws->stats.gram_flops += (double)n * d * (d + 1);
  double *A = ws->A, *rhs = ws->rhs;
  switch (p->kind) {
  case IMF_ROW_ALS: {
    double reg = p->lambda * (double)n;
    for (int a = 0; a < k; a++) A[(size_t)a * d + a] += reg;
    if (d > k) A[(size_t)k * d + k] += p->lambda_bias;
    break;
  }
  case IMF_ROW_IALS:
    for (int a = 0; a < k; a++) {
      const double *ya = p->YtY + (size_t)a * k;
      double *Aa = A + (size_t)a * k;
      for (int c = a; c < k; c++) Aa[c] += ya[c];
      Aa[a] += p->lambda;
    }
    break;
  default: /* BPMF: Lambda = prior_prec + beta * Gram, rhs = beta * sum r y + prec * mean */
    for (int a = 0; a < k; a++) {
      const double *pa = p->prior_prec + (size_t)a * k;
      double *Aa = A + (size_t)a * k;
      for (int c = a; c < k; c++) Aa[c] = p->beta * Aa[c] + pa[c];
      double s = 0.0;
      for (int c = 0; c < k; c++) s += pa[c] * p->prior_mean[c];
      rhs[a] = p->beta * rhs[a] + s;
    }
    break;
  }
  IMF_CHECK(cholesky(A, d, row));
  IMF_CHECK(chol_solve(A, d, rhs, row));
  memcpy(x, rhs, (size_t)k * sizeof(double));
  if (d > k) *b = rhs[k];
  if (p->kind == IMF_ROW_BPMF) {
    /* x = mean + L^-T z: covariance L^-T L^-1 = Lambda^-1. */
    imf_rng g;
    imf_rng_init(&g, p->seed, imf_rng_stream(1, p->sweep, p->side, (uint64_t)row));
    double *z = ws->v1;
    for (int c = 0; c < k; c++) z[c] = imf_rng_normal(&g);
    cblas_dtrsv(CblasColMajor, CblasLower, CblasTrans, CblasNonUnit, k, A, k, z, 1);
    for (int c = 0; c < k; c++) x[c] += z[c];
  }
  return IMF_OK;
}

void imf_rowsolve_gram(const float *Y, int64_t n, int k, double *G) {
  memset(G, 0, (size_t)k * (size_t)k * sizeof *G);
  for (int64_t r = 0; r < n; r++) {
    const float *y = Y + (size_t)r * (size_t)k;
    for (int a = 0; a < k; a++)
      for (int b = 0; b < k; b++) G[a * k + b] += (double)y[a] * (double)y[b];
  }
}

imf_status imf_rowsolve(const imf_row_params *p, const imf_row_batch *rows, const imf_other_side *other,
                        float *X, float *bias_out, imf_rowsolve_ws *ws) {
  /* nothing to undo before the loop: a failed setup returns at once */
  imf_status st = check_params(p, rows, other, X, bias_out, ws);
  if (st == IMF_OK && p->k != ws->k) {
    st = setup_k(ws, p->k);
    if (st == IMF_OK) st = ensure_rows(ws, IMF_ROW_CHUNK);
  }
  if (st != IMF_OK) return st;
  const int k = p->k;
  double t0 = now_s();
  double *x = ws->x;
  ws->idx_end = rows->nrows > 0 ? rows->idx + rows->ptr[rows->nrows] : NULL;
  ws->batch = rows;
  ws->pre_beg = -1;
  for (int64_t r = 0; r < rows->nrows; r++) {
    const int64_t row = rows->row_id ? rows->row_id[r] : r;
    float *xr = X + (size_t)r * (size_t)k;
    for (int c = 0; c < k; c++) x[c] = (double)xr[c];
    double b = 0.0;
    ws->cur_r = r;
    IMF_TRY(solve_row(p, rows, other, r, row, x, &b, ws), done);
    int finite = isfinite((float)b);
    for (int c = 0; c < k; c++) {
      xr[c] = (float)x[c];
      finite &= isfinite(xr[c]);
    }
    if (!finite) {
      st = IMF_RAISE(IMF_ERR_RUNTIME, "row solver: non-finite factors for row %lld (%lld ratings)",
                     (long long)row, (long long)(rows->ptr[r + 1] - rows->ptr[r]));
      goto done;
    }
    if (bias_out) bias_out[r] = (float)b;
    ws->stats.rows++;
    ws->stats.ratings += rows->ptr[r + 1] - rows->ptr[r];
  }
done:
  ws->batch = NULL;
  ws->pre_beg = -1;
  ws->stats.total_seconds += now_s() - t0;
  return st;
}
