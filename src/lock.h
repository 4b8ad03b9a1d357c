/* lock.h - a single-writer lock file for a directory (the store, the model directory).
 *
 * The lock file holds "host pid start-time\n" and is created with O_CREAT|O_EXCL. A lock left
 * by a dead process on this host is stale and taken over with a warning; a live holder, or any
 * holder on another host (whose liveness we cannot check), refuses the lock unless break_lock.
 * These are local calls: collective users acquire on one rank and agree on the status. */
#ifndef IMF_LOCK_H
#define IMF_LOCK_H
#include "incremf.h"

typedef struct imf_lock imf_lock;

/* (local) Take the lock file `lockfile`. IMF_ERR_LOCKED when another writer holds it. */
imf_status imf_lock_acquire(const char *lockfile, int break_lock, imf_lock **out);
/* (local) Remove the lock file if it is still ours, and free. NULL-safe. */
void imf_lock_release(imf_lock **l);
#endif
