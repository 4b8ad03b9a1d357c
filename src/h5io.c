/* h5io.c - the HDF5 plumbing shared by the store and the checkpoints (h5io.h). */
#include "h5io.h"
#include "error.h"
#include "fsio.h"

#include <stdlib.h>
#include <string.h>

hid_t imf_h5_fapl_mpio(MPI_Comm comm, int create) {
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (fapl < 0) return fapl;
  H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL);
  H5Pset_all_coll_metadata_ops(fapl, 1);
  if (create) {
    H5Pset_coll_metadata_write(fapl, 1);
    H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST);
  }
  return fapl;
}

hid_t imf_h5_fapl_v18(void) {
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (fapl >= 0) H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST);
  return fapl;
}

hid_t imf_h5_dxpl(int collective) {
  hid_t x = H5Pcreate(H5P_DATASET_XFER);
  if (x >= 0) H5Pset_dxpl_mpio(x, collective ? H5FD_MPIO_COLLECTIVE : H5FD_MPIO_INDEPENDENT);
  return x;
}

hid_t imf_h5_dcreate(hid_t loc, const char *name, hid_t ftype, int nd, const hsize_t *dims) {
  hid_t fs = H5Screate_simple(nd, dims, NULL);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
  H5Pset_layout(dcpl, H5D_CONTIGUOUS);
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  hid_t d = fs < 0 ? -1 : H5Dcreate2(loc, name, ftype, fs, lcpl, dcpl, H5P_DEFAULT);
  if (d < 0) imf_h5_reason();
  H5Pclose(lcpl);
  H5Pclose(dcpl);
  if (fs >= 0) H5Sclose(fs);
  return d;
}

herr_t imf_h5_select_rows(hid_t fs, int nd, int64_t r0, int64_t cnt, int64_t ncols, hid_t *ms) {
  hsize_t off[2] = {(hsize_t)r0, 0}, count[2] = {(hsize_t)cnt, (hsize_t)ncols};
  hsize_t mdim[2] = {cnt ? (hsize_t)cnt : 1, (hsize_t)ncols};
  *ms = H5Screate_simple(nd, mdim, NULL);
  if (*ms < 0) return -1;
  if (cnt) return H5Sselect_hyperslab(fs, H5S_SELECT_SET, off, NULL, count, NULL);
  if (H5Sselect_none(fs) < 0) return -1;
  return H5Sselect_none(*ms);
}

herr_t imf_h5_xfer_1d(hid_t d, hid_t mtype, hsize_t off, hsize_t cnt, void *buf, hid_t dxpl, int write) {
  static char dummy[16]; /* a rank with nothing to move passes a valid pointer all the same */
  hid_t fs = H5Dget_space(d), ms = -1;
  herr_t e = fs < 0 ? -1 : imf_h5_select_rows(fs, 1, (int64_t)off, (int64_t)cnt, 1, &ms);
  void *p = cnt && buf ? buf : (void *)dummy;
  if (e >= 0) e = write ? H5Dwrite(d, mtype, ms, fs, dxpl, p) : H5Dread(d, mtype, ms, fs, dxpl, p);
  if (e < 0) imf_h5_reason(); /* keep the reason: the next calls clear HDF5's stack */
  if (ms >= 0) H5Sclose(ms);
  if (fs >= 0) H5Sclose(fs);
  return e;
}

imf_status imf_h5_read_1d(hid_t d, hid_t mtype, hsize_t off, hsize_t cnt, void *buf, hid_t dxpl, const char *path,
                          const char *name) {
  hid_t fs = H5Dget_space(d);
  if (fs < 0) IMF_FAIL(IMF_ERR_RUNTIME, "%s: cannot %s: %s", path, name, imf_h5_reason());
  const hssize_t npoints = H5Sget_simple_extent_npoints(fs);
  H5Sclose(fs);
  /* A zero-length dataset has no storage to read; its extent is the same on every rank, so
   * all ranks skip the transfer together. */
  if (npoints == 0) {
    if (cnt) IMF_FAIL(IMF_ERR_INPUT, "%s: %s is empty, rows expected", path, name);
    return IMF_OK;
  }
  int widen = 0;
  if (H5Tequal(mtype, H5T_NATIVE_INT64) > 0) { /* the same choice on every rank */
    hid_t ft = H5Dget_type(d);
    widen = ft >= 0 && H5Tget_class(ft) == H5T_INTEGER && H5Tget_size(ft) == 4 && H5Tget_sign(ft) == H5T_SGN_2;
    if (ft >= 0) H5Tclose(ft);
  }
  if (imf_h5_xfer_1d(d, widen ? H5T_NATIVE_INT32 : mtype, off, cnt, buf, dxpl, 0) < 0)
    IMF_FAIL(IMF_ERR_RUNTIME, "%s: cannot read %s: %s", path, name, imf_h5_last());
  if (widen && cnt && buf) {
    const int32_t *src = buf;
    int64_t *dst = buf;
    for (hsize_t j = cnt; j-- > 0;) dst[j] = src[j]; /* from the top: nothing unread is overwritten */
  }
  return IMF_OK;
}

imf_status imf_h5_write_1d(hid_t loc, const char *name, hid_t ftype, hid_t mtype, hsize_t total, hsize_t off,
                           hsize_t cnt, const void *buf, hid_t dxpl, const char *path) {
  hid_t d = imf_h5_dcreate(loc, name, ftype, 1, &total);
  if (d < 0) IMF_FAIL(IMF_ERR_RUNTIME, "%s: cannot create dataset %s: %s", path, name, imf_h5_last());
  herr_t e = total > 0 ? imf_h5_xfer_1d(d, mtype, off, cnt, (void *)buf, dxpl, 1) : 0;
  if (e >= 0 && H5Dclose(d) < 0) {
    e = -1;
    imf_h5_reason();
  } else if (e < 0) {
    H5Dclose(d);
  }
  if (e < 0) IMF_FAIL(IMF_ERR_RUNTIME, "%s: cannot write dataset %s: %s", path, name, imf_h5_last());
  return IMF_OK;
}

int64_t imf_h5_len(hid_t d) {
  hid_t sp = H5Dget_space(d);
  hsize_t dims[2] = {0, 0};
  int64_t n = -1;
  if (sp >= 0 && H5Sget_simple_extent_ndims(sp) == 1) {
    H5Sget_simple_extent_dims(sp, dims, NULL);
    n = (int64_t)dims[0];
  }
  if (sp >= 0) H5Sclose(sp);
  return n;
}

int64_t imf_h5_len_at(hid_t loc, const char *name) {
  if (H5Lexists(loc, name, H5P_DEFAULT) <= 0) return -1;
  hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
  if (d < 0) return -1;
  int64_t n = imf_h5_len(d);
  H5Dclose(d);
  return n;
}

imf_status imf_h5_len_check(hid_t d, const char *path, const char *name, hsize_t *n) {
  hid_t sp = H5Dget_space(d);
  if (sp < 0) IMF_FAIL(IMF_ERR_RUNTIME, "%s: cannot %s: %s", path, name, imf_h5_reason());
  H5Sclose(sp);
  int64_t len = imf_h5_len(d);
  if (len < 0) IMF_FAIL(IMF_ERR_INPUT, "%s: %s is not one-dimensional", path, name);
  *n = (hsize_t)len;
  return IMF_OK;
}

imf_status imf_h5_attr_put(hid_t loc, const char *name, hid_t ftype, hid_t mtype, const void *v, hsize_t n,
                           const char *path) {
  hid_t sp = n == 1 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, NULL);
  hid_t a = H5Acreate2(loc, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT);
  herr_t e = a < 0 ? -1 : H5Awrite(a, mtype, v);
  if (e < 0) imf_h5_reason();
  if (a >= 0) H5Aclose(a);
  H5Sclose(sp);
  if (e < 0) IMF_FAIL(IMF_ERR_RUNTIME, "%s: cannot write attribute %s: %s", path, name, imf_h5_last());
  return IMF_OK;
}

imf_status imf_h5_attr_i64(hid_t loc, const char *name, int64_t v, const char *path) {
  return imf_h5_attr_put(loc, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &v, 1, path);
}

imf_status imf_h5_attr_f64(hid_t loc, const char *name, double v, const char *path) {
  return imf_h5_attr_put(loc, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v, 1, path);
}

imf_status imf_h5_attr_str(hid_t loc, const char *name, const char *v, const char *path) {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, strlen(v) + 1);
  H5Tset_strpad(t, H5T_STR_NULLTERM);
  imf_status st = imf_h5_attr_put(loc, name, t, t, v, 1, path);
  H5Tclose(t);
  return st;
}

int imf_h5_attr_get_num(hid_t loc, const char *name, hid_t mtype, void *v) {
  if (H5Aexists(loc, name) <= 0) return 0;
  hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
  if (a < 0) return -1;
  hid_t sp = H5Aget_space(a);
  int ok = sp >= 0 && H5Sget_simple_extent_npoints(sp) == 1 && H5Aread(a, mtype, v) >= 0;
  if (sp >= 0) H5Sclose(sp);
  H5Aclose(a);
  return ok ? 1 : -1;
}

/* A variable-length string attribute's value, copied. */
static int attr_get_vlen(hid_t a, char **out) {
  hid_t mt = H5Tcopy(H5T_C_S1);
  H5Tset_size(mt, H5T_VARIABLE);
  char *s = NULL;
  int ok = 0;
  if (H5Aread(a, mt, &s) >= 0 && s) {
    *out = strdup(s);
    ok = *out != NULL;
    H5free_memory(s);
  }
  H5Tclose(mt);
  return ok;
}

int imf_h5_attr_get_str(hid_t loc, const char *name, char **out) {
  *out = NULL;
  if (H5Aexists(loc, name) <= 0) return 0;
  hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
  if (a < 0) return -1;
  hid_t ft = H5Aget_type(a);
  int ok = 0;
  if (ft >= 0 && H5Tget_class(ft) == H5T_STRING) {
    if (H5Tis_variable_str(ft) > 0) ok = attr_get_vlen(a, out);
    else {
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

void imf_h5_attr_text(hid_t loc, const char *name, char *buf, size_t cap) {
  buf[0] = '\0';
  hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
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

int imf_fault(const char *name) {
  const char *f = getenv("IMF_FAULT");
  return f && strcmp(f, name) == 0;
}
