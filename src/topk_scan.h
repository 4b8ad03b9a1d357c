/* topk_scan.h - the scan of one GEMM tile of scores into the users' bounded heaps, included by
 * topk.c once per vector width (a poor man's template: one body, several instruction sets).
 * Before including, define SCAN_NAME (the function), SCAN_BLOCK (scores tested per vector
 * check), SCAN_REACHES (a function: does any score + bias of the block reach the threshold?)
 * and SCAN_TARGET (a function attribute, possibly empty). Every variant keeps exactly the same
 * heaps: a block is skipped only when none of its candidates could enter.
 *
 * Tile: rows u0 .. u0+tu-1 of the query against items i0 .. i0+ti-1; C is tu x ti, row-major.
 * ep[a] is user u0+a's position in its sorted exclusion list, carried from tile to tile. */
SCAN_TARGET static void SCAN_NAME(const imf_topk_query *q, int K, int32_t *items, float *scores,
                                  int *count, int64_t *ep, const float *C, int64_t u0, int tu,
                                  int64_t i0, int ti) {
  for (int a = 0; a < tu; a++) {
    int64_t r = u0 + a;
    int32_t *hi = items + r * K;
    float *hs = scores + r * K;
    int n = count[r];
    const float *row = C + (size_t)a * (size_t)ti;
    int64_t e = ep[a], eend = q->excl_ptr ? q->excl_ptr[r + 1] : 0;
    const int32_t *ex = q->excl_idx;
    const float *pc = q->pop ? q->pop->count : NULL;
    int j = 0;
    while (j < ti) {
      if (n == K && j + SCAN_BLOCK <= ti &&
          !SCAN_REACHES(row + j, q->ybias ? q->ybias + i0 + j : zeros, hs[0])) {
        j += SCAN_BLOCK;
        continue;
      }
      int jend = j + SCAN_BLOCK <= ti ? j + SCAN_BLOCK : ti;
      for (; j < jend; j++) {
        int32_t item = (int32_t)(i0 + j);
        float s = row[j];
        if (q->ybias) s += q->ybias[item];
        if (n == K && !(s > hs[0])) {
          /* cheap reject; an equal score enters when it wins the tie (topk.h's order) */
          if (!(s == hs[0] && imf_rank_worse(hs[0], hi[0], s, item, pc))) continue;
        }
        if (s != s) continue; /* NaN never ranks */
        while (e < eend && ex[e] < item) e++;
        if (e < eend && ex[e] == item) continue;
        if (n < K) {
          hi[n] = item;
          hs[n] = s;
          sift_up(hi, hs, n, pc);
          n++;
        } else {
          hi[0] = item;
          hs[0] = s;
          sift_down(hi, hs, K, 0, pc);
        }
      }
    }
    count[r] = n;
    ep[a] = e;
  }
}

#undef SCAN_NAME
#undef SCAN_BLOCK
#undef SCAN_REACHES
#undef SCAN_TARGET
