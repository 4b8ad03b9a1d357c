/* bench_ease.c - seconds and GFLOP/s of the EASE solve (ease.h): pdpotrf + pdpotri on the BLACS
 * grid of the ranks it runs on, and on one rank also LAPACKE dpotrf + dpotri on the same G for
 * comparison. G = X^T X + lambda I of a random binary X (2n users x n items, 2% dense): the
 * Cholesky factorisation costs n^3/3 flops and the inverse from it 2n^3/3, n^3 in all.
 * Usage: mpirun -n P bench_ease N [LAMBDA]   (driven by bench_ease.sh) */
#include "ease.h"
#include "split.h"

#include <lapacke.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  int64_t n = argc > 1 ? atoll(argv[1]) : 2000, nu = 2 * n;
  double lambda = argc > 2 ? atof(argv[2]) : 100.0, dens = 0.02;
  int64_t lo, hi;
  imf_user_range(MPI_COMM_WORLD, nu, &lo, &hi);
  imf_ratings r = {0};
  for (int64_t u = lo; u < hi; u++)
    for (int64_t i = 0; i < n; i++)
      if (imf_split_u01(11, u, i) < dens) imf_ratings_push(&r, (int32_t)u, (int32_t)i, 1.0f, IMF_NO_TIME);
  imf_ease *e = NULL;
  if (imf_ease_fit(MPI_COMM_WORLD, &r, n, lambda, &e) != IMF_OK) {
    fprintf(stderr, "bench_ease: EASE fit failed\n");
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  double ta, tf, ti;
  int pr, pc;
  imf_ease_times(e, &ta, &tf, &ti);
  imf_ease_grid(e, &pr, &pc);
  double flops = (double)n * (double)n * (double)n;
  if (rank == 0)
    printf("%-9s %6lld %5d %3dx%-3d %9.3f %9.3f %9.3f %9.2f\n", "scalapack", (long long)n, size, pr, pc, ta, tf + ti,
           tf + ti + ta, flops / (tf + ti) / 1e9);
  imf_ease_destroy(&e);
  if (size == 1) {
    /* the same G, serial: assemble from the same ratings, dpotrf + dpotri */
    double *g = calloc((size_t)(n * n), sizeof *g);
    int64_t a = 0;
    double t0 = MPI_Wtime();
    while (a < r.n) {
      int64_t b = a;
      while (b < r.n && r.user[b] == r.user[a]) b++;
      for (int64_t x = a; x < b; x++)
        for (int64_t y = a; y < b; y++) g[(int64_t)r.item[x] * n + r.item[y]] += 1.0;
      a = b;
    }
    for (int64_t i = 0; i < n; i++) g[i * n + i] += lambda;
    double t1 = MPI_Wtime();
    int i1 = LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', (int)n, g, (int)n);
    int i2 = LAPACKE_dpotri(LAPACK_COL_MAJOR, 'L', (int)n, g, (int)n);
    double t2 = MPI_Wtime();
    if (i1 || i2) fprintf(stderr, "bench_ease: LAPACKE info %d %d\n", i1, i2);
    printf("%-9s %6lld %5d %7s %9.3f %9.3f %9.3f %9.2f\n", "lapacke", (long long)n, 1, "-", t1 - t0, t2 - t1, t2 - t0,
           flops / (t2 - t1) / 1e9);
    free(g);
  }
  imf_ratings_free(&r);
  MPI_Finalize();
  return 0;
}
