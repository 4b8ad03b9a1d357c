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
 * checkpoints, no stop points) and the version holds it in factor form (model.h) plus its
 * distributed state (the Gram matrix X^T X and B, written block-cyclically: update adds to the
 * Gram matrix instead of rebuilding it).
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
#include "log.h"
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
    st = imf_err_raise(IMF_ERR_RUNTIME, __FILE__, __LINE__, "cannot write %s: %s%s (the sweep log; the run checkpoint "
                       "of the last periodic write is kept: free some space, then `train --resume`)", path,
                       e == ENOSPC || e == EDQUOT ? "no space left on the file system: " : "", strerror(e));
  }
  return imf_agree(comm, st);
}

static void log_sweep(FILE *f, const imf_sweep_metrics *h, double ratings_per_s) {
  fprintf(f, "{\"iteration\":%lld,\"train_loss\":", (long long)h->iteration);
  if (isfinite(h->train_loss)) fprintf(f, "%.9g", h->train_loss); else fputs("null", f);
  const double v[4] = {h->train_rmse, h->val_rmse, h->val_mae, h->seconds};
  const char *k[4] = {"train_rmse", "val_rmse", "val_mae", "seconds"};
  for (int j = 0; j < 4; j++) {
    fprintf(f, ",\"%s\":", k[j]);
    if (isfinite(v[j])) fprintf(f, "%.9g", v[j]); else fputs("null", f);
  }
  fprintf(f, ",\"ratings_per_s\":%.6g}\n", ratings_per_s);
}

static imf_status make_meta(const imf_config *cfg, imf_store *s, imf_idmap *users, imf_idmap *items,
                            const char *kind, imf_ckpt_meta *meta) {
  memset(meta, 0, sizeof *meta);
  meta->config = imf_config_dump(cfg);
  if (!meta->config) IMF_FAIL(IMF_ERR_NOMEM, "out of memory");
  snprintf(meta->store_digest, sizeof meta->store_digest, "%s", imf_store_digest(s));
  meta->batches_seen = imf_store_nbatches(s);
  IMF_CHECK(imf_store_user_ids(s, users, &meta->users));
  IMF_CHECK(imf_idmap_tail(items, 0, &meta->items));
  snprintf(meta->kind, sizeof meta->kind, "%s", kind);
  return IMF_OK;
}

imf_status imf_train(MPI_Comm comm, const imf_config *cfg_in, const char *store_dir, const char *model_dir,
                     const imf_train_opts *o, imf_train_report *rep) {
  imf_status st = IMF_OK;
  imf_modeldir *md = NULL;
  imf_store *s = NULL;
  imf_idmap *users = NULL, *items = NULL;
  imf_ratings local = {0};
  imf_partition *part = NULL;
  imf_trainer *t = NULL;
  imf_model *saved = NULL, *em = NULL;
  imf_ease *es = NULL; /* EASE: the distributed Gram matrix and B, stored with the version */
  imf_ease_rows ex = {0}; /* EASE: this rank's rows of X, stored sparse with the version */
  imf_config *cfg = NULL;
  imf_ckpt_meta meta = {0}, rmeta = {0};
  FILE *log = NULL;
  int rank, size;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  memset(rep, 0, sizeof *rep);
  rep->val_rmse = rep->val_mae = rep->test_rmse = rep->test_mae = NAN;
  double t0 = imf_wtime();

  IMF_TRY(imf_modeldir_open(comm, model_dir, 1, 1, o->break_lock, &md), out);
  IMF_TRY(imf_store_open(comm, store_dir, IMF_STORE_READ, 0, &s), out);

  /* Resume: the run checkpoint carries the configuration it was started with. */
  const char *ckpt = imf_modeldir_run_checkpoint(md);
  int have_ckpt = 0;
  if (rank == 0) have_ckpt = access(ckpt, F_OK) == 0;
  IMF_MPI(MPI_Bcast(&have_ckpt, 1, MPI_INT, 0, comm));
  IMF_TRY(imf_config_create(&cfg), out);
  if (o->resume && have_ckpt) {
    st = imf_checkpoint_read(comm, ckpt, &saved, &rmeta);
    if (st == IMF_ERR_INPUT) { /* say what to do with a bad run checkpoint (not a version: no rollback) */
      /* the reason alone: its advice (roll back to an earlier version) is for versions */
      char why[1024];
      snprintf(why, sizeof why, "%s", imf_err_reason());
      st = IMF_RAISE(IMF_ERR_INPUT, "%s; the run cannot resume from it: delete %s and train again without --resume",
                     why, ckpt);
    }
    IMF_TRY(st, out);
    if (strcmp(rmeta.store_digest, imf_store_digest(s)) != 0 || rmeta.batches_seen != imf_store_nbatches(s))
      IMF_TRY(imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__,
                            "%s was started on other data (store digest %.12s..., %lld batches; the store now has "
                            "%.12s..., %lld): train without --resume to start over, or use update",
                            ckpt, rmeta.store_digest, (long long)rmeta.batches_seen, imf_store_digest(s),
                            (long long)imf_store_nbatches(s)), out);
    IMF_TRY(imf_config_load_string(cfg, rmeta.config, ckpt), out);
    imf_info("resuming %s from sweep %lld (its configuration is used)", ckpt, (long long)saved->iteration);
  } else {
    char *text = imf_config_dump(cfg_in);
    if (!text) IMF_TRY(imf_err_raise(IMF_ERR_NOMEM, __FILE__, __LINE__, "out of memory"), out);
    st = imf_config_load_string(cfg, text, "configuration");
    free(text);
    IMF_TRY(st, out);
    if (o->resume) imf_info("no run checkpoint in %s: starting a new run", model_dir);
    else if (have_ckpt) imf_info("discarding the unfinished run checkpoint %s (use --resume to continue it)", ckpt);
  }
  const int ease = !strcmp(imf_cfg_str(cfg, "model.type"), "ease");
  const int base = !strcmp(imf_cfg_str(cfg, "model.type"), "pop") || !strcmp(imf_cfg_str(cfg, "model.type"), "bias");

  /* Data: every rank reads the ratings of its contiguous user range. */
  double tr = imf_wtime();
  IMF_TRY(imf_idmap_create(&users), out);
  IMF_TRY(imf_idmap_create(&items), out);
  IMF_TRY(imf_store_load_idmaps(s, users, items), out);
  int64_t nu = imf_store_nusers(s), ni = imf_store_nitems(s);
  IMF_TRY(imf_store_read_ratings(s, nu * rank / size, nu * (rank + 1) / size, &local), out);
  {
    /* implicit models train on their positives and confidence values (scale.h): the same
     * transform update and evaluate apply, from the configuration recorded with the model */
    imf_implicit_opts io;
    IMF_TRY(imf_agree(comm, imf_implicit_opts_from(cfg, &io)), out);
    imf_implicit_apply(&io, &local);
    char desc[160];
    imf_implicit_describe(&io, desc, sizeof desc);
    if (io.active) imf_info("implicit training data: %s", desc);
    else if (!isnan(io.positive_threshold) || io.confidence != IMF_CONF_LINEAR)
      imf_warn("model.positive_threshold and model.confidence apply to implicit models (ials, ease, pop): "
               "ignored for %s", imf_cfg_str(cfg, "model.type"));
  }
  double t_read = imf_wtime() - tr;
  /* The store's standing holdout (recorded at prepare) is never trained on and is the
   * validation set; a store without one falls back to model.validation_fraction. */
  double hfrac = imf_cfg_double(cfg, "model.validation_fraction");
  uint64_t hseed = (uint64_t)imf_cfg_int(cfg, "model.seed");
  if (imf_store_holdout(s, &hfrac, &hseed)) {
    char set[64];
    snprintf(set, sizeof set, "model.validation_fraction=%.17g", hfrac);
    IMF_TRY(imf_config_set(cfg, set), out);
    imf_info("standing holdout of the store: fraction %g (seed %llu) held out of training", hfrac,
             (unsigned long long)hseed);
  }
  int64_t nholdout = 0;
  double t_ckpt = 0;
  if (ease) {
    /* X is the training ratings only: the standing holdout is never trained on */
    int64_t w = 0;
    for (int64_t j = 0; j < local.n; j++) {
      if (hfrac > 0 && imf_is_holdout(hseed, hfrac, local.user[j], local.item[j])) {
        nholdout++;
        continue;
      }
      local.user[w] = local.user[j];
      local.item[w] = local.item[j];
      local.value[w] = local.value[j];
      if (local.time) local.time[w] = local.time[j];
      w++;
    }
    local.n = w;
    int64_t cnt[2] = {w, nholdout};
    IMF_MPI(MPI_Allreduce(MPI_IN_PLACE, cnt, 2, MPI_INT64_T, MPI_SUM, comm));
    nholdout = cnt[1];
    double lambda = imf_cfg_double(cfg, "model.ease_lambda");
    imf_info("data: %lld users, %lld items, %lld training + %lld held-out ratings (read %.2f s); EASE, lambda %g",
             (long long)nu, (long long)ni, (long long)cnt[0], (long long)nholdout, t_read, lambda);
    IMF_TRY(imf_ease_model(comm, &local, nu * rank / size, nu * (rank + 1) / size, nu, ni, lambda, &em, &es, &ex),
            out);
    imf_ratings_free(&local);
    if (rank == 0) {
      log = fopen(imf_modeldir_log_path(md), "w");
      if (!log) imf_warn("cannot write %s: %s", imf_modeldir_log_path(md), strerror(errno));
      else log_sweep(log, &em->history[0], em->history[0].seconds > 0 ? (double)cnt[0] / em->history[0].seconds : 0);
    }
    IMF_TRY(log_check(comm, log, imf_modeldir_log_path(md)), out);
  } else {
    IMF_TRY(imf_partition_build(comm, &local, nu, ni, hfrac, hseed, &part), out);
    imf_ratings_free(&local);
    imf_info("data: %lld users, %lld items, %lld training + %lld validation ratings (read %.2f s, partition %.2f s)",
             (long long)nu, (long long)ni, (long long)part->nnz_train, (long long)part->nnz_holdout, t_read,
             part->seconds);
  }
  if (base) {
    IMF_TRY(imf_baseline_fit(comm, cfg, part, &em), out);
    if (rank == 0) {
      log = fopen(imf_modeldir_log_path(md), "w");
      if (!log) imf_warn("cannot write %s: %s", imf_modeldir_log_path(md), strerror(errno));
      for (int64_t j = 0; log && j < em->nhistory; j++) log_sweep(log, &em->history[j], 0);
    }
    IMF_TRY(log_check(comm, log, imf_modeldir_log_path(md)), out);
  } else if (!ease) {
    IMF_TRY(imf_train_create(comm, cfg, part, &t), out);
    if (saved) IMF_TRY(imf_trainer_resume(t, saved), out);
    stop_ctx sc = {comm};
    imf_trainer_set_stop_hook(t, stop_hook, &sc);

    int64_t every = imf_cfg_int(cfg, "model.checkpoint_every");
    int64_t stop_after = getenv("IMF_STOP_AFTER_SWEEP") ? atoll(getenv("IMF_STOP_AFTER_SWEEP")) : -1;
    if (rank == 0) {
      log = fopen(imf_modeldir_log_path(md), saved ? "a" : "w");
      if (!log) imf_warn("cannot write %s: %s", imf_modeldir_log_path(md), strerror(errno));
    }
    while (!imf_trainer_done(t)) {
      double ts = imf_wtime();
      IMF_TRY(imf_trainer_sweep(t), out);
      const imf_model *m = imf_trainer_model(t);
      if (imf_trainer_stopped(t)) break;
      if (m->nhistory > 0) {
        const imf_sweep_metrics *h = &m->history[m->nhistory - 1];
        double secs = imf_wtime() - ts;
        double rps = secs > 0 ? (double)part->nnz_train / secs : 0;
        if (log) log_sweep(log, h, rps);
      }
      IMF_TRY(log_check(comm, log, imf_modeldir_log_path(md)), out);
      /* test hook: as if SIGUSR1 arrived once the model has this many sweeps */
      if (stop_after >= 0 && m->iteration >= stop_after) stop_requested = 1;
      if (every > 0 && m->iteration % every == 0 && !imf_trainer_done(t)) {
        double tc = imf_wtime();
        imf_ckpt_meta_free(&meta);
        IMF_TRY(make_meta(cfg, s, users, items, "run", &meta), out);
        IMF_TRY(imf_checkpoint_write(comm, ckpt, m, &meta), out);
        t_ckpt += imf_wtime() - tc;
      }
    }
  }
  const imf_model *m = t ? imf_trainer_model(t) : em;
  rep->iterations = m->iteration;
  if (m->nhistory > 0) {
    rep->val_rmse = m->history[m->nhistory - 1].val_rmse;
    rep->val_mae = m->history[m->nhistory - 1].val_mae;
  }
  if (t && imf_trainer_stopped(t)) {
    double tc = imf_wtime();
    imf_ckpt_meta_free(&meta);
    IMF_TRY(make_meta(cfg, s, users, items, "run", &meta), out);
    IMF_TRY(imf_checkpoint_write(comm, ckpt, m, &meta), out);
    t_ckpt += imf_wtime() - tc;
    rep->stopped = 1;
    imf_info("stopped by signal after sweep %lld: run checkpoint %s written; rerun with --resume", (long long)m->iteration, ckpt);
    st = imf_err_raise(IMF_ERR_REQUEUE, __FILE__, __LINE__, "stopped by a signal after sweep %lld; checkpoint written, resume with --resume",
                       (long long)m->iteration);
    goto out;
  }
  const int ranking_only = ease || m->type == IMF_MODEL_POP; /* scores that are not ratings */
  if (o->test_path && ranking_only) /* EASE: a handle, its scores come from B (evaluate --model) */
    imf_warn("--test %s: %s scores are not ratings: no test RMSE (use evaluate --model)", o->test_path,
             ease ? "EASE" : "pop");
  if (o->test_path && !ranking_only) {
    imf_eval_result er;
    imf_store_info info;
    IMF_TRY(imf_store_get_info(s, &info), out);
    IMF_TRY(imf_eval_file(comm, cfg, m, users, items, o->test_path, info.scale_min, info.scale_max, &er), out);
    rep->test_rmse = er.rmse;
    rep->test_mae = er.mae;
    rep->test_n = er.n;
    rep->test_cold = er.cold;
    imf_info("test %s: RMSE %.5f  MAE %.5f over %lld ratings (%lld with a user or item unseen in training)",
             o->test_path, er.rmse, er.mae, (long long)er.n, (long long)er.cold);
  }
  double tc = imf_wtime();
  imf_ckpt_meta_free(&meta);
  IMF_TRY(make_meta(cfg, s, users, items, "version", &meta), out);
  meta.ease = es;
  if (ease) meta.ease_x = &ex;
  {
    /* lineage: the version current before this one is its parent */
    char cur[4400];
    int64_t parent = 0;
    if (imf_modeldir_current(md, cur, sizeof cur, &parent) != IMF_OK) {
      parent = 0;
      imf_err_clear();
    }
    int64_t next = 0;
    IMF_TRY(imf_modeldir_write_version(md, m, &meta, &next), out);
    imf_registry_record rec;
    imf_registry_record_init(&rec);
    snprintf(rec.event, sizeof rec.event, "train");
    snprintf(rec.strategy, sizeof rec.strategy, "train");
    snprintf(rec.decision, sizeof rec.decision, "trained");
    rec.version = next;
    rec.parent = parent;
    rec.batches_seen = meta.batches_seen;
    rec.challenger_rmse = rep->val_rmse;
    rec.eval_n = ease ? nholdout : part->nnz_holdout;
    {
      /* the version's own holdout SSE: a later fold-in judges from it (update.c) */
      double fr, sse[2];
      uint64_t sd;
      int64_t hn = 0;
      if (!ease && imf_store_holdout(s, &fr, &sd)) {
        IMF_TRY(imf_holdout_sse(comm, part, m, NULL, sse, &hn), out);
        rec.holdout_sse = sse[0];
        rec.holdout_n = hn;
        rec.holdout_forgotten = imf_store_nforgotten(s);
        IMF_TRY(imf_judge_holdout_users(comm, part, &rec.holdout_users), out);
      }
    }
    rec.seconds = imf_wtime() - t0;
    if (!realpath(store_dir, rec.store)) snprintf(rec.store, sizeof rec.store, "%s", store_dir);
    IMF_TRY(imf_registry_append(comm, imf_modeldir_path(md), &rec), out);
    IMF_TRY(imf_modeldir_set_current(md, next), out);
    rep->version = next;
  }
  t_ckpt += imf_wtime() - tc;
  if (rank == 0) unlink(ckpt);
  {
    int64_t rss = imf_peak_rss();
    IMF_MPI(MPI_Allreduce(&rss, &rep->peak_rss_max, 1, MPI_INT64_T, MPI_MAX, comm));
  }
  if (!imf_log_quiet()) {
    imf_info("peak memory per rank %.1f MB (max over ranks)", (double)rep->peak_rss_max / 1e6);
    if (t) IMF_TRY(imf_trainer_log_view(t, stderr), out);
    imf_info("checkpoint writes: %.2f s", t_ckpt);
  }
  rep->seconds = imf_wtime() - t0;
out:
  if (log) fclose(log);
  imf_ckpt_meta_free(&meta);
  imf_ckpt_meta_free(&rmeta);
  imf_trainer_destroy(&t);
  imf_partition_destroy(&part);
  imf_ratings_free(&local);
  imf_model_destroy(&saved);
  imf_model_destroy(&em);
  imf_ease_destroy(&es);
  imf_ease_rows_free(&ex);
  imf_idmap_destroy(&users);
  imf_idmap_destroy(&items);
  imf_config_destroy(&cfg);
  imf_store_close(&s);
  imf_modeldir_close(&md);
  return st;
}
