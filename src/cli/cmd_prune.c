/* cmd_prune.c - `incremf prune`: delete old model versions. */
#include "cli.h"
#include <stdlib.h>
#include <string.h>

const char IMF_USAGE_PRUNE[] =
    "usage: incremf prune --model DIR --keep N [--break-lock]\n"
    "\n"
    "Delete all but the newest N versions of DIR; the current version and its parent are never\n"
    "deleted. Recorded in the lineage.\n";

int imf_cmd_prune(imf_cli *cli, int argc, char **argv) {
  const char *model = NULL, *keep = NULL;
  int brk = 0;
  imf_status st = IMF_OK;
  for (int i = 1; i < argc && st == IMF_OK; i++) {
    if (!strcmp(argv[i], "--model")) st = imf_cli_value(argc, argv, &i, &model);
    else if (!strcmp(argv[i], "--keep")) st = imf_cli_value(argc, argv, &i, &keep);
    else if (!strcmp(argv[i], "--break-lock")) brk = 1;
    else st = IMF_RAISE(IMF_ERR_USAGE, "unknown option '%s' (see incremf prune --help)", argv[i]);
  }
  long long n = -1;
  if (st == IMF_OK && (!model || !keep)) st = IMF_RAISE(IMF_ERR_USAGE, "prune needs --model DIR and --keep N");
  if (st == IMF_OK) {
    char *e;
    n = strtoll(keep, &e, 10);
    if (*e || n < 0) st = IMF_RAISE(IMF_ERR_USAGE, "--keep needs a count >= 0, got '%s'", keep);
  }
  if (st != IMF_OK) return imf_cli_fail(cli, "prune", st);
  int64_t removed = 0;
  st = imf_prune(cli->comm, model, n, brk, &removed);
  if (st != IMF_OK) return imf_cli_fail(cli, "prune", st);
  if (cli->rank == 0) {
    if (cli->json) printf("{\"removed\":%lld}\n", (long long)removed);
    else printf("prune: %lld versions removed\n", (long long)removed);
  }
  return 0;
}
