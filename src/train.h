/* train.h - the distributed, in-memory training engine: ALS-WR with biases, implicit ALS and
 * BPMF (Gibbs sampling) over a partition (partition.h), producing a replicated imf_model
 * (model.h). The store, checkpoints and the CLI drive it:
 *
 *   imf_partition_build(comm, &local, nusers, nitems, cfg validation_fraction, cfg seed, &part);
 *   imf_train_create(comm, cfg, part, &t);
 *   if (checkpoint) imf_trainer_resume(t, saved_model);
 *   imf_trainer_set_stop_hook(t, my_stop, ctx);        // collective check, e.g. Allreduce MAX
 *   while (!imf_trainer_done(t)) {
 *     imf_trainer_sweep(t);
 *     if (imf_trainer_stopped(t)) break;               // model is at the last whole sweep
 *     maybe_checkpoint(imf_trainer_model(t));
 *   }
 *   imf_trainer_log_view(t, stderr);
 *
 * Every function is collective over the trainer's communicator. Results are bitwise identical
 * for the same data, configuration and seed on any number of ranks.
 */
#ifndef IMF_TRAIN_H
#define IMF_TRAIN_H
#include "layout.h"
#include "model.h"
#include "partition.h"
#include <stdio.h>

/* Fixed BPMF constants (Salakhutdinov & Mnih 2008): observation precision and the
 * Normal-Wishart hyperprior mu0 = 0, beta0, nu0 = k, W0 = I. */
#define IMF_BPMF_BETA 2.0
#define IMF_BPMF_BETA0 2.0

typedef struct imf_trainer imf_trainer;

/* Reads model.type (als|ials|bpmf), k, lambda, lambda_bias, alpha, iterations, burn_in, tol,
 * seed, solver, cg_steps. The validation set is the partition's holdout (build the partition
 * with model.validation_fraction and model.seed). Initialises the factors from the
 * counter-based generator (stream (0, sweep 0, side, row)) and computes the global mean.
 * The partition must outlive the trainer. */
imf_status imf_train_create(MPI_Comm comm, const imf_config *cfg, imf_partition *part,
                            imf_trainer **out);
void imf_trainer_destroy(imf_trainer **t);

/* Called collectively at each half-sweep boundary (after the user half's solve, and at the end
 * of a sweep); a nonzero return on any rank must be returned on every rank (implement it with
 * an integer MPI_Allreduce MAX). A stop after the user half discards that half: the model stays
 * exactly at the last completed sweep, so a checkpoint of it resumes bitwise identically. */
void imf_trainer_set_stop_hook(imf_trainer *t, int (*should_stop)(void *ctx), void *ctx);

/* Continue from a saved model state (same type and k). With the same nusers/nitems it is an
 * exact resume: factors, biases, iteration, BPMF chain and samples, history. With more users or
 * items it is a warm start for grown data: known rows are copied, new rows keep their fresh
 * initialisation, iteration and history start over. */
imf_status imf_trainer_resume(imf_trainer *t, const imf_model *state);

/* One full sweep: user half (solve + exchange), item half, metrics, one progress line. */
imf_status imf_trainer_sweep(imf_trainer *t);
/* Sweeps until model.iterations, early stop or the stop hook. */
imf_status imf_trainer_run(imf_trainer *t);
int imf_trainer_done(const imf_trainer *t);      /* iterations reached, converged or stopped */
int imf_trainer_stopped(const imf_trainer *t);   /* the stop hook fired */
int imf_trainer_converged(const imf_trainer *t); /* early stopping (model.tol) fired */

/* The model, owned by the trainer (valid until destroy): replicated on every rank, or with
 * dist.exchange = outblock a block model (model.h; each rank its partition blocks' rows), which
 * the checkpoint writer takes and imf_model_gather turns into a replicated one. */
imf_model *imf_trainer_model(imf_trainer *t);

/* (local) The last sweep's exchange traffic in bytes (exchange.h, imf_traffic), each the maximum
 * over the ranks: sent inside the node, sent between nodes, received inside, received between
 * nodes; then the most one node received from the others, and what all ranks received from other
 * nodes, summed. docs/SCALING.md has the formulas. */
void imf_trainer_traffic(const imf_trainer *t, int64_t net[6]);
/* (local) Bytes of the node-shared model segment (dist.node_shared), 0 when every rank holds its
 * own copy. */
int64_t imf_trainer_shared_bytes(const imf_trainer *t);
/* (local) The last sweep's squared error over the partition's validation ratings: what
 * imf_holdout_sse gives for the trainer's model, bitwise (an out-block trainer's model is a
 * block model, and its partition's columns are slots, so imf_holdout_sse cannot take them). */
double imf_trainer_holdout_sse(const imf_trainer *t);
/* (local) The user and item rows this rank holds: U + I, or (out-block) its slots; 0 when the
 * exchange is replicated, so callers can tell. */
int64_t imf_trainer_outblock_rows(const imf_trainer *t);
/* (local) Let go of the partition the trainer was created on, so that the caller can free it
 * before writing the model (a version's write is rank 0's peak otherwise: docs/SCALING.md).
 * From here on only imf_trainer_model and the report functions below may be called, and
 * destroy; an out-block trainer leaves the partition's columns as slots. */
void imf_trainer_release_partition(imf_trainer *t);
/* The trainer's node layout (dist.ranks_per_node; layout.h). */
const imf_layout *imf_trainer_layout(const imf_trainer *t);

/* Per-phase timers (partition, init, gram/hyper, solve, exchange, metrics, stop-check) as a
 * min/avg/max-over-ranks table, printed on rank 0. Collective. */
imf_status imf_trainer_log_view(const imf_trainer *t, FILE *out);
#endif
