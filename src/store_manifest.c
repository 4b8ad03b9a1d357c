/* store_manifest.c - the store's MANIFEST (docs/FORMAT.md "MANIFEST"): the model in memory,
 * its text format (one line per batch, ending with a sha256 of everything before it), the
 * checks a manifest must pass when read (checksum, format version, the batches' id counts
 * chaining exactly), its atomic replacement through imf_fs_replace, and the store digest over
 * the batches' content digests and the tombstone list. Private helpers: store_impl.h. */
#include "store_impl.h"
#include "error.h"
#include "fsio.h"
#include "log.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void store_hexify(const unsigned char *d, unsigned n, char *hex) {
  static const char x[] = "0123456789abcdef";
  for (unsigned i = 0; i < n; i++) {
    hex[2 * i] = x[d[i] >> 4];
    hex[2 * i + 1] = x[d[i] & 15];
  }
  hex[2 * n] = '\0';
}

/* One-shot and incremental sha256 through OpenSSL's EVP (the SHA-NI path where available). */
void store_sha256_hex(const void *data, size_t len, char hex[65]) {
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  EVP_Digest(data, len, d, &n, EVP_sha256(), NULL);
  store_hexify(d, n, hex);
}

void store_sha_put(EVP_MD_CTX *c, const void *p, size_t n) { EVP_DigestUpdate(c, p, n); }
/* Integers enter digests little-endian so digests agree across architectures. */
void store_sha_put_u64(EVP_MD_CTX *c, uint64_t v) {
  unsigned char b[8];
  for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
  EVP_DigestUpdate(c, b, 8);
}

int store_path_exists(const char *p) {
  struct stat st;
  return stat(p, &st) == 0;
}


/* Broadcast a malloc'd byte buffer from root (chunked: MPI counts are int). */
imf_status store_bcast_bytes(MPI_Comm comm, int root, char **buf, int64_t *len) {
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
void store_manifest_scale(manifest *m) {
  m->scale_known = m->nbatches > 0;
  memset(&m->scale, 0, sizeof m->scale);
  for (int64_t k = 0; k < m->nbatches; k++) {
    if (!m->b[k].has_scale) m->scale_known = 0;
    else imf_scale_merge(&m->scale, &m->b[k].scale);
  }
  if (!m->scale_known) memset(&m->scale, 0, sizeof m->scale);
}

int64_t store_effective_ratings(const manifest *m) {
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
          (long long)m->items, (long long)store_effective_ratings(m), (long long)m->nbatches);
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
  store_sha256_hex(buf, n, hex);
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

/* The first line (magic and format version) and the checksum line, which must be the last
 * line and cover every byte before it. *end_at: where the checksum line starts. */
static imf_status manifest_verify(const char *dir, const char *text, size_t len, size_t *end_at) {
  int version = 0;
  if (strncmp(text, MANIFEST_MAGIC " ", strlen(MANIFEST_MAGIC) + 1) != 0 ||
      sscanf(text + strlen(MANIFEST_MAGIC) + 1, "%d", &version) != 1)
    IMF_FAIL(IMF_ERR_INPUT, "%s/MANIFEST is not an incremf store manifest (bad first line)", dir);
  if (version > STORE_FORMAT_VERSION)
    IMF_FAIL(IMF_ERR_INPUT,
             "%s/MANIFEST was written by a newer incremf (store format %d; this one reads up to "
             "%d); upgrade incremf", dir, version, STORE_FORMAT_VERSION);
  if (version < 1) IMF_FAIL(IMF_ERR_INPUT, "%s/MANIFEST has an invalid format version", dir);
  const char *corrupt = "%s/MANIFEST is corrupt (checksum mismatch): restore it or re-run prepare";
  if (len < 70 || text[len - 1] != '\n') IMF_FAIL(IMF_ERR_INPUT, corrupt, dir);
  size_t e = len - 1;
  while (e > 0 && text[e - 1] != '\n') e--;
  if (len - e != 69 || strncmp(text + e, "end ", 4) != 0) IMF_FAIL(IMF_ERR_INPUT, corrupt, dir);
  char hex[65];
  store_sha256_hex(text, e, hex);
  if (memcmp(hex, text + e + 4, 64) != 0) IMF_FAIL(IMF_ERR_INPUT, corrupt, dir);
  *end_at = e;
  return IMF_OK;
}

/* The `forgotten` line: comma-separated user indices. 1 when malformed. */
static int parse_forgotten(char *v, manifest *m) {
  int64_t n = 1;
  for (const char *c = v; *c; c++) n += *c == ',';
  free(m->forgotten);
  m->forgotten = malloc((size_t)n * sizeof *m->forgotten);
  m->nforgotten = 0;
  if (!m->forgotten) return 1;
  char *save = NULL;
  for (char *tok = strtok_r(v, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    if (parse_i64(tok, &m->forgotten[m->nforgotten]) || m->forgotten[m->nforgotten] < 0) return 1;
    m->nforgotten++;
  }
  return 0;
}

/* A `batch` line appended to m->b (growing it; *cap its room). 1 when malformed or out of
 * sequence; IMF_ERR_NOMEM as -1. */
static int parse_batch(char *v, manifest *m, int64_t *cap) {
  if (m->nbatches == *cap) {
    *cap = *cap ? *cap * 2 : 16;
    batch_meta *nb = realloc(m->b, (size_t)*cap * sizeof *nb);
    if (!nb) return -1;
    m->b = nb;
  }
  batch_meta *b = &m->b[m->nbatches];
  if (parse_batch_line(v, b) || b->number != m->nbatches + 1) return 1;
  m->nbatches++;
  return 0;
}

/* One `key value` line into m (the store's value_min/max/step into vals, *have_vals; the
 * declared batch count into *declared). 1 when malformed, -1 out of memory. Unknown keys are
 * ignored: a later minor revision of format 1 may add some. */
static int parse_key(const char *k, char *v, manifest *m, double vals[3], int *have_vals, int64_t *declared,
                     int64_t *cap) {
  if (strcmp(k, "created") == 0) snprintf(m->created, sizeof m->created, "%s", v);
  else if (strcmp(k, "duplicates") == 0) {
    if (strcmp(v, "latest") && strcmp(v, "first") && strcmp(v, "mean")) return 1;
    snprintf(m->duplicates, sizeof m->duplicates, "%s", v);
  } else if (strcmp(k, "normalize") == 0) snprintf(m->normalize, sizeof m->normalize, "%s", v);
  else if (strcmp(k, "scale_min") == 0 || strcmp(k, "scale_max") == 0) {
    double x = NAN;
    int bad = 0;
    if (strcmp(v, "none") != 0) {
      char *e;
      x = strtod(v, &e);
      if (e == v || *e) bad = 1;
    }
    if (k[6] == 'm' && k[7] == 'i') m->scale_min = x;
    else m->scale_max = x;
    return bad;
  } else if (strcmp(k, "value_min") == 0 || strcmp(k, "value_max") == 0 || strcmp(k, "value_step") == 0) {
    int which = k[6] == 'm' && k[7] == 'i' ? 0 : k[6] == 'm' ? 1 : 2;
    *have_vals |= 1 << which;
    return parse_dbl_none(v, &vals[which]);
  } else if (strcmp(k, "users") == 0) return parse_i64(v, &m->users);
  else if (strcmp(k, "items") == 0) return parse_i64(v, &m->items);
  else if (strcmp(k, "batches") == 0) return parse_i64(v, declared);
  else if (strcmp(k, "holdout_fraction") == 0) {
    char *e;
    m->holdout_fraction = strtod(v, &e);
    return e == v || *e || !(m->holdout_fraction >= 0 && m->holdout_fraction < 1);
  } else if (strcmp(k, "holdout_seed") == 0) return parse_i64(v, &m->holdout_seed);
  else if (strcmp(k, "forgotten") == 0) return parse_forgotten(v, m);
  else if (strcmp(k, "batch") == 0) return parse_batch(v, m, cap);
  return 0;
}

/* Each batch numbers its new ids after the previous batch's: the counts chain exactly (a key
 * lost to damage reads as 0 and breaks the chain, instead of shrinking the store's id range
 * under rows that name ids past it). The store's scale is derived from the batches'; its lines,
 * when written, must agree. 1 when everything holds together. */
static int manifest_chained(manifest *m, const double vals[3], int have_vals, int64_t declared) {
  int chained = 1;
  for (int64_t k = 0; k < m->nbatches && chained; k++) {
    const batch_meta *b = &m->b[k];
    const int64_t pu = k ? m->b[k - 1].users_after : 0, pi = k ? m->b[k - 1].items_after : 0;
    /* pu, pi >= 0 here (the chain starts at 0 and only adds counts >= 0): no overflow */
    chained = b->new_users >= 0 && b->new_items >= 0 && b->rows >= 0 && b->new_users <= INT64_MAX - pu &&
              b->new_items <= INT64_MAX - pi && b->users_after == pu + b->new_users &&
              b->items_after == pi + b->new_items;
  }
  store_manifest_scale(m);
  if (have_vals) {
    const int agree = have_vals == 7 && m->scale_known && m->scale.n > 0 && vals[0] == m->scale.min &&
                      vals[1] == m->scale.max &&
                      (m->scale.step >= 0 ? vals[2] == m->scale.step : isnan(vals[2]));
    if (!agree) chained = 0;
  }
  return declared == m->nbatches && chained &&
         !(m->nbatches > 0 &&
           (m->b[m->nbatches - 1].users_after != m->users || m->b[m->nbatches - 1].items_after != m->items));
}

static imf_status manifest_parse(const char *dir, const char *text, size_t len, manifest *m) {
  memset(m, 0, sizeof *m);
  m->scale_min = m->scale_max = NAN;
  snprintf(m->duplicates, sizeof m->duplicates, "latest");
  snprintf(m->normalize, sizeof m->normalize, "none");
  size_t end_at = 0;
  IMF_CHECK(manifest_verify(dir, text, len, &end_at));
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
  for (char *line = strtok_r(copy, "\n", &save); line && st == IMF_OK; line = strtok_r(NULL, "\n", &save)) {
    lineno++;
    if (lineno == 1) continue;
    char *sp = strchr(line, ' ');
    if (!sp) continue;
    *sp = '\0';
    int bad = parse_key(line, sp + 1, m, vals, &have_vals, &declared, &cap);
    if (bad < 0) st = IMF_RAISE(IMF_ERR_NOMEM, "out of memory reading %s/MANIFEST", dir);
    else if (bad)
      st = IMF_RAISE(IMF_ERR_INPUT, "%s/MANIFEST line %d is malformed ('%s'): restore it or re-run prepare", dir, lineno, line);
  }
  if (st == IMF_OK && !manifest_chained(m, vals, have_vals, declared))
    st = IMF_RAISE(IMF_ERR_INPUT, "%s/MANIFEST is inconsistent (batch list and totals disagree): restore it "
                       "or re-run prepare", dir);
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
  for (int64_t k = 0; k < nb; k++) store_sha_put(c, s->m.b[k].digest, 64);
  /* a store with forgotten users is other data: the digest says so (unchanged without) */
  if (s->m.nforgotten > 0) {
    store_sha_put(c, "forgotten", 9);
    for (int64_t j = 0; j < s->m.nforgotten; j++) store_sha_put_u64(c, (uint64_t)s->m.forgotten[j]);
  }
  EVP_DigestFinal_ex(c, d, &n);
  EVP_MD_CTX_free(c);
  store_hexify(d, n, hex);
}

void store_digest_update(imf_store *s) { digest_prefix(s, s->m.nbatches, s->digest); }

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
    if (nb > 0) store_sha_put(c, s->m.b[nb - 1].digest, 64);
    if (nb < from) continue;
    EVP_MD_CTX_copy_ex(t, c);
    if (s->m.nforgotten > 0) { /* as digest_prefix */
      store_sha_put(t, "forgotten", 9);
      for (int64_t j = 0; j < s->m.nforgotten; j++) store_sha_put_u64(t, (uint64_t)s->m.forgotten[j]);
    }
    EVP_DigestFinal_ex(t, d, &n);
    store_hexify(d, n, hex);
    found = !strcmp(hex, digest);
  }
  EVP_MD_CTX_free(c);
  EVP_MD_CTX_free(t);
  return found;
}

/* Rank 0 reads the manifest; every rank parses the same broadcast bytes. */
imf_status store_manifest_load(imf_store *s) {
  char *text = NULL;
  int64_t len = 0;
  imf_status st = IMF_OK;
  if (s->rank == 0) {
    char path[4200];
    snprintf(path, sizeof path, "%s/MANIFEST", s->dir);
    struct stat sb;
    if (stat(s->dir, &sb) != 0)
      st = IMF_RAISE(IMF_ERR_NOTFOUND, "%s does not exist", s->dir);
    else if (!S_ISDIR(sb.st_mode))
      st = IMF_RAISE(IMF_ERR_INPUT, "%s is not an incremf store (not a directory)", s->dir);
    else {
      FILE *f = fopen(path, "rb");
      if (!f && errno == ENOENT)
        st = IMF_RAISE(IMF_ERR_INPUT, "%s is not an incremf store (no MANIFEST)", s->dir);
      else if (!f)
        st = IMF_RAISE(IMF_ERR_RUNTIME, "cannot open %s: %s", path,
                           strerror(errno));
      else {
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 0, SEEK_SET);
        st = imf_alloc(&text, (size_t)(n < 0 ? 0 : n) + 1, 1);
        if (st == IMF_OK && n > 0 && fread(text, 1, (size_t)n, f) != (size_t)n)
          st = IMF_RAISE(IMF_ERR_RUNTIME, "cannot read %s", path);
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
  IMF_TRY(store_bcast_bytes(s->comm, 0, &text, &len), out);
  text[len] = '\0';
  manifest m;
  IMF_TRY(manifest_parse(s->dir, text, (size_t)len, &m), out);
  /* every rank parsed the same bytes, so every rank reaches the same verdict */
  if (s->rank == 0) {
    for (int64_t k = 0; k < m.nbatches && st == IMF_OK; k++) {
      char p[4200];
      snprintf(p, sizeof p, "%s/%s", s->dir, m.b[k].file);
      if (!store_path_exists(p))
        st = IMF_RAISE(IMF_ERR_INPUT, "%s is missing: the store is damaged (restore it or re-run prepare)", p);
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
int store_manifest_names_no_batch(const char *dir) {
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
imf_status store_manifest_commit(imf_store *s, const manifest *m) {
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
