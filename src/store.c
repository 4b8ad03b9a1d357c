/* store.c - the rating data store: immutable per-batch HDF5 files under a text MANIFEST
 * (layout and guarantees: docs/FORMAT.md). This file: the store's lifecycle (create, open, the
 * writer lock, close), the accessors over the manifest, and opening and checking batch files.
 * The other jobs live in store_manifest.c, store_read.c, store_write.c, store_history.c and
 * store_scrub.c (store_impl.h says which does what); store.h is the only interface.
 *
 * Why this shape: an append writes one new file whose size is the batch's, and commits it by
 * atomically replacing a small manifest, so a crash or kill at any point leaves the previous
 * store intact and the cost of an append never grows with the size of the store. Reads locate
 * each rank's users in every batch through the per-batch /index and read only those rows. */
#include "store_impl.h"
#include "error.h"
#include "fsio.h"
#include "log.h"
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static imf_status store_new(MPI_Comm comm, const char *dir, int mode, imf_store **out) {
  *out = NULL;
  if (strlen(dir) >= 4000) IMF_FAIL(IMF_ERR_USAGE, "store path too long: %.64s...", dir);
  imf_store *s = calloc(1, sizeof *s);
  if (!s) IMF_FAIL(IMF_ERR_NOMEM, "out of memory");
  /* A private communicator keeps the store's collectives apart from the caller's traffic. */
  if (MPI_Comm_dup(comm, &s->comm) != MPI_SUCCESS) {
    free(s);
    IMF_FAIL(IMF_ERR_RUNTIME, "MPI_Comm_dup failed");
  }
  MPI_Comm_rank(s->comm, &s->rank);
  MPI_Comm_size(s->comm, &s->size);
  s->mode = mode;
  snprintf(s->dir, sizeof s->dir, "%s", dir);
  size_t l = strlen(s->dir);
  while (l > 1 && s->dir[l - 1] == '/') s->dir[--l] = '\0';
  s->m.scale_min = s->m.scale_max = NAN;
  imf_h5_quiet();
  *out = s;
  return IMF_OK;
}

static imf_status take_lock(imf_store *s, int break_lock) {
  imf_status st = IMF_OK;
  if (s->rank == 0) {
    char lp[4200];
    snprintf(lp, sizeof lp, "%s/LOCK", s->dir);
    st = imf_lock_acquire(lp, break_lock, &s->lock);
  }
  return imf_agree(s->comm, st);
}

void imf_store_close(imf_store **sp) {
  if (!sp || !*sp) return;
  imf_store *s = *sp;
  if (s->lock) imf_lock_release(&s->lock);
  free(s->m.b);
  free(s->m.forgotten);
  MPI_Comm_free(&s->comm);
  free(s);
  *sp = NULL;
}

imf_status imf_store_create(MPI_Comm comm, const char *dir, const imf_config *cfg, imf_store **out) {
  imf_store *s = NULL;
  imf_status st = IMF_OK;
  IMF_TRY(store_new(comm, dir, IMF_STORE_WRITE, &s), fail);
  if (s->rank == 0) {
    struct stat sb;
    char mp[4200];
    snprintf(mp, sizeof mp, "%s/MANIFEST", s->dir);
    if (imf_mkdir_parents(s->dir) != 0) /* parents too, like mkdir -p */
      st = IMF_RAISE(IMF_ERR_RUNTIME, "cannot create the store directory %s: %s",
                         s->dir, strerror(errno));
    else if (stat(s->dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
      st = IMF_RAISE(IMF_ERR_INPUT, "%s exists and is not a directory", s->dir);
    else if (store_path_exists(mp) && !store_manifest_names_no_batch(s->dir))
      st = IMF_RAISE(IMF_ERR_INPUT, "%s already holds an incremf store (MANIFEST exists): use append, or "
                         "choose a new directory", s->dir);
  }
  IMF_TRY(imf_agree(s->comm, st), fail);
  IMF_TRY(take_lock(s, 0), fail);
  if (s->rank == 0 && store_path_exists(s->dir)) {
    char mp[4200];
    snprintf(mp, sizeof mp, "%s/MANIFEST", s->dir);
    if (store_path_exists(mp) && store_manifest_names_no_batch(s->dir))
      imf_info("%s holds an empty store (a prepare that was killed or failed before its batch was "
               "committed): replacing it", s->dir);
    else if (store_path_exists(mp)) /* created by a racing writer between our check and the lock */
      st = IMF_RAISE(IMF_ERR_INPUT, "%s already holds an incremf store (MANIFEST exists)", s->dir);
  }
  IMF_TRY(imf_agree(s->comm, st), fail);
  manifest m;
  memset(&m, 0, sizeof m);
  const char *dup = cfg ? imf_cfg_str(cfg, "clean.duplicates") : NULL;
  const char *norm = cfg ? imf_cfg_str(cfg, "clean.normalize") : NULL;
  snprintf(m.duplicates, sizeof m.duplicates, "%s", dup ? dup : "latest");
  snprintf(m.normalize, sizeof m.normalize, "%s", norm ? norm : "none");
  m.scale_min = cfg ? imf_cfg_double(cfg, "clean.scale_min") : NAN;
  m.scale_max = cfg ? imf_cfg_double(cfg, "clean.scale_max") : NAN;
  m.holdout_fraction = cfg ? imf_cfg_double(cfg, "holdout.fraction") : 0;
  m.holdout_seed = cfg ? imf_cfg_int(cfg, "holdout.seed") : 0;
  if (!(m.holdout_fraction >= 0 && m.holdout_fraction < 1)) {
    st = IMF_RAISE(IMF_ERR_USAGE, "holdout.fraction = %g must be in [0, 1)",
                       m.holdout_fraction);
    goto fail;
  }
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(m.created, sizeof m.created, "%Y-%m-%dT%H:%M:%SZ", &tm);
  IMF_TRY(store_manifest_commit(s, &m), fail);
  /* Re-read what rank 0 wrote: every rank then holds byte-identical state (created time). */
  IMF_TRY(store_manifest_load(s), fail);
  *out = s;
  return IMF_OK;
fail:
  imf_store_close(&s);
  return st;
}

imf_status imf_store_open(MPI_Comm comm, const char *dir, int mode, int break_lock, imf_store **out) {
  imf_store *s = NULL;
  imf_status st;
  IMF_TRY(store_new(comm, dir, mode, &s), fail);
  if (mode == IMF_STORE_WRITE) {
    /* Check it is a store before taking a lock in a directory that is not one. */
    IMF_TRY(store_manifest_load(s), fail);
    IMF_TRY(take_lock(s, break_lock), fail);
  }
  /* Under the lock, read the manifest the previous writer committed last. */
  IMF_TRY(store_manifest_load(s), fail);
  *out = s;
  return IMF_OK;
fail:
  imf_store_close(&s);
  return st;
}

int64_t imf_store_nbatches(const imf_store *s) { return s->m.nbatches; }

int imf_store_scale(const imf_store *s, double *min, double *max, double *step) {
  const int known = s->m.scale_known && s->m.scale.n > 0;
  *min = known ? s->m.scale.min : NAN;
  *max = known ? s->m.scale.max : NAN;
  *step = known && s->m.scale.step > 0 ? s->m.scale.step : known && s->m.scale.step == 0 ? 0 : NAN;
  return known;
}

int imf_store_batch_scale(const imf_store *s, int64_t k, double *min, double *max, double *step) {
  const batch_meta *b = k >= 1 && k <= s->m.nbatches ? &s->m.b[k - 1] : NULL;
  const int known = b && b->has_scale && b->scale.n > 0;
  *min = known ? b->scale.min : NAN;
  *max = known ? b->scale.max : NAN;
  *step = known && b->scale.step > 0 ? b->scale.step : known && b->scale.step == 0 ? 0 : NAN;
  return known;
}

void imf_store_configured_scale(const imf_store *s, double *min, double *max) {
  *min = s->m.scale_min;
  *max = s->m.scale_max;
}
int64_t imf_store_nusers(const imf_store *s) { return s->m.users; }
int64_t imf_store_nitems(const imf_store *s) { return s->m.items; }
const char *imf_store_duplicate_policy(const imf_store *s) { return s->m.duplicates; }
const char *imf_store_digest(const imf_store *s) { return s->digest; }

int64_t imf_store_find_sha256(const imf_store *s, const char *hex) {
  for (int64_t k = 0; k < s->m.nbatches; k++)
    if (strcmp(s->m.b[k].sha256, hex) == 0) return s->m.b[k].number;
  return 0;
}

imf_status imf_store_get_info(imf_store *s, imf_store_info *info) {
  memset(info, 0, sizeof *info);
  info->users = s->m.users;
  info->items = s->m.items;
  info->ratings = store_effective_ratings(&s->m);
  info->batches = s->m.nbatches;
  info->scale_min = s->m.scale_min;
  info->scale_max = s->m.scale_max;
  info->value_known = imf_store_scale(s, &info->value_min, &info->value_max, &info->value_step);
  int64_t tmin = INT64_MAX, tmax = INT64_MIN;
  for (int64_t k = 0; k < s->m.nbatches; k++) {
    const batch_meta *b = &s->m.b[k];
    if (b->time_min != IMF_NO_TIME && b->time_min < tmin) tmin = b->time_min;
    if (b->time_max != IMF_NO_TIME && b->time_max > tmax) tmax = b->time_max;
  }
  if (tmin > tmax) { /* no timestamps anywhere: the documented sentinels */
    tmin = INT64_MIN;
    tmax = INT64_MAX;
  }
  info->time_min = tmin;
  info->time_max = tmax;
  snprintf(info->normalize, sizeof info->normalize, "%s", s->m.normalize);
  snprintf(info->digest, sizeof info->digest, "%s", s->digest);
  return IMF_OK;
}

void imf_batch_free(imf_batch *b) {
  if (!b) return;
  imf_ratings_free(&b->r);
  imf_idlist_free(&b->new_users);
  imf_idlist_free(&b->new_items);
}

int imf_store_holdout(const imf_store *s, double *fraction, uint64_t *seed) {
  *fraction = s->m.holdout_fraction;
  *seed = (uint64_t)s->m.holdout_seed;
  return s->m.holdout_fraction > 0;
}

void imf_store_warn_holdout(const imf_store *s, const imf_config *cfg, const char *store_dir) {
  double f = imf_cfg_double(cfg, "holdout.fraction");
  int64_t seed = imf_cfg_int(cfg, "holdout.seed");
  if (imf_config_is_set(cfg, "holdout.fraction") && f != s->m.holdout_fraction)
    imf_warn("holdout.fraction = %g in the configuration differs from %s's standing holdout, fixed at prepare: "
             "holdout.fraction = %g is used (prepare a new store to change it)",
             f, store_dir, s->m.holdout_fraction);
  else if (imf_config_is_set(cfg, "holdout.seed") && s->m.holdout_fraction > 0 && seed != s->m.holdout_seed)
    imf_warn("holdout.seed = %lld in the configuration differs from %s's standing holdout, fixed at prepare: "
             "holdout.seed = %lld is used (prepare a new store to change it)",
             (long long)seed, store_dir, (long long)s->m.holdout_seed);
}

int64_t imf_store_batch_rows(const imf_store *s, int64_t k) {
  return k >= 1 && k <= s->m.nbatches ? s->m.b[k - 1].rows : 0;
}


int store_dup_policy(const imf_store *s) {
  return strcmp(s->m.duplicates, "first") == 0 ? 1 : strcmp(s->m.duplicates, "mean") == 0 ? 2 : 0;
}

/* ------------------------------------------------------------------------------------------ */
/* batch files                                                                                */

void store_batch_path(const imf_store *s, int64_t k, char *out, size_t cap, int tmp) {
  snprintf(out, cap, "%s/batch-%06lld.h5%s", s->dir, (long long)k, tmp ? ".tmp" : "");
}

/* What a batch file claims to be: an incremf batch, of a format this reader knows, with the
 * content digest the manifest names for it. One line saying what is wrong and what to do. */
imf_status store_batch_check(hid_t f, const char *path, const char *want_digest) {
  char fmt[64], dig[80];
  imf_h5_attr_text(f, "format", fmt, sizeof fmt);
  if (strcmp(fmt, "incremf-batch") != 0)
    IMF_FAIL(IMF_ERR_INPUT,
             "%s is not an incremf batch file (an HDF5 file from another program?): the store is "
             "damaged; restore that file from a backup or re-run prepare", path);
  int64_t fv = 0;
  if (imf_h5_attr_get_num(f, "format_version", H5T_NATIVE_INT64, &fv) != 1) fv = 0;
  H5Eclear2(H5E_DEFAULT);
  if (fv > BATCH_FORMAT_VERSION)
    IMF_FAIL(IMF_ERR_INPUT,
             "%s was written by a newer incremf (batch format %lld; this one reads up to %d): "
             "upgrade incremf", path, (long long)fv, BATCH_FORMAT_VERSION);
  if (fv < 1)
    IMF_FAIL(IMF_ERR_INPUT, "%s has no valid format_version: the store is damaged; restore that "
             "file from a backup or re-run prepare", path);
  imf_h5_attr_text(f, "content_digest", dig, sizeof dig);
  if (strcmp(dig, want_digest) != 0)
    IMF_FAIL(IMF_ERR_INPUT,
             "%s does not match the manifest (content digest differs): the store is damaged; "
             "restore that file from a backup or re-run prepare", path);
  return IMF_OK;
}

/* Collective open of a batch file for reading, checking it is the batch the manifest names. */
imf_status store_batch_open(const imf_store *s, int64_t k, hid_t *fid) {
  char path[4200];
  store_batch_path(s, k, path, sizeof path, 0);
  imf_h5_quiet();
  hid_t fapl = imf_h5_fapl_mpio(s->comm, 0);
  if (fapl < 0) IMF_FAIL(IMF_ERR_RUNTIME, "%s: cannot create a file access list: %s", path, imf_h5_reason());
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
  if (f < 0) imf_h5_reason();
  H5Pclose(fapl);
  if (f < 0) {
    if (!store_path_exists(path))
      IMF_FAIL(IMF_ERR_INPUT, "%s is missing: the store is damaged (restore it or re-run prepare)",
               path);
    IMF_FAIL(IMF_ERR_INPUT, "%s is not a readable HDF5 file (truncated or corrupt?): the store "
             "is damaged; restore that file from a backup or re-run prepare", path);
  }
  /* The format and content digest attributes tie the file to the manifest entry. */
  imf_status cst = store_batch_check(f, path, s->m.b[k - 1].digest);
  if (cst != IMF_OK) {
    H5Fclose(f);
    return cst;
  }
  *fid = f;
  return IMF_OK;
}

void store_batch_h_close(batch_h *h) {
  hid_t *ds[] = {&h->user, &h->item, &h->value, &h->time, &h->iuser, &h->iptr};
  for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++)
    if (*ds[i] > 0) H5Dclose(*ds[i]);
  if (h->f > 0) H5Fclose(h->f);
  memset(h, 0, sizeof *h);
}

/* Collective: open batch k and its datasets. */
imf_status store_batch_h_open(const imf_store *s, int64_t k, batch_h *h) {
  memset(h, 0, sizeof *h);
  char path[4200];
  store_batch_path(s, k, path, sizeof path, 0);
  IMF_CHECK(store_batch_open(s, k, &h->f));
  struct {
    hid_t *d;
    const char *name;
  } ds[] = {{&h->user, "/ratings/user"}, {&h->item, "/ratings/item"},
            {&h->value, "/ratings/value"}, {&h->time, "/ratings/time"},
            {&h->iuser, "/index/user"},    {&h->iptr, "/index/user_ptr"}};
  imf_status st = IMF_OK;
  for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++) {
    *ds[i].d = H5Dopen2(h->f, ds[i].name, H5P_DEFAULT);
    if (*ds[i].d < 0) {
      st = IMF_RAISE(IMF_ERR_INPUT, "%s: no dataset %s: %s", path,
                         ds[i].name, imf_h5_reason());
      break;
    }
  }
  hsize_t nptr = 0;
  if (st == IMF_OK) st = imf_h5_len_check(h->user, path, "/ratings/user", &h->nrows);
  if (st == IMF_OK) st = imf_h5_len_check(h->iuser, path, "/index/user", &h->nindex);
  if (st == IMF_OK) st = imf_h5_len_check(h->iptr, path, "/index/user_ptr", &nptr);
  if (st == IMF_OK && nptr != h->nindex + 1)
    st = IMF_RAISE(IMF_ERR_INPUT, "%s: /index/user_ptr has %llu entries, "
                       "expected %llu", path, (unsigned long long)nptr,
                       (unsigned long long)h->nindex + 1);
  if (st != IMF_OK) store_batch_h_close(h);
  return st;
}
