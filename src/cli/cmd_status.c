/* cmd_status.c - `incremf status` (placeholder until implemented). */
#include "cli.h"
const char IMF_USAGE_STATUS[] = "usage: incremf status ... (not available in this version yet)\n";
int imf_cmd_status(imf_cli *cli, int argc, char **argv) {
  (void)argc;
  (void)argv;
  return imf_cli_fail(cli, "status", imf_err_raise(IMF_ERR_USAGE, __FILE__, __LINE__, "'status' is not available in this version yet"));
}
