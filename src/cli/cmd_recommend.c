/* cmd_recommend.c - `incremf recommend`: top-N items, re-ranking, similar items. */
#include "cli.h"
#include "fsio.h"
#include "config.h"
#include "recommend.h"
#include <stdlib.h>
#include <string.h>

const char IMF_USAGE_RECOMMEND[] =
    "usage: incremf recommend --model DIR --data STORE --user ID [--top N] [--fallback popular] [--json]\n"
    "       incremf recommend --model DIR --data STORE --all --out FILE[.csv|.h5] [--top N]\n"
    "       incremf recommend --model DIR --user ID --items ID,ID,...\n"
    "       incremf recommend --model DIR --similar ITEM [--top N]\n"
    "\n"
    "  --user ID      the user's top N items (raw ids) with scores, excluding what they rated in\n"
    "                 STORE; an unknown user is an error (exit 3) unless --fallback popular\n"
    "                 (then the N most popular items, scored by their count of positive\n"
    "                 training ratings: the pop model's scores)\n"
    "  --all --out F  top N for every user, each rank scoring and writing its own users: CSV\n"
    "                 lines user,rank,item,score, or HDF5 for a name ending in .h5 (/items and\n"
    "                 /scores users x N, /user_ids, /item_ids)\n"
    "  --items LIST   the predicted scores of these items for the user, best first (re-ranking)\n"
    "  --similar ITEM the N items nearest to ITEM by cosine of the item factors (EASE: of\n"
    "                 the items' columns of B)\n"
    "  --top N        list length (default recommend.top)\n";

static void print_list(imf_cli *cli, imf_recommender *r, const char *what, const char *id, const imf_rec_list *l,
                       const int *unknown, char **req) {
  if (cli->rank != 0) return;
  if (cli->json) {
    printf("{\"%s\":", what);
    imf_json_string(stdout, id);
    printf(",\"fallback\":%s,\"items\":[", l->fallback ? "\"popular\"" : "null");
  } else if (l->fallback) { /* stdout keeps the list alone (README, recommend); the note on stderr */
    imf_info("user %s is unknown: the most popular items, scored by their count of positive training ratings", id);
  }
  for (int j = 0; j < l->n; j++) {
    char buf[1024];
    int32_t it = l->items[j];
    if (it >= 0) {
      size_t len;
      const char *s = imf_idmap_get(r->items, it, &len);
      snprintf(buf, sizeof buf, "%.*s", (int)len, s);
    } else {
      snprintf(buf, sizeof buf, "%s", req[-1 - it]);
    }
    int unk = unknown && it < 0;
    if (cli->json) {
      printf("%s{\"item\":", j ? "," : "");
      imf_json_string(stdout, buf);
      printf(",\"score\":%.6g%s}", l->scores[j], unk ? ",\"unknown\":true" : "");
    } else {
      printf("%d\t%s\t%.6g%s\n", j + 1, buf, l->scores[j], unk ? "\t(unknown item)" : "");
    }
  }
  if (cli->json) printf("]}\n");
}

int imf_cmd_recommend(imf_cli *cli, int argc, char **argv) {
  const char *model = NULL, *store = NULL, *user = NULL, *out = NULL, *items = NULL, *similar = NULL, *fb = NULL, *v;
  int all = 0, top = (int)imf_cfg_int(cli->cfg, "recommend.top");
  imf_status st = IMF_OK;
  for (int i = 1; i < argc && st == IMF_OK; i++) {
    if (!strcmp(argv[i], "--model")) st = imf_cli_value(argc, argv, &i, &model);
    else if (!strcmp(argv[i], "--data")) st = imf_cli_value(argc, argv, &i, &store);
    else if (!strcmp(argv[i], "--user")) st = imf_cli_value(argc, argv, &i, &user);
    else if (!strcmp(argv[i], "--out")) st = imf_cli_value(argc, argv, &i, &out);
    else if (!strcmp(argv[i], "--items")) st = imf_cli_value(argc, argv, &i, &items);
    else if (!strcmp(argv[i], "--similar")) st = imf_cli_value(argc, argv, &i, &similar);
    else if (!strcmp(argv[i], "--fallback")) st = imf_cli_value(argc, argv, &i, &fb);
    else if (!strcmp(argv[i], "--all")) all = 1;
    else if (!strcmp(argv[i], "--top")) {
      st = imf_cli_value(argc, argv, &i, &v);
      if (st == IMF_OK && (sscanf(v, "%d", &top) != 1 || top < 1))
        st = IMF_RAISE(IMF_ERR_USAGE, "--top wants a positive integer, got '%s'", v);
    } else st = IMF_RAISE(IMF_ERR_USAGE, "unknown option '%s' (see incremf recommend --help)", argv[i]);
  }
  if (st == IMF_OK && !model) st = IMF_RAISE(IMF_ERR_USAGE, "recommend needs --model DIR");
  if (st == IMF_OK && (!!user + all + !!similar) != 1)
    st = IMF_RAISE(IMF_ERR_USAGE, "recommend needs exactly one of --user ID, --all, --similar ITEM");
  if (st == IMF_OK && all && !out) st = IMF_RAISE(IMF_ERR_USAGE, "--all needs --out FILE");
  if (st == IMF_OK && fb && strcmp(fb, "popular"))
    st = IMF_RAISE(IMF_ERR_USAGE, "--fallback supports 'popular' only, got '%s'", fb);
  if (st == IMF_OK && out) { /* never into the model or the store (fsio.h) */
    const char *dirs[] = {model, store};
    st = imf_output_check_all(cli->comm, out, NULL, 0, dirs, 2);
  }
  if (st != IMF_OK) return imf_cli_fail(cli, "recommend", st);
  imf_recommender r;
  imf_rec_list l = {0};
  st = imf_recommender_open(cli->comm, model, (items || similar) ? NULL : store, cli->cfg, &r);
  if (st != IMF_OK) return imf_cli_fail(cli, "recommend", st);
  st = imf_recommender_clip(&r, cli->cfg, store); /* recommend.clip: the store's recorded scale */
  if (st != IMF_OK) {
    imf_recommender_close(&r);
    return imf_cli_fail(cli, "recommend", st);
  }
  if (all) {
    imf_rec_all_stats s;
    st = imf_recommend_all(&r, out, top, &s);
    if (st == IMF_OK && cli->rank == 0) {
      if (cli->json)
        printf("{\"out\":\"%s\",\"users\":%lld,\"top\":%d,\"ranks\":%d,\"seconds\":%.4f,\"score_seconds\":%.4f,"
               "\"gemm_seconds\":%.4f,\"write_seconds\":%.4f,\"users_per_s\":%.6g,\"k\":%d}\n",
               out, (long long)s.users, top, cli->size, s.seconds, s.score_seconds, s.gemm_seconds, s.write_seconds,
               s.score_seconds > 0 ? (double)s.users / s.score_seconds : 0, r.m->kw);
      else
        imf_info("recommend: top %d for %lld users written to %s (scoring %.2f s, of which sgemm %.2f s; writing %.2f s)",
                 top, (long long)s.users, out, s.score_seconds, s.gemm_seconds, s.write_seconds);
    }
  } else if (similar) {
    st = imf_recommend_similar(&r, similar, top, &l); /* collective: EASE scores on every rank */
    st = imf_agree(cli->comm, st);
    if (st == IMF_OK) print_list(cli, &r, "similar_to", similar, &l, NULL, NULL);
  } else if (items) {
    /* split the list */
    char *copy = strdup(items), *save = NULL;
    char *req[4096];
    int n = 0, unknown[4096];
    for (char *t = strtok_r(copy, ",", &save); t && n < 4096; t = strtok_r(NULL, ",", &save)) req[n++] = t;
    st = imf_recommend_items(&r, user, (const char *const *)req, n, &l, unknown); /* collective */
    st = imf_agree(cli->comm, st);
    if (st == IMF_OK) print_list(cli, &r, "user", user, &l, unknown, req);
    free(copy);
  } else {
    st = imf_recommend_user(&r, user, top, fb != NULL, &l);
    if (st == IMF_OK) print_list(cli, &r, "user", user, &l, NULL, NULL);
  }
  imf_rec_list_free(&l);
  imf_recommender_close(&r);
  if (st != IMF_OK) return imf_cli_fail(cli, "recommend", st);
  return 0;
}
