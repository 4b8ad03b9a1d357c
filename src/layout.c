/* layout.c - the node layout of a communicator (layout.h): the real nodes from
 * MPI_Comm_split_type(MPI_COMM_TYPE_SHARED), optionally cut into pretend nodes, numbered by
 * their lowest rank so that every rank computes the same numbering. */
#include "layout.h"
#include "error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Fill l (its comm, size, rank and ranks_per_node set) from the two splits. Collective. */
static imf_status layout_build(imf_layout *l) {
  int *low = NULL;
  MPI_Comm shared = MPI_COMM_NULL;
  imf_status st = imf_alloc(&l->node_of, (size_t)l->size, sizeof *l->node_of);
  if (st == IMF_OK) st = imf_alloc(&low, (size_t)l->size, sizeof *low);
  IMF_TRY(imf_agree(l->comm, st), out);
  IMF_MPI_TRY(MPI_Comm_split_type(l->comm, MPI_COMM_TYPE_SHARED, l->rank, MPI_INFO_NULL, &shared), out);
  if (l->ranks_per_node > 0) {
    int srank;
    MPI_Comm_rank(shared, &srank);
    IMF_MPI_TRY(MPI_Comm_split(shared, srank / l->ranks_per_node, l->rank, &l->node_comm), out);
  } else {
    IMF_MPI_TRY(MPI_Comm_dup(shared, &l->node_comm), out);
  }
  MPI_Comm_size(l->node_comm, &l->node_size);
  MPI_Comm_rank(l->node_comm, &l->node_rank);
  /* a node's name: its lowest rank in comm (ranks were ordered by it in both splits) */
  int mine = l->rank;
  IMF_MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, &mine, 1, MPI_INT, MPI_MIN, l->node_comm), out);
  IMF_MPI_TRY(MPI_Allgather(&mine, 1, MPI_INT, low, 1, MPI_INT, l->comm), out);
  /* number the nodes in the order of their lowest ranks: rank r leads a node iff low[r] == r */
  l->nnodes = 0;
  for (int r = 0; r < l->size; r++)
    if (low[r] == r) low[r] = -1 - l->nnodes++; /* a leader: its node's index, encoded */
  for (int r = 0; r < l->size; r++) l->node_of[r] = low[r] < 0 ? -1 - low[r] : -1 - low[low[r]];
  l->node = l->node_of[l->rank];
  /* contiguous: nodes in rank order, each a run of consecutive ranks */
  IMF_TRY(imf_alloc(&l->node_start, (size_t)l->nnodes + 1, sizeof *l->node_start), out);
  l->contiguous = 1;
  for (int r = 0; r < l->size; r++) {
    if (r == 0 || l->node_of[r] != l->node_of[r - 1]) {
      if (l->node_of[r] != (r == 0 ? 0 : l->node_of[r - 1] + 1)) l->contiguous = 0;
      else l->node_start[l->node_of[r]] = r;
    }
  }
  l->node_start[l->nnodes] = l->size;
  IMF_MPI_TRY(MPI_Comm_split(l->comm, l->node_rank == 0 ? 0 : MPI_UNDEFINED, l->rank, &l->leaders), out);
out:
  if (shared != MPI_COMM_NULL) MPI_Comm_free(&shared);
  imf_free(&low);
  return st;
}

imf_status imf_layout_create(MPI_Comm comm, int ranks_per_node, imf_layout **out) {
  *out = NULL;
  if (ranks_per_node < 0) IMF_FAIL(IMF_ERR_USAGE, "dist.ranks_per_node must be >= 0, got %d", ranks_per_node);
  imf_layout *l = NULL;
  IMF_CHECK(imf_agree(comm, imf_alloc(&l, 1, sizeof *l)));
  l->comm = comm;
  l->node_comm = MPI_COMM_NULL;
  l->leaders = MPI_COMM_NULL;
  l->ranks_per_node = ranks_per_node;
  MPI_Comm_size(comm, &l->size);
  MPI_Comm_rank(comm, &l->rank);
  imf_status st = layout_build(l);
  if (st != IMF_OK) imf_layout_destroy(&l);
  *out = l;
  return st;
}

void imf_layout_destroy(imf_layout **l) {
  if (!*l) return;
  if ((*l)->node_comm != MPI_COMM_NULL) MPI_Comm_free(&(*l)->node_comm);
  if ((*l)->leaders != MPI_COMM_NULL) MPI_Comm_free(&(*l)->leaders);
  imf_free(&(*l)->node_of);
  imf_free(&(*l)->node_start);
  imf_free(l);
}

imf_status imf_layout_shared_alloc(const imf_layout *l, size_t bytes, imf_shared_seg *seg) {
  seg->win = MPI_WIN_NULL;
  seg->base = NULL;
  seg->bytes = bytes;
  void *mine = NULL;
  MPI_Aint size = 0;
  int du = 1;
  int rc = MPI_Win_allocate_shared(l->node_rank == 0 ? (MPI_Aint)bytes : 0, 1, MPI_INFO_NULL, l->node_comm, &mine,
                                   &seg->win);
  if (rc == MPI_SUCCESS) rc = MPI_Win_shared_query(seg->win, 0, &size, &du, &seg->base);
  if (rc == MPI_SUCCESS) rc = MPI_Win_lock_all(MPI_MODE_NOCHECK, seg->win);
  imf_status st = IMF_OK;
  if (rc != MPI_SUCCESS) {
    char what[160];
    snprintf(what, sizeof what, "MPI_Win_allocate_shared of %zu bytes for the node-shared model "
             "(dist.node_shared; is /dev/shm large enough?)", bytes);
    st = IMF_MPI_RAISE(rc, what);
  }
  else if (l->node_rank == 0 && bytes)
    memset(seg->base, 0, bytes);
  st = imf_agree(l->comm, st);
  if (st == IMF_OK) st = imf_layout_node_sync(l, seg);
  if (st != IMF_OK) imf_layout_shared_free(seg);
  return st;
}

void imf_layout_shared_free(imf_shared_seg *seg) {
  if (seg->win != MPI_WIN_NULL) {
    MPI_Win_unlock_all(seg->win);
    MPI_Win_free(&seg->win);
  }
  seg->win = MPI_WIN_NULL;
  seg->base = NULL;
}

imf_status imf_layout_node_sync(const imf_layout *l, const imf_shared_seg *seg) {
  IMF_MPI(MPI_Win_sync(seg->win));
  IMF_MPI(MPI_Barrier(l->node_comm));
  IMF_MPI(MPI_Win_sync(seg->win));
  return IMF_OK;
}

imf_status imf_layout_share_model(const imf_layout *l, imf_model *m, int kw_cap, imf_shared_seg *seg) {
  if (!l->contiguous || kw_cap < m->kw)
    IMF_FAIL(IMF_ERR_USAGE, "node-shared model: the nodes' ranks are not contiguous, or rows of %d floats in room "
             "for %d", m->kw, kw_cap);
  const size_t fu = (size_t)m->nusers * (size_t)kw_cap, fi = (size_t)m->nitems * (size_t)kw_cap;
  const size_t bu = m->bu ? (size_t)m->nusers : 0, bi = m->bi ? (size_t)m->nitems : 0;
  const size_t cu = m->chain.U ? (size_t)m->nusers * (size_t)m->k : 0;
  const size_t ci = m->chain.V ? (size_t)m->nitems * (size_t)m->k : 0;
  IMF_CHECK(imf_layout_shared_alloc(l, (fu + fi + bu + bi + cu + ci) * sizeof(float), seg));
  float *b = seg->base;
  imf_free(&m->P);
  imf_free(&m->Q);
  m->P = b;
  m->Q = b + fu;
  if (m->bu) {
    imf_free(&m->bu);
    imf_free(&m->bi);
    m->bu = b + fu + fi;
    m->bi = b + fu + fi + bu;
  }
  if (m->chain.U) {
    imf_free(&m->chain.U);
    imf_free(&m->chain.V);
    m->chain.U = b + fu + fi + bu + bi;
    m->chain.V = b + fu + fi + bu + bi + cu;
  }
  return IMF_OK;
}

void imf_layout_node_sizes(const imf_layout *l, int *counts) {
  memset(counts, 0, (size_t)l->nnodes * sizeof *counts);
  for (int r = 0; r < l->size; r++) counts[l->node_of[r]]++;
}

void imf_layout_describe(const imf_layout *l, char *buf, size_t cap) {
  int n = snprintf(buf, cap, "%d node%s (", l->nnodes, l->nnodes == 1 ? "" : "s");
  int *c = malloc((size_t)l->nnodes * sizeof *c);
  if (c) {
    imf_layout_node_sizes(l, c);
    for (int j = 0; j < l->nnodes && n >= 0 && (size_t)n < cap; j++)
      n += snprintf(buf + n, cap - (size_t)n, "%s%d", j ? "+" : "", c[j]);
    free(c);
  }
  if (n >= 0 && (size_t)n < cap) {
    if (l->ranks_per_node > 0)
      snprintf(buf + n, cap - (size_t)n, " ranks; pretend: dist.ranks_per_node = %d)", l->ranks_per_node);
    else
      snprintf(buf + n, cap - (size_t)n, " ranks)");
  }
}
