/* config.c - known configuration keys, INI loading and --set overrides.
 *
 * Why a fixed table: users' job scripts set keys by name, and a typo must fail loudly instead of
 * silently training with a default. Every key has a type, a default and one line of help; the
 * README and `incremf help config` are generated from the same table. */
#include "config.h"
#include "error.h"
#include "judge.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef enum { T_INT, T_DOUBLE, T_BOOL, T_STR, T_ENUM, T_DOUBLE_OR_NONE, T_DOUBLE_NONE_AUTO, T_DOUBLE_AUTO, T_INT_AUTO } key_type;

typedef struct {
  const char *key;     /* "section.name" */
  key_type type;
  const char *def;
  const char *choices; /* for T_ENUM: "a|b|c" */
  const char *help;
} key_def;

static const key_def KEYS[] = {
    /* input: how raw rating files are read */
    {"input.format", T_ENUM, "auto", "auto|csv|tsv|dat|ml100k|mtx|libmf",
     "input format; auto detects from the name and the first lines"},
    {"input.header", T_ENUM, "auto", "auto|yes|no", "whether the first line is a header"},
    {"input.delimiter", T_STR, "", NULL,
     "field delimiter for csv/tsv (one character, 'tab' or 'semicolon'); empty = by format"},
    {"input.user_col", T_INT_AUTO, "auto", NULL,
     "1-based column of the user id; auto = by the header's column name (user, userId, ...), else 1"},
    {"input.item_col", T_INT_AUTO, "auto", NULL,
     "1-based column of the item id; auto = by the header's column name (item, movieId, ISBN, ...), else 2"},
    {"input.rating_col", T_INT_AUTO, "auto", NULL,
     "1-based column of the rating; 0 = none (implicit feedback, value 1); auto = by the header's column name "
     "(rating, score, ...), else 3"},
    {"input.time_col", T_INT_AUTO, "auto", NULL,
     "1-based column of the unix timestamp; 0 = none; a missing column is allowed; auto = by the header's column "
     "name (time, timestamp, ...), else 4"},
    {"input.max_line_length", T_INT, "65536", NULL, "longest accepted line in bytes"},
    {"input.max_id_length", T_INT, "256", NULL, "longest accepted user or item id in bytes"},
    {"input.chunk_mb", T_INT, "32", NULL, "read chunk per rank in MiB"},
    /* clean: what happens to each line */
    {"clean.duplicates", T_ENUM, "latest", "latest|first|mean",
     "repeated (user,item): keep the latest by timestamp (ties: later line), the first, or the mean"},
    {"clean.out_of_range", T_ENUM, "reject", "reject|clip",
     "ratings outside [scale_min, scale_max]: reject the line or clip the value"},
    {"clean.scale_min", T_DOUBLE_OR_NONE, "none", NULL, "lowest valid rating; none = unbounded"},
    {"clean.scale_max", T_DOUBLE_OR_NONE, "none", NULL, "highest valid rating; none = unbounded"},
    {"clean.min_user_ratings", T_INT, "0", NULL, "drop new users with fewer ratings in the batch"},
    {"clean.min_item_ratings", T_INT, "0", NULL, "drop new items with fewer ratings in the batch"},
    {"clean.max_user_ratings", T_INT, "0", NULL,
     "noise filter: drop new users with more ratings than this in the batch; 0 = off"},
    {"clean.drop_constant_users", T_BOOL, "false", NULL,
     "noise filter: drop new users with >= 3 ratings that are all equal"},
    {"clean.max_reject_fraction", T_DOUBLE, "0.05", NULL,
     "fail before writing anything when more than this share of lines is rejected"},
    {"clean.normalize", T_ENUM, "none", "none|global|user",
     "normalisation recorded in the store for the trainer"},
    /* synth: the synthetic data generator */
    {"synth.users", T_INT, "1000", NULL, "number of users"},
    {"synth.items", T_INT, "500", NULL, "number of items"},
    {"synth.ratings", T_INT, "50000", NULL, "number of rating lines to emit"},
    {"synth.rank", T_INT, "8", NULL, "rank of the planted low-rank model"},
    {"synth.noise", T_DOUBLE, "0.5", NULL, "standard deviation of the rating noise"},
    {"synth.seed", T_INT, "1", NULL, "random seed (same seed, same file)"},
    {"synth.user_skew", T_DOUBLE, "1.0", NULL, "power-law exponent of user activity"},
    {"synth.item_skew", T_DOUBLE, "1.0", NULL, "power-law exponent of item popularity"},
    {"synth.scale_min", T_DOUBLE, "1", NULL, "lowest rating"},
    {"synth.scale_max", T_DOUBLE, "5", NULL, "highest rating"},
    {"synth.step", T_DOUBLE, "1", NULL, "rating step (0.5 = half stars, 0 = continuous)"},
    {"synth.time_start", T_INT, "1500000000", NULL, "first timestamp (unix seconds)"},
    {"synth.time_span_days", T_INT, "365", NULL, "timestamps spread over this many days"},
    {"synth.drift", T_DOUBLE, "0", NULL,
     "planted drift: 0 = none; 1 = tastes and popularity shift fully over the time span"},
    {"synth.corrupt_fraction", T_DOUBLE, "0", NULL,
     "share of corrupt lines of every kind the cleaner handles"},
    {"synth.implicit", T_BOOL, "false", NULL, "emit no rating column (implicit feedback)"},
    {"synth.rerate", T_DOUBLE, "0", NULL,
     "share of lines that re-rate the user's latest item (the only repeated pairs besides corrupt duplicates)"},
    /* dist: how the ranks are laid out (docs/SCALING.md) */
    {"dist.ranks_per_node", T_INT, "0", NULL,
     "ranks per node for the traffic counters (inside vs between nodes): 0 = the real nodes (ranks sharing "
     "memory); N = pretend nodes of N ranks each, to study a multi-node layout on one machine"},
    {"dist.node_shared", T_BOOL, "false", NULL,
     "one copy of the factors per node (shared memory, /dev/shm) instead of one per rank, in training (ALS, iALS, "
     "BPMF) and in the model evaluate and recommend read; the nodes' first ranks exchange rows (docs/SCALING.md)"},
    {"dist.exchange", T_ENUM, "replicated", "replicated|outblock|auto",
     "training's factor exchange: replicated (every rank, or node with node_shared, holds the whole model; "
     "allgather), outblock (each rank holds its own rows and the rows its ratings reference; all-to-all of exactly "
     "those rows), auto (outblock when the node's model copies would pass half of dist.node_memory)"},
    {"dist.node_memory", T_DOUBLE, "0", NULL,
     "memory of one node in MiB for dist.exchange = auto; 0 = this machine's physical memory"},
    /* model: training hyperparameters */
    {"model.type", T_ENUM, "als", "als|bpmf|ials|ease|pop|bias",
     "model: ALS-WR, Bayesian MF, implicit ALS, EASE; baselines pop (item popularity) and bias (mu + b_u + b_i)"},
    {"model.k", T_INT, "32", NULL, "number of latent factors"},
    {"model.lambda", T_DOUBLE_AUTO, "auto", NULL,
     "factor regularisation (weighted by row count in ALS-WR); auto = 50 for ials, 0.12 otherwise"},
    {"model.lambda_bias", T_DOUBLE_AUTO, "auto", NULL,
     "bias regularisation; auto = 2 for the bias baseline, 0.5 otherwise"},
    {"model.alpha", T_DOUBLE, "10", NULL, "implicit ALS confidence: c = 1 + alpha * r (see model.confidence)"},
    {"model.positive_threshold", T_DOUBLE_OR_NONE, "none", NULL,
     "ials/ease/pop: ratings below this are not positives (left out of training); none = every rating"},
    {"model.confidence", T_ENUM, "auto", "auto|linear|log|binary",
     "ials/ease/pop training value of a positive r: r (c = 1 + alpha r), log(1 + r/epsilon), or 1 (c = 1 + alpha); "
     "auto = binary when model.positive_threshold is set (ratings turned into positives), linear otherwise (counts)"},
    {"model.epsilon", T_DOUBLE, "1", NULL, "model.confidence = log: c = 1 + alpha * log(1 + r/epsilon); > 0"},
    {"model.pop_prior", T_DOUBLE, "0", NULL,
     "popularity prior of ials/ease rankings: beta * log(1 + pop_i) / log(1 + max pop) added to every score "
     "(pop_i: the item's positive training ratings); 0 = off. Score ties are broken by pop_i in any case"},
    {"model.iterations", T_INT, "15", NULL, "sweeps (ALS) or samples incl. burn-in (BPMF)"},
    {"model.burn_in", T_INT, "20", NULL, "BPMF sweeps discarded before averaging"},
    {"model.samples", T_INT, "32", NULL,
     "BPMF: posterior samples averaged for prediction (thinned evenly after burn-in)"},
    {"model.tol", T_DOUBLE, "0", NULL, "stop when validation RMSE improves less than this; 0 = off"},
    {"model.seed", T_INT, "42", NULL, "seed of the counter-based random streams"},
    {"model.solver", T_ENUM, "cholesky", "cholesky|cg", "row solver for implicit ALS"},
    {"model.cg_steps", T_INT, "3", NULL, "conjugate-gradient steps per row"},
    {"model.validation_fraction", T_DOUBLE, "0", NULL,
     "share of training ratings carved out for early stopping"},
    {"model.checkpoint_every", T_INT, "5", NULL, "write a run checkpoint every N sweeps; 0 = end only"},
    /* update and model maintenance keys (update.*, holdout) go below this line */
    {"model.ease_lambda", T_DOUBLE, "200", NULL,
     "EASE: L2 weight lambda of G = X^T X + lambda I (Steck 2019 used 200-1000; must be > 0)"},
    {"holdout.fraction", T_DOUBLE, "0.1", NULL,
     "standing holdout recorded in the store at prepare: a rating is held out of training iff "
     "hash(seed, user, item) < fraction (0 = none)"},
    {"holdout.seed", T_INT, "42", NULL, "seed of the standing holdout hash (recorded at prepare)"},
    {"update.strategy", T_ENUM, "auto", "fold-in|warm|retrain|auto",
     "how update builds the challenger (auto: fold-in, escalating to warm, then retrain)"},
    {"update.warm_sweeps", T_INT, "2", NULL, "full sweeps of a warm update, started from the champion"},
    {"update.tolerance", T_DOUBLE, "0.005", NULL,
     "promote the challenger unless its holdout score (update.metric) is worse than the champion's by more "
     "than this share of the champion's score"},
    {"update.auto_share", T_DOUBLE, "0.25", NULL,
     "auto: new ratings above this share of all ratings start with warm instead of fold-in"},
    {"update.auto_warm_every", T_INT, "0", NULL,
     "auto: a warm update after this many fold-ins in a row (0 = only when escalated)"},
    {"update.auto_warm_growth", T_DOUBLE, "0.5", NULL,
     "auto: a warm update when the ratings the last full sweep has not seen exceed this share of "
     "those it saw (0 = off)"},
    {"update.drift_threshold", T_DOUBLE, "0.1", NULL,
     "drift: the champion's RMSE on the newest batch exceeds (a ranking metric: falls below) the mean "
     "of its history by this share"},
    {"update.drift_window", T_INT, "5", NULL, "drift: number of earlier updates averaged into the history"},
    {"update.foldin_read", T_ENUM, "touched", "touched|full",
     "fold-in reads only the touched users' and items' histories through the store's indexes "
     "(touched), or the whole store (full: the reference path)"},
    {"update.item_sums", T_BOOL, "false", NULL,
     "ALS versions carry each item's normal-equation sums (about 8 (k+1)(k+4)/2 bytes an item), and a "
     "touched-read fold-in re-solves its items from them instead of reading the items' histories "
     "(pays where the touched items' histories dwarf the touched users': README, issue 24)"},
    {"update.metric", T_STR, "auto", NULL,
     "what update judges champion and challenger by: auto (rmse for als, bpmf and bias; ndcg@K with "
     "K = update.k for every other type), rmse, ndcg@K, recall@K or map@K"},
    {"update.k", T_INT, "10", NULL, "update.metric = auto: the cut-off K of the ranking metric"},
    {"update.ease_woodbury_max_rank", T_STR, "auto", NULL,
     "EASE update: a low-rank (Woodbury) update of the stored inverse when the change has at most this rank "
     "(2 per changed user, 1 per new one), else a refactorisation; auto = items / 4 (measured crossover), 0 = never"},
    /* evaluation, recommendation and tuning keys (eval.*, recommend.*, tune.*) go below this line */
    {"eval.k", T_STR, "10", NULL, "ranking cut-offs K, comma separated (e.g. 10 or 20,50,100)"},
    {"eval.relevance_threshold", T_DOUBLE_NONE_AUTO, "auto", NULL,
     "explicit data: a held-out rating >= this is relevant; auto = min + 0.75 (max - min) of the recorded scale, "
     "rounded up to its step (4 on 1-5, 8 on 0-10); none = every held-out item (implicit models: their positives, model.positive_threshold)"},
    {"eval.binarize", T_DOUBLE_OR_NONE, "none", NULL,
     "implicit evaluation: drop ratings below this before splitting and set the rest to 1"},
    {"eval.test_fraction", T_DOUBLE, "0.2", NULL, "random and temporal protocols: share of ratings held out"},
    {"eval.leave_k", T_INT, "1", NULL, "leave-k-out: ratings held out per user (users with more than k)"},
    {"eval.folds", T_INT, "5", NULL, "k-fold cross-validation: number of folds (--folds wins)"},
    {"eval.seed", T_INT, "7", NULL, "seed of the split hashes (same seed, same split on any rank count)"},
    {"eval.heldout_users", T_DOUBLE, "0.2", NULL, "held-out-users protocol: share of users held out of training"},
    {"eval.foldin_fraction", T_DOUBLE, "0.8", NULL, "held-out-users protocol: share of a user's items used to fold them in"},
    {"eval.min_user_ratings", T_INT, "5", NULL, "held-out-users protocol: users with fewer ratings are never held out"},
    {"recommend.top", T_INT, "10", NULL, "items per user for recommend (--top wins)"},
    {"recommend.clip", T_ENUM, "scale", "scale|none",
     "explicit models' predicted scores: clipped to the store's recorded value range (scale) or not (none)"},
    {"tune.folds", T_INT, "5", NULL, "cross-validation folds inside tune (--folds wins)"},
    {"tune.groups", T_INT, "0", NULL, "rank groups training candidates concurrently; 0 = one per rank (--groups wins)"},
    {"tune.metric", T_STR, "auto", NULL,
     "metric tune minimises (rmse, mae) or maximises (e.g. ndcg@10); auto = rmse, or ndcg@K (first eval.k) for ials"},
    {"tune.seed", T_INT, "1", NULL, "seed of --random sampling from the grid"},
    {"tune.schedule", T_ENUM, "dynamic", "dynamic|static",
     "candidates to groups: dynamic (the next free group takes the next candidate, costliest first) "
     "or static (round-robin in that order); the results are the same"},
};
#define NKEYS (sizeof KEYS / sizeof KEYS[0])

struct imf_config {
  char *val[NKEYS];
  unsigned char set[NKEYS]; /* given by a file, --set or a loaded snapshot (not the default) */
};

static int find_key(const char *key) {
  for (size_t i = 0; i < NKEYS; i++)
    if (strcmp(KEYS[i].key, key) == 0) return (int)i;
  return -1;
}

static int parse_i64(const char *s, int64_t *out) {
  if (!*s) return 0;
  errno = 0;
  char *end;
  long long v = strtoll(s, &end, 10);
  if (errno || *end) return 0;
  *out = v;
  return 1;
}

static int parse_dbl(const char *s, double *out) {
  if (!*s) return 0;
  errno = 0;
  char *end;
  double v = strtod(s, &end);
  if (errno || *end || !isfinite(v)) return 0;
  *out = v;
  return 1;
}

static int parse_bool(const char *s, int *out) {
  if (!strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "1") || !strcmp(s, "on")) {
    *out = 1;
    return 1;
  }
  if (!strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "0") || !strcmp(s, "off")) {
    *out = 0;
    return 1;
  }
  return 0;
}

static int enum_ok(const char *choices, const char *v) {
  size_t n = strlen(v);
  const char *p = choices;
  while (p && *p) {
    const char *bar = strchr(p, '|');
    size_t len = bar ? (size_t)(bar - p) : strlen(p);
    if (len == n && strncmp(p, v, n) == 0) return 1;
    p = bar ? bar + 1 : NULL;
  }
  return 0;
}

/* Longest value: imf_config_dump writes "name = value" lines that checkpoints store and
 * `train --resume`, `update`, `evaluate` and `tune` load back with libinih, whose lines end at
 * INI_MAX_LINE (200) bytes; the longest name is 19 bytes. */
#define IMF_CFG_MAX_VALUE 160

static imf_status check_value(int i, const char *v, const char *origin) {
  const key_def *k = &KEYS[i];
  int64_t iv;
  double dv;
  int bv;
  /* Only values that read back unchanged from the dumped INI text: not too long, no control
   * characters (a newline would inject lines), no " ;" and no leading ';' (libinih starts a
   * comment at a ';' after a blank, and the dump writes "name = value": `--set
   * input.delimiter=;` was dumped into the checkpoint as "delimiter = ;" and read back by
   * `train --resume`, `update` and `evaluate` as an empty value, i.e. "by format"). */
  size_t vn = strlen(v);
  if (vn > IMF_CFG_MAX_VALUE)
    IMF_FAIL(IMF_ERR_USAGE, "%s: %s: value of %zu bytes is too long (at most %d)", origin, k->key, vn,
             IMF_CFG_MAX_VALUE);
  for (size_t j = 0; j < vn; j++)
    if ((unsigned char)v[j] < 0x20 || v[j] == 0x7f)
      IMF_FAIL(IMF_ERR_USAGE, "%s: %s: the value holds a control character (byte 0x%02x)", origin, k->key,
               (unsigned char)v[j]);
  if (strstr(v, " ;"))
    IMF_FAIL(IMF_ERR_USAGE, "%s: %s: ' ;' is not allowed in a value (it starts a comment in INI files), got '%s'",
             origin, k->key, v);
  if (v[0] == ';')
    IMF_FAIL(IMF_ERR_USAGE,
             "%s: %s: a value may not start with ';' (after 'name =' it starts a comment in INI files), got '%s'%s",
             origin, k->key, v,
             !strcmp(k->key, "input.delimiter") ? "; for a semicolon delimiter write 'semicolon'" : "");
  switch (k->type) {
  case T_INT_AUTO: /* "auto" is resolved by its one reader (ingest.c, imf_parse_opts_from_config) */
    if (!strcmp(v, "auto")) break;
    /* fall through - a number, checked as T_INT */
  case T_INT:
    if (!parse_i64(v, &iv))
      IMF_FAIL(IMF_ERR_USAGE, "%s: %s must be an integer%s, got '%s'", origin, k->key,
               k->type == T_INT_AUTO ? " or 'auto'" : "", v);
    if (iv < 0) IMF_FAIL(IMF_ERR_USAGE, "%s: %s must not be negative, got '%s'", origin, k->key, v);
    { /* the documented limits of the keys that size buffers or shapes (README: Limits), and
       * the keys read into an int, which must not wrap */
      static const struct {
        const char *key;
        int64_t lo, hi;
      } range[] = {{"input.max_line_length", 1, 1 << 30}, {"input.max_id_length", 1, 65536}, {"model.k", 1, 4096},
                   {"input.user_col", 0, INT32_MAX},       {"input.item_col", 0, INT32_MAX},
                   {"input.rating_col", 0, INT32_MAX},     {"input.time_col", 0, INT32_MAX},
                   {"model.cg_steps", 0, INT32_MAX},       {"synth.rank", 0, INT32_MAX},
                   {"eval.folds", 0, INT32_MAX},           {"tune.folds", 0, INT32_MAX},
                   {"tune.groups", 0, INT32_MAX},          {"recommend.top", 0, INT32_MAX},
                   /* BPMF keeps kw = k * (samples + 1) floats per row, an int: 4096 * 524287 < 2^31 */
                   {"model.samples", 0, INT32_MAX / 4096 - 1},
                   {"update.k", 1, 100000},
                   {"dist.ranks_per_node", 0, INT32_MAX}};
      for (size_t r = 0; r < sizeof range / sizeof range[0]; r++)
        if (!strcmp(k->key, range[r].key) && (iv < range[r].lo || iv > range[r].hi))
          IMF_FAIL(IMF_ERR_USAGE, "%s: %s must be in [%lld, %lld], got '%s'", origin, k->key,
                   (long long)range[r].lo, (long long)range[r].hi, v);
    }
    break;
  case T_DOUBLE:
    if (!parse_dbl(v, &dv)) IMF_FAIL(IMF_ERR_USAGE, "%s: %s must be a finite number, got '%s'", origin, k->key, v);
    break;
  case T_DOUBLE_OR_NONE:
    if (strcmp(v, "none") && !parse_dbl(v, &dv))
      IMF_FAIL(IMF_ERR_USAGE, "%s: %s must be a number or 'none', got '%s'", origin, k->key, v);
    break;
  case T_DOUBLE_AUTO: /* "auto" is resolved in imf_config_get_double (auto_double) */
    if (strcmp(v, "auto") && !parse_dbl(v, &dv))
      IMF_FAIL(IMF_ERR_USAGE, "%s: %s must be a finite number or 'auto', got '%s'", origin, k->key, v);
    break;
  case T_DOUBLE_NONE_AUTO: /* "auto" is resolved by its one reader (scale.c), never as a number */
    if (strcmp(v, "none") && strcmp(v, "auto") && !parse_dbl(v, &dv))
      IMF_FAIL(IMF_ERR_USAGE, "%s: %s must be a number, 'auto' or 'none', got '%s'", origin, k->key, v);
    break;
  case T_BOOL:
    if (!parse_bool(v, &bv)) IMF_FAIL(IMF_ERR_USAGE, "%s: %s must be true or false, got '%s'", origin, k->key, v);
    break;
  case T_ENUM:
    if (!enum_ok(k->choices, v))
      IMF_FAIL(IMF_ERR_USAGE, "%s: %s must be one of %s, got '%s'", origin, k->key, k->choices, v);
    break;
  case T_STR:
    if (!strcmp(k->key, "update.metric") && !imf_judge_metric_parse(v, NULL, NULL))
      IMF_FAIL(IMF_ERR_USAGE,
               "%s: update.metric must be auto, rmse, ndcg@K, recall@K or map@K (K in 1..100000), got '%s'", origin,
               v);
    break;
  }
  return IMF_OK;
}

/* Edit distance (insertions, deletions, substitutions; a swap of neighbours counts one) between
 * a and b, capped at cap + 1: only small distances matter for a suggestion. */
static int edit_distance(const char *a, const char *b, int cap) {
  enum { N = 64 };
  size_t la = strlen(a), lb = strlen(b);
  if (la >= N || lb >= N) return cap + 1;
  if ((la > lb ? la - lb : lb - la) > (size_t)cap) return cap + 1;
  int d[N][N];
  for (size_t i = 0; i <= la; i++) d[i][0] = (int)i;
  for (size_t j = 0; j <= lb; j++) d[0][j] = (int)j;
  for (size_t i = 1; i <= la; i++)
    for (size_t j = 1; j <= lb; j++) {
      int v = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
      if (d[i - 1][j] + 1 < v) v = d[i - 1][j] + 1;
      if (d[i][j - 1] + 1 < v) v = d[i][j - 1] + 1;
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < v)
        v = d[i - 2][j - 2] + 1;
      d[i][j] = v;
    }
  return d[la][lb] > cap ? cap + 1 : d[la][lb];
}

/* The known key closest to a mistyped one (a typo in the name or the section, or the right name
 * under the wrong section), or NULL when none is close: at most 2 edits, 1 for short keys. */
static const char *closest_key(const char *key) {
  const char *dot = strchr(key, '.'), *best = NULL;
  int bestd = 3;
  for (size_t i = 0; i < NKEYS; i++) {
    int d = edit_distance(key, KEYS[i].key, 2);
    const char *kname = strchr(KEYS[i].key, '.') + 1;
    if (dot && !strcmp(dot + 1, kname) && d > 1) d = 1; /* the name under another section */
    if (!dot && !strcmp(key, kname)) d = 1;             /* the name without its section */
    if (d < bestd && (d <= 1 || strlen(key) >= 8)) {
      bestd = d;
      best = KEYS[i].key;
    }
  }
  return best;
}

static imf_status set_value(imf_config *cfg, const char *key, const char *value, const char *origin) {
  int i = find_key(key);
  if (i < 0) {
    const char *near = closest_key(key);
    IMF_FAIL(IMF_ERR_USAGE, "%s: unknown configuration key '%s' (%s%s%ssee `incremf help config`)", origin, key,
             near ? "did you mean '" : "", near ? near : "", near ? "'? " : "");
  }
  IMF_CHECK(check_value(i, value, origin));
  char *copy = strdup(value);
  if (!copy) IMF_FAIL(IMF_ERR_NOMEM, "out of memory");
  free(cfg->val[i]);
  cfg->val[i] = copy;
  cfg->set[i] = 1;
  return IMF_OK;
}

imf_status imf_config_create(imf_config **out) {
  imf_config *cfg = calloc(1, sizeof *cfg);
  if (!cfg) IMF_FAIL(IMF_ERR_NOMEM, "out of memory");
  for (size_t i = 0; i < NKEYS; i++) {
    cfg->val[i] = strdup(KEYS[i].def);
    if (!cfg->val[i]) {
      imf_config_destroy(&cfg);
      IMF_FAIL(IMF_ERR_NOMEM, "out of memory");
    }
  }
  *out = cfg;
  return IMF_OK;
}

void imf_config_destroy(imf_config **cfg) {
  if (!cfg || !*cfg) return;
  for (size_t i = 0; i < NKEYS; i++) free((*cfg)->val[i]);
  free(*cfg);
  *cfg = NULL;
}

typedef struct {
  imf_config *cfg;
  const char *origin;
  imf_status st;
} cfg_ini_ctx;

static int cfg_ini_handler(void *user, const char *section, const char *name, const char *value) {
  cfg_ini_ctx *c = user;
  if (c->st != IMF_OK) return 0;
  char key[256];
  if (!section[0]) {
    c->st = IMF_RAISE(IMF_ERR_USAGE, "%s: key '%s' outside any [section]", c->origin, name);
    return 0;
  }
  snprintf(key, sizeof key, "%s.%s", section, name);
  c->st = set_value(c->cfg, key, value, c->origin);
  return c->st == IMF_OK;
}

/* A section header without its ']' makes libinih report the first line after it that the handler
 * refuses, under the header's line number: found here first, with its own line. */
static imf_status check_headers(FILE *f, const char *path) {
  char line[512];
  int no = 0;
  while (fgets(line, sizeof line, f)) {
    no++;
    const char *p = line;
    while (isspace((unsigned char)*p)) p++;
    if (*p == '[' && !strchr(p, ']'))
      IMF_FAIL(IMF_ERR_USAGE, "%s, line %d: section header '%.*s' has no closing ']'", path, no,
               (int)strcspn(p, "\r\n"), p);
  }
  rewind(f);
  return IMF_OK;
}

imf_status imf_config_load_file(imf_config *cfg, const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) IMF_FAIL(IMF_ERR_NOTFOUND, "cannot open config file %s: %s", path, strerror(errno));
  struct stat sb; /* a directory opens, reads as nothing, and was silently "an empty INI" */
  if (fstat(fileno(f), &sb) == 0 && S_ISDIR(sb.st_mode)) {
    fclose(f);
    IMF_FAIL(IMF_ERR_USAGE, "config file %s is a directory, not an INI file", path);
  }
  imf_status hs = check_headers(f, path);
  if (hs != IMF_OK) {
    fclose(f);
    return hs;
  }
  cfg_ini_ctx c = {cfg, path, IMF_OK};
  int rc = ini_parse_file(f, cfg_ini_handler, &c);
  fclose(f);
  if (c.st != IMF_OK) {
    if (rc > 0) {
      char msg[1024];
      snprintf(msg, sizeof msg, "%s", imf_last_error());
      IMF_FAIL(c.st, "%s, line %d: %s", path, rc, msg);
    }
    return c.st;
  }
  if (rc != 0) IMF_FAIL(IMF_ERR_USAGE, "%s, line %d: malformed INI line", path, rc);
  return IMF_OK;
}

imf_status imf_config_load_string(imf_config *cfg, const char *text, const char *origin) {
  cfg_ini_ctx c = {cfg, origin, IMF_OK};
  int rc = ini_parse_string(text, cfg_ini_handler, &c);
  if (c.st != IMF_OK) return c.st;
  if (rc != 0) IMF_FAIL(IMF_ERR_INPUT, "%s, line %d: malformed INI line", origin, rc);
  return IMF_OK;
}

imf_status imf_config_set(imf_config *cfg, const char *assignment) {
  const char *eq = strchr(assignment, '=');
  if (!eq || eq == assignment)
    IMF_FAIL(IMF_ERR_USAGE, "--set expects section.key=value, got '%s'", assignment);
  char key[256];
  size_t n = (size_t)(eq - assignment);
  if (n >= sizeof key) IMF_FAIL(IMF_ERR_USAGE, "--set: key too long in '%s'", assignment);
  memcpy(key, assignment, n);
  key[n] = '\0';
  /* trim spaces around the key and value, as INI does */
  while (n > 0 && isspace((unsigned char)key[n - 1])) key[--n] = '\0';
  const char *v = eq + 1;
  while (isspace((unsigned char)*v)) v++;
  size_t vn = strlen(v);
  while (vn > 0 && isspace((unsigned char)v[vn - 1])) vn--;
  char val[IMF_CFG_MAX_VALUE + 2];
  if (vn > IMF_CFG_MAX_VALUE) vn = IMF_CFG_MAX_VALUE + 1; /* check_value reports it */
  memcpy(val, v, vn);
  val[vn] = '\0';
  return set_value(cfg, key, val, "--set");
}

static imf_status lookup(const imf_config *cfg, const char *key, int *idx) {
  int i = find_key(key);
  if (i < 0) IMF_FAIL(IMF_ERR_USAGE, "unknown configuration key '%s'", key);
  *idx = i;
  (void)cfg;
  return IMF_OK;
}

imf_status imf_config_get_str(const imf_config *cfg, const char *key, const char **out) {
  int i = 0; /* set by lookup; initialised for -Wmaybe-uninitialized (gcc 12, -O2) */
  IMF_CHECK(lookup(cfg, key, &i));
  *out = cfg->val[i];
  return IMF_OK;
}

imf_status imf_config_get_int(const imf_config *cfg, const char *key, int64_t *out) {
  int i = 0;
  IMF_CHECK(lookup(cfg, key, &i));
  if (!parse_i64(cfg->val[i], out)) IMF_FAIL(IMF_ERR_USAGE, "%s is not an integer", key);
  return IMF_OK;
}

/* The value "auto" stands for, for the T_DOUBLE_AUTO keys, by model type. Measured 2026-12-07
 * (README, "Defaults"; tests/bench/bench_defaults.sh and `incremf tune`, 3-fold CV on ML-100K,
 * the ML-1M subset, ml-latest-small and MovieTweetings):
 * - model.lambda, implicit ALS: it solves (YtY + Y^T (C_u - I) Y + lambda I) x = ..., lambda not
 *   scaled by the row's count, and wants a far stronger one than ALS-WR's lambda * n_u: 0.05-1 ->
 *   50 raised 3-fold ndcg@10 (k = 64) from 0.215 to 0.265-0.312 on ml-latest-small and from 0.083
 *   to 0.097-0.129 on MovieTweetings.
 * - model.lambda and model.lambda_bias, explicit ALS (k = 32, 15 sweeps): 0.12 and 0.5 have the
 *   lowest RMSE relative to each set's best of a 6 x 4 grid, on average (1.006; the former 0.05
 *   and 5: 1.066, i.e. 0.9890 -> 0.9208 on ML-100K, 1.7141 -> 1.5869 on MovieTweetings).
 * - model.lambda_bias, the bias baseline (b = sum / (lambda_bias + n)): 2 was best on all four
 *   sets of 0.5 ... 50 (0.5 under-shrinks rare users and items: +0.2-1.9% RMSE). */
static int auto_double(const imf_config *cfg, const char *key, double *out) {
  const int lam = !strcmp(key, "model.lambda"), lamb = !strcmp(key, "model.lambda_bias");
  if (!lam && !lamb) return 0;
  const char *type = "als";
  int j;
  if (lookup(cfg, "model.type", &j) == IMF_OK) type = cfg->val[j];
  if (lam) *out = !strcmp(type, "ials") ? 50.0 : 0.12;
  else *out = !strcmp(type, "bias") ? 2.0 : 0.5;
  return 1;
}

imf_status imf_config_get_double(const imf_config *cfg, const char *key, double *out) {
  int i = 0;
  IMF_CHECK(lookup(cfg, key, &i));
  if (!strcmp(cfg->val[i], "auto") && auto_double(cfg, key, out)) return IMF_OK;
  if (!strcmp(cfg->val[i], "none")) {
    *out = NAN;
    return IMF_OK;
  }
  if (!parse_dbl(cfg->val[i], out)) IMF_FAIL(IMF_ERR_USAGE, "%s is not a number", key);
  return IMF_OK;
}

imf_status imf_config_get_bool(const imf_config *cfg, const char *key, int *out) {
  int i = 0;
  IMF_CHECK(lookup(cfg, key, &i));
  if (!parse_bool(cfg->val[i], out)) IMF_FAIL(IMF_ERR_USAGE, "%s is not a boolean", key);
  return IMF_OK;
}

int imf_config_is_set(const imf_config *cfg, const char *key) {
  int i = find_key(key);
  return i >= 0 && cfg->set[i];
}

imf_status imf_config_take_run_keys(imf_config *dst, const imf_config *src) {
  for (size_t i = 0; i < NKEYS; i++) {
    if (strncmp(KEYS[i].key, "dist.", 5) != 0) continue;
    char *v = strdup(src->val[i] ? src->val[i] : KEYS[i].def);
    if (!v) IMF_FAIL(IMF_ERR_NOMEM, "out of memory");
    free(dst->val[i]);
    dst->val[i] = v;
    dst->set[i] = src->set[i];
  }
  return IMF_OK;
}

static void missing_key(const char *key) {
  fprintf(stderr, "incremf: internal error: configuration key '%s' is not in the table\n", key);
  abort();
}

int64_t imf_cfg_int(const imf_config *cfg, const char *key) {
  int64_t v = 0;
  if (imf_config_get_int(cfg, key, &v) != IMF_OK) missing_key(key);
  return v;
}
double imf_cfg_double(const imf_config *cfg, const char *key) {
  double v = 0;
  if (imf_config_get_double(cfg, key, &v) != IMF_OK) missing_key(key);
  return v;
}
int imf_cfg_bool(const imf_config *cfg, const char *key) {
  int v = 0;
  if (imf_config_get_bool(cfg, key, &v) != IMF_OK) missing_key(key);
  return v;
}
const char *imf_cfg_str(const imf_config *cfg, const char *key) {
  const char *v = "";
  if (imf_config_get_str(cfg, key, &v) != IMF_OK) missing_key(key);
  return v;
}

char *imf_config_dump(const imf_config *cfg) {
  size_t cap = 4096, len = 0;
  char *out = malloc(cap);
  if (!out) return NULL;
  out[0] = '\0';
  char section[64] = "";
  for (size_t i = 0; i < NKEYS; i++) {
    const char *dot = strchr(KEYS[i].key, '.');
    size_t sl = (size_t)(dot - KEYS[i].key);
    char line[1024];
    int n = 0;
    if (strlen(section) != sl || strncmp(section, KEYS[i].key, sl) != 0) {
      snprintf(section, sizeof section, "%.*s", (int)sl, KEYS[i].key);
      n = snprintf(line, sizeof line, "%s[%s]\n", len ? "\n" : "", section);
    }
    n += snprintf(line + n, sizeof line - (size_t)n, "%s = %s\n", dot + 1, cfg->val[i]);
    if (n >= (int)sizeof line) { /* snprintf truncated (values are checked to fit: not reached) */
      free(out);
      return NULL;
    }
    if (len + (size_t)n + 1 > cap) {
      while (len + (size_t)n + 1 > cap) cap *= 2;
      char *p = realloc(out, cap);
      if (!p) {
        free(out);
        return NULL;
      }
      out = p;
    }
    memcpy(out + len, line, (size_t)n + 1);
    len += (size_t)n;
  }
  return out;
}

void imf_config_print_keys(FILE *out) {
  for (size_t i = 0; i < NKEYS; i++) {
    fprintf(out, "  %-28s default %-10s %s", KEYS[i].key, KEYS[i].def[0] ? KEYS[i].def : "''", KEYS[i].help);
    if (KEYS[i].type == T_ENUM) fprintf(out, " (%s)", KEYS[i].choices);
    fputc('\n', out);
  }
}

imf_status imf_config_validate(const imf_config *cfg) {
  static const struct {
    const char *key;
    double lo, hi;
    int lo_open, hi_open;
  } rule[] = {{"model.lambda", 0, INFINITY, 0, 1},           {"model.lambda_bias", 0, INFINITY, 0, 1},
              {"model.alpha", 0, INFINITY, 0, 1},            {"model.tol", 0, INFINITY, 0, 1},
              {"model.iterations", 1, INFINITY, 0, 1},       {"model.cg_steps", 1, INFINITY, 0, 1},
              {"model.ease_lambda", 0, INFINITY, 1, 1},      {"model.validation_fraction", 0, 1, 0, 1},
              {"holdout.fraction", 0, 1, 0, 1},              {"clean.max_reject_fraction", 0, 1, 0, 0},
              {"eval.test_fraction", 0, 1, 1, 1},            {"eval.heldout_users", 0, 1, 1, 1},
              {"eval.foldin_fraction", 0, 1, 1, 1},          {"update.auto_share", 0, 1, 0, 0},
              {"update.auto_warm_growth", 0, INFINITY, 0, 1},
              {"update.drift_threshold", 0, INFINITY, 0, 1}, {"update.warm_sweeps", 1, INFINITY, 0, 1},
              {"model.epsilon", 0, INFINITY, 1, 1},          {"model.pop_prior", 0, INFINITY, 0, 1}};
  for (size_t r = 0; r < sizeof rule / sizeof rule[0]; r++) {
    double v = imf_cfg_double(cfg, rule[r].key);
    int bad = rule[r].lo_open ? !(v > rule[r].lo) : !(v >= rule[r].lo);
    bad = bad || (rule[r].hi_open ? !(v < rule[r].hi) : !(v <= rule[r].hi));
    if (bad)
      IMF_FAIL(IMF_ERR_USAGE, "%s = %g is out of range: it must be in %c%g, %g%c (nothing was read or written)",
               rule[r].key, v, rule[r].lo_open ? '(' : '[', rule[r].lo, rule[r].hi, rule[r].hi_open ? ')' : ']');
  }
  double smin = imf_cfg_double(cfg, "clean.scale_min"), smax = imf_cfg_double(cfg, "clean.scale_max");
  if (!isnan(smin) && !isnan(smax) && smin > smax)
    IMF_FAIL(IMF_ERR_USAGE, "clean.scale_min (%g) is above clean.scale_max (%g)", smin, smax);
  return IMF_OK;
}
