/* evaluate.c - RMSE/MAE of a model on a test file. The file is small next to the training data
 * and the model is replicated, so rank 0 scores it alone and broadcasts the figures. */
#include "evaluate.h"
#include "config.h"
#include "error.h"
#include "parse.h"
#include "reader.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static imf_status score_file(const imf_config *cfg, const imf_model *m, const imf_idmap *users,
                             const imf_idmap *items, const char *path, double lo, double hi,
                             imf_eval_result *r) {
  imf_reader *rd = NULL;
  char *buf = NULL, *scratch = NULL;
  imf_status st = IMF_OK;
  imf_parse_opts o;
  memset(&o, 0, sizeof o);
  IMF_CHECK(imf_format_from_name(imf_cfg_str(cfg, "input.format"), &o.format));
  const char *hdr = imf_cfg_str(cfg, "input.header");
  o.header = !strcmp(hdr, "auto") ? -1 : !strcmp(hdr, "yes");
  const char *d = imf_cfg_str(cfg, "input.delimiter");
  o.delim = !strcmp(d, "tab") ? '\t' : d[0];
  o.user_col = (int)imf_cfg_int(cfg, "input.user_col");
  o.item_col = (int)imf_cfg_int(cfg, "input.item_col");
  o.rating_col = (int)imf_cfg_int(cfg, "input.rating_col");
  o.time_col = (int)imf_cfg_int(cfg, "input.time_col");
  o.max_id_len = (size_t)imf_cfg_int(cfg, "input.max_id_length");
  o.max_line_len = (size_t)imf_cfg_int(cfg, "input.max_line_length");
  o.scale_min = o.scale_max = NAN;
  size_t cap = (size_t)1 << 22, have = 0;
  if (cap < o.max_line_len + 2) cap = o.max_line_len + 2;
  IMF_CHECK(imf_reader_open(path, &rd));
  IMF_TRY(imf_alloc(&buf, cap + 1, 1), done);
  IMF_TRY(imf_alloc(&scratch, o.max_line_len + 16, 1), done);
  int first = 1, eof = 0;
  int64_t lineno = 0;
  double se = 0, ae = 0;
  while (!eof || have > 0) {
    size_t got = 0;
    if (!eof) {
      IMF_TRY(imf_reader_read(rd, buf + have, cap - have, &got), done);
      if (got == 0) eof = 1;
    }
    have += got;
    if (first) {
      IMF_TRY(imf_detect_format(path, buf, have, &o), done);
      first = 0;
    }
    size_t pos = 0;
    for (;;) {
      char *nl = memchr(buf + pos, '\n', have - pos);
      if (!nl && !(eof && pos < have)) break;
      size_t len = nl ? (size_t)(nl - (buf + pos)) : have - pos;
      lineno++;
      imf_record rec;
      imf_reject_reason why;
      imf_line_kind k = len > o.max_line_len ? IMF_LINE_REJECT
                                             : imf_parse_line(&o, buf + pos, len, lineno, scratch, &rec, &why);
      if (k == IMF_LINE_OK) {
        int64_t u = imf_idmap_find(users, rec.user, rec.user_len);
        int64_t i = imf_idmap_find(items, rec.item, rec.item_len);
        double p = imf_model_predict(m, u, i);
        if (!isnan(lo) && p < lo) p = lo;
        if (!isnan(hi) && p > hi) p = hi;
        double e = p - rec.rating;
        se += e * e;
        ae += fabs(e);
        r->n++;
        r->cold += (u < 0 || i < 0);
      } else {
        r->skipped++;
      }
      pos = nl ? (size_t)(nl - buf) + 1 : have;
    }
    if (pos == 0 && have == cap)
      IMF_TRY(imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__, "%s, line %lld: line longer than %zu bytes", path,
                            (long long)lineno + 1, o.max_line_len), done);
    memmove(buf, buf + pos, have - pos);
    have -= pos;
  }
  if (r->n == 0) IMF_TRY(imf_err_raise(IMF_ERR_INPUT, __FILE__, __LINE__, "%s holds no ratings to evaluate", path), done);
  r->rmse = sqrt(se / (double)r->n);
  r->mae = ae / (double)r->n;
done:
  imf_reader_close(&rd);
  imf_free(&buf);
  imf_free(&scratch);
  return st;
}

imf_status imf_eval_file(MPI_Comm comm, const imf_config *cfg, const imf_model *m, const imf_idmap *users,
                         const imf_idmap *items, const char *path, double clip_lo, double clip_hi,
                         imf_eval_result *out) {
  int rank;
  MPI_Comm_rank(comm, &rank);
  memset(out, 0, sizeof *out);
  imf_status st = IMF_OK;
  if (rank == 0) st = score_file(cfg, m, users, items, path, clip_lo, clip_hi, out);
  IMF_CHECK(imf_agree(comm, st));
  IMF_MPI(MPI_Bcast(out, (int)sizeof *out, MPI_BYTE, 0, comm));
  return IMF_OK;
}
