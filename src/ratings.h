/* ratings.h - the in-memory rating triples every stage passes along (struct of arrays).
 * Indices are dense int32 (documented limit: < 2^31 users and items); counts are int64. */
#ifndef IMF_RATINGS_H
#define IMF_RATINGS_H
#include "incremf.h"
#include <stdint.h>

#define IMF_NO_TIME INT64_MIN /* timestamp of a rating whose input had none */

typedef struct {
  int64_t n, cap;
  int32_t *user, *item;
  float *value;
  int64_t *time;
  void *block; /* NULL: the four arrays are allocations of their own; else they lie in this one
                  (imf_ratings_own), which imf_ratings_free frees */
} imf_ratings;

imf_status imf_ratings_reserve(imf_ratings *r, int64_t cap);
/* Hand over one buffer (from imf_alloc) that already holds the four arrays of n ratings, with
 * room for cap: the ratings own it from here on (imf_ratings_free frees it; growing past cap
 * moves them to arrays of their own). A stage that built a batch inside its own large buffer
 * passes it on instead of copying it into fresh memory. r must be empty. */
void imf_ratings_own(imf_ratings *r, void *block, int32_t *user, int32_t *item, float *value, int64_t *time,
                     int64_t n, int64_t cap);
imf_status imf_ratings_push(imf_ratings *r, int32_t u, int32_t i, float v, int64_t t);
void imf_ratings_free(imf_ratings *r);

/* A list of string ids: id j is blob[off[j] .. off[j+1]) (not NUL-terminated). */
typedef struct {
  int64_t n;
  int64_t *off; /* n + 1 entries */
  char *blob;
} imf_idlist;
void imf_idlist_free(imf_idlist *l);
#endif
