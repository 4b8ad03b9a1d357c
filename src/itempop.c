/* itempop.c - item popularity counts and the popularity prior (itempop.h). */
#include "itempop.h"
#include "error.h"
#include "partition.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void imf_item_pop_free(imf_item_pop *p) {
  imf_free(&p->count);
  imf_free(&p->prior);
  memset(p, 0, sizeof *p);
}

double imf_item_pop_beta(const imf_config *cfg) {
  double b = 0;
  if (imf_config_get_double(cfg, "model.pop_prior", &b) != IMF_OK) { /* a configuration from before the key */
    imf_err_clear();
    return 0;
  }
  return b;
}

/* The reduced counts into out (cnt: this rank's, nitems), and the prior when beta > 0. */
static imf_status finish(MPI_Comm comm, int64_t nitems, int64_t *cnt, double beta, imf_item_pop *out) {
  size_t n = (size_t)(nitems ? nitems : 1);
  if (nitems > 0) IMF_MPI(MPI_Allreduce(MPI_IN_PLACE, cnt, (int)nitems, MPI_INT64_T, MPI_SUM, comm));
  IMF_CHECK(imf_alloc(&out->count, n, sizeof *out->count));
  int64_t mx = 0;
  for (int64_t i = 0; i < nitems; i++) {
    out->count[i] = (float)cnt[i];
    if (cnt[i] > mx) mx = cnt[i];
  }
  out->n = nitems;
  out->beta = beta;
  if (beta != 0 && mx > 0) {
    IMF_CHECK(imf_alloc(&out->prior, n, sizeof *out->prior));
    double den = log1p((double)mx);
    for (int64_t i = 0; i < nitems; i++) out->prior[i] = (float)(beta * log1p((double)cnt[i]) / den);
  }
  return IMF_OK;
}

imf_status imf_item_pop_csr(MPI_Comm comm, int64_t nitems, int64_t nrows, const int64_t *ptr, const int32_t *idx,
                            double beta, imf_item_pop *out) {
  memset(out, 0, sizeof *out);
  int64_t *cnt = NULL;
  imf_status st = imf_alloc(&cnt, (size_t)(nitems ? nitems : 1), sizeof *cnt);
  for (int64_t r = 0; st == IMF_OK && r < nrows; r++)
    for (int64_t j = ptr[r]; j < ptr[r + 1]; j++)
      if (idx[j] >= 0 && idx[j] < nitems) cnt[idx[j]]++;
  st = imf_agree(comm, st);
  if (st == IMF_OK) st = imf_agree(comm, finish(comm, nitems, cnt, beta, out));
  imf_free(&cnt);
  if (st != IMF_OK) imf_item_pop_free(out);
  return st;
}

imf_status imf_item_pop_ratings(MPI_Comm comm, int64_t nitems, const imf_ratings *r, double thr, double hfrac,
                                uint64_t hseed, double beta, imf_item_pop *out) {
  memset(out, 0, sizeof *out);
  int64_t *cnt = NULL;
  imf_status st = imf_alloc(&cnt, (size_t)(nitems ? nitems : 1), sizeof *cnt);
  for (int64_t j = 0; st == IMF_OK && j < r->n; j++) {
    int64_t i = r->item[j];
    if (i < 0 || i >= nitems || (!isnan(thr) && !(r->value[j] >= thr))) continue;
    if (hfrac > 0 && imf_is_holdout(hseed, hfrac, r->user[j], i)) continue;
    cnt[i]++;
  }
  st = imf_agree(comm, st);
  if (st == IMF_OK) st = imf_agree(comm, finish(comm, nitems, cnt, beta, out));
  imf_free(&cnt);
  if (st != IMF_OK) imf_item_pop_free(out);
  return st;
}
