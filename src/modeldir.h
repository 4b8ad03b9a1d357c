/* modeldir.h - the model directory (`--model DIR`): numbered, immutable model versions, a
 * CURRENT pointer replaced atomically, the resumable checkpoint of an unfinished run, the
 * per-iteration training log and the writer lock.
 *
 *   DIR/versions/v000001.h5 ...   model versions (checkpoint.h files of kind "version")
 *   DIR/versions/ease-p-<hash>.h5 EASE: P = (X^T X + lambda I)^-1 of a version, referenced by
 *                                 its ease_p_hash (the start of a low-rank update)
 *   DIR/run/checkpoint.h5         latest checkpoint of an unfinished `train` (kind "run")
 *   DIR/CURRENT                   "v000003.h5\n": the version that serves
 *   DIR/LOCK                      writer lock (lock.h)
 *   DIR/train.jsonl               per-iteration JSON lines, appended by the trainer
 *   DIR/registry.jsonl            lineage: one JSON line per train/update/rollback/prune/forget
 *                                 (registry.h)
 *
 * All functions are collective over the directory's communicator unless marked (local). */
#ifndef IMF_MODELDIR_H
#define IMF_MODELDIR_H
#include "checkpoint.h"

typedef struct imf_modeldir imf_modeldir;

/* Open DIR. create: make DIR, versions/ and run/ when missing (otherwise a directory that is
 * not a model directory is IMF_ERR_NOTFOUND). writable: take the writer lock (IMF_ERR_LOCKED
 * when another live writer holds it; break_lock takes any lock). */
imf_status imf_modeldir_open(MPI_Comm comm, const char *dir, int create, int writable,
                             int break_lock, imf_modeldir **out);
/* Release the lock (if held) and free. NULL-safe. */
void imf_modeldir_close(imf_modeldir **md);

/* The current version: its file's path and number. IMF_ERR_NOTFOUND (version 0, path "") when
 * no version was committed yet; IMF_ERR_INPUT when CURRENT is garbled or names a missing file. */
imf_status imf_modeldir_current(imf_modeldir *md, char *path, size_t cap, int64_t *version);
/* A version to read: want > 0 is that kept version (IMF_ERR_NOTFOUND naming the directory when
 * it is not kept), want <= 0 the current one (imf_modeldir_current). *version: the one chosen. */
imf_status imf_modeldir_version(imf_modeldir *md, int64_t want, char *path, size_t cap, int64_t *version);
/* Write m as the next version (kind "version"; meta->kind is set) and make it current. A crash
 * between the two steps leaves CURRENT naming the previous complete version. */
imf_status imf_modeldir_commit(imf_modeldir *md, const imf_model *m, imf_ckpt_meta *meta,
                               int64_t *version);
/* Write m as the next version without making it current (a challenger: update decides
 * afterwards whether to switch CURRENT with imf_modeldir_set_current). Needs the lock. */
imf_status imf_modeldir_write_version(imf_modeldir *md, const imf_model *m, imf_ckpt_meta *meta,
                                      int64_t *version);
/* Delete a version file (prune). The caller makes sure it is not the current one. */
imf_status imf_modeldir_remove_version(imf_modeldir *md, int64_t version);
/* Remove EASE P files (versions/ease-p-<hash>.h5, shared by the versions that reference them)
 * that are no longer kept: every = 1 (prune) keeps the files any version references; every = 0
 * (after an update) only those of CURRENT and of the newest version — an older version then
 * still updates, by refactorisation from its X. A version whose header cannot be read stops
 * the collection (nothing removed). Needs the lock. *removed (may be NULL): files removed. */
imf_status imf_modeldir_gc_ease(imf_modeldir *md, int every, int64_t *removed);
/* Make an existing version current (rollback). Needs the lock. */
imf_status imf_modeldir_set_current(imf_modeldir *md, int64_t version);
/* The version numbers present in versions/, ascending (malloc'd; rank 0's view, broadcast). */
imf_status imf_modeldir_list_versions(imf_modeldir *md, int64_t **versions, int64_t *n);

/* (local) Paths. */
const char *imf_modeldir_path(const imf_modeldir *md);
const char *imf_modeldir_run_checkpoint(const imf_modeldir *md);
const char *imf_modeldir_log_path(const imf_modeldir *md);
/* (local) DIR is a model directory with a current version (it has a CURRENT pointer): how
 * `inspect` tells a model directory from a store without knowing the layout. */
int imf_modeldir_is_modeldir(const char *dir);
/* (local) An unfinished run's checkpoint exists (train --resume would continue it). */
int imf_modeldir_run_pending(const imf_modeldir *md);
/* (local) DIR/versions/vNNNNNN.h5 of a version number. */
void imf_modeldir_version_path(const imf_modeldir *md, int64_t version, char *path, size_t cap);
#endif
