/* prepare.c - the public entry points that turn files into a store: prepare (new store, batch
 * 1), append (next batch) and inspect. They only sequence the stages: store (open, lock,
 * id maps) -> ingest (file -> batch) -> store (write batch, commit manifest). A SIGTERM/SIGINT/
 * SIGUSR1 (handlers installed by the command) is honoured after the input is read, before
 * anything is written: exit 75, the store as it was, its lock released. */
#include "config.h"
#include "error.h"
#include "idmap.h"
#include "ingest.h"
#include "log.h"
#include "store.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

/* Test hook: IMF_SIGNAL_AT=prepare-after-ingest|append-after-ingest sends rank 0 a real SIGTERM
 * there (tests/e2e_accidents.sh); the stop point right after it turns it into exit 75. */
static void signal_point(const char *name) {
  const char *sg = getenv("IMF_SIGNAL_AT");
  int wr = 0;
  if (sg && !strcmp(sg, name) && MPI_Comm_rank(MPI_COMM_WORLD, &wr) == MPI_SUCCESS && wr == 0) raise(SIGTERM);
}

static imf_status ingest_into(MPI_Comm comm, const imf_config *cfg, imf_store *s, const char *input,
                              const char *rejects, imf_ingest_report *report) {
  imf_status st = IMF_OK;
  imf_idmap *users = NULL, *items = NULL;
  imf_batch b = {0};
  IMF_TRY(imf_idmap_create(&users), out);
  IMF_TRY(imf_idmap_create(&items), out);
  IMF_TRY(imf_store_load_idmaps(s, users, items), out);
  /* a file the store already holds is refused there, before it is parsed */
  IMF_TRY(imf_ingest_file(comm, cfg, input, rejects, users, items, s, &b), out);
  signal_point("append-after-ingest");
  IMF_TRY(imf_stop_point(comm, "append", "after reading its input, before writing the batch (the store is unchanged)"),
          out);
  /* the batch carries its new ids: the maps are not needed to write it (and are a large part
   * of the memory a big batch takes) */
  imf_idmap_destroy(&users);
  imf_idmap_destroy(&items);
  IMF_TRY(imf_store_write_batch(s, &b), out);
  *report = b.report;
out:
  imf_batch_free(&b);
  imf_idmap_destroy(&users);
  imf_idmap_destroy(&items);
  return st;
}

imf_status imf_prepare(MPI_Comm comm, const imf_config *cfg, const char *store_dir, const char *input,
                       const char *rejects_path, imf_ingest_report *report) {
  /* Ingest first, create the store after: a file that fails cleaning leaves nothing behind. */
  imf_status st = IMF_OK;
  imf_store *s = NULL;
  imf_idmap *users = NULL, *items = NULL;
  imf_batch b = {0};
  memset(report, 0, sizeof *report);
  IMF_TRY(imf_idmap_create(&users), out);
  IMF_TRY(imf_idmap_create(&items), out);
  IMF_TRY(imf_ingest_file(comm, cfg, input, rejects_path, users, items, NULL, &b), out);
  signal_point("prepare-after-ingest");
  IMF_TRY(imf_stop_point(comm, "prepare", "after reading its input, before creating the store (nothing was written)"),
          out);
  imf_idmap_destroy(&users); /* the batch carries its new ids (see ingest_into) */
  imf_idmap_destroy(&items);
  IMF_TRY(imf_store_create(comm, store_dir, cfg, &s), out);
  IMF_TRY(imf_store_write_batch(s, &b), out);
  *report = b.report;
out:
  imf_store_close(&s);
  imf_batch_free(&b);
  imf_idmap_destroy(&users);
  imf_idmap_destroy(&items);
  return st;
}

imf_status imf_append(MPI_Comm comm, const imf_config *cfg, const char *store_dir, const char *input,
                      const char *rejects_path, imf_ingest_report *report) {
  imf_store *s = NULL;
  memset(report, 0, sizeof *report);
  IMF_CHECK(imf_store_open(comm, store_dir, IMF_STORE_WRITE, 0, &s));
  imf_status st = ingest_into(comm, cfg, s, input, rejects_path, report);
  imf_store_close(&s);
  return st;
}

imf_status imf_store_inspect(MPI_Comm comm, const char *store_dir, imf_store_info *info) {
  imf_store *s = NULL;
  IMF_CHECK(imf_store_open(comm, store_dir, IMF_STORE_READ, 0, &s));
  imf_status st = imf_store_get_info(s, info);
  imf_store_close(&s);
  return st;
}
