/* cmd_rollback.c - `incremf rollback` (placeholder until implemented). */
#include "cli.h"
const char IMF_USAGE_ROLLBACK[] = "usage: incremf rollback ... (not available in this version yet)\n";
int imf_cmd_rollback(imf_cli *cli, int argc, char **argv) {
  (void)argc;
  (void)argv;
  return imf_cli_fail(cli, "rollback", imf_err_raise(IMF_ERR_USAGE, __FILE__, __LINE__, "'rollback' is not available in this version yet"));
}
