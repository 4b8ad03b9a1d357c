/* cmd_tune.c - `incremf tune` (placeholder until implemented). */
#include "cli.h"
const char IMF_USAGE_TUNE[] = "usage: incremf tune ... (not available in this version yet)\n";
int imf_cmd_tune(imf_cli *cli, int argc, char **argv) {
  (void)argc;
  (void)argv;
  return imf_cli_fail(cli, "tune", imf_err_raise(IMF_ERR_USAGE, __FILE__, __LINE__, "'tune' is not available in this version yet"));
}
