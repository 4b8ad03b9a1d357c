/* recout.h - writing recommendation results to HDF5 (recout.c): the I/O layer's part of
 * `incremf recommend --all --out FILE.h5`. Layout (README, "recommend"): /items and /scores
 * (users x top: model item index or -1, score or NaN), /user_ids and /item_ids (fixed-length
 * strings, the model's raw ids). */
#ifndef IMF_RECOUT_H
#define IMF_RECOUT_H
#include "idmap.h"
#include <mpi.h>

/* Collective. Write path (reported as name: the final name of a file written under a temporary
 * one) with this rank's users [lo, hi): items/scores are (hi-lo) x top, row-major. users and
 * items_map give the raw ids of the nusers users and nitems items. A full disk is refused before
 * the file is created; every rank returns the same status. */
imf_status imf_recout_write_h5(MPI_Comm comm, const char *path, const char *name, const imf_idmap *users,
                               const imf_idmap *items_map, int64_t nusers, int64_t nitems, int64_t lo, int64_t hi,
                               int top, const int32_t *items, const float *scores);
#endif
