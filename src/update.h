/* update.h - incremental updates of a model version (`incremf update`, imf_update in
 * incremf.h): the fold-in kernel (touched rows re-solved against the fixed other side with the
 * row solver of rowsolve.h), the warm and retrain strategies on the trainer of train.h, the
 * champion/challenger judgement on the store's standing holdout, and drift. `forget` reuses the
 * fold-in kernel to refresh the items a forgotten user had rated. */
#ifndef IMF_UPDATE_H
#define IMF_UPDATE_H
#include "foldin.h"
#include "model.h"
#include "partition.h"

/* imf_foldin_side (the fold-in kernel, used by `forget` too): foldin.h */

/* Collective. RMSE of models a and b (b may be NULL) on the partition's holdout ratings, bitwise
 * independent of the rank count; NaN when there are none. */
imf_status imf_holdout_rmse(MPI_Comm comm, const imf_partition *p, const imf_model *a, const imf_model *b,
                            double *rmse_a, double *rmse_b, int64_t *n);
/* Collective. The same as sums of squared errors (sse[1] NaN when b is NULL): what a version
 * records in the registry (holdout_sse) so that a later fold-in can judge from the touched rows
 * alone. */
imf_status imf_holdout_sse(MPI_Comm comm, const imf_partition *p, const imf_model *a, const imf_model *b,
                           double sse[2], int64_t *n);
#endif
