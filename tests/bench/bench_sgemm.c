/* bench_sgemm.c - the practical single-core limit the other benchmarks compare against:
 * OpenBLAS sgemm GFLOP/s on n x n x n (default 1024), median of 5, one thread.
 * Usage: bench_sgemm [n] ; prints "sgemm_gflops <value>". */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 1024;
  openblas_set_num_threads(1);
  float *a = aligned_alloc(64, sizeof(float) * (size_t)n * (size_t)n);
  float *b = aligned_alloc(64, sizeof(float) * (size_t)n * (size_t)n);
  float *c = aligned_alloc(64, sizeof(float) * (size_t)n * (size_t)n);
  for (size_t i = 0; i < (size_t)n * (size_t)n; i++) {
    a[i] = (float)(i % 7) * 0.1f;
    b[i] = (float)(i % 5) * 0.2f;
  }
  double g[5];
  for (int r = 0; r < 5; r++) {
    double t0 = now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    g[r] = 2.0 * n * (double)n * n / (now() - t0) / 1e9;
  }
  qsort(g, 5, sizeof g[0], cmp);
  printf("sgemm_gflops %.1f\n", g[2]);
  free(a);
  free(b);
  free(c);
  return c == NULL;
}
