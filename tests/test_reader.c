/* test_reader.c - plain and compressed input (gzip, xz, zstd by magic bytes, multi-member and
 * multi-frame streams), corrupt/truncated streams, open errors, pread and sha256. The
 * compressed files are made with the command-line tools, as users make them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "error.h"
#include "reader.h"
#include "testutil.h"

static char g_dir[512];
static char *g_text;
static size_t g_len;

static const char *path_in(const char *name) {
  static char buf[4][700];
  static int next = 0;
  char *b = buf[next++ % 4];
  snprintf(b, 700, "%s/%s", g_dir, name);
  return b;
}

/* Run a fixed shell command inside the scratch directory. */
static void sh(const char *cmd) {
  char full[1500];
  snprintf(full, sizeof full, "cd '%s' && %s", g_dir, cmd);
  if (system(full) != 0) fail_msg("command failed: %s", full);
}

static int setup(void **state) {
  (void)state;
  snprintf(g_dir, sizeof g_dir, "%s", tu_tmpdir("reader"));
  /* ~600 KB, more than the reader's input buffer, so refills and output limits are exercised */
  size_t cap = 30000 * 40;
  g_text = malloc(cap);
  g_len = 0;
  unsigned s = 7;
  for (int i = 0; i < 30000; i++) {
    s = s * 1103515245u + 12345u;
    g_len += (size_t)snprintf(g_text + g_len, cap - g_len, "%u,%u,%u.5,%u\n", (s >> 8) % 100000,
                              (s >> 3) % 5000, 1 + (s >> 5) % 4, 1500000000u + (s % 1000000u));
  }
  FILE *f = fopen(path_in("plain.txt"), "wb");
  if (!f || fwrite(g_text, 1, g_len, f) != g_len || fclose(f) != 0) return -1;
  return 0;
}

static int teardown(void **state) {
  (void)state;
  free(g_text);
  char cmd[700];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
  return system(cmd) == 0 ? 0 : -1;
}

/* Read the whole stream in chunks of `chunk` bytes and compare with the expected text. */
static void read_all_and_compare(const char *path, size_t chunk, const char *want, size_t want_len,
                                 imf_compression comp) {
  imf_reader *r;
  if (imf_reader_open(path, &r) != IMF_OK) fail_msg("%s", imf_last_error());
  assert_int_equal(imf_reader_compression(r), comp);
  char *got = malloc(want_len + chunk + 1);
  char *buf = malloc(chunk);
  size_t total = 0, n;
  for (;;) {
    imf_status st = imf_reader_read(r, buf, chunk, &n);
    if (st != IMF_OK) fail_msg("%s", imf_last_error());
    if (n == 0) break;
    assert_true(n <= chunk);
    assert_true(total + n <= want_len);
    memcpy(got + total, buf, n);
    total += n;
  }
  /* end of stream is sticky */
  assert_int_equal(imf_reader_read(r, buf, chunk, &n), IMF_OK);
  assert_int_equal(n, 0);
  assert_int_equal(total, want_len);
  assert_memory_equal(got, want, want_len);
  free(buf);
  free(got);
  imf_reader_close(&r);
  assert_null(r);
}

static void test_plain_and_compressed(void **state) {
  (void)state;
  sh("gzip -c plain.txt > a.gz && xz -c plain.txt > a.xz && zstd -q -c plain.txt > a.zst");
  /* detection is by magic bytes, not by name */
  sh("cp a.gz gz.csv && cp a.xz xz.txt && cp a.zst zstd.dat");
  const size_t chunks[] = {7, 4096, 1u << 20};
  for (size_t i = 0; i < 3; i++) {
    read_all_and_compare(path_in("plain.txt"), chunks[i], g_text, g_len, IMF_COMP_NONE);
    read_all_and_compare(path_in("a.gz"), chunks[i], g_text, g_len, IMF_COMP_GZIP);
    read_all_and_compare(path_in("a.xz"), chunks[i], g_text, g_len, IMF_COMP_XZ);
    read_all_and_compare(path_in("a.zst"), chunks[i], g_text, g_len, IMF_COMP_ZSTD);
  }
  read_all_and_compare(path_in("gz.csv"), 1000, g_text, g_len, IMF_COMP_GZIP);
  read_all_and_compare(path_in("xz.txt"), 1000, g_text, g_len, IMF_COMP_XZ);
  read_all_and_compare(path_in("zstd.dat"), 1000, g_text, g_len, IMF_COMP_ZSTD);
}

static void test_multi_member(void **state) {
  (void)state;
  assert_int_equal(tu_write_file(path_in("p1.txt"), "1,2,3\n4,5,6\n"), 0);
  assert_int_equal(tu_write_file(path_in("p2.txt"), "7,8,9\n"), 0);
  sh("gzip -c p1.txt > m.gz && gzip -c p2.txt >> m.gz && gzip -c plain.txt >> m.gz");
  sh("xz -c p1.txt > m.xz && xz -c p2.txt >> m.xz && xz -c plain.txt >> m.xz");
  sh("zstd -q -c p1.txt > m.zst && zstd -q -c p2.txt >> m.zst && zstd -q -c plain.txt >> m.zst");
  size_t n = 18 + g_len;
  char *want = malloc(n);
  memcpy(want, "1,2,3\n4,5,6\n7,8,9\n", 18);
  memcpy(want + 18, g_text, g_len);
  const size_t chunks[] = {5, 65536};
  for (size_t i = 0; i < 2; i++) {
    read_all_and_compare(path_in("m.gz"), chunks[i], want, n, IMF_COMP_GZIP);
    read_all_and_compare(path_in("m.xz"), chunks[i], want, n, IMF_COMP_XZ);
    read_all_and_compare(path_in("m.zst"), chunks[i], want, n, IMF_COMP_ZSTD);
  }
  free(want);
  /* tiny and empty contents */
  assert_int_equal(tu_write_file(path_in("e.txt"), ""), 0);
  sh("gzip -c e.txt > e.gz && xz -c e.txt > e.xz && zstd -q -c e.txt > e.zst");
  read_all_and_compare(path_in("e.txt"), 10, "", 0, IMF_COMP_NONE);
  read_all_and_compare(path_in("e.gz"), 10, "", 0, IMF_COMP_GZIP);
  read_all_and_compare(path_in("e.xz"), 10, "", 0, IMF_COMP_XZ);
  read_all_and_compare(path_in("e.zst"), 10, "", 0, IMF_COMP_ZSTD);
  assert_int_equal(tu_write_file(path_in("t.txt"), "ab"), 0);
  read_all_and_compare(path_in("t.txt"), 1, "ab", 2, IMF_COMP_NONE);
}

/* Expect reading to fail with IMF_ERR_INPUT naming the file and the compression. */
static void expect_corrupt(const char *name, const char *kind) {
  imf_reader *r;
  const char *path = path_in(name);
  assert_int_equal(imf_reader_open(path, &r), IMF_OK);
  static char buf[65536];
  size_t n;
  imf_status st;
  int guard = 0;
  while ((st = imf_reader_read(r, buf, sizeof buf, &n)) == IMF_OK && n > 0)
    assert_true(++guard < 1000);
  assert_int_equal(st, IMF_ERR_INPUT);
  if (!strstr(imf_last_error(), path) || !strstr(imf_last_error(), kind) ||
      !strstr(imf_last_error(), "corrupt or truncated"))
    fail_msg("unexpected message: %s", imf_last_error());
  /* the failure repeats rather than looking like a clean end */
  assert_int_equal(imf_reader_read(r, buf, sizeof buf, &n), IMF_ERR_INPUT);
  imf_reader_close(&r);
}

static void test_corrupt_and_truncated(void **state) {
  (void)state;
  sh("gzip -c plain.txt > c.gz && xz -c plain.txt > c.xz && zstd -q -c plain.txt > c.zst");
  sh("head -c 40000 c.xz > trunc.xz && head -c 40000 c.gz > trunc.gz && head -c 40000 c.zst > trunc.zst");
  sh("head -c 5 c.gz > head.gz && head -c 8 c.xz > head.xz");
  /* corrupt bytes in the middle: the CRC (gzip) or block checks (xz, zstd) catch them */
  sh("cp c.gz bad.gz && printf 'XXXXXXXX' | dd of=bad.gz bs=1 seek=30000 conv=notrunc 2>/dev/null");
  sh("cp c.xz bad.xz && printf 'XXXXXXXX' | dd of=bad.xz bs=1 seek=30000 conv=notrunc 2>/dev/null");
  sh("cp c.zst bad.zst && printf 'XXXXXXXX' | dd of=bad.zst bs=1 seek=30000 conv=notrunc 2>/dev/null");
  /* a good member followed by garbage */
  sh("cp c.gz garbage.gz && printf 'not gzip at all' >> garbage.gz");
  expect_corrupt("trunc.xz", "xz");
  expect_corrupt("trunc.gz", "gzip");
  expect_corrupt("trunc.zst", "zstd");
  expect_corrupt("head.gz", "gzip");
  expect_corrupt("head.xz", "xz");
  expect_corrupt("bad.gz", "gzip");
  expect_corrupt("bad.xz", "xz");
  expect_corrupt("bad.zst", "zstd");
  expect_corrupt("garbage.gz", "gzip");
}

static void test_open_errors(void **state) {
  (void)state;
  imf_reader *r = (imf_reader *)&r;
  assert_int_equal(imf_reader_open(path_in("missing.csv"), &r), IMF_ERR_NOTFOUND);
  assert_null(r);
  assert_non_null(strstr(imf_last_error(), "missing.csv"));
  assert_non_null(strstr(imf_last_error(), "No such file"));
  assert_int_equal(imf_reader_open(g_dir, &r), IMF_ERR_INPUT);
  assert_non_null(strstr(imf_last_error(), "is a directory"));
  assert_non_null(strstr(imf_last_error(), g_dir));
  char hex[65];
  assert_int_equal(imf_sha256_file(path_in("missing.csv"), hex), IMF_ERR_NOTFOUND);
  assert_int_equal(imf_sha256_file(g_dir, hex), IMF_ERR_INPUT);
  imf_reader_close(NULL);
  r = NULL;
  imf_reader_close(&r);
}

static void test_pread(void **state) {
  (void)state;
  imf_reader *r;
  assert_int_equal(imf_reader_open(path_in("plain.txt"), &r), IMF_OK);
  assert_int_equal(imf_reader_file_size(r), (int64_t)g_len);
  char buf[100];
  size_t n;
  const int64_t offs[] = {0, 1, 5, 4095, 262144, (int64_t)g_len - 100};
  for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++) {
    assert_int_equal(imf_reader_pread(r, buf, sizeof buf, offs[i], &n), IMF_OK);
    assert_int_equal(n, sizeof buf);
    assert_memory_equal(buf, g_text + offs[i], n);
  }
  assert_int_equal(imf_reader_pread(r, buf, sizeof buf, (int64_t)g_len - 10, &n), IMF_OK);
  assert_int_equal(n, 10);
  assert_memory_equal(buf, g_text + g_len - 10, 10);
  assert_int_equal(imf_reader_pread(r, buf, sizeof buf, (int64_t)g_len + 10, &n), IMF_OK);
  assert_int_equal(n, 0);
  /* pread does not disturb the sequential position */
  assert_int_equal(imf_reader_read(r, buf, 10, &n), IMF_OK);
  assert_int_equal(n, 10);
  assert_memory_equal(buf, g_text, 10);
  assert_int_equal(imf_reader_pread(r, buf, sizeof buf, -1, &n), IMF_ERR_RUNTIME);
  imf_reader_close(&r);
  sh("gzip -c plain.txt > p.gz");
  assert_int_equal(imf_reader_open(path_in("p.gz"), &r), IMF_OK);
  assert_int_equal(imf_reader_pread(r, buf, sizeof buf, 0, &n), IMF_ERR_RUNTIME);
  assert_non_null(strstr(imf_last_error(), "p.gz"));
  imf_reader_close(&r);
}

static void test_sha256(void **state) {
  (void)state;
  char hex[65];
  imf_sha256_hex("abc", 3, hex);
  assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  imf_sha256_hex("", 0, hex);
  assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  assert_int_equal(tu_write_file(path_in("abc.txt"), "abc"), 0);
  assert_int_equal(imf_sha256_file(path_in("abc.txt"), hex), IMF_OK);
  assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  /* a larger file digests the same as the memory buffer */
  char want[65];
  imf_sha256_hex(g_text, g_len, want);
  assert_int_equal(imf_sha256_file(path_in("plain.txt"), hex), IMF_OK);
  assert_string_equal(hex, want);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_plain_and_compressed), cmocka_unit_test(test_multi_member),
      cmocka_unit_test(test_corrupt_and_truncated), cmocka_unit_test(test_open_errors),
      cmocka_unit_test(test_pread),                cmocka_unit_test(test_sha256),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
