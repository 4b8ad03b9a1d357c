/* cmd_recommend.c - `incremf recommend` (placeholder until implemented). */
#include "cli.h"
const char IMF_USAGE_RECOMMEND[] = "usage: incremf recommend ... (not available in this version yet)\n";
int imf_cmd_recommend(imf_cli *cli, int argc, char **argv) {
  (void)argc;
  (void)argv;
  return imf_cli_fail(cli, "recommend", imf_err_raise(IMF_ERR_USAGE, __FILE__, __LINE__, "'recommend' is not available in this version yet"));
}
