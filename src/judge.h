/* judge.h - how `update` judges a challenger against the champion (update.c calls these): each
 * model by its own kind of metric (update.metric: RMSE for rating predictors, a ranking metric
 * for preference models), both scored on the SAME standing-holdout ratings, compared user by
 * user: d_u = score_challenger(u) - score_champion(u) oriented so that a positive d_u means the
 * challenger is better for user u, with the mean of d_u, a 95% paired-bootstrap percentile
 * interval (fixed seed, deterministic on any rank count) and the number of users. Definitions:
 * docs/METRICS.md, "Judging an update". */
#ifndef IMF_JUDGE_H
#define IMF_JUDGE_H
#include "config.h"
#include "ease.h"
#include "model.h"
#include "partition.h"
#include "ratings.h"
#include "registry.h"
#include "store.h"

typedef enum {
  IMF_JUDGE_AUTO = -1,
  IMF_JUDGE_RMSE = 0,
  IMF_JUDGE_NDCG,
  IMF_JUDGE_RECALL,
  IMF_JUDGE_MAP
} imf_judge_kind;

typedef struct {
  imf_judge_kind kind;
  int k;            /* ranking cut-off (0 for RMSE) */
  char name[16];    /* "rmse", "ndcg@10", "recall@20", "map@10" */
  double threshold; /* relevant held-out rating: value >= threshold (NaN: every held-out item) */
  double pop_prior; /* model.pop_prior of the rankings (ials, ease; 0 otherwise), as recommend and
                       evaluate apply it; score ties go by popularity in any case (evaluate.h) */
} imf_judge_metric;

/* The paired comparison. Headline scores: RMSE over all held-out ratings (kind rmse) or the
 * metric's mean over the paired users; NaN when there is nothing to score. */
typedef struct {
  double champion, challenger;
  double diff_mean, diff_lo, diff_hi; /* NaN when users == 0 */
  int64_t users;
} imf_judgement;

#define IMF_JUDGE_RESAMPLES 2000
#define IMF_JUDGE_SEED 20261207u
/* above this many paired users the interval is the normal one (judge.c, docs/METRICS.md) */
#define IMF_JUDGE_BOOT_MAX 50000

/* (local) Parse an update.metric value: 1 when valid (kind/k may be NULL). "auto" gives
 * IMF_JUDGE_AUTO. */
int imf_judge_metric_parse(const char *text, imf_judge_kind *kind, int *k);

/* (local) The relevance threshold of the ranking judgement and of ranking drift. The one place
 * it is decided: eval.relevance_threshold resolved against the store's recorded scale (auto: 4
 * on 1-5, 8 on 0-10; none: every held-out item; scale.h), except for implicit models (ials,
 * ease, pop), whose held-out ratings are their positives alone (model.positive_threshold was
 * applied when the store was read), every one relevant. */
imf_status imf_judge_relevance_threshold(const imf_config *cfg, const imf_model *m, const imf_store *s, double *thr);

/* (local) The metric m is judged by under cfg (update.metric, update.k). auto: rmse for the
 * model types "als", "bpmf" and "bias" (by imf_model_type_name), ndcg@update.k otherwise.
 * Usage error: rmse for an EASE model (its scores are not ratings). */
imf_status imf_judge_metric_for(const imf_config *cfg, const imf_model *m, imf_judge_metric *out);

/* Collective. The per-user scores of one model on test ratings of this rank's partition block
 * (test == NULL: the partition's standing holdout), items at or beyond item_limit left out
 * (pass the champion's item count, so that both models are judged on the same ratings) and the
 * user's training items (p->by_user) never ranked. EASE: m is the handle, ease its B on a 1 x P
 * grid, x its X rows of this block. out: by_user.hi - by_user.lo entries, NaN for a user not
 * ranked (no relevant held-out item, or cold for m). */
imf_status imf_judge_user_scores(MPI_Comm comm, const imf_judge_metric *jm, const imf_partition *p,
                                 const imf_model *m, imf_ease *ease, const imf_ease_rows *x,
                                 const imf_ratings *test, int64_t item_limit, double *out);

/* Collective. The ranking judgement from both models' per-user scores (as above): the users
 * both models rank are paired. */
imf_status imf_judge_pair_scores(MPI_Comm comm, const imf_partition *p, const double *champ, const double *chall,
                                 imf_judgement *j);

/* Collective. The mean of the finite per-user scores (users in order, any rank count); *users
 * their count. */
imf_status imf_judge_mean(MPI_Comm comm, const imf_partition *p, const double *v, double *mean, int64_t *users);

/* Collective. The RMSE judgement on the partition's standing holdout: headline RMSEs as
 * imf_holdout_rmse, d_u = the user's summed squared error of the champion minus that of the
 * challenger. sse, *n: the SSEs and the count of held-out ratings; *users: users with held-out
 * ratings (both may be NULL). */
imf_status imf_judge_rmse(MPI_Comm comm, const imf_partition *p, const imf_model *champ, const imf_model *chall,
                          imf_judgement *j, double sse[2], int64_t *n, int64_t *users);

/* Collective. The interval from per-user differences held anywhere (each rank nloc of them),
 * plus `zeros` users whose difference is exactly 0 (counted once, not per rank: pass it on every
 * rank). Fills diff_mean, diff_lo, diff_hi, users of *j. */
imf_status imf_judge_differences(MPI_Comm comm, const double *d, int64_t nloc, int64_t zeros, imf_judgement *j);

/* Collective. Users with >= 1 rating in the partition's standing holdout (the registry's
 * holdout_users: a later touched-read fold-in counts its users whose difference is 0 from it). */
imf_status imf_judge_holdout_users(MPI_Comm comm, const imf_partition *p, int64_t *users);

/* Collective. Drift of a ranking judgement: m's metric (mean over users) on the new batches'
 * held-out ratings `fresh` (each rank any share of them), relevant at jm's threshold, the
 * users' training items never ranked (EASE: ease and x as for imf_judge_user_scores). NaN for
 * RMSE or when no user can be ranked. */
imf_status imf_judge_drift_score(MPI_Comm comm, const imf_judge_metric *jm, const imf_partition *p, const imf_model *m,
                                 imf_ease *ease, const imf_ease_rows *x, const imf_ratings *fresh, double *score);

/* Collective. The RMSE judgement's differences of a fold-in that read only the touched rows
 * (update.c, foldin_touched): quad holds, per held-out pair whose prediction may have changed,
 * (user, item, imf_judge_sq_gain of it, 1 if the pair was held out when the champion was
 * recorded else 0); tu flags the touched users (replicated); c_users the champion's recorded
 * holdout_users. Every other held-out user's difference is exactly 0: they are counted from
 * c_users and the touched users' holdout membership before and after (*users_now). */
imf_status imf_judge_touched(MPI_Comm comm, const double *quad, int64_t nloc, const unsigned char *tu, int64_t c_users,
                             imf_judgement *j, int64_t *users_now);

/* (local) A held-out rating's contribution to d_u of an RMSE judgement: the champion's squared
 * error minus the challenger's (one expression, so both reading paths sum the same bits). */
static inline double imf_judge_sq_gain(double e_champion, double e_challenger) {
  return e_champion * e_champion - e_challenger * e_challenger;
}

/* (local) The verdict (docs/METRICS.md, "Judging an update"): 1 = promote. why: a reason the
 * challenger may never be promoted (non-finite factors or weights, a diverging loss), or NULL.
 * *worse: kept out as worse than the champion beyond the tolerance tol. */
int imf_judge_verdict(const imf_judge_metric *jm, const imf_judgement *j, double tol, const char *why, int *worse);
/* (local) The judgement into the update's report (metric, scores, diff_*; the RMSE fields for
 * an RMSE judgement) and its log line; strat: the strategy that built the challenger. */
void imf_judge_report(const char *strat, const imf_judge_metric *jm, const imf_judgement *j, int promote,
                      const char *why, imf_update_report *rep);
/* (local) Drift (see the definition): from rep's newest_rmse or newest_score against the
 * registry's earlier updates; sets rep->drift_baseline and rep->drift, warns on drift. */
void imf_judge_drift(const imf_registry_record *hist, int64_t nhist, const imf_judge_metric *jm, int64_t window,
                     double thr, imf_update_report *rep);
/* (local) Test hook IMF_TEST_CHALLENGER=worse|same|nan (docs/METRICS.md): perturbs the challenger
 * (a factor model chall, or an EASE challenger's solved state); nothing when unset. */
imf_status imf_judge_test_hook(const imf_model *champ, imf_model *chall, imf_ease *state);

/* (local) The paired bootstrap of n differences, sorted ascending in place first. */
void imf_judge_bootstrap(double *d, int64_t n, double *mean, double *lo, double *hi);
#endif
