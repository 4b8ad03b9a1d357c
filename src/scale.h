/* scale.h - what the rating values look like, and what an implicit model makes of them.
 *
 * Scale: the observed minimum, maximum and step of a set of rating values (the step is the
 * largest s such that every value is min + j*s for an integer j, within float tolerance: 0.5
 * for half stars, 1 for integer stars; none when the values are on no regular grid). `prepare`
 * and `append` record it per batch and for the store (store.c, docs/FORMAT.md "MANIFEST");
 * every rank measures its share and one MPI reduction combines them.
 *
 * Relevance: eval.relevance_threshold = auto resolves here, in one place, against the recorded
 * scale (docs/METRICS.md "Relevance threshold").
 *
 * Positives and confidence (model.positive_threshold, model.confidence, model.epsilon): the one
 * transform of the ratings an implicit model (ials, ease, pop) trains on, applied by train,
 * update, evaluate and tune alike so that a model sees the same data whichever command built it
 * (README "Implicit feedback"). */
#ifndef IMF_SCALE_H
#define IMF_SCALE_H
#include "config.h"
#include "ratings.h"
#include "store.h"
#include <mpi.h>

typedef struct {
  int64_t n;   /* values measured (0: none, the rest is meaningless) */
  double min, max;
  double step; /* > 0: the regular step; 0: one distinct value only; < 0: no regular step */
} imf_scale;

/* (local) The scale of n values. */
void imf_scale_of(const float *v, int64_t n, imf_scale *out);
/* (local) Combine b into a (a's values and b's together). */
void imf_scale_merge(imf_scale *a, const imf_scale *b);
/* Collective: the scale of every rank's ratings (one MPI_Allreduce). */
imf_status imf_scale_reduce(MPI_Comm comm, const imf_ratings *r, imf_scale *out);

/* eval.relevance_threshold resolved: a number stays; none gives NaN (every held-out item is
 * relevant); auto gives imf_scale_auto_threshold of the store's recorded scale (s may be NULL),
 * falling back to clean.scale_min/max of cfg and then to 4, with a warning, when the scale is
 * unknown. */
imf_status imf_relevance_threshold(const imf_config *cfg, const imf_store *s, double *thr);
/* The same against a scale measured on the data (evaluate --input): sc may be NULL. */
imf_status imf_relevance_threshold_scale(const imf_config *cfg, const imf_scale *sc, double *thr);
/* The auto rule: min + 0.75 (max - min), rounded up to the scale's grid (min + j*step; no step:
 * not rounded). 4 on 1..5 (step 1 or 0.5), 8 on 0..10 (step 1), 7.5 on 0..10 (step 0.5). */
double imf_scale_auto_threshold(double min, double max, double step);

/* ---- positives and confidence of implicit models ---- */
typedef enum { IMF_CONF_LINEAR = 0, IMF_CONF_LOG, IMF_CONF_BINARY } imf_confidence;
typedef struct {
  int active;                /* 0: the model is explicit (als, bpmf, bias): values untouched */
  double positive_threshold; /* NaN: every rating is a positive */
  imf_confidence confidence;
  double epsilon;
} imf_implicit_opts;

/* The options of a configuration (the model's recorded one where there is a model): active
 * for model.type ials, ease and pop. IMF_ERR_USAGE for a bad epsilon. */
imf_status imf_implicit_opts_from(const imf_config *cfg, imf_implicit_opts *o);
/* (local) The training value of a rating r: NaN when it is not a positive (r below the
 * threshold), else r (linear), log(1 + r/epsilon) (log) or 1 (binary); r itself when !active.
 * iALS's confidence is c = 1 + alpha * value, so the three give c = 1 + alpha r,
 * 1 + alpha log(1 + r/eps) and 1 + alpha. */
float imf_implicit_value(const imf_implicit_opts *o, float r);
/* (local) Apply it to ratings in place: non-positives are dropped (order kept), the rest take
 * their training value. A no-op for explicit models. */
void imf_implicit_apply(const imf_implicit_opts *o, imf_ratings *r);
/* (local) imf_implicit_opts_from + imf_implicit_apply. */
imf_status imf_implicit_transform(const imf_config *cfg, imf_ratings *r);
/* (local) The same on fold-in histories (store.h): a pair is dropped when its effective value
 * is not a positive; value and old (NaN stays NaN; an old value below the threshold becomes
 * NaN: the model never saw it as a positive) take training values. */
void imf_implicit_history(const imf_implicit_opts *o, imf_history *h);
/* (local) One line describing the options, e.g. "positive_threshold=4 confidence=log epsilon=1"
 * ("explicit" when not active). */
void imf_implicit_describe(const imf_implicit_opts *o, char *buf, size_t cap);
#endif
