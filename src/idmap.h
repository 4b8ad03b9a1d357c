/* idmap.h - raw string id -> dense index, in order of first appearance, never renumbered.
 * Ids are compared byte for byte: "0104257" and "104257" are different ids. */
#ifndef IMF_IDMAP_H
#define IMF_IDMAP_H
#include "ratings.h"
#include <stddef.h>

typedef struct imf_idmap imf_idmap;
imf_status imf_idmap_create(imf_idmap **m);
void imf_idmap_destroy(imf_idmap **m);
int64_t imf_idmap_size(const imf_idmap *m);
/* Index of id, or -1 when absent. */
int64_t imf_idmap_find(const imf_idmap *m, const char *id, size_t len);
/* Index of id, inserting it with the next index when absent (*added = 1 then). */
imf_status imf_idmap_insert(imf_idmap *m, const char *id, size_t len, int64_t *index, int *added);
/* Inserts ids blob[off[j]..off[j+1]) for j < n in order (as imf_idmap_insert does each), their
 * indices into index[j]; *nadded counts the new ones. Faster than one at a time on a big table. */
imf_status imf_idmap_insert_list(imf_idmap *m, const char *blob, const int64_t *off, int64_t n, int64_t *index,
                                 int64_t *nadded);
/* imf_idmap_insert_list of every id of src, in its order (src has no holes). */
imf_status imf_idmap_insert_map(imf_idmap *m, const imf_idmap *src, int64_t *index, int64_t *nadded);
/* Room for n more ids of `bytes` bytes in all, so that inserting them never regrows the table. */
imf_status imf_idmap_reserve(imf_idmap *m, int64_t n, int64_t bytes);
/* The id of index (not NUL-terminated; *len set). */
const char *imf_idmap_get(const imf_idmap *m, int64_t index, size_t *len);
/* Append every id of a list, in order (used when loading a store). */
imf_status imf_idmap_add_list(imf_idmap *m, const imf_idlist *l);
/* Ids with index in [from, size) as a list (what a batch adds). */
imf_status imf_idmap_tail(const imf_idmap *m, int64_t from, imf_idlist *out);
/* Drop ids with index >= n (undo of a failed ingestion). */
void imf_idmap_truncate(imf_idmap *m, int64_t n);
#endif
