/* cmd_forget.c - `incremf forget`: the right to be forgotten for one user. */
#include "cli.h"
#include <string.h>

const char IMF_USAGE_FORGET[] =
    "usage: incremf forget --data STORE --model DIR --user ID [--break-lock]\n"
    "\n"
    "Remove user ID's ratings from STORE (a tombstone in the manifest: every read drops them), zero\n"
    "the user's row and id in every kept version of DIR, re-solve the items those ratings touched,\n"
    "and record the deletion (without the id) in the lineage.\n";

int imf_cmd_forget(imf_cli *cli, int argc, char **argv) {
  const char *store = NULL, *model = NULL, *user = NULL;
  int brk = 0;
  imf_status st = IMF_OK;
  for (int i = 1; i < argc && st == IMF_OK; i++) {
    if (!strcmp(argv[i], "--data")) st = imf_cli_value(argc, argv, &i, &store);
    else if (!strcmp(argv[i], "--model")) st = imf_cli_value(argc, argv, &i, &model);
    else if (!strcmp(argv[i], "--user")) st = imf_cli_value(argc, argv, &i, &user);
    else if (!strcmp(argv[i], "--break-lock")) brk = 1;
    else st = IMF_RAISE(IMF_ERR_USAGE, "unknown option '%s' (see incremf forget --help)", argv[i]);
  }
  if (st == IMF_OK && (!store || !model || !user))
    st = IMF_RAISE(IMF_ERR_USAGE, "forget needs --data STORE, --model DIR and --user ID");
  if (st != IMF_OK) return imf_cli_fail(cli, "forget", st);
  int64_t nr = 0, nv = 0;
  st = imf_forget(cli->comm, cli->cfg, store, model, user, brk, &nr, &nv);
  if (st != IMF_OK) return imf_cli_fail(cli, "forget", st);
  if (cli->rank == 0) {
    if (cli->json) printf("{\"ratings_removed\":%lld,\"versions_rewritten\":%lld}\n", (long long)nr, (long long)nv);
    else printf("forget: %lld ratings removed, %lld versions rewritten\n", (long long)nr, (long long)nv);
  }
  return 0;
}
