/* error.h - one error style for all of incremf (after PETSc's CHKERRQ discipline).
 *
 * Every fallible function returns imf_status. IMF_FAIL records "file:line: reason" on this rank
 * and returns the code; IMF_CHECK propagates a failure from a callee. Before any collective that
 * follows rank-local work, ranks call imf_agree() so that one rank's failure becomes every rank's
 * failure, carrying the failing rank's message — nobody is left waiting in a collective.
 */
#ifndef IMF_ERROR_H
#define IMF_ERROR_H

#include "incremf.h"
#include <stddef.h>

#if defined(__GNUC__)
#define IMF_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define IMF_PRINTF(a, b)
#endif

imf_status imf_err_raise(imf_status code, const char *file, int line, const char *fmt, ...)
    IMF_PRINTF(4, 5);
/* Clear the recorded error (after it was handled). */
void imf_err_clear(void);

#define IMF_FAIL(code, ...) return imf_err_raise((code), __FILE__, __LINE__, __VA_ARGS__)
#define IMF_CHECK(expr)                                                                       \
  do {                                                                                        \
    imf_status imf_check_s_ = (expr);                                                         \
    if (imf_check_s_ != IMF_OK) return imf_check_s_;                                          \
  } while (0)
/* For cleanup paths: record the status into a local `st` and jump to a label. */
#define IMF_TRY(expr, label)                                                                  \
  do {                                                                                        \
    st = (expr);                                                                              \
    if (st != IMF_OK) goto label;                                                             \
  } while (0)
#define IMF_MPI(call)                                                                         \
  do {                                                                                        \
    int imf_mpi_rc_ = (call);                                                                 \
    if (imf_mpi_rc_ != MPI_SUCCESS) return imf_err_mpi(imf_mpi_rc_, __FILE__, __LINE__, #call); \
  } while (0)
imf_status imf_err_mpi(int rc, const char *file, int line, const char *what);

/* Collective: every rank passes its local status; all return the same status. If any rank
 * failed, the message of the lowest failing rank becomes every rank's last error. */
imf_status imf_agree(MPI_Comm comm, imf_status local);

/* Overflow-checked size arithmetic: fail with IMF_ERR_NOMEM on overflow. */
imf_status imf_mul_size(size_t a, size_t b, size_t *out);
/* malloc/calloc/realloc that fail with a recorded message instead of returning NULL silently.
 * Buffers are 64-byte aligned (imf_alloc) so BLAS and vector loops run at full speed. */
imf_status imf_alloc(void *pptr, size_t n, size_t size);   /* *(void**)pptr = aligned, zeroed */
imf_status imf_alloc_nz(void *pptr, size_t n, size_t size); /* aligned, not zeroed: for buffers
                                                              the caller fills completely */
/* A warning when IMF_HUGE_PAGES (hot | all | off, error.c) holds another value; NULL if not. */
const char *imf_huge_pages_advice(void);
imf_status imf_alloc_hot(void *pptr, size_t n, size_t size); /* zeroed, on huge pages: for arrays
                                                               swept many times (error.c) */
imf_status imf_realloc(void *pptr, size_t n, size_t size); /* not aligned beyond malloc's */
void imf_free(void *pptr);                                 /* frees *(void**)pptr, sets NULL */

#endif
