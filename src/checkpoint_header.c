/* checkpoint_header.c - a checkpoint's header (its attributes: format, shape, training state,
 * provenance, the EASE hashes) written and read, the content digest over everything a file
 * stores, and the checks a reader relies on before it allocates: a missing, foreign, truncated,
 * newer or inconsistent file gives one clear message on rank 0 first. Private helpers:
 * checkpoint_impl.h. */
#include "checkpoint_impl.h"
#include "error.h"
#include "fsio.h"

#include <cblas.h>
#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>


/* Values enter the digest little-endian, whatever the host, so that the digest of a file is
 * the same everywhere (and can be recomputed from Python; see docs/FORMAT.md). c == NULL: a rank
 * that only sends its rows to rank 0 (ckpt_model_digest_blocks) takes no part. */
static void put_le(EVP_MD_CTX *c, const void *p, size_t n, size_t esize) {
  if (!c) return;
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
/* Bytes as they are (tags, hashes). */
static void put_raw(EVP_MD_CTX *c, const void *p, size_t n) {
  if (c) EVP_DigestUpdate(c, p, n);
}
/* An array: its element count, then its elements. */
static void put_arr(EVP_MD_CTX *c, const void *p, int64_t n, size_t esize) {
  put_u64(c, (uint64_t)n);
  if (n > 0) put_le(c, p, (size_t)n, esize);
}

static const int64_t zero_off = 0;
const int64_t *ckpt_ids_off(const imf_idlist *l) { return l->off ? l->off : &zero_off; }

/* The history columns: /history/NAME holds field NAME of every imf_sweep_metrics row. */
const ckpt_hist_col ckpt_hist[NHIST] = {{"/history/iteration", offsetof(imf_sweep_metrics, iteration), 1},
            {"/history/train_loss", offsetof(imf_sweep_metrics, train_loss), 0},
            {"/history/train_rmse", offsetof(imf_sweep_metrics, train_rmse), 0},
            {"/history/val_rmse", offsetof(imf_sweep_metrics, val_rmse), 0},
            {"/history/val_mae", offsetof(imf_sweep_metrics, val_mae), 0},
            {"/history/seconds", offsetof(imf_sweep_metrics, seconds), 0}};
/* A field added to imf_sweep_metrics must get its column here, or checkpoints would drop it. */
_Static_assert(sizeof(imf_sweep_metrics) == NHIST * 8, "imf_sweep_metrics changed: update ckpt_hist and NHIST");

/* The scalars that shape the model, in the order the digest takes them. */
static void put_header(EVP_MD_CTX *c, const imf_ckpt_info *h) {
  static const char tag[] = "incremf-model/1";
  put_raw(c, tag, sizeof tag); /* with its NUL */
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

/* Where the digest takes the rows of P, Q, the biases and chain U, V from: NULL: the model's
 * replicated arrays; otherwise a block model's blocks (start[0] users, start[1] items), streamed
 * to rank 0 in rounds so that no rank ever holds the whole model: rank 0 one round at a time in
 * buf (cap floats), cnt and dsp its MPI_Gatherv counts. */
typedef struct {
  MPI_Comm comm;
  int rank, size;
  const int64_t *start[2];
  float *buf;
  int64_t cap;
  int *cnt, *dsp;
} row_stream;

/* Rows per streamed round of rows of w floats: at most STREAM_BYTES and io_chunk bytes
 * (ckpt_io_chunk; MPI counts are int), at least one row (a row of a model fits: kw <= INT_MAX).
 * Rank 0 holds one round: small, since the point of a block model is that no rank holds an
 * array whole (measured: with io_chunk's 1 GiB rounds rank 0's peak was the digest's buffer). */
#define STREAM_BYTES ((int64_t)4 << 20)
static int64_t stream_per(int64_t w) {
  int64_t bytes = ckpt_io_chunk() < STREAM_BYTES ? ckpt_io_chunk() : STREAM_BYTES;
  int64_t p = bytes / (4 * w);
  return p < 1 ? 1 : p;
}

/* The overlap [*lo, *hi) of rank r's block with the rows [a, b) (empty: *hi <= *lo). */
static void overlap(const int64_t *start, int r, int64_t a, int64_t b, int64_t *lo, int64_t *hi) {
  *lo = start[r] > a ? start[r] : a;
  *hi = start[r + 1] < b ? start[r + 1] : b;
}

/* One round: global rows [a, b) of n x w, every rank sending its part of them (its rows of the
 * array from `mine`, which holds its block from row 0) to rank 0, which digests them in order. */
static imf_status stream_round(EVP_MD_CTX *c, row_stream *s, const int64_t *start, const float *mine, int64_t w,
                               int64_t a, int64_t b) {
  int64_t lo, hi;
  if (s->rank == 0)
    for (int r = 0; r < s->size; r++) {
      overlap(start, r, a, b, &lo, &hi);
      s->cnt[r] = hi > lo ? (int)((hi - lo) * w) : 0;
      s->dsp[r] = hi > lo ? (int)((lo - a) * w) : 0;
    }
  overlap(start, s->rank, a, b, &lo, &hi);
  const float *p = hi > lo ? mine + (size_t)(lo - start[s->rank]) * (size_t)w : mine;
  int rc = MPI_Gatherv(p, hi > lo ? (int)((hi - lo) * w) : 0, MPI_FLOAT, s->buf, s->cnt, s->dsp, MPI_FLOAT, 0,
                       s->comm);
  if (rc != MPI_SUCCESS) return IMF_MPI_RAISE(rc, "MPI_Gatherv of a block model's rows for its digest");
  put_le(c, s->buf, (size_t)((b - a) * w), 4);
  return IMF_OK;
}

/* An array of n rows of w floats (side 0 users, 1 items) as put_arr takes it: its element count,
 * then its elements, from the replicated array p or streamed from the ranks' blocks (p: this
 * rank's block). The pieces of a stream concatenated are the whole array, and so is the digest. */
static imf_status digest_rows(EVP_MD_CTX *c, row_stream *s, const float *p, int64_t n, int64_t w, int side) {
  if (!s) {
    put_arr(c, p, n * w, 4);
    return IMF_OK;
  }
  put_u64(c, (uint64_t)(n * w));
  const int64_t per = stream_per(w);
  for (int64_t a = 0; a < n; a += per)
    IMF_CHECK(stream_round(c, s, s->start[side], p, w, a, a + per < n ? a + per : n));
  return IMF_OK;
}

/* The EASE state (only when present, so the digests of other files are unchanged): its order
 * and the order-free hashes of its matrices, which a reader checks what it reads against. */
static void put_ease(EVP_MD_CTX *c, const imf_ckpt_info *h) {
  static const char etag[] = "ease";
  put_raw(c, etag, sizeof etag);
  put_u64(c, (uint64_t)h->ease_items);
  put_raw(c, h->ease_gram_hash, 32);
  put_raw(c, h->ease_b_hash, 32);
  /* X stored sparse: its entry count and order-free hash (absent from the older replicated
   * form, whose X is P and digested above) */
  if (h->ease_has_x) {
    static const char xtag[] = "ease-x";
    put_raw(c, xtag, sizeof xtag);
    put_u64(c, (uint64_t)h->ease_x_nnz);
    put_raw(c, h->ease_x_hash, 32);
  }
  /* the P file referenced (absent from versions written before P files) */
  if (h->ease_p_hash[0]) {
    static const char ptag[] = "ease-p";
    put_raw(c, ptag, sizeof ptag);
    put_raw(c, h->ease_p_hash, 32);
  }
}

/* Everything the digest takes, in its order; s as digest_rows takes it. */
static imf_status digest_model(EVP_MD_CTX *c, row_stream *s, const imf_ckpt_info *h, const imf_model *m,
                               const imf_idlist *u, const imf_idlist *it) {
  int64_t k = m->k, kw = m->kw;
  put_header(c, h);
  IMF_CHECK(digest_rows(c, s, m->P, m->nusers, kw, 0));
  IMF_CHECK(digest_rows(c, s, m->Q, m->nitems, kw, 1));
  if (m->with_bias) {
    IMF_CHECK(digest_rows(c, s, m->bu, m->nusers, 1, 0));
    IMF_CHECK(digest_rows(c, s, m->bi, m->nitems, 1, 1));
  }
  if (h->has_chain) {
    IMF_CHECK(digest_rows(c, s, m->chain.U, m->nusers, k, 0));
    IMF_CHECK(digest_rows(c, s, m->chain.V, m->nitems, k, 1));
    put_arr(c, m->chain.mu_u, k, 8);
    put_arr(c, m->chain.mu_v, k, 8);
    put_arr(c, m->chain.Lam_u, k * k, 8);
    put_arr(c, m->chain.Lam_v, k * k, 8);
  }
  /* history column by column, as stored */
  put_u64(c, (uint64_t)m->nhistory);
  for (int j = 0; j < NHIST; j++)
    for (int64_t r = 0; r < m->nhistory; r++)
      put_le(c, (const char *)&m->history[r] + ckpt_hist[j].offset, 1, 8);
  const imf_idlist *ls[2] = {u, it};
  for (int s2 = 0; s2 < 2; s2++) {
    const int64_t *off = ckpt_ids_off(ls[s2]);
    put_arr(c, off, ls[s2]->n + 1, 8);
    put_arr(c, ls[s2]->blob, off[ls[s2]->n], 1);
  }
  if (h->ease_items > 0) put_ease(c, h);
  return IMF_OK;
}

static imf_status digest_start(EVP_MD_CTX **out) {
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  if (!c || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1) {
    EVP_MD_CTX_free(c);
    IMF_FAIL(IMF_ERR_RUNTIME, "cannot start a sha256 digest");
  }
  *out = c;
  return IMF_OK;
}

/* The digest as hex (when st is IMF_OK); c freed either way. */
static imf_status digest_finish(EVP_MD_CTX *c, imf_status st, char hex[65]) {
  unsigned char md[32];
  unsigned int len = 0;
  int ok = st != IMF_OK || EVP_DigestFinal_ex(c, md, &len) == 1;
  EVP_MD_CTX_free(c);
  if (st != IMF_OK) return st;
  if (!ok) IMF_FAIL(IMF_ERR_RUNTIME, "cannot finish a sha256 digest");
  for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
  return IMF_OK;
}

imf_status ckpt_model_digest(const imf_ckpt_info *h, const imf_model *m, const imf_idlist *u,
                               const imf_idlist *it, char hex[65]) {
  EVP_MD_CTX *c = NULL;
  IMF_CHECK(digest_start(&c));
  return digest_finish(c, digest_model(c, NULL, h, m, u, it), hex);
}

/* (rank 0) The round buffer and the Gatherv counts of a stream: one round of the widest array
 * of those streamed, no more than the largest of them. */
static imf_status stream_alloc(row_stream *s, const imf_model *m) {
  const int64_t w[3] = {m->kw, 1, m->k}, n = m->nusers > m->nitems ? m->nusers : m->nitems;
  s->cap = 1;
  for (int j = 0; j < 3; j++) {
    const int64_t rows = stream_per(w[j]) < n ? stream_per(w[j]) : n;
    if (rows * w[j] > s->cap) s->cap = rows * w[j];
  }
  IMF_CHECK(imf_alloc_nz(&s->buf, (size_t)s->cap, sizeof *s->buf));
  IMF_CHECK(imf_alloc(&s->cnt, (size_t)s->size, sizeof *s->cnt));
  return imf_alloc(&s->dsp, (size_t)s->size, sizeof *s->dsp);
}

imf_status ckpt_model_digest_blocks(MPI_Comm comm, const int64_t *ustart, const int64_t *istart,
                                    const imf_ckpt_info *h, const imf_model *m, const imf_idlist *u,
                                    const imf_idlist *it, char hex[65]) {
  row_stream s = {comm, 0, 0, {ustart, istart}, NULL, 0, NULL, NULL};
  EVP_MD_CTX *c = NULL;
  imf_status st = IMF_OK;
  IMF_MPI_TRY(MPI_Comm_rank(comm, &s.rank), out);
  IMF_MPI_TRY(MPI_Comm_size(comm, &s.size), out);
  if (s.rank == 0) {
    st = digest_start(&c);
    if (st == IMF_OK) st = stream_alloc(&s, m);
  }
  IMF_TRY(imf_agree(comm, st), out);
  st = digest_model(c, &s, h, m, u, it);
  if (s.rank == 0) {
    st = digest_finish(c, st, hex);
    c = NULL;
  }
  st = imf_agree(comm, st);
out:
  if (c) EVP_MD_CTX_free(c);
  imf_free(&s.buf);
  imf_free(&s.cnt);
  imf_free(&s.dsp);
  return st;
}



void ckpt_copy_str(char *dst, size_t cap, const char *src) { snprintf(dst, cap, "%s", src ? src : ""); }

#define NOT_CKPT(path) \
  IMF_RAISE(IMF_ERR_INPUT, "%s is not an incremf model checkpoint (an HDF5 " \
                "file from another program?): give a file written by incremf train or update", path)
#define CORRUPT(path, what) \
  IMF_RAISE(IMF_ERR_INPUT, "%s is corrupt: %s", path, what)

/* (local) The file at path, opened serially (after saying plainly when it is missing, a
 * directory or unreadable); *size its size in bytes. */
static imf_status header_open(const char *path, hid_t *f, double *size) {
  struct stat sb;
  if (stat(path, &sb) != 0) {
    if (errno == ENOENT) IMF_FAIL(IMF_ERR_NOTFOUND, "%s does not exist", path);
    IMF_FAIL(IMF_ERR_RUNTIME, "cannot access %s: %s", path, strerror(errno));
  }
  if (S_ISDIR(sb.st_mode))
    IMF_FAIL(IMF_ERR_INPUT, "%s is a directory, not a model checkpoint file", path);
  if (access(path, R_OK) != 0) IMF_FAIL(IMF_ERR_RUNTIME, "cannot read %s: %s", path, strerror(errno));
  *f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (*f < 0) {
    imf_h5_reason();
    IMF_FAIL(IMF_ERR_INPUT, "%s is not a readable HDF5 file (truncated or corrupt?): restore it from "
             "a copy, or give a file written by incremf train or update", path);
  }
  *size = (double)sb.st_size;
  return IMF_OK;
}

/* An incremf model file of a format version this build reads. */
static imf_status header_format(hid_t f, const char *path, imf_ckpt_info *in) {
  char *s = NULL;
  int rc = imf_h5_attr_get_str(f, "format", &s);
  int ours = rc == 1 && strcmp(s, IMF_CKPT_FORMAT) == 0;
  free(s);
  if (!ours || imf_h5_attr_get_num(f, "format_version", H5T_NATIVE_INT64, &in->format_version) != 1)
    return NOT_CKPT(path);
  if (in->format_version > IMF_CKPT_FORMAT_VERSION)
    IMF_FAIL(IMF_ERR_INPUT, "%s was written by a newer incremf (model format %lld); upgrade incremf", path,
             (long long)in->format_version);
  if (in->format_version < 1) return CORRUPT(path, "bad format_version");
  return IMF_OK;
}

/* A required attribute that is missing or unreadable. */
static imf_status header_missing(const char *path, const char *name) {
  char what[128];
  snprintf(what, sizeof what, "attribute %s is missing or unreadable", name);
  return CORRUPT(path, what);
}

/* The model type from its name. */
static imf_status header_type(hid_t f, const char *path, imf_ckpt_info *in) {
  char *s = NULL;
  imf_status st = IMF_OK;
  if (imf_h5_attr_get_str(f, "type", &s) != 1) st = CORRUPT(path, "attribute type is missing or unreadable");
  else if (!strcmp(s, "als")) in->type = IMF_MODEL_ALS;
  else if (!strcmp(s, "ials")) in->type = IMF_MODEL_IALS;
  else if (!strcmp(s, "bpmf")) in->type = IMF_MODEL_BPMF;
  else if (!strcmp(s, "ease")) in->type = IMF_MODEL_EASE;
  else if (!strcmp(s, "pop")) in->type = IMF_MODEL_POP;
  else if (!strcmp(s, "bias")) in->type = IMF_MODEL_BIAS;
  else st = CORRUPT(path, "unknown model type");
  free(s);
  return st;
}

/* The required attributes: shape (into sh: k, kw, with_bias, has_chain, as stored), training
 * state, provenance, type and config (in->config malloc'd). */
static imf_status header_scalars(hid_t f, const char *path, imf_ckpt_info *in, int64_t sh[4]) {
  const struct {
    const char *name;
    int64_t *v;
  } iv[] = {{"k", &sh[0]},
            {"kw", &sh[1]},
            {"with_bias", &sh[2]},
            {"has_chain", &sh[3]},
            {"nusers", &in->nusers},
            {"nitems", &in->nitems},
            {"iteration", &in->iteration},
            {"nsamples", &in->nsamples},
            {"max_samples", &in->max_samples},
            {"burn_in", &in->burn_in},
            {"thin", &in->thin},
            {"chain_sweeps", &in->chain_sweeps},
            {"batches_seen", &in->batches_seen}};
  const struct {
    const char *name;
    double *v;
  } dv[] = {{"mu", &in->mu}, {"lambda", &in->lambda}, {"lambda_bias", &in->lambda_bias}, {"alpha", &in->alpha}};
  const struct {
    const char *name;
    char *v;
    size_t cap;
  } sv[] = {{"store_digest", in->store_digest, sizeof in->store_digest},
            {"content_sha256", in->content_sha256, sizeof in->content_sha256},
            {"kind", in->kind, sizeof in->kind},
            {"openblas_core", in->openblas_core, sizeof in->openblas_core},
            {"created", in->created, sizeof in->created},
            {"incremf_version", in->incremf_version, sizeof in->incremf_version}};
  for (size_t i = 0; i < sizeof iv / sizeof iv[0]; i++)
    if (imf_h5_attr_get_num(f, iv[i].name, H5T_NATIVE_INT64, iv[i].v) != 1) return header_missing(path, iv[i].name);
  for (size_t i = 0; i < sizeof dv / sizeof dv[0]; i++)
    if (imf_h5_attr_get_num(f, dv[i].name, H5T_NATIVE_DOUBLE, dv[i].v) != 1) return header_missing(path, dv[i].name);
  if (imf_h5_attr_get_num(f, "seed", H5T_NATIVE_UINT64, &in->seed) != 1) return header_missing(path, "seed");
  for (size_t i = 0; i < sizeof sv / sizeof sv[0]; i++) {
    char *s = NULL;
    int ok = imf_h5_attr_get_str(f, sv[i].name, &s) == 1;
    if (ok) ckpt_copy_str(sv[i].v, sv[i].cap, s);
    free(s);
    if (!ok) return header_missing(path, sv[i].name);
  }
  IMF_CHECK(header_type(f, path, in));
  if (imf_h5_attr_get_str(f, "config", &in->config) != 1) return header_missing(path, "config");
  return IMF_OK;
}

/* The shapes a reader can trust before allocating: sh = k, kw, with_bias, has_chain as stored. */
static imf_status header_shape(const char *path, imf_ckpt_info *in, const int64_t sh[4]) {
  const int64_t k = sh[0], kw = sh[1], wb = sh[2], hc = sh[3];
  if (k < 1 || k > 1 << 20 || kw < k || kw % k != 0 || kw > INT_MAX || in->nusers < 0 || in->nitems < 0 ||
      in->nusers > INT32_MAX || in->nitems > INT32_MAX ||
      (wb && in->type != IMF_MODEL_ALS && in->type != IMF_MODEL_POP && in->type != IMF_MODEL_BIAS) ||
      (!wb && (in->type == IMF_MODEL_POP || in->type == IMF_MODEL_BIAS)) || (hc && in->type != IMF_MODEL_BPMF) ||
      (kw != k && in->type != IMF_MODEL_BPMF))
    return CORRUPT(path, "its model shape attributes are inconsistent");
  in->k = (int)k;
  in->kw = (int)kw;
  in->with_bias = wb != 0;
  in->has_chain = hc != 0;
  return IMF_OK;
}

/* The lengths of the history and the id lists, which the attributes do not record. */
static imf_status header_lengths(hid_t f, const char *path, header *h) {
  imf_ckpt_info *in = &h->info;
  in->nhistory = imf_h5_len_at(f, "/history/iteration");
  int64_t uoff = imf_h5_len_at(f, "/ids/user_off"), ioff = imf_h5_len_at(f, "/ids/item_off");
  h->ublob = imf_h5_len_at(f, "/ids/user_blob");
  h->iblob = imf_h5_len_at(f, "/ids/item_blob");
  if (in->nhistory < 0 || uoff < 1 || ioff < 1 || h->ublob < 0 || h->iblob < 0)
    return CORRUPT(path, "the history or id datasets are missing");
  in->nuser_ids = uoff - 1;
  in->nitem_ids = ioff - 1;
  if ((in->nuser_ids != 0 && in->nuser_ids != in->nusers) || (in->nitem_ids != 0 && in->nitem_ids != in->nitems))
    return CORRUPT(path, "its id lists do not match the model's users and items");
  return IMF_OK;
}

/* An optional string attribute into buf[cap] ("" when absent); -1 when unreadable. */
static int header_opt_str(hid_t f, const char *name, char *buf, size_t cap) {
  char *s = NULL;
  int rc = imf_h5_attr_get_str(f, name, &s);
  ckpt_copy_str(buf, cap, s);
  free(s);
  return rc;
}

/* The EASE state's attributes (optional: files written before it, and other model types, have
 * none), checked against the model. */
static imf_status header_ease(hid_t f, const char *path, imf_ckpt_info *in) {
  const char *unreadable = "its EASE attributes are unreadable";
  if (imf_h5_attr_get_num(f, "ease_items", H5T_NATIVE_INT64, &in->ease_items) < 0 ||
      header_opt_str(f, "ease_gram_hash", in->ease_gram_hash, sizeof in->ease_gram_hash) < 0 ||
      header_opt_str(f, "ease_b_hash", in->ease_b_hash, sizeof in->ease_b_hash) < 0)
    return CORRUPT(path, unreadable);
  if (header_opt_str(f, "ease_x_hash", in->ease_x_hash, sizeof in->ease_x_hash) < 0 ||
      imf_h5_attr_get_num(f, "ease_x_nnz", H5T_NATIVE_INT64, &in->ease_x_nnz) < 0)
    return CORRUPT(path, unreadable);
  if (header_opt_str(f, "ease_p_hash", in->ease_p_hash, sizeof in->ease_p_hash) < 0) return CORRUPT(path, unreadable);
  /* the file name follows from the hash (never a path taken from the file) */
  if (strlen(in->ease_p_hash) == 32 && strspn(in->ease_p_hash, "0123456789abcdef") == 32)
    snprintf(in->ease_p_file, sizeof in->ease_p_file, "ease-p-%s.h5", in->ease_p_hash);
  else if (in->ease_p_hash[0])
    return CORRUPT(path, "its EASE P hash is malformed");
  in->ease_has_gram = strlen(in->ease_gram_hash) == 32;
  in->ease_has_b = strlen(in->ease_b_hash) == 32;
  in->ease_has_x = strlen(in->ease_x_hash) == 32;
  if (in->ease_items < 0 || (in->ease_items > 0 && (in->type != IMF_MODEL_EASE || in->ease_items != in->nitems ||
                                                    !(in->ease_has_gram || in->ease_has_b))))
    return CORRUPT(path, "its EASE attributes do not match the model");
  /* sparse X: only with the EASE state, next to placeholder factors; at most nusers x nitems ones */
  if (in->ease_x_nnz < 0 || (!in->ease_has_x && in->ease_x_nnz != 0) ||
      (in->ease_has_x && (in->ease_items <= 0 || in->k != 1 || in->kw != 1 ||
                          (double)in->ease_x_nnz > (double)in->nusers * (double)in->nitems)))
    return CORRUPT(path, "its EASE X attributes do not match the model");
  return IMF_OK;
}

/* Everything a reader allocates from these numbers is stored in the file, uncompressed
 * (contiguous datasets, every element written): a header that promises more than the file
 * holds is corrupt, and must not make the reader allocate (and zero) gigabytes for a file of a
 * few kilobytes. */
static imf_status header_fits(const char *path, const header *h, double size) {
  const imf_ckpt_info *in = &h->info;
  double rows = (double)in->nusers + (double)in->nitems, k = in->k;
  double need = rows * in->kw * 4.0 + (in->with_bias ? rows * 4.0 : 0.0) +
                (in->has_chain ? rows * k * 4.0 + 16.0 * k * (1.0 + k) : 0.0) +
                8.0 * NHIST * (double)in->nhistory + (double)h->ublob + (double)h->iblob +
                8.0 * ((double)in->nuser_ids + (double)in->nitem_ids) +
                (in->ease_has_x ? 8.0 * ((double)in->nusers + 1.0) + 4.0 * (double)in->ease_x_nnz : 0.0);
  if (need > size) return CORRUPT(path, "its attributes promise more data than the file holds");
  return IMF_OK;
}

imf_status ckpt_header_read(const char *path, header *h) {
  memset(h, 0, sizeof *h);
  imf_ckpt_info *in = &h->info;
  imf_h5_quiet();
  hid_t f = -1;
  double size = 0;
  IMF_CHECK(header_open(path, &f, &size));
  int64_t sh[4] = {0, 0, 0, 0};
  imf_status st = header_format(f, path, in);
  if (st == IMF_OK) st = header_scalars(f, path, in, sh);
  if (st == IMF_OK) st = header_shape(path, in, sh);
  if (st == IMF_OK) st = header_lengths(f, path, h);
  if (st == IMF_OK) st = header_ease(f, path, in);
  if (st == IMF_OK) st = header_fits(path, h, size);
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
  IMF_CHECK(ckpt_header_read(path, &h));
  *info = h.info;
  return IMF_OK;
}


/* (local) A block model's own blocks lie within its rows; it is never node-shared nor EASE. */
static imf_status check_blocks(const char *path, const imf_model *m, const imf_ckpt_meta *meta) {
  if (!m->blocked) return IMF_OK;
  if (m->shm || meta->ease || meta->ease_x || m->type == IMF_MODEL_EASE)
    IMF_FAIL(IMF_ERR_RUNTIME, "%s: refusing to write a block model that is node-shared or EASE (neither is "
             "ever a block model)", path);
  if (m->ublock[0] < 0 || m->ublock[1] < m->ublock[0] || m->ublock[1] > m->nusers || m->iblock[0] < 0 ||
      m->iblock[1] < m->iblock[0] || m->iblock[1] > m->nitems)
    IMF_FAIL(IMF_ERR_RUNTIME, "%s: block model's rows [%lld, %lld) of users and [%lld, %lld) of items are not "
             "within its %lld users and %lld items", path, (long long)m->ublock[0], (long long)m->ublock[1],
             (long long)m->iblock[0], (long long)m->iblock[1], (long long)m->nusers, (long long)m->nitems);
  return IMF_OK;
}

/* (local) What the writer checks before touching the file (of a block model, the rank's own
 * blocks: that the ranks' blocks tile the rows is imf_model_blocks's check, collective). */
imf_status ckpt_check_input(const char *path, const imf_model *m, const imf_ckpt_meta *meta) {
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
  IMF_CHECK(check_blocks(path, m, meta));
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

void ckpt_fill_header(header *h, const imf_model *m, const imf_ckpt_meta *meta) {
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
  ckpt_copy_str(in->store_digest, sizeof in->store_digest, meta->store_digest);
  ckpt_copy_str(in->kind, sizeof in->kind, meta->kind[0] ? meta->kind : "run");
  const char *core = openblas_get_corename();
  ckpt_copy_str(in->openblas_core, sizeof in->openblas_core,
           meta->openblas_core[0] ? meta->openblas_core : core ? core : "unknown");
  ckpt_copy_str(in->incremf_version, sizeof in->incremf_version,
           meta->incremf_version[0] ? meta->incremf_version : IMF_VERSION);
  if (meta->created[0]) ckpt_copy_str(in->created, sizeof in->created, meta->created);
  else {
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(in->created, sizeof in->created, "%Y-%m-%dT%H:%M:%SZ", &tm);
  }
  h->ublob = ckpt_ids_off(&meta->users)[meta->users.n];
  h->iblob = ckpt_ids_off(&meta->items)[meta->items.n];
}

/* Write the attributes (identical on every rank: metadata writes are collective). */
imf_status ckpt_write_attrs(hid_t f, const imf_ckpt_info *in, const char *config, const char *p) {
  IMF_CHECK(imf_h5_attr_str(f, "format", IMF_CKPT_FORMAT, p));
  IMF_CHECK(imf_h5_attr_i64(f, "format_version", in->format_version, p));
  IMF_CHECK(imf_h5_attr_str(f, "type", imf_model_type_name(in->type), p));
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
  for (size_t i = 0; i < sizeof iv / sizeof iv[0]; i++) IMF_CHECK(imf_h5_attr_i64(f, iv[i].name, iv[i].v, p));
  IMF_CHECK(imf_h5_attr_f64(f, "mu", in->mu, p));
  IMF_CHECK(imf_h5_attr_f64(f, "lambda", in->lambda, p));
  IMF_CHECK(imf_h5_attr_f64(f, "lambda_bias", in->lambda_bias, p));
  IMF_CHECK(imf_h5_attr_f64(f, "alpha", in->alpha, p));
  IMF_CHECK(imf_h5_attr_put(f, "seed", H5T_STD_U64LE, H5T_NATIVE_UINT64, &in->seed, 1, p));
  IMF_CHECK(imf_h5_attr_str(f, "config", config, p));
  IMF_CHECK(imf_h5_attr_str(f, "store_digest", in->store_digest, p));
  IMF_CHECK(imf_h5_attr_str(f, "kind", in->kind, p));
  IMF_CHECK(imf_h5_attr_str(f, "openblas_core", in->openblas_core, p));
  IMF_CHECK(imf_h5_attr_str(f, "created", in->created, p));
  IMF_CHECK(imf_h5_attr_str(f, "incremf_version", in->incremf_version, p));
  IMF_CHECK(imf_h5_attr_str(f, "content_sha256", in->content_sha256, p));
  if (in->ease_items > 0) {
    IMF_CHECK(imf_h5_attr_i64(f, "ease_items", in->ease_items, p));
    IMF_CHECK(imf_h5_attr_str(f, "ease_gram_hash", in->ease_gram_hash, p));
    IMF_CHECK(imf_h5_attr_str(f, "ease_b_hash", in->ease_b_hash, p));
    if (in->ease_p_hash[0]) IMF_CHECK(imf_h5_attr_str(f, "ease_p_hash", in->ease_p_hash, p));
    if (in->ease_has_x) {
      IMF_CHECK(imf_h5_attr_i64(f, "ease_x_nnz", in->ease_x_nnz, p));
      IMF_CHECK(imf_h5_attr_str(f, "ease_x_hash", in->ease_x_hash, p));
    }
  }
  return IMF_OK;
}

/* Rank 0 reads the header (the config text left out), every rank gets it. */
imf_status ckpt_header_bcast(MPI_Comm comm, int rank, const char *path, header *h) {
  imf_h5_quiet();
  memset(h, 0, sizeof *h);
  imf_status st = IMF_OK;
  if (rank == 0) st = ckpt_header_read(path, h);
  IMF_CHECK(imf_agree(comm, st));
  free(h->info.config);
  h->info.config = NULL;
  IMF_MPI(MPI_Bcast(h, (int)sizeof *h, MPI_BYTE, 0, comm));
  return IMF_OK;
}
