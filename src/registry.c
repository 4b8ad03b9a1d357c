/* registry.c - the model directory's lineage file (registry.h): JSON lines written and read
 * here only. The reader is deliberately small: it understands exactly the objects this file
 * writes (flat, string and number values), which is all the registry ever holds. */
#include "registry.h"
#include "fsio.h"
#include "error.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void imf_registry_record_init(imf_registry_record *r) {
  memset(r, 0, sizeof *r);
  r->champion_rmse = r->challenger_rmse = r->newest_rmse = r->drift_baseline = NAN;
  r->seconds = NAN;
  r->champion_score = r->challenger_score = NAN;
  r->holdout_sse = NAN;
  r->diff_mean = r->diff_lo = r->diff_hi = r->newest_score = NAN;
  r->holdout_users = -1;
}

void imf_registry_path(const char *model_dir, char *path, size_t cap) {
  snprintf(path, cap, "%s/registry.jsonl", model_dir);
}

static void jnum(FILE *f, const char *k, double v) {
  if (isfinite(v)) fprintf(f, ",\"%s\":%.9g", k, v);
  else fprintf(f, ",\"%s\":null", k);
}
static void jstr(FILE *f, const char *k, const char *v) {
  fprintf(f, ",\"%s\":", k);
  imf_json_string(f, v);
}

void imf_registry_write_json(FILE *f, const imf_registry_record *r) {
  fprintf(f, "{\"event\":");
  imf_json_string(f, r->event);
  fprintf(f, ",\"version\":%lld,\"parent\":%lld,\"batches_seen\":%lld", (long long)r->version,
          (long long)r->parent, (long long)r->batches_seen);
  jstr(f, "requested", r->requested);
  jstr(f, "strategy", r->strategy);
  jstr(f, "decision", r->decision);
  jnum(f, "champion_rmse", r->champion_rmse);
  jnum(f, "challenger_rmse", r->challenger_rmse);
  jnum(f, "newest_rmse", r->newest_rmse);
  jnum(f, "drift_baseline", r->drift_baseline);
  fprintf(f, ",\"drift\":%s,\"new_batches\":%lld,\"new_ratings\":%lld,\"eval_n\":%lld", r->drift ? "true" : "false",
          (long long)r->new_batches, (long long)r->new_ratings, (long long)r->eval_n);
  jnum(f, "seconds", r->seconds);
  jstr(f, "created", r->created);
  jstr(f, "store", r->store);
  jstr(f, "note", r->note);
  if (r->metric[0]) {
    jstr(f, "metric", r->metric);
    jnum(f, "champion_score", r->champion_score);
    jnum(f, "challenger_score", r->challenger_score);
  }
  if (r->diff_users > 0) {
    jnum(f, "diff_mean", r->diff_mean);
    jnum(f, "diff_lo", r->diff_lo);
    jnum(f, "diff_hi", r->diff_hi);
    fprintf(f, ",\"diff_users\":%lld", (long long)r->diff_users);
  }
  if (isfinite(r->newest_score)) jnum(f, "newest_score", r->newest_score);
  if (isfinite(r->holdout_sse))
    fprintf(f, ",\"holdout_sse\":%.17g,\"holdout_n\":%lld,\"holdout_forgotten\":%lld", r->holdout_sse,
            (long long)r->holdout_n, (long long)r->holdout_forgotten);
  if (isfinite(r->holdout_sse) && r->holdout_users >= 0)
    fprintf(f, ",\"holdout_users\":%lld", (long long)r->holdout_users);
  fputc('}', f);
}

/* ---- reading: find "key": in a line and decode the value */

static const char *jfind(const char *line, const char *key) {
  char pat[64];
  snprintf(pat, sizeof pat, "\"%s\":", key);
  const char *p = strstr(line, pat);
  return p ? p + strlen(pat) : NULL;
}
static double jget_num(const char *line, const char *key) {
  const char *p = jfind(line, key);
  if (!p || !strncmp(p, "null", 4)) return NAN;
  char *e;
  double v = strtod(p, &e);
  return e == p ? NAN : v;
}
static int64_t jget_int(const char *line, const char *key) {
  const char *p = jfind(line, key);
  return p ? (int64_t)strtoll(p, NULL, 10) : 0;
}
static void jget_str(const char *line, const char *key, char *out, size_t cap) {
  out[0] = '\0';
  const char *p = jfind(line, key);
  if (!p || *p != '"') return;
  size_t n = 0;
  for (p++; *p && *p != '"'; p++) {
    char c = *p;
    if (c == '\\' && p[1]) {
      p++;
      switch (*p) {
      case 'n': c = '\n'; break;
      case 't': c = '\t'; break;
      case 'r': c = '\r'; break;
      case 'u': {
        /* up to 4 hex digits, never past the end of the line (sscanf("%4x") could stop
         * early, and skipping 4 bytes then ran past the terminator) */
        unsigned x = 0;
        int k = 0;
        for (; k < 4; k++) {
          char h = p[1 + k];
          unsigned d = h >= '0' && h <= '9'   ? (unsigned)(h - '0')
                       : h >= 'a' && h <= 'f' ? (unsigned)(h - 'a' + 10)
                       : h >= 'A' && h <= 'F' ? (unsigned)(h - 'A' + 10)
                                              : 16u;
          if (d > 15) break;
          x = x * 16 + d;
        }
        p += k;
        c = (char)(k == 4 && x < 128 ? x : '?');
        break;
      }
      default: c = *p;
      }
    }
    if (n + 1 < cap) out[n++] = c;
  }
  out[n] = '\0';
}

static int parse_line(const char *line, imf_registry_record *r) {
  imf_registry_record_init(r);
  if (line[0] != '{' || !jfind(line, "event") || !jfind(line, "version")) return -1;
  jget_str(line, "event", r->event, sizeof r->event);
  r->version = jget_int(line, "version");
  r->parent = jget_int(line, "parent");
  r->batches_seen = jget_int(line, "batches_seen");
  jget_str(line, "requested", r->requested, sizeof r->requested);
  jget_str(line, "strategy", r->strategy, sizeof r->strategy);
  jget_str(line, "decision", r->decision, sizeof r->decision);
  r->champion_rmse = jget_num(line, "champion_rmse");
  r->challenger_rmse = jget_num(line, "challenger_rmse");
  r->newest_rmse = jget_num(line, "newest_rmse");
  r->drift_baseline = jget_num(line, "drift_baseline");
  const char *d = jfind(line, "drift");
  r->drift = d && !strncmp(d, "true", 4);
  r->new_batches = jget_int(line, "new_batches");
  r->new_ratings = jget_int(line, "new_ratings");
  r->eval_n = jget_int(line, "eval_n");
  r->seconds = jget_num(line, "seconds");
  jget_str(line, "created", r->created, sizeof r->created);
  jget_str(line, "store", r->store, sizeof r->store);
  jget_str(line, "note", r->note, sizeof r->note);
  jget_str(line, "metric", r->metric, sizeof r->metric);
  r->champion_score = jget_num(line, "champion_score");
  r->challenger_score = jget_num(line, "challenger_score");
  r->holdout_sse = jget_num(line, "holdout_sse");
  r->holdout_n = jget_int(line, "holdout_n");
  r->holdout_forgotten = jget_int(line, "holdout_forgotten");
  r->diff_mean = jget_num(line, "diff_mean");
  r->diff_lo = jget_num(line, "diff_lo");
  r->diff_hi = jget_num(line, "diff_hi");
  r->diff_users = jget_int(line, "diff_users");
  r->newest_score = jget_num(line, "newest_score");
  r->holdout_users = jfind(line, "holdout_users") ? jget_int(line, "holdout_users") : -1;
  return 0;
}

/* (rank 0) The whole file, or an empty string when there is none. */
static imf_status slurp(const char *path, char **text, int64_t *len) {
  *text = NULL;
  *len = 0;
  FILE *f = fopen(path, "rb");
  if (!f) {
    if (errno != ENOENT) IMF_FAIL(IMF_ERR_RUNTIME, "cannot read %s: %s", path, strerror(errno));
    IMF_CHECK(imf_alloc(text, 1, 1));
    return IMF_OK;
  }
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  imf_status st = imf_alloc(text, (size_t)(n > 0 ? n : 0) + 1, 1);
  if (st == IMF_OK && n > 0 && fread(*text, 1, (size_t)n, f) != (size_t)n)
    st = IMF_RAISE(IMF_ERR_RUNTIME, "cannot read %s", path);
  fclose(f);
  if (st != IMF_OK) imf_free(text);
  else *len = n > 0 ? n : 0;
  return st;
}

imf_status imf_registry_append(MPI_Comm comm, const char *model_dir, imf_registry_record *r) {
  int rank;
  MPI_Comm_rank(comm, &rank);
  if (!r->created[0]) {
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(r->created, sizeof r->created, "%Y-%m-%dT%H:%M:%SZ", &tm);
  }
  imf_status st = IMF_OK;
  if (rank == 0) {
    char path[4400];
    imf_registry_path(model_dir, path, sizeof path);
    char *old = NULL, *buf = NULL;
    int64_t n = 0;
    size_t len = 0;
    st = slurp(path, &old, &n);
    if (st == IMF_OK) {
      FILE *f = open_memstream(&buf, &len);
      if (!f) st = IMF_RAISE(IMF_ERR_NOMEM, "out of memory");
      else {
        fwrite(old, 1, (size_t)n, f);
        if (n > 0 && old[n - 1] != '\n') fputc('\n', f); /* never glue onto a torn line */
        imf_registry_write_json(f, r);
        fputc('\n', f);
        fclose(f);
        st = imf_fs_replace(model_dir, path, buf, len, "registry-before-rename");
      }
    }
    imf_free(&old);
    free(buf);
  }
  return imf_agree(comm, st);
}

imf_status imf_registry_load(MPI_Comm comm, const char *model_dir, imf_registry_record **recs, int64_t *nrec) {
  *recs = NULL;
  *nrec = 0;
  int rank;
  MPI_Comm_rank(comm, &rank);
  char *text = NULL;
  int64_t len = 0;
  imf_status st = IMF_OK;
  if (rank == 0) {
    char path[4400];
    imf_registry_path(model_dir, path, sizeof path);
    st = slurp(path, &text, &len);
  }
  IMF_CHECK(imf_agree(comm, st));
  IMF_MPI(MPI_Bcast(&len, 1, MPI_INT64_T, 0, comm));
  if (rank != 0) st = imf_alloc(&text, (size_t)len + 1, 1);
  IMF_CHECK(imf_agree(comm, st));
  if (len > 0 && len < INT32_MAX) MPI_Bcast(text, (int)len, MPI_CHAR, 0, comm);
  text[len] = '\0';
  int64_t lines = 1;
  for (int64_t j = 0; j < len; j++) lines += text[j] == '\n';
  imf_registry_record *r = NULL;
  st = imf_alloc(&r, (size_t)lines, sizeof *r);
  if (st != IMF_OK) {
    imf_free(&text);
    return st;
  }
  int64_t n = 0, lineno = 0;
  char *save = NULL;
  for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    lineno++;
    if (parse_line(line, &r[n]) == 0) n++;
    else imf_warn("%s/registry.jsonl line %lld does not parse; skipped", model_dir, (long long)lineno);
  }
  imf_free(&text);
  *recs = r;
  *nrec = n;
  return IMF_OK;
}

const imf_registry_record *imf_registry_find(const imf_registry_record *recs, int64_t n, int64_t version) {
  for (int64_t j = n - 1; j >= 0; j--)
    if (recs[j].version == version && (!strcmp(recs[j].event, "train") || !strcmp(recs[j].event, "update")))
      return &recs[j];
  return NULL;
}
