/* metrics.h - the rating and ranking metrics of `evaluate`, as pure functions over one user's
 * ranked list (no I/O, no communication), so that they can be checked against hand-computed
 * cases. Every definition, denominators included, is written out in docs/METRICS.md; the code
 * follows it exactly. evaluate.c sums the per-user values over the ranks and divides once. */
#ifndef IMF_METRICS_H
#define IMF_METRICS_H
#include "incremf.h"
#include <stdint.h>

#define IMF_MAX_CUTOFFS 16

/* Per-user sums of the ranking metrics at one cut-off K (divide by `users` for the means). */
typedef struct {
  int k;
  double precision, recall, f1, ndcg, ap, hit;
  double users;    /* users that entered the sums */
} imf_rank_sums;

/* The ranking metrics of one user at cut-off k, added to s (s->users += 1).
 * rec: the user's ranked list (best first), nrec entries (nrec may be < k when fewer candidates
 * exist; the missing positions count as misses). rel: the user's relevant held-out items,
 * sorted ascending, nrel >= 1 (a user without relevant items is not evaluated). */
void imf_rank_metrics_add(const int32_t *rec, int nrec, const int32_t *rel, int64_t nrel, int k,
                          imf_rank_sums *s);

/* The means of a sums record (0 users: all NaN). */
typedef struct {
  int k;
  double precision, recall, f1, ndcg, map, hit_rate, coverage;
} imf_rank_means;
void imf_rank_means_of(const imf_rank_sums *s, double coverage, imf_rank_means *out);

/* Parse "10" or "5,10,20" into ascending distinct cut-offs (1 .. 100000). */
imf_status imf_parse_cutoffs(const char *text, int *ks, int *nk);
#endif
