/* cmd_rollback.c - `incremf rollback`: make an earlier version current again. */
#include "cli.h"
#include <stdlib.h>
#include <string.h>

const char IMF_USAGE_ROLLBACK[] =
    "usage: incremf rollback --model DIR [--to V] [--break-lock]\n"
    "\n"
    "Make version V of DIR current again (default: the current version's parent). Atomic: CURRENT\n"
    "is replaced in one rename. Recorded in the lineage (`incremf status`).\n";

int imf_cmd_rollback(imf_cli *cli, int argc, char **argv) {
  const char *model = NULL, *to = NULL;
  int brk = 0;
  imf_status st = IMF_OK;
  for (int i = 1; i < argc && st == IMF_OK; i++) {
    if (!strcmp(argv[i], "--model")) st = imf_cli_value(argc, argv, &i, &model);
    else if (!strcmp(argv[i], "--to")) st = imf_cli_value(argc, argv, &i, &to);
    else if (!strcmp(argv[i], "--break-lock")) brk = 1;
    else st = IMF_RAISE(IMF_ERR_USAGE, "unknown option '%s' (see incremf rollback --help)", argv[i]);
  }
  long long v = 0;
  if (st == IMF_OK && to) {
    char *e;
    v = strtoll(to[0] == 'v' ? to + 1 : to, &e, 10);
    if (*e || v < 1) st = IMF_RAISE(IMF_ERR_USAGE, "--to needs a version number, got '%s'", to);
  }
  if (st == IMF_OK && !model) st = IMF_RAISE(IMF_ERR_USAGE, "rollback needs --model DIR");
  if (st != IMF_OK) return imf_cli_fail(cli, "rollback", st);
  int64_t from = 0, now = 0;
  st = imf_rollback(cli->comm, model, v, brk, &from, &now);
  if (st != IMF_OK) return imf_cli_fail(cli, "rollback", st);
  if (cli->rank == 0) {
    if (cli->json) printf("{\"from\":%lld,\"current\":%lld}\n", (long long)from, (long long)now);
    else printf("rollback: version %lld is current (was %lld)\n", (long long)now, (long long)from);
  }
  return 0;
}
