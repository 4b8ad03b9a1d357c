/* tune.h - hyper-parameter search (`incremf tune`): a grid of model.* values (Cartesian
 * product, or --random N configurations drawn from it with tune.seed), each scored by k-fold
 * cross-validation (imf_eval_cv of evaluate.h) on the training store only, so a test file can
 * never influence the choice.
 *
 * Parallelism: the ranks are split (MPI_Comm_split) into tune.groups groups of contiguous ranks
 * (0 = one rank per group). Every group loads the store on its own communicator and takes
 * candidates, costliest first (a rough cost: iterations x k^2): with tune.schedule = dynamic
 * (default) the next free group takes the next candidate from a counter in an MPI window
 * (MPI_Fetch_and_op, passive target: no coordinator rank), so groups finish close together even
 * when candidates or ranks differ in speed; with static, group g takes positions g, g + G, ...
 * of that order. Each candidate's metrics come from one group only, and the fold hashes depend
 * on eval.seed only, so with equal group sizes the table does not depend on how many groups
 * there are or which group ran what. Results are summed into every rank (every other rank
 * contributes zeros for that candidate). */
#ifndef IMF_TUNE_H
#define IMF_TUNE_H
#include "evaluate.h"

#define IMF_TUNE_MAX_KEYS 16      /* distinct model.* keys in one grid */
#define IMF_TUNE_MAX_CONFIGS 100000 /* candidates one grid may expand to */

typedef struct {
  const char *store; /* --data STORE: training ratings */
  const char *grid;  /* "k=32,64 lambda=0.02,0.05 ..." (model.* keys; the "model." is optional) */
  int random;        /* --random N: N candidates drawn from the grid (0: the whole grid) */
  int folds;         /* --folds N (0: tune.folds) */
  int groups;        /* --groups N (0: tune.groups) */
} imf_tune_spec;

typedef struct {
  char *value[IMF_TUNE_MAX_KEYS]; /* this candidate's value of each grid key */
  double mean[IMF_EVAL_MAX_NAMES], sd[IMF_EVAL_MAX_NAMES];
  double seconds; /* wall time of its cross-validation in its group */
  int group;
} imf_tune_row;

typedef struct {
  int nkeys;
  char key[IMF_TUNE_MAX_KEYS][64]; /* full key names ("model.k") */
  int nconfigs, nfolds, ngroups;
  int nmetrics;
  char names[IMF_EVAL_MAX_NAMES][32]; /* metric names, as evaluate --json */
  char metric[32];                    /* the metric chosen on */
  int metric_index, maximise;
  int best;                           /* index into rows */
  imf_tune_row *rows;                 /* nconfigs rows, complete on every rank */
  char *best_ini;                     /* imf_config_dump of the best effective configuration */
  int edge[IMF_TUNE_MAX_KEYS];        /* -1/+1: the best value of that key is the lowest/highest of
                                       * its >= 3 numeric grid values (the optimum may lie beyond);
                                       * 0 otherwise */
  double seconds;
} imf_tune_report;

/* Collective over comm. Runs the search; the report is the same on every rank. */
imf_status imf_tune(MPI_Comm comm, const imf_config *cfg, const imf_tune_spec *spec, imf_tune_report *rep);
void imf_tune_report_free(imf_tune_report *rep);

/* "k=32 lambda=0.05": a row's grid values without the "model." prefix. */
void imf_tune_label(const imf_tune_report *rep, int row, char *out, size_t cap);
/* Local (call on one rank). CSV: the grid keys, then <metric>_mean,<metric>_sd for every metric,
 * then seconds; one line per candidate in grid order. */
imf_status imf_tune_write_table(const imf_tune_report *rep, const char *path);
/* Local. The best configuration as an INI file for `train --config`. */
imf_status imf_tune_write_best(const imf_tune_report *rep, const char *path);
#endif
