/* api.c - the embedding API of incremf.h for a trained model: open a version of a model
 * directory with the store it was trained on, predict a pair, top N for a user, evaluate on a
 * ratings file. A thin layer: the queries are recommend.c's (the same code as `incremf
 * recommend`), the evaluation is evaluate.c's `--protocol test` (the same as `incremf evaluate
 * --test`). What this file adds is the public shape: results on every rank (the internal
 * queries leave them on rank 0), raw ids as NUL-terminated strings, and a private copy of the
 * configuration, so that the caller's may be destroyed after imf_model_open. */
#include "incremf.h"
#include "config.h"
#include "error.h"
#include "evaluate.h"
#include "recommend.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct imf_model_handle {
  imf_recommender r;
  imf_config *cfg;        /* a copy of the caller's (defaults when none was given) */
  char model_dir[4096];
  char store_dir[4096];   /* "" when none */
  char *names;            /* the last recommend's item ids, NUL-terminated, back to back */
};

/* A private copy of cfg: its dump loaded into a fresh configuration (NULL: the defaults). */
static imf_status copy_config(const imf_config *cfg, imf_config **out) {
  IMF_CHECK(imf_config_create(out));
  if (!cfg) return IMF_OK;
  char *text = imf_config_dump(cfg);
  imf_status st = text ? imf_config_load_string(*out, text, "the caller's configuration")
                       : IMF_RAISE(IMF_ERR_NOMEM, "out of memory");
  free(text);
  if (st != IMF_OK) imf_config_destroy(out);
  return st;
}

imf_status imf_model_open(MPI_Comm comm, const imf_config *cfg, const char *model_dir, const char *store_dir,
                          int64_t version, imf_model_handle **out) {
  *out = NULL;
  if (!model_dir) IMF_FAIL(IMF_ERR_USAGE, "imf_model_open needs a model directory");
  if (strlen(model_dir) >= 4096 || (store_dir && strlen(store_dir) >= 4096))
    IMF_FAIL(IMF_ERR_USAGE, "imf_model_open: path too long");
  imf_model_handle *h = calloc(1, sizeof *h);
  imf_status st = h ? IMF_OK : IMF_RAISE(IMF_ERR_NOMEM, "out of memory");
  if (st == IMF_OK) st = copy_config(cfg, &h->cfg);
  st = imf_agree(comm, st);
  if (st != IMF_OK) {
    if (h) imf_config_destroy(&h->cfg);
    free(h);
    return st;
  }
  snprintf(h->model_dir, sizeof h->model_dir, "%s", model_dir);
  snprintf(h->store_dir, sizeof h->store_dir, "%s", store_dir ? store_dir : "");
  st = imf_recommender_open_version(comm, model_dir, store_dir, version, &h->r);
  if (st != IMF_OK) {
    imf_config_destroy(&h->cfg);
    free(h);
    return st;
  }
  /* recommend.clip, as `incremf recommend` applies it: scores on the store's recorded scale */
  st = imf_recommender_clip(&h->r, h->cfg, store_dir);
  if (st != IMF_OK) {
    imf_model_close(&h);
    return st;
  }
  *out = h;
  return IMF_OK;
}

void imf_model_close(imf_model_handle **h) {
  if (!h || !*h) return;
  imf_recommender_close(&(*h)->r);
  imf_config_destroy(&(*h)->cfg);
  free((*h)->names);
  free(*h);
  *h = NULL;
}

imf_status imf_model_describe(const imf_model_handle *h, imf_model_info *info) {
  memset(info, 0, sizeof *info);
  const imf_model *m = h->r.m;
  snprintf(info->type, sizeof info->type, "%s", imf_model_type_name(m->type));
  info->version = h->r.version;
  info->users = m->nusers;
  info->items = m->nitems;
  info->k = m->k;
  info->implicit = m->type != IMF_MODEL_ALS && m->type != IMF_MODEL_BPMF && m->type != IMF_MODEL_BIAS;
  return IMF_OK;
}

/* Rank 0's list l on every rank (the internal queries leave their result on rank 0). */
static imf_status bcast_list(MPI_Comm comm, imf_rec_list *l) {
  int rank, hdr[2] = {l->n, l->fallback};
  MPI_Comm_rank(comm, &rank);
  IMF_MPI(MPI_Bcast(hdr, 2, MPI_INT, 0, comm));
  if (rank != 0) {
    imf_rec_list_free(l);
    imf_status st = imf_alloc(&l->items, (size_t)(hdr[0] ? hdr[0] : 1), sizeof *l->items);
    if (st == IMF_OK) st = imf_alloc(&l->scores, (size_t)(hdr[0] ? hdr[0] : 1), sizeof *l->scores);
    IMF_CHECK(imf_agree(comm, st));
    l->n = hdr[0];
    l->fallback = hdr[1];
  } else {
    IMF_CHECK(imf_agree(comm, IMF_OK));
  }
  if (l->n > 0) {
    IMF_MPI(MPI_Bcast(l->items, l->n, MPI_INT32_T, 0, comm));
    IMF_MPI(MPI_Bcast(l->scores, l->n, MPI_FLOAT, 0, comm));
  }
  return IMF_OK;
}

imf_status imf_model_score(imf_model_handle *h, const char *user, const char *item, double *score) {
  *score = NAN;
  if (!user || !item) IMF_FAIL(IMF_ERR_USAGE, "imf_model_score needs a user and an item id");
  imf_rec_list l = {0};
  int unknown = 0;
  const char *ids[1] = {item};
  imf_status st = imf_recommend_items(&h->r, user, ids, 1, &l, &unknown); /* `recommend --items` */
  st = imf_agree(h->r.comm, st);
  if (st == IMF_OK) st = bcast_list(h->r.comm, &l);
  if (st == IMF_OK) *score = l.n == 1 ? (double)l.scores[0] : NAN;
  imf_rec_list_free(&l);
  return st;
}

/* The item ids of l as NUL-terminated strings in h->names (replacing the previous call's). */
static imf_status name_items(imf_model_handle *h, const imf_rec_list *l, imf_recommendation *out) {
  size_t total = 1;
  for (int j = 0; j < l->n; j++) {
    size_t len;
    imf_idmap_get(h->r.items, l->items[j], &len);
    total += len + 1;
  }
  free(h->names);
  h->names = malloc(total);
  if (!h->names) IMF_FAIL(IMF_ERR_NOMEM, "out of memory (%zu bytes of item ids)", total);
  char *p = h->names;
  for (int j = 0; j < l->n; j++) {
    size_t len;
    const char *s = imf_idmap_get(h->r.items, l->items[j], &len);
    memcpy(p, s, len);
    p[len] = '\0';
    out[j].item = p;
    out[j].score = l->scores[j];
    p += len + 1;
  }
  return IMF_OK;
}

imf_status imf_model_recommend(imf_model_handle *h, const char *user, int top, int fallback_popular,
                               imf_recommendation *out, int *n, int *fell_back) {
  *n = 0;
  if (fell_back) *fell_back = 0;
  if (!user) IMF_FAIL(IMF_ERR_USAGE, "imf_model_recommend needs a user id");
  imf_rec_list l = {0};
  imf_status st = imf_recommend_user(&h->r, user, top, fallback_popular, &l); /* `recommend --user` */
  st = imf_agree(h->r.comm, st);
  if (st == IMF_OK) st = bcast_list(h->r.comm, &l);
  if (st == IMF_OK) st = imf_agree(h->r.comm, name_items(h, &l, out));
  if (st == IMF_OK) {
    *n = l.n;
    if (fell_back) *fell_back = l.fallback;
  }
  imf_rec_list_free(&l);
  return st;
}

imf_status imf_model_evaluate(imf_model_handle *h, const char *test_path, int k, imf_model_eval *out) {
  memset(out, 0, sizeof *out);
  out->rmse = out->mae = out->ndcg = out->precision = out->recall = NAN;
  if (!test_path) IMF_FAIL(IMF_ERR_USAGE, "imf_model_evaluate needs a ratings file");
  if (k < 1) IMF_FAIL(IMF_ERR_USAGE, "imf_model_evaluate: the cut-off K must be >= 1, got %d", k);
  if (!h->store_dir[0])
    IMF_FAIL(IMF_ERR_USAGE, "imf_model_evaluate needs the model opened with its store (the training items are "
             "excluded from the rankings)");
  char ks[32];
  snprintf(ks, sizeof ks, "%d", k);
  imf_eval_spec sp;
  memset(&sp, 0, sizeof sp);
  sp.store = h->store_dir;
  sp.model = h->model_dir;
  sp.test_path = test_path;
  sp.cutoffs = ks;
  sp.version = h->r.version; /* the version this handle holds, even if CURRENT moved since */
  imf_eval_report *rep = calloc(1, sizeof *rep); /* large: one imf_metrics per possible fold */
  if (!rep) IMF_FAIL(IMF_ERR_NOMEM, "out of memory");
  imf_status st = imf_evaluate(h->r.comm, h->cfg, &sp, rep); /* `evaluate --test FILE --k K` */
  if (st == IMF_OK) {
    const imf_metrics *f = &rep->fold[0];
    out->rmse = f->rmse;
    out->mae = f->mae;
    out->n_ratings = f->n_ratings;
    out->n_cold = f->n_cold;
    out->users_ranked = f->users_ranked;
    out->k = k;
    if (f->nk > 0) {
      out->ndcg = f->rank[0].ndcg;
      out->precision = f->rank[0].precision;
      out->recall = f->rank[0].recall;
    }
  }
  free(rep);
  return st;
}
