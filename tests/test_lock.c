/* test_lock.c - the writer lock file: stale locks of dead processes are taken over, live and
 * foreign-host locks are refused (unless broken), and release removes only our own lock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "lock.h"
#include "testutil.h"

static char host[256];

static const char *lockpath(void) {
  static char p[700];
  snprintf(p, sizeof p, "%s/LOCK", tu_tmpdir("lock"));
  return p;
}

static void write_lock(const char *path, const char *h, long pid, long long since) {
  char line[512];
  snprintf(line, sizeof line, "%s %ld %lld\n", h, pid, since);
  assert_int_equal(tu_write_file(path, line), 0);
}

static void test_fresh_and_release(void **state) {
  (void)state;
  const char *p = lockpath();
  imf_lock *l = NULL;
  assert_int_equal(imf_lock_acquire(p, 0, &l), IMF_OK);
  char *txt = tu_read_file(p, NULL);
  char expect[300];
  snprintf(expect, sizeof expect, "%s %ld ", host, (long)getpid());
  assert_non_null(txt);
  assert_true(strncmp(txt, expect, strlen(expect)) == 0);
  free(txt);
  /* a second acquisition in the same (live) process is refused */
  imf_lock *l2 = NULL;
  assert_int_equal(imf_lock_acquire(p, 0, &l2), IMF_ERR_LOCKED);
  assert_null(l2);
  assert_non_null(strstr(imf_last_error(), "another writer is running"));
  imf_lock_release(&l);
  assert_null(l);
  assert_int_not_equal(access(p, F_OK), 0);
  imf_lock_release(&l); /* NULL-safe */
}

static void test_stale_dead_pid(void **state) {
  (void)state;
  const char *p = lockpath();
  pid_t c = fork();
  if (c == 0) _exit(0);
  assert_true(c > 0);
  waitpid(c, NULL, 0); /* reaped: the pid is dead now */
  write_lock(p, host, (long)c, (long long)time(NULL));
  imf_lock *l = NULL;
  assert_int_equal(imf_lock_acquire(p, 0, &l), IMF_OK);
  char *txt = tu_read_file(p, NULL);
  char expect[300];
  snprintf(expect, sizeof expect, "%s %ld ", host, (long)getpid());
  assert_true(strncmp(txt, expect, strlen(expect)) == 0);
  free(txt);
  imf_lock_release(&l);
  assert_int_not_equal(access(p, F_OK), 0);
}

static void test_live_pid_refused(void **state) {
  (void)state;
  const char *p = lockpath();
  long live = (long)getppid();
  write_lock(p, host, live, (long long)time(NULL));
  imf_lock *l = NULL;
  assert_int_equal(imf_lock_acquire(p, 0, &l), IMF_ERR_LOCKED);
  char want[128];
  snprintf(want, sizeof want, "is locked by pid %ld on %s since ", live, host);
  assert_non_null(strstr(imf_last_error(), want));
  assert_non_null(strstr(imf_last_error(), "(another writer is running)"));
  /* the holder's file is untouched */
  char *txt = tu_read_file(p, NULL);
  char expect[300];
  snprintf(expect, sizeof expect, "%s %ld ", host, live);
  assert_true(strncmp(txt, expect, strlen(expect)) == 0);
  free(txt);
  /* break_lock takes it anyway */
  assert_int_equal(imf_lock_acquire(p, 1, &l), IMF_OK);
  imf_lock_release(&l);
}

static void test_reused_pid_is_stale(void **state) {
  (void)state;
  /* a live pid whose process started long after the lock was written is not the holder */
  const char *p = lockpath();
  write_lock(p, host, (long)getppid(), 1000LL);
  imf_lock *l = NULL;
  assert_int_equal(imf_lock_acquire(p, 0, &l), IMF_OK);
  imf_lock_release(&l);
}

static void test_since_at_the_limits(void **state) {
  (void)state;
  /* a live pid's lock claiming a time at the end of int64 (garbled, or written by a broken clock):
   * the holder started before it, so the lock is held — no overflow on the way (the comparison
   * used to add its slack to this number; UBSan, and a lock taken over after the wrap) */
  const char *p = lockpath();
  write_lock(p, host, (long)getppid(), 9223372036854775807LL);
  imf_lock *l = NULL;
  assert_int_equal(imf_lock_acquire(p, 0, &l), IMF_ERR_LOCKED);
  assert_non_null(strstr(imf_last_error(), "(another writer is running)"));
  /* and at the other end: a holder that started after its lock's time is not the holder */
  write_lock(p, host, (long)getppid(), -9223372036854775807LL - 1);
  assert_int_equal(imf_lock_acquire(p, 0, &l), IMF_OK);
  imf_lock_release(&l);
}

static void test_other_host(void **state) {
  (void)state;
  const char *p = lockpath();
  write_lock(p, "some-other-host.example", 12345, (long long)time(NULL));
  imf_lock *l = NULL;
  assert_int_equal(imf_lock_acquire(p, 0, &l), IMF_ERR_LOCKED);
  assert_non_null(strstr(imf_last_error(), "locked by pid 12345 on some-other-host.example"));
  assert_int_equal(imf_lock_acquire(p, 1, &l), IMF_OK);
  assert_non_null(l);
  imf_lock_release(&l);
  assert_int_not_equal(access(p, F_OK), 0);
}

static void test_garbled_and_not_ours(void **state) {
  (void)state;
  const char *p = lockpath();
  assert_int_equal(tu_write_file(p, "garbage\n"), 0);
  imf_lock *l = NULL;
  assert_int_equal(imf_lock_acquire(p, 0, &l), IMF_ERR_LOCKED);
  assert_int_equal(imf_lock_acquire(p, 1, &l), IMF_OK);
  /* someone broke our lock and took it: release must leave their file alone */
  write_lock(p, "intruder", 777, 5);
  imf_lock_release(&l);
  assert_int_equal(access(p, F_OK), 0);
}

int main(void) {
  gethostname(host, sizeof host - 1);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fresh_and_release), cmocka_unit_test(test_stale_dead_pid),
      cmocka_unit_test(test_live_pid_refused),  cmocka_unit_test(test_reused_pid_is_stale),
      cmocka_unit_test(test_since_at_the_limits), cmocka_unit_test(test_other_host),        cmocka_unit_test(test_garbled_and_not_ours),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
