/* scale.c - the observed rating scale (min, max, step), the auto relevance threshold, and the
 * positives/confidence transform of implicit models. Interfaces and rules: scale.h.
 *
 * The step is a greatest common divisor of real numbers: Euclid's algorithm with a tolerance
 * (a remainder within tol of 0 or of the divisor counts as 0). Values are float32, so the
 * tolerance is relative to their magnitude. A grid of more than MAX_LEVELS levels between min
 * and max is not a rating scale but continuous values: no regular step. After the reduction the
 * step is snapped to (max - min) / levels, so the result does not depend on the order in which
 * ranks' shares were combined. */
#include "scale.h"
#include "error.h"
#include "model.h"
#include "log.h"

#include <math.h>
#include <string.h>

#define MAX_LEVELS 10000.0

static double tol_of(double min, double max) {
  double m = fmax(1.0, fmax(fabs(min), fabs(max)));
  return 1e-5 * m;
}

/* Real gcd of a, b >= 0 within tol (0 is the neutral element). */
static double fgcd(double a, double b, double tol) {
  if (a < b) {
    double t = a;
    a = b;
    b = t;
  }
  while (b > tol) {
    double r = fmod(a, b);
    if (r > b - tol) r = 0;
    a = b;
    b = r;
  }
  return a;
}

/* Fold one difference d >= 0 into the step g (g: 0 none yet, < 0 irregular). */
static double step_add(double g, double d, double tol, double range) {
  if (g < 0 || d <= tol) return g;
  if (g > 0 && fabs(d - nearbyint(d / g) * g) <= tol) return g; /* the common case: on the grid */
  g = fgcd(g, d, tol);
  if (g <= tol || (range > 0 && range / g > MAX_LEVELS)) return -1;
  return g;
}

/* Snap a regular step to (max - min) / levels: the same number however it was reached. */
static void snap(imf_scale *s) {
  if (s->n == 0 || !(s->step > 0)) return;
  double range = s->max - s->min;
  double levels = nearbyint(range / s->step);
  if (levels < 1 || levels > MAX_LEVELS) s->step = -1;
  else s->step = range / levels;
}

void imf_scale_of(const float *v, int64_t n, imf_scale *out) {
  memset(out, 0, sizeof *out);
  if (n <= 0) return;
  double lo = v[0], hi = v[0];
  for (int64_t j = 1; j < n; j++) {
    if (v[j] < lo) lo = v[j];
    if (v[j] > hi) hi = v[j];
  }
  double tol = tol_of(lo, hi), range = hi - lo, g = 0, ig = 0;
  for (int64_t j = 0; j < n && g >= 0; j++) {
    const double d = (double)v[j] - lo; /* >= 0 */
    /* the common case, inline: on the grid already (q + 0.5 truncated: d >= 0, q < 2^62) */
    if (g > 0 && fabs(d - (double)(int64_t)(d * ig + 0.5) * g) <= tol) continue;
    g = step_add(g, d, tol, range);
    ig = g > 0 ? 1.0 / g : 0;
  }
  out->n = n;
  out->min = lo;
  out->max = hi;
  out->step = g;
  snap(out);
}

void imf_scale_merge(imf_scale *a, const imf_scale *b) {
  if (b->n == 0) return;
  if (a->n == 0) {
    *a = *b;
    return;
  }
  double lo = fmin(a->min, b->min), hi = fmax(a->max, b->max);
  double tol = tol_of(lo, hi), range = hi - lo, g = 0;
  if (a->step < 0 || b->step < 0) g = -1;
  g = step_add(g, a->step, tol, range);
  g = step_add(g, b->step, tol, range);
  g = step_add(g, fabs(a->min - b->min), tol, range);
  a->n += b->n;
  a->min = lo;
  a->max = hi;
  a->step = g;
  snap(a);
}

static void scale_op(void *in, void *inout, int *len, MPI_Datatype *dt) {
  (void)dt;
  double *x = in, *y = inout;
  for (int i = 0; i < *len; i++) {
    imf_scale a = {(int64_t)y[4 * i], y[4 * i + 1], y[4 * i + 2], y[4 * i + 3]};
    imf_scale b = {(int64_t)x[4 * i], x[4 * i + 1], x[4 * i + 2], x[4 * i + 3]};
    imf_scale_merge(&a, &b);
    y[4 * i] = (double)a.n;
    y[4 * i + 1] = a.min;
    y[4 * i + 2] = a.max;
    y[4 * i + 3] = a.step;
  }
}

imf_status imf_scale_reduce(MPI_Comm comm, const imf_ratings *r, imf_scale *out) {
  imf_scale mine;
  imf_scale_of(r->value, r->n, &mine);
  double buf[4] = {(double)mine.n, mine.min, mine.max, mine.step}, res[4];
  MPI_Datatype t;
  MPI_Op op;
  IMF_MPI(MPI_Type_contiguous(4, MPI_DOUBLE, &t));
  IMF_MPI(MPI_Type_commit(&t));
  IMF_MPI(MPI_Op_create(scale_op, 1, &op));
  int rc = MPI_Allreduce(buf, res, 1, t, op, comm);
  MPI_Op_free(&op);
  MPI_Type_free(&t);
  if (rc != MPI_SUCCESS) IMF_FAIL(IMF_ERR_RUNTIME, "MPI_Allreduce of the rating scale failed");
  out->n = (int64_t)res[0];
  out->min = res[1];
  out->max = res[2];
  out->step = res[3];
  snap(out);
  return IMF_OK;
}

double imf_scale_auto_threshold(double min, double max, double step) {
  double t = min + 0.75 * (max - min);
  if (step > 0) {
    /* ceil to the grid, a hair of tolerance so that 4.0000001 on an integer grid stays 4 */
    double j = ceil((t - min) / step - 1e-6);
    t = min + j * step;
    if (t > max) t = max;
  }
  return t;
}

imf_status imf_relevance_threshold_scale(const imf_config *cfg, const imf_scale *sc, double *thr) {
  const char *v = imf_cfg_str(cfg, "eval.relevance_threshold");
  if (strcmp(v, "auto") != 0) {
    *thr = imf_cfg_double(cfg, "eval.relevance_threshold"); /* a number, or NaN for none */
    return IMF_OK;
  }
  if (sc && sc->n > 0) {
    *thr = imf_scale_auto_threshold(sc->min, sc->max, sc->step > 0 ? sc->step : 0);
    return IMF_OK;
  }
  double lo = imf_cfg_double(cfg, "clean.scale_min"), hi = imf_cfg_double(cfg, "clean.scale_max");
  if (isfinite(lo) && isfinite(hi) && hi >= lo) {
    *thr = imf_scale_auto_threshold(lo, hi, 0);
    imf_warn("eval.relevance_threshold = auto: the rating scale was not recorded; using clean.scale_min/max "
             "(%g..%g): threshold %g", lo, hi, *thr);
    return IMF_OK;
  }
  *thr = 4;
  imf_warn("eval.relevance_threshold = auto: the rating scale is unknown (a store written before incremf "
           "recorded it, and no clean.scale_min/max): using 4; set eval.relevance_threshold to choose");
  return IMF_OK;
}

imf_status imf_relevance_threshold(const imf_config *cfg, const imf_store *s, double *thr) {
  imf_scale sc = {0};
  if (s) {
    double lo, hi, step;
    if (imf_store_scale(s, &lo, &hi, &step)) {
      sc.n = 1;
      sc.min = lo;
      sc.max = hi;
      sc.step = step;
    } else {
      /* the clean.scale_* keys recorded in the store, when the config has none */
      imf_store_info info;
      memset(&info, 0, sizeof info);
      imf_store_configured_scale(s, &info.scale_min, &info.scale_max);
      if (isfinite(info.scale_min) && isfinite(info.scale_max) && info.scale_max >= info.scale_min &&
          !strcmp(imf_cfg_str(cfg, "eval.relevance_threshold"), "auto")) {
        *thr = imf_scale_auto_threshold(info.scale_min, info.scale_max, 0);
        imf_warn("eval.relevance_threshold = auto: the store's rating scale was not recorded; using its "
                 "clean.scale_min/max (%g..%g): threshold %g", info.scale_min, info.scale_max, *thr);
        return IMF_OK;
      }
    }
  }
  return imf_relevance_threshold_scale(cfg, sc.n ? &sc : NULL, thr);
}

/* ---------------------------------------------------------------------------------------- */
/* positives and confidence                                                                 */

imf_status imf_implicit_opts_from(const imf_config *cfg, imf_implicit_opts *o) {
  memset(o, 0, sizeof *o);
  const char *type = imf_cfg_str(cfg, "model.type");
  o->active = imf_model_type_is_implicit(type);
  o->positive_threshold = imf_cfg_double(cfg, "model.positive_threshold");
  const char *c = imf_cfg_str(cfg, "model.confidence");
  /* auto: once a threshold has turned star ratings into positives, how far above the threshold a
   * rating is says little about preference, and a value-weighted confidence measured worse
   * (2026-12-07, `incremf tune`, 3-fold ndcg@10 of iALS at lambda 50: binary 0.312 vs linear
   * 0.264 on ml-latest-small, 0.119 vs 0.103 on MovieTweetings); counts (no threshold) keep the
   * linear c = 1 + alpha r of Hu, Koren and Volinsky. */
  if (!strcmp(c, "auto")) c = isnan(o->positive_threshold) ? "linear" : "binary";
  o->confidence = !strcmp(c, "log") ? IMF_CONF_LOG : !strcmp(c, "binary") ? IMF_CONF_BINARY : IMF_CONF_LINEAR;
  o->epsilon = imf_cfg_double(cfg, "model.epsilon");
  if (o->confidence == IMF_CONF_LOG && !(o->epsilon > 0))
    IMF_FAIL(IMF_ERR_USAGE, "model.epsilon must be > 0 with model.confidence = log, got %g", o->epsilon);
  return IMF_OK;
}

float imf_implicit_value(const imf_implicit_opts *o, float r) {
  if (!o->active) return r;
  if (!isnan(o->positive_threshold) && !(r >= o->positive_threshold)) return NAN;
  switch (o->confidence) {
  case IMF_CONF_LOG:
    return (float)log1p((double)r / o->epsilon);
  case IMF_CONF_BINARY:
    return 1.0f;
  default:
    return r;
  }
}

static int identity(const imf_implicit_opts *o) {
  return !o->active || (isnan(o->positive_threshold) && o->confidence == IMF_CONF_LINEAR);
}

void imf_implicit_apply(const imf_implicit_opts *o, imf_ratings *r) {
  if (identity(o)) return;
  int64_t w = 0;
  for (int64_t j = 0; j < r->n; j++) {
    float v = imf_implicit_value(o, r->value[j]);
    if (isnan(v)) continue;
    r->user[w] = r->user[j];
    r->item[w] = r->item[j];
    r->value[w] = v;
    r->time[w] = r->time[j];
    w++;
  }
  r->n = w;
}

imf_status imf_implicit_transform(const imf_config *cfg, imf_ratings *r) {
  imf_implicit_opts o;
  IMF_CHECK(imf_implicit_opts_from(cfg, &o));
  imf_implicit_apply(&o, r);
  return IMF_OK;
}

void imf_implicit_history(const imf_implicit_opts *o, imf_history *h) {
  if (identity(o) || !h->ptr) return;
  int64_t w = 0, start = 0;
  for (int64_t row = 0; row < h->n; row++) {
    int64_t end = h->ptr[row + 1];
    h->ptr[row] = w;
    for (int64_t j = start; j < end; j++) {
      float v = imf_implicit_value(o, h->value[j]);
      if (isnan(v)) continue;
      h->other[w] = h->other[j];
      h->value[w] = v;
      if (h->old) h->old[w] = isnan(h->old[j]) ? NAN : imf_implicit_value(o, h->old[j]);
      w++;
    }
    start = end;
  }
  h->ptr[h->n] = w;
}

void imf_implicit_describe(const imf_implicit_opts *o, char *buf, size_t cap) {
  static const char *names[] = {"linear", "log", "binary"};
  if (!o->active) {
    snprintf(buf, cap, "explicit");
    return;
  }
  char thr[32] = "none";
  if (!isnan(o->positive_threshold)) snprintf(thr, sizeof thr, "%g", o->positive_threshold);
  snprintf(buf, cap, "positive_threshold=%s confidence=%s epsilon=%g", thr, names[o->confidence], o->epsilon);
}
