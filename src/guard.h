/* guard.h - sizes given by the user that multiply memory (--top, cut-offs, synth sizes, read
 * chunks): capped by what they can mean and checked against the memory there is before the
 * allocation, so that a typo is a clear error instead of a node swapping until the OOM killer
 * comes (issue 22: `recommend --all --top 10000000` grew two ranks to 12 GB each). */
#ifndef IMF_GUARD_H
#define IMF_GUARD_H
#include "incremf.h"
#include <stdint.h>

/* Bytes this process may still allocate: MemAvailable of /proc/meminfo, bounded by the cgroup's
 * memory.max - memory.current where one is set, shared by the ranks on this node (Open MPI's
 * OMPI_COMM_WORLD_LOCAL_SIZE, Slurm's SLURM_NTASKS_PER_NODE); -1 when it cannot be told. */
double imf_mem_available_per_rank(void);
/* (local) IMF_ERR_USAGE naming `what` (e.g. "--top 10000000") when `bytes` more per rank do not
 * fit in what is available; IMF_OK when they fit or nothing is known. */
imf_status imf_mem_guard(const char *what, double bytes);
/* A count the user asked for, capped by the number there is (top N of n items is at most n). */
static inline int64_t imf_cap_count(int64_t want, int64_t have) { return want > have ? (have > 0 ? have : 1) : want; }
#endif
