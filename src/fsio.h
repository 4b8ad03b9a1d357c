/* fsio.h - the small shared layer under the HDF5 writers (store*.c, checkpoint*.c, modeldir.c):
 * durable file operations for atomic replacement (fsync of a file or its directory) and the
 * translation of HDF5's error stack into one-line incremf messages. */
#ifndef IMF_FSIO_H
#define IMF_FSIO_H
#include "incremf.h"
#include <mpi.h>
#include <stddef.h>

/* fsync a file, or a directory (is_dir) so that a rename in it is durable. Filesystems that
 * cannot sync a directory (EINVAL, EROFS) are accepted. */
imf_status imf_fsync_path(const char *path, int is_dir);
/* (local) Refuse up front, with a one-line message naming `file`, a write of about `need` bytes
 * into directory `dir` when its file system has less free space: a collective HDF5 write that
 * runs out of space half-way cannot always be unwound cleanly on every rank. */
imf_status imf_fs_need_space(const char *dir, const char *file, double need);
/* (one process) Replace `path` (a file in directory `dir`) with `len` bytes
 * of `text` atomically and durably: write path.tmp, fsync it, rename it onto path, fsync dir. A
 * reader sees the old or the new content, never a mix, and a crash leaves at most path.tmp (which
 * the next replace truncates). The one atomic text writer: MANIFEST (store_manifest.c), CURRENT
 * (modeldir.c) and registry.jsonl (registry.c) all go through it. `fault`, when not NULL, is an
 * IMF_FAULT value that makes the call fail after path.tmp is synced and before the rename (the
 * fault-injection tests' crash point). */
imf_status imf_fs_replace(const char *dir, const char *path, const char *text, size_t len, const char *fault);
/* (one process) mkdir -p: dir and every missing parent, mode 0755 (a store or model directory
 * named under a new folder, as users expect). 0, or -1 with errno of the mkdir that failed. */
int imf_mkdir_parents(const char *dir);
/* The directory part of path ("." when there is none). */
void imf_parent_dir(const char *path, char *out, size_t cap);
/* Silence HDF5's automatic error printing: failures are reported through imf_status with the
 * file name instead, which the stack dump would bury. Idempotent. */
void imf_h5_quiet(void);
/* The innermost HDF5 error description of the current stack (static buffer); clears the stack. */
const char *imf_h5_reason(void);
/* The message the last imf_h5_reason() captured (for reporting after cleanup calls). */
const char *imf_h5_last(void);

/* ---- output files (issue 22): never onto an input, a store or a model; never partial ---- */
/* Refuse (IMF_ERR_USAGE, exit 2), before anything is written, an output path that names a
 * directory, is one of inputs[] (same inode, or the same path after resolving symbolic links:
 * realpath of the existing parent directory + the file name), or lies inside one of dirs[] or
 * inside any incremf store (a MANIFEST starting "incremf-store") or model directory (CURRENT
 * and versions/), found by walking up from the output's directory. Both lists end with NULL and
 * may hold NULL-valued entries before the end only as `skip` (pass n to bound them). Local;
 * see imf_output_check_all for the collective form. */
imf_status imf_output_check(const char *path, const char *const inputs[], int ninputs, const char *const dirs[],
                            int ndirs);
/* Collective: rank 0 checks, every rank returns its verdict. */
imf_status imf_output_check_all(MPI_Comm comm, const char *path, const char *const inputs[], int ninputs,
                                const char *const dirs[], int ndirs);
/* The temporary name an output is written under: DIR/.BASE.PID.part, next to it (so the rename
 * is atomic) and hidden; an existing path that is not a regular file (/dev/null, a FIFO) is its
 * own "temporary" name, written in place. Collective form: rank 0's pid, the same name on every rank. */
void imf_output_tmpname(const char *path, char *out, size_t cap);
void imf_output_tmpname_all(MPI_Comm comm, const char *path, char *out, size_t cap);
/* (one rank) Make a complete temporary file the output: fsync, rename onto path, fsync the
 * directory. On failure the temporary file is removed and nothing is left under either name. */
imf_status imf_output_commit(const char *tmp, const char *path);
/* Remove a temporary output after a failure (nothing when the output is written in place). */
void imf_output_discard(const char *tmp, const char *path);
/* Collective, after a collective write to tmp whose local outcome is st: when every rank
 * succeeded rank 0 commits tmp as path, otherwise removes it; every rank returns the outcome. */
imf_status imf_output_finish_all(MPI_Comm comm, imf_status st, const char *tmp, const char *path);
/* An MPI-IO error code from writing path as one line; MPI_ERR_NO_SPACE/QUOTA say the disk is full. */
imf_status imf_output_mpi_error(const char *path, int rc);
/* (local) imf_fs_need_space for an output file, in its directory. */
imf_status imf_output_need_space(const char *path, double need);
/* The HDF5 error just captured (imf_h5_reason/imf_h5_last) from writing path, as one line; a
 * reason saying so, or a file system left with almost no space, is reported as a full disk. */
imf_status imf_output_h5_error(const char *path);
/* An errno from a write as one line naming the file; ENOSPC/EDQUOT say the disk is full. */
imf_status imf_output_write_error(const char *path, int err);
#endif
