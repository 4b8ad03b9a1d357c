/* trainrun.c - a training job from a data store to a model version: the sequencing behind
 * `incremf train`. store (ratings of this rank's user range, id maps) -> partition -> trainer
 * sweeps -> run checkpoints every N sweeps and on a stop signal -> a new model version, made
 * current atomically.
 *
 * Signals: SIGTERM and SIGUSR1 (what Slurm sends before a time limit or preemption) only set a
 * flag. The trainer asks at every half-sweep boundary whether to stop, and the ranks agree with
 * an integer MPI_Allreduce MAX, so all stop at the same sweep, write one run checkpoint and
 * return IMF_ERR_REQUEUE (exit 75). `train --resume` continues from it on any rank count and
 * finishes bitwise identical to an uninterrupted run.
 *
 * model.type = ease is not swept: ease.c solves it in one step on a ScaLAPACK grid (no run
 * checkpoints, no stop points). The model is a handle (model.h); the version holds B
 * (block-cyclic), X sparse and a P file (docs/FORMAT.md, "EASE state"), so that update can
 * apply a low-rank change to P (Woodbury) or refactorise from X instead of starting over.
 *
 * model.type = pop | bias (baseline.h) is fitted in one pass (bias: model.iterations cheap
 * sweeps) on the same partition, without run checkpoints or stop points either. */
#include "baseline.h"
#include "checkpoint.h"
#include "config.h"
#include "ease.h"
#include "error.h"
#include "evaluate.h"
#include "idmap.h"
#include "itemsums.h"
#include "log.h"
#include "modelblock.h"
#include "modeldir.h"
#include "partition.h"
#include "judge.h"
#include "registry.h"
#include "update.h"
#include "scale.h"
#include "store.h"
#include "train.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested = 0;

static void on_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

void imf_request_stop(void) { stop_requested = 1; }

imf_status imf_install_stop_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  /* SIGINT too: Ctrl-C, and what a launcher may turn its own SIGINT into (README: signals) */
  if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGUSR1, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0)
    IMF_FAIL(IMF_ERR_RUNTIME, "cannot install signal handlers: %s", strerror(errno));
  return IMF_OK;
}

typedef struct {
  MPI_Comm comm;
} stop_ctx;

static int stop_hook(void *p) {
  stop_ctx *c = p;
  int mine = stop_requested ? 1 : 0, any = 0;
  MPI_Allreduce(&mine, &any, 1, MPI_INT, MPI_MAX, c->comm);
  return any;
}

imf_status imf_stop_point(MPI_Comm comm, const char *what, const char *where) {
  stop_ctx c = {comm};
  if (!stop_hook(&c)) return IMF_OK;
  IMF_FAIL(IMF_ERR_REQUEUE, "%s stopped by a signal %s; its lock is released: run it again", what, where);
}

/* The sweep log (DIR/train.jsonl, rank 0) after a write: a full disk, or any write error, fails
 * the run on every rank with one line naming the file (every writer does, issue 22); the run
 * checkpoint of the last periodic write stays. No log (it could not be opened: warned): nothing. */
static imf_status log_check(MPI_Comm comm, FILE *log, const char *path) {
  imf_status st = IMF_OK;
  if (log && (fflush(log) != 0 || ferror(log))) {
    int e = errno ? errno : EIO;
    st = IMF_RAISE(IMF_ERR_RUNTIME, "cannot write %s: %s%s (the sweep log; the run checkpoint "
                       "of the last periodic write is kept: free some space, then `train --resume`)", path,
                       e == ENOSPC || e == EDQUOT ? "no space left on the file system: " : "", strerror(e));
  }
  return imf_agree(comm, st);
}

/* net: the sweep's traffic (imf_trainer_traffic), or NULL (a model fitted in one step). */
static void log_sweep(FILE *f, const imf_sweep_metrics *h, double ratings_per_s, const int64_t *net) {
  fprintf(f, "{\"iteration\":%lld,\"train_loss\":", (long long)h->iteration);
  if (isfinite(h->train_loss)) fprintf(f, "%.9g", h->train_loss); else fputs("null", f);
  const double v[4] = {h->train_rmse, h->val_rmse, h->val_mae, h->seconds};
  const char *k[4] = {"train_rmse", "val_rmse", "val_mae", "seconds"};
  for (int j = 0; j < 4; j++) {
    fprintf(f, ",\"%s\":", k[j]);
    if (isfinite(v[j])) fprintf(f, "%.9g", v[j]); else fputs("null", f);
  }
  fprintf(f, ",\"ratings_per_s\":%.6g", ratings_per_s);
  if (net)
    fprintf(f, ",\"bytes\":{\"intra_sent\":%lld,\"inter_sent\":%lld,\"intra_recv\":%lld,\"inter_recv\":%lld,"
            "\"node_inter_recv\":%lld,\"inter_recv_total\":%lld}", (long long)net[0], (long long)net[1],
            (long long)net[2], (long long)net[3], (long long)net[4], (long long)net[5]);
  fputs("}\n", f);
}

/* A checkpoint's metadata. The ids are read from the store when a checkpoint is written, and onto
 * rank 0 alone, which writes and digests them: a job holds no copy of them while it trains. */
static imf_status make_meta(const imf_config *cfg, imf_store *s, const char *kind, imf_ckpt_meta *meta) {
  memset(meta, 0, sizeof *meta);
  meta->config = imf_config_dump(cfg);
  if (!meta->config) IMF_FAIL(IMF_ERR_NOMEM, "out of memory");
  snprintf(meta->store_digest, sizeof meta->store_digest, "%s", imf_store_digest(s));
  meta->batches_seen = imf_store_nbatches(s);
  IMF_CHECK(imf_store_load_idlists_root(s, &meta->users, &meta->items));
  imf_store_strip_forgotten(s, &meta->users);
  snprintf(meta->kind, sizeof meta->kind, "%s", kind);
  return IMF_OK;
}

/* One training job's state, passed through its steps (train_config, train_data, train_ease /
 * train_baseline / train_sweeps, train_test, train_commit); train_free releases it. */
typedef struct {
  MPI_Comm comm;
  const char *store_dir, *model_dir;
  const imf_train_opts *o;
  imf_train_report *rep;
  int rank, size;
  double t0, t_read, t_ckpt;
  imf_modeldir *md;
  imf_store *s;
  const char *ckpt;        /* the run checkpoint's path */
  imf_config *cfg;         /* the command line's, or the run checkpoint's (--resume) */
  int ease, base;          /* model.type = ease; pop or bias */
  int64_t nu, ni, nholdout;
  double hfrac;
  uint64_t hseed;
  imf_ratings local;       /* this rank's user range, until partitioned */
  imf_partition *part;
  imf_trainer *t;
  imf_model *saved, *em;   /* the run checkpoint's model (--resume); an EASE or baseline model */
  imf_ease *es;            /* EASE: the distributed Gram matrix and B, stored with the version */
  imf_ease_rows ex;        /* EASE: this rank's rows of X, stored sparse with the version */
  imf_ckpt_meta meta, rmeta;
  FILE *log;
} trun;

static void train_free(trun *r) {
  if (r->log) fclose(r->log);
  imf_ckpt_meta_free(&r->meta);
  imf_ckpt_meta_free(&r->rmeta);
  imf_trainer_destroy(&r->t);
  imf_partition_destroy(&r->part);
  imf_ratings_free(&r->local);
  imf_model_destroy(&r->saved);
  imf_model_destroy(&r->em);
  imf_ease_destroy(&r->es);
  imf_ease_rows_free(&r->ex);
  imf_config_destroy(&r->cfg);
  imf_store_close(&r->s);
  imf_modeldir_close(&r->md);
}

/* --resume: the run checkpoint, with the configuration it was started with. */
static imf_status train_resume_config(trun *r) {
  imf_status st = imf_checkpoint_read(r->comm, r->ckpt, &r->saved, &r->rmeta);
  if (st == IMF_ERR_INPUT) { /* say what to do with a bad run checkpoint (not a version: no rollback) */
    /* the reason alone: its advice (roll back to an earlier version) is for versions */
    char why[1024];
    snprintf(why, sizeof why, "%s", imf_err_reason());
    st = IMF_RAISE(IMF_ERR_INPUT, "%s; the run cannot resume from it: delete %s and train again without --resume", why, r->ckpt);
  }
  IMF_CHECK(st);
  if (strcmp(r->rmeta.store_digest, imf_store_digest(r->s)) != 0 || r->rmeta.batches_seen != imf_store_nbatches(r->s))
    IMF_FAIL(IMF_ERR_INPUT,
             "%s was started on other data (store digest %.12s..., %lld batches; the store now has %.12s..., %lld): "
             "train without --resume to start over, or use update", r->ckpt, r->rmeta.store_digest,
             (long long)r->rmeta.batches_seen, imf_store_digest(r->s), (long long)imf_store_nbatches(r->s));
  IMF_CHECK(imf_config_load_string(r->cfg, r->rmeta.config, r->ckpt));
  imf_info("resuming %s from sweep %lld (its configuration is used)", r->ckpt, (long long)r->saved->iteration);
  return IMF_OK;
}

/* The lock, the store, and the configuration: the run checkpoint's on --resume, else cfg_in. */
static imf_status train_config(trun *r, const imf_config *cfg_in) {
  IMF_CHECK(imf_modeldir_open(r->comm, r->model_dir, 1, 1, r->o->break_lock, &r->md));
  IMF_CHECK(imf_store_open(r->comm, r->store_dir, IMF_STORE_READ, 0, &r->s));
  imf_store_warn_holdout(r->s, cfg_in, r->store_dir);
  r->ckpt = imf_modeldir_run_checkpoint(r->md);
  int have_ckpt = 0;
  if (r->rank == 0) have_ckpt = access(r->ckpt, F_OK) == 0;
  IMF_MPI(MPI_Bcast(&have_ckpt, 1, MPI_INT, 0, r->comm));
  IMF_CHECK(imf_config_create(&r->cfg));
  if (r->o->resume && have_ckpt) {
    IMF_CHECK(train_resume_config(r));
    IMF_CHECK(imf_config_take_run_keys(r->cfg, cfg_in)); /* the layout is this job's */
  } else {
    char *text = imf_config_dump(cfg_in);
    if (!text) IMF_FAIL(IMF_ERR_NOMEM, "out of memory");
    imf_status st = imf_config_load_string(r->cfg, text, "configuration");
    free(text);
    IMF_CHECK(st);
    if (r->o->resume) imf_info("no run checkpoint in %s: starting a new run", r->model_dir);
    else if (have_ckpt) imf_info("discarding the unfinished run checkpoint %s (use --resume to continue it)", r->ckpt);
  }
  const char *type = imf_cfg_str(r->cfg, "model.type");
  r->ease = !strcmp(type, "ease");
  r->base = !strcmp(type, "pop") || !strcmp(type, "bias");
  return IMF_OK;
}

/* Data: every rank reads the ratings of its contiguous user range; the store's standing
 * holdout (recorded at prepare) is never trained on and is the validation set; a store
 * without one falls back to model.validation_fraction. */
static imf_status train_data(trun *r) {
  double tr = imf_wtime();
  r->nu = imf_store_nusers(r->s);
  r->ni = imf_store_nitems(r->s);
  IMF_CHECK(imf_store_read_ratings(r->s, r->nu * r->rank / r->size, r->nu * (r->rank + 1) / r->size, &r->local));
  imf_mem_trace("train: ratings read");
  /* implicit models train on their positives and confidence values (scale.h): the same
   * transform update and evaluate apply, from the configuration recorded with the model */
  imf_implicit_opts io;
  IMF_CHECK(imf_agree(r->comm, imf_implicit_opts_from(r->cfg, &io)));
  imf_implicit_apply(&io, &r->local);
  char desc[160];
  imf_implicit_describe(&io, desc, sizeof desc);
  if (io.active) imf_info("implicit training data: %s", desc);
  else if (!isnan(io.positive_threshold) || io.confidence != IMF_CONF_LINEAR)
    imf_warn("model.positive_threshold and model.confidence apply to implicit models (ials, ease, pop): "
             "ignored for %s", imf_cfg_str(r->cfg, "model.type"));
  r->t_read = imf_wtime() - tr;
  r->hfrac = imf_cfg_double(r->cfg, "model.validation_fraction");
  r->hseed = (uint64_t)imf_cfg_int(r->cfg, "model.seed");
  if (imf_store_holdout(r->s, &r->hfrac, &r->hseed)) {
    char set[64];
    snprintf(set, sizeof set, "model.validation_fraction=%.17g", r->hfrac);
    IMF_CHECK(imf_config_set(r->cfg, set));
    imf_info("standing holdout of the store: fraction %g (seed %llu) held out of training", r->hfrac,
             (unsigned long long)r->hseed);
  }
  if (r->ease) return IMF_OK; /* EASE builds X from r->local itself (train_ease) */
  IMF_CHECK(imf_partition_build_consume(r->comm, &r->local, r->nu, r->ni, r->hfrac, r->hseed, &r->part));
  imf_mem_trace("train: partition built");
  imf_info("data: %lld users, %lld items, %lld training + %lld validation ratings (read %.2f s, partition %.2f s)",
           (long long)r->nu, (long long)r->ni, (long long)r->part->nnz_train, (long long)r->part->nnz_holdout,
           r->t_read, r->part->seconds);
  return IMF_OK;
}

/* The sweep log for a model fitted in one step: the first n entries of its history, in a log
 * opened afresh (rank 0); ratings > 0: the rate is ratings over each entry's seconds. */
static imf_status log_history(trun *r, int64_t n, double ratings) {
  if (r->rank == 0) {
    r->log = fopen(imf_modeldir_log_path(r->md), "w");
    if (!r->log) imf_warn("cannot write %s: %s", imf_modeldir_log_path(r->md), strerror(errno));
    for (int64_t j = 0; r->log && j < n; j++) {
      const imf_sweep_metrics *h = &r->em->history[j];
      log_sweep(r->log, h, ratings > 0 && h->seconds > 0 ? ratings / h->seconds : 0, NULL);
    }
  }
  return log_check(r->comm, r->log, imf_modeldir_log_path(r->md));
}

/* EASE: X is the training ratings only (the standing holdout is never trained on), solved in
 * one step (ease.c). */
static imf_status train_ease(trun *r) {
  imf_ratings *l = &r->local;
  int64_t w = 0, nholdout = 0;
  for (int64_t j = 0; j < l->n; j++) {
    if (r->hfrac > 0 && imf_is_holdout(r->hseed, r->hfrac, l->user[j], l->item[j])) {
      nholdout++;
      continue;
    }
    l->user[w] = l->user[j];
    l->item[w] = l->item[j];
    l->value[w] = l->value[j];
    if (l->time) l->time[w] = l->time[j];
    w++;
  }
  l->n = w;
  int64_t cnt[2] = {w, nholdout};
  IMF_MPI(MPI_Allreduce(MPI_IN_PLACE, cnt, 2, MPI_INT64_T, MPI_SUM, r->comm));
  r->nholdout = cnt[1];
  double lambda = imf_cfg_double(r->cfg, "model.ease_lambda");
  imf_info("data: %lld users, %lld items, %lld training + %lld held-out ratings (read %.2f s); EASE, lambda %g",
           (long long)r->nu, (long long)r->ni, (long long)cnt[0], (long long)r->nholdout, r->t_read, lambda);
  const int64_t lo = r->nu * r->rank / r->size, hi = r->nu * (r->rank + 1) / r->size;
  IMF_CHECK(imf_ease_model(r->comm, l, lo, hi, r->nu, r->ni, lambda, &r->em, &r->es, &r->ex));
  imf_ratings_free(l);
  return log_history(r, 1, (double)cnt[0]); /* its one "sweep" */
}

/* pop, bias: one exact fit on the partition (baseline.c). */
static imf_status train_baseline(trun *r) {
  IMF_CHECK(imf_baseline_fit(r->comm, r->cfg, r->part, &r->em));
  return log_history(r, r->em->nhistory, 0);
}

/* The run checkpoint of the trainer's current model (periodic, or on a stop signal). */
static imf_status write_run_checkpoint(trun *r, const imf_model *m) {
  double tc = imf_wtime();
  imf_ckpt_meta_free(&r->meta);
  IMF_CHECK(make_meta(r->cfg, r->s, "run", &r->meta));
  IMF_CHECK(imf_checkpoint_write(r->comm, r->ckpt, m, &r->meta));
  r->t_ckpt += imf_wtime() - tc;
  return IMF_OK;
}

/* ALS, iALS, BPMF: sweeps of the trainer (from the run checkpoint on --resume), each logged,
 * a run checkpoint every model.checkpoint_every sweeps; a stop signal ends the loop at a sweep
 * boundary every rank agrees on. */
static imf_status train_sweeps(trun *r) {
  IMF_CHECK(imf_train_create(r->comm, r->cfg, r->part, &r->t));
  imf_mem_trace("train: trainer created");
  if (r->saved) IMF_CHECK(imf_trainer_resume(r->t, r->saved));
  stop_ctx sc = {r->comm};
  imf_trainer_set_stop_hook(r->t, stop_hook, &sc);
  int64_t every = imf_cfg_int(r->cfg, "model.checkpoint_every");
  int64_t stop_after = getenv("IMF_STOP_AFTER_SWEEP") ? atoll(getenv("IMF_STOP_AFTER_SWEEP")) : -1;
  if (r->rank == 0) {
    r->log = fopen(imf_modeldir_log_path(r->md), r->saved ? "a" : "w");
    if (!r->log) imf_warn("cannot write %s: %s", imf_modeldir_log_path(r->md), strerror(errno));
  }
  while (!imf_trainer_done(r->t)) {
    double ts = imf_wtime();
    IMF_CHECK(imf_trainer_sweep(r->t));
    imf_mem_trace("train: sweep");
    const imf_model *m = imf_trainer_model(r->t);
    if (imf_trainer_stopped(r->t)) break;
    if (m->nhistory > 0) {
      const imf_sweep_metrics *h = &m->history[m->nhistory - 1];
      double secs = imf_wtime() - ts;
      double rps = secs > 0 ? (double)r->part->nnz_train / secs : 0;
      int64_t net[6];
      imf_trainer_traffic(r->t, net);
      if (r->log) log_sweep(r->log, h, rps, net);
    }
    IMF_CHECK(log_check(r->comm, r->log, imf_modeldir_log_path(r->md)));
    /* test hook: as if SIGUSR1 arrived once the model has this many sweeps */
    if (stop_after >= 0 && m->iteration >= stop_after) stop_requested = 1;
    if (every > 0 && m->iteration % every == 0 && !imf_trainer_done(r->t)) IMF_CHECK(write_run_checkpoint(r, m));
  }
  return IMF_OK;
}

/* --test FILE: RMSE and MAE of the trained model on a file of ratings (rating models only). */
static imf_status train_test(trun *r, const imf_model *m) {
  const imf_train_opts *o = r->o;
  const int ranking_only = r->ease || m->type == IMF_MODEL_POP; /* scores that are not ratings */
  if (o->test_path && ranking_only) /* EASE: a handle, its scores come from B (evaluate --model) */
    imf_warn("--test %s: %s scores are not ratings: no test RMSE (use evaluate --model)", o->test_path,
             r->ease ? "EASE" : "pop");
  if (!o->test_path || ranking_only) return IMF_OK;
  imf_eval_result er = {0};
  imf_store_info info;
  IMF_CHECK(imf_store_get_info(r->s, &info));
  imf_model *whole = NULL; /* an out-block model is scored whole: gathered for the test, then freed */
  if (m->blocked) IMF_CHECK(imf_model_gather(r->comm, m, &whole));
  imf_idmap *users = NULL, *items = NULL; /* the test file's ids are looked up in the store's */
  imf_status st = imf_idmap_create(&users);
  if (st == IMF_OK) st = imf_idmap_create(&items);
  st = imf_agree(r->comm, st);
  if (st == IMF_OK) st = imf_store_load_idmaps(r->s, users, items);
  if (st == IMF_OK)
    st = imf_eval_file(r->comm, r->cfg, whole ? whole : m, users, items, o->test_path, info.scale_min, info.scale_max,
                       &er);
  imf_idmap_destroy(&users);
  imf_idmap_destroy(&items);
  imf_model_destroy(&whole);
  IMF_CHECK(st);
  r->rep->test_rmse = er.rmse;
  r->rep->test_mae = er.mae;
  r->rep->test_n = er.n;
  r->rep->test_cold = er.cold;
  imf_info("test %s: RMSE %.5f  MAE %.5f over %lld ratings (%lld with a user or item unseen in training)",
           o->test_path, er.rmse, er.mae, (long long)er.n, (long long)er.cold);
  return IMF_OK;
}

/* The version: written, recorded in the registry (the version current before it is its
 * parent; its own holdout SSE, from which a later fold-in judges: update.c), made current. */
static imf_status train_commit(trun *r, const imf_model *m) {
  double tc = imf_wtime();
  imf_registry_record rec;
  imf_registry_record_init(&rec);
  snprintf(rec.event, sizeof rec.event, "train");
  snprintf(rec.strategy, sizeof rec.strategy, "train");
  snprintf(rec.decision, sizeof rec.decision, "trained");
  rec.challenger_rmse = r->rep->val_rmse;
  rec.eval_n = r->ease ? r->nholdout : r->part->nnz_holdout;
  double fr, sse[2];
  uint64_t sd;
  int64_t hn = 0;
  if (!r->ease && imf_store_holdout(r->s, &fr, &sd)) {
    if (m->blocked) { /* the trainer's last sweep scored this model on the same ratings, bitwise */
      sse[0] = imf_trainer_holdout_sse(r->t);
      hn = r->part->nnz_holdout;
    } else {
      IMF_CHECK(imf_holdout_sse(r->comm, r->part, m, NULL, sse, &hn));
    }
    rec.holdout_sse = sse[0];
    rec.holdout_n = hn;
    rec.holdout_forgotten = imf_store_nforgotten(r->s);
    IMF_CHECK(imf_judge_holdout_users(r->comm, r->part, &rec.holdout_users));
  }
  /* what the next fold-in re-solves items from (update.c); a block model has no whole user side */
  imf_itemsums *sums = NULL;
  if (m->type == IMF_MODEL_ALS && !m->blocked && imf_cfg_bool(r->cfg, "update.item_sums"))
    IMF_CHECK(imf_itemsums_from_partition(r->comm, r->part, m, &sums));
  /* the partition is done with: freed before the version's write, which adds the ids on rank 0 */
  if (r->t) imf_trainer_release_partition(r->t);
  imf_partition_destroy(&r->part);
  imf_ckpt_meta_free(&r->meta);
  imf_status st = make_meta(r->cfg, r->s, "version", &r->meta);
  r->meta.ease = r->es;
  if (r->ease) r->meta.ease_x = &r->ex;
  r->meta.itemsums = sums;
  char cur[4400];
  int64_t parent = 0;
  if (st == IMF_OK && imf_modeldir_current(r->md, cur, sizeof cur, &parent) != IMF_OK) {
    parent = 0;
    imf_err_clear();
  }
  int64_t next = 0;
  if (st == IMF_OK) st = imf_modeldir_write_version(r->md, m, &r->meta, &next);
  r->meta.itemsums = NULL;
  imf_itemsums_destroy(&sums);
  IMF_CHECK(st);
  rec.version = next;
  rec.parent = parent;
  rec.batches_seen = r->meta.batches_seen;
  rec.seconds = imf_wtime() - r->t0;
  if (!realpath(r->store_dir, rec.store)) snprintf(rec.store, sizeof rec.store, "%s", r->store_dir);
  IMF_CHECK(imf_registry_append(r->comm, imf_modeldir_path(r->md), &rec));
  IMF_CHECK(imf_modeldir_set_current(r->md, next));
  r->rep->version = next;
  r->t_ckpt += imf_wtime() - tc;
  if (r->rank == 0) unlink(r->ckpt);
  return IMF_OK;
}

/* The report's memory and traffic figures: peak memory per rank (max over ranks) and per node
 * (its ranks' peaks summed, a node-shared model counted once; max over nodes), the layout's node
 * count, whether the model was node-shared, the last sweep's bytes. */
static imf_status train_memory(trun *r, imf_train_report *rep) {
  int64_t rss = imf_peak_rss(), node = 0;
  rep->nodes = 1;
  IMF_MPI(MPI_Allreduce(&rss, &rep->peak_rss_max, 1, MPI_INT64_T, MPI_MAX, r->comm));
  rep->peak_rss_node_max = rep->peak_rss_max;
  if (!r->t) return IMF_OK; /* fitted in one step (EASE, baselines): no trainer, no layout */
  const imf_layout *l = imf_trainer_layout(r->t);
  IMF_MPI(MPI_Allreduce(&rss, &node, 1, MPI_INT64_T, MPI_SUM, l->node_comm));
  /* a node-shared model is in every rank's peak (each reads all of it) but on the node once */
  rep->node_shared = imf_trainer_shared_bytes(r->t) > 0;
  node -= (int64_t)(l->node_size - 1) * imf_trainer_shared_bytes(r->t);
  IMF_MPI(MPI_Allreduce(&node, &rep->peak_rss_node_max, 1, MPI_INT64_T, MPI_MAX, r->comm));
  rep->nodes = l->nnodes;
  rep->outblock = imf_trainer_outblock_rows(r->t) > 0;
  rep->model_rows_max = r->nu + r->ni;
  if (rep->outblock) {
    int64_t rows = imf_trainer_outblock_rows(r->t);
    IMF_MPI(MPI_Allreduce(&rows, &rep->model_rows_max, 1, MPI_INT64_T, MPI_MAX, r->comm));
  }
  int64_t net[6];
  imf_trainer_traffic(r->t, net);
  memcpy(rep->sweep_bytes, net, sizeof rep->sweep_bytes);
  return IMF_OK;
}

imf_status imf_train(MPI_Comm comm, const imf_config *cfg_in, const char *store_dir, const char *model_dir,
                     const imf_train_opts *o, imf_train_report *rep) {
  imf_status st = IMF_OK;
  trun r;
  memset(&r, 0, sizeof r);
  r.comm = comm;
  r.store_dir = store_dir;
  r.model_dir = model_dir;
  r.o = o;
  r.rep = rep;
  MPI_Comm_rank(comm, &r.rank);
  MPI_Comm_size(comm, &r.size);
  memset(rep, 0, sizeof *rep);
  rep->val_rmse = rep->val_mae = rep->test_rmse = rep->test_mae = NAN;
  r.t0 = imf_wtime();
  IMF_TRY(train_config(&r, cfg_in), out);
  IMF_TRY(train_data(&r), out);
  if (r.ease) IMF_TRY(train_ease(&r), out);
  if (r.base) IMF_TRY(train_baseline(&r), out);
  else if (!r.ease) IMF_TRY(train_sweeps(&r), out);
  const imf_model *m = r.t ? imf_trainer_model(r.t) : r.em;
  rep->iterations = m->iteration;
  if (m->nhistory > 0) {
    rep->val_rmse = m->history[m->nhistory - 1].val_rmse;
    rep->val_mae = m->history[m->nhistory - 1].val_mae;
  }
  if (r.t && imf_trainer_stopped(r.t)) {
    IMF_TRY(write_run_checkpoint(&r, m), out);
    rep->stopped = 1;
    imf_info("stopped by signal after sweep %lld: run checkpoint %s written; rerun with --resume",
             (long long)m->iteration, r.ckpt);
    st = IMF_RAISE(IMF_ERR_REQUEUE, "stopped by a signal after sweep %lld; checkpoint written, resume with --resume",
                       (long long)m->iteration);
    goto out;
  }
  IMF_TRY(train_test(&r, m), out);
  IMF_TRY(train_commit(&r, m), out);
  imf_mem_trace("train: version written");
  IMF_TRY(train_memory(&r, rep), out);
  if (!imf_log_quiet()) {
    imf_info("peak memory per rank %.1f MB (max over ranks), per node %.1f MB (max over %d node%s)",
             (double)rep->peak_rss_max / 1e6, (double)rep->peak_rss_node_max / 1e6, rep->nodes,
             rep->nodes == 1 ? "" : "s");
    if (r.t) IMF_TRY(imf_trainer_log_view(r.t, stderr), out);
    imf_info("checkpoint writes: %.2f s", r.t_ckpt);
  }
  rep->seconds = imf_wtime() - r.t0;
out:
  train_free(&r);
  return st;
}
