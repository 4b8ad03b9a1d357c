/* plot.c - the model directory's history drawn by gnuplot (see plot.h). */
#include "plot.h"
#include "error.h"
#include "log.h"
#include "registry.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

enum { K_TRAIN, K_FOLDIN, K_WARM, K_RETRAIN, K_REJECTED, K_OTHER, K_N };
static const char *const kind_title[K_N] = {"trained", "fold-in", "warm", "retrain", "rejected challenger",
                                            "gram (EASE) / other"};
/* gnuplot point types (png terminals): 7 filled circle, 9 filled triangle, 5 filled square,
 * 13 filled diamond, 2 cross, 6 open circle */
static const int kind_pt[K_N] = {7, 9, 5, 13, 2, 6};
static const char *const kind_color[K_N] = {"#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#d62728", "#17becf"};

static int kind_of(const imf_registry_record *r) {
  if (!strcmp(r->decision, "rejected")) return K_REJECTED;
  if (!strcmp(r->strategy, "train")) return K_TRAIN;
  if (!strcmp(r->strategy, "fold-in")) return K_FOLDIN;
  if (!strcmp(r->strategy, "warm")) return K_WARM;
  if (!strcmp(r->strategy, "retrain")) return K_RETRAIN;
  return K_OTHER;
}

/* The metric a record was judged by: its name, "rmse" for records written before every update
 * named it (their figures are champion_rmse / challenger_rmse). */
static const char *rec_metric(const imf_registry_record *r) { return r->metric[0] ? r->metric : "rmse"; }

/* Whether record r has a point on the metric's axis: *chall its (challenger's or trained
 * model's) score, *champ the champion's score on the same ratings (NaN: none, as for train). */
static int rec_scores(const imf_registry_record *r, const char *metric, double *champ, double *chall) {
  if (strcmp(r->event, "train") && strcmp(r->event, "update")) return 0;
  if (strcmp(rec_metric(r), metric)) {
    /* a train record names no metric: its holdout RMSE belongs on an RMSE axis */
    if (!(strcmp(metric, "rmse") == 0 && !strcmp(r->event, "train"))) return 0;
  }
  int by_score = r->metric[0] && (isfinite(r->champion_score) || isfinite(r->challenger_score));
  *champ = by_score ? r->champion_score : r->champion_rmse;
  *chall = by_score ? r->challenger_score : r->challenger_rmse;
  return isfinite(*chall);
}

/* The executable gnuplot would be found as by execvp, or "" when there is none. */
static void find_gnuplot(const char *name, char *out, size_t cap) {
  out[0] = 0;
  if (strchr(name, '/')) {
    if (access(name, X_OK) == 0) snprintf(out, cap, "%s", name);
    return;
  }
  const char *path = getenv("PATH");
  if (!path) path = "/usr/local/bin:/usr/bin:/bin";
  while (*path) {
    const char *e = strchr(path, ':');
    size_t n = e ? (size_t)(e - path) : strlen(path);
    char cand[4096];
    if (n > 0 && n + strlen(name) + 2 < sizeof cand) {
      memcpy(cand, path, n);
      cand[n] = '/';
      strcpy(cand + n + 1, name);
      struct stat sb;
      if (stat(cand, &sb) == 0 && S_ISREG(sb.st_mode) && access(cand, X_OK) == 0) {
        snprintf(out, cap, "%s", cand);
        return;
      }
    }
    if (!e) break;
    path = e + 1;
  }
}

/* A number after "key": in one JSON line of our own train.jsonl (NaN when absent or null). */
static double json_num(const char *line, const char *key) {
  char pat[64];
  snprintf(pat, sizeof pat, "\"%s\":", key);
  const char *p = strstr(line, pat);
  if (!p) return NAN;
  p += strlen(pat);
  char *end;
  double v = strtod(p, &end);
  return end == p ? NAN : v;
}

/* The latest training run of train.jsonl: the lines from the last one with iteration 1; a
 * repeated iteration (a resume after a kill) replaces the earlier value. Writes
 * "iteration train_rmse val_rmse" rows (NaN as "NaN"); *rows = number written. */
static imf_status write_curve(const char *log_path, const char *dat, int64_t *rows) {
  *rows = 0;
  FILE *in = fopen(log_path, "r");
  FILE *out = fopen(dat, "w");
  if (!out) {
    if (in) fclose(in);
    IMF_FAIL(IMF_ERR_RUNTIME, "cannot write %s: %s", dat, strerror(errno));
  }
  double *tr = NULL, *va = NULL;
  int64_t cap = 0, n = 0;
  imf_status st = IMF_OK;
  if (in) {
    char *line = NULL;
    size_t lcap = 0;
    while (getline(&line, &lcap, in) > 0) {
      double it = json_num(line, "iteration");
      if (!isfinite(it) || it < 1 || it > 1e9) continue;
      int64_t i = (int64_t)it;
      if (i == 1) n = 0; /* a new run starts */
      if (i > cap) {
        int64_t nc = cap ? cap : 64;
        while (nc < i) nc *= 2;
        double *a = realloc(tr, (size_t)nc * sizeof *a), *b = a ? realloc(va, (size_t)nc * sizeof *b) : NULL;
        if (a) tr = a;
        if (b) va = b;
        if (!a || !b) {
          st = IMF_RAISE(IMF_ERR_NOMEM, "out of memory reading %s", log_path);
          break;
        }
        cap = nc;
      }
      for (int64_t j = n; j < i - 1; j++) tr[j] = va[j] = NAN; /* a gap: no point */
      tr[i - 1] = json_num(line, "train_rmse");
      va[i - 1] = json_num(line, "val_rmse");
      n = i;
    }
    free(line);
    fclose(in);
  }
  for (int64_t j = 0; j < n && st == IMF_OK; j++) {
    if (!isfinite(tr[j]) && !isfinite(va[j])) continue;
    fprintf(out, "%lld %.9g %.9g\n", (long long)(j + 1), tr[j], va[j]);
    (*rows)++;
  }
  free(tr);
  free(va);
  if (fclose(out) != 0 && st == IMF_OK) st = IMF_RAISE(IMF_ERR_RUNTIME, "cannot write %s", dat);
  return st;
}

/* Copy src to dst through dst.tmp + rename. */
static imf_status copy_file(const char *src, const char *dst) {
  char tmp[4200];
  if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", dst) >= sizeof tmp) IMF_FAIL(IMF_ERR_USAGE, "path too long: %s", dst);
  FILE *in = fopen(src, "rb");
  if (!in) IMF_FAIL(IMF_ERR_RUNTIME, "gnuplot wrote no image (%s)", strerror(errno));
  FILE *out = fopen(tmp, "wb");
  if (!out) {
    int e = errno;
    fclose(in);
    IMF_FAIL(IMF_ERR_RUNTIME, "cannot write %s: %s", tmp, strerror(e));
  }
  char buf[65536];
  size_t k;
  int bad = 0;
  while ((k = fread(buf, 1, sizeof buf, in)) > 0)
    if (fwrite(buf, 1, k, out) != k) bad = 1;
  if (ferror(in)) bad = 1;
  fclose(in);
  if (fclose(out) != 0) bad = 1;
  if (bad || rename(tmp, dst) != 0) {
    int e = errno;
    unlink(tmp);
    IMF_FAIL(IMF_ERR_RUNTIME, "cannot write %s: %s", dst, strerror(e));
  }
  return IMF_OK;
}

static imf_status run_gnuplot(const char *exe, const char *script, const char *errlog) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) IMF_FAIL(IMF_ERR_RUNTIME, "cannot start gnuplot: fork: %s", strerror(errno));
  if (pid == 0) {
    int fd = open(errlog, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) {
      dup2(fd, STDERR_FILENO);
      dup2(fd, STDOUT_FILENO);
      close(fd);
    }
    int nul = open("/dev/null", O_RDONLY);
    if (nul >= 0) {
      dup2(nul, STDIN_FILENO);
      close(nul);
    }
    char *const argv[] = {(char *)exe, (char *)script, NULL};
    execvp(exe, argv);
    _exit(127);
  }
  int ws = 0;
  while (waitpid(pid, &ws, 0) < 0)
    if (errno != EINTR) IMF_FAIL(IMF_ERR_RUNTIME, "waiting for gnuplot: %s", strerror(errno));
  if (WIFEXITED(ws) && WEXITSTATUS(ws) == 0) return IMF_OK;
  char msg[512] = "";
  FILE *f = fopen(errlog, "r");
  if (f) {
    size_t k = fread(msg, 1, sizeof msg - 1, f);
    msg[k] = 0;
    fclose(f);
    for (char *p = msg; *p; p++)
      if (*p == '\n') *p = ' ';
  }
  if (WIFEXITED(ws))
    IMF_FAIL(IMF_ERR_RUNTIME, "gnuplot failed (exit %d): %s", WEXITSTATUS(ws), msg[0] ? msg : "no message");
  IMF_FAIL(IMF_ERR_RUNTIME, "gnuplot killed by signal %d", WIFSIGNALED(ws) ? WTERMSIG(ws) : 0);
}

static int64_t read_current(const char *model_dir) {
  char p[4200];
  snprintf(p, sizeof p, "%s/CURRENT", model_dir);
  FILE *f = fopen(p, "r");
  if (!f) return 0;
  char buf[64] = "";
  long long v = 0;
  if (fgets(buf, sizeof buf, f) && sscanf(buf, "v%lld.h5", &v) != 1) v = 0;
  fclose(f);
  return (int64_t)v;
}

/* What plot_rank0 needs before it makes any file: gnuplot's path, the number of versions to
 * plot, and a fresh temporary directory (the first thing there is to clean up). */
static imf_status plot_prepare(const char *model_dir, const imf_registry_record *recs, int64_t nrec, char *exe,
                               size_t exe_cap, int64_t *nver, char *dir, size_t dir_cap) {
  const char *gp_name = getenv("IMF_GNUPLOT");
  if (!gp_name || !gp_name[0]) gp_name = "gnuplot";
  find_gnuplot(gp_name, exe, exe_cap);
  if (!exe[0])
    IMF_FAIL(IMF_ERR_RUNTIME,
             "cannot plot: gnuplot not found (looked for '%s' on PATH); install it (Debian: apt-get install "
             "gnuplot-nox) or set IMF_GNUPLOT to its path",
             gp_name);

  /* the versions: the record that created each (last train/update record naming it) */
  *nver = 0;
  for (int64_t j = 0; j < nrec; j++) {
    if (strcmp(recs[j].event, "train") && strcmp(recs[j].event, "update")) continue;
    if (imf_registry_find(recs, nrec, recs[j].version) == &recs[j]) (*nver)++;
  }
  if (*nver == 0) IMF_FAIL(IMF_ERR_NOTFOUND, "%s has no recorded versions to plot (registry.jsonl)", model_dir);

  const char *td = getenv("TMPDIR");
  if ((size_t)snprintf(dir, dir_cap, "%s/incremf-plot.XXXXXX", td && td[0] ? td : "/tmp") >= dir_cap ||
      !mkdtemp(dir))
    IMF_FAIL(IMF_ERR_RUNTIME, "cannot create a temporary directory for the plot: %s", strerror(errno));
  return IMF_OK;
}

/* The axis label of a metric name: upper case before any '@' ("ndcg@10" -> "NDCG@10"), and
 * only letters, digits and '@' (it reaches the gnuplot script). */
static void metric_label(const char *metric, char *label, size_t cap) {
  size_t q = 0;
  for (; metric[q] && metric[q] != '@' && q + 1 < cap; q++)
    label[q] = (char)(metric[q] >= 'a' && metric[q] <= 'z' ? metric[q] - 'a' + 'A' : metric[q]);
  snprintf(label + q, cap - q, "%s", metric + q);
  for (char *c = label; *c; c++) /* only these characters reach the script */
    if (!((*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '@')) *c = '_';
}

/* versions.dat: one gnuplot data block (index) per kind: "version score champion" (the
 * champion's score on the same ratings, NaN for a trained version). block[k]: kind k's index
 * (-1: none), count[k] its versions; *npairs: versions with a champion's score; *cur_rmse: the
 * current version's score. */
static imf_status write_versions(const char *vdat, const imf_registry_record *recs, int64_t nrec, const char *metric,
                                 int64_t cur, int block[K_N], int *nblock_out, int64_t count[K_N], int64_t *npairs,
                                 double *cur_rmse) {
  int nblock = 0;
  FILE *f = fopen(vdat, "w");
  if (!f) IMF_FAIL(IMF_ERR_RUNTIME, "cannot write %s: %s", vdat, strerror(errno));
  for (int k = 0; k < K_N; k++) {
    block[k] = -1;
    int first = 1;
    for (int64_t j = 0; j < nrec; j++) {
      const imf_registry_record *r = &recs[j];
      if (strcmp(r->event, "train") && strcmp(r->event, "update")) continue;
      double champ = NAN, chall = NAN;
      if (imf_registry_find(recs, nrec, r->version) != r || kind_of(r) != k || !rec_scores(r, metric, &champ, &chall))
        continue;
      if (first) {
        if (nblock) fprintf(f, "\n\n");
        block[k] = nblock++;
        first = 0;
      }
      fprintf(f, "%lld %.9g %.9g\n", (long long)r->version, chall, champ);
      count[k]++;
      *npairs += isfinite(champ);
      if (r->version == cur) *cur_rmse = chall;
    }
  }
  *nblock_out = nblock;
  if (fclose(f) != 0) IMF_FAIL(IMF_ERR_RUNTIME, "cannot write %s", vdat);
  return IMF_OK;
}

static imf_status plot_rank0(const char *model_dir, const char *png_path, const imf_registry_record *recs,
                             int64_t nrec) {
  char exe[4096], dir[4096];
  int64_t nver = 0;
  imf_status st = plot_prepare(model_dir, recs, nrec, exe, sizeof exe, &nver, dir, sizeof dir);
  if (st != IMF_OK) return st; /* nothing made yet */
  int64_t cur = read_current(model_dir);
  char vdat[4200], cdat[4200], script[4200], png[4200], errlog[4200], logp[4200];
  snprintf(vdat, sizeof vdat, "%s/versions.dat", dir);
  snprintf(cdat, sizeof cdat, "%s/curve.dat", dir);
  snprintf(script, sizeof script, "%s/plot.gp", dir);
  snprintf(png, sizeof png, "%s/plot.png", dir);
  snprintf(errlog, sizeof errlog, "%s/gnuplot.log", dir);
  snprintf(logp, sizeof logp, "%s/train.jsonl", model_dir);
  if (strpbrk(dir, "'\n\r")) { /* cannot be quoted safely in the script */
    st = IMF_RAISE(IMF_ERR_USAGE, "TMPDIR must not contain quotes or newlines");
    goto done;
  }

  /* the axis: the metric the latest update was judged by (rmse when none names one) */
  const char *metric = "rmse";
  for (int64_t j = nrec - 1; j >= 0; j--)
    if (!strcmp(recs[j].event, "update")) {
      metric = rec_metric(&recs[j]);
      break;
    }
  char label[40];
  metric_label(metric, label, sizeof label);
  int64_t count[K_N] = {0}, npairs = 0;
  double cur_rmse = NAN;
  int block[K_N], nblock = 0;
  IMF_TRY(write_versions(vdat, recs, nrec, metric, cur, block, &nblock, count, &npairs, &cur_rmse), done);
  FILE *f = NULL;
  int64_t crow = 0;
  IMF_TRY(write_curve(logp, cdat, &crow), done);
  if (nblock == 0 && crow == 0) {
    st = IMF_RAISE(IMF_ERR_NOTFOUND, "%s: nothing to plot (no version has a holdout %s and train.jsonl has no sweeps)", model_dir,
                   label);
    goto done;
  }
  if (nblock == 0)
    imf_warn("status --plot: no version has a holdout %s (holdout.fraction = 0 at prepare?): training curve only", label);

  /* the script: names only the files of the temporary directory; every other token is a
   * constant of this file or a number formatted here */
  f = fopen(script, "w");
  if (!f) {
    st = IMF_RAISE(IMF_ERR_RUNTIME, "cannot write %s: %s", script, strerror(errno));
    goto done;
  }
  fprintf(f, "cd '%s'\n", dir); /* mkdtemp's name: TMPDIR (checked below) + fixed text */
  int panels = (nblock > 0) + (crow > 0);
  fprintf(f, "set terminal pngcairo size 1000,%d font 'sans,10'\nset output 'plot.png'\n", panels == 2 ? 900 : 500);
  /* noenhanced: '@' of "NDCG@10" is no markup */
  fprintf(f, "set termoption noenhanced\nset datafile missing 'NaN'\nset grid\nset key outside right top\n");
  if (panels == 2) fprintf(f, "set multiplot layout 2,1\n");
  if (nblock > 0) {
    fprintf(f, "set title 'holdout %s of each update: champion (open) and challenger on the same ratings "
               "(current: v%lld)'\n", label, (long long)cur);
    fprintf(f, "set xlabel 'version'\nset ylabel 'holdout %s (%s)'\nset xtics 1\nset offsets 0.5, 0.5, 0, 0\n", label,
            strcmp(metric, "rmse") ? "higher is better" : "lower is better");
    if (nver > 30) fprintf(f, "set xtics autofreq\n");
    fprintf(f, "plot ");
    int sep = 0;
    if (npairs > 0) { /* each update: a segment from the champion's score to the challenger's */
      for (int k = 0; k < K_N; k++) {
        if (block[k] < 0) continue;
        fprintf(f, "%s'versions.dat' index %d using 1:3:(0):($2-$3) with vectors nohead lw 1 lc rgb '#bbbbbb' notitle, "
                   "\\\n     'versions.dat' index %d using 1:3 with points pt 6 ps 1.4 lc rgb '#555555' %s",
                sep ? ", \\\n     " : "", block[k], block[k], sep ? "notitle" : "title 'champion'");
        sep = 1;
      }
    }
    for (int k = 0; k < K_N; k++) {
      if (block[k] < 0) continue;
      fprintf(f, "%s'versions.dat' index %d using 1:2 with points pt %d ps 1.6 lc rgb '%s' title '%s (%lld)'",
              sep ? ", \\\n     " : "", block[k], kind_pt[k], kind_color[k], kind_title[k], (long long)count[k]);
      sep = 1;
    }
    if (isfinite(cur_rmse))
      fprintf(f, ", \\\n     '+' using (%lld):(%.9g) every ::0::0 with points pt 6 ps 3.2 lw 2 lc rgb 'black' "
                 "title 'current'",
              (long long)cur, cur_rmse);
    fprintf(f, "\n");
  }
  if (crow) {
    /* train.jsonl is written by `train` only (updates do not append to it) */
    int64_t trained = 0;
    for (int64_t j = nrec - 1; j >= 0 && !trained; j--)
      if (!strcmp(recs[j].event, "train")) trained = recs[j].version;
    if (trained && trained == cur)
      fprintf(f, "set title 'training curve of the current version v%lld (train.jsonl)'\n", (long long)cur);
    else if (trained)
      fprintf(f, "set title 'training curve of v%lld, the last train run (train.jsonl; updates add no curve)'\n",
              (long long)trained);
    else
      fprintf(f, "set title 'training curve of the latest training run (train.jsonl)'\n");
    fprintf(f, "set xlabel 'sweep'\nset ylabel 'RMSE'\nset xtics autofreq\nset offsets 0, 0, 0, 0\n");
    fprintf(f, "plot 'curve.dat' using 1:2 with linespoints pt 7 ps 0.6 lc rgb '#1f77b4' title 'train RMSE', \\\n"
               "     'curve.dat' using 1:3 with linespoints pt 5 ps 0.6 lc rgb '#d62728' title 'validation RMSE'\n");
  }
  if (panels == 2) fprintf(f, "unset multiplot\n");
  fprintf(f, "set output\n");
  if (fclose(f) != 0) {
    st = IMF_RAISE(IMF_ERR_RUNTIME, "cannot write %s", script);
    goto done;
  }
  IMF_TRY(run_gnuplot(exe, script, errlog), done);
  IMF_TRY(copy_file(png, png_path), done);
  imf_info("status: plot of %lld versions and %lld sweeps written to %s", (long long)nver, (long long)crow, png_path);
done:
  if (!getenv("IMF_KEEP_PLOT_FILES")) {
    unlink(vdat);
    unlink(cdat);
    unlink(script);
    unlink(png);
    unlink(errlog);
    rmdir(dir);
  } else
    imf_info("status: plot files kept in %s", dir);
  return st;
}

imf_status imf_status_plot(MPI_Comm comm, const char *model_dir, const char *png_path) {
  imf_registry_record *recs = NULL;
  int64_t nrec = 0;
  int rank;
  MPI_Comm_rank(comm, &rank);
  imf_status st = imf_registry_load(comm, model_dir, &recs, &nrec);
  if (st == IMF_OK && rank == 0) st = plot_rank0(model_dir, png_path, recs, nrec);
  imf_free(&recs);
  return imf_agree(comm, st);
}
