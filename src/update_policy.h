/* update_policy.h - which strategy `incremf update` builds its challenger with (README,
 * `incremf update`): the requested strategy, auto's escalations before building (share of new
 * data, drift, fold-ins in a row), the model-type overrides (BPMF has no fold-in, baselines
 * always refit) and auto's escalation after a verdict. Pure functions: no MPI, no I/O, the same
 * answer on every rank, so update.c calls them on every rank and tests/test_policy.c covers
 * every branch. */
#ifndef IMF_UPDATE_POLICY_H
#define IMF_UPDATE_POLICY_H
#include "error.h"
#include "registry.h"
#include <stddef.h>
#include <stdint.h>

/* The order is the escalation order: auto tries fold-in, then warm, then retrain. */
typedef enum {
  IMF_UPDATE_FOLD_IN = 0, /* re-solve the touched rows against the fixed other side */
  IMF_UPDATE_WARM = 1,    /* update.warm_sweeps sweeps from the champion */
  IMF_UPDATE_RETRAIN = 2, /* from scratch with the champion's configuration */
  IMF_UPDATE_AUTO = 3     /* fold-in, escalated (imf_update_policy_start, imf_update_policy_next) */
} imf_update_strategy;

/* "fold-in", "warm", "retrain", "auto"; 1 and *out set, or 0 for any other text. */
int imf_update_strategy_parse(const char *s, imf_update_strategy *out);
const char *imf_update_strategy_name(imf_update_strategy s);

/* What the policy decides on, gathered by update.c's scan stage. */
typedef struct {
  imf_update_strategy requested;
  double share;        /* new ratings / all ratings of the store */
  double share_max;    /* update.auto_share */
  int drift;           /* drift detected on this update (judge.h) */
  int64_t foldins;     /* promoted fold-ins in a row (imf_update_foldins_in_row) */
  int64_t warm_every;  /* update.auto_warm_every (<= 0: never) */
  double unseen;       /* ratings the champion's last full sweep (train, warm, retrain) did not
                        * see: this update's new ratings plus those of the promoted fold-ins since
                        * (imf_update_foldin_ratings_in_row) */
  double seen;         /* the ratings that sweep saw: all ratings - unseen */
  double growth_max;   /* update.auto_warm_growth (<= 0: never) */
  int bpmf;            /* the champion is BPMF: no fold-in */
  int baseline;        /* the champion is a baseline (pop, bias): every strategy refits */
  const char *type_name; /* the champion's model type, for the note */
} imf_update_policy_in;

/* The strategy the first challenger is built with; every reason is appended to note (cap
 * bytes, "; "-separated, imf_update_note_add): under auto, new data beyond share_max, drift,
 * warm_every - 1 fold-ins in a row, or unseen ratings beyond growth_max x seen (the data the
 * fold-ins have taken in since the last full sweep) escalate fold-in to warm; then BPMF turns fold-in into
 * warm and a baseline turns anything into retrain, whatever was requested. */
imf_update_strategy imf_update_policy_start(const imf_update_policy_in *in, char *note, size_t cap);

/* After the verdict on a challenger built by `tried`: 1 and *next = the strategy to try next
 * (auto only, not promoted, tried before retrain), or 0: stop, the verdict stands. */
int imf_update_policy_next(imf_update_strategy requested, imf_update_strategy tried, int promoted,
                           imf_update_strategy *next);

/* Promoted fold-in updates since the newest train or other promoted update, counting back from
 * the end of the registry's records (events other than train and update are skipped). */
int64_t imf_update_foldins_in_row(const imf_registry_record *hist, int64_t nhist);

/* The new ratings (new_ratings) of the promoted fold-ins imf_update_foldins_in_row counts: the
 * ratings folded in since the last full sweep. */
int64_t imf_update_foldin_ratings_in_row(const imf_registry_record *hist, int64_t nhist);

/* Append "; " (unless note is empty) and the formatted text to note, within cap bytes. */
void imf_update_note_add(char *note, size_t cap, const char *fmt, ...) IMF_PRINTF(3, 4);
#endif
