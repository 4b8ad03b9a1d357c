/* cmd_evaluate.c - `incremf evaluate`: rating and ranking metrics under a split protocol. */
#include "cli.h"
#include "evaluate.h"
#include <math.h>
#include <string.h>

const char IMF_USAGE_EVALUATE[] =
    "usage: incremf evaluate --data STORE --model DIR --test FILE [--k 10,20] [--json]\n"
    "       incremf evaluate --data STORE --model DIR --protocol standing\n"
    "       incremf evaluate (--data STORE | --input FILE) [--model DIR]\n"
    "                        --protocol random|leave-k-out|temporal|heldout-users\n"
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
    "                 in on eval.foldin_fraction of their items, scored on the rest\n"
    "  --k LIST       cut-offs (default eval.k); relevance: rating >= eval.relevance_threshold\n"
    "                 (auto: 3/4 up the recorded scale, rounded up to its step: 4 on 1-5, 8 on 0-10)\n"
    "                 (implicit models: every held-out item)\n"
    "  --fold-files B,T  patterns with one %d, for folds 1..N (official MovieLens u1..u5)\n"
    "  --json         one object: protocol, k, folds, relevance_threshold, every metric by\n"
    "                 plain key (mean over folds), sd (per key), fold_results\n";

static void jval(double v) {
  if (isfinite(v)) printf("%.6g", v);
  else printf("null");
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
    else if (!strcmp(argv[i], "--folds")) {
      st = imf_cli_value(argc, argv, &i, &v);
      if (st == IMF_OK && (sscanf(v, "%d", &sp.folds) != 1 || sp.folds < 1))
        st = imf_err_raise(IMF_ERR_USAGE, __FILE__, __LINE__, "--folds wants a positive integer, got '%s'", v);
    } else st = imf_err_raise(IMF_ERR_USAGE, __FILE__, __LINE__, "unknown option '%s' (see incremf evaluate --help)", argv[i]);
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
    for (int j = 0; j < r.nmetrics; j++) {
      printf(",\"%s\":", r.names[j]);
      jval(r.mean[j]);
    }
    printf(",\"sd\":{");
    for (int j = 0; j < r.nmetrics; j++) {
      printf("%s\"%s\":", j ? "," : "", r.names[j]);
      jval(r.sd[j]);
    }
    printf("},\"fold_results\":[");
    for (int f = 0; f < r.nfolds; f++) {
      char names[IMF_EVAL_MAX_NAMES][32];
      double v[IMF_EVAL_MAX_NAMES];
      int n = imf_metrics_list(&r.fold[f], names, v);
      printf("%s{\"fold\":%d,\"test_ratings\":%lld,\"cold_ratings\":%lld,\"users_ranked\":%lld,\"users_cold\":%lld,"
             "\"seconds\":%.3f", f ? "," : "", f + 1, (long long)r.fold[f].n_ratings, (long long)r.fold[f].n_cold,
             (long long)r.fold[f].users_ranked, (long long)r.fold[f].users_cold, r.fold[f].seconds);
      for (int j = 0; j < n; j++) {
        printf(",\"%s\":", names[j]);
        jval(v[j]);
      }
      printf("}");
    }
    printf("],\"seconds\":%.3f}\n", r.seconds);
    return 0;
  }
  /* table: one row per fold, then mean and sd */
  char thr[64] = "none (every held-out item)";
  if (isfinite(r.fold[0].relevance_threshold)) snprintf(thr, sizeof thr, ">= %g", r.fold[0].relevance_threshold);
  printf("protocol %s, %d fold%s, %lld users ranked (fold 1), relevant: rating %s\n", r.protocol, r.nfolds,
         r.nfolds > 1 ? "s" : "", (long long)r.fold[0].users_ranked, thr);
  printf("%-6s", "fold");
  for (int j = 0; j < r.nmetrics; j++)
    if (!strstr(r.names[j], "f1@") && !strstr(r.names[j], "map@")) printf(" %13s", r.names[j]);
  printf(" %8s\n", "seconds");
  for (int f = 0; f < r.nfolds; f++) {
    char names[IMF_EVAL_MAX_NAMES][32];
    double v[IMF_EVAL_MAX_NAMES];
    int n = imf_metrics_list(&r.fold[f], names, v);
    printf("%-6d", f + 1);
    for (int j = 0; j < n; j++)
      if (!strstr(names[j], "f1@") && !strstr(names[j], "map@")) printf(" %13.5f", v[j]);
    printf(" %8.1f\n", r.fold[f].seconds);
  }
  if (r.nfolds > 1) {
    printf("%-6s", "mean");
    for (int j = 0; j < r.nmetrics; j++)
      if (!strstr(r.names[j], "f1@") && !strstr(r.names[j], "map@")) printf(" %13.5f", r.mean[j]);
    printf("\n%-6s", "sd");
    for (int j = 0; j < r.nmetrics; j++)
      if (!strstr(r.names[j], "f1@") && !strstr(r.names[j], "map@")) printf(" %13.5f", r.sd[j]);
    printf("\n");
  }
  printf("all metrics (mean ± sd):");
  for (int j = 0; j < r.nmetrics; j++) printf(" %s=%.5f±%.5f", r.names[j], r.mean[j], r.sd[j]);
  printf("\n");
  return 0;
}
