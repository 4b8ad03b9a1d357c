/* recommend.c - the queries of `incremf recommend` (see recommend.h). The model is replicated;
 * the store is read by user range, so `--all` needs no communication beyond the file offsets,
 * and a single-user query reads only that user's ratings. The HDF5 results file of --all is
 * written by recout.c (the I/O layer); the CSV one here, with MPI-IO. */
#include "recommend.h"
#include "recout.h"
#include "config.h"
#include "error.h"
#include "fsio.h"
#include "guard.h"
#include "baseline.h"
#include "log.h"
#include "modeldir.h"
#include "split.h"
#include "store.h"
#include "topk.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static imf_status open_version(MPI_Comm comm, const char *model_dir, const char *store_dir, int64_t version,
                               const imf_config *cfg, imf_recommender *r);

imf_status imf_recommender_open(MPI_Comm comm, const char *model_dir, const char *store_dir, const imf_config *cfg,
                                imf_recommender *r) {
  return open_version(comm, model_dir, store_dir, 0, cfg, r);
}

imf_status imf_recommender_open_version(MPI_Comm comm, const char *model_dir, const char *store_dir, int64_t version,
                                        imf_recommender *r) {
  return open_version(comm, model_dir, store_dir, version, NULL, r);
}

/* cfg (may be NULL): dist.node_shared reads the model once per node (checkpoint.h). */
static imf_status open_version(MPI_Comm comm, const char *model_dir, const char *store_dir, int64_t version,
                               const imf_config *cfg, imf_recommender *r) {
  memset(r, 0, sizeof *r);
  r->comm = comm;
  imf_modeldir *md = NULL;
  char path[4096];
  imf_status st = IMF_OK;
  IMF_TRY(imf_modeldir_open(comm, model_dir, 0, 0, 0, &md), out);
  IMF_TRY(imf_modeldir_version(md, version, path, sizeof path, &r->version), out);
  if (cfg && imf_cfg_bool(cfg, "dist.node_shared"))
    IMF_TRY(imf_checkpoint_read_shared(comm, (int)imf_cfg_int(cfg, "dist.ranks_per_node"), path, &r->m, &r->meta), out);
  else
    IMF_TRY(imf_checkpoint_read(comm, path, &r->m, &r->meta), out);
  if (r->m->type == IMF_MODEL_EASE) {
    /* B read block-cyclically on a 1 x P grid: each rank its own columns */
    imf_ckpt_info ci;
    imf_status is = imf_checkpoint_info(path, &ci);
    int has_b = is == IMF_OK && ci.ease_has_b;
    if (is == IMF_OK) imf_ckpt_info_free(&ci);
    IMF_TRY(imf_agree(comm, is), out);
    if (has_b) {
      /* and X sparse, each rank its users' rows (from P in a version of the replicated form,
       * whose nusers x nitems and nitems^2 arrays are dropped then) */
      int64_t lo, hi;
      IMF_TRY(imf_checkpoint_read_ease(comm, path, IMF_CKPT_EASE_B, IMF_EASE_GRID_COLUMNS, &r->ease), out);
      imf_user_range(comm, r->m->nusers, &lo, &hi);
      IMF_TRY(imf_checkpoint_read_ease_x(comm, path, lo, hi, &r->x), out);
      IMF_TRY(imf_agree(comm, imf_ease_handle(r->m)), out);
    }
  }
  if (r->meta.users.n != r->m->nusers || r->meta.items.n != r->m->nitems)
    IMF_TRY(IMF_RAISE(IMF_ERR_INPUT, "%s carries no raw ids: cannot recommend by id", path), out);
  IMF_TRY(imf_idmap_create(&r->users), out);
  IMF_TRY(imf_idmap_create(&r->items), out);
  IMF_TRY(imf_idmap_add_list(r->users, &r->meta.users), out);
  IMF_TRY(imf_idmap_add_list(r->items, &r->meta.items), out);
  if (store_dir) snprintf(r->store, sizeof r->store, "%s", store_dir);
out:
  imf_modeldir_close(&md);
  return st;
}

imf_status imf_recommender_clip(imf_recommender *r, const imf_config *cfg, const char *store_dir) {
  r->clip = 0;
  r->clip_lo = r->clip_hi = NAN;
  const int explicit_model = r->m->type == IMF_MODEL_ALS || r->m->type == IMF_MODEL_BPMF || r->m->type == IMF_MODEL_BIAS;
  if (!explicit_model || strcmp(imf_cfg_str(cfg, "recommend.clip"), "scale") != 0) return IMF_OK;
  double lo = NAN, hi = NAN, step;
  if (store_dir) {
    imf_store *s = NULL;
    IMF_CHECK(imf_store_open(r->comm, store_dir, IMF_STORE_READ, 0, &s));
    if (!imf_store_scale(s, &lo, &hi, &step)) imf_store_configured_scale(s, &lo, &hi);
    imf_store_close(&s);
  }
  if ((isnan(lo) || isnan(hi)) && r->meta.config && *r->meta.config) {
    /* the clean.scale_* keys the model was trained with */
    imf_config *mc = NULL;
    IMF_CHECK(imf_config_create(&mc));
    imf_status st = imf_config_load_string(mc, r->meta.config, "the model's configuration");
    if (st == IMF_OK) {
      lo = imf_cfg_double(mc, "clean.scale_min");
      hi = imf_cfg_double(mc, "clean.scale_max");
    }
    imf_config_destroy(&mc);
    imf_err_clear(); /* an unreadable stored config only means no range */
  }
  r->clip_lo = lo;
  r->clip_hi = hi;
  r->clip = !isnan(lo) || !isnan(hi);
  return IMF_OK;
}

/* Clip n scores to the recorded range (scale.h); a no-op unless imf_recommender_clip set one. */
static void clip_scores(const imf_recommender *r, float *s, int64_t n) {
  if (!r->clip) return;
  for (int64_t j = 0; j < n; j++) {
    if (!isnan(r->clip_lo) && s[j] < r->clip_lo) s[j] = (float)r->clip_lo;
    if (!isnan(r->clip_hi) && s[j] > r->clip_hi) s[j] = (float)r->clip_hi;
  }
}

void imf_recommender_close(imf_recommender *r) {
  imf_model_destroy(&r->m);
  imf_ease_destroy(&r->ease);
  imf_ease_rows_free(&r->x);
  imf_ckpt_meta_free(&r->meta);
  imf_item_pop_free(&r->pop);
  imf_idmap_destroy(&r->users);
  imf_idmap_destroy(&r->items);
}

void imf_rec_list_free(imf_rec_list *l) {
  free(l->items);
  free(l->scores);
  memset(l, 0, sizeof *l);
}

static imf_status list_alloc(imf_rec_list *l, int n) {
  memset(l, 0, sizeof *l);
  IMF_CHECK(imf_realloc(&l->items, (size_t)(n > 0 ? n : 1), sizeof *l->items));
  IMF_CHECK(imf_realloc(&l->scores, (size_t)(n > 0 ? n : 1), sizeof *l->scores));
  return IMF_OK;
}

/* The ratings of users [lo, hi) on this rank (model's users and items only). */
static imf_status read_range(imf_recommender *r, int64_t lo, int64_t hi, imf_ratings *out) {
  memset(out, 0, sizeof *out);
  if (!r->store[0]) {
    imf_warn("no --data STORE given: items the users already rated are not excluded");
    return IMF_OK;
  }
  imf_store *s = NULL;
  imf_status st = IMF_OK;
  IMF_TRY(imf_store_open(r->comm, r->store, IMF_STORE_READ, 0, &s), out);
  if (strcmp(imf_store_digest(s), r->meta.store_digest) != 0 && r->meta.store_digest[0])
    imf_warn("the store has changed since the model was trained: its newest ratings are excluded too");
  IMF_TRY(imf_store_read_ratings(s, lo, hi, out), out);
  int64_t w = 0;
  for (int64_t j = 0; j < out->n; j++)
    if (out->user[j] < r->m->nusers && out->item[j] < r->m->nitems) {
      out->user[w] = out->user[j];
      out->value[w] = out->value[j]; /* popularity counts positives by value */
      out->item[w++] = out->item[j];
    }
  out->n = w;
out:
  imf_store_close(&s);
  return st;
}

/* EASE, collective: user u's row of X on every rank (broadcast by the rank that holds it);
 * *xi malloc'd. */
static imf_status ease_row(imf_recommender *r, int64_t u, int64_t *nx, int32_t **xi) {
  int rank, size;
  MPI_Comm_rank(r->comm, &rank);
  MPI_Comm_size(r->comm, &size);
  *xi = NULL;
  int own = u >= r->x.lo && u < r->x.hi ? rank : size, owner;
  IMF_MPI(MPI_Allreduce(&own, &owner, 1, MPI_INT, MPI_MIN, r->comm));
  if (owner == size) IMF_FAIL(IMF_ERR_RUNTIME, "EASE: no rank holds the row of user %lld", (long long)u);
  int64_t n = own == rank ? r->x.ptr[u - r->x.lo + 1] - r->x.ptr[u - r->x.lo] : 0;
  IMF_MPI(MPI_Bcast(&n, 1, MPI_INT64_T, owner, r->comm));
  *xi = malloc((size_t)(n ? n : 1) * sizeof **xi);
  imf_status st = *xi ? IMF_OK : IMF_RAISE(IMF_ERR_NOMEM, "out of memory");
  IMF_CHECK(imf_agree(r->comm, st));
  if (rank == owner) memcpy(*xi, r->x.idx + r->x.ptr[u - r->x.lo], (size_t)n * sizeof **xi);
  IMF_MPI(MPI_Bcast(*xi, (int)n, MPI_INT32_T, owner, r->comm));
  *nx = n;
  return IMF_OK;
}

/* Collective. r->pop: every item's count of positive training ratings in the store (the model's
 * recorded model.positive_threshold for implicit models, every rating for explicit ones; the
 * standing holdout, or the model's validation carve-out on a store without one, left out: what
 * train trains on), with the model's model.pop_prior (ials, ease). mine: this rank's users'
 * ratings (imf_user_range's) when the caller has read them, else NULL (read here). Without a
 * store r->pop stays empty: ties go by item index. Once per recommender. */
static imf_status rec_popularity(imf_recommender *r, const imf_ratings *mine) {
  if (r->pop.count || !r->store[0]) return IMF_OK;
  const imf_model *m = r->m;
  int implicit = m->type == IMF_MODEL_IALS || m->type == IMF_MODEL_EASE || m->type == IMF_MODEL_POP;
  double thr = NAN, beta = 0, frac = 0;
  uint64_t seed = 0;
  imf_config *mc = NULL;
  imf_store *s = NULL;
  imf_ratings own = {0};
  imf_status st = imf_config_create(&mc);
  if (st == IMF_OK && r->meta.config && *r->meta.config) {
    if (imf_config_load_string(mc, r->meta.config, "the model's configuration") != IMF_OK) imf_err_clear();
  }
  if (st == IMF_OK) {
    thr = implicit ? imf_baseline_pos_threshold(mc) : NAN;
    beta = m->type == IMF_MODEL_IALS || m->type == IMF_MODEL_EASE ? imf_item_pop_beta(mc) : 0.0;
    frac = imf_cfg_double(mc, "model.validation_fraction");
    seed = (uint64_t)imf_cfg_int(mc, "model.seed");
  }
  IMF_TRY(imf_agree(r->comm, st), out);
  IMF_TRY(imf_store_open(r->comm, r->store, IMF_STORE_READ, 0, &s), out);
  imf_store_holdout(s, &frac, &seed); /* the store's standing holdout, where it has one */
  imf_store_close(&s);
  if (!mine) {
    int64_t lo, hi;
    imf_user_range(r->comm, m->nusers, &lo, &hi);
    IMF_TRY(imf_store_open(r->comm, r->store, IMF_STORE_READ, 0, &s), out);
    IMF_TRY(imf_agree(r->comm, imf_store_read_ratings(s, lo, hi, &own)), out);
    mine = &own;
  }
  IMF_TRY(imf_item_pop_ratings(r->comm, m->nitems, mine, thr, frac > 0 ? frac : 0.0, seed, beta, &r->pop), out);
out:
  imf_store_close(&s);
  imf_ratings_free(&own);
  imf_config_destroy(&mc);
  return st;
}

/* --fallback popular: the most popular items by the count of positive training ratings
 * (rec_popularity: the pop model's scores), which are the scores shown. Collective. */
static imf_status popular(imf_recommender *r, int top, imf_rec_list *out) {
  int64_t ni = r->m->nitems;
  int32_t *ids = NULL;
  float *sc = NULL;
  imf_status st = IMF_OK;
  if (!r->store[0]) IMF_TRY(IMF_RAISE(IMF_ERR_USAGE, "--fallback popular needs --data STORE (the counts)"), out);
  IMF_TRY(rec_popularity(r, NULL), out);
  IMF_TRY(imf_alloc(&ids, (size_t)(ni ? ni : 1), sizeof *ids), out);
  IMF_TRY(imf_alloc(&sc, (size_t)(ni ? ni : 1), sizeof *sc), out);
  for (int64_t i = 0; i < ni; i++) {
    ids[i] = (int32_t)i;
    sc[i] = r->pop.count[i];
  }
  imf_topk_sort(ids, sc, (int)ni);
  int n = top < ni ? top : (int)ni;
  IMF_TRY(list_alloc(out, n), out);
  memcpy(out->items, ids, sizeof *ids * (size_t)n);
  memcpy(out->scores, sc, sizeof *sc * (size_t)n);
  out->n = n;
  out->fallback = 1;
out:
  imf_free(&ids);
  imf_free(&sc);
  return st;
}

imf_status imf_recommend_user(imf_recommender *r, const char *user, int top, int fallback_popular, imf_rec_list *out) {
  memset(out, 0, sizeof *out);
  if (top < 1) IMF_FAIL(IMF_ERR_USAGE, "--top wants N >= 1");
  top = (int)imf_cap_count(top, r->m->nitems); /* top N of n items is at most n (guard.h) */
  int64_t u = imf_idmap_find(r->users, user, strlen(user));
  if (u < 0) {
    if (fallback_popular) return popular(r, top, out);
    IMF_FAIL(IMF_ERR_NOTFOUND, "unknown user '%s': the model has no such user (%lld users); use --fallback popular "
             "for the most popular items", user, (long long)r->m->nusers);
  }
  int rank;
  MPI_Comm_rank(r->comm, &rank);
  imf_ratings rt = {0};
  imf_status st = IMF_OK;
  /* rank 0 reads this one user's ratings; the others take part in the collective read */
  IMF_CHECK(read_range(r, rank == 0 ? u : 0, rank == 0 ? u + 1 : 0, &rt));
  st = rec_popularity(r, NULL); /* ties and the prior (itempop.h) */
  if (st != IMF_OK) {
    imf_ratings_free(&rt);
    return st;
  }
  if (r->ease) { /* EASE: rank 0's one row, scored by every rank on its columns of B */
    int64_t xp[2] = {0, 0}, ep[2] = {0, rank == 0 ? rt.n : 0}, nx = 0;
    int32_t *xi = NULL;
    int cnt = 0;
    st = ease_row(r, u, &nx, &xi);
    xp[1] = rank == 0 ? nx : 0;
    if (st == IMF_OK && rank == 0) st = list_alloc(out, top);
    st = imf_agree(r->comm, st);
    if (st == IMF_OK)
      st = imf_ease_topk(r->ease, 1, rank == 0 ? 1 : 0, xp, xi, ep, rt.item, top, &r->pop, out->items, out->scores,
                         &cnt);
    out->n = cnt;
    free(xi);
    imf_ratings_free(&rt);
    return st;
  }
  if (rank == 0) {
    int64_t ptr[2] = {0, rt.n};
    const imf_model *m = r->m;
    float xb = m->bu ? m->bu[u] : 0.0f;
    imf_topk_query q = {1, m->kw, m->P + u * m->kw, &xb, m->nitems, m->Q, m->bi, m->mu, ptr, rt.item, &r->pop};
    int cnt = 0;
    st = list_alloc(out, top);
    if (st == IMF_OK) st = imf_topk(&q, top, out->items, out->scores, &cnt, NULL);
    out->n = cnt;
    if (st == IMF_OK) clip_scores(r, out->scores, cnt); /* after ranking: the order stays the model's */
  }
  imf_ratings_free(&rt);
  return imf_agree(r->comm, st);
}

imf_status imf_recommend_items(imf_recommender *r, const char *user, const char *const *item_ids, int n,
                               imf_rec_list *out, int *unknown) {
  memset(out, 0, sizeof *out);
  int64_t u = imf_idmap_find(r->users, user, strlen(user));
  if (u < 0) IMF_FAIL(IMF_ERR_NOTFOUND, "unknown user '%s': the model has no such user", user);
  IMF_CHECK(list_alloc(out, n));
  for (int j = 0; j < n; j++) {
    int64_t i = imf_idmap_find(r->items, item_ids[j], strlen(item_ids[j]));
    unknown[j] = i < 0;
    out->items[j] = (int32_t)(i < 0 ? -1 - j : i); /* unknown: -1 - position in the request */
    out->scores[j] = (float)imf_model_predict(r->m, u, i);
  }
  if (r->ease) { /* EASE: each item's score from its column of B, summed by the rank holding it */
    int64_t nx = 0;
    int32_t *xi = NULL;
    double *s = NULL;
    imf_status st = ease_row(r, u, &nx, &xi);
    if (st == IMF_OK) st = imf_agree(r->comm, imf_alloc(&s, (size_t)(n ? n : 1), sizeof *s));
    if (st == IMF_OK) st = imf_ease_score_items(r->ease, nx, xi, n, out->items, s);
    for (int j = 0; j < n && st == IMF_OK; j++)
      if (out->items[j] >= 0) out->scores[j] = (float)s[j];
    free(xi);
    imf_free(&s);
    if (st != IMF_OK) {
      imf_rec_list_free(out);
      return st;
    }
  }
  out->n = n;
  clip_scores(r, out->scores, n);
  imf_topk_sort(out->items, out->scores, n);
  return IMF_OK;
}

imf_status imf_recommend_similar(imf_recommender *r, const char *item, int top, imf_rec_list *out) {
  const imf_model *m = r->m;
  int rank;
  MPI_Comm_rank(r->comm, &rank);
  memset(out, 0, sizeof *out);
  float *Qn = NULL;
  imf_status st = IMF_OK;
  int64_t it = imf_idmap_find(r->items, item, strlen(item));
  if (it < 0) IMF_TRY(IMF_RAISE(IMF_ERR_NOTFOUND, "unknown item '%s': the model has no such item", item), done);
  if (top < 1) IMF_TRY(IMF_RAISE(IMF_ERR_USAGE, "--top wants N >= 1"), done);
  if (m->type == IMF_MODEL_POP || m->type == IMF_MODEL_BIAS) /* zero factors: every cosine would be 0 */
    IMF_TRY(IMF_RAISE(IMF_ERR_USAGE, "--similar: the %s baseline has no item factors to compare",
                      imf_model_type_name(m->type)), done);
  top = (int)imf_cap_count(top, r->m->nitems); /* top N of n items is at most n (guard.h) */
  IMF_TRY(list_alloc(out, top), done);
  if (r->ease) { /* EASE: cosine of B's columns, each rank its own (ease.h) */
    int cnt = 0;
    st = imf_ease_similar(r->ease, it, top, out->items, out->scores, &cnt);
    out->n = cnt;
    if (st != IMF_OK) imf_rec_list_free(out);
    return st;
  }
  if (rank != 0) return IMF_OK; /* the replicated factors: rank 0 alone */
  {
    int kw = m->kw;
    IMF_TRY(imf_alloc(&Qn, (size_t)(m->nitems ? m->nitems : 1) * (size_t)(kw ? kw : 1), sizeof *Qn), done);
    for (int64_t i = 0; i < m->nitems; i++) {
      double s = 0;
      for (int c = 0; c < kw; c++) s += (double)m->Q[i * kw + c] * m->Q[i * kw + c];
      float inv = s > 0 ? (float)(1.0 / sqrt(s)) : 0.0f;
      for (int c = 0; c < kw; c++) Qn[i * kw + c] = m->Q[i * kw + c] * inv;
    }
    int64_t ptr[2] = {0, 1};
    int32_t self = (int32_t)it;
    imf_topk_query q = {1, kw, Qn + it * kw, NULL, m->nitems, Qn, NULL, 0.0, ptr, &self, NULL};
    int cnt = 0;
    IMF_TRY(imf_topk(&q, top, out->items, out->scores, &cnt, NULL), done);
    out->n = cnt;
  }
done:
  imf_free(&Qn);
  return st;
}

/* ---- --all ---- */

static imf_status buf_printf(char **buf, size_t *len, size_t *cap, const char *fmt, ...) IMF_PRINTF(4, 5);
static imf_status buf_printf(char **buf, size_t *len, size_t *cap, const char *fmt, ...) {
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(*buf + *len, *cap - *len, fmt, ap);
    va_end(ap);
    if (n < 0) IMF_FAIL(IMF_ERR_RUNTIME, "formatting failed");
    if ((size_t)n < *cap - *len) {
      *len += (size_t)n;
      return IMF_OK;
    }
    size_t nc = *cap * 2 + (size_t)n + 1024;
    IMF_CHECK(imf_realloc(buf, nc, 1));
    *cap = nc;
  }
}

static imf_status write_csv(imf_recommender *r, const char *path, const char *name, int64_t lo, int64_t hi, int top,
                            const int32_t *items, const float *scores, const int *count) {
  int rank;
  MPI_Comm_rank(r->comm, &rank);
  char *buf = NULL;
  size_t len = 0, cap = 1 << 16;
  imf_status st = IMF_OK;
  IMF_TRY(imf_realloc(&buf, cap, 1), out);
  if (rank == 0) IMF_TRY(buf_printf(&buf, &len, &cap, "user,rank,item,score\n"), out);
  for (int64_t u = lo; u < hi; u++) {
    size_t ul, il;
    const char *uid = imf_idmap_get(r->users, u, &ul);
    for (int j = 0; j < count[u - lo]; j++) {
      const char *iid = imf_idmap_get(r->items, items[(u - lo) * top + j], &il);
      IMF_TRY(buf_printf(&buf, &len, &cap, "%.*s,%d,%.*s,%.7g\n", (int)ul, uid, j + 1, (int)il, iid,
                         scores[(u - lo) * top + j]), out);
    }
  }
out:
  st = imf_agree(r->comm, st);
  if (st != IMF_OK) {
    free(buf);
    return st;
  }
  long long mine = (long long)len, off = 0, total = 0;
  MPI_Exscan(&mine, &off, 1, MPI_LONG_LONG, MPI_SUM, r->comm);
  MPI_Allreduce(&mine, &total, 1, MPI_LONG_LONG, MPI_SUM, r->comm);
  if (rank == 0) off = 0;
  /* a full disk is refused before the file is created (fsio.h) */
  st = imf_agree(r->comm, rank == 0 ? imf_output_need_space(name, (double)total + 4096.0) : IMF_OK);
  if (st != IMF_OK) {
    free(buf);
    return st;
  }
  MPI_File fh;
  int rc = MPI_File_open(r->comm, path, MPI_MODE_CREATE | MPI_MODE_WRONLY, MPI_INFO_NULL, &fh);
  if (rc != MPI_SUCCESS) {
    free(buf);
    return imf_agree(r->comm, imf_output_mpi_error(name, rc));
  }
  rc = MPI_File_set_size(fh, 0);
  for (size_t done = 0; rc == MPI_SUCCESS && done < len;) {
    int chunk = (int)(len - done > (1u << 30) ? (1u << 30) : len - done);
    rc = MPI_File_write_at(fh, (MPI_Offset)(off + (long long)done), buf + done, chunk, MPI_CHAR, MPI_STATUS_IGNORE);
    done += (size_t)chunk;
  }
  MPI_File_close(&fh);
  free(buf);
  st = rc == MPI_SUCCESS ? IMF_OK : imf_output_mpi_error(name, rc);
  return imf_agree(r->comm, st);
}

imf_status imf_recommend_all(imf_recommender *r, const char *path, int top, imf_rec_all_stats *stats) {
  const imf_model *m = r->m;
  double t0 = imf_wtime();
  int64_t lo = 0, hi = 0, n = 0;
  imf_ratings rt = {0};
  int64_t *ptr = NULL;
  int32_t *items = NULL;
  float *scores = NULL;
  int *count = NULL;
  imf_status st = IMF_OK;
  double gemm = 0, ts = 0, tw = 0;
  if (top < 1) IMF_TRY(IMF_RAISE(IMF_ERR_USAGE, "--top wants N >= 1"), out);
  top = (int)imf_cap_count(top, r->m->nitems); /* top N of n items is at most n (guard.h) */
  imf_user_range(r->comm, m->nusers, &lo, &hi);
  char what[64]; /* lists (8 bytes an entry) and their CSV text (~40 bytes), checked before allocating */
  snprintf(what, sizeof what, "recommend --all --top %d", top);
  IMF_TRY(imf_agree(r->comm, imf_mem_guard(what, (double)(hi - lo) * (double)top * 48.0)), out);
  IMF_TRY(read_range(r, lo, hi, &rt), out);
  IMF_TRY(rec_popularity(r, &rt), out); /* every rank's users' ratings: ties and the prior */
  n = hi - lo;
  IMF_TRY(imf_alloc(&ptr, (size_t)n + 1, sizeof *ptr), out);
  for (int64_t j = 0; j < rt.n; j++) ptr[rt.user[j] - lo + 1]++;
  for (int64_t u = 0; u < n; u++) ptr[u + 1] += ptr[u];
  IMF_TRY(imf_alloc(&items, (size_t)(n ? n : 1) * (size_t)top, sizeof *items), out);
  IMF_TRY(imf_alloc(&scores, (size_t)(n ? n : 1) * (size_t)top, sizeof *scores), out);
  IMF_TRY(imf_alloc(&count, (size_t)(n ? n : 1), sizeof *count), out);
  ts = imf_wtime();
  if (r->ease) { /* EASE: every rank's users, each rank scoring its columns of B for all of them */
    st = r->x.lo == lo && r->x.hi == hi ? IMF_OK
                                        : IMF_RAISE(IMF_ERR_RUNTIME, "EASE: X rows of other users");
    st = imf_agree(r->comm, st);
    if (st == IMF_OK)
      st = imf_ease_topk(r->ease, 1, n, r->x.ptr, r->x.idx, ptr, rt.item, top, &r->pop, items, scores, count);
    IMF_TRY(st, out);
  } else {
    imf_topk_query q = {n, m->kw, m->P + lo * m->kw, m->bu ? m->bu + lo : NULL, m->nitems, m->Q, m->bi, m->mu, ptr,
                        rt.item, &r->pop};
    IMF_TRY(imf_topk(&q, top, items, scores, count, &gemm), out);
    clip_scores(r, scores, n * top); /* after ranking: the order stays the model's */
  }
  ts = imf_wtime() - ts;
  /* A forgotten user (an empty id in the version) gets no list: no CSV lines, an empty HDF5 row. */
  for (int64_t u = 0; u < n && st == IMF_OK; u++) {
    size_t l;
    imf_idmap_get(r->users, lo + u, &l);
    if (l == 0) {
      count[u] = 0;
      for (int j = 0; j < top; j++) {
        items[u * top + j] = -1;
        scores[u * top + j] = NAN;
      }
    }
  }
out:
  st = imf_agree(r->comm, st);
  if (st == IMF_OK) {
    tw = imf_wtime();
    size_t pl = strlen(path);
    char tmp[4200]; /* written under a temporary name, renamed when complete (fsio.h) */
    imf_output_tmpname_all(r->comm, path, tmp, sizeof tmp);
    if (pl > 3 && !strcmp(path + pl - 3, ".h5")) st = imf_recout_write_h5(r->comm, tmp, path, r->users, r->items, m->nusers, m->nitems, lo, hi, top, items,
                                 scores);
    else st = write_csv(r, tmp, path, lo, hi, top, items, scores, count);
    st = imf_output_finish_all(r->comm, st, tmp, path);
    tw = imf_wtime() - tw;
  }
  if (stats) {
    double loc[2] = {ts, gemm}, mx[2];
    MPI_Allreduce(loc, mx, 2, MPI_DOUBLE, MPI_MAX, r->comm);
    stats->users = m->nusers;
    stats->score_seconds = mx[0];
    stats->gemm_seconds = mx[1];
    stats->write_seconds = tw;
    stats->seconds = imf_wtime() - t0;
  }
  imf_ratings_free(&rt);
  imf_free(&ptr);
  imf_free(&items);
  imf_free(&scores);
  imf_free(&count);
  return st;
}
