/* guard.c - see guard.h. */
#include "guard.h"
#include "error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A number from the first line of a file ("max" and unreadable files: -1). */
static double read_num(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  char buf[64] = {0};
  double v = -1;
  if (fgets(buf, sizeof buf, f) && strncmp(buf, "max", 3) != 0) v = strtod(buf, NULL);
  fclose(f);
  return v;
}

double imf_mem_available_per_rank(void) {
  double avail = -1;
  FILE *f = fopen("/proc/meminfo", "r");
  if (f) {
    char line[256];
    while (fgets(line, sizeof line, f))
      if (!strncmp(line, "MemAvailable:", 13)) {
        avail = strtod(line + 13, NULL) * 1024.0;
        break;
      }
    fclose(f);
  }
  double max = read_num("/sys/fs/cgroup/memory.max"), cur = read_num("/sys/fs/cgroup/memory.current");
  if (max > 0 && cur >= 0 && (avail < 0 || max - cur < avail)) avail = max - cur;
  if (avail < 0) return -1;
  const char *ls = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
  if (!ls) ls = getenv("SLURM_NTASKS_PER_NODE");
  long n = ls ? strtol(ls, NULL, 10) : 1;
  return avail / (double)(n > 0 ? n : 1);
}

imf_status imf_mem_guard(const char *what, double bytes) {
  double avail = imf_mem_available_per_rank();
  if (avail < 0 || bytes <= avail) return IMF_OK;
  IMF_FAIL(IMF_ERR_USAGE,
           "%s needs about %.2f GB of memory on each rank, but only %.2f GB are available per rank on this node: "
           "ask for less", what, bytes / 1e9, avail / 1e9);
}
