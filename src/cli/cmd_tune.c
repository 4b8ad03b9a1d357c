/* cmd_tune.c - `incremf tune`: hyper-parameter search by cross-validation (library: tune.h).
 * Parses the flags, runs imf_tune, prints the table (or --json) and writes the files on rank 0. */
#include "cli.h"
#include "fsio.h"
#include "tune.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char IMF_USAGE_TUNE[] =
    "usage: incremf tune --data STORE --grid \"k=32,64 lambda=0.02,0.05 ...\" [--random N]\n"
    "                    [--folds N] [--groups N] [--out best.ini] [--table results.csv] [--json]\n"
    "\n"
    "Hyper-parameter search: every combination of the listed model.* values (the \"model.\" prefix\n"
    "is optional: type, k, lambda, lambda_bias, alpha, iterations, burn_in, samples, ...), or N of\n"
    "them drawn with tune.seed (--random N), each scored by N-fold cross-validation on the\n"
    "training store only (folds hashed with eval.seed, as `evaluate --folds`). The best candidate\n"
    "(tune.metric; auto = lowest mean RMSE, or highest mean ndcg@K with K the first eval.k for\n"
    "the implicit model types ials, ease and pop) is written with the full effective\n"
    "configuration as an INI file for `train --config`.\n"
    "  --grid SPEC    terms key=v1,v2,... separated by spaces or ';'\n"
    "  --random N     N configurations drawn from the grid without replacement\n"
    "  --folds N      cross-validation folds (default tune.folds)\n"
    "  --groups N     rank groups working on candidates concurrently (default tune.groups;\n"
    "                 0 = one rank per group); candidate c runs on group c mod N\n"
    "  --out FILE     the best configuration (default best.ini)\n"
    "  --table FILE   every candidate's metrics (mean and sd over folds) as CSV\n"
    "  --json         {\"best\": {...}, \"on_edge\": [...], \"configs\": N, \"folds\": F, \"metric\": M,\n"
    "                 \"results\": [...]}\n"
    "A best value at the lowest or highest of three or more numeric grid values is warned about\n"
    "(the optimum may lie past the grid) and listed in on_edge ({\"key\", \"side\": low|high}).\n";

static void jnum(double v) {
  if (isfinite(v)) printf("%.6g", v);
  else printf("null");
}

/* A grid value as JSON: a number when it reads as one, otherwise a string. */
static void jval(const char *s) {
  char *end;
  strtod(s, &end);
  if (*s && !*end && strcmp(s, "nan") && strcmp(s, "inf")) printf("%s", s);
  else imf_json_string(stdout, s);
}

static void json_row(const imf_tune_report *r, int c) {
  printf("{\"config\":{");
  for (int k = 0; k < r->nkeys; k++) {
    printf("%s\"%s\":", k ? "," : "", r->key[k] + 6);
    jval(r->rows[c].value[k]);
  }
  printf("}");
  for (int j = 0; j < r->nmetrics; j++) {
    printf(",\"%s\":", r->names[j]);
    jnum(r->rows[c].mean[j]);
    printf(",\"%s_sd\":", r->names[j]);
    jnum(r->rows[c].sd[j]);
  }
  printf(",\"group\":%d,\"seconds\":%.3f}", r->rows[c].group, r->rows[c].seconds);
}

/* The columns of the printed table: RMSE and MAE when they exist (explicit models), the chosen
 * metric in any case. */
static int shown(const imf_tune_report *r, int j) {
  if (j == r->metric_index) return 1;
  if (!strcmp(r->names[j], "rmse") || !strcmp(r->names[j], "mae")) return isfinite(r->rows[r->best].mean[j]);
  return 0;
}

static void print_table(const imf_tune_report *r, const char *out) {
  printf("tune: %d configurations, %d-fold cross-validation, %d group%s, best by %s (%s is better)\n", r->nconfigs,
         r->nfolds, r->ngroups, r->ngroups > 1 ? "s" : "", r->metric, r->maximise ? "higher" : "lower");
  int w[IMF_TUNE_MAX_KEYS];
  printf("  %4s", "#");
  for (int k = 0; k < r->nkeys; k++) {
    w[k] = (int)strlen(r->key[k] + 6);
    for (int c = 0; c < r->nconfigs; c++)
      if ((int)strlen(r->rows[c].value[k]) > w[k]) w[k] = (int)strlen(r->rows[c].value[k]);
    printf(" %*s", w[k], r->key[k] + 6);
  }
  for (int j = 0; j < r->nmetrics; j++)
    if (shown(r, j)) printf(" %19s", r->names[j]);
  printf(" %8s\n", "seconds");
  for (int c = 0; c < r->nconfigs; c++) {
    printf("%s %4d", c == r->best ? "*" : " ", c + 1);
    for (int k = 0; k < r->nkeys; k++) printf(" %*s", w[k], r->rows[c].value[k]);
    for (int j = 0; j < r->nmetrics; j++)
      if (shown(r, j)) printf("   %8.5f ± %7.5f", r->rows[c].mean[j], r->rows[c].sd[j]);
    printf(" %8.2f\n", r->rows[c].seconds);
  }
  char label[1024];
  imf_tune_label(r, r->best, label, sizeof label);
  printf("best: %s (%s = %.5f ± %.5f), written to %s; %.1f s in all\n", label, r->metric,
         r->rows[r->best].mean[r->metric_index], r->rows[r->best].sd[r->metric_index], out, r->seconds);
}

int imf_cmd_tune(imf_cli *cli, int argc, char **argv) {
  imf_tune_spec sp;
  memset(&sp, 0, sizeof sp);
  const char *out = "best.ini", *table = NULL;
  imf_status st = IMF_OK;
  for (int i = 1; i < argc && st == IMF_OK; i++) {
    const char *v = NULL;
    int *num = NULL;
    if (!strcmp(argv[i], "--data")) st = imf_cli_value(argc, argv, &i, &sp.store);
    else if (!strcmp(argv[i], "--grid")) st = imf_cli_value(argc, argv, &i, &sp.grid);
    else if (!strcmp(argv[i], "--out")) st = imf_cli_value(argc, argv, &i, &out);
    else if (!strcmp(argv[i], "--table")) st = imf_cli_value(argc, argv, &i, &table);
    else if (!strcmp(argv[i], "--random")) num = &sp.random;
    else if (!strcmp(argv[i], "--folds")) num = &sp.folds;
    else if (!strcmp(argv[i], "--groups")) num = &sp.groups;
    else st = IMF_RAISE(IMF_ERR_USAGE, "unknown option '%s' (see incremf tune --help)", argv[i]);
    if (num && st == IMF_OK) {
      const char *flag = argv[i];
      st = imf_cli_value(argc, argv, &i, &v);
      char *end;
      long n = st == IMF_OK ? strtol(v, &end, 10) : 0;
      if (st == IMF_OK && (!*v || *end || n < 1 || n > 1000000))
        st = IMF_RAISE(IMF_ERR_USAGE, "%s wants a positive integer, got '%s'", flag, v);
      *num = (int)n;
    }
  }
  if (st == IMF_OK && !sp.grid) st = IMF_RAISE(IMF_ERR_USAGE, "tune needs --grid \"key=v1,v2 ...\"");
  const char *dirs[] = {sp.store};
  if (st == IMF_OK) st = imf_output_check_all(cli->comm, out, NULL, 0, dirs, 1); /* fsio.h */
  if (st == IMF_OK && table) st = imf_output_check_all(cli->comm, table, &out, 1, dirs, 1);
  if (st != IMF_OK) return imf_cli_fail(cli, "tune", st);
  imf_tune_report r;
  st = imf_tune(cli->comm, cli->cfg, &sp, &r);
  if (st != IMF_OK) return imf_cli_fail(cli, "tune", st);
  /* rank 0 writes the files; the outcome is shared so that every rank exits alike */
  if (cli->rank == 0) {
    st = imf_tune_write_best(&r, out);
    if (st == IMF_OK && table) st = imf_tune_write_table(&r, table);
  }
  st = imf_agree(cli->comm, st);
  if (st != IMF_OK) {
    imf_tune_report_free(&r);
    return imf_cli_fail(cli, "tune", st);
  }
  if (cli->rank == 0) {
    if (cli->json) {
      printf("{\"best\":");
      json_row(&r, r.best);
      printf(",\"best_index\":%d,\"on_edge\":[", r.best + 1);
      for (int k = 0, n = 0; k < r.nkeys; k++)
        if (r.edge[k]) printf("%s{\"key\":\"%s\",\"side\":\"%s\"}", n++ ? "," : "", r.key[k], r.edge[k] < 0 ? "low" : "high");
      printf("],\"out\":");
      imf_json_string(stdout, out);
      printf(",\"configs\":%d,\"folds\":%d,\"groups\":%d,\"metric\":\"%s\",\"maximise\":%s,\"results\":[", r.nconfigs,
             r.nfolds, r.ngroups, r.metric, r.maximise ? "true" : "false");
      for (int c = 0; c < r.nconfigs; c++) {
        if (c) printf(",");
        json_row(&r, c);
      }
      printf("],\"seconds\":%.3f}\n", r.seconds);
    } else {
      print_table(&r, out);
    }
  }
  imf_tune_report_free(&r);
  return 0;
}
