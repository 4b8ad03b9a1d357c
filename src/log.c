/* log.c - rank-0 logging in text or JSON lines, and process-level setup (imf_initialize). JSON
 * strings are escaped by cJSON, here and for every caller of imf_json_string/imf_json_escape. */
#include "log.h"
#include <H5public.h>
#include <mpi.h>
#include <cblas.h>
#include <cjson/cJSON.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int log_rank = 0, log_quiet = 0;
static imf_log_format log_fmt = IMF_LOG_TEXT;

void imf_log_setup(int rank, int quiet, imf_log_format fmt) {
  log_rank = rank;
  log_quiet = quiet;
  log_fmt = fmt;
}
int imf_log_is_json(void) { return log_fmt == IMF_LOG_JSON; }
int imf_log_rank(void) { return log_rank; }
int imf_log_quiet(void) { return log_quiet; }

/* s as a JSON string with its quotes (malloc'd by cJSON; NULL when out of memory) */
static char *quoted(const char *s) {
  cJSON *j = cJSON_CreateString(s);
  char *q = j ? cJSON_PrintUnformatted(j) : NULL;
  cJSON_Delete(j);
  return q;
}

void imf_json_string(FILE *f, const char *s) {
  char *q = quoted(s);
  fputs(q ? q : "\"\"", f);
  cJSON_free(q);
}

void imf_json_escape(FILE *f, const char *s) {
  char *q = quoted(s);
  if (q) fwrite(q + 1, 1, strlen(q) - 2, f);
  cJSON_free(q);
}

static void emit(const char *level, const char *fmt, va_list ap) {
  char msg[4096];
  vsnprintf(msg, sizeof msg, fmt, ap);
  if (log_fmt == IMF_LOG_JSON) {
    char t[32];
    snprintf(t, sizeof t, "%.3f", imf_wtime()); /* milliseconds, as always */
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "level", level);
    cJSON_AddRawToObject(o, "time", t);
    cJSON_AddStringToObject(o, "msg", msg);
    char *line = o ? cJSON_PrintUnformatted(o) : NULL;
    if (line) fprintf(stderr, "%s\n", line);
    else fprintf(stderr, "incremf: %s: %s\n", level, msg); /* out of memory: the text line */
    cJSON_free(line);
    cJSON_Delete(o);
  } else if (strcmp(level, "info") == 0) {
    fprintf(stderr, "%s\n", msg);
  } else {
    fprintf(stderr, "incremf: %s: %s\n", level, msg);
  }
  fflush(stderr);
}

void imf_info(const char *fmt, ...) {
  if (log_rank != 0 || log_quiet) return;
  va_list ap;
  va_start(ap, fmt);
  emit("info", fmt, ap);
  va_end(ap);
}

void imf_warn(const char *fmt, ...) {
  if (log_rank != 0) return;
  va_list ap;
  va_start(ap, fmt);
  emit("warning", fmt, ap);
  va_end(ap);
}

double imf_wtime(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int64_t imf_peak_rss(void) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  int64_t kb = -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "VmHWM:", 6) == 0) {
      long long v;
      if (sscanf(line + 6, "%lld", &v) == 1) kb = v;
      break;
    }
  fclose(f);
  return kb < 0 ? -1 : kb * 1024;
}

void imf_mem_trace(const char *phase) {
  static int on = -1;
  if (on < 0) on = getenv("IMF_MEM_TRACE") && strcmp(getenv("IMF_MEM_TRACE"), "1") == 0;
  if (!on) return;
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return;
  char line[256];
  long long rss = -1, hwm = -1;
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "VmHWM:", 6) == 0) sscanf(line + 6, "%lld", &hwm);
    if (strncmp(line, "VmRSS:", 6) == 0) sscanf(line + 6, "%lld", &rss);
  }
  fclose(f);
  int rank = 0, init = 0;
  MPI_Initialized(&init);
  if (init) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  fprintf(stderr, "mem rank %d %-28s rss %8.1f MB  peak %8.1f MB\n", rank, phase, rss / 1024.0, hwm / 1024.0);
}

static char build_info[1024];

/* Open MPI's own MPI-IO (ompio) opens a shared file pointer with every file: "sm" by a
 * semaphore named after the file's base name (a killed holder leaves it locked: every later
 * open of that name hangs), "lockedfile" and "individual" by side files next to the file (a
 * killed process leaves them in the store or model directory). ROMIO has neither; incremf
 * never uses shared file pointers. Settings the user made are kept. */
void imf_preinit(void) {
  /* glibc raises its mmap threshold (to 32 MiB) each time a large block is freed, after which
   * the job's many-MB transients (exchange rounds, read buffers, solve scratch) come from the
   * heap and stay in its resident size after their free; a fixed threshold returns them. */
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  setenv("OMPI_MCA_io", "^ompio", 0);
  setenv("OMPI_MCA_sharedfp", "^sm", 0); /* for a user who asks for ompio anyway */
}

imf_status imf_initialize(MPI_Comm comm) {
  /* One BLAS thread per rank: ranks are the parallelism; threads would oversubscribe cores. */
  openblas_set_num_threads(1);
  char mpiver[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(mpiver, &len);
  char *nl = strchr(mpiver, ',');
  if (nl) *nl = '\0';
  unsigned maj, min, rel;
  H5get_libversion(&maj, &min, &rel);
  snprintf(build_info, sizeof build_info, "incremf %s; OpenBLAS %s (core %s); %s; HDF5 %u.%u.%u",
           IMF_VERSION, openblas_get_config(), openblas_get_corename(), mpiver, maj, min, rel);
  (void)comm;
  return IMF_OK;
}

const char *imf_build_info(void) { return build_info; }

/* OpenBLAS's DYNAMIC_ARCH picks its kernels from CPUID; under some hypervisors it misreads an
 * AVX-512 CPU as a 2004 Prescott and runs sgemm/potrf at a quarter of the machine's speed.
 * We cannot fix that from inside (the core is chosen when the library loads), but we can say
 * so and name the environment variable that does. */
const char *imf_blas_core_advice(void) {
  static char msg[256];
#if defined(__x86_64__) && defined(__GNUC__)
  const char *forced = getenv("OPENBLAS_CORETYPE");
  if (forced && *forced) return NULL; /* the user chose; they know */
  const char *core = openblas_get_corename();
  if (!core) return NULL;
  static const char *vector_cores[] = {"haswell", "zen", "skylakex", "cooperlake",
                                       "sapphirerapids", "excavator"};
  char lc[64];
  size_t i = 0;
  for (; core[i] && i + 1 < sizeof lc; i++)
    lc[i] = (char)((core[i] >= 'A' && core[i] <= 'Z') ? core[i] + 32 : core[i]);
  lc[i] = '\0';
  for (size_t j = 0; j < sizeof vector_cores / sizeof *vector_cores; j++)
    if (strcmp(lc, vector_cores[j]) == 0) return NULL;
  __builtin_cpu_init();
  if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) return NULL;
  const char *want = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")
                         ? "SkylakeX"
                         : "Haswell";
  snprintf(msg, sizeof msg,
           "OpenBLAS chose its '%s' kernels on a CPU with %s; BLAS/LAPACK will run several times "
           "slower than it can; set OPENBLAS_CORETYPE=%s in the job's environment",
           core, strcmp(want, "SkylakeX") == 0 ? "AVX-512" : "AVX2/FMA", want);
  return msg;
#else
  return NULL;
#endif
}
