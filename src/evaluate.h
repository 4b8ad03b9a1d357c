/* evaluate.h - how good a model is on held-out ratings: RMSE/MAE of a test file
 * (imf_eval_file, used by `train --test`), and the full `evaluate`: rating and ranking metrics
 * (metrics.h, definitions in docs/METRICS.md) of a model or of a configuration retrained on the
 * training part of a split protocol (split.h), single split or k-fold, distributed by user
 * ranges with the top-K kernel of topk.h. */
#ifndef IMF_EVALUATE_H
#define IMF_EVALUATE_H
#include "ease.h"
#include "idmap.h"
#include "metrics.h"
#include "model.h"
#include "ratings.h"
#include "split.h"

typedef struct {
  double rmse, mae;
  int64_t n;        /* test ratings scored */
  int64_t cold;     /* of which the user or the item was unseen in training */
  int64_t skipped;  /* header or unparseable lines */
} imf_eval_result;

/* Collective (rank 0 reads the file, the result is broadcast). Ids are mapped through the
 * training id maps; an unseen user or item is predicted by the model's cold-row rule (global
 * mean plus the known bias). Predictions are clipped to [clip_lo, clip_hi] (NaN: no bound).
 * The file is read with the [input] options of cfg (format detection as for prepare). */
imf_status imf_eval_file(MPI_Comm comm, const imf_config *cfg, const imf_model *m, const imf_idmap *users,
                         const imf_idmap *items, const char *path, double clip_lo, double clip_hi,
                         imf_eval_result *out);

/* ---- rating and ranking metrics of a model over distributed test ratings ---- */
typedef struct {
  int nk, ks[IMF_MAX_CUTOFFS]; /* cut-offs, ascending */
  double threshold;            /* relevant: value >= threshold; NaN: every held-out item */
  double clip_lo, clip_hi;     /* prediction clipping for RMSE/MAE (NaN: none) */
  int rating_metrics;          /* compute RMSE/MAE (0 for implicit models: NaN) */
  /* Optional per-user output (update's paired judgement, judge.h): NULL, or uhi-ulo entries set
   * to each ranked user's per_user_metric at the first cut-off ks[0] (NaN: user not ranked). */
  double *per_user;
  int per_user_metric;         /* IMF_PER_USER_NDCG, _RECALL or _AP */
  /* Ranking (topk.h's order): score ties go to the more popular item, popularity being each
   * item's count in the training rows tptr/tidx of every rank (itempop.h); pop_prior > 0 adds
   * the popularity prior of that beta to every score (model.pop_prior: ials and ease only). */
  double pop_prior;
} imf_eval_opts;
enum { IMF_PER_USER_NDCG = 0, IMF_PER_USER_RECALL = 1, IMF_PER_USER_AP = 2 };

typedef struct {
  double rmse, mae;
  int64_t n_ratings, n_cold;    /* test ratings scored; of which user or item unseen */
  int nk;
  imf_rank_means rank[IMF_MAX_CUTOFFS];
  int64_t users_ranked;         /* users with >= 1 relevant held-out item and training data */
  int64_t users_cold;           /* users with relevant items but no training (or fold-in) data */
  double seconds;               /* training + scoring wall time */
  double relevance_threshold;   /* the threshold used (eval.relevance_threshold resolved; NaN: every
                                   held-out item is relevant) */
} imf_metrics;

/* Collective. Each rank passes the users [ulo, uhi) (a contiguous range; ranges of all ranks
 * need not cover anything in particular): their factors X ((uhi-ulo) x m->kw) and biases xbias
 * (NULL: the model's own rows P[u], bu[u]; users >= m->nusers are then cold), the CSR of their
 * training items (tptr: uhi-ulo+1 offsets, tidx sorted per row; excluded from the ranking and
 * a user with an empty row is cold) and their test ratings (any order). */
imf_status imf_eval_block(MPI_Comm comm, const imf_model *m, int64_t ulo, int64_t uhi, const float *X,
                          const float *xbias, const int64_t *tptr, const int32_t *tidx,
                          const imf_ratings *test, const imf_eval_opts *o, imf_metrics *out);

/* Collective. The same for an EASE model m (a handle: users, items) scored from B on a 1 x P grid
 * (ease, imf_ease_topk): a user's row of X is xptr/xidx (uhi-ulo+1 offsets, items ascending,
 * below m->nitems; NULL: the training row tptr/tidx itself); users >= m->nusers are cold. */
imf_status imf_eval_block_ease(MPI_Comm comm, const imf_model *m, imf_ease *ease, int64_t ulo, int64_t uhi,
                               const int64_t *xptr, const int32_t *xidx, const int64_t *tptr, const int32_t *tidx,
                               const imf_ratings *test, const imf_eval_opts *o, imf_metrics *out);

/* Flat list of a result's metrics under their JSON names ("rmse", "mae", "precision@10", ...,
 * "coverage@10"); returns the count (at most IMF_EVAL_MAX_NAMES). */
#define IMF_EVAL_MAX_NAMES (2 + 7 * IMF_MAX_CUTOFFS)
int imf_metrics_list(const imf_metrics *r, char names[][32], double *values);

/* ---- the `evaluate` command ---- */
#define IMF_EVAL_MAX_FOLDS 32
typedef struct {
  const char *store;       /* --data STORE */
  const char *model;       /* --model DIR: its current version (protocols test and standing);
                              other protocols retrain with its configuration */
  const char *input;       /* --input FILE: a ratings file instead of a store */
  const char *test_path;   /* --test FILE: score this file */
  const char *fold_files;  /* --fold-files "BASE%d,TEST%d": official folds (e.g. u%d.base) */
  const char *protocol;    /* --protocol NAME or NULL (test with --test, folds with --folds,
                              otherwise random) */
  int folds;               /* --folds N (0: none); with heldout-users: N disjoint user folds */
  const char *cutoffs;     /* --k LIST or NULL (eval.k) */
  int64_t version;         /* --version N: this kept version of --model DIR (0: CURRENT) */
  int nbaselines;          /* --baseline pop|bias: rows fitted on each split's training part */
  imf_model_type baseline[2];
} imf_eval_spec;

/* One --baseline row of the report: per fold and summarised like the model's. */
typedef struct {
  imf_model_type type;
  imf_metrics fold[IMF_EVAL_MAX_FOLDS];
  double mean[IMF_EVAL_MAX_NAMES], sd[IMF_EVAL_MAX_NAMES];
} imf_eval_baseline;

typedef struct {
  char protocol[32];
  int nfolds;                           /* 1 for a single split */
  imf_metrics fold[IMF_EVAL_MAX_FOLDS];
  int nmetrics;
  char names[IMF_EVAL_MAX_NAMES][32];
  double mean[IMF_EVAL_MAX_NAMES], sd[IMF_EVAL_MAX_NAMES]; /* sd: sample (n-1), NaN for n = 1 */
  int ks[IMF_MAX_CUTOFFS], nk;
  double seconds;
  int64_t version;              /* the version of --model scored (0: no --model) */
  double train_overlap;         /* --test with --model: share of the file's (user, item) pairs in the
                                   store's training data (NaN: not computed) */
  int64_t overlap_pairs, test_pairs;
  int nbaselines;
  imf_eval_baseline base[2];
} imf_eval_report;

/* Collective. Runs the protocol of spec (cfg: eval.* keys, and the model.* keys used when
 * retraining without --model). */
imf_status imf_evaluate(MPI_Comm comm, const imf_config *cfg, const imf_eval_spec *spec, imf_eval_report *rep);

/* Collective. k-fold cross-validation of one configuration on an in-memory dataset (used by
 * tune: the split hashes depend on eval.seed only). */
/* Implicit evaluation (eval.binarize = T): keep ratings >= T as interactions of value 1. */
imf_status imf_eval_binarize(const imf_config *cfg, imf_dataset *d);
imf_status imf_eval_cv(MPI_Comm comm, const imf_config *cfg, const imf_dataset *d, int folds,
                       imf_eval_report *rep);
#endif
