/* cmd_update.c - `incremf update`: fold new store batches into the current model, judge the
 * challenger against the champion, promote or keep (imf_update). */
#include "cli.h"
#include <math.h>
#include <string.h>

const char IMF_USAGE_UPDATE[] =
    "usage: incremf update --data STORE --model DIR [--input new.csv] [--strategy fold-in|warm|retrain|auto]\n"
    "                      [--break-lock] [--adopt] [--config FILE.ini] [--set update.tolerance=0.005 ...] [--json]\n"
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
    "                strategy \"gram\"; the note says which).\n"
    "The challenger is judged with the champion on the same ratings of the store's standing holdout\n"
    "by update.metric (auto: RMSE for als, bpmf and bias; NDCG@update.k for ials, ease and the\n"
    "others), user by user: the mean paired difference (positive = challenger better), its 95%\n"
    "paired-bootstrap interval and the number of users are printed. It becomes the current version\n"
    "unless it is worse than the champion by more than update.tolerance (a share of the champion's\n"
    "score), its factors or weights are not finite, or its loss diverges. Otherwise it is kept as a\n"
    "rejected version and the champion stays current: still exit 0, with the decision printed.\n"
    "A model built from another store (its recorded store digest is none of STORE's states) is\n"
    "refused with exit 3 before anything is appended; --adopt takes it over when its user and item\n"
    "ids are STORE's first ids in the same order (else exit 3).\n";

static void jnum(const char *key, double v) {
  if (isfinite(v)) printf(",\"%s\":%.6g", key, v);
  else printf(",\"%s\":null", key);
}
static void jfull(const char *key, double v) { /* all the digits (the interval is checked against them) */
  if (isfinite(v)) printf(",\"%s\":%.17g", key, v);
  else printf(",\"%s\":null", key);
}

/* "NDCG@10", "RMSE": the metric's name as the text line prints it */
static void upper(const char *m, char *out, size_t cap) {
  size_t j = 0;
  for (; m[j] && m[j] != '@' && j + 1 < cap; j++) out[j] = (char)(m[j] >= 'a' && m[j] <= 'z' ? m[j] - 'a' + 'A' : m[j]);
  snprintf(out + j, cap - j, "%s", m + j);
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
    else if (!strcmp(argv[i], "--adopt")) o.adopt = 1;
    else st = IMF_RAISE(IMF_ERR_USAGE, "unknown option '%s' (see incremf update --help)", argv[i]);
  }
  if (st == IMF_OK && (!store || !model))
    st = IMF_RAISE(IMF_ERR_USAGE, "update needs --data STORE and --model DIR");
  if (st != IMF_OK) return imf_cli_fail(cli, "update", st);
  imf_update_report r;
  st = imf_install_stop_signals(); /* SIGTERM/SIGINT/SIGUSR1: stop at a safe point, exit 75 */
  if (st == IMF_OK) st = imf_update(cli->comm, cli->cfg, store, model, &o, &r);
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
        jfull("champion_score", r.champion_score);
        jfull("challenger_score", r.challenger_score);
        jfull("diff_mean", r.diff_mean);
        jfull("diff_lo", r.diff_lo);
        jfull("diff_hi", r.diff_hi);
        printf(",\"diff_users\":%lld", (long long)r.diff_users);
        jnum("newest_score", r.newest_score);
      }
      printf(",\"drift\":%s,\"eval_n\":%lld,\"eval_new_n\":%lld,\"seconds\":%.4f,\"build_seconds\":%.4f",
             r.drift ? "true" : "false", (long long)r.eval_n, (long long)r.eval_new_n, r.seconds, r.build_seconds);
      printf(",\"append_seconds\":%.4f,\"load_seconds\":%.4f,\"read_seconds\":%.4f,\"write_seconds\":%.4f",
             r.append_seconds, r.load_seconds, r.read_seconds, r.write_seconds);
      printf(",\"exchange\":\"%s\",\"nodes\":%d,\"sweep_bytes\":{\"intra_sent\":%lld,\"inter_sent\":%lld,"
             "\"intra_recv\":%lld,\"inter_recv\":%lld,\"node_inter_recv\":%lld,\"inter_recv_total\":%lld}",
             r.exchange, r.nodes, (long long)r.sweep_bytes[0], (long long)r.sweep_bytes[1], (long long)r.sweep_bytes[2],
             (long long)r.sweep_bytes[3], (long long)r.sweep_bytes[4], (long long)r.sweep_bytes[5]);
      printf(",\"note\":");
      imf_json_string(stdout, r.note);
      printf("}\n");
    } else if (!strcmp(r.decision, "up-to-date")) {
      printf("update: up to date (version %lld has seen all %lld batches)\n", (long long)r.current,
             (long long)r.batches_seen);
    } else {
      char up[24];
      upper(r.metric, up, sizeof up);
      printf("update: %s %s challenger version %lld (parent %lld): holdout %s %.5g vs champion %.5g", r.decision,
             r.strategy, (long long)r.version, (long long)r.parent, up, r.challenger_score, r.champion_score);
      if (r.diff_users > 0)
        printf(", diff %+.3g [95%% CI %+.3g, %+.3g] over %lld users (paired bootstrap%s)", r.diff_mean, r.diff_lo,
               r.diff_hi, (long long)r.diff_users,
               r.diff_users < 2                     ? ""
               : r.diff_lo > 0 || r.diff_hi < 0 ? "; interval excludes 0"
                                                : "; interval includes 0");
      printf(" -> %s; current is version %lld%s%s\n", r.decision, (long long)r.current, r.note[0] ? "; " : "", r.note);
    }
    fflush(stdout);
  }
  return 0;
}
