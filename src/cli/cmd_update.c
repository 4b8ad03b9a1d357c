/* cmd_update.c - `incremf update` (placeholder until implemented). */
#include "cli.h"
const char IMF_USAGE_UPDATE[] = "usage: incremf update ... (not available in this version yet)\n";
int imf_cmd_update(imf_cli *cli, int argc, char **argv) {
  (void)argc;
  (void)argv;
  return imf_cli_fail(cli, "update", imf_err_raise(IMF_ERR_USAGE, __FILE__, __LINE__, "'update' is not available in this version yet"));
}
