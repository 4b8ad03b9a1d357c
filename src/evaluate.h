/* evaluate.h - how good a model is on held-out ratings. This first piece scores a given test
 * file (any input format) with the model's predictions; ranking metrics, split protocols and
 * cross-validation build on it. */
#ifndef IMF_EVALUATE_H
#define IMF_EVALUATE_H
#include "idmap.h"
#include "model.h"

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
#endif
