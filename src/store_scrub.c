/* store_scrub.c - the right to be forgotten in the store: the manifest's tombstone list of
 * forgotten users (every read drops their ratings), the id list a model version may record, and
 * scrubbing, which erases their rows and raw ids from the batch files themselves. Private
 * helpers: store_impl.h. */
#include "store_impl.h"
#include "error.h"
#include "fsio.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int imf_store_is_forgotten(const imf_store *s, int64_t user) {
  int64_t lo = 0, hi = s->m.nforgotten;
  while (lo < hi) {
    int64_t mid = lo + (hi - lo) / 2;
    if (s->m.forgotten[mid] < user) lo = mid + 1;
    else hi = mid;
  }
  return lo < s->m.nforgotten && s->m.forgotten[lo] == user;
}

imf_status imf_store_forget_user(imf_store *s, int64_t user) {
  imf_status st = IMF_OK;
  if (s->mode != IMF_STORE_WRITE || (s->rank == 0 && !s->lock))
    st = IMF_RAISE(IMF_ERR_RUNTIME, "%s: forget needs the store opened for writing", s->dir);
  else if (user < 0 || user >= s->m.users)
    st = IMF_RAISE(IMF_ERR_NOTFOUND, "user index %lld is not in the store", (long long)user);
  IMF_CHECK(imf_agree(s->comm, st));
  if (imf_store_is_forgotten(s, user)) return IMF_OK;
  int64_t *f = malloc((size_t)(s->m.nforgotten + 1) * sizeof *f);
  st = f ? IMF_OK : IMF_RAISE(IMF_ERR_NOMEM, "out of memory");
  IMF_CHECK(imf_agree(s->comm, st));
  int64_t n = 0;
  for (int64_t j = 0; j < s->m.nforgotten && s->m.forgotten[j] < user; j++) f[n++] = s->m.forgotten[j];
  f[n++] = user;
  for (int64_t j = n - 1; j < s->m.nforgotten; j++) f[n++] = s->m.forgotten[j];
  manifest m = s->m;
  m.forgotten = f;
  m.nforgotten = n;
  st = store_manifest_commit(s, &m);
  if (st != IMF_OK) {
    free(f);
    return st;
  }
  free(s->m.forgotten);
  s->m = m;
  store_digest_update(s);
  return IMF_OK;
}


/* The tombstone hides a forgotten user's rows from every read; scrubbing takes them, and the
 * user's raw id, out of the batch files themselves. Each affected batch file is rewritten from
 * scratch by rank 0 (a fresh file: rewriting datasets in place would leave the old bytes in
 * HDF5's free space) as batch-k.h5.tmp, fsynced and renamed over the original, so a kill
 * leaves every file either as it was or scrubbed, and a rerun finishes the job. The batch
 * keeps its content_digest (the identity of the batch as appended: the store digest, which
 * already covers the tombstone list, does not change) and counts what was taken out in the
 * root attribute `scrubbed_rows`. Files are visited from the newest: a user's id lives in the
 * batch that introduced them, older than or equal to every batch holding their rows, so an
 * interrupted scrub leaves the id (and a rerun of `forget --user ID` can still find it) until
 * the user's last file is done. */

typedef struct {
  hid_t dst;
  int failed;
} scrub_attr_ctx;

static herr_t scrub_copy_attr(hid_t loc, const char *name, const H5A_info_t *info, void *op) {
  (void)info;
  scrub_attr_ctx *c = op;
  if (!strcmp(name, "scrubbed_rows")) return 0; /* rewritten with the new total */
  hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
  hid_t t = a >= 0 ? H5Aget_type(a) : -1, sp = a >= 0 ? H5Aget_space(a) : -1;
  hssize_t n = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
  size_t sz = t >= 0 ? H5Tget_size(t) : 0;
  void *buf = (n >= 0 && sz > 0 && H5Tis_variable_str(t) <= 0) ? calloc(n > 0 ? (size_t)n : 1, sz) : NULL;
  herr_t e = -1;
  if (buf && H5Aread(a, t, buf) >= 0) {
    hid_t b = H5Acreate2(c->dst, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    if (b >= 0) {
      e = H5Awrite(b, t, buf);
      H5Aclose(b);
    }
  }
  free(buf);
  if (sp >= 0) H5Sclose(sp);
  if (t >= 0) H5Tclose(t);
  if (a >= 0) H5Aclose(a);
  if (e < 0) {
    imf_h5_reason();
    c->failed = 1;
    return -1;
  }
  return 0;
}

/* Read a whole 1-D dataset of `n` elements (n from the file) into a new buffer. */
static imf_status scrub_read(hid_t f, const char *path, const char *name, hid_t mtype, size_t esz, void **buf,
                             hsize_t *n) {
  *buf = NULL;
  hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
  if (d < 0) IMF_FAIL(IMF_ERR_INPUT, "%s: no dataset %s: %s", path, name, imf_h5_reason());
  imf_status st = imf_h5_len_check(d, path, name, n);
  if (st == IMF_OK) st = imf_alloc_nz(buf, (size_t)(*n ? *n : 1), esz);
  if (st == IMF_OK) st = imf_h5_read_1d(d, mtype, 0, *n, *buf, H5P_DEFAULT, path, name);
  H5Dclose(d);
  if (st != IMF_OK) imf_free(buf);
  return st;
}
/* A batch file's arrays as scrubbing reads them, takes the forgotten users out of them and
 * writes them back: the rows (r*), the per-user index (iu, ip), the ids (uoff, ublob, ioff,
 * iblob), the rebuilt per-item index (ii, iptr, ipos) and the standing holdout's rows (h*). */
typedef struct {
  int32_t *ru, *ri, *iu, *ii, *hu, *hi;
  float *rv, *hv;
  int64_t *rt, *ip, *uoff, *iptr, *ipos, *ioff, *ht;
  uint8_t *ublob, *iblob;
  hsize_t R, U, nuoff, nublob, nioff, niblob, H; /* lengths as read */
  int64_t w, wu, wb, ndi, wh; /* kept: rows, index users, id bytes; distinct items of the kept rows; held out */
  int has_item_index, has_holdout;
  int64_t old_scrubbed; /* the file's scrubbed_rows before this pass */
} scrub_arrays;

static void scrub_arrays_free(scrub_arrays *a) {
  imf_free(&a->ru);
  imf_free(&a->ri);
  imf_free(&a->rv);
  imf_free(&a->rt);
  imf_free(&a->iu);
  imf_free(&a->ip);
  imf_free(&a->uoff);
  imf_free(&a->ublob);
  imf_free(&a->ioff);
  imf_free(&a->iblob);
  imf_free(&a->ii);
  imf_free(&a->iptr);
  imf_free(&a->ipos);
  imf_free(&a->hu);
  imf_free(&a->hi);
  imf_free(&a->hv);
  imf_free(&a->ht);
}

static imf_status scrub_damaged(const char *path) {
  return IMF_RAISE(IMF_ERR_INPUT, "%s: datasets of inconsistent lengths: the store is damaged",
                       path);
}

/* What there is to take out of batch file f: index entries of forgotten users, ids still
 * present. *dirty: 1 when there is any. Reads the user index and the user id offsets. */
static imf_status scrub_plan(const imf_store *s, hid_t f, const char *path, int64_t ubefore, scrub_arrays *a,
                             int *dirty) {
  hsize_t np = 0;
  *dirty = 0;
  IMF_CHECK(scrub_read(f, path, "/index/user", H5T_NATIVE_INT32, 4, (void **)&a->iu, &a->U));
  IMF_CHECK(scrub_read(f, path, "/index/user_ptr", H5T_NATIVE_INT64, 8, (void **)&a->ip, &np));
  IMF_CHECK(scrub_read(f, path, "/ids/user_off", H5T_NATIVE_INT64, 8, (void **)&a->uoff, &a->nuoff));
  if (np != a->U + 1 || a->nuoff < 1) IMF_FAIL(IMF_ERR_INPUT, "%s: inconsistent user index or id list", path);
  for (hsize_t x = 0; x < a->U && !*dirty; x++)
    if (imf_store_is_forgotten(s, a->iu[x]) && a->ip[x + 1] != a->ip[x]) *dirty = 1;
  for (hsize_t j = 0; j + 1 < a->nuoff && !*dirty; j++)
    if (a->uoff[j + 1] > a->uoff[j] && imf_store_is_forgotten(s, ubefore + (int64_t)j)) *dirty = 1;
  return IMF_OK;
}

/* The standing holdout's rows (/holdout, docs/FORMAT.md) when the file has them: a copy of some of
 * the rows, which goes with them. */
static imf_status scrub_load_holdout(hid_t f, const char *path, scrub_arrays *a) {
  hsize_t n = 0;
  a->has_holdout = H5Lexists(f, "/holdout", H5P_DEFAULT) > 0 && H5Lexists(f, "/holdout/user", H5P_DEFAULT) > 0;
  H5Eclear2(H5E_DEFAULT);
  if (!a->has_holdout) return IMF_OK;
  IMF_CHECK(scrub_read(f, path, "/holdout/user", H5T_NATIVE_INT32, 4, (void **)&a->hu, &a->H));
  IMF_CHECK(scrub_read(f, path, "/holdout/item", H5T_NATIVE_INT32, 4, (void **)&a->hi, &n));
  if (n != a->H) return scrub_damaged(path);
  IMF_CHECK(scrub_read(f, path, "/holdout/value", H5T_NATIVE_FLOAT, 4, (void **)&a->hv, &n));
  if (n != a->H) return scrub_damaged(path);
  IMF_CHECK(scrub_read(f, path, "/holdout/time", H5T_NATIVE_INT64, 8, (void **)&a->ht, &n));
  if (n != a->H) return scrub_damaged(path);
  return IMF_OK;
}

/* The rest of the file: the rows (sorted by user: each user's rows are one run), the ids, and
 * whether it has a per-item index and rows scrubbed before. */
static imf_status scrub_load(hid_t f, const char *path, scrub_arrays *a) {
  hsize_t n = 0;
  IMF_CHECK(scrub_read(f, path, "/ratings/user", H5T_NATIVE_INT32, 4, (void **)&a->ru, &a->R));
  IMF_CHECK(scrub_read(f, path, "/ratings/item", H5T_NATIVE_INT32, 4, (void **)&a->ri, &n));
  if (n != a->R) return scrub_damaged(path);
  IMF_CHECK(scrub_read(f, path, "/ratings/value", H5T_NATIVE_FLOAT, 4, (void **)&a->rv, &n));
  if (n != a->R) return scrub_damaged(path);
  IMF_CHECK(scrub_read(f, path, "/ratings/time", H5T_NATIVE_INT64, 8, (void **)&a->rt, &n));
  if (n != a->R) return scrub_damaged(path);
  IMF_CHECK(scrub_read(f, path, "/ids/user_blob", H5T_NATIVE_UINT8, 1, (void **)&a->ublob, &a->nublob));
  IMF_CHECK(scrub_read(f, path, "/ids/item_off", H5T_NATIVE_INT64, 8, (void **)&a->ioff, &a->nioff));
  IMF_CHECK(scrub_read(f, path, "/ids/item_blob", H5T_NATIVE_UINT8, 1, (void **)&a->iblob, &a->niblob));
  if ((hsize_t)a->ip[a->U] != a->R || (hsize_t)a->uoff[a->nuoff - 1] > a->nublob) return scrub_damaged(path);
  a->has_item_index = H5Lexists(f, "/index/item_pos", H5P_DEFAULT) > 0;
  H5Eclear2(H5E_DEFAULT);
  IMF_CHECK(scrub_load_holdout(f, path, a));
  if (imf_h5_attr_get_num(f, "scrubbed_rows", H5T_NATIVE_INT64, &a->old_scrubbed) != 1) a->old_scrubbed = 0;
  H5Eclear2(H5E_DEFAULT);
  return IMF_OK;
}

/* Take the forgotten users' rows and index entries out in place, and empty their ids (holes:
 * the indices after them stay where they are). */
static imf_status scrub_compact(const imf_store *s, scrub_arrays *a, int64_t ubefore, const char *path) {
  int64_t w = 0, wu = 0;
  for (hsize_t x = 0; x < a->U; x++) {
    int64_t lo = a->ip[x], hi = a->ip[x + 1];
    if (lo < 0 || hi < lo || (hsize_t)hi > a->R) return scrub_damaged(path);
    if (imf_store_is_forgotten(s, a->iu[x])) continue;
    a->ip[wu] = w;
    a->iu[wu++] = a->iu[x];
    for (int64_t r = lo; r < hi; r++, w++) {
      a->ru[w] = a->ru[r];
      a->ri[w] = a->ri[r];
      a->rv[w] = a->rv[r];
      a->rt[w] = a->rt[r];
    }
  }
  a->ip[wu] = w;
  int64_t wb = 0;
  for (hsize_t j = 0; j + 1 < a->nuoff; j++) {
    int64_t lo = a->uoff[j], hi = a->uoff[j + 1];
    a->uoff[j] = wb;
    if (imf_store_is_forgotten(s, ubefore + (int64_t)j)) continue;
    memmove(a->ublob + wb, a->ublob + lo, (size_t)(hi - lo));
    wb += hi - lo;
  }
  a->uoff[a->nuoff - 1] = wb;
  int64_t wh = 0;
  for (hsize_t r = 0; r < a->H; r++) {
    if (imf_store_is_forgotten(s, a->hu[r])) continue;
    a->hu[wh] = a->hu[r];
    a->hi[wh] = a->hi[r];
    a->hv[wh] = a->hv[r];
    a->ht[wh++] = a->ht[r];
  }
  a->wh = wh;
  a->w = w;
  a->wu = wu;
  a->wb = wb;
  return IMF_OK;
}

/* The per-item index from the kept rows: a stable counting sort of positions by item (within an
 * item ascending by position, i.e. by user), as the writer builds it. */
static imf_status scrub_item_index(scrub_arrays *a, const char *path) {
  const int64_t w = a->w;
  if (!a->has_item_index) return IMF_OK;
  if (w == 0) return imf_alloc(&a->iptr, 1, sizeof *a->iptr);
  int32_t maxi = 0;
  for (int64_t r = 0; r < w; r++) {
    if (a->ri[r] < 0) return scrub_damaged(path);
    if (a->ri[r] > maxi) maxi = a->ri[r];
  }
  int64_t *cnt = NULL, ndi = 0;
  IMF_CHECK(imf_alloc(&cnt, (size_t)maxi + 2, sizeof *cnt));
  for (int64_t r = 0; r < w; r++) cnt[a->ri[r] + 1]++;
  for (int32_t i = 0; i <= maxi; i++) ndi += cnt[i + 1] > 0;
  imf_status st = imf_alloc_nz(&a->ii, (size_t)(ndi ? ndi : 1), sizeof *a->ii);
  if (st == IMF_OK) st = imf_alloc_nz(&a->iptr, (size_t)ndi + 1, sizeof *a->iptr);
  if (st == IMF_OK) st = imf_alloc_nz(&a->ipos, (size_t)w, sizeof *a->ipos);
  if (st == IMF_OK) {
    for (int32_t i = 0; i <= maxi; i++) cnt[i + 1] += cnt[i]; /* cnt[i]: where item i starts */
    int64_t q = 0;
    for (int32_t i = 0; i <= maxi; i++)
      if (cnt[i + 1] > cnt[i]) {
        a->ii[q] = i;
        a->iptr[q++] = cnt[i];
      }
    a->iptr[ndi] = w;
    for (int64_t r = 0; r < w; r++) a->ipos[cnt[a->ri[r]]++] = r;
    a->ndi = ndi;
  }
  imf_free(&cnt);
  return st;
}

/* The new file tmp, from scratch, with the root attributes of f (the old one). *g: the open new
 * file (-1 when it could not be created). */
static imf_status scrub_create(hid_t f, const char *path, const char *tmp, hid_t *g) {
  /* checksummed metadata, as imf_store_write_batch writes it (a rewritten batch in the oldest
   * format was unprotected against HDF5 1.10's decoders: tests/fuzz/README.md) */
  hid_t fapl = imf_h5_fapl_v18();
  *g = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  H5Pclose(fapl);
  if (*g < 0) IMF_FAIL(IMF_ERR_RUNTIME, "cannot create %s: %s", tmp, imf_h5_reason());
  scrub_attr_ctx c = {*g, 0};
  hsize_t idx = 0;
  if (H5Aiterate2(f, H5_INDEX_NAME, H5_ITER_INC, &idx, scrub_copy_attr, &c) < 0) c.failed = 1;
  if (c.failed)
    IMF_FAIL(IMF_ERR_RUNTIME, "%s: cannot copy the attributes of %s: %s", tmp, path, imf_h5_last());
  return IMF_OK;
}

/* The kept rows, indexes and ids into the new file g, and the new scrubbed_rows total; 4-byte
 * timestamps and positions where they fit, as imf_store_write_batch decides. */
static imf_status scrub_write(hid_t g, const char *tmp, const scrub_arrays *a) {
  const int64_t w = a->w, total_scrubbed = a->old_scrubbed + (int64_t)a->R - w;
  IMF_CHECK(imf_h5_attr_i64(g, "scrubbed_rows", total_scrubbed, tmp));
  const hid_t P = H5P_DEFAULT;
#define SW(name, ft, mt, n, buf) IMF_CHECK(imf_h5_write_1d(g, name, ft, mt, (hsize_t)(n), 0, (hsize_t)(n), buf, P, tmp))
  SW("/ratings/user", H5T_STD_I32LE, H5T_NATIVE_INT32, w, a->ru);
  SW("/ratings/item", H5T_STD_I32LE, H5T_NATIVE_INT32, w, a->ri);
  SW("/ratings/value", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, w, a->rv);
  int time_fits = 1;
  for (int64_t j = 0; j < w && time_fits; j++)
    time_fits = a->rt[j] != IMF_NO_TIME && a->rt[j] >= INT32_MIN && a->rt[j] <= INT32_MAX;
  SW("/ratings/time", time_fits ? H5T_STD_I32LE : H5T_STD_I64LE, H5T_NATIVE_INT64, w, a->rt);
  SW("/index/user", H5T_STD_I32LE, H5T_NATIVE_INT32, a->wu, a->iu);
  SW("/index/user_ptr", H5T_STD_I64LE, H5T_NATIVE_INT64, a->wu + 1, a->ip);
  if (a->has_item_index) {
    SW("/index/item", H5T_STD_I32LE, H5T_NATIVE_INT32, a->ndi, a->ii);
    SW("/index/item_ptr", H5T_STD_I64LE, H5T_NATIVE_INT64, a->ndi + 1, a->iptr);
    SW("/index/item_pos", w <= INT32_MAX ? H5T_STD_I32LE : H5T_STD_I64LE, H5T_NATIVE_INT64, w, a->ipos);
  }
  if (a->has_holdout) { /* the time column as wide as /ratings/time: the rows it copies fit where those do */
    SW("/holdout/user", H5T_STD_I32LE, H5T_NATIVE_INT32, a->wh, a->hu);
    SW("/holdout/item", H5T_STD_I32LE, H5T_NATIVE_INT32, a->wh, a->hi);
    SW("/holdout/value", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, a->wh, a->hv);
    SW("/holdout/time", time_fits ? H5T_STD_I32LE : H5T_STD_I64LE, H5T_NATIVE_INT64, a->wh, a->ht);
  }
  SW("/ids/user_blob", H5T_STD_U8LE, H5T_NATIVE_UINT8, a->wb, a->ublob);
  SW("/ids/user_off", H5T_STD_I64LE, H5T_NATIVE_INT64, a->nuoff, a->uoff);
  SW("/ids/item_blob", H5T_STD_U8LE, H5T_NATIVE_UINT8, a->niblob, a->iblob);
  SW("/ids/item_off", H5T_STD_I64LE, H5T_NATIVE_INT64, a->nioff, a->ioff);
#undef SW
  return IMF_OK;
}

/* Make the new file durable and rename it over the old one. */
static imf_status scrub_install(const imf_store *s, const char *tmp, const char *path) {
  IMF_CHECK(imf_fsync_path(tmp, 0));
  if (rename(tmp, path) != 0) IMF_FAIL(IMF_ERR_RUNTIME, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
  return imf_fsync_path(s->dir, 1);
}

/* Rank 0: scrub batch k if it holds rows or a non-empty id of a forgotten user. */
static imf_status scrub_batch(imf_store *s, int64_t k, int64_t *removed, int *rewritten) {
  const int64_t ubefore = k > 1 ? s->m.b[k - 2].users_after : 0;
  char path[4200], tmp[4200];
  store_batch_path(s, k, path, sizeof path, 0);
  store_batch_path(s, k, tmp, sizeof tmp, 1);
  *removed = 0;
  *rewritten = 0;
  imf_h5_quiet();
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), g = -1;
  if (f < 0) {
    imf_h5_reason();
    IMF_FAIL(IMF_ERR_INPUT, "%s is not a readable HDF5 file (truncated or corrupt?): the store is damaged", path);
  }
  scrub_arrays a;
  memset(&a, 0, sizeof a);
  int dirty = 0;
  imf_status st = store_batch_check(f, path, s->m.b[k - 1].digest);
  if (st == IMF_OK) st = scrub_plan(s, f, path, ubefore, &a, &dirty);
  if (st == IMF_OK && dirty) st = scrub_load(f, path, &a);
  if (st == IMF_OK && dirty) st = scrub_compact(s, &a, ubefore, path);
  if (st == IMF_OK && dirty) st = scrub_item_index(&a, path);
  if (st == IMF_OK && dirty)
    st = imf_fs_need_space(s->dir, tmp, (double)a.w * 28.0 + (double)a.wh * 20.0 + (double)(a.wb + (int64_t)a.niblob) + 1e6);
  if (st == IMF_OK && dirty) st = scrub_create(f, path, tmp, &g);
  H5Fclose(f);
  if (st == IMF_OK && dirty) st = scrub_write(g, tmp, &a);
  if (g >= 0 && st != IMF_OK) { /* a half-written file goes */
    H5Fclose(g);
    unlink(tmp);
  } else if (g >= 0 && H5Fclose(g) < 0)
    st = IMF_RAISE(IMF_ERR_RUNTIME, "cannot close %s: %s", tmp, imf_h5_reason());
  if (st == IMF_OK && dirty) st = scrub_install(s, tmp, path);
  if (st == IMF_OK && dirty) {
    *removed = (int64_t)a.R - a.w;
    *rewritten = 1;
  }
  scrub_arrays_free(&a);
  return st;
}

imf_status imf_store_scrub(imf_store *s, int64_t *rows_removed, int64_t *files_rewritten) {
  imf_status st = IMF_OK;
  int64_t tot[2] = {0, 0};
  if (s->mode != IMF_STORE_WRITE || (s->rank == 0 && !s->lock))
    st = IMF_RAISE(IMF_ERR_RUNTIME, "%s: scrubbing needs the store opened for writing", s->dir);
  IMF_CHECK(imf_agree(s->comm, st));
  if (s->rank == 0 && s->m.nforgotten > 0)
    for (int64_t k = s->m.nbatches; k >= 1 && st == IMF_OK; k--) {
      int64_t rem = 0;
      int rw = 0;
      st = scrub_batch(s, k, &rem, &rw);
      tot[0] += rem;
      tot[1] += rw;
    }
  IMF_CHECK(imf_agree(s->comm, st));
  IMF_MPI(MPI_Bcast(tot, 2, MPI_INT64_T, 0, s->comm));
  *rows_removed = tot[0];
  *files_rewritten = tot[1];
  return IMF_OK;
}


int64_t imf_store_nforgotten(const imf_store *s) { return s->m.nforgotten; }

void imf_store_strip_forgotten(const imf_store *s, imf_idlist *out) {
  /* the forgotten list is sorted: one pass moves the kept ids down over the emptied ones */
  int64_t f = 0, w = 0;
  for (int64_t j = 0; j < out->n; j++) {
    int64_t a = out->off[j], b = out->off[j + 1];
    out->off[j] = w;
    while (f < s->m.nforgotten && s->m.forgotten[f] < j) f++;
    if (f < s->m.nforgotten && s->m.forgotten[f] == j) continue;
    memmove(out->blob + w, out->blob + a, (size_t)(b - a));
    w += b - a;
  }
  out->off[out->n] = w;
}
