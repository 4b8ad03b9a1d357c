/* baseline.h - the two reference models every other model has to beat, as ordinary model
 * types (model.type = pop | bias) held in the one imf_model form, so that the generic scoring
 * mu + bu[u] + bi[i] + P[u].Q[i] (evaluate, recommend, the holdout judge of update) scores them
 * without special cases: k = kw = 1 with P = Q = 0, with_bias = 1.
 *  - pop: mu = 0, bu = 0, bi[i] = the number of the item's positive training ratings (all of
 *    them, or those >= model.positive_threshold where that key exists). A ranking only: its
 *    scores are counts, not ratings.
 *  - bias: mu = the global mean of the training ratings, bu and bi by alternating regularised
 *    least squares (model.lambda_bias, model.iterations sweeps):
 *        bu[u] = sum_i (r_ui - mu - bi[i]) / (lambda_bias + n_u), then
 *        bi[i] = sum_u (r_ui - mu - bu[u]) / (lambda_bias + n_i).
 * Both are fitted on a partition (partition.h): each rank solves the users of its user block
 * and the items of its item block, every sum taken in the CSR's row order, and the results are
 * replicated with imf_allgather_rows, so a fit is bitwise the same on any number of ranks.
 * There is no fold-in: update retrains them (exact, and as cheap as one pass over the data). */
#ifndef IMF_BASELINE_H
#define IMF_BASELINE_H
#include "config.h"
#include "model.h"
#include "partition.h"
#include "ratings.h"

/* (local) pop or bias. */
int imf_baseline_type(imf_model_type t);

/* Collective. Fits model.type (pop|bias) of cfg on the training ratings of part (its holdout
 * is scored as the validation set of bias's per-sweep history). */
imf_status imf_baseline_fit(MPI_Comm comm, const imf_config *cfg, const imf_partition *part, imf_model **out);

/* (local) The user rows of the users in `r` (sorted by user, users in [ulo, ...)) against m's
 * fixed item biases: X rows stay 0, xb[u - ulo] = the user's regularised bias (bias) or 0
 * (pop). The held-out-users protocol's fold-in for a baseline. */
void imf_baseline_foldin(const imf_model *m, int64_t ulo, const imf_ratings *r, float *X, float *xb);

/* Collective. Recompute bi of the items flagged in `touched` (nitems of part) from part's
 * ratings against m's current bu (forget: the forgotten user's ratings are gone from part).
 * Items >= m->nitems are left out. pos_threshold: pop's positive threshold (NaN: all). */
imf_status imf_baseline_refresh_items(MPI_Comm comm, const imf_partition *part, imf_model *m,
                                      const unsigned char *touched, double pos_threshold);

/* (local) pop's positive threshold of a configuration: model.positive_threshold where the key
 * exists and is set, else NaN (every training rating counts). */
double imf_baseline_pos_threshold(const imf_config *cfg);
/* (local) The same from a version's stored configuration text (NULL or unreadable: NaN). */
double imf_baseline_pos_threshold_text(const char *config_text);
#endif
