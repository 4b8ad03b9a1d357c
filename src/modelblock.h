/* modelblock.h - block models (model.h, `blocked`): each rank holds only its block of user rows
 * and its block of item rows, so that no rank ever needs the whole model while it trains (the
 * out-block exchange). Here: the ranks' blocks agreed on and checked, a block model gathered
 * into an ordinary replicated one, and a replicated model cut into a block. The checkpoint
 * writer takes a block model as it is (checkpoint.h). */
#ifndef IMF_MODELBLOCK_H
#define IMF_MODELBLOCK_H
#include "incremf.h"
#include "model.h"
#include <mpi.h>
#include <stdint.h>

/* Collective: every rank's blocks of m as boundaries, *ustart (users) and *istart (items), each
 * nranks + 1 values (rank r holds [start[r], start[r + 1]); imf_free them), or both NULL when m
 * is a block model on no rank. IMF_ERR_RUNTIME on every rank when the ranks' models differ in
 * shape, when m is a block model on some ranks only, or when the blocks do not tile [0, nusers)
 * and [0, nitems) in rank order. */
imf_status imf_model_blocks(MPI_Comm comm, const imf_model *m, int64_t **ustart, int64_t **istart);

/* Collective: *full, a new ordinary model (replicated, on the heap) holding every rank's rows of
 * the block model blk, and everything else of blk (history, BPMF chain hyperparameters, mu,
 * hyperparameters...). A model that is not a block model gives its copy (imf_model_copy). */
imf_status imf_model_gather(MPI_Comm comm, const imf_model *blk, imf_model **full);

/* (local) *blk, a block model holding the user rows [ulo, uhi) and the item rows [ilo, ihi) of
 * the replicated model full, and everything else of it. */
imf_status imf_model_block_of(const imf_model *full, int64_t ulo, int64_t uhi, int64_t ilo, int64_t ihi,
                              imf_model **blk);
#endif
