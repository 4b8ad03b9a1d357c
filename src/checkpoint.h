/* checkpoint.h - a model (model.h) and what travels with it, stored as one HDF5 file written
 * collectively with MPI-IO and replaced atomically; read back on any number of ranks.
 * Layout and the content digest: docs/FORMAT.md, "Model checkpoints". */
#ifndef IMF_CHECKPOINT_H
#define IMF_CHECKPOINT_H
#include "ease.h"
#include "itemsums.h"
#include "model.h"
#include "ratings.h"

#define IMF_CKPT_FORMAT "incremf-model"
#define IMF_CKPT_FORMAT_VERSION 1

/* What is stored next to the factors. */
typedef struct {
  char *config;            /* effective configuration as INI text (imf_config_dump); malloc'd,
                              NULL is stored as "" */
  char store_digest[65];   /* content digest of the store the model was trained on ("" none) */
  int64_t batches_seen;    /* store batches the model has seen */
  imf_idlist users, items; /* raw ids of the dense indices: n == nusers / nitems, or n == 0
                              when the model carries no ids */
  char kind[16];           /* "run" (resumable training checkpoint) or "version" */
  char openblas_core[64];  /* CPU kernel the factors were computed with (rounding may differ
                              on another one); "" = this process's, filled by the writer */
  char created[32];        /* ISO-8601 UTC; "" = now, filled by the writer */
  char incremf_version[32];/* "" = this build's, filled by the writer */
  imf_ease *ease;          /* write only, borrowed (never freed here): an EASE model's
                              distributed state, on the writer's communicator: B stored as
                              /ease/BT in f32 (rounded in place first, imf_ease_round_b), and,
                              when the state holds P, P in a P file next to the version
                              (ease-p-<hash>.h5, written first with the same tmp/fsync/rename,
                              shared by every version with the same P). The Gram matrix is not
                              stored (IMF_EASE_LEGACY_FORMAT=1: f64 B and the Gram matrix, no
                              P file, as before). NULL: none. A read leaves it NULL */
  const imf_ease_rows *ease_x; /* write only, borrowed: an EASE model's binarized X, this rank's
                              rows (the writer's ranks' ranges cover [0, nusers) once), stored
                              sparse as /ease/x_ptr, /ease/x_idx; needs `ease`. NULL: none (the
                              replicated form of older versions, P = X, is then what m holds).
                              A read leaves it NULL (imf_checkpoint_read_ease_x) */
  const imf_itemsums *itemsums; /* write only, borrowed: an ALS model's per-item sums, this
                              rank's range (the writer's ranks' ranges tile [0, nitems) in rank
                              order), stored as /itemsums (checkpoint_sums.c). NULL: none. A read
                              leaves it NULL (imf_checkpoint_read_itemsums) */
} imf_ckpt_meta;
/* Frees config and the id lists and zeroes the struct. NULL-safe. */
void imf_ckpt_meta_free(imf_ckpt_meta *meta);

/* The root attributes of a checkpoint, for `inspect` and for checks before a full read. */
typedef struct {
  int64_t format_version;
  imf_model_type type;
  int k, kw, with_bias, has_chain;
  int64_t nusers, nitems;
  double mu, lambda, lambda_bias, alpha;
  uint64_t seed;
  int64_t iteration, nsamples, max_samples, burn_in, thin, chain_sweeps;
  int64_t nhistory;        /* length of /history */
  int64_t nuser_ids, nitem_ids;
  int64_t batches_seen;
  char store_digest[65], content_sha256[65];
  char kind[16], openblas_core[64], created[32], incremf_version[32];
  char *config;            /* malloc'd INI text */
  int64_t ease_items;      /* order of the stored EASE state (0: none) */
  int ease_has_gram, ease_has_b;
  char ease_gram_hash[33], ease_b_hash[33]; /* imf_ease_hash of each ("" absent) */
  int ease_has_x;          /* X stored sparse (/ease/x_ptr, /ease/x_idx); the factors are then
                              k = kw = 1 placeholders */
  int64_t ease_x_nnz;      /* entries of X (ones), when ease_has_x */
  char ease_x_hash[33];    /* imf_ease_rows_hash of X ("" absent) */
  char ease_p_file[48];    /* "ease-p-<ease_p_hash>.h5": the P file next to the version holding
                              P = (X^T X + lambda I)^-1, where the next update starts ("" none) */
  char ease_p_hash[33];    /* imf_ease_hash of that P ("" none) */
} imf_ckpt_info;
void imf_ckpt_info_free(imf_ckpt_info *info);

/* Collective. Write m (replicated: identical on every rank; or a block model, model.h, each rank
 * holding its blocks of rows, which must tile the rows in rank order) and meta to path: each rank
 * writes its block of rows, the file goes to path.tmp, is closed and synced, then renamed over
 * path. Both forms of one model give the same file (content digest included).
 * On any failure (or a kill) the previous file at path is untouched; the status is the same on
 * every rank. Test hook: IMF_FAULT=checkpoint-before-rename fails after the tmp file is
 * complete and before the rename. */
imf_status imf_checkpoint_write(MPI_Comm comm, const char *path, const imf_model *m,
                                const imf_ckpt_meta *meta);

/* Collective. Read a checkpoint written on any number of ranks; every rank gets the whole model
 * and meta (meta may be NULL). The content digest is verified: a damaged, truncated, foreign or
 * newer-format file is a one-line IMF_ERR_INPUT, a missing file IMF_ERR_NOTFOUND. */
imf_status imf_checkpoint_read(MPI_Comm comm, const char *path, imf_model **out,
                               imf_ckpt_meta *meta);
/* The same with the model's P, Q, biases and BPMF chain rows in one segment per node (layout.h:
 * the real nodes, or pretend nodes of ranks_per_node ranks) instead of a copy per rank: each rank
 * reads its rows into the node's copy and the nodes' first ranks exchange theirs. For commands
 * that only read the model (evaluate, recommend; dist.node_shared); destroying it is collective
 * on the node (model.h, shm). */
imf_status imf_checkpoint_read_shared(MPI_Comm comm, int ranks_per_node, const char *path, imf_model **out,
                                      imf_ckpt_meta *meta);

/* What imf_checkpoint_read_ease loads. */
#define IMF_CKPT_EASE_GRAM 1
#define IMF_CKPT_EASE_B 2
/* Collective. The EASE state stored with a model (what `want` names: its Gram matrix and/or B)
 * on a new BLACS grid of comm's ranks (grid: IMF_EASE_GRID_SQUARE or IMF_EASE_GRID_COLUMNS),
 * whatever rank count or grid wrote it: each rank reads only its own blocks, as strided
 * hyperslabs of the global matrices. Each matrix read is checked against its order-free hash
 * attribute, which the content digest covers (imf_checkpoint_read verifies that). IMF_ERR_INPUT
 * when the file holds no EASE state or not what `want` names. */
imf_status imf_checkpoint_read_ease(MPI_Comm comm, const char *path, int want, int grid, imf_ease **out);

/* Collective. The P an EASE version references (its P file, in the version's directory) on a
 * new grid of comm's ranks, checked against the version's ease_p_hash and lambda: a state
 * holding P only. IMF_ERR_NOTFOUND when the version references none or the file is gone
 * (pruned: update then refactorises), IMF_ERR_INPUT when it does not match. */
imf_status imf_checkpoint_read_ease_p(MPI_Comm comm, const char *path, int grid, imf_ease **out);

/* Collective. Rows [lo, hi) of an EASE version's X on this rank (rows past nusers are empty);
 * the ranks' ranges must cover [0, nusers) once (IMF_ERR_USAGE otherwise). X stored sparse: each
 * rank reads its rows' slices of /ease/x_ptr and /ease/x_idx, checks them (ascending items below
 * nitems, offsets consistent) and the whole against ease_x_hash and ease_x_nnz (the content digest
 * covers both: imf_checkpoint_read verifies that). A version in the older replicated form (no
 * sparse X, kw = nitems): the rows are read from /factors/P (which imf_checkpoint_read verified
 * through the digest). IMF_ERR_INPUT for a file that is not an EASE model or is damaged. */
imf_status imf_checkpoint_read_ease_x(MPI_Comm comm, const char *path, int64_t lo, int64_t hi, imf_ease_rows *out);

/* Collective. Items [lo, hi) of the per-item sums a version carries (itemsums.h), taken against
 * m (the version's model, possibly grown: items past those stored get empty sums); the ranks'
 * ranges must tile [0, m->nitems). Checked against the stored checksum and m's shape.
 * IMF_ERR_NOTFOUND when the version carries none, IMF_ERR_INPUT when they are damaged or
 * belong to another model. */
imf_status imf_checkpoint_read_itemsums(MPI_Comm comm, const char *path, const imf_model *m, int64_t lo, int64_t hi,
                                        imf_itemsums **out);
/* Collective. Every item's rater count from those sums (*n: *stored entries, on every rank), to
 * cut the items into blocks before reading them; the same errors as above. */
imf_status imf_checkpoint_read_itemsums_counts(MPI_Comm comm, const char *path, const imf_model *m, int64_t **n,
                                               int64_t *stored);
/* (local) The attributes of a checkpoint (serial HDF5, no digest check): the same errors as
 * imf_checkpoint_read for missing, foreign and newer files. */
imf_status imf_checkpoint_info(const char *path, imf_ckpt_info *info);

/* (local) For tests: the largest number of bytes one rank moves in one HDF5 or MPI call (larger
 * arrays go in rounds, which is what keeps counts past 2^31 bytes working). 0 restores the
 * default (1 GiB). */
void imf_checkpoint_set_io_chunk(int64_t bytes);
#endif
