/* cmd_forget.c - `incremf forget` (placeholder until implemented). */
#include "cli.h"
const char IMF_USAGE_FORGET[] = "usage: incremf forget ... (not available in this version yet)\n";
int imf_cmd_forget(imf_cli *cli, int argc, char **argv) {
  (void)argc;
  (void)argv;
  return imf_cli_fail(cli, "forget", imf_err_raise(IMF_ERR_USAGE, __FILE__, __LINE__, "'forget' is not available in this version yet"));
}
