/* fsio.h - the small shared layer under the HDF5 writers (store.c, checkpoint.c, modeldir.c):
 * durable file operations for atomic replacement (fsync of a file or its directory) and the
 * translation of HDF5's error stack into one-line incremf messages. */
#ifndef IMF_FSIO_H
#define IMF_FSIO_H
#include "incremf.h"
#include <stddef.h>

/* fsync a file, or a directory (is_dir) so that a rename in it is durable. Filesystems that
 * cannot sync a directory (EINVAL, EROFS) are accepted. */
imf_status imf_fsync_path(const char *path, int is_dir);
/* (local) Refuse up front, with a one-line message naming `file`, a write of about `need` bytes
 * into directory `dir` when its file system has less free space: a collective HDF5 write that
 * runs out of space half-way cannot always be unwound cleanly on every rank. */
imf_status imf_fs_need_space(const char *dir, const char *file, double need);
/* The directory part of path ("." when there is none). */
void imf_parent_dir(const char *path, char *out, size_t cap);
/* Silence HDF5's automatic error printing: failures are reported through imf_status with the
 * file name instead, which the stack dump would bury. Idempotent. */
void imf_h5_quiet(void);
/* The innermost HDF5 error description of the current stack (static buffer); clears the stack. */
const char *imf_h5_reason(void);
/* The message the last imf_h5_reason() captured (for reporting after cleanup calls). */
const char *imf_h5_last(void);
#endif
