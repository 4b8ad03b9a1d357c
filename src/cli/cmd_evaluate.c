/* cmd_evaluate.c - `incremf evaluate`: rating and ranking metrics under a split protocol. */
#include "cli.h"
#include "evaluate.h"
#include <math.h>
#include <string.h>

const char IMF_USAGE_EVALUATE[] =
    "usage: incremf evaluate --data STORE --model DIR [--version N] --test FILE [--k 10,20] [--json]\n"
    "       incremf evaluate --data STORE --model DIR [--version N] --protocol standing\n"
    "       incremf evaluate (--data STORE | --input FILE) [--model DIR]\n"
    "                        --protocol random|leave-k-out|temporal|heldout-users [--folds N]\n"
    "       incremf evaluate (--data STORE | --input FILE) [--model DIR] --folds N\n"
    "       incremf evaluate --fold-files 'DIR/u%d.base,DIR/u%d.test' --folds 5\n"
    "\n"
    "Rating metrics (RMSE, MAE) and ranking metrics at each cut-off K (precision@K, recall@K,\n"
    "f1@K, ndcg@K, map@K, hit_rate@K, coverage@K); definitions in docs/METRICS.md. Items a user\n"
    "has in training are never ranked. Protocols:\n"
    "  test           --test FILE scored with DIR's current version (ids through its id maps)\n"
    "  standing       the store's standing holdout (holdout.fraction at prepare), never trained on\n"
    "  random         eval.test_fraction of the ratings, by hash      } the configuration is\n"
    "  leave-k-out    eval.leave_k ratings of every user              } retrained on the rest\n"
    "  temporal       the newest eval.test_fraction of the ratings    } (DIR's configuration\n"
    "  kfold          --folds N hash folds, or --fold-files pairs     }  with --model, else\n"
    "  heldout-users  eval.heldout_users of the users held out, folded}  --config/--set)\n"
    "                 in on eval.foldin_fraction of their items, scored on the rest; with\n"
    "                 --folds N: N disjoint user folds, every eligible user held out once\n"
    "  --version N    score kept version N of DIR instead of its current one\n"
    "  --baseline pop|bias  (repeatable or a comma list) adds the baseline's row, fitted on the\n"
    "                 same training part and scored on the same test ratings\n"
    "  --k LIST       cut-offs (default eval.k); relevance: rating >= eval.relevance_threshold\n"
    "                 (auto: 3/4 up the recorded scale, rounded up to its step: 4 on 1-5, 8 on 0-10)\n"
    "                 (implicit models: their positives, model.positive_threshold; none: every item)\n"
    "  --fold-files B,T  patterns with one %d, for folds 1..N (official MovieLens u1..u5)\n"
    "  --json         one object: protocol, k, folds, relevance_threshold, every metric by plain\n"
    "                 key (mean over folds), sd (per key; null with one fold), fold_results,\n"
    "                 version (with --model), train_overlap (--test), baselines\n"
    "A flag the chosen protocol does not use is a usage error (exit 2); --version N that DIR\n"
    "does not keep is exit 3. --test with --model warns with the share of the file's (user,\n"
    "item) pairs that are in the store's training data.\n";

static void jval(double v) {
  if (isfinite(v)) printf("%.6g", v);
  else printf("null");
}

/* --baseline pop|bias[,...] (repeatable): the baseline model types, each once. */
static imf_status add_baselines(imf_eval_spec *sp, const char *v) {
  char buf[256];
  snprintf(buf, sizeof buf, "%s", v);
  for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    imf_model_type ty;
    if (strcmp(t, "pop") && strcmp(t, "bias"))
      IMF_FAIL(IMF_ERR_USAGE, "--baseline wants pop or bias (or both, comma separated), got '%s'", t);
    IMF_CHECK(imf_model_type_parse(t, &ty));
    int have = 0;
    for (int b = 0; b < sp->nbaselines; b++) have |= sp->baseline[b] == ty;
    if (!have) sp->baseline[sp->nbaselines++] = ty;
  }
  return IMF_OK;
}

/* One "name=mean±sd" list; "± sd" only with two or more folds. */
static void print_all(const char *what, const imf_eval_report *r, const double *mean, const double *sd) {
  printf("%s%s:", what, r->nfolds > 1 ? " (mean ± sd)" : "");
  for (int j = 0; j < r->nmetrics; j++) {
    printf(" %s=%.5f", r->names[j], mean[j]);
    if (r->nfolds > 1) printf("±%.5f", sd[j]);
  }
  printf("\n");
}

static void json_folds(const imf_metrics *fold, int nfolds) {
  printf("\"fold_results\":[");
  for (int f = 0; f < nfolds; f++) {
    char names[IMF_EVAL_MAX_NAMES][32];
    double v[IMF_EVAL_MAX_NAMES];
    int n = imf_metrics_list(&fold[f], names, v);
    printf("%s{\"fold\":%d,\"test_ratings\":%lld,\"cold_ratings\":%lld,\"users_ranked\":%lld,\"users_cold\":%lld,"
           "\"seconds\":%.3f", f ? "," : "", f + 1, (long long)fold[f].n_ratings, (long long)fold[f].n_cold,
           (long long)fold[f].users_ranked, (long long)fold[f].users_cold, fold[f].seconds);
    for (int j = 0; j < n; j++) {
      printf(",\"%s\":", names[j]);
      jval(v[j]);
    }
    printf("}");
  }
  printf("]");
}

static void json_metrics(const imf_eval_report *r, const double *mean, const double *sd) {
  for (int j = 0; j < r->nmetrics; j++) {
    printf(",\"%s\":", r->names[j]);
    jval(mean[j]);
  }
  printf(",\"sd\":{");
  for (int j = 0; j < r->nmetrics; j++) {
    printf("%s\"%s\":", j ? "," : "", r->names[j]);
    jval(sd[j]);
  }
  printf("},");
}

int imf_cmd_evaluate(imf_cli *cli, int argc, char **argv) {
  imf_eval_spec sp;
  memset(&sp, 0, sizeof sp);
  imf_status st = IMF_OK;
  for (int i = 1; i < argc && st == IMF_OK; i++) {
    const char *v = NULL;
    if (!strcmp(argv[i], "--data")) st = imf_cli_value(argc, argv, &i, &sp.store);
    else if (!strcmp(argv[i], "--model")) st = imf_cli_value(argc, argv, &i, &sp.model);
    else if (!strcmp(argv[i], "--input")) st = imf_cli_value(argc, argv, &i, &sp.input);
    else if (!strcmp(argv[i], "--test")) st = imf_cli_value(argc, argv, &i, &sp.test_path);
    else if (!strcmp(argv[i], "--fold-files")) st = imf_cli_value(argc, argv, &i, &sp.fold_files);
    else if (!strcmp(argv[i], "--protocol")) st = imf_cli_value(argc, argv, &i, &sp.protocol);
    else if (!strcmp(argv[i], "--k")) st = imf_cli_value(argc, argv, &i, &sp.cutoffs);
    else if (!strcmp(argv[i], "--baseline")) {
      st = imf_cli_value(argc, argv, &i, &v);
      if (st == IMF_OK) st = add_baselines(&sp, v);
    } else if (!strcmp(argv[i], "--version")) {
      long long n = 0;
      char tail = 0;
      st = imf_cli_value(argc, argv, &i, &v);
      if (st == IMF_OK && (sscanf(v, "%lld%c", &n, &tail) != 1 || n < 1))
        st = IMF_RAISE(IMF_ERR_USAGE, "--version wants a version number >= 1, got '%s'", v);
      sp.version = n;
    }
    else if (!strcmp(argv[i], "--folds")) {
      st = imf_cli_value(argc, argv, &i, &v);
      if (st == IMF_OK && (sscanf(v, "%d", &sp.folds) != 1 || sp.folds < 1))
        st = IMF_RAISE(IMF_ERR_USAGE, "--folds wants a positive integer, got '%s'", v);
    } else st = IMF_RAISE(IMF_ERR_USAGE, "unknown option '%s' (see incremf evaluate --help)", argv[i]);
  }
  if (st != IMF_OK) return imf_cli_fail(cli, "evaluate", st);
  imf_eval_report r;
  st = imf_evaluate(cli->comm, cli->cfg, &sp, &r);
  if (st != IMF_OK) return imf_cli_fail(cli, "evaluate", st);
  if (cli->rank != 0) return 0;
  if (cli->json) {
    printf("{\"protocol\":\"%s\",\"k\":[", r.protocol);
    for (int a = 0; a < r.nk; a++) printf("%s%d", a ? "," : "", r.ks[a]);
    printf("],\"folds\":%d,\"relevance_threshold\":", r.nfolds);
    jval(r.fold[0].relevance_threshold);
    if (r.version > 0) printf(",\"version\":%lld", (long long)r.version);
    if (!isnan(r.train_overlap))
      printf(",\"train_overlap\":%.6g,\"train_overlap_pairs\":%lld,\"test_pairs\":%lld", r.train_overlap,
             (long long)r.overlap_pairs, (long long)r.test_pairs);
    json_metrics(&r, r.mean, r.sd);
    json_folds(r.fold, r.nfolds);
    if (r.nbaselines > 0) {
      printf(",\"baselines\":[");
      for (int b = 0; b < r.nbaselines; b++) {
        printf("%s{\"type\":\"%s\"", b ? "," : "", imf_model_type_name(r.base[b].type));
        json_metrics(&r, r.base[b].mean, r.base[b].sd);
        json_folds(r.base[b].fold, r.nfolds);
        printf("}");
      }
      printf("]");
    }
    printf(",\"seconds\":%.3f}\n", r.seconds);
    return 0;
  }
  /* table: one row per fold, then mean and sd (two or more folds), then one row per baseline */
  if (sp.model) printf("model %s, version %lld\n", sp.model, (long long)r.version);
  if (!isnan(r.train_overlap))
    printf("train overlap %.5f (%lld of %lld test pairs are training pairs)\n", r.train_overlap,
           (long long)r.overlap_pairs, (long long)r.test_pairs);
  char thr[64] = "every held-out item";
  if (isfinite(r.fold[0].relevance_threshold))
    snprintf(thr, sizeof thr, "rating >= %g", r.fold[0].relevance_threshold);
  printf("protocol %s, %d fold%s, %lld users ranked (fold 1), relevant: %s\n", r.protocol, r.nfolds,
         r.nfolds > 1 ? "s" : "", (long long)r.fold[0].users_ranked, thr);
  /* the table's columns: f1 and map only in the "all metrics" line; RMSE and MAE only where some
   * row has them (an implicit model's scores are not ratings: no NaN columns, unless a rating
   * baseline such as bias fills them) */
  int shown[IMF_EVAL_MAX_NAMES] = {0};
  for (int j = 0; j < r.nmetrics; j++) {
    shown[j] = !strstr(r.names[j], "f1@") && !strstr(r.names[j], "map@");
    int any = !isnan(r.mean[j]);
    for (int b = 0; b < r.nbaselines; b++) any |= !isnan(r.base[b].mean[j]);
    if (!any && !strchr(r.names[j], '@')) shown[j] = 0;
  }
  printf("%-6s", "fold");
  for (int j = 0; j < r.nmetrics; j++)
    if (shown[j]) printf(" %13s", r.names[j]);
  printf(" %8s\n", "seconds");
  for (int f = 0; f < r.nfolds; f++) {
    char names[IMF_EVAL_MAX_NAMES][32];
    double v[IMF_EVAL_MAX_NAMES];
    int n = imf_metrics_list(&r.fold[f], names, v);
    printf("%-6d", f + 1);
    for (int j = 0; j < n && j < r.nmetrics; j++)
      if (shown[j]) printf(" %13.5f", v[j]);
    printf(" %8.1f\n", r.fold[f].seconds);
  }
  if (r.nfolds > 1) {
    printf("%-6s", "mean");
    for (int j = 0; j < r.nmetrics; j++)
      if (shown[j]) printf(" %13.5f", r.mean[j]);
    printf("\n%-6s", "sd");
    for (int j = 0; j < r.nmetrics; j++)
      if (shown[j]) printf(" %13.5f", r.sd[j]);
    printf("\n");
  }
  for (int b = 0; b < r.nbaselines; b++)
    for (int row = 0; row < (r.nfolds > 1 ? 2 : 1); row++) {
      const double *v = row ? r.base[b].sd : r.base[b].mean;
      printf("%-6s", row ? "sd" : imf_model_type_name(r.base[b].type)); /* a baseline's mean, then its sd */
      for (int j = 0; j < r.nmetrics; j++)
        if (shown[j]) printf(" %13.5f", v[j]);
      printf("\n");
    }
  print_all("all metrics", &r, r.mean, r.sd);
  for (int b = 0; b < r.nbaselines; b++) {
    char what[64];
    snprintf(what, sizeof what, "baseline %s", imf_model_type_name(r.base[b].type));
    print_all(what, &r, r.base[b].mean, r.base[b].sd);
  }
  return 0;
}
