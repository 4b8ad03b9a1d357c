/* cmd_prune.c - `incremf prune` (placeholder until implemented). */
#include "cli.h"
const char IMF_USAGE_PRUNE[] = "usage: incremf prune ... (not available in this version yet)\n";
int imf_cmd_prune(imf_cli *cli, int argc, char **argv) {
  (void)argc;
  (void)argv;
  return imf_cli_fail(cli, "prune", imf_err_raise(IMF_ERR_USAGE, __FILE__, __LINE__, "'prune' is not available in this version yet"));
}
