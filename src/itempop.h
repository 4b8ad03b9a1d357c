/* itempop.h - item popularity for the rankers (topk.h's imf_item_pop): each item's count of
 * positive training ratings — the pop model's score — which breaks score ties in every ranked
 * list (recommend, evaluate, the update judge), and the optional popularity prior
 * model.pop_prior = beta added to an implicit model's ranking scores:
 *     prior(i) = beta * log(1 + count(i)) / log(1 + max_j count(j))
 * (0 for an item without positives, beta for the most popular one: normalised so that one beta
 * means the same against scores of about unit size, iALS preferences and EASE's, whatever the
 * size of the data; README "Ties and the popularity prior"). Counts are integer sums reduced
 * over the ranks: the same on any rank count. */
#ifndef IMF_ITEMPOP_H
#define IMF_ITEMPOP_H
#include "config.h"
#include "ratings.h"
#include "topk.h"
#include <mpi.h>

/* Collective. From the rows of a local CSR (nrows rows of item indices: this rank's users'
 * training items; every rank its own users) over nitems items; items >= nitems are left out.
 * beta > 0 also fills the prior. */
imf_status imf_item_pop_csr(MPI_Comm comm, int64_t nitems, int64_t nrows, const int64_t *ptr, const int32_t *idx,
                            double beta, imf_item_pop *out);
/* Collective. From this rank's ratings r (every rank its own): a rating counts when its value is
 * >= thr (NaN: every rating) and it is not in the standing holdout hfrac/hseed (hfrac <= 0:
 * none) — the training positives of a model trained on the store. */
imf_status imf_item_pop_ratings(MPI_Comm comm, int64_t nitems, const imf_ratings *r, double thr, double hfrac,
                                uint64_t hseed, double beta, imf_item_pop *out);
/* (local) model.pop_prior of a configuration (a configuration without the key: 0). */
double imf_item_pop_beta(const imf_config *cfg);
void imf_item_pop_free(imf_item_pop *p);
#endif
