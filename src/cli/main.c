/* main.c - the incremf executable: MPI setup, subcommand dispatch and exit codes. Thin by
 * design: every subcommand lives in its own file and only calls libincremf. */
#include "cli.h"
#include <stdlib.h>
#include <string.h>

static const imf_command COMMANDS[] = {
    {"synth", "generate a synthetic rating data set", IMF_USAGE_SYNTH, imf_cmd_synth},
    {"prepare", "ingest and clean a rating file into a new data store", IMF_USAGE_PREPARE, imf_cmd_prepare},
    {"append", "add a new batch of ratings to a data store", IMF_USAGE_APPEND, imf_cmd_append},
    {"inspect", "show what a data store or model checkpoint holds", IMF_USAGE_INSPECT, imf_cmd_inspect},
    {"train", "train a model (ALS, implicit ALS, BPMF, EASE; pop/bias baselines) on a store", IMF_USAGE_TRAIN, imf_cmd_train},
    {"update", "fold new batches into the current model; promote only if not worse", IMF_USAGE_UPDATE, imf_cmd_update},
    {"evaluate", "rating and ranking metrics, split protocols, cross-validation", IMF_USAGE_EVALUATE, imf_cmd_evaluate},
    {"recommend", "top-N items for a user or for everyone; similar items", IMF_USAGE_RECOMMEND, imf_cmd_recommend},
    {"status", "model versions, lineage and drift; --check for cron", IMF_USAGE_STATUS, imf_cmd_status},
    {"rollback", "make an earlier model version current", IMF_USAGE_ROLLBACK, imf_cmd_rollback},
    {"prune", "delete old model versions", IMF_USAGE_PRUNE, imf_cmd_prune},
    {"forget", "remove a user's ratings and factors (right to be forgotten)", IMF_USAGE_FORGET, imf_cmd_forget},
    {"tune", "hyperparameter search with cross-validation over rank groups", IMF_USAGE_TUNE, imf_cmd_tune},
};
#define NCOMMANDS (sizeof COMMANDS / sizeof COMMANDS[0])
static void usage(FILE *out) {
  fprintf(out,
          "usage: incremf COMMAND [options]   (under mpirun -n P, or as a plain process)\n\n"
          "commands:\n");
  for (size_t i = 0; i < NCOMMANDS; i++) fprintf(out, "  %-10s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
  fprintf(out, "  %-10s %s\n", "help", "this text; `incremf help config` lists every config key");
  fprintf(out,
          "\ncommon options: --config FILE.ini, --set section.key=value (repeatable; wins over the\n"
          "file), --quiet, --log-format text|json, --help\n"
          "exit codes: 0 ok, 1 runtime error, 2 usage, 3 bad input, 4 locked, 5 stale/drifting,\n"
          "75 stopped by a signal after a checkpoint (requeue)\n");
}

/* Every rank leaves with the same code: that of the lowest rank that failed (commands agree on
 * their errors already; this covers a code decided on one rank alone). A rank whose failure rank 0
 * did not report says so itself. The agreement cannot fail quietly: a dead rank takes the job
 * down through the launcher. */
static int agree_exit(imf_cli *cli, const char *cmd, int rc) {
  if (cli->size == 1) return rc;
  int mine = rc != 0 ? cli->rank : cli->size, first = cli->size, code = rc;
  if (MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, cli->comm) != MPI_SUCCESS) return rc;
  if (first == cli->size) return 0;
  if (MPI_Bcast(&code, 1, MPI_INT, first, cli->comm) != MPI_SUCCESS) return rc;
  if (cli->rank == first && first != 0)
    fprintf(stderr, "incremf %s: error: rank %d failed with exit code %d: %s\n", cmd, first, rc, imf_last_error());
  return code;
}

int main(int argc, char **argv) {
  /* help, --version, an unknown command or flag: answered without starting MPI (early.c) */
  int early = imf_cli_early(argc, argv, COMMANDS, NCOMMANDS, usage);
  if (early >= 0) return early;
  int provided;
  imf_preinit();
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  imf_cli cli = {.comm = MPI_COMM_WORLD};
  MPI_Comm_rank(cli.comm, &cli.rank);
  MPI_Comm_size(cli.comm, &cli.size);
  /* Errors are agreed by imf_agree and returned, not fatal in MPI's default handler (MPI_Abort
   * only where ranks cannot agree: a failed agreement) */
  MPI_Comm_set_errhandler(cli.comm, MPI_ERRORS_RETURN);
  imf_log_setup(cli.rank, 0, IMF_LOG_TEXT);
  int rc = 0;
  const imf_command *cmd = NULL;
  for (size_t i = 0; i < NCOMMANDS; i++)
    if (!strcmp(argv[1], COMMANDS[i].name)) cmd = &COMMANDS[i];
  if (!cmd) { /* imf_cli_early answers anything else */
    MPI_Finalize();
    return 2;
  }
  imf_status st = imf_config_create(&cli.cfg);
  if (st == IMF_OK) st = imf_initialize(cli.comm);
  int help = 0;
  int sargc = argc - 1;
  char **sargv = argv + 1;
  if (st == IMF_OK) st = imf_cli_common(&cli, &sargc, sargv, &help);
  if (st != IMF_OK) {
    rc = imf_cli_fail(&cli, cmd->name, st);
  } else if (help) {
    if (cli.rank == 0) fputs(cmd->usage, stdout);
  } else {
    imf_info("incremf %s on %d rank%s: %s", cmd->name, cli.size, cli.size == 1 ? "" : "s", imf_build_info());
    const char *advice = imf_blas_core_advice();
    if (advice && !imf_log_quiet()) imf_warn("%s", advice); /* advice, not an error: --quiet hides it */
    if (imf_huge_pages_advice()) imf_warn("%s", imf_huge_pages_advice());
    rc = cmd->run(&cli, sargc, sargv);
  }
  rc = agree_exit(&cli, cmd->name, rc);
  imf_config_destroy(&cli.cfg);
  MPI_Finalize();
  return rc;
}
