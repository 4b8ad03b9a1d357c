/* store_impl.h - PRIVATE to src/store*.c (store.c, store_manifest.c, store_read.c, store_write.c,
 * store_history.c, store_scrub.c): the manifest model, the store object and the helpers those
 * files share. No other file includes it; store.h is the store's only interface.
 *
 * Who does what: store.c the lifecycle (create, open, lock, close), the accessors and batch-file
 * access; store_manifest.c the manifest (model, text format, chain check, atomic commit) and the
 * store digest; store_read.c range reads with duplicate resolution and seam checks, single
 * batches, id maps and lists, the standing holdout from the batches' /holdout copies, and the
 * superseded count of a new batch; store_write.c writing a batch (datasets, indexes, the
 * holdout copy, space check, fault hook, stray files); store_history.c fold-in history
 * reads; store_scrub.c the tombstones of `forget` and scrubbing. HDF5 plumbing: h5io.h. */
#ifndef IMF_STORE_IMPL_H
#define IMF_STORE_IMPL_H
#include "h5io.h"
#include "lock.h"
#include "scale.h"
#include "store.h"

#include <hdf5.h>
#include <openssl/evp.h>

#define STORE_FORMAT_VERSION 1
#define BATCH_FORMAT_VERSION 1
#define MANIFEST_MAGIC "incremf-store"

/* ---- manifest model (store_manifest.c) ---- */

typedef struct {
  int64_t number;
  char file[32];
  char source[4096];
  char sha256[65], digest[65];
  int64_t lines_read, header, stored, merged, rejected, superseded, new_users, new_items;
  int64_t rows; /* ratings written to the batch file (what the reads see) */
  int64_t users_after, items_after, time_min, time_max;
  /* observed value scale of the batch's rows (scale.h): has_scale 0 for a batch written before
   * incremf recorded it; scale.n is then 0 too */
  int has_scale;
  imf_scale scale;
} batch_meta;

typedef struct {
  char created[64];
  char duplicates[16], normalize[16];
  double scale_min, scale_max;
  int64_t users, items;
  int64_t nbatches;
  batch_meta *b;
  /* standing holdout (docs/FORMAT.md): fraction 0 = none recorded */
  double holdout_fraction;
  int64_t holdout_seed;
  /* users removed by `forget` (dense indices, ascending): their ratings are filtered from every
   * read, and imf_store_scrub erases their rows and raw ids from the batch files (store_scrub.c) */
  int64_t nforgotten;
  int64_t *forgotten;
  /* the store's value scale: the batches' combined (scale_known 0 when a batch lacks one) */
  int scale_known;
  imf_scale scale;
} manifest;

struct imf_store {
  MPI_Comm comm;
  int rank, size, mode;
  char dir[4096];
  imf_lock *lock; /* rank 0 only */
  manifest m;
  char digest[65];
};


/* ---- small helpers (store_manifest.c) ---- */

void store_hexify(const unsigned char *d, unsigned n, char *hex);
/* One-shot and incremental sha256 through OpenSSL's EVP (the SHA-NI path where available);
 * integers enter digests little-endian so digests agree across architectures. */
void store_sha256_hex(const void *data, size_t len, char hex[65]);
void store_sha_put(EVP_MD_CTX *c, const void *p, size_t n);
void store_sha_put_u64(EVP_MD_CTX *c, uint64_t v);
int store_path_exists(const char *p);
/* Broadcast a malloc'd byte buffer from root (chunked: MPI counts are int). */
imf_status store_bcast_bytes(MPI_Comm comm, int root, char **buf, int64_t *len);

/* ---- the manifest (store_manifest.c) ---- */

/* The store's scale from its batches' (in batch order: the same bytes give the same numbers). */
void store_manifest_scale(manifest *m);
/* Ratings the manifest counts: every batch's rows less those a later batch superseded. */
int64_t store_effective_ratings(const manifest *m);
/* Rank 0 reads dir/MANIFEST; every rank parses the same broadcast bytes into s->m. */
imf_status store_manifest_load(imf_store *s);
/* (rank 0) 1 when dir/MANIFEST is a valid manifest naming no batch and no forgotten user. */
int store_manifest_names_no_batch(const char *dir);
/* Rank 0 replaces the manifest atomically with m; all ranks agree on the outcome. */
imf_status store_manifest_commit(imf_store *s, const manifest *m);
/* s->digest from s->m (after every change of the batch list or the tombstones). */
void store_digest_update(imf_store *s);
/* The duplicate policy as a number: 0 latest, 1 first, 2 mean. */
int store_dup_policy(const imf_store *s);

/* ---- batch files (store.c) ---- */

/* dir/batch-NNNNNN.h5 (tmp: with .tmp appended). */
void store_batch_path(const imf_store *s, int64_t k, char *out, size_t cap, int tmp);
/* What a batch file claims to be checked against the manifest's content digest. */
imf_status store_batch_check(hid_t f, const char *path, const char *want_digest);
/* Collective open of batch k for reading, checked to be the batch the manifest names. */
imf_status store_batch_open(const imf_store *s, int64_t k, hid_t *fid);

/* An open batch file and its rating and per-user index datasets. */
typedef struct {
  hid_t f, user, item, value, time, iuser, iptr;
  hsize_t nrows, nindex;
} batch_h;
void store_batch_h_close(batch_h *h);
/* Collective: open batch k and its datasets. */
imf_status store_batch_h_open(const imf_store *s, int64_t k, batch_h *h);

/* ---- reads shared by the readers and the writer (store_read.c) ---- */

/* Position of the first index entry >= key of 1-d int32 dataset d of n entries (local). */
imf_status store_lower_bound(hid_t d, hsize_t n, int64_t key, hid_t dxpl_ind, const char *path, hsize_t *pos);
/* Ratings of batch b whose (user,item) an earlier batch already holds (collective). */
imf_status store_count_superseded(imf_store *s, const imf_batch *b, int64_t *out);
#endif
