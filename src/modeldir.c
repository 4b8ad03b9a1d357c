/* modeldir.c - the model directory (modeldir.h).
 *
 * Versions are immutable files; what is "the model" is decided by one small text file,
 * CURRENT, replaced atomically (tmp, fsync, rename, fsync of the directory). So a commit is:
 * write the next version file completely (itself atomic), then switch CURRENT. A crash in
 * between leaves an unreferenced complete version and CURRENT still naming the previous one.
 * New version numbers continue after the highest file present, never after CURRENT, so a
 * rollback followed by a commit never overwrites a version. Rank 0 does all file-system work
 * and broadcasts; the status is agreed so every rank sees the same outcome. */
#include "modeldir.h"
#include "error.h"
#include "fsio.h"
#include "lock.h"
#include "log.h"
#include "registry.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PATHCAP 4400

struct imf_modeldir {
  MPI_Comm comm;
  int rank, size;
  int writable;
  imf_lock *lock;
  char dir[4096];
  char run[PATHCAP], log[PATHCAP];
};

const char *imf_modeldir_path(const imf_modeldir *md) { return md->dir; }
const char *imf_modeldir_run_checkpoint(const imf_modeldir *md) { return md->run; }
const char *imf_modeldir_log_path(const imf_modeldir *md) { return md->log; }

void imf_modeldir_version_path(const imf_modeldir *md, int64_t version, char *path, size_t cap) {
  snprintf(path, cap, "%s/versions/v%06lld.h5", md->dir, (long long)version);
}

static int is_dir(const char *p) {
  struct stat sb;
  return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}
static int exists(const char *p) {
  struct stat sb;
  return stat(p, &sb) == 0;
}

/* The version number of a file name "v000012.h5", or 0 when the name is not one. The name
 * must be exactly what version_name writes, so "v12.h5" or "v000012.h5.tmp" do not count. */
/* (rank 0) Replace DIR/CURRENT atomically. */
static imf_status write_current(const imf_modeldir *md, int64_t version) {
  char fin[PATHCAP], text[64];
  snprintf(fin, sizeof fin, "%s/CURRENT", md->dir);
  int len = snprintf(text, sizeof text, "v%06lld.h5\n", (long long)version);
  return imf_fs_replace(md->dir, fin, text, (size_t)len, NULL);
}

static int64_t parse_version_name(const char *name) {
  long long v = 0;
  int used = 0;
  if (name[0] != 'v' || sscanf(name, "v%lld.h5%n", &v, &used) != 1 || v < 1 ||
      (size_t)used != strlen(name))
    return 0;
  char back[64];
  snprintf(back, sizeof back, "v%06lld.h5", v);
  return strcmp(back, name) == 0 ? (int64_t)v : 0;
}


/* (rank 0) Version numbers in versions/, ascending. */
static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}
static imf_status scan_versions(const imf_modeldir *md, int64_t **out, int64_t *n) {
  *out = NULL;
  *n = 0;
  char vd[PATHCAP];
  snprintf(vd, sizeof vd, "%s/versions", md->dir);
  DIR *d = opendir(vd);
  if (!d) IMF_FAIL(IMF_ERR_RUNTIME, "cannot list %s: %s", vd, strerror(errno));
  int64_t cap = 0, cnt = 0, *v = NULL;
  imf_status st = IMF_OK;
  struct dirent *e;
  while (st == IMF_OK && (e = readdir(d))) {
    int64_t k = parse_version_name(e->d_name);
    if (!k) continue;
    if (cnt == cap) {
      cap = cap ? 2 * cap : 16;
      st = imf_realloc(&v, (size_t)cap, sizeof *v);
    }
    if (st == IMF_OK) v[cnt++] = k;
  }
  closedir(d);
  if (st != IMF_OK) {
    free(v);
    return st;
  }
  if (cnt) qsort(v, (size_t)cnt, sizeof *v, cmp_i64);
  *out = v;
  *n = cnt;
  return IMF_OK;
}

/* (rank 0) Remove CURRENT.tmp and versions/ *.tmp: debris of writes killed before their rename
 * (only under the lock, so no live writer owns them). */
static void remove_strays(const imf_modeldir *md) {
  char p[PATHCAP * 2], vd[PATHCAP];
  snprintf(p, sizeof p, "%s/CURRENT.tmp", md->dir);
  unlink(p);
  snprintf(p, sizeof p, "%s/registry.jsonl.tmp", md->dir);
  unlink(p);
  snprintf(vd, sizeof vd, "%s/versions", md->dir);
  DIR *d = opendir(vd);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    size_t l = strlen(e->d_name);
    if (l > 4 && strcmp(e->d_name + l - 4, ".tmp") == 0) {
      snprintf(p, sizeof p, "%s/%s", vd, e->d_name);
      if (unlink(p) == 0) imf_info("removed %s (left over by an interrupted write)", p);
    }
  }
  closedir(d);
}

/* (rank 0) Check or create the layout. */
static imf_status prepare_dir(const imf_modeldir *md, int create) {
  char vd[PATHCAP], rd[PATHCAP], mf[PATHCAP];
  snprintf(vd, sizeof vd, "%s/versions", md->dir);
  snprintf(rd, sizeof rd, "%s/run", md->dir);
  snprintf(mf, sizeof mf, "%s/MANIFEST", md->dir);
  if (exists(mf))
    IMF_FAIL(IMF_ERR_USAGE, "%s is a data store, not a model directory (give --model another "
             "directory)", md->dir);
  if (!create) {
    if (!exists(md->dir)) IMF_FAIL(IMF_ERR_NOTFOUND, "model directory %s does not exist", md->dir);
    if (!is_dir(vd))
      IMF_FAIL(IMF_ERR_NOTFOUND, "%s is not a model directory (it has no versions/)", md->dir);
    return IMF_OK;
  }
  const char *dirs[3] = {md->dir, vd, rd};
  for (int i = 0; i < 3; i++) {
    if ((i == 0 ? imf_mkdir_parents(dirs[i]) : mkdir(dirs[i], 0755)) != 0 && errno != EEXIST)
      IMF_FAIL(IMF_ERR_RUNTIME, "cannot create the directory %s: %s", dirs[i], strerror(errno));
    if (!is_dir(dirs[i])) IMF_FAIL(IMF_ERR_INPUT, "%s exists and is not a directory", dirs[i]);
  }
  return IMF_OK;
}

void imf_modeldir_close(imf_modeldir **mdp) {
  if (!mdp || !*mdp) return;
  imf_modeldir *md = *mdp;
  if (md->lock) imf_lock_release(&md->lock);
  MPI_Comm_free(&md->comm);
  free(md);
  *mdp = NULL;
}

imf_status imf_modeldir_open(MPI_Comm comm, const char *dir, int create, int writable,
                             int break_lock, imf_modeldir **out) {
  *out = NULL;
  imf_status st = IMF_OK;
  imf_modeldir *md = NULL;
  if (strlen(dir) >= 4000) IMF_TRY(IMF_RAISE(IMF_ERR_USAGE, "model directory path too long: %.64s...", dir), fail);
  md = calloc(1, sizeof *md);
  if (!md) IMF_TRY(IMF_RAISE(IMF_ERR_NOMEM, "out of memory"), fail);
  /* A private communicator keeps the directory's collectives apart from the caller's. */
  if (MPI_Comm_dup(comm, &md->comm) != MPI_SUCCESS) {
    free(md); /* not imf_modeldir_close: there is no communicator to free */
    md = NULL;
    IMF_TRY(IMF_RAISE(IMF_ERR_RUNTIME, "MPI_Comm_dup failed"), fail);
  }
  MPI_Comm_rank(md->comm, &md->rank);
  MPI_Comm_size(md->comm, &md->size);
  md->writable = writable;
  snprintf(md->dir, sizeof md->dir, "%s", dir);
  size_t l = strlen(md->dir);
  while (l > 1 && md->dir[l - 1] == '/') md->dir[--l] = '\0';
  snprintf(md->run, sizeof md->run, "%s/run/checkpoint.h5", md->dir);
  snprintf(md->log, sizeof md->log, "%s/train.jsonl", md->dir);
  if (md->rank == 0) st = prepare_dir(md, create);
  IMF_TRY(imf_agree(md->comm, st), fail);
  if (writable) {
    if (md->rank == 0) {
      char lp[PATHCAP];
      snprintf(lp, sizeof lp, "%s/LOCK", md->dir);
      st = imf_lock_acquire(lp, break_lock, &md->lock);
      if (st == IMF_OK) remove_strays(md);
    }
    IMF_TRY(imf_agree(md->comm, st), fail);
  }
  *out = md;
  return IMF_OK;
fail:
  imf_modeldir_close(&md);
  return st;
}

static imf_status need_lock(const imf_modeldir *md, const char *what) {
  if (!md->writable)
    IMF_FAIL(IMF_ERR_RUNTIME, "%s: cannot %s: the model directory was opened read-only", md->dir,
             what);
  return IMF_OK;
}

/* (rank 0) Read and check CURRENT. */
static imf_status read_current(const imf_modeldir *md, char *path, size_t cap, int64_t *version) {
  char cp[PATHCAP];
  snprintf(cp, sizeof cp, "%s/CURRENT", md->dir);
  FILE *f = fopen(cp, "r");
  if (!f) {
    if (errno == ENOENT)
      IMF_FAIL(IMF_ERR_NOTFOUND, "%s holds no model version yet (train one first)", md->dir);
    IMF_FAIL(IMF_ERR_RUNTIME, "cannot read %s: %s", cp, strerror(errno));
  }
  char name[256] = "";
  size_t n = fread(name, 1, sizeof name - 1, f);
  fclose(f);
  name[n] = '\0';
  while (n > 0 && (name[n - 1] == '\n' || name[n - 1] == '\r' || name[n - 1] == ' ')) name[--n] = '\0';
  int64_t v = parse_version_name(name);
  if (!v)
    IMF_FAIL(IMF_ERR_INPUT, "%s is garbled (it should name a version file like v000001.h5): "
             "run `incremf rollback --model %s --to N`", cp, md->dir);
  char vp[PATHCAP];
  imf_modeldir_version_path(md, v, vp, sizeof vp);
  if (!exists(vp)) {
    /* Suggest the newest version that does exist. */
    int64_t *all = NULL, nv = 0, best = 0;
    if (scan_versions(md, &all, &nv) == IMF_OK && nv) best = all[nv - 1];
    free(all);
    if (best)
      IMF_FAIL(IMF_ERR_INPUT, "%s names %s, which does not exist: run `incremf rollback --model "
               "%s --to %lld`", cp, name, md->dir, (long long)best);
    IMF_FAIL(IMF_ERR_INPUT, "%s names %s, which does not exist, and no other version exists "
             "(train a new model)", cp, name);
  }
  if (strlen(vp) >= cap) IMF_FAIL(IMF_ERR_RUNTIME, "path buffer too small for %s", vp);
  snprintf(path, cap, "%s", vp);
  *version = v;
  return IMF_OK;
}

imf_status imf_modeldir_current(imf_modeldir *md, char *path, size_t cap, int64_t *version) {
  *version = 0;
  if (cap) path[0] = '\0';
  char p[PATHCAP] = "";
  int64_t v = 0;
  imf_status st = IMF_OK;
  if (md->rank == 0) st = read_current(md, p, cap < sizeof p ? cap : sizeof p, &v);
  IMF_CHECK(imf_agree(md->comm, st));
  IMF_MPI(MPI_Bcast(p, (int)sizeof p, MPI_CHAR, 0, md->comm));
  IMF_MPI(MPI_Bcast(&v, 1, MPI_INT64_T, 0, md->comm));
  snprintf(path, cap, "%s", p);
  *version = v;
  return IMF_OK;
}

imf_status imf_modeldir_version(imf_modeldir *md, int64_t want, char *path, size_t cap, int64_t *version) {
  if (want <= 0) return imf_modeldir_current(md, path, cap, version);
  *version = 0;
  if (cap) path[0] = '\0';
  int64_t *vs = NULL, nv = 0, found = 0;
  IMF_CHECK(imf_modeldir_list_versions(md, &vs, &nv));
  for (int64_t j = 0; j < nv; j++) found |= vs[j] == want;
  free(vs);
  if (!found)
    IMF_FAIL(IMF_ERR_NOTFOUND, "%s has no version %lld (%lld kept: see incremf status --model %s)", md->dir,
             (long long)want, (long long)nv, md->dir);
  imf_modeldir_version_path(md, want, path, cap);
  *version = want;
  return IMF_OK;
}

int imf_modeldir_is_modeldir(const char *dir) {
  char cur[PATHCAP];
  snprintf(cur, sizeof cur, "%s/CURRENT", dir);
  return is_dir(dir) && exists(cur);
}

int imf_modeldir_run_pending(const imf_modeldir *md) { return exists(md->run); }

imf_status imf_modeldir_list_versions(imf_modeldir *md, int64_t **versions, int64_t *n) {
  *versions = NULL;
  *n = 0;
  int64_t *v = NULL, cnt = 0;
  imf_status st = IMF_OK;
  if (md->rank == 0) st = scan_versions(md, &v, &cnt);
  IMF_CHECK(imf_agree(md->comm, st));
  IMF_MPI(MPI_Bcast(&cnt, 1, MPI_INT64_T, 0, md->comm));
  if (md->rank != 0) st = imf_alloc(&v, (size_t)(cnt ? cnt : 1), sizeof *v);
  else if (!v) st = imf_alloc(&v, 1, sizeof *v);
  IMF_CHECK(imf_agree(md->comm, st));
  if (cnt > 0 && MPI_Bcast(v, (int)cnt, MPI_INT64_T, 0, md->comm) != MPI_SUCCESS) {
    free(v);
    IMF_FAIL(IMF_ERR_RUNTIME, "MPI_Bcast of the version list failed");
  }
  *versions = v;
  *n = cnt;
  return IMF_OK;
}

imf_status imf_modeldir_commit(imf_modeldir *md, const imf_model *m, imf_ckpt_meta *meta,
                               int64_t *version) {
  IMF_CHECK(imf_modeldir_write_version(md, m, meta, version));
  imf_status st = IMF_OK;
  if (md->rank == 0) st = write_current(md, *version);
  IMF_CHECK(imf_agree(md->comm, st));
  return IMF_OK;
}

/* A version number is never reused: after `rollback` and `prune --keep 0` the highest version
 * file is gone but registry.jsonl still names it (and its numbers are what `rollback --to` and
 * the lineage refer to), so the next number is past the registry's highest as well. */
static imf_status after_registry(imf_modeldir *md, int64_t *next) {
  imf_registry_record *recs = NULL;
  int64_t nrec = 0;
  IMF_CHECK(imf_registry_load(md->comm, md->dir, &recs, &nrec));
  for (int64_t j = 0; j < nrec; j++) {
    if (recs[j].version >= *next) *next = recs[j].version + 1;
    if (recs[j].parent >= *next) *next = recs[j].parent + 1;
  }
  imf_free(&recs);
  return IMF_OK;
}

imf_status imf_modeldir_write_version(imf_modeldir *md, const imf_model *m, imf_ckpt_meta *meta,
                                      int64_t *version) {
  *version = 0;
  IMF_CHECK(imf_agree(md->comm, need_lock(md, "write a version")));
  int64_t *all = NULL, n = 0;
  IMF_CHECK(imf_modeldir_list_versions(md, &all, &n));
  int64_t next = n ? all[n - 1] + 1 : 1;
  free(all);
  IMF_CHECK(after_registry(md, &next));
  char vp[PATHCAP];
  imf_modeldir_version_path(md, next, vp, sizeof vp);
  snprintf(meta->kind, sizeof meta->kind, "version");
  IMF_CHECK(imf_checkpoint_write(md->comm, vp, m, meta));
  *version = next;
  return IMF_OK;
}

imf_status imf_modeldir_remove_version(imf_modeldir *md, int64_t version) {
  IMF_CHECK(imf_agree(md->comm, need_lock(md, "remove a version")));
  imf_status st = IMF_OK;
  if (md->rank == 0) {
    char vp[PATHCAP];
    imf_modeldir_version_path(md, version, vp, sizeof vp);
    if (unlink(vp) != 0 && errno != ENOENT)
      st = IMF_RAISE(IMF_ERR_RUNTIME, "cannot remove %s: %s", vp, strerror(errno));
    else
      st = imf_fsync_path(md->dir, 1);
  }
  return imf_agree(md->comm, st);
}

/* (rank 0) The P files to keep: those referenced by the versions in vs (names "ease-p-*.h5",
 * malloc'd array of fixed-size names). */
static imf_status kept_p_files(const imf_modeldir *md, const int64_t *vs, int64_t nv, char (**names)[48],
                               int64_t *nn) {
  IMF_CHECK(imf_alloc(names, (size_t)(nv ? nv : 1), sizeof **names));
  *nn = 0;
  for (int64_t j = 0; j < nv; j++) {
    char vp[PATHCAP];
    imf_ckpt_info info;
    imf_modeldir_version_path(md, vs[j], vp, sizeof vp);
    imf_status st = imf_checkpoint_info(vp, &info);
    if (st != IMF_OK) {
      imf_free(names);
      return st;
    }
    if (info.ease_p_file[0]) snprintf((*names)[(*nn)++], 48, "%s", info.ease_p_file);
    imf_ckpt_info_free(&info);
  }
  return IMF_OK;
}

imf_status imf_modeldir_gc_ease(imf_modeldir *md, int every, int64_t *removed) {
  IMF_CHECK(imf_agree(md->comm, need_lock(md, "remove EASE P files")));
  int64_t *vs = NULL, nv = 0, cur = 0, gone = 0;
  char cp[PATHCAP];
  IMF_CHECK(imf_modeldir_list_versions(md, &vs, &nv));
  if (!every) { /* CURRENT and the newest version */
    imf_status cs = imf_modeldir_current(md, cp, sizeof cp, &cur);
    if (cs != IMF_OK) imf_err_clear();
    int64_t keep[2], nk = 0;
    if (cur > 0) keep[nk++] = cur;
    if (nv > 0 && vs[nv - 1] != cur) keep[nk++] = vs[nv - 1];
    for (int64_t j = 0; j < nk; j++) vs[j] = keep[j];
    nv = nk;
  }
  imf_status st = IMF_OK;
  if (md->rank == 0) {
    char(*names)[48] = NULL;
    int64_t nn = 0;
    char vd[PATHCAP];
    snprintf(vd, sizeof vd, "%s/versions", md->dir);
    st = kept_p_files(md, vs, nv, &names, &nn);
    DIR *d = st == IMF_OK ? opendir(vd) : NULL;
    struct dirent *e;
    while (d && (e = readdir(d))) {
      size_t l = strlen(e->d_name);
      if (strncmp(e->d_name, "ease-p-", 7) != 0 || l < 10 || strcmp(e->d_name + l - 3, ".h5") != 0) continue;
      int keep = 0;
      for (int64_t j = 0; j < nn && !keep; j++) keep = !strcmp(names[j], e->d_name);
      if (keep) continue;
      char p[PATHCAP * 2];
      snprintf(p, sizeof p, "%s/%s", vd, e->d_name);
      if (unlink(p) == 0) {
        gone++;
        imf_info("removed %s (no kept version references it)", p);
      }
    }
    if (d) closedir(d);
    if (st == IMF_OK && gone > 0) st = imf_fsync_path(vd, 1);
    imf_free(&names);
  }
  free(vs);
  IMF_CHECK(imf_agree(md->comm, st));
  IMF_MPI(MPI_Bcast(&gone, 1, MPI_INT64_T, 0, md->comm));
  if (removed) *removed = gone;
  return IMF_OK;
}

imf_status imf_modeldir_set_current(imf_modeldir *md, int64_t version) {
  IMF_CHECK(imf_agree(md->comm, need_lock(md, "switch the current version")));
  imf_status st = IMF_OK;
  if (md->rank == 0) {
    char vp[PATHCAP];
    imf_modeldir_version_path(md, version, vp, sizeof vp);
    imf_ckpt_info info;
    if (version < 1 || !exists(vp))
      st = IMF_RAISE(IMF_ERR_NOTFOUND, "%s has no version %lld",
                     md->dir, (long long)version);
    else if ((st = imf_checkpoint_info(vp, &info)) == IMF_OK) {
      imf_ckpt_info_free(&info);
      st = write_current(md, version);
    }
  }
  return imf_agree(md->comm, st);
}
