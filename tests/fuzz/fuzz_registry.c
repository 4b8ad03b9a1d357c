/* fuzz_registry.c - the model directory's pointer and lineage readers: CURRENT and the
 * versions/ listing (src/modeldir.c), registry.jsonl (src/registry.c), and what consumes them:
 * `status` (text and JSON), `rollback` (parent lookup, CURRENT switch, registry append, the
 * LOCK file) and `prune`. The input is an archive (fuzzsupport.h) of the model directory's
 * files: CURRENT, registry.jsonl, LOCK, versions/NAME (real versions in the seeds; empty or
 * odd names from the mutator). Checked: CURRENT names an existing, well-formed version; the
 * version list is ascending; registry records are well-formed strings, and writing the loaded
 * records and loading them again is a fixed point (the reader and writer agree). */
#include "fuzzsupport.h"
#include "incremf.h"
#include "modeldir.h"
#include "registry.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const NAMES[] = {"CURRENT",
                                    "registry.jsonl",
                                    "LOCK",
                                    "versions/v000001.h5",
                                    "versions/v000002.h5",
                                    "versions/v000003.h5",
                                    "versions/v000010.h5",
                                    "versions/v1.h5",
                                    "versions/v000004.h5.tmp",
                                    "versions/v9999999.h5",
                                    "CURRENT.tmp",
                                    "registry.jsonl.tmp",
                                    NULL};

static int is_text(const char *name) {
  return !strcmp(name, "CURRENT") || !strcmp(name, "LOCK") || !strncmp(name, "registry", 8);
}

static FILE *devnull;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  fz_init_mpi(argc, argv);
  devnull = fopen("/dev/null", "w");
  return 0;
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max, unsigned seed) {
  return fz_mutate_archive(data, size, max, seed, is_text, NAMES);
}

static void check_record(const imf_registry_record *r) {
#define TERM(f) FZ_ASSERT(strnlen(r->f, sizeof r->f) < sizeof r->f, "record field " #f " is not terminated")
  TERM(event);
  TERM(requested);
  TERM(strategy);
  TERM(decision);
  TERM(created);
  TERM(store);
  TERM(note);
#undef TERM
}

/* The loaded records, written back as registry.jsonl text. */
static char *records_text(const imf_registry_record *r, int64_t n, size_t *len) {
  char *buf = NULL;
  FILE *f = open_memstream(&buf, len);
  if (!f) abort();
  for (int64_t j = 0; j < n; j++) {
    imf_registry_write_json(f, &r[j]);
    fputc('\n', f);
  }
  fclose(f);
  return buf;
}

static void fixed_point(const imf_registry_record *r, int64_t n) {
  char dir[4200], path[4400];
  snprintf(dir, sizeof dir, "%s/model2", fz_tmpdir());
  if (fz_reset_dir(dir) != 0) abort();
  size_t len1 = 0, len2 = 0;
  char *t1 = records_text(r, n, &len1);
  snprintf(path, sizeof path, "%s/registry.jsonl", dir);
  if (fz_write_file(path, t1, len1) != 0) abort();
  imf_registry_record *r2 = NULL;
  int64_t n2 = 0;
  FZ_ASSERT(imf_registry_load(MPI_COMM_WORLD, dir, &r2, &n2) == IMF_OK, "reload: %s", imf_last_error());
  FZ_ASSERT(n2 == n, "%lld records written, %lld read back", (long long)n, (long long)n2);
  char *t2 = records_text(r2, n2, &len2);
  FZ_ASSERT(len1 == len2 && memcmp(t1, t2, len1) == 0,
            "registry records change when written and read back\n--- written ---\n%s\n--- read back, written ---\n%s", t1,
            t2);
  free(t1);
  free(t2);
  free(r2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_entry e[FZ_MAX_ENTRIES];
  int n = fz_archive_parse(data, size, e, FZ_MAX_ENTRIES);
  if (n < 0) return 0;
  char dir[4200], path[4400];
  snprintf(dir, sizeof dir, "%s/model", fz_tmpdir());
  if (fz_reset_dir(dir) != 0) abort();
  snprintf(path, sizeof path, "%s/versions", dir);
  mkdir(path, 0755);
  snprintf(path, sizeof path, "%s/run", dir);
  mkdir(path, 0755);
  for (int k = 0; k < n; k++) {
    const char *slash = strchr(e[k].name, '/');
    if (!fz_safe_name(e[k].name) || !strcmp(e[k].name, "MANIFEST")) continue;
    if (slash && strncmp(e[k].name, "versions/", 9) && strncmp(e[k].name, "run/", 4)) continue;
    if (!slash && (!strcmp(e[k].name, "versions") || !strcmp(e[k].name, "run"))) continue;
    snprintf(path, sizeof path, "%s/%s", dir, e[k].name);
    if (fz_write_file(path, e[k].data, e[k].size) != 0) abort();
  }

  /* the pointer and the version list */
  imf_modeldir *md = NULL;
  imf_status st = imf_modeldir_open(MPI_COMM_WORLD, dir, 0, 0, 0, &md);
  FZ_ASSERT(st == IMF_OK, "open: %s", imf_last_error());
  char cur[4400];
  int64_t cv = -1;
  st = imf_modeldir_current(md, cur, sizeof cur, &cv);
  if (st == IMF_OK) {
    char want[4400];
    imf_modeldir_version_path(md, cv, want, sizeof want);
    struct stat sb;
    FZ_ASSERT(cv >= 1 && strcmp(cur, want) == 0 && stat(cur, &sb) == 0, "CURRENT gave version %lld at %s",
              (long long)cv, cur);
  } else {
    FZ_ASSERT(st == IMF_ERR_NOTFOUND || st == IMF_ERR_INPUT || st == IMF_ERR_RUNTIME, "current status %d", (int)st);
    FZ_ASSERT(cv == 0, "failed current set version %lld", (long long)cv);
  }
  int64_t *vs = NULL, nv = 0;
  if (imf_modeldir_list_versions(md, &vs, &nv) == IMF_OK)
    for (int64_t j = 0; j < nv; j++) FZ_ASSERT(vs[j] >= 1 && (j == 0 || vs[j - 1] < vs[j]), "version list");
  free(vs);
  imf_modeldir_close(&md);

  /* the lineage */
  imf_registry_record *recs = NULL;
  int64_t nrec = 0;
  st = imf_registry_load(MPI_COMM_WORLD, dir, &recs, &nrec);
  /* a line that is not a record is an error naming the file and line, never skipped */
  FZ_ASSERT(st == IMF_OK || (st == IMF_ERR_INPUT && strstr(imf_last_error(), "registry.jsonl:")),
            "registry load: status %d: %s", (int)st, imf_last_error());
  for (int64_t j = 0; j < nrec; j++) {
    check_record(&recs[j]);
    const imf_registry_record *f = imf_registry_find(recs, nrec, recs[j].version);
    FZ_ASSERT(!f || (f->version == recs[j].version && (!strcmp(f->event, "train") || !strcmp(f->event, "update"))),
              "imf_registry_find");
  }
  fixed_point(recs, nrec);
  free(recs);

  /* what reads them */
  int stale = 0, drifting = 0;
  (void)imf_model_status(MPI_COMM_WORLD, dir, NULL, 0, devnull, &stale, &drifting);
  (void)imf_model_status(MPI_COMM_WORLD, dir, NULL, 1, devnull, &stale, &drifting);
  int64_t from = 0, now = 0, removed = 0;
  st = imf_rollback(MPI_COMM_WORLD, dir, 0, 0, &from, &now);
  if (st == IMF_OK) FZ_ASSERT(now >= 1, "rollback from %lld to %lld", (long long)from, (long long)now);
  (void)imf_prune(MPI_COMM_WORLD, dir, 1, 0, &removed);
  fz_h5_check();
  return 0;
}
