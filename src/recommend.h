/* recommend.h - `incremf recommend`: a loaded model (current version of a model directory, its
 * raw id maps) plus the training items of the store it was trained on (so that what a user
 * already rated is never recommended), and the queries: one user's top N, top N for every user
 * written in parallel (CSV or HDF5, each rank writing its own users), scores of given items,
 * and the nearest items of an item (cosine in factor space). Scoring uses topk.h; an EASE
 * version is scored from B on a 1 x P grid (each rank whole columns, no rank all of B) and its
 * sparse X (each rank its users' rows): imf_ease_topk, imf_ease_score_items, imf_ease_similar. */
#ifndef IMF_RECOMMEND_H
#define IMF_RECOMMEND_H
#include "checkpoint.h"
#include "idmap.h"
#include "itempop.h"
#include "model.h"

typedef struct {
  MPI_Comm comm;
  imf_model *m;
  imf_ckpt_meta meta;
  imf_idmap *users, *items; /* the model's raw ids */
  char store[4096];         /* "" when none: nothing is excluded */
  imf_ease *ease;           /* EASE version with a stored B: B on a 1 x P grid, each rank its
                               columns; every query scores with it (m is then only a handle) */
  imf_ease_rows x;          /* with ease: this rank's rows of X (imf_user_range's users) */
  double clip_lo, clip_hi;  /* explicit models' scores are clipped to these (NaN: not clipped;
                               0, 0 as opened: imf_recommender_clip sets them) */
  int clip;                 /* 1 once imf_recommender_clip set a range */
  int64_t version;          /* the model version opened */
  imf_item_pop pop;         /* the items' popularity in the store's training ratings (ties,
                               the prior, --fallback popular); count NULL until a query needs it */
} imf_recommender;

/* Collective. store_dir may be NULL (then no rated items are excluded: a warning says so); cfg
 * may be NULL (else dist.node_shared reads the model once per node: imf_checkpoint_read_shared). */
imf_status imf_recommender_open(MPI_Comm comm, const char *model_dir, const char *store_dir, const imf_config *cfg,
                                imf_recommender *r);
/* Collective. The same for kept version `version` of the directory (<= 0: the current one; one
 * not kept is IMF_ERR_NOTFOUND). */
imf_status imf_recommender_open_version(MPI_Comm comm, const char *model_dir, const char *store_dir, int64_t version,
                                        imf_recommender *r);
void imf_recommender_close(imf_recommender *r);
/* Collective. recommend.clip = scale (cfg): an explicit model's (als, bpmf) predicted scores are
 * clipped to the value range recorded in the store (store_dir; may be NULL), else to the
 * clean.scale_min/max the model was trained with, else not at all; none: never clipped.
 * Implicit models' scores are preferences, not ratings: never clipped. */
imf_status imf_recommender_clip(imf_recommender *r, const imf_config *cfg, const char *store_dir);

/* A ranked list (rank 0's result; items are model item indices). */
typedef struct {
  int n;
  int32_t *items;
  float *scores;
  int fallback; /* 1: the user was unknown and these are the most popular items */
} imf_rec_list;
void imf_rec_list_free(imf_rec_list *l);

/* Collective; result on rank 0. An unknown user is IMF_ERR_NOTFOUND unless fallback_popular,
 * which returns the most rated items of the store (the model's items only). */
imf_status imf_recommend_user(imf_recommender *r, const char *user, int top, int fallback_popular, imf_rec_list *out);
/* Collective (every rank passes the same arguments); result on rank 0: the predicted scores of
 * the given raw item ids for a user, best first (unknown items score by the cold-row rule and are
 * marked in *unknown). */
imf_status imf_recommend_items(imf_recommender *r, const char *user, const char *const *item_ids, int n,
                               imf_rec_list *out, int *unknown_user);
/* Collective; result on rank 0: the top items nearest to an item by cosine of their factor rows
 * (EASE: of their columns of B), itself excluded. */
imf_status imf_recommend_similar(imf_recommender *r, const char *item, int top, imf_rec_list *out);

/* Collective: top N of every user the model knows, written to path — CSV ("user,rank,item,
 * score", raw ids) or, for a name ending in .h5, HDF5 (/items, /scores: users x N, item index
 * or -1 / NaN; /user_ids, /item_ids: fixed-length strings). Each rank scores and writes its
 * own users. Figures for the benchmark go to *stats (may be NULL). */
typedef struct {
  int64_t users;
  double seconds, score_seconds, gemm_seconds, write_seconds;
} imf_rec_all_stats;
imf_status imf_recommend_all(imf_recommender *r, const char *path, int top, imf_rec_all_stats *stats);
#endif
