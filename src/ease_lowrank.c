/* ease_lowrank.c - EASE's inverse kept up to date by a low-rank (Woodbury) update (ease.h,
 * imf_ease_woodbury), the cheap path of an EASE `update` when few users changed.
 *
 * When r users' rows of X change, G = X^T X changes by sum over them of new^T new - old^T old,
 * i.e. G' = G + U^T S U with U the m <= 2r changed rows (each old row with sign -1, each new
 * one with +1: S = diag(+-1)). With P = (G + lambda I)^-1 (kept from the previous solve) the
 * Woodbury identity gives
 *     P' = P - W (S + U W)^-1 W^T,   W = P U^T (n x m),
 * at 2 n^2 m / ranks flops instead of the n^3 / ranks of a refactorisation (pdpotrf + pdpotri).
 * B is then formed from P' exactly as after a solve (imf_ease_b_from_p).
 *
 * Layout: P on a 1 x P grid (every rank whole columns; no rank holds all of P). Column a of P
 * is also row a (P is symmetric), so W(a, t) = sum over the items i of row t, ascending, of
 * P(i, a) is summed by the owner of column a alone, in a fixed order: W is the same on any rank
 * count, and is then replicated (n x m doubles, one owner per entry: the MPI sum is exact). The
 * m x m matrix C = S + U W is formed and LU-factored identically on every rank; each rank solves
 * for its own columns and updates them with one dgemm. The rows of U are ordered by user (each
 * rank's block by its first user), so U, W and C do not depend on the rank count; only the
 * blocking of OpenBLAS's dgetrs/dgemm over a rank's columns can change the last bits of P'.
 * An ill-conditioned C (rcond < 1e-10) is refused with IMF_ERR_INPUT: the caller refactorises. */
#include "ease.h"
#include "error.h"

#include <cblas.h>
#include <lapacke.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

imf_status imf_ease_update_rank(MPI_Comm comm, int64_t nrows, const int64_t *optr, const int64_t *nptr,
                                int64_t *m) {
  int64_t c = 0;
  for (int64_t r = 0; r < nrows; r++) c += (optr[r + 1] > optr[r]) + (nptr[r + 1] > nptr[r]);
  IMF_MPI(MPI_Allreduce(&c, m, 1, MPI_INT64_T, MPI_SUM, comm));
  return IMF_OK;
}

/* This rank's rows of U as a stream of int32: sign, length, items ... per row. */
static imf_status local_stream(int64_t nrows, const int64_t *optr, const int32_t *oidx, const int64_t *nptr,
                               const int32_t *nidx, int32_t **out, int64_t *len) {
  int64_t n = 0;
  for (int64_t r = 0; r < nrows; r++) {
    int64_t lo = optr[r + 1] - optr[r], ln = nptr[r + 1] - nptr[r];
    n += (lo ? 2 + lo : 0) + (ln ? 2 + ln : 0);
  }
  IMF_CHECK(imf_alloc(out, (size_t)(n ? n : 1), sizeof **out));
  int32_t *s = *out;
  int64_t w = 0;
  for (int64_t r = 0; r < nrows; r++) {
    /* the old row first, then the new one: a fixed order within a user */
    for (int k = 0; k < 2; k++) {
      const int64_t *p = k ? nptr : optr;
      const int32_t *x = k ? nidx : oidx;
      int64_t l = p[r + 1] - p[r];
      if (!l) continue;
      s[w++] = k ? 1 : -1;
      s[w++] = (int32_t)l;
      memcpy(s + w, x + p[r], (size_t)l * sizeof *s);
      w += l;
    }
  }
  *len = w;
  return IMF_OK;
}

/* Every rank's stream, concatenated in the order of the ranks' keys (first user of the block). */
static imf_status gather_stream(MPI_Comm comm, int64_t key, const int32_t *mine, int64_t len, int32_t **all,
                                int64_t *total) {
  int size;
  MPI_Comm_size(comm, &size);
  int64_t me[2] = {key, len}, *kl = NULL;
  int *cnt = NULL, *dsp = NULL, *order = NULL;
  int32_t *raw = NULL;
  imf_status st = imf_alloc(&kl, 2 * (size_t)size, sizeof *kl);
  if (st == IMF_OK) st = imf_alloc(&cnt, (size_t)size, sizeof *cnt);
  if (st == IMF_OK) st = imf_alloc(&dsp, (size_t)size, sizeof *dsp);
  if (st == IMF_OK) st = imf_alloc(&order, (size_t)size, sizeof *order);
  IMF_TRY(imf_agree(comm, st), out);
  IMF_MPI_TRY(MPI_Allgather(me, 2, MPI_INT64_T, kl, 2, MPI_INT64_T, comm), out);
  int64_t tot = 0;
  for (int r = 0; r < size; r++) tot += kl[2 * r + 1];
  if (tot > INT_MAX / 2)
    IMF_TRY(IMF_RAISE(IMF_ERR_USAGE, "EASE low-rank update: %lld changed entries are too "
                      "many for one gather", (long long)tot), out);
  for (int r = 0, d = 0; r < size; r++) {
    cnt[r] = (int)kl[2 * r + 1];
    dsp[r] = d;
    d += cnt[r];
  }
  st = imf_alloc(&raw, (size_t)(tot ? tot : 1), sizeof *raw);
  if (st == IMF_OK) st = imf_alloc(all, (size_t)(tot ? tot : 1), sizeof **all);
  IMF_TRY(imf_agree(comm, st), out);
  IMF_MPI_TRY(MPI_Allgatherv(mine, (int)len, MPI_INT32_T, raw, cnt, dsp, MPI_INT32_T, comm), out);
  /* ranks in key order (insertion sort: a handful of ranks; ties keep rank order) */
  for (int r = 0; r < size; r++) {
    int x = r;
    while (x > 0 && kl[2 * order[x - 1]] > kl[2 * r]) {
      order[x] = order[x - 1];
      x--;
    }
    order[x] = r;
  }
  int64_t w = 0;
  for (int k = 0; k < size; k++) {
    int r = order[k];
    memcpy(*all + w, raw + dsp[r], (size_t)cnt[r] * sizeof *raw);
    w += cnt[r];
  }
  *total = tot;
out:
  imf_free(&kl);
  imf_free(&cnt);
  imf_free(&dsp);
  imf_free(&order);
  imf_free(&raw);
  return st;
}

/* C = S + U W (m x m, column-major), LU-factored in place; IMF_ERR_INPUT when ill-conditioned. */
static imf_status factor_c(int64_t n, int64_t m, const int64_t *up, const int32_t *ui, const double *sg,
                           const double *W, double *C, lapack_int *ipiv) {
  for (int64_t t = 0; t < m; t++)
    for (int64_t s = 0; s < m; s++) {
      double v = s == t ? sg[s] : 0.0;
      for (int64_t q = up[s]; q < up[s + 1]; q++) v += W[(size_t)t * (size_t)n + (size_t)ui[q]];
      C[(size_t)t * (size_t)m + (size_t)s] = v;
    }
  double anorm = LAPACKE_dlange(LAPACK_COL_MAJOR, '1', (lapack_int)m, (lapack_int)m, C, (lapack_int)m), rcond = 0;
  lapack_int info = LAPACKE_dgetrf(LAPACK_COL_MAJOR, (lapack_int)m, (lapack_int)m, C, (lapack_int)m, ipiv);
  if (info == 0) info = LAPACKE_dgecon(LAPACK_COL_MAJOR, '1', (lapack_int)m, C, (lapack_int)m, anorm, &rcond);
  if (info != 0 || !(rcond >= 1e-10))
    IMF_FAIL(IMF_ERR_INPUT, "EASE low-rank update: the %lld x %lld capacitance matrix is singular or "
             "ill-conditioned (rcond %.3g, info %d)", (long long)m, (long long)m, rcond, (int)info);
  return IMF_OK;
}

imf_status imf_ease_woodbury(imf_ease *e, int64_t key, int64_t nrows, const int64_t *optr, const int32_t *oidx,
                             const int64_t *nptr, const int32_t *nidx, int64_t *rank_out) {
  MPI_Comm comm = imf_ease_comm(e);
  imf_ease_layout L;
  imf_ease_get_layout(e, &L);
  double *P = imf_ease_p(e), *W = NULL, *C = NULL, *Z = NULL, *sg = NULL;
  int32_t *mine = NULL, *all = NULL, *ui = NULL;
  int64_t *up = NULL, len = 0, tot = 0, m = 0;
  lapack_int *ipiv = NULL;
  imf_status st = P && L.nprow == 1 ? IMF_OK
                                    : IMF_RAISE(IMF_ERR_RUNTIME, "EASE low-rank update needs P on a 1 x P grid");
  if (st == IMF_OK) st = local_stream(nrows, optr, oidx, nptr, nidx, &mine, &len);
  IMF_TRY(imf_agree(comm, st), out);
  IMF_TRY(gather_stream(comm, key, mine, len, &all, &tot), out);
  for (int64_t w = 0; w < tot; w += 2 + all[w + 1]) m++;
  if (rank_out) *rank_out = m;
  if (m == 0) goto out;
  const int64_t n = L.n;
  st = imf_alloc(&up, (size_t)m + 1, sizeof *up);
  if (st == IMF_OK) st = imf_alloc(&ui, (size_t)tot, sizeof *ui);
  if (st == IMF_OK) st = imf_alloc(&sg, (size_t)m, sizeof *sg);
  if (st == IMF_OK) st = imf_alloc(&W, (size_t)n * (size_t)m, sizeof *W);
  if (st == IMF_OK) st = imf_alloc_nz(&C, (size_t)m * (size_t)m, sizeof *C);
  if (st == IMF_OK) st = imf_alloc(&ipiv, (size_t)m, sizeof *ipiv);
  if (st == IMF_OK) st = imf_alloc_nz(&Z, (size_t)m * (size_t)(L.nloc ? L.nloc : 1), sizeof *Z);
  IMF_TRY(imf_agree(comm, st), out);
  for (int64_t w = 0, t = 0; w < tot; t++) {
    sg[t] = all[w];
    int64_t l = all[w + 1];
    memcpy(ui + up[t], all + w + 2, (size_t)l * sizeof *ui);
    up[t + 1] = up[t] + l;
    w += 2 + l;
  }
  for (int64_t q = 0; q < up[m] && st == IMF_OK; q++)
    if (ui[q] < 0 || ui[q] >= n)
      st = IMF_RAISE(IMF_ERR_RUNTIME, "EASE low-rank update: item %d outside [0, %lld)",
                     (int)ui[q], (long long)n);
  IMF_TRY(imf_agree(comm, st), out);
  /* W = P U^T: the owner of column a sums row a (= column a) over each row of U, ascending */
  for (int lj = 0; lj < L.nloc; lj++) {
    int64_t a = imf_ease_l2g(lj, L.nb, L.mycol, L.npcol);
    const double *col = P + (size_t)lj * (size_t)L.lld;
    for (int64_t t = 0; t < m; t++) {
      double s = 0;
      for (int64_t q = up[t]; q < up[t + 1]; q++) s += col[ui[q]];
      W[(size_t)t * (size_t)n + (size_t)a] = s;
    }
  }
  {
    const size_t chunk = (size_t)1 << 26, cnt = (size_t)n * (size_t)m;
    for (size_t o = 0; o < cnt; o += chunk)
      IMF_MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, W + o, (int)(cnt - o < chunk ? cnt - o : chunk), MPI_DOUBLE, MPI_SUM, comm), out);
  }
  /* the same C and the same factorisation on every rank (the same inputs, the same code) */
  IMF_TRY(imf_agree(comm, factor_c(n, m, up, ui, sg, W, C, ipiv)), out);
  if (L.nloc > 0) {
    for (int lj = 0; lj < L.nloc; lj++) {
      int64_t a = imf_ease_l2g(lj, L.nb, L.mycol, L.npcol);
      for (int64_t t = 0; t < m; t++) Z[(size_t)lj * (size_t)m + (size_t)t] = W[(size_t)t * (size_t)n + (size_t)a];
    }
    lapack_int info = LAPACKE_dgetrs(LAPACK_COL_MAJOR, 'N', (lapack_int)m, L.nloc, C, (lapack_int)m, ipiv, Z,
                                     (lapack_int)m);
    if (info != 0) st = IMF_RAISE(IMF_ERR_RUNTIME, "dgetrs failed (info %d)", (int)info);
    /* P(:, mine) -= W Z */
    if (st == IMF_OK)
      cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)n, L.nloc, (int)m, -1.0, W, (int)n, Z, (int)m, 1.0,
                  P, L.lld);
  }
  IMF_TRY(imf_agree(comm, st), out);
out:
  imf_free(&mine);
  imf_free(&all);
  imf_free(&up);
  imf_free(&ui);
  imf_free(&sg);
  imf_free(&W);
  imf_free(&C);
  imf_free(&Z);
  imf_free(&ipiv);
  return st;
}
