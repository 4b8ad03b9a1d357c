/* cmd_update.c - `incremf update`: fold new store batches into the current model, judge the
 * challenger against the champion, promote or keep (imf_update). */
#include "cli.h"
#include <math.h>
#include <string.h>

const char IMF_USAGE_UPDATE[] =
    "usage: incremf update --data STORE --model DIR [--input new.csv] [--strategy fold-in|warm|retrain|auto]\n"
    "                      [--break-lock] [--config FILE.ini] [--set update.tolerance=0.005 ...] [--json]\n"
    "\n"
    "Bring DIR's current model (the champion) up to date with every batch of STORE it has not seen.\n"
    "  --input FILE  first append FILE to STORE exactly as `append` does (refused if already there)\n"
    "  --strategy    fold-in: re-solve only the users and items the new batches touch, each against\n"
    "                its full history; warm: update.warm_sweeps full sweeps from the champion;\n"
    "                retrain: from scratch with the champion's configuration; auto (default,\n"
    "                update.strategy): fold-in, escalating to warm, then retrain, when the new data\n"
    "                exceeds update.auto_share, drift is detected, or the challenger is worse\n"
    "EASE models: every strategy applies the changed users' rows to the stored inverse by a low-rank\n"
    "                (Woodbury) update when the change's rank is at most\n"
    "                update.ease_woodbury_max_rank (auto: items / 4), else refactorises (recorded as\n"
    "                strategy \"gram\"; the note says which); judged by NDCG@K (K: the first\n"
    "                eval.k) on the standing holdout instead of RMSE.\n"
    "The challenger is judged with the champion on the store's standing holdout; it becomes the\n"
    "current version only if its RMSE is within update.tolerance of the champion's (and its factors\n"
    "are finite, its loss not diverging). Otherwise it is kept as a rejected version and the\n"
    "champion stays current: still exit 0, with the decision printed.\n";

static void jnum(const char *key, double v) {
  if (isfinite(v)) printf(",\"%s\":%.6g", key, v);
  else printf(",\"%s\":null", key);
}

int imf_cmd_update(imf_cli *cli, int argc, char **argv) {
  const char *store = NULL, *model = NULL;
  imf_update_opts o = {0};
  imf_status st = IMF_OK;
  for (int i = 1; i < argc && st == IMF_OK; i++) {
    if (!strcmp(argv[i], "--data")) st = imf_cli_value(argc, argv, &i, &store);
    else if (!strcmp(argv[i], "--model")) st = imf_cli_value(argc, argv, &i, &model);
    else if (!strcmp(argv[i], "--input")) st = imf_cli_value(argc, argv, &i, &o.input);
    else if (!strcmp(argv[i], "--strategy")) st = imf_cli_value(argc, argv, &i, &o.strategy);
    else if (!strcmp(argv[i], "--break-lock")) o.break_lock = 1;
    else st = imf_err_raise(IMF_ERR_USAGE, __FILE__, __LINE__, "unknown option '%s' (see incremf update --help)", argv[i]);
  }
  if (st == IMF_OK && (!store || !model))
    st = imf_err_raise(IMF_ERR_USAGE, __FILE__, __LINE__, "update needs --data STORE and --model DIR");
  if (st != IMF_OK) return imf_cli_fail(cli, "update", st);
  imf_update_report r;
  st = imf_update(cli->comm, cli->cfg, store, model, &o, &r);
  if (st != IMF_OK) return imf_cli_fail(cli, "update", st);
  if (cli->rank == 0) {
    if (cli->json) {
      printf("{\"model\":");
      imf_json_string(stdout, model);
      printf(",\"decision\":\"%s\",\"requested\":\"%s\",\"strategy\":\"%s\",\"parent\":%lld,\"version\":%lld,"
             "\"current\":%lld,\"appended_batch\":%lld,\"batches_seen\":%lld,\"new_batches\":%lld,\"new_ratings\":%lld",
             r.decision, r.requested, r.strategy, (long long)r.parent, (long long)r.version, (long long)r.current,
             (long long)r.appended_batch, (long long)r.batches_seen, (long long)r.new_batches, (long long)r.new_ratings);
      jnum("champion_rmse", r.champion_rmse);
      jnum("challenger_rmse", r.challenger_rmse);
      jnum("champion_new_rmse", r.champion_new_rmse);
      jnum("challenger_new_rmse", r.challenger_new_rmse);
      jnum("newest_rmse", r.newest_rmse);
      jnum("drift_baseline", r.drift_baseline);
      if (r.metric[0]) {
        printf(",\"metric\":\"%s\"", r.metric);
        jnum("champion_score", r.champion_score);
        jnum("challenger_score", r.challenger_score);
      }
      printf(",\"drift\":%s,\"eval_n\":%lld,\"eval_new_n\":%lld,\"seconds\":%.4f,\"build_seconds\":%.4f",
             r.drift ? "true" : "false", (long long)r.eval_n, (long long)r.eval_new_n, r.seconds, r.build_seconds);
      printf(",\"append_seconds\":%.4f,\"load_seconds\":%.4f,\"read_seconds\":%.4f,\"write_seconds\":%.4f",
             r.append_seconds, r.load_seconds, r.read_seconds, r.write_seconds);
      printf(",\"note\":");
      imf_json_string(stdout, r.note);
      printf("}\n");
    } else if (!strcmp(r.decision, "up-to-date")) {
      printf("update: up to date (version %lld has seen all %lld batches)\n", (long long)r.current,
             (long long)r.batches_seen);
    } else if (r.metric[0]) {
      printf("update: %s %s challenger version %lld (parent %lld): holdout %s %.5f vs champion %.5f; current is "
             "version %lld%s%s\n",
             r.decision, r.strategy, (long long)r.version, (long long)r.parent, r.metric, r.challenger_score,
             r.champion_score, (long long)r.current, r.note[0] ? "; " : "", r.note);
    } else {
      printf("update: %s %s challenger version %lld (parent %lld): holdout RMSE %.5f vs champion %.5f; current is "
             "version %lld%s%s\n",
             r.decision, r.strategy, (long long)r.version, (long long)r.parent, r.challenger_rmse, r.champion_rmse,
             (long long)r.current, r.note[0] ? "; " : "", r.note);
    }
    fflush(stdout);
  }
  return 0;
}
