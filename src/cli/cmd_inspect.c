/* cmd_inspect.c - `incremf inspect` (placeholder until implemented). */
#include "cli.h"
const char IMF_USAGE_INSPECT[] = "usage: incremf inspect ...\n";
int imf_cmd_inspect(imf_cli *cli, int argc, char **argv) {
  (void)argc; (void)argv;
  return imf_cli_fail(cli, "inspect", imf_err_raise(IMF_ERR_USAGE, __FILE__, __LINE__, "not implemented yet"));
}
