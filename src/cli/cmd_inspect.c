/* cmd_inspect.c - `incremf inspect PATH`: what a data store, a model checkpoint file or a model
 * directory holds. */
#include "cli.h"
#include "modeldir.h"
#include "scale.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char IMF_USAGE_INSPECT[] =
    "usage: incremf inspect PATH [--json]\n"
    "\n"
    "Print what PATH holds. A data store directory: users, items, ratings, batches, rating\n"
    "scale, the observed values (min, max, step, per batch and combined, and the auto relevance\n"
    "threshold they give), time range, normalisation and content digest (--json keys: users,\n"
    "items, ratings, batches, value_min, value_max, value_step, relevance_threshold_auto,\n"
    "batch_values). A model checkpoint file (.h5) or a model directory (its current version): type,\n"
    "k, users, items, iteration, history length, the store digest and batches the model has\n"
    "seen, the configuration and the OpenBLAS core (--json keys: users, items, k, type,\n"
    "iteration, ...).\n";

static void num_or_null(double v) {
  if (isnan(v)) printf("null");
  else printf("%g", v);
}

static void json_num(const char *key, double v) {
  printf(",\"%s\":", key);
  num_or_null(v);
}

/* (rank 0) A model checkpoint's attributes; version > 0 when it is a model directory's current
 * version. */
static void print_model(const imf_cli *cli, const char *path, const char *file, int64_t version,
                        int64_t nversions, int run_pending, const imf_ckpt_info *in) {
  if (cli->json) {
    printf("{\"kind\":\"%s\",\"path\":", version ? "model_dir" : "model");
    imf_json_string(stdout, path);
    if (version) {
      printf(",\"current_version\":%lld,\"versions\":%lld,\"run_checkpoint\":%s,\"file\":",
             (long long)version, (long long)nversions, run_pending ? "true" : "false");
      imf_json_string(stdout, file);
    }
    printf(",\"type\":\"%s\",\"k\":%d,\"kw\":%d,\"users\":%lld,\"items\":%lld,"
           "\"iteration\":%lld,\"history\":%lld,\"with_bias\":%s",
           imf_model_type_name(in->type), in->k, in->kw, (long long)in->nusers,
           (long long)in->nitems, (long long)in->iteration, (long long)in->nhistory,
           in->with_bias ? "true" : "false");
    json_num("mu", in->mu);
    json_num("lambda", in->lambda);
    json_num("lambda_bias", in->lambda_bias);
    json_num("alpha", in->alpha);
    if (in->type == IMF_MODEL_BPMF)
      printf(",\"nsamples\":%lld,\"chain_sweeps\":%lld", (long long)in->nsamples,
             (long long)in->chain_sweeps);
    if (in->type == IMF_MODEL_EASE) /* the distributed state stored with it (docs/FORMAT.md) */
      printf(",\"ease_items\":%lld,\"ease_gram\":%s,\"ease_b\":%s,\"ease_x\":%s,\"ease_x_nnz\":%lld",
             (long long)in->ease_items, in->ease_has_gram ? "true" : "false", in->ease_has_b ? "true" : "false",
             in->ease_has_x ? "true" : "false", (long long)in->ease_x_nnz);
    if (in->type == IMF_MODEL_EASE) printf(",\"ease_p_file\":\"%s\"", in->ease_p_file); /* "" none */
    printf(",\"store_digest\":\"%s\",\"batches_seen\":%lld,\"checkpoint_kind\":\"%s\","
           "\"openblas_core\":",
           in->store_digest, (long long)in->batches_seen, in->kind);
    imf_json_string(stdout, in->openblas_core);
    printf(",\"created\":\"%s\",\"incremf_version\":", in->created);
    imf_json_string(stdout, in->incremf_version);
    printf(",\"content_sha256\":\"%s\",\"config\":", in->content_sha256);
    imf_json_string(stdout, in->config ? in->config : "");
    printf("}\n");
    return;
  }
  if (version) {
    printf("model directory %s\n", path);
    printf("  current    v%06lld (%lld version%s)%s\n", (long long)version, (long long)nversions,
           nversions == 1 ? "" : "s", run_pending ? "; an unfinished run can be resumed" : "");
    printf("  file       %s\n", file);
  } else {
    printf("model checkpoint %s (%s)\n", path, in->kind);
  }
  printf("  type       %s\n  k          %d", imf_model_type_name(in->type), in->k);
  if (in->kw != in->k) printf(" (%lld samples, width %d)", (long long)in->nsamples, in->kw);
  printf("\n  users      %lld\n  items      %lld\n  iteration  %lld\n  history    %lld sweeps\n",
         (long long)in->nusers, (long long)in->nitems, (long long)in->iteration,
         (long long)in->nhistory);
  printf("  store      %s (%lld batches seen)\n", in->store_digest[0] ? in->store_digest : "(none)",
         (long long)in->batches_seen);
  if (in->type == IMF_MODEL_EASE) {
    printf("  ease       %s", in->ease_items <= 0 ? "no stored state (update refuses it: retrain)"
                              : in->ease_has_gram ? (in->ease_has_b ? "Gram matrix and B stored (block-cyclic, f64)"
                                                                    : "Gram matrix stored (block-cyclic)")
                                                  : "B stored (block-cyclic, f32)");
    if (in->ease_p_file[0]) printf("; P in %s", in->ease_p_file);
    if (in->ease_has_x) printf("; X sparse (%lld entries)\n", (long long)in->ease_x_nnz);
    else printf("; X in the replicated factor form (P = X, Q = B^T: an older layout)\n");
  }
  printf("  openblas   %s\n  created    %s by incremf %s\n  digest     %s\n", in->openblas_core,
         in->created, in->incremf_version, in->content_sha256);
  /* the model section only: the full configuration is in --json ("config") */
  const char *c = in->config ? strstr(in->config, "[model]") : NULL;
  if (c) {
    printf("  config     ");
    c = strchr(c, '\n');
    while (c && *++c && *c != '[') {
      const char *e = strchr(c, '\n');
      int len = e ? (int)(e - c) : (int)strlen(c);
      if (len) printf("%.*s; ", len, c);
      c = e;
      if (!c) break;
    }
    printf("\n");
  }
}

/* What PATH is: 0 store (or anything else: the store code reports it), 1 checkpoint file,
 * 2 model directory. Rank 0 looks; everyone gets the answer. */
static int path_kind(const imf_cli *cli, const char *path) {
  int kind = 0;
  if (cli->rank == 0) {
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) kind = 1;
    else if (imf_modeldir_is_modeldir(path)) kind = 2; /* its layout is modeldir.c's business */
  }
  MPI_Bcast(&kind, 1, MPI_INT, 0, cli->comm);
  return kind;
}

static int inspect_model(imf_cli *cli, const char *path, int kind) {
  imf_status st = IMF_OK;
  imf_ckpt_info info;
  memset(&info, 0, sizeof info);
  char file[4400];
  snprintf(file, sizeof file, "%s", path);
  int64_t version = 0, nversions = 0;
  int run_pending = 0;
  if (kind == 2) {
    imf_modeldir *md = NULL;
    st = imf_modeldir_open(cli->comm, path, 0, 0, 0, &md);
    if (st == IMF_OK) st = imf_modeldir_current(md, file, sizeof file, &version);
    int64_t *vs = NULL;
    if (st == IMF_OK) st = imf_modeldir_list_versions(md, &vs, &nversions);
    free(vs);
    if (st == IMF_OK) run_pending = imf_modeldir_run_pending(md);
    imf_modeldir_close(&md);
    /* already agreed inside the collective calls */
    if (st != IMF_OK) return imf_cli_fail(cli, "inspect", st);
  }
  if (cli->rank == 0) st = imf_checkpoint_info(file, &info);
  st = imf_agree(cli->comm, st);
  if (st != IMF_OK) return imf_cli_fail(cli, "inspect", st);
  if (cli->rank == 0) print_model(cli, path, file, version, nversions, run_pending, &info);
  imf_ckpt_info_free(&info);
  return 0;
}

int imf_cmd_inspect(imf_cli *cli, int argc, char **argv) {
  const char *path = NULL;
  imf_status st = IMF_OK;
  for (int i = 1; i < argc && st == IMF_OK; i++) {
    if (argv[i][0] == '-') st = IMF_RAISE(IMF_ERR_USAGE, "unknown option '%s'", argv[i]);
    else if (path) st = IMF_RAISE(IMF_ERR_USAGE, "inspect takes one path");
    else path = argv[i];
  }
  if (st == IMF_OK && !path) st = IMF_RAISE(IMF_ERR_USAGE, "inspect needs a PATH");
  if (st != IMF_OK) return imf_cli_fail(cli, "inspect", st);
  int kind = path_kind(cli, path);
  if (kind) return inspect_model(cli, path, kind);
  imf_store_info info;
  st = imf_store_inspect(cli->comm, path, &info);
  if (st != IMF_OK) return imf_cli_fail(cli, "inspect", st);
  /* each batch's recorded value scale (min, max, step; known) */
  double(*bv)[4] = NULL;
  int64_t nbv = 0;
  imf_store *sv = NULL;
  st = imf_store_open(cli->comm, path, IMF_STORE_READ, 0, &sv);
  if (st != IMF_OK) return imf_cli_fail(cli, "inspect", st);
  nbv = imf_store_nbatches(sv);
  bv = calloc((size_t)(nbv ? nbv : 1), sizeof *bv);
  for (int64_t k = 0; bv && k < nbv; k++) bv[k][0] = imf_store_batch_scale(sv, k + 1, &bv[k][1], &bv[k][2], &bv[k][3]);
  imf_store_close(&sv);
  if (!bv) nbv = 0;
  if (cli->rank != 0) {
    free(bv);
    return 0;
  }
  int has_time = info.time_min != INT64_MIN && info.time_min != INT64_MAX;
  if (cli->json) {
    printf("{\"kind\":\"store\",\"path\":");
    imf_json_string(stdout, path);
    printf(",\"users\":%lld,\"items\":%lld,\"ratings\":%lld,\"batches\":%lld,\"scale_min\":",
           (long long)info.users, (long long)info.items, (long long)info.ratings, (long long)info.batches);
    num_or_null(info.scale_min);
    printf(",\"scale_max\":");
    num_or_null(info.scale_max);
    /* the observed value scale recorded at prepare/append (null: not recorded) */
    printf(",\"value_min\":");
    num_or_null(info.value_known ? info.value_min : NAN);
    printf(",\"value_max\":");
    num_or_null(info.value_known ? info.value_max : NAN);
    printf(",\"value_step\":");
    num_or_null(info.value_known ? info.value_step : NAN);
    printf(",\"relevance_threshold_auto\":");
    num_or_null(info.value_known ? imf_scale_auto_threshold(info.value_min, info.value_max,
                                                            isnan(info.value_step) ? 0 : info.value_step)
                                 : NAN);
    printf(",\"batch_values\":[");
    for (int64_t k = 0; k < nbv; k++) {
      printf("%s{\"batch\":%lld,\"min\":", k ? "," : "", (long long)(k + 1));
      num_or_null(bv[k][0] ? bv[k][1] : NAN);
      printf(",\"max\":");
      num_or_null(bv[k][0] ? bv[k][2] : NAN);
      printf(",\"step\":");
      num_or_null(bv[k][0] ? bv[k][3] : NAN);
      printf("}");
    }
    printf("]");
    if (has_time) printf(",\"time_min\":%lld,\"time_max\":%lld", (long long)info.time_min, (long long)info.time_max);
    else printf(",\"time_min\":null,\"time_max\":null");
    printf(",\"normalize\":\"%s\",\"digest\":\"%s\"}\n", info.normalize, info.digest);
  } else {
    printf("data store %s\n", path);
    printf("  users      %lld\n  items      %lld\n  ratings    %lld\n  batches    %lld\n", (long long)info.users,
           (long long)info.items, (long long)info.ratings, (long long)info.batches);
    if (isnan(info.scale_min) && isnan(info.scale_max)) printf("  scale      unbounded\n");
    else printf("  scale      %g .. %g\n", info.scale_min, info.scale_max);
    if (!info.value_known) printf("  values     (not recorded: a batch predates the record)\n");
    else {
      char step[32] = "none";
      if (!isnan(info.value_step)) snprintf(step, sizeof step, "%g", info.value_step);
      printf("  values     %g .. %g, step %s (auto relevance threshold %g)\n", info.value_min, info.value_max, step,
             imf_scale_auto_threshold(info.value_min, info.value_max, isnan(info.value_step) ? 0 : info.value_step));
    }
    for (int64_t k = 0; nbv > 1 && nbv <= 10 && k < nbv; k++) { /* more: --json batch_values */
      if (!bv[k][0]) printf("    batch %-3lld (not recorded)\n", (long long)(k + 1));
      else if (isnan(bv[k][3])) printf("    batch %-3lld %g .. %g, step none\n", (long long)(k + 1), bv[k][1], bv[k][2]);
      else printf("    batch %-3lld %g .. %g, step %g\n", (long long)(k + 1), bv[k][1], bv[k][2], bv[k][3]);
    }
    if (has_time) printf("  time       %lld .. %lld\n", (long long)info.time_min, (long long)info.time_max);
    else printf("  time       (no timestamps)\n");
    printf("  normalize  %s\n  digest     %s\n", info.normalize, info.digest);
  }
  free(bv);
  return 0;
}
