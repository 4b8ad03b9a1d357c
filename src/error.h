/* error.h - one error style for all of incremf (after PETSc's CHKERRQ discipline).
 *
 * Every fallible function returns imf_status. The error state of this rank holds the reason, the
 * place it was raised (file:line), and optionally advice to the user (what to do about it);
 * imf_last_error() shows them as "reason (advice) (file.c:line)". Before any collective that
 * follows rank-local work, ranks call imf_agree() so that one rank's failure becomes every rank's
 * failure, carrying the failing rank's error — nobody is left waiting in a collective.
 *
 * Which macro where:
 *   IMF_FAIL(code, fmt, ...)      record and return: functions with nothing to clean up
 *   IMF_CHECK(expr)               propagate a callee's failure: same
 *   IMF_MPI(call)                 an MPI call whose failure returns: same
 *   IMF_RAISE(code, fmt, ...)     record, evaluate to code, do not return:
 *                                   st = IMF_RAISE(IMF_ERR_INPUT, "..."); goto fail;
 *   IMF_TRY(expr, label)          st = expr; on failure jump to the cleanup label
 *   IMF_MPI_TRY(call, label)      an MPI call; on failure st = the recorded error, jump to label
 *   IMF_MPI_RAISE(rc, "what")     record a failed MPI call's code, do not return
 * A function with a cleanup label uses only the last three (tests/check_errors.sh enforces it),
 * so no failure path skips the cleanup.
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
/* Clear the recorded error and its advice (after it was handled). */
void imf_err_clear(void);
/* Advice to the user for the error just raised (e.g. "restore an earlier version with `incremf
 * rollback`"): shown in imf_last_error() between the reason and the place, and readable on its
 * own, so a caller that handles the error can drop or replace the advice without parsing text.
 * Raising an error clears the advice; set it after IMF_RAISE. */
void imf_err_set_advice(const char *fmt, ...) IMF_PRINTF(1, 2);
/* The advice of the recorded error ("" if none). */
const char *imf_err_advice(void);
/* The reason of the recorded error alone: no advice, no file:line, no failing rank. */
const char *imf_err_reason(void);

/* Record an error without returning; the expression is `code`. */
#define IMF_RAISE(code, ...) imf_err_raise((code), __FILE__, __LINE__, __VA_ARGS__)
#define IMF_FAIL(code, ...) return IMF_RAISE((code), __VA_ARGS__)
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
/* For cleanup paths: an MPI call whose failure records into a local `st` and jumps to a label
 * (main sets MPI_ERRORS_RETURN, so MPI calls do return errors). */
#define IMF_MPI_TRY(call, label)                                                              \
  do {                                                                                        \
    int imf_mpi_rc_ = (call);                                                                 \
    if (imf_mpi_rc_ != MPI_SUCCESS) {                                                         \
      st = imf_err_mpi(imf_mpi_rc_, __FILE__, __LINE__, #call);                               \
      goto label;                                                                             \
    }                                                                                         \
  } while (0)
imf_status imf_err_mpi(int rc, const char *file, int line, const char *what);
/* Record a failed MPI call's return code rc without returning; the expression is the status. */
#define IMF_MPI_RAISE(rc, what) imf_err_mpi((rc), __FILE__, __LINE__, (what))

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
