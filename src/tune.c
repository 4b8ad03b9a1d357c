/* tune.c - `incremf tune`: grid or random search over model.* keys, each candidate scored by
 * k-fold cross-validation on the training store (imf_eval_cv), candidates spread over groups of
 * ranks (see tune.h for the layout and why the results do not depend on it). */
#include "tune.h"
#include "config.h"
#include "error.h"
#include "fsio.h"
#include "log.h"
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---------------------------------------------------------------- the grid */

typedef struct {
  char **v[IMF_TUNE_MAX_KEYS];
  int n[IMF_TUNE_MAX_KEYS];
} grid_values;

static void grid_free(grid_values *g, int nkeys) {
  for (int k = 0; k < nkeys; k++) {
    for (int j = 0; j < g->n[k]; j++) free(g->v[k][j]);
    free(g->v[k]);
    g->v[k] = NULL;
    g->n[k] = 0;
  }
}

static imf_status copy_config(const imf_config *src, imf_config **dst) {
  IMF_CHECK(imf_config_create(dst));
  char *text = imf_config_dump(src);
  if (!text) {
    imf_config_destroy(dst);
    IMF_FAIL(IMF_ERR_NOMEM, "out of memory");
  }
  imf_status st = imf_config_load_string(*dst, text, "configuration");
  free(text);
  if (st != IMF_OK) imf_config_destroy(dst);
  return st;
}

/* One "key=v1,v2,..." term into rep->key[nkeys] and g. Every value is tried on scratch, so a
 * bad grid is refused before any training starts. */
static imf_status parse_term(imf_config *scratch, const char *term, imf_tune_report *rep, grid_values *g) {
  const char *eq = strchr(term, '=');
  if (!eq || eq == term) IMF_FAIL(IMF_ERR_USAGE, "--grid: '%s' is not key=value,value,...", term);
  char key[64];
  size_t kl = (size_t)(eq - term);
  const char *pre = memchr(term, '.', kl) ? "" : "model.";
  if (kl + strlen(pre) >= sizeof key) IMF_FAIL(IMF_ERR_USAGE, "--grid: key too long in '%s'", term);
  snprintf(key, sizeof key, "%s%.*s", pre, (int)kl, term);
  if (strncmp(key, "model.", 6) != 0)
    IMF_FAIL(IMF_ERR_USAGE, "--grid: '%s' is not a model.* key (only model keys can be tuned)", key);
  const char *probe;
  if (imf_config_get_str(scratch, key, &probe) != IMF_OK)
    IMF_FAIL(IMF_ERR_USAGE, "--grid: unknown configuration key '%s' (see `incremf help config`)", key);
  for (int k = 0; k < rep->nkeys; k++)
    if (!strcmp(rep->key[k], key)) IMF_FAIL(IMF_ERR_USAGE, "--grid: key '%s' listed twice", key);
  if (rep->nkeys == IMF_TUNE_MAX_KEYS) IMF_FAIL(IMF_ERR_USAGE, "--grid: more than %d keys", IMF_TUNE_MAX_KEYS);
  int ki = rep->nkeys;
  const char *p = eq + 1;
  if (!*p) IMF_FAIL(IMF_ERR_USAGE, "--grid: empty value list for '%s'", key);
  for (;;) {
    const char *c = strchr(p, ',');
    size_t vl = c ? (size_t)(c - p) : strlen(p);
    if (vl == 0) IMF_FAIL(IMF_ERR_USAGE, "--grid: empty value in the list of '%s'", key);
    char *val = strndup(p, vl);
    if (!val) IMF_FAIL(IMF_ERR_NOMEM, "out of memory");
    char as[512];
    snprintf(as, sizeof as, "%s=%s", key, val);
    imf_status st = imf_config_set(scratch, as);
    if (st == IMF_OK)
      for (int j = 0; j < g->n[ki]; j++)
        if (!strcmp(g->v[ki][j], val)) st = IMF_RAISE(IMF_ERR_USAGE, "--grid: value '%s' listed twice for '%s'", val, key);
    if (st == IMF_OK) st = imf_realloc(&g->v[ki], (size_t)g->n[ki] + 1, sizeof *g->v[ki]);
    if (st != IMF_OK) {
      free(val);
      if (g->n[ki] == 0) {
        free(g->v[ki]);
        g->v[ki] = NULL;
      }
      return st;
    }
    g->v[ki][g->n[ki]++] = val;
    if (!c) break;
    p = c + 1;
  }
  snprintf(rep->key[ki], sizeof rep->key[ki], "%s", key);
  rep->nkeys++;
  return IMF_OK;
}

/* Terms are separated by white space or ';' (a shell-friendly alternative). */
static imf_status parse_grid(const imf_config *cfg, const char *grid, imf_tune_report *rep, grid_values *g) {
  imf_config *scratch = NULL;
  imf_status st = IMF_OK;
  char *text = NULL;
  IMF_TRY(copy_config(cfg, &scratch), out);
  text = strdup(grid ? grid : "");
  if (!text) IMF_TRY(IMF_RAISE(IMF_ERR_NOMEM, "out of memory"), out);
  char *save = NULL;
  for (char *t = strtok_r(text, " \t\n;", &save); t; t = strtok_r(NULL, " \t\n;", &save))
    IMF_TRY(parse_term(scratch, t, rep, g), out);
  if (rep->nkeys == 0) IMF_TRY(IMF_RAISE(IMF_ERR_USAGE, "--grid is empty: give key=v1,v2 ..."), out);
out:
  free(text);
  imf_config_destroy(&scratch);
  return st;
}

/* splitmix64: the --random draw depends on tune.seed only (same candidates on any rank count). */
static uint64_t mix64(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* The candidates: grid indices in mixed radix (last key fastest), all of them or a seeded draw
 * without replacement (partial Fisher-Yates), kept in grid order so the table reads naturally. */
static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}
static imf_status pick_candidates(const imf_tune_report *rep, const grid_values *g, int random, uint64_t seed,
                                  int64_t **idx, int *n) {
  int64_t total = 1;
  for (int k = 0; k < rep->nkeys; k++) {
    total *= g->n[k];
    if (total > IMF_TUNE_MAX_CONFIGS)
      IMF_FAIL(IMF_ERR_USAGE, "--grid expands to more than %d configurations", IMF_TUNE_MAX_CONFIGS);
  }
  IMF_CHECK(imf_alloc(idx, (size_t)total, sizeof **idx));
  for (int64_t c = 0; c < total; c++) (*idx)[c] = c;
  int64_t want = random > 0 && random < total ? random : total;
  if (random > total) imf_warn("--random %d: the grid has only %lld configurations; trying them all", random, (long long)total);
  if (want < total) {
    uint64_t s = seed;
    for (int64_t c = 0; c < want; c++) {
      int64_t j = c + (int64_t)(mix64(&s) % (uint64_t)(total - c));
      int64_t t = (*idx)[c];
      (*idx)[c] = (*idx)[j];
      (*idx)[j] = t;
    }
    qsort(*idx, (size_t)want, sizeof **idx, cmp_i64);
  }
  *n = (int)want;
  return IMF_OK;
}

/* ---------------------------------------------------------------- the metric */

static int is_lower_better(const char *name) { return !strcmp(name, "rmse") || !strcmp(name, "mae"); }

/* The metric names imf_eval_cv reports under cfg's eval.k (same for every candidate), and the
 * metric tune.metric picks: auto = rmse for rating models (als, bpmf, bias), ndcg@K (first
 * cut-off) for the implicit ones (ials, ease, pop: imf_model_type_is_implicit, the rule
 * update.metric's auto follows); a grid mixing the two must name one. */
static imf_status choose_metric(const imf_config *cfg, const imf_tune_report *rep, const grid_values *g,
                                imf_tune_report *out) {
  imf_metrics dummy;
  memset(&dummy, 0, sizeof dummy);
  int ks[IMF_MAX_CUTOFFS];
  IMF_CHECK(imf_parse_cutoffs(imf_cfg_str(cfg, "eval.k"), ks, &dummy.nk));
  for (int a = 0; a < dummy.nk; a++) dummy.rank[a].k = ks[a];
  double vals[IMF_EVAL_MAX_NAMES];
  out->nmetrics = imf_metrics_list(&dummy, out->names, vals);
  const char *want = imf_cfg_str(cfg, "tune.metric");
  char buf[32];
  if (!strcmp(want, "auto")) {
    int implicit = 0, explicit_ = 0, typed = 0;
    for (int k = 0; k < rep->nkeys; k++)
      if (!strcmp(rep->key[k], "model.type")) {
        typed = 1;
        for (int j = 0; j < g->n[k]; j++) {
          if (imf_model_type_is_implicit(g->v[k][j])) implicit = 1;
          else explicit_ = 1;
        }
      }
    if (!typed) {
      implicit = imf_model_type_is_implicit(imf_cfg_str(cfg, "model.type"));
      explicit_ = !implicit;
    }
    if (implicit && explicit_)
      IMF_FAIL(IMF_ERR_USAGE, "--grid mixes implicit (ials, ease, pop) and rating (als, bpmf, bias) model types: set tune.metric "
               "(e.g. --set tune.metric=ndcg@%d)", ks[0]);
    if (implicit) snprintf(buf, sizeof buf, "ndcg@%d", ks[0]);
    else snprintf(buf, sizeof buf, "rmse");
    want = buf;
  }
  out->metric_index = -1;
  for (int j = 0; j < out->nmetrics; j++)
    if (!strcmp(out->names[j], want)) out->metric_index = j;
  if (out->metric_index < 0)
    IMF_FAIL(IMF_ERR_USAGE, "tune.metric '%s' is not a reported metric (rmse, mae, or e.g. ndcg@K with K in eval.k = %s)",
             want, imf_cfg_str(cfg, "eval.k"));
  snprintf(out->metric, sizeof out->metric, "%s", want);
  out->maximise = !is_lower_better(want);
  return IMF_OK;
}

/* Whether the best candidate sits on the edge of a numeric grid axis: with three or more numeric
 * values, a best value at the lowest or highest says the optimum may lie past the grid (a tuned
 * lambda of 0.2 on a grid ending at 0.2). Two values always put the best on an edge: no signal. */
static void find_edges(const grid_values *g, imf_tune_report *rep) {
  for (int k = 0; k < rep->nkeys; k++) {
    rep->edge[k] = 0;
    if (g->n[k] < 3) continue;
    double lo = INFINITY, hi = -INFINITY, best = NAN;
    int numeric = 1;
    for (int j = 0; j < g->n[k] && numeric; j++) {
      char *end = NULL;
      double v = strtod(g->v[k][j], &end);
      numeric = end != g->v[k][j] && !*end && isfinite(v);
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    if (numeric) best = strtod(rep->rows[rep->best].value[k], NULL);
    if (!numeric || !(hi > lo)) continue;
    rep->edge[k] = best == lo ? -1 : best == hi ? 1 : 0;
    if (rep->edge[k])
      imf_warn("tune: the best %s = %s is the %s value of its grid (%g..%g): the optimum may lie %s it; "
               "extend the grid", rep->key[k], rep->rows[rep->best].value[k], rep->edge[k] < 0 ? "lowest" : "highest",
               lo, hi,
               rep->edge[k] < 0 ? "below" : "above");
  }
}

/* ---------------------------------------------------------------- the search */

/* The effective configuration of candidate c: cfg with the candidate's grid values set. */
static imf_status candidate_config(const imf_config *cfg, const imf_tune_report *rep, int c, imf_config **out) {
  IMF_CHECK(copy_config(cfg, out));
  for (int k = 0; k < rep->nkeys; k++) {
    char as[512];
    snprintf(as, sizeof as, "%s=%s", rep->key[k], rep->rows[c].value[k]);
    imf_status st = imf_config_set(*out, as);
    if (st != IMF_OK) {
      imf_config_destroy(out);
      return st;
    }
  }
  return IMF_OK;
}

/* Relative cost of a candidate, only to order the work (costliest first, so that the last
 * candidates handed out are the cheap ones and the groups finish close together). A sweep solves
 * k x k normal equations built from k^2 terms per rating, so iterations x k^2 (x k/64 for the
 * solves, which matter at large k); implicit ALS and BPMF add a constant factor; EASE is one
 * n^3 solve, whatever k: treated as costliest. Ties keep grid order. */
static double candidate_cost(const imf_config *cc) {
  const char *type = imf_cfg_str(cc, "model.type");
  if (!strcmp(type, "ease")) return HUGE_VAL;
  double k = (double)imf_cfg_int(cc, "model.k"), it = (double)imf_cfg_int(cc, "model.iterations");
  double f = !strcmp(type, "bpmf") ? 1.5 : !strcmp(type, "ials") ? 1.3 : 1.0;
  return f * it * k * k * (1.0 + k / 64.0);
}

typedef struct {
  int c;
  double cost;
} cost_rank;

static int by_cost_desc(const void *a, const void *b) {
  const cost_rank *x = a, *y = b;
  if (x->cost != y->cost) return x->cost > y->cost ? -1 : 1;
  return (x->c > y->c) - (x->c < y->c);
}

/* The order candidates are handed out in (costliest first). Same on every rank. */
static imf_status work_order(const imf_config *cfg, const imf_tune_report *rep, int **order) {
  cost_rank *cr = NULL;
  imf_config *cc = NULL;
  imf_status st = IMF_OK;
  *order = NULL;
  IMF_TRY(imf_alloc(&cr, (size_t)rep->nconfigs, sizeof *cr), out);
  IMF_TRY(imf_alloc(order, (size_t)rep->nconfigs, sizeof **order), out);
  for (int c = 0; c < rep->nconfigs; c++) {
    IMF_TRY(candidate_config(cfg, rep, c, &cc), out);
    cr[c].c = c;
    cr[c].cost = candidate_cost(cc);
    imf_config_destroy(&cc);
  }
  qsort(cr, (size_t)rep->nconfigs, sizeof *cr, by_cost_desc);
  for (int c = 0; c < rep->nconfigs; c++) (*order)[c] = cr[c].c;
out:
  imf_config_destroy(&cc);
  imf_free(&cr);
  if (st != IMF_OK) imf_free(order);
  return st;
}

/* Who runs what. static: group g takes positions g, g + G, g + 2G, ... of the work order.
 * dynamic: a counter in an MPI window on rank 0 of the whole communicator; a group's leader
 * takes the next position with MPI_Fetch_and_op (passive target: nobody waits for a
 * coordinator) and broadcasts it to its group, so a group that is slowed down (by a costlier
 * candidate, a busier node, a noisy neighbour) simply takes fewer. On one node Open MPI's osc/sm
 * does the fetch-and-add with a shared-memory atomic; across nodes a network with RMA atomics
 * (UCX) does it in hardware, otherwise the target's progress engine serves it, which can make a
 * leader wait until rank 0 enters MPI: use tune.schedule = static there. Which group ran a
 * candidate never changes its numbers (the folds depend on eval.seed only). */
typedef struct {
  int dynamic, group, ngroups, leader, locked;
  int64_t next; /* static: the next position */
  MPI_Win win;
  int64_t *counter;
} scheduler;

static imf_status sched_open(MPI_Comm comm, int dynamic, int group, int ngroups, int leader, scheduler *s) {
  memset(s, 0, sizeof *s);
  s->win = MPI_WIN_NULL;
  s->dynamic = dynamic;
  s->group = group;
  s->ngroups = ngroups;
  s->leader = leader;
  s->next = group;
  if (!dynamic) return IMF_OK;
  int rank;
  MPI_Comm_rank(comm, &rank);
  IMF_MPI(MPI_Win_allocate(rank == 0 ? (MPI_Aint)sizeof(int64_t) : 0, (int)sizeof(int64_t), MPI_INFO_NULL, comm,
                           &s->counter, &s->win));
  if (rank == 0) {
    IMF_MPI(MPI_Win_lock(MPI_LOCK_EXCLUSIVE, 0, 0, s->win));
    *s->counter = 0;
    IMF_MPI(MPI_Win_unlock(0, s->win));
  }
  IMF_MPI(MPI_Barrier(comm)); /* the counter is 0 before anyone takes from it */
  if (leader) {
    IMF_MPI(MPI_Win_lock_all(0, s->win));
    s->locked = 1;
  }
  return IMF_OK;
}

/* Collective over the group: the next work position for this group (>= n: none left). */
static imf_status sched_next(scheduler *s, MPI_Comm gcomm, int64_t *pos) {
  if (!s->dynamic) {
    *pos = s->next;
    s->next += s->ngroups;
    return IMF_OK;
  }
  int64_t one = 1, got = 0;
  if (s->leader) {
    IMF_MPI(MPI_Fetch_and_op(&one, &got, MPI_INT64_T, 0, 0, MPI_SUM, s->win));
    IMF_MPI(MPI_Win_flush(0, s->win));
  }
  IMF_MPI(MPI_Bcast(&got, 1, MPI_INT64_T, 0, gcomm));
  *pos = got;
  return IMF_OK;
}

/* Collective over the whole communicator (every rank calls it once, whatever happened). */
static void sched_close(scheduler *s) {
  if (s->locked) MPI_Win_unlock_all(s->win);
  s->locked = 0;
  if (s->win != MPI_WIN_NULL) MPI_Win_free(&s->win);
}

/* This group's share of the candidates (sched_next). Metrics land in buf (row-major: mean[nm],
 * sd[nm], seconds, group + 1 per candidate), zeros elsewhere. A failing group stops taking work;
 * the others finish the rest. */
static imf_status run_group(MPI_Comm gcomm, int group, const imf_config *cfg, const imf_tune_spec *sp,
                            imf_tune_report *rep, const int *order, scheduler *sch, double *buf, int stride) {
  imf_dataset d;
  memset(&d, 0, sizeof d);
  imf_status st = IMF_OK;
  imf_config *cc = NULL;
  imf_eval_report *er = NULL;
  int grank;
  MPI_Comm_rank(gcomm, &grank);
  if (group >= rep->nconfigs) return IMF_OK; /* more groups than candidates: nothing to do */
  IMF_TRY(imf_alloc(&er, 1, sizeof *er), out);
  IMF_TRY(imf_dataset_from_store(gcomm, sp->store, &d), out);
  IMF_TRY(imf_eval_binarize(cfg, &d), out);
  for (;;) {
    int64_t pos = rep->nconfigs;
    IMF_TRY(sched_next(sch, gcomm, &pos), out);
    if (pos >= rep->nconfigs) break;
    int c = order[pos];
    IMF_TRY(candidate_config(cfg, rep, c, &cc), out);
    /* the per-sweep lines of every fold of every candidate would drown the table: silence
     * them, one line per candidate instead */
    int quiet = imf_log_quiet();
    imf_log_setup(imf_log_rank(), 1, imf_log_is_json() ? IMF_LOG_JSON : IMF_LOG_TEXT);
    st = imf_eval_cv(gcomm, cc, &d, rep->nfolds, er);
    imf_log_setup(imf_log_rank(), quiet, imf_log_is_json() ? IMF_LOG_JSON : IMF_LOG_TEXT);
    IMF_TRY(st, out);
    imf_config_destroy(&cc);
    if (grank == 0) {
      double *row = buf + (size_t)c * (size_t)stride;
      for (int j = 0; j < rep->nmetrics; j++) {
        row[j] = er->mean[j];
        row[rep->nmetrics + j] = er->sd[j];
      }
      row[2 * rep->nmetrics] = er->seconds;
      row[2 * rep->nmetrics + 1] = group + 1; /* 1-based so that 0 means "not run here" */
    }
    char label[512];
    imf_tune_label(rep, c, label, sizeof label);
    imf_info("candidate %d/%d (%s): %s = %.5f ± %.5f in %.1f s", c + 1, rep->nconfigs, label, rep->metric,
             er->mean[rep->metric_index], er->sd[rep->metric_index], er->seconds);
  }
out:
  imf_config_destroy(&cc);
  imf_free(&er);
  imf_dataset_free(&d);
  return st;
}

imf_status imf_tune(MPI_Comm comm, const imf_config *cfg, const imf_tune_spec *sp, imf_tune_report *rep) {
  memset(rep, 0, sizeof *rep);
  double t0 = imf_wtime();
  int rank, size;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  grid_values g;
  memset(&g, 0, sizeof g);
  int64_t *idx = NULL;
  int *order = NULL;
  double *buf = NULL;
  scheduler sch;
  memset(&sch, 0, sizeof sch);
  sch.win = MPI_WIN_NULL;
  MPI_Comm gcomm = MPI_COMM_NULL;
  imf_config *best = NULL;
  imf_status st = IMF_OK;

  /* Everything up to the split is a deterministic function of the arguments, identical on
   * every rank, so a bad grid fails everywhere without an agreement round. */
  if (!sp->store) IMF_TRY(IMF_RAISE(IMF_ERR_USAGE, "tune needs --data STORE (the training ratings)"), out);
  IMF_TRY(parse_grid(cfg, sp->grid, rep, &g), out);
  IMF_TRY(choose_metric(cfg, rep, &g, rep), out);
  rep->nfolds = sp->folds > 0 ? sp->folds : (int)imf_cfg_int(cfg, "tune.folds");
  if (rep->nfolds < 2 || rep->nfolds > IMF_EVAL_MAX_FOLDS)
    IMF_TRY(IMF_RAISE(IMF_ERR_USAGE, "tune needs 2..%d folds, got %d", IMF_EVAL_MAX_FOLDS,
                      rep->nfolds), out);
  if (sp->random < 0) IMF_TRY(IMF_RAISE(IMF_ERR_USAGE, "--random must be positive"), out);
  IMF_TRY(pick_candidates(rep, &g, sp->random, (uint64_t)imf_cfg_int(cfg, "tune.seed"), &idx, &rep->nconfigs), out);
  IMF_TRY(imf_alloc(&rep->rows, (size_t)rep->nconfigs, sizeof *rep->rows), out);
  for (int c = 0; c < rep->nconfigs; c++) {
    int64_t r = idx[c];
    for (int k = rep->nkeys - 1; k >= 0; k--) {
      rep->rows[c].value[k] = strdup(g.v[k][r % g.n[k]]);
      if (!rep->rows[c].value[k]) IMF_TRY(IMF_RAISE(IMF_ERR_NOMEM, "out of memory"), out);
      r /= g.n[k];
    }
  }
  int groups = sp->groups > 0 ? sp->groups : (int)imf_cfg_int(cfg, "tune.groups");
  if (groups <= 0 || groups > size) groups = size;
  rep->ngroups = groups;
  const int dynamic = !strcmp(imf_cfg_str(cfg, "tune.schedule"), "dynamic");
  imf_info("tune: %d configurations x %d folds, %d group%s of ranks (%s schedule), choosing on %s", rep->nconfigs,
           rep->nfolds, groups, groups > 1 ? "s" : "", dynamic ? "dynamic" : "static", rep->metric);
  IMF_TRY(work_order(cfg, rep, &order), out);

  /* Contiguous blocks of ranks per group (sizes differ by at most one). */
  int group = (int)((int64_t)rank * groups / size);
  IMF_MPI_TRY(MPI_Comm_split(comm, group, rank, &gcomm), out);
  int stride = 2 * rep->nmetrics + 2;
  IMF_TRY(imf_alloc(&buf, (size_t)rep->nconfigs * (size_t)stride, sizeof *buf), out);
  {
    int grank;
    MPI_Comm_rank(gcomm, &grank);
    st = sched_open(comm, dynamic && groups > 1, group, groups, grank == 0, &sch);
    IMF_TRY(imf_agree(comm, st), out);
  }
  st = run_group(gcomm, group, cfg, sp, rep, order, &sch, buf, stride);
  sched_close(&sch);
  IMF_TRY(imf_agree(comm, st), out);
  /* exactly one rank (its group's leader) holds each candidate's numbers, others add zeros, so
   * the sum is exact and independent of the grouping */
  {
    int rc = MPI_Allreduce(MPI_IN_PLACE, buf, rep->nconfigs * stride, MPI_DOUBLE, MPI_SUM, comm);
    if (rc != MPI_SUCCESS) IMF_TRY(IMF_MPI_RAISE(rc, "MPI_Allreduce"), out);
  }
  rep->best = -1;
  for (int c = 0; c < rep->nconfigs; c++) {
    imf_tune_row *r = &rep->rows[c];
    const double *row = buf + (size_t)c * (size_t)stride;
    memcpy(r->mean, row, sizeof(double) * (size_t)rep->nmetrics);
    memcpy(r->sd, row + rep->nmetrics, sizeof(double) * (size_t)rep->nmetrics);
    r->seconds = row[2 * rep->nmetrics];
    r->group = (int)row[2 * rep->nmetrics + 1] - 1;
    double v = r->mean[rep->metric_index];
    if (!isfinite(v)) continue;
    /* strict comparison: ties go to the earlier candidate in grid order */
    if (rep->best < 0 || (rep->maximise ? v > rep->rows[rep->best].mean[rep->metric_index]
                                        : v < rep->rows[rep->best].mean[rep->metric_index]))
      rep->best = c;
  }
  if (rep->best < 0)
    IMF_TRY(IMF_RAISE(IMF_ERR_INPUT, "no candidate produced a finite %s (too few ratings?)",
                      rep->metric), out);
  find_edges(&g, rep);
  IMF_TRY(candidate_config(cfg, rep, rep->best, &best), out);
  rep->best_ini = imf_config_dump(best);
  if (!rep->best_ini) IMF_TRY(IMF_RAISE(IMF_ERR_NOMEM, "out of memory"), out);
  rep->seconds = imf_wtime() - t0;
out:
  if (gcomm != MPI_COMM_NULL) MPI_Comm_free(&gcomm);
  imf_free(&order);
  imf_config_destroy(&best);
  imf_free(&buf);
  imf_free(&idx);
  grid_free(&g, IMF_TUNE_MAX_KEYS);
  if (st != IMF_OK) imf_tune_report_free(rep);
  return st;
}

void imf_tune_report_free(imf_tune_report *rep) {
  if (rep->rows)
    for (int c = 0; c < rep->nconfigs; c++)
      for (int k = 0; k < rep->nkeys; k++) free(rep->rows[c].value[k]);
  imf_free(&rep->rows);
  free(rep->best_ini);
  rep->best_ini = NULL;
}

/* ---------------------------------------------------------------- output */

void imf_tune_label(const imf_tune_report *rep, int row, char *out, size_t cap) {
  size_t len = 0;
  out[0] = '\0';
  for (int k = 0; k < rep->nkeys && len < cap; k++) {
    const char *key = rep->key[k] + (strncmp(rep->key[k], "model.", 6) ? 0 : 6);
    int n = snprintf(out + len, cap - len, "%s%s=%s", k ? " " : "", key, rep->rows[row].value[k]);
    if (n < 0) break;
    len += (size_t)n;
  }
}

/* fclose an output written under tmp, and rename it onto path if every write went through. */
static imf_status close_output(FILE *f, const char *tmp, const char *path) {
  int e = ferror(f) ? (errno ? errno : EIO) : 0;
  if (fclose(f) != 0 && !e) e = errno;
  if (e) {
    imf_output_discard(tmp, path);
    return imf_output_write_error(path, e);
  }
  return imf_output_commit(tmp, path);
}

static void csv_num(FILE *f, double v) {
  if (isfinite(v)) fprintf(f, ",%.6g", v);
  else fputs(",", f);
}

imf_status imf_tune_write_table(const imf_tune_report *rep, const char *path) {
  char tmp[4200]; /* renamed when complete (fsio.h) */
  imf_output_tmpname(path, tmp, sizeof tmp);
  FILE *f = fopen(tmp, "w");
  if (!f) return imf_output_write_error(path, errno);
  for (int k = 0; k < rep->nkeys; k++) fprintf(f, "%s%s", k ? "," : "", rep->key[k] + 6);
  for (int j = 0; j < rep->nmetrics; j++) fprintf(f, ",%s_mean,%s_sd", rep->names[j], rep->names[j]);
  fprintf(f, ",seconds,best\n");
  for (int c = 0; c < rep->nconfigs; c++) {
    for (int k = 0; k < rep->nkeys; k++) fprintf(f, "%s%s", k ? "," : "", rep->rows[c].value[k]);
    for (int j = 0; j < rep->nmetrics; j++) {
      csv_num(f, rep->rows[c].mean[j]);
      csv_num(f, rep->rows[c].sd[j]);
    }
    fprintf(f, ",%.3f,%d\n", rep->rows[c].seconds, c == rep->best);
  }
  return close_output(f, tmp, path);
}

imf_status imf_tune_write_best(const imf_tune_report *rep, const char *path) {
  char tmp[4200]; /* renamed when complete (fsio.h) */
  imf_output_tmpname(path, tmp, sizeof tmp);
  FILE *f = fopen(tmp, "w");
  if (!f) return imf_output_write_error(path, errno);
  char label[1024];
  imf_tune_label(rep, rep->best, label, sizeof label);
  fprintf(f, "; written by incremf tune: best of %d configurations by %d-fold cross-validation\n", rep->nconfigs,
          rep->nfolds);
  fprintf(f, "; %s, %s = %.6g ± %.6g\n", label, rep->metric, rep->rows[rep->best].mean[rep->metric_index],
          rep->rows[rep->best].sd[rep->metric_index]);
  fputs(rep->best_ini, f);
  return close_output(f, tmp, path);
}
