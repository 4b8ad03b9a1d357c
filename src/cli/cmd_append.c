/* cmd_append.c - `incremf append` (placeholder until implemented). */
#include "cli.h"
const char IMF_USAGE_APPEND[] = "usage: incremf append ...\n";
int imf_cmd_append(imf_cli *cli, int argc, char **argv) {
  (void)argc; (void)argv;
  return imf_cli_fail(cli, "append", imf_err_raise(IMF_ERR_USAGE, __FILE__, __LINE__, "not implemented yet"));
}
