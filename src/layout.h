/* layout.h - which ranks share a node (issue 25): the real nodes (ranks that can share memory,
 * MPI_COMM_TYPE_SHARED) or, with dist.ranks_per_node = N, pretend nodes of N ranks each cut out
 * of the real ones, so that the multi-node paths and their counters run on one machine (CTest
 * on 2 cores, oversubscribed). exchange.c counts the bytes its collectives move inside and
 * between the nodes of the layout it is given (imf_exchange_count_on); docs/SCALING.md. */
#ifndef IMF_LAYOUT_H
#define IMF_LAYOUT_H
#include "incremf.h"
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
} imf_layout;

/* Collective on comm. ranks_per_node 0: the real nodes; N > 0: each real node's ranks cut into
 * pretend nodes of N consecutive ranks (the last one of a real node may hold fewer). */
imf_status imf_layout_create(MPI_Comm comm, int ranks_per_node, imf_layout **out);
void imf_layout_destroy(imf_layout **l);

/* (local) One line, e.g. "2 nodes (2+2 ranks; pretend: dist.ranks_per_node = 2)". */
void imf_layout_describe(const imf_layout *l, char *buf, size_t cap);

/* (local) The ranks on each node, in node order: counts[nnodes] (caller's array). */
void imf_layout_node_sizes(const imf_layout *l, int *counts);
#endif
