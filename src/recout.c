/* recout.c - the HDF5 results file of `incremf recommend --all --out FILE.h5` (recout.h). It
 * is a plain results file, not part of a store or a model directory, but its HDF5 writing
 * belongs to the I/O layer (docs/DESIGN.md, "Boundaries"; tests/check_layers.sh): recommend.c
 * ranks, this module writes. Each rank writes its own users' rows collectively. */
#include "recout.h"
#include "error.h"
#include "fsio.h"

#include <hdf5.h>
#include <string.h>

imf_status imf_recout_write_h5(MPI_Comm comm, const char *path, const char *name, const imf_idmap *users,
                               const imf_idmap *items_map, int64_t nusers, int64_t nitems, int64_t lo, int64_t hi,
                               int top, const int32_t *items, const float *scores) {
  int rank;
  MPI_Comm_rank(comm, &rank);
  int64_t L = 1;
  for (int64_t u = 0; u < nusers; u++) {
    size_t l;
    imf_idmap_get(users, u, &l);
    if ((int64_t)l > L) L = (int64_t)l;
  }
  for (int64_t i = 0; i < nitems; i++) {
    size_t l;
    imf_idmap_get(items_map, i, &l);
    if ((int64_t)l > L) L = (int64_t)l;
  }
  char *ids = NULL;
  int64_t nmine = hi - lo, nid = nmine > nitems ? nmine : nitems;
  imf_status st = imf_alloc(&ids, (size_t)(nid ? nid : 1) * (size_t)L, 1);
  /* A full disk is refused before the file is created; a write that fails later is agreed on
   * after every dataset, with collective metadata, as the store's batch writer does: one rank
   * failing alone left the other in H5Dwrite's allreduce for ever. */
  double need = (double)nusers * ((double)top * 8.0 + (double)L) + (double)nitems * (double)L + 65536.0;
  if (st == IMF_OK && rank == 0) st = imf_output_need_space(name, need);
  st = imf_agree(comm, st);
  if (st != IMF_OK) {
    imf_free(&ids);
    return st;
  }
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL);
  H5Pset_all_coll_metadata_ops(fapl, 1);
  H5Pset_coll_metadata_write(fapl, 1);
  hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  H5Pclose(fapl);
  if (f < 0) {
    imf_free(&ids);
    return imf_agree(comm, imf_output_h5_error(name));
  }
  int bad = 0;
  hid_t dx = H5Pcreate(H5P_DATASET_XFER);
  H5Pset_dxpl_mpio(dx, H5FD_MPIO_COLLECTIVE);
  hid_t str = H5Tcopy(H5T_C_S1);
  H5Tset_size(str, (size_t)L);
  H5Tset_strpad(str, H5T_STR_NULLPAD);
  /* /items, /scores: users x top; /user_ids: users */
  hsize_t dims[2] = {(hsize_t)nusers, (hsize_t)top}, start[2] = {(hsize_t)lo, 0}, cnt[2] = {(hsize_t)nmine, (hsize_t)top};
  const char *names[3] = {"items", "scores", "user_ids"};
  hid_t types[3] = {H5T_NATIVE_INT32, H5T_NATIVE_FLOAT, str};
  for (int u = 0; u < nmine; u++) {
    size_t l;
    const char *s = imf_idmap_get(users, lo + u, &l);
    memcpy(ids + (size_t)u * (size_t)L, s, l);
  }
  const void *bufs[3] = {items, scores, ids};
  for (int d = 0; d < 3; d++) {
    int rk = d == 2 ? 1 : 2;
    hid_t fs = H5Screate_simple(rk, dims, NULL);
    hid_t ds = H5Dcreate2(f, names[d], types[d], fs, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t ms = H5Screate_simple(rk, cnt, NULL);
    if (nmine > 0) H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, cnt, NULL);
    else {
      H5Sselect_none(fs);
      H5Sselect_none(ms);
    }
    if (ds < 0 || H5Dwrite(ds, types[d], ms, fs, dx, bufs[d]) < 0) bad = 1;
    H5Sclose(ms);
    H5Sclose(fs);
    if (ds >= 0) H5Dclose(ds);
    MPI_Allreduce(MPI_IN_PLACE, &bad, 1, MPI_INT, MPI_MAX, comm);
    if (bad) break;
  }
  /* /item_ids: written by rank 0 */
  if (!bad) {
    memset(ids, 0, (size_t)(nid ? nid : 1) * (size_t)L);
    for (int64_t i = 0; i < nitems; i++) {
      size_t l;
      const char *s = imf_idmap_get(items_map, i, &l);
      memcpy(ids + (size_t)i * (size_t)L, s, l);
    }
    hsize_t di = (hsize_t)nitems;
    hid_t fs = H5Screate_simple(1, &di, NULL);
    hid_t ds = H5Dcreate2(f, "item_ids", str, fs, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t ms = H5Screate_simple(1, &di, NULL);
    if (rank != 0) {
      H5Sselect_none(fs);
      H5Sselect_none(ms);
    }
    if (ds < 0 || H5Dwrite(ds, str, ms, fs, dx, ids) < 0) bad = 1;
    H5Sclose(ms);
    H5Sclose(fs);
    if (ds >= 0) H5Dclose(ds);
  }
  H5Tclose(str);
  H5Pclose(dx);
  if (bad) imf_h5_reason(); /* the write's reason, before the close adds its own */
  if (H5Fclose(f) < 0 && !bad) {
    imf_h5_reason();
    bad = 1;
  }
  imf_free(&ids);
  st = bad ? imf_output_h5_error(name) : IMF_OK;
  return imf_agree(comm, st);
}
