/* cmd_status.c - `incremf status`: the model directory's lineage; --check for cron and Slurm. */
#include "cli.h"
#include "fsio.h"
#include "plot.h"
#include <stdio.h>
#include <unistd.h>
#include <string.h>

const char IMF_USAGE_STATUS[] =
    "usage: incremf status --model DIR [--data STORE] [--check] [--json] [--plot FILE.png]\n"
    "\n"
    "Print every version of DIR with its parent, strategy, decision, batches seen, the champion's\n"
    "and challenger's holdout RMSE, creation time and wall time (* marks the current version);\n"
    "--json prints one object whose \"versions\" array holds one entry per version.\n"
    "  --data STORE  the store to check staleness against (default: the one in the lineage)\n"
    "  --check       exit 5 when the current version is stale (STORE has batches it has not seen)\n"
    "                or drifting (the last update detected drift that no warm/retrain answered)\n";

int imf_cmd_status(imf_cli *cli, int argc, char **argv) {
  const char *store = NULL, *model = NULL, *plot = NULL;
  int check = 0;
  imf_status st = IMF_OK;
  for (int i = 1; i < argc && st == IMF_OK; i++) {
    if (!strcmp(argv[i], "--data")) st = imf_cli_value(argc, argv, &i, &store);
    else if (!strcmp(argv[i], "--model")) st = imf_cli_value(argc, argv, &i, &model);
    else if (!strcmp(argv[i], "--plot")) st = imf_cli_value(argc, argv, &i, &plot);
    else if (!strcmp(argv[i], "--check")) check = 1;
    else st = IMF_RAISE(IMF_ERR_USAGE, "unknown option '%s' (see incremf status --help)", argv[i]);
  }
  if (st == IMF_OK && !model) st = IMF_RAISE(IMF_ERR_USAGE, "status needs --model DIR");
  if (st == IMF_OK && check) { /* --check on a directory without a current version is not "fine" */
    char cur[4200];
    snprintf(cur, sizeof cur, "%s/CURRENT", model);
    int have = cli->rank == 0 ? access(cur, F_OK) == 0 : 0;
    MPI_Bcast(&have, 1, MPI_INT, 0, cli->comm);
    if (!have)
      st = IMF_RAISE(IMF_ERR_NOTFOUND, "%s holds no current version (a train that failed or was stopped before its first "
                     "version leaves it so): run train", model);
  }
  if (st == IMF_OK && plot) { /* never into the model or the store (fsio.h) */
    const char *dirs[] = {model, store};
    st = imf_output_check_all(cli->comm, plot, NULL, 0, dirs, 2);
  }
  if (st != IMF_OK) return imf_cli_fail(cli, "status", st);
  int stale = 0, drifting = 0;
  st = imf_model_status(cli->comm, model, store, cli->json, stdout, &stale, &drifting);
  if (st != IMF_OK) return imf_cli_fail(cli, "status", st);
  if (plot) {
    st = imf_status_plot(cli->comm, model, plot);
    if (st != IMF_OK) return imf_cli_fail(cli, "status", st);
  }
  if (check && (stale || drifting)) {
    if (cli->rank == 0)
      fprintf(stderr, "incremf status: %s%s%s\n", stale ? "stale (the store has batches the current version has not seen)" : "",
              stale && drifting ? "; " : "", drifting ? "drifting" : "");
    return imf_exit_code(IMF_ERR_STALE);
  }
  return 0;
}
