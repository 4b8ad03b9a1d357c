/* lock.c - the writer lock file (see lock.h).
 *
 * Why a plain O_EXCL file and not flock/fcntl: the store often lives on NFS or a parallel file
 * system where advisory locks are unreliable or unsupported, while O_EXCL creation and a
 * readable owner line work everywhere and tell the user who holds the lock. */
#include "lock.h"
#include "error.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

struct imf_lock {
  char *path;
  char line[512]; /* what we wrote: release removes the file only if it still says this */
};

typedef struct {
  char host[256];
  long pid;
  long long since;
} lock_owner;

static void fmt_time(long long t, char *buf, size_t cap) {
  time_t tt = (time_t)t;
  struct tm tm;
  if (gmtime_r(&tt, &tm)) strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
  else snprintf(buf, cap, "%lld", t);
}

/* Read the lock file; 1 = parsed, 0 = vanished, -1 = unreadable or garbled. */
static int read_owner(const char *path, lock_owner *o, char *raw, size_t rawcap) {
  raw[0] = '\0';
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? 0 : -1;
  ssize_t n = read(fd, raw, rawcap - 1);
  close(fd);
  if (n < 0) return -1;
  raw[n] = '\0';
  memset(o, 0, sizeof *o);
  if (sscanf(raw, "%255s %ld %lld", o->host, &o->pid, &o->since) != 3 || o->pid <= 0) return -1;
  return 1;
}

/* Whether the pid names the process that wrote the lock. A pid can be reused after a reboot or
 * wrap-around: a live process that started after the lock was written is not the holder. */
static int holder_alive(const lock_owner *o) {
  if (kill((pid_t)o->pid, 0) != 0 && errno == ESRCH) return 0;
  char p[64];
  snprintf(p, sizeof p, "/proc/%ld/stat", o->pid);
  FILE *f = fopen(p, "r");
  if (!f) return 1; /* no /proc: trust kill() */
  char buf[1024];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *rp = strrchr(buf, ')'); /* comm may contain spaces: fields resume after the last ')' */
  unsigned long long start_ticks = 0;
  if (!rp) return 1;
  /* a zombie (killed, not yet reaped — common in containers whose init does not reap) holds
   * nothing: it is dead for our purposes */
  if (rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X')) return 0;
  /* after ") " come fields 3..; starttime is field 22 */
  char *tok = rp + 2;
  for (int field = 3; field < 22 && tok; field++) {
    tok = strchr(tok, ' ');
    if (tok) tok++;
  }
  if (!tok || sscanf(tok, "%llu", &start_ticks) != 1) return 1;
  FILE *sf = fopen("/proc/stat", "r");
  if (!sf) return 1;
  char line[256];
  long long btime = -1;
  while (fgets(line, sizeof line, sf))
    if (sscanf(line, "btime %lld", &btime) == 1) break;
  fclose(sf);
  long hz = sysconf(_SC_CLK_TCK);
  if (btime < 0 || hz <= 0) return 1;
  long long started = btime + (long long)(start_ticks / (unsigned long long)hz);
  /* 2 s of slack: btime and the tick count are coarse. (Subtracted from our own time, not added
   * to the file's: a LOCK claiming a time near INT64_MAX made `since + 2` overflow, found by
   * tests/fuzz, store: regressions/store/lock-since-int64-max.fz.) */
  return started - 2 <= o->since;
}

static imf_status create_excl(const char *path, const char *line, int *exists) {
  *exists = 0;
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    if (errno == EEXIST) {
      *exists = 1;
      return IMF_OK;
    }
    IMF_FAIL(IMF_ERR_RUNTIME, "cannot create lock file %s: %s", path, strerror(errno));
  }
  size_t len = strlen(line);
  ssize_t w = write(fd, line, len);
  int e = errno;
  if (w != (ssize_t)len || fsync(fd) != 0) {
    close(fd);
    unlink(path);
    IMF_FAIL(IMF_ERR_RUNTIME, "cannot write lock file %s: %s", path, strerror(w < 0 ? e : EIO));
  }
  close(fd);
  return IMF_OK;
}

imf_status imf_lock_acquire(const char *lockfile, int break_lock, imf_lock **out) {
  *out = NULL;
  char host[256] = "unknown";
  if (gethostname(host, sizeof host - 1) != 0) snprintf(host, sizeof host, "unknown");
  host[sizeof host - 1] = '\0';
  for (char *c = host; *c; c++)
    if (*c == ' ' || *c == '\n') *c = '_';
  imf_status st = IMF_OK;
  imf_lock *l = calloc(1, sizeof *l);
  if (l) l->path = strdup(lockfile);
  if (!l || !l->path) IMF_TRY(IMF_RAISE(IMF_ERR_NOMEM, "out of memory"), fail);
  snprintf(l->line, sizeof l->line, "%s %ld %lld\n", host, (long)getpid(), (long long)time(NULL));

  /* The directory the lock protects, for messages. */
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", lockfile);
  char *slash = strrchr(dir, '/');
  if (slash && slash != dir) *slash = '\0';
  else if (!slash) snprintf(dir, sizeof dir, ".");

  /* A few rounds: a stale lock we remove may be re-taken by a racing process first. */
  for (int round = 0; round < 5; round++) {
    int exists = 0;
    IMF_TRY(create_excl(lockfile, l->line, &exists), fail);
    if (!exists) {
      *out = l;
      return IMF_OK;
    }
    lock_owner o;
    char raw[1024];
    int rc = read_owner(lockfile, &o, raw, sizeof raw);
    if (rc == 0) continue; /* released meanwhile */
    char since[64] = "an unknown time";
    if (rc < 0) {
      if (!break_lock) {
        st = IMF_RAISE(IMF_ERR_LOCKED, "%s is locked: %s is unreadable or garbled (remove it by hand if no "
                       "writer is running, or use --break-lock)", dir, lockfile);
        goto fail;
      }
      imf_warn("breaking the unreadable lock %s", lockfile);
    } else {
      fmt_time(o.since, since, sizeof since);
      int same_host = strcmp(o.host, host) == 0;
      if (same_host && !holder_alive(&o)) {
        imf_warn("taking over the stale lock %s of pid %ld on %s since %s (that process is "
                 "gone or its pid was reused)", lockfile, o.pid, o.host, since);
      } else if (break_lock) {
        imf_warn("breaking the lock %s of pid %ld on %s since %s (--break-lock)", lockfile, o.pid,
                 o.host, since);
      } else if (same_host) {
        st = IMF_RAISE(IMF_ERR_LOCKED, "%s is locked by pid %ld on %s since %s (another writer is running)",
                       dir, o.pid, o.host, since);
        goto fail;
      } else {
        st = IMF_RAISE(IMF_ERR_LOCKED, "%s is locked by pid %ld on %s since %s (another host: cannot check "
                       "whether that writer is alive; use --break-lock if it is not)",
                       dir, o.pid, o.host, since);
        goto fail;
      }
    }
    /* Remove the old lock only if it is still the one we judged (narrows the race with
     * another process taking it over at the same moment), then retry the exclusive create. */
    char again[1024];
    lock_owner o2;
    int rc2 = read_owner(lockfile, &o2, again, sizeof again);
    if (rc2 != 0 && strcmp(again, raw) != 0) continue;
    if (rc2 != 0 && unlink(lockfile) != 0 && errno != ENOENT) {
      st = IMF_RAISE(IMF_ERR_RUNTIME, "cannot remove the old lock %s: %s",
                     lockfile, strerror(errno));
      goto fail;
    }
  }
  st = IMF_RAISE(IMF_ERR_LOCKED, "%s: could not take the lock %s (other processes keep taking it)", dir,
                 lockfile);
fail:
  if (l) free(l->path);
  free(l);
  return st;
}

void imf_lock_release(imf_lock **lp) {
  if (!lp || !*lp) return;
  imf_lock *l = *lp;
  lock_owner o;
  char raw[1024];
  if (read_owner(l->path, &o, raw, sizeof raw) != 0 && strcmp(raw, l->line) == 0) unlink(l->path);
  free(l->path);
  free(l);
  *lp = NULL;
}
