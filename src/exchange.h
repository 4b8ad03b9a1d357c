/* exchange.h - the collectives of distributed training, written so that counts stay correct
 * past 2^31 elements and so that no floating-point reduction order depends on the rank count.
 *
 *  - imf_alltoallv64: MPI_Alltoallv with 64-bit counts (the partition's redistribution); falls
 *    back to split point-to-point messages when a count or displacement exceeds INT_MAX.
 *  - imf_allgather_rows: replicate a factor matrix whose rows are split in blocks over the ranks
 *    (MPI_Allgatherv with a derived datatype of w floats, so counts are rows).
 *  - imf_allgather_rows_by_id: replicate scattered rows (each rank solved some rows by id: the
 *    fold-in of update.c/foldin.c) into every rank's copy of the matrix.
 *  - imf_share_rows: the checkpoint reader's sharing of the rows each rank read (block
 *    allgather or broadcast from rank 0, in rounds of a bounded size).
 *  - imf_det_sum_rows / imf_det_sum_chunks: global sums that are bitwise identical on any rank
 *    count. Rows are grouped in fixed chunks of IMF_DET_CHUNK global rows; each chunk is summed
 *    in row order starting from zero, the chunk partials are gathered and added in chunk order.
 */
#ifndef IMF_EXCHANGE_H
#define IMF_EXCHANGE_H
#include "incremf.h"
#include "layout.h"
#include <mpi.h>
#include <stdint.h>

#define IMF_DET_CHUNK 4096

/* Owner rank of global index x (a user, an item, a row) given block boundaries
 * start[0..nranks] (ascending; empty blocks allowed): the last r with start[r] <= x. Inline,
 * since the exchanges call it once per rating they route. */
static inline int imf_block_owner(const int64_t *start, int nranks, int64_t x) {
  int lo = 0, hi = nranks - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (start[mid] <= x) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/* Bytes this file's collectives moved for this rank, inside its node ([0]) and between nodes
 * ([1]) of the layout given to imf_exchange_count_on, counted as payload: an allgather sends a
 * rank's part to every other rank and receives every other rank's part, a broadcast sends the
 * root's buffer to every other rank, an all-to-all what each pair exchanges; not the MPI
 * library's own routing (docs/SCALING.md). rows_*: the factor rows among them (block
 * replication and rows solved by id: rows, biases and row ids). Only collectives on the
 * layout's communicator (or a congruent one) count. */
typedef struct {
  int64_t sent[2], recv[2];
  int64_t rows_sent[2], rows_recv[2];
} imf_traffic;

/* (local) Count from now on against layout l (NULL: stop counting); the counters restart at 0. */
void imf_exchange_count_on(const imf_layout *l);
/* (local) The counters since imf_exchange_count_on. */
void imf_exchange_traffic(imf_traffic *out);

/* All-to-all exchange: to rank r send scount[r] elements of `type` starting at element
 * sdispl[r] of sbuf; receive rcount[r] at element rdispl[r] of rbuf. Collective. */
imf_status imf_alltoallv64(MPI_Comm comm, const void *sbuf, const int64_t *scount,
                           const int64_t *sdispl, void *rbuf, const int64_t *rcount,
                           const int64_t *rdispl, MPI_Datatype type);
/* Testing hook: the largest count/displacement passed to one MPI call (default INT_MAX); a
 * small value exercises the split path. */
void imf_exchange_set_max_count(int64_t max);

/* imf_alltoallv64 of factor rows of w floats (counts and displacements in rows), counted as
 * rows (imf_traffic.rows_*): the out-block exchange (outblock.h). Collective. */
imf_status imf_alltoallv_rows(MPI_Comm comm, const float *sbuf, const int64_t *scount, const int64_t *sdispl,
                              float *rbuf, const int64_t *rcount, const int64_t *rdispl, int w);

/* The same between the nodes' first ranks (over l->leaders; counts and displacements per node),
 * counted as rows between nodes: the node-shared out-block exchange (outblock.h). Collective on
 * l->leaders. */
imf_status imf_alltoallv_rows_leaders(const imf_layout *l, const float *sbuf, const int64_t *scount,
                                      const int64_t *sdispl, float *rbuf, const int64_t *rcount, const int64_t *rdispl,
                                      int w);

/* X is n x w (n = start[nranks]), replicated. Rank r's rows [start[r], start[r+1]) are taken
 * from `mine` (stride w; may alias X + start[r] * w) and every rank receives all rows in X. */
imf_status imf_allgather_rows(MPI_Comm comm, const int64_t *start, const float *mine, float *X,
                              int w);

/* The same on a node-shared X (layout.h: seg holds X, one copy per node; the layout's nodes
 * contiguous): every rank writes its rows in place, then each node's first rank exchanges the
 * node's rows with the other nodes' first ranks (MPI_Allgatherv over l->leaders, in place), and
 * every rank of a node sees the result. No rank copies the model. Collective on l->comm. */
imf_status imf_allgather_rows_shared(const imf_layout *l, const imf_shared_seg *seg, const int64_t *start,
                                     const float *mine, float *X, int w);

/* Every rank solved n rows: ids row_id[0..n), their k floats in X (n x k) and, where bias is not
 * NULL, their biases in B (n). Each rank receives every rank's rows and writes them, in rank
 * order, into the replicated matrix M (row id j at M + j * k) and bias (bias[j]). *ntotal: the
 * rows written (all ranks); may be NULL. Collective. */
imf_status imf_allgather_rows_by_id(MPI_Comm comm, int k, int64_t n, const int64_t *row_id, const float *X,
                                    const float *B, float *M, float *bias, int64_t *ntotal);

/* buf holds n rows of rowbytes bytes each; rank r has filled its rows (from_root = 0: the
 * block [n r / size, n (r + 1) / size); from_root = 1: rank 0 all of them). Every rank receives
 * all rows, in rounds of at most `per` rows per rank (one collective call each; the same count
 * on every rank). what: names the array in errors. Collective. */
imf_status imf_share_rows(MPI_Comm comm, int from_root, void *buf, int64_t n, size_t rowbytes, int64_t per,
                          const char *what);

/* Sum of per-row vectors: this rank holds the m-vectors of its rows [start[rank],
 * start[rank+1]) in per_row ((hi - lo) x m); out (m) receives the sum over all rows on every
 * rank, bitwise independent of the number of ranks and of start[]. */
imf_status imf_det_sum_rows(MPI_Comm comm, const int64_t *start, const double *per_row, int m,
                            double *out);

/* Sum over rows [0, nrows) of a quantity computable on any rank (e.g. from replicated factors):
 * fn(ctx, lo, hi, acc) adds rows lo..hi-1 in order into acc (m doubles, zeroed by the caller).
 * Each rank evaluates a share of the chunks. */
typedef void (*imf_chunk_fn)(void *ctx, int64_t lo, int64_t hi, double *acc);
imf_status imf_det_sum_chunks(MPI_Comm comm, int64_t nrows, int m, imf_chunk_fn fn, void *ctx,
                              double *out);

/* The same sum, bitwise, where each rank can evaluate only its own rows [start[rank],
 * start[rank+1]) (the out-block exchange's factors): a chunk inside one block is summed by its
 * owner; a chunk split between blocks is summed by passing its running sum from each owner to
 * the next (rows stay in order, so the rounding is that of one pass), and the finished chunk
 * partials are added in chunk order. Collective. */
imf_status imf_det_sum_blocks(MPI_Comm comm, const int64_t *start, int m, imf_chunk_fn fn, void *ctx,
                              double *out);
#endif
