/* model.h - the trained model object that every stage after training works on: the training
 * engine (train.c) fills it, the checkpoint writer stores and reloads it, evaluation, recommend
 * and fold-in read it. Everything is replicated: each rank holds the whole model.
 *
 * Scoring is always  mu + bu[u] + bi[i] + P[u,:] . Q[i,:]  over kw floats, one dot product per
 * pair (one GEMM for a block of users), whatever the model type:
 *  - ALS-WR (explicit): kw = k, biases present (with_bias), mu = global mean of training ratings.
 *  - implicit ALS: kw = k, no biases, mu = 0; scores are preferences, not ratings.
 *  - BPMF: no biases, mu = global mean. After burn-in the model keeps S thinned posterior samples
 *    concatenated side by side, kw = k * S, each sample scaled by 1/sqrt(S), so that P[u].Q[i] is
 *    the average of the S samples' predictions. Before the first kept sample, kw = k and P, Q hold
 *    the current chain sample. The chain state (current sample and hyperparameters) is kept
 *    separately so that a run can resume where it stopped.
 *  - EASE (ease.h): a handle only — no biases, mu = 0, k = kw = 1, P and Q zero placeholders.
 *    The model is B (item-item weights, distributed over the ranks, never replicated) and the
 *    binarized user rows X (sparse, each rank its users), which the version stores next to it
 *    (ease.h, checkpoint.h); every score comes from them (imf_ease_topk and friends). Versions
 *    of the older replicated form (kw = nitems, P = X, Q = B^T) read as such, and become a
 *    handle (imf_ease_handle) once their B is read. Not folded in or updated by sweeps: update
 *    changes its Gram matrix and re-solves.
 *  - pop, bias (baseline.h): k = kw = 1, P = Q = 0, with_bias; pop: mu = 0, bu = 0, bi = the
 *    item's count of positive training ratings; bias: mu + bu + bi, regularised.
 *
 * Arrays are row-major, 64-byte aligned (imf_alloc) and owned by the model.
 */
#ifndef IMF_MODEL_H
#define IMF_MODEL_H
#include "incremf.h"
#include <stdint.h>

typedef enum {
  IMF_MODEL_ALS = 0,
  IMF_MODEL_IALS = 1,
  IMF_MODEL_BPMF = 2,
  IMF_MODEL_EASE = 3,
  IMF_MODEL_POP = 4, /* baselines (baseline.h): k = kw = 1, P = Q = 0, scored by their biases */
  IMF_MODEL_BIAS = 5
} imf_model_type;

/* "als", "ials", "bpmf", "ease", "pop", "bias" (the model.type config values). */
const char *imf_model_type_name(imf_model_type t);
/* The types held in factor form: als, ials, bpmf (the sweep trainer, train.c) and pop, bias
 * (baseline.c); IMF_ERR_USAGE for anything else (including "ease", which is solved in one step
 * by ease.c and scored from its distributed state). */
imf_status imf_model_type_parse(const char *name, imf_model_type *out);
/* 1 for the model types that learn from positives and whose scores are preferences, not ratings
 * (ials, ease, pop): judged, tuned and thresholded by ranking; 0 for the rating models (als,
 * bpmf, bias) and unknown names. The one place that decides it (judge, tune, positives). */
int imf_model_type_is_implicit(const char *name);

/* One row of the per-sweep history. NaN marks a metric that was not computed (no validation
 * set, or a loss that does not apply). */
typedef struct {
  int64_t iteration;   /* 1-based sweep number */
  double train_loss;   /* ALS: sum sq. error + regularisation; iALS: weighted loss; BPMF: train RMSE */
  double train_rmse;   /* RMSE on the training ratings (explicit models) */
  double val_rmse, val_mae;
  double seconds;      /* wall time of the sweep (rank 0) */
} imf_sweep_metrics;

/* BPMF chain state: what a resumed Gibbs sampler needs beyond P and Q. */
typedef struct {
  float *U, *V;           /* current sample: nusers x k and nitems x k */
  double *mu_u, *mu_v;    /* hyperparameter means, k */
  double *Lam_u, *Lam_v;  /* hyperparameter precisions, k x k row-major */
  int64_t sweeps;         /* Gibbs sweeps done (burn-in included) */
} imf_bpmf_chain;

typedef struct {
  imf_model_type type;
  int k;                 /* latent factors (per sample for BPMF) */
  int kw;                /* row stride of P and Q: k, or k * nsamples for BPMF */
  int with_bias;         /* bu, bi present (explicit ALS, pop, bias) */
  int64_t nusers, nitems;
  double mu;             /* global mean of the training ratings (0 for iALS) */

  float *P;              /* nusers x kw */
  float *Q;              /* nitems x kw */
  float *bu, *bi;        /* nusers, nitems; NULL when !with_bias */

  /* Hyperparameters the model was trained with (fold-in must use the same ones). */
  double lambda, lambda_bias, alpha;
  uint64_t seed;

  int64_t iteration;     /* sweeps completed */

  /* BPMF only (chain.U == NULL otherwise). */
  int nsamples;          /* samples averaged into P, Q (0 during burn-in) */
  int max_samples;       /* thinning target S */
  int64_t burn_in;       /* sweeps discarded */
  int64_t thin;          /* keep every thin-th sweep after burn-in */
  imf_bpmf_chain chain;

  /* Per-sweep history, in sweep order. */
  imf_sweep_metrics *history;
  int64_t nhistory, cap_history;

  /* Non-NULL: P, Q, the biases and the BPMF chain's U, V live in a segment shared by the ranks
   * of a node (checkpoint.h, imf_checkpoint_read_shared), not on the heap: destroy hands them
   * to shm_release(shm) (collective on the node); such a model cannot grow or change width, and
   * a copy of it is an ordinary model. */
  void *shm;
  void (*shm_release)(void *shm);

  /* A block model (dist.exchange = outblock, train.c): this rank holds only the rows
   * [ublock[0], ublock[1]) of P, bu and chain.U and [iblock[0], iblock[1]) of Q, bi and
   * chain.V, stored from row 0; nusers, nitems stay the global counts. The ranks' blocks are
   * contiguous and ascending in rank order and cover every row (the partition's blocks). Only
   * the checkpoint writer (which writes each rank's block and digests the blocks in order) and
   * imf_model_gather (modelblock.h) take one; scoring needs the whole model. */
  int blocked;
  int64_t ublock[2], iblock[2];
} imf_model;

/* A zeroed model of the given shape: P, Q (kw = k) allocated and zero, biases when with_bias,
 * chain arrays when type == BPMF. Local (no communication). */
imf_status imf_model_create(imf_model_type type, int k, int64_t nusers, int64_t nitems,
                            int with_bias, imf_model **out);
void imf_model_destroy(imf_model **m);
/* Deep copy (e.g. for a snapshot before an update). */
imf_status imf_model_copy(const imf_model *src, imf_model **out);
/* Grow to more users/items (fold-in of new ids): new rows are zero, existing rows keep their
 * values. Shrinking is an error. Local. */
imf_status imf_model_grow(imf_model *m, int64_t nusers, int64_t nitems);
/* Set the stride of P and Q to kw (BPMF sample concatenation); contents are not kept. */
imf_status imf_model_set_kw(imf_model *m, int kw);
/* Append one row of history. */
imf_status imf_model_push_history(imf_model *m, const imf_sweep_metrics *h);

/* Predicted value for (u, i). Cold-row rule: an unknown user (u < 0 or u >= nusers) or unknown
 * item scores mu plus the bias of the side that is known (bias 0 without biases): an unknown
 * user gets mu + bi[i], an unknown item mu + bu[u], both unknown mu. Local. */
double imf_model_predict(const imf_model *m, int64_t u, int64_t i);
/* P[u] . Q[i] accumulated in double in index order (the same sum as imf_model_predict uses). */
double imf_model_dot(const imf_model *m, int64_t u, int64_t i);

/* Rows of P (and bu, chain.U) and of Q (bi, chain.V) this rank holds: nusers and nitems, or
 * its blocks in a block model. */
int64_t imf_model_urows(const imf_model *m);
int64_t imf_model_irows(const imf_model *m);

/* Bytes held by the model's arrays (for the memory report). */
int64_t imf_model_bytes(const imf_model *m);
#endif
