/* common.c - the flags every subcommand accepts, and uniform failure reporting. */
#include "cli.h"
#include <string.h>

imf_status imf_cli_value(int argc, char **argv, int *i, const char **out) {
  if (*i + 1 >= argc) IMF_FAIL(IMF_ERR_USAGE, "option %s needs a value", argv[*i]);
  *out = argv[++*i];
  return IMF_OK;
}

imf_status imf_cli_common(imf_cli *cli, int *argc, char **argv, int *help) {
  /* Two passes so that --set always wins over --config whatever their order. */
  int n = *argc, out = 1;
  const char *sets[256];
  int nsets = 0;
  const char *config = NULL, *logfmt = "text";
  for (int i = 1; i < n; i++) {
    const char *a = argv[i], *v = NULL;
    if (!strcmp(a, "--config")) {
      IMF_CHECK(imf_cli_value(n, argv, &i, &v));
      if (config) IMF_FAIL(IMF_ERR_USAGE, "--config given twice");
      config = v;
    } else if (!strcmp(a, "--set")) {
      IMF_CHECK(imf_cli_value(n, argv, &i, &v));
      if (nsets == 256) IMF_FAIL(IMF_ERR_USAGE, "too many --set options");
      sets[nsets++] = v;
    } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
      cli->quiet = 1;
    } else if (!strcmp(a, "--json")) {
      cli->json = 1;
    } else if (!strcmp(a, "--log-format")) {
      IMF_CHECK(imf_cli_value(n, argv, &i, &logfmt));
      if (strcmp(logfmt, "text") && strcmp(logfmt, "json"))
        IMF_FAIL(IMF_ERR_USAGE, "--log-format must be text or json, got '%s'", logfmt);
    } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      *help = 1;
    } else {
      argv[out++] = argv[i];
    }
  }
  argv[out] = NULL;
  *argc = out;
  imf_log_setup(cli->rank, cli->quiet, strcmp(logfmt, "json") ? IMF_LOG_TEXT : IMF_LOG_JSON);
  if (config) IMF_CHECK(imf_config_load_file(cli->cfg, config));
  for (int i = 0; i < nsets; i++) IMF_CHECK(imf_config_set(cli->cfg, sets[i]));
  IMF_CHECK(imf_config_validate(cli->cfg)); /* before any I/O (config.h) */
  return IMF_OK;
}

int imf_cli_fail(imf_cli *cli, const char *cmd, imf_status st) {
  if (cli->rank == 0) {
    if (imf_log_is_json())
{
      fprintf(stderr, "{\"level\":\"error\",\"command\":\"%s\",\"exit\":%d,\"msg\":", cmd, imf_exit_code(st));
      imf_json_string(stderr, imf_last_error());
      fputs("}\n", stderr);
    }
    else
      fprintf(stderr, "incremf %s: error: %s\n", cmd, imf_last_error());
  }
  return imf_exit_code(st);
}
