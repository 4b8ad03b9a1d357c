/* foldin.h - fold-in: a model's touched rows re-solved against the fixed other side (ALS,
 * implicit ALS), the cheapest of `incremf update`'s strategies (README, `incremf update`;
 * docs/DESIGN.md, "Fold-in that reads only what it touches"). Every function is collective;
 * the solved rows are replicated on every rank (exchange.h), and a row's result does not depend
 * on which rank solves it, so any rank count gives bitwise the same model. */
#ifndef IMF_FOLDIN_H
#define IMF_FOLDIN_H
#include "itemsums.h"
#include "judge.h"
#include "model.h"
#include "partition.h"
#include "scale.h"
#include "store.h"

/* Re-solve the rows of one side (0 users, 1 items) whose flag in `touched` (length nusers or
 * nitems, the same on every rank) is set, each against its full training history in the
 * partition and the other side's current factors; the results are replicated into m. ALS and
 * implicit ALS (BPMF has no fold-in: update uses warm). *nsolved: rows solved (all ranks). */
imf_status imf_foldin_side(MPI_Comm comm, const imf_partition *p, imf_model *m, int side,
                           const unsigned char *touched, int64_t *nsolved);

/* The champion grown to the partition's users and items, its touched users (tu), then items (ti)
 * re-solved on the partition (a BPMF model is only grown). *out: the new model. */
imf_status imf_foldin_model(MPI_Comm comm, const imf_partition *part, const imf_model *champ,
                            const unsigned char *tu, const unsigned char *ti, imf_model **out);

/* What the touched-read fold-in needs (update.foldin_read = touched). */
typedef struct {
  imf_store *s;
  const imf_model *champ;
  int64_t seen;                  /* batches the champion has seen */
  const unsigned char *tu, *ti;  /* touched users and items (replicated) */
  int64_t nu, ni;                /* the store's users and items now */
  double hfrac;                  /* the standing holdout */
  uint64_t hseed;
  double c_sse;                  /* the champion's recorded holdout SSE, count and users */
  int64_t c_n, c_users;
  const imf_implicit_opts *io;   /* the champion's implicit options (scale.h) */
  void (*after_read)(const char *point); /* test hook once the histories are read, or NULL */
} imf_foldin_touched_in;

/* The fold-in from the touched rows' histories alone, and its judgement without the whole
 * holdout (foldin.c): *out the challenger, sse[0], sse[1] the champion's and challenger's SSE
 * over the whole current holdout, *n its count, *jd the paired judgement (judge.h), *users_now
 * the held-out users now; *read_secs += the time reading. IMF_ERR_NOTFOUND: a batch lacks the
 * per-item index (read the whole store instead). */
imf_status imf_foldin_touched(MPI_Comm comm, const imf_foldin_touched_in *in, imf_model **out, double sse[2],
                              int64_t *n, imf_judgement *jd, int64_t *users_now, double *read_secs);

/* The fold-in from the champion's per-item sums (foldin.c): the touched users' histories read
 * and re-solved as above, the items solved from the sums the version at champ_path carries
 * (checkpoint.h), moved by those users' pairs; judged on the whole standing holdout, read apart
 * (imf_store_read_holdout). *out the challenger, *sums_out its sums (items in even blocks, for
 * the new version), sse, *n, *jd, *users_now as imf_foldin_touched. IMF_ERR_NOTFOUND: the
 * champion is not ALS or carries no sums, or the store keeps no separate holdout (use
 * imf_foldin_touched). */
imf_status imf_foldin_sums(MPI_Comm comm, const imf_foldin_touched_in *in, const char *champ_path, imf_model **out,
                           imf_itemsums **sums_out, double sse[2], int64_t *n, imf_judgement *jd, int64_t *users_now,
                           double *read_secs);
#endif
