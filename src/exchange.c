/* exchange.c - large-count all-to-all, row-block replication, replication of rows solved by id
 * (fold-in), the checkpoint reader's row sharing, and rank-count-independent sums (see
 * exchange.h). Every collective that moves factor rows between ranks lives here. */
#include "exchange.h"
#include "error.h"
#include <limits.h>
#include <stdlib.h>
#include <string.h>

static int64_t max_count = INT_MAX;

/* ---------------------------------------------------------------- traffic counters */

static const imf_layout *count_layout;
static imf_traffic counters;

void imf_exchange_count_on(const imf_layout *l) {
  count_layout = l;
  memset(&counters, 0, sizeof counters);
}

void imf_exchange_traffic(imf_traffic *out) { *out = counters; }

/* Set while a collective counts its traffic itself (the leaders' all-to-all: the leaders'
 * communicator is congruent with the counted one when every node is one rank). */
static int counted_by_caller;

static int counting(MPI_Comm comm) {
  if (!count_layout || counted_by_caller) return 0;
  int same = MPI_UNEQUAL;
  if (MPI_Comm_compare(comm, count_layout->comm, &same) != MPI_SUCCESS) return 0;
  return same == MPI_IDENT || same == MPI_CONGRUENT;
}

static void add(int far, int64_t s, int64_t v, int rows) {
  counters.sent[far] += s;
  counters.recv[far] += v;
  if (rows) {
    counters.rows_sent[far] += s;
    counters.rows_recv[far] += v;
  }
}

/* Set while imf_alltoallv_rows runs: the all-to-all's payload is factor rows. */
static int pairs_are_rows;

/* An all-to-all: this rank sends sb[r] and receives rb[r] elements of `unit` bytes to/from r. */
static void count_pairs(MPI_Comm comm, const int64_t *sb, const int64_t *rb, int64_t unit) {
  if (!counting(comm)) return;
  const imf_layout *l = count_layout;
  for (int r = 0; r < l->size; r++)
    if (r != l->rank) add(l->node_of[r] != l->node, sb[r] * unit, rb[r] * unit, pairs_are_rows);
}

/* A gather to all where rank r contributes part[r] elements of `unit` bytes: this rank sends its
 * part to every other rank and receives theirs. */
static void count_gather(MPI_Comm comm, const int *part, int64_t unit, int rows) {
  if (!counting(comm)) return;
  const imf_layout *l = count_layout;
  for (int r = 0; r < l->size; r++)
    if (r != l->rank)
      add(l->node_of[r] != l->node, (int64_t)part[l->rank] * unit, (int64_t)part[r] * unit, rows);
}

static void count_bcast(MPI_Comm comm, int root, int64_t bytes) {
  if (!counting(comm)) return;
  const imf_layout *l = count_layout;
  for (int r = 0; r < l->size; r++) {
    if (r == l->rank) continue;
    const int far = l->node_of[r] != l->node;
    if (l->rank == root) add(far, bytes, 0, 0);
    else if (r == root) add(far, 0, bytes, 0);
  }
}

void imf_exchange_set_max_count(int64_t max) { max_count = max > 0 && max <= INT_MAX ? max : INT_MAX; }

imf_status imf_alltoallv64(MPI_Comm comm, const void *sbuf, const int64_t *scount,
                           const int64_t *sdispl, void *rbuf, const int64_t *rcount,
                           const int64_t *rdispl, MPI_Datatype type) {
  int size;
  IMF_MPI(MPI_Comm_size(comm, &size));
  MPI_Aint lb, extent;
  IMF_MPI(MPI_Type_get_extent(type, &lb, &extent));
  /* Every rank must take the same path: agree on whether anything is too large. */
  int big = 0;
  for (int r = 0; r < size; r++)
    if (scount[r] + sdispl[r] > max_count || rcount[r] + rdispl[r] > max_count) big = 1;
  int any = 0;
  IMF_MPI(MPI_Allreduce(&big, &any, 1, MPI_INT, MPI_MAX, comm));
  if (!any) {
    int *c = malloc(4 * (size_t)size * sizeof(int));
    if (!c) IMF_FAIL(IMF_ERR_NOMEM, "out of memory");
    for (int r = 0; r < size; r++) {
      c[r] = (int)scount[r];
      c[size + r] = (int)sdispl[r];
      c[2 * size + r] = (int)rcount[r];
      c[3 * size + r] = (int)rdispl[r];
    }
    int rc = MPI_Alltoallv(sbuf, c, c + size, type, rbuf, c + 2 * size, c + 3 * size, type, comm);
    free(c);
    if (rc != MPI_SUCCESS) return IMF_MPI_RAISE(rc, "MPI_Alltoallv");
    count_pairs(comm, scount, rcount, (int64_t)extent);
    return IMF_OK;
  }
  /* Split path: every message in pieces of at most max_count elements, addressed by pointer
   * (so no displacement overflows). Pieces between a pair keep their order (MPI's
   * non-overtaking rule for the same source, tag and communicator). */
  int64_t npieces = 0;
  for (int r = 0; r < size; r++)
    npieces += (scount[r] + max_count - 1) / max_count + (rcount[r] + max_count - 1) / max_count;
  MPI_Request *req = malloc((size_t)(npieces ? npieces : 1) * sizeof *req);
  if (!req) IMF_FAIL(IMF_ERR_NOMEM, "out of memory");
  int64_t nr = 0;
  int rc = MPI_SUCCESS;
  for (int r = 0; r < size && rc == MPI_SUCCESS; r++)
    for (int64_t off = 0; off < rcount[r] && rc == MPI_SUCCESS; off += max_count) {
      int64_t n = rcount[r] - off < max_count ? rcount[r] - off : max_count;
      rc = MPI_Irecv((char *)rbuf + (rdispl[r] + off) * extent, (int)n, type, r, 7301, comm, &req[nr++]);
    }
  for (int r = 0; r < size && rc == MPI_SUCCESS; r++)
    for (int64_t off = 0; off < scount[r] && rc == MPI_SUCCESS; off += max_count) {
      int64_t n = scount[r] - off < max_count ? scount[r] - off : max_count;
      rc = MPI_Isend((const char *)sbuf + (sdispl[r] + off) * extent, (int)n, type, r, 7301, comm,
                     &req[nr++]);
    }
  if (rc == MPI_SUCCESS) rc = MPI_Waitall((int)nr, req, MPI_STATUSES_IGNORE);
  free(req);
  if (rc != MPI_SUCCESS) return IMF_MPI_RAISE(rc, "split all-to-all");
  count_pairs(comm, scount, rcount, (int64_t)extent);
  return IMF_OK;
}

/* imf_alltoallv64 of rows of w floats on comm, counted as rows where comm is the counted one. */
static imf_status alltoallv_floats(MPI_Comm comm, const float *sbuf, const int64_t *scount, const int64_t *sdispl,
                                   float *rbuf, const int64_t *rcount, const int64_t *rdispl, int w) {
  MPI_Datatype row;
  IMF_MPI(MPI_Type_contiguous(w, MPI_FLOAT, &row));
  int rc = MPI_Type_commit(&row);
  if (rc != MPI_SUCCESS) {
    MPI_Type_free(&row);
    return IMF_MPI_RAISE(rc, "MPI_Type_commit");
  }
  pairs_are_rows = 1;
  imf_status st = imf_alltoallv64(comm, sbuf, scount, sdispl, rbuf, rcount, rdispl, row);
  pairs_are_rows = 0;
  MPI_Type_free(&row);
  return st;
}

imf_status imf_alltoallv_rows(MPI_Comm comm, const float *sbuf, const int64_t *scount, const int64_t *sdispl,
                              float *rbuf, const int64_t *rcount, const int64_t *rdispl, int w) {
  return alltoallv_floats(comm, sbuf, scount, sdispl, rbuf, rcount, rdispl, w);
}

imf_status imf_alltoallv_rows_leaders(const imf_layout *l, const float *sbuf, const int64_t *scount,
                                      const int64_t *sdispl, float *rbuf, const int64_t *rcount, const int64_t *rdispl,
                                      int w) {
  /* (the leaders' communicator is not the counted one: counted here, all between nodes) */
  counted_by_caller = 1;
  imf_status st = alltoallv_floats(l->leaders, sbuf, scount, sdispl, rbuf, rcount, rdispl, w);
  counted_by_caller = 0;
  IMF_CHECK(st);
  if (count_layout == l)
    for (int j = 0; j < l->nnodes; j++)
      if (j != l->node) add(1, scount[j] * w * 4, rcount[j] * w * 4, 1);
  return IMF_OK;
}

imf_status imf_allgather_rows(MPI_Comm comm, const int64_t *start, const float *mine, float *X,
                              int w) {
  int size, rank;
  IMF_MPI(MPI_Comm_size(comm, &size));
  IMF_MPI(MPI_Comm_rank(comm, &rank));
  float *own = X + (size_t)start[rank] * (size_t)w;
  size_t nown = (size_t)(start[rank + 1] - start[rank]) * (size_t)w;
  if (size == 1) {
    if (mine != own && nown) memcpy(own, mine, nown * sizeof(float));
    return IMF_OK;
  }
  /* Rows < 2^31 (dense int32 indices), so row counts and row displacements fit in int. */
  int *c = malloc(2 * (size_t)size * sizeof(int));
  if (!c) IMF_FAIL(IMF_ERR_NOMEM, "out of memory");
  for (int r = 0; r < size; r++) {
    c[r] = (int)(start[r + 1] - start[r]);
    c[size + r] = (int)start[r];
  }
  MPI_Datatype row;
  int rc = MPI_Type_contiguous(w, MPI_FLOAT, &row);
  if (rc == MPI_SUCCESS) rc = MPI_Type_commit(&row);
  if (rc == MPI_SUCCESS) {
    if (mine != own && nown) memcpy(own, mine, nown * sizeof(float));
    rc = MPI_Allgatherv(MPI_IN_PLACE, 0, row, X, c, c + size, row, comm);
    MPI_Type_free(&row);
    if (rc == MPI_SUCCESS) count_gather(comm, c, (int64_t)w * 4, 1);
  }
  free(c);
  if (rc != MPI_SUCCESS) return IMF_MPI_RAISE(rc, "MPI_Allgatherv of factor rows");
  return IMF_OK;
}

imf_status imf_allgather_rows_shared(const imf_layout *l, const imf_shared_seg *seg, const int64_t *start,
                                     const float *mine, float *X, int w) {
  float *own = X + (size_t)start[l->rank] * (size_t)w;
  size_t nown = (size_t)(start[l->rank + 1] - start[l->rank]) * (size_t)w;
  if (!l->contiguous) IMF_FAIL(IMF_ERR_USAGE, "node-shared exchange: the nodes' ranks are not contiguous");
  if (mine != own && nown) memcpy(own, mine, nown * sizeof(float));
  IMF_CHECK(imf_layout_node_sync(l, seg));
  if (l->leaders != MPI_COMM_NULL && l->nnodes > 1) {
    /* node j's rows: those of its ranks, one run [start[node_start[j]], start[node_start[j+1]]) */
    int *c = malloc(2 * (size_t)l->nnodes * sizeof(int));
    if (!c) IMF_FAIL(IMF_ERR_NOMEM, "out of memory");
    for (int j = 0; j < l->nnodes; j++) {
      c[j] = (int)(start[l->node_start[j + 1]] - start[l->node_start[j]]);
      c[l->nnodes + j] = (int)start[l->node_start[j]];
    }
    MPI_Datatype row;
    int rc = MPI_Type_contiguous(w, MPI_FLOAT, &row);
    if (rc == MPI_SUCCESS) rc = MPI_Type_commit(&row);
    if (rc == MPI_SUCCESS) {
      rc = MPI_Allgatherv(MPI_IN_PLACE, 0, row, X, c, c + l->nnodes, row, l->leaders);
      MPI_Type_free(&row);
    }
    if (rc == MPI_SUCCESS && count_layout == l) /* the leaders' traffic, all between nodes */
      for (int j = 0; j < l->nnodes; j++)
        if (j != l->node) add(1, (int64_t)c[l->node] * w * 4, (int64_t)c[j] * w * 4, 1);
    free(c);
    if (rc != MPI_SUCCESS) return IMF_MPI_RAISE(rc, "MPI_Allgatherv of the nodes' factor rows");
  }
  return imf_layout_node_sync(l, seg);
}

imf_status imf_allgather_rows_by_id(MPI_Comm comm, int k, int64_t n, const int64_t *row_id, const float *X,
                                    const float *B, float *M, float *bias, int64_t *ntotal) {
  int nr = 1;
  MPI_Comm_size(comm, &nr);
  int mine = (int)n, *cnt = NULL, *dsp = NULL;
  int64_t *allid = NULL, tot = 0;
  float *allX = NULL, *allB = NULL;
  MPI_Datatype rowt = MPI_DATATYPE_NULL;
  imf_status st = IMF_OK;
  IMF_TRY(imf_alloc(&cnt, (size_t)nr, sizeof *cnt), out);
  IMF_TRY(imf_alloc(&dsp, (size_t)nr + 1, sizeof *dsp), out);
  int rc = MPI_Allgather(&mine, 1, MPI_INT, cnt, 1, MPI_INT, comm);
  if (rc != MPI_SUCCESS) IMF_TRY(IMF_MPI_RAISE(rc, "MPI_Allgather of row counts"), out);
  for (int r = 0; r < nr; r++) {
    dsp[r] = (int)tot;
    tot += cnt[r];
  }
  IMF_TRY(imf_alloc(&allid, (size_t)tot + 1, sizeof *allid), out);
  IMF_TRY(imf_alloc(&allB, (size_t)tot + 1, sizeof *allB), out);
  IMF_TRY(imf_alloc(&allX, ((size_t)tot + 1) * (size_t)k, sizeof *allX), out);
  rc = MPI_Allgatherv(row_id, mine, MPI_INT64_T, allid, cnt, dsp, MPI_INT64_T, comm);
  if (rc == MPI_SUCCESS) rc = MPI_Allgatherv(B, mine, MPI_FLOAT, allB, cnt, dsp, MPI_FLOAT, comm);
  if (rc == MPI_SUCCESS) rc = MPI_Type_contiguous(k, MPI_FLOAT, &rowt);
  if (rc == MPI_SUCCESS) rc = MPI_Type_commit(&rowt);
  if (rc == MPI_SUCCESS) rc = MPI_Allgatherv(X, mine, rowt, allX, cnt, dsp, rowt, comm);
  if (rc != MPI_SUCCESS) IMF_TRY(IMF_MPI_RAISE(rc, "MPI_Allgatherv of solved rows"), out);
  count_gather(comm, cnt, 8 + 4 + 4 * (int64_t)k, 1); /* id, bias, factors */
  for (int64_t j = 0; j < tot; j++) {
    memcpy(M + (size_t)allid[j] * (size_t)k, allX + (size_t)j * (size_t)k, (size_t)k * sizeof(float));
    if (bias) bias[allid[j]] = allB[j];
  }
  if (ntotal) *ntotal = tot;
out:
  if (rowt != MPI_DATATYPE_NULL) MPI_Type_free(&rowt);
  imf_free(&cnt);
  imf_free(&dsp);
  imf_free(&allid);
  imf_free(&allB);
  imf_free(&allX);
  return st;
}

imf_status imf_share_rows(MPI_Comm comm, int from_root, void *buf, int64_t n, size_t rowbytes, int64_t per,
                          const char *what) {
  int size;
  IMF_MPI(MPI_Comm_size(comm, &size));
  if (n == 0 || size == 1) return IMF_OK;
  if (rowbytes > INT_MAX || n > INT_MAX)
    IMF_FAIL(IMF_ERR_RUNTIME, "%s: array of %lld rows of %zu bytes is past the MPI limits", what, (long long)n,
             rowbytes);
  /* rounds from n, not from this rank's share: each round is one collective call on every rank */
  const int64_t maxblock = from_root ? n : (n + size - 1) / size, rounds = (maxblock + per - 1) / per;
  MPI_Datatype rowt;
  IMF_MPI(MPI_Type_contiguous((int)rowbytes, MPI_BYTE, &rowt));
  IMF_MPI(MPI_Type_commit(&rowt));
  int *cnt = NULL, *disp = NULL;
  imf_status st = imf_alloc(&cnt, (size_t)size, sizeof *cnt);
  if (st == IMF_OK) st = imf_alloc(&disp, (size_t)size, sizeof *disp);
  for (int64_t t = 0; t < rounds && st == IMF_OK; t++) {
    int rc;
    if (from_root) {
      int64_t a = t * per, b = a + per < n ? a + per : n;
      rc = MPI_Bcast((char *)buf + (size_t)a * rowbytes, (int)(b - a), rowt, 0, comm);
      if (rc == MPI_SUCCESS) count_bcast(comm, 0, (b - a) * (int64_t)rowbytes);
    } else {
      for (int r = 0; r < size; r++) {
        const int64_t lo = n * r / size, hi = n * (r + 1) / size;
        int64_t a = lo + t * per, b = a + per < hi ? a + per : hi;
        cnt[r] = b > a ? (int)(b - a) : 0;
        disp[r] = b > a ? (int)a : 0;
      }
      rc = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, cnt, disp, rowt, comm);
      if (rc == MPI_SUCCESS) count_gather(comm, cnt, (int64_t)rowbytes, 0);
    }
    if (rc != MPI_SUCCESS) st = IMF_MPI_RAISE(rc, "sharing checkpoint rows");
  }
  imf_free(&cnt);
  imf_free(&disp);
  MPI_Type_free(&rowt);
  return st;
}

/* Gather `count` m-vectors from each rank into all (in rank order). Counts are in vectors. */
static imf_status gather_vectors(MPI_Comm comm, const double *mine, int mycount, const int *counts,
                                 double *all, int m) {
  int size;
  IMF_MPI(MPI_Comm_size(comm, &size));
  int *displ = malloc((size_t)size * sizeof(int));
  if (!displ) IMF_FAIL(IMF_ERR_NOMEM, "out of memory");
  int64_t d = 0;
  for (int r = 0; r < size; r++) {
    displ[r] = (int)d;
    d += counts[r];
  }
  if (d > INT_MAX) {
    free(displ);
    IMF_FAIL(IMF_ERR_NOMEM, "too many partial sums (%lld)", (long long)d);
  }
  MPI_Datatype vec;
  int rc = MPI_Type_contiguous(m, MPI_DOUBLE, &vec);
  if (rc == MPI_SUCCESS) rc = MPI_Type_commit(&vec);
  if (rc == MPI_SUCCESS) {
    rc = MPI_Allgatherv(mine, mycount, vec, all, counts, displ, vec, comm);
    MPI_Type_free(&vec);
    if (rc == MPI_SUCCESS) count_gather(comm, counts, 8 * (int64_t)m, 0);
  }
  free(displ);
  if (rc != MPI_SUCCESS) return IMF_MPI_RAISE(rc, "MPI_Allgatherv of partial sums");
  return IMF_OK;
}

imf_status imf_det_sum_rows(MPI_Comm comm, const int64_t *start, const double *per_row, int m,
                            double *out) {
  int size, rank;
  imf_status st = IMF_OK;
  int *counts = NULL;
  double *mine = NULL, *all = NULL;
  int64_t n = 0, total = 0;
  IMF_MPI_TRY(MPI_Comm_size(comm, &size), done);
  IMF_MPI_TRY(MPI_Comm_rank(comm, &rank), done);
  n = start[size];
  /* Rank r contributes, for each chunk meeting its block, one vector (the chunk's partial) if
   * the block holds the whole chunk, else one vector per row of the overlap; every rank can
   * compute every rank's layout from start[]. The last chunk ends at n. */
#define CHUNK_END(c) ((c) * IMF_DET_CHUNK + IMF_DET_CHUNK < n ? (c) * IMF_DET_CHUNK + IMF_DET_CHUNK : n)
  counts = malloc((size_t)size * sizeof(int));
  if (!counts) IMF_TRY(IMF_RAISE(IMF_ERR_NOMEM, "out of memory"), done);
  for (int r = 0; r < size; r++) {
    int64_t a = start[r], b = start[r + 1], cnt = 0;
    for (int64_t c = a / IMF_DET_CHUNK; a < b && c * IMF_DET_CHUNK < b; c++) {
      int64_t cs = c * IMF_DET_CHUNK, ce = CHUNK_END(c);
      if (cs >= a && ce <= b) cnt += 1;
      else cnt += (ce < b ? ce : b) - (cs > a ? cs : a);
    }
    counts[r] = (int)cnt;
  }
  for (int r = 0; r < size; r++) total += counts[r];
  IMF_TRY(imf_alloc(&mine, (size_t)(counts[rank] ? counts[rank] : 1) * (size_t)m, sizeof(double)), done);
  IMF_TRY(imf_alloc(&all, (size_t)(total ? total : 1) * (size_t)m, sizeof(double)), done);
  {
    int64_t a = start[rank], b = start[rank + 1], v = 0;
    for (int64_t c = a / IMF_DET_CHUNK; a < b && c * IMF_DET_CHUNK < b; c++) {
      int64_t cs = c * IMF_DET_CHUNK, ce = CHUNK_END(c);
      if (cs >= a && ce <= b) {
        double *acc = mine + v * m;
        for (int64_t row = cs; row < ce; row++)
          for (int j = 0; j < m; j++) acc[j] += per_row[(row - a) * m + j];
        v++;
      } else {
        int64_t lo = cs > a ? cs : a, hi = ce < b ? ce : b;
        memcpy(mine + v * m, per_row + (lo - a) * m, (size_t)(hi - lo) * (size_t)m * sizeof(double));
        v += hi - lo;
      }
    }
  }
  if (size > 1) IMF_TRY(gather_vectors(comm, mine, counts[rank], counts, all, m), done);
  else memcpy(all, mine, (size_t)total * (size_t)m * sizeof(double));
  {
    /* Decode in row order: per-rank cursors into `all`. */
    int64_t *cur = malloc((size_t)size * sizeof(int64_t));
    double *acc = malloc((size_t)m * sizeof(double));
    if (!cur || !acc) {
      free(cur);
      free(acc);
      st = IMF_RAISE(IMF_ERR_NOMEM, "out of memory");
      goto done;
    }
    int64_t d = 0;
    for (int r = 0; r < size; r++) {
      cur[r] = d;
      d += counts[r];
    }
    for (int j = 0; j < m; j++) out[j] = 0.0;
    int r = 0;
    for (int64_t c = 0; c * IMF_DET_CHUNK < n; c++) {
      int64_t cs = c * IMF_DET_CHUNK, ce = CHUNK_END(c);
      while (start[r + 1] <= cs) r++;
      if (ce <= start[r + 1]) { /* whole chunk on rank r: its partial */
        const double *v = all + cur[r] * m;
        for (int j = 0; j < m; j++) out[j] += v[j];
        cur[r]++;
        continue;
      }
      for (int j = 0; j < m; j++) acc[j] = 0.0;
      for (int64_t row = cs; row < ce; row++) {
        while (start[r + 1] <= row) r++;
        const double *v = all + cur[r] * m;
        for (int j = 0; j < m; j++) acc[j] += v[j];
        cur[r]++;
      }
      for (int j = 0; j < m; j++) out[j] += acc[j];
    }
    free(cur);
    free(acc);
  }
#undef CHUNK_END
done:
  free(counts);
  imf_free(&mine);
  imf_free(&all);
  return st;
}

imf_status imf_det_sum_chunks(MPI_Comm comm, int64_t nrows, int m, imf_chunk_fn fn, void *ctx,
                              double *out) {
  int size, rank;
  imf_status st = IMF_OK;
  int *counts = NULL;
  double *mine = NULL, *all = NULL;
  int64_t nchunks = (nrows + IMF_DET_CHUNK - 1) / IMF_DET_CHUNK, c0 = 0;
  IMF_MPI_TRY(MPI_Comm_size(comm, &size), done);
  IMF_MPI_TRY(MPI_Comm_rank(comm, &rank), done);
  if (nchunks > INT_MAX) IMF_TRY(IMF_RAISE(IMF_ERR_NOMEM, "too many row chunks"), done);
  counts = malloc((size_t)size * sizeof(int));
  if (!counts) IMF_TRY(IMF_RAISE(IMF_ERR_NOMEM, "out of memory"), done);
  /* Rank r evaluates chunks [nchunks * r / size, nchunks * (r+1) / size). */
  for (int r = 0; r < size; r++)
    counts[r] = (int)(nchunks * (r + 1) / size - nchunks * r / size);
  c0 = nchunks * rank / size;
  IMF_TRY(imf_alloc(&mine, (size_t)(counts[rank] ? counts[rank] : 1) * (size_t)m, sizeof(double)), done);
  IMF_TRY(imf_alloc(&all, (size_t)(nchunks ? nchunks : 1) * (size_t)m, sizeof(double)), done);
  for (int64_t c = 0; c < counts[rank]; c++) {
    int64_t lo = (c0 + c) * IMF_DET_CHUNK, hi = lo + IMF_DET_CHUNK < nrows ? lo + IMF_DET_CHUNK : nrows;
    fn(ctx, lo, hi, mine + c * m);
  }
  if (size > 1) IMF_TRY(gather_vectors(comm, mine, counts[rank], counts, all, m), done);
  else memcpy(all, mine, (size_t)nchunks * (size_t)m * sizeof(double));
  for (int j = 0; j < m; j++) out[j] = 0.0;
  for (int64_t c = 0; c < nchunks; c++)
    for (int j = 0; j < m; j++) out[j] += all[c * m + j];
done:
  free(counts);
  imf_free(&mine);
  imf_free(&all);
  return st;
}

/* The last row of chunk c of n rows. */
static int64_t chunk_last(int64_t c, int64_t n) { return (c + 1) * IMF_DET_CHUNK < n ? (c + 1) * IMF_DET_CHUNK - 1 : n - 1; }

/* Chunks whose last row lies in [a, b): those the owner of [a, b) finishes. */
static int finished_chunks(int64_t a, int64_t b, int64_t n) {
  int cnt = 0;
  for (int64_t c = a / IMF_DET_CHUNK; a < b && c * IMF_DET_CHUNK < b; c++) cnt += chunk_last(c, n) < b;
  return cnt;
}

imf_status imf_det_sum_blocks(MPI_Comm comm, const int64_t *start, int m, imf_chunk_fn fn, void *ctx,
                              double *out) {
  int size = 1, rank = 0;
  imf_status st = IMF_OK;
  int *counts = NULL, nmine = 0;
  double *mine = NULL, *all = NULL, *left = NULL, *right = NULL;
  MPI_Request req = MPI_REQUEST_NULL;
  int64_t total = 0;
  IMF_MPI_TRY(MPI_Comm_size(comm, &size), done);
  IMF_MPI_TRY(MPI_Comm_rank(comm, &rank), done);
  const int64_t n = start[size], a = start[rank], b = start[rank + 1];
  IMF_TRY(imf_alloc(&counts, (size_t)size, sizeof *counts), done);
  for (int r = 0; r < size; r++) total += counts[r] = finished_chunks(start[r], start[r + 1], n);
  IMF_TRY(imf_alloc(&mine, (size_t)(counts[rank] ? counts[rank] : 1) * (size_t)m, sizeof(double)), done);
  IMF_TRY(imf_alloc(&all, (size_t)(total ? total : 1) * (size_t)m, sizeof(double)), done);
  IMF_TRY(imf_alloc(&left, (size_t)m, sizeof(double)), done);
  IMF_TRY(imf_alloc(&right, (size_t)m, sizeof(double)), done);
  if (a < b) {
    const int64_t c0 = a / IMF_DET_CHUNK, c1 = (b - 1) / IMF_DET_CHUNK;
    const int from_left = c0 * IMF_DET_CHUNK < a, to_right = chunk_last(c1, n) >= b;
    /* the chunks after the first, so that the sum sent right does not wait for the left one */
    for (int64_t c = c0 + 1; c <= c1; c++) {
      const int64_t hi = chunk_last(c, n) < b ? chunk_last(c, n) + 1 : b;
      double *acc = hi < b || !to_right ? mine + (size_t)(c - c0) * (size_t)m : right; /* finished here? */
      fn(ctx, c * IMF_DET_CHUNK, hi, acc);
    }
    if (c1 > c0 && to_right)
      IMF_MPI_TRY(MPI_Isend(right, m, MPI_DOUBLE, imf_block_owner(start, size, b), 7401, comm, &req), done);
    /* the first chunk: continued from the block on the left, or started here */
    if (from_left)
      IMF_MPI_TRY(MPI_Recv(left, m, MPI_DOUBLE, imf_block_owner(start, size, a - 1), 7401, comm, MPI_STATUS_IGNORE),
                  done);
    const int64_t hi0 = chunk_last(c0, n) < b ? chunk_last(c0, n) + 1 : b;
    fn(ctx, a, hi0, left);
    if (hi0 < b || !to_right) memcpy(mine, left, (size_t)m * sizeof(double)); /* finished here */
    else IMF_MPI_TRY(MPI_Send(left, m, MPI_DOUBLE, imf_block_owner(start, size, b), 7401, comm), done);
    nmine = counts[rank];
  }
  if (size > 1) IMF_TRY(gather_vectors(comm, mine, nmine, counts, all, m), done);
  else memcpy(all, mine, (size_t)total * (size_t)m * sizeof(double));
  for (int j = 0; j < m; j++) out[j] = 0.0;
  for (int64_t c = 0; c < total; c++)
    for (int j = 0; j < m; j++) out[j] += all[c * m + j];
done:
  if (req != MPI_REQUEST_NULL) MPI_Wait(&req, MPI_STATUS_IGNORE);
  imf_free(&counts);
  imf_free(&mine);
  imf_free(&all);
  imf_free(&left);
  imf_free(&right);
  return st;
}
