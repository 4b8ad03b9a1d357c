/* outblock.c - the out-block exchange's plan and its half-sweep exchange (outblock.h).
 *
 * The slots are found with a bitmap over the side's global rows (n/8 bytes, freed once the
 * columns are rewritten) and a per-word prefix count, so rewriting a column is O(1); the plan
 * itself keeps only the slots' global ids and, per other rank, the own rows it asked for, which a
 * half-sweep sends in rounds of about 1 MiB a rank. */
#include "outblock.h"
#include "error.h"
#include "exchange.h"
#include <stdlib.h>
#include <string.h>

struct imf_outblock {
  MPI_Comm comm;          /* the plan's: the ranks, or the nodes' first ranks (not owned) */
  int size, rank;         /* in comm (node mode: nodes, this node; a non-leader has no plan) */
  const imf_layout *l;    /* node mode (one copy of the slots per node); NULL: per rank */
  int64_t lo, hi;         /* the plan's own rows: the rank's block, or the node's */
  int64_t rlo, rhi;       /* the rank's own block */
  int64_t nslots, own_off, rank_off; /* slots; the slot of lo; the slot of rlo */
  int32_t *gid;           /* nslots: slot -> global row, ascending */
  int64_t *scount, *sdispl, *rcount, *rdispl; /* rows, per rank */
  int32_t *sidx;          /* sum(scount): own-block rows to send, grouped by destination */
  int64_t nsend;
  int64_t maxcnt;         /* the most rows any rank of comm sends to or receives from one rank */
};

void imf_outblock_destroy(imf_outblock **pob) {
  if (!pob || !*pob) return;
  imf_outblock *ob = *pob;
  imf_free(&ob->gid);
  imf_free(&ob->scount);
  imf_free(&ob->sdispl);
  imf_free(&ob->rcount);
  imf_free(&ob->rdispl);
  imf_free(&ob->sidx);
  free(ob);
  *pob = NULL;
}

int64_t imf_outblock_nslots(const imf_outblock *ob) { return ob->nslots; }
int64_t imf_outblock_own_off(const imf_outblock *ob) { return ob->rank_off; }
const int32_t *imf_outblock_gids(const imf_outblock *ob) { return ob->gid; }
int64_t imf_outblock_sent_rows(const imf_outblock *ob) { return ob->nsend; }

int64_t imf_outblock_slot(const imf_outblock *ob, int64_t g) {
  int64_t lo = 0, hi = ob->nslots;
  while (lo < hi) {
    int64_t mid = lo + (hi - lo) / 2;
    if (ob->gid[mid] < g) lo = mid + 1;
    else hi = mid;
  }
  return lo < ob->nslots && ob->gid[lo] == g ? lo : -1;
}

/* The slots: the own block and every referenced row, marked in a bitmap (node mode: the union of
 * the node's ranks' bitmaps); the columns rewritten to slots through the bitmap's per-word
 * prefix counts. */
static imf_status find_slots(imf_outblock *ob, int64_t n, imf_csr *const *cols, int ncols) {
  const int64_t nw = (n + 63) / 64;
  uint64_t *bits = NULL;
  int64_t *before = NULL;
  imf_status st = imf_alloc(&bits, (size_t)(nw ? nw : 1), sizeof *bits);
  if (st == IMF_OK) st = imf_alloc(&before, (size_t)(nw ? nw : 1), sizeof *before);
  if (st != IMF_OK) goto done;
  for (int64_t g = ob->rlo; g < ob->rhi; g++) bits[g / 64] |= (uint64_t)1 << (g % 64);
  for (int c = 0; c < ncols; c++)
    for (int64_t j = 0; j < cols[c]->nnz; j++) {
      const int64_t g = cols[c]->idx[j];
      if (g < 0 || g >= n) IMF_TRY(IMF_RAISE(IMF_ERR_RUNTIME, "out-block plan: column %lld outside [0, %lld)",
                                             (long long)g, (long long)n), done);
      bits[g / 64] |= (uint64_t)1 << (g % 64);
    }
  if (ob->l && nw > 0) { /* a row one rank of the node references, the node holds */
    int e = MPI_Allreduce(MPI_IN_PLACE, bits, (int)nw, MPI_UINT64_T, MPI_BOR, ob->l->node_comm);
    if (e != MPI_SUCCESS) IMF_TRY(IMF_MPI_RAISE(e, "MPI_Allreduce of the node's rows"), done);
  }
  int64_t cnt = 0;
  for (int64_t w = 0; w < nw; w++) {
    before[w] = cnt;
    cnt += __builtin_popcountll(bits[w]);
  }
  ob->nslots = cnt;
  IMF_TRY(imf_alloc(&ob->gid, (size_t)(cnt ? cnt : 1), sizeof *ob->gid), done);
  for (int64_t w = 0, s = 0; w < nw; w++)
    for (uint64_t x = bits[w]; x; x &= x - 1) ob->gid[s++] = (int32_t)(w * 64 + __builtin_ctzll(x));
#define SLOT(g) (before[(g) / 64] + __builtin_popcountll(bits[(g) / 64] & (((uint64_t)1 << ((g) % 64)) - 1)))
  ob->own_off = ob->lo < n ? SLOT(ob->lo) : cnt;
  ob->rank_off = ob->rlo < n ? SLOT(ob->rlo) : cnt;
  for (int c = 0; c < ncols; c++)
    for (int64_t j = 0; j < cols[c]->nnz; j++) cols[c]->idx[j] = (int32_t)SLOT((int64_t)cols[c]->idx[j]);
#undef SLOT
done:
  imf_free(&bits);
  imf_free(&before);
  return st;
}

/* Which of its own rows each rank sends to each other rank: every rank asks each owner for its
 * slots in that owner's block (they are consecutive: slots are in global order). */
static imf_status plan_sends(imf_outblock *ob, const int64_t *start) {
  const int P = ob->size;
  if (ob->comm == MPI_COMM_NULL) return IMF_OK; /* node mode, not the node's first rank */
  imf_status st = IMF_OK;
  IMF_CHECK(imf_alloc(&ob->scount, (size_t)P, sizeof(int64_t)));
  IMF_CHECK(imf_alloc(&ob->sdispl, (size_t)P, sizeof(int64_t)));
  IMF_CHECK(imf_alloc(&ob->rcount, (size_t)P, sizeof(int64_t)));
  IMF_CHECK(imf_alloc(&ob->rdispl, (size_t)P, sizeof(int64_t)));
  for (int64_t s = 0, r = 0; s < ob->nslots; s++) {
    while (start[r + 1] <= ob->gid[s]) r++;
    if (r != ob->rank) ob->rcount[r]++;
  }
  for (int r = 0, s = 0; r < P; r++) { /* where r's rows start among the slots */
    while (s < ob->nslots && ob->gid[s] < start[r]) s++;
    ob->rdispl[r] = s;
  }
  IMF_MPI(MPI_Alltoall(ob->rcount, 1, MPI_INT64_T, ob->scount, 1, MPI_INT64_T, ob->comm));
  for (int r = 0; r < P; r++) {
    ob->sdispl[r] = ob->nsend;
    ob->nsend += ob->scount[r];
  }
  IMF_CHECK(imf_alloc(&ob->sidx, (size_t)(ob->nsend ? ob->nsend : 1), sizeof *ob->sidx));
  st = imf_alltoallv64(ob->comm, ob->gid, ob->rcount, ob->rdispl, ob->sidx, ob->scount, ob->sdispl, MPI_INT32_T);
  for (int64_t j = 0; st == IMF_OK && j < ob->nsend; j++) {
    if (ob->sidx[j] < ob->lo || ob->sidx[j] >= ob->hi)
      st = IMF_RAISE(IMF_ERR_RUNTIME, "out-block plan: row %d asked of the wrong owner", (int)ob->sidx[j]);
    ob->sidx[j] -= (int32_t)ob->lo;
  }
  for (int r = 0; r < P; r++) {
    ob->maxcnt = ob->scount[r] > ob->maxcnt ? ob->scount[r] : ob->maxcnt;
    ob->maxcnt = ob->rcount[r] > ob->maxcnt ? ob->rcount[r] : ob->maxcnt;
  }
  IMF_MPI(MPI_Allreduce(MPI_IN_PLACE, &ob->maxcnt, 1, MPI_INT64_T, MPI_MAX, ob->comm));
  return st;
}

imf_status imf_outblock_create(MPI_Comm comm, const int64_t *start, imf_csr *const *cols, int ncols,
                               const imf_layout *l, imf_outblock **out) {
  *out = NULL;
  imf_outblock *ob = calloc(1, sizeof *ob);
  int64_t *nstart = NULL;
  imf_status st = ob ? IMF_OK : IMF_RAISE(IMF_ERR_NOMEM, "out of memory");
  int size = 1, rank = 0;
  MPI_Comm_size(comm, &size);
  MPI_Comm_rank(comm, &rank);
  if (st == IMF_OK && l && !l->contiguous)
    st = IMF_RAISE(IMF_ERR_USAGE, "node-shared out-block exchange: the nodes' ranks are not consecutive");
  if (st == IMF_OK) {
    ob->l = l;
    ob->rlo = start[rank];
    ob->rhi = start[rank + 1];
    ob->comm = l ? l->leaders : comm;
    ob->size = l ? l->nnodes : size;
    ob->rank = l ? l->node : rank;
    ob->lo = l ? start[l->node_start[l->node]] : ob->rlo;
    ob->hi = l ? start[l->node_start[l->node + 1]] : ob->rhi;
    st = find_slots(ob, start[size], cols, ncols);
  }
  if (st == IMF_OK && l) st = imf_alloc(&nstart, (size_t)l->nnodes + 1, sizeof *nstart);
  for (int j = 0; st == IMF_OK && l && j <= l->nnodes; j++) nstart[j] = start[l->node_start[j]];
  st = imf_agree(comm, st);
  if (st == IMF_OK) st = imf_agree(comm, plan_sends(ob, l ? nstart : start));
  imf_free(&nstart);
  if (st != IMF_OK) imf_outblock_destroy(&ob);
  *out = ob;
  return st;
}

void imf_outblock_restore(const imf_outblock *ob, imf_csr *const *cols, int ncols) {
  for (int c = 0; c < ncols; c++)
    for (int64_t j = 0; j < cols[c]->nnz; j++) cols[c]->idx[j] = ob->gid[cols[c]->idx[j]];
}

/* Bytes of rows a rank sends in one round of the exchange. IMF_EXCHANGE_ROUND overrides it
 * (tests use a tiny one to run many rounds on small data). */
static int64_t round_bytes(void) {
  const char *e = getenv("IMF_EXCHANGE_ROUND");
  const long long v = e ? atoll(e) : 0;
  return v > 0 ? (int64_t)v : (int64_t)1 << 20;
}

/* The asked-for own rows go out in rounds: in round t, rows [t q, (t + 1) q) of each pair's run,
 * which the receiver places at the same offset of that sender's run of slots. A whole copy of
 * them was the largest transient of a sweep (docs/SCALING.md). */
static imf_status send_rounds(const imf_outblock *ob, const float *from, float *X, int w) {
  const size_t ww = (size_t)w;
  const int P = ob->size;
  int64_t q = round_bytes() / (4 * (int64_t)w * P);
  if (q < 1) q = 1;
  const int64_t rounds = (ob->maxcnt + q - 1) / q;
  float *sbuf = NULL;
  int64_t *cnt = NULL, *sd = NULL, *rc = NULL, *rd = NULL;
  imf_status st = imf_alloc(&sbuf, (size_t)(q * P < ob->nsend ? q * P : ob->nsend ? ob->nsend : 1) * ww, sizeof(float));
  if (st == IMF_OK) st = imf_alloc(&cnt, (size_t)P, sizeof *cnt);
  if (st == IMF_OK) st = imf_alloc(&sd, (size_t)P, sizeof *sd);
  if (st == IMF_OK) st = imf_alloc(&rc, (size_t)P, sizeof *rc);
  if (st == IMF_OK) st = imf_alloc(&rd, (size_t)P, sizeof *rd);
  st = imf_agree(ob->comm, st); /* every rank of comm runs the rounds, or none does */
  for (int64_t t = 0; st == IMF_OK && t < rounds; t++) {
    int64_t ns = 0;
    for (int r = 0; r < P; r++) {
      const int64_t a = t * q;
      cnt[r] = ob->scount[r] > a ? (ob->scount[r] - a < q ? ob->scount[r] - a : q) : 0;
      rc[r] = ob->rcount[r] > a ? (ob->rcount[r] - a < q ? ob->rcount[r] - a : q) : 0;
      rd[r] = ob->rdispl[r] + a;
      sd[r] = ns;
      for (int64_t j = 0; j < cnt[r]; j++)
        memcpy(sbuf + (size_t)(ns + j) * ww, from + (size_t)ob->sidx[ob->sdispl[r] + a + j] * ww, ww * sizeof(float));
      ns += cnt[r];
    }
    st = ob->l ? imf_alltoallv_rows_leaders(ob->l, sbuf, cnt, sd, X, rc, rd, w)
               : imf_alltoallv_rows(ob->comm, sbuf, cnt, sd, X, rc, rd, w);
  }
  imf_free(&sbuf);
  imf_free(&cnt);
  imf_free(&sd);
  imf_free(&rc);
  imf_free(&rd);
  return st;
}

imf_status imf_outblock_exchange(const imf_outblock *ob, const imf_shared_seg *seg, const float *mine, float *X,
                                  int w) {
  const size_t ww = (size_t)w;
  if (ob->l && !seg) IMF_FAIL(IMF_ERR_USAGE, "node-shared out-block exchange without the node's segment");
  /* the rank's own rows into their slots (node mode: in the node's copy), unless solved there */
  if (ob->rhi > ob->rlo && mine != X + (size_t)ob->rank_off * ww)
    memcpy(X + (size_t)ob->rank_off * ww, mine, (size_t)(ob->rhi - ob->rlo) * ww * sizeof(float));
  if (ob->l) IMF_CHECK(imf_layout_node_sync(ob->l, seg));
  if (ob->comm == MPI_COMM_NULL || (ob->l && ob->size == 1)) /* not a leader, or one node */
    return ob->l ? imf_layout_node_sync(ob->l, seg) : IMF_OK;
  /* the asked-for own rows: from mine (per rank), or from the node's run of slots (node mode) */
  IMF_CHECK(send_rounds(ob, ob->l ? X + (size_t)ob->own_off * ww : mine, X, w));
  return ob->l ? imf_layout_node_sync(ob->l, seg) : IMF_OK;
}
