/* fuzz_pack.c - make and open the archives that fuzz_store and fuzz_registry read
 * (format: fuzzsupport.h). Plain C, no sanitizers, no libFuzzer.
 *
 *   fuzz_pack OUT NAME=FILE [NAME=FILE ...]   pack files (NAME is the name in the archive)
 *   fuzz_pack -x ARCHIVE DIR                  unpack (to look at a reproducer)
 *   fuzz_pack -l ARCHIVE                      list */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static unsigned char *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "fuzz_pack: cannot open %s: %s\n", path, strerror(errno));
    exit(1);
  }
  size_t cap = 1 << 16, len = 0;
  unsigned char *b = malloc(cap);
  size_t got;
  while (b && (got = fread(b + len, 1, cap - len, f)) > 0) {
    len += got;
    if (len == cap) b = realloc(b, cap *= 2);
  }
  fclose(f);
  if (!b) exit(1);
  *n = len;
  return b;
}

static void put32(FILE *f, uint32_t v) {
  for (int i = 0; i < 4; i++) fputc((int)(v >> (8 * i)) & 0xff, f);
}

int main(int argc, char **argv) {
  if (argc >= 3 && (!strcmp(argv[1], "-x") || !strcmp(argv[1], "-l"))) {
    size_t n;
    unsigned char *b = slurp(argv[2], &n);
    if (n < 6 || memcmp(b, "IMFZ1\n", 6)) {
      fprintf(stderr, "fuzz_pack: %s is not an archive\n", argv[2]);
      return 1;
    }
    int extract = !strcmp(argv[1], "-x");
    if (extract && argc < 4) return 2;
    if (extract) mkdir(argv[3], 0755);
    size_t p = 6;
    while (p < n) {
      size_t nl = b[p++];
      if (p + nl + 4 > n) return fprintf(stderr, "fuzz_pack: truncated entry\n"), 1;
      char name[80];
      memcpy(name, b + p, nl);
      name[nl] = '\0';
      p += nl;
      size_t len = (size_t)b[p] | (size_t)b[p + 1] << 8 | (size_t)b[p + 2] << 16 | (size_t)b[p + 3] << 24;
      p += 4;
      if (len > n - p) return fprintf(stderr, "fuzz_pack: truncated data\n"), 1;
      printf("%10zu  %s\n", len, name);
      if (extract) {
        char out[4200];
        for (char *c = name; *c; c++)
          if (*c == '/') *c = '_'; /* flat: versions/v1.h5 -> versions_v1.h5 */
        snprintf(out, sizeof out, "%s/%s", argv[3], name);
        FILE *f = fopen(out, "wb");
        if (!f || fwrite(b + p, 1, len, f) != len || fclose(f)) return perror(out), 1;
      }
      p += len;
    }
    free(b);
    return 0;
  }
  if (argc < 3) {
    fprintf(stderr, "usage: fuzz_pack OUT NAME=FILE ... | fuzz_pack -x ARCHIVE DIR | fuzz_pack -l ARCHIVE\n");
    return 2;
  }
  FILE *out = fopen(argv[1], "wb");
  if (!out) return perror(argv[1]), 1;
  fwrite("IMFZ1\n", 1, 6, out);
  for (int i = 2; i < argc; i++) {
    char *eq = strchr(argv[i], '=');
    if (!eq || eq == argv[i] || eq - argv[i] > 64) {
      fprintf(stderr, "fuzz_pack: expected NAME=FILE (NAME of 1-64 bytes), got %s\n", argv[i]);
      return 2;
    }
    size_t n;
    unsigned char *b = slurp(eq + 1, &n);
    fputc((int)(eq - argv[i]), out);
    fwrite(argv[i], 1, (size_t)(eq - argv[i]), out);
    put32(out, (uint32_t)n);
    fwrite(b, 1, n, out);
    free(b);
  }
  return fclose(out) ? 1 : 0;
}
