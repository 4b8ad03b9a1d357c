/* fuzzsupport.c - see fuzzsupport.h. */
#include "fuzzsupport.h"
#include "fsio.h"
#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <mpi.h>
#include <openssl/evp.h>
#include <sanitizer/lsan_interface.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void fz_fail(const char *file, int line, const char *cond, const char *fmt, ...) {
  fprintf(stderr, "\n==fuzz== invariant violated at %s:%d: %s\n==fuzz== ", file, line, cond);
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  fflush(stderr);
  abort();
}

void fz_init_quiet(void) {
  static int done = 0;
  if (done) return;
  done = 1;
  /* rank 1 and quiet: neither info nor warning lines (a warning per bad registry line would
   * cost more than the parse) */
  imf_log_setup(1, 1, IMF_LOG_TEXT);
}

/* One collective-I/O round trip through HDF5's MPI-IO driver and a duplicated communicator. */
static void warm_up(void) {
  MPI_Comm c;
  MPI_Comm_dup(MPI_COMM_WORLD, &c);
  int x = 1, y = 0;
  MPI_Allreduce(&x, &y, 1, MPI_INT, MPI_SUM, c);
  MPI_Bcast(&x, 1, MPI_INT, 0, c);
  char path[4200];
  snprintf(path, sizeof path, "%s/warm-up.h5", fz_tmpdir());
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_fapl_mpio(fapl, c, MPI_INFO_NULL);
  H5Pset_all_coll_metadata_ops(fapl, 1);
  hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  hsize_t n = 4;
  int v[4] = {1, 2, 3, 4};
  hid_t sp = H5Screate_simple(1, &n, NULL);
  hid_t dx = H5Pcreate(H5P_DATASET_XFER);
  H5Pset_dxpl_mpio(dx, H5FD_MPIO_COLLECTIVE);
  hid_t d = H5Dcreate2(f, "d", H5T_NATIVE_INT, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Dwrite(d, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, dx, v);
  H5Dclose(d);
  H5Fclose(f);
  f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
  d = H5Dopen2(f, "d", H5P_DEFAULT);
  H5Dread(d, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, dx, v);
  H5Dclose(d);
  H5Fclose(f);
  H5Sclose(sp);
  H5Pclose(dx);
  H5Pclose(fapl);
  unlink(path);
  MPI_Comm_free(&c);
}

void fz_init_mpi(int *argc, char ***argv) {
  static int done = 0;
  if (done) return;
  done = 1;
  /* Singleton start without mpirun or a daemon; signals stay with ASan and libFuzzer. */
  setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 0);
  setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 0);
  setenv("OMPI_MCA_ess_singleton_isolated", "1", 0);
  setenv("OMPI_MCA_opal_signal", "", 1);
  setenv("OMPI_MCA_btl", "self", 0);
  setenv("OMPI_MCA_mpi_warn_on_fork", "0", 0);
  setenv("OPENBLAS_NUM_THREADS", "1", 0);
  /* Keep Open MPI's own MPI-IO with its default shared-file-pointer component, overriding
   * imf_preinit's ROMIO: ROMIO keeps 8 bytes per MPI_File_open and ompio without "sm" 48, which
   * libFuzzer's leak check would report on every input that opens a file. A fuzz target is
   * one process, so sm's semaphore (the reason for ROMIO) is never shared with a killed peer. */
  setenv("OMPI_MCA_io", "ompio", 0);
  setenv("OMPI_MCA_sharedfp", "", 0);
  /* Open MPI keeps a few hundred bytes from MPI_Init and from the first use of its MPI-IO and
   * collective components unreachable for good: not leaks of the code under test, but LSan
   * would report them at the first input whose mallocs outnumber its frees. Allocations made
   * while LSan is disabled are never reported, so start everything here. */
  __lsan_disable();
  int inited = 0;
  MPI_Initialized(&inited);
  if (!inited) imf_preinit();
  if (!inited && MPI_Init(argc, argv) != MPI_SUCCESS) {
    fprintf(stderr, "fuzz: MPI_Init failed\n");
    exit(1);
  }
  H5open();
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  /* HDF5 callocs a metadata cache of about a megabyte per open file and, past its free-list
   * limits, returns it to the system on close: under ASan that is an mmap, page faults and an
   * munmap per open, most of a run's time. Unlimited free lists recycle it. */
  H5set_free_list_limits(-1, -1, -1, -1, -1, -1);
  imf_h5_quiet();
  fz_init_quiet();
  warm_up();
  __lsan_enable();
}

void fz_h5_check(void) {
  ssize_t n = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
  if (n == 0) return;
  fz_fail(__FILE__, __LINE__, "H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) == 0",
          "HDF5 objects left open after the input: %zd files, %zd datasets, %zd groups, %zd datatypes, "
          "%zd attributes", H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_FILE),
          H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_DATASET), H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_GROUP),
          H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_DATATYPE), H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ATTR));
}

/* ---- scratch directory ---- */

static char tmp_root[4096];

static int rm_tree(const char *path, int keep_top) {
  DIR *d = opendir(path);
  if (!d) return errno == ENOENT ? 0 : -1;
  struct dirent *e;
  int rc = 0;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    char p[8192];
    snprintf(p, sizeof p, "%s/%s", path, e->d_name);
    struct stat sb;
    if (lstat(p, &sb) != 0) continue;
    if (S_ISDIR(sb.st_mode)) rc |= rm_tree(p, 0);
    else if (unlink(p) != 0) rc = -1;
  }
  closedir(d);
  if (!keep_top && rmdir(path) != 0) rc = -1;
  return rc;
}

static void tmp_cleanup(void) {
  if (tmp_root[0]) rm_tree(tmp_root, 0);
}

const char *fz_tmpdir(void) {
  if (tmp_root[0]) return tmp_root;
  const char *base = getenv("IMF_FUZZ_TMPDIR");
  struct stat sb;
  if (!base || !*base) base = stat("/dev/shm", &sb) == 0 && access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  snprintf(tmp_root, sizeof tmp_root, "%s/imf-fuzz-XXXXXX", base);
  if (!mkdtemp(tmp_root)) {
    fprintf(stderr, "fuzz: cannot create a scratch directory under %s: %s\n", base, strerror(errno));
    exit(1);
  }
  atexit(tmp_cleanup);
  return tmp_root;
}

int fz_reset_dir(const char *path) {
  if (rm_tree(path, 1) != 0) return -1;
  if (mkdir(path, 0755) != 0 && errno != EEXIST) return -1;
  return 0;
}

int fz_write_file(const char *path, const void *data, size_t n) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return -1;
  const char *p = data;
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w <= 0) {
      close(fd);
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return close(fd);
}

void fz_sha256_hex(const void *data, size_t n, char hex[65]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_Digest(data, n, md, &len, EVP_sha256(), NULL);
  for (unsigned i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

/* ---- archive ---- */

static const char MAGIC[] = "IMFZ1\n";
#define MAGIC_LEN 6

int fz_archive_parse(const uint8_t *buf, size_t n, fz_entry *e, int max) {
  if (n < MAGIC_LEN || memcmp(buf, MAGIC, MAGIC_LEN) != 0) return -1;
  size_t p = MAGIC_LEN;
  int k = 0;
  while (p < n) {
    if (k == max) return -1;
    size_t nl = buf[p++];
    if (nl < 1 || nl > FZ_MAX_NAME || p + nl + 4 > n) return -1;
    memcpy(e[k].name, buf + p, nl);
    e[k].name[nl] = '\0';
    if (strlen(e[k].name) != nl) return -1;
    p += nl;
    size_t len = (size_t)buf[p] | (size_t)buf[p + 1] << 8 | (size_t)buf[p + 2] << 16 | (size_t)buf[p + 3] << 24;
    p += 4;
    if (len > n - p) return -1;
    e[k].data = buf + p;
    e[k].size = len;
    p += len;
    k++;
  }
  return k;
}

size_t fz_archive_write(const fz_entry *e, int n, uint8_t *out, size_t cap) {
  size_t p = 0;
  if (cap < MAGIC_LEN) return 0;
  memcpy(out, MAGIC, MAGIC_LEN);
  p = MAGIC_LEN;
  for (int k = 0; k < n; k++) {
    size_t nl = strlen(e[k].name);
    if (nl < 1 || nl > FZ_MAX_NAME || e[k].size > 0xffffffffu) return 0;
    if (p + 1 + nl + 4 + e[k].size > cap) return 0;
    out[p++] = (uint8_t)nl;
    memcpy(out + p, e[k].name, nl);
    p += nl;
    for (int b = 0; b < 4; b++) out[p++] = (uint8_t)(e[k].size >> (8 * b));
    memmove(out + p, e[k].data, e[k].size);
    p += e[k].size;
  }
  return p;
}

static int safe_component(const char *s, size_t n) {
  if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.')) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '_' || c == '-' || c == '+'))
      return 0;
  }
  return 1;
}

int fz_safe_name(const char *name) {
  const char *slash = strchr(name, '/');
  if (!slash) return safe_component(name, strlen(name));
  if (strchr(slash + 1, '/')) return 0;
  return safe_component(name, (size_t)(slash - name)) && safe_component(slash + 1, strlen(slash + 1));
}

/* ---- mutators ---- */

typedef struct {
  uint64_t s;
} rng_t;
static uint64_t rnd(rng_t *r) { /* splitmix64 */
  uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
static size_t below(rng_t *r, size_t n) { return n ? (size_t)(rnd(r) % n) : 0; }

size_t fz_mutate_binary(uint8_t *data, size_t size, size_t max, unsigned seed) {
  rng_t r = {seed * 0x2545f4914f6cdd1dull + 1};
  int ops = 1 + (int)below(&r, 4);
  for (int o = 0; o < ops; o++) {
    unsigned op = (unsigned)below(&r, 100);
    if (size == 0) op = 95; /* only growing makes sense */
    if (op < 30) { /* flip 1-4 bits */
      int bits = 1 + (int)below(&r, 4);
      for (int b = 0; b < bits; b++) data[below(&r, size)] ^= (uint8_t)(1u << below(&r, 8));
    } else if (op < 45) { /* random or boundary bytes */
      static const uint8_t special[] = {0x00, 0xff, 0x7f, 0x80, 0x01, 0xfe};
      int n = 1 + (int)below(&r, 4);
      for (int b = 0; b < n; b++)
        data[below(&r, size)] = below(&r, 2) ? (uint8_t)rnd(&r) : special[below(&r, sizeof special)];
    } else if (op < 60) { /* overwrite a 2/4/8-byte little-endian word with an edge value */
      static const uint64_t words[] = {0, 1, 2, 0x7f, 0x80, 0xff, 0x7fff, 0xffff, 0x7fffffff,
                                       0x80000000u, 0xffffffffu, 0x7fffffffffffffffull,
                                       0xffffffffffffffffull, 4096, 1u << 20, 1ull << 31, 1ull << 40};
      size_t w = (size_t)1 << (1 + below(&r, 3));
      if (size >= w) {
        size_t at = below(&r, size - w + 1);
        uint64_t v = words[below(&r, sizeof words / sizeof words[0])];
        if (below(&r, 4) == 0) v += (uint64_t)below(&r, 16) - 8;
        for (size_t b = 0; b < w; b++) data[at + b] = (uint8_t)(v >> (8 * b));
      }
    } else if (op < 68) { /* zero a range */
      size_t at = below(&r, size), n = 1 + below(&r, 64);
      if (n > size - at) n = size - at;
      memset(data + at, 0, n);
    } else if (op < 74) { /* copy a range over another */
      size_t n = 1 + below(&r, 64);
      if (n > size) n = size;
      size_t from = below(&r, size - n + 1), to = below(&r, size - n + 1);
      memmove(data + to, data + from, n);
    } else if (op < 86) { /* truncate: anywhere, or close to the end */
      size_t cut = below(&r, 2) ? below(&r, size) : size - below(&r, size < 512 ? size : 512);
      size = cut;
    } else if (op < 92) { /* libFuzzer's generic mutation */
      size = LLVMFuzzerMutate(data, size, max);
    } else { /* append junk (a file longer than its superblock says) */
      size_t n = 1 + below(&r, 256);
      if (size + n > max) n = max - size;
      for (size_t b = 0; b < n; b++) data[size + b] = below(&r, 2) ? 0 : (uint8_t)rnd(&r);
      size += n;
    }
  }
  return size;
}

size_t fz_mutate_archive(uint8_t *data, size_t size, size_t max, unsigned seed,
                         int (*is_text)(const char *name), const char *const *names) {
  fz_entry e[FZ_MAX_ENTRIES];
  int n = fz_archive_parse(data, size, e, FZ_MAX_ENTRIES);
  if (n < 0) return LLVMFuzzerMutate(data, size, max);
  rng_t r = {seed * 0x9e3779b97f4a7c15ull + 7};
  /* Copies of the entries: mutation may grow one, and the output overwrites data. */
  size_t total = 0;
  for (int k = 0; k < n; k++) total += e[k].size;
  size_t work_cap = total + max + 64;
  uint8_t *work = malloc(work_cap);
  if (!work) return size;
  size_t off = 0;
  for (int k = 0; k < n; k++) {
    memcpy(work + off, e[k].data, e[k].size);
    e[k].data = work + off;
    off += e[k].size;
  }
  size_t nnames = 0;
  while (names && names[nnames]) nnames++;
  unsigned op = (unsigned)below(&r, 100);
  if (n == 0) op = 95;
  uint8_t *grown = NULL;
  if (op < 88) { /* mutate one entry's content */
    int k = (int)below(&r, (size_t)n);
    size_t cap = e[k].size + 4096;
    if (cap > max) cap = max > e[k].size ? max : e[k].size;
    grown = malloc(cap + 1);
    if (grown) {
      memcpy(grown, e[k].data, e[k].size);
      size_t ns = is_text && is_text(e[k].name) ? LLVMFuzzerMutate(grown, e[k].size, cap)
                                                : fz_mutate_binary(grown, e[k].size, cap, (unsigned)rnd(&r));
      e[k].data = grown;
      e[k].size = ns;
    }
  } else if (op < 91 && n > 1) { /* drop an entry */
    int k = (int)below(&r, (size_t)n);
    memmove(&e[k], &e[k + 1], (size_t)(n - k - 1) * sizeof e[0]);
    n--;
  } else if (op < 95 && nnames) { /* rename an entry to another known name */
    int k = (int)below(&r, (size_t)n);
    snprintf(e[k].name, sizeof e[k].name, "%s", names[below(&r, nnames)]);
  } else if (n < FZ_MAX_ENTRIES) { /* add: a copy of an entry, or an empty file, under a known name */
    int k = n ? (int)below(&r, (size_t)n) : 0;
    e[n] = n ? e[k] : (fz_entry){.data = work, .size = 0};
    if (below(&r, 3) == 0) e[n].size = 0;
    if (nnames) snprintf(e[n].name, sizeof e[n].name, "%s", names[below(&r, nnames)]);
    else if (!n) snprintf(e[n].name, sizeof e[n].name, "x");
    n++;
  }
  uint8_t *buf = malloc(max ? max : 1);
  size_t out = buf ? fz_archive_write(e, n, buf, max) : 0;
  if (out) memcpy(data, buf, out);
  free(buf);
  free(grown);
  free(work);
  return out ? out : size; /* too big: keep the input as it was */
}
