/* incremf.h - the public, embeddable C API of libincremf.
 *
 * A small and stable surface in the spirit of LIBMF: status codes, configuration, the rating
 * data store and the model operations. Everything here is collective over the communicator it
 * is given unless it says otherwise. Internal module headers live in src/ and are not installed.
 */
#ifndef INCREMF_H
#define INCREMF_H

#include <mpi.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IMF_VERSION_MAJOR 0
#define IMF_VERSION_MINOR 1

/* The functions declared here are libincremf's exported symbols; it is built with hidden
 * visibility (CMakeLists.txt), so everything else in it (the internal imf_* modules of src/)
 * is invisible to programs that link the shared library. */
#if defined(__GNUC__) || defined(__clang__)
#define IMF_API __attribute__((visibility("default")))
#else
#define IMF_API
#endif

/* Status codes. Each maps onto one process exit code (imf_exit_code), shared by every
 * subcommand and documented in the README. */
typedef enum {
  IMF_OK = 0,
  IMF_ERR_RUNTIME,   /* I/O, MPI, HDF5, out of memory: exit 1 */
  IMF_ERR_USAGE,     /* bad flag, unknown config key, bad value: exit 2 */
  IMF_ERR_INPUT,     /* bad input data, corrupt or foreign file, refused batch: exit 3 */
  IMF_ERR_LOCKED,    /* another writer holds the store or model: exit 4 */
  IMF_ERR_STALE,     /* status --check: model stale or drifting: exit 5 */
  IMF_ERR_REQUEUE,   /* stopped by SIGTERM/SIGUSR1 after a checkpoint: exit 75 */
  IMF_ERR_NOMEM,     /* allocation failed or size overflow: exit 1 */
  IMF_ERR_NOTFOUND   /* a named file, user or version does not exist: exit 3 */
} imf_status;

IMF_API const char *imf_status_name(imf_status s);
/* Process exit code for a status (0, 1, 2, 3, 4, 5, 75). */
IMF_API int imf_exit_code(imf_status s);
/* The message of the most recent error on this rank ("file:line: reason"). */
IMF_API const char *imf_last_error(void);

/* Process setup to call before MPI_Init: defaults the MPI library settings incremf relies on,
 * leaving any the user set alone. Today: Open MPI's MPI-IO is ROMIO, not ompio
 * (OMPI_MCA_io=^ompio). ompio opens a shared file pointer with every file: "sm" by a POSIX
 * semaphore named after the file's base name only, which a process killed while holding it
 * (SIGKILL, a Slurm time limit) leaves locked in /dev/shm, so every later 2-rank open of any
 * file with that name waits forever; the other components leave side files next to the file.
 * incremf never uses shared file pointers. */
IMF_API void imf_preinit(void);
/* Library setup: pins OpenBLAS to one thread per rank and records versions. Call after
 * MPI_Init. */
IMF_API imf_status imf_initialize(MPI_Comm comm);
/* One line naming the OpenBLAS config, MPI library and HDF5 versions. */
IMF_API const char *imf_build_info(void);

/* ---- configuration: one mechanism for INI files and --set section.key=value ---- */
typedef struct imf_config imf_config;
IMF_API imf_status imf_config_create(imf_config **cfg);
IMF_API void imf_config_destroy(imf_config **cfg);
IMF_API imf_status imf_config_load_file(imf_config *cfg, const char *path);
IMF_API imf_status imf_config_set(imf_config *cfg, const char *assignment); /* "section.key=value" */
IMF_API imf_status imf_config_get_str(const imf_config *cfg, const char *key, const char **out);
IMF_API imf_status imf_config_get_int(const imf_config *cfg, const char *key, int64_t *out);
IMF_API imf_status imf_config_get_double(const imf_config *cfg, const char *key, double *out);
IMF_API imf_status imf_config_get_bool(const imf_config *cfg, const char *key, int *out);
/* The whole effective configuration as INI text (malloc'd; caller frees). */
IMF_API char *imf_config_dump(const imf_config *cfg);

/* ---- the rating data store ---- */
typedef struct {
  int64_t users, items, ratings, batches;
  double scale_min, scale_max;        /* NaN when no scale is configured */
  int value_known;                    /* the observed value scale is recorded (store.h) */
  double value_min, value_max, value_step; /* observed; step NaN: no regular step */
  int64_t time_min, time_max;         /* INT64_MIN/INT64_MAX sentinels when no timestamps */
  char normalize[16];
  char digest[65];                    /* content digest (hex sha256) */
} imf_store_info;

/* Counts of one ingestion (prepare or append). The invariant
 * lines_read == header + stored + merged + rejected holds. */
#define IMF_REJECT_REASONS 16
typedef struct {
  int64_t lines_read, header, stored, merged, rejected, superseded;
  int64_t rejected_by[IMF_REJECT_REASONS];
  int64_t new_users, new_items;
  int64_t batch;                       /* the batch number this ingestion created */
  char sha256[65];
} imf_ingest_report;
IMF_API const char *imf_reject_reason_name(int reason);

/* Create a new store from an input file (its batch 1). Fails if DIR already holds a store. */
IMF_API imf_status imf_prepare(MPI_Comm comm, const imf_config *cfg, const char *store_dir,
                               const char *input, const char *rejects_path, imf_ingest_report *report);
/* Add one input file to an existing store as a new batch. */
IMF_API imf_status imf_append(MPI_Comm comm, const imf_config *cfg, const char *store_dir,
                              const char *input, const char *rejects_path, imf_ingest_report *report);
IMF_API imf_status imf_store_inspect(MPI_Comm comm, const char *store_dir, imf_store_info *info);

/* ---- training ---- */
typedef struct {
  int resume;             /* continue the model directory's run checkpoint when there is one */
  int break_lock;         /* take the model directory's lock even from another host */
  const char *test_path;  /* optional test file: RMSE/MAE reported at the end */
} imf_train_opts;

typedef struct {
  int64_t version;        /* model version written (0 when stopped before the end) */
  int64_t iterations;     /* sweeps completed */
  int stopped;            /* stopped by a signal: a run checkpoint was written */
  double seconds;
  double val_rmse, val_mae;   /* last sweep's validation figures (NaN without validation) */
  double test_rmse, test_mae; /* NaN without a test file */
  int64_t test_n, test_cold;
  int64_t peak_rss_max;       /* bytes, max over ranks */
  /* Since 0.2 (issue 25; docs/SCALING.md): */
  int64_t peak_rss_node_max;  /* bytes, the most one node held (its ranks' peaks summed) */
  int nodes;                  /* nodes of the layout (dist.ranks_per_node) */
  int node_shared;            /* 1: one copy of the factors per node (dist.node_shared) */
  int64_t sweep_bytes[6];     /* the last sweep's exchange, bytes, max over ranks: sent inside the
                                 node, sent between nodes, received inside, received between; then
                                 the most one node received from the others, and all ranks'
                                 receipts from other nodes summed */
  int outblock;               /* 1: the out-block exchange ran (dist.exchange; each rank held its
                                 rows and the rows its ratings reference) */
  int64_t model_rows_max;     /* out-block: the most user + item rows one rank held (else U + I) */
} imf_train_report;

/* Train a model on a store into a model directory (a new version made current). Returns
 * IMF_ERR_REQUEUE after writing a run checkpoint when a stop was requested. */
IMF_API imf_status imf_train(MPI_Comm comm, const imf_config *cfg, const char *store_dir, const char *model_dir,
                             const imf_train_opts *opts, imf_train_report *report);
/* SIGTERM, SIGINT and SIGUSR1 set a flag that stops training at the next half-sweep boundary
 * (and update at its next safe point). */
IMF_API imf_status imf_install_stop_signals(void);
/* The same from code (async-signal-safe). */
IMF_API void imf_request_stop(void);
/* Collective safe point: IMF_ERR_REQUEUE (exit 75) on every rank when any rank was asked to
 * stop, with a message saying that `what` stopped `where` and nothing was changed. */
IMF_API imf_status imf_stop_point(MPI_Comm comm, const char *what, const char *where);

/* ---- incremental update and model maintenance (docs/FORMAT.md, "Model registry") ---- */
typedef struct {
  const char *input;      /* append this file to the store first (NULL: none) */
  const char *strategy;   /* fold-in | warm | retrain | auto; NULL: update.strategy */
  int break_lock;         /* take the model directory's lock even from another host */
  int adopt;              /* take over a model built from another store (same id numbering) */
} imf_update_opts;

typedef struct {
  int64_t appended_batch;      /* batch created from opts->input (0: none) */
  int64_t parent;              /* the champion (the version current before the update) */
  int64_t version;             /* the challenger's version (0: nothing to do) */
  int64_t current;             /* the version current afterwards */
  int64_t batches_seen, new_batches, new_ratings;
  char requested[16];          /* strategy asked for */
  char strategy[16];           /* strategy that built the challenger */
  char decision[16];           /* promoted | rejected | up-to-date */
  double champion_rmse, challenger_rmse; /* on the standing holdout */
  double champion_new_rmse, challenger_new_rmse; /* on the held-out ratings of the new batches */
  double newest_rmse, drift_baseline;    /* drift signal: champion on the new batches, history */
  int drift;
  int64_t eval_n, eval_new_n;
  double seconds, build_seconds;         /* whole update; building the challenger(s) */
  char note[1024];             /* escalations and reasons */
  /* The judgement (update.metric; docs/METRICS.md, "Judging an update"): the metric's name
   * ("rmse", "ndcg@10", ...), both models' scores on the same standing-holdout ratings (RMSE
   * judgements: the holdout RMSEs, as champion_rmse/challenger_rmse), and the paired per-user
   * differences d_u (positive = challenger better): their mean, 95% paired-bootstrap interval and
   * user count (0: nothing judged). champion_rmse etc. stay NaN for ranking judgements. */
  char metric[16];
  double champion_score, challenger_score;
  double diff_mean, diff_lo, diff_hi;
  int64_t diff_users;
  double newest_score; /* ranking judgements: the champion's metric on the new batches (drift) */
  /* Where the time went (seconds, rank 0's clock): appending --input; loading the champion, the
   * store's id maps and the new batches; reading ratings (the touched rows' histories, or the
   * whole store), part of build_seconds; writing the version, its record and CURRENT. */
  double append_seconds, load_seconds, read_seconds, write_seconds;
  /* Since 0.2: how the challenger's sweeps (warm, retrain) ran, as train reports it: the
   * exchange ("replicated", "node-shared", "outblock", "node-shared+outblock"; "none" when no
   * sweeps ran: fold-in, baselines, EASE), the layout's nodes and the last sweep's bytes
   * (imf_train_report.sweep_bytes). */
  char exchange[24];
  int nodes;
  int64_t sweep_bytes[6];
} imf_update_report;

/* Fold every batch the current model has not seen into a challenger, judge champion and
 * challenger on the standing holdout, write the challenger as a new version and make it current
 * only if it is not worse beyond update.tolerance by its metric (update.metric; src/judge.h). A kept champion is IMF_OK (decision
 * "rejected"). */
IMF_API imf_status imf_update(MPI_Comm comm, const imf_config *cfg, const char *store_dir, const char *model_dir,
                              const imf_update_opts *opts, imf_update_report *report);

/* Print the lineage of a model directory (a table, or with json one object whose "versions"
 * array has one entry per version) on rank 0's out. store_dir may be NULL (the store recorded in
 * the registry is used for staleness). *stale: the store has batches the current version has not
 * seen; *drifting: the last update detected drift that no warm/retrain answered. */
IMF_API imf_status imf_model_status(MPI_Comm comm, const char *model_dir, const char *store_dir, int json, FILE *out,
                                    int *stale, int *drifting);
/* Make version `to` current (to <= 0: the current version's parent). */
IMF_API imf_status imf_rollback(MPI_Comm comm, const char *model_dir, int64_t to, int break_lock, int64_t *from,
                                int64_t *now);
/* Delete all but the newest `keep` versions, never the current one or its parent. */
IMF_API imf_status imf_prune(MPI_Comm comm, const char *model_dir, int64_t keep, int break_lock, int64_t *removed);
/* Right to be forgotten: drop the user's ratings from the store (a tombstone), zero its row in
 * every kept version, refresh the items its ratings touched, record the deletion (without the
 * id) in the lineage. */
IMF_API imf_status imf_forget(MPI_Comm comm, const imf_config *cfg, const char *store_dir, const char *model_dir,
                              const char *user_id, int break_lock, int64_t *ratings_removed, int64_t *versions_rewritten);

/* ---- using a trained model: load a version, predict, recommend, evaluate ----
 *
 * A handle holds one version of a model directory (docs/FORMAT.md), replicated on every rank of
 * its communicator (EASE: B split by columns over the ranks), with the raw user and item ids it
 * was trained on. Every function below is collective over that communicator (every rank passes
 * the same arguments; every rank gets the same result and status) unless marked (local). They
 * answer exactly what the command line answers for the same model and store: imf_model_recommend
 * is `incremf recommend --user ID --top N`, imf_model_score `recommend --user ID --items ITEM`,
 * imf_model_evaluate `incremf evaluate --test FILE --k K`. Errors carry a message
 * (imf_last_error) naming the file, user or item concerned. */
typedef struct imf_model_handle imf_model_handle;

/* Open version `version` of model_dir (<= 0: its current version) for queries. store_dir: the
 * store the model was trained on (its ratings are what imf_model_recommend excludes, and what
 * imf_model_evaluate needs), or NULL (nothing excluded, a warning says so; no evaluation). cfg:
 * the recommend.* and eval.* keys (and [input] for reading test files), copied; NULL: defaults.
 * Errors: IMF_ERR_NOTFOUND (not a model directory, no version yet, version not kept),
 * IMF_ERR_INPUT (a corrupt or foreign version file), IMF_ERR_RUNTIME (I/O, memory). On error
 * *out is NULL. */
IMF_API imf_status imf_model_open(MPI_Comm comm, const imf_config *cfg, const char *model_dir,
                                  const char *store_dir, int64_t version, imf_model_handle **out);
/* Free the handle and set *h to NULL (NULL-safe). Collective in practice: call it on every rank. */
IMF_API void imf_model_close(imf_model_handle **h);

typedef struct {
  char type[16];          /* als, ials, bpmf, ease, pop, bias */
  int64_t version;        /* the version opened */
  int64_t users, items;   /* as trained */
  int k;                  /* latent factors */
  int implicit;           /* 1: scores are preferences (ials, ease, pop), not ratings */
} imf_model_info;
/* (local) What the handle holds. */
IMF_API imf_status imf_model_describe(const imf_model_handle *h, imf_model_info *info);

/* The predicted score of one (user, item) pair by raw ids, clipped as recommend.clip says. An
 * item the model does not know scores by the cold-row rule (the global mean plus the user's
 * bias), as `recommend --items` does. Errors: IMF_ERR_NOTFOUND for an unknown user. */
IMF_API imf_status imf_model_score(imf_model_handle *h, const char *user, const char *item, double *score);

typedef struct {
  const char *item;       /* raw item id, owned by the handle: valid until its next
                             imf_model_recommend or imf_model_close */
  double score;
} imf_recommendation;
/* The user's top `top` items, best first, never one the user rated in the store: out (room for
 * `top` entries) receives *n <= top of them. An unknown user is IMF_ERR_NOTFOUND unless
 * fallback_popular: then the most rated items, and *fell_back (may be NULL) is set to 1.
 * Errors: IMF_ERR_USAGE for top < 1, IMF_ERR_INPUT/RUNTIME reading the store. */
IMF_API imf_status imf_model_recommend(imf_model_handle *h, const char *user, int top, int fallback_popular,
                                       imf_recommendation *out, int *n, int *fell_back);

typedef struct {
  double rmse, mae;        /* NaN for implicit models (their scores are not ratings) */
  int64_t n_ratings;       /* test ratings scored */
  int64_t n_cold;          /* of which the user or item was unseen in training */
  int k;                   /* the cut-off */
  double ndcg, precision, recall; /* @k, means over users_ranked (docs/METRICS.md) */
  int64_t users_ranked;    /* users with a relevant test item and training data */
} imf_model_eval;
/* Score the handle's version on a ratings file (any format `prepare` reads; ids through the
 * model's id maps): rating metrics and ranking metrics at cut-off k, the store's training items
 * excluded from the rankings. Needs the model opened with its store (IMF_ERR_USAGE otherwise).
 * Errors: IMF_ERR_NOTFOUND (no such file), IMF_ERR_INPUT (a file that does not parse). */
IMF_API imf_status imf_model_evaluate(imf_model_handle *h, const char *test_path, int k, imf_model_eval *out);

#ifdef __cplusplus
}
#endif
#endif
