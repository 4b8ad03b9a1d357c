/* error.c - status codes, the per-rank error message and the collective agreement on failure. */
#include "error.h"

#include <errno.h>
#include <malloc.h>
#include <sys/mman.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define IMF_ERRMSG 1024
#pragma GCC diagnostic ignored "-Wformat-truncation"
/* This rank's error, in parts (error.h): imf_agree sends the whole struct from the failing rank. */
typedef struct {
  char reason[IMF_ERRMSG]; /* what went wrong */
  char advice[512];        /* what the user can do about it ("" if nothing to say) */
  char where[128];         /* "file.c:line" where it was raised */
  int rank;                /* the failing rank once an agreement named it, else -1 */
} err_state;
static err_state err = {.rank = -1};
static char imf_errmsg[IMF_ERRMSG]; /* the parts as one line (imf_last_error) */

static void compose(void) {
  char advice[sizeof err.advice + 3] = "", where[sizeof err.where + 3] = "", rank[32] = "";
  if (err.advice[0]) snprintf(advice, sizeof advice, " (%s)", err.advice);
  if (err.where[0]) snprintf(where, sizeof where, " (%s)", err.where);
  if (err.rank >= 0) snprintf(rank, sizeof rank, " [rank %d]", err.rank);
  snprintf(imf_errmsg, sizeof imf_errmsg, "%s%s%s%s", err.reason, advice, where, rank);
}

const char *imf_status_name(imf_status s) {
  switch (s) {
  case IMF_OK: return "ok";
  case IMF_ERR_RUNTIME: return "runtime error";
  case IMF_ERR_USAGE: return "usage error";
  case IMF_ERR_INPUT: return "bad input";
  case IMF_ERR_LOCKED: return "locked";
  case IMF_ERR_STALE: return "stale or drifting";
  case IMF_ERR_REQUEUE: return "stopped for requeue";
  case IMF_ERR_NOMEM: return "out of memory";
  case IMF_ERR_NOTFOUND: return "not found";
  }
  return "unknown status";
}

int imf_exit_code(imf_status s) {
  switch (s) {
  case IMF_OK: return 0;
  case IMF_ERR_USAGE: return 2;
  case IMF_ERR_INPUT:
  case IMF_ERR_NOTFOUND: return 3;
  case IMF_ERR_LOCKED: return 4;
  case IMF_ERR_STALE: return 5;
  case IMF_ERR_REQUEUE: return 75;
  default: return 1;
  }
}

const char *imf_last_error(void) { return imf_errmsg; }
const char *imf_err_reason(void) { return err.reason; }
const char *imf_err_advice(void) { return err.advice; }

void imf_err_clear(void) {
  memset(&err, 0, sizeof err);
  err.rank = -1;
  imf_errmsg[0] = '\0';
}

void imf_err_set_advice(const char *fmt, ...) {
  char advice[sizeof err.advice];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(advice, sizeof advice, fmt, ap);
  va_end(ap);
  memcpy(err.advice, advice, sizeof advice);
  compose();
}

imf_status imf_err_raise(imf_status code, const char *file, int line, const char *fmt, ...) {
  const char *base = strrchr(file, '/');
  base = base ? base + 1 : file;
  char reason[IMF_ERRMSG]; /* formatted first: the arguments may quote the previous error */
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(reason, sizeof reason, fmt, ap);
  va_end(ap);
  imf_err_clear();
  memcpy(err.reason, reason, sizeof reason);
  snprintf(err.where, sizeof err.where, "%s:%d", base, line);
  compose();
  return code;
}

imf_status imf_err_mpi(int rc, const char *file, int line, const char *what) {
  char s[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, s, &len) != MPI_SUCCESS) snprintf(s, sizeof s, "MPI error %d", rc);
  return imf_err_raise(IMF_ERR_RUNTIME, file, line, "MPI call failed: %s: %s", what, s);
}

imf_status imf_agree(MPI_Comm comm, imf_status local) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  if (size == 1) return local;
  /* Lowest failing rank wins: reduce (failed ? rank : size) with MIN. */
  int mine = local != IMF_OK ? rank : size, first = size;
  if (MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm) != MPI_SUCCESS) {
    MPI_Abort(comm, 1);
  }
  if (first == size) return IMF_OK;
  int code = (int)local;
  err_state e = err;
  MPI_Bcast(&code, 1, MPI_INT, first, comm);
  MPI_Bcast(&e, (int)sizeof e, MPI_BYTE, first, comm);
  e.reason[sizeof e.reason - 1] = e.advice[sizeof e.advice - 1] = e.where[sizeof e.where - 1] = '\0';
  err = e;
  /* name the failing rank once, however many agreements the error passes through (a reason
   * that quotes an earlier agreed error names its rank already) */
  if (err.rank < 0) {
    compose();
    if (!strstr(imf_errmsg, " [rank ")) err.rank = first;
  }
  compose();
  return (imf_status)code;
}

imf_status imf_mul_size(size_t a, size_t b, size_t *out) {
  if (a != 0 && b > SIZE_MAX / a)
    IMF_FAIL(IMF_ERR_NOMEM, "size overflow: %zu x %zu elements", a, b);
  *out = a * b;
  return IMF_OK;
}

/* Transparent huge pages, and for which buffers (IMF_HUGE_PAGES = hot | all | off; default hot).
 * A huge page cuts the TLB misses of an array swept many times (the training CSR and factors),
 * but its first touch can cost far more than 4 KiB pages on a virtual machine whose host took
 * back the free 2 MiB blocks, and a buffer filled once and freed gains nothing from it; hence
 * huge pages only for the hot arrays by default (measurements: docs/DESIGN.md, "Huge pages"). */
#define IMF_HUGE_BYTES ((size_t)8 << 20)
#define IMF_HUGE_ALIGN ((size_t)2 << 20)

/* 0 off, 1 hot, 2 all; -1: a value that is none of them (hot is used; the CLI warns) */
static int huge_setting(void) {
  const char *e = getenv("IMF_HUGE_PAGES");
  return !e || !*e || strcmp(e, "hot") == 0 ? 1 : strcmp(e, "all") == 0 ? 2 : strcmp(e, "off") == 0 ? 0 : -1;
}

static int huge_mode(void) {
  static int mode = -1;
  if (mode < 0) mode = huge_setting() < 0 ? 1 : huge_setting();
  return mode;
}

const char *imf_huge_pages_advice(void) {
  return huge_setting() < 0 ? "IMF_HUGE_PAGES is not hot, all or off: using hot" : NULL;
}

static void *big_alloc(size_t bytes, int hot) {
  void *p = NULL;
  if (posix_memalign(&p, IMF_HUGE_ALIGN, bytes) != 0) return NULL;
#ifdef MADV_HUGEPAGE
  if (huge_mode() > (hot ? 0 : 1)) madvise(p, bytes, MADV_HUGEPAGE);
#endif
  return p;
}

static imf_status alloc_nz(void *pptr, size_t n, size_t size, int hot) {
  size_t bytes;
  IMF_CHECK(imf_mul_size(n, size, &bytes));
  size_t rounded = (bytes + 63) & ~(size_t)63;
  if (rounded < bytes) IMF_FAIL(IMF_ERR_NOMEM, "size overflow: %zu bytes", bytes);
  if (rounded == 0) rounded = 64;
  void *p = rounded >= IMF_HUGE_BYTES ? big_alloc(rounded, hot) : aligned_alloc(64, rounded);
  if (!p) IMF_FAIL(IMF_ERR_NOMEM, "out of memory allocating %zu bytes", bytes);
  *(void **)pptr = p;
  return IMF_OK;
}

imf_status imf_alloc_nz(void *pptr, size_t n, size_t size) { return alloc_nz(pptr, n, size, 0); }

static imf_status alloc_zeroed(void *pptr, size_t n, size_t size, int hot) {
  IMF_CHECK(alloc_nz(pptr, n, size, hot));
  size_t bytes = n * size;
  memset(*(void **)pptr, 0, bytes ? bytes : 1);
  return IMF_OK;
}

imf_status imf_alloc(void *pptr, size_t n, size_t size) { return alloc_zeroed(pptr, n, size, 0); }

imf_status imf_alloc_hot(void *pptr, size_t n, size_t size) { return alloc_zeroed(pptr, n, size, 1); }

imf_status imf_realloc(void *pptr, size_t n, size_t size) {
  size_t bytes;
  IMF_CHECK(imf_mul_size(n, size, &bytes));
  if (bytes >= IMF_HUGE_BYTES && huge_mode() == 2) {
    /* grow into a huge-page buffer (see big_alloc); the old contents are copied (otherwise
     * realloc moves the pages without copying them) */
    void *old = *(void **)pptr;
    size_t have = old ? malloc_usable_size(old) : 0;
    void *p = big_alloc(bytes, 0);
    if (!p) IMF_FAIL(IMF_ERR_NOMEM, "out of memory growing a buffer to %zu bytes", bytes);
    if (old) memcpy(p, old, have < bytes ? have : bytes);
    free(old);
    *(void **)pptr = p;
    return IMF_OK;
  }
  void *p = realloc(*(void **)pptr, bytes ? bytes : 1);
  if (!p) IMF_FAIL(IMF_ERR_NOMEM, "out of memory growing a buffer to %zu bytes", bytes);
  *(void **)pptr = p;
  return IMF_OK;
}

void imf_free(void *pptr) {
  void **p = (void **)pptr;
  free(*p);
  *p = NULL;
}
