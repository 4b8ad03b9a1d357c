/* fsio.c - see fsio.h. */
#include "fsio.h"
#include "error.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdio.h>
#include <string.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

imf_status imf_fsync_path(const char *path, int is_dir) {
  int fd = open(path, (is_dir ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) IMF_FAIL(IMF_ERR_RUNTIME, "cannot open %s to sync it: %s", path, strerror(errno));
  if (fsync(fd) != 0 && !(is_dir && (errno == EINVAL || errno == EROFS))) {
    int e = errno;
    close(fd);
    IMF_FAIL(IMF_ERR_RUNTIME, "cannot sync %s: %s", path, strerror(e));
  }
  close(fd);
  return IMF_OK;
}

imf_status imf_fs_replace(const char *dir, const char *path, const char *text, size_t len, const char *fault) {
  char tmp[PATH_MAX + 8];
  if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
    IMF_FAIL(IMF_ERR_USAGE, "path too long: %s", path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) IMF_FAIL(IMF_ERR_RUNTIME, "cannot create %s: %s", tmp, strerror(errno));
  size_t done = 0;
  int e = 0;
  while (done < len && !e) {
    ssize_t w = write(fd, text + done, len - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) e = w < 0 ? errno : EIO;
    else done += (size_t)w;
  }
  if (!e && fsync(fd) != 0) e = errno;
  if (close(fd) != 0 && !e) e = errno;
  if (e) {
    unlink(tmp);
    return imf_output_write_error(path, e);
  }
  const char *f = getenv("IMF_FAULT");
  if (fault && f && !strcmp(f, fault))
    IMF_FAIL(IMF_ERR_RUNTIME, "injected fault (IMF_FAULT=%s): %s written, not renamed", fault, tmp);
  if (rename(tmp, path) != 0) {
    e = errno;
    unlink(tmp);
    IMF_FAIL(IMF_ERR_RUNTIME, "cannot rename %s to %s: %s", tmp, path, strerror(e));
  }
  return imf_fsync_path(dir, 1);
}

imf_status imf_fs_need_space(const char *dir, const char *file, double need) {
  struct statvfs v;
  if (statvfs(dir, &v) != 0) return IMF_OK; /* cannot tell: let the write report it */
  /* root may use the blocks reserved for it */
  double avail = (double)(geteuid() == 0 ? v.f_bfree : v.f_bavail) * (double)v.f_frsize;
  if (avail >= need) return IMF_OK;
  IMF_FAIL(IMF_ERR_RUNTIME,
           "not enough space to write %s: about %.0f kB needed, %.0f kB free on the file system "
           "of %s (free some space, then rerun)", file, need / 1e3, avail / 1e3, dir);
}

void imf_parent_dir(const char *path, char *out, size_t cap) {
  snprintf(out, cap, "%s", path);
  char *s = strrchr(out, '/');
  if (!s) snprintf(out, cap, ".");
  else if (s == out) out[1] = '\0';
  else *s = '\0';
}

void imf_h5_quiet(void) {
  static int done = 0;
  if (!done) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    done = 1;
  }
}

static char h5_msg[512];

static herr_t h5_walk(unsigned n, const H5E_error2_t *e, void *data) {
  (void)data;
  if (n == 0) snprintf(h5_msg, sizeof h5_msg, "%s (%s)", e->desc ? e->desc : "?", e->func_name);
  return 0;
}

const char *imf_h5_reason(void) {
  snprintf(h5_msg, sizeof h5_msg, "HDF5 error");
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, h5_walk, NULL);
  H5Eclear2(H5E_DEFAULT);
  return h5_msg;
}

const char *imf_h5_last(void) { return h5_msg; }

/* ---- output files ---- */

static int looks_full(const char *path);

/* The path an output will have: realpath of the file when it exists, else of its existing parent
 * directory + its name. */
static imf_status resolve_output(const char *path, char *out, size_t cap) {
  char rp[PATH_MAX];
  if (realpath(path, rp)) {
    snprintf(out, cap, "%s", rp);
    return IMF_OK;
  }
  char dir[PATH_MAX];
  imf_parent_dir(path, dir, sizeof dir);
  const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
  if (!*base || !strcmp(base, ".") || !strcmp(base, ".."))
    IMF_FAIL(IMF_ERR_USAGE, "output %s names a directory, not a file", path);
  if (!realpath(dir, rp))
    IMF_FAIL(IMF_ERR_USAGE, "output %s: its directory %s does not exist (%s)", path, dir, strerror(errno));
  if ((size_t)snprintf(out, cap, "%s/%s", strcmp(rp, "/") ? rp : "", base) >= cap)
    IMF_FAIL(IMF_ERR_USAGE, "output path too long: %s", path);
  return IMF_OK;
}

/* Is `p` (resolved) equal to or below directory `d` (resolved)? */
static int under(const char *p, const char *d) {
  size_t n = strlen(d);
  return strncmp(p, d, n) == 0 && (p[n] == '\0' || p[n] == '/' || (n == 1 && d[0] == '/'));
}

/* Is directory d an incremf store or model directory? Returns "store", "model directory" or NULL. */
static const char *incremf_dir_kind(const char *d) {
  char p[PATH_MAX + 512];
  snprintf(p, sizeof p, "%s/MANIFEST", d);
  FILE *f = fopen(p, "rb");
  if (f) {
    char head[16] = {0};
    size_t k = fread(head, 1, 14, f);
    fclose(f);
    if (k == 14 && !memcmp(head, "incremf-store ", 14)) return "store";
  }
  struct stat sb;
  snprintf(p, sizeof p, "%s/versions", d);
  int versions = stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
  snprintf(p, sizeof p, "%s/CURRENT", d);
  if (versions && stat(p, &sb) == 0) return "model directory";
  snprintf(p, sizeof p, "%s/registry.jsonl", d);
  if (versions && stat(p, &sb) == 0) return "model directory";
  return NULL;
}

imf_status imf_output_check(const char *path, const char *const inputs[], int ninputs, const char *const dirs[],
                            int ndirs) {
  if (!path || !*path) IMF_FAIL(IMF_ERR_USAGE, "empty output file name");
  char out[PATH_MAX + 256], rp[PATH_MAX];
  IMF_CHECK(resolve_output(path, out, sizeof out));
  struct stat ob;
  int exists = stat(path, &ob) == 0;
  if (exists && S_ISDIR(ob.st_mode)) IMF_FAIL(IMF_ERR_USAGE, "output %s is a directory, not a file", path);
  for (int k = 0; k < ninputs; k++) {
    if (!inputs[k] || !*inputs[k] || !strcmp(inputs[k], "-")) continue;
    struct stat ib;
    int same = exists && stat(inputs[k], &ib) == 0 && ib.st_dev == ob.st_dev && ib.st_ino == ob.st_ino;
    if (same || (realpath(inputs[k], rp) && !strcmp(rp, out)))
      IMF_FAIL(IMF_ERR_USAGE, "output %s is the input %s: refused, it would destroy the input (nothing was "
               "written; choose another output file)", path, inputs[k]);
  }
  for (int k = 0; k < ndirs; k++) {
    if (!dirs[k] || !*dirs[k] || !realpath(dirs[k], rp)) continue;
    if (under(out, rp))
      IMF_FAIL(IMF_ERR_USAGE, "output %s lies inside %s, a store or model directory this command uses: refused "
               "(nothing was written; write outputs outside stores and model directories)", path, dirs[k]);
  }
  /* any store or model directory above the output, named on this command line or not */
  char d[PATH_MAX + 256];
  snprintf(d, sizeof d, "%s", out);
  for (char *s = strrchr(d, '/'); s; s = strrchr(d, '/')) {
    if (s == d) break; /* "/" itself is nobody's store */
    *s = '\0';
    const char *kind = incremf_dir_kind(d);
    if (kind)
      IMF_FAIL(IMF_ERR_USAGE, "output %s lies inside the incremf %s %s: refused (nothing was written; write "
               "outputs outside stores and model directories)", path, kind, d);
  }
  return IMF_OK;
}

imf_status imf_output_check_all(MPI_Comm comm, const char *path, const char *const inputs[], int ninputs,
                                const char *const dirs[], int ndirs) {
  int rank;
  MPI_Comm_rank(comm, &rank);
  imf_status st = rank == 0 ? imf_output_check(path, inputs, ninputs, dirs, ndirs) : IMF_OK;
  return imf_agree(comm, st);
}

void imf_output_tmpname(const char *path, char *out, size_t cap) {
  struct stat sb; /* /dev/null, /dev/stderr, a FIFO: written in place, nothing to rename */
  if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode)) {
    snprintf(out, cap, "%s", path);
    return;
  }
  const char *slash = strrchr(path, '/');
  int dl = slash ? (int)(slash - path + 1) : 0;
  snprintf(out, cap, "%.*s.%s.%ld.part", dl, path, slash ? slash + 1 : path, (long)getpid());
}

void imf_output_tmpname_all(MPI_Comm comm, const char *path, char *out, size_t cap) {
  int rank;
  MPI_Comm_rank(comm, &rank);
  if (rank == 0) imf_output_tmpname(path, out, cap);
  MPI_Bcast(out, (int)cap, MPI_CHAR, 0, comm);
}

imf_status imf_output_write_error(const char *path, int err) {
  if (err == ENOSPC || err == EDQUOT)
    IMF_FAIL(IMF_ERR_RUNTIME, "cannot write %s: no space left on the file system: %s; nothing was left under "
             "that name (free some space, then rerun)", path, strerror(err));
  IMF_FAIL(IMF_ERR_RUNTIME, "cannot write %s: %s", path, strerror(err));
}

void imf_output_discard(const char *tmp, const char *path) {
  if (strcmp(tmp, path) != 0) unlink(tmp);
}

imf_status imf_output_commit(const char *tmp, const char *path) {
  if (!strcmp(tmp, path)) return IMF_OK; /* not a regular file: written in place */
  imf_status st = imf_fsync_path(tmp, 0);
  if (st == IMF_OK && rename(tmp, path) != 0) st = imf_output_write_error(path, errno);
  if (st != IMF_OK) {
    unlink(tmp);
    return st;
  }
  char dir[PATH_MAX];
  imf_parent_dir(path, dir, sizeof dir);
  return imf_fsync_path(dir, 1);
}

imf_status imf_output_finish_all(MPI_Comm comm, imf_status st, const char *tmp, const char *path) {
  int rank;
  MPI_Comm_rank(comm, &rank);
  st = imf_agree(comm, st);
  if (rank == 0) {
    if (st == IMF_OK) st = imf_output_commit(tmp, path);
    else imf_output_discard(tmp, path);
  }
  return imf_agree(comm, st);
}

imf_status imf_output_mpi_error(const char *path, int rc) {
  int cls = 0;
  MPI_Error_class(rc, &cls);
  if (cls == MPI_ERR_NO_SPACE || cls == MPI_ERR_QUOTA || looks_full(path)) return imf_output_write_error(path, ENOSPC);
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  IMF_FAIL(IMF_ERR_RUNTIME, "cannot write %s: %s", path, msg);
}

imf_status imf_output_need_space(const char *path, double need) {
  char dir[PATH_MAX];
  imf_parent_dir(path, dir, sizeof dir);
  return imf_fs_need_space(dir, path, need);
}

/* Did a write in path's directory fail for want of space? MPI-IO and HDF5 often say only
 * "I/O error": a file system left with less than 1 MiB free is taken as the reason. */
static int looks_full(const char *path) {
  char dir[PATH_MAX];
  imf_parent_dir(path, dir, sizeof dir);
  struct statvfs v;
  if (statvfs(dir, &v) != 0) return 0;
  double avail = (double)(geteuid() == 0 ? v.f_bfree : v.f_bavail) * (double)v.f_frsize;
  return avail < 1048576.0;
}

imf_status imf_output_h5_error(const char *path) {
  const char *why = imf_h5_last();
  if ((why && (strstr(why, "No space") || strstr(why, "space left"))) || looks_full(path))
    return imf_output_write_error(path, ENOSPC);
  IMF_FAIL(IMF_ERR_RUNTIME, "cannot write %s: %s", path, why && *why ? why : "HDF5 error");
}

int imf_mkdir_parents(const char *dir) {
  char p[4096];
  size_t n = strlen(dir);
  if (n == 0 || n >= sizeof p) {
    errno = n ? ENAMETOOLONG : ENOENT;
    return -1;
  }
  memcpy(p, dir, n + 1);
  for (char *c = p + 1; *c; c++)
    if (*c == '/' && c[-1] != '/') {
      *c = '\0';
      if (mkdir(p, 0755) != 0 && errno != EEXIST) return -1;
      *c = '/';
    }
  return mkdir(p, 0755) == 0 || errno == EEXIST ? 0 : -1;
}
