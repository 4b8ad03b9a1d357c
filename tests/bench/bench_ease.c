/* bench_ease.c - seconds and GFLOP/s of the EASE solve (ease.h): pdpotrf + pdpotri on the BLACS
 * grid of the ranks it runs on, and in the same run LAPACKE dpotrf + dpotri of the same G on rank
 * 0 alone (the others wait), for comparison. G = X^T X + lambda I of a random binary X (2n users
 * x n items, 2% dense): the Cholesky factorisation costs n^3/3 flops and the inverse from it
 * 2n^3/3, n^3 in all. The solve keeps the Gram matrix, as train does (it is stored with the
 * version): peak memory is three local matrices, 24 n^2 / P bytes per rank. Also timed: an
 * incremental update of the Gram matrix (1% of the users gain one item: imf_ease_add_delta).
 * Columns: solver items ranks grid assemble_s solve_s solve_GFLOP/s delta_s delta_entries
 * peak_MB/rank (max over ranks, after the solve).
 * Usage: mpirun -n P bench_ease N [LAMBDA]   (driven by bench_ease.sh) */
#include "ease.h"
#include "log.h"
#include "split.h"

#include <lapacke.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
  imf_preinit();
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
  /* what train does: Gram kept (it is stored with the version), B formed next to it */
  imf_ease *e = NULL;
  if (imf_ease_create(MPI_COMM_WORLD, n, lambda, IMF_EASE_GRID_SQUARE, &e) != IMF_OK ||
      imf_ease_add_ratings(e, &r) != IMF_OK || imf_ease_solve(e, 1) != IMF_OK) {
    fprintf(stderr, "bench_ease: EASE fit failed\n");
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  double ta, tf, ti;
  int pr, pc;
  imf_ease_times(e, &ta, &tf, &ti);
  imf_ease_grid(e, &pr, &pc);
  int64_t rss = imf_peak_rss(), peak = 0;
  MPI_Reduce(&rss, &peak, 1, MPI_INT64_T, MPI_MAX, 0, MPI_COMM_WORLD);
  /* an incremental update: 1% of the users gain one item each (ease.h, imf_ease_add_delta) */
  int64_t nr = 0, *op = calloc((size_t)(hi - lo + 1), sizeof *op), *np = calloc((size_t)(hi - lo + 1), sizeof *np);
  int32_t *oi = calloc((size_t)(r.n + 1), sizeof *oi), *ni = calloc((size_t)(r.n + hi - lo + 1), sizeof *ni);
  for (int64_t a = 0, j = 0; a < r.n; a = j) {
    int64_t u = r.user[a];
    for (j = a; j < r.n && r.user[j] == u; j++) {
      oi[op[nr] + (j - a)] = r.item[j];
      ni[np[nr] + (j - a)] = r.item[j];
    }
    if (u % 100 != 0) continue;
    int64_t len = j - a, w = np[nr] + len;
    int32_t add = (int32_t)(imf_split_u01(12, u, 0) * (double)n);
    int have = 0;
    for (int64_t q = a; q < j; q++) have |= r.item[q] == add;
    if (have) continue;
    /* insert keeping the row ascending */
    int64_t q = w;
    while (q > np[nr] && ni[q - 1] > add) ni[q] = ni[q - 1], q--;
    ni[q] = add;
    op[nr + 1] = op[nr] + len;
    np[nr + 1] = w + 1;
    nr++;
  }
  int64_t entries = 0;
  MPI_Barrier(MPI_COMM_WORLD);
  double t0 = MPI_Wtime();
  if (imf_ease_add_delta(e, nr, op, oi, np, ni, &entries) != IMF_OK) MPI_Abort(MPI_COMM_WORLD, 1);
  MPI_Barrier(MPI_COMM_WORLD);
  double tdelta = MPI_Wtime() - t0;
  double flops = (double)n * (double)n * (double)n;
  if (rank == 0)
    printf("%-9s %6lld %5d %3dx%-3d %9.3f %9.3f %9.2f %10.3f %9lld %9.0f\n", "scalapack", (long long)n, size, pr, pc,
           ta, tf + ti, flops / (tf + ti) / 1e9, tdelta, (long long)entries, (double)peak / 1e6);
  imf_ease_destroy(&e);
  free(op), free(np), free(oi), free(ni);
  /* the same G, serial, in the same run: rank 0 assembles it from everyone's ratings, then
   * LAPACKE dpotrf + dpotri (the others wait) */
  int64_t cnt = r.n, *cnts = NULL;
  if (rank == 0) cnts = calloc((size_t)size, sizeof *cnts);
  MPI_Gather(&cnt, 1, MPI_INT64_T, cnts, 1, MPI_INT64_T, 0, MPI_COMM_WORLD);
  if (rank == 0) {
    double *g = calloc((size_t)(n * n), sizeof *g);
    for (int s = 0; s < size; s++) {
      imf_ratings part = {0};
      if (s == 0) part = r;
      else {
        imf_ratings_reserve(&part, cnts[s] + 1);
        MPI_Recv(part.user, (int)cnts[s], MPI_INT32_T, s, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        MPI_Recv(part.item, (int)cnts[s], MPI_INT32_T, s, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        part.n = cnts[s];
      }
      for (int64_t a = 0; a < part.n;) {
        int64_t b = a;
        while (b < part.n && part.user[b] == part.user[a]) b++;
        for (int64_t x = a; x < b; x++)
          for (int64_t y = a; y < b; y++) g[(int64_t)part.item[x] * n + part.item[y]] += 1.0;
        a = b;
      }
      if (s != 0) imf_ratings_free(&part);
    }
    for (int64_t i = 0; i < n; i++) g[i * n + i] += lambda;
    double t1 = MPI_Wtime();
    int i1 = LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', (int)n, g, (int)n);
    int i2 = LAPACKE_dpotri(LAPACK_COL_MAJOR, 'L', (int)n, g, (int)n);
    double t2 = MPI_Wtime();
    if (i1 || i2) fprintf(stderr, "bench_ease: LAPACKE info %d %d\n", i1, i2);
    printf("%-9s %6lld %5d %7s %9s %9.3f %9.2f %10s %9s %9s\n", "lapacke", (long long)n, 1, "-", "-", t2 - t1,
           flops / (t2 - t1) / 1e9, "-", "-", "-");
    fflush(stdout);
    free(g);
    free(cnts);
  } else {
    MPI_Send(r.user, (int)r.n, MPI_INT32_T, 0, 0, MPI_COMM_WORLD);
    MPI_Send(r.item, (int)r.n, MPI_INT32_T, 0, 1, MPI_COMM_WORLD);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  imf_ratings_free(&r);
  MPI_Finalize();
  return 0;
}
