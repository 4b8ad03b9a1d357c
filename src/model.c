/* model.c - the replicated model object (model.h): allocation, copy, growth for fold-in and the
 * one scoring rule (with the cold-row fallback) that evaluation, recommend and fold-in share. */
#include "model.h"
#include "error.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *imf_model_type_name(imf_model_type t) {
  switch (t) {
  case IMF_MODEL_ALS: return "als";
  case IMF_MODEL_IALS: return "ials";
  case IMF_MODEL_BPMF: return "bpmf";
  case IMF_MODEL_EASE: return "ease";
  case IMF_MODEL_POP: return "pop";
  case IMF_MODEL_BIAS: return "bias";
  }
  return "?";
}

imf_status imf_model_type_parse(const char *name, imf_model_type *out) {
  if (!strcmp(name, "als")) *out = IMF_MODEL_ALS;
  else if (!strcmp(name, "ials")) *out = IMF_MODEL_IALS;
  else if (!strcmp(name, "bpmf")) *out = IMF_MODEL_BPMF;
  else if (!strcmp(name, "pop")) *out = IMF_MODEL_POP;
  else if (!strcmp(name, "bias")) *out = IMF_MODEL_BIAS;
  else IMF_FAIL(IMF_ERR_USAGE, "model type '%s' is not a factor model (als|ials|bpmf|pop|bias)", name);
  return IMF_OK;
}

int imf_model_type_is_implicit(const char *name) {
  return !strcmp(name, "ials") || !strcmp(name, "ease") || !strcmp(name, "pop");
}

static void free_arrays(imf_model *m) {
  imf_free(&m->P);
  imf_free(&m->Q);
  imf_free(&m->bu);
  imf_free(&m->bi);
  imf_free(&m->chain.U);
  imf_free(&m->chain.V);
  imf_free(&m->chain.mu_u);
  imf_free(&m->chain.mu_v);
  imf_free(&m->chain.Lam_u);
  imf_free(&m->chain.Lam_v);
  imf_free(&m->history);
}

void imf_model_destroy(imf_model **pm) {
  if (!pm || !*pm) return;
  imf_model *m = *pm;
  if (m->shm) { /* the node's segment holds these: not ours to free */
    m->P = m->Q = m->bu = m->bi = m->chain.U = m->chain.V = NULL;
    if (m->shm_release) m->shm_release(m->shm);
    m->shm = NULL;
  }
  free_arrays(*pm);
  free(*pm);
  *pm = NULL;
}

/* Rows of at least one element so that a model with zero users still has valid pointers. */
static size_t rows(int64_t n) { return n > 0 ? (size_t)n : 1; }

imf_status imf_model_create(imf_model_type type, int k, int64_t nusers, int64_t nitems,
                            int with_bias, imf_model **out) {
  *out = NULL;
  imf_model *m = NULL;
  imf_status st = IMF_OK;
  if (k <= 0 || nusers < 0 || nitems < 0)
    IMF_TRY(IMF_RAISE(IMF_ERR_USAGE, "bad model shape k=%d users=%lld items=%lld", k, (long long)nusers,
                      (long long)nitems), fail);
  m = calloc(1, sizeof *m);
  if (!m) IMF_TRY(IMF_RAISE(IMF_ERR_NOMEM, "out of memory"), fail);
  size_t ku, ki;
  m->type = type;
  m->k = m->kw = k;
  m->with_bias = with_bias && (type == IMF_MODEL_ALS || type == IMF_MODEL_POP || type == IMF_MODEL_BIAS);
  m->nusers = nusers;
  m->nitems = nitems;
  m->lambda = m->lambda_bias = m->alpha = NAN;
  IMF_TRY(imf_mul_size(rows(nusers), (size_t)k, &ku), fail);
  IMF_TRY(imf_mul_size(rows(nitems), (size_t)k, &ki), fail);
  IMF_TRY(imf_alloc_hot(&m->P, ku, sizeof(float)), fail);
  IMF_TRY(imf_alloc_hot(&m->Q, ki, sizeof(float)), fail);
  if (m->with_bias) {
    IMF_TRY(imf_alloc(&m->bu, rows(nusers), sizeof(float)), fail);
    IMF_TRY(imf_alloc(&m->bi, rows(nitems), sizeof(float)), fail);
  }
  if (type == IMF_MODEL_BPMF) {
    IMF_TRY(imf_alloc(&m->chain.U, ku, sizeof(float)), fail);
    IMF_TRY(imf_alloc(&m->chain.V, ki, sizeof(float)), fail);
    IMF_TRY(imf_alloc(&m->chain.mu_u, (size_t)k, sizeof(double)), fail);
    IMF_TRY(imf_alloc(&m->chain.mu_v, (size_t)k, sizeof(double)), fail);
    IMF_TRY(imf_alloc(&m->chain.Lam_u, (size_t)k * k, sizeof(double)), fail);
    IMF_TRY(imf_alloc(&m->chain.Lam_v, (size_t)k * k, sizeof(double)), fail);
    for (int a = 0; a < k; a++) m->chain.Lam_u[a * k + a] = m->chain.Lam_v[a * k + a] = 1.0;
  }
  *out = m;
  return IMF_OK;
fail:
  imf_model_destroy(&m);
  return st;
}

static imf_status dup(void *dst, const void *src, size_t n, size_t size) {
  *(void **)dst = NULL;
  if (!src) return IMF_OK;
  IMF_CHECK(imf_alloc(dst, n, size));
  memcpy(*(void **)dst, src, n * size);
  return IMF_OK;
}

imf_status imf_model_copy(const imf_model *s, imf_model **out) {
  *out = NULL;
  imf_status st = IMF_OK;
  imf_model *m = calloc(1, sizeof *m);
  if (!m) IMF_TRY(IMF_RAISE(IMF_ERR_NOMEM, "out of memory"), fail);
  *m = *s;
  m->shm = NULL; /* a copy is the caller's, on the heap */
  m->shm_release = NULL;
  memset(&m->chain, 0, sizeof m->chain);
  m->P = m->Q = m->bu = m->bi = NULL;
  m->history = NULL;
  m->chain.sweeps = s->chain.sweeps;
  size_t k = (size_t)s->k, kw = (size_t)s->kw, nu = rows(imf_model_urows(s)), ni = rows(imf_model_irows(s));
  IMF_TRY(dup(&m->P, s->P, nu * kw, sizeof(float)), fail);
  IMF_TRY(dup(&m->Q, s->Q, ni * kw, sizeof(float)), fail);
  IMF_TRY(dup(&m->bu, s->bu, nu, sizeof(float)), fail);
  IMF_TRY(dup(&m->bi, s->bi, ni, sizeof(float)), fail);
  IMF_TRY(dup(&m->chain.U, s->chain.U, nu * k, sizeof(float)), fail);
  IMF_TRY(dup(&m->chain.V, s->chain.V, ni * k, sizeof(float)), fail);
  IMF_TRY(dup(&m->chain.mu_u, s->chain.mu_u, k, sizeof(double)), fail);
  IMF_TRY(dup(&m->chain.mu_v, s->chain.mu_v, k, sizeof(double)), fail);
  IMF_TRY(dup(&m->chain.Lam_u, s->chain.Lam_u, k * k, sizeof(double)), fail);
  IMF_TRY(dup(&m->chain.Lam_v, s->chain.Lam_v, k * k, sizeof(double)), fail);
  m->cap_history = s->nhistory;
  if (s->nhistory)
    IMF_TRY(dup(&m->history, s->history, (size_t)s->nhistory, sizeof *s->history), fail);
  *out = m;
  return IMF_OK;
fail:
  imf_model_destroy(&m);
  return st;
}

/* Grow one row-major array from n0 to n1 rows of width w (zero fill). */
static imf_status grow_rows(void *pp, int64_t n0, int64_t n1, size_t w, size_t size) {
  void **p = (void **)pp;
  if (!*p) return IMF_OK;
  void *q;
  size_t cells;
  IMF_CHECK(imf_mul_size(rows(n1), w, &cells));
  IMF_CHECK(imf_alloc(&q, cells, size));
  if (n0 > 0) memcpy(q, *p, (size_t)n0 * w * size);
  free(*p);
  *p = q;
  return IMF_OK;
}

imf_status imf_model_grow(imf_model *m, int64_t nusers, int64_t nitems) {
  if (m->shm && (nusers != m->nusers || nitems != m->nitems))
    IMF_FAIL(IMF_ERR_USAGE, "a node-shared model cannot grow (copy it first)");
  if (m->blocked && (nusers != m->nusers || nitems != m->nitems))
    IMF_FAIL(IMF_ERR_USAGE, "a block model cannot grow (gather it first: imf_model_gather)");
  if (nusers < m->nusers || nitems < m->nitems)
    IMF_FAIL(IMF_ERR_USAGE, "a model cannot shrink (%lld users, %lld items -> %lld, %lld)",
             (long long)m->nusers, (long long)m->nitems, (long long)nusers, (long long)nitems);
  IMF_CHECK(grow_rows(&m->P, m->nusers, nusers, (size_t)m->kw, sizeof(float)));
  IMF_CHECK(grow_rows(&m->bu, m->nusers, nusers, 1, sizeof(float)));
  IMF_CHECK(grow_rows(&m->chain.U, m->nusers, nusers, (size_t)m->k, sizeof(float)));
  m->nusers = nusers;
  IMF_CHECK(grow_rows(&m->Q, m->nitems, nitems, (size_t)m->kw, sizeof(float)));
  IMF_CHECK(grow_rows(&m->bi, m->nitems, nitems, 1, sizeof(float)));
  IMF_CHECK(grow_rows(&m->chain.V, m->nitems, nitems, (size_t)m->k, sizeof(float)));
  m->nitems = nitems;
  return IMF_OK;
}

imf_status imf_model_set_kw(imf_model *m, int kw) {
  if (kw <= 0) IMF_FAIL(IMF_ERR_USAGE, "bad factor width %d", kw);
  if (kw == m->kw) return IMF_OK;
  if (m->shm) IMF_FAIL(IMF_ERR_USAGE, "a node-shared model cannot change its width (copy it first)");
  float *P = NULL, *Q = NULL;
  size_t nu, ni;
  IMF_CHECK(imf_mul_size(rows(imf_model_urows(m)), (size_t)kw, &nu));
  IMF_CHECK(imf_mul_size(rows(imf_model_irows(m)), (size_t)kw, &ni));
  IMF_CHECK(imf_alloc(&P, nu, sizeof(float)));
  imf_status st = imf_alloc(&Q, ni, sizeof(float));
  if (st != IMF_OK) {
    imf_free(&P);
    return st;
  }
  imf_free(&m->P);
  imf_free(&m->Q);
  m->P = P;
  m->Q = Q;
  m->kw = kw;
  return IMF_OK;
}

imf_status imf_model_push_history(imf_model *m, const imf_sweep_metrics *h) {
  if (m->nhistory == m->cap_history) {
    int64_t cap = m->cap_history ? 2 * m->cap_history : 16;
    IMF_CHECK(imf_realloc(&m->history, (size_t)cap, sizeof *m->history));
    m->cap_history = cap;
  }
  m->history[m->nhistory++] = *h;
  return IMF_OK;
}

/* In double, in 8 lanes (lane = index mod 8) summed as ((l0+l4)+(l2+l6))+((l1+l5)+(l3+l7)): a
 * fixed order, so the compiler may vectorise it (each lane's chain stays in order) without the
 * result depending on whether it did; one long chain of adds made the training metrics (every
 * rating predicted each sweep) 10% of a sweep at k = 64. */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
/* the same lanes and sums with 256-bit vectors (separate multiply and add, as in C) */
__attribute__((target("avx2"))) static double dot_avx2(const float *p, const float *q, int kw) {
  __m256d lo = _mm256_setzero_pd(), hi = lo;
  int a = 0;
  for (; a + 8 <= kw; a += 8) {
    lo = _mm256_add_pd(lo, _mm256_mul_pd(_mm256_cvtps_pd(_mm_loadu_ps(p + a)), _mm256_cvtps_pd(_mm_loadu_ps(q + a))));
    hi = _mm256_add_pd(hi, _mm256_mul_pd(_mm256_cvtps_pd(_mm_loadu_ps(p + a + 4)),
                                         _mm256_cvtps_pd(_mm_loadu_ps(q + a + 4))));
  }
  double l[8];
  _mm256_storeu_pd(l, lo);
  _mm256_storeu_pd(l + 4, hi);
  for (int c = 0; a + c < kw; c++) l[c] += (double)p[a + c] * (double)q[a + c];
  return ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
}

static int have_avx2(void) {
  static int have = -1; /* a benign race: every thread computes the same value */
  if (have < 0) {
    __builtin_cpu_init();
    have = __builtin_cpu_supports("avx2");
  }
  return have;
}
#endif

double imf_model_dot(const imf_model *m, int64_t u, int64_t i) {
  const float *p = m->P + (size_t)u * (size_t)m->kw, *q = m->Q + (size_t)i * (size_t)m->kw;
#if defined(__x86_64__) && defined(__GNUC__)
  if (have_avx2()) return dot_avx2(p, q, m->kw);
#endif
  double l[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int a = 0;
  for (; a + 8 <= m->kw; a += 8)
    for (int c = 0; c < 8; c++) l[c] += (double)p[a + c] * (double)q[a + c];
  for (int c = 0; a + c < m->kw; c++) l[c] += (double)p[a + c] * (double)q[a + c];
  return ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
}

double imf_model_predict(const imf_model *m, int64_t u, int64_t i) {
  int ku = u >= 0 && u < m->nusers, ki = i >= 0 && i < m->nitems;
  double r = m->mu;
  if (m->with_bias) {
    if (ku) r += m->bu[u];
    if (ki) r += m->bi[i];
  }
  if (ku && ki) r += imf_model_dot(m, u, i);
  return r;
}

int64_t imf_model_urows(const imf_model *m) { return m->blocked ? m->ublock[1] - m->ublock[0] : m->nusers; }
int64_t imf_model_irows(const imf_model *m) { return m->blocked ? m->iblock[1] - m->iblock[0] : m->nitems; }

int64_t imf_model_bytes(const imf_model *m) {
  const int64_t n = imf_model_urows(m) + imf_model_irows(m);
  int64_t b = n * (int64_t)m->kw * 4;
  if (m->with_bias) b += n * 4;
  if (m->chain.U) b += n * (int64_t)m->k * 4 + 2 * (int64_t)m->k * (m->k + 1) * 8;
  return b;
}
