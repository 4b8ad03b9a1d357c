/* cmd_synth.c - `incremf synth` (placeholder until implemented). */
#include "cli.h"
const char IMF_USAGE_SYNTH[] = "usage: incremf synth ...\n";
int imf_cmd_synth(imf_cli *cli, int argc, char **argv) {
  (void)argc; (void)argv;
  return imf_cli_fail(cli, "synth", imf_err_raise(IMF_ERR_USAGE, __FILE__, __LINE__, "not implemented yet"));
}
