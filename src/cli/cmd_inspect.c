/* cmd_inspect.c - `incremf inspect PATH`: what a data store holds (model checkpoints are added
 * by the training work). */
#include "cli.h"
#include <math.h>
#include <stdint.h>
#include <string.h>

const char IMF_USAGE_INSPECT[] =
    "usage: incremf inspect PATH [--json]\n"
    "\n"
    "Print what a data store directory holds: users, items, ratings, batches, rating scale,\n"
    "time range, normalisation and content digest. --json prints one object with at least the\n"
    "keys users, items, ratings, batches.\n";

static void num_or_null(double v) {
  if (isnan(v)) printf("null");
  else printf("%g", v);
}

int imf_cmd_inspect(imf_cli *cli, int argc, char **argv) {
  const char *path = NULL;
  imf_status st = IMF_OK;
  for (int i = 1; i < argc && st == IMF_OK; i++) {
    if (argv[i][0] == '-') st = imf_err_raise(IMF_ERR_USAGE, __FILE__, __LINE__, "unknown option '%s'", argv[i]);
    else if (path) st = imf_err_raise(IMF_ERR_USAGE, __FILE__, __LINE__, "inspect takes one path");
    else path = argv[i];
  }
  if (st == IMF_OK && !path) st = imf_err_raise(IMF_ERR_USAGE, __FILE__, __LINE__, "inspect needs a PATH");
  if (st != IMF_OK) return imf_cli_fail(cli, "inspect", st);
  imf_store_info info;
  st = imf_store_inspect(cli->comm, path, &info);
  if (st != IMF_OK) return imf_cli_fail(cli, "inspect", st);
  if (cli->rank != 0) return 0;
  int has_time = info.time_min != INT64_MIN && info.time_min != INT64_MAX;
  if (cli->json) {
    printf("{\"kind\":\"store\",\"path\":");
    imf_json_string(stdout, path);
    printf(",\"users\":%lld,\"items\":%lld,\"ratings\":%lld,\"batches\":%lld,\"scale_min\":",
           (long long)info.users, (long long)info.items, (long long)info.ratings, (long long)info.batches);
    num_or_null(info.scale_min);
    printf(",\"scale_max\":");
    num_or_null(info.scale_max);
    if (has_time) printf(",\"time_min\":%lld,\"time_max\":%lld", (long long)info.time_min, (long long)info.time_max);
    else printf(",\"time_min\":null,\"time_max\":null");
    printf(",\"normalize\":\"%s\",\"digest\":\"%s\"}\n", info.normalize, info.digest);
  } else {
    printf("data store %s\n", path);
    printf("  users      %lld\n  items      %lld\n  ratings    %lld\n  batches    %lld\n", (long long)info.users,
           (long long)info.items, (long long)info.ratings, (long long)info.batches);
    if (isnan(info.scale_min) && isnan(info.scale_max)) printf("  scale      unbounded\n");
    else printf("  scale      %g .. %g\n", info.scale_min, info.scale_max);
    if (has_time) printf("  time       %lld .. %lld\n", (long long)info.time_min, (long long)info.time_max);
    else printf("  time       (no timestamps)\n");
    printf("  normalize  %s\n  digest     %s\n", info.normalize, info.digest);
  }
  return 0;
}
