/* split.h - the data `evaluate` and `tune` work on, and the split protocols that cut it into
 * training and test ratings. A dataset is distributed by contiguous user ranges (rank r holds
 * every rating of users [ulo, uhi), sorted by (user, item)), so every per-user protocol is
 * rank-local. Every random choice is a hash of (eval.seed, user, item), never a generator
 * state, so a split is the same on any number of ranks.
 *
 * Protocols (definitions in docs/METRICS.md, "Split protocols"):
 *   random      each rating is test with probability eval.test_fraction
 *   leave-k-out each user with more than eval.leave_k ratings leaves eval.leave_k out
 *   temporal    the newest eval.test_fraction of all ratings (one global timestamp cut)
 *   standing    the training validation carve-out: imf_is_holdout(model.seed,
 *               model.validation_fraction, u, i) of the model's own configuration
 *   fold f/F    the ratings whose hash falls in the f-th of F equal slices (k-fold CV)
 *   heldout     users held out of training; each is folded in on eval.foldin_fraction of their
 *               items and tested on the rest
 */
#ifndef IMF_SPLIT_H
#define IMF_SPLIT_H
#include "idmap.h"
#include "ratings.h"
#include "scale.h"
#include <mpi.h>

typedef struct {
  int64_t nusers, nitems;   /* global */
  int64_t ulo, uhi;         /* this rank's users */
  imf_ratings r;            /* their ratings, sorted by (user, item) */
  imf_idmap *users, *items; /* raw ids (replicated) */
  double scale_min, scale_max; /* rating scale (store's, or clean.scale_*; NaN: none) */
  imf_scale values;            /* observed scale: the store's recorded one (n = 0: unknown), or
                                  measured on a file's ratings */
} imf_dataset;
void imf_dataset_free(imf_dataset *d);

/* The users [n*rank/size, n*(rank+1)/size) of n users: the layout of every dataset. */
void imf_user_range(MPI_Comm comm, int64_t n, int64_t *lo, int64_t *hi);

/* Collective. Every rating of a store. */
imf_status imf_dataset_from_store(MPI_Comm comm, const char *store_dir, imf_dataset *d);
/* Collective. Every rating of an input file (read as `prepare` would, with cfg's [input] and
 * [clean] keys). With users/items non-NULL the file's ids are numbered after those maps (a
 * test file against its training file: ids absent from them get new indices); the maps are
 * then extended in place and d->users/items stay NULL. nusers/nitems are the final sizes. */
imf_status imf_dataset_from_file(MPI_Comm comm, const imf_config *cfg, const char *path,
                                 imf_idmap *users, imf_idmap *items, imf_dataset *d);
/* Collective. Re-lay a dataset over n users (n >= d->nusers): ranges change with n. */
imf_status imf_dataset_relayout(MPI_Comm comm, imf_dataset *d, int64_t nusers, int64_t nitems);

/* Collective. Move ratings to the rank owning their user in the ranges of `nusers` users and
 * sort them by (user, item). */
imf_status imf_ratings_to_owners(MPI_Comm comm, imf_ratings *r, int64_t nusers);

typedef enum {
  IMF_SPLIT_RANDOM = 0,
  IMF_SPLIT_LEAVE_K,
  IMF_SPLIT_TEMPORAL,
  IMF_SPLIT_STANDING,
  IMF_SPLIT_FOLD,
  IMF_SPLIT_HELDOUT_USERS
} imf_split_kind;

typedef struct {
  imf_split_kind kind;
  uint64_t seed;
  double fraction;     /* random, temporal, standing: test share; heldout: share of users */
  int64_t leave_k;     /* leave-k-out */
  int fold, nfolds;    /* fold; heldout with nfolds > 1: the users of user fold `fold` (fraction unused) */
  double foldin_fraction; /* heldout: share of a held-out user's items used to fold them in */
  int64_t min_user_ratings; /* heldout: users with fewer ratings are never held out */
} imf_split_spec;

/* Collective (temporal needs the global cut; the rest is local). Cuts d's local ratings into
 * train and test (both sorted by (user, item), same user range). For heldout, train holds the
 * non-held-out users' ratings, foldin the held-out users' fold-in ratings, test their test
 * ratings; for the other protocols foldin stays empty (may be NULL). */
imf_status imf_split(MPI_Comm comm, const imf_dataset *d, const imf_split_spec *s, imf_ratings *train,
                     imf_ratings *foldin, imf_ratings *test);

/* The hash of (seed, a, b) as a uniform number in [0, 1). */
double imf_split_u01(uint64_t seed, int64_t a, int64_t b);
#endif
