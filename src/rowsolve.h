/* rowsolve.h - "solve these rows against the fixed other side": the one numerical kernel that
 * training (ALS-WR, implicit ALS, BPMF), fold-in updates and the held-out-users evaluation all
 * use. For each row it gathers the other side's factor rows it rated, accumulates the Gram
 * matrix (ssyrk on the gathered rows, or an equivalent AVX2 kernel; see rowsolve.c), and
 * either solves the regularised normal equations (Cholesky, or a few warm-started CG steps
 * for implicit ALS) or, for BPMF, draws from the Gaussian conditional. Per-row work is
 * independent of the rank count and of which other rows are solved in the same call, so
 * results are bitwise reproducible. */
#ifndef IMF_ROWSOLVE_H
#define IMF_ROWSOLVE_H
#include "incremf.h"
#include <stdint.h>

typedef enum { IMF_ROW_ALS = 0, IMF_ROW_IALS, IMF_ROW_BPMF } imf_row_kind;

typedef struct {
  imf_row_kind kind;
  int k;                 /* latent factors */
  /* ALS-WR (explicit): model r = mu + b_row + b_other + x.y; solve [x; b_row] jointly with
   * regulariser diag(lambda * n_row, ..., lambda * n_row, lambda_bias). with_bias = 0 drops
   * both biases (plain r - mu = x.y). */
  int with_bias;
  double mu;             /* global mean subtracted from every rating */
  double lambda, lambda_bias;
  /* implicit ALS (Hu, Koren, Volinsky): c = 1 + alpha * r, preference 1; needs YtY below.
   * Regulariser lambda * I (not weighted). use_cg: cg_steps CG iterations from the current x. */
  double alpha;
  int use_cg, cg_steps;
  const double *YtY;     /* k x k, row-major: Gram of ALL other-side factor rows (iALS) */
  /* BPMF: x ~ N(mean, Lambda_row^-1), Lambda_row = prior_prec + beta * sum y y^T,
   * mean = Lambda_row^-1 (beta * sum r y + prior_prec * prior_mean); r is rating - mu. */
  const double *prior_mean;  /* k */
  const double *prior_prec;  /* k x k */
  double beta;               /* observation noise precision */
  uint64_t seed;             /* random stream key for BPMF draws */
  uint32_t sweep, side;      /* stream = imf_rng_stream(1, sweep, side, row_id) */
} imf_row_params;

/* The rows to solve, in CSR form: row r rated other-side rows idx[ptr[r] .. ptr[r+1]) with
 * values val[...]. row_id[r] is the row's global index (for the random stream). */
typedef struct {
  int64_t nrows;
  const int64_t *row_id;
  const int64_t *ptr;
  const int32_t *idx;
  const float *val;
} imf_row_batch;

/* The fixed other side: factors Y (n x k, row-major, stride k) and biases (NULL when absent). */
typedef struct {
  int64_t n;
  const float *Y;
  const float *bias;
} imf_other_side;

/* (local) G = Y^T Y (k x k, row-major, accumulated in double in row order) over the n rows of Y
 * (stride k): implicit ALS's Gram of all other-side rows (YtY above). */
void imf_rowsolve_gram(const float *Y, int64_t n, int k, double *G);

typedef struct imf_rowsolve_ws imf_rowsolve_ws; /* scratch reused across calls */
imf_status imf_rowsolve_ws_create(int k, imf_rowsolve_ws **ws);
void imf_rowsolve_ws_destroy(imf_rowsolve_ws **ws);

/* Solve all rows of the batch. X (nrows x k, stride k) holds the current factors on entry
 * (used as the CG starting point; ignored otherwise) and the result on exit; bias_out
 * (nrows, may be NULL when !with_bias) receives the row biases. A row with no ratings gets
 * x = 0 and bias 0 (ALS), or a draw from the prior (BPMF). Non-finite results are an error. */
imf_status imf_rowsolve(const imf_row_params *p, const imf_row_batch *rows, const imf_other_side *other,
                        float *X, float *bias_out, imf_rowsolve_ws *ws);

/* Cumulative counters of a workspace (for logs and the benchmark). gram_flops counts
 * n * d * (d + 1) per row of n ratings, d = k (+1 with biases), as BLAS counts ssyrk;
 * gram_seconds is the time spent gathering factor rows and accumulating Gram matrices. */
typedef struct {
  int64_t rows, ratings;
  double gram_flops, gram_seconds, total_seconds;
} imf_rowsolve_stats;
void imf_rowsolve_ws_stats(const imf_rowsolve_ws *ws, imf_rowsolve_stats *out);
void imf_rowsolve_ws_reset_stats(imf_rowsolve_ws *ws);
#endif
