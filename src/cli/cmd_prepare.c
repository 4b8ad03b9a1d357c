/* cmd_prepare.c - `incremf prepare` and `incremf append`: raw ratings into the data store. */
#include "cli.h"
#include "fsio.h"
#include "store.h"
#include <string.h>

const char IMF_USAGE_PREPARE[] =
    "usage: incremf prepare --input FILE --data STORE [--rejects FILE] [--format F]\n"
    "                       [--max-reject-fraction X] [--config FILE.ini] [--set k=v ...] [--json]\n"
    "\n"
    "Parse, clean and number a rating file into a new data store (batch 1).\n"
    "  --input FILE       csv, tsv, MovieLens .dat or u.data, Matrix Market .mtx, LIBMF text;\n"
    "                     optionally .gz/.xz/.zst compressed (format auto-detected); a FIFO,\n"
    "                     a pipe or - (standard input) is read once by rank 0 and scattered;\n"
    "                     a file that changes while it is read is refused (exit 3)\n"
    "  --data STORE       store directory to create (must not hold a store yet)\n"
    "  --rejects FILE     write every rejected line: source, line, reason, raw text (never\n"
    "                     the input, never inside a store: exit 2; renamed when complete)\n"
    "  --format F         auto|csv|tsv|dat|ml100k|mtx|libmf (same as --set input.format=F)\n"
    "  --max-reject-fraction X   fail before writing if more lines are rejected (default 0.05)\n"
    "Cleaning and column options are the [input] and [clean] keys: `incremf help config`.\n"
    "Prints lines read = header + stored + merged + rejected (by reason).\n";

const char IMF_USAGE_APPEND[] =
    "usage: incremf append --data STORE --input FILE [--rejects FILE] [--format F] [--json]\n"
    "\n"
    "Add a file to an existing store as its next batch. Existing users and items keep their\n"
    "indices; a rating for a (user,item) the store holds supersedes it (per clean.duplicates);\n"
    "a file whose sha256 the store already holds is refused (exit 3). One writer at a time:\n"
    "a store locked by a live process is refused (exit 4).\n";

static void print_json(imf_cli *cli, const char *store, const char *input, const imf_ingest_report *r,
                       double secs, int64_t rss_max) {
  if (cli->rank != 0) return;
  printf("{\"store\":");
  imf_json_string(stdout, store);
  printf(",\"input\":");
  imf_json_string(stdout, input);
  printf(",\"batch\":%lld,\"sha256\":\"%s\",\"lines_read\":%lld,\"header\":%lld,\"stored\":%lld,"
         "\"merged\":%lld,\"rejected\":%lld,\"superseded\":%lld,\"new_users\":%lld,\"new_items\":%lld,"
         "\"rejected_by\":{",
         (long long)r->batch, r->sha256, (long long)r->lines_read, (long long)r->header, (long long)r->stored,
         (long long)r->merged, (long long)r->rejected, (long long)r->superseded, (long long)r->new_users,
         (long long)r->new_items);
  int first = 1;
  for (int k = 1; k < IMF_REJECT_REASONS; k++)
    if (r->rejected_by[k]) {
      printf("%s\"%s\":%lld", first ? "" : ",", imf_reject_reason_name(k), (long long)r->rejected_by[k]);
      first = 0;
    }
  printf("},\"seconds\":%.3f,\"peak_rss_max\":%lld}\n", secs, (long long)rss_max);
}

static int run(imf_cli *cli, int argc, char **argv, int append) {
  const char *cmd = append ? "append" : "prepare";
  const char *input = NULL, *store = NULL, *rejects = NULL, *v;
  imf_status st = IMF_OK;
  for (int i = 1; i < argc && st == IMF_OK; i++) {
    char set[300];
    if (!strcmp(argv[i], "--input")) st = imf_cli_value(argc, argv, &i, &input);
    else if (!strcmp(argv[i], "--data")) st = imf_cli_value(argc, argv, &i, &store);
    else if (!strcmp(argv[i], "--rejects")) st = imf_cli_value(argc, argv, &i, &rejects);
    else if (!strcmp(argv[i], "--format")) {
      if ((st = imf_cli_value(argc, argv, &i, &v)) == IMF_OK) {
        snprintf(set, sizeof set, "input.format=%s", v);
        st = imf_config_set(cli->cfg, set);
      }
    } else if (!strcmp(argv[i], "--max-reject-fraction")) {
      if ((st = imf_cli_value(argc, argv, &i, &v)) == IMF_OK) {
        snprintf(set, sizeof set, "clean.max_reject_fraction=%s", v);
        st = imf_config_set(cli->cfg, set);
      }
    } else st = IMF_RAISE(IMF_ERR_USAGE, "unknown option '%s' (see incremf %s --help)", argv[i], cmd);
  }
  if (st == IMF_OK && (!input || !store))
    st = IMF_RAISE(IMF_ERR_USAGE, "%s needs --input FILE and --data STORE", cmd);
  if (st == IMF_OK && rejects) { /* never onto the input or into a store (fsio.h) */
    const char *in[] = {input}, *dirs[] = {store};
    st = imf_output_check_all(cli->comm, rejects, in, 1, dirs, 1);
  }
  if (st != IMF_OK) return imf_cli_fail(cli, cmd, st);
  imf_ingest_report rep;
  double t0 = imf_wtime();
  st = imf_install_stop_signals(); /* SIGTERM/SIGINT/SIGUSR1: stop once the input is read, exit 75 */
  if (st != IMF_OK) return imf_cli_fail(cli, cmd, st);
  st = append ? imf_append(cli->comm, cli->cfg, store, input, rejects, &rep)
              : imf_prepare(cli->comm, cli->cfg, store, input, rejects, &rep);
  if (st != IMF_OK) return imf_cli_fail(cli, cmd, st);
  double secs = imf_wtime() - t0;
  /* peak memory per rank, against the final arrays (20 bytes a rating) the rank held */
  int64_t rss = imf_peak_rss(), rss_max = 0;
  MPI_Reduce(&rss, &rss_max, 1, MPI_INT64_T, MPI_MAX, 0, cli->comm);
  imf_info("%s: batch %lld of %s written in %.2f s; peak memory per rank %.1f MB", cmd, (long long)rep.batch,
           store, secs, (double)rss_max / 1e6);
  imf_info("%s: %lld lines read = %lld header + %lld stored + %lld merged duplicates + %lld rejected",
           input, (long long)rep.lines_read, (long long)rep.header, (long long)rep.stored, (long long)rep.merged,
           (long long)rep.rejected);
  for (int k = 1; k < IMF_REJECT_REASONS; k++)
    if (rep.rejected_by[k]) imf_info("  rejected %-14s %lld", imf_reject_reason_name(k), (long long)rep.rejected_by[k]);
  imf_info("  new users %lld, new items %lld, superseded ratings %lld", (long long)rep.new_users,
           (long long)rep.new_items, (long long)rep.superseded);
  if (cli->json) print_json(cli, store, input, &rep, secs, rss_max);
  return 0;
}

int imf_cmd_prepare(imf_cli *cli, int argc, char **argv) { return run(cli, argc, argv, 0); }
int imf_cmd_append(imf_cli *cli, int argc, char **argv) { return run(cli, argc, argv, 1); }
