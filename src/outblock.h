/* outblock.h - the out-block exchange (dist.exchange = outblock; Spark MLlib ALS's scheme): a
 * rank keeps only its own rows of a side and the rows of that side its ratings reference, not
 * the whole model, and each half-sweep sends each rank exactly the rows it references.
 *
 * One plan per side, built once from the partition (partition.h):
 *  - the rank's rows of the side ("slots"): its own block [start[rank], start[rank+1]) and
 *    every row a column of the given CSR arrays names, in global order, so the own block is one
 *    run of slots starting at own_off;
 *  - the CSR arrays' column indices rewritten in place from global rows to slots (monotone, so
 *    each row's column order, and with it every solve, is unchanged: the factors stay bitwise
 *    those of the replicated exchange); imf_outblock_restore writes them back;
 *  - for each other rank, the list of own rows it references (exchanged once, MPI_Alltoallv).
 * A half-sweep is one all-to-all of rows (imf_alltoallv64: counts past 2^31 handled), received
 * in place into the slots. Traffic per rank: the referenced rows, 4 w bytes each (SCALING.md).
 *
 * Node mode (a layout given: dist.node_shared with dist.exchange = outblock): the slots are the
 * node's — its ranks' blocks and every row one of its ranks references — held once per node in
 * a shared segment; each rank writes its own rows in place, and only the nodes' first ranks
 * exchange, each node receiving the rows its ranks reference from the other nodes.
 */
#ifndef IMF_OUTBLOCK_H
#define IMF_OUTBLOCK_H
#include "incremf.h"
#include "layout.h"
#include "partition.h"
#include <mpi.h>
#include <stdint.h>

typedef struct imf_outblock imf_outblock;

/* Collective on comm. start[0..nranks]: the side's blocks (partition.h); cols[0..ncols): the
 * CSR arrays whose column indices are rows of this side (rewritten to slots); l: node mode (its
 * comm is comm, its nodes contiguous), or NULL. */
imf_status imf_outblock_create(MPI_Comm comm, const int64_t *start, imf_csr *const *cols, int ncols,
                               const imf_layout *l, imf_outblock **out);
/* Global row ids back into the CSR arrays given to create (local). */
void imf_outblock_restore(const imf_outblock *ob, imf_csr *const *cols, int ncols);
void imf_outblock_destroy(imf_outblock **ob);

int64_t imf_outblock_nslots(const imf_outblock *ob);  /* rows this rank (node mode: node) holds */
int64_t imf_outblock_own_off(const imf_outblock *ob); /* the slot of the rank's first own row */
const int32_t *imf_outblock_gids(const imf_outblock *ob); /* slot -> global row */
int64_t imf_outblock_sent_rows(const imf_outblock *ob); /* rows sent to other ranks per exchange */
/* The slot of global row g, or -1 when this rank does not hold it (binary search; local). */
int64_t imf_outblock_slot(const imf_outblock *ob, int64_t g);

/* Collective. mine: the rank's own rows (nown x w); X: the slots (nslots x w; node mode: in seg,
 * the node's segment, else seg may be NULL). Own rows are copied into their slots, every other
 * slot receives its owner's row. */
imf_status imf_outblock_exchange(const imf_outblock *ob, const imf_shared_seg *seg, const float *mine, float *X,
                                  int w);
#endif
