/* fuzz_ckpt_edit.c - structure-aware checkpoint seeds for fuzz_checkpoint. HDF5 checksums the
 * metadata of the files incremf writes (object headers, attributes), so random bit flips are
 * caught by HDF5 itself and never reach the checks incremf makes on the attributes. This tool
 * copies a real checkpoint and rewrites attributes or removes objects with the HDF5 API, which
 * keeps the checksums valid: gen_seeds.sh makes one seed per edit (a huge user count, a k that
 * does not divide kw, a foreign format, a missing dataset, ...).
 *
 *   fuzz_ckpt_edit IN OUT EDIT...
 *   EDIT: NAME=i64:V | NAME=f64:V | NAME=str:TEXT  (root attribute, replaced or created)
 *         -NAME                                     (delete a root attribute)
 *         rm:/PATH                                  (delete a link: dataset or group)
 *         ds:/PATH=i64:V,V,...  | ds:/PATH=txt:TEXT  (replace or create a 1-d dataset) */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int copy_file(const char *in, const char *out) {
  FILE *a = fopen(in, "rb"), *b = fopen(out, "wb");
  if (!a || !b) return -1;
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, a)) > 0)
    if (fwrite(buf, 1, n, b) != n) return -1;
  fclose(a);
  return fclose(b);
}

static int put_attr(hid_t f, const char *name, hid_t type, const void *v) {
  if (H5Aexists(f, name) > 0 && H5Adelete(f, name) < 0) return -1;
  hid_t sp = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(f, name, type, sp, H5P_DEFAULT, H5P_DEFAULT);
  int rc = a >= 0 && H5Awrite(a, type, v) >= 0 ? 0 : -1;
  if (a >= 0) H5Aclose(a);
  H5Sclose(sp);
  return rc;
}

static int put_dset(hid_t f, char *spec) {
  char *eq = strchr(spec, '=');
  if (!eq || strlen(eq) < 5 || eq[4] != ':') return -1;
  *eq = '\0';
  const char *kind = eq + 1, *val = eq + 5;
  if (H5Lexists(f, spec, H5P_DEFAULT) > 0 && H5Ldelete(f, spec, H5P_DEFAULT) < 0) return -1;
  long long v[4096];
  hsize_t n = 0;
  hid_t ft, mt;
  const void *buf = v;
  if (!strncmp(kind, "i64", 3)) {
    for (const char *p = val; *p && n < 4096;) {
      char *e;
      v[n++] = strtoll(p, &e, 0);
      p = *e == ',' ? e + 1 : e + strlen(e);
    }
    ft = H5T_STD_I64LE, mt = H5T_NATIVE_LLONG;
  } else {
    n = strlen(val);
    buf = val;
    ft = H5T_STD_U8LE, mt = H5T_NATIVE_UCHAR;
  }
  hid_t sp = H5Screate_simple(1, &n, NULL);
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  hid_t d = H5Dcreate2(f, spec, ft, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
  int rc = d >= 0 && (n == 0 || H5Dwrite(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0) ? 0 : -1;
  if (d >= 0) H5Dclose(d);
  H5Pclose(lcpl);
  H5Sclose(sp);
  return rc;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: fuzz_ckpt_edit IN OUT EDIT...\n");
    return 2;
  }
  if (copy_file(argv[1], argv[2]) != 0) {
    perror(argv[2]);
    return 1;
  }
  hid_t f = H5Fopen(argv[2], H5F_ACC_RDWR, H5P_DEFAULT);
  if (f < 0) return 1;
  int rc = 0;
  for (int i = 3; i < argc && rc == 0; i++) {
    char *e = argv[i];
    if (e[0] == '-') {
      rc = H5Adelete(f, e + 1) < 0 ? -1 : 0;
    } else if (!strncmp(e, "rm:", 3)) {
      rc = H5Ldelete(f, e + 3, H5P_DEFAULT) < 0 ? -1 : 0;
    } else if (!strncmp(e, "ds:", 3)) {
      rc = put_dset(f, e + 3);
    } else {
      char *eq = strchr(e, '=');
      if (!eq || strlen(eq) < 5 || eq[4] != ':') {
        fprintf(stderr, "fuzz_ckpt_edit: bad edit %s\n", e);
        return 2;
      }
      *eq = '\0';
      const char *kind = eq + 1, *val = eq + 5;
      if (!strncmp(kind, "i64", 3)) {
        long long v = strtoll(val, NULL, 0);
        rc = put_attr(f, e, H5T_NATIVE_LLONG, &v);
      } else if (!strncmp(kind, "f64", 3)) {
        double v = strtod(val, NULL);
        rc = put_attr(f, e, H5T_NATIVE_DOUBLE, &v);
      } else if (!strncmp(kind, "str", 3)) {
        hid_t t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, strlen(val) + 1);
        rc = put_attr(f, e, t, val);
        H5Tclose(t);
      } else {
        fprintf(stderr, "fuzz_ckpt_edit: bad kind in %s\n", argv[i]);
        return 2;
      }
    }
    if (rc) fprintf(stderr, "fuzz_ckpt_edit: %s failed\n", argv[i]);
  }
  if (H5Fclose(f) < 0) rc = -1;
  return rc ? 1 : 0;
}
