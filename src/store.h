/* store.h - the rating data store on HDF5: a directory of immutable per-batch HDF5 files under
 * a small text MANIFEST that is replaced atomically (tmp, fsync, rename, fsync dir). Appending
 * costs the size of the batch, never the size of the store. Layout: docs/FORMAT.md.
 *
 * This is the store's only interface: store*.c implement it (store_impl.h, private to them, says
 * which file does what), through the HDF5 plumbing of h5io.c. All functions are collective over the
 * store's communicator unless marked (local). */
#ifndef IMF_STORE_H
#define IMF_STORE_H
#include "idmap.h"
#include "ratings.h"

/* An open store (store.c). Internal: no function of the public incremf.h takes one. */
typedef struct imf_store imf_store;

/* One ingested batch, ready to be written. The ratings are this rank's part, sorted by (user,
 * item), with no (user,item) twice; rank r's users all precede rank r+1's users, so the
 * concatenation over ranks is the batch in canonical order (independent of the rank count). */
typedef struct {
  imf_ratings r;
  int64_t users_before, items_before; /* idmap sizes before this batch */
  imf_idlist new_users, new_items;    /* ids of indices [before, before + n): on every rank */
  imf_ingest_report report;           /* counts of the ingestion; sha256 of the source file */
  char source[4096];                  /* input path as given */
  int64_t time_min, time_max;         /* over the batch's stored ratings (IMF_NO_TIME if none) */
} imf_batch;
void imf_batch_free(imf_batch *b);

#define IMF_STORE_READ 0
#define IMF_STORE_WRITE 1

/* Create an empty store (0 batches) at dir and hold its writer lock. The cleaning and
 * normalisation keys of cfg are recorded in the manifest. IMF_ERR_INPUT if dir already holds a
 * store. */
imf_status imf_store_create(MPI_Comm comm, const char *dir, const imf_config *cfg, imf_store **out);
/* Open an existing store; IMF_STORE_WRITE takes the writer lock (IMF_ERR_LOCKED if another
 * live process holds it; a stale lock of a dead process on this host is taken over; break_lock
 * takes any lock). */
imf_status imf_store_open(MPI_Comm comm, const char *dir, int mode, int break_lock, imf_store **out);
/* Release the lock (if held) and free. Collective. */
void imf_store_close(imf_store **s);

/* (local) Counts as of the manifest. */
int64_t imf_store_nbatches(const imf_store *s);
int64_t imf_store_nusers(const imf_store *s);
int64_t imf_store_nitems(const imf_store *s);
/* (local) The observed value scale recorded at prepare/append (docs/FORMAT.md "MANIFEST"): the
 * minimum, maximum and step of every batch's values combined. Returns 1 when known; 0 (all
 * NaN) for a store with a batch written before incremf recorded it, or without ratings. step:
 * the regular step (> 0), 0 when every value is the same, NaN when the values are on no
 * regular grid. */
int imf_store_scale(const imf_store *s, double *min, double *max, double *step);
/* (local) The same for batch k (1-based) alone. */
int imf_store_batch_scale(const imf_store *s, int64_t k, double *min, double *max, double *step);
/* (local) clean.scale_min/max recorded at creation (NaN: none). */
void imf_store_configured_scale(const imf_store *s, double *min, double *max);
/* (local) The duplicate policy recorded at creation: "latest", "first" or "mean". */
const char *imf_store_duplicate_policy(const imf_store *s);
/* (local) Batch number already holding a file with this sha256, or 0. */
int64_t imf_store_find_sha256(const imf_store *s, const char *hex);

/* Load all user and item ids (replicated on every rank) into two empty maps. */
imf_status imf_store_load_idmaps(imf_store *s, imf_idmap *users, imf_idmap *items);
/* The same ids as two lists in id order, without the maps' hash tables: what a job needs that
 * only records them in a version (update; 0.14 s of a fold-in at 16M ratings was the hashing). */
imf_status imf_store_load_idlists(imf_store *s, imf_idlist *users, imf_idlist *items);
/* The same on rank 0 only, the other ranks getting empty lists: a version's ids are written and
 * digested by rank 0 alone (checkpoint.c), and a copy of every id on every rank was the largest
 * part of an out-block rank's memory after its model and ratings (docs/SCALING.md). */
imf_status imf_store_load_idlists_root(imf_store *s, imf_idlist *users, imf_idlist *items);

/* Write a batch as the next batch number: the batch file is written collectively (each rank
 * its hyperslab, empty selections allowed), then the manifest is replaced atomically.
 * Fills b->report.batch and b->report.superseded (ratings of this batch for a (user,item) pair
 * that an earlier batch already held). A failure or kill at any point leaves the previous
 * manifest — the previous store — intact. */
imf_status imf_store_write_batch(imf_store *s, imf_batch *b);

/* The effective ratings of users [user_lo, user_hi) after resolving repeated (user,item) pairs
 * across batches with the store's duplicate policy (batch order is input order), sorted by
 * (user, item). Each rank passes its own range (ranges may be empty). */
imf_status imf_store_read_ratings(imf_store *s, int64_t user_lo, int64_t user_hi, imf_ratings *out);

/* Summary for `inspect` (counts, scale, time range, normalisation, digest). */
imf_status imf_store_get_info(imf_store *s, imf_store_info *info);
/* (local) Content digest: sha256 over the batches' content digests (ratings, ids), in order. */
const char *imf_store_digest(const imf_store *s);
/* (local) 1 when `digest` (a model version's recorded store digest) is this store's digest over
 * its first nb batches for some nb >= from (the batches the version has seen), with the current
 * tombstone list: the version was built from this store, or from this store before later appends
 * (a forget re-stamps versions with the digest of its moment). 0: another store's model. */
int imf_store_digest_matches(const imf_store *s, int64_t from, const char *digest);

/* (local) The standing holdout recorded at prepare (holdout.fraction, holdout.seed): returns 1
 * when the store has one (fraction > 0). A rating (u, i) is held out iff
 * imf_is_holdout(seed, fraction, u, i) — independent of batches and rank counts. */
int imf_store_holdout(const imf_store *s, double *fraction, uint64_t *seed);
/* Collective. The standing holdout of batches 1..upto (each batch's /holdout copy, docs/FORMAT.md):
 * every held-out (user, item) once, with its current value over those batches (repeated pairs
 * resolved with the store's duplicate policy exactly as imf_store_read_ratings resolves them: a
 * later batch's rating replaces an earlier one, by timestamp under `latest`), forgotten users
 * dropped. Split over the ranks: this rank gets the pairs of users u with u % size == rank, in
 * (user, item) order, in out (time set to the batch number the value comes from: under `mean`
 * the newest batch holding the pair). IMF_ERR_NOTFOUND on every rank when some batch of 1..upto
 * has no /holdout (written before it existed, or a store without a holdout): the caller falls
 * back to reading histories. IMF_ERR_INPUT naming the file for a damaged /holdout (ids beyond the
 * batch's counts, out of order, a pair twice in a batch, or a pair outside the holdout). The
 * cost is the holdout's size, not the store's. */
imf_status imf_store_read_holdout(imf_store *s, int64_t upto, imf_ratings *out);
/* (local) A warning (rank 0, stderr) when cfg sets holdout.fraction, or holdout.seed of a store
 * with a holdout, to another value than the store's: train and update use the store's standing
 * holdout whatever the configuration says. Silent for keys left at their defaults. */
void imf_store_warn_holdout(const imf_store *s, const imf_config *cfg, const char *store_dir);
/* (local) Rows of batch k as written (before forgotten users are filtered). */
int64_t imf_store_batch_rows(const imf_store *s, int64_t k);
/* The ratings of batch k alone (as stored, without resolving pairs against other batches),
 * each rank a contiguous share of its rows; forgotten users' rows are dropped. */
imf_status imf_store_read_batch(imf_store *s, int64_t k, imf_ratings *out);
/* (local) 1 when `forget` removed this user index. */
int imf_store_is_forgotten(const imf_store *s, int64_t user);
/* imf_store_read_ratings with forgotten users' ratings kept: the rerun of a `forget` that was
 * killed after its tombstone needs the items that user had rated. */
imf_status imf_store_read_ratings_unfiltered(imf_store *s, int64_t user_lo, int64_t user_hi,
                                             imf_ratings *out);
/* (local) Number of users removed by `forget` so far. */
int64_t imf_store_nforgotten(const imf_store *s);
/* The resolved histories of a list of rows (users or items), row by row: row r's pairs are
 * [ptr[r], ptr[r+1]), each with its column (`other`: the item of a user's history, the user
 * of an item's), ascending; `value` is the pair's effective value over every batch, `old` over
 * batches 1..seen only (NaN when those batches did not hold the pair). */
typedef struct {
  int64_t n; /* rows */
  int64_t *ptr;
  int32_t *other;
  float *value, *old;
} imf_history;
void imf_history_free(imf_history *h);

/* The full histories of chosen users and items, for fold-in: each rank passes its own users
 * and items (ascending, distinct; lists may be empty and may differ between ranks). *uh gets
 * every effective rating (all batches, repeated pairs resolved as imf_store_read_ratings does,
 * forgotten users dropped, the standing holdout NOT removed) of those users, *ih those of the
 * items. Rows are located through each batch's /index/user and /index/item* (docs/FORMAT.md)
 * and read in runs with independent transfers, so the cost grows with the histories read, not
 * with the store. IMF_ERR_NOTFOUND when a batch has no per-item index (written before incremf
 * stored one): the caller reads the whole store instead. */
imf_status imf_store_read_histories(imf_store *s, const int32_t *users, int64_t nu, const int32_t *items,
                                    int64_t ni, int64_t seen, imf_history *uh, imf_history *ih);
/* (local) The user id list a model version records (the store's user ids in order), with the
 * ids of forgotten users emptied in place: a version written after a `forget` (by train or
 * update) must not bring the id back. */
void imf_store_strip_forgotten(const imf_store *s, imf_idlist *ids);
/* Physical erasure of every forgotten user (collective, needs IMF_STORE_WRITE): rank 0
 * rewrites each batch file that still holds their rows or raw ids without them (fresh file,
 * fsync, atomic rename; the content digest and the store digest stay). Idempotent: a file
 * already clean is left alone. Reports rows taken out and files rewritten (every rank). */
imf_status imf_store_scrub(imf_store *s, int64_t *rows_removed, int64_t *files_rewritten);
/* Right to be forgotten: record user index `user` in the manifest's `forgotten` tombstone
 * (atomic manifest replace; batch files are not rewritten here: imf_store_scrub erases) so
 * that every read drops its ratings. Needs IMF_STORE_WRITE. The store digest changes. */
imf_status imf_store_forget_user(imf_store *s, int64_t user);
#endif
