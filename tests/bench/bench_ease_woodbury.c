/* bench_ease_woodbury.c - the crossover between the two ways an EASE update re-solves
 * (update.c, ease_build): a refactorisation (Gram assembled from the new X rows, pdpotrf +
 * pdpotri, B formed, P kept: what the update does when the change's rank is large) against a
 * low-rank Woodbury update of the stored P (imf_ease_woodbury + imf_ease_b_from_p) for r changed
 * users (each an existing user gaining 5 items: rank 2r). X: 2n users x n items, 2% dense, as
 * bench_ease. Also prints the largest relative difference of B between the two (it bounds the
 * rounding of the low-rank path). Columns: items ranks r rank refactor_s woodbury_s ratio
 * maxrel_B. Usage: mpirun -n P bench_ease_woodbury N "R1 R2 ..."   (bench_ease_update.sh) */
#include "ease.h"
#include "log.h"
#include "split.h"

#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(const char *what) {
  fprintf(stderr, "bench_ease_woodbury: %s failed\n", what);
  MPI_Abort(MPI_COMM_WORLD, 1);
}

int main(int argc, char **argv) {
  imf_preinit();
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  int64_t n = argc > 1 ? atoll(argv[1]) : 2000, nu = 2 * n;
  const char *rs = argc > 2 ? argv[2] : "10 50 100 250 500";
  double lambda = 100.0, dens = 0.02;
  int64_t lo, hi;
  imf_user_range(MPI_COMM_WORLD, nu, &lo, &hi);
  /* X rows of this rank's users, and the grown rows (users u < r * size... chosen below) */
  int64_t nl = hi - lo, *op = calloc((size_t)nl + 1, sizeof *op);
  int32_t *oi = malloc((size_t)(nl * n / 20 + n + 1) * sizeof *oi);
  for (int64_t u = lo; u < hi; u++) {
    int64_t w = op[u - lo];
    for (int64_t i = 0; i < n; i++)
      if (imf_split_u01(11, u, i) < dens) oi[w++] = (int32_t)i;
    op[u - lo + 1] = w;
  }
  /* the champion's P (kept as the update does, on the 1 x P grid the update reads it on) */
  imf_ease *e = NULL;
  if (imf_ease_create(MPI_COMM_WORLD, n, lambda, IMF_EASE_GRID_COLUMNS, &e) != IMF_OK ||
      imf_ease_add_rows(e, nl, op, oi) != IMF_OK || imf_ease_solve_p(e, 0, 1) != IMF_OK)
    die("the champion's fit");
  imf_ease_layout L;
  imf_ease_get_layout(e, &L);
  size_t cells = (size_t)L.lld * (size_t)(L.nloc > 0 ? L.nloc : 1);
  double *P0 = malloc(cells * sizeof *P0), *Bw = malloc(cells * sizeof *Bw);
  memcpy(P0, imf_ease_p(e), cells * sizeof *P0);
  char *list = strdup(rs);
  for (char *tok = strtok(list, " ,"); tok; tok = strtok(NULL, " ,")) {
    int64_t r = atoll(tok);
    /* users 0, 2, 4, ... (2r of them, every other one) gain 5 items each: the changed rows */
    int64_t nr = 0, *cop = calloc((size_t)nl + 1, sizeof *cop), *cnp = calloc((size_t)nl + 1, sizeof *cnp);
    int32_t *coi = malloc((size_t)(op[nl] + 1) * sizeof *coi), *cni = malloc((size_t)(op[nl] + 5 * nl + 1) * sizeof *cni);
    int64_t *fp = calloc((size_t)nl + 1, sizeof *fp);
    int32_t *fi = malloc((size_t)(op[nl] + 5 * nl + 1) * sizeof *fi);
    for (int64_t u = lo; u < hi; u++) {
      const int32_t *row = oi + op[u - lo];
      int64_t len = op[u - lo + 1] - op[u - lo], w = fp[u - lo];
      int changed = u % 2 == 0 && u / 2 < r;
      char *mark = calloc((size_t)n, 1);
      for (int64_t q = 0; q < len; q++) mark[row[q]] = 1;
      for (int k = 0; changed && k < 5; k++) mark[(int64_t)(imf_split_u01(13, u, (uint64_t)k) * (double)n)] = 1;
      for (int64_t i = 0; i < n; i++)
        if (mark[i]) fi[w++] = (int32_t)i;
      fp[u - lo + 1] = w;
      free(mark);
      if (!changed) continue;
      memcpy(coi + cop[nr], row, (size_t)len * sizeof *coi);
      memcpy(cni + cnp[nr], fi + fp[u - lo], (size_t)(w - fp[u - lo]) * sizeof *cni);
      cop[nr + 1] = cop[nr] + len;
      cnp[nr + 1] = cnp[nr] + (w - fp[u - lo]);
      nr++;
    }
    /* Woodbury on a copy of the champion's P */
    memcpy(imf_ease_p(e), P0, cells * sizeof *P0);
    int64_t m = 0;
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    if (imf_ease_woodbury(e, lo, nr, cop, coi, cnp, cni, &m) != IMF_OK || imf_ease_b_from_p(e) != IMF_OK)
      die("woodbury");
    MPI_Barrier(MPI_COMM_WORLD);
    double tw = MPI_Wtime() - t0;
    memcpy(Bw, imf_ease_b(e), cells * sizeof *Bw);
    /* refactorisation from the new rows, on the solve's grid (what update does) */
    imf_ease *f = NULL;
    MPI_Barrier(MPI_COMM_WORLD);
    t0 = MPI_Wtime();
    if (imf_ease_create(MPI_COMM_WORLD, n, lambda, IMF_EASE_GRID_SQUARE, &f) != IMF_OK ||
        imf_ease_add_rows(f, nl, fp, fi) != IMF_OK || imf_ease_solve_p(f, 0, 1) != IMF_OK)
      die("refactor");
    MPI_Barrier(MPI_COMM_WORLD);
    double tr = MPI_Wtime() - t0;
    /* the difference of B (both grids are 1 x P at 1 and 2 ranks, prime counts: same layout) */
    imf_ease_layout Lf;
    imf_ease_get_layout(f, &Lf);
    double md[2] = {0, 0};
    if (Lf.nprow == L.nprow && Lf.nloc == L.nloc) {
      const double *Bf = imf_ease_b(f);
      for (size_t c = 0; c < cells; c++) {
        md[0] = fmax(md[0], fabs(Bf[c] - Bw[c]));
        md[1] = fmax(md[1], fabs(Bf[c]));
      }
    }
    MPI_Allreduce(MPI_IN_PLACE, md, 2, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    if (rank == 0)
      printf("%6lld %5d %6lld %6lld %10.3f %10.3f %7.3f %10.2e\n", (long long)n, size, (long long)r, (long long)m, tr,
             tw, tw / tr, md[1] > 0 ? md[0] / md[1] : NAN);
    fflush(stdout);
    imf_ease_destroy(&f);
    free(cop), free(cnp), free(coi), free(cni), free(fp), free(fi);
  }
  free(list);
  free(P0), free(Bw), free(op), free(oi);
  imf_ease_destroy(&e);
  MPI_Finalize();
  return 0;
}
