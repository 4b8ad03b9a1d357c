/* fuzz_checkpoint.c - the model checkpoint loader (src/checkpoint.c). The input is the bytes
 * of a checkpoint file, written to a scratch file and loaded twice: imf_checkpoint_info (serial
 * HDF5, attributes only: what `inspect`, `status` and `rollback` use) and imf_checkpoint_read
 * (MPI-IO, the whole model, content digest checked), then, for an EASE model that read,
 * imf_checkpoint_read_ease_x (its sparse X, or X from P in the older replicated form). Seeds are real model versions and run
 * checkpoints (ALS, implicit ALS, BPMF, EASE) made by gen_seeds.sh; the custom mutator damages
 * them the way disks and killed jobs do: bit flips, overwritten words, zeroed ranges,
 * truncations, appended junk. Since HDF5 checksums its metadata, flips mostly stop in HDF5;
 * the edit-*.h5 seeds (fuzz_ckpt_edit: attributes rewritten with valid checksums) reach the
 * checks incremf makes itself. A damaged file must give IMF_ERR_INPUT, as checkpoint.h
 * promises: never a crash, a hang, an out-of-memory, or a model that disagrees with its
 * own header. */
#include "checkpoint.h"
#include "fuzzsupport.h"

#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  fz_init_mpi(argc, argv);
  return 0;
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max, unsigned seed) {
  return fz_mutate_binary(data, size, max, seed);
}

/* checkpoint.h: "a damaged, truncated, foreign or newer-format file is a one-line
 * IMF_ERR_INPUT" (the file exists and is readable here, so nothing else is expected). */
static int bad_status(imf_status st) { return st != IMF_ERR_INPUT; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char path[4200];
  snprintf(path, sizeof path, "%s/model.h5", fz_tmpdir());
  if (fz_write_file(path, data, size) != 0) abort();

  imf_ckpt_info info;
  memset(&info, 0, sizeof info);
  imf_status st = imf_checkpoint_info(path, &info);
  if (st == IMF_OK) {
    FZ_ASSERT(info.k >= 1 && info.kw >= info.k && info.kw % info.k == 0, "k = %d, kw = %d", info.k, info.kw);
    FZ_ASSERT(info.nusers >= 0 && info.nitems >= 0, "%lld users, %lld items", (long long)info.nusers,
              (long long)info.nitems);
    FZ_ASSERT(info.nhistory >= 0, "history of %lld", (long long)info.nhistory);
    FZ_ASSERT(info.config != NULL, "no config");
    FZ_ASSERT(strnlen(info.kind, sizeof info.kind) < sizeof info.kind &&
                  strnlen(info.store_digest, sizeof info.store_digest) < sizeof info.store_digest,
              "unterminated string");
    imf_ckpt_info_free(&info);
  } else {
    FZ_ASSERT(!bad_status(st), "imf_checkpoint_info status %d", (int)st);
  }
  fz_h5_check();

  imf_model *m = NULL;
  imf_ckpt_meta meta;
  st = imf_checkpoint_read(MPI_COMM_WORLD, path, &m, &meta);
  if (st == IMF_OK) {
    FZ_ASSERT(m != NULL, "no model");
    FZ_ASSERT(m->k >= 1 && m->kw >= m->k && m->nusers >= 0 && m->nitems >= 0, "model shape");
    FZ_ASSERT(meta.users.n == 0 || meta.users.n == m->nusers, "%lld user ids for %lld users",
              (long long)meta.users.n, (long long)m->nusers);
    FZ_ASSERT(meta.items.n == 0 || meta.items.n == m->nitems, "%lld item ids for %lld items",
              (long long)meta.items.n, (long long)m->nitems);
    /* touch every factor: ASan checks the arrays are as long as the header says */
    double sum = 0;
    for (int64_t j = 0; j < m->nusers * m->kw; j++) sum += m->P[j];
    for (int64_t j = 0; j < m->nitems * m->kw; j++) sum += m->Q[j];
    if (m->with_bias) {
      for (int64_t j = 0; j < m->nusers; j++) sum += m->bu[j];
      for (int64_t j = 0; j < m->nitems; j++) sum += m->bi[j];
    }
    for (int64_t j = 0; j < meta.users.n; j++) FZ_ASSERT(meta.users.off[j] <= meta.users.off[j + 1], "user ids");
    for (int64_t j = 0; j < meta.items.n; j++) FZ_ASSERT(meta.items.off[j] <= meta.items.off[j + 1], "item ids");
    (void)sum;
    if (m->type == IMF_MODEL_EASE) { /* X: sparse rows checked against their hash, or from P */
      imf_ease_rows x;
      int64_t nu = m->nusers, ni = m->nitems;
      st = imf_checkpoint_read_ease_x(MPI_COMM_WORLD, path, 0, nu, &x);
      if (st == IMF_OK) {
        FZ_ASSERT(x.lo == 0 && x.hi == nu && x.ptr[0] == 0, "X rows [%lld, %lld)", (long long)x.lo, (long long)x.hi);
        for (int64_t u = 0; u < nu; u++) {
          FZ_ASSERT(x.ptr[u] <= x.ptr[u + 1], "X offsets decrease at row %lld", (long long)u);
          for (int64_t q = x.ptr[u]; q < x.ptr[u + 1]; q++)
            FZ_ASSERT(x.idx[q] >= 0 && x.idx[q] < ni && (q == x.ptr[u] || x.idx[q] > x.idx[q - 1]),
                      "X row %lld not ascending items below %lld", (long long)u, (long long)ni);
        }
        imf_ease_rows_free(&x);
      } else {
        FZ_ASSERT(x.ptr == NULL, "failed X read returned rows");
        FZ_ASSERT(!bad_status(st), "imf_checkpoint_read_ease_x status %d", (int)st);
      }
    }
    imf_model_destroy(&m);
    imf_ckpt_meta_free(&meta);
  } else {
    FZ_ASSERT(m == NULL, "failed read returned a model");
    FZ_ASSERT(!bad_status(st), "imf_checkpoint_read status %d", (int)st);
  }
  fz_h5_check();
  return 0;
}
