/* testutil.h - helpers shared by the tests: scratch directories, paths to test data, and
 * running the incremf binary. */
#ifndef IMF_TESTUTIL_H
#define IMF_TESTUTIL_H
#include <stddef.h>
/* A fresh empty directory under $TMPDIR (or /tmp); the same path on every rank when called
 * after MPI_Init (rank 0 creates it and broadcasts). Returned string is static per call. */
const char *tu_tmpdir(const char *tag);
/* Path of a file in tests/data (IMF_TEST_DATA) or ../shared/data (IMF_SHARED_DATA); NULL when
 * the shared data set is absent (the caller skips). */
const char *tu_test_data(const char *name);
const char *tu_shared_data(const char *relpath);
/* Write a string to a file; returns 0 on success. */
int tu_write_file(const char *path, const char *text);
/* Read a whole file (malloc'd, NUL-terminated); NULL on failure. */
char *tu_read_file(const char *path, size_t *len);
#endif
