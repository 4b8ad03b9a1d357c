/* registry.c - the model directory's lineage file (registry.h): JSON lines written and read
 * here only, through cJSON. The registry is the model's lineage, so a line that does not parse
 * is an error naming file and line; only a torn last line (no newline: an append cut short) is
 * reported, ignored, and removed by the next write (docs/FORMAT.md, "Model registry"). */
#include "registry.h"
#include "fsio.h"
#include "error.h"
#include "log.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
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

/* ---- writing: numbers go in as raw text so that they keep the registry's formatting (%.9g,
 * holdout_sse %.17g, int64 exact; cJSON would print doubles its own way and integers as int) */

static void jraw(cJSON *o, const char *k, const char *fmt, ...) IMF_PRINTF(3, 4);
static void jraw(cJSON *o, const char *k, const char *fmt, ...) {
  char buf[64];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  cJSON_AddRawToObject(o, k, buf);
}
static void jnum(cJSON *o, const char *k, double v) {
  if (isfinite(v)) jraw(o, k, "%.9g", v);
  else cJSON_AddNullToObject(o, k);
}
static void jint(cJSON *o, const char *k, int64_t v) { jraw(o, k, "%lld", (long long)v); }

/* The record as one JSON object, keys in the order readers of earlier versions saw them. */
static cJSON *record_json(const imf_registry_record *r) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return NULL;
  cJSON_AddStringToObject(o, "event", r->event);
  jint(o, "version", r->version);
  jint(o, "parent", r->parent);
  jint(o, "batches_seen", r->batches_seen);
  cJSON_AddStringToObject(o, "requested", r->requested);
  cJSON_AddStringToObject(o, "strategy", r->strategy);
  cJSON_AddStringToObject(o, "decision", r->decision);
  jnum(o, "champion_rmse", r->champion_rmse);
  jnum(o, "challenger_rmse", r->challenger_rmse);
  jnum(o, "newest_rmse", r->newest_rmse);
  jnum(o, "drift_baseline", r->drift_baseline);
  cJSON_AddBoolToObject(o, "drift", r->drift != 0);
  jint(o, "new_batches", r->new_batches);
  jint(o, "new_ratings", r->new_ratings);
  jint(o, "eval_n", r->eval_n);
  jnum(o, "seconds", r->seconds);
  cJSON_AddStringToObject(o, "created", r->created);
  cJSON_AddStringToObject(o, "store", r->store);
  cJSON_AddStringToObject(o, "note", r->note);
  if (r->metric[0]) {
    cJSON_AddStringToObject(o, "metric", r->metric);
    jnum(o, "champion_score", r->champion_score);
    jnum(o, "challenger_score", r->challenger_score);
  }
  if (r->diff_users > 0) {
    jnum(o, "diff_mean", r->diff_mean);
    jnum(o, "diff_lo", r->diff_lo);
    jnum(o, "diff_hi", r->diff_hi);
    jint(o, "diff_users", r->diff_users);
  }
  if (isfinite(r->newest_score)) jnum(o, "newest_score", r->newest_score);
  if (isfinite(r->holdout_sse)) {
    jraw(o, "holdout_sse", "%.17g", r->holdout_sse); /* exact: later judgements add to it */
    jint(o, "holdout_n", r->holdout_n);
    jint(o, "holdout_forgotten", r->holdout_forgotten);
    if (r->holdout_users >= 0) jint(o, "holdout_users", r->holdout_users);
  }
  return o;
}

void imf_registry_write_json(FILE *f, const imf_registry_record *r) {
  cJSON *o = record_json(r);
  char *text = o ? cJSON_PrintUnformatted(o) : NULL;
  fputs(text ? text : "{}", f); /* {} only when out of memory: a reader rejects it by name */
  cJSON_free(text);
  cJSON_Delete(o);
}

/* ---- reading */

static void gstr(const cJSON *o, const char *k, char *out, size_t cap) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  snprintf(out, cap, "%s", cJSON_IsString(v) && v->valuestring ? v->valuestring : "");
}
static double gnum(const cJSON *o, const char *k) { /* null or absent: NaN */
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}
/* An integer field: absent (or not a number) gives `absent`; one that is not a whole number
 * within +-2^53 (where a double, cJSON's number, holds it exactly) makes the line not a record. */
static int64_t gint(const cJSON *o, const char *k, int64_t absent, int *bad) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  if (!cJSON_IsNumber(v)) return absent;
  double d = v->valuedouble;
  if (!(fabs(d) <= 9007199254740992.0) || d != floor(d)) {
    *bad = 1;
    return absent;
  }
  return (int64_t)d;
}

/* One line into *r: 0, or -1 when it is not a JSON object with a string "event" and a number
 * "version" (every record has them) or an integer field is not a whole number. Other keys
 * absent (older records): NaN, 0, "". */
static int parse_line(const char *line, imf_registry_record *r) {
  imf_registry_record_init(r);
  cJSON *o = cJSON_ParseWithOpts(line, NULL, 1);
  if (!cJSON_IsObject(o) || !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, "event")) ||
      !cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(o, "version"))) {
    cJSON_Delete(o);
    return -1;
  }
  int bad = 0;
  gstr(o, "event", r->event, sizeof r->event);
  r->version = gint(o, "version", 0, &bad);
  r->parent = gint(o, "parent", 0, &bad);
  r->batches_seen = gint(o, "batches_seen", 0, &bad);
  gstr(o, "requested", r->requested, sizeof r->requested);
  gstr(o, "strategy", r->strategy, sizeof r->strategy);
  gstr(o, "decision", r->decision, sizeof r->decision);
  r->champion_rmse = gnum(o, "champion_rmse");
  r->challenger_rmse = gnum(o, "challenger_rmse");
  r->newest_rmse = gnum(o, "newest_rmse");
  r->drift_baseline = gnum(o, "drift_baseline");
  r->drift = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "drift"));
  r->new_batches = gint(o, "new_batches", 0, &bad);
  r->new_ratings = gint(o, "new_ratings", 0, &bad);
  r->eval_n = gint(o, "eval_n", 0, &bad);
  r->seconds = gnum(o, "seconds");
  gstr(o, "created", r->created, sizeof r->created);
  gstr(o, "store", r->store, sizeof r->store);
  gstr(o, "note", r->note, sizeof r->note);
  gstr(o, "metric", r->metric, sizeof r->metric);
  r->champion_score = gnum(o, "champion_score");
  r->challenger_score = gnum(o, "challenger_score");
  r->holdout_sse = gnum(o, "holdout_sse");
  r->holdout_n = gint(o, "holdout_n", 0, &bad);
  r->holdout_forgotten = gint(o, "holdout_forgotten", 0, &bad);
  r->diff_mean = gnum(o, "diff_mean");
  r->diff_lo = gnum(o, "diff_lo");
  r->diff_hi = gnum(o, "diff_hi");
  r->diff_users = gint(o, "diff_users", 0, &bad);
  r->newest_score = gnum(o, "newest_score");
  r->holdout_users = gint(o, "holdout_users", -1, &bad);
  cJSON_Delete(o);
  return bad ? -1 : 0;
}

/* A line of only blanks holds no record (a hand edit may leave one): skipped. */
static int blank(const char *s) {
  for (; *s; s++)
    if (*s != ' ' && *s != '\t' && *s != '\r') return 0;
  return 1;
}

/* Where the torn last line starts: text of length len that does not end with a newline and
 * whose last line is not a record (an append cut short, by an older incremf or a copy); len
 * when there is none. */
static int64_t torn_tail(const char *text, int64_t len) {
  if (len == 0 || text[len - 1] == '\n') return len;
  int64_t b = len;
  while (b > 0 && text[b - 1] != '\n') b--;
  char *line = strndup(text + b, (size_t)(len - b));
  imf_registry_record r;
  int bad = !line || (!blank(line) && parse_line(line, &r) != 0);
  free(line);
  return bad ? b : len;
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
        /* repair: a torn last line is dropped (it was reported when the registry was read) */
        int64_t keep = torn_tail(old, n);
        if (keep < n) {
          int64_t lineno = 1;
          for (int64_t j = 0; j < keep; j++) lineno += old[j] == '\n';
          imf_warn("%s:%lld: removed the torn last line (an interrupted write): %.80s", path, (long long)lineno,
                   old + keep);
        }
        fwrite(old, 1, (size_t)keep, f);
        if (keep > 0 && old[keep - 1] != '\n') fputc('\n', f); /* a last record without its newline */
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
  char path[4400];
  imf_registry_path(model_dir, path, sizeof path);
  if (rank == 0) st = slurp(path, &text, &len);
  IMF_CHECK(imf_agree(comm, st));
  IMF_MPI(MPI_Bcast(&len, 1, MPI_INT64_T, 0, comm));
  if (rank != 0) st = imf_alloc(&text, (size_t)len + 1, 1);
  IMF_CHECK(imf_agree(comm, st));
  if (len > 0 && len < INT32_MAX) MPI_Bcast(text, (int)len, MPI_CHAR, 0, comm);
  text[len] = '\0';
  int64_t keep = torn_tail(text, len), lines = 1;
  for (int64_t j = 0; j < len; j++) lines += text[j] == '\n';
  imf_registry_record *r = NULL;
  st = imf_alloc(&r, (size_t)lines, sizeof *r);
  int64_t n = 0, lineno = 0;
  for (char *line = text; st == IMF_OK && line < text + len; lineno++) {
    char *nl = memchr(line, '\n', (size_t)(text + len - line));
    if (nl) *nl = '\0';
    if (line - text >= keep) {
      imf_warn("%s:%lld: torn last line ignored (an interrupted write; the next write to the registry removes it)",
               path, (long long)lineno + 1);
    } else if (!blank(line)) {
      if (parse_line(line, &r[n]) == 0) n++;
      else st = IMF_RAISE(IMF_ERR_INPUT, "%s:%lld: not a registry record (one JSON object with \"event\" and "
                          "\"version\" per line): %.60s", path, (long long)lineno + 1, line);
    }
    line = nl ? nl + 1 : text + len;
  }
  imf_free(&text);
  if (st != IMF_OK) {
    imf_free(&r);
    return st;
  }
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
