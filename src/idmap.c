/* idmap.c - open-addressing hash map from id strings to dense indices.
 *
 * Ids live once, back to back, in a growing blob; the table stores indices only, so a map of
 * ten million ids costs the ids' bytes plus ~16 bytes per id. The index order is the insertion
 * order, which the ingest layer makes the order of first appearance in the input. */
#include "idmap.h"
#include "error.h"
#include <stdlib.h>
#include <string.h>

struct imf_idmap {
  int64_t n;
  int64_t *off;    /* n + 1 offsets into blob */
  int64_t off_cap;
  char *blob;
  int64_t blob_len, blob_cap;
  int64_t *slot;   /* index + 1 in the low 32 bits, the hash's high 32 bits above; 0 = empty */
  uint64_t *hash;  /* hash of each id, by index, to skip compares and rehash cheaply */
  int64_t nslot;   /* power of two */
};

static uint64_t hash_bytes(const char *s, size_t n) {
  /* FNV-1a with a final avalanche; ids are short, so this is cheaper than anything fancier. */
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  return h;
}

imf_status imf_idmap_create(imf_idmap **out) {
  imf_idmap *m = calloc(1, sizeof *m);
  if (!m) IMF_FAIL(IMF_ERR_NOMEM, "out of memory");
  m->off_cap = 1024;
  m->blob_cap = 16384;
  m->nslot = 2048;
  m->off = malloc((size_t)m->off_cap * sizeof *m->off);
  m->hash = malloc((size_t)m->off_cap * sizeof *m->hash);
  m->blob = malloc((size_t)m->blob_cap);
  m->slot = calloc((size_t)m->nslot, sizeof *m->slot);
  if (!m->off || !m->blob || !m->slot || !m->hash) {
    imf_idmap_destroy(&m);
    IMF_FAIL(IMF_ERR_NOMEM, "out of memory");
  }
  m->off[0] = 0;
  *out = m;
  return IMF_OK;
}

void imf_idmap_destroy(imf_idmap **m) {
  if (!m || !*m) return;
  free((*m)->off);
  free((*m)->hash);
  free((*m)->blob);
  free((*m)->slot);
  free(*m);
  *m = NULL;
}

int64_t imf_idmap_size(const imf_idmap *m) { return m->n; }

/* A slot carries the upper half of its id's hash, so a probe past another id's slot is decided
 * in the table itself: on millions of ids each look at the id's hash, offsets and bytes was a
 * cache miss (the numbering of a 1 GB file's 2.2M new ids took 0.84 s on each rank). */
static inline int64_t slot_of(int64_t j, uint64_t h) { return (int64_t)((h >> 32) << 32) | (j + 1); }

static int64_t probe(const imf_idmap *m, const char *id, size_t len, uint64_t h) {
  int64_t mask = m->nslot - 1, p = (int64_t)(h & (uint64_t)mask);
  const uint64_t tag = h >> 32;
  for (;;) {
    int64_t s = m->slot[p];
    if (s == 0) return ~p; /* empty slot p */
    if ((uint64_t)s >> 32 == tag) {
      int64_t j = (s & 0xffffffff) - 1;
      if (m->hash[j] == h && (size_t)(m->off[j + 1] - m->off[j]) == len && memcmp(m->blob + m->off[j], id, len) == 0)
        return j;
    }
    p = (p + 1) & mask;
  }
}

int64_t imf_idmap_find(const imf_idmap *m, const char *id, size_t len) {
  int64_t r = probe(m, id, len, hash_bytes(id, len));
  return r >= 0 ? r : -1;
}

static imf_status grow_slots_to(imf_idmap *m, int64_t ns) {
  int64_t *slot = calloc((size_t)ns, sizeof *slot);
  if (!slot) IMF_FAIL(IMF_ERR_NOMEM, "out of memory growing the id table");
  for (int64_t j = 0; j < m->n; j++) {
    if (m->off[j + 1] == m->off[j]) continue; /* a hole (below): holds an index, found by no id */
    int64_t p = (int64_t)(m->hash[j] & (uint64_t)(ns - 1));
    while (slot[p]) p = (p + 1) & (ns - 1);
    slot[p] = slot_of(j, m->hash[j]);
  }
  free(m->slot);
  m->slot = slot;
  m->nslot = ns;
  return IMF_OK;
}

static imf_status grow_slots(imf_idmap *m) { return grow_slots_to(m, m->nslot * 2); }

/* Room for one more entry (an id or a hole). */
static imf_status grow_entries(imf_idmap *m) {
  if (m->n >= INT32_MAX) IMF_FAIL(IMF_ERR_INPUT, "more than %d distinct ids (documented limit)", INT32_MAX);
  if (m->n + 2 > m->off_cap) {
    int64_t nc = m->off_cap * 2;
    IMF_CHECK(imf_realloc(&m->off, (size_t)nc, sizeof *m->off));
    IMF_CHECK(imf_realloc(&m->hash, (size_t)nc, sizeof *m->hash));
    m->off_cap = nc;
  }
  return IMF_OK;
}

static imf_status insert_hashed(imf_idmap *m, const char *id, size_t len, uint64_t h, int64_t *index, int *added) {
  int64_t r = probe(m, id, len, h);
  if (r >= 0) {
    *index = r;
    if (added) *added = 0;
    return IMF_OK;
  }
  IMF_CHECK(grow_entries(m));
  if (m->blob_len + (int64_t)len > m->blob_cap) {
    int64_t nc = m->blob_cap * 2;
    while (nc < m->blob_len + (int64_t)len) nc *= 2;
    IMF_CHECK(imf_realloc(&m->blob, (size_t)nc, 1));
    m->blob_cap = nc;
  }
  memcpy(m->blob + m->blob_len, id, len);
  m->blob_len += (int64_t)len;
  int64_t j = m->n++;
  m->off[m->n] = m->blob_len;
  m->hash[j] = h;
  m->slot[~r] = slot_of(j, h);
  if (m->n * 2 > m->nslot) IMF_CHECK(grow_slots(m));
  *index = j;
  if (added) *added = 1;
  return IMF_OK;
}

imf_status imf_idmap_insert(imf_idmap *m, const char *id, size_t len, int64_t *index, int *added) {
  return insert_hashed(m, id, len, hash_bytes(id, len), index, added);
}

/* The table is far larger than the caches: each insert's first look at it is a miss, so a list
 * is inserted with the slots of the ids INSERT_AHEAD places on requested in advance. */
#define INSERT_AHEAD 16

imf_status imf_idmap_insert_list(imf_idmap *m, const char *blob, const int64_t *off, int64_t n, int64_t *index,
                                 int64_t *nadded) {
  uint64_t h[INSERT_AHEAD];
  *nadded = 0;
  for (int64_t j = 0; j < n + INSERT_AHEAD; j++) {
    if (j < n) {
      const uint64_t x = hash_bytes(blob + off[j], (size_t)(off[j + 1] - off[j]));
      h[j % INSERT_AHEAD] = x;
      __builtin_prefetch(&m->slot[x & (uint64_t)(m->nslot - 1)], 0, 1);
    }
    const int64_t k = j - INSERT_AHEAD + 1;
    if (k < 0) continue;
    if (k >= n) break;
    int added = 0;
    IMF_CHECK(insert_hashed(m, blob + off[k], (size_t)(off[k + 1] - off[k]), h[k % INSERT_AHEAD], &index[k], &added));
    *nadded += added;
  }
  return IMF_OK;
}

imf_status imf_idmap_insert_map(imf_idmap *m, const imf_idmap *src, int64_t *index, int64_t *nadded) {
  return imf_idmap_insert_list(m, src->blob, src->off, src->n, index, nadded);
}

imf_status imf_idmap_reserve(imf_idmap *m, int64_t n, int64_t bytes) {
  if (n < 0 || bytes < 0) IMF_FAIL(IMF_ERR_RUNTIME, "idmap reserve: negative size");
  if (m->n + n + 2 > m->off_cap) {
    int64_t nc = m->n + n + 2;
    IMF_CHECK(imf_realloc(&m->off, (size_t)nc, sizeof *m->off));
    IMF_CHECK(imf_realloc(&m->hash, (size_t)nc, sizeof *m->hash));
    m->off_cap = nc;
  }
  if (m->blob_len + bytes > m->blob_cap) {
    IMF_CHECK(imf_realloc(&m->blob, (size_t)(m->blob_len + bytes), 1));
    m->blob_cap = m->blob_len + bytes;
  }
  int64_t ns = m->nslot;
  while ((m->n + n) * 2 > ns) ns *= 2;
  if (ns > m->nslot) IMF_CHECK(grow_slots_to(m, ns));
  return IMF_OK;
}

const char *imf_idmap_get(const imf_idmap *m, int64_t index, size_t *len) {
  if (index < 0 || index >= m->n) {
    *len = 0;
    return NULL;
  }
  *len = (size_t)(m->off[index + 1] - m->off[index]);
  return m->blob + m->off[index];
}

/* An empty id in a list is a hole: `forget` empties a user's id in model versions, and input
 * ids are never empty (the parser rejects an empty field), so it keeps its index (the indices
 * after it stay dense) but no lookup finds it, and several may occur. */
static imf_status add_hole(imf_idmap *m) {
  IMF_CHECK(grow_entries(m));
  m->hash[m->n] = 0;
  m->n++;
  m->off[m->n] = m->blob_len;
  return IMF_OK;
}

imf_status imf_idmap_add_list(imf_idmap *m, const imf_idlist *l) {
  uint64_t h[INSERT_AHEAD]; /* as imf_idmap_insert_list: slots requested INSERT_AHEAD ids ahead */
  for (int64_t j = 0; j < l->n + INSERT_AHEAD; j++) {
    if (j < l->n) {
      const uint64_t x = hash_bytes(l->blob + l->off[j], (size_t)(l->off[j + 1] - l->off[j]));
      h[j % INSERT_AHEAD] = x;
      __builtin_prefetch(&m->slot[x & (uint64_t)(m->nslot - 1)], 0, 1);
    }
    const int64_t k = j - INSERT_AHEAD + 1;
    if (k < 0) continue;
    if (k >= l->n) break;
    if (l->off[k + 1] == l->off[k]) {
      IMF_CHECK(add_hole(m));
      continue;
    }
    int64_t idx;
    int added;
    IMF_CHECK(insert_hashed(m, l->blob + l->off[k], (size_t)(l->off[k + 1] - l->off[k]), h[k % INSERT_AHEAD], &idx,
                            &added));
    if (!added) {
      IMF_FAIL(IMF_ERR_INPUT, "id list holds the id '%.*s' twice", (int)(l->off[k + 1] - l->off[k]),
               l->blob + l->off[k]);
    }
  }
  return IMF_OK;
}

imf_status imf_idmap_tail(const imf_idmap *m, int64_t from, imf_idlist *out) {
  if (from < 0 || from > m->n) IMF_FAIL(IMF_ERR_RUNTIME, "idmap tail out of range");
  int64_t n = m->n - from;
  out->n = n;
  out->off = NULL;
  out->blob = NULL;
  IMF_CHECK(imf_alloc(&out->off, (size_t)n + 1, sizeof *out->off));
  int64_t base = m->off[from], bytes = m->off[m->n] - base;
  IMF_CHECK(imf_alloc(&out->blob, (size_t)bytes + 1, 1));
  for (int64_t j = 0; j <= n; j++) out->off[j] = m->off[from + j] - base;
  memcpy(out->blob, m->blob + base, (size_t)bytes);
  return IMF_OK;
}

void imf_idmap_truncate(imf_idmap *m, int64_t n) {
  if (n >= m->n || n < 0) return;
  /* Rebuild the table: truncation happens only after a failed ingestion. */
  m->n = n;
  m->blob_len = m->off[n];
  memset(m->slot, 0, (size_t)m->nslot * sizeof *m->slot);
  for (int64_t j = 0; j < n; j++) {
    if (m->off[j + 1] == m->off[j]) continue; /* a hole */
    int64_t p = (int64_t)(m->hash[j] & (uint64_t)(m->nslot - 1));
    while (m->slot[p]) p = (p + 1) & (m->nslot - 1);
    m->slot[p] = slot_of(j, m->hash[j]);
  }
}
