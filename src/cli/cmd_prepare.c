/* cmd_prepare.c - `incremf prepare` (placeholder until implemented). */
#include "cli.h"
const char IMF_USAGE_PREPARE[] = "usage: incremf prepare ...\n";
int imf_cmd_prepare(imf_cli *cli, int argc, char **argv) {
  (void)argc; (void)argv;
  return imf_cli_fail(cli, "prepare", imf_err_raise(IMF_ERR_USAGE, __FILE__, __LINE__, "not implemented yet"));
}
