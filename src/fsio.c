/* fsio.c - see fsio.h. */
#include "fsio.h"
#include "error.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdio.h>
#include <string.h>
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
