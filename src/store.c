/* store.c - the rating data store: immutable per-batch HDF5 files under a text MANIFEST
 * (layout and guarantees: docs/FORMAT.md).
 *
 * Why this shape: an append writes one new file whose size is the batch's, and commits it by
 * atomically replacing a small manifest, so a crash or kill at any point leaves the previous
 * store intact and the cost of an append never grows with the size of the store. Reads locate
 * each rank's users in every batch through the per-batch /index and read only those rows. */
#include "store.h"
#include "config.h"
#include "error.h"
#include "exchange.h"
#include "fsio.h"
#include "lock.h"
#include "log.h"
#include "scale.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define STORE_FORMAT_VERSION 1
#define BATCH_FORMAT_VERSION 1
#define MANIFEST_MAGIC "incremf-store"

/* ------------------------------------------------------------------------------------------ */
/* manifest model                                                                             */

typedef struct {
  int64_t number;
  char file[32];
  char source[4096];
  char sha256[65], digest[65];
  int64_t lines_read, header, stored, merged, rejected, superseded, new_users, new_items;
  int64_t rows; /* ratings written to the batch file (what the reads see) */
  int64_t users_after, items_after, time_min, time_max;
  /* observed value scale of the batch's rows (scale.h): has_scale 0 for a batch written before
   * incremf recorded it; scale.n is then 0 too */
  int has_scale;
  imf_scale scale;
} batch_meta;

typedef struct {
  char created[64];
  char duplicates[16], normalize[16];
  double scale_min, scale_max;
  int64_t users, items;
  int64_t nbatches;
  batch_meta *b;
  /* standing holdout (docs/FORMAT.md): fraction 0 = none recorded */
  double holdout_fraction;
  int64_t holdout_seed;
  /* users removed by `forget` (dense indices, ascending): their ratings are filtered from every
   * read; the batch files are never rewritten */
  int64_t nforgotten;
  int64_t *forgotten;
  /* the store's value scale: the batches' combined (scale_known 0 when a batch lacks one) */
  int scale_known;
  imf_scale scale;
} manifest;

struct imf_store {
  MPI_Comm comm;
  int rank, size, mode;
  char dir[4096];
  imf_lock *lock; /* rank 0 only */
  manifest m;
  char digest[65];
};

/* ------------------------------------------------------------------------------------------ */
/* small helpers                                                                              */

static void hexify(const unsigned char *d, unsigned n, char *hex) {
  static const char x[] = "0123456789abcdef";
  for (unsigned i = 0; i < n; i++) {
    hex[2 * i] = x[d[i] >> 4];
    hex[2 * i + 1] = x[d[i] & 15];
  }
  hex[2 * n] = '\0';
}

/* One-shot and incremental sha256 through OpenSSL's EVP (the SHA-NI path where available). */
static void sha256_hex(const void *data, size_t len, char hex[65]) {
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  EVP_Digest(data, len, d, &n, EVP_sha256(), NULL);
  hexify(d, n, hex);
}

static void sha_put(EVP_MD_CTX *c, const void *p, size_t n) { EVP_DigestUpdate(c, p, n); }
/* Integers enter digests little-endian so digests agree across architectures. */
static void sha_put_u64(EVP_MD_CTX *c, uint64_t v) {
  unsigned char b[8];
  for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
  EVP_DigestUpdate(c, b, 8);
}

static int path_exists(const char *p) {
  struct stat st;
  return stat(p, &st) == 0;
}


/* Broadcast a malloc'd byte buffer from root (chunked: MPI counts are int). */
static imf_status bcast_bytes(MPI_Comm comm, int root, char **buf, int64_t *len) {
  int rank;
  IMF_MPI(MPI_Comm_rank(comm, &rank));
  IMF_MPI(MPI_Bcast(len, 1, MPI_INT64_T, root, comm));
  imf_status st = IMF_OK;
  if (rank != root) {
    *buf = NULL;
    st = imf_alloc(buf, (size_t)*len + 1, 1);
  }
  IMF_CHECK(imf_agree(comm, st));
  const int64_t chunk = (int64_t)1 << 30;
  for (int64_t o = 0; o < *len; o += chunk) {
    int n = (int)(*len - o < chunk ? *len - o : chunk);
    IMF_MPI(MPI_Bcast(*buf + o, n, MPI_BYTE, root, comm));
  }
  return IMF_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* HDF5 plumbing                                                                              */




#define H5_FAIL(what, path) \
  IMF_FAIL(IMF_ERR_RUNTIME, "%s: cannot %s: %s", (path), (what), imf_h5_reason())

static void batch_path(const imf_store *s, int64_t k, char *out, size_t cap, int tmp) {
  snprintf(out, cap, "%s/batch-%06lld.h5%s", s->dir, (long long)k, tmp ? ".tmp" : "");
}

/* A string attribute of an open file ("" when absent or unreadable). */
static void read_attr_text(hid_t f, const char *name, char *buf, size_t cap) {
  buf[0] = '\0';
  hid_t a = H5Aopen(f, name, H5P_DEFAULT);
  if (a >= 0) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, cap);
    H5Tset_strpad(t, H5T_STR_NULLTERM);
    if (H5Aread(a, t, buf) < 0) buf[0] = '\0';
    buf[cap - 1] = '\0';
    H5Tclose(t);
    H5Aclose(a);
  }
  H5Eclear2(H5E_DEFAULT);
}

/* What a batch file claims to be: an incremf batch, of a format this reader knows, with the
 * content digest the manifest names for it. One line saying what is wrong and what to do. */
static imf_status batch_check(hid_t f, const char *path, const char *want_digest) {
  char fmt[64], dig[80];
  read_attr_text(f, "format", fmt, sizeof fmt);
  if (strcmp(fmt, "incremf-batch") != 0)
    IMF_FAIL(IMF_ERR_INPUT,
             "%s is not an incremf batch file (an HDF5 file from another program?): the store is "
             "damaged; restore that file from a backup or re-run prepare", path);
  int64_t fv = 0;
  hid_t a = H5Aopen(f, "format_version", H5P_DEFAULT);
  if (a < 0 || H5Aread(a, H5T_NATIVE_INT64, &fv) < 0) fv = 0;
  if (a >= 0) H5Aclose(a);
  H5Eclear2(H5E_DEFAULT);
  if (fv > BATCH_FORMAT_VERSION)
    IMF_FAIL(IMF_ERR_INPUT,
             "%s was written by a newer incremf (batch format %lld; this one reads up to %d): "
             "upgrade incremf", path, (long long)fv, BATCH_FORMAT_VERSION);
  if (fv < 1)
    IMF_FAIL(IMF_ERR_INPUT, "%s has no valid format_version: the store is damaged; restore that "
             "file from a backup or re-run prepare", path);
  read_attr_text(f, "content_digest", dig, sizeof dig);
  if (strcmp(dig, want_digest) != 0)
    IMF_FAIL(IMF_ERR_INPUT,
             "%s does not match the manifest (content digest differs): the store is damaged; "
             "restore that file from a backup or re-run prepare", path);
  return IMF_OK;
}

/* Collective open of a batch file for reading, checking it is the batch the manifest names. */
static imf_status batch_open(const imf_store *s, int64_t k, hid_t *fid) {
  char path[4200];
  batch_path(s, k, path, sizeof path, 0);
  imf_h5_quiet();
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (fapl < 0) H5_FAIL("create a file access list", path);
  H5Pset_fapl_mpio(fapl, s->comm, MPI_INFO_NULL);
  H5Pset_all_coll_metadata_ops(fapl, 1);
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
  if (f < 0) imf_h5_reason();
  H5Pclose(fapl);
  if (f < 0) {
    if (!path_exists(path))
      IMF_FAIL(IMF_ERR_INPUT, "%s is missing: the store is damaged (restore it or re-run prepare)",
               path);
    IMF_FAIL(IMF_ERR_INPUT, "%s is not a readable HDF5 file (truncated or corrupt?): the store "
             "is damaged; restore that file from a backup or re-run prepare", path);
  }
  /* The format and content digest attributes tie the file to the manifest entry. */
  imf_status cst = batch_check(f, path, s->m.b[k - 1].digest);
  if (cst != IMF_OK) {
    H5Fclose(f);
    return cst;
  }
  *fid = f;
  return IMF_OK;
}

static hid_t dxpl_make(int collective) {
  hid_t x = H5Pcreate(H5P_DATASET_XFER);
  if (x >= 0) H5Pset_dxpl_mpio(x, collective ? H5FD_MPIO_COLLECTIVE : H5FD_MPIO_INDEPENDENT);
  return x;
}

static imf_status dset_len(hid_t d, const char *path, const char *name, hsize_t *n) {
  hid_t sp = H5Dget_space(d);
  if (sp < 0) H5_FAIL(name, path);
  int nd = H5Sget_simple_extent_ndims(sp);
  hsize_t dims[1] = {0};
  if (nd != 1) {
    H5Sclose(sp);
    IMF_FAIL(IMF_ERR_INPUT, "%s: %s is not one-dimensional", path, name);
  }
  H5Sget_simple_extent_dims(sp, dims, NULL);
  H5Sclose(sp);
  *n = dims[0];
  return IMF_OK;
}

/* Read elements [off, off+cnt) of a 1-d dataset; cnt == 0 takes part with an empty selection
 * (collective transfers need every rank). */
static imf_status read_range(hid_t d, hid_t mtype, hsize_t off, hsize_t cnt, void *buf, hid_t dxpl,
                             const char *path, const char *name) {
  hid_t fs = H5Dget_space(d);
  if (fs < 0) H5_FAIL(name, path);
  /* A zero-length dataset has no storage to read; its extent is the same on every rank, so
   * all ranks skip the transfer together. */
  if (H5Sget_simple_extent_npoints(fs) == 0) {
    H5Sclose(fs);
    if (cnt) IMF_FAIL(IMF_ERR_INPUT, "%s: %s is empty, rows expected", path, name);
    return IMF_OK;
  }
  hsize_t one = 1, mcnt = cnt ? cnt : 1;
  hid_t ms = H5Screate_simple(1, &mcnt, NULL);
  herr_t e;
  if (cnt) e = H5Sselect_hyperslab(fs, H5S_SELECT_SET, &off, NULL, &one, &cnt);
  else {
    e = H5Sselect_none(fs);
    if (e >= 0) e = H5Sselect_none(ms);
  }
  /* An int64 read of a column stored in 4 bytes (timestamps, item positions) reads the 4-byte
   * values into the front of the buffer and widens them in place: HDF5's own conversion would
   * turn a collective transfer into independent ones, through a 1 MiB conversion buffer. */
  int widen = 0;
  if (e >= 0 && H5Tequal(mtype, H5T_NATIVE_INT64) > 0) { /* the same choice on every rank */
    hid_t ft = H5Dget_type(d);
    widen = ft >= 0 && H5Tget_class(ft) == H5T_INTEGER && H5Tget_size(ft) == 4 && H5Tget_sign(ft) == H5T_SGN_2;
    if (ft >= 0) H5Tclose(ft);
  }
  char dummy[16];
  if (e >= 0) e = H5Dread(d, widen ? H5T_NATIVE_INT32 : mtype, ms, fs, dxpl, buf ? buf : dummy);
  const char *why = e < 0 ? imf_h5_reason() : ""; /* before the next call clears the stack */
  H5Sclose(ms);
  H5Sclose(fs);
  if (e < 0) IMF_FAIL(IMF_ERR_RUNTIME, "%s: cannot read %s: %s", path, name, why);
  if (widen && cnt && buf) {
    const int32_t *src = buf;
    int64_t *dst = buf;
    for (hsize_t j = cnt; j-- > 0;) dst[j] = src[j]; /* from the top: nothing unread is overwritten */
  }
  return IMF_OK;
}

/* Position of the first index entry >= key, by point reads (independent: each rank its own
 * searches), so locating a user range costs O(log n) small reads, not the whole index. */
static imf_status lower_bound(hid_t d, hsize_t n, int64_t key, hid_t dxpl_ind, const char *path,
                              hsize_t *pos) {
  hsize_t lo = 0, hi = n;
  while (lo < hi) {
    hsize_t mid = lo + (hi - lo) / 2;
    int32_t v;
    IMF_CHECK(read_range(d, H5T_NATIVE_INT32, mid, 1, &v, dxpl_ind, path, "/index/user"));
    if ((int64_t)v < key) lo = mid + 1;
    else hi = mid;
  }
  *pos = lo;
  return IMF_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* manifest text                                                                              */

static void put_escaped(FILE *f, const char *s) {
  /* Percent-encoding keeps the line format whitespace-separated and one line per batch. */
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p <= 0x20 || *p == '%' || *p == '=' || *p == 0x7f) fprintf(f, "%%%02X", *p);
    else fputc(*p, f);
  }
}

static int unescape(const char *in, char *out, size_t cap) {
  size_t o = 0;
  for (const char *p = in; *p; p++) {
    unsigned c = (unsigned char)*p;
    if (c == '%') {
      unsigned v;
      if (sscanf(p + 1, "%2X", &v) != 1 || !p[1] || !p[2]) return -1;
      c = v;
      p += 2;
    }
    if (o + 1 >= cap) return -1;
    out[o++] = (char)c;
  }
  out[o] = '\0';
  return 0;
}

static void put_double(FILE *f, const char *key, double v) {
  if (isnan(v)) fprintf(f, "%s none\n", key);
  else fprintf(f, "%s %.17g\n", key, v);
}

static void put_time(FILE *f, const char *key, int64_t t) {
  if (t == IMF_NO_TIME) fprintf(f, " %s=none", key);
  else fprintf(f, " %s=%lld", key, (long long)t);
}

/* A batch's value scale: value_min/value_max (none: no rows), value_step (0: one distinct
 * value; none: no regular step). */
static void put_batch_scale(FILE *f, const imf_scale *sc) {
  if (sc->n == 0) {
    fputs(" value_min=none value_max=none value_step=0", f);
    return;
  }
  fprintf(f, " value_min=%.17g value_max=%.17g", sc->min, sc->max);
  if (sc->step >= 0) fprintf(f, " value_step=%.17g", sc->step);
  else fputs(" value_step=none", f);
}

/* The store's scale from its batches' (in batch order: the same bytes give the same numbers). */
static void manifest_scale(manifest *m) {
  m->scale_known = m->nbatches > 0;
  memset(&m->scale, 0, sizeof m->scale);
  for (int64_t k = 0; k < m->nbatches; k++) {
    if (!m->b[k].has_scale) m->scale_known = 0;
    else imf_scale_merge(&m->scale, &m->b[k].scale);
  }
  if (!m->scale_known) memset(&m->scale, 0, sizeof m->scale);
}

static int64_t effective_ratings(const manifest *m) {
  int64_t r = 0;
  for (int64_t k = 0; k < m->nbatches; k++) r += m->b[k].rows - m->b[k].superseded;
  return r;
}

/* The manifest as text, ending with "end <sha256 of the preceding bytes>\n". */
static imf_status manifest_text(const manifest *m, char **text, size_t *len) {
  char *buf = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&buf, &n);
  if (!f) IMF_FAIL(IMF_ERR_NOMEM, "out of memory building the manifest");
  fprintf(f, "%s %d\n", MANIFEST_MAGIC, STORE_FORMAT_VERSION);
  fprintf(f, "created %s\n", m->created);
  fprintf(f, "duplicates %s\n", m->duplicates);
  fprintf(f, "normalize %s\n", m->normalize);
  put_double(f, "scale_min", m->scale_min);
  put_double(f, "scale_max", m->scale_max);
  if (m->holdout_fraction > 0)
    fprintf(f, "holdout_fraction %.17g\nholdout_seed %lld\n", m->holdout_fraction, (long long)m->holdout_seed);
  if (m->nforgotten > 0) {
    fputs("forgotten ", f);
    for (int64_t j = 0; j < m->nforgotten; j++) fprintf(f, "%s%lld", j ? "," : "", (long long)m->forgotten[j]);
    fputc('\n', f);
  }
  if (m->scale_known && m->scale.n > 0) {
    put_double(f, "value_min", m->scale.min);
    put_double(f, "value_max", m->scale.max);
    put_double(f, "value_step", m->scale.step >= 0 ? m->scale.step : NAN);
  }
  fprintf(f, "users %lld\nitems %lld\nratings %lld\nbatches %lld\n", (long long)m->users,
          (long long)m->items, (long long)effective_ratings(m), (long long)m->nbatches);
  for (int64_t k = 0; k < m->nbatches; k++) {
    const batch_meta *b = &m->b[k];
    fprintf(f, "batch %lld file=%s source=", (long long)b->number, b->file);
    put_escaped(f, b->source);
    fprintf(f,
            " sha256=%s digest=%s lines_read=%lld header=%lld stored=%lld merged=%lld "
            "rejected=%lld superseded=%lld new_users=%lld new_items=%lld rows=%lld "
            "users_after=%lld items_after=%lld",
            b->sha256, b->digest, (long long)b->lines_read, (long long)b->header,
            (long long)b->stored, (long long)b->merged, (long long)b->rejected,
            (long long)b->superseded, (long long)b->new_users, (long long)b->new_items,
            (long long)b->rows, (long long)b->users_after, (long long)b->items_after);
    put_time(f, "time_min", b->time_min);
    put_time(f, "time_max", b->time_max);
    if (b->has_scale) put_batch_scale(f, &b->scale);
    fputc('\n', f);
  }
  if (fclose(f) != 0 || !buf) {
    free(buf);
    IMF_FAIL(IMF_ERR_NOMEM, "out of memory building the manifest");
  }
  char hex[65];
  sha256_hex(buf, n, hex);
  char *all = realloc(buf, n + 70);
  if (!all) {
    free(buf);
    IMF_FAIL(IMF_ERR_NOMEM, "out of memory building the manifest");
  }
  n += (size_t)snprintf(all + n, 70, "end %s\n", hex);
  *text = all;
  *len = n;
  return IMF_OK;
}

static int parse_i64(const char *v, int64_t *out) {
  if (strcmp(v, "none") == 0) {
    *out = IMF_NO_TIME;
    return 0;
  }
  char *e;
  errno = 0;
  long long x = strtoll(v, &e, 10);
  if (errno || e == v || *e) return -1;
  *out = x;
  return 0;
}

/* "none" -> NaN, else a finite number; -1 when malformed. */
static int parse_dbl_none(const char *v, double *out) {
  if (strcmp(v, "none") == 0) {
    *out = NAN;
    return 0;
  }
  char *e;
  errno = 0;
  *out = strtod(v, &e);
  return errno || e == v || *e || !isfinite(*out) ? -1 : 0;
}

/* A batch line's value_min/value_max/value_step (all three or none of them: a batch written
 * before incremf recorded its scale). */
static int batch_scale_check(batch_meta *b, int have, double lo, double hi, double step) {
  if (have == 0) return 0;
  if (have != 7) return -1;
  b->has_scale = 1;
  if (isnan(lo) && isnan(hi)) return step == 0 ? 0 : -1; /* no rows */
  if (!(lo <= hi) || !(isnan(step) || step >= 0) || (step > 0 && lo == hi)) return -1;
  b->scale.n = b->rows > 0 ? b->rows : 1;
  b->scale.min = lo;
  b->scale.max = hi;
  b->scale.step = isnan(step) ? -1 : step;
  return 0;
}

static int parse_batch_line(char *line, batch_meta *b) {
  memset(b, 0, sizeof *b);
  int have_scale = 0;
  double vlo = NAN, vhi = NAN, vstep = NAN;
  b->time_min = b->time_max = IMF_NO_TIME;
  char *save = NULL;
  char *tok = strtok_r(line, " ", &save);
  if (!tok || parse_i64(tok, &b->number) || b->number <= 0) return -1;
  int have = 0;
  while ((tok = strtok_r(NULL, " ", &save))) {
    char *eq = strchr(tok, '=');
    if (!eq) return -1;
    *eq = '\0';
    const char *k = tok, *v = eq + 1;
    struct {
      const char *name;
      int64_t *p;
    } ints[] = {{"lines_read", &b->lines_read}, {"header", &b->header},
                {"stored", &b->stored},         {"merged", &b->merged},
                {"rejected", &b->rejected},     {"superseded", &b->superseded},
                {"new_users", &b->new_users},   {"new_items", &b->new_items},
                {"rows", &b->rows},             {"users_after", &b->users_after},
                {"items_after", &b->items_after}, {"time_min", &b->time_min},
                {"time_max", &b->time_max}};
    int known = 0;
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
      if (strcmp(k, ints[i].name) == 0) {
        if (parse_i64(v, ints[i].p)) return -1;
        known = 1;
        have |= 1;
      }
    if (known) continue;
    if (strcmp(k, "file") == 0) {
      if (strlen(v) >= sizeof b->file) return -1;
      snprintf(b->file, sizeof b->file, "%s", v);
      have |= 2;
    } else if (strcmp(k, "source") == 0) {
      if (unescape(v, b->source, sizeof b->source)) return -1;
    } else if (strcmp(k, "sha256") == 0) {
      if (strlen(v) != 64) return -1;
      memcpy(b->sha256, v, 65);
    } else if (strcmp(k, "digest") == 0) {
      if (strlen(v) != 64) return -1;
      memcpy(b->digest, v, 65);
      have |= 4;
    } else if (strcmp(k, "value_min") == 0 || strcmp(k, "value_max") == 0 || strcmp(k, "value_step") == 0) {
      int which = k[6] == 'm' && k[7] == 'i' ? 0 : k[6] == 'm' ? 1 : 2;
      double *dst[3] = {&vlo, &vhi, &vstep};
      if (parse_dbl_none(v, dst[which])) return -1;
      have_scale |= 1 << which;
    }
    /* unknown keys: a later minor revision of format 1 may add some; ignore them */
  }
  if (batch_scale_check(b, have_scale, vlo, vhi, vstep)) return -1;
  return have == 7 ? 0 : -1;
}

static imf_status manifest_parse(const char *dir, const char *text, size_t len, manifest *m) {
  memset(m, 0, sizeof *m);
  m->scale_min = m->scale_max = NAN;
  snprintf(m->duplicates, sizeof m->duplicates, "latest");
  snprintf(m->normalize, sizeof m->normalize, "none");
  int version = 0;
  if (strncmp(text, MANIFEST_MAGIC " ", strlen(MANIFEST_MAGIC) + 1) != 0 ||
      sscanf(text + strlen(MANIFEST_MAGIC) + 1, "%d", &version) != 1)
    IMF_FAIL(IMF_ERR_INPUT, "%s/MANIFEST is not an incremf store manifest (bad first line)", dir);
  if (version > STORE_FORMAT_VERSION)
    IMF_FAIL(IMF_ERR_INPUT,
             "%s/MANIFEST was written by a newer incremf (store format %d; this one reads up to "
             "%d); upgrade incremf", dir, version, STORE_FORMAT_VERSION);
  if (version < 1) IMF_FAIL(IMF_ERR_INPUT, "%s/MANIFEST has an invalid format version", dir);
  /* The checksum line must be the last line and cover every byte before it. */
  const char *corrupt = "%s/MANIFEST is corrupt (checksum mismatch): restore it or re-run prepare";
  if (len < 70 || text[len - 1] != '\n') IMF_FAIL(IMF_ERR_INPUT, corrupt, dir);
  size_t end_at = len - 1;
  while (end_at > 0 && text[end_at - 1] != '\n') end_at--;
  if (len - end_at != 69 || strncmp(text + end_at, "end ", 4) != 0)
    IMF_FAIL(IMF_ERR_INPUT, corrupt, dir);
  char hex[65];
  sha256_hex(text, end_at, hex);
  if (memcmp(hex, text + end_at + 4, 64) != 0) IMF_FAIL(IMF_ERR_INPUT, corrupt, dir);

  char *copy = malloc(end_at + 1);
  if (!copy) IMF_FAIL(IMF_ERR_NOMEM, "out of memory reading %s/MANIFEST", dir);
  memcpy(copy, text, end_at);
  copy[end_at] = '\0';
  imf_status st = IMF_OK;
  int64_t declared = -1, cap = 0;
  char *save = NULL;
  int lineno = 0;
  double vals[3] = {NAN, NAN, NAN}; /* the store's value_min/max/step lines, when present */
  int have_vals = 0;
  for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    lineno++;
    if (lineno == 1) continue;
    char *sp = strchr(line, ' ');
    if (!sp) continue;
    *sp = '\0';
    const char *k = line, *v = sp + 1;
    int bad = 0;
    if (strcmp(k, "created") == 0) snprintf(m->created, sizeof m->created, "%s", v);
    else if (strcmp(k, "duplicates") == 0) {
      if (strcmp(v, "latest") && strcmp(v, "first") && strcmp(v, "mean")) bad = 1;
      else snprintf(m->duplicates, sizeof m->duplicates, "%s", v);
    } else if (strcmp(k, "normalize") == 0) snprintf(m->normalize, sizeof m->normalize, "%s", v);
    else if (strcmp(k, "scale_min") == 0 || strcmp(k, "scale_max") == 0) {
      double x = NAN;
      if (strcmp(v, "none") != 0) {
        char *e;
        x = strtod(v, &e);
        if (e == v || *e) bad = 1;
      }
      if (k[6] == 'm' && k[7] == 'i') m->scale_min = x;
      else m->scale_max = x;
    } else if (strcmp(k, "value_min") == 0 || strcmp(k, "value_max") == 0 || strcmp(k, "value_step") == 0) {
      int which = k[6] == 'm' && k[7] == 'i' ? 0 : k[6] == 'm' ? 1 : 2;
      bad = parse_dbl_none(v, &vals[which]);
      have_vals |= 1 << which;
    } else if (strcmp(k, "users") == 0) bad = parse_i64(v, &m->users);
    else if (strcmp(k, "items") == 0) bad = parse_i64(v, &m->items);
    else if (strcmp(k, "batches") == 0) bad = parse_i64(v, &declared);
    else if (strcmp(k, "holdout_fraction") == 0) {
      char *e;
      m->holdout_fraction = strtod(v, &e);
      bad = e == v || *e || !(m->holdout_fraction >= 0 && m->holdout_fraction < 1);
    } else if (strcmp(k, "holdout_seed") == 0) bad = parse_i64(v, &m->holdout_seed);
    else if (strcmp(k, "forgotten") == 0) {
      int64_t n = 1;
      for (const char *c = v; *c; c++) n += *c == ',';
      free(m->forgotten);
      m->forgotten = malloc((size_t)n * sizeof *m->forgotten);
      m->nforgotten = 0;
      if (!m->forgotten) bad = 1;
      char *sv2 = NULL;
      for (char *tok = strtok_r((char *)v, ",", &sv2); tok && !bad; tok = strtok_r(NULL, ",", &sv2)) {
        if (parse_i64(tok, &m->forgotten[m->nforgotten]) || m->forgotten[m->nforgotten] < 0) bad = 1;
        else m->nforgotten++;
      }
    }
    else if (strcmp(k, "batch") == 0) {
      if (m->nbatches == cap) {
        cap = cap ? cap * 2 : 16;
        batch_meta *nb = realloc(m->b, (size_t)cap * sizeof *nb);
        if (!nb) {
          st = imf_err_raise(IMF_ERR_NOMEM, __FILE__, __LINE__, "out of memory reading %s/MANIFEST", dir);
          goto done;
        }
        m->b = nb;
      }
      batch_meta *b = &m->b[m->nbatches];
      bad = parse_batch_line(sp + 1, b) || b->number != m->nbatches + 1;
      if (!bad) m->nbatches++;
    }
    if (bad) {
      st = imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__,
                         "%s/MANIFEST line %d is malformed ('%s'): restore it or re-run prepare",
                         dir, lineno, k);
      goto done;
    }
  }
  /* Each batch numbers its new ids after the previous batch's: the counts chain exactly (a
   * key lost to damage reads as 0 and breaks the chain, instead of shrinking the store's id
   * range under rows that name ids past it). */
  int chained = 1;
  for (int64_t k = 0; k < m->nbatches && chained; k++) {
    const batch_meta *b = &m->b[k];
    const int64_t pu = k ? m->b[k - 1].users_after : 0, pi = k ? m->b[k - 1].items_after : 0;
    /* pu, pi >= 0 here (the chain starts at 0 and only adds counts >= 0): no overflow */
    chained = b->new_users >= 0 && b->new_items >= 0 && b->rows >= 0 && b->new_users <= INT64_MAX - pu &&
              b->new_items <= INT64_MAX - pi && b->users_after == pu + b->new_users &&
              b->items_after == pi + b->new_items;
  }
  /* The store's scale is derived from the batches'; its lines, when written, must agree. */
  manifest_scale(m);
  if (have_vals) {
    const int agree = have_vals == 7 && m->scale_known && m->scale.n > 0 && vals[0] == m->scale.min &&
                      vals[1] == m->scale.max &&
                      (m->scale.step >= 0 ? vals[2] == m->scale.step : isnan(vals[2]));
    if (!agree) chained = 0;
  }
  if (declared != m->nbatches || !chained ||
      (m->nbatches > 0 && (m->b[m->nbatches - 1].users_after != m->users ||
                           m->b[m->nbatches - 1].items_after != m->items))) {
    st = imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__,
                       "%s/MANIFEST is inconsistent (batch list and totals disagree): restore it "
                       "or re-run prepare", dir);
  }
done:
  free(copy);
  if (st != IMF_OK) {
    free(m->b);
    m->b = NULL;
    m->nbatches = 0;
    free(m->forgotten);
    m->forgotten = NULL;
    m->nforgotten = 0;
  }
  return st;
}

/* The store digest over the first nb batches (with the tombstone list as it is now) into hex. */
static void digest_prefix(const imf_store *s, int64_t nb, char *hex) {
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  EVP_DigestInit_ex(c, EVP_sha256(), NULL);
  for (int64_t k = 0; k < nb; k++) sha_put(c, s->m.b[k].digest, 64);
  /* a store with forgotten users is other data: the digest says so (unchanged without) */
  if (s->m.nforgotten > 0) {
    sha_put(c, "forgotten", 9);
    for (int64_t j = 0; j < s->m.nforgotten; j++) sha_put_u64(c, (uint64_t)s->m.forgotten[j]);
  }
  EVP_DigestFinal_ex(c, d, &n);
  EVP_MD_CTX_free(c);
  hexify(d, n, hex);
}

static void store_digest_update(imf_store *s) { digest_prefix(s, s->m.nbatches, s->digest); }

int imf_store_digest_matches(const imf_store *s, int64_t from, const char *digest) {
  /* A version is stamped with the digest of the store it was built from (its first
   * batches_seen batches); `forget` re-stamps every version with the whole store's digest of
   * the moment, tombstones included. Either way some prefix of at least `from` batches, with
   * today's tombstone list (a later forget re-stamps again), gives the stamp back. One running
   * hash over the batches, copied at each candidate prefix: linear in the batch count. */
  EVP_MD_CTX *c = EVP_MD_CTX_new(), *t = EVP_MD_CTX_new();
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  char hex[65];
  int found = 0;
  if (from < 0) from = 0;
  EVP_DigestInit_ex(c, EVP_sha256(), NULL);
  for (int64_t nb = 0; c && t && !found && nb <= s->m.nbatches; nb++) {
    if (nb > 0) sha_put(c, s->m.b[nb - 1].digest, 64);
    if (nb < from) continue;
    EVP_MD_CTX_copy_ex(t, c);
    if (s->m.nforgotten > 0) { /* as digest_prefix */
      sha_put(t, "forgotten", 9);
      for (int64_t j = 0; j < s->m.nforgotten; j++) sha_put_u64(t, (uint64_t)s->m.forgotten[j]);
    }
    EVP_DigestFinal_ex(t, d, &n);
    hexify(d, n, hex);
    found = !strcmp(hex, digest);
  }
  EVP_MD_CTX_free(c);
  EVP_MD_CTX_free(t);
  return found;
}

/* Rank 0 reads the manifest; every rank parses the same broadcast bytes. */
static imf_status manifest_load(imf_store *s) {
  char *text = NULL;
  int64_t len = 0;
  imf_status st = IMF_OK;
  if (s->rank == 0) {
    char path[4200];
    snprintf(path, sizeof path, "%s/MANIFEST", s->dir);
    struct stat sb;
    if (stat(s->dir, &sb) != 0)
      st = imf_err_raise(IMF_ERR_NOTFOUND, __FILE__, __LINE__, "%s does not exist", s->dir);
    else if (!S_ISDIR(sb.st_mode))
      st = imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__,
                         "%s is not an incremf store (not a directory)", s->dir);
    else {
      FILE *f = fopen(path, "rb");
      if (!f && errno == ENOENT)
        st = imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__,
                           "%s is not an incremf store (no MANIFEST)", s->dir);
      else if (!f)
        st = imf_err_raise(IMF_ERR_RUNTIME, __FILE__, __LINE__, "cannot open %s: %s", path,
                           strerror(errno));
      else {
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 0, SEEK_SET);
        st = imf_alloc(&text, (size_t)(n < 0 ? 0 : n) + 1, 1);
        if (st == IMF_OK && n > 0 && fread(text, 1, (size_t)n, f) != (size_t)n)
          st = imf_err_raise(IMF_ERR_RUNTIME, __FILE__, __LINE__, "cannot read %s", path);
        len = n;
        fclose(f);
      }
    }
  }
  st = imf_agree(s->comm, st);
  if (st != IMF_OK) {
    imf_free(&text);
    return st;
  }
  IMF_TRY(bcast_bytes(s->comm, 0, &text, &len), out);
  text[len] = '\0';
  manifest m;
  IMF_TRY(manifest_parse(s->dir, text, (size_t)len, &m), out);
  /* every rank parsed the same bytes, so every rank reaches the same verdict */
  if (s->rank == 0) {
    for (int64_t k = 0; k < m.nbatches && st == IMF_OK; k++) {
      char p[4200];
      snprintf(p, sizeof p, "%s/%s", s->dir, m.b[k].file);
      if (!path_exists(p))
        st = imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__,
                           "%s is missing: the store is damaged (restore it or re-run prepare)", p);
    }
  }
  st = imf_agree(s->comm, st);
  if (st != IMF_OK) {
    free(m.b);
    free(m.forgotten);
    goto out;
  }
  free(s->m.b);
  free(s->m.forgotten);
  s->m = m;
  store_digest_update(s);
out:
  imf_free(&text);
  return st;
}

/* (rank 0) 1 when dir/MANIFEST is a valid manifest that names no batch and no forgotten user:
 * the empty store prepare commits before its first batch, left behind when that prepare was
 * killed or failed (a full disk). prepare replaces it instead of refusing the directory. */
static int manifest_names_no_batch(const char *dir) {
  char path[4200];
  snprintf(path, sizeof path, "%s/MANIFEST", dir);
  FILE *f = fopen(path, "rb");
  if (!f) return 0;
  char text[16384];
  size_t n = fread(text, 1, sizeof text - 1, f);
  int more = fgetc(f) != EOF;
  fclose(f);
  if (more) return 0; /* an empty store's manifest is a few hundred bytes */
  text[n] = '\0';
  manifest m;
  if (manifest_parse(dir, text, n, &m) != IMF_OK) {
    imf_err_clear();
    return 0;
  }
  int empty = m.nbatches == 0 && m.nforgotten == 0;
  free(m.b);
  free(m.forgotten);
  return empty;
}

/* Rank 0 writes the manifest; all ranks agree on the outcome. */
static imf_status manifest_commit(imf_store *s, const manifest *m) {
  imf_status st = IMF_OK;
  if (s->rank == 0) {
    char *text = NULL;
    size_t len = 0;
    st = manifest_text(m, &text, &len);
    if (st == IMF_OK) {
      char mpath[4200];
      snprintf(mpath, sizeof mpath, "%s/MANIFEST", s->dir);
      st = imf_fs_replace(s->dir, mpath, text, len, NULL);
    }
    free(text);
  }
  return imf_agree(s->comm, st);
}

/* ------------------------------------------------------------------------------------------ */
/* create / open / close                                                                      */

static imf_status store_new(MPI_Comm comm, const char *dir, int mode, imf_store **out) {
  *out = NULL;
  if (strlen(dir) >= 4000) IMF_FAIL(IMF_ERR_USAGE, "store path too long: %.64s...", dir);
  imf_store *s = calloc(1, sizeof *s);
  if (!s) IMF_FAIL(IMF_ERR_NOMEM, "out of memory");
  /* A private communicator keeps the store's collectives apart from the caller's traffic. */
  if (MPI_Comm_dup(comm, &s->comm) != MPI_SUCCESS) {
    free(s);
    IMF_FAIL(IMF_ERR_RUNTIME, "MPI_Comm_dup failed");
  }
  MPI_Comm_rank(s->comm, &s->rank);
  MPI_Comm_size(s->comm, &s->size);
  s->mode = mode;
  snprintf(s->dir, sizeof s->dir, "%s", dir);
  size_t l = strlen(s->dir);
  while (l > 1 && s->dir[l - 1] == '/') s->dir[--l] = '\0';
  s->m.scale_min = s->m.scale_max = NAN;
  imf_h5_quiet();
  *out = s;
  return IMF_OK;
}

static imf_status take_lock(imf_store *s, int break_lock) {
  imf_status st = IMF_OK;
  if (s->rank == 0) {
    char lp[4200];
    snprintf(lp, sizeof lp, "%s/LOCK", s->dir);
    st = imf_lock_acquire(lp, break_lock, &s->lock);
  }
  return imf_agree(s->comm, st);
}

void imf_store_close(imf_store **sp) {
  if (!sp || !*sp) return;
  imf_store *s = *sp;
  if (s->lock) imf_lock_release(&s->lock);
  free(s->m.b);
  free(s->m.forgotten);
  MPI_Comm_free(&s->comm);
  free(s);
  *sp = NULL;
}

imf_status imf_store_create(MPI_Comm comm, const char *dir, const imf_config *cfg, imf_store **out) {
  imf_store *s;
  IMF_CHECK(store_new(comm, dir, IMF_STORE_WRITE, &s));
  imf_status st = IMF_OK;
  if (s->rank == 0) {
    struct stat sb;
    char mp[4200];
    snprintf(mp, sizeof mp, "%s/MANIFEST", s->dir);
    if (mkdir(s->dir, 0755) != 0 && errno != EEXIST)
      st = imf_err_raise(IMF_ERR_RUNTIME, __FILE__, __LINE__, "cannot create the store directory %s: %s",
                         s->dir, strerror(errno));
    else if (stat(s->dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
      st = imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__, "%s exists and is not a directory", s->dir);
    else if (path_exists(mp) && !manifest_names_no_batch(s->dir))
      st = imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__,
                         "%s already holds an incremf store (MANIFEST exists): use append, or "
                         "choose a new directory", s->dir);
  }
  IMF_TRY(imf_agree(s->comm, st), fail);
  IMF_TRY(take_lock(s, 0), fail);
  if (s->rank == 0 && path_exists(s->dir)) {
    char mp[4200];
    snprintf(mp, sizeof mp, "%s/MANIFEST", s->dir);
    if (path_exists(mp) && manifest_names_no_batch(s->dir))
      imf_info("%s holds an empty store (a prepare that was killed or failed before its batch was "
               "committed): replacing it", s->dir);
    else if (path_exists(mp)) /* created by a racing writer between our check and the lock */
      st = imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__,
                         "%s already holds an incremf store (MANIFEST exists)", s->dir);
  }
  IMF_TRY(imf_agree(s->comm, st), fail);
  manifest m;
  memset(&m, 0, sizeof m);
  const char *dup = cfg ? imf_cfg_str(cfg, "clean.duplicates") : NULL;
  const char *norm = cfg ? imf_cfg_str(cfg, "clean.normalize") : NULL;
  snprintf(m.duplicates, sizeof m.duplicates, "%s", dup ? dup : "latest");
  snprintf(m.normalize, sizeof m.normalize, "%s", norm ? norm : "none");
  m.scale_min = cfg ? imf_cfg_double(cfg, "clean.scale_min") : NAN;
  m.scale_max = cfg ? imf_cfg_double(cfg, "clean.scale_max") : NAN;
  m.holdout_fraction = cfg ? imf_cfg_double(cfg, "holdout.fraction") : 0;
  m.holdout_seed = cfg ? imf_cfg_int(cfg, "holdout.seed") : 0;
  if (!(m.holdout_fraction >= 0 && m.holdout_fraction < 1)) {
    st = imf_err_raise(IMF_ERR_USAGE, __FILE__, __LINE__, "holdout.fraction = %g must be in [0, 1)",
                       m.holdout_fraction);
    goto fail;
  }
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(m.created, sizeof m.created, "%Y-%m-%dT%H:%M:%SZ", &tm);
  IMF_TRY(manifest_commit(s, &m), fail);
  /* Re-read what rank 0 wrote: every rank then holds byte-identical state (created time). */
  IMF_TRY(manifest_load(s), fail);
  *out = s;
  return IMF_OK;
fail:
  imf_store_close(&s);
  return st;
}

imf_status imf_store_open(MPI_Comm comm, const char *dir, int mode, int break_lock, imf_store **out) {
  imf_store *s;
  imf_status st;
  IMF_CHECK(store_new(comm, dir, mode, &s));
  if (mode == IMF_STORE_WRITE) {
    /* Check it is a store before taking a lock in a directory that is not one. */
    IMF_TRY(manifest_load(s), fail);
    IMF_TRY(take_lock(s, break_lock), fail);
  }
  /* Under the lock, read the manifest the previous writer committed last. */
  IMF_TRY(manifest_load(s), fail);
  *out = s;
  return IMF_OK;
fail:
  imf_store_close(&s);
  return st;
}

int64_t imf_store_nbatches(const imf_store *s) { return s->m.nbatches; }

int imf_store_scale(const imf_store *s, double *min, double *max, double *step) {
  const int known = s->m.scale_known && s->m.scale.n > 0;
  *min = known ? s->m.scale.min : NAN;
  *max = known ? s->m.scale.max : NAN;
  *step = known && s->m.scale.step > 0 ? s->m.scale.step : known && s->m.scale.step == 0 ? 0 : NAN;
  return known;
}

int imf_store_batch_scale(const imf_store *s, int64_t k, double *min, double *max, double *step) {
  const batch_meta *b = k >= 1 && k <= s->m.nbatches ? &s->m.b[k - 1] : NULL;
  const int known = b && b->has_scale && b->scale.n > 0;
  *min = known ? b->scale.min : NAN;
  *max = known ? b->scale.max : NAN;
  *step = known && b->scale.step > 0 ? b->scale.step : known && b->scale.step == 0 ? 0 : NAN;
  return known;
}

void imf_store_configured_scale(const imf_store *s, double *min, double *max) {
  *min = s->m.scale_min;
  *max = s->m.scale_max;
}
int64_t imf_store_nusers(const imf_store *s) { return s->m.users; }
int64_t imf_store_nitems(const imf_store *s) { return s->m.items; }
const char *imf_store_duplicate_policy(const imf_store *s) { return s->m.duplicates; }
const char *imf_store_digest(const imf_store *s) { return s->digest; }

int64_t imf_store_find_sha256(const imf_store *s, const char *hex) {
  for (int64_t k = 0; k < s->m.nbatches; k++)
    if (strcmp(s->m.b[k].sha256, hex) == 0) return s->m.b[k].number;
  return 0;
}

imf_status imf_store_get_info(imf_store *s, imf_store_info *info) {
  memset(info, 0, sizeof *info);
  info->users = s->m.users;
  info->items = s->m.items;
  info->ratings = effective_ratings(&s->m);
  info->batches = s->m.nbatches;
  info->scale_min = s->m.scale_min;
  info->scale_max = s->m.scale_max;
  info->value_known = imf_store_scale(s, &info->value_min, &info->value_max, &info->value_step);
  int64_t tmin = INT64_MAX, tmax = INT64_MIN;
  for (int64_t k = 0; k < s->m.nbatches; k++) {
    const batch_meta *b = &s->m.b[k];
    if (b->time_min != IMF_NO_TIME && b->time_min < tmin) tmin = b->time_min;
    if (b->time_max != IMF_NO_TIME && b->time_max > tmax) tmax = b->time_max;
  }
  if (tmin > tmax) { /* no timestamps anywhere: the documented sentinels */
    tmin = INT64_MIN;
    tmax = INT64_MAX;
  }
  info->time_min = tmin;
  info->time_max = tmax;
  snprintf(info->normalize, sizeof info->normalize, "%s", s->m.normalize);
  snprintf(info->digest, sizeof info->digest, "%s", s->digest);
  return IMF_OK;
}

void imf_batch_free(imf_batch *b) {
  if (!b) return;
  imf_ratings_free(&b->r);
  imf_idlist_free(&b->new_users);
  imf_idlist_free(&b->new_items);
}

/* ------------------------------------------------------------------------------------------ */
/* id maps                                                                                    */

/* (rank 0, serial HDF5) Read one id list of a batch file. */
static imf_status read_idlist(hid_t f, const char *path, const char *kind, imf_idlist *l) {
  char nb[64], no[64];
  snprintf(nb, sizeof nb, "/ids/%s_blob", kind);
  snprintf(no, sizeof no, "/ids/%s_off", kind);
  hid_t db = H5Dopen2(f, nb, H5P_DEFAULT), dof = H5Dopen2(f, no, H5P_DEFAULT);
  imf_status st = IMF_OK;
  hsize_t nbytes = 0, noff = 0;
  memset(l, 0, sizeof *l);
  if (db < 0 || dof < 0) {
    st = imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__, "%s: no dataset %s: %s", path,
                       db < 0 ? nb : no, imf_h5_reason());
    goto out;
  }
  IMF_TRY(dset_len(db, path, nb, &nbytes), out);
  IMF_TRY(dset_len(dof, path, no, &noff), out);
  if (noff < 1) {
    st = imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__, "%s: %s is empty", path, no);
    goto out;
  }
  IMF_TRY(imf_alloc(&l->off, noff, sizeof *l->off), out);
  IMF_TRY(imf_alloc(&l->blob, nbytes + 1, 1), out);
  IMF_TRY(read_range(dof, H5T_NATIVE_INT64, 0, noff, l->off, H5P_DEFAULT, path, no), out);
  IMF_TRY(read_range(db, H5T_NATIVE_UINT8, 0, nbytes, l->blob, H5P_DEFAULT, path, nb), out);
  l->n = (int64_t)noff - 1;
  for (int64_t j = 0; j < l->n; j++)
    if (l->off[j] < 0 || l->off[j] > l->off[j + 1] || l->off[j + 1] > (int64_t)nbytes) {
      st = imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__, "%s: %s is not a valid offset list",
                         path, no);
      break;
    }
out:
  if (db >= 0) H5Dclose(db);
  if (dof >= 0) H5Dclose(dof);
  if (st != IMF_OK) imf_idlist_free(l);
  return st;
}

static imf_status bcast_idlist(MPI_Comm comm, int rank, imf_idlist *l) {
  int64_t n = l->n, bytes = rank == 0 ? l->off[l->n] : 0, offbytes = (n + 1) * 8;
  IMF_MPI(MPI_Bcast(&n, 1, MPI_INT64_T, 0, comm));
  l->n = n;
  char *o = (char *)l->off;
  offbytes = (n + 1) * 8;
  IMF_CHECK(bcast_bytes(comm, 0, &o, &offbytes));
  l->off = (int64_t *)o;
  IMF_CHECK(bcast_bytes(comm, 0, &l->blob, &bytes));
  return IMF_OK;
}

imf_status imf_store_load_idmaps(imf_store *s, imf_idmap *users, imf_idmap *items) {
  imf_status st = IMF_OK;
  if (imf_idmap_size(users) != 0 || imf_idmap_size(items) != 0)
    st = imf_err_raise(IMF_ERR_RUNTIME, __FILE__, __LINE__, "imf_store_load_idmaps needs empty maps");
  IMF_CHECK(imf_agree(s->comm, st));
  for (int64_t k = 1; k <= s->m.nbatches; k++) {
    imf_idlist lu = {0}, li = {0};
    char path[4200];
    batch_path(s, k, path, sizeof path, 0);
    if (s->rank == 0) {
      /* One reader and a broadcast: the id lists are small next to the ratings, and this spares
       * the file system N identical reads. */
      imf_h5_quiet();
      hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
      if (f < 0) {
        imf_h5_reason();
        st = imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__,
                           path_exists(path) ? "%s is not a readable HDF5 file (truncated or corrupt?): the "
                                               "store is damaged; restore that file from a backup or re-run prepare"
                                             : "%s is missing: the store is damaged (restore it or re-run prepare)",
                           path);
      } else {
        st = batch_check(f, path, s->m.b[k - 1].digest);
        if (st == IMF_OK) st = read_idlist(f, path, "user", &lu);
        if (st == IMF_OK) st = read_idlist(f, path, "item", &li);
        H5Fclose(f);
      }
    }
    st = imf_agree(s->comm, st);
    if (st == IMF_OK) st = bcast_idlist(s->comm, s->rank, &lu);
    if (st == IMF_OK) st = bcast_idlist(s->comm, s->rank, &li);
    if (st == IMF_OK && (imf_idmap_size(users) + lu.n != s->m.b[k - 1].users_after ||
                         imf_idmap_size(items) + li.n != s->m.b[k - 1].items_after))
      st = imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__,
                         "%s: id lists do not match the manifest counts", path);
    if (st == IMF_OK) st = imf_idmap_add_list(users, &lu);
    if (st == IMF_OK) st = imf_idmap_add_list(items, &li);
    imf_idlist_free(&lu);
    imf_idlist_free(&li);
    IMF_CHECK(imf_agree(s->comm, st));
  }
  return IMF_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* reading ratings                                                                            */

typedef struct {
  hid_t f, user, item, value, time, iuser, iptr;
  hsize_t nrows, nindex;
} batch_h;

static void batch_h_close(batch_h *h) {
  hid_t *ds[] = {&h->user, &h->item, &h->value, &h->time, &h->iuser, &h->iptr};
  for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++)
    if (*ds[i] > 0) H5Dclose(*ds[i]);
  if (h->f > 0) H5Fclose(h->f);
  memset(h, 0, sizeof *h);
}

/* Collective: open batch k and its datasets. */
static imf_status batch_h_open(const imf_store *s, int64_t k, batch_h *h) {
  memset(h, 0, sizeof *h);
  char path[4200];
  batch_path(s, k, path, sizeof path, 0);
  IMF_CHECK(batch_open(s, k, &h->f));
  struct {
    hid_t *d;
    const char *name;
  } ds[] = {{&h->user, "/ratings/user"}, {&h->item, "/ratings/item"},
            {&h->value, "/ratings/value"}, {&h->time, "/ratings/time"},
            {&h->iuser, "/index/user"},    {&h->iptr, "/index/user_ptr"}};
  imf_status st = IMF_OK;
  for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++) {
    *ds[i].d = H5Dopen2(h->f, ds[i].name, H5P_DEFAULT);
    if (*ds[i].d < 0) {
      st = imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__, "%s: no dataset %s: %s", path,
                         ds[i].name, imf_h5_reason());
      break;
    }
  }
  hsize_t nptr = 0;
  if (st == IMF_OK) st = dset_len(h->user, path, "/ratings/user", &h->nrows);
  if (st == IMF_OK) st = dset_len(h->iuser, path, "/index/user", &h->nindex);
  if (st == IMF_OK) st = dset_len(h->iptr, path, "/index/user_ptr", &nptr);
  if (st == IMF_OK && nptr != h->nindex + 1)
    st = imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__, "%s: /index/user_ptr has %llu entries, "
                       "expected %llu", path, (unsigned long long)nptr,
                       (unsigned long long)h->nindex + 1);
  if (st != IMF_OK) batch_h_close(h);
  return st;
}

/* Rows [r0, r1) of batch h holding users [lo, hi) (local, independent point reads). */
static imf_status user_rows(const batch_h *h, int64_t lo, int64_t hi, hid_t ind, const char *path,
                            hsize_t *r0, hsize_t *r1) {
  *r0 = *r1 = 0;
  if (lo >= hi || h->nindex == 0) return IMF_OK;
  hsize_t pa, pb;
  IMF_CHECK(lower_bound(h->iuser, h->nindex, lo, ind, path, &pa));
  IMF_CHECK(lower_bound(h->iuser, h->nindex, hi, ind, path, &pb));
  if (pa == pb) return IMF_OK;
  int64_t a, b;
  IMF_CHECK(read_range(h->iptr, H5T_NATIVE_INT64, pa, 1, &a, ind, path, "/index/user_ptr"));
  IMF_CHECK(read_range(h->iptr, H5T_NATIVE_INT64, pb, 1, &b, ind, path, "/index/user_ptr"));
  if (a < 0 || b < a || (hsize_t)b > h->nrows)
    IMF_FAIL(IMF_ERR_INPUT, "%s: /index/user_ptr is inconsistent", path);
  *r0 = (hsize_t)a;
  *r1 = (hsize_t)b;
  return IMF_OK;
}

/* Two consecutive rows of a batch, (u0, i0) then (u1, i1): strictly ascending, or the file is
 * corrupt. (local) */
static imf_status check_pair_order(const char *path, int32_t u0, int32_t i0, int32_t u1, int32_t i1) {
  if (u0 < u1 || (u0 == u1 && i0 < i1)) return IMF_OK;
  IMF_FAIL(IMF_ERR_INPUT, "%s is corrupt: its ratings are not in (user, item) order (user %d item %d "
           "before user %d item %d): restore that file from a backup or re-run prepare", path, u0, i0, u1, i1);
}

/* Rows read from batch k must name users of [ulo, uhi) and items that batch k knows, in the
 * strict (user, item) order every batch is written in: HDF5 does not checksum raw data, and a
 * flipped bit must not reach the callers as an index out of bounds, nor as a store whose ratings
 * are out of order (a one-batch read is not re-sorted) or repeat a pair. (local) */
static imf_status check_rows(const imf_store *s, int64_t k, const imf_ratings *r, int64_t from,
                             int64_t n, int64_t ulo, int64_t uhi, const char *path) {
  const batch_meta *b = &s->m.b[k - 1];
  if (uhi > b->users_after) uhi = b->users_after;
  if (ulo < 0) ulo = 0;
  for (int64_t j = from; j < from + n; j++) {
    if (r->user[j] < ulo || r->user[j] >= uhi || r->item[j] < 0 || r->item[j] >= b->items_after)
      IMF_FAIL(IMF_ERR_INPUT, "%s is corrupt: a rating names user %d and item %d, outside the "
               "batch's %lld users and %lld items: restore that file from a backup or re-run "
               "prepare", path, r->user[j], r->item[j], (long long)b->users_after,
               (long long)b->items_after);
    if (j > from) IMF_CHECK(check_pair_order(path, r->user[j - 1], r->item[j - 1], r->user[j], r->item[j]));
  }
  return IMF_OK;
}

/* Collective: check_rows sees the order inside each rank's share of a batch; this checks it
 * across the seams between the shares (each non-empty share's last row against the next
 * non-empty share's first), so that a corrupt batch is reported whatever the rank count. */
static imf_status check_row_seams(const imf_store *s, const imf_ratings *r, int64_t n, const char *path) {
  int32_t mine[5] = {n > 0, n ? r->user[0] : 0, n ? r->item[0] : 0, n ? r->user[n - 1] : 0, n ? r->item[n - 1] : 0};
  int32_t *all = NULL;
  imf_status st = imf_agree(s->comm, imf_alloc(&all, (size_t)s->size * 5, sizeof *all));
  if (st != IMF_OK) {
    imf_free(&all); /* the ranks whose allocation succeeded */
    return st;
  }
  if (MPI_Allgather(mine, 5, MPI_INT32_T, all, 5, MPI_INT32_T, s->comm) != MPI_SUCCESS) {
    imf_free(&all);
    IMF_FAIL(IMF_ERR_RUNTIME, "MPI_Allgather failed (batch row order)");
  }
  int64_t prev = -1; /* the last non-empty share so far */
  for (int q = 0; q < s->size && st == IMF_OK; q++) {
    const int32_t *e = all + 5 * q;
    if (!e[0]) continue;
    if (prev >= 0) {
      const int32_t *p = all + 5 * prev;
      st = check_pair_order(path, p[3], p[4], e[1], e[2]);
    }
    prev = q;
  }
  imf_free(&all);
  return st; /* the same verdict on every rank: all computed it from the same gathered ends */
}

typedef struct {
  const imf_ratings *r;
  const int32_t *tag;
} sort_ctx;
static sort_ctx g_sort; /* qsort has no context argument in C17 */

static int cmp_rows(const void *pa, const void *pb) {
  int64_t a = *(const int64_t *)pa, b = *(const int64_t *)pb;
  const imf_ratings *r = g_sort.r;
  if (r->user[a] != r->user[b]) return r->user[a] < r->user[b] ? -1 : 1;
  if (r->item[a] != r->item[b]) return r->item[a] < r->item[b] ? -1 : 1;
  if (g_sort.tag[a] != g_sort.tag[b]) return g_sort.tag[a] < g_sort.tag[b] ? -1 : 1;
  return a < b ? -1 : a > b;
}

imf_status imf_store_read_ratings(imf_store *s, int64_t user_lo, int64_t user_hi, imf_ratings *out) {
  imf_status st = IMF_OK;
  imf_ratings all = {0}, res = {0};
  int32_t *tag = NULL;
  int64_t *perm = NULL;
  hid_t ind = dxpl_make(0), coll = dxpl_make(1);
  if (user_hi < user_lo) user_hi = user_lo;
  for (int64_t k = 1; k <= s->m.nbatches; k++) {
    batch_h h;
    char path[4200];
    batch_path(s, k, path, sizeof path, 0);
    IMF_TRY(imf_agree(s->comm, st), done);
    IMF_TRY(batch_h_open(s, k, &h), done);
    hsize_t r0 = 0, r1 = 0;
    st = user_rows(&h, user_lo, user_hi, ind, path, &r0, &r1);
    hsize_t n = r1 - r0;
    if (st == IMF_OK) st = imf_ratings_reserve(&all, all.n + (int64_t)n + 1);
    if (st == IMF_OK) st = imf_realloc(&tag, (size_t)(all.n + (int64_t)n + 1), sizeof *tag);
    if (st != IMF_OK) n = r0 = 0; /* still take part in the collective reads below */
    st = imf_agree(s->comm, st);
    if (st == IMF_OK) {
      /* all four collective reads run on every rank; the first failure is kept */
      imf_status rs[4];
      rs[0] = read_range(h.user, H5T_NATIVE_INT32, r0, n, all.user + all.n, coll, path, "/ratings/user");
      rs[1] = read_range(h.item, H5T_NATIVE_INT32, r0, n, all.item + all.n, coll, path, "/ratings/item");
      rs[2] = read_range(h.value, H5T_NATIVE_FLOAT, r0, n, all.value + all.n, coll, path, "/ratings/value");
      rs[3] = read_range(h.time, H5T_NATIVE_INT64, r0, n, all.time + all.n, coll, path, "/ratings/time");
      for (int q = 3; q >= 0; q--)
        if (rs[q] != IMF_OK) st = rs[q];
      if (st == IMF_OK) st = check_rows(s, k, &all, all.n, (int64_t)n, user_lo, user_hi, path);
      st = imf_agree(s->comm, st);
    }
    batch_h_close(&h);
    if (st != IMF_OK) goto done;
    for (hsize_t j = 0; j < n; j++) tag[all.n + (int64_t)j] = (int32_t)k;
    all.n += (int64_t)n;
  }
  /* Merge the batches and resolve repeated (user,item) pairs with the store's policy. */
  if (st == IMF_OK && all.n > 0) {
    IMF_TRY(imf_alloc(&perm, (size_t)all.n, sizeof *perm), done);
    for (int64_t j = 0; j < all.n; j++) perm[j] = j;
    if (s->m.nbatches > 1) {
      g_sort.r = &all;
      g_sort.tag = tag;
      qsort(perm, (size_t)all.n, sizeof *perm, cmp_rows);
    }
    IMF_TRY(imf_ratings_reserve(&res, all.n), done);
    int policy = strcmp(s->m.duplicates, "first") == 0 ? 1 : strcmp(s->m.duplicates, "mean") == 0 ? 2 : 0;
    for (int64_t a = 0; a < all.n;) {
      int64_t j = perm[a], b = a + 1;
      while (b < all.n && all.user[perm[b]] == all.user[j] && all.item[perm[b]] == all.item[j]) b++;
      /* rows a..b-1 are one pair, in batch order */
      float v = all.value[j];
      int64_t t = all.time[j];
      if (b - a > 1) {
        if (policy == 0) { /* latest: greatest time; ties (and no times) go to the later batch */
          for (int64_t c = a + 1; c < b; c++)
            if (all.time[perm[c]] >= t) {
              t = all.time[perm[c]];
              v = all.value[perm[c]];
            }
        } else if (policy == 2) {
          double sum = 0;
          for (int64_t c = a; c < b; c++) {
            sum += all.value[perm[c]];
            if (all.time[perm[c]] > t) t = all.time[perm[c]];
          }
          v = (float)(sum / (double)(b - a));
        }
      }
      if (imf_store_is_forgotten(s, all.user[j])) {
        a = b;
        continue;
      }
      res.user[res.n] = all.user[j];
      res.item[res.n] = all.item[j];
      res.value[res.n] = v;
      res.time[res.n] = t;
      res.n++;
      a = b;
    }
  }
done:
  H5Pclose(ind);
  H5Pclose(coll);
  imf_ratings_free(&all);
  imf_free(&tag);
  imf_free(&perm);
  st = imf_agree(s->comm, st);
  if (st != IMF_OK) {
    imf_ratings_free(&res);
    return st;
  }
  *out = res;
  return IMF_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* writing a batch                                                                            */

/* Two independent 64-bit lanes per rating; sums over ratings are order independent, so the
 * digest does not depend on how the batch is split across ranks. */
static inline uint64_t mix_a(uint64_t z) { /* splitmix64 finaliser */
  z ^= z >> 30;
  z *= 0xbf58476d1ce4e5b9ULL;
  z ^= z >> 27;
  z *= 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
static inline uint64_t mix_b(uint64_t z) { /* murmur3 fmix64 */
  z ^= z >> 33;
  z *= 0xff51afd7ed558ccdULL;
  z ^= z >> 33;
  z *= 0xc4ceb9fe1a85ec53ULL;
  return z ^ (z >> 33);
}
static void rating_lanes(uint64_t j, int32_t u, int32_t i, float v, int64_t t, uint64_t *la,
                         uint64_t *lb) {
  uint32_t vb;
  memcpy(&vb, &v, sizeof vb);
  uint64_t x[4] = {j, ((uint64_t)(uint32_t)u << 32) | (uint32_t)i, vb, (uint64_t)t};
  uint64_t a = 0x243f6a8885a308d3ULL, b = 0x13198a2e03707344ULL;
  for (int k = 0; k < 4; k++) {
    a = mix_a(a ^ x[k]);
    b = mix_b(b + x[k] * 0x9e3779b97f4a7c15ULL + (uint64_t)k);
  }
  *la = a;
  *lb = b;
}

static void digest_idlist(EVP_MD_CTX *c, const imf_idlist *l) {
  sha_put_u64(c, (uint64_t)l->n);
  for (int64_t j = 0; j <= l->n; j++) sha_put_u64(c, l->off ? (uint64_t)l->off[j] : 0);
  if (l->n > 0) sha_put(c, l->blob, (size_t)l->off[l->n]);
}

static imf_status batch_digest(MPI_Comm comm, const imf_batch *b, int64_t row0, int64_t total,
                               char hex[65]) {
  uint64_t lanes[2] = {0, 0}, sums[2];
  const imf_ratings *r = &b->r;
  for (int64_t j = 0; j < r->n; j++) {
    uint64_t la, lb;
    rating_lanes((uint64_t)(row0 + j), r->user[j], r->item[j], r->value[j], r->time[j], &la, &lb);
    lanes[0] += la;
    lanes[1] += lb;
  }
  IMF_MPI(MPI_Allreduce(lanes, sums, 2, MPI_UINT64_T, MPI_SUM, comm));
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  if (!c) IMF_FAIL(IMF_ERR_NOMEM, "out of memory (digest)");
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  EVP_DigestInit_ex(c, EVP_sha256(), NULL);
  sha_put(c, "incremf-batch-digest-1", 22);
  sha_put_u64(c, sums[0]);
  sha_put_u64(c, sums[1]);
  sha_put_u64(c, (uint64_t)total);
  digest_idlist(c, &b->new_users);
  digest_idlist(c, &b->new_items);
  sha_put(c, b->report.sha256, strnlen(b->report.sha256, 64));
  EVP_DigestFinal_ex(c, d, &n);
  EVP_MD_CTX_free(c);
  hexify(d, n, hex);
  return IMF_OK;
}

/* Superseded: ratings of this batch whose (user,item) an earlier batch already holds. Only
 * users known before this batch can repeat a pair, and only their rows of earlier batches are
 * read, located through each batch's /index. */
/* Rows one window of count_superseded's reads may span (4-byte items: 16 MB). IMF_SUPERSEDE_WINDOW
 * overrides it (tests use a tiny one to exercise many windows on small data). */
static hsize_t supersede_window(void) {
  const char *e = getenv("IMF_SUPERSEDE_WINDOW");
  long long v = e ? atoll(e) : 0;
  return v > 0 ? (hsize_t)v : (hsize_t)1 << 22;
}

static imf_status count_superseded(imf_store *s, const imf_batch *b, int64_t *out) {
  const imf_ratings *r = &b->r;
  *out = 0;
  /* A first batch, or one after batches without users, has nothing to supersede (the same on
   * every rank: the manifest is replicated). Its buffers would be 13 bytes a row of zeroed
   * memory: 0.5 s of a 42M-rating prepare. */
  if (s->m.nbatches == 0 || b->users_before == 0) return IMF_OK;
  imf_status st = IMF_OK;
  unsigned char *flag = NULL;
  int32_t *tu = NULL, *items = NULL, *slice_u = NULL;
  int64_t *tstart = NULL, *slice_p = NULL;
  hsize_t *run0 = NULL, *run1 = NULL, *match_row = NULL;
  int64_t *match_t = NULL;
  struct {
    hsize_t a, b;
  } *win = NULL;
  int64_t ntu = 0, local = 0;
  hid_t ind = dxpl_make(0), coll = dxpl_make(1);
  int64_t nknown = 0; /* this rank's users of the batch known before it */
  for (int64_t j = 0; j < r->n; j++)
    nknown += r->user[j] < b->users_before && (j == 0 || r->user[j] != r->user[j - 1]);
  st = imf_alloc(&flag, (size_t)r->n + 1, 1);
  if (st == IMF_OK) st = imf_alloc(&tu, (size_t)nknown + 1, sizeof *tu);
  if (st == IMF_OK) st = imf_alloc(&tstart, (size_t)nknown + 2, sizeof *tstart);
  if (st == IMF_OK)
    for (int64_t j = 0; j < r->n; j++)
      if (r->user[j] < b->users_before && (j == 0 || r->user[j] != r->user[j - 1])) {
        tu[ntu] = r->user[j];
        tstart[ntu++] = j;
      }
  for (int64_t k = 1; k <= s->m.nbatches; k++) {
    IMF_TRY(imf_agree(s->comm, st), done);
    batch_h h;
    char path[4200];
    batch_path(s, k, path, sizeof path, 0);
    IMF_TRY(batch_h_open(s, k, &h), done);
    hsize_t pa = 0, pb = 0, ns = 0, nruns = 0, nread = 0;
    int64_t nmatch = 0;
    if (ntu > 0 && h.nindex > 0) {
      st = lower_bound(h.iuser, h.nindex, tu[0], ind, path, &pa);
      if (st == IMF_OK) st = lower_bound(h.iuser, h.nindex, (int64_t)tu[ntu - 1] + 1, ind, path, &pb);
    }
    ns = pb > pa ? pb - pa : 0;
    if (st == IMF_OK) st = imf_realloc(&slice_u, ns + 1, sizeof *slice_u);
    if (st == IMF_OK) st = imf_realloc(&slice_p, ns + 2, sizeof *slice_p);
    if (st != IMF_OK) ns = 0;
    IMF_TRY(imf_agree(s->comm, st), close_h);
    {
      /* both collective reads run on every rank whatever the first returned */
      imf_status s1 = read_range(h.iuser, H5T_NATIVE_INT32, pa, ns, slice_u, coll, path, "/index/user");
      imf_status s2 = read_range(h.iptr, H5T_NATIVE_INT64, pa, ns ? ns + 1 : 0, slice_p, coll, path,
                                 "/index/user_ptr");
      st = s1 != IMF_OK ? s1 : s2;
    }
    IMF_TRY(imf_agree(s->comm, st), close_h);
    /* Match touched users against the slice; merge adjacent row ranges into runs. */
    st = imf_realloc(&run0, (size_t)ntu + 1, sizeof *run0);
    if (st == IMF_OK) st = imf_realloc(&run1, (size_t)ntu + 1, sizeof *run1);
    if (st == IMF_OK) st = imf_realloc(&match_row, (size_t)ntu + 1, sizeof *match_row);
    if (st == IMF_OK) st = imf_realloc(&match_t, (size_t)ntu + 1, sizeof *match_t);
    if (st == IMF_OK) {
      hsize_t q = 0;
      for (int64_t t = 0; t < ntu && q < ns; t++) {
        while (q < ns && slice_u[q] < tu[t]) q++;
        if (q < ns && slice_u[q] == tu[t]) {
          hsize_t a = (hsize_t)slice_p[q], e = (hsize_t)slice_p[q + 1];
          if (e == a) continue; /* no rows: nothing to match */
          if (e < a || e > h.nrows) {
            st = imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__, "%s: /index/user_ptr is inconsistent", path);
            break;
          }
          match_t[nmatch] = t;
          match_row[nmatch++] = a;
          if (nruns > 0 && run1[nruns - 1] == a) run1[nruns - 1] = e;
          else {
            run0[nruns] = a;
            run1[nruns++] = e;
          }
        }
      }
    }
    /* The touched users' rows are read in windows: consecutive runs grouped while the window
     * spans at most supersede_window() rows (a single longer run is a window of its own), one
     * contiguous collective read each, gaps inside a window read and ignored. A union of
     * per-run hyperslabs would read only the runs, but building one costs HDF5 1.10 time
     * quadratic in the number of runs (11 s for 40k runs per rank, measured on a 5M store). */
    int64_t nwin = 0, nwin_all = 0;
    const hsize_t window = supersede_window();
    if (st == IMF_OK) st = imf_realloc(&win, (size_t)nruns + 1, sizeof *win);
    if (st == IMF_OK)
      for (hsize_t q = 0; q < nruns;) {
        hsize_t w0 = run0[q], w1 = run1[q];
        q++;
        while (q < nruns && run1[q] - w0 <= window) w1 = run1[q++];
        win[nwin].a = w0;
        win[nwin].b = w1;
        if (w1 - w0 > nread) nread = w1 - w0;
        nwin++;
      }
    if (st == IMF_OK) st = imf_realloc(&items, nread + 1, sizeof *items);
    if (st != IMF_OK) nwin = 0;
    IMF_TRY(imf_agree(s->comm, st), close_h);
    if (MPI_Allreduce(&nwin, &nwin_all, 1, MPI_INT64_T, MPI_MAX, s->comm) != MPI_SUCCESS) {
      st = imf_err_raise(IMF_ERR_RUNTIME, __FILE__, __LINE__, "MPI_Allreduce failed (superseded windows)");
      goto close_h;
    }
    int64_t m = 0; /* matches are in row order: each window takes the next ones */
    for (int64_t w = 0; w < nwin_all; w++) {
      hsize_t w0 = w < nwin ? win[w].a : 0, cnt = w < nwin ? win[w].b - win[w].a : 0;
      {
        hid_t fs = H5Dget_space(h.item);
        hsize_t one = 1, mcnt = cnt ? cnt : 1;
        hid_t ms = H5Screate_simple(1, &mcnt, NULL);
        herr_t e = 0;
        if (cnt == 0) {
          e = H5Sselect_none(fs);
          if (e >= 0) e = H5Sselect_none(ms);
        } else {
          e = H5Sselect_hyperslab(fs, H5S_SELECT_SET, &w0, NULL, &one, &cnt);
        }
        if (e >= 0) e = H5Dread(h.item, H5T_NATIVE_INT32, ms, fs, coll, items);
        if (e < 0) imf_h5_reason();
        H5Sclose(ms);
        H5Sclose(fs);
        if (e < 0 && st == IMF_OK)
          st = imf_err_raise(IMF_ERR_RUNTIME, __FILE__, __LINE__, "%s: cannot read /ratings/item: %s",
                             path, imf_h5_last());
      }
      for (; st == IMF_OK && cnt > 0 && m < nmatch && match_row[m] < w0 + cnt; m++) {
        int64_t t = match_t[m];
        hsize_t base = match_row[m] - w0;
        /* length of this user's rows in batch k: up to the next index entry */
        int64_t j = tstart[t], jend = j;
        while (jend < r->n && r->user[jend] == tu[t]) jend++;
        /* the earlier batch's rows for the user end where its ptr says */
        hsize_t len = 0;
        {
          /* find the slice entry again: slice_u is sorted, binary search */
          hsize_t lo = 0, hi = ns;
          while (lo < hi) {
            hsize_t mid = (lo + hi) / 2;
            if (slice_u[mid] < tu[t]) lo = mid + 1;
            else hi = mid;
          }
          len = (hsize_t)(slice_p[lo + 1] - slice_p[lo]);
        }
        hsize_t x = 0;
        while (j < jend && x < len) {
          int32_t ei = items[base + x];
          if (ei < r->item[j]) x++;
          else if (ei > r->item[j]) j++;
          else {
            flag[j] = 1;
            j++;
            x++;
          }
        }
      }
    }
    st = imf_agree(s->comm, st);
  close_h:
    batch_h_close(&h);
    if (st != IMF_OK) goto done;
  }
  IMF_TRY(imf_agree(s->comm, st), done);
  for (int64_t j = 0; j < r->n; j++) local += flag[j];
  if (MPI_Allreduce(&local, out, 1, MPI_INT64_T, MPI_SUM, s->comm) != MPI_SUCCESS)
    st = imf_err_raise(IMF_ERR_RUNTIME, __FILE__, __LINE__, "MPI_Allreduce failed (superseded)");
done:
  H5Pclose(ind);
  H5Pclose(coll);
  imf_free(&flag);
  imf_free(&tu);
  imf_free(&tstart);
  imf_free(&items);
  imf_free(&slice_u);
  imf_free(&slice_p);
  imf_free(&run0);
  imf_free(&run1);
  imf_free(&match_row);
  imf_free(&match_t);
  imf_free(&win);
  return st;
}

/* Collective: create a 1-d dataset of `total` elements and write [off, off+cnt) from buf. */
static imf_status write_dset(hid_t f, const char *name, hid_t ftype, hid_t mtype, hsize_t total,
                             hsize_t off, hsize_t cnt, const void *buf, hid_t dxpl,
                             const char *path) {
  hid_t fs = H5Screate_simple(1, &total, NULL);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  /* Every element gets written: skip the fill pass. */
  H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
  H5Pset_layout(dcpl, H5D_CONTIGUOUS);
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  hid_t d = H5Dcreate2(f, name, ftype, fs, lcpl, dcpl, H5P_DEFAULT);
  if (d < 0) imf_h5_reason();
  H5Pclose(lcpl);
  H5Pclose(dcpl);
  if (d < 0) {
    H5Sclose(fs);
    IMF_FAIL(IMF_ERR_RUNTIME, "%s: cannot create dataset %s: %s", path, name, imf_h5_last());
  }
  herr_t e = 0;
  if (total > 0) {
    hsize_t one = 1, mcnt = cnt ? cnt : 1;
    hid_t ms = H5Screate_simple(1, &mcnt, NULL);
    if (cnt) e = H5Sselect_hyperslab(fs, H5S_SELECT_SET, &off, NULL, &one, &cnt);
    else {
      e = H5Sselect_none(fs);
      if (e >= 0) e = H5Sselect_none(ms);
    }
    static const char dummy[16];
    if (e >= 0) e = H5Dwrite(d, mtype, ms, fs, dxpl, cnt ? buf : dummy);
    if (e < 0) imf_h5_reason(); /* keep the reason: the next calls clear HDF5's stack */
    H5Sclose(ms);
  }
  H5Sclose(fs);
  if (e >= 0 && H5Dclose(d) < 0) {
    e = -1;
    imf_h5_reason();
  } else if (e < 0) {
    H5Dclose(d);
  }
  if (e < 0) IMF_FAIL(IMF_ERR_RUNTIME, "%s: cannot write dataset %s: %s", path, name, imf_h5_last());
  return IMF_OK;
}

static imf_status attr_i64(hid_t f, const char *name, const int64_t *v, hsize_t n, const char *path) {
  hid_t sp = n == 1 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, NULL);
  hid_t a = H5Acreate2(f, name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
  herr_t e = a < 0 ? -1 : H5Awrite(a, H5T_NATIVE_INT64, v);
  if (e < 0) imf_h5_reason();
  if (a >= 0) H5Aclose(a);
  H5Sclose(sp);
  if (e < 0) IMF_FAIL(IMF_ERR_RUNTIME, "%s: cannot write attribute %s: %s", path, name, imf_h5_last());
  return IMF_OK;
}

static imf_status attr_str(hid_t f, const char *name, const char *v, const char *path) {
  hid_t sp = H5Screate(H5S_SCALAR);
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, strlen(v) + 1);
  H5Tset_strpad(t, H5T_STR_NULLTERM);
  hid_t a = H5Acreate2(f, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
  herr_t e = a < 0 ? -1 : H5Awrite(a, t, v);
  if (e < 0) imf_h5_reason();
  if (a >= 0) H5Aclose(a);
  H5Tclose(t);
  H5Sclose(sp);
  if (e < 0) IMF_FAIL(IMF_ERR_RUNTIME, "%s: cannot write attribute %s: %s", path, name, imf_h5_last());
  return IMF_OK;
}

/* Local checks of this rank's part: sorted by (user,item), unique, indices in range. */
static imf_status check_batch(const imf_store *s, const imf_batch *b) {
  const imf_ratings *r = &b->r;
  if (s->mode != IMF_STORE_WRITE)
    IMF_FAIL(IMF_ERR_RUNTIME, "%s: store opened read-only cannot take a batch", s->dir);
  if (b->users_before != s->m.users || b->items_before != s->m.items)
    IMF_FAIL(IMF_ERR_RUNTIME,
             "%s: batch built against %lld users / %lld items, store has %lld / %lld (stale id map)",
             s->dir, (long long)b->users_before, (long long)b->items_before, (long long)s->m.users,
             (long long)s->m.items);
  int64_t nu = b->users_before + b->new_users.n, ni = b->items_before + b->new_items.n;
  if (nu > INT32_MAX || ni > INT32_MAX)
    IMF_FAIL(IMF_ERR_INPUT, "%s: more than %d users or items (documented limit)", s->dir, INT32_MAX);
  for (int64_t j = 0; j < r->n; j++) {
    if (r->user[j] < 0 || r->user[j] >= nu || r->item[j] < 0 || r->item[j] >= ni)
      IMF_FAIL(IMF_ERR_RUNTIME, "%s: batch rating %lld has an index out of range (%d, %d)", s->dir,
               (long long)j, r->user[j], r->item[j]);
    if (j > 0 && (r->user[j] < r->user[j - 1] ||
                  (r->user[j] == r->user[j - 1] && r->item[j] <= r->item[j - 1])))
      IMF_FAIL(IMF_ERR_RUNTIME, "%s: batch ratings are not sorted by (user,item) without repeats "
               "(at local row %lld)", s->dir, (long long)j);
  }
  return IMF_OK;
}

static int env_fault(const char *name) {
  const char *f = getenv("IMF_FAULT");
  return f && strcmp(f, name) == 0;
}

/* (rank 0) Remove *.tmp leftovers and batch files the manifest does not name: debris of writes
 * that crashed before their commit. */
static void remove_strays(const imf_store *s) {
  DIR *d = opendir(s->dir);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    const char *n = e->d_name;
    size_t l = strlen(n);
    long long k = 0;
    char tail[8] = "";
    int stray = 0;
    if (l > 4 && strcmp(n + l - 4, ".tmp") == 0) stray = 1;
    else if (sscanf(n, "batch-%lld.h%7s", &k, tail) == 2 && strcmp(tail, "5") == 0 &&
             (k < 1 || k > s->m.nbatches || strcmp(s->m.b[k - 1].file, n) != 0))
      stray = 1;
    if (stray) {
      char p[4400];
      snprintf(p, sizeof p, "%s/%s", s->dir, n);
      if (unlink(p) == 0) imf_info("removed %s (left over by an interrupted write)", p);
    }
  }
  closedir(d);
}

/* The per-item index of a batch (docs/FORMAT.md, /index/item*): every row position (global,
 * 0-based) is sent to the owner of its item's block (items split evenly over the ranks), which
 * sorts them by item with a stable counting sort (arrival order is position order: ranks are
 * received in rank order and each sends its rows in order). Out: this rank's distinct items
 * (ascending), their row offsets into /index/item_pos (global; the last rank also gets the
 * closing offset at iptr[*ndi]) and its share of /index/item_pos; the global offsets of both
 * shares and the global count of distinct items. Collective. */
typedef struct {
  int32_t *item;
  int64_t *ptr, *pos; /* pos: int32_t elements when narrow */
  int64_t ndi, npos, di_off, pos_off, di_total;
  int narrow;
} item_index;

static void item_index_free(item_index *x) {
  imf_free(&x->item);
  imf_free(&x->ptr);
  imf_free(&x->pos);
}

/* What travels for one row: its item and its index on the sending rank (the receiver adds the
 * sender's first row). 8 bytes instead of an (item, global row) pair of int64s: on 10M
 * ratings the pairs, sent and received, were 320 MB of fresh pages, the largest allocation of
 * `prepare` (peak memory 3.6x the batch's arrays). One rank sends nothing: its rows are sorted
 * where they lie. */
typedef struct {
  int32_t item, j;
} item_row;

static imf_status item_index_build(imf_store *s, const imf_ratings *r, int64_t row0, int64_t nitems, int narrow,
                                   item_index *x) {
  memset(x, 0, sizeof *x);
  x->narrow = narrow;
  int P = s->size;
  imf_status st = IMF_OK;
  int64_t *sc = NULL, *sd = NULL, *rc = NULL, *rd = NULL, *fill = NULL, *cnt = NULL, *row0s = NULL, *bounds = NULL;
  item_row *sbuf = NULL, *rbuf = NULL;
  int64_t lo = nitems * s->rank / P, hi = nitems * (s->rank + 1) / P, nr = r->n;
  MPI_Datatype pt = MPI_DATATYPE_NULL;
  if (r->n > INT32_MAX) /* (ingest refuses more than 2^31 ratings on one rank before this) */
    st = imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__, "%s: more than 2^31 ratings on one rank; use more ranks", s->dir);
  if (st == IMF_OK && P > 1) {
    st = imf_alloc(&bounds, (size_t)P + 1, sizeof *bounds);
    /* items split evenly; each row's owner is a search of these bounds (imf_block_owner): a
     * division per row, twice, was a visible part of the index build */
    if (st == IMF_OK)
      for (int q = 0; q <= P; q++) bounds[q] = nitems * q / P;
    if (st == IMF_OK) st = imf_alloc(&sc, (size_t)P, sizeof *sc);
    if (st == IMF_OK) st = imf_alloc(&sd, (size_t)P, sizeof *sd);
    if (st == IMF_OK) st = imf_alloc(&rc, (size_t)P, sizeof *rc);
    if (st == IMF_OK) st = imf_alloc(&rd, (size_t)P, sizeof *rd);
    if (st == IMF_OK) st = imf_alloc(&fill, (size_t)P, sizeof *fill);
    if (st == IMF_OK) st = imf_alloc(&row0s, (size_t)P, sizeof *row0s);
    if (st == IMF_OK) st = imf_alloc_nz(&sbuf, (size_t)r->n + 1, sizeof *sbuf);
  }
  IMF_TRY(imf_agree(s->comm, st), out);
  if (P > 1) {
    for (int64_t j = 0; j < r->n; j++) sc[imf_block_owner(bounds, P, r->item[j])]++;
    for (int q = 1; q < P; q++) sd[q] = sd[q - 1] + sc[q - 1];
    memcpy(fill, sd, (size_t)P * sizeof *fill);
    for (int64_t j = 0; j < r->n; j++)
      sbuf[fill[imf_block_owner(bounds, P, r->item[j])]++] = (item_row){r->item[j], (int32_t)j};
    if (MPI_Alltoall(sc, 1, MPI_INT64_T, rc, 1, MPI_INT64_T, s->comm) != MPI_SUCCESS ||
        MPI_Allgather(&row0, 1, MPI_INT64_T, row0s, 1, MPI_INT64_T, s->comm) != MPI_SUCCESS)
      st = imf_err_raise(IMF_ERR_RUNTIME, __FILE__, __LINE__, "MPI_Alltoall/MPI_Allgather failed (item index)");
    IMF_TRY(imf_agree(s->comm, st), out);
    nr = 0;
    for (int q = 0; q < P; q++) {
      rd[q] = nr;
      nr += rc[q];
    }
    st = imf_alloc_nz(&rbuf, (size_t)nr + 1, sizeof *rbuf);
    if (st == IMF_OK && MPI_Type_contiguous(2, MPI_INT32_T, &pt) != MPI_SUCCESS)
      st = imf_err_raise(IMF_ERR_RUNTIME, __FILE__, __LINE__, "MPI_Type_contiguous failed");
    if (st == IMF_OK) MPI_Type_commit(&pt);
    IMF_TRY(imf_agree(s->comm, st), out);
    IMF_TRY(imf_alltoallv64(s->comm, sbuf, sc, sd, rbuf, rc, rd, pt), out);
    imf_free(&sbuf);
  }
  /* Stable counting sort by item over [lo, hi): arrival order is row order (senders in rank
   * order, each in row order), so each item's rows come out ascending. */
  int64_t w = hi - lo;
  st = imf_alloc(&cnt, (size_t)w + 1, sizeof *cnt);
  if (st == IMF_OK) st = imf_alloc_nz(&x->pos, (size_t)nr + 1, narrow ? sizeof(int32_t) : sizeof(int64_t));
  int32_t *pos32 = (int32_t *)(void *)x->pos;
#define PUT_POS(at, v) (narrow ? (void)(pos32[at] = (int32_t)(v)) : (void)(x->pos[at] = (v)))
#define ROW_ITEM(j) (P > 1 ? (int64_t)rbuf[j].item : (int64_t)r->item[j])
  for (int64_t j = 0; st == IMF_OK && j < nr; j++) {
    int64_t i = ROW_ITEM(j);
    if (i < lo || i >= hi) st = imf_err_raise(IMF_ERR_RUNTIME, __FILE__, __LINE__, "item index: item %lld sent to the wrong rank", (long long)i);
    else cnt[i - lo + 1]++;
  }
  IMF_TRY(imf_agree(s->comm, st), out);
  for (int64_t q = 0; q < w; q++) {
    if (cnt[q + 1]) x->ndi++;
    cnt[q + 1] += cnt[q];
  }
  if (P > 1) {
    for (int q = 0; q < P; q++)
      for (int64_t j = rd[q]; j < rd[q] + rc[q]; j++) PUT_POS(cnt[rbuf[j].item - lo]++, row0s[q] + rbuf[j].j);
  } else {
    for (int64_t j = 0; j < nr; j++) PUT_POS(cnt[r->item[j] - lo]++, row0 + j);
  }
#undef ROW_ITEM
#undef PUT_POS
  x->npos = nr;
  IMF_MPI(MPI_Exscan(&nr, &x->pos_off, 1, MPI_INT64_T, MPI_SUM, s->comm));
  IMF_MPI(MPI_Exscan(&x->ndi, &x->di_off, 1, MPI_INT64_T, MPI_SUM, s->comm));
  if (s->rank == 0) x->pos_off = x->di_off = 0;
  IMF_MPI(MPI_Allreduce(&x->ndi, &x->di_total, 1, MPI_INT64_T, MPI_SUM, s->comm));
  st = imf_alloc(&x->item, (size_t)x->ndi + 1, sizeof *x->item);
  if (st == IMF_OK) st = imf_alloc(&x->ptr, (size_t)x->ndi + 2, sizeof *x->ptr);
  if (st == IMF_OK) {
    /* after the scatter cnt[q] is the end of item lo+q; its start is the previous end */
    int64_t q2 = 0, prev = 0;
    for (int64_t q = 0; q < w; q++) {
      if (cnt[q] > prev) {
        x->item[q2] = (int32_t)(lo + q);
        x->ptr[q2++] = x->pos_off + prev;
      }
      prev = cnt[q];
    }
    x->ptr[q2] = x->pos_off + nr; /* the closing offset (written by the last rank only) */
  }
  IMF_TRY(imf_agree(s->comm, st), out);
out:
  if (pt != MPI_DATATYPE_NULL) MPI_Type_free(&pt);
  imf_free(&sc);
  imf_free(&sd);
  imf_free(&rc);
  imf_free(&rd);
  imf_free(&fill);
  imf_free(&row0s);
  imf_free(&bounds);
  imf_free(&cnt);
  imf_free(&sbuf);
  imf_free(&rbuf);
  if (st != IMF_OK) item_index_free(x);
  return st;
}

imf_status imf_store_write_batch(imf_store *s, imf_batch *b) {
  const double t0 = imf_wtime(); /* for the phase line at the end (where an append's time goes) */
  imf_status st = check_batch(s, b);
  IMF_CHECK(imf_agree(s->comm, st));
  const imf_ratings *r = &b->r;
  /* Rank r's users must precede rank r+1's: that is what makes the file canonical. */
  int64_t mine[3] = {r->n, r->n ? r->user[0] : 0, r->n ? r->user[r->n - 1] : 0};
  int64_t *all = NULL;
  IMF_CHECK(imf_alloc(&all, (size_t)s->size * 3, sizeof *all));
  if (MPI_Allgather(mine, 3, MPI_INT64_T, all, 3, MPI_INT64_T, s->comm) != MPI_SUCCESS) {
    imf_free(&all);
    IMF_FAIL(IMF_ERR_RUNTIME, "MPI_Allgather failed");
  }
  int64_t last = -1, total = 0, row0 = 0;
  for (int p = 0; p < s->size; p++) {
    if (p == s->rank) row0 = total;
    total += all[3 * p];
    if (all[3 * p] == 0) continue;
    if (all[3 * p + 1] <= last) st = IMF_ERR_RUNTIME;
    last = all[3 * p + 2];
  }
  imf_free(&all);
  if (st != IMF_OK)
    IMF_FAIL(IMF_ERR_RUNTIME, "%s: batch rows are not partitioned by user in rank order", s->dir);

  /* index: distinct users of this rank and their row offsets */
  int64_t du = 0;
  for (int64_t j = 0; j < r->n; j++)
    if (j == 0 || r->user[j] != r->user[j - 1]) du++;
  int64_t du_off = 0, du_total = 0;
  IMF_MPI(MPI_Exscan(&du, &du_off, 1, MPI_INT64_T, MPI_SUM, s->comm));
  if (s->rank == 0) du_off = 0;
  IMF_MPI(MPI_Allreduce(&du, &du_total, 1, MPI_INT64_T, MPI_SUM, s->comm));
  int last_rank = s->rank == s->size - 1;
  item_index ix;
  memset(&ix, 0, sizeof ix);
  int32_t *iu = NULL;
  int64_t *ip = NULL;
  st = imf_alloc(&iu, (size_t)du + 1, sizeof *iu);
  if (st == IMF_OK) st = imf_alloc(&ip, (size_t)du + 2, sizeof *ip);
  if (st == IMF_OK) {
    int64_t q = 0;
    for (int64_t j = 0; j < r->n; j++)
      if (j == 0 || r->user[j] != r->user[j - 1]) {
        iu[q] = r->user[j];
        ip[q++] = row0 + j;
      }
    if (last_rank) ip[q] = total; /* the closing offset */
  }
  IMF_TRY(imf_agree(s->comm, st), out);

  int64_t superseded = 0;
  const double t_uix = imf_wtime();
  IMF_TRY(count_superseded(s, b, &superseded), out);
  const double t_sup = imf_wtime();
  /* Positions of a batch under 2^31 rows are stored in 4 bytes (every reader asks for int64 and
   * read_range widens them): the batch file is 14% smaller, and writing it into the page cache
   * (2.2-2.8 s of a 1.1 GB prepare, on one rank or two: ext4 takes one writer at a time) shrinks
   * with it, as does the index's memory at prepare's peak. */
  IMF_TRY(item_index_build(s, r, row0, b->items_before + b->new_items.n, total <= INT32_MAX, &ix), out);
  const double t_idx = imf_wtime();
  char digest[65];
  IMF_TRY(batch_digest(s->comm, b, row0, total, digest), out);
  const double t_dig = imf_wtime();
  int64_t tl[3] = {INT64_MAX, INT64_MAX, 0}, tg[3]; /* min time, -(max time), -(any missing) */
  for (int64_t j = 0; j < r->n; j++)
    if (r->time[j] != IMF_NO_TIME) {
      if (r->time[j] < tl[0]) tl[0] = r->time[j];
      if (-r->time[j] < tl[1]) tl[1] = -r->time[j];
    } else tl[2] = -1;
  if (MPI_Allreduce(tl, tg, 3, MPI_INT64_T, MPI_MIN, s->comm) != MPI_SUCCESS) {
    st = imf_err_raise(IMF_ERR_RUNTIME, __FILE__, __LINE__, "MPI_Allreduce failed (time range)");
    goto out;
  }
  b->time_min = tg[0] == INT64_MAX ? IMF_NO_TIME : tg[0];
  b->time_max = tg[1] == INT64_MAX ? IMF_NO_TIME : -tg[1];
  imf_scale vscale; /* the observed value scale (min, max, step), recorded in the manifest */
  IMF_TRY(imf_scale_reduce(s->comm, r, &vscale), out);
  /* Timestamps are stored in 4 bytes when every row has one that fits (Unix seconds do until
   * 2038): like the positions above, readers ask for int64 and get them widened. The column is
   * narrowed in place for the write and widened back after it, so no second copy is made. */
  const int narrow_time = tg[2] == 0 && (total == 0 || (b->time_min >= INT32_MIN && b->time_max <= INT32_MAX));

  int64_t k = s->m.nbatches + 1;
  batch_meta bm;
  memset(&bm, 0, sizeof bm);
  bm.number = k;
  snprintf(bm.file, sizeof bm.file, "batch-%06lld.h5", (long long)k);
  snprintf(bm.source, sizeof bm.source, "%s", b->source);
  snprintf(bm.sha256, sizeof bm.sha256, "%s", b->report.sha256);
  if (strlen(bm.sha256) != 64) snprintf(bm.sha256, sizeof bm.sha256, "%064d", 0);
  memcpy(bm.digest, digest, 65);
  bm.lines_read = b->report.lines_read;
  bm.header = b->report.header;
  bm.stored = b->report.stored;
  bm.merged = b->report.merged;
  bm.rejected = b->report.rejected;
  bm.superseded = superseded;
  bm.new_users = b->new_users.n;
  bm.new_items = b->new_items.n;
  bm.rows = total;
  bm.users_after = b->users_before + b->new_users.n;
  bm.items_after = b->items_before + b->new_items.n;
  bm.time_min = b->time_min;
  bm.time_max = b->time_max;
  bm.has_scale = 1;
  bm.scale = vscale;

  /* ---- the batch file, written collectively to a .tmp name ---- */
  char tmp[4200], fin[4200];
  batch_path(s, k, tmp, sizeof tmp, 1);
  batch_path(s, k, fin, sizeof fin, 0);
  if (s->rank == 0) { /* a full disk is refused before HDF5 starts (see imf_fs_need_space) */
    const imf_idlist *u0 = &b->new_users, *i0 = &b->new_items;
    double need = 28.0 * (double)total + 12.0 * (double)(du_total + ix.di_total) + 16.0 * (double)(u0->n + i0->n) +
                  (double)(u0->off ? u0->off[u0->n] : 0) + (double)(i0->off ? i0->off[i0->n] : 0) +
                  65536.0 + 4096.0; /* HDF5 metadata; the manifest after it */
    st = imf_fs_need_space(s->dir, tmp, need);
  }
  IMF_TRY(imf_agree(s->comm, st), out);
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_fapl_mpio(fapl, s->comm, MPI_INFO_NULL);
  H5Pset_all_coll_metadata_ops(fapl, 1);
  H5Pset_coll_metadata_write(fapl, 1);
  /* The 1.8 file format: checksummed metadata, so a damaged batch file is refused by HDF5's
   * checksums instead of being decoded (HDF5 1.10's decoders overrun buffers on some corrupt
   * object headers: tests/fuzz). */
  H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST);
  const double t_create = imf_wtime();
  hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  if (f < 0) imf_h5_reason();
  H5Pclose(fapl);
  if (f < 0) {
    st = imf_err_raise(IMF_ERR_RUNTIME, __FILE__, __LINE__, "%s: cannot create: %s", tmp, imf_h5_last());
    goto out; /* H5Fcreate is collective: every rank failed alike */
  }
  hid_t coll = dxpl_make(1);
  hsize_t n = (hsize_t)r->n, o = (hsize_t)row0;
  int r0 = s->rank == 0;
  const imf_idlist *nu = &b->new_users, *ni = &b->new_items;
  int64_t zero_off = 0;
  const int64_t *uoff = nu->off ? nu->off : &zero_off, *ioff = ni->off ? ni->off : &zero_off;
  hsize_t ublob = (hsize_t)uoff[nu->n], iblob = (hsize_t)ioff[ni->n];
#define W(expr) \
  do { \
    st = imf_agree(s->comm, (expr)); \
    if (st != IMF_OK) goto close_file; \
  } while (0)
  W(write_dset(f, "/ratings/user", H5T_STD_I32LE, H5T_NATIVE_INT32, (hsize_t)total, o, n, r->user, coll, tmp));
  W(write_dset(f, "/ratings/item", H5T_STD_I32LE, H5T_NATIVE_INT32, (hsize_t)total, o, n, r->item, coll, tmp));
  W(write_dset(f, "/ratings/value", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, (hsize_t)total, o, n, r->value, coll, tmp));
  if (narrow_time) {
    int32_t *t32 = (int32_t *)(void *)r->time; /* element j moves from byte 8j down to 4j */
    for (int64_t j = 0; j < r->n; j++) t32[j] = (int32_t)r->time[j];
    st = write_dset(f, "/ratings/time", H5T_STD_I32LE, H5T_NATIVE_INT32, (hsize_t)total, o, n, t32, coll, tmp);
    for (int64_t j = r->n - 1; j >= 0; j--) r->time[j] = t32[j]; /* from the top: nothing unread is overwritten */
    W(st);
  } else
    W(write_dset(f, "/ratings/time", H5T_STD_I64LE, H5T_NATIVE_INT64, (hsize_t)total, o, n, r->time, coll, tmp));
  W(write_dset(f, "/index/user", H5T_STD_I32LE, H5T_NATIVE_INT32, (hsize_t)du_total, (hsize_t)du_off, (hsize_t)du, iu, coll, tmp));
  W(write_dset(f, "/index/user_ptr", H5T_STD_I64LE, H5T_NATIVE_INT64, (hsize_t)du_total + 1, (hsize_t)du_off,
               (hsize_t)du + (last_rank ? 1 : 0), ip, coll, tmp));
  W(write_dset(f, "/index/item", H5T_STD_I32LE, H5T_NATIVE_INT32, (hsize_t)ix.di_total, (hsize_t)ix.di_off,
               (hsize_t)ix.ndi, ix.item, coll, tmp));
  W(write_dset(f, "/index/item_ptr", H5T_STD_I64LE, H5T_NATIVE_INT64, (hsize_t)ix.di_total + 1, (hsize_t)ix.di_off,
               (hsize_t)ix.ndi + (last_rank ? 1 : 0), ix.ptr, coll, tmp));
  W(write_dset(f, "/index/item_pos", ix.narrow ? H5T_STD_I32LE : H5T_STD_I64LE,
               ix.narrow ? H5T_NATIVE_INT32 : H5T_NATIVE_INT64, (hsize_t)total, (hsize_t)ix.pos_off,
               (hsize_t)ix.npos, ix.pos, coll, tmp));
  /* id lists are replicated on every rank: rank 0 writes them, the others take part */
  W(write_dset(f, "/ids/user_blob", H5T_STD_U8LE, H5T_NATIVE_UINT8, ublob, 0, r0 ? ublob : 0, nu->blob, coll, tmp));
  W(write_dset(f, "/ids/user_off", H5T_STD_I64LE, H5T_NATIVE_INT64, (hsize_t)nu->n + 1, 0, r0 ? (hsize_t)nu->n + 1 : 0, uoff, coll, tmp));
  W(write_dset(f, "/ids/item_blob", H5T_STD_U8LE, H5T_NATIVE_UINT8, iblob, 0, r0 ? iblob : 0, ni->blob, coll, tmp));
  W(write_dset(f, "/ids/item_off", H5T_STD_I64LE, H5T_NATIVE_INT64, (hsize_t)ni->n + 1, 0, r0 ? (hsize_t)ni->n + 1 : 0, ioff, coll, tmp));
  {
    /* root attributes: identical values on every rank (metadata writes are collective) */
    int64_t fv = BATCH_FORMAT_VERSION;
    struct {
      const char *name;
      int64_t v;
    } ia[] = {{"format_version", fv},
              {"batch", k},
              {"users_before", b->users_before},
              {"items_before", b->items_before},
              {"lines_read", bm.lines_read},
              {"header", bm.header},
              {"stored", bm.stored},
              {"merged", bm.merged},
              {"rejected", bm.rejected},
              {"superseded", bm.superseded},
              {"new_users", bm.new_users},
              {"new_items", bm.new_items},
              {"rows", bm.rows},
              {"time_min", bm.time_min},
              {"time_max", bm.time_max}};
    imf_status a = attr_str(f, "format", "incremf-batch", tmp);
    for (size_t i = 0; i < sizeof ia / sizeof ia[0] && a == IMF_OK; i++)
      a = attr_i64(f, ia[i].name, &ia[i].v, 1, tmp);
    if (a == IMF_OK) a = attr_i64(f, "rejected_by", b->report.rejected_by, IMF_REJECT_REASONS, tmp);
    if (a == IMF_OK) a = attr_str(f, "source", bm.source, tmp);
    if (a == IMF_OK) a = attr_str(f, "sha256", bm.sha256, tmp);
    if (a == IMF_OK) a = attr_str(f, "content_digest", bm.digest, tmp);
    W(a);
  }
#undef W
close_file:
  H5Pclose(coll);
  if (H5Fclose(f) < 0 && st == IMF_OK)
    st = imf_err_raise(IMF_ERR_RUNTIME, __FILE__, __LINE__, "%s: cannot close: %s", tmp, imf_h5_reason());
  st = imf_agree(s->comm, st);
  if (st != IMF_OK) {
    if (s->rank == 0) unlink(tmp);
    goto out;
  }
  const double t_h5 = imf_wtime();
  /* ---- make the file durable under its final name; the batch is not committed yet ---- */
  if (s->rank == 0) {
    st = imf_fsync_path(tmp, 0);
    if (st == IMF_OK && rename(tmp, fin) != 0)
      st = imf_err_raise(IMF_ERR_RUNTIME, __FILE__, __LINE__, "cannot rename %s to %s: %s", tmp,
                         fin, strerror(errno));
    if (st == IMF_OK) st = imf_fsync_path(s->dir, 1);
    /* Testing hook: IMF_FAULT=store-before-manifest simulates a crash after the batch file is
     * in place but before the manifest names it (the fault-injection tests check that the
     * previous store is what remains). */
    if (st == IMF_OK && env_fault("store-before-manifest"))
      st = imf_err_raise(IMF_ERR_RUNTIME, __FILE__, __LINE__,
                         "injected fault (IMF_FAULT=store-before-manifest): %s written, manifest "
                         "not replaced", fin);
  }
  IMF_TRY(imf_agree(s->comm, st), out);

  /* ---- commit: the manifest replace is the one step that makes the batch part of the store */
  {
    manifest m = s->m;
    batch_meta *nb = malloc((size_t)k * sizeof *nb);
    if (!nb) st = imf_err_raise(IMF_ERR_NOMEM, __FILE__, __LINE__, "out of memory");
    IMF_TRY(imf_agree(s->comm, st), out);
    if (s->m.nbatches) memcpy(nb, s->m.b, (size_t)s->m.nbatches * sizeof *nb);
    nb[k - 1] = bm;
    m.b = nb;
    m.nbatches = k;
    m.users = bm.users_after;
    m.items = bm.items_after;
    manifest_scale(&m);
    st = manifest_commit(s, &m);
    if (st != IMF_OK) {
      free(nb);
      goto out;
    }
    free(s->m.b);
    s->m = m;
    store_digest_update(s);
  }
  if (s->rank == 0) remove_strays(s);
  imf_info("batch %lld: checks and user index %.2f s, superseded %.2f s, item index %.2f s, digest %.2f s, "
           "HDF5 write %.2f s, fsync+commit %.2f s (rank 0's clock)", (long long)k, t_uix - t0, t_sup - t_uix,
           t_idx - t_sup, t_dig - t_idx, t_h5 - t_create, imf_wtime() - t_h5);
  b->report.batch = k;
  b->report.superseded = superseded;
  b->report.new_users = bm.new_users;
  b->report.new_items = bm.new_items;
out:
  imf_free(&iu);
  imf_free(&ip);
  item_index_free(&ix);
  return st;
}

/* ------------------------------------------------------------------------------------------ */
/* standing holdout, single batches, forgotten users (update and forget)                      */

int imf_store_holdout(const imf_store *s, double *fraction, uint64_t *seed) {
  *fraction = s->m.holdout_fraction;
  *seed = (uint64_t)s->m.holdout_seed;
  return s->m.holdout_fraction > 0;
}

int64_t imf_store_batch_rows(const imf_store *s, int64_t k) {
  return k >= 1 && k <= s->m.nbatches ? s->m.b[k - 1].rows : 0;
}

int imf_store_is_forgotten(const imf_store *s, int64_t user) {
  int64_t lo = 0, hi = s->m.nforgotten;
  while (lo < hi) {
    int64_t mid = lo + (hi - lo) / 2;
    if (s->m.forgotten[mid] < user) lo = mid + 1;
    else hi = mid;
  }
  return lo < s->m.nforgotten && s->m.forgotten[lo] == user;
}

imf_status imf_store_read_batch(imf_store *s, int64_t k, imf_ratings *out) {
  memset(out, 0, sizeof *out);
  if (k < 1 || k > s->m.nbatches)
    IMF_FAIL(IMF_ERR_NOTFOUND, "%s has no batch %lld", s->dir, (long long)k);
  imf_status st = IMF_OK;
  imf_ratings r = {0};
  batch_h h;
  char path[4200];
  batch_path(s, k, path, sizeof path, 0);
  IMF_CHECK(batch_h_open(s, k, &h));
  hid_t coll = dxpl_make(1);
  hsize_t R = h.nrows;
  hsize_t r0 = R * (hsize_t)s->rank / (hsize_t)s->size, r1 = R * (hsize_t)(s->rank + 1) / (hsize_t)s->size;
  hsize_t n = r1 - r0;
  st = imf_ratings_reserve(&r, (int64_t)n + 1);
  if (st != IMF_OK) n = r0 = 0;
  st = imf_agree(s->comm, st);
  if (st == IMF_OK) {
    imf_status rs[4];
    rs[0] = read_range(h.user, H5T_NATIVE_INT32, r0, n, r.user, coll, path, "/ratings/user");
    rs[1] = read_range(h.item, H5T_NATIVE_INT32, r0, n, r.item, coll, path, "/ratings/item");
    rs[2] = read_range(h.value, H5T_NATIVE_FLOAT, r0, n, r.value, coll, path, "/ratings/value");
    rs[3] = read_range(h.time, H5T_NATIVE_INT64, r0, n, r.time, coll, path, "/ratings/time");
    for (int q = 3; q >= 0; q--)
      if (rs[q] != IMF_OK) st = rs[q];
    if (st == IMF_OK) st = check_rows(s, k, &r, 0, (int64_t)n, 0, INT64_MAX, path);
    st = imf_agree(s->comm, st);
  }
  if (st == IMF_OK && s->size > 1) st = check_row_seams(s, &r, (int64_t)n, path);
  H5Pclose(coll);
  batch_h_close(&h);
  if (st != IMF_OK) {
    imf_ratings_free(&r);
    return st;
  }
  r.n = 0;
  for (hsize_t j = 0; j < n; j++) {
    if (imf_store_is_forgotten(s, r.user[j])) continue;
    r.user[r.n] = r.user[j];
    r.item[r.n] = r.item[j];
    r.value[r.n] = r.value[j];
    r.time[r.n] = r.time[j];
    r.n++;
  }
  *out = r;
  return IMF_OK;
}

imf_status imf_store_read_ratings_unfiltered(imf_store *s, int64_t user_lo, int64_t user_hi,
                                             imf_ratings *out) {
  int64_t nf = s->m.nforgotten;
  s->m.nforgotten = 0; /* imf_store_is_forgotten finds nobody while the list is hidden */
  imf_status st = imf_store_read_ratings(s, user_lo, user_hi, out);
  s->m.nforgotten = nf;
  return st;
}

imf_status imf_store_forget_user(imf_store *s, int64_t user) {
  imf_status st = IMF_OK;
  if (s->mode != IMF_STORE_WRITE || (s->rank == 0 && !s->lock))
    st = imf_err_raise(IMF_ERR_RUNTIME, __FILE__, __LINE__, "%s: forget needs the store opened for writing", s->dir);
  else if (user < 0 || user >= s->m.users)
    st = imf_err_raise(IMF_ERR_NOTFOUND, __FILE__, __LINE__, "user index %lld is not in the store", (long long)user);
  IMF_CHECK(imf_agree(s->comm, st));
  if (imf_store_is_forgotten(s, user)) return IMF_OK;
  int64_t *f = malloc((size_t)(s->m.nforgotten + 1) * sizeof *f);
  st = f ? IMF_OK : imf_err_raise(IMF_ERR_NOMEM, __FILE__, __LINE__, "out of memory");
  IMF_CHECK(imf_agree(s->comm, st));
  int64_t n = 0;
  for (int64_t j = 0; j < s->m.nforgotten && s->m.forgotten[j] < user; j++) f[n++] = s->m.forgotten[j];
  f[n++] = user;
  for (int64_t j = n - 1; j < s->m.nforgotten; j++) f[n++] = s->m.forgotten[j];
  manifest m = s->m;
  m.forgotten = f;
  m.nforgotten = n;
  st = manifest_commit(s, &m);
  if (st != IMF_OK) {
    free(f);
    return st;
  }
  free(s->m.forgotten);
  s->m = m;
  store_digest_update(s);
  return IMF_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* scrub: physical erasure of forgotten users                                                 */

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
  imf_status st = dset_len(d, path, name, n);
  if (st == IMF_OK) st = imf_alloc_nz(buf, (size_t)(*n ? *n : 1), esz);
  if (st == IMF_OK) st = read_range(d, mtype, 0, *n, *buf, H5P_DEFAULT, path, name);
  H5Dclose(d);
  if (st != IMF_OK) imf_free(buf);
  return st;
}

/* Rank 0: scrub batch k if it holds rows or a non-empty id of a forgotten user. */
static imf_status scrub_batch(imf_store *s, int64_t k, int64_t *removed, int *rewritten) {
  const int64_t ubefore = k > 1 ? s->m.b[k - 2].users_after : 0;
  char path[4200], tmp[4200];
  batch_path(s, k, path, sizeof path, 0);
  batch_path(s, k, tmp, sizeof tmp, 1);
  *removed = 0;
  *rewritten = 0;
  imf_status st = IMF_OK;
  int32_t *ru = NULL, *ri = NULL, *iu = NULL, *ii = NULL;
  float *rv = NULL;
  int64_t *rt = NULL, *ip = NULL, *uoff = NULL, *iptr = NULL, *ipos = NULL, *ioff = NULL;
  uint8_t *ublob = NULL, *iblob = NULL;
  hid_t f = -1, g = -1;
  hsize_t R = 0, U = 0, np = 0, nuoff = 0, nublob = 0, nioff = 0, niblob = 0, tmpn = 0;
  imf_h5_quiet();
  f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) {
    imf_h5_reason();
    IMF_FAIL(IMF_ERR_INPUT, "%s is not a readable HDF5 file (truncated or corrupt?): the store is damaged", path);
  }
  IMF_TRY(batch_check(f, path, s->m.b[k - 1].digest), out);
  /* what is there to take out: index entries of forgotten users, ids still present */
  IMF_TRY(scrub_read(f, path, "/index/user", H5T_NATIVE_INT32, 4, (void **)&iu, &U), out);
  IMF_TRY(scrub_read(f, path, "/index/user_ptr", H5T_NATIVE_INT64, 8, (void **)&ip, &np), out);
  IMF_TRY(scrub_read(f, path, "/ids/user_off", H5T_NATIVE_INT64, 8, (void **)&uoff, &nuoff), out);
  if (np != U + 1 || nuoff < 1) {
    st = imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__, "%s: inconsistent user index or id list", path);
    goto out;
  }
  int64_t drop_rows = 0, drop_ids = 0;
  for (hsize_t x = 0; x < U; x++)
    if (imf_store_is_forgotten(s, iu[x])) drop_rows += ip[x + 1] - ip[x];
  for (hsize_t j = 0; j + 1 < nuoff; j++)
    if (uoff[j + 1] > uoff[j] && imf_store_is_forgotten(s, ubefore + (int64_t)j)) drop_ids++;
  if (drop_rows == 0 && drop_ids == 0) goto out;

  /* the rows (sorted by user: each user's rows are one run), the ids */
  IMF_TRY(scrub_read(f, path, "/ratings/user", H5T_NATIVE_INT32, 4, (void **)&ru, &R), out);
  IMF_TRY(scrub_read(f, path, "/ratings/item", H5T_NATIVE_INT32, 4, (void **)&ri, &tmpn), out);
  if (tmpn != R) goto bad;
  IMF_TRY(scrub_read(f, path, "/ratings/value", H5T_NATIVE_FLOAT, 4, (void **)&rv, &tmpn), out);
  if (tmpn != R) goto bad;
  IMF_TRY(scrub_read(f, path, "/ratings/time", H5T_NATIVE_INT64, 8, (void **)&rt, &tmpn), out);
  if (tmpn != R) goto bad;
  IMF_TRY(scrub_read(f, path, "/ids/user_blob", H5T_NATIVE_UINT8, 1, (void **)&ublob, &nublob), out);
  IMF_TRY(scrub_read(f, path, "/ids/item_off", H5T_NATIVE_INT64, 8, (void **)&ioff, &nioff), out);
  IMF_TRY(scrub_read(f, path, "/ids/item_blob", H5T_NATIVE_UINT8, 1, (void **)&iblob, &niblob), out);
  if ((hsize_t)ip[U] != R || (hsize_t)uoff[nuoff - 1] > nublob) goto bad;
  const int has_item_index = H5Lexists(f, "/index/item_pos", H5P_DEFAULT) > 0;
  int64_t old_scrubbed = 0;
  {
    hid_t a = H5Aopen(f, "scrubbed_rows", H5P_DEFAULT);
    if (a >= 0) {
      if (H5Aread(a, H5T_NATIVE_INT64, &old_scrubbed) < 0) old_scrubbed = 0;
      H5Aclose(a);
    }
    H5Eclear2(H5E_DEFAULT);
  }
  /* compact rows and the user index in place */
  int64_t w = 0, wu = 0;
  for (hsize_t x = 0; x < U; x++) {
    int64_t a = ip[x], b = ip[x + 1];
    if (a < 0 || b < a || (hsize_t)b > R) goto bad;
    if (imf_store_is_forgotten(s, iu[x])) continue;
    ip[wu] = w;
    iu[wu++] = iu[x];
    for (int64_t r = a; r < b; r++, w++) {
      ru[w] = ru[r];
      ri[w] = ri[r];
      rv[w] = rv[r];
      rt[w] = rt[r];
    }
  }
  ip[wu] = w;
  /* forgotten ids become empty (holes: the indices after them stay where they are) */
  int64_t wb = 0;
  for (hsize_t j = 0; j + 1 < nuoff; j++) {
    int64_t a = uoff[j], b = uoff[j + 1];
    uoff[j] = wb;
    if (imf_store_is_forgotten(s, ubefore + (int64_t)j)) continue;
    memmove(ublob + wb, ublob + a, (size_t)(b - a));
    wb += b - a;
  }
  uoff[nuoff - 1] = wb;
  /* the per-item index from the kept rows: a stable counting sort of positions by item (within
   * an item ascending by position, i.e. by user), as the writer builds it */
  int64_t ndi = 0;
  if (has_item_index && w > 0) {
    int32_t maxi = 0;
    for (int64_t r = 0; r < w; r++) {
      if (ri[r] < 0) goto bad;
      if (ri[r] > maxi) maxi = ri[r];
    }
    int64_t *cnt = NULL;
    IMF_TRY(imf_alloc(&cnt, (size_t)maxi + 2, sizeof *cnt), out);
    for (int64_t r = 0; r < w; r++) cnt[ri[r] + 1]++;
    for (int32_t i = 0; i <= maxi; i++) ndi += cnt[i + 1] > 0;
    st = imf_alloc_nz(&ii, (size_t)(ndi ? ndi : 1), sizeof *ii);
    if (st == IMF_OK) st = imf_alloc_nz(&iptr, (size_t)ndi + 1, sizeof *iptr);
    if (st == IMF_OK) st = imf_alloc_nz(&ipos, (size_t)w, sizeof *ipos);
    if (st != IMF_OK) {
      imf_free(&cnt);
      goto out;
    }
    for (int32_t i = 0; i <= maxi; i++) cnt[i + 1] += cnt[i]; /* cnt[i]: where item i starts */
    int64_t q = 0;
    for (int32_t i = 0; i <= maxi; i++)
      if (cnt[i + 1] > cnt[i]) {
        ii[q] = i;
        iptr[q++] = cnt[i];
      }
    iptr[ndi] = w;
    for (int64_t r = 0; r < w; r++) ipos[cnt[ri[r]]++] = r;
    imf_free(&cnt);
  } else if (has_item_index) {
    IMF_TRY(imf_alloc(&iptr, 1, sizeof *iptr), out);
  }
  /* the new file, from scratch, with the old one's root attributes */
  IMF_TRY(imf_fs_need_space(s->dir, tmp, (double)w * 28.0 + (double)(wb + niblob) + 1e6), out);
  {
    /* checksummed metadata, as imf_store_write_batch writes it (a rewritten batch in the oldest
     * format was unprotected against HDF5 1.10's decoders: tests/fuzz/README.md) */
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST);
    g = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
  }
  if (g < 0) {
    st = imf_err_raise(IMF_ERR_RUNTIME, __FILE__, __LINE__, "cannot create %s: %s", tmp, imf_h5_reason());
    goto out;
  }
  {
    scrub_attr_ctx c = {g, 0};
    hsize_t idx = 0;
    if (H5Aiterate2(f, H5_INDEX_NAME, H5_ITER_INC, &idx, scrub_copy_attr, &c) < 0) c.failed = 1;
    H5Fclose(f);
    f = -1;
    if (c.failed) {
      st = imf_err_raise(IMF_ERR_RUNTIME, __FILE__, __LINE__, "%s: cannot copy the attributes of %s: %s", tmp, path,
                         imf_h5_last());
      goto out;
    }
  }
  int64_t total_scrubbed = old_scrubbed + (int64_t)R - w;
  IMF_TRY(attr_i64(g, "scrubbed_rows", &total_scrubbed, 1, tmp), out);
  const hid_t P = H5P_DEFAULT;
#define SW(name, ft, mt, n, buf) IMF_TRY(write_dset(g, name, ft, mt, (hsize_t)(n), 0, (hsize_t)(n), buf, P, tmp), out)
  SW("/ratings/user", H5T_STD_I32LE, H5T_NATIVE_INT32, w, ru);
  SW("/ratings/item", H5T_STD_I32LE, H5T_NATIVE_INT32, w, ri);
  SW("/ratings/value", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, w, rv);
  int time_fits = 1; /* 4-byte timestamps and positions, as imf_store_write_batch decides */
  for (int64_t j = 0; j < w && time_fits; j++) time_fits = rt[j] != IMF_NO_TIME && rt[j] >= INT32_MIN && rt[j] <= INT32_MAX;
  SW("/ratings/time", time_fits ? H5T_STD_I32LE : H5T_STD_I64LE, H5T_NATIVE_INT64, w, rt);
  SW("/index/user", H5T_STD_I32LE, H5T_NATIVE_INT32, wu, iu);
  SW("/index/user_ptr", H5T_STD_I64LE, H5T_NATIVE_INT64, wu + 1, ip);
  if (has_item_index) {
    SW("/index/item", H5T_STD_I32LE, H5T_NATIVE_INT32, ndi, ii);
    SW("/index/item_ptr", H5T_STD_I64LE, H5T_NATIVE_INT64, ndi + 1, iptr);
    SW("/index/item_pos", w <= INT32_MAX ? H5T_STD_I32LE : H5T_STD_I64LE, H5T_NATIVE_INT64, w, ipos);
  }
  SW("/ids/user_blob", H5T_STD_U8LE, H5T_NATIVE_UINT8, wb, ublob);
  SW("/ids/user_off", H5T_STD_I64LE, H5T_NATIVE_INT64, nuoff, uoff);
  SW("/ids/item_blob", H5T_STD_U8LE, H5T_NATIVE_UINT8, niblob, iblob);
  SW("/ids/item_off", H5T_STD_I64LE, H5T_NATIVE_INT64, nioff, ioff);
#undef SW
  if (H5Fclose(g) < 0) {
    g = -1;
    st = imf_err_raise(IMF_ERR_RUNTIME, __FILE__, __LINE__, "cannot close %s: %s", tmp, imf_h5_reason());
    goto out;
  }
  g = -1;
  IMF_TRY(imf_fsync_path(tmp, 0), out);
  if (rename(tmp, path) != 0) {
    st = imf_err_raise(IMF_ERR_RUNTIME, __FILE__, __LINE__, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    goto out;
  }
  IMF_TRY(imf_fsync_path(s->dir, 1), out);
  *removed = (int64_t)R - w;
  *rewritten = 1;
  goto out;
bad:
  st = imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__, "%s: datasets of inconsistent lengths: the store is damaged",
                     path);
out:
  if (f >= 0) H5Fclose(f);
  if (g >= 0) {
    H5Fclose(g);
    unlink(tmp);
  }
  imf_free(&ru);
  imf_free(&ri);
  imf_free(&rv);
  imf_free(&rt);
  imf_free(&iu);
  imf_free(&ip);
  imf_free(&uoff);
  imf_free(&ublob);
  imf_free(&ioff);
  imf_free(&iblob);
  imf_free(&ii);
  imf_free(&iptr);
  imf_free(&ipos);
  return st;
}

imf_status imf_store_scrub(imf_store *s, int64_t *rows_removed, int64_t *files_rewritten) {
  imf_status st = IMF_OK;
  int64_t tot[2] = {0, 0};
  if (s->mode != IMF_STORE_WRITE || (s->rank == 0 && !s->lock))
    st = imf_err_raise(IMF_ERR_RUNTIME, __FILE__, __LINE__, "%s: scrubbing needs the store opened for writing", s->dir);
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

/* ------------------------------------------------------------------------------------------ */
/* histories of chosen users and items (fold-in)                                              */

int64_t imf_store_nforgotten(const imf_store *s) { return s->m.nforgotten; }

imf_status imf_store_user_ids(const imf_store *s, const imf_idmap *users, imf_idlist *out) {
  IMF_CHECK(imf_idmap_tail(users, 0, out));
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
  return IMF_OK;
}



/* One raw row of a history, from batch `tag`. */
typedef struct {
  int32_t u, i;
  float v;
  int32_t tag;
  int64_t t;
} hrow;

/* The raw rows of one side (the users' or the items' histories), grouped by slot (the row's
 * position in the caller's list): slot j's rows are r[start[j] .. start[j+1]), filled up to
 * fill[j]. The store's indexes give every slot's row count before a row is read, so each row is
 * placed once, where it belongs, in the order it is read (batch order). */
typedef struct {
  hrow *r;
  int64_t *start, *fill, nslots;
} hrows;

/* Room for n slots of cnt[0..n) rows each, every slot's fill at its start. */
static imf_status hrows_place(hrows *h, const int64_t *cnt, int64_t n) {
  IMF_CHECK(imf_alloc_nz(&h->start, (size_t)n + 1, sizeof *h->start));
  IMF_CHECK(imf_alloc_nz(&h->fill, (size_t)n + 1, sizeof *h->fill));
  h->nslots = n;
  int64_t tot = 0;
  for (int64_t j = 0; j < n; j++) {
    h->start[j] = h->fill[j] = tot;
    tot += cnt[j];
  }
  h->start[n] = tot;
  if (tot > 0) IMF_CHECK(imf_alloc_nz(&h->r, (size_t)tot, sizeof *h->r));
  return IMF_OK;
}

/* A row that is not where its batch's index put it (or is missing): a damaged store. */
static imf_status index_disagrees(const char *path) {
  return imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__, "%s: the ratings disagree with the per-user or per-item "
                       "index: the store is damaged (restore it from a backup or re-run prepare)", path);
}

static void hrows_free(hrows *h) {
  imf_free(&h->r);
  imf_free(&h->start);
  imf_free(&h->fill);
}

/* The store's duplicate rule over rows g[0..n) of one pair in batch order (as
 * imf_store_read_ratings resolves them). */
static void resolve_pair(const hrow *g, int64_t n, int policy, float *v, int64_t *t) {
  *v = g[0].v;
  *t = g[0].t;
  if (n < 2) return;
  if (policy == 0) {
    for (int64_t c = 1; c < n; c++)
      if (g[c].t >= *t) {
        *t = g[c].t;
        *v = g[c].v;
      }
  } else if (policy == 2) {
    double sum = 0;
    for (int64_t c = 0; c < n; c++) {
      sum += g[c].v;
      if (g[c].t > *t) *t = g[c].t;
    }
    *v = (float)(sum / (double)n);
  }
}

/* Stable natural merge sort of g[0..n) by the other index (item for a user's history, user for
 * an item's); scratch holds n rows. A slot's rows arrive as one ascending run per batch (a batch
 * is sorted by (user, item) and holds a pair once), so this is a merge of a few runs, and
 * nothing when the slot is in one batch; any order still sorts (a damaged file). */
static void hrows_sort(hrow *g, int64_t n, int by_item, hrow *scratch) {
#define HKEY(x) (by_item ? (x).u : (x).i)
  int64_t nruns = 1;
  for (int64_t j = 1; j < n; j++) nruns += HKEY(g[j]) < HKEY(g[j - 1]);
  if (nruns <= 1) return;
  hrow *src = g, *dst = scratch;
  while (nruns > 1) {
    int64_t out = 0, a = 0;
    nruns = 0;
    while (a < n) {
      int64_t m = a + 1;
      while (m < n && HKEY(src[m]) >= HKEY(src[m - 1])) m++;
      int64_t e = m < n ? m + 1 : n;
      while (e < n && HKEY(src[e]) >= HKEY(src[e - 1])) e++;
      int64_t x = a, y = m; /* merge [a, m) and [m, e): ties from the left, so batch order holds */
      while (x < m && y < e) dst[out++] = HKEY(src[y]) < HKEY(src[x]) ? src[y++] : src[x++];
      while (x < m) dst[out++] = src[x++];
      while (y < e) dst[out++] = src[y++];
      nruns++;
      a = e;
    }
    hrow *t = src;
    src = dst;
    dst = t;
  }
  if (src != g) memcpy(g, src, (size_t)n * sizeof *g);
#undef HKEY
}

void imf_history_free(imf_history *h) {
  imf_free(&h->ptr);
  imf_free(&h->other);
  imf_free(&h->value);
  imf_free(&h->old);
  h->n = 0;
}

/* Each slot's rows into (other index, batch) order, then the pairs resolved by the store's
 * duplicate rule into `out`, slot by slot. */
static imf_status hrows_resolve(const imf_store *s, hrows *h, int by_item, int64_t seen, imf_history *out) {
  memset(out, 0, sizeof *out);
  const int64_t n = h->nslots > 0 ? h->start[h->nslots] : 0;
  int64_t big = 0;
  for (int64_t j = 0; j < h->nslots; j++)
    if (h->start[j + 1] - h->start[j] > big) big = h->start[j + 1] - h->start[j];
  hrow *scratch = NULL;
  imf_status st = imf_alloc_nz(&scratch, (size_t)big + 1, sizeof *scratch);
  if (st == IMF_OK) st = imf_alloc_nz(&out->ptr, (size_t)h->nslots + 1, sizeof *out->ptr);
  if (st == IMF_OK) st = imf_alloc_nz(&out->other, (size_t)n + 1, sizeof *out->other);
  if (st == IMF_OK) st = imf_alloc_nz(&out->value, (size_t)n + 1, sizeof *out->value);
  if (st == IMF_OK) st = imf_alloc_nz(&out->old, (size_t)n + 1, sizeof *out->old);
  if (st != IMF_OK) goto done;
  out->n = h->nslots;
  int policy = strcmp(s->m.duplicates, "first") == 0 ? 1 : strcmp(s->m.duplicates, "mean") == 0 ? 2 : 0;
  int64_t w = 0;
  for (int64_t j = 0; j < h->nslots; j++) {
    out->ptr[j] = w;
    const int64_t b = h->start[j + 1] - h->start[j];
    if (b == 0) continue; /* h->r is NULL when no slot has a row: no pointer arithmetic on it */
    hrow *g = h->r + h->start[j];
    hrows_sort(g, b, by_item, scratch);
    for (int64_t c = 0; c < b;) {
      int64_t e = c + 1;
      while (e < b && g[e].u == g[c].u && g[e].i == g[c].i) e++;
      if (!imf_store_is_forgotten(s, g[c].u)) {
        float v;
        int64_t t, m = 0;
        resolve_pair(g + c, e - c, policy, &v, &t);
        while (c + m < e && g[c + m].tag <= seen) m++;
        float ov = NAN;
        if (m > 0) {
          int64_t ot;
          resolve_pair(g + c, m, policy, &ov, &ot);
        }
        out->other[w] = by_item ? g[c].u : g[c].i;
        out->value[w] = v;
        out->old[w++] = ov;
      }
      c = e;
    }
  }
  out->ptr[h->nslots] = w;
done:
  imf_free(&scratch);
  if (st != IMF_OK) imf_history_free(out);
  return st;
}

#define HIST_CHUNK ((hsize_t)1 << 20) /* rows per read */
#define HIST_GAP ((hsize_t)16384)     /* rows between two needed runs still read through */

typedef struct {
  hsize_t a, b;
} hrun;

/* One batch's part of a history read: the row runs to read (planned in a first pass over the
 * batches, which also counts every slot's rows, then read in a second; each pass opens the
 * batch files one at a time, since a store may hold more batches than a process may open). */
typedef struct {
  hrun *runs;
  int64_t nruns;
} hplan;

static int cmp_i64(const void *pa, const void *pb) {
  int64_t a = *(const int64_t *)pa, b = *(const int64_t *)pb;
  return (a > b) - (a < b);
}

imf_status imf_store_read_histories(imf_store *s, const int32_t *users, int64_t nu, const int32_t *items,
                                    int64_t ni, int64_t seen, imf_history *uh, imf_history *ih) {
  memset(uh, 0, sizeof *uh);
  memset(ih, 0, sizeof *ih);
  imf_status st = IMF_OK;
  int32_t *uslot = NULL, *islot = NULL, *su = NULL, *cu = NULL;
  int64_t *sp = NULL, *cp = NULL, *pos = NULL, *pbuf = NULL;
  hrun *ur = NULL, *ir = NULL, *runs = NULL;
  int32_t *bu = NULL, *bi = NULL;
  float *bv = NULL;
  int64_t *bt = NULL;
  hrows HU = {0}, HI = {0};
  hplan *plans = NULL;
  int64_t *cnt_u = NULL, *cnt_i = NULL; /* rows per slot, from the indexes */
  hid_t ind = dxpl_make(0);
  int64_t NU = s->m.users, NI = s->m.items;
  /* read buffers: never more than the largest batch (imf_alloc_nz: no zeroing pass) */
  size_t chunk = 1;
  for (int64_t k = 0; k < s->m.nbatches; k++)
    if ((size_t)s->m.b[k].rows > chunk) chunk = (size_t)s->m.b[k].rows;
  if (chunk > HIST_CHUNK) chunk = HIST_CHUNK;
  st = imf_alloc_nz(&uslot, (size_t)NU + 1, sizeof *uslot);
  if (st == IMF_OK) st = imf_alloc_nz(&islot, (size_t)NI + 1, sizeof *islot);
  if (st == IMF_OK) st = imf_alloc_nz(&bu, chunk, sizeof *bu);
  if (st == IMF_OK) st = imf_alloc_nz(&bi, chunk, sizeof *bi);
  if (st == IMF_OK) st = imf_alloc_nz(&bv, chunk, sizeof *bv);
  if (st == IMF_OK) st = imf_alloc_nz(&bt, chunk, sizeof *bt);
  if (st == IMF_OK) st = imf_alloc_nz(&pbuf, chunk, sizeof *pbuf);
  if (st == IMF_OK) st = imf_alloc(&plans, (size_t)s->m.nbatches + 1, sizeof *plans);
  if (st == IMF_OK) st = imf_alloc(&cnt_u, (size_t)nu + 1, sizeof *cnt_u);
  if (st == IMF_OK) st = imf_alloc(&cnt_i, (size_t)ni + 1, sizeof *cnt_i);
  if (st == IMF_OK) {
    for (int64_t j = 0; j < NU; j++) uslot[j] = -1;
    for (int64_t j = 0; j < NI; j++) islot[j] = -1;
    for (int64_t j = 0; j < nu && st == IMF_OK; j++)
      if (users[j] < 0 || users[j] >= NU || (j && users[j] <= users[j - 1]))
        st = imf_err_raise(IMF_ERR_USAGE, __FILE__, __LINE__, "read_histories: users not ascending in range");
      else uslot[users[j]] = (int32_t)j;
    for (int64_t j = 0; j < ni && st == IMF_OK; j++)
      if (items[j] < 0 || items[j] >= NI || (j && items[j] <= items[j - 1]))
        st = imf_err_raise(IMF_ERR_USAGE, __FILE__, __LINE__, "read_histories: items not ascending in range");
      else islot[items[j]] = (int32_t)j;
  }
  for (int64_t k = 1; k <= s->m.nbatches; k++) {
    IMF_TRY(imf_agree(s->comm, st), done);
    char path[4200];
    batch_path(s, k, path, sizeof path, 0);
    batch_h h;
    IMF_TRY(batch_h_open(s, k, &h), done);
    hid_t di = -1, dp = -1, dq = -1;
    hsize_t dn = 0;
    int has = H5Lexists(h.f, "/index/item_pos", H5P_DEFAULT) > 0;
    H5Eclear2(H5E_DEFAULT);
    if (!has)
      st = imf_err_raise(IMF_ERR_NOTFOUND, __FILE__, __LINE__, "%s has no per-item index (written before incremf "
                         "stored one)", path);
    else {
      di = H5Dopen2(h.f, "/index/item", H5P_DEFAULT);
      dp = H5Dopen2(h.f, "/index/item_ptr", H5P_DEFAULT);
      dq = H5Dopen2(h.f, "/index/item_pos", H5P_DEFAULT);
      if (di < 0 || dp < 0 || dq < 0)
        st = imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__, "%s: cannot open its item index: %s", path, imf_h5_reason());
      if (st == IMF_OK) st = dset_len(di, path, "/index/item", &dn);
    }
    st = imf_agree(s->comm, st); /* from here on every rank reads independently */
    int64_t nur = 0, nir = 0, npos = 0;
    hsize_t need = 0;
    /* this rank's users in the batch: their row ranges */
    if (st == IMF_OK && nu > 0 && h.nindex > 0) {
      hsize_t pa = 0, pb = 0;
      st = lower_bound(h.iuser, h.nindex, users[0], ind, path, &pa);
      if (st == IMF_OK) st = lower_bound(h.iuser, h.nindex, (int64_t)users[nu - 1] + 1, ind, path, &pb);
      hsize_t ns = pb > pa ? pb - pa : 0;
      if (st == IMF_OK && ns > 0) {
        st = imf_realloc(&su, ns, sizeof *su);
        if (st == IMF_OK) st = imf_realloc(&sp, ns + 1, sizeof *sp);
        if (st == IMF_OK) st = imf_realloc(&ur, ns, sizeof *ur);
        if (st == IMF_OK) st = read_range(h.iuser, H5T_NATIVE_INT32, pa, ns, su, ind, path, "/index/user");
        if (st == IMF_OK) st = read_range(h.iptr, H5T_NATIVE_INT64, pa, ns + 1, sp, ind, path, "/index/user_ptr");
        for (hsize_t q = 0; st == IMF_OK && q < ns; q++) {
          if (su[q] < 0 || su[q] >= NU || uslot[su[q]] < 0) continue;
          if (sp[q] < 0 || sp[q + 1] < sp[q] || (hsize_t)sp[q + 1] > h.nrows) {
            st = imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__, "%s: /index/user_ptr is inconsistent", path);
            break;
          }
          if (sp[q + 1] == sp[q]) continue;
          ur[nur].a = (hsize_t)sp[q];
          ur[nur++].b = (hsize_t)sp[q + 1];
          cnt_u[uslot[su[q]]] += sp[q + 1] - sp[q];
          need += (hsize_t)(sp[q + 1] - sp[q]);
        }
      }
    }
    /* this rank's items in the batch: their ranges of /index/item_pos */
    if (st == IMF_OK && ni > 0 && dn > 0) {
      hsize_t pa = 0, pb = 0;
      st = lower_bound(di, dn, items[0], ind, path, &pa);
      if (st == IMF_OK) st = lower_bound(di, dn, (int64_t)items[ni - 1] + 1, ind, path, &pb);
      hsize_t ns = pb > pa ? pb - pa : 0;
      if (st == IMF_OK && ns > 0) {
        st = imf_realloc(&cu, ns, sizeof *cu);
        if (st == IMF_OK) st = imf_realloc(&cp, ns + 1, sizeof *cp);
        if (st == IMF_OK) st = imf_realloc(&ir, ns, sizeof *ir);
        if (st == IMF_OK) st = read_range(di, H5T_NATIVE_INT32, pa, ns, cu, ind, path, "/index/item");
        if (st == IMF_OK) st = read_range(dp, H5T_NATIVE_INT64, pa, ns + 1, cp, ind, path, "/index/item_ptr");
        for (hsize_t q = 0; st == IMF_OK && q < ns; q++) {
          if (cu[q] < 0 || cu[q] >= NI || islot[cu[q]] < 0) continue;
          if (cp[q] < 0 || cp[q + 1] < cp[q] || (hsize_t)cp[q + 1] > h.nrows) {
            st = imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__, "%s: /index/item_ptr is inconsistent", path);
            break;
          }
          if (cp[q + 1] == cp[q]) continue;
          cnt_i[islot[cu[q]]] += cp[q + 1] - cp[q];
          if (nir > 0 && ir[nir - 1].b == (hsize_t)cp[q]) ir[nir - 1].b = (hsize_t)cp[q + 1];
          else {
            ir[nir].a = (hsize_t)cp[q];
            ir[nir++].b = (hsize_t)cp[q + 1];
          }
          need += (hsize_t)(cp[q + 1] - cp[q]);
        }
      }
    }
    /* The rows to read: when they are a good share of the batch, all of it (one pass);
     * otherwise the user ranges and the item rows located through /index/item_pos, read in
     * runs (gaps under HIST_GAP rows are read through). */
    int64_t nruns = 0;
    if (st == IMF_OK && need > 0) {
      if (need * 4 >= h.nrows) {
        st = imf_realloc(&runs, 1, sizeof *runs);
        if (st == IMF_OK) {
          runs[0].a = 0;
          runs[0].b = h.nrows;
          nruns = 1;
        }
      } else {
        int64_t ipos = 0;
        for (int64_t q = 0; q < nir; q++) ipos += (int64_t)(ir[q].b - ir[q].a);
        st = imf_realloc(&pos, (size_t)ipos + 1, sizeof *pos);
        /* item positions, read in grouped runs of /index/item_pos */
        for (int64_t q = 0; st == IMF_OK && q < nir;) {
          hsize_t g0 = ir[q].a, g1 = ir[q].b;
          int64_t qe = q + 1;
          while (qe < nir && ir[qe].a <= g1 + HIST_GAP && ir[qe].b - g0 <= chunk) g1 = ir[qe++].b;
          if (g1 - g0 > chunk) { /* one long range: in pieces */
            for (hsize_t a = g0; st == IMF_OK && a < g1; a += chunk) {
              hsize_t c = g1 - a < chunk ? g1 - a : chunk;
              st = read_range(dq, H5T_NATIVE_INT64, a, c, pos + npos, ind, path, "/index/item_pos");
              npos += (int64_t)c;
            }
          } else {
            st = read_range(dq, H5T_NATIVE_INT64, g0, g1 - g0, pbuf, ind, path, "/index/item_pos");
            for (int64_t x = q; st == IMF_OK && x < qe; x++) {
              memcpy(pos + npos, pbuf + (ir[x].a - g0), (size_t)(ir[x].b - ir[x].a) * sizeof *pos);
              npos += (int64_t)(ir[x].b - ir[x].a);
            }
          }
          q = qe;
        }
        for (int64_t x = 0; st == IMF_OK && x < npos; x++)
          if (pos[x] < 0 || (hsize_t)pos[x] >= h.nrows)
            st = imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__, "%s: /index/item_pos is inconsistent", path);
        if (st == IMF_OK) qsort(pos, (size_t)npos, sizeof *pos, cmp_i64);
        /* merge user ranges (ascending, disjoint) and item positions (ascending) into runs */
        if (st == IMF_OK) st = imf_realloc(&runs, (size_t)(nur + npos) + 1, sizeof *runs);
        int64_t a = 0, b = 0;
        while (st == IMF_OK && (a < nur || b < npos)) {
          hrun r;
          if (b >= npos || (a < nur && ur[a].a <= (hsize_t)pos[b])) r = ur[a++];
          else {
            r.a = (hsize_t)pos[b++];
            r.b = r.a + 1;
          }
          if (nruns > 0 && r.a <= runs[nruns - 1].b) {
            if (r.b > runs[nruns - 1].b) runs[nruns - 1].b = r.b;
          } else runs[nruns++] = r;
        }
      }
    }
    /* this batch's plan: the runs to read */
    if (st == IMF_OK) {
      hplan *pl = &plans[k - 1];
      pl->nruns = nruns;
      if (nruns > 0) {
        pl->runs = runs; /* handed over */
        runs = NULL;
      }
    }
    if (di >= 0) H5Dclose(di);
    if (dp >= 0) H5Dclose(dp);
    if (dq >= 0) H5Dclose(dq);
    batch_h_close(&h);
  }
  /* Room for every batch's rows at once, each slot's where it belongs (the indexes counted
   * them): growing per batch copied the rows read so far into fresh pages each time, and two
   * counting sorts through a second copy cost as much again — on a virtual machine, first
   * touches of fresh pages were most of a fold-in's read. */
  IMF_TRY(imf_agree(s->comm, st), done);
  st = hrows_place(&HU, cnt_u, nu);
  if (st == IMF_OK) st = hrows_place(&HI, cnt_i, ni);
  for (int64_t k = 1; k <= s->m.nbatches; k++) {
    IMF_TRY(imf_agree(s->comm, st), done);
    const hplan *pl = &plans[k - 1];
    const hrun *rr = pl->runs;
    const int64_t nruns = pl->nruns;
    char path[4200];
    batch_path(s, k, path, sizeof path, 0);
    batch_h h;
    IMF_TRY(batch_h_open(s, k, &h), done);
    /* read the runs in groups and keep the rows of this rank's users and items */
    for (int64_t q = 0; st == IMF_OK && q < nruns;) {
      hsize_t g0 = rr[q].a, g1 = rr[q].b;
      int64_t qe = q + 1;
      while (qe < nruns && rr[qe].a <= g1 + HIST_GAP && rr[qe].b - g0 <= chunk) g1 = rr[qe++].b;
      for (hsize_t a = g0; st == IMF_OK && a < g1; a += chunk) {
        hsize_t c = g1 - a < chunk ? g1 - a : chunk;
        st = read_range(h.user, H5T_NATIVE_INT32, a, c, bu, ind, path, "/ratings/user");
        if (st == IMF_OK) st = read_range(h.item, H5T_NATIVE_INT32, a, c, bi, ind, path, "/ratings/item");
        if (st == IMF_OK) st = read_range(h.value, H5T_NATIVE_FLOAT, a, c, bv, ind, path, "/ratings/value");
        if (st == IMF_OK) st = read_range(h.time, H5T_NATIVE_INT64, a, c, bt, ind, path, "/ratings/time");
        for (int64_t x = q; st == IMF_OK && x < qe; x++) {
          hsize_t r0 = rr[x].a > a ? rr[x].a : a, r1 = rr[x].b < a + c ? rr[x].b : a + c;
          for (hsize_t p = r0; p < r1 && st == IMF_OK; p++) {
            hsize_t o = p - a;
            int32_t u = bu[o], i = bi[o];
            if (u < 0 || u >= s->m.b[k - 1].users_after || i < 0 || i >= s->m.b[k - 1].items_after) {
              st = imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__, "%s is corrupt: a rating names user %d and item "
                                 "%d, outside the batch's users and items: restore that file from a backup or "
                                 "re-run prepare", path, u, i);
              break;
            }
            const hrow hr = {u, i, bv[o], (int32_t)k, bt[o]};
            const int32_t a1 = uslot[u], a2 = islot[i];
            if ((a1 >= 0 && HU.fill[a1] >= HU.start[a1 + 1]) || (a2 >= 0 && HI.fill[a2] >= HI.start[a2 + 1])) {
              st = index_disagrees(path);
              break;
            }
            if (a1 >= 0) HU.r[HU.fill[a1]++] = hr;
            if (a2 >= 0) HI.r[HI.fill[a2]++] = hr;
          }
        }
      }
      q = qe;
    }
    batch_h_close(&h);
  }
  for (int64_t j = 0; st == IMF_OK && j < nu; j++)
    if (HU.fill[j] != HU.start[j + 1]) st = index_disagrees(s->dir);
  for (int64_t j = 0; st == IMF_OK && j < ni; j++)
    if (HI.fill[j] != HI.start[j + 1]) st = index_disagrees(s->dir);
  IMF_TRY(imf_agree(s->comm, st), done);
  st = hrows_resolve(s, &HU, 0, seen, uh);
  if (st == IMF_OK) {
    hrows_free(&HU); /* its memory goes to the items' side */
    st = hrows_resolve(s, &HI, 1, seen, ih);
  }
done:
  H5Pclose(ind);
  imf_free(&uslot);
  imf_free(&islot);
  imf_free(&su);
  imf_free(&cu);
  imf_free(&sp);
  imf_free(&cp);
  imf_free(&pos);
  imf_free(&pbuf);
  imf_free(&ur);
  imf_free(&ir);
  imf_free(&runs);
  imf_free(&bu);
  imf_free(&bi);
  imf_free(&bv);
  imf_free(&bt);
  hrows_free(&HU);
  hrows_free(&HI);
  imf_free(&cnt_u);
  imf_free(&cnt_i);
  if (plans)
    for (int64_t k = 0; k < s->m.nbatches; k++) imf_free(&plans[k].runs);
  imf_free(&plans);
  st = imf_agree(s->comm, st);
  if (st != IMF_OK) {
    imf_history_free(uh);
    imf_history_free(ih);
  }
  return st;
}
