/* checkpoint.c - model checkpoints on parallel HDF5 (checkpoint.h).
 *
 * Writing: every rank writes its own contiguous block of rows of each factor array with
 * collective MPI-IO (the model is replicated, so the split is only about sharing the I/O);
 * small arrays (ids, history, BPMF hyperparameters) come from rank 0 while the others take
 * part with empty selections. The file is written to PATH.tmp and renamed over PATH only once
 * complete and synced, so a kill leaves the previous checkpoint in place.
 *
 * Reading: rank 0 first opens the file serially and checks its attributes (so a missing,
 * foreign, truncated or newer file gives one clear message before anyone allocates), then all
 * ranks read their blocks collectively and allgather them. Rank 0 recomputes the content
 * digest over everything read; a mismatch fails the read on every rank, so garbage factors are
 * never returned.
 *
 * Arrays move in rounds of at most io_chunk bytes per rank and call: HDF5 and MPI count in int
 * in places, and this keeps arrays past 2^31 bytes (or elements) working. */
#include "checkpoint.h"
#include "error.h"
#include "exchange.h"
#include "fsio.h"
#include "log.h"

#include <cblas.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef IMF_VERSION
#define IMF_VERSION "unknown"
#endif

#define DEFAULT_IO_CHUNK ((int64_t)1 << 30)
static int64_t io_chunk = DEFAULT_IO_CHUNK;

void imf_checkpoint_set_io_chunk(int64_t bytes) { io_chunk = bytes > 0 ? bytes : DEFAULT_IO_CHUNK; }

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

/* ------------------------------------------------------------------------------------------ */
/* HDF5 plumbing                                                                              */






static int env_fault(const char *name) {
  const char *f = getenv("IMF_FAULT");
  return f && strcmp(f, name) == 0;
}

/* ------------------------------------------------------------------------------------------ */
/* content digest                                                                             */

/* Values enter the digest little-endian, whatever the host, so that the digest of a file is
 * the same everywhere (and can be recomputed from Python; see docs/FORMAT.md). */
static void put_le(EVP_MD_CTX *c, const void *p, size_t n, size_t esize) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  const unsigned char *b = p;
  unsigned char tmp[4096];
  size_t per = sizeof tmp / esize;
  for (size_t i = 0; i < n; i += per) {
    size_t m = n - i < per ? n - i : per;
    for (size_t j = 0; j < m; j++)
      for (size_t q = 0; q < esize; q++) tmp[j * esize + q] = b[(i + j) * esize + esize - 1 - q];
    EVP_DigestUpdate(c, tmp, m * esize);
  }
#else
  if (n) EVP_DigestUpdate(c, p, n * esize);
#endif
}
static void put_u64(EVP_MD_CTX *c, uint64_t v) { put_le(c, &v, 1, 8); }
static void put_f64(EVP_MD_CTX *c, double v) { put_le(c, &v, 1, 8); }
/* An array: its element count, then its elements. */
static void put_arr(EVP_MD_CTX *c, const void *p, int64_t n, size_t esize) {
  put_u64(c, (uint64_t)n);
  if (n > 0) put_le(c, p, (size_t)n, esize);
}

static const int64_t zero_off = 0;
static const int64_t *ids_off(const imf_idlist *l) { return l->off ? l->off : &zero_off; }

/* The history columns: /history/NAME holds field NAME of every imf_sweep_metrics row. */
static const struct {
  const char *name;
  size_t offset;
  int is_int;
} HIST[] = {{"/history/iteration", offsetof(imf_sweep_metrics, iteration), 1},
            {"/history/train_loss", offsetof(imf_sweep_metrics, train_loss), 0},
            {"/history/train_rmse", offsetof(imf_sweep_metrics, train_rmse), 0},
            {"/history/val_rmse", offsetof(imf_sweep_metrics, val_rmse), 0},
            {"/history/val_mae", offsetof(imf_sweep_metrics, val_mae), 0},
            {"/history/seconds", offsetof(imf_sweep_metrics, seconds), 0}};
#define NHIST ((int)(sizeof HIST / sizeof HIST[0]))
/* A field added to imf_sweep_metrics must get its column here, or checkpoints would drop it. */
_Static_assert(sizeof(imf_sweep_metrics) == NHIST * 8, "imf_sweep_metrics changed: update HIST");

/* The scalars that shape the model, in the order the digest takes them. */
static void put_header(EVP_MD_CTX *c, const imf_ckpt_info *h) {
  static const char tag[] = "incremf-model/1";
  EVP_DigestUpdate(c, tag, sizeof tag); /* with its NUL */
  const int64_t iv[] = {(int64_t)h->type, h->k,          h->kw,          h->with_bias,
                        h->has_chain,     h->nusers,     h->nitems,      h->iteration,
                        h->nsamples,      h->max_samples, h->burn_in,    h->thin,
                        h->chain_sweeps,  h->nhistory,   h->nuser_ids,   h->nitem_ids};
  for (size_t i = 0; i < sizeof iv / sizeof iv[0]; i++) put_u64(c, (uint64_t)iv[i]);
  put_u64(c, h->seed);
  put_f64(c, h->mu);
  put_f64(c, h->lambda);
  put_f64(c, h->lambda_bias);
  put_f64(c, h->alpha);
}

static imf_status model_digest(const imf_ckpt_info *h, const imf_model *m, const imf_idlist *u,
                               const imf_idlist *it, char hex[65]) {
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  if (!c || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1) {
    EVP_MD_CTX_free(c);
    IMF_FAIL(IMF_ERR_RUNTIME, "cannot start a sha256 digest");
  }
  int64_t k = m->k, kw = m->kw;
  put_header(c, h);
  put_arr(c, m->P, m->nusers * kw, 4);
  put_arr(c, m->Q, m->nitems * kw, 4);
  if (m->with_bias) {
    put_arr(c, m->bu, m->nusers, 4);
    put_arr(c, m->bi, m->nitems, 4);
  }
  if (h->has_chain) {
    put_arr(c, m->chain.U, m->nusers * k, 4);
    put_arr(c, m->chain.V, m->nitems * k, 4);
    put_arr(c, m->chain.mu_u, k, 8);
    put_arr(c, m->chain.mu_v, k, 8);
    put_arr(c, m->chain.Lam_u, k * k, 8);
    put_arr(c, m->chain.Lam_v, k * k, 8);
  }
  /* history column by column, as stored */
  put_u64(c, (uint64_t)m->nhistory);
  for (int j = 0; j < NHIST; j++)
    for (int64_t r = 0; r < m->nhistory; r++)
      put_le(c, (const char *)&m->history[r] + HIST[j].offset, 1, 8);
  const imf_idlist *ls[2] = {u, it};
  for (int s = 0; s < 2; s++) {
    const int64_t *off = ids_off(ls[s]);
    put_arr(c, off, ls[s]->n + 1, 8);
    put_arr(c, ls[s]->blob, off[ls[s]->n], 1);
  }
  /* The EASE state (only when present, so the digests of other files are unchanged): its order
   * and the order-free hashes of its matrices, which a reader checks what it reads against. */
  if (h->ease_items > 0) {
    static const char etag[] = "ease";
    EVP_DigestUpdate(c, etag, sizeof etag);
    put_u64(c, (uint64_t)h->ease_items);
    EVP_DigestUpdate(c, h->ease_gram_hash, 32);
    EVP_DigestUpdate(c, h->ease_b_hash, 32);
    /* X stored sparse: its entry count and order-free hash (absent from the older replicated
     * form, whose X is P and digested above) */
    if (h->ease_has_x) {
      static const char xtag[] = "ease-x";
      EVP_DigestUpdate(c, xtag, sizeof xtag);
      put_u64(c, (uint64_t)h->ease_x_nnz);
      EVP_DigestUpdate(c, h->ease_x_hash, 32);
    }
    /* the P file referenced (absent from versions written before P files) */
    if (h->ease_p_hash[0]) {
      static const char ptag[] = "ease-p";
      EVP_DigestUpdate(c, ptag, sizeof ptag);
      EVP_DigestUpdate(c, h->ease_p_hash, 32);
    }
  }
  unsigned char md[32];
  unsigned int len = 0;
  int ok = EVP_DigestFinal_ex(c, md, &len) == 1;
  EVP_MD_CTX_free(c);
  if (!ok) IMF_FAIL(IMF_ERR_RUNTIME, "cannot finish a sha256 digest");
  for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
  return IMF_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* arrays in rounds                                                                           */

/* Which rows of an array a rank writes (and reads): its block, or everything on rank 0. */
typedef enum { OWN_BLOCK, OWN_ROOT } owner;

typedef struct {
  MPI_Comm comm;
  int rank, size;
  hid_t f, dxpl;
  const char *path;
} io_ctx;

static void own_rows(const io_ctx *c, owner own, int r, int64_t n, int64_t *lo, int64_t *hi) {
  if (own == OWN_ROOT) {
    *lo = 0;
    *hi = r == 0 ? n : 0;
  } else {
    *lo = n * r / c->size;
    *hi = n * (r + 1) / c->size;
  }
}

/* Rows per round and number of rounds: the same on every rank (computed from n, not from the
 * rank's own share), since each round is one collective call. */
static void rounds_of(const io_ctx *c, owner own, int64_t n, size_t rowbytes, int64_t *per,
                      int64_t *rounds) {
  int64_t maxblock = own == OWN_ROOT ? n : (n + c->size - 1) / c->size;
  int64_t p = io_chunk / (int64_t)rowbytes;
  if (p < 1) p = 1;
  *per = p;
  *rounds = (maxblock + p - 1) / p;
}

/* Hyperslab selection of rows [r0, r0+cnt) of an n x ncols (or 1-d) dataset, and the matching
 * memory space; cnt == 0 selects nothing on both. */
static herr_t select_rows(hid_t fs, int nd, int64_t r0, int64_t cnt, int64_t ncols, hid_t *ms) {
  hsize_t off[2] = {(hsize_t)r0, 0}, count[2] = {(hsize_t)cnt, (hsize_t)ncols};
  hsize_t mdim[2] = {cnt ? (hsize_t)cnt : 1, (hsize_t)ncols};
  *ms = H5Screate_simple(nd, mdim, NULL);
  if (*ms < 0) return -1;
  if (cnt) return H5Sselect_hyperslab(fs, H5S_SELECT_SET, off, NULL, count, NULL);
  if (H5Sselect_none(fs) < 0) return -1;
  return H5Sselect_none(*ms);
}

/* Collective: create dataset `name` (nd = 1: n elements; nd = 2: n x ncols) and write this
 * rank's rows of buf (the whole array, row-major). */
static imf_status put_rows(const io_ctx *c, const char *name, hid_t ftype, hid_t mtype,
                           size_t esize, int nd, int64_t n, int64_t ncols, const void *buf,
                           owner own) {
  hsize_t dims[2] = {(hsize_t)n, (hsize_t)ncols};
  hid_t fs = H5Screate_simple(nd, dims, NULL);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  /* Every element gets written: skip the fill pass. */
  H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
  H5Pset_layout(dcpl, H5D_CONTIGUOUS);
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  hid_t d = fs < 0 ? -1 : H5Dcreate2(c->f, name, ftype, fs, lcpl, dcpl, H5P_DEFAULT);
  if (d < 0) imf_h5_reason();
  H5Pclose(lcpl);
  H5Pclose(dcpl);
  if (d < 0) {
    if (fs >= 0) H5Sclose(fs);
    IMF_FAIL(IMF_ERR_RUNTIME, "%s: cannot create dataset %s: %s", c->path, name, imf_h5_last());
  }
  herr_t e = 0;
  size_t rowbytes = esize * (size_t)ncols;
  int64_t lo, hi, per, rounds;
  own_rows(c, own, c->rank, n, &lo, &hi);
  rounds_of(c, own, n, rowbytes, &per, &rounds);
  static const char dummy[64];
  for (int64_t t = 0; t < rounds && e >= 0; t++) {
    int64_t a = lo + t * per, b = a + per < hi ? a + per : hi, cnt = b > a ? b - a : 0;
    hid_t ms = -1;
    e = select_rows(fs, nd, a, cnt, ncols, &ms);
    const void *p = cnt ? (const char *)buf + (size_t)a * rowbytes : (const void *)dummy;
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

/* Collective: share the rows each rank read (OWN_BLOCK: allgather; OWN_ROOT: broadcast), in the
 * rounds put_rows and get_rows use (exchange.c). */
static imf_status share_rows(const io_ctx *c, owner own, void *buf, int64_t n, size_t rowbytes) {
  if (n == 0 || rowbytes == 0 || c->size == 1) return IMF_OK; /* (rounds_of divides by rowbytes) */
  int64_t per, rounds;
  rounds_of(c, own, n, rowbytes, &per, &rounds);
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
    st = imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__, "%s is corrupt: dataset %s is missing",
                       c->path, name);
  } else {
    hsize_t dims[2] = {0, 0};
    int got = H5Sget_simple_extent_ndims(fs);
    if (got == nd) H5Sget_simple_extent_dims(fs, dims, NULL);
    if (got != nd || dims[0] != (hsize_t)n || (nd == 2 && dims[1] != (hsize_t)ncols))
      st = imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__,
                         "%s is corrupt: dataset %s does not have the shape its attributes say",
                         c->path, name);
  }
  st = imf_agree(c->comm, st);
  size_t rowbytes = esize * (size_t)ncols;
  if (st == IMF_OK && n > 0) {
    herr_t e = 0;
    int64_t lo, hi, per, rounds;
    own_rows(c, own, c->rank, n, &lo, &hi);
    rounds_of(c, own, n, rowbytes, &per, &rounds);
    char dummy[64];
    for (int64_t t = 0; t < rounds && e >= 0; t++) {
      int64_t a = lo + t * per, b = a + per < hi ? a + per : hi, cnt = b > a ? b - a : 0;
      hid_t ms = -1;
      e = select_rows(fs, nd, a, cnt, ncols, &ms);
      void *p = cnt ? (char *)buf + (size_t)a * rowbytes : (void *)dummy;
      if (e >= 0) e = H5Dread(d, mtype, ms, fs, c->dxpl, p);
      if (e < 0) imf_h5_reason();
      if (ms >= 0) H5Sclose(ms);
    }
    if (e < 0)
      st = imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__,
                         "%s is not a readable HDF5 file (truncated or corrupt?): reading %s: %s",
                         c->path, name, imf_h5_last());
    st = imf_agree(c->comm, st);
    if (st == IMF_OK) st = share_rows(c, own, buf, n, rowbytes);
  }
  if (fs >= 0) H5Sclose(fs);
  if (d >= 0) H5Dclose(d);
  H5Eclear2(H5E_DEFAULT);
  return st;
}

/* ------------------------------------------------------------------------------------------ */
/* EASE matrices: block-cyclic parts as strided hyperslabs                                    */

/* An n x n matrix M of the EASE state is stored as dataset D (n x n, f64) with D[j][i] = M(i, j):
 * row j of the dataset is column j of M (Fortran order; for B that is Q's row j, B^T). Then a
 * rank's local part — column-major, lld = mloc — is, column after column, exactly the row-major
 * order of its selection in the file: file dimension 0 (j) takes its column blocks, starting at
 * mycol * nb with stride npcol * nb, dimension 1 (i) its row blocks, starting at myrow * nb with
 * stride nprow * nb, every block nb x nb. Only the matrix's last block row/column can be short
 * (n mod nb), and only the rank owning it has it: the selection is the union of up to four
 * regular hyperslabs (full x full, full x short, short x full, short x short blocks). Rounds of
 * local columns (a multiple of nb) keep each call under io_chunk bytes. */
static herr_t select_bc(hid_t fs, const imf_ease_layout *L, int lc0, int lc1) {
  if (H5Sselect_none(fs) < 0) return -1;
  if (L->mloc <= 0 || lc1 <= lc0) return 0;
  const hsize_t nb = (hsize_t)L->nb;
  int fR = L->mloc / L->nb, pR = L->mloc % L->nb;
  int lb0 = lc0 / L->nb, ncols = lc1 - lc0, fC = ncols / L->nb, pC = ncols % L->nb;
  hsize_t j0 = ((hsize_t)lb0 * (hsize_t)L->npcol + (hsize_t)L->mycol) * nb, i0 = (hsize_t)L->myrow * nb;
  hsize_t jp = ((hsize_t)(lb0 + fC) * (hsize_t)L->npcol + (hsize_t)L->mycol) * nb;
  hsize_t ip = ((hsize_t)fR * (hsize_t)L->nprow + (hsize_t)L->myrow) * nb;
  const hsize_t sj = (hsize_t)L->npcol * nb, si = (hsize_t)L->nprow * nb;
  struct {
    hsize_t start[2], stride[2], count[2], block[2];
    int on;
  } part[4] = {{{j0, i0}, {sj, si}, {(hsize_t)fC, (hsize_t)fR}, {nb, nb}, fC > 0 && fR > 0},
               {{j0, ip}, {sj, (hsize_t)(pR ? pR : 1)}, {(hsize_t)fC, 1}, {nb, (hsize_t)pR}, fC > 0 && pR > 0},
               {{jp, i0}, {(hsize_t)(pC ? pC : 1), si}, {1, (hsize_t)fR}, {(hsize_t)pC, nb}, pC > 0 && fR > 0},
               {{jp, ip}, {(hsize_t)(pC ? pC : 1), (hsize_t)(pR ? pR : 1)}, {1, 1}, {(hsize_t)pC, (hsize_t)pR},
                pC > 0 && pR > 0}};
  int first = 1;
  for (int k = 0; k < 4; k++) {
    if (!part[k].on) continue;
    if (H5Sselect_hyperslab(fs, first ? H5S_SELECT_SET : H5S_SELECT_OR, part[k].start, part[k].stride,
                            part[k].count, part[k].block) < 0)
      return -1;
    first = 0;
  }
  return 0;
}

/* Local columns per round (a multiple of nb, the same on every rank) and the number of rounds. */
static imf_status bc_rounds(const io_ctx *c, const imf_ease_layout *L, int *per, int *rounds) {
  int mx[2] = {L->mloc, L->nloc};
  IMF_MPI(MPI_Allreduce(MPI_IN_PLACE, mx, 2, MPI_INT, MPI_MAX, c->comm));
  int64_t colbytes = 8 * (int64_t)(mx[0] > 0 ? mx[0] : 1);
  int64_t blocks = io_chunk / (colbytes * L->nb);
  if (blocks < 1) blocks = 1;
  if (blocks * L->nb > mx[1]) blocks = (mx[1] + L->nb - 1) / L->nb;
  if (blocks < 1) blocks = 1;
  *per = (int)(blocks * L->nb);
  *rounds = (mx[1] + *per - 1) / *per;
  return IMF_OK;
}

/* The status of a collective transfer of dataset `name` (e < 0: it failed on this rank). */
static imf_status io_status(const io_ctx *c, int write, const char *name, herr_t e) {
  if (e >= 0) return IMF_OK;
  if (write) IMF_FAIL(IMF_ERR_RUNTIME, "%s: cannot write dataset %s: %s", c->path, name, imf_h5_last());
  IMF_FAIL(IMF_ERR_INPUT, "%s is not a readable HDF5 file (truncated or corrupt?): reading %s: %s", c->path, name,
           imf_h5_last());
}

/* Collective: transfer this rank's part `local` of an EASE matrix to/from dataset d. An f32
 * dataset (B since 2026-12-07) goes through a float buffer of one round, converted here: HDF5's
 * own conversion would turn the collective strided transfer into many small independent ones. */
static imf_status bc_transfer(const io_ctx *c, hid_t d, const imf_ease_layout *L, double *local, int write,
                              const char *name) {
  int per = 0, rounds = 0;
  IMF_CHECK(bc_rounds(c, L, &per, &rounds));
  hid_t ft = H5Dget_type(d);
  int f32 = ft >= 0 && H5Tget_class(ft) == H5T_FLOAT && H5Tget_size(ft) == 4;
  if (ft >= 0) H5Tclose(ft);
  float *fb = NULL;
  imf_status st = f32 ? imf_alloc_nz(&fb, (size_t)per * (size_t)(L->mloc > 0 ? L->mloc : 1), sizeof *fb) : IMF_OK;
  IMF_CHECK(imf_agree(c->comm, st));
  hid_t fs = H5Dget_space(d);
  herr_t e = fs < 0 ? -1 : 0;
  static double dummy[1];
  static float fdummy[1];
  for (int t = 0; t < rounds && e >= 0; t++) {
    int lc0 = t * per, lc1 = lc0 + per < L->nloc ? lc0 + per : L->nloc;
    int have = L->mloc > 0 && lc1 > lc0;
    hsize_t mdim[2] = {have ? (hsize_t)(lc1 - lc0) : 1, have ? (hsize_t)L->mloc : 1};
    hid_t ms = H5Screate_simple(2, mdim, NULL);
    e = ms < 0 ? -1 : select_bc(fs, L, lc0, lc1);
    if (e >= 0 && !have) e = H5Sselect_none(ms);
    double *p = have ? local + (size_t)lc0 * (size_t)L->lld : dummy;
    size_t cnt = have ? (size_t)(lc1 - lc0) * (size_t)L->mloc : 0; /* lld == mloc when mloc > 0 */
    if (f32 && write)
      for (size_t x = 0; x < cnt; x++) fb[x] = (float)p[x];
    void *buf = f32 ? (void *)(have ? fb : fdummy) : (void *)p;
    hid_t mt = f32 ? H5T_NATIVE_FLOAT : H5T_NATIVE_DOUBLE;
    if (e >= 0) e = write ? H5Dwrite(d, mt, ms, fs, c->dxpl, buf) : H5Dread(d, mt, ms, fs, c->dxpl, buf);
    if (e >= 0 && f32 && !write)
      for (size_t x = 0; x < cnt; x++) p[x] = (double)fb[x];
    if (e < 0) imf_h5_reason();
    if (ms >= 0) H5Sclose(ms);
  }
  if (fs >= 0) H5Sclose(fs);
  imf_free(&fb);
  return io_status(c, write, name, e);
}

/* Collective: create dataset `name` (n x n f64, contiguous) and write every rank's blocks. */
static imf_status put_bc(const io_ctx *c, const char *name, hid_t ftype, const imf_ease *e, double *local) {
  imf_ease_layout L;
  imf_ease_get_layout(e, &L);
  hsize_t dims[2] = {(hsize_t)L.n, (hsize_t)L.n};
  hid_t fs = H5Screate_simple(2, dims, NULL);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
  H5Pset_layout(dcpl, H5D_CONTIGUOUS);
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  hid_t d = fs < 0 ? -1 : H5Dcreate2(c->f, name, ftype, fs, lcpl, dcpl, H5P_DEFAULT);
  if (d < 0) imf_h5_reason();
  H5Pclose(lcpl);
  H5Pclose(dcpl);
  if (fs >= 0) H5Sclose(fs);
  if (d < 0) IMF_FAIL(IMF_ERR_RUNTIME, "%s: cannot create dataset %s: %s", c->path, name, imf_h5_last());
  imf_status st = bc_transfer(c, d, &L, local, 1, name);
  if (H5Dclose(d) < 0 && st == IMF_OK)
    st = imf_err_raise(IMF_ERR_RUNTIME, __FILE__, __LINE__, "%s: cannot write dataset %s: %s", c->path, name,
                       imf_h5_reason());
  return st;
}

/* Collective: read every rank's blocks of dataset `name` (checked to be n x n). */
static imf_status get_bc(const io_ctx *c, const char *name, const imf_ease *e, double *local) {
  imf_ease_layout L;
  imf_ease_get_layout(e, &L);
  imf_status st = IMF_OK;
  hid_t d = H5Dopen2(c->f, name, H5P_DEFAULT);
  hid_t fs = d < 0 ? -1 : H5Dget_space(d);
  hsize_t dims[2] = {0, 0};
  if (fs < 0 || H5Sget_simple_extent_ndims(fs) != 2 || H5Sget_simple_extent_dims(fs, dims, NULL) < 0 ||
      dims[0] != (hsize_t)L.n || dims[1] != (hsize_t)L.n)
    st = imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__, "%s is corrupt: dataset %s is missing or not %lld x %lld",
                       c->path, name, (long long)L.n, (long long)L.n);
  if (fs >= 0) H5Sclose(fs);
  st = imf_agree(c->comm, st);
  if (st == IMF_OK) st = imf_agree(c->comm, bc_transfer(c, d, &L, local, 0, name));
  if (d >= 0) H5Dclose(d);
  H5Eclear2(H5E_DEFAULT);
  return st;
}

/* EASE X: sparse rows as two 1-d datasets                                                   */

/* Collective: create 1-d dataset `name` of n elements (contiguous, no fill pass). */
static imf_status create_1d(const io_ctx *c, const char *name, hid_t ftype, int64_t n, hid_t *out) {
  hsize_t dims = (hsize_t)n;
  hid_t fs = H5Screate_simple(1, &dims, NULL);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
  H5Pset_layout(dcpl, H5D_CONTIGUOUS);
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  *out = fs < 0 ? -1 : H5Dcreate2(c->f, name, ftype, fs, lcpl, dcpl, H5P_DEFAULT);
  if (*out < 0) imf_h5_reason();
  H5Pclose(lcpl);
  H5Pclose(dcpl);
  if (fs >= 0) H5Sclose(fs);
  if (*out < 0) IMF_FAIL(IMF_ERR_RUNTIME, "%s: cannot create dataset %s: %s", c->path, name, imf_h5_last());
  return IMF_OK;
}

/* Collective: elements [start, start + cnt) of 1-d dataset d to/from buf, in rounds of at most
 * io_chunk bytes per rank (the same number of rounds on every rank; cnt may be 0). */
static imf_status io_1d(const io_ctx *c, hid_t d, hid_t mtype, size_t esize, int64_t start, int64_t cnt, void *buf,
                        int write, const char *name) {
  int64_t per = io_chunk / (int64_t)esize, rounds;
  if (per < 1) per = 1;
  rounds = (cnt + per - 1) / per;
  IMF_MPI(MPI_Allreduce(MPI_IN_PLACE, &rounds, 1, MPI_INT64_T, MPI_MAX, c->comm));
  hid_t fs = H5Dget_space(d);
  herr_t e = fs < 0 ? -1 : 0;
  static char dummy[16];
  for (int64_t t = 0; t < rounds && e >= 0; t++) {
    int64_t a = t * per, b = a + per < cnt ? a + per : cnt, n = b > a ? b - a : 0;
    hsize_t mdim = n ? (hsize_t)n : 1, off = (hsize_t)(start + a), count = (hsize_t)n;
    hid_t ms = H5Screate_simple(1, &mdim, NULL);
    e = ms < 0 ? -1 : 0;
    if (e >= 0 && n) e = H5Sselect_hyperslab(fs, H5S_SELECT_SET, &off, NULL, &count, NULL);
    if (e >= 0 && !n) e = H5Sselect_none(fs) < 0 || H5Sselect_none(ms) < 0 ? -1 : 0;
    void *p = n ? (char *)buf + (size_t)a * esize : (void *)dummy;
    if (e >= 0) e = write ? H5Dwrite(d, mtype, ms, fs, c->dxpl, p) : H5Dread(d, mtype, ms, fs, c->dxpl, p);
    if (e < 0) imf_h5_reason();
    if (ms >= 0) H5Sclose(ms);
  }
  if (fs >= 0) H5Sclose(fs);
  return io_status(c, write, name, e);
}

/* Collective: X as CSR over all users: /ease/x_ptr (i64, nusers + 1; row u's items are
 * x_idx[x_ptr[u] .. x_ptr[u + 1])) and /ease/x_idx (i32, nnz). Each rank writes its rows' offsets
 * (shifted by the entries of the rows before its range) and its entries; rank 0 the final
 * offset. The ranges were checked to cover [0, nusers) once. */
static imf_status put_x(const io_ctx *c, const imf_ease_rows *x, int64_t nusers, int64_t nnz) {
  imf_status st = IMF_OK;
  int64_t nr = x->hi - x->lo, mine[2] = {x->lo, nr > 0 ? x->ptr[nr] : 0}, off = 0;
  int64_t *all = NULL, *gp = NULL;
  hid_t d = -1;
  st = imf_alloc(&all, 2 * (size_t)c->size, sizeof *all);
  if (st == IMF_OK) st = imf_alloc(&gp, (size_t)(nr > 0 ? nr : 1), sizeof *gp);
  IMF_TRY(imf_agree(c->comm, st), out);
  IMF_MPI(MPI_Allgather(mine, 2, MPI_INT64_T, all, 2, MPI_INT64_T, c->comm));
  for (int r = 0; r < c->size; r++)
    if (all[2 * r] < x->lo) off += all[2 * r + 1];
  for (int64_t r = 0; r < nr; r++) gp[r] = off + x->ptr[r];
  IMF_TRY(imf_agree(c->comm, create_1d(c, "/ease/x_ptr", H5T_STD_I64LE, nusers + 1, &d)), out);
  st = io_1d(c, d, H5T_NATIVE_INT64, 8, x->lo, nr, gp, 1, "/ease/x_ptr");
  IMF_TRY(imf_agree(c->comm, st), out);
  st = io_1d(c, d, H5T_NATIVE_INT64, 8, nusers, c->rank == 0 ? 1 : 0, &nnz, 1, "/ease/x_ptr");
  IMF_TRY(imf_agree(c->comm, st), out);
  H5Dclose(d);
  d = -1;
  IMF_TRY(imf_agree(c->comm, create_1d(c, "/ease/x_idx", H5T_STD_I32LE, nnz, &d)), out);
  st = io_1d(c, d, H5T_NATIVE_INT32, 4, off, mine[1], x->idx, 1, "/ease/x_idx");
  st = imf_agree(c->comm, st);
out:
  if (d >= 0 && H5Dclose(d) < 0 && st == IMF_OK)
    st = imf_err_raise(IMF_ERR_RUNTIME, __FILE__, __LINE__, "%s: cannot write the EASE X: %s", c->path, imf_h5_reason());
  imf_free(&all);
  imf_free(&gp);
  return st;
}

/* (local) Open 1-d dataset `name` and check its length; -1 (with an error raised) otherwise. */
static hid_t open_1d(const io_ctx *c, const char *name, int64_t n, imf_status *st) {
  hid_t d = H5Dopen2(c->f, name, H5P_DEFAULT);
  hid_t fs = d < 0 ? -1 : H5Dget_space(d);
  hsize_t dims = 0;
  int ok = fs >= 0 && H5Sget_simple_extent_ndims(fs) == 1 && H5Sget_simple_extent_dims(fs, &dims, NULL) >= 0 &&
           dims == (hsize_t)n;
  if (fs >= 0) H5Sclose(fs);
  if (!ok) {
    if (d >= 0) H5Dclose(d);
    H5Eclear2(H5E_DEFAULT);
    *st = imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__, "%s is corrupt: dataset %s is missing or not of %lld elements",
                        c->path, name, (long long)n);
    return -1;
  }
  return d;
}

/* ------------------------------------------------------------------------------------------ */
/* attributes                                                                                 */

static imf_status attr_put(hid_t f, const char *name, hid_t ftype, hid_t mtype, const void *v,
                           const char *path) {
  hid_t sp = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(f, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT);
  herr_t e = a < 0 ? -1 : H5Awrite(a, mtype, v);
  if (e < 0) imf_h5_reason();
  if (a >= 0) H5Aclose(a);
  H5Sclose(sp);
  if (e < 0) IMF_FAIL(IMF_ERR_RUNTIME, "%s: cannot write attribute %s: %s", path, name, imf_h5_last());
  return IMF_OK;
}
static imf_status attr_i64(hid_t f, const char *name, int64_t v, const char *path) {
  return attr_put(f, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &v, path);
}
static imf_status attr_f64(hid_t f, const char *name, double v, const char *path) {
  return attr_put(f, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v, path);
}
static imf_status attr_str(hid_t f, const char *name, const char *v, const char *path) {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, strlen(v) + 1);
  H5Tset_strpad(t, H5T_STR_NULLTERM);
  imf_status st = attr_put(f, name, t, t, v, path);
  H5Tclose(t);
  return st;
}

/* Reading attributes: 1 = read, 0 = absent, -1 = unreadable. */
static int attr_get_num(hid_t f, const char *name, hid_t mtype, void *v) {
  if (H5Aexists(f, name) <= 0) return 0;
  hid_t a = H5Aopen(f, name, H5P_DEFAULT);
  if (a < 0) return -1;
  hid_t sp = H5Aget_space(a);
  int ok = sp >= 0 && H5Sget_simple_extent_npoints(sp) == 1 && H5Aread(a, mtype, v) >= 0;
  if (sp >= 0) H5Sclose(sp);
  H5Aclose(a);
  return ok ? 1 : -1;
}

/* A string attribute (fixed or variable length), malloc'd into *out. */
static int attr_get_str(hid_t f, const char *name, char **out) {
  *out = NULL;
  if (H5Aexists(f, name) <= 0) return 0;
  hid_t a = H5Aopen(f, name, H5P_DEFAULT);
  if (a < 0) return -1;
  hid_t ft = H5Aget_type(a);
  int ok = 0;
  if (ft >= 0 && H5Tget_class(ft) == H5T_STRING) {
    if (H5Tis_variable_str(ft) > 0) {
      hid_t mt = H5Tcopy(H5T_C_S1);
      H5Tset_size(mt, H5T_VARIABLE);
      char *s = NULL;
      if (H5Aread(a, mt, &s) >= 0 && s) {
        *out = strdup(s);
        ok = *out != NULL;
        H5free_memory(s);
      }
      H5Tclose(mt);
    } else {
      size_t sz = H5Tget_size(ft);
      hid_t mt = H5Tcopy(H5T_C_S1);
      H5Tset_size(mt, sz + 1);
      H5Tset_strpad(mt, H5T_STR_NULLTERM);
      char *s = calloc(sz + 2, 1);
      if (s && H5Aread(a, mt, s) >= 0) {
        *out = s;
        ok = 1;
      } else free(s);
      H5Tclose(mt);
    }
  }
  if (ft >= 0) H5Tclose(ft);
  H5Aclose(a);
  return ok ? 1 : -1;
}

/* Length of a 1-d dataset, or -1. */
static int64_t dset_len(hid_t f, const char *name) {
  if (H5Lexists(f, name, H5P_DEFAULT) <= 0) return -1;
  hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
  if (d < 0) return -1;
  hid_t sp = H5Dget_space(d);
  hsize_t dims[2] = {0, 0};
  int64_t n = -1;
  if (sp >= 0 && H5Sget_simple_extent_ndims(sp) == 1) {
    H5Sget_simple_extent_dims(sp, dims, NULL);
    n = (int64_t)dims[0];
  }
  if (sp >= 0) H5Sclose(sp);
  H5Dclose(d);
  return n;
}

/* ------------------------------------------------------------------------------------------ */
/* header: the attributes, plus the id blob sizes a reader needs before it reads              */

typedef struct {
  imf_ckpt_info info; /* config == NULL while broadcast */
  int64_t ublob, iblob;
} header;

static void copy_str(char *dst, size_t cap, const char *src) { snprintf(dst, cap, "%s", src ? src : ""); }

#define NOT_CKPT(path) \
  imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__, "%s is not an incremf model checkpoint (an HDF5 " \
                "file from another program?): give a file written by incremf train or update", path)
#define CORRUPT(path, what) \
  imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__, "%s is corrupt: %s", path, what)

/* (local, serial HDF5) Open path and read its attributes, checking that they describe a model
 * this build can read. */
static imf_status header_read(const char *path, header *h) {
  memset(h, 0, sizeof *h);
  imf_ckpt_info *in = &h->info;
  imf_h5_quiet();
  struct stat sb;
  if (stat(path, &sb) != 0) {
    if (errno == ENOENT) IMF_FAIL(IMF_ERR_NOTFOUND, "%s does not exist", path);
    IMF_FAIL(IMF_ERR_RUNTIME, "cannot access %s: %s", path, strerror(errno));
  }
  if (S_ISDIR(sb.st_mode))
    IMF_FAIL(IMF_ERR_INPUT, "%s is a directory, not a model checkpoint file", path);
  if (access(path, R_OK) != 0) IMF_FAIL(IMF_ERR_RUNTIME, "cannot read %s: %s", path, strerror(errno));
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) {
    imf_h5_reason();
    IMF_FAIL(IMF_ERR_INPUT, "%s is not a readable HDF5 file (truncated or corrupt?): restore it from "
             "a copy, or give a file written by incremf train or update", path);
  }
  imf_status st = IMF_OK;
  char *s = NULL;
  int rc = attr_get_str(f, "format", &s);
  if (rc != 1 || strcmp(s, IMF_CKPT_FORMAT) != 0) {
    st = NOT_CKPT(path);
    goto out;
  }
  free(s);
  s = NULL;
  rc = attr_get_num(f, "format_version", H5T_NATIVE_INT64, &in->format_version);
  if (rc != 1) {
    st = NOT_CKPT(path);
    goto out;
  }
  if (in->format_version > IMF_CKPT_FORMAT_VERSION) {
    st = imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__,
                       "%s was written by a newer incremf (model format %lld); upgrade incremf",
                       path, (long long)in->format_version);
    goto out;
  }
  if (in->format_version < 1) {
    st = CORRUPT(path, "bad format_version");
    goto out;
  }
  {
    int64_t k = 0, kw = 0, wb = 0, hc = 0;
    struct {
      const char *name;
      int64_t *v;
    } iv[] = {{"k", &k},
              {"kw", &kw},
              {"with_bias", &wb},
              {"has_chain", &hc},
              {"nusers", &in->nusers},
              {"nitems", &in->nitems},
              {"iteration", &in->iteration},
              {"nsamples", &in->nsamples},
              {"max_samples", &in->max_samples},
              {"burn_in", &in->burn_in},
              {"thin", &in->thin},
              {"chain_sweeps", &in->chain_sweeps},
              {"batches_seen", &in->batches_seen}};
    struct {
      const char *name;
      double *v;
    } dv[] = {{"mu", &in->mu}, {"lambda", &in->lambda}, {"lambda_bias", &in->lambda_bias},
              {"alpha", &in->alpha}};
    struct {
      const char *name;
      char *v;
      size_t cap;
    } sv[] = {{"store_digest", in->store_digest, sizeof in->store_digest},
              {"content_sha256", in->content_sha256, sizeof in->content_sha256},
              {"kind", in->kind, sizeof in->kind},
              {"openblas_core", in->openblas_core, sizeof in->openblas_core},
              {"created", in->created, sizeof in->created},
              {"incremf_version", in->incremf_version, sizeof in->incremf_version}};
    char what[128];
    for (size_t i = 0; i < sizeof iv / sizeof iv[0] && st == IMF_OK; i++)
      if (attr_get_num(f, iv[i].name, H5T_NATIVE_INT64, iv[i].v) != 1) {
        snprintf(what, sizeof what, "attribute %s is missing or unreadable", iv[i].name);
        st = CORRUPT(path, what);
      }
    for (size_t i = 0; i < sizeof dv / sizeof dv[0] && st == IMF_OK; i++)
      if (attr_get_num(f, dv[i].name, H5T_NATIVE_DOUBLE, dv[i].v) != 1) {
        snprintf(what, sizeof what, "attribute %s is missing or unreadable", dv[i].name);
        st = CORRUPT(path, what);
      }
    if (st == IMF_OK && attr_get_num(f, "seed", H5T_NATIVE_UINT64, &in->seed) != 1)
      st = CORRUPT(path, "attribute seed is missing or unreadable");
    for (size_t i = 0; i < sizeof sv / sizeof sv[0] && st == IMF_OK; i++) {
      if (attr_get_str(f, sv[i].name, &s) != 1) {
        snprintf(what, sizeof what, "attribute %s is missing or unreadable", sv[i].name);
        st = CORRUPT(path, what);
      } else copy_str(sv[i].v, sv[i].cap, s);
      free(s);
      s = NULL;
    }
    if (st == IMF_OK && attr_get_str(f, "type", &s) != 1)
      st = CORRUPT(path, "attribute type is missing or unreadable");
    if (st == IMF_OK) {
      if (!strcmp(s, "als")) in->type = IMF_MODEL_ALS;
      else if (!strcmp(s, "ials")) in->type = IMF_MODEL_IALS;
      else if (!strcmp(s, "bpmf")) in->type = IMF_MODEL_BPMF;
      else if (!strcmp(s, "ease")) in->type = IMF_MODEL_EASE;
      else if (!strcmp(s, "pop")) in->type = IMF_MODEL_POP;
      else if (!strcmp(s, "bias")) in->type = IMF_MODEL_BIAS;
      else st = CORRUPT(path, "unknown model type");
    }
    free(s);
    s = NULL;
    if (st == IMF_OK && attr_get_str(f, "config", &in->config) != 1)
      st = CORRUPT(path, "attribute config is missing or unreadable");
    if (st != IMF_OK) goto out;
    /* shapes a reader can trust before allocating */
    if (k < 1 || k > 1 << 20 || kw < k || kw % k != 0 || kw > INT_MAX || in->nusers < 0 ||
        in->nitems < 0 || in->nusers > INT32_MAX || in->nitems > INT32_MAX ||
        (wb && in->type != IMF_MODEL_ALS && in->type != IMF_MODEL_POP && in->type != IMF_MODEL_BIAS) ||
        (!wb && (in->type == IMF_MODEL_POP || in->type == IMF_MODEL_BIAS)) || (hc && in->type != IMF_MODEL_BPMF) ||
        (kw != k && in->type != IMF_MODEL_BPMF)) {
      st = CORRUPT(path, "its model shape attributes are inconsistent");
      goto out;
    }
    in->k = (int)k;
    in->kw = (int)kw;
    in->with_bias = wb != 0;
    in->has_chain = hc != 0;
  }
  in->nhistory = dset_len(f, "/history/iteration");
  int64_t uoff = dset_len(f, "/ids/user_off"), ioff = dset_len(f, "/ids/item_off");
  h->ublob = dset_len(f, "/ids/user_blob");
  h->iblob = dset_len(f, "/ids/item_blob");
  if (in->nhistory < 0 || uoff < 1 || ioff < 1 || h->ublob < 0 || h->iblob < 0) {
    st = CORRUPT(path, "the history or id datasets are missing");
    goto out;
  }
  in->nuser_ids = uoff - 1;
  in->nitem_ids = ioff - 1;
  if ((in->nuser_ids != 0 && in->nuser_ids != in->nusers) ||
      (in->nitem_ids != 0 && in->nitem_ids != in->nitems)) {
    st = CORRUPT(path, "its id lists do not match the model's users and items");
    goto out;
  }
  /* EASE state (optional: files written before it, and other model types, have none) */
  if (attr_get_num(f, "ease_items", H5T_NATIVE_INT64, &in->ease_items) < 0 ||
      attr_get_str(f, "ease_gram_hash", &s) < 0) {
    st = CORRUPT(path, "its EASE attributes are unreadable");
    goto out;
  }
  copy_str(in->ease_gram_hash, sizeof in->ease_gram_hash, s);
  free(s);
  s = NULL;
  if (attr_get_str(f, "ease_b_hash", &s) < 0) {
    st = CORRUPT(path, "its EASE attributes are unreadable");
    goto out;
  }
  copy_str(in->ease_b_hash, sizeof in->ease_b_hash, s);
  free(s);
  s = NULL;
  if (attr_get_str(f, "ease_x_hash", &s) < 0 ||
      attr_get_num(f, "ease_x_nnz", H5T_NATIVE_INT64, &in->ease_x_nnz) < 0) {
    st = CORRUPT(path, "its EASE attributes are unreadable");
    goto out;
  }
  copy_str(in->ease_x_hash, sizeof in->ease_x_hash, s);
  free(s);
  s = NULL;
  if (attr_get_str(f, "ease_p_hash", &s) < 0) {
    st = CORRUPT(path, "its EASE attributes are unreadable");
    goto out;
  }
  copy_str(in->ease_p_hash, sizeof in->ease_p_hash, s);
  /* the file name follows from the hash (never a path taken from the file) */
  if (strlen(in->ease_p_hash) == 32 && strspn(in->ease_p_hash, "0123456789abcdef") == 32)
    snprintf(in->ease_p_file, sizeof in->ease_p_file, "ease-p-%s.h5", in->ease_p_hash);
  else if (in->ease_p_hash[0]) {
    st = CORRUPT(path, "its EASE P hash is malformed");
    goto out;
  }
  in->ease_has_gram = strlen(in->ease_gram_hash) == 32;
  in->ease_has_b = strlen(in->ease_b_hash) == 32;
  in->ease_has_x = strlen(in->ease_x_hash) == 32;
  if (in->ease_items < 0 || (in->ease_items > 0 && (in->type != IMF_MODEL_EASE || in->ease_items != in->nitems ||
                                                    !(in->ease_has_gram || in->ease_has_b))))
    st = CORRUPT(path, "its EASE attributes do not match the model");
  /* sparse X: only with the EASE state, next to placeholder factors; at most nusers x nitems ones */
  if (st == IMF_OK && (in->ease_x_nnz < 0 || (!in->ease_has_x && in->ease_x_nnz != 0) ||
                       (in->ease_has_x && (in->ease_items <= 0 || in->k != 1 || in->kw != 1 ||
                                           (double)in->ease_x_nnz > (double)in->nusers * (double)in->nitems))))
    st = CORRUPT(path, "its EASE X attributes do not match the model");
  /* Everything a reader allocates from these numbers is stored in the file, uncompressed
   * (contiguous datasets, every element written): a header that promises more than the file
   * holds is corrupt, and must not make the reader allocate (and zero) gigabytes for a file of
   * a few kilobytes. */
  if (st == IMF_OK) {
    double rows = (double)in->nusers + (double)in->nitems, k = in->k;
    double need = rows * in->kw * 4.0 + (in->with_bias ? rows * 4.0 : 0.0) +
                  (in->has_chain ? rows * k * 4.0 + 16.0 * k * (1.0 + k) : 0.0) +
                  8.0 * NHIST * (double)in->nhistory + (double)h->ublob + (double)h->iblob +
                  8.0 * ((double)in->nuser_ids + (double)in->nitem_ids) +
                  (in->ease_has_x ? 8.0 * ((double)in->nusers + 1.0) + 4.0 * (double)in->ease_x_nnz : 0.0);
    if (need > (double)sb.st_size)
      st = CORRUPT(path, "its attributes promise more data than the file holds");
  }
out:
  free(s);
  if (st != IMF_OK) {
    free(in->config);
    in->config = NULL;
  }
  H5Eclear2(H5E_DEFAULT);
  H5Fclose(f);
  return st;
}

imf_status imf_checkpoint_info(const char *path, imf_ckpt_info *info) {
  header h;
  IMF_CHECK(header_read(path, &h));
  *info = h.info;
  return IMF_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* write                                                                                      */

/* (local) What the writer checks before touching the file. */
static imf_status check_input(const char *path, const imf_model *m, const imf_ckpt_meta *meta) {
  if (!m || !meta) IMF_FAIL(IMF_ERR_RUNTIME, "checkpoint write without a model or its meta");
  if (strlen(path) > 4000) IMF_FAIL(IMF_ERR_USAGE, "checkpoint path too long: %.64s...", path);
  if (m->k < 1 || m->kw < m->k || m->kw % m->k != 0 || m->nusers < 0 || m->nitems < 0 ||
      m->nusers > INT32_MAX || m->nitems > INT32_MAX || !m->P || !m->Q ||
      (m->with_bias && (!m->bu || !m->bi)) || m->nhistory < 0 || (m->nhistory && !m->history))
    IMF_FAIL(IMF_ERR_RUNTIME, "%s: refusing to write a malformed model (k=%d kw=%d)", path, m->k,
             m->kw);
  if (m->chain.U && (!m->chain.V || !m->chain.mu_u || !m->chain.mu_v || !m->chain.Lam_u ||
                     !m->chain.Lam_v))
    IMF_FAIL(IMF_ERR_RUNTIME, "%s: refusing to write an incomplete BPMF chain state", path);
  if (meta->ease && (m->type != IMF_MODEL_EASE || imf_ease_nitems(meta->ease) != m->nitems ||
                     !(imf_ease_gram(meta->ease) || imf_ease_b(meta->ease))))
    IMF_FAIL(IMF_ERR_RUNTIME, "%s: the EASE state (its B or Gram matrix, of the model's items) does not fit the model",
             path);
  if (meta->ease_x) {
    const imf_ease_rows *x = meta->ease_x;
    if (!meta->ease || m->k != 1 || m->kw != 1 || x->lo < 0 || x->hi < x->lo || x->hi > m->nusers || !x->ptr ||
        x->ptr[0] != 0)
      IMF_FAIL(IMF_ERR_RUNTIME, "%s: the EASE X rows [%lld, %lld) do not fit the model (handle of k = 1 with its "
               "state, %lld users)", path, (long long)x->lo, (long long)x->hi, (long long)m->nusers);
    for (int64_t r = 0; r < x->hi - x->lo; r++)
      for (int64_t q = x->ptr[r]; q < x->ptr[r + 1]; q++)
        if (x->idx[q] < 0 || x->idx[q] >= m->nitems || (q > x->ptr[r] && x->idx[q] <= x->idx[q - 1]))
          IMF_FAIL(IMF_ERR_RUNTIME, "%s: EASE X row %lld is not ascending items below %lld", path,
                   (long long)(x->lo + r), (long long)m->nitems);
  }
  if (meta->kind[0] && strcmp(meta->kind, "run") && strcmp(meta->kind, "version"))
    IMF_FAIL(IMF_ERR_RUNTIME, "%s: checkpoint kind '%s' is neither run nor version", path, meta->kind);
  const imf_idlist *ls[2] = {&meta->users, &meta->items};
  const int64_t want[2] = {m->nusers, m->nitems};
  for (int s = 0; s < 2; s++) {
    const imf_idlist *l = ls[s];
    if (l->n != 0 && l->n != want[s])
      IMF_FAIL(IMF_ERR_RUNTIME, "%s: %lld %s ids for a model of %lld %s", path, (long long)l->n,
               s ? "item" : "user", (long long)want[s], s ? "items" : "users");
    if (l->n && (!l->off || !l->blob || l->off[0] != 0))
      IMF_FAIL(IMF_ERR_RUNTIME, "%s: malformed id list", path);
    for (int64_t j = 0; j < l->n; j++)
      if (l->off[j + 1] < l->off[j]) IMF_FAIL(IMF_ERR_RUNTIME, "%s: malformed id list", path);
  }
  return IMF_OK;
}

static void fill_header(header *h, const imf_model *m, const imf_ckpt_meta *meta) {
  memset(h, 0, sizeof *h);
  imf_ckpt_info *in = &h->info;
  in->format_version = IMF_CKPT_FORMAT_VERSION;
  in->type = m->type;
  in->k = m->k;
  in->kw = m->kw;
  in->with_bias = m->with_bias != 0;
  in->has_chain = m->chain.U != NULL;
  in->nusers = m->nusers;
  in->nitems = m->nitems;
  in->mu = m->mu;
  in->lambda = m->lambda;
  in->lambda_bias = m->lambda_bias;
  in->alpha = m->alpha;
  in->seed = m->seed;
  in->iteration = m->iteration;
  in->nsamples = m->nsamples;
  in->max_samples = m->max_samples;
  in->burn_in = m->burn_in;
  in->thin = m->thin;
  in->chain_sweeps = m->chain.sweeps;
  in->nhistory = m->nhistory;
  in->nuser_ids = meta->users.n;
  in->nitem_ids = meta->items.n;
  in->batches_seen = meta->batches_seen;
  copy_str(in->store_digest, sizeof in->store_digest, meta->store_digest);
  copy_str(in->kind, sizeof in->kind, meta->kind[0] ? meta->kind : "run");
  const char *core = openblas_get_corename();
  copy_str(in->openblas_core, sizeof in->openblas_core,
           meta->openblas_core[0] ? meta->openblas_core : core ? core : "unknown");
  copy_str(in->incremf_version, sizeof in->incremf_version,
           meta->incremf_version[0] ? meta->incremf_version : IMF_VERSION);
  if (meta->created[0]) copy_str(in->created, sizeof in->created, meta->created);
  else {
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(in->created, sizeof in->created, "%Y-%m-%dT%H:%M:%SZ", &tm);
  }
  h->ublob = ids_off(&meta->users)[meta->users.n];
  h->iblob = ids_off(&meta->items)[meta->items.n];
}

/* Broadcast a malloc'd string from rank 0 (chunked: MPI counts are int). */
static imf_status bcast_str(MPI_Comm comm, int rank, char **s) {
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

static hid_t fapl_mpio(MPI_Comm comm) {
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (fapl < 0) return fapl;
  H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL);
  /* Metadata in collective mode: every rank sees the same attributes without N reads. */
  H5Pset_all_coll_metadata_ops(fapl, 1);
  H5Pset_coll_metadata_write(fapl, 1);
  /* The 1.8 file format: checksummed metadata, and attributes past 64 KiB (a long config). */
  H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST);
  return fapl;
}

/* Collective read-only open of a checkpoint for the EASE readers; every rank gets the same status. */
static imf_status open_ro(MPI_Comm comm, const char *path, hid_t *out) {
  imf_status st = IMF_OK;
  hid_t fapl = fapl_mpio(comm);
  hid_t f = fapl < 0 ? -1 : H5Fopen(path, H5F_ACC_RDONLY, fapl);
  if (fapl >= 0) H5Pclose(fapl);
  if (f < 0) {
    imf_h5_reason();
    st = imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__, "%s is not a readable HDF5 file (truncated or corrupt?)", path);
  }
  *out = f;
  return imf_agree(comm, st);
}

/* Write the attributes (identical on every rank: metadata writes are collective). */
static imf_status write_attrs(hid_t f, const imf_ckpt_info *in, const char *config, const char *p) {
  IMF_CHECK(attr_str(f, "format", IMF_CKPT_FORMAT, p));
  IMF_CHECK(attr_i64(f, "format_version", in->format_version, p));
  IMF_CHECK(attr_str(f, "type", imf_model_type_name(in->type), p));
  const struct {
    const char *name;
    int64_t v;
  } iv[] = {{"k", in->k},
            {"kw", in->kw},
            {"with_bias", in->with_bias},
            {"has_chain", in->has_chain},
            {"nusers", in->nusers},
            {"nitems", in->nitems},
            {"iteration", in->iteration},
            {"nsamples", in->nsamples},
            {"max_samples", in->max_samples},
            {"burn_in", in->burn_in},
            {"thin", in->thin},
            {"chain_sweeps", in->chain_sweeps},
            {"batches_seen", in->batches_seen}};
  for (size_t i = 0; i < sizeof iv / sizeof iv[0]; i++) IMF_CHECK(attr_i64(f, iv[i].name, iv[i].v, p));
  IMF_CHECK(attr_f64(f, "mu", in->mu, p));
  IMF_CHECK(attr_f64(f, "lambda", in->lambda, p));
  IMF_CHECK(attr_f64(f, "lambda_bias", in->lambda_bias, p));
  IMF_CHECK(attr_f64(f, "alpha", in->alpha, p));
  IMF_CHECK(attr_put(f, "seed", H5T_STD_U64LE, H5T_NATIVE_UINT64, &in->seed, p));
  IMF_CHECK(attr_str(f, "config", config, p));
  IMF_CHECK(attr_str(f, "store_digest", in->store_digest, p));
  IMF_CHECK(attr_str(f, "kind", in->kind, p));
  IMF_CHECK(attr_str(f, "openblas_core", in->openblas_core, p));
  IMF_CHECK(attr_str(f, "created", in->created, p));
  IMF_CHECK(attr_str(f, "incremf_version", in->incremf_version, p));
  IMF_CHECK(attr_str(f, "content_sha256", in->content_sha256, p));
  if (in->ease_items > 0) {
    IMF_CHECK(attr_i64(f, "ease_items", in->ease_items, p));
    IMF_CHECK(attr_str(f, "ease_gram_hash", in->ease_gram_hash, p));
    IMF_CHECK(attr_str(f, "ease_b_hash", in->ease_b_hash, p));
    if (in->ease_p_hash[0]) IMF_CHECK(attr_str(f, "ease_p_hash", in->ease_p_hash, p));
    if (in->ease_has_x) {
      IMF_CHECK(attr_i64(f, "ease_x_nnz", in->ease_x_nnz, p));
      IMF_CHECK(attr_str(f, "ease_x_hash", in->ease_x_hash, p));
    }
  }
  return IMF_OK;
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
      memcpy(h->col[j] + 8 * r, (const char *)&m->history[r] + HIST[j].offset, 8);
}
static void hist_from_cols(imf_model *m, const hist_cols *h) {
  for (int j = 0; j < NHIST; j++)
    for (int64_t r = 0; r < m->nhistory; r++)
      memcpy((char *)&m->history[r] + HIST[j].offset, h->col[j] + 8 * r, 8);
}

/* The P file of an EASE state (docs/FORMAT.md, "EASE P file"): /P (n x n f64, block-cyclic as
 * the version's matrices) and the attributes format, ease_items, lambda and ease_p_hash. */
#define IMF_EASE_P_FORMAT "incremf-ease-p"

/* Collective: write in->ease_p_file into the directory of version path vpath, unless a file of
 * that name (content-addressed: the same P) is there already. tmp name, flush, fsync, rename,
 * fsync of the directory, like a version. Test hook: IMF_FAULT=ease-p-before-rename. */
static imf_status write_p_file(MPI_Comm comm, const char *vpath, const imf_ckpt_info *in, imf_ease *e) {
  int rank, size;
  IMF_MPI(MPI_Comm_rank(comm, &rank));
  IMF_MPI(MPI_Comm_size(comm, &size));
  char dir[4200], path[4300], tmp[4310];
  imf_parent_dir(vpath, dir, sizeof dir);
  snprintf(path, sizeof path, "%s/%s", dir, in->ease_p_file);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  int have = rank == 0 && access(path, F_OK) == 0;
  IMF_MPI(MPI_Bcast(&have, 1, MPI_INT, 0, comm));
  if (have) return IMF_OK;
  imf_status st = IMF_OK;
  double n = (double)in->ease_items;
  if (rank == 0) st = imf_fs_need_space(dir, tmp, 8.0 * n * n + 65536.0);
  IMF_CHECK(imf_agree(comm, st));
  hid_t fapl = fapl_mpio(comm);
  hid_t f = fapl < 0 ? -1 : H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  if (f < 0) imf_h5_reason();
  if (fapl >= 0) H5Pclose(fapl);
  if (f < 0) st = imf_err_raise(IMF_ERR_RUNTIME, __FILE__, __LINE__, "%s: cannot create: %s", tmp, imf_h5_last());
  st = imf_agree(comm, st);
  if (st == IMF_OK) {
    io_ctx c = {comm, rank, size, f, H5Pcreate(H5P_DATASET_XFER), tmp};
    H5Pset_dxpl_mpio(c.dxpl, H5FD_MPIO_COLLECTIVE);
    st = imf_agree(comm, put_bc(&c, "/P", H5T_IEEE_F64LE, e, imf_ease_p(e)));
    if (st == IMF_OK) st = attr_str(f, "format", IMF_EASE_P_FORMAT, tmp);
    if (st == IMF_OK) st = attr_i64(f, "ease_items", in->ease_items, tmp);
    if (st == IMF_OK) st = attr_f64(f, "lambda", in->lambda, tmp);
    if (st == IMF_OK) st = attr_str(f, "ease_p_hash", in->ease_p_hash, tmp);
    if (st == IMF_OK && H5Fflush(f, H5F_SCOPE_GLOBAL) < 0)
      st = imf_err_raise(IMF_ERR_RUNTIME, __FILE__, __LINE__, "%s: cannot flush: %s", tmp, imf_h5_reason());
    st = imf_agree(comm, st);
    H5Pclose(c.dxpl);
  }
  if (f >= 0 && H5Fclose(f) < 0 && st == IMF_OK)
    st = imf_err_raise(IMF_ERR_RUNTIME, __FILE__, __LINE__, "%s: cannot close: %s", tmp, imf_h5_reason());
  st = imf_agree(comm, st);
  if (rank == 0 && st == IMF_OK) {
    st = imf_fsync_path(tmp, 0);
    if (st == IMF_OK && env_fault("ease-p-before-rename"))
      st = imf_err_raise(IMF_ERR_RUNTIME, __FILE__, __LINE__,
                         "injected fault (IMF_FAULT=ease-p-before-rename): %s not renamed to %s", tmp, path);
    else if (st == IMF_OK && rename(tmp, path) != 0)
      st = imf_err_raise(IMF_ERR_RUNTIME, __FILE__, __LINE__, "cannot rename %s to %s: %s", tmp, path,
                         strerror(errno));
    if (st == IMF_OK) st = imf_fsync_path(dir, 1);
  }
  if (rank == 0 && st != IMF_OK) unlink(tmp);
  return imf_agree(comm, st);
}

imf_status imf_checkpoint_write(MPI_Comm comm, const char *path, const imf_model *m,
                                const imf_ckpt_meta *meta) {
  int rank, size;
  IMF_MPI(MPI_Comm_rank(comm, &rank));
  IMF_MPI(MPI_Comm_size(comm, &size));
  imf_h5_quiet();
  imf_status st = check_input(path, m, meta);
  IMF_CHECK(imf_agree(comm, st));

  /* Rank 0's header and config are the file's: attribute values must agree on every rank,
   * and the digest (over the replicated model) is computed once. */
  header h;
  fill_header(&h, m, meta);
  const int legacy = imf_ease_legacy_format();
  if (meta->ease) { /* collective: the hashes enter the digest */
    h.info.ease_items = m->nitems;
    if (legacy && imf_ease_gram(meta->ease)) {
      IMF_CHECK(imf_ease_hash(meta->ease, 0, h.info.ease_gram_hash));
      h.info.ease_has_gram = 1;
    }
    if (imf_ease_b(meta->ease)) {
      if (!legacy) imf_ease_round_b(meta->ease); /* stored in f32: hash what is stored */
      IMF_CHECK(imf_ease_hash(meta->ease, 1, h.info.ease_b_hash));
      h.info.ease_has_b = 1;
    }
    if (!legacy && imf_ease_p(meta->ease)) { /* the P file first: a version never names a missing one */
      IMF_CHECK(imf_ease_hash(meta->ease, 2, h.info.ease_p_hash));
      snprintf(h.info.ease_p_file, sizeof h.info.ease_p_file, "ease-p-%s.h5", h.info.ease_p_hash);
      IMF_CHECK(write_p_file(comm, path, &h.info, meta->ease));
    }
    if (meta->ease_x) {
      IMF_CHECK(imf_ease_rows_cover(comm, meta->ease_x->lo, meta->ease_x->hi, m->nusers));
      IMF_CHECK(imf_ease_rows_hash(comm, meta->ease_x, m->nitems, &h.info.ease_x_nnz, h.info.ease_x_hash));
      h.info.ease_has_x = 1;
    }
  }
  if (rank == 0) st = model_digest(&h.info, m, &meta->users, &meta->items, h.info.content_sha256);
  IMF_CHECK(imf_agree(comm, st));
  IMF_MPI(MPI_Bcast(&h, (int)sizeof h, MPI_BYTE, 0, comm));
  char *config = rank == 0 ? strdup(meta->config ? meta->config : "") : NULL;
  if (rank == 0 && !config) st = imf_err_raise(IMF_ERR_NOMEM, __FILE__, __LINE__, "out of memory");
  IMF_CHECK(imf_agree(comm, st));
  IMF_TRY(bcast_str(comm, rank, &config), out_free);
  /* Every rank checks its replica has the shape rank 0 describes (a divergent replica would
   * otherwise write rows of a different shape). */
  if (h.info.nusers != m->nusers || h.info.nitems != m->nitems || h.info.kw != m->kw ||
      h.info.k != m->k || h.info.has_chain != (m->chain.U != NULL) ||
      h.info.with_bias != (m->with_bias != 0))
    st = imf_err_raise(IMF_ERR_RUNTIME, __FILE__, __LINE__,
                       "%s: the model differs in shape between ranks", path);
  hist_cols hc = {0};
  if (st == IMF_OK) st = hist_alloc(&hc, m->nhistory);
  IMF_TRY(imf_agree(comm, st), out_free);
  hist_to_cols(m, &hc);

  char tmp[4200], dir[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  imf_parent_dir(path, dir, sizeof dir);
  if (rank == 0) { /* a full disk is refused before HDF5 starts (see imf_fs_need_space) */
    double rows = (double)(m->nusers + m->nitems);
    double need = 4.0 * rows * (double)m->kw + (m->with_bias ? 4.0 * rows : 0.0) +
                  (m->chain.U ? 4.0 * rows * (double)m->k + 16.0 * (double)m->k * (double)(m->k + 1) : 0.0) +
                  48.0 * (double)m->nhistory + (double)h.ublob + (double)h.iblob +
                  8.0 * (double)(meta->users.n + meta->items.n + 2) + (double)strlen(config) +
                  (meta->ease ? (legacy ? 16.0 : 4.0) * (double)m->nitems * (double)m->nitems : 0.0) +
                  (h.info.ease_has_x ? 8.0 * (double)(m->nusers + 1) + 4.0 * (double)h.info.ease_x_nnz : 0.0) + 65536.0;
    st = imf_fs_need_space(dir, tmp, need);
  }
  IMF_TRY(imf_agree(comm, st), out_hist);
  hid_t fapl = fapl_mpio(comm);
  hid_t f = fapl < 0 ? -1 : H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  if (f < 0) imf_h5_reason();
  if (fapl >= 0) H5Pclose(fapl);
  if (f < 0) st = imf_err_raise(IMF_ERR_RUNTIME, __FILE__, __LINE__, "%s: cannot create: %s", tmp, imf_h5_last());
  /* H5Fcreate is collective and fails alike everywhere; agree anyway before more collectives */
  st = imf_agree(comm, st);
  if (st != IMF_OK) {
    if (f >= 0) H5Fclose(f);
    goto out_hist;
  }
  {
    io_ctx c = {comm, rank, size, f, H5Pcreate(H5P_DATASET_XFER), tmp};
    H5Pset_dxpl_mpio(c.dxpl, H5FD_MPIO_COLLECTIVE);
    int64_t k = m->k, kw = m->kw, nu = m->nusers, ni = m->nitems;
    const hid_t F32 = H5T_IEEE_F32LE, F64 = H5T_IEEE_F64LE, NF = H5T_NATIVE_FLOAT,
                ND = H5T_NATIVE_DOUBLE;
#define W(expr)                                                                               \
  do {                                                                                        \
    st = imf_agree(comm, (expr));                                                             \
    if (st != IMF_OK) goto close_file;                                                        \
  } while (0)
    W(put_rows(&c, "/factors/P", F32, NF, 4, 2, nu, kw, m->P, OWN_BLOCK));
    W(put_rows(&c, "/factors/Q", F32, NF, 4, 2, ni, kw, m->Q, OWN_BLOCK));
    if (h.info.with_bias) {
      W(put_rows(&c, "/bias/user", F32, NF, 4, 1, nu, 1, m->bu, OWN_BLOCK));
      W(put_rows(&c, "/bias/item", F32, NF, 4, 1, ni, 1, m->bi, OWN_BLOCK));
    }
    if (h.info.has_chain) {
      W(put_rows(&c, "/bpmf/U", F32, NF, 4, 2, nu, k, m->chain.U, OWN_BLOCK));
      W(put_rows(&c, "/bpmf/V", F32, NF, 4, 2, ni, k, m->chain.V, OWN_BLOCK));
      W(put_rows(&c, "/bpmf/mu_u", F64, ND, 8, 1, k, 1, m->chain.mu_u, OWN_ROOT));
      W(put_rows(&c, "/bpmf/mu_v", F64, ND, 8, 1, k, 1, m->chain.mu_v, OWN_ROOT));
      W(put_rows(&c, "/bpmf/Lam_u", F64, ND, 8, 2, k, k, m->chain.Lam_u, OWN_ROOT));
      W(put_rows(&c, "/bpmf/Lam_v", F64, ND, 8, 2, k, k, m->chain.Lam_v, OWN_ROOT));
    }
    int64_t nh = h.info.nhistory;
    for (int j = 0; j < NHIST; j++)
      W(put_rows(&c, HIST[j].name, HIST[j].is_int ? H5T_STD_I64LE : F64,
                 HIST[j].is_int ? H5T_NATIVE_INT64 : ND, 8, 1, nh, 1, hc.col[j], OWN_ROOT));
    const imf_idlist *ls[2] = {&meta->users, &meta->items};
    const char *bn[2] = {"/ids/user_blob", "/ids/item_blob"}, *on[2] = {"/ids/user_off", "/ids/item_off"};
    const int64_t nids[2] = {h.info.nuser_ids, h.info.nitem_ids}, blob[2] = {h.ublob, h.iblob};
    for (int s = 0; s < 2; s++) {
      W(put_rows(&c, bn[s], H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, 1, blob[s], 1, ls[s]->blob, OWN_ROOT));
      W(put_rows(&c, on[s], H5T_STD_I64LE, H5T_NATIVE_INT64, 8, 1, nids[s] + 1, 1, ids_off(ls[s]),
                 OWN_ROOT));
    }
    if (meta->ease) {
      if (h.info.ease_has_gram) W(put_bc(&c, "/ease/gram", F64, meta->ease, imf_ease_gram(meta->ease)));
      if (h.info.ease_has_b) W(put_bc(&c, "/ease/BT", legacy ? F64 : F32, meta->ease, imf_ease_b(meta->ease)));
      if (h.info.ease_has_x) W(put_x(&c, meta->ease_x, m->nusers, h.info.ease_x_nnz));
    }
    W(write_attrs(f, &h.info, config, tmp));
    /* The MPI-IO driver syncs only on an explicit flush (not on close): this makes every
     * rank's part durable, not only what rank 0 can fsync. */
    if (H5Fflush(f, H5F_SCOPE_GLOBAL) < 0)
      st = imf_err_raise(IMF_ERR_RUNTIME, __FILE__, __LINE__, "%s: cannot flush: %s", tmp, imf_h5_reason());
    W(st);
#undef W
  close_file:
    H5Pclose(c.dxpl);
    if (H5Fclose(f) < 0 && st == IMF_OK)
      st = imf_err_raise(IMF_ERR_RUNTIME, __FILE__, __LINE__, "%s: cannot close: %s", tmp, imf_h5_reason());
    st = imf_agree(comm, st);
  }
  if (st != IMF_OK) {
    if (rank == 0) unlink(tmp);
    goto out_hist;
  }
  /* ---- the file is complete under its tmp name: make it durable, then take the name ---- */
  if (rank == 0) {
    st = imf_fsync_path(tmp, 0);
    /* Testing hook: a crash after the file is complete and before it replaces the previous
     * one (the tmp file stays, as a crash would leave it). */
    if (st == IMF_OK && env_fault("checkpoint-before-rename"))
      st = imf_err_raise(IMF_ERR_RUNTIME, __FILE__, __LINE__,
                         "injected fault (IMF_FAULT=checkpoint-before-rename): %s not renamed to %s",
                         tmp, path);
    else if (st == IMF_OK && rename(tmp, path) != 0) {
      st = imf_err_raise(IMF_ERR_RUNTIME, __FILE__, __LINE__, "cannot rename %s to %s: %s", tmp,
                         path, strerror(errno));
      unlink(tmp);
    }
    if (st == IMF_OK) st = imf_fsync_path(dir, 1);
  }
  st = imf_agree(comm, st);
out_hist:
  hist_free(&hc);
out_free:
  free(config);
  return st;
}

/* ------------------------------------------------------------------------------------------ */
/* read                                                                                       */

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

imf_status imf_checkpoint_read(MPI_Comm comm, const char *path, imf_model **out,
                               imf_ckpt_meta *meta) {
  *out = NULL;
  if (meta) memset(meta, 0, sizeof *meta);
  int rank, size;
  IMF_MPI(MPI_Comm_rank(comm, &rank));
  IMF_MPI(MPI_Comm_size(comm, &size));
  imf_h5_quiet();
  header h;
  memset(&h, 0, sizeof h);
  imf_status st = IMF_OK;
  if (rank == 0) st = header_read(path, &h);
  IMF_CHECK(imf_agree(comm, st));
  char *config = h.info.config;
  h.info.config = NULL;
  IMF_MPI(MPI_Bcast(&h, (int)sizeof h, MPI_BYTE, 0, comm));
  imf_model *m = NULL;
  imf_idlist ids[2];
  memset(ids, 0, sizeof ids);
  hist_cols hc = {0};
  IMF_TRY(bcast_str(comm, rank, &config), out);
  const imf_ckpt_info *in = &h.info;
  st = model_from_header(in, &m);
  if (st == IMF_OK) st = idlist_alloc(&ids[0], in->nuser_ids, h.ublob);
  if (st == IMF_OK) st = idlist_alloc(&ids[1], in->nitem_ids, h.iblob);
  if (st == IMF_OK) st = hist_alloc(&hc, in->nhistory);
  IMF_TRY(imf_agree(comm, st), out);

  hid_t fapl = fapl_mpio(comm);
  hid_t f = fapl < 0 ? -1 : H5Fopen(path, H5F_ACC_RDONLY, fapl);
  if (fapl >= 0) H5Pclose(fapl);
  if (f < 0) {
    imf_h5_reason();
    st = imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__,
                       "%s is not a readable HDF5 file (truncated or corrupt?)", path);
  }
  st = imf_agree(comm, st);
  if (st != IMF_OK) {
    if (f >= 0) H5Fclose(f);
    goto out;
  }
  {
    io_ctx c = {comm, rank, size, f, H5Pcreate(H5P_DATASET_XFER), path};
    H5Pset_dxpl_mpio(c.dxpl, H5FD_MPIO_COLLECTIVE);
    int64_t k = m->k, kw = m->kw, nu = m->nusers, ni = m->nitems;
    const hid_t NF = H5T_NATIVE_FLOAT, ND = H5T_NATIVE_DOUBLE;
#define R(expr)                                                                               \
  do {                                                                                        \
    st = (expr);                                                                              \
    if (st != IMF_OK) goto close_file;                                                        \
  } while (0)
    R(get_rows(&c, "/factors/P", NF, 4, 2, nu, kw, m->P, OWN_BLOCK));
    R(get_rows(&c, "/factors/Q", NF, 4, 2, ni, kw, m->Q, OWN_BLOCK));
    if (in->with_bias) {
      R(get_rows(&c, "/bias/user", NF, 4, 1, nu, 1, m->bu, OWN_BLOCK));
      R(get_rows(&c, "/bias/item", NF, 4, 1, ni, 1, m->bi, OWN_BLOCK));
    }
    if (in->has_chain) {
      R(get_rows(&c, "/bpmf/U", NF, 4, 2, nu, k, m->chain.U, OWN_BLOCK));
      R(get_rows(&c, "/bpmf/V", NF, 4, 2, ni, k, m->chain.V, OWN_BLOCK));
      R(get_rows(&c, "/bpmf/mu_u", ND, 8, 1, k, 1, m->chain.mu_u, OWN_ROOT));
      R(get_rows(&c, "/bpmf/mu_v", ND, 8, 1, k, 1, m->chain.mu_v, OWN_ROOT));
      R(get_rows(&c, "/bpmf/Lam_u", ND, 8, 2, k, k, m->chain.Lam_u, OWN_ROOT));
      R(get_rows(&c, "/bpmf/Lam_v", ND, 8, 2, k, k, m->chain.Lam_v, OWN_ROOT));
    }
    int64_t nh = in->nhistory;
    for (int j = 0; j < NHIST; j++)
      R(get_rows(&c, HIST[j].name, HIST[j].is_int ? H5T_NATIVE_INT64 : ND, 8, 1, nh, 1, hc.col[j],
                 OWN_ROOT));
    const char *bn[2] = {"/ids/user_blob", "/ids/item_blob"}, *on[2] = {"/ids/user_off", "/ids/item_off"};
    const int64_t blob[2] = {h.ublob, h.iblob};
    for (int s = 0; s < 2; s++) {
      R(get_rows(&c, bn[s], H5T_NATIVE_UINT8, 1, 1, blob[s], 1, ids[s].blob, OWN_ROOT));
      R(get_rows(&c, on[s], H5T_NATIVE_INT64, 8, 1, ids[s].n + 1, 1, ids[s].off, OWN_ROOT));
    }
#undef R
  close_file:
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
    if (st == IMF_OK) st = model_digest(in, m, &ids[0], &ids[1], hex);
    if (st == IMF_OK && strcmp(hex, in->content_sha256) != 0)
      st = imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__,
                         "%s is corrupt: its content digest does not match (restore an earlier "
                         "version with `incremf rollback`)", path);
  }
  IMF_TRY(imf_agree(comm, st), out);
  if (meta) {
    meta->config = config;
    config = NULL;
    copy_str(meta->store_digest, sizeof meta->store_digest, in->store_digest);
    meta->batches_seen = in->batches_seen;
    meta->users = ids[0];
    meta->items = ids[1];
    memset(ids, 0, sizeof ids);
    copy_str(meta->kind, sizeof meta->kind, in->kind);
    copy_str(meta->openblas_core, sizeof meta->openblas_core, in->openblas_core);
    copy_str(meta->created, sizeof meta->created, in->created);
    copy_str(meta->incremf_version, sizeof meta->incremf_version, in->incremf_version);
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

/* Rank 0 reads the header (the config text left out), every rank gets it. */
static imf_status header_bcast(MPI_Comm comm, int rank, const char *path, header *h) {
  imf_h5_quiet();
  memset(h, 0, sizeof *h);
  imf_status st = IMF_OK;
  if (rank == 0) st = header_read(path, h);
  IMF_CHECK(imf_agree(comm, st));
  free(h->info.config);
  h->info.config = NULL;
  IMF_MPI(MPI_Bcast(h, (int)sizeof *h, MPI_BYTE, 0, comm));
  return IMF_OK;
}

imf_status imf_checkpoint_read_ease(MPI_Comm comm, const char *path, int want, int grid, imf_ease **out) {
  *out = NULL;
  int rank, size;
  IMF_MPI(MPI_Comm_rank(comm, &rank));
  IMF_MPI(MPI_Comm_size(comm, &size));
  header h;
  imf_status st = IMF_OK;
  IMF_CHECK(header_bcast(comm, rank, path, &h));
  const imf_ckpt_info *in = &h.info;
  if (in->type != IMF_MODEL_EASE || in->ease_items <= 0)
    IMF_FAIL(IMF_ERR_INPUT, "%s holds no EASE state (%s; a version written before incremf stored the Gram matrix "
             "must be retrained)", path, in->type != IMF_MODEL_EASE ? "not an EASE model" : "no /ease group");
  if (((want & IMF_CKPT_EASE_GRAM) && !in->ease_has_gram) || ((want & IMF_CKPT_EASE_B) && !in->ease_has_b))
    IMF_FAIL(IMF_ERR_INPUT, "%s holds no EASE %s", path, (want & IMF_CKPT_EASE_GRAM) && !in->ease_has_gram ? "Gram matrix" : "B");
  imf_ease *e = NULL;
  IMF_CHECK(want & IMF_CKPT_EASE_GRAM ? imf_ease_create(comm, in->ease_items, in->lambda, grid, &e)
                                      : imf_ease_create_empty(comm, in->ease_items, in->lambda, grid, &e));
  if (want & IMF_CKPT_EASE_B) st = imf_ease_alloc_b(e);
  IMF_TRY(imf_agree(comm, st), fail);
  hid_t f = -1;
  st = open_ro(comm, path, &f);
  if (st != IMF_OK) {
    if (f >= 0) H5Fclose(f);
    goto fail;
  }
  {
    io_ctx c = {comm, rank, size, f, H5Pcreate(H5P_DATASET_XFER), path};
    H5Pset_dxpl_mpio(c.dxpl, H5FD_MPIO_COLLECTIVE);
    if (want & IMF_CKPT_EASE_GRAM) st = get_bc(&c, "/ease/gram", e, imf_ease_gram(e));
    if (st == IMF_OK && (want & IMF_CKPT_EASE_B)) st = get_bc(&c, "/ease/BT", e, imf_ease_b(e));
    H5Pclose(c.dxpl);
    H5Fclose(f);
    H5Eclear2(H5E_DEFAULT);
  }
  IMF_TRY(st, fail);
  for (int which = 0; which < 2; which++) {
    if (!(want & (which ? IMF_CKPT_EASE_B : IMF_CKPT_EASE_GRAM))) continue;
    char hex[33];
    IMF_TRY(imf_ease_hash(e, which, hex), fail);
    if (strcmp(hex, which ? in->ease_b_hash : in->ease_gram_hash) != 0)
      IMF_TRY(imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__,
                            "%s is corrupt: its EASE %s does not match its hash (restore an earlier version with "
                            "`incremf rollback`)", path, which ? "B" : "Gram matrix"), fail);
  }
  *out = e;
  return IMF_OK;
fail:
  imf_ease_destroy(&e);
  return st;
}

imf_status imf_checkpoint_read_ease_p(MPI_Comm comm, const char *path, int grid, imf_ease **out) {
  *out = NULL;
  int rank, size;
  IMF_MPI(MPI_Comm_rank(comm, &rank));
  IMF_MPI(MPI_Comm_size(comm, &size));
  header h;
  IMF_CHECK(header_bcast(comm, rank, path, &h));
  const imf_ckpt_info *in = &h.info;
  if (in->type != IMF_MODEL_EASE || in->ease_items <= 0 || !in->ease_p_file[0])
    IMF_FAIL(IMF_ERR_NOTFOUND, "%s references no EASE P file", path);
  char dir[4200], pp[4300];
  imf_parent_dir(path, dir, sizeof dir);
  snprintf(pp, sizeof pp, "%s/%s", dir, in->ease_p_file);
  int have = rank == 0 && access(pp, R_OK) == 0;
  IMF_MPI(MPI_Bcast(&have, 1, MPI_INT, 0, comm));
  if (!have) IMF_FAIL(IMF_ERR_NOTFOUND, "%s: its EASE P file %s is gone (pruned)", path, pp);
  imf_status st = IMF_OK;
  imf_ease *e = NULL;
  hid_t f = -1;
  IMF_CHECK(open_ro(comm, pp, &f));
  int64_t n = 0;
  double lambda = 0;
  char *fmt = NULL, *hash = NULL;
  int ok = attr_get_str(f, "format", &fmt) == 1 && attr_get_num(f, "ease_items", H5T_NATIVE_INT64, &n) == 1 &&
           attr_get_num(f, "lambda", H5T_NATIVE_DOUBLE, &lambda) == 1 && attr_get_str(f, "ease_p_hash", &hash) == 1 &&
           !strcmp(fmt, IMF_EASE_P_FORMAT) && n == in->ease_items && lambda == in->lambda &&
           !strcmp(hash, in->ease_p_hash);
  free(fmt);
  free(hash);
  if (!ok) st = imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__, "%s does not match %s (not its P file)", pp, path);
  if (st == IMF_OK) st = imf_ease_create_empty(comm, n, lambda, grid, &e);
  if (st == IMF_OK) st = imf_agree(comm, imf_ease_alloc_p(e));
  if (st == IMF_OK) {
    io_ctx c = {comm, rank, size, f, H5Pcreate(H5P_DATASET_XFER), pp};
    H5Pset_dxpl_mpio(c.dxpl, H5FD_MPIO_COLLECTIVE);
    st = get_bc(&c, "/P", e, imf_ease_p(e));
    H5Pclose(c.dxpl);
  }
  H5Fclose(f);
  H5Eclear2(H5E_DEFAULT);
  st = imf_agree(comm, st);
  char hex[33];
  if (st == IMF_OK) st = imf_ease_hash(e, 2, hex);
  if (st == IMF_OK && strcmp(hex, in->ease_p_hash) != 0)
    st = imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__, "%s is corrupt: its P does not match its hash", pp);
  if (st != IMF_OK) {
    imf_ease_destroy(&e);
    return st;
  }
  *out = e;
  return IMF_OK;
}

/* (local) Rows of x: items in [0, nitems), strictly ascending. */
static int rows_valid(const imf_ease_rows *x, int64_t nitems) {
  for (int64_t r = 0; r < x->hi - x->lo; r++)
    for (int64_t q = x->ptr[r]; q < x->ptr[r + 1]; q++)
      if (x->idx[q] < 0 || x->idx[q] >= nitems || (q > x->ptr[r] && x->idx[q] <= x->idx[q - 1])) return 0;
  return 1;
}

/* Collective: rows [clo, chi) of X from the replicated form's /factors/P (nusers x nitems f32),
 * a round of rows at a time, into x (whose range contains [clo, chi)). */
static imf_status x_from_factors(const io_ctx *c, int64_t nitems, int64_t clo, int64_t chi, imf_ease_rows *x) {
  imf_status st = IMF_OK;
  hid_t d = H5Dopen2(c->f, "/factors/P", H5P_DEFAULT);
  hid_t fs = d < 0 ? -1 : H5Dget_space(d);
  float *buf = NULL;
  int64_t per = io_chunk / (4 * nitems), rounds, cap = 0, w = 0;
  if (per < 1) per = 1;
  rounds = (chi - clo + per - 1) / per;
  if (fs < 0) {
    H5Eclear2(H5E_DEFAULT);
    st = imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__, "%s is corrupt: dataset /factors/P is missing", c->path);
  }
  if (st == IMF_OK) st = imf_alloc_nz(&buf, (size_t)(per < chi - clo ? per : (chi > clo ? chi - clo : 1)) * (size_t)nitems,
                                      sizeof *buf);
  IMF_TRY(imf_agree(c->comm, st), out);
  IMF_MPI(MPI_Allreduce(MPI_IN_PLACE, &rounds, 1, MPI_INT64_T, MPI_MAX, c->comm));
  for (int64_t t = 0; t < rounds; t++) {
    int64_t a = clo + t * per, b = a + per < chi ? a + per : chi, cnt = b > a ? b - a : 0;
    hid_t ms = -1;
    herr_t e = select_rows(fs, 2, a, cnt, nitems, &ms);
    if (e >= 0) e = H5Dread(d, H5T_NATIVE_FLOAT, ms, fs, c->dxpl, buf);
    if (e < 0) imf_h5_reason();
    if (ms >= 0) H5Sclose(ms);
    if (e < 0)
      st = imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__, "%s is not a readable HDF5 file (truncated or corrupt?): "
                         "reading /factors/P: %s", c->path, imf_h5_last());
    for (int64_t u = a; u < b && st == IMF_OK; u++) {
      const float *row = buf + (size_t)(u - a) * (size_t)nitems;
      for (int64_t i = 0; i < nitems && st == IMF_OK; i++) {
        if (row[i] == 0.0f) continue;
        if (w == cap) {
          cap = cap ? 2 * cap : 1024;
          st = imf_realloc(&x->idx, (size_t)cap, sizeof *x->idx);
        }
        if (st == IMF_OK) x->idx[w++] = (int32_t)i;
      }
      x->ptr[u - x->lo + 1] = w;
    }
    IMF_TRY(imf_agree(c->comm, st), out);
  }
  for (int64_t u = chi; u < x->hi; u++) x->ptr[u - x->lo + 1] = w;
out:
  imf_free(&buf);
  if (fs >= 0) H5Sclose(fs);
  if (d >= 0) H5Dclose(d);
  H5Eclear2(H5E_DEFAULT);
  return st;
}

imf_status imf_checkpoint_read_ease_x(MPI_Comm comm, const char *path, int64_t lo, int64_t hi, imf_ease_rows *out) {
  memset(out, 0, sizeof *out);
  int rank, size;
  IMF_MPI(MPI_Comm_rank(comm, &rank));
  IMF_MPI(MPI_Comm_size(comm, &size));
  header h;
  imf_status st = IMF_OK;
  IMF_CHECK(header_bcast(comm, rank, path, &h));
  const imf_ckpt_info *in = &h.info;
  const int legacy = !in->ease_has_x;
  if (in->type != IMF_MODEL_EASE || (legacy && in->kw != in->nitems))
    IMF_FAIL(IMF_ERR_INPUT, "%s holds no EASE X (%s)", path,
             in->type != IMF_MODEL_EASE ? "not an EASE model" : "neither sparse nor in factor form");
  IMF_CHECK(imf_agree(comm, hi < lo ? imf_err_raise(IMF_ERR_USAGE, __FILE__, __LINE__, "bad user range [%lld, %lld)",
                                                     (long long)lo, (long long)hi)
                                     : IMF_OK));
  const int64_t N = in->nusers, ni = in->nitems, nnz = in->ease_x_nnz;
  IMF_CHECK(imf_ease_rows_cover(comm, lo, hi, N));
  int64_t clo = lo < 0 ? 0 : lo > N ? N : lo, chi = hi < 0 ? 0 : hi > N ? N : hi;
  if (chi < clo) chi = clo;
  out->lo = lo;
  out->hi = hi;
  int64_t *gp = NULL;
  st = imf_alloc(&out->ptr, (size_t)(hi - lo) + 1, sizeof *out->ptr);
  if (st == IMF_OK && !legacy) st = imf_alloc(&gp, (size_t)(chi - clo) + 1, sizeof *gp);
  IMF_TRY(imf_agree(comm, st), fail);
  hid_t f = -1;
  st = open_ro(comm, path, &f);
  if (st != IMF_OK) {
    if (f >= 0) H5Fclose(f);
    goto fail;
  }
  {
    io_ctx c = {comm, rank, size, f, H5Pcreate(H5P_DATASET_XFER), path};
    H5Pset_dxpl_mpio(c.dxpl, H5FD_MPIO_COLLECTIVE);
    if (legacy) {
      st = x_from_factors(&c, ni, clo, chi, out);
    } else {
      hid_t dp = open_1d(&c, "/ease/x_ptr", N + 1, &st), dx = -1;
      if (st == IMF_OK) dx = open_1d(&c, "/ease/x_idx", nnz, &st);
      st = imf_agree(comm, st);
      /* the rows' offsets (one more than the rows: neighbours read a shared boundary) */
      if (st == IMF_OK) st = imf_agree(comm, io_1d(&c, dp, H5T_NATIVE_INT64, 8, clo, chi - clo + 1, gp, 0, "/ease/x_ptr"));
      int64_t base = gp ? gp[0] : 0, cnt = gp ? gp[chi - clo] - gp[0] : 0;
      if (st == IMF_OK) {
        int ok = base >= 0 && gp[chi - clo] <= nnz && (clo > 0 || base == 0) && (chi < N || gp[chi - clo] == nnz);
        for (int64_t r = 0; r < chi - clo && ok; r++) ok = gp[r] <= gp[r + 1];
        if (!ok) st = imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__, "%s is corrupt: the offsets of its EASE X are "
                                    "not increasing from 0 to ease_x_nnz", path);
        if (st == IMF_OK) st = imf_alloc_nz(&out->idx, (size_t)(cnt > 0 ? cnt : 1), sizeof *out->idx);
        st = imf_agree(comm, st);
      }
      if (st == IMF_OK)
        st = imf_agree(comm, io_1d(&c, dx, H5T_NATIVE_INT32, 4, base, cnt, out->idx, 0, "/ease/x_idx"));
      if (st == IMF_OK) {
        for (int64_t u = lo; u < hi; u++)
          out->ptr[u - lo + 1] = u < clo ? 0 : u < chi ? gp[u - clo + 1] - base : cnt;
      }
      if (dp >= 0) H5Dclose(dp);
      if (dx >= 0) H5Dclose(dx);
    }
    H5Pclose(c.dxpl);
    H5Fclose(f);
    H5Eclear2(H5E_DEFAULT);
  }
  IMF_TRY(st, fail);
  if (!legacy) {
    st = rows_valid(out, ni) ? IMF_OK
                             : imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__, "%s is corrupt: a row of its EASE X is "
                                             "not ascending items below %lld", path, (long long)ni);
    IMF_TRY(imf_agree(comm, st), fail);
    char hex[33];
    int64_t got = 0;
    IMF_TRY(imf_ease_rows_hash(comm, out, ni, &got, hex), fail);
    if (got != nnz || strcmp(hex, in->ease_x_hash) != 0)
      IMF_TRY(imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__,
                            "%s is corrupt: its EASE X does not match its hash (restore an earlier version with "
                            "`incremf rollback`)", path), fail);
  }
  if (!out->idx) IMF_TRY(imf_agree(comm, imf_alloc(&out->idx, 1, sizeof *out->idx)), fail);
  imf_free(&gp);
  return IMF_OK;
fail:
  imf_free(&gp);
  imf_ease_rows_free(out);
  return st;
}
