/* fuzz_config.c - the options mechanism (src/config.c): INI text through libinih, and
 * `--set section.key=value` assignments. The input is used three ways:
 *   1. as an INI file (imf_config_load_string, and imf_config_load_file on a scratch copy);
 *   2. line by line as --set assignments on a fresh configuration;
 *   3. whatever was accepted is dumped (imf_config_dump, the text stored in checkpoints and
 *      read back by `train --resume`), and the dump must load again and dump identically.
 * Every key is then read back with every typed getter, and the parse options derived. */
#include "config.h"
#include "fuzzsupport.h"
#include "ingest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char **keys;
static int nkeys;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  fz_init_quiet();
  /* the key names, from the help listing ("  key  default ...") */
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  imf_config_print_keys(f);
  fclose(f);
  for (char *save = NULL, *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    char k[128];
    if (sscanf(line, " %127s", k) != 1) continue;
    keys = realloc(keys, (size_t)(nkeys + 1) * sizeof *keys);
    keys[nkeys++] = strdup(k);
  }
  free(buf);
  return 0;
}

static void read_all(const imf_config *c) {
  for (int i = 0; i < nkeys; i++) {
    const char *s = NULL;
    int64_t iv;
    double dv;
    int bv;
    FZ_ASSERT(imf_config_get_str(c, keys[i], &s) == IMF_OK && s, "key %s has no value", keys[i]);
    (void)imf_config_get_int(c, keys[i], &iv);
    (void)imf_config_get_double(c, keys[i], &dv);
    (void)imf_config_get_bool(c, keys[i], &bv);
  }
  imf_parse_opts o;
  (void)imf_parse_opts_from_config(c, &o);
}

/* dump, load the dump into a fresh configuration, dump again: the same text */
static void round_trip(const imf_config *c, int must_hold) {
  char *d1 = imf_config_dump(c);
  FZ_ASSERT(d1, "imf_config_dump returned NULL");
  imf_config *c2 = NULL;
  FZ_ASSERT(imf_config_create(&c2) == IMF_OK, "create");
  imf_status st = imf_config_load_string(c2, d1, "dump");
  if (must_hold) {
    FZ_ASSERT(st == IMF_OK, "the dump of an accepted configuration does not load: %s\n--- dump ---\n%s",
              imf_last_error(), d1);
    char *d2 = imf_config_dump(c2);
    FZ_ASSERT(d2 && strcmp(d1, d2) == 0, "the dump changes when loaded and dumped again\n--- first ---\n%s\n--- second ---\n%s",
              d1, d2 ? d2 : "(null)");
    free(d2);
  }
  imf_config_destroy(&c2);
  free(d1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (!text) abort();
  memcpy(text, data, size);
  text[size] = '\0';

  /* 1. INI text */
  imf_config *c = NULL;
  FZ_ASSERT(imf_config_create(&c) == IMF_OK, "create");
  imf_status st = imf_config_load_string(c, text, "fuzz.ini");
  FZ_ASSERT(st == IMF_OK || st == IMF_ERR_USAGE || st == IMF_ERR_INPUT, "load_string status %d", (int)st);
  read_all(c);
  if (st == IMF_OK) round_trip(c, 1);
  imf_config_destroy(&c);

  char path[4200];
  snprintf(path, sizeof path, "%s/fuzz.ini", fz_tmpdir());
  if (fz_write_file(path, data, size) == 0) {
    FZ_ASSERT(imf_config_create(&c) == IMF_OK, "create");
    st = imf_config_load_file(c, path);
    FZ_ASSERT(st == IMF_OK || st == IMF_ERR_USAGE || st == IMF_ERR_INPUT, "load_file status %d", (int)st);
    read_all(c);
    imf_config_destroy(&c);
  }

  /* 2. --set lines */
  FZ_ASSERT(imf_config_create(&c) == IMF_OK, "create");
  int accepted = 0;
  for (char *save = NULL, *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    st = imf_config_set(c, line);
    FZ_ASSERT(st == IMF_OK || st == IMF_ERR_USAGE, "--set status %d", (int)st);
    accepted += st == IMF_OK;
  }
  read_all(c);
  if (accepted) round_trip(c, 1);
  imf_config_destroy(&c);
  free(text);
  return 0;
}
