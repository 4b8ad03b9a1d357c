/* ingest_ids.c - numbering for ingest: the local ids every rank interned while parsing become
 * the store's global indices, in order of their first appearance in the file (the same for any
 * rank count), and ids the cleaning filters emptied are dropped again (compaction).
 *
 * Each rank sends the ids the store does not know, with the line of their first appearance;
 * rank 0 orders them by that line, every rank inserts the list in the same order into its
 * replicated map, and rank 0 sends each rank the indices of its ids back. The parse is
 * ingest_read.c's, the driver ingest.c's; the shared context is ingest_impl.h. */
#include "error.h"
#include "ingest_impl.h"

#include <stdlib.h>
#include <string.h>

/* 16 bytes: rank 0 holds one per new id per rank that saw it, twice while merging (3.2M of them
 * for a 1 GB file on 2 ranks: with 32-byte entries, numbering was the peak of rank 0's memory).
 * The id's length is in the gathered header before it; its place in the gathered order, to send
 * the index back, is found by walking the gathered buffer, where the index is left. */
typedef struct {
  int64_t line;
  int64_t off; /* into the gathered buffer: the id's bytes, after its 16-byte header */
} newid_t;

static int64_t newid_len(const char *recvbuf, const newid_t *x) {
  int64_t hdr[2];
  memcpy(hdr, recvbuf + x->off - 16, 16);
  return hdr[1];
}

static int cmp_newid(const void *a, const void *b) {
  const newid_t *x = a, *y = b;
  return (x->line > y->line) - (x->line < y->line);
}

/* Order the gathered new ids by line when each rank's list (nseg consecutive runs of the given
 * lengths) is in line order already, as every rank's first appearances are: pairwise merges,
 * O(n log P), instead of a sort of the whole list (for 2.2M new ids of a 1 GB file on 2 ranks
 * qsort took a large part of the numbering, which every rank waits for). Lines are unique
 * (a line brings at most one new id per map), so the order is the same as the sort's.
 * Returns 0, having changed nothing, when a run is not in order or memory is short. */
static int merge_newid_runs(newid_t *ids, int64_t n, const int *lens, int nseg) {
  int64_t *bound = malloc(((size_t)nseg + 1) * sizeof *bound);
  newid_t *tmp = malloc(((size_t)n + 1) * sizeof *tmp);
  if (!bound || !tmp) {
    free(bound);
    free(tmp);
    return 0;
  }
  bound[0] = 0;
  for (int r = 0; r < nseg; r++) bound[r + 1] = bound[r] + lens[r];
  int ok = bound[nseg] == n;
  for (int r = 0; ok && r < nseg; r++)
    for (int64_t j = bound[r] + 1; ok && j < bound[r + 1]; j++) ok = ids[j - 1].line < ids[j].line;
  newid_t *a = ids, *b = tmp;
  while (ok && nseg > 1) {
    int w = 0;
    for (int r = 0; r < nseg; r += 2) {
      int64_t lo = bound[r], mid = bound[r + 1], hi = r + 1 < nseg ? bound[r + 2] : mid, i = lo, j = mid, k = lo;
      while (i < mid && j < hi) b[k++] = a[i].line < a[j].line ? a[i++] : a[j++];
      while (i < mid) b[k++] = a[i++];
      while (j < hi) b[k++] = a[j++];
      bound[w++] = lo;
      bound[w] = hi;
    }
    nseg = w;
    newid_t *t = a;
    a = b;
    b = t;
  }
  if (ok && a != ids) memcpy(ids, a, (size_t)n * sizeof *ids);
  free(bound);
  free(tmp);
  return ok;
}

/* The state of one numbering (number_ids): rank 0's gather buffers and the broadcast list. */
typedef struct {
  ingest_ctx *c;
  int root;
  int32_t *map, *gidx, *mygidx;
  char *sendbuf, *recvbuf, *blob;
  int *rcounts, *rdispls, *icounts, *idispls;
  newid_t *ids;
  int64_t *offs;
  int mine, myn;          /* this rank's serialised bytes and number of unknown ids */
  int64_t total, itotal;  /* rank 0: gathered bytes and ids */
  int64_t nlist, blob_len; /* the ordered list every rank inserts */
} numbering;

static void numbering_free(numbering *n) {
  imf_free(&n->map);
  imf_free(&n->gidx);
  imf_free(&n->mygidx);
  imf_free(&n->sendbuf);
  imf_free(&n->recvbuf);
  imf_free(&n->rcounts);
  imf_free(&n->rdispls);
  imf_free(&n->icounts);
  imf_free(&n->idispls);
  imf_free(&n->ids);
  imf_free(&n->offs);
  imf_free(&n->blob);
}

/* One rank: local order is first-appearance order, so the ids are inserted as they come. */
static imf_status number_one_rank(imf_idmap *local, imf_idmap *global, int32_t *map, int64_t nl) {
  imf_status st = IMF_OK;
  int64_t *idx = NULL, nadded = 0;
  IMF_CHECK(imf_alloc_nz(&idx, (size_t)nl + 1, sizeof *idx));
  st = imf_idmap_insert_map(global, local, idx, &nadded);
  for (int64_t j = 0; st == IMF_OK && j < nl; j++) map[j] = (int32_t)idx[j];
  imf_free(&idx);
  return st;
}

/* map[j]: the global index of each local id the store knows, -1 for the others, which are
 * serialised into sendbuf as [int64 line][int64 len][bytes]. */
static imf_status serialise_unknown(numbering *n, imf_idmap *local, const int64_t *first, imf_idmap *global,
                                    int64_t nl) {
  int32_t *map = n->map;
  size_t bytes = 0;
  int64_t nunk = 0;
  for (int64_t j = 0; j < nl; j++) {
    size_t len;
    const char *s = imf_idmap_get(local, j, &len);
    int64_t g = imf_idmap_find(global, s, len);
    map[j] = (int32_t)g;
    if (g < 0) {
      bytes += 16 + len;
      nunk++;
    }
  }
  if (bytes > (size_t)INT32_MAX)
    IMF_FAIL(IMF_ERR_INPUT, "%s: too many new ids on one rank (%zu bytes)", n->c->path, bytes);
  IMF_CHECK(imf_alloc_nz(&n->sendbuf, bytes + 1, 1));
  IMF_CHECK(imf_alloc_nz(&n->mygidx, (size_t)nunk + 1, sizeof *n->mygidx));
  size_t o = 0;
  for (int64_t j = 0; j < nl; j++) {
    if (map[j] >= 0) continue;
    size_t len;
    const char *s = imf_idmap_get(local, j, &len);
    int64_t hdr[2] = {first[j], (int64_t)len};
    memcpy(n->sendbuf + o, hdr, 16);
    memcpy(n->sendbuf + o + 16, s, len);
    o += 16 + len;
  }
  n->mine = (int)bytes;
  n->myn = (int)nunk;
  return IMF_OK;
}

/* Rank 0 gathers every rank's serialised unknown ids (recvbuf, in rank order). */
static imf_status gather_unknown(numbering *n) {
  ingest_ctx *c = n->c;
  imf_status st = IMF_OK;
  int mine = n->mine, myn = n->myn;
  if (n->root) {
    IMF_CHECK(imf_alloc(&n->rcounts, (size_t)c->size, sizeof *n->rcounts));
    IMF_CHECK(imf_alloc(&n->rdispls, (size_t)c->size, sizeof *n->rdispls));
    IMF_CHECK(imf_alloc(&n->icounts, (size_t)c->size, sizeof *n->icounts));
    IMF_CHECK(imf_alloc(&n->idispls, (size_t)c->size, sizeof *n->idispls));
  }
  int *rcounts = n->rcounts, *rdispls = n->rdispls, *icounts = n->icounts, *idispls = n->idispls;
  IMF_CHECK(imf_agree(c->comm, st));
  IMF_MPI(MPI_Gather(&mine, 1, MPI_INT, rcounts, 1, MPI_INT, 0, c->comm));
  IMF_MPI(MPI_Gather(&myn, 1, MPI_INT, icounts, 1, MPI_INT, 0, c->comm));
  int64_t total = 0, itotal = 0;
  if (n->root) {
    for (int r = 0; r < c->size; r++) {
      if (total + rcounts[r] > INT32_MAX) {
        st = IMF_RAISE(IMF_ERR_INPUT, "%s: more than 2 GiB of new ids in one batch", c->path);
        break;
      }
      rdispls[r] = (int)total;
      total += rcounts[r];
      idispls[r] = (int)itotal;
      itotal += icounts[r];
    }
    if (st == IMF_OK) st = imf_alloc_nz(&n->recvbuf, (size_t)total + 1, 1);
    if (st == IMF_OK) st = imf_alloc_nz(&n->ids, (size_t)itotal + 1, sizeof *n->ids);
    if (st == IMF_OK) st = imf_alloc_nz(&n->gidx, (size_t)itotal + 1, sizeof *n->gidx);
  }
  n->total = total;
  n->itotal = itotal;
  IMF_CHECK(imf_agree(c->comm, st));
  char *sendbuf = n->sendbuf, *recvbuf = n->recvbuf;
  IMF_MPI(MPI_Gatherv(sendbuf, mine, MPI_CHAR, recvbuf, rcounts, rdispls, MPI_CHAR, 0, c->comm));
  imf_free(&n->sendbuf);
  return IMF_OK;
}

/* Rank 0: the gathered ids in order of first line (an id seen on several ranks appears once
 * per rank; the list keeps them all, the map's insert keeps the first), and their bytes. */
static void order_new_ids(numbering *n) {
  const char *recvbuf = n->recvbuf;
  newid_t *ids = n->ids;
  int64_t k = 0;
  int sorted = 1;
  for (int64_t o = 0; o < n->total && k < n->itotal;) {
    int64_t hdr[2];
    memcpy(hdr, recvbuf + o, 16);
    ids[k].line = hdr[0];
    ids[k].off = o + 16;
    if (k > 0 && hdr[0] < ids[k - 1].line) sorted = 0;
    k++;
    o += 16 + hdr[1];
  }
  if (!sorted && !merge_newid_runs(ids, k, n->icounts, n->c->size)) qsort(ids, (size_t)k, sizeof *ids, cmp_newid);
  n->nlist = k;
  for (int64_t j = 0; j < k; j++) n->blob_len += newid_len(recvbuf, &ids[j]);
}

/* Rank 0 broadcasts the ordered list: the ids' bytes (blob) and their offsets into it. */
static imf_status bcast_new_ids(numbering *s) {
  ingest_ctx *c = s->c;
  int64_t hdr2[2] = {s->nlist, s->blob_len};
  IMF_MPI(MPI_Bcast(hdr2, 2, MPI_INT64_T, 0, c->comm));
  const int64_t nlist = hdr2[0], blob_len = hdr2[1];
  s->nlist = nlist;
  s->blob_len = blob_len;
  IMF_CHECK(imf_alloc_nz(&s->offs, (size_t)nlist + 1, sizeof *s->offs));
  IMF_CHECK(imf_alloc_nz(&s->blob, (size_t)blob_len + 1, 1));
  int64_t *offs = s->offs;
  char *blob = s->blob;
  offs[0] = 0;
  if (s->root)
    for (int64_t j = 0; j < nlist; j++) {
      const int64_t len = newid_len(s->recvbuf, &s->ids[j]);
      memcpy(blob + offs[j], s->recvbuf + s->ids[j].off, (size_t)len);
      offs[j + 1] = offs[j] + len;
    }
  if (nlist) {
    IMF_MPI(MPI_Bcast(offs, (int)(nlist + 1), MPI_INT64_T, 0, c->comm));
    for (int64_t o = 0; o < blob_len; o += (1 << 30)) {
      int n = (int)((blob_len - o) < (1 << 30) ? (blob_len - o) : (1 << 30));
      IMF_MPI(MPI_Bcast(blob + o, n, MPI_CHAR, 0, c->comm));
    }
  }
  return IMF_OK;
}

/* Every rank inserts the list into its replicated map, in the same order at the same time, so
 * the maps agree and no rank waits for another's inserts; rank 0 then sends each rank the
 * indices of its ids in the order it sent them, so no rank looks an id up twice. */
static imf_status insert_new_ids(numbering *n, imf_idmap *global, int64_t nl) {
  ingest_ctx *c = n->c;
  imf_status st = IMF_OK;
  char *recvbuf = n->recvbuf;
  {
    int64_t *idx = NULL, nadded = 0;
    st = imf_idmap_reserve(global, n->nlist, n->blob_len);
    if (st == IMF_OK) st = imf_alloc_nz(&idx, (size_t)n->nlist + 1, sizeof *idx);
    if (st == IMF_OK) st = imf_idmap_insert_list(global, n->blob, n->offs, n->nlist, idx, &nadded);
    if (st == IMF_OK && n->root) /* the line is no longer needed: the index takes its place */
      for (int64_t j = 0; j < n->nlist; j++) memcpy(recvbuf + n->ids[j].off - 16, &idx[j], sizeof *idx);
    imf_free(&idx);
  }
  if (n->root && st == IMF_OK) /* the indices, in the gathered order */
    for (int64_t o = 0, k = 0; o < n->total && k < n->itotal; k++) {
      int64_t hdr[2];
      memcpy(hdr, recvbuf + o, 16);
      n->gidx[k] = (int32_t)hdr[0];
      o += 16 + hdr[1];
    }
  IMF_CHECK(imf_agree(c->comm, st));
  int32_t *gidx = n->gidx, *mygidx = n->mygidx;
  int *icounts = n->icounts, *idispls = n->idispls, myn = n->myn;
  IMF_MPI(MPI_Scatterv(gidx, icounts, idispls, MPI_INT32_T, mygidx, myn, MPI_INT32_T, 0, c->comm));
  for (int64_t j = 0, k = 0; j < nl; j++)
    if (n->map[j] < 0) n->map[j] = mygidx[k++];
  return IMF_OK;
}

/* Returns in *map_out the global index of every local id (replicated map `global` grows).
 *
 * Each rank interns ids in line order, so its list of unknown ids is already sorted by first
 * line; rank 0 only sorts the gathered lists when they interleave (pieces of a compressed
 * stream), not for byte ranges, where rank r's lines all precede rank r+1's. On one rank
 * nothing is gathered, sorted or broadcast at all. */
static imf_status number_ids(ingest_ctx *c, imf_idmap *local, const int64_t *first, imf_idmap *global,
                             int32_t **map_out) {
  imf_status st = IMF_OK;
  numbering n = {.c = c, .root = c->rank == 0};
  int64_t nl = imf_idmap_size(local);
  IMF_TRY(imf_alloc_nz(&n.map, (size_t)nl + 1, sizeof *n.map), out);
  if (c->size == 1) {
    IMF_TRY(number_one_rank(local, global, n.map, nl), out);
  } else {
    IMF_TRY(serialise_unknown(&n, local, first, global, nl), out);
    IMF_TRY(gather_unknown(&n), out);
    if (n.root) order_new_ids(&n);
    IMF_TRY(bcast_new_ids(&n), out);
    IMF_TRY(insert_new_ids(&n, global, nl), out);
  }
  *map_out = n.map;
  n.map = NULL;
out:
  numbering_free(&n);
  return st;
}

imf_status ingest_number(ingest_ctx *c, imf_idmap *users, imf_idmap *items) {
  imf_status st = IMF_OK;
  int32_t *umap = NULL, *imap = NULL;
  IMF_TRY(number_ids(c, c->lusers, c->ufirst, users, &umap), out);
  IMF_TRY(number_ids(c, c->litems, c->ifirst, items, &imap), out);
  for (int64_t j = 0; j < c->nrec; j++) {
    c->rec[j].user = umap[c->rec[j].user];
    c->rec[j].item = imap[c->rec[j].item];
  }
  imf_free(&umap);
  imf_free(&imap);
  /* the parse's local interning is no longer needed */
  imf_idmap_destroy(&c->lusers);
  imf_idmap_destroy(&c->litems);
  imf_free(&c->du.slot);
  imf_free(&c->di.slot);
  imf_free(&c->ufirst);
  imf_free(&c->ifirst);
out:
  imf_free(&umap);
  imf_free(&imap);
  return st;
}

/* Drop new ids that lost all their ratings to the filters and renumber the rest, preserving
 * order, so every index the store hands out has at least one rating. */
imf_status ingest_compact_ids(ingest_ctx *c, imf_idmap *map, int64_t before, int is_user) {
  int64_t nnew = imf_idmap_size(map) - before;
  if (nnew <= 0) return IMF_OK;
  imf_status st = IMF_OK;
  int64_t *cnt = NULL;
  imf_idlist tail = {0};
  IMF_TRY(imf_alloc(&cnt, (size_t)nnew, sizeof *cnt), done);
  for (int64_t j = 0; j < c->nrec; j++) {
    int32_t v = is_user ? c->rec[j].user : c->rec[j].item;
    if (v >= before) cnt[v - before] = 1;
  }
  IMF_MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, cnt, (int)nnew, MPI_INT64_T, MPI_MAX, c->comm), done);
  int64_t kept = 0;
  for (int64_t j = 0; j < nnew; j++) kept += cnt[j] != 0;
  if (kept == nnew) goto done;
  /* new index of each surviving id (cnt reused as the renumbering) */
  IMF_TRY(imf_idmap_tail(map, before, &tail), done);
  imf_idmap_truncate(map, before);
  for (int64_t j = 0; j < nnew; j++) {
    if (!cnt[j]) {
      cnt[j] = -1;
      continue;
    }
    int64_t idx;
    int added;
    IMF_TRY(imf_idmap_insert(map, tail.blob + tail.off[j], (size_t)(tail.off[j + 1] - tail.off[j]), &idx, &added), done);
    cnt[j] = idx;
  }
  for (int64_t j = 0; j < c->nrec; j++) {
    int32_t *v = is_user ? &c->rec[j].user : &c->rec[j].item;
    if (*v >= before) *v = (int32_t)cnt[*v - before];
  }
done:
  imf_idlist_free(&tail);
  imf_free(&cnt);
  return st;
}
