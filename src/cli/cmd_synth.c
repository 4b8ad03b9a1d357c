/* cmd_synth.c - `incremf synth`: write a synthetic rating data set (see src/synth.h). Flags
 * override the synth.* configuration keys, which come from --config/--set as for every
 * subcommand. */
#include "cli.h"
#include "fsio.h"
#include "synth.h"
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char IMF_USAGE_SYNTH[] =
    "usage: incremf synth --out FILE [options]\n"
    "\n"
    "Write a deterministic synthetic rating data set: power-law user activity and item\n"
    "popularity, a planted low-rank model with biases and noise, timestamps in file order,\n"
    "optional drift and corrupt lines. A user's items are drawn without replacement: a\n"
    "(user, item) pair repeats only as a re-rating (--rerate) or a duplicate corrupt line;\n"
    "a user rates at most two thirds of the items, and passes further lines on to others.\n"
    "The bytes depend only on the options, never on the number of ranks. Under mpirun every\n"
    "rank generates part of the file (MPI-IO).\n"
    "\n"
    "options (each overrides the synth.* key named in brackets):\n"
    "  --out FILE        output file (required); .gz, .xz or .zst compresses. Written to a\n"
    "                    temporary name first and renamed when complete\n"
    "  --format F        csv (header user,item,rating,timestamp), tsv, dat (u::i::r::t),\n"
    "                    ml100k (tab separated, no header), mtx (Matrix Market, no time),\n"
    "                    libmf (u i r); default: from the name (.csv .tsv .dat .data .mtx\n"
    "                    .libmf), else csv\n"
    "  --users N         number of users, ids 1..N            [synth.users]\n"
    "  --items N         number of items, ids 1..N            [synth.items]\n"
    "  --ratings N       number of data lines                 [synth.ratings]\n"
    "  --rank R          rank of the planted model            [synth.rank]\n"
    "  --noise S         rating noise standard deviation      [synth.noise]\n"
    "  --seed S          random seed: same seed, same bytes   [synth.seed]\n"
    "  --drift D         0..1: tastes and popularity shift over the time span [synth.drift]\n"
    "  --corrupt F       0..1: share of corrupt lines of every kind the cleaner handles\n"
    "                    (missing field, bad/nan/out-of-range rating, empty or over-long id,\n"
    "                    bad timestamp, blank line, NUL byte, duplicate line)\n"
    "                                                         [synth.corrupt_fraction]\n"
    "  --rerate F        0..1: share of lines that re-rate the user's latest item (a\n"
    "                    repeated pair with a new rating and time); default 0 [synth.rerate]\n"
    "  --implicit        no rating column (implicit feedback) [synth.implicit]\n"
    "  other keys (scale_min, scale_max, step, user_skew, item_skew, time_start,\n"
    "  time_span_days): --set synth.KEY=VALUE; `incremf help config` lists them\n"
    "\n"
    "common options: --config FILE.ini, --set section.key=value, --quiet, --json (print\n"
    "{\"out\",\"lines\",\"bytes\",\"seconds\",...} on stdout), --log-format text|json, --help\n"
    "\n"
    "example: mpirun -n 4 incremf synth --out ratings.csv.zst --users 100000 --items 20000 \\\n"
    "           --ratings 10000000 --drift 0.3 --corrupt 0.01\n";

static const struct {
  const char *name;
  imf_format f;
} FORMATS[] = {{"csv", IMF_FMT_CSV}, {"tsv", IMF_FMT_TSV},       {"dat", IMF_FMT_DAT},
               {"ml100k", IMF_FMT_ML100K}, {"mtx", IMF_FMT_MTX}, {"libmf", IMF_FMT_LIBMF}};

static const char *format_name(imf_format f) {
  for (size_t k = 0; k < sizeof FORMATS / sizeof FORMATS[0]; k++)
    if (FORMATS[k].f == f) return FORMATS[k].name;
  return "?";
}

static imf_status parse_i64(const char *flag, const char *v, int64_t *out) {
  char *end;
  errno = 0;
  long long x = strtoll(v, &end, 10);
  if (errno || end == v || *end) IMF_FAIL(IMF_ERR_USAGE, "%s needs an integer, got '%s'", flag, v);
  *out = x;
  return IMF_OK;
}

static imf_status parse_double(const char *flag, const char *v, double *out) {
  char *end;
  errno = 0;
  double x = strtod(v, &end);
  if (errno || end == v || *end || !isfinite(x)) IMF_FAIL(IMF_ERR_USAGE, "%s needs a number, got '%s'", flag, v);
  *out = x;
  return IMF_OK;
}

static imf_status parse_args(imf_cli *cli, int argc, char **argv, imf_synth_opts *o, const char **out) {
  IMF_CHECK(imf_synth_opts_from_config(cli->cfg, o));
  const char *fmt = NULL;
  *out = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = NULL;
    int64_t n;
    if (!strcmp(a, "--implicit")) {
      o->implicit = 1;
      continue;
    }
    if (strncmp(a, "--", 2) != 0) IMF_FAIL(IMF_ERR_USAGE, "unexpected argument '%s'", a);
    static const char *const VALUED[] = {"--out", "--format", "--users", "--items", "--ratings", "--rank",
                                         "--noise", "--seed", "--drift", "--corrupt", "--rerate"};
    int known = 0;
    for (size_t k = 0; k < sizeof VALUED / sizeof VALUED[0]; k++)
      if (!strcmp(a, VALUED[k])) known = 1;
    if (!known) IMF_FAIL(IMF_ERR_USAGE, "unknown option '%s' (see incremf synth --help)", a);
    IMF_CHECK(imf_cli_value(argc, argv, &i, &v));
    if (!strcmp(a, "--out")) *out = v;
    else if (!strcmp(a, "--format")) fmt = v;
    else if (!strcmp(a, "--users")) IMF_CHECK(parse_i64(a, v, &o->users));
    else if (!strcmp(a, "--items")) IMF_CHECK(parse_i64(a, v, &o->items));
    else if (!strcmp(a, "--ratings")) IMF_CHECK(parse_i64(a, v, &o->ratings));
    else if (!strcmp(a, "--rank")) {
      IMF_CHECK(parse_i64(a, v, &n));
      if (n < 0 || n > 1024) IMF_FAIL(IMF_ERR_USAGE, "--rank must be in 0..1024, got %s", v);
      o->rank = (int)n;
    } else if (!strcmp(a, "--noise")) IMF_CHECK(parse_double(a, v, &o->noise));
    else if (!strcmp(a, "--seed")) {
      IMF_CHECK(parse_i64(a, v, &n));
      o->seed = (uint64_t)n;
    } else if (!strcmp(a, "--drift")) IMF_CHECK(parse_double(a, v, &o->drift));
    else if (!strcmp(a, "--corrupt")) IMF_CHECK(parse_double(a, v, &o->corrupt_fraction));
    else if (!strcmp(a, "--rerate")) IMF_CHECK(parse_double(a, v, &o->rerate));
  }
  if (!*out) IMF_FAIL(IMF_ERR_USAGE, "--out FILE is required");
  if (fmt) {
    int found = 0;
    for (size_t k = 0; k < sizeof FORMATS / sizeof FORMATS[0]; k++)
      if (!strcmp(fmt, FORMATS[k].name)) {
        o->format = FORMATS[k].f;
        found = 1;
      }
    if (!found) IMF_FAIL(IMF_ERR_USAGE, "--format must be csv, tsv, dat, ml100k, mtx or libmf, got '%s'", fmt);
  } else {
    o->format = imf_synth_format_for_path(*out);
  }
  return imf_synth_validate(o);
}

int imf_cmd_synth(imf_cli *cli, int argc, char **argv) {
  imf_synth_opts o;
  const char *out = NULL;
  /* argv is the same on every rank, so a usage error is raised by all of them alike */
  imf_status st = parse_args(cli, argc, argv, &o, &out);
  if (st == IMF_OK && out) st = imf_output_check_all(cli->comm, out, NULL, 0, NULL, 0); /* fsio.h */
  if (st != IMF_OK) return imf_cli_fail(cli, "synth", st);
  imf_synth_result res;
  st = imf_synth_write_ex(cli->comm, &o, out, &res);
  if (st != IMF_OK) return imf_cli_fail(cli, "synth", st);
  if (cli->rank == 0) {
    double mbs = res.seconds > 0 ? (double)res.raw_bytes / 1e6 / res.seconds : 0;
    if (cli->json) {
      printf("{\"out\":");
      imf_json_string(stdout, out);
      printf(",\"format\":\"%s\",\"lines\":%lld,\"ratings\":%lld,\"bytes\":%lld,\"raw_bytes\":%lld,"
             "\"seconds\":%.3f,\"mb_per_s\":%.1f,\"ranks\":%d}\n",
             format_name(o.format), (long long)res.lines, (long long)res.ratings, (long long)res.bytes,
             (long long)res.raw_bytes, res.seconds, mbs, cli->size);
      fflush(stdout);
    } else {
      imf_info("synth: wrote %s: %lld lines, %lld bytes%s in %.2f s (%.1f MB/s of text, %d rank%s)", out,
               (long long)res.lines, (long long)res.bytes, res.bytes != res.raw_bytes ? " compressed" : "",
               res.seconds, mbs, cli->size, cli->size == 1 ? "" : "s");
    }
  }
  return 0;
}
