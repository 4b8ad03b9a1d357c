/* killshim.c - LD_PRELOAD shim for the fault-injection tests (tests/e2e_faults_*.sh): SIGKILLs
 * an incremf process right before or right after a chosen rename(2), i.e. at an exact step of
 * a commit protocol (tmp file complete / MANIFEST, CURRENT, registry or a version renamed), and
 * can log every rename so a test can list the commit steps of an uninterrupted run.
 *
 *   IMF_SHIM_KILL=before:SUBSTR[:N]   kill -9 this process before the N-th (default 1st) rename
 *   IMF_SHIM_KILL=after:SUBSTR[:N]    ... or right after it, whose target path contains SUBSTR
 *   IMF_SHIM_LOG=FILE                 append "PID OLD NEW" for every rename
 *
 * Only processes named incremf act (mpirun/orted also get LD_PRELOAD). Build:
 *   cc -shared -fPIC -O2 -o killshim.so tests/fault/killshim.c -ldl
 * No test hook in the library is needed: the kill is a real SIGKILL at a real point. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char *program_invocation_short_name;

static int is_incremf(void) { return strcmp(program_invocation_short_name, "incremf") == 0; }

static void log_rename(const char *oldp, const char *newp) {
  const char *log = getenv("IMF_SHIM_LOG");
  if (!log || !*log) return;
  int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return;
  char line[8400];
  int n = snprintf(line, sizeof line, "%ld %s %s\n", (long)getpid(), oldp, newp);
  if (n > 0) {
    ssize_t w = write(fd, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
    (void)w;
  }
  close(fd);
}

/* 1 when this rename is the one to kill at, with *after set to the requested side. */
static int should_kill(const char *newp, int *after) {
  static int seen = 0;
  const char *spec = getenv("IMF_SHIM_KILL");
  if (!spec || !*spec) return 0;
  char buf[1024];
  snprintf(buf, sizeof buf, "%s", spec);
  char *when = buf, *pat = strchr(buf, ':');
  if (!pat) return 0;
  *pat++ = '\0';
  int nth = 1;
  char *n = strrchr(pat, ':');
  if (n) {
    *n++ = '\0';
    nth = atoi(n);
  }
  if (!strstr(newp, pat)) return 0;
  if (++seen != nth) return 0;
  *after = strcmp(when, "after") == 0;
  return 1;
}

static void die(void) {
  fflush(NULL);
  kill(getpid(), SIGKILL);
  _exit(137);
}

int rename(const char *oldp, const char *newp) {
  static int (*real)(const char *, const char *) = NULL;
  if (!real) real = (int (*)(const char *, const char *))dlsym(RTLD_NEXT, "rename");
  if (!real) {
    errno = ENOSYS;
    return -1;
  }
  if (!is_incremf()) return real(oldp, newp);
  log_rename(oldp, newp);
  int after = 0, k = should_kill(newp, &after);
  if (k && !after) die();
  int rc = real(oldp, newp);
  if (k) die();
  return rc;
}
