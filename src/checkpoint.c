/* checkpoint.c - model checkpoints on parallel HDF5 (checkpoint.h).
 *
 * Writing: every rank writes its own contiguous block of rows of each factor array with
 * collective MPI-IO (of a replicated model, the even split, only to share the I/O; of a block
 * model, model.h, the block it holds, so that no rank needs the whole model); small arrays
 * (ids, history, BPMF hyperparameters) come from rank 0 while the others take part with empty
 * selections. The file is the same whichever form the model had, content digest included. The
 * file is written to PATH.tmp and renamed over PATH only once complete and synced, so a kill
 * leaves the previous checkpoint in place.
 *
 * Reading: rank 0 first opens the file serially and checks its attributes (so a missing,
 * foreign, truncated or newer file gives one clear message before anyone allocates), then all
 * ranks read their blocks collectively and allgather them. Rank 0 recomputes the content
 * digest over everything read; a mismatch fails the read on every rank, so garbage factors are
 * never returned.
 *
 * Arrays move in rounds of at most io_chunk bytes per rank and call: HDF5 and MPI count in int
 * in places, and this keeps arrays past 2^31 bytes (or elements) working.
 *
 * This file: the arrays, the write and the read; the header and digest are in
 * checkpoint_header.c, the EASE state in checkpoint_ease.c (checkpoint_impl.h, private). */
#include "checkpoint_impl.h"
#include "error.h"
#include "exchange.h"
#include "fsio.h"
#include "log.h"
#include "modelblock.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_IO_CHUNK ((int64_t)1 << 30)
static int64_t io_chunk = DEFAULT_IO_CHUNK;

void imf_checkpoint_set_io_chunk(int64_t bytes) { io_chunk = bytes > 0 ? bytes : DEFAULT_IO_CHUNK; }
int64_t ckpt_io_chunk(void) { return io_chunk; }

void imf_ckpt_meta_free(imf_ckpt_meta *meta) {
  if (!meta) return;
  free(meta->config);
  imf_idlist_free(&meta->users);
  imf_idlist_free(&meta->items);
  memset(meta, 0, sizeof *meta);
}

void imf_ckpt_info_free(imf_ckpt_info *info) {
  if (!info) return;
  free(info->config);
  memset(info, 0, sizeof *info);
}


/* Which rows of an array a rank writes (and reads): its block, or everything on rank 0. A block
 * is the even split of the rows, unless the ranks' blocks start[] of a block model are given. */
typedef enum { OWN_BLOCK, OWN_ROOT } owner;


static void own_rows(const io_ctx *c, owner own, const int64_t *start, int r, int64_t n, int64_t *lo,
                     int64_t *hi) {
  if (start) {
    *lo = start[r];
    *hi = start[r + 1];
  } else if (own == OWN_ROOT) {
    *lo = 0;
    *hi = r == 0 ? n : 0;
  } else {
    *lo = n * r / c->size;
    *hi = n * (r + 1) / c->size;
  }
}

/* Rows per round and number of rounds: the same on every rank (computed from n or from every
 * rank's block, not from the rank's own share), since each round is one collective call. */
static void rounds_of(const io_ctx *c, owner own, const int64_t *start, int64_t n, size_t rowbytes, int64_t *per,
                      int64_t *rounds) {
  int64_t maxblock = own == OWN_ROOT ? n : (n + c->size - 1) / c->size;
  if (start) {
    maxblock = 0;
    for (int r = 0; r < c->size; r++)
      if (start[r + 1] - start[r] > maxblock) maxblock = start[r + 1] - start[r];
  }
  int64_t p = ckpt_io_chunk() / (int64_t)rowbytes;
  if (p < 1) p = 1;
  *per = p;
  *rounds = (maxblock + p - 1) / p;
}

/* Collective: create dataset `name` (nd = 1: n elements; nd = 2: n x ncols) and write this
 * rank's rows of buf (the whole array, row-major; with start, the ranks' blocks of a block model,
 * this rank's block: buf's row 0 is row start[rank]). */
static imf_status put_rows(const io_ctx *c, const char *name, hid_t ftype, hid_t mtype,
                           size_t esize, int nd, int64_t n, int64_t ncols, const void *buf,
                           owner own, const int64_t *start) {
  hsize_t dims[2] = {(hsize_t)n, (hsize_t)ncols};
  hid_t d = imf_h5_dcreate(c->f, name, ftype, nd, dims);
  if (d < 0) IMF_FAIL(IMF_ERR_RUNTIME, "%s: cannot create dataset %s: %s", c->path, name, imf_h5_last());
  hid_t fs = H5Dget_space(d);
  herr_t e = 0;
  size_t rowbytes = esize * (size_t)ncols;
  int64_t lo, hi, per, rounds;
  own_rows(c, own, start, c->rank, n, &lo, &hi);
  rounds_of(c, own, start, n, rowbytes, &per, &rounds);
  const int64_t base = start ? lo : 0;
  static const char dummy[64];
  for (int64_t t = 0; t < rounds && e >= 0; t++) {
    int64_t a = lo + t * per, b = a + per < hi ? a + per : hi, cnt = b > a ? b - a : 0;
    hid_t ms = -1;
    e = imf_h5_select_rows(fs, nd, a, cnt, ncols, &ms);
    const void *p = cnt ? (const char *)buf + (size_t)(a - base) * rowbytes : (const void *)dummy;
    if (e >= 0) e = H5Dwrite(d, mtype, ms, fs, c->dxpl, p);
    if (e < 0) imf_h5_reason(); /* keep the reason: the next calls clear HDF5's stack */
    if (ms >= 0) H5Sclose(ms);
  }
  H5Sclose(fs);
  if (H5Dclose(d) < 0 && e >= 0) {
    e = -1;
    imf_h5_reason();
  }
  if (e < 0) IMF_FAIL(IMF_ERR_RUNTIME, "%s: cannot write dataset %s: %s", c->path, name, imf_h5_last());
  return IMF_OK;
}

imf_status ckpt_put_block(const io_ctx *c, const char *name, hid_t ftype, hid_t mtype, size_t esize, int nd,
                          int64_t n, int64_t ncols, const void *buf, const int64_t *start) {
  return put_rows(c, name, ftype, mtype, esize, nd, n, ncols, buf, OWN_BLOCK, start);
}

/* Collective: share the rows each rank read (OWN_BLOCK: allgather; OWN_ROOT: broadcast), in the
 * rounds put_rows and get_rows use (exchange.c). */
static imf_status share_rows(const io_ctx *c, owner own, void *buf, int64_t n, size_t rowbytes) {
  if (n == 0 || rowbytes == 0 || c->size == 1) return IMF_OK; /* (rounds_of divides by rowbytes) */
  const char *base = c->seg ? c->seg->base : NULL;
  if (base && own == OWN_BLOCK && (const char *)buf >= base && (const char *)buf < base + c->seg->bytes) {
    /* in the node's segment: each rank read its rows in place; the nodes' first ranks exchange */
    if (rowbytes % sizeof(float) != 0) IMF_FAIL(IMF_ERR_RUNTIME, "%s: node-shared rows of %zu bytes", c->path, rowbytes);
    int64_t *start = NULL;
    IMF_CHECK(imf_alloc(&start, (size_t)c->size + 1, sizeof *start));
    for (int r = 0; r <= c->size; r++) start[r] = n * r / c->size; /* own_rows' blocks */
    float *X = buf;
    const int w = (int)(rowbytes / sizeof(float));
    imf_status st = imf_allgather_rows_shared(c->layout, c->seg, start, X + (size_t)start[c->rank] * (size_t)w, X, w);
    imf_free(&start);
    return st;
  }
  int64_t per, rounds;
  rounds_of(c, own, NULL, n, rowbytes, &per, &rounds);
  return imf_share_rows(c->comm, own == OWN_ROOT, buf, n, rowbytes, per, c->path);
}

/* Collective: read dataset `name` (shape checked against n [x ncols]) into buf (the whole
 * array): each rank reads its rows, then they are shared so every rank has everything. */
static imf_status get_rows(const io_ctx *c, const char *name, hid_t mtype, size_t esize, int nd,
                           int64_t n, int64_t ncols, void *buf, owner own) {
  imf_status st = IMF_OK;
  hid_t d = H5Dopen2(c->f, name, H5P_DEFAULT);
  hid_t fs = d < 0 ? -1 : H5Dget_space(d);
  if (fs < 0) {
    imf_h5_reason();
    st = IMF_RAISE(IMF_ERR_INPUT, "%s is corrupt: dataset %s is missing",
                       c->path, name);
  } else {
    hsize_t dims[2] = {0, 0};
    int got = H5Sget_simple_extent_ndims(fs);
    if (got == nd) H5Sget_simple_extent_dims(fs, dims, NULL);
    if (got != nd || dims[0] != (hsize_t)n || (nd == 2 && dims[1] != (hsize_t)ncols))
      st = IMF_RAISE(IMF_ERR_INPUT, "%s is corrupt: dataset %s does not have the shape its attributes say",
                         c->path, name);
  }
  st = imf_agree(c->comm, st);
  size_t rowbytes = esize * (size_t)ncols;
  if (st == IMF_OK && n > 0) {
    herr_t e = 0;
    int64_t lo, hi, per, rounds;
    own_rows(c, own, NULL, c->rank, n, &lo, &hi);
    rounds_of(c, own, NULL, n, rowbytes, &per, &rounds);
    char dummy[64];
    for (int64_t t = 0; t < rounds && e >= 0; t++) {
      int64_t a = lo + t * per, b = a + per < hi ? a + per : hi, cnt = b > a ? b - a : 0;
      hid_t ms = -1;
      e = imf_h5_select_rows(fs, nd, a, cnt, ncols, &ms);
      void *p = cnt ? (char *)buf + (size_t)a * rowbytes : (void *)dummy;
      if (e >= 0) e = H5Dread(d, mtype, ms, fs, c->dxpl, p);
      if (e < 0) imf_h5_reason();
      if (ms >= 0) H5Sclose(ms);
    }
    if (e < 0)
      st = IMF_RAISE(IMF_ERR_INPUT, "%s is not a readable HDF5 file (truncated or corrupt?): reading %s: %s",
                         c->path, name, imf_h5_last());
    st = imf_agree(c->comm, st);
    if (st == IMF_OK) st = share_rows(c, own, buf, n, rowbytes);
  }
  if (fs >= 0) H5Sclose(fs);
  if (d >= 0) H5Dclose(d);
  H5Eclear2(H5E_DEFAULT);
  return st;
}

/* Broadcast a malloc'd string from rank 0 (chunked: MPI counts are int). */
imf_status ckpt_bcast_str(MPI_Comm comm, int rank, char **s) {
  int64_t len = rank == 0 ? (int64_t)strlen(*s ? *s : "") : 0;
  IMF_MPI(MPI_Bcast(&len, 1, MPI_INT64_T, 0, comm));
  imf_status st = IMF_OK;
  if (rank == 0 && !*s) st = imf_alloc(s, 1, 1);
  if (rank != 0) {
    *s = NULL;
    st = imf_alloc(s, (size_t)len + 1, 1);
  }
  IMF_CHECK(imf_agree(comm, st));
  const int64_t chunk = (int64_t)1 << 30;
  for (int64_t o = 0; o < len; o += chunk) {
    int n = (int)(len - o < chunk ? len - o : chunk);
    IMF_MPI(MPI_Bcast(*s + o, n, MPI_CHAR, 0, comm));
  }
  return IMF_OK;
}


/* Collective read-only open of a checkpoint for the EASE readers; every rank gets the same status. */
imf_status ckpt_open_ro(MPI_Comm comm, const char *path, hid_t *out) {
  imf_status st = IMF_OK;
  hid_t fapl = imf_h5_fapl_mpio(comm, 1);
  hid_t f = fapl < 0 ? -1 : H5Fopen(path, H5F_ACC_RDONLY, fapl);
  if (fapl >= 0) H5Pclose(fapl);
  if (f < 0) {
    imf_h5_reason();
    st = IMF_RAISE(IMF_ERR_INPUT, "%s is not a readable HDF5 file (truncated or corrupt?)", path);
  }
  *out = f;
  return imf_agree(comm, st);
}

/* History columns (what /history stores), 8 bytes per cell. */
typedef struct {
  char *col[NHIST];
} hist_cols;

static void hist_free(hist_cols *h) {
  for (int j = 0; j < NHIST; j++) imf_free(&h->col[j]);
}
static imf_status hist_alloc(hist_cols *h, int64_t n) {
  memset(h, 0, sizeof *h);
  imf_status st = IMF_OK;
  for (int j = 0; j < NHIST && st == IMF_OK; j++) st = imf_alloc(&h->col[j], (size_t)(n ? n : 1), 8);
  if (st != IMF_OK) hist_free(h);
  return st;
}
/* Between the rows of the model and the columns of the file. */
static void hist_to_cols(const imf_model *m, hist_cols *h) {
  for (int j = 0; j < NHIST; j++)
    for (int64_t r = 0; r < m->nhistory; r++)
      memcpy(h->col[j] + 8 * r, (const char *)&m->history[r] + ckpt_hist[j].offset, 8);
}
static void hist_from_cols(imf_model *m, const hist_cols *h) {
  for (int j = 0; j < NHIST; j++)
    for (int64_t r = 0; r < m->nhistory; r++)
      memcpy((char *)&m->history[r] + ckpt_hist[j].offset, h->col[j] + 8 * r, 8);
}

/* Collective: the EASE hashes into the header (they enter the digest) and, first, the P file
 * it names: a version never names a missing one. */
static imf_status ease_header(MPI_Comm comm, const char *path, const imf_model *m, const imf_ckpt_meta *meta,
                              int legacy, header *h) {
  h->info.ease_items = m->nitems;
  if (legacy && imf_ease_gram(meta->ease)) {
    IMF_CHECK(imf_ease_hash(meta->ease, 0, h->info.ease_gram_hash));
    h->info.ease_has_gram = 1;
  }
  if (imf_ease_b(meta->ease)) {
    if (!legacy) imf_ease_round_b(meta->ease); /* stored in f32: hash what is stored */
    IMF_CHECK(imf_ease_hash(meta->ease, 1, h->info.ease_b_hash));
    h->info.ease_has_b = 1;
  }
  if (!legacy && imf_ease_p(meta->ease)) {
    IMF_CHECK(imf_ease_hash(meta->ease, 2, h->info.ease_p_hash));
    snprintf(h->info.ease_p_file, sizeof h->info.ease_p_file, "ease-p-%s.h5", h->info.ease_p_hash);
    IMF_CHECK(ckpt_write_p_file(comm, path, &h->info, meta->ease));
  }
  if (meta->ease_x) {
    IMF_CHECK(imf_ease_rows_cover(comm, meta->ease_x->lo, meta->ease_x->hi, m->nusers));
    IMF_CHECK(imf_ease_rows_hash(comm, meta->ease_x, m->nitems, &h->info.ease_x_nnz, h->info.ease_x_hash));
    h->info.ease_has_x = 1;
  }
  return IMF_OK;
}

/* (rank 0) A full disk is refused before HDF5 starts (see imf_fs_need_space). */
static imf_status space_check(const char *dir, const char *tmp, const imf_model *m, const imf_ckpt_meta *meta,
                              const header *h, const char *config, int legacy) {
  double rows = (double)(m->nusers + m->nitems);
  double need = 4.0 * rows * (double)m->kw + (m->with_bias ? 4.0 * rows : 0.0) +
                (m->chain.U ? 4.0 * rows * (double)m->k + 16.0 * (double)m->k * (double)(m->k + 1) : 0.0) +
                48.0 * (double)m->nhistory + (double)h->ublob + (double)h->iblob +
                8.0 * (double)(meta->users.n + meta->items.n + 2) + (double)strlen(config) +
                (meta->ease ? (legacy ? 16.0 : 4.0) * (double)m->nitems * (double)m->nitems : 0.0) +
                (h->info.ease_has_x ? 8.0 * (double)(m->nusers + 1) + 4.0 * (double)h->info.ease_x_nnz : 0.0) +
                (meta->itemsums ? 8.0 * (double)m->nitems * (double)(meta->itemsums->tri + meta->itemsums->d + 1) : 0.0) +
                65536.0;
  return imf_fs_need_space(dir, tmp, need);
}

/* Collective: every dataset and the attributes into the open file c->f, each step agreed on
 * before the next, then flushed: the MPI-IO driver syncs only on an explicit flush (not on
 * close), and this makes every rank's part durable, not only what rank 0 can fsync. start: a
 * block model's blocks of users and items (imf_model_blocks), NULLs for a replicated model. */
static imf_status write_contents(const io_ctx *c, const imf_model *m, const imf_ckpt_meta *meta, const header *h,
                                 const hist_cols *hc, const char *config, int legacy, int64_t *const start[2]) {
  imf_status st;
  const int64_t k = m->k, kw = m->kw, nu = m->nusers, ni = m->nitems;
  const hid_t F32 = H5T_IEEE_F32LE, F64 = H5T_IEEE_F64LE, NF = H5T_NATIVE_FLOAT, ND = H5T_NATIVE_DOUBLE;
#define W(expr)                  \
  do {                           \
    st = imf_agree(c->comm, (expr)); \
    if (st != IMF_OK) return st; \
  } while (0)
  const int64_t *us = start[0], *is = start[1];
  W(put_rows(c, "/factors/P", F32, NF, 4, 2, nu, kw, m->P, OWN_BLOCK, us));
  W(put_rows(c, "/factors/Q", F32, NF, 4, 2, ni, kw, m->Q, OWN_BLOCK, is));
  if (h->info.with_bias) {
    W(put_rows(c, "/bias/user", F32, NF, 4, 1, nu, 1, m->bu, OWN_BLOCK, us));
    W(put_rows(c, "/bias/item", F32, NF, 4, 1, ni, 1, m->bi, OWN_BLOCK, is));
  }
  if (h->info.has_chain) {
    W(put_rows(c, "/bpmf/U", F32, NF, 4, 2, nu, k, m->chain.U, OWN_BLOCK, us));
    W(put_rows(c, "/bpmf/V", F32, NF, 4, 2, ni, k, m->chain.V, OWN_BLOCK, is));
    W(put_rows(c, "/bpmf/mu_u", F64, ND, 8, 1, k, 1, m->chain.mu_u, OWN_ROOT, NULL));
    W(put_rows(c, "/bpmf/mu_v", F64, ND, 8, 1, k, 1, m->chain.mu_v, OWN_ROOT, NULL));
    W(put_rows(c, "/bpmf/Lam_u", F64, ND, 8, 2, k, k, m->chain.Lam_u, OWN_ROOT, NULL));
    W(put_rows(c, "/bpmf/Lam_v", F64, ND, 8, 2, k, k, m->chain.Lam_v, OWN_ROOT, NULL));
  }
  const int64_t nh = h->info.nhistory;
  for (int j = 0; j < NHIST; j++)
    W(put_rows(c, ckpt_hist[j].name, ckpt_hist[j].is_int ? H5T_STD_I64LE : F64,
               ckpt_hist[j].is_int ? H5T_NATIVE_INT64 : ND, 8, 1, nh, 1, hc->col[j], OWN_ROOT, NULL));
  const imf_idlist *ls[2] = {&meta->users, &meta->items};
  const char *bn[2] = {"/ids/user_blob", "/ids/item_blob"}, *on[2] = {"/ids/user_off", "/ids/item_off"};
  const int64_t nids[2] = {h->info.nuser_ids, h->info.nitem_ids}, blob[2] = {h->ublob, h->iblob};
  for (int s = 0; s < 2; s++) {
    W(put_rows(c, bn[s], H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, 1, blob[s], 1, ls[s]->blob, OWN_ROOT, NULL));
    W(put_rows(c, on[s], H5T_STD_I64LE, H5T_NATIVE_INT64, 8, 1, nids[s] + 1, 1, ckpt_ids_off(ls[s]), OWN_ROOT,
               NULL));
  }
  if (meta->ease) {
    if (h->info.ease_has_gram) W(ckpt_put_bc(c, "/ease/gram", F64, meta->ease, imf_ease_gram(meta->ease)));
    if (h->info.ease_has_b) W(ckpt_put_bc(c, "/ease/BT", legacy ? F64 : F32, meta->ease, imf_ease_b(meta->ease)));
    if (h->info.ease_has_x) W(ckpt_put_x(c, meta->ease_x, m->nusers, h->info.ease_x_nnz));
  }
  if (meta->itemsums) W(ckpt_put_itemsums(c, meta->itemsums, ni));
  W(ckpt_write_attrs(c->f, &h->info, config, c->path));
  st = IMF_OK;
  if (H5Fflush(c->f, H5F_SCOPE_GLOBAL) < 0)
    st = IMF_RAISE(IMF_ERR_RUNTIME, "%s: cannot flush: %s", c->path, imf_h5_reason());
  W(st);
#undef W
  return IMF_OK;
}

/* Collective: the file complete under its tmp name (removed by rank 0 when a write failed);
 * start: a block model's blocks (users, items), NULLs for a replicated model. */
static imf_status write_file(MPI_Comm comm, const char *tmp, const imf_model *m, const imf_ckpt_meta *meta,
                             const header *h, const hist_cols *hc, const char *config, int legacy,
                             int64_t *const start[2]) {
  int rank, size;
  IMF_MPI(MPI_Comm_rank(comm, &rank));
  IMF_MPI(MPI_Comm_size(comm, &size));
  imf_status st = IMF_OK;
  hid_t fapl = imf_h5_fapl_mpio(comm, 1);
  hid_t f = fapl < 0 ? -1 : H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  if (f < 0) imf_h5_reason();
  if (fapl >= 0) H5Pclose(fapl);
  if (f < 0) st = IMF_RAISE(IMF_ERR_RUNTIME, "%s: cannot create: %s", tmp, imf_h5_last());
  /* H5Fcreate is collective and fails alike everywhere; agree anyway before more collectives */
  st = imf_agree(comm, st);
  if (st != IMF_OK) {
    if (f >= 0) H5Fclose(f);
    return st;
  }
  io_ctx c = {comm, rank, size, f, imf_h5_dxpl(1), tmp, NULL, NULL};
  st = write_contents(&c, m, meta, h, hc, config, legacy, start);
  H5Pclose(c.dxpl);
  if (H5Fclose(f) < 0 && st == IMF_OK)
    st = IMF_RAISE(IMF_ERR_RUNTIME, "%s: cannot close: %s", tmp, imf_h5_reason());
  st = imf_agree(comm, st);
  if (st != IMF_OK && rank == 0) unlink(tmp);
  return st;
}

/* (rank 0) The file is complete under its tmp name: make it durable, then take the name. */
static imf_status install(const char *tmp, const char *path, const char *dir) {
  IMF_CHECK(imf_fsync_path(tmp, 0));
  /* Testing hook: a crash after the file is complete and before it replaces the previous
   * one (the tmp file stays, as a crash would leave it). */
  if (imf_fault("checkpoint-before-rename"))
    IMF_FAIL(IMF_ERR_RUNTIME, "injected fault (IMF_FAULT=checkpoint-before-rename): %s not renamed to %s", tmp, path);
  if (rename(tmp, path) != 0) {
    imf_status st = IMF_RAISE(IMF_ERR_RUNTIME, "cannot rename %s to %s: %s", tmp, path,
                                  strerror(errno));
    unlink(tmp);
    return st;
  }
  return imf_fsync_path(dir, 1);
}

/* Collective: the header, rank 0's on every rank (attribute values must agree), with the content
 * digest: computed by rank 0 over a replicated model, or over a block model's blocks (start, not
 * NULL) streamed to rank 0, which gives the same digest. */
static imf_status make_header(MPI_Comm comm, int rank, const char *path, const imf_model *m,
                              const imf_ckpt_meta *meta, int legacy, int64_t *const start[2], header *h) {
  imf_status st = IMF_OK;
  ckpt_fill_header(h, m, meta);
  if (meta->ease) IMF_CHECK(ease_header(comm, path, m, meta, legacy, h)); /* collective */
  if (start[0])
    st = ckpt_model_digest_blocks(comm, start[0], start[1], &h->info, m, &meta->users, &meta->items,
                                  h->info.content_sha256);
  else if (rank == 0)
    st = ckpt_model_digest(&h->info, m, &meta->users, &meta->items, h->info.content_sha256);
  IMF_CHECK(imf_agree(comm, st));
  IMF_MPI(MPI_Bcast(h, (int)sizeof *h, MPI_BYTE, 0, comm));
  return IMF_OK;
}

imf_status imf_checkpoint_write(MPI_Comm comm, const char *path, const imf_model *m,
                                const imf_ckpt_meta *meta) {
  int rank;
  imf_status st = IMF_OK;
  char *config = NULL;
  hist_cols hc = {0};
  int legacy = imf_ease_legacy_format();
  int64_t *start[2] = {NULL, NULL};
  header h;
  IMF_MPI_TRY(MPI_Comm_rank(comm, &rank), out);
  imf_h5_quiet();
  st = ckpt_check_input(path, m, meta);
  IMF_TRY(imf_agree(comm, st), out);
  /* one shape on every rank, and a block model's blocks tiling its rows, before any collective
   * that depends on them (the digest's rounds, the datasets' writes) */
  IMF_TRY(imf_model_blocks(comm, m, &start[0], &start[1]), out);
  IMF_TRY(make_header(comm, rank, path, m, meta, legacy, start, &h), out);
  if (rank == 0) config = strdup(meta->config ? meta->config : "");
  if (rank == 0 && !config) st = IMF_RAISE(IMF_ERR_NOMEM, "out of memory");
  IMF_TRY(imf_agree(comm, st), out);
  IMF_TRY(ckpt_bcast_str(comm, rank, &config), out);
  /* Every rank checks its replica has the shape rank 0 describes (a divergent replica would
   * otherwise write rows of a different shape). */
  if (h.info.nusers != m->nusers || h.info.nitems != m->nitems || h.info.kw != m->kw ||
      h.info.k != m->k || h.info.has_chain != (m->chain.U != NULL) ||
      h.info.with_bias != (m->with_bias != 0))
    st = IMF_RAISE(IMF_ERR_RUNTIME, "%s: the model differs in shape between ranks", path);
  if (st == IMF_OK) st = hist_alloc(&hc, m->nhistory);
  IMF_TRY(imf_agree(comm, st), out);
  hist_to_cols(m, &hc);

  char tmp[4200], dir[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  imf_parent_dir(path, dir, sizeof dir);
  if (rank == 0) st = space_check(dir, tmp, m, meta, &h, config, legacy);
  IMF_TRY(imf_agree(comm, st), out);
  IMF_TRY(write_file(comm, tmp, m, meta, &h, &hc, config, legacy, start), out);
  if (rank == 0) st = install(tmp, path, dir);
  st = imf_agree(comm, st);
out:
  hist_free(&hc);
  free(config);
  imf_free(&start[0]);
  imf_free(&start[1]);
  return st;
}

static imf_status model_from_header(const imf_ckpt_info *in, imf_model **out) {
  imf_model *m = NULL;
  IMF_CHECK(imf_model_create(in->type, in->k, in->nusers, in->nitems, in->with_bias, &m));
  imf_status st = imf_model_set_kw(m, in->kw);
  if (st == IMF_OK && in->nhistory > 0) {
    st = imf_alloc(&m->history, (size_t)in->nhistory, sizeof *m->history);
    m->cap_history = m->nhistory = in->nhistory;
  }
  if (st != IMF_OK) {
    imf_model_destroy(&m);
    return st;
  }
  if (!in->has_chain) { /* created for every BPMF model; absent when the writer had none */
    imf_free(&m->chain.U);
    imf_free(&m->chain.V);
    imf_free(&m->chain.mu_u);
    imf_free(&m->chain.mu_v);
    imf_free(&m->chain.Lam_u);
    imf_free(&m->chain.Lam_v);
  }
  m->mu = in->mu;
  m->lambda = in->lambda;
  m->lambda_bias = in->lambda_bias;
  m->alpha = in->alpha;
  m->seed = in->seed;
  m->iteration = in->iteration;
  m->nsamples = (int)in->nsamples;
  m->max_samples = (int)in->max_samples;
  m->burn_in = in->burn_in;
  m->thin = in->thin;
  m->chain.sweeps = in->chain_sweeps;
  *out = m;
  return IMF_OK;
}

static imf_status idlist_alloc(imf_idlist *l, int64_t n, int64_t bytes) {
  memset(l, 0, sizeof *l);
  l->n = n;
  imf_status st = imf_alloc(&l->off, (size_t)n + 1, sizeof *l->off);
  if (st == IMF_OK) st = imf_alloc(&l->blob, (size_t)bytes + 1, 1);
  if (st != IMF_OK) imf_idlist_free(l);
  return st;
}

static imf_status idlist_valid(const imf_idlist *l, int64_t bytes, const char *path) {
  if (l->off[0] != 0 || l->off[l->n] != bytes)
    IMF_FAIL(IMF_ERR_INPUT, "%s is corrupt: an id offset list does not match its blob", path);
  for (int64_t j = 0; j < l->n; j++)
    if (l->off[j + 1] < l->off[j])
      IMF_FAIL(IMF_ERR_INPUT, "%s is corrupt: an id offset list is not increasing", path);
  return IMF_OK;
}

/* A model's node-shared arrays: the segment and the layout it was allocated on (model.h, shm). */
typedef struct {
  imf_layout *l;
  imf_shared_seg seg;
} shared_model;

static void shared_model_release(void *p) {
  shared_model *sm = p;
  imf_layout_shared_free(&sm->seg);
  imf_layout_destroy(&sm->l);
  free(sm);
}

/* Collective: move m's P, Q, biases and chain U, V into one segment per node of a layout of
 * ranks_per_node (layout.h); left on the heap where the nodes' ranks are not contiguous. */
static imf_status share_model_arrays(MPI_Comm comm, int ranks_per_node, imf_model *m) {
  shared_model *sm = NULL;
  IMF_CHECK(imf_agree(comm, imf_alloc(&sm, 1, sizeof *sm)));
  sm->seg.win = MPI_WIN_NULL;
  imf_status st = imf_layout_create(comm, ranks_per_node, &sm->l);
  if (st == IMF_OK && !sm->l->contiguous) {
    imf_warn("dist.node_shared: the nodes' ranks are not consecutive; every rank reads its own copy");
    imf_layout_destroy(&sm->l);
    free(sm);
    return IMF_OK;
  }
  if (st == IMF_OK) st = imf_layout_share_model(sm->l, m, m->kw, &sm->seg);
  if (st != IMF_OK) {
    shared_model_release(sm);
    return st;
  }
  m->shm = sm;
  m->shm_release = shared_model_release;
  return IMF_OK;
}

/* Every dataset of an open checkpoint into m (its arrays sized by the header), the history
 * columns and the id lists: each rank its rows, then shared (get_rows). */
static imf_status read_arrays(const io_ctx *c, const header *h, imf_model *m, hist_cols *hc, imf_idlist ids[2]) {
  const imf_ckpt_info *in = &h->info;
  int64_t k = m->k, kw = m->kw, nu = m->nusers, ni = m->nitems;
  const hid_t NF = H5T_NATIVE_FLOAT, ND = H5T_NATIVE_DOUBLE;
  IMF_CHECK(get_rows(c, "/factors/P", NF, 4, 2, nu, kw, m->P, OWN_BLOCK));
  IMF_CHECK(get_rows(c, "/factors/Q", NF, 4, 2, ni, kw, m->Q, OWN_BLOCK));
  if (in->with_bias) {
    IMF_CHECK(get_rows(c, "/bias/user", NF, 4, 1, nu, 1, m->bu, OWN_BLOCK));
    IMF_CHECK(get_rows(c, "/bias/item", NF, 4, 1, ni, 1, m->bi, OWN_BLOCK));
  }
  if (in->has_chain) {
    IMF_CHECK(get_rows(c, "/bpmf/U", NF, 4, 2, nu, k, m->chain.U, OWN_BLOCK));
    IMF_CHECK(get_rows(c, "/bpmf/V", NF, 4, 2, ni, k, m->chain.V, OWN_BLOCK));
    IMF_CHECK(get_rows(c, "/bpmf/mu_u", ND, 8, 1, k, 1, m->chain.mu_u, OWN_ROOT));
    IMF_CHECK(get_rows(c, "/bpmf/mu_v", ND, 8, 1, k, 1, m->chain.mu_v, OWN_ROOT));
    IMF_CHECK(get_rows(c, "/bpmf/Lam_u", ND, 8, 2, k, k, m->chain.Lam_u, OWN_ROOT));
    IMF_CHECK(get_rows(c, "/bpmf/Lam_v", ND, 8, 2, k, k, m->chain.Lam_v, OWN_ROOT));
  }
  int64_t nh = in->nhistory;
  for (int j = 0; j < NHIST; j++)
    IMF_CHECK(get_rows(c, ckpt_hist[j].name, ckpt_hist[j].is_int ? H5T_NATIVE_INT64 : ND, 8, 1, nh, 1, hc->col[j],
                       OWN_ROOT));
  const char *bn[2] = {"/ids/user_blob", "/ids/item_blob"}, *on[2] = {"/ids/user_off", "/ids/item_off"};
  const int64_t blob[2] = {h->ublob, h->iblob};
  for (int s = 0; s < 2; s++) {
    IMF_CHECK(get_rows(c, bn[s], H5T_NATIVE_UINT8, 1, 1, blob[s], 1, ids[s].blob, OWN_ROOT));
    IMF_CHECK(get_rows(c, on[s], H5T_NATIVE_INT64, 8, 1, ids[s].n + 1, 1, ids[s].off, OWN_ROOT));
  }
  return IMF_OK;
}

static imf_status read_model(MPI_Comm comm, int ranks_per_node, const char *path, imf_model **out,
                             imf_ckpt_meta *meta);

imf_status imf_checkpoint_read(MPI_Comm comm, const char *path, imf_model **out, imf_ckpt_meta *meta) {
  return read_model(comm, -1, path, out, meta);
}

imf_status imf_checkpoint_read_shared(MPI_Comm comm, int ranks_per_node, const char *path, imf_model **out,
                                      imf_ckpt_meta *meta) {
  return read_model(comm, ranks_per_node < 0 ? 0 : ranks_per_node, path, out, meta);
}

/* imf_checkpoint_read, and with ranks_per_node >= 0 its node-shared form. */
static imf_status read_model(MPI_Comm comm, int ranks_per_node, const char *path, imf_model **out,
                             imf_ckpt_meta *meta) {
  *out = NULL;
  if (meta) memset(meta, 0, sizeof *meta);
  int rank, size;
  header h;
  memset(&h, 0, sizeof h);
  imf_status st = IMF_OK;
  char *config = NULL;
  imf_model *m = NULL;
  imf_idlist ids[2];
  memset(ids, 0, sizeof ids);
  hist_cols hc = {0};
  const imf_ckpt_info *in = &h.info;
  IMF_MPI_TRY(MPI_Comm_rank(comm, &rank), out);
  IMF_MPI_TRY(MPI_Comm_size(comm, &size), out);
  imf_h5_quiet();
  if (rank == 0) st = ckpt_header_read(path, &h);
  IMF_TRY(imf_agree(comm, st), out);
  config = h.info.config;
  h.info.config = NULL;
  IMF_MPI_TRY(MPI_Bcast(&h, (int)sizeof h, MPI_BYTE, 0, comm), out);
  IMF_TRY(ckpt_bcast_str(comm, rank, &config), out);
  st = model_from_header(in, &m);
  IMF_TRY(imf_agree(comm, st), out);
  if (ranks_per_node >= 0) IMF_TRY(share_model_arrays(comm, ranks_per_node, m), out);
  if (st == IMF_OK) st = idlist_alloc(&ids[0], in->nuser_ids, h.ublob);
  if (st == IMF_OK) st = idlist_alloc(&ids[1], in->nitem_ids, h.iblob);
  if (st == IMF_OK) st = hist_alloc(&hc, in->nhistory);
  IMF_TRY(imf_agree(comm, st), out);

  hid_t fapl = imf_h5_fapl_mpio(comm, 1);
  hid_t f = fapl < 0 ? -1 : H5Fopen(path, H5F_ACC_RDONLY, fapl);
  if (fapl >= 0) H5Pclose(fapl);
  if (f < 0) {
    imf_h5_reason();
    st = IMF_RAISE(IMF_ERR_INPUT, "%s is not a readable HDF5 file (truncated or corrupt?)", path);
  }
  st = imf_agree(comm, st);
  if (st != IMF_OK) {
    if (f >= 0) H5Fclose(f);
    goto out;
  }
  {
    io_ctx c = {comm, rank, size, f, imf_h5_dxpl(1), path, NULL, NULL};
    if (m->shm) {
      c.layout = ((shared_model *)m->shm)->l;
      c.seg = &((shared_model *)m->shm)->seg;
    }
    st = read_arrays(&c, &h, m, &hc, ids);
    H5Pclose(c.dxpl);
    H5Fclose(f);
    H5Eclear2(H5E_DEFAULT);
  }
  IMF_TRY(st, out);
  hist_from_cols(m, &hc);
  /* Everyone holds everything now; one rank checking the digest suffices. */
  if (rank == 0) {
    st = idlist_valid(&ids[0], h.ublob, path);
    if (st == IMF_OK) st = idlist_valid(&ids[1], h.iblob, path);
    char hex[65];
    if (st == IMF_OK) st = ckpt_model_digest(in, m, &ids[0], &ids[1], hex);
    if (st == IMF_OK && strcmp(hex, in->content_sha256) != 0) {
      st = IMF_RAISE(IMF_ERR_INPUT, "%s is corrupt: its content digest does not match", path);
      imf_err_set_advice("restore an earlier version with `incremf rollback`");
    }
  }
  IMF_TRY(imf_agree(comm, st), out);
  if (meta) {
    meta->config = config;
    config = NULL;
    ckpt_copy_str(meta->store_digest, sizeof meta->store_digest, in->store_digest);
    meta->batches_seen = in->batches_seen;
    meta->users = ids[0];
    meta->items = ids[1];
    memset(ids, 0, sizeof ids);
    ckpt_copy_str(meta->kind, sizeof meta->kind, in->kind);
    ckpt_copy_str(meta->openblas_core, sizeof meta->openblas_core, in->openblas_core);
    ckpt_copy_str(meta->created, sizeof meta->created, in->created);
    ckpt_copy_str(meta->incremf_version, sizeof meta->incremf_version, in->incremf_version);
  }
  *out = m;
  m = NULL;
out:
  imf_model_destroy(&m);
  imf_idlist_free(&ids[0]);
  imf_idlist_free(&ids[1]);
  hist_free(&hc);
  free(config);
  return st;
}
