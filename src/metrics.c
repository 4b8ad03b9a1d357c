/* metrics.c - ranking metrics of one user's top-K list (definitions: docs/METRICS.md). The
 * relevance test is a binary search in the user's sorted relevant items, so a user costs
 * O(K log |rel|) whatever the catalogue size. */
#include "metrics.h"
#include "error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int is_rel(const int32_t *rel, int64_t n, int32_t item) {
  int64_t lo = 0, hi = n;
  while (lo < hi) {
    int64_t mid = lo + (hi - lo) / 2;
    if (rel[mid] < item) lo = mid + 1;
    else hi = mid;
  }
  return lo < n && rel[lo] == item;
}

void imf_rank_metrics_add(const int32_t *rec, int nrec, const int32_t *rel, int64_t nrel, int k,
                          imf_rank_sums *s) {
  int n = nrec < k ? nrec : k;
  int64_t denom = nrel < k ? nrel : k; /* min(K, |relevant|): Liang et al. 2018 */
  double hits = 0, dcg = 0, idcg = 0, ap = 0;
  for (int j = 0; j < n; j++) {
    if (is_rel(rel, nrel, rec[j])) {
      hits += 1;
      dcg += 1.0 / log2((double)j + 2.0);
      ap += hits / (double)(j + 1); /* precision at this hit's position */
    }
  }
  for (int64_t j = 0; j < denom; j++) idcg += 1.0 / log2((double)j + 2.0);
  double p = hits / (double)k, r = hits / (double)denom;
  s->precision += p;
  s->recall += r;
  s->f1 += (p + r > 0) ? 2 * p * r / (p + r) : 0;
  s->ndcg += dcg / idcg;
  s->ap += ap / (double)denom;
  s->hit += hits > 0;
  s->users += 1;
}

void imf_rank_means_of(const imf_rank_sums *s, double coverage, imf_rank_means *o) {
  o->k = s->k;
  double n = s->users;
  o->precision = n > 0 ? s->precision / n : NAN;
  o->recall = n > 0 ? s->recall / n : NAN;
  o->f1 = n > 0 ? s->f1 / n : NAN;
  o->ndcg = n > 0 ? s->ndcg / n : NAN;
  o->map = n > 0 ? s->ap / n : NAN;
  o->hit_rate = n > 0 ? s->hit / n : NAN;
  o->coverage = coverage;
}

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

imf_status imf_parse_cutoffs(const char *text, int *ks, int *nk) {
  *nk = 0;
  const char *p = text;
  while (*p) {
    char *end;
    long v = strtol(p, &end, 10);
    if (end == p || v < 1 || v > 100000 || (*end && *end != ','))
      IMF_FAIL(IMF_ERR_USAGE, "cut-offs must be positive integers separated by commas, got '%s'", text);
    if (*nk == IMF_MAX_CUTOFFS) IMF_FAIL(IMF_ERR_USAGE, "at most %d cut-offs", IMF_MAX_CUTOFFS);
    ks[(*nk)++] = (int)v;
    p = *end ? end + 1 : end;
  }
  if (*nk == 0) IMF_FAIL(IMF_ERR_USAGE, "no cut-off given");
  qsort(ks, (size_t)*nk, sizeof *ks, cmp_int);
  int w = 1;
  for (int i = 1; i < *nk; i++)
    if (ks[i] != ks[w - 1]) ks[w++] = ks[i];
  *nk = w;
  return IMF_OK;
}
