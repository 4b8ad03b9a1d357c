/* fuzz_store.c - opening and reading a data store (src/store.c): the MANIFEST text, the batch
 * HDF5 files and, when present, the writer LOCK file. The input is an archive (fuzzsupport.h)
 * of the store directory's files, written to a scratch directory before each run:
 *   MANIFEST       written as is (its checksum line will rarely survive a mutation);
 *   MANIFEST+sum   written as MANIFEST with a correct "end <sha256>" line appended, so the
 *                  parser behind the checksum gets fuzzed too;
 *   LOCK           the store is then opened for writing (lock parsing, stale-lock takeover);
 *   anything else  (batch-000001.h5, ...) written under its name.
 * The custom mutator damages one file at a time (text: libFuzzer's mutations, HDF5: flips,
 * truncations, overwritten words). A store that opens must then hold together: counts, id maps,
 * and ratings whose indices lie in the ranges the API promises. */
#include "fuzzsupport.h"
#include "idmap.h"
#include "store.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const NAMES[] = {"MANIFEST",        "MANIFEST+sum",    "batch-000001.h5",
                                    "batch-000002.h5", "batch-000003.h5", "LOCK",
                                    "batch-000001.h5.tmp", "MANIFEST.tmp", NULL};

static int is_text(const char *name) { return strncmp(name, "MANIFEST", 8) == 0 || !strcmp(name, "LOCK"); }

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  fz_init_mpi(argc, argv);
  return 0;
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max, unsigned seed) {
  return fz_mutate_archive(data, size, max, seed, is_text, NAMES);
}

static int write_entry(const char *dir, const fz_entry *e) {
  char path[4300];
  if (strchr(e->name, '/') || !fz_safe_name(e->name)) return 0;
  if (strcmp(e->name, "MANIFEST+sum") == 0) {
    /* body + "end <sha256 of the body>\n" */
    size_t n = e->size;
    char *t = malloc(n + 80);
    if (!t) abort();
    memcpy(t, e->data, n);
    if (n == 0 || t[n - 1] != '\n') t[n++] = '\n';
    char hex[65];
    fz_sha256_hex(t, n, hex);
    n += (size_t)snprintf(t + n, 80, "end %s\n", hex);
    snprintf(path, sizeof path, "%s/MANIFEST", dir);
    int rc = fz_write_file(path, t, n);
    free(t);
    return rc;
  }
  snprintf(path, sizeof path, "%s/%s", dir, e->name);
  return fz_write_file(path, e->data, e->size);
}

static void check_ratings(const imf_ratings *r, int64_t ulo, int64_t uhi, int64_t nitems, int sorted,
                          const char *what) {
  FZ_ASSERT(r->n >= 0, "%s: n = %lld", what, (long long)r->n);
  for (int64_t j = 0; j < r->n; j++) {
    FZ_ASSERT(r->user[j] >= ulo && r->user[j] < uhi, "%s: rating %lld has user %d outside [%lld, %lld)", what,
              (long long)j, r->user[j], (long long)ulo, (long long)uhi);
    FZ_ASSERT(r->item[j] >= 0 && r->item[j] < nitems, "%s: rating %lld has item %d outside [0, %lld)", what,
              (long long)j, r->item[j], (long long)nitems);
    if (sorted && j > 0)
      FZ_ASSERT(r->user[j - 1] < r->user[j] || (r->user[j - 1] == r->user[j] && r->item[j - 1] < r->item[j]),
                "%s: ratings %lld and %lld are not in strict (user, item) order", what, (long long)j - 1,
                (long long)j);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_entry e[FZ_MAX_ENTRIES];
  int n = fz_archive_parse(data, size, e, FZ_MAX_ENTRIES);
  if (n < 0) return 0;
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/store", fz_tmpdir());
  if (fz_reset_dir(dir) != 0) abort();
  int writable = 0;
  for (int k = 0; k < n; k++) {
    if (write_entry(dir, &e[k]) != 0) abort();
    writable |= strcmp(e[k].name, "LOCK") == 0;
  }

  imf_store *s = NULL;
  imf_status st = imf_store_open(MPI_COMM_WORLD, dir, writable ? IMF_STORE_WRITE : IMF_STORE_READ, 0, &s);
  if (st != IMF_OK) {
    FZ_ASSERT(!s, "failed open left a store");
    FZ_ASSERT(st == IMF_ERR_INPUT || st == IMF_ERR_NOTFOUND || st == IMF_ERR_LOCKED || st == IMF_ERR_RUNTIME ||
                  st == IMF_ERR_NOMEM,
              "open status %d", (int)st);
    fz_h5_check();
    return 0;
  }
  int64_t nb = imf_store_nbatches(s), nu = imf_store_nusers(s), ni = imf_store_nitems(s);
  FZ_ASSERT(nb >= 0, "%lld batches", (long long)nb);
  imf_store_info info;
  FZ_ASSERT(imf_store_get_info(s, &info) == IMF_OK, "get_info");
  FZ_ASSERT(info.batches == nb && info.users == nu && info.items == ni, "info disagrees with the counts");
  FZ_ASSERT(strlen(imf_store_digest(s)) == 64, "digest '%s'", imf_store_digest(s));
  (void)imf_store_find_sha256(s, "0000000000000000000000000000000000000000000000000000000000000000");
  const char *dup = imf_store_duplicate_policy(s);
  FZ_ASSERT(!strcmp(dup, "latest") || !strcmp(dup, "first") || !strcmp(dup, "mean"), "duplicates '%s'", dup);
  double frac;
  uint64_t seed;
  if (imf_store_holdout(s, &frac, &seed)) FZ_ASSERT(frac > 0 && frac < 1, "holdout fraction %g", frac);
  for (int64_t k = 0; k <= nb + 1; k++) (void)imf_store_batch_rows(s, k);
  (void)imf_store_is_forgotten(s, 0);

  imf_idmap *users = NULL, *items = NULL;
  FZ_ASSERT(imf_idmap_create(&users) == IMF_OK && imf_idmap_create(&items) == IMF_OK, "idmap");
  st = imf_store_load_idmaps(s, users, items);
  if (st == IMF_OK && nb > 0)
    FZ_ASSERT(imf_idmap_size(users) == nu && imf_idmap_size(items) == ni,
              "id maps of %lld users and %lld items for a store of %lld and %lld",
              (long long)imf_idmap_size(users), (long long)imf_idmap_size(items), (long long)nu, (long long)ni);
  imf_idmap_destroy(&users);
  imf_idmap_destroy(&items);

  if (nb > 0 && nu >= 0 && ni >= 0) {
    imf_ratings r = {0};
    if (imf_store_read_ratings(s, 0, nu, &r) == IMF_OK) check_ratings(&r, 0, nu, ni, 1, "read_ratings(all)");
    imf_ratings_free(&r);
    int64_t lo = nu / 3, hi = nu / 3 + 2;
    if (hi > nu) hi = nu;
    if (imf_store_read_ratings(s, lo, hi, &r) == IMF_OK) check_ratings(&r, lo, hi, ni, 1, "read_ratings(part)");
    imf_ratings_free(&r);
    for (int64_t k = 1; k <= nb && k <= 4; k++) {
      if (imf_store_read_batch(s, k, &r) == IMF_OK) check_ratings(&r, 0, nu, ni, 0, "read_batch");
      imf_ratings_free(&r);
    }
    /* a fold-in's read: the histories of every third user and item, through the indexes */
    if (nu < (1 << 20) && ni < (1 << 20)) {
      int32_t *us = malloc(((size_t)nu / 3 + 1) * sizeof *us), *is = malloc(((size_t)ni / 3 + 1) * sizeof *is);
      int64_t nus = 0, nis = 0;
      if (us && is) {
        for (int64_t u = 0; u < nu; u += 3) us[nus++] = (int32_t)u;
        for (int64_t i = 1; i < ni; i += 3) is[nis++] = (int32_t)i;
        imf_history uh = {0}, ih = {0};
        if (imf_store_read_histories(s, us, nus, is, nis, nb - 1, &uh, &ih) == IMF_OK) {
          for (int side = 0; side < 2; side++) {
            const imf_history *h = side ? &ih : &uh;
            const int64_t rows = side ? nis : nus, cols = side ? nu : ni;
            FZ_ASSERT(h->n == rows && h->ptr[0] == 0, "history of %lld rows for %lld asked", (long long)h->n,
                      (long long)rows);
            for (int64_t j = 0; j < h->n; j++) {
              FZ_ASSERT(h->ptr[j + 1] >= h->ptr[j], "history ptr not ascending at row %lld", (long long)j);
              for (int64_t x = h->ptr[j]; x < h->ptr[j + 1]; x++) {
                FZ_ASSERT(h->other[x] >= 0 && h->other[x] < cols, "history column %d of %lld", h->other[x],
                          (long long)cols);
                FZ_ASSERT(x == h->ptr[j] || h->other[x] > h->other[x - 1], "history columns not ascending");
              }
            }
          }
        }
        imf_history_free(&uh);
        imf_history_free(&ih);
      }
      free(us);
      free(is);
    }
  }
  imf_store_close(&s);
  fz_h5_check();
  return 0;
}
