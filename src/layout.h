/* layout.h - which ranks share a node (issue 25): the real nodes (ranks that can share memory,
 * MPI_COMM_TYPE_SHARED) or, with dist.ranks_per_node = N, pretend nodes of N ranks each cut out
 * of the real ones, so that the multi-node paths and their counters run on one machine (CTest
 * on 2 cores, oversubscribed). exchange.c counts the bytes its collectives move inside and
 * between the nodes of the layout it is given (imf_exchange_count_on); docs/SCALING.md. */
#ifndef IMF_LAYOUT_H
#define IMF_LAYOUT_H
#include "incremf.h"
#include "model.h"
#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
  MPI_Comm comm;      /* the communicator described (the caller's; not owned) */
  int size, rank;
  int nnodes, node;   /* nodes, numbered by their lowest rank; this rank's node */
  int *node_of;       /* size entries: each rank's node */
  int node_size, node_rank;
  int ranks_per_node; /* dist.ranks_per_node (0: the real nodes) */
  MPI_Comm node_comm; /* this rank's node (owned) */
  MPI_Comm leaders;   /* the nodes' first ranks, in node order (owned); MPI_COMM_NULL elsewhere */
  int contiguous;     /* every node's ranks are consecutive in comm, nodes in rank order */
  int *node_start;    /* nnodes + 1: a node's first rank (meaningful when contiguous) */
} imf_layout;

/* A memory segment shared by the ranks of one node (MPI_Win_allocate_shared on the node's
 * communicator): one copy per node, every rank reads and writes it in place. */
typedef struct {
  MPI_Win win;   /* MPI_WIN_NULL: none */
  void *base;    /* the node's copy, the same bytes on every rank of the node */
  size_t bytes;
} imf_shared_seg;

/* Collective on comm. ranks_per_node 0: the real nodes; N > 0: each real node's ranks cut into
 * pretend nodes of N consecutive ranks (the last one of a real node may hold fewer). */
imf_status imf_layout_create(MPI_Comm comm, int ranks_per_node, imf_layout **out);
void imf_layout_destroy(imf_layout **l);

/* Collective on l->comm: a zeroed segment of `bytes` bytes per node (allocated by the node's
 * first rank, in a passive-target epoch so that every rank may read and write it at any time). */
imf_status imf_layout_shared_alloc(const imf_layout *l, size_t bytes, imf_shared_seg *seg);
/* Collective on the node: release the segment (nothing may point into it after). */
void imf_layout_shared_free(imf_shared_seg *seg);
/* Collective on the node: every rank's writes to the segment so far are visible to every rank of
 * the node afterwards (MPI_Win_sync, a node barrier, MPI_Win_sync). */
imf_status imf_layout_node_sync(const imf_layout *l, const imf_shared_seg *seg);

/* Collective on l->comm: move m's P, Q (room for kw_cap >= m->kw floats a row), its biases and
 * BPMF chain rows U, V (those it has) from the heap into one zeroed segment per node, *seg. The
 * caller keeps seg and detaches the arrays before destroying m (or sets m->shm). The layout's
 * nodes must be contiguous. */
imf_status imf_layout_share_model(const imf_layout *l, imf_model *m, int kw_cap, imf_shared_seg *seg);

/* (local) One line, e.g. "2 nodes (2+2 ranks; pretend: dist.ranks_per_node = 2)". */
void imf_layout_describe(const imf_layout *l, char *buf, size_t cap);

/* (local) The ranks on each node, in node order: counts[nnodes] (caller's array). */
void imf_layout_node_sizes(const imf_layout *l, int *counts);
#endif
