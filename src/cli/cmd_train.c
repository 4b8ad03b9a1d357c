/* cmd_train.c - `incremf train`: a model from a data store, into a model directory. */
#include "cli.h"
#include <math.h>
#include <string.h>

const char IMF_USAGE_TRAIN[] =
    "usage: incremf train --data STORE --model DIR [--resume] [--test FILE] [--break-lock]\n"
    "                     [--config FILE.ini] [--set model.k=64 ...] [--json]\n"
    "\n"
    "Train a matrix-factorization model on every rating of STORE over all MPI ranks and write\n"
    "it to DIR as a new model version (DIR/versions/vNNNNNN.h5), made current atomically.\n"
    "  model.type = als | ials | bpmf   (ALS-WR with biases, implicit ALS, Bayesian MF)\n"
    "             | ease                (EASE: closed-form item-item model, model.ease_lambda)\n"
    "             | pop | bias          (baselines: item popularity, mu + b_u + b_i)\n"
    "  other keys: model.k, lambda, lambda_bias, alpha, iterations, burn_in, tol, seed,\n"
    "  solver (cholesky|cg), cg_steps, validation_fraction, checkpoint_every (`incremf help config`)\n"
    "  --resume      continue DIR's unfinished run from its checkpoint (DIR/run/checkpoint.h5),\n"
    "                with the configuration it was started with; starts fresh when there is none\n"
    "  --test FILE   report RMSE/MAE on FILE at the end (unseen users/items: mean + known bias)\n"
    "  --break-lock  take DIR's writer lock even when another host holds it\n"
    "SIGTERM or SIGUSR1 stop at the next half-sweep boundary: a run checkpoint is written and the\n"
    "exit code is 75 (requeue); `train --resume` then finishes bitwise identical to an\n"
    "uninterrupted run, on any number of ranks. One line per sweep on stderr, and JSON lines in\n"
    "DIR/train.jsonl.\n";

static void jnum(const char *key, double v) {
  if (isfinite(v)) printf(",\"%s\":%.6g", key, v);
  else printf(",\"%s\":null", key);
}

int imf_cmd_train(imf_cli *cli, int argc, char **argv) {
  const char *store = NULL, *model = NULL;
  imf_train_opts o = {0};
  imf_status st = IMF_OK;
  for (int i = 1; i < argc && st == IMF_OK; i++) {
    if (!strcmp(argv[i], "--data")) st = imf_cli_value(argc, argv, &i, &store);
    else if (!strcmp(argv[i], "--model")) st = imf_cli_value(argc, argv, &i, &model);
    else if (!strcmp(argv[i], "--test")) st = imf_cli_value(argc, argv, &i, &o.test_path);
    else if (!strcmp(argv[i], "--resume")) o.resume = 1;
    else if (!strcmp(argv[i], "--break-lock")) o.break_lock = 1;
    else st = IMF_RAISE(IMF_ERR_USAGE, "unknown option '%s' (see incremf train --help)", argv[i]);
  }
  if (st == IMF_OK && (!store || !model))
    st = IMF_RAISE(IMF_ERR_USAGE, "train needs --data STORE and --model DIR");
  if (st == IMF_OK) st = imf_install_stop_signals();
  if (st != IMF_OK) return imf_cli_fail(cli, "train", st);
  imf_train_report r;
  st = imf_train(cli->comm, cli->cfg, store, model, &o, &r);
  if (cli->json && cli->rank == 0 && (st == IMF_OK || st == IMF_ERR_REQUEUE)) {
    printf("{\"model\":");
    imf_json_string(stdout, model);
    printf(",\"version\":%lld,\"iterations\":%lld,\"stopped\":%s", (long long)r.version, (long long)r.iterations,
           r.stopped ? "true" : "false");
    jnum("val_rmse", r.val_rmse);
    jnum("val_mae", r.val_mae);
    jnum("test_rmse", r.test_rmse);
    jnum("test_mae", r.test_mae);
    printf(",\"test_n\":%lld,\"test_cold\":%lld,\"seconds\":%.3f,\"peak_rss_max\":%lld", (long long)r.test_n,
           (long long)r.test_cold, r.seconds, (long long)r.peak_rss_max);
    printf(",\"peak_rss_node_max\":%lld,\"nodes\":%d,\"exchange\":\"%s\",\"model_rows_max\":%lld,"
           "\"sweep_bytes\":{\"intra_sent\":%lld,"
           "\"inter_sent\":%lld,\"intra_recv\":%lld,\"inter_recv\":%lld,\"node_inter_recv\":%lld,\"inter_recv_total\":%lld}}\n",
           (long long)r.peak_rss_node_max, r.nodes, r.outblock ? (r.node_shared ? "node-shared+outblock" : "outblock") : r.node_shared ? "node-shared" : "replicated",
           (long long)r.model_rows_max, (long long)r.sweep_bytes[0], (long long)r.sweep_bytes[1],
           (long long)r.sweep_bytes[2], (long long)r.sweep_bytes[3], (long long)r.sweep_bytes[4],
           (long long)r.sweep_bytes[5]);
  }
  if (st != IMF_OK) return imf_cli_fail(cli, "train", st);
  imf_info("train: version %lld written to %s after %lld sweeps in %.1f s", (long long)r.version, model,
           (long long)r.iterations, r.seconds);
  return 0;
}
