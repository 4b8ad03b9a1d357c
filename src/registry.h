/* registry.h - the lineage of a model directory: one JSON line per event in DIR/registry.jsonl
 * (a version trained, an update's champion/challenger decision, a rollback, a prune, a forget).
 * Version files hold the model; the registry holds why each exists and how it was judged, so
 * `status` can print the lineage and `update` can read the error history drift is measured on.
 *
 * The file is small and rewritten whole for each event (tmp, fsync, rename, fsync of the
 * directory), so a kill leaves either the old or the new file, never a torn line. It is written
 * before CURRENT is switched: a current version always has its record. Layout: docs/FORMAT.md,
 * "Model registry". Functions are collective over comm (rank 0 does the file work). */
#ifndef IMF_REGISTRY_H
#define IMF_REGISTRY_H
#include "incremf.h"
#include <stdint.h>
#include <stdio.h>

typedef struct {
  char event[16];        /* train | update | rollback | prune | forget */
  int64_t version;       /* the version written (rollback: the version made current) */
  int64_t parent;        /* the version it was built from / that was current before (0: none) */
  int64_t batches_seen;  /* store batches the version has seen */
  char requested[16];    /* update: strategy asked for (auto, fold-in, ...) */
  char strategy[16];     /* strategy that built the version: train, fold-in, warm, retrain */
  char decision[16];     /* promoted | rejected | trained | current | pruned | forgotten */
  double champion_rmse;  /* holdout RMSE of the champion (NaN: not measured) */
  double challenger_rmse;/* holdout RMSE of the challenger / trained model */
  double newest_rmse;    /* the champion's RMSE on the new batches (the drift signal) */
  double drift_baseline; /* mean newest_rmse of earlier updates (NaN: no history) */
  int drift;             /* drift detected on this update */
  int64_t new_batches, new_ratings, eval_n;
  double seconds;        /* wall time of the operation */
  char created[32];      /* ISO-8601 UTC; filled on append when empty */
  char store[1024];      /* store directory (absolute) the version was built from */
  char note[1024];       /* escalations, reasons, pruned versions (free text) */
  char metric[16];       /* what the update was judged by (update.metric, judge.h): "rmse" (lower
                            is better) or a ranking metric such as "ndcg@10" (higher is better);
                            "" in records written before every update named it (RMSE, or an
                            EASE update's ranking metric when champion_score is set) */
  double champion_score, challenger_score; /* that metric on the standing holdout (NaN: none) */
  /* The paired per-user comparison (judge.h): mean of d_u (positive = challenger better), its 95%
   * interval and the number of users; NaN / 0 when not measured (and in older records). */
  double diff_mean, diff_lo, diff_hi;
  int64_t diff_users;
  double newest_score;   /* ranking models: the champion's metric on the new batches (drift) */
  int64_t holdout_users; /* users with >= 1 held-out rating (with holdout_sse; -1: not recorded) */
  /* The written version's own squared error summed over the standing holdout and the number of
   * held-out ratings (exact: %.17g), with the store's count of forgotten users at the time;
   * holdout_sse NaN when not measured. A later fold-in that reads only the touched rows judges
   * from these (docs/FORMAT.md, "Model registry"). */
  double holdout_sse;
  int64_t holdout_n, holdout_forgotten;
} imf_registry_record;

/* A record with every number NaN / 0 and strings empty. */
void imf_registry_record_init(imf_registry_record *r);
/* (local) DIR/registry.jsonl */
void imf_registry_path(const char *model_dir, char *path, size_t cap);
/* Append one record (atomic whole-file replace; a torn last line is dropped, with a warning).
 * Needs the directory's writer lock (held by the caller). Test hook: IMF_FAULT=registry-before-rename fails with the tmp file written. */
imf_status imf_registry_append(MPI_Comm comm, const char *model_dir, imf_registry_record *r);
/* Every record, in order (malloc'd; *n = 0 when there is no registry). A line that is not a
 * record is IMF_ERR_INPUT naming DIR/registry.jsonl:LINE; blank lines are skipped; a torn last
 * line (no newline, not a record) is ignored with a warning, and the next append removes it. */
imf_status imf_registry_load(MPI_Comm comm, const char *model_dir, imf_registry_record **recs, int64_t *n);
/* (local) The record that created `version` (last train/update record naming it), or NULL. */
const imf_registry_record *imf_registry_find(const imf_registry_record *recs, int64_t n, int64_t version);
/* (local) One record as a JSON object (no newline). */
void imf_registry_write_json(FILE *f, const imf_registry_record *r);
#endif
