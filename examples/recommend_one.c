/* recommend_one.c - embedding libincremf (include/incremf.h): open the current version of a
 * model directory with the store it was trained on, print a user's top N (the lines `incremf
 * recommend --user ID --top N` prints), the predicted score of the first of them, and, given a
 * test file, the model's RMSE, MAE and NDCG@N on it (`incremf evaluate --test FILE --k N`).
 *
 *   recommend_one MODEL_DIR STORE_DIR USER [TOP [TEST_FILE]]
 *
 * Build against an installed incremf with pkg-config
 *   cc recommend_one.c $(pkg-config --cflags --libs incremf) -o recommend_one
 * or with CMake (examples/CMakeLists.txt: find_package(incremf)). Runs on one rank or under
 * mpirun: every call below is collective and every rank gets the answer; rank 0 prints.
 * Exit status: imf_exit_code of the first failure (3: unknown user, missing model, ...). */
#include <incremf.h>
#include <stdio.h>
#include <stdlib.h>

static int fail(const char *what, imf_status st) {
  fprintf(stderr, "recommend_one: %s: %s\n", what, imf_last_error());
  return imf_exit_code(st);
}

static int run(MPI_Comm comm, int rank, int argc, char **argv) {
  const char *model_dir = argv[1], *store_dir = argv[2], *user = argv[3];
  int top = argc > 4 ? atoi(argv[4]) : 5;
  const char *test = argc > 5 ? argv[5] : NULL;
  imf_model_handle *h = NULL;
  imf_status st = imf_model_open(comm, NULL, model_dir, store_dir, 0, &h); /* NULL: default config */
  if (st != IMF_OK) return fail("open", st);
  imf_model_info info;
  imf_model_describe(h, &info);
  if (rank == 0)
    printf("# %s version %lld: %lld users, %lld items, k = %d\n", info.type, (long long)info.version,
           (long long)info.users, (long long)info.items, info.k);
  imf_recommendation *recs = calloc((size_t)(top > 0 ? top : 1), sizeof *recs);
  int n = 0;
  st = recs ? imf_model_recommend(h, user, top, 0, recs, &n, NULL) : IMF_ERR_NOMEM;
  int rc = 0;
  if (st != IMF_OK) rc = fail("recommend", st);
  for (int j = 0; rc == 0 && j < n; j++)
    if (rank == 0) printf("%d\t%s\t%.6g\n", j + 1, recs[j].item, recs[j].score); /* as the CLI prints */
  if (rc == 0 && n > 0) {
    double s;
    st = imf_model_score(h, user, recs[0].item, &s);
    if (st != IMF_OK) rc = fail("score", st);
    else if (rank == 0) printf("score\t%s\t%s\t%.6g\n", user, recs[0].item, s);
  }
  if (rc == 0 && test) {
    imf_model_eval e;
    st = imf_model_evaluate(h, test, top, &e);
    if (st != IMF_OK) rc = fail("evaluate", st);
    else if (rank == 0)
      printf("eval\tn=%lld\trmse=%.6g\tmae=%.6g\tndcg@%d=%.6g\n", (long long)e.n_ratings, e.rmse, e.mae, e.k, e.ndcg);
  }
  free(recs);
  imf_model_close(&h);
  return rc;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: recommend_one MODEL_DIR STORE_DIR USER [TOP [TEST_FILE]]\n");
    return 2;
  }
  imf_preinit();
  MPI_Init(&argc, &argv);
  int rank, rc;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  imf_status st = imf_initialize(MPI_COMM_WORLD);
  rc = st == IMF_OK ? run(MPI_COMM_WORLD, rank, argc, argv) : fail("initialize", st);
  MPI_Finalize();
  return rc;
}
