/* baseline.c - the pop and bias reference models (baseline.h): fitted on a training partition
 * by the train job (trainrun.c), by evaluate's in-memory retraining (evaluate.c) and by every
 * update strategy (update.c: a retrain), refreshed by forget (maintain.c). Each rank computes
 * the rows of its own user and item blocks in CSR order and imf_allgather_rows replicates
 * them, so nothing depends on the rank count. */
#include "baseline.h"
#include "error.h"
#include "exchange.h"
#include "log.h"

#include <math.h>
#include <string.h>

int imf_baseline_type(imf_model_type t) { return t == IMF_MODEL_POP || t == IMF_MODEL_BIAS; }

double imf_baseline_pos_threshold(const imf_config *cfg) {
  /* model.positive_threshold of a configuration (none: NaN, every rating a positive); a
   * configuration without the key (written before it existed) has none either */
  double t = NAN;
  if (imf_config_get_double(cfg, "model.positive_threshold", &t) != IMF_OK) {
    imf_err_clear();
    return NAN;
  }
  return t;
}

double imf_baseline_pos_threshold_text(const char *config_text) {
  imf_config *c = NULL;
  double t = NAN;
  if (config_text && imf_config_create(&c) == IMF_OK && imf_config_load_string(c, config_text, "version") == IMF_OK)
    t = imf_baseline_pos_threshold(c);
  imf_err_clear();
  imf_config_destroy(&c);
  return t;
}

/* bi of this rank's item block rows (into blk, indexed from part->by_item.lo), for the items
 * flagged in `touched` (NULL: all) below m->nitems: pop counts the positives, bias solves the
 * regularised item bias against m's replicated bu (a user beyond m->nusers has bias 0). */
static void item_block(const imf_partition *p, const imf_model *m, double thr, const unsigned char *touched,
                       float *blk) {
  const imf_csr *c = &p->by_item;
  for (int64_t r = 0; r < c->hi - c->lo; r++) {
    int64_t i = c->lo + r;
    if (i >= m->nitems || (touched && !touched[i])) continue;
    double s = 0;
    for (int64_t j = c->ptr[r]; j < c->ptr[r + 1]; j++) {
      int64_t u = c->idx[j];
      if (m->type == IMF_MODEL_POP) s += isnan(thr) || c->val[j] >= thr;
      else s += (double)c->val[j] - m->mu - (u < m->nusers ? m->bu[u] : 0.0);
    }
    double n = (double)(c->ptr[r + 1] - c->ptr[r]);
    blk[r] = (float)(m->type == IMF_MODEL_POP ? s : s / (m->lambda_bias + n));
  }
}

/* bu of this rank's user block rows (bias only), against m's replicated bi. */
static void user_block(const imf_partition *p, const imf_model *m, float *blk) {
  const imf_csr *c = &p->by_user;
  for (int64_t r = 0; r < c->hi - c->lo; r++) {
    double s = 0;
    for (int64_t j = c->ptr[r]; j < c->ptr[r + 1]; j++) s += (double)c->val[j] - m->mu - m->bi[c->idx[j]];
    blk[r] = (float)(s / (m->lambda_bias + (double)(c->ptr[r + 1] - c->ptr[r])));
  }
}

/* Replicate a side: v (n = start[nranks] entries, every rank's copy) gets rank r's block from
 * rank r. */
static imf_status replicate(MPI_Comm comm, const int64_t *start, float *v) {
  int rank;
  MPI_Comm_rank(comm, &rank);
  return imf_allgather_rows(comm, start, v + start[rank], v, 1);
}

/* One history row of bias: training RMSE and loss, validation RMSE/MAE on part's holdout. */
static imf_status bias_metrics(MPI_Comm comm, const imf_partition *p, const imf_model *m, imf_sweep_metrics *h) {
  const imf_csr *c = &p->by_user, *v = &p->holdout;
  int64_t nr = c->hi - c->lo;
  double *row = NULL, s[4] = {0, 0, 0, 0};
  IMF_CHECK(imf_alloc(&row, (size_t)(nr ? nr : 1) * 4, sizeof *row));
  for (int64_t r = 0; r < nr; r++) {
    double b = m->mu + m->bu[c->lo + r];
    for (int64_t j = c->ptr[r]; j < c->ptr[r + 1]; j++) {
      double e = (double)c->val[j] - b - m->bi[c->idx[j]];
      row[4 * r] += e * e;
    }
    for (int64_t j = v->ptr[r]; j < v->ptr[r + 1]; j++) {
      double e = (double)v->val[j] - b - (v->idx[j] < m->nitems ? m->bi[v->idx[j]] : 0.0);
      row[4 * r + 1] += e * e;
      row[4 * r + 2] += fabs(e);
      row[4 * r + 3] += 1;
    }
  }
  imf_status st = imf_det_sum_rows(comm, p->user_start, row, 4, s);
  imf_free(&row);
  IMF_CHECK(st);
  double reg = 0; /* replicated vectors: every rank adds them in the same order */
  for (int64_t u = 0; u < m->nusers; u++) reg += (double)m->bu[u] * m->bu[u];
  for (int64_t i = 0; i < m->nitems; i++) reg += (double)m->bi[i] * m->bi[i];
  h->train_loss = s[0] + m->lambda_bias * reg;
  h->train_rmse = p->nnz_train > 0 ? sqrt(s[0] / (double)p->nnz_train) : NAN;
  h->val_rmse = s[3] > 0 ? sqrt(s[1] / s[3]) : NAN;
  h->val_mae = s[3] > 0 ? s[2] / s[3] : NAN;
  return IMF_OK;
}

static imf_status fit_bias(MPI_Comm comm, const imf_partition *p, int64_t sweeps, imf_model *m) {
  int rank;
  MPI_Comm_rank(comm, &rank);
  const imf_csr *c = &p->by_user;
  int64_t nr = c->hi - c->lo;
  double *row = NULL, sum = 0;
  IMF_CHECK(imf_alloc(&row, (size_t)(nr ? nr : 1), sizeof *row));
  for (int64_t r = 0; r < nr; r++)
    for (int64_t j = c->ptr[r]; j < c->ptr[r + 1]; j++) row[r] += c->val[j];
  imf_status st = imf_det_sum_rows(comm, p->user_start, row, 1, &sum);
  imf_free(&row);
  IMF_CHECK(st);
  m->mu = p->nnz_train > 0 ? sum / (double)p->nnz_train : 0.0;
  for (int64_t s = 0; s < sweeps; s++) {
    double t0 = imf_wtime();
    user_block(p, m, m->bu + p->user_start[rank]);
    IMF_CHECK(replicate(comm, p->user_start, m->bu));
    item_block(p, m, NAN, NULL, m->bi + p->item_start[rank]);
    IMF_CHECK(replicate(comm, p->item_start, m->bi));
    imf_sweep_metrics h = {.iteration = s + 1};
    IMF_CHECK(bias_metrics(comm, p, m, &h));
    h.seconds = imf_wtime() - t0;
    IMF_CHECK(imf_model_push_history(m, &h));
    m->iteration = s + 1;
  }
  return IMF_OK;
}

imf_status imf_baseline_fit(MPI_Comm comm, const imf_config *cfg, const imf_partition *part, imf_model **out) {
  *out = NULL;
  imf_model_type type;
  IMF_CHECK(imf_model_type_parse(imf_cfg_str(cfg, "model.type"), &type));
  if (!imf_baseline_type(type))
    IMF_FAIL(IMF_ERR_USAGE, "model type '%s' is not a baseline (pop|bias)", imf_model_type_name(type));
  double t0 = imf_wtime();
  imf_model *m = NULL;
  IMF_CHECK(imf_agree(comm, imf_model_create(type, 1, part->nusers, part->nitems, 1, &m)));
  m->seed = (uint64_t)imf_cfg_int(cfg, "model.seed");
  imf_status st = IMF_OK;
  if (type == IMF_MODEL_POP) {
    int rank;
    MPI_Comm_rank(comm, &rank);
    /* The callers hand over the training data after imf_implicit_transform (scale.h), which
     * keeps only the positives (and may have turned their values into confidences: 1 under
     * model.confidence = binary): every rating in the partition counts. */
    double thr = NAN;
    item_block(part, m, thr, NULL, m->bi + part->item_start[rank]);
    st = replicate(comm, part->item_start, m->bi);
    m->iteration = 1;
    if (st == IMF_OK)
      imf_info("pop: %lld items scored by their count of %s training ratings (%.2f s)", (long long)m->nitems,
               isnan(imf_baseline_pos_threshold(cfg)) ? "all" : "positive", imf_wtime() - t0);
  } else {
    m->lambda_bias = imf_cfg_double(cfg, "model.lambda_bias");
    int64_t sweeps = imf_cfg_int(cfg, "model.iterations");
    st = fit_bias(comm, part, sweeps > 0 ? sweeps : 1, m);
    if (st == IMF_OK) {
      const imf_sweep_metrics *h = &m->history[m->nhistory - 1];
      char val[64] = ""; /* none without a validation set */
      if (isfinite(h->val_rmse)) snprintf(val, sizeof val, ", validation RMSE %.5f", h->val_rmse);
      imf_info("bias: mu %.5f, lambda_bias %g, %lld sweeps: train RMSE %.5f%s (%.2f s)", m->mu, m->lambda_bias,
               (long long)m->iteration, h->train_rmse, val, imf_wtime() - t0);
    }
  }
  st = imf_agree(comm, st);
  if (st != IMF_OK) imf_model_destroy(&m);
  *out = m;
  return st;
}

void imf_baseline_foldin(const imf_model *m, int64_t ulo, const imf_ratings *r, float *X, float *xb) {
  for (int64_t a = 0; a < r->n;) {
    int64_t u = r->user[a], b = a;
    double s = 0;
    for (; b < r->n && r->user[b] == u; b++) {
      int64_t i = r->item[b];
      s += (double)r->value[b] - m->mu - (i < m->nitems ? m->bi[i] : 0.0);
    }
    memset(X + (u - ulo) * m->kw, 0, sizeof(float) * (size_t)m->kw);
    xb[u - ulo] = m->type == IMF_MODEL_BIAS ? (float)(s / (m->lambda_bias + (double)(b - a))) : 0.0f;
    a = b;
  }
}

imf_status imf_baseline_refresh_items(MPI_Comm comm, const imf_partition *part, imf_model *m,
                                      const unsigned char *touched, double pos_threshold) {
  int rank;
  MPI_Comm_rank(comm, &rank);
  float *v = NULL;
  /* the partition may be larger than an older version: a vector over its items */
  IMF_CHECK(imf_agree(comm, imf_alloc(&v, (size_t)(part->nitems ? part->nitems : 1), sizeof *v)));
  int64_t n = m->nitems < part->nitems ? m->nitems : part->nitems;
  memcpy(v, m->bi, sizeof *v * (size_t)n);
  item_block(part, m, pos_threshold, touched, v + part->item_start[rank]);
  imf_status st = imf_agree(comm, replicate(comm, part->item_start, v));
  if (st == IMF_OK) memcpy(m->bi, v, sizeof *v * (size_t)n);
  imf_free(&v);
  return st;
}
