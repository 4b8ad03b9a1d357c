/* testutil.c - see testutil.h. */
#include "testutil.h"
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *tu_tmpdir(const char *tag) {
  static char bufs[8][512];
  static int next = 0;
  char *buf = bufs[next++ % 8];
  int inited = 0, rank = 0;
  MPI_Initialized(&inited);
  if (inited) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank == 0) {
    const char *t = getenv("TMPDIR");
    snprintf(buf, 512, "%s/imf-%s-XXXXXX", t && *t ? t : "/tmp", tag);
    if (!mkdtemp(buf)) {
      perror("mkdtemp");
      abort();
    }
  }
  if (inited) MPI_Bcast(buf, 512, MPI_CHAR, 0, MPI_COMM_WORLD);
  return buf;
}

const char *tu_test_data(const char *name) {
  static char buf[4][1024];
  static int next = 0;
  char *b = buf[next++ % 4];
  const char *d = getenv("IMF_TEST_DATA");
  snprintf(b, 1024, "%s/%s", d ? d : "tests/data", name);
  return b;
}

const char *tu_shared_data(const char *rel) {
  static char buf[4][1024];
  static int next = 0;
  char *b = buf[next++ % 4];
  const char *d = getenv("IMF_SHARED_DATA");
  snprintf(b, 1024, "%s/%s", d ? d : "../shared/data", rel);
  return access(b, R_OK) == 0 ? b : NULL;
}

int tu_write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  size_t n = strlen(text);
  int ok = fwrite(text, 1, n, f) == n;
  return (fclose(f) == 0 && ok) ? 0 : -1;
}

char *tu_read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *b = malloc((size_t)n + 1);
  if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
    free(b);
    b = NULL;
  }
  fclose(f);
  if (b) {
    b[n] = '\0';
    if (len) *len = (size_t)n;
  }
  return b;
}
