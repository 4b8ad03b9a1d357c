/* ratings.c - growable struct-of-arrays rating buffers and id lists. */
#include "ratings.h"
#include "error.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void imf_ratings_own(imf_ratings *r, void *block, int32_t *user, int32_t *item, float *value, int64_t *time,
                     int64_t n, int64_t cap) {
  r->block = block;
  r->user = user;
  r->item = item;
  r->value = value;
  r->time = time;
  r->n = n;
  r->cap = cap;
}

imf_status imf_ratings_reserve(imf_ratings *r, int64_t cap) {
  if (cap <= r->cap) return IMF_OK;
  if (cap < 0) IMF_FAIL(IMF_ERR_NOMEM, "negative rating count");
  if (r->block) { /* growing out of an adopted buffer: arrays of their own from here on */
    imf_ratings g = {0};
    IMF_CHECK(imf_ratings_reserve(&g, cap));
    size_t k = (size_t)r->n;
    memcpy(g.user, r->user, k * sizeof *g.user);
    memcpy(g.item, r->item, k * sizeof *g.item);
    memcpy(g.value, r->value, k * sizeof *g.value);
    memcpy(g.time, r->time, k * sizeof *g.time);
    g.n = r->n;
    imf_free(&r->block);
    *r = g;
    return IMF_OK;
  }
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
  if (r->block) {
    imf_free(&r->block);
    r->user = r->item = NULL;
    r->value = NULL;
    r->time = NULL;
  }
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
