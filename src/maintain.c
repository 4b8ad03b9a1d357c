/* maintain.c - model directory maintenance: `status` (the lineage as a table or JSON, and the
 * stale/drifting check for cron and Slurm), `rollback`, `prune` and `forget`. Each mutating
 * operation holds the directory's writer lock and records itself in the registry (registry.h);
 * switching versions is always the atomic CURRENT replace of modeldir.c. */
#include "baseline.h"
#include "checkpoint.h"
#include "config.h"
#include "ease.h"
#include "error.h"
#include "idmap.h"
#include "split.h"
#include "log.h"
#include "modeldir.h"
#include "partition.h"
#include "registry.h"
#include "store.h"
#include "update.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void fnum(FILE *f, double v, const char *fmt) {
  if (isfinite(v)) fprintf(f, fmt, v);
  else fprintf(f, "%9s", "-");
}

/* The version current before `v` in the lineage: its record's parent, else the next lower file. */
static int64_t parent_of(const imf_registry_record *recs, int64_t n, const int64_t *vs, int64_t nv, int64_t v) {
  const imf_registry_record *r = imf_registry_find(recs, n, v);
  if (r) return r->parent;
  int64_t best = 0;
  for (int64_t j = 0; j < nv; j++)
    if (vs[j] < v && vs[j] > best) best = vs[j];
  return best;
}

imf_status imf_model_status(MPI_Comm comm, const char *model_dir, const char *store_dir, int json, FILE *out,
                            int *stale, int *drifting) {
  imf_status st = IMF_OK;
  imf_modeldir *md = NULL;
  imf_registry_record *recs = NULL;
  int64_t nrec = 0, *vs = NULL, nv = 0, cur = 0, store_batches = -1;
  imf_store *s = NULL;
  int rank;
  MPI_Comm_rank(comm, &rank);
  *stale = *drifting = 0;
  IMF_TRY(imf_modeldir_open(comm, model_dir, 0, 0, 0, &md), done);
  IMF_TRY(imf_registry_load(comm, model_dir, &recs, &nrec), done);
  IMF_TRY(imf_modeldir_list_versions(md, &vs, &nv), done);
  char cpath[4400];
  st = imf_modeldir_current(md, cpath, sizeof cpath, &cur);
  if (st == IMF_ERR_NOTFOUND) {
    imf_err_clear();
    st = IMF_OK;
    cur = 0;
  }
  IMF_TRY(st, done);
  /* Staleness needs the store: the one given, else the one recorded in the lineage. */
  const char *sd = store_dir;
  for (int64_t j = nrec - 1; j >= 0 && !sd; j--)
    if (recs[j].store[0]) sd = recs[j].store;
  if (sd) {
    st = imf_store_open(comm, sd, IMF_STORE_READ, 0, &s);
    if (st == IMF_OK) store_batches = imf_store_nbatches(s);
    else if (!store_dir) { /* a moved store is not an error of `status` */
      imf_warn("cannot open the store %s recorded in the lineage: staleness not checked", sd);
      imf_err_clear();
      st = IMF_OK;
    }
    IMF_TRY(st, done);
  }
  int64_t cur_seen = -1;
  if (rank == 0) {
    /* per-version facts from the version files themselves (local reads of the attributes) */
    if (json) fprintf(out, "{\"model\":"), imf_json_string(out, model_dir),
                  fprintf(out, ",\"current\":%lld,\"store_batches\":%lld,\"versions\":[", (long long)cur,
                          (long long)store_batches);
    else
      fprintf(out, "%-3s %7s %7s %-8s %-10s %7s %-10s %9s %10s %-30s %-20s %8s  %s\n", "", "version", "parent", "strategy",
              "decision", "batches", "metric", "champion", "challenger", "diff [95% CI] users", "created", "seconds",
              "note");
    for (int64_t j = 0; j < nv; j++) {
      int64_t v = vs[j];
      char vp[4400];
      imf_modeldir_version_path(md, v, vp, sizeof vp);
      imf_ckpt_info info;
      int64_t seen = -1;
      char created[32] = "";
      if (imf_checkpoint_info(vp, &info) == IMF_OK) {
        seen = info.batches_seen;
        snprintf(created, sizeof created, "%s", info.created);
        imf_ckpt_info_free(&info);
      } else
        imf_err_clear();
      if (v == cur) cur_seen = seen;
      const imf_registry_record *r = imf_registry_find(recs, nrec, v);
      imf_registry_record none;
      imf_registry_record_init(&none);
      if (!r) {
        snprintf(none.strategy, sizeof none.strategy, "?");
        snprintf(none.decision, sizeof none.decision, "unrecorded");
        none.parent = parent_of(recs, nrec, vs, nv, v);
        r = &none;
      }
      if (json) {
        fprintf(out, "%s{\"version\":%lld,\"current\":%s,\"batches_seen\":%lld,\"created\":", j ? "," : "", (long long)v,
                v == cur ? "true" : "false", (long long)seen);
        imf_json_string(out, created);
        fprintf(out, ",\"record\":");
        imf_registry_write_json(out, r);
        fputc('}', out);
      } else {
        fprintf(out, "%-3s %7lld %7lld %-8s %-10s %7lld ", v == cur ? "*" : "", (long long)v, (long long)r->parent,
                r->strategy, r->decision, (long long)seen);
        /* each row's figures under the metric it was judged by (older records: RMSE, or an
         * EASE update's ranking metric with an empty name) */
        int by_score = r->metric[0] || isfinite(r->champion_score) || isfinite(r->challenger_score);
        const char *mn = r->metric[0] ? r->metric : by_score ? "ranking" : "rmse";
        if (!by_score && !isfinite(r->champion_rmse) && !isfinite(r->challenger_rmse)) mn = "-";
        fprintf(out, "%-10.10s ", mn);
        fnum(out, by_score ? r->champion_score : r->champion_rmse, "%9.5f");
        fputc(' ', out);
        fnum(out, by_score ? r->challenger_score : r->challenger_rmse, "%10.5f");
        char diff[64] = "-";
        if (r->diff_users > 0)
          snprintf(diff, sizeof diff, "%+.4f [%+.4f, %+.4f] %lld", r->diff_mean, r->diff_lo, r->diff_hi,
                   (long long)r->diff_users);
        fprintf(out, " %-30s", diff);
        fprintf(out, " %-20.20s ", created[0] ? created : "-"); /* UTC, with its year */
        fnum(out, r->seconds, "%8.2f");
        fprintf(out, "  %s%s\n", r->drift ? "[drift] " : "", r->note);
      }
    }
    /* drifting: the last update saw drift and nothing answered it with warm/retrain */
    for (int64_t j = nrec - 1; j >= 0; j--) {
      if (strcmp(recs[j].event, "update")) continue;
      *drifting = recs[j].drift && !(!strcmp(recs[j].decision, "promoted") && strcmp(recs[j].strategy, "fold-in"));
      break;
    }
    *stale = store_batches >= 0 && cur_seen >= 0 && store_batches > cur_seen;
    if (json) {
      fprintf(out, "],\"events\":[");
      int first = 1;
      for (int64_t j = 0; j < nrec; j++) {
        if (!strcmp(recs[j].event, "train") || !strcmp(recs[j].event, "update")) continue;
        if (!first) fputc(',', out);
        first = 0;
        imf_registry_write_json(out, &recs[j]);
      }
      fprintf(out, "],\"stale\":%s,\"drifting\":%s}\n", *stale ? "true" : "false", *drifting ? "true" : "false");
    } else {
      for (int64_t j = 0; j < nrec; j++)
        if (strcmp(recs[j].event, "train") && strcmp(recs[j].event, "update"))
          fprintf(out, "event: %s %s (version %lld, before %lld) %s\n", recs[j].created, recs[j].event,
                  (long long)recs[j].version, (long long)recs[j].parent, recs[j].note);
      fprintf(out, "current: %lld; store batches: %lld, seen by current: %lld%s%s\n", (long long)cur,
              (long long)store_batches, (long long)cur_seen, *stale ? "; STALE" : "", *drifting ? "; DRIFTING" : "");
    }
    fflush(out);
  }
  int flags[2] = {*stale, *drifting};
  MPI_Bcast(flags, 2, MPI_INT, 0, comm);
  *stale = flags[0];
  *drifting = flags[1];
done:
  imf_store_close(&s);
  imf_free(&recs);
  free(vs);
  imf_modeldir_close(&md);
  return st;
}

imf_status imf_rollback(MPI_Comm comm, const char *model_dir, int64_t to, int break_lock, int64_t *from,
                        int64_t *now) {
  imf_status st = IMF_OK;
  imf_modeldir *md = NULL;
  imf_registry_record *recs = NULL;
  int64_t nrec = 0, *vs = NULL, nv = 0;
  *from = *now = 0;
  IMF_TRY(imf_modeldir_open(comm, model_dir, 0, 1, break_lock, &md), done);
  IMF_TRY(imf_registry_load(comm, model_dir, &recs, &nrec), done);
  IMF_TRY(imf_modeldir_list_versions(md, &vs, &nv), done);
  char cpath[4400];
  st = imf_modeldir_current(md, cpath, sizeof cpath, from);
  if (st == IMF_ERR_INPUT && to > 0) { /* a dangling or garbled CURRENT: --to V is the repair */
    imf_warn("%s; making version %lld current", imf_last_error(), (long long)to);
    imf_err_clear();
    st = IMF_OK;
    *from = 0;
  }
  IMF_TRY(st, done);
  if (to <= 0) {
    to = parent_of(recs, nrec, vs, nv, *from);
    if (to <= 0)
      IMF_TRY(IMF_RAISE(IMF_ERR_NOTFOUND, "version %lld has no parent to roll back to (give --to V)", (long long)*from), done);
  }
  IMF_TRY(imf_modeldir_set_current(md, to), done);
  *now = to;
  imf_registry_record rec;
  imf_registry_record_init(&rec);
  snprintf(rec.event, sizeof rec.event, "rollback");
  snprintf(rec.decision, sizeof rec.decision, "current");
  rec.version = to;
  rec.parent = *from;
  snprintf(rec.note, sizeof rec.note, "rollback from version %lld to %lld", (long long)*from, (long long)to);
  IMF_TRY(imf_registry_append(comm, model_dir, &rec), done);
  imf_info("rollback: version %lld is current again (was %lld)", (long long)to, (long long)*from);
done:
  imf_free(&recs);
  free(vs);
  imf_modeldir_close(&md);
  return st;
}

imf_status imf_prune(MPI_Comm comm, const char *model_dir, int64_t keep, int break_lock, int64_t *removed) {
  imf_status st = IMF_OK;
  imf_modeldir *md = NULL;
  imf_registry_record *recs = NULL;
  int64_t nrec = 0, *vs = NULL, nv = 0, cur = 0;
  *removed = 0;
  if (keep < 0) IMF_TRY(IMF_RAISE(IMF_ERR_USAGE, "--keep must be >= 0"), done);
  IMF_TRY(imf_modeldir_open(comm, model_dir, 0, 1, break_lock, &md), done);
  IMF_TRY(imf_registry_load(comm, model_dir, &recs, &nrec), done);
  IMF_TRY(imf_modeldir_list_versions(md, &vs, &nv), done);
  char cpath[4400];
  IMF_TRY(imf_modeldir_current(md, cpath, sizeof cpath, &cur), done);
  int64_t par = parent_of(recs, nrec, vs, nv, cur);
  char note[1024] = "removed";
  for (int64_t j = 0; j < nv - keep; j++) { /* vs ascending: the oldest nv - keep */
    int64_t v = vs[j];
    if (v == cur || v == par) continue;
    IMF_TRY(imf_modeldir_remove_version(md, v), done);
    (*removed)++;
    size_t l = strlen(note);
    if (l + 24 < sizeof note) snprintf(note + l, sizeof note - l, " v%lld", (long long)v);
  }
  /* EASE P files no kept version references */
  IMF_TRY(imf_modeldir_gc_ease(md, 1, NULL), done);
  if (*removed > 0) {
    imf_registry_record rec;
    imf_registry_record_init(&rec);
    snprintf(rec.event, sizeof rec.event, "prune");
    snprintf(rec.decision, sizeof rec.decision, "pruned");
    rec.version = cur;
    rec.parent = par;
    snprintf(rec.note, sizeof rec.note, "%s (kept the newest %lld, current %lld, its parent %lld)", note,
             (long long)keep, (long long)cur, (long long)par);
    IMF_TRY(imf_registry_append(comm, model_dir, &rec), done);
  }
  imf_info("prune: %lld versions removed (current %lld and its parent %lld kept)", (long long)*removed, (long long)cur,
           (long long)par);
done:
  imf_free(&recs);
  free(vs);
  imf_modeldir_close(&md);
  return st;
}

/* ------------------------------------------------------------------------------ forget */

/* EASE: user u's row leaves the version's Gram matrix — its outer product is subtracted exactly
 * (imf_ease_add_delta with an empty new row, on the rank holding the row) — then B is re-solved
 * and the row of X emptied. X is read sparse, each rank a range of users (from P in a version of
 * the older replicated form, which is rewritten in the sparse form: m becomes a handle). A
 * version written before the Gram matrix was stored gets one from its own X without u. *out: the
 * state, *x: this rank's rows of X, to store with the rewritten version. */
static imf_status forget_ease(MPI_Comm comm, const char *vp, imf_model *m, int64_t u, imf_ease **out,
                              imf_ease_rows *x) {
  imf_status st = IMF_OK;
  imf_ease *e = NULL;
  imf_ckpt_info info;
  *out = NULL;
  int64_t n = m->nitems, lo, hi;
  imf_status ist = imf_checkpoint_info(vp, &info);
  int has_gram = ist == IMF_OK && info.ease_has_gram;
  if (ist == IMF_OK) imf_ckpt_info_free(&info);
  IMF_CHECK(imf_agree(comm, ist));
  imf_user_range(comm, m->nusers, &lo, &hi);
  IMF_CHECK(imf_checkpoint_read_ease_x(comm, vp, lo, hi, x));
  if (has_gram) {
    int mine = u >= lo && u < hi;
    int64_t optr[2] = {0, mine ? x->ptr[u - lo + 1] - x->ptr[u - lo] : 0}, nptr[2] = {0, 0};
    const int32_t *oidx = mine ? x->idx + x->ptr[u - lo] : x->idx;
    st = imf_checkpoint_read_ease(comm, vp, IMF_CKPT_EASE_GRAM, IMF_EASE_GRID_SQUARE, &e);
    if (st == IMF_OK) st = imf_ease_add_delta(e, mine ? 1 : 0, optr, oidx, nptr, oidx, NULL);
    imf_ease_rows_clear(x, u);
  } else {
    imf_ease_rows_clear(x, u);
    imf_ratings r = {0};
    for (int64_t v = lo; v < hi && st == IMF_OK; v++)
      for (int64_t q = x->ptr[v - lo]; q < x->ptr[v - lo + 1] && st == IMF_OK; q++)
        st = imf_ratings_push(&r, (int32_t)v, x->idx[q], 1.0f, IMF_NO_TIME);
    st = imf_agree(comm, st);
    if (st == IMF_OK) st = imf_ease_create(comm, n, m->lambda, IMF_EASE_GRID_SQUARE, &e);
    if (st == IMF_OK) st = imf_ease_add_ratings(e, &r);
    imf_ratings_free(&r);
  }
  /* P kept for the rewritten version's P file (the next update's start) */
  if (st == IMF_OK) st = imf_ease_solve_p(e, imf_ease_legacy_format(), !imf_ease_legacy_format());
  if (st == IMF_OK) st = imf_agree(comm, imf_ease_handle(m));
  if (st == IMF_OK) *out = e;
  else {
    imf_ease_destroy(&e);
    imf_ease_rows_free(x);
  }
  return st;
}

/* Whether a version still holds user u: its id (forget empties it), or for a version without
 * ids a nonzero row. */
static int version_holds_user(const imf_model *m, const imf_ckpt_meta *meta, int64_t u) {
  if (meta->users.n > u) return meta->users.off[u + 1] > meta->users.off[u];
  if (m->type == IMF_MODEL_EASE && m->kw == 1) return 1; /* X is not in m: taking the row out again is harmless */
  for (int64_t c = 0; c < m->kw; c++)
    if (m->P[(size_t)u * (size_t)m->kw + (size_t)c] != 0.0f) return 1;
  return m->bu && m->bu[u] != 0.0f;
}

/* The items user u rated (ti[i] = 1), from its own rows only (the user index locates them),
 * read on rank 0 and broadcast; *n: the user's ratings. again: read past the tombstone of a
 * forget that was killed. */
static imf_status forget_user_items(MPI_Comm comm, imf_store *s, int64_t u, int again, int64_t ni,
                                    unsigned char *ti, int64_t *removed) {
  int rank;
  MPI_Comm_rank(comm, &rank);
  imf_ratings mine = {0};
  IMF_CHECK((again ? imf_store_read_ratings_unfiltered : imf_store_read_ratings)(s, rank == 0 ? u : 0,
                                                                                rank == 0 ? u + 1 : 0, &mine));
  for (int64_t j = 0; j < mine.n; j++) ti[mine.item[j]] = 1;
  int64_t n = mine.n;
  imf_ratings_free(&mine);
  IMF_MPI(MPI_Bcast(&n, 1, MPI_INT64_T, 0, comm));
  IMF_MPI(MPI_Bcast(ti, (int)ni, MPI_UNSIGNED_CHAR, 0, comm));
  *removed = n;
  return IMF_OK;
}

/* A factor model without user u: its row and bias zeroed, the touched items (ti) refreshed
 * without it — baselines' biases recomputed, factors folded in again (an older, smaller version
 * on a grown copy). BPMF's samples are left as they are. */
static imf_status forget_factors(MPI_Comm comm, imf_partition *part, imf_model *m, const imf_ckpt_meta *meta,
                                 int64_t u, int64_t nu, int64_t ni, const unsigned char *ti) {
  imf_status st = IMF_OK;
  memset(m->P + (size_t)u * (size_t)m->kw, 0, (size_t)m->kw * sizeof(float));
  if (m->bu) m->bu[u] = 0;
  if (m->chain.U) memset(m->chain.U + (size_t)u * (size_t)m->k, 0, (size_t)m->k * sizeof(float));
  if (imf_baseline_type(m->type)) /* pop, bias: the touched items' biases recomputed without the user */
    st = imf_baseline_refresh_items(comm, part, m, ti, imf_baseline_pos_threshold_text(meta->config));
  else if (m->type != IMF_MODEL_BPMF && m->nusers == nu && m->nitems == ni)
    st = imf_foldin_side(comm, part, m, 1, ti, NULL);
  else if (m->type != IMF_MODEL_BPMF) { /* an older, smaller version: refresh on a grown copy */
    imf_model *g = NULL;
    st = imf_model_copy(m, &g);
    if (st == IMF_OK) st = imf_model_grow(g, nu, ni);
    st = imf_agree(comm, st);
    if (st == IMF_OK) st = imf_foldin_side(comm, part, g, 1, ti, NULL);
    if (st == IMF_OK) {
      int k = m->kw;
      for (int64_t i = 0; i < m->nitems; i++)
        if (ti[i]) {
          memcpy(m->Q + (size_t)i * (size_t)k, g->Q + (size_t)i * (size_t)k, (size_t)k * sizeof(float));
          if (m->bi) m->bi[i] = g->bi[i];
        }
    }
    imf_model_destroy(&g);
  }
  return st;
}

/* One kept version (read into m, meta) without user u: the model's row (forget_ease or
 * forget_factors), the id itself (an empty id in the version's id list), rewritten in place
 * with the store's new digest; (*rewritten)++ when it was. Returns the local status (the caller
 * agrees). */
static imf_status forget_in_version(MPI_Comm comm, const char *vp, const imf_store *s, imf_partition *part,
                                    imf_model *m, imf_ckpt_meta *meta, int64_t u, int64_t nu, int64_t ni,
                                    const unsigned char *ti, int64_t *rewritten) {
  imf_status st = IMF_OK;
  imf_ease *es = NULL;
  imf_ease_rows ex = {0};
  if (m->type == IMF_MODEL_EASE) { /* no factors to fold: the Gram matrix loses the row */
    st = forget_ease(comm, vp, m, u, &es, &ex);
    meta->ease = es;
    meta->ease_x = &ex;
  } else {
    st = forget_factors(comm, part, m, meta, u, nu, ni, ti);
  }
  /* the id itself goes too: an empty id in the version's id list */
  if (st == IMF_OK && meta->users.n > u) {
    int64_t a = meta->users.off[u], b = meta->users.off[u + 1], len = b - a;
    memmove(meta->users.blob + a, meta->users.blob + b, (size_t)(meta->users.off[meta->users.n] - b));
    for (int64_t q = u + 1; q <= meta->users.n; q++) meta->users.off[q] -= len;
  }
  snprintf(meta->store_digest, sizeof meta->store_digest, "%s", imf_store_digest(s));
  meta->created[0] = '\0';
  if (st == IMF_OK) st = imf_checkpoint_write(comm, vp, m, meta);
  if (st == IMF_OK) (*rewritten)++;
  imf_ease_destroy(&es);
  imf_ease_rows_free(&ex);
  meta->ease = NULL;   /* freed above, not by imf_ckpt_meta_free */
  meta->ease_x = NULL;
  return st;
}

/* The registry line of a forget (the current version, the counts, the items refreshed). */
static imf_status forget_record(MPI_Comm comm, imf_modeldir *md, const char *model_dir, double t0, int64_t ni,
                                const unsigned char *ti, int64_t removed, int64_t rewritten) {
  imf_registry_record rec;
  imf_registry_record_init(&rec);
  snprintf(rec.event, sizeof rec.event, "forget");
  snprintf(rec.decision, sizeof rec.decision, "forgotten");
  char cp[4400];
  int64_t cur = 0;
  if (imf_modeldir_current(md, cp, sizeof cp, &cur) != IMF_OK) imf_err_clear();
  rec.version = cur;
  rec.seconds = imf_wtime() - t0;
  int64_t nitem = 0;
  for (int64_t i = 0; i < ni; i++) nitem += ti[i];
  snprintf(rec.note, sizeof rec.note, "one user forgotten: %lld ratings removed from the store, %lld versions "
           "rewritten, %lld items refreshed", (long long)removed, (long long)rewritten, (long long)nitem);
  IMF_CHECK(imf_registry_append(comm, model_dir, &rec));
  return IMF_OK;
}

imf_status imf_forget(MPI_Comm comm, const imf_config *cfg, const char *store_dir, const char *model_dir,
                      const char *user_id, int break_lock, int64_t *ratings_removed, int64_t *versions_rewritten) {
  (void)cfg;
  imf_status st = IMF_OK;
  imf_modeldir *md = NULL;
  imf_store *s = NULL;
  imf_idmap *users = NULL, *items = NULL;
  imf_ratings local = {0};
  imf_partition *part = NULL;
  unsigned char *ti = NULL;
  int64_t *vs = NULL, nv = 0;
  int rank, size;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  *ratings_removed = *versions_rewritten = 0;
  double t0 = imf_wtime();
  IMF_TRY(imf_modeldir_open(comm, model_dir, 0, 1, break_lock, &md), done);
  IMF_TRY(imf_store_open(comm, store_dir, IMF_STORE_WRITE, break_lock, &s), done);
  IMF_TRY(imf_idmap_create(&users), done);
  IMF_TRY(imf_idmap_create(&items), done);
  IMF_TRY(imf_store_load_idmaps(s, users, items), done);
  int64_t u = imf_idmap_find(users, user_id, strlen(user_id));
  if (u < 0) {
    /* not there (any more): finish the erasure a killed forget may have left half done */
    int64_t rr = 0, rf = 0;
    IMF_TRY(imf_store_scrub(s, &rr, &rf), done);
    IMF_TRY(IMF_RAISE(IMF_ERR_NOTFOUND, "the store has no user with that id"), done);
  }
  /* A forget killed after its store tombstone (step 1) but before every version was rewritten:
   * the rerun finishes the versions that still hold the user, with the user's ratings read past
   * the tombstone. With no such version left, the user is not there any more (below). */
  const int again = imf_store_is_forgotten(s, u);
  int64_t nu = imf_store_nusers(s), ni = imf_store_nitems(s);
  /* The items the user rated (from its own rows only: the user index locates them). */
  IMF_TRY(imf_alloc(&ti, (size_t)(ni ? ni : 1), 1), done);
  IMF_TRY(forget_user_items(comm, s, u, again, ni, ti, ratings_removed), done);
  /* 1. the store: a tombstone in the manifest (atomic); every later read drops the user */
  IMF_TRY(imf_store_forget_user(s, u), done);
  /* 2. every kept version: zero the user's row, refresh the touched items without it */
  IMF_TRY(imf_store_read_ratings(s, nu * rank / size, nu * (rank + 1) / size, &local), done);
  double hfrac = 0;
  uint64_t hseed = 0;
  imf_store_holdout(s, &hfrac, &hseed);
  IMF_TRY(imf_partition_build_consume(comm, &local, nu, ni, hfrac, hseed, &part), done); /* frees local */
  IMF_TRY(imf_modeldir_list_versions(md, &vs, &nv), done);
  for (int64_t j = 0; j < nv; j++) {
    char vp[4400];
    imf_modeldir_version_path(md, vs[j], vp, sizeof vp);
    imf_model *m = NULL;
    imf_ckpt_meta meta = {0};
    IMF_TRY(imf_checkpoint_read(comm, vp, &m, &meta), done);
    if (u < m->nusers && (!again || version_holds_user(m, &meta, u)))
      st = forget_in_version(comm, vp, s, part, m, &meta, u, nu, ni, ti, versions_rewritten);
    imf_model_destroy(&m);
    imf_ckpt_meta_free(&meta);
    IMF_TRY(imf_agree(comm, st), done);
  }
  /* EASE: P files computed with the user's row, referenced by no version now, go too */
  if (imf_modeldir_gc_ease(md, 1, NULL) != IMF_OK) { /* the versions are rewritten: only warn */
    imf_warn("EASE P files not collected (run `incremf prune`): %s", imf_last_error());
    imf_err_clear();
  }
  if (again && *versions_rewritten == 0) {
    int64_t rr = 0, rf = 0;
    IMF_TRY(imf_store_scrub(s, &rr, &rf), done);
    IMF_TRY(IMF_RAISE(IMF_ERR_NOTFOUND, "the store has no user with that id"), done);
  }
  IMF_TRY(forget_record(comm, md, model_dir, t0, ni, ti, *ratings_removed, *versions_rewritten), done);
  /* 3. last, the erasure itself: the rows and the raw id leave the batch files (after the
   * versions, because a rerun of a forget killed before them reads the rows past the tombstone) */
  {
    int64_t rr = 0, rf = 0;
    IMF_TRY(imf_store_scrub(s, &rr, &rf), done);
    imf_info("forget: %lld rows and the raw id erased from %lld batch files", (long long)rr, (long long)rf);
  }
done:
  imf_free(&ti);
  free(vs);
  imf_ratings_free(&local);
  imf_partition_destroy(&part);
  imf_idmap_destroy(&users);
  imf_idmap_destroy(&items);
  imf_store_close(&s);
  imf_modeldir_close(&md);
  return st;
}
