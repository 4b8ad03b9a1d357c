/* ratings.c - growable struct-of-arrays rating buffers and id lists. */
#include "ratings.h"
#include "error.h"
#include <stdlib.h>

imf_status imf_ratings_reserve(imf_ratings *r, int64_t cap) {
  if (cap <= r->cap) return IMF_OK;
  if (cap < 0) IMF_FAIL(IMF_ERR_NOMEM, "negative rating count");
  size_t n = (size_t)cap;
  IMF_CHECK(imf_realloc(&r->user, n, sizeof *r->user));
  IMF_CHECK(imf_realloc(&r->item, n, sizeof *r->item));
  IMF_CHECK(imf_realloc(&r->value, n, sizeof *r->value));
  IMF_CHECK(imf_realloc(&r->time, n, sizeof *r->time));
  r->cap = cap;
  return IMF_OK;
}

imf_status imf_ratings_push(imf_ratings *r, int32_t u, int32_t i, float v, int64_t t) {
  if (r->n == r->cap) IMF_CHECK(imf_ratings_reserve(r, r->cap < 1024 ? 1024 : r->cap * 2));
  r->user[r->n] = u;
  r->item[r->n] = i;
  r->value[r->n] = v;
  r->time[r->n] = t;
  r->n++;
  return IMF_OK;
}

void imf_ratings_free(imf_ratings *r) {
  imf_free(&r->user);
  imf_free(&r->item);
  imf_free(&r->value);
  imf_free(&r->time);
  r->n = r->cap = 0;
}

void imf_idlist_free(imf_idlist *l) {
  imf_free(&l->off);
  imf_free(&l->blob);
  l->n = 0;
}
