/* train.c - the distributed training engine (see train.h): explicit ALS-WR with biases,
 * implicit ALS and BPMF, one sweep at a time, over the two-way partition of partition.h.
 *
 * Each half-sweep every rank solves its own block of rows with imf_rowsolve against the
 * replicated other side, then the block is replicated with MPI_Allgatherv (exchange.c). Row
 * results depend only on the row's sorted ratings and the replicated factors, every global sum
 * goes through the fixed-chunk deterministic sums of exchange.c, and every random draw comes
 * from a counter-based stream keyed on (seed, sweep, side, row): the factors are bitwise
 * identical on any number of ranks.
 *
 * ---- Communication and memory (for docs/DESIGN.md) ----
 * Notation: U users, I items, R training ratings, P ranks, k factors, C = IMF_DET_CHUNK = 4096,
 * S = BPMF samples kept (model.samples), kw = k (ALS, iALS) or k*S (BPMF).
 *
 * Bytes received per rank per sweep:
 *   factor exchange     4 k (U + I) (P-1)/P           (ALS adds 4 (U + I) (P-1)/P for biases)
 *   iALS Gram matrices  8 k^2 (ceil(U/C) + ceil(I/C))  (each rank gets every chunk's partial)
 *   BPMF hyper stats    8 (k + k^2) (ceil(U/C) + ceil(I/C))
 *   metrics             8 m (ceil(U/C) + ceil(I/C) + at most 2 C P straddling rows), m <= 4
 *   stop checks         2 integer Allreduce
 * Over the whole job the factor exchange moves about 4 k (U + I) (P-1) bytes per sweep (each
 * rank receives everything it does not own), which dominates unless k is tiny. The
 * partition (once) moves every rating twice: 12 bytes each (user, item, value).
 *
 * Memory per rank:
 *   model (replicated)   4 kw (U + I)  + 4 (U + I) biases (ALS) + 4 k (U + I) BPMF chain
 *   partition            8 R/P by user + 8 R/P by item + 8 R_val/P + 16 (U + I)/P row data
 *   solve scratch        the row-solve workspace (a few k^2): rows are solved in place
 *   partition build      transient 4 bytes per local rating (its order by owner) and two
 *                        round buffers of 4 MiB (partition.c), besides the input
 */
#include "train.h"
#include "config.h"
#include "error.h"
#include "guard.h"
#include "exchange.h"
#include "log.h"
#include "outblock.h"
#include "rng.h"
#include "rowsolve.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { PH_PARTITION, PH_INIT, PH_STATS, PH_SOLVE, PH_EXCHANGE, PH_METRICS, PH_STOP, NPH };
static const char *const ph_name[NPH] = {"partition", "init", "gram/hyper", "solve",
                                         "exchange", "metrics", "stop-check"};

struct imf_trainer {
  MPI_Comm comm;
  int rank, nranks;
  const imf_partition *part;
  imf_model *m;             /* the working model: replicated, or (out-block) this rank's slots */
  imf_model_type type;
  int k;
  double lambda, lambda_bias, alpha, tol;
  int64_t iterations;
  uint64_t seed;
  int use_cg, cg_steps;
  double *GQ, *GP;          /* iALS: Gram matrices of Q and P (k x k) */
  int GQ_valid;             /* GQ is the Gram of the current Q */
  imf_rowsolve_ws *ws;
  int (*should_stop)(void *ctx);
  void *stop_ctx;
  int stopped, converged;
  double ph[NPH];
  int64_t calls[NPH];
  imf_layout *layout;       /* which ranks share a node (dist.ranks_per_node), for the counters */
  imf_shared_seg seg;       /* dist.node_shared: the node's one copy of P, Q, bu, bi (win NULL: none) */
  int kw_cap;               /* node-shared BPMF: the row width P and Q have room for (k * samples) */
  int64_t net[6];           /* the last sweep's traffic (exchange.h), max over ranks: sent inside,
                               sent between, received inside, received between nodes; the most
                               one node received from other nodes; all ranks' receipts from
                               other nodes, summed */
  /* dist.exchange = outblock (outblock.h): the user and item plans (NULL: replicated). m then
   * holds slots, not global rows: off[side] is the slot of the own block's first row (replicated:
   * the block's first row), nglob[side] the global row count; the partition's columns are slots
   * while the trainer lives (restored on destroy); blk is the block model handed out. */
  imf_outblock *ob[2];
  imf_partition *wpart;
  int64_t part_bytes;       /* imf_partition_bytes of the partition, kept past its release */
  imf_model *blk;
  int64_t off[2], nglob[2];
  double holdout_sse;       /* the last sweep's validation squared error (imf_trainer_holdout_sse) */
};

/* ---------------------------------------------------------------- small dense helpers */

/* Lower Cholesky factor in place (row-major n x n, upper part zeroed). */
static imf_status cholesky(double *A, int n) {
  for (int j = 0; j < n; j++) {
    double d = A[j * n + j];
    for (int c = 0; c < j; c++) d -= A[j * n + c] * A[j * n + c];
    if (!(d > 0)) IMF_FAIL(IMF_ERR_RUNTIME, "BPMF: hyperparameter matrix not positive definite");
    d = sqrt(d);
    A[j * n + j] = d;
    for (int i = j + 1; i < n; i++) {
      double s = A[i * n + j];
      for (int c = 0; c < j; c++) s -= A[i * n + c] * A[j * n + c];
      A[i * n + j] = s / d;
    }
    for (int c = j + 1; c < n; c++) A[j * n + c] = 0.0;
  }
  return IMF_OK;
}

/* Solve L^T x = b (L lower, row-major) in place. */
static void solve_lt(const double *L, int n, double *x) {
  for (int i = n - 1; i >= 0; i--) {
    double s = x[i];
    for (int j = i + 1; j < n; j++) s -= L[j * n + i] * x[j];
    x[i] = s / L[i * n + i];
  }
}

/* ---------------------------------------------------------------- deterministic row sums */

typedef struct {
  const float *X;
  int k;
  int64_t shift; /* global row g is X's row g - shift (out-block slots; replicated: 0) */
} rows_ctx;

/* Upper triangle of sum x x^T over rows lo..hi-1 (iALS Gram). */
static void gram_chunk(void *vctx, int64_t lo, int64_t hi, double *acc) {
  const rows_ctx *c = vctx;
  int k = c->k;
  for (int64_t r = lo; r < hi; r++) {
    const float *x = c->X + (size_t)(r - c->shift) * (size_t)k;
    for (int a = 0; a < k; a++) {
      double xa = x[a];
      for (int b = a; b < k; b++) acc[a * k + b] += xa * (double)x[b];
    }
  }
}

/* [sum x, upper triangle of sum x x^T] over rows lo..hi-1 (BPMF hyperparameter statistics). */
static void stats_chunk(void *vctx, int64_t lo, int64_t hi, double *acc) {
  const rows_ctx *c = vctx;
  int k = c->k;
  for (int64_t r = lo; r < hi; r++) {
    const float *x = c->X + (size_t)(r - c->shift) * (size_t)k;
    for (int a = 0; a < k; a++) {
      double xa = x[a];
      acc[a] += xa;
      for (int b = a; b < k; b++) acc[k + a * k + b] += xa * (double)x[b];
    }
  }
}

static void mirror(double *G, int k) {
  for (int a = 0; a < k; a++)
    for (int b = 0; b < a; b++) G[a * k + b] = G[b * k + a];
}

/* A deterministic sum over all rows of one side of X (k wide): over the replicated rows, or
 * (out-block) each rank over its own block, the same sum bitwise (exchange.h). */
static imf_status side_sum(imf_trainer *t, int side, const float *X, int m, imf_chunk_fn fn, double *out) {
  const int64_t *start = side ? t->part->item_start : t->part->user_start;
  rows_ctx c = {X, t->k, 0};
  if (!t->ob[side]) return imf_det_sum_chunks(t->comm, t->nglob[side], m, fn, &c, out);
  c.shift = start[t->rank] - t->off[side];
  return imf_det_sum_blocks(t->comm, start, m, fn, &c, out);
}

/* The Gram matrix of one side's factors (iALS). */
static imf_status gram(imf_trainer *t, int side, double *G) {
  IMF_CHECK(side_sum(t, side, side ? t->m->Q : t->m->P, t->k * t->k, gram_chunk, G));
  mirror(G, t->k);
  return IMF_OK;
}

/* ---------------------------------------------------------------- timers */

static double tic(void) { return imf_wtime(); }
static void toc(imf_trainer *t, int ph, double t0) {
  t->ph[ph] += imf_wtime() - t0;
  t->calls[ph]++;
}

/* ---------------------------------------------------------------- BPMF hyperparameters */

/* Draw (mu, Lambda) of one side from its Normal-Wishart conditional given the current sample
 * X (n x k): with mu0 = 0, beta0, nu0 = k, W0 = I and s = sum x, T = sum x x^T,
 *   beta* = beta0 + n, nu* = k + n, mu* = s / beta*, (W*)^-1 = I + T - s s^T / beta*,
 *   Lambda ~ Wishart(W*, nu*)  (Bartlett: Lambda = L A A^T L^T, L L^T = W*),
 *   mu ~ N(mu*, (beta* Lambda)^-1).
 * The draws use the stream (2, sweep, side, row = all ones): the same on every rank. */
static imf_status sample_hyper(imf_trainer *t, int side, uint32_t sweep) {
  imf_model *m = t->m;
  int k = t->k;
  const float *X = side ? m->chain.V : m->chain.U;
  int64_t n = t->nglob[side];
  double *mu = side ? m->chain.mu_v : m->chain.mu_u, *Lam = side ? m->chain.Lam_v : m->chain.Lam_u;
  imf_status st = IMF_OK;
  double *s = NULL, *W = NULL, *A = NULL, *M = NULL, *z = NULL;
  size_t kk = (size_t)k * (size_t)k;
  IMF_TRY(imf_alloc(&s, (size_t)k + kk, sizeof(double)), done);
  IMF_TRY(imf_alloc(&W, kk, sizeof(double)), done);
  IMF_TRY(imf_alloc(&A, kk, sizeof(double)), done);
  IMF_TRY(imf_alloc(&M, kk, sizeof(double)), done);
  IMF_TRY(imf_alloc(&z, (size_t)k, sizeof(double)), done);
  IMF_TRY(side_sum(t, side, X, k + k * k, stats_chunk, s), done);
  double *T = s + k;
  mirror(T, k);
  double bstar = IMF_BPMF_BETA0 + (double)n, nustar = (double)k + (double)n;
  for (int a = 0; a < k; a++)
    for (int b = 0; b < k; b++) W[a * k + b] = (a == b ? 1.0 : 0.0) + T[a * k + b] - s[a] * s[b] / bstar;
  for (int a = 0; a < k; a++) /* exact symmetry against rounding in the line above */
    for (int b = 0; b < a; b++) W[a * k + b] = W[b * k + a];
  IMF_TRY(cholesky(W, k), done); /* (W*)^-1 = C C^T, so L = C^-T */
  imf_rng g;
  imf_rng_init(&g, t->seed, imf_rng_stream(2, sweep, (uint32_t)side, UINT64_MAX));
  for (int i = 0; i < k; i++) {
    A[i * k + i] = sqrt(2.0 * imf_rng_gamma(&g, 0.5 * (nustar - (double)i)));
    for (int j = 0; j < i; j++) A[i * k + j] = imf_rng_normal(&g);
  }
  /* M = C^-T A, column by column */
  for (int j = 0; j < k; j++) {
    for (int i = 0; i < k; i++) z[i] = A[i * k + j];
    solve_lt(W, k, z);
    for (int i = 0; i < k; i++) M[i * k + j] = z[i];
  }
  for (int a = 0; a < k; a++)
    for (int b = 0; b < k; b++) {
      double v = 0;
      for (int j = 0; j < k; j++) v += M[a * k + j] * M[b * k + j];
      Lam[a * k + b] = v;
    }
  /* mu = mu* + R^-T z with R R^T = beta* Lambda */
  for (size_t j = 0; j < kk; j++) A[j] = bstar * Lam[j];
  IMF_TRY(cholesky(A, k), done);
  for (int i = 0; i < k; i++) z[i] = imf_rng_normal(&g);
  solve_lt(A, k, z);
  for (int i = 0; i < k; i++) mu[i] = s[i] / bstar + z[i];
done:
  imf_free(&s);
  imf_free(&W);
  imf_free(&A);
  imf_free(&M);
  imf_free(&z);
  return st;
}

/* Fold the current chain sample into the prediction average: P = [P sqrt(S/(S+1)), U/sqrt(S+1)]
 * so that P[u].Q[i] stays the mean of the S+1 samples' dot products. */
/* Whether this rank writes the replicated arrays: always, or on a node-shared model only its
 * node's first rank (the others see the writes after imf_layout_node_sync). */
static int writer(const imf_trainer *t) { return !t->seg.base || t->layout->node_rank == 0; }

static void restride_in_place(float *X, const float *cur, int64_t n, int kw0, int kw1, int k, double a, double b);
static imf_status sync_block(imf_trainer *t);

static imf_status add_sample(imf_trainer *t) {
  imf_model *m = t->m;
  int k = t->k, S = m->nsamples, kw0 = m->kw, kw1 = k * (S + 1);
  if (S == 0) { /* during burn-in P, Q mirror the chain; the first sample is exactly it */
    m->nsamples = 1;
    return IMF_OK;
  }
  double a = sqrt((double)S / (double)(S + 1)), b = 1.0 / sqrt((double)(S + 1));
  if (t->seg.base) { /* node-shared: in place, in the room left for model.samples samples */
    if (kw1 > t->kw_cap) IMF_FAIL(IMF_ERR_RUNTIME, "node-shared BPMF: sample %d past the %d the segment holds", S + 1,
                                  t->kw_cap / k);
    if (writer(t)) {
      restride_in_place(m->P, m->chain.U, m->nusers, kw0, kw1, k, a, b);
      restride_in_place(m->Q, m->chain.V, m->nitems, kw0, kw1, k, a, b);
    }
    IMF_CHECK(imf_layout_node_sync(t->layout, &t->seg));
    m->kw = kw1;
    m->nsamples = S + 1;
    return IMF_OK;
  }
  float *nw[2] = {NULL, NULL};
  for (int side = 0; side < 2; side++) {
    int64_t n = side ? m->nitems : m->nusers;
    imf_status st = imf_alloc(&nw[side], (size_t)(n ? n : 1) * (size_t)kw1, sizeof(float));
    if (st != IMF_OK) {
      imf_free(&nw[0]);
      return st;
    }
    const float *old = side ? m->Q : m->P, *cur = side ? m->chain.V : m->chain.U;
    for (int64_t r = 0; r < n; r++) {
      float *dst = nw[side] + (size_t)r * (size_t)kw1;
      const float *o = old + (size_t)r * (size_t)kw0, *c = cur + (size_t)r * (size_t)k;
      for (int j = 0; j < kw0; j++) dst[j] = (float)((double)o[j] * a);
      for (int j = 0; j < k; j++) dst[kw0 + j] = (float)((double)c[j] * b);
    }
  }
  imf_free(&m->P);
  imf_free(&m->Q);
  m->P = nw[0];
  m->Q = nw[1];
  m->kw = kw1;
  m->nsamples = S + 1;
  return IMF_OK;
}

/* ---------------------------------------------------------------- create / destroy */

/* Rows 0..n-1 of X, row r being global row gid[r] (gid NULL: r), from their own streams. */
static void init_rows(float *X, int64_t n, int k, uint64_t seed, uint32_t side, const int32_t *gid) {
  for (int64_t r = 0; r < n; r++) {
    imf_rng g;
    imf_rng_init(&g, seed, imf_rng_stream(0, 0, side, (uint64_t)(gid ? gid[r] : r)));
    for (int a = 0; a < k; a++) X[(size_t)r * (size_t)k + (size_t)a] = (float)(0.1 * imf_rng_normal(&g));
  }
}

void imf_trainer_destroy(imf_trainer **pt) {
  if (!pt || !*pt) return;
  imf_trainer *t = *pt;
  imf_free(&t->GQ);
  imf_free(&t->GP);
  imf_rowsolve_ws_destroy(&t->ws);
  if (t->seg.base && t->m) { /* the arrays live in the node's segment, not on the heap */
    t->m->P = t->m->Q = t->m->bu = t->m->bi = NULL;
    if (t->type == IMF_MODEL_BPMF) t->m->chain.U = t->m->chain.V = NULL;
  }
  imf_model_destroy(&t->m);
  free(t->blk); /* a view of t->m's arrays (sync_block) */
  if (t->wpart) { /* the partition's columns back to global rows */
    imf_csr *u[1] = {&t->wpart->by_item}, *i[2] = {&t->wpart->by_user, &t->wpart->holdout};
    if (t->ob[0]) imf_outblock_restore(t->ob[0], u, 1);
    if (t->ob[1]) imf_outblock_restore(t->ob[1], i, 2);
  }
  imf_outblock_destroy(&t->ob[0]);
  imf_outblock_destroy(&t->ob[1]);
  if (t->layout) imf_layout_shared_free(&t->seg);
  if (t->layout) imf_exchange_count_on(NULL);
  imf_layout_destroy(&t->layout);
  if (t->comm != MPI_COMM_NULL) MPI_Comm_free(&t->comm);
  free(t);
  *pt = NULL;
}

/* Global mean of the training ratings: per-user sums in user order, chunked (exchange.h). */
static imf_status global_mean(imf_trainer *t, double *mu) {
  const imf_partition *p = t->part;
  const imf_csr *c = &p->by_user;
  int64_t nr = c->hi - c->lo;
  double *v = NULL, sum = 0;
  IMF_CHECK(imf_alloc(&v, (size_t)(nr ? nr : 1), sizeof(double)));
  for (int64_t r = 0; r < nr; r++)
    for (int64_t j = c->ptr[r]; j < c->ptr[r + 1]; j++) v[r] += c->val[j];
  imf_status st = imf_det_sum_rows(t->comm, p->user_start, v, 1, &sum);
  imf_free(&v);
  *mu = p->nnz_train > 0 ? sum / (double)p->nnz_train : 0.0;
  return st;
}

/* dist.node_shared: move P, Q (and the biases) into one segment per node (layout.h), written
 * only by each node's first rank (initialisation, warm starts) and, in the exchange, each rank
 * its own rows in place (for BPMF, its current sample U, V, and the kept-sample averages P, Q,
 * which grow in place up to model.samples samples: restride_in_place). */
static imf_status share_model(imf_trainer *t, int64_t samples) {
  if (!t->layout->contiguous) {
    imf_warn("dist.node_shared: the nodes' ranks are not consecutive (start the job with a block distribution "
             "of ranks over nodes); every rank keeps its own copy of the model");
    return IMF_OK;
  }
  /* BPMF: P and Q grow by k floats a row with each kept sample, up to k * samples */
  imf_model *m = t->m;
  t->kw_cap = t->type == IMF_MODEL_BPMF ? m->k * (int)(samples > 1 ? samples : 1) : m->kw;
  IMF_CHECK(imf_layout_share_model(t->layout, m, t->kw_cap, &t->seg));
  char lay[160];
  imf_layout_describe(t->layout, lay, sizeof lay);
  imf_info("node-shared factors: one copy of %.1f MiB per node over %s (dist.node_shared)",
           (double)t->seg.bytes / 1048576.0, lay);
  return IMF_OK;
}

/* Node-shared BPMF: P and Q rewritten in place from row width kw0 to kw1 > kw0 (the old values
 * times a, then the chain's sample times b), the same arithmetic as add_sample's fresh arrays.
 * Backwards, rows and columns: a row's new place never covers an earlier row's old one. */
static void restride_in_place(float *X, const float *cur, int64_t n, int kw0, int kw1, int k, double a, double b) {
  for (int64_t r = n - 1; r >= 0; r--) {
    float *dst = X + (size_t)r * (size_t)kw1;
    const float *o = X + (size_t)r * (size_t)kw0, *c = cur + (size_t)r * (size_t)k;
    for (int j = k - 1; j >= 0; j--) dst[kw0 + j] = (float)((double)c[j] * b);
    for (int j = kw0 - 1; j >= 0; j--) dst[j] = (float)((double)o[j] * a);
  }
}

int64_t imf_trainer_shared_bytes(const imf_trainer *t) { return t->seg.base ? (int64_t)t->seg.bytes : 0; }

/* dist.exchange: replicated, outblock, or auto's choice: outblock when the node's copies of the
 * model (one per rank, one with dist.node_shared) would pass half of the node's memory
 * (dist.node_memory MiB, 0: this machine's). The same answer on every rank (cfg and the layout
 * are). */
static int choose_outblock(const imf_trainer *t, const imf_config *cfg, const imf_partition *part) {
  const char *ex = imf_cfg_str(cfg, "dist.exchange");
  if (strcmp(ex, "auto")) return !strcmp(ex, "outblock");
  double kw = (double)t->k * (t->type == IMF_MODEL_BPMF ? (double)imf_cfg_int(cfg, "model.samples") + 2.0 : 1.0);
  double copy = (double)(part->nusers + part->nitems) * 4.0 * (kw + (t->type == IMF_MODEL_ALS ? 1.0 : 0.0));
  double copies = imf_cfg_bool(cfg, "dist.node_shared") ? 1.0 : (double)t->layout->node_size;
  double node = imf_cfg_double(cfg, "dist.node_memory") * 1048576.0;
  if (node <= 0) node = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
  int pick = copy * copies > 0.5 * node;
  imf_info("dist.exchange = auto: %d model cop%s of %.1f MiB against %.0f MiB of node memory: %s", (int)copies,
           copies == 1.0 ? "y" : "ies", copy / 1048576.0, node / 1048576.0, pick ? "outblock" : "replicated");
  return pick;
}

/* The out-block plans (outblock.h): users referenced by the item block's ratings, items by the
 * user block's training and validation ratings; the partition's columns become slots. */
static imf_status plan_outblock(imf_trainer *t, imf_partition *part, const imf_layout *node) {
  imf_csr *u[1] = {&part->by_item}, *i[2] = {&part->by_user, &part->holdout};
  t->wpart = part;
  IMF_CHECK(imf_outblock_create(t->comm, part->user_start, u, 1, node, &t->ob[0]));
  IMF_CHECK(imf_outblock_create(t->comm, part->item_start, i, 2, node, &t->ob[1]));
  for (int side = 0; side < 2; side++) t->off[side] = imf_outblock_own_off(t->ob[side]);
  int64_t v[2] = {imf_outblock_nslots(t->ob[0]) + imf_outblock_nslots(t->ob[1]), 0}, mx[2];
  v[1] = -v[0];
  IMF_MPI(MPI_Allreduce(v, mx, 2, MPI_INT64_T, MPI_MAX, t->comm));
  imf_info("out-block exchange: each %s holds %lld to %lld of the %lld user and item rows (dist.exchange)",
           node ? "node" : "rank", (long long)-mx[1], (long long)mx[0], (long long)(part->nusers + part->nitems));
  return IMF_OK;
}

/* create: the model.* settings into t, checked; *burn_in: BPMF's, capped to leave samples. */
static imf_status train_settings(imf_trainer *t, const imf_config *cfg, const imf_partition *part,
                                 int64_t *burn_in) {
  IMF_CHECK(imf_model_type_parse(imf_cfg_str(cfg, "model.type"), &t->type));
  if (t->type == IMF_MODEL_POP || t->type == IMF_MODEL_BIAS) /* fitted by baseline.c, not by sweeps */
    IMF_FAIL(IMF_ERR_USAGE, "model.type = %s is not trained by sweeps (baseline.h)", imf_model_type_name(t->type));
  int64_t k = imf_cfg_int(cfg, "model.k");
  if (k < 1 || k > 4096) IMF_FAIL(IMF_ERR_USAGE, "model.k = %lld out of range [1, 4096]", (long long)k);
  t->k = (int)k;
  t->lambda = imf_cfg_double(cfg, "model.lambda");
  t->lambda_bias = imf_cfg_double(cfg, "model.lambda_bias");
  t->alpha = imf_cfg_double(cfg, "model.alpha");
  t->tol = imf_cfg_double(cfg, "model.tol");
  t->iterations = imf_cfg_int(cfg, "model.iterations");
  t->seed = (uint64_t)imf_cfg_int(cfg, "model.seed");
  t->use_cg = !strcmp(imf_cfg_str(cfg, "model.solver"), "cg");
  t->cg_steps = (int)imf_cfg_int(cfg, "model.cg_steps");
  *burn_in = imf_cfg_int(cfg, "model.burn_in");
  if (!(t->lambda >= 0) || !(t->lambda_bias >= 0) || !(t->alpha >= 0) || t->iterations < 0 || *burn_in < 0 ||
      t->cg_steps < 1)
    IMF_FAIL(IMF_ERR_USAGE, "bad model hyperparameters (lambda, lambda_bias, alpha >= 0; iterations, "
             "burn_in >= 0; cg_steps >= 1)");
  if (t->type == IMF_MODEL_BPMF && t->iterations > 0 && *burn_in >= t->iterations) {
    imf_warn("model.burn_in = %lld leaves no samples of model.iterations = %lld; using burn-in %lld",
             (long long)*burn_in, (long long)t->iterations, (long long)(t->iterations / 2));
    *burn_in = t->iterations / 2;
  }
  double vf = imf_cfg_double(cfg, "model.validation_fraction");
  if (vf != part->holdout_fraction || (vf > 0 && (uint64_t)imf_cfg_int(cfg, "model.seed") != part->holdout_seed))
    imf_warn("the partition's validation set (fraction %g) differs from model.validation_fraction = %g "
             "and model.seed; using the partition's", part->holdout_fraction, vf);
  return IMF_OK;
}

/* create: where the factors live (replicated, node-shared, out-block slots), the model
 * allocated there and initialised (by the node's writer when shared), and the global mean.
 * Collective. */
static imf_status train_model(imf_trainer *t, const imf_config *cfg, imf_partition *part, int64_t burn_in) {
  const int shared = imf_cfg_bool(cfg, "dist.node_shared");
  const int node_mode = shared && t->layout->contiguous; /* one copy per node (of the whole model, or of its slots) */
  if (choose_outblock(t, cfg, part)) IMF_CHECK(plan_outblock(t, part, node_mode ? t->layout : NULL));
  const int64_t nu = t->ob[0] ? imf_outblock_nslots(t->ob[0]) : part->nusers;
  const int64_t ni = t->ob[1] ? imf_outblock_nslots(t->ob[1]) : part->nitems;
  /* every rank holds both factor matrices (BPMF: k * (samples + 1) floats a row), or their slots:
   * model.k and model.samples multiply memory, checked before allocating (guard.h) */
  const int64_t S = imf_cfg_int(cfg, "model.samples");
  double kw = (double)t->k * (t->type == IMF_MODEL_BPMF ? (double)S + 1.0 : 1.0);
  IMF_CHECK(imf_agree(t->comm, imf_mem_guard("model.k (and model.samples)", (double)(nu + ni) * kw * 4.0 * 2.0)));
  /* node-shared: the arrays are the segment's (share_model); a private copy allocated first, even
   * if freed at once, was a second model in every rank's peak (zeroed: touched) */
  IMF_CHECK(imf_model_create(t->type, t->k, node_mode ? 0 : nu, node_mode ? 0 : ni, t->type == IMF_MODEL_ALS, &t->m));
  imf_model *m = t->m;
  m->nusers = nu;
  m->nitems = ni;
  m->lambda = t->lambda;
  m->lambda_bias = t->lambda_bias;
  m->alpha = t->alpha;
  m->seed = t->seed;
  if (shared) IMF_CHECK(share_model(t, S));
  const int32_t *gu = t->ob[0] ? imf_outblock_gids(t->ob[0]) : NULL, *gi = t->ob[1] ? imf_outblock_gids(t->ob[1]) : NULL;
  float *U = m->P, *V = m->Q;
  if (t->type == IMF_MODEL_BPMF) {
    int64_t post = t->iterations - burn_in;
    m->burn_in = burn_in;
    m->max_samples = (int)(S < 1 ? 1 : S);
    m->thin = post > 0 ? (post + m->max_samples - 1) / m->max_samples : 1;
    U = m->chain.U;
    V = m->chain.V;
  }
  if (writer(t)) {
    init_rows(U, m->nusers, t->k, t->seed, 0, gu);
    init_rows(V, m->nitems, t->k, t->seed, 1, gi);
    if (t->type == IMF_MODEL_BPMF) { /* the chain starts where the factors do */
      memcpy(m->P, m->chain.U, (size_t)m->nusers * (size_t)t->k * sizeof(float));
      memcpy(m->Q, m->chain.V, (size_t)m->nitems * (size_t)t->k * sizeof(float));
    }
  }
  if (t->seg.base) IMF_CHECK(imf_layout_node_sync(t->layout, &t->seg));
  if (t->type != IMF_MODEL_IALS) IMF_CHECK(global_mean(t, &m->mu));
  return IMF_OK;
}

/* create: the per-sweep scratch (the rows themselves are solved in place: own_rows). */
static imf_status train_scratch(imf_trainer *t) {
  IMF_CHECK(imf_alloc(&t->GQ, (size_t)t->k * (size_t)t->k, sizeof(double)));
  IMF_CHECK(imf_alloc(&t->GP, (size_t)t->k * (size_t)t->k, sizeof(double)));
  return imf_rowsolve_ws_create(t->k, &t->ws);
}

imf_status imf_train_create(MPI_Comm comm, const imf_config *cfg, imf_partition *part, imf_trainer **out) {
  *out = NULL;
  double t0 = tic();
  imf_status st = IMF_OK;
  int64_t burn_in = 0;
  imf_trainer *t = calloc(1, sizeof *t);
  if (!t) IMF_TRY(IMF_RAISE(IMF_ERR_NOMEM, "out of memory"), fail);
  t->comm = MPI_COMM_NULL;
  t->seg.win = MPI_WIN_NULL;
  IMF_MPI_TRY(MPI_Comm_dup(comm, &t->comm), fail);
  MPI_Comm_rank(t->comm, &t->rank);
  MPI_Comm_size(t->comm, &t->nranks);
  t->part = part;
  if (part->nranks != t->nranks)
    IMF_TRY(IMF_RAISE(IMF_ERR_USAGE, "partition built for %d ranks, communicator has %d", part->nranks, t->nranks),
            fail);
  IMF_TRY(imf_layout_create(t->comm, (int)imf_cfg_int(cfg, "dist.ranks_per_node"), &t->layout), fail);
  imf_exchange_count_on(t->layout);
  IMF_TRY(train_settings(t, cfg, part, &burn_in), fail);
  t->nglob[0] = part->nusers;
  t->nglob[1] = part->nitems;
  t->off[0] = part->user_start[t->rank];
  t->off[1] = part->item_start[t->rank];
  IMF_TRY(train_model(t, cfg, part, burn_in), fail);
  IMF_TRY(train_scratch(t), fail);
  if (t->ob[0]) IMF_TRY(sync_block(t), fail);
  t->ph[PH_PARTITION] = part->seconds;
  t->calls[PH_PARTITION] = 1;
  toc(t, PH_INIT, t0);
fail:
  st = imf_agree(comm, st);
  if (st != IMF_OK) imf_trainer_destroy(&t);
  *out = t;
  return st;
}

void imf_trainer_set_stop_hook(imf_trainer *t, int (*should_stop)(void *ctx), void *ctx) {
  t->should_stop = should_stop;
  t->stop_ctx = ctx;
}

imf_model *imf_trainer_model(imf_trainer *t) { return t->ob[0] ? t->blk : t->m; }

double imf_trainer_holdout_sse(const imf_trainer *t) { return t->holdout_sse; }
int64_t imf_trainer_outblock_rows(const imf_trainer *t) {
  return t->ob[0] ? imf_outblock_nslots(t->ob[0]) + imf_outblock_nslots(t->ob[1]) : 0;
}

/* Out-block: the block model (model.h) over the working model: its scalars, history and chain
 * hyperparameters, and its arrays pointing at the working model's own slots (the own block is
 * one run of slots), so that handing it out copies nothing. It owns nothing (destroy frees the
 * struct only) and follows the trainer, like the replicated model does; refreshed after every
 * change (BPMF's kept samples reallocate P and Q). Local. */
static imf_status sync_block(imf_trainer *t) {
  const imf_model *m = t->m;
  const int64_t *us = t->part->user_start, *is = t->part->item_start;
  if (!t->blk && !(t->blk = calloc(1, sizeof *t->blk))) IMF_FAIL(IMF_ERR_NOMEM, "out of memory");
  imf_model *b = t->blk;
  *b = *m;
  const size_t kw = (size_t)m->kw, k = (size_t)m->k, ou = (size_t)t->off[0], oi = (size_t)t->off[1];
  b->P = m->P + ou * kw;
  b->Q = m->Q + oi * kw;
  b->bu = m->bu ? m->bu + ou : NULL;
  b->bi = m->bi ? m->bi + oi : NULL;
  b->chain.U = m->chain.U ? m->chain.U + ou * k : NULL;
  b->chain.V = m->chain.V ? m->chain.V + oi * k : NULL;
  b->shm = NULL, b->shm_release = NULL;
  b->nusers = t->nglob[0], b->nitems = t->nglob[1], b->blocked = 1;
  b->ublock[0] = us[t->rank], b->ublock[1] = us[t->rank + 1];
  b->iblock[0] = is[t->rank], b->iblock[1] = is[t->rank + 1];
  return IMF_OK;
}
int imf_trainer_stopped(const imf_trainer *t) { return t->stopped; }
int imf_trainer_converged(const imf_trainer *t) { return t->converged; }
int imf_trainer_done(const imf_trainer *t) {
  return t->stopped || t->converged || t->m->iteration >= t->iterations;
}

static void copy_rows(float *dst, int dk, const float *src, int sk, int64_t n, int w) {
  for (int64_t r = 0; r < n; r++)
    memcpy(dst + (size_t)r * (size_t)dk, src + (size_t)r * (size_t)sk, (size_t)w * sizeof(float));
}

/* The saved model's rows (sn rows, stride sw) into one side of the working model (stride dw), w
 * floats a row: the first sn rows, or (out-block) each slot whose global row the saved model has. */
static void take_rows(const imf_trainer *t, int side, float *dst, int dw, const float *src, int sw, int64_t sn, int w) {
  if (!t->ob[side]) {
    copy_rows(dst, dw, src, sw, sn, w);
    return;
  }
  const int32_t *gid = imf_outblock_gids(t->ob[side]);
  for (int64_t r = 0, n = imf_outblock_nslots(t->ob[side]); r < n && gid[r] < sn; r++)
    memcpy(dst + (size_t)r * (size_t)dw, src + (size_t)gid[r] * (size_t)sw, (size_t)w * sizeof(float));
}

/* imf_trainer_resume's BPMF state: the chain, and P, Q at the saved model's width (exact) or the
 * chain's. A node-shared model's rows are written by the node's first rank into the segment,
 * whose width only changes, never its room. Local (the node's ranks synchronise). */
static imf_status resume_bpmf(imf_trainer *t, const imf_model *s, int exact) {
  imf_model *m = t->m;
  const int k = m->k, kw = exact ? s->kw : k;
  if (t->seg.base && kw > t->kw_cap)
    IMF_FAIL(IMF_ERR_INPUT, "the saved BPMF model keeps %d samples, more than model.samples = %d leaves room "
             "for (dist.node_shared)", kw / k, t->kw_cap / k);
  if (t->seg.base) m->kw = kw;
  else IMF_CHECK(imf_model_set_kw(m, kw));
  if (writer(t)) {
    take_rows(t, 0, m->chain.U, k, s->chain.U, k, s->nusers, k);
    take_rows(t, 1, m->chain.V, k, s->chain.V, k, s->nitems, k);
    if (exact) {
      take_rows(t, 0, m->P, kw, s->P, kw, s->nusers, kw);
      take_rows(t, 1, m->Q, kw, s->Q, kw, s->nitems, kw);
    } else {
      memcpy(m->P, m->chain.U, (size_t)m->nusers * (size_t)kw * sizeof(float));
      memcpy(m->Q, m->chain.V, (size_t)m->nitems * (size_t)kw * sizeof(float));
    }
  }
  if (exact) {
    memcpy(m->chain.mu_u, s->chain.mu_u, (size_t)k * sizeof(double));
    memcpy(m->chain.mu_v, s->chain.mu_v, (size_t)k * sizeof(double));
    memcpy(m->chain.Lam_u, s->chain.Lam_u, (size_t)k * k * sizeof(double));
    memcpy(m->chain.Lam_v, s->chain.Lam_v, (size_t)k * k * sizeof(double));
    m->chain.sweeps = s->chain.sweeps;
    m->burn_in = s->burn_in;
    m->thin = s->thin > 0 ? s->thin : m->thin;
    m->max_samples = s->max_samples > 0 ? s->max_samples : m->max_samples;
    m->nsamples = s->nsamples;
  } else {
    m->nsamples = 0;
    m->chain.sweeps = 0;
  }
  return t->seg.base ? imf_layout_node_sync(t->layout, &t->seg) : IMF_OK;
}

imf_status imf_trainer_resume(imf_trainer *t, const imf_model *s) {
  imf_model *m = t->m;
  imf_status st = IMF_OK;
  if (s->type != m->type || s->k != m->k)
    st = IMF_RAISE(IMF_ERR_INPUT, "saved model is %s k=%d, training %s k=%d",
                   imf_model_type_name(s->type), s->k, imf_model_type_name(m->type), m->k);
  else if (s->nusers > t->nglob[0] || s->nitems > t->nglob[1])
    st = IMF_RAISE(IMF_ERR_INPUT, "saved model has more users or items (%lld x %lld) than the data (%lld x %lld)",
                   (long long)s->nusers, (long long)s->nitems, (long long)t->nglob[0], (long long)t->nglob[1]);
  else if (s->blocked)
    st = IMF_RAISE(IMF_ERR_USAGE, "resume from a block model: gather it first (imf_model_gather)");
  IMF_CHECK(imf_agree(t->comm, st));
  int exact = s->nusers == t->nglob[0] && s->nitems == t->nglob[1];
  int k = m->k;
  t->GQ_valid = 0;
  if (m->type == IMF_MODEL_BPMF) {
    IMF_CHECK(imf_agree(t->comm, resume_bpmf(t, s, exact)));
  } else {
    if (writer(t)) {
      take_rows(t, 0, m->P, k, s->P, s->kw, s->nusers, k);
      take_rows(t, 1, m->Q, k, s->Q, s->kw, s->nitems, k);
      if (m->with_bias && s->bu && s->bi) {
        take_rows(t, 0, m->bu, 1, s->bu, 1, s->nusers, 1);
        take_rows(t, 1, m->bi, 1, s->bi, 1, s->nitems, 1);
      }
    }
    if (t->seg.base) IMF_CHECK(imf_layout_node_sync(t->layout, &t->seg));
  }
  m->nhistory = 0;
  m->iteration = 0;
  if (exact) {
    m->iteration = s->iteration;
    for (int64_t j = 0; j < s->nhistory; j++) IMF_CHECK(imf_agree(t->comm, imf_model_push_history(m, &s->history[j])));
  }
  t->stopped = t->converged = 0;
  return t->ob[0] ? imf_agree(t->comm, sync_block(t)) : IMF_OK;
}

/* ---------------------------------------------------------------- one half-sweep */

/* This rank's rows of a side (and their biases, ALS), where the exchange reads them: a half
 * solves them in place. Only the other side is read while a side is solved, so no copy is needed;
 * a copy was 4 (k + 1) bytes a row of the rank's blocks (docs/SCALING.md). */
static void own_rows(imf_trainer *t, int side, float **X, float **B) {
  imf_model *m = t->m;
  float *Y = t->type == IMF_MODEL_BPMF ? (side ? m->chain.V : m->chain.U) : (side ? m->Q : m->P);
  float *b = side ? m->bi : m->bu;
  const int64_t o = t->ob[side] ? imf_outblock_own_off(t->ob[side]) : t->off[side];
  *X = Y + (size_t)o * (size_t)t->k;
  *B = t->type == IMF_MODEL_ALS && b ? b + o : NULL;
}

static imf_status solve_half(imf_trainer *t, int side, uint32_t sweep) {
  const imf_partition *p = t->part;
  const imf_csr *c = side ? &p->by_item : &p->by_user;
  imf_model *m = t->m;
  int k = t->k;
  int64_t nloc = c->hi - c->lo;
  float *X, *B;
  own_rows(t, side, &X, &B);
  imf_row_params prm;
  memset(&prm, 0, sizeof prm);
  prm.k = k;
  prm.seed = t->seed;
  prm.sweep = sweep;
  prm.side = (uint32_t)side;
  prm.lambda = t->lambda;
  prm.lambda_bias = t->lambda_bias;
  imf_other_side other = {side ? m->nusers : m->nitems, NULL, NULL};
  switch (t->type) {
  case IMF_MODEL_ALS:
    prm.kind = IMF_ROW_ALS;
    prm.with_bias = 1;
    prm.mu = m->mu;
    other.Y = side ? m->P : m->Q;
    other.bias = side ? m->bu : m->bi;
    break;
  case IMF_MODEL_IALS:
    prm.kind = IMF_ROW_IALS;
    prm.alpha = t->alpha;
    prm.use_cg = t->use_cg;
    prm.cg_steps = t->cg_steps;
    prm.YtY = side ? t->GP : t->GQ;
    other.Y = side ? m->P : m->Q; /* CG starts from the current rows, X itself */
    break;
  case IMF_MODEL_BPMF:
    prm.kind = IMF_ROW_BPMF;
    prm.mu = m->mu;
    prm.prior_mean = side ? m->chain.mu_v : m->chain.mu_u;
    prm.prior_prec = side ? m->chain.Lam_v : m->chain.Lam_u;
    prm.beta = IMF_BPMF_BETA;
    other.Y = side ? m->chain.U : m->chain.V;
    break;
  case IMF_MODEL_EASE: /* never here: imf_model_type_parse refuses it, ease.c solves it */
  case IMF_MODEL_POP:  /* never here: imf_train_create refuses them, baseline.c fits them */
  case IMF_MODEL_BIAS:
    IMF_FAIL(IMF_ERR_USAGE, "%s is not trained by sweeps", imf_model_type_name(t->type));
  }
  imf_row_batch rows = {nloc, c->row_id, c->ptr, c->idx, c->val};
  if (nloc == 0) return IMF_OK;
  return imf_rowsolve(&prm, &rows, &other, X, B, t->ws);
}

static imf_status exchange_half(imf_trainer *t, int side) {
  imf_model *m = t->m;
  const int64_t *start = side ? t->part->item_start : t->part->user_start;
  float *dst, *X, *B;
  if (t->type == IMF_MODEL_BPMF) dst = side ? m->chain.V : m->chain.U;
  else dst = side ? m->Q : m->P;
  own_rows(t, side, &X, &B); /* already in place: the exchanges copy nothing inside the rank */
  if (t->ob[side]) { /* out-block: each rank (node) gets exactly the rows its ratings reference */
    const imf_shared_seg *seg = t->seg.base ? &t->seg : NULL;
    IMF_CHECK(imf_outblock_exchange(t->ob[side], seg, X, dst, t->k));
    if (B) IMF_CHECK(imf_outblock_exchange(t->ob[side], seg, B, side ? m->bi : m->bu, 1));
    return IMF_OK;
  }
  if (t->seg.base) { /* one copy per node: written in place, the nodes' first ranks exchange */
    IMF_CHECK(imf_allgather_rows_shared(t->layout, &t->seg, start, X, dst, t->k));
    if (B) IMF_CHECK(imf_allgather_rows_shared(t->layout, &t->seg, start, B, side ? m->bi : m->bu, 1));
    return IMF_OK;
  }
  IMF_CHECK(imf_allgather_rows(t->comm, start, X, dst, t->k));
  if (B) IMF_CHECK(imf_allgather_rows(t->comm, start, B, side ? m->bi : m->bu, 1));
  return IMF_OK;
}

static int check_stop(imf_trainer *t) {
  if (!t->should_stop) return 0;
  double t0 = tic();
  int s = t->should_stop(t->stop_ctx) != 0;
  toc(t, PH_STOP, t0);
  return s;
}

/* ---------------------------------------------------------------- metrics */

static double sqnorm(const float *x, int k) {
  double s = 0;
  for (int a = 0; a < k; a++) s += (double)x[a] * (double)x[a];
  return s;
}

/* Loss and validation errors, each a deterministic sum of per-row terms. Per user:
 * [loss terms, squared training error, validation squared error, validation absolute error];
 * per item: [loss terms]. ALS loss: sum (r - pred)^2 + lambda (sum n_u |p_u|^2 + sum n_i
 * |q_i|^2) + lambda_bias (|bu|^2 + |bi|^2). iALS: sum over all pairs c (pref - p.q)^2 +
 * lambda (|P|^2 + |Q|^2), with the unobserved pairs' part tr(P^T P Q^T Q) from the Grams. */
static imf_status compute_metrics(imf_trainer *t, imf_sweep_metrics *h) {
  const imf_partition *p = t->part;
  imf_model *m = t->m;
  int k = t->k;
  const imf_csr *cu = &p->by_user, *ch = &p->holdout, *ci = &p->by_item;
  int64_t nu = cu->hi - cu->lo, ni = ci->hi - ci->lo;
  double *vu = NULL, *vi = NULL, su[4], si[1];
  imf_status st = IMF_OK;
  IMF_TRY(imf_alloc(&vu, (size_t)(nu ? nu : 1) * 4, sizeof(double)), done);
  IMF_TRY(imf_alloc(&vi, (size_t)(ni ? ni : 1), sizeof(double)), done);
  for (int64_t r = 0; r < nu; r++) {
    const int64_t u = t->off[0] + r; /* the row in m (a slot out-block) */
    double loss = 0, sq = 0, vsq = 0, vabs = 0;
    for (int64_t j = cu->ptr[r]; j < cu->ptr[r + 1]; j++) {
      if (t->type == IMF_MODEL_IALS) {
        double s = imf_model_dot(m, u, cu->idx[j]), c = 1.0 + t->alpha * cu->val[j];
        loss += c * (1.0 - s) * (1.0 - s) - s * s;
      } else if (t->type == IMF_MODEL_BPMF) {
        /* the current chain sample (k wide), not the k*S-wide average: the training error is
         * a progress signal, and this keeps the metric cost independent of S */
        const float *x = m->chain.U + (size_t)u * (size_t)k, *y = m->chain.V + (size_t)cu->idx[j] * (size_t)k;
        double d = 0;
        for (int a = 0; a < k; a++) d += (double)x[a] * (double)y[a];
        double e = (double)cu->val[j] - (m->mu + d);
        sq += e * e;
      } else {
        double e = (double)cu->val[j] - imf_model_predict(m, u, cu->idx[j]);
        sq += e * e;
      }
    }
    if (t->type == IMF_MODEL_ALS)
      loss = sq + t->lambda * (double)(cu->ptr[r + 1] - cu->ptr[r]) * sqnorm(m->P + (size_t)u * (size_t)k, k) +
             t->lambda_bias * (double)m->bu[u] * (double)m->bu[u];
    else if (t->type == IMF_MODEL_IALS)
      loss += t->lambda * sqnorm(m->P + (size_t)u * (size_t)k, k);
    if (t->type != IMF_MODEL_IALS)
      for (int64_t j = ch->ptr[r]; j < ch->ptr[r + 1]; j++) {
        double e = (double)ch->val[j] - imf_model_predict(m, u, ch->idx[j]);
        vsq += e * e;
        vabs += fabs(e);
      }
    vu[4 * r] = loss;
    vu[4 * r + 1] = sq;
    vu[4 * r + 2] = vsq;
    vu[4 * r + 3] = vabs;
  }
  for (int64_t r = 0; r < ni; r++) {
    const int64_t i = t->off[1] + r;
    if (t->type == IMF_MODEL_ALS)
      vi[r] = t->lambda * (double)(ci->ptr[r + 1] - ci->ptr[r]) * sqnorm(m->Q + (size_t)i * (size_t)k, k) +
              t->lambda_bias * (double)m->bi[i] * (double)m->bi[i];
    else if (t->type == IMF_MODEL_IALS)
      vi[r] = t->lambda * sqnorm(m->Q + (size_t)i * (size_t)k, k);
  }
  IMF_TRY(imf_det_sum_rows(t->comm, p->user_start, vu, 4, su), done);
  IMF_TRY(imf_det_sum_rows(t->comm, p->item_start, vi, 1, si), done);
  double ntr = (double)p->nnz_train, nval = (double)p->nnz_holdout;
  t->holdout_sse = su[2];
  h->val_rmse = h->val_mae = NAN;
  if (t->type == IMF_MODEL_IALS) {
    /* GP is the Gram of the current P (item half); the Gram of the new Q serves the loss now
     * and the next user half. */
    double t1 = tic();
    IMF_TRY(gram(t, 1, t->GQ), done);
    t->GQ_valid = 1;
    toc(t, PH_STATS, t1);
    double tr = 0;
    for (int a = 0; a < k; a++)
      for (int b = 0; b < k; b++) tr += t->GP[a * k + b] * t->GQ[b * k + a];
    h->train_loss = su[0] + si[0] + tr;
  } else {
    h->train_loss = t->type == IMF_MODEL_ALS ? su[0] + si[0] : (ntr > 0 ? sqrt(su[1] / ntr) : NAN);
    if (nval > 0) {
      h->val_rmse = sqrt(su[2] / nval);
      h->val_mae = su[3] / nval;
    }
  }
  h->train_rmse = ntr > 0 && t->type != IMF_MODEL_IALS ? sqrt(su[1] / ntr) : NAN;
done:
  imf_free(&vu);
  imf_free(&vi);
  return st;
}

/* ---------------------------------------------------------------- the sweep */

/* The sweep's traffic since net0 (exchange.h), reduced to t->net: each figure's maximum over the
 * ranks, the most one node received from the others (its ranks' figures summed), and the sum over
 * all ranks of what they received from other nodes (over the nodes it averages to the formula's
 * per-node figure even where the blocks, cut by ratings, hold unequal row counts). */
static imf_status sweep_traffic(imf_trainer *t, const imf_traffic *net0) {
  imf_traffic n1;
  imf_exchange_traffic(&n1);
  int64_t v[5] = {n1.sent[0] - net0->sent[0], n1.sent[1] - net0->sent[1], n1.recv[0] - net0->recv[0],
                  n1.recv[1] - net0->recv[1], 0};
  IMF_MPI(MPI_Allreduce(&v[3], &v[4], 1, MPI_INT64_T, MPI_SUM, t->layout->node_comm));
  IMF_MPI(MPI_Allreduce(v, t->net, 5, MPI_INT64_T, MPI_MAX, t->comm));
  IMF_MPI(MPI_Allreduce(&v[3], &t->net[5], 1, MPI_INT64_T, MPI_SUM, t->comm));
  return IMF_OK;
}

void imf_trainer_traffic(const imf_trainer *t, int64_t net[6]) { memcpy(net, t->net, sizeof t->net); }

const imf_layout *imf_trainer_layout(const imf_trainer *t) { return t->layout; }

void imf_trainer_release_partition(imf_trainer *t) {
  if (t->part) t->part_bytes = imf_partition_bytes(t->part);
  t->part = NULL;
  t->wpart = NULL;
}

imf_status imf_trainer_sweep(imf_trainer *t) {
  imf_model *m = t->m;
  double tsweep = tic(), t0;
  uint32_t sweep = (uint32_t)(m->iteration + 1);
  imf_status st = IMF_OK;
  t->stopped = 0;
  imf_traffic net0;
  imf_exchange_traffic(&net0);

  for (int side = 0; side < 2; side++) {
    t0 = tic();
    if (t->type == IMF_MODEL_BPMF) st = sample_hyper(t, side, sweep);
    else if (t->type == IMF_MODEL_IALS && side == 0 && !t->GQ_valid) st = gram(t, 1, t->GQ);
    else if (t->type == IMF_MODEL_IALS && side == 1) st = gram(t, 0, t->GP);
    IMF_CHECK(imf_agree(t->comm, st));
    toc(t, PH_STATS, t0);

    t0 = tic();
    st = solve_half(t, side, sweep);
    toc(t, PH_SOLVE, t0);
    IMF_CHECK(imf_agree(t->comm, st));

    t0 = tic();
    st = exchange_half(t, side);
    toc(t, PH_EXCHANGE, t0);
    IMF_CHECK(imf_agree(t->comm, st));
    if (t->type == IMF_MODEL_IALS && side == 1) t->GQ_valid = 0;
  }

  m->iteration++;
  if (t->type == IMF_MODEL_BPMF) {
    m->chain.sweeps++;
    int64_t s = m->chain.sweeps;
    int keep = s > m->burn_in && (s - m->burn_in - 1) % m->thin == 0 && m->nsamples < m->max_samples;
    if (m->nsamples == 0) { /* burn-in: P, Q show the current sample */
      if (writer(t)) {
        memcpy(m->P, m->chain.U, (size_t)m->nusers * (size_t)t->k * sizeof(float));
        memcpy(m->Q, m->chain.V, (size_t)m->nitems * (size_t)t->k * sizeof(float));
      }
      if (t->seg.base) IMF_CHECK(imf_layout_node_sync(t->layout, &t->seg));
    }
    if (keep) IMF_CHECK(imf_agree(t->comm, add_sample(t)));
  }

  t0 = tic();
  imf_sweep_metrics h;
  memset(&h, 0, sizeof h);
  st = compute_metrics(t, &h);
  toc(t, PH_METRICS, t0);
  IMF_CHECK(imf_agree(t->comm, st));
  t0 = tic();
  IMF_CHECK(sweep_traffic(t, &net0));
  toc(t, PH_METRICS, t0);
  h.iteration = m->iteration;
  h.seconds = imf_wtime() - tsweep;

  /* Early stopping on validation RMSE (explicit ALS), or on the relative decrease of the
   * training loss (implicit ALS, which has no rating scale to validate against). BPMF's
   * estimate is an average over the chain and is not stopped early. */
  if (t->tol > 0 && m->nhistory > 0) {
    const imf_sweep_metrics *prev = &m->history[m->nhistory - 1];
    if (t->type == IMF_MODEL_ALS && isfinite(h.val_rmse) && isfinite(prev->val_rmse))
      t->converged = prev->val_rmse - h.val_rmse < t->tol;
    else if (t->type == IMF_MODEL_IALS && isfinite(prev->train_loss) && prev->train_loss != 0)
      t->converged = (prev->train_loss - h.train_loss) / fabs(prev->train_loss) < t->tol;
  }
  IMF_CHECK(imf_agree(t->comm, imf_model_push_history(m, &h)));
  if (t->ob[0]) IMF_CHECK(imf_agree(t->comm, sync_block(t)));
  double rate = h.seconds > 0 ? (double)t->part->nnz_train / h.seconds : 0;
  /* ETA from this sweep's time: sweeps cost the same, give or take the metrics */
  double eta = h.seconds * (double)(t->iterations > h.iteration ? t->iterations - h.iteration : 0);
  /* no validation set (model.validation_fraction = 0): no val-* fields, rather than "nan" */
  char val[96] = "";
  if (isfinite(h.val_rmse)) snprintf(val, sizeof val, "  val-rmse %.5f  val-mae %.5f", h.val_rmse, h.val_mae);
  if (t->type == IMF_MODEL_IALS)
    imf_info("sweep %3lld  loss %.6g  %.3fs  %.3g ratings/s  eta %.0fs", (long long)h.iteration, h.train_loss,
             h.seconds, rate, eta);
  else if (t->type == IMF_MODEL_BPMF)
    imf_info("sweep %3lld  train-rmse %.5f%s  samples %d  %.3fs  %.3g ratings/s  eta %.0fs", (long long)h.iteration,
             h.train_loss, val, m->nsamples, h.seconds, rate, eta);
  else
    imf_info("sweep %3lld  loss %.6g  train-rmse %.5f%s  %.3fs  %.3g ratings/s  eta %.0fs", (long long)h.iteration,
             h.train_loss, h.train_rmse, val, h.seconds, rate, eta);
  if (t->converged) imf_info("converged: improvement below model.tol = %g", t->tol);
  if (check_stop(t)) t->stopped = 1;
  return IMF_OK;
}

imf_status imf_trainer_run(imf_trainer *t) {
  while (!imf_trainer_done(t)) IMF_CHECK(imf_trainer_sweep(t));
  return IMF_OK;
}

/* ---------------------------------------------------------------- -log_view style table */

imf_status imf_trainer_log_view(const imf_trainer *t, FILE *out) {
  double mn[NPH + 1], mx[NPH + 1], sum[NPH + 1], v[NPH + 1], tot = 0;
  for (int j = 0; j < NPH; j++) {
    v[j] = t->ph[j];
    tot += t->ph[j];
  }
  v[NPH] = tot;
  IMF_MPI(MPI_Reduce(v, mn, NPH + 1, MPI_DOUBLE, MPI_MIN, 0, t->comm));
  IMF_MPI(MPI_Reduce(v, mx, NPH + 1, MPI_DOUBLE, MPI_MAX, 0, t->comm));
  IMF_MPI(MPI_Reduce(v, sum, NPH + 1, MPI_DOUBLE, MPI_SUM, 0, t->comm));
  imf_rowsolve_stats rs;
  imf_rowsolve_ws_stats(t->ws, &rs);
  double flops = rs.gram_flops, gsec = rs.gram_seconds, fsum = 0, gmax = 0;
  IMF_MPI(MPI_Reduce(&flops, &fsum, 1, MPI_DOUBLE, MPI_SUM, 0, t->comm));
  IMF_MPI(MPI_Reduce(&gsec, &gmax, 1, MPI_DOUBLE, MPI_MAX, 0, t->comm));
  if (t->rank != 0) return IMF_OK;
  fprintf(out, "training phases over %d ranks (seconds per rank)\n", t->nranks);
  fprintf(out, "%-12s %8s %10s %10s %10s %8s\n", "phase", "calls", "min", "avg", "max", "max/avg");
  for (int j = 0; j <= NPH; j++) {
    double avg = sum[j] / t->nranks;
    fprintf(out, "%-12s %8lld %10.4f %10.4f %10.4f %8.2f\n", j < NPH ? ph_name[j] : "total",
            j < NPH ? (long long)t->calls[j] : (long long)t->m->iteration, mn[j], avg, mx[j],
            avg > 0 ? mx[j] / avg : 1.0);
  }
  if (fsum > 0) /* CG iALS (model.solver = cg) forms no Gram matrix: no rate to report */
    fprintf(out, "row-solve Gram: %.3g flop in total, %.3g Gflop/s per rank at the slowest\n", fsum,
            gmax > 0 ? fsum / t->nranks / gmax * 1e-9 : 0.0);
  else if (t->use_cg)
    fprintf(out, "row-solve Gram: none formed (model.solver = cg: %d CG steps per row)\n", t->cg_steps);
  char lay[160];
  imf_layout_describe(t->layout, lay, sizeof lay);
  if (t->ob[0])
    fprintf(out, "exchange: out-block (each %s holds its rows and those its ratings reference: %lld of %lld on "
            "rank 0's%s) over %s\n", t->seg.base ? "node" : "rank", (long long)imf_trainer_outblock_rows(t),
            (long long)(t->nglob[0] + t->nglob[1]), t->seg.base ? " node, in one shared copy" : "", lay);
  else if (t->seg.base)
    fprintf(out, "exchange: node-shared factors (one copy per node, %.1f MiB; the nodes' first ranks exchange) over %s\n",
            (double)t->seg.bytes / 1048576.0, lay);
  else
    fprintf(out, "exchange: replicated factors (every rank holds the model) over %s\n", lay);
  fprintf(out, "bytes per rank in the last sweep (max over ranks): inside nodes sent %.3g, received %.3g; "
          "between nodes sent %.3g, received %.3g; one node received %.3g from the others\n",
          (double)t->net[0], (double)t->net[2], (double)t->net[1], (double)t->net[3], (double)t->net[4]);
  fprintf(out, "model %s k=%d: %.1f MiB %s on rank 0; partition %.1f MiB on rank 0\n",
          imf_model_type_name(t->type), t->k, (double)imf_model_bytes(t->m) / 1048576.0,
          t->ob[0] ? "of slots" : "replicated",
          (double)(t->part ? imf_partition_bytes(t->part) : t->part_bytes) / 1048576.0);
  return IMF_OK;
}
