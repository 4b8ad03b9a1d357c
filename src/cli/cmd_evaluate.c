/* cmd_evaluate.c - `incremf evaluate` (placeholder until implemented). */
#include "cli.h"
const char IMF_USAGE_EVALUATE[] = "usage: incremf evaluate ... (not available in this version yet)\n";
int imf_cmd_evaluate(imf_cli *cli, int argc, char **argv) {
  (void)argc;
  (void)argv;
  return imf_cli_fail(cli, "evaluate", imf_err_raise(IMF_ERR_USAGE, __FILE__, __LINE__, "'evaluate' is not available in this version yet"));
}
