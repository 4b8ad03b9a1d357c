/* synth.c - the synthetic data generator behind `incremf synth` (see synth.h).
 *
 * Line j's time and rating noise come from its own counter-based stream keyed on (seed, j),
 * and the per-user/per-item parameters from streams keyed on the id. Its (user, item) pair
 * comes from a sequential "picker" (below) that walks the lines in order, also from streams
 * keyed on j, and remembers every pair so far: a user's items are drawn without replacement
 * (repeats only from --rerate and the duplicate corrupt lines). Every rank runs the same picker
 * over all lines up to its last chunk (cheap next to formatting), so the bytes stay independent
 * of the rank count and of the chunking: ranks only decide who formats which run of lines, and
 * a prefix sum of chunk sizes decides where each run lands in the file. Memory is O(users +
 * items) for the tables, 12-24 bytes per line for the picker's set (sized for the ratings),
 * plus one chunk of text. */
#include "synth.h"
#include "config.h"
#include "error.h"
#include "fsio.h"
#include "guard.h"
#include "log.h"
#include "rng.h"

#include <errno.h>
#include <lzma.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

/* Stream purposes: distinct from the trainer's so a synth seed never aliases model draws. */
enum { P_USER_PERM = 0x5301, P_ITEM_PERM, P_USER, P_ITEM, P_LINE, P_CORRUPT, P_PICK };

#define DEFAULT_CHUNK_LINES 65536 /* ~1.5 MiB of csv text per chunk */
#define LINE_MAX_BYTES 512        /* longest line we ever format (300-byte id + fields) */
#define LONG_ID_LEN 300
#define IMPLICIT_TRIES 4
#define ROTATE_SHARE 0.1 /* drift 1 rotates item popularity by this share of the catalogue */
#define MSG_TAG 0x5359
#define NUL_FREE_LINES 65536 /* no NUL byte before this line: see gen_line */
#define REJECT_TRIES 16   /* fresh popularity draws for an unrated item before walking ranks */
#define SATURATED_TRIES 64 /* other users tried when a user has reached its cap */
#define SET_LOAD 0.7       /* the picker's pair set is sized for this load at most */

/* Corrupt line kinds, in cycling order (K_DUP and K_NUL last: gen_line relies on it). */
enum {
  K_MISSING, K_BAD_RATING, K_NAN, K_RANGE, K_EMPTY_USER, K_BAD_TIME, K_LONG_ID, K_BLANK, K_DUP,
  K_NUL, K_COUNT_
};

typedef struct {
  imf_synth_opts o;
  int has_time, has_rating, header_lines;
  const char *sep;
  size_t seplen;
  double mu, scale, span_s, sd_factor;
  double *ucdf, *icdf;     /* cumulative power-law weights by popularity rank */
  int64_t *uperm, *iperm;  /* popularity rank -> 0-based id */
  double *bu, *bi, *bi2;   /* biases; bi2 = b'_i (drift only) */
  float *p, *p2, *q;       /* factors, id-major; p2 = p'_u (drift only) */
  int kinds[K_COUNT_];
  int nkinds;
  int64_t ncorrupt;        /* M: corrupt lines in the file */
  size_t set_slots;        /* picker's pair set: a power of two */
} gen;

/* The sequential pair picker: line `next` is the next to assign; (u, i) is the pair of the
 * last line assigned (a blank or duplicate line keeps its predecessor's pair). */
typedef struct {
  uint64_t *set;           /* open addressing on pair keys, 0 = empty */
  size_t mask;
  int64_t *nrated, *last;  /* per user: distinct items so far, the latest item */
  /* per user, made when it has rated 1/8 of the catalogue (so at most one byte per pair):
   * bit p set = item iperm[p] rated */
  uint64_t **bits;
  int64_t *ipos;           /* item -> its position in iperm */
  int exact;               /* users * items fits the key: exact keys, else hashed */
  int64_t next, u, i;
} picker;

typedef struct {
  char s[LONG_ID_LEN + 32];
  size_t n;
} field;

/* ---------------------------------------------------------------- options */

imf_status imf_synth_opts_from_config(const imf_config *cfg, imf_synth_opts *o) {
  memset(o, 0, sizeof *o);
  o->users = imf_cfg_int(cfg, "synth.users");
  o->items = imf_cfg_int(cfg, "synth.items");
  o->ratings = imf_cfg_int(cfg, "synth.ratings");
  o->rank = (int)imf_cfg_int(cfg, "synth.rank");
  o->noise = imf_cfg_double(cfg, "synth.noise");
  o->seed = (uint64_t)imf_cfg_int(cfg, "synth.seed");
  o->user_skew = imf_cfg_double(cfg, "synth.user_skew");
  o->item_skew = imf_cfg_double(cfg, "synth.item_skew");
  o->scale_min = imf_cfg_double(cfg, "synth.scale_min");
  o->scale_max = imf_cfg_double(cfg, "synth.scale_max");
  o->step = imf_cfg_double(cfg, "synth.step");
  o->time_start = imf_cfg_int(cfg, "synth.time_start");
  o->time_span_days = imf_cfg_int(cfg, "synth.time_span_days");
  o->drift = imf_cfg_double(cfg, "synth.drift");
  o->corrupt_fraction = imf_cfg_double(cfg, "synth.corrupt_fraction");
  o->implicit = imf_cfg_bool(cfg, "synth.implicit");
  o->rerate = imf_cfg_double(cfg, "synth.rerate");
  o->format = IMF_FMT_CSV;
  o->chunk_lines = 0;
  return IMF_OK;
}

imf_status imf_synth_validate(const imf_synth_opts *o) {
  if (o->users < 1) IMF_FAIL(IMF_ERR_USAGE, "synth.users must be >= 1, got %lld", (long long)o->users);
  if (o->items < 1) IMF_FAIL(IMF_ERR_USAGE, "synth.items must be >= 1, got %lld", (long long)o->items);
  if (o->ratings < 0)
    IMF_FAIL(IMF_ERR_USAGE, "synth.ratings must be >= 0, got %lld", (long long)o->ratings);
  /* ids and the (lines x lines) corrupt arithmetic stay well inside 64/128 bits */
  if (o->users > ((int64_t)1 << 40) || o->items > ((int64_t)1 << 40) || o->ratings > ((int64_t)1 << 50))
    IMF_FAIL(IMF_ERR_USAGE, "synth.users/items/ratings too large");
  if (o->rank < 0 || o->rank > 1024) IMF_FAIL(IMF_ERR_USAGE, "synth.rank must be in 0..1024, got %d", o->rank);
  if (!(o->noise >= 0) || !isfinite(o->noise))
    IMF_FAIL(IMF_ERR_USAGE, "synth.noise must be a finite value >= 0");
  if (!(o->user_skew >= 0) || !(o->item_skew >= 0) || !isfinite(o->user_skew) || !isfinite(o->item_skew))
    IMF_FAIL(IMF_ERR_USAGE, "synth.user_skew and synth.item_skew must be finite and >= 0");
  if (!isfinite(o->scale_min) || !isfinite(o->scale_max) || !(o->scale_max > o->scale_min))
    IMF_FAIL(IMF_ERR_USAGE, "synth.scale_max must be greater than synth.scale_min");
  if (!(o->step >= 0) || !isfinite(o->step) || o->step > o->scale_max - o->scale_min)
    IMF_FAIL(IMF_ERR_USAGE, "synth.step must be in [0, scale_max - scale_min]");
  if (o->time_span_days < 0 || o->time_span_days > 1000000)
    IMF_FAIL(IMF_ERR_USAGE, "synth.time_span_days must be in 0..1000000");
  if (!(o->drift >= 0 && o->drift <= 1)) IMF_FAIL(IMF_ERR_USAGE, "synth.drift must be in [0, 1]");
  if (!(o->corrupt_fraction >= 0 && o->corrupt_fraction <= 1))
    IMF_FAIL(IMF_ERR_USAGE, "synth.corrupt_fraction must be in [0, 1]");
  if (!(o->rerate >= 0 && o->rerate <= 1)) IMF_FAIL(IMF_ERR_USAGE, "synth.rerate must be in [0, 1]");
  if (o->chunk_lines < 0) IMF_FAIL(IMF_ERR_USAGE, "chunk_lines must be >= 0");
  switch (o->format) {
  case IMF_FMT_CSV: case IMF_FMT_TSV: case IMF_FMT_DAT: case IMF_FMT_ML100K: case IMF_FMT_MTX:
  case IMF_FMT_LIBMF: break;
  default: IMF_FAIL(IMF_ERR_USAGE, "synth: output format must be csv, tsv, dat, ml100k, mtx or libmf");
  }
  return IMF_OK;
}

static int ends_with(const char *s, size_t n, const char *suf) {
  size_t m = strlen(suf);
  return n >= m && strncmp(s + n - m, suf, m) == 0;
}

typedef enum { Z_NONE = 0, Z_GZIP, Z_XZ, Z_ZSTD } zkind;

static zkind compression_of(const char *path) {
  size_t n = strlen(path);
  if (ends_with(path, n, ".gz")) return Z_GZIP;
  if (ends_with(path, n, ".xz")) return Z_XZ;
  if (ends_with(path, n, ".zst")) return Z_ZSTD;
  return Z_NONE;
}

imf_format imf_synth_format_for_path(const char *path) {
  size_t n = strlen(path);
  static const char *const zs[] = {".gz", ".xz", ".zst"};
  for (int k = 0; k < 3; k++)
    if (ends_with(path, n, zs[k])) n -= strlen(zs[k]);
  if (ends_with(path, n, ".tsv")) return IMF_FMT_TSV;
  if (ends_with(path, n, ".dat")) return IMF_FMT_DAT;
  if (ends_with(path, n, ".data")) return IMF_FMT_ML100K;
  if (ends_with(path, n, ".mtx")) return IMF_FMT_MTX;
  if (ends_with(path, n, ".libmf")) return IMF_FMT_LIBMF;
  return IMF_FMT_CSV;
}

/* ---------------------------------------------------------------- tables */

static void gen_free(gen *G) {
  imf_free(&G->ucdf); imf_free(&G->icdf); imf_free(&G->uperm); imf_free(&G->iperm);
  imf_free(&G->bu); imf_free(&G->bi); imf_free(&G->bi2);
  imf_free(&G->p); imf_free(&G->p2); imf_free(&G->q);
}

static void power_law(int64_t n, double skew, uint64_t seed, uint32_t purpose, double *cdf, int64_t *perm) {
  double acc = 0;
  for (int64_t r = 0; r < n; r++) {
    acc += pow((double)(r + 1), -skew);
    cdf[r] = acc;
    perm[r] = r;
  }
  /* Fisher-Yates on one stream: which ids are popular is random, but fixed by the seed. */
  imf_rng g;
  imf_rng_init(&g, seed, imf_rng_stream(purpose, 0, 0, 0));
  for (int64_t i = n - 1; i > 0; i--) {
    int64_t k = (int64_t)(imf_rng_u64(&g) % (uint64_t)(i + 1));
    int64_t t = perm[i]; perm[i] = perm[k]; perm[k] = t;
  }
}

static int64_t sample_rank(const double *cdf, int64_t n, double u) {
  double x = u * cdf[n - 1];
  int64_t lo = 0, hi = n - 1; /* first r with cdf[r] > x */
  while (lo < hi) {
    int64_t mid = lo + (hi - lo) / 2;
    if (cdf[mid] > x) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

static void draw_vec(uint64_t seed, uint32_t purpose, uint32_t side, int64_t id, double sd_bias,
                     double *bias, float *v, int rank, double sd) {
  imf_rng g;
  imf_rng_init(&g, seed, imf_rng_stream(purpose, 0, side, (uint64_t)id));
  double b = imf_rng_normal(&g) * sd_bias;
  if (bias) *bias = b;
  for (int k = 0; k < rank; k++) v[k] = (float)(imf_rng_normal(&g) * sd);
}

static imf_status gen_init(gen *G, const imf_synth_opts *o) {
  memset(G, 0, sizeof *G);
  G->o = *o;
  const imf_format f = o->format;
  G->has_rating = !o->implicit;
  G->has_time = f == IMF_FMT_CSV || f == IMF_FMT_TSV || f == IMF_FMT_DAT || f == IMF_FMT_ML100K;
  G->sep = f == IMF_FMT_CSV ? "," : f == IMF_FMT_DAT ? "::" : (f == IMF_FMT_MTX || f == IMF_FMT_LIBMF) ? " " : "\t";
  G->seplen = strlen(G->sep);
  G->header_lines = f == IMF_FMT_CSV ? 1 : f == IMF_FMT_MTX ? 3 : 0;
  G->mu = 0.5 * (o->scale_min + o->scale_max);
  /* Deviations are sized for a 1..5 scale and stretched with the scale's width. */
  G->scale = (o->scale_max - o->scale_min) / 4.0;
  G->span_s = (double)o->time_span_days * 86400.0;
  /* Components N(0, 1/sqrt(rank)) read as a variance: p.q then has unit variance at any rank,
   * so the planted interaction dominates the biases as it does in real rating data. */
  G->sd_factor = o->rank > 0 ? pow((double)o->rank, -0.25) : 0;

  /* which corrupt kinds this format can express */
  for (int k = 0; k < K_COUNT_; k++) {
    if ((k == K_BAD_RATING || k == K_NAN || k == K_RANGE) && !G->has_rating) continue;
    if (k == K_BAD_TIME && !G->has_time) continue;
    if (k == K_EMPTY_USER && G->sep[0] == ' ') continue; /* whitespace runs cannot hold an empty field */
    G->kinds[G->nkinds++] = k;
  }
  double m = nearbyint((double)o->ratings * o->corrupt_fraction);
  G->ncorrupt = m > (double)o->ratings ? o->ratings : (int64_t)m;

  const int64_t U = o->users, I = o->items;
  const size_t R = (size_t)o->rank;
  /* the picker's set holds at most min(ratings, users x items) distinct pairs */
  double pairs = fmin((double)o->ratings, (double)U * (double)I);
  G->set_slots = 16;
  while ((double)G->set_slots * SET_LOAD < pairs) G->set_slots *= 2;
  /* every rank holds the planted model: (users + items) x (rank floats, 3 doubles), twice with
   * drift, and the picker: its pair set, at most one byte per pair of heavy users' bitmaps and
   * three words per user (count, latest item, bitmap pointer) and one per item */
  imf_status st = imf_mem_guard("synth --users/--items/--rank/--ratings",
                                (double)(U + I) * ((double)R * 4.0 * (o->drift > 0 ? 2 : 1) + 32.0) +
                                    (double)G->set_slots * 8.0 + pairs + (double)U * 24.0 + (double)I * 8.0);
  if (st != IMF_OK) return st;
  IMF_TRY(imf_alloc(&G->ucdf, (size_t)U, sizeof(double)), fail);
  IMF_TRY(imf_alloc(&G->uperm, (size_t)U, sizeof(int64_t)), fail);
  IMF_TRY(imf_alloc(&G->icdf, (size_t)I, sizeof(double)), fail);
  IMF_TRY(imf_alloc(&G->iperm, (size_t)I, sizeof(int64_t)), fail);
  IMF_TRY(imf_alloc(&G->bu, (size_t)U, sizeof(double)), fail);
  IMF_TRY(imf_alloc(&G->bi, (size_t)I, sizeof(double)), fail);
  if (R) {
    size_t nu, ni;
    IMF_TRY(imf_mul_size((size_t)U, R, &nu), fail);
    IMF_TRY(imf_mul_size((size_t)I, R, &ni), fail);
    IMF_TRY(imf_alloc(&G->p, nu, sizeof(float)), fail);
    IMF_TRY(imf_alloc(&G->q, ni, sizeof(float)), fail);
    if (o->drift > 0) IMF_TRY(imf_alloc(&G->p2, nu, sizeof(float)), fail);
  }
  if (o->drift > 0) IMF_TRY(imf_alloc(&G->bi2, (size_t)I, sizeof(double)), fail);

  power_law(U, o->user_skew, o->seed, P_USER_PERM, G->ucdf, G->uperm);
  power_law(I, o->item_skew, o->seed, P_ITEM_PERM, G->icdf, G->iperm);
  /* side 0: the parameters at time 0; side 1: where drift takes them by the end */
  for (int64_t u = 0; u < U; u++) {
    draw_vec(o->seed, P_USER, 0, u, 0.4, &G->bu[u], G->p ? G->p + u * R : NULL, (int)R, G->sd_factor);
    if (G->p2) draw_vec(o->seed, P_USER, 1, u, 0.4, NULL, G->p2 + u * R, (int)R, G->sd_factor);
  }
  for (int64_t i = 0; i < I; i++) {
    draw_vec(o->seed, P_ITEM, 0, i, 0.5, &G->bi[i], G->q ? G->q + i * R : NULL, (int)R, G->sd_factor);
    if (G->bi2) draw_vec(o->seed, P_ITEM, 1, i, 0.5, &G->bi2[i], NULL, 0, 0);
  }
  return IMF_OK;
fail:
  gen_free(G);
  return st;
}

/* ---------------------------------------------------------------- one line */

static size_t fmt_u64(char *b, uint64_t v) {
  char t[24];
  size_t n = 0;
  do {
    t[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  for (size_t k = 0; k < n; k++) b[k] = t[n - 1 - k];
  return n;
}

static size_t fmt_i64(char *b, int64_t v) {
  if (v < 0) {
    b[0] = '-';
    return 1 + fmt_u64(b + 1, (uint64_t)0 - (uint64_t)v);
  }
  return fmt_u64(b, (uint64_t)v);
}

/* Compact rating text: "4", "3.5", "3.3"; continuous values with 4 significant digits. */
static size_t fmt_rating(char *b, double r, double step) {
  if (step > 0) {
    double ri = nearbyint(r);
    if (fabs(r - ri) < 1e-9 && fabs(ri) < 1e15) return fmt_i64(b, (int64_t)ri);
    double h = floor(r);
    if (r > 0 && r < 1e15 && fabs(r - h - 0.5) < 1e-9) {
      size_t n = fmt_u64(b, (uint64_t)h);
      b[n++] = '.';
      b[n++] = '5';
      return n;
    }
    return (size_t)snprintf(b, 32, "%.10g", r);
  }
  return (size_t)snprintf(b, 32, "%.4g", r);
}

static void set_str(field *f, const char *s) {
  f->n = strlen(s);
  memcpy(f->s, s, f->n);
}

/* Which corrupt slot line j holds: M corrupt lines, one placed at random in each of M equal
 * strata of the line range, so the count is exact, positions look random, and the kind
 * (cycling over slot numbers) is a pure function of j. Returns -1 for a clean line. */
static int64_t corrupt_slot(const gen *G, int64_t j) {
  const uint64_t N = (uint64_t)G->o.ratings, M = (uint64_t)G->ncorrupt;
  if (M == 0) return -1;
  unsigned __int128 c = (((unsigned __int128)(uint64_t)(j + 1)) * M - 1) / N; /* stratum of j */
  uint64_t lo = (uint64_t)(((unsigned __int128)c * N) / M);
  uint64_t hi = (uint64_t)(((unsigned __int128)(c + 1) * N) / M);
  uint64_t h = imf_hash3(G->o.seed, P_CORRUPT, (uint64_t)c);
  /* A duplicate never sits first in its stratum (when there is room), so the line it copies
   * is a clean one and it stays a mergeable duplicate rather than a second corrupt line. */
  uint64_t pos = G->kinds[(uint64_t)c % (uint64_t)G->nkinds] == K_DUP && hi - lo >= 2
                     ? lo + 1 + h % (hi - lo - 1)
                     : lo + h % (hi - lo);
  return pos == (uint64_t)j ? (int64_t)c : -1;
}

/* The corrupt kind line j carries (-1: clean); *slot gets its corrupt slot. */
static int line_kind(const gen *G, int64_t j, int64_t *slot) {
  *slot = corrupt_slot(G, j);
  int kind = *slot < 0 ? -1 : G->kinds[*slot % G->nkinds];
  /* Format detection refuses content with a NUL byte in its first 256 KiB as binary, so
   * NUL lines start only after NUL_FREE_LINES lines (>= 6 bytes each); earlier NUL slots take
   * the other kinds in turn (not K_DUP, whose position rule they did not follow). */
  if (kind == K_NUL && j < NUL_FREE_LINES)
    kind = G->nkinds > 2 ? G->kinds[(*slot / G->nkinds) % (G->nkinds - 2)] : K_BLANK;
  return kind;
}

/* Line j's stream for time and noise, advanced past its time fraction (returned). */
static double line_time(const gen *G, int64_t j, imf_rng *g) {
  imf_rng_init(g, G->o.seed, imf_rng_stream(P_LINE, 0, 0, (uint64_t)j));
  return ((double)j + imf_rng_uniform(g)) / (double)G->o.ratings;
}

/* The planted deviation from mu of (u, i) at time fraction tf (drift blends the two ends). */
static double planted_dev(const gen *G, int64_t u, int64_t i, double tf) {
  const size_t R = (size_t)G->o.rank;
  double dt = G->o.drift * tf, keep = 1.0 - dt;
  const float *pu = G->p ? G->p + (size_t)u * R : NULL;
  const float *pu2 = G->p2 ? G->p2 + (size_t)u * R : NULL;
  const float *qi = G->q ? G->q + (size_t)i * R : NULL;
  double d1 = 0, d2 = 0;
  for (size_t k = 0; k < R; k++) d1 += (double)pu[k] * qi[k];
  if (pu2)
    for (size_t k = 0; k < R; k++) d2 += (double)pu2[k] * qi[k];
  double bi = G->bi2 ? keep * G->bi[i] + dt * G->bi2[i] : G->bi[i];
  return G->bu[u] + bi + (pu2 ? keep * d1 + dt * d2 : d1);
}

/* ---------------------------------------------------------------- pair picker */

static void picker_free(picker *P, int64_t users) {
  if (P->bits)
    for (int64_t u = 0; u < users; u++) imf_free(&P->bits[u]);
  imf_free(&P->bits);
  imf_free(&P->ipos);
  imf_free(&P->set);
  imf_free(&P->nrated);
  imf_free(&P->last);
}

static imf_status picker_init(const gen *G, picker *P) {
  memset(P, 0, sizeof *P);
  imf_status st = IMF_OK;
  IMF_TRY(imf_alloc_hot(&P->set, G->set_slots, sizeof(uint64_t)), fail);
  IMF_TRY(imf_alloc(&P->nrated, (size_t)G->o.users, sizeof(int64_t)), fail);
  IMF_TRY(imf_alloc(&P->last, (size_t)G->o.users, sizeof(int64_t)), fail);
  IMF_TRY(imf_alloc(&P->bits, (size_t)G->o.users, sizeof(uint64_t *)), fail);
  IMF_TRY(imf_alloc(&P->ipos, (size_t)G->o.items, sizeof(int64_t)), fail);
  for (int64_t p = 0; p < G->o.items; p++) P->ipos[G->iperm[p]] = p;
  P->mask = G->set_slots - 1;
  P->exact = (unsigned __int128)(uint64_t)G->o.users * (uint64_t)G->o.items < (unsigned __int128)UINT64_MAX;
  return IMF_OK;
fail:
  picker_free(P, G->o.users);
  return st;
}

static uint64_t pair_key(const gen *G, const picker *P, int64_t u, int64_t i) {
  /* hashed keys (only for users x items beyond 2^64) may collide: a false "rated" only
   * makes the picker draw again */
  return P->exact ? (uint64_t)u * (uint64_t)G->o.items + (uint64_t)i + 1 : imf_hash3(G->o.seed, (uint64_t)u, (uint64_t)i) | 1;
}

/* Whether (u, i) was picked before; with add, record it if not. */
static int pair_seen(const gen *G, picker *P, int64_t u, int64_t i, int add) {
  uint64_t key = pair_key(G, P, u, i);
  uint64_t h = key * 0x9e3779b97f4a7c15ull;
  for (size_t s = (size_t)(h ^ (h >> 29)) & P->mask;; s = (s + 1) & P->mask) {
    if (P->set[s] == key) return 1;
    if (P->set[s] == 0) {
      if (add) P->set[s] = key;
      return 0;
    }
  }
}

static int bit_set(const uint64_t *b, int64_t p) { return (int)(b[p / 64] >> (p % 64)) & 1; }

/* The first unrated position at or after p, cyclically (u has rated fewer than all): a walk
 * through the set, or a scan of u's bitmap, 64 positions a step. */
static int64_t next_unrated(const gen *G, picker *P, int64_t u, int64_t p) {
  const int64_t I = G->o.items;
  const uint64_t *b = P->bits[u];
  for (;;) {
    if (!b) {
      if (!pair_seen(G, P, u, G->iperm[p], 0)) return p;
      p = (p + 1) % I;
      continue;
    }
    uint64_t free_bits = ~b[p / 64] >> (p % 64);
    if (p / 64 == (I - 1) / 64 && I % 64) free_bits &= (1ull << (I % 64 - p % 64)) - 1; /* past I */
    if (free_bits) return p + __builtin_ctzll(free_bits);
    p = (p / 64 + 1) * 64;
    if (p >= I) p = 0;
  }
}

/* An item u has not rated (u has rated fewer than all), in *item: popularity draws, shifted by
 * drift, until one is new; after REJECT_TRIES the next unrated item down the popularity ranks
 * from the last draw. A user who has rated 1/8 of the catalogue gets a bitmap of what it rated
 * (at most one byte per pair, built with at most 8 probes per pair): its draws test a bit. */
static imf_status new_item(const gen *G, picker *P, int64_t u, int64_t shift, imf_rng *g, int64_t *item) {
  const int64_t I = G->o.items;
  if (!P->bits[u] && P->nrated[u] >= I / 8 && I >= 64) {
    IMF_CHECK(imf_alloc(&P->bits[u], (size_t)(I + 63) / 64, sizeof(uint64_t)));
    for (int64_t p = 0; p < I; p++)
      if (pair_seen(G, P, u, G->iperm[p], 0)) P->bits[u][p / 64] |= 1ull << (p % 64);
  }
  const uint64_t *b = P->bits[u];
  int64_t p = 0;
  for (int t = 0; t < REJECT_TRIES; t++) {
    p = (sample_rank(G->icdf, I, imf_rng_uniform(g)) + shift) % I;
    if (b ? !bit_set(b, p) : !pair_seen(G, P, u, G->iperm[p], 0)) {
      *item = G->iperm[p];
      return IMF_OK;
    }
  }
  *item = G->iperm[next_unrated(G, P, u, p)];
  return IMF_OK;
}

/* Assign line j (the picker's next line): a blank or duplicate line keeps the last pair; a
 * re-rating repeats the user's latest item; otherwise a new item for the drawn user. */
static imf_status pick_line(const gen *G, picker *P, int64_t j) {
  const imf_synth_opts *o = &G->o;
  int64_t slot;
  int kind = line_kind(G, j, &slot);
  P->next = j + 1;
  if (kind == K_DUP || kind == K_BLANK) return IMF_OK;
  imf_rng lt, g;
  double tf = line_time(G, j, &lt);
  imf_rng_init(&g, o->seed, imf_rng_stream(P_PICK, 0, 0, (uint64_t)j));
  int64_t u = G->uperm[sample_rank(G->ucdf, o->users, imf_rng_uniform(&g))];
  int rerate = o->rerate > 0 && imf_rng_uniform(&g) < o->rerate;
  /* A user rates at most two thirds of the catalogue (the heaviest users of ML-100K and of the
   * ML-1M subset in shared/data: 44% and 51%), so that everyone keeps items to recommend; one
   * who has reached that passes the line on to another user, or (when every user tried has)
   * re-rates. */
  const int64_t cap = o->items - o->items / 3;
  for (int t = 0; t < SATURATED_TRIES && !rerate && P->nrated[u] >= cap; t++)
    u = G->uperm[sample_rank(G->ucdf, o->users, imf_rng_uniform(&g))];
  P->u = u;
  if (P->nrated[u] > 0 && (rerate || P->nrated[u] >= cap)) {
    P->i = P->last[u];
    return IMF_OK;
  }
  /* drift: popularity rotates by up to ROTATE_SHARE of the catalogue over the span */
  int64_t shift = (int64_t)(o->drift * tf * ROTATE_SHARE * (double)o->items), i = 0;
  for (int tries = 0; tries < (o->implicit ? IMPLICIT_TRIES : 1); tries++) {
    IMF_CHECK(new_item(G, P, u, shift, &g, &i));
    /* implicit feedback follows taste: a pair is kept with probability sigmoid(2 dev), so
     * the planted model is learnable from interactions alone */
    if (o->implicit && imf_rng_uniform(&g) * (1.0 + exp(-2.0 * planted_dev(G, u, i, tf))) < 1.0) break;
  }
  pair_seen(G, P, u, i, 1);
  if (P->bits[u]) P->bits[u][P->ipos[i] / 64] |= 1ull << (P->ipos[i] % 64);
  P->nrated[u]++;
  P->last[u] = i;
  P->i = i;
  return IMF_OK;
}

/* ---------------------------------------------------------------- one line */

/* Line j's text for the pair (u, i) the picker gave it. */
static size_t gen_line(const gen *G, int64_t j, int64_t u, int64_t i, char *out) {
  const imf_synth_opts *o = &G->o;
  int64_t slot;
  int kind = line_kind(G, j, &slot);
  if (kind == K_DUP) return gen_line(G, j - 1, u, i, out); /* j >= 1: slot 0 never holds K_DUP */
  if (kind == K_BLANK) {
    out[0] = '\n';
    return 1;
  }

  imf_rng g;
  double tf = line_time(G, j, &g); /* time fraction */
  int64_t t = o->time_start + (int64_t)floor(G->span_s * tf);
  double pred = G->mu + G->scale * planted_dev(G, u, i, tf);
  field fu, fi, fr, ft;
  fu.n = fmt_u64(fu.s, (uint64_t)u + 1);
  fi.n = fmt_u64(fi.s, (uint64_t)i + 1);
  fr.n = ft.n = 0;
  if (G->has_rating) {
    double r = pred + o->noise * imf_rng_normal(&g);
    if (o->step > 0) r = o->scale_min + nearbyint((r - o->scale_min) / o->step) * o->step;
    if (r < o->scale_min) r = o->scale_min;
    if (r > o->scale_max) r = o->scale_max;
    fr.n = fmt_rating(fr.s, r, o->step);
  }
  if (G->has_time) ft.n = fmt_i64(ft.s, t);
  int nf = 2 + G->has_rating + G->has_time;
  field *fs[4] = {&fu, &fi, G->has_rating ? &fr : &ft, &ft};

  switch (kind) {
  case K_MISSING: nf = G->has_rating ? 2 : 1; break;
  case K_BAD_RATING: set_str(&fr, "abc"); break;
  case K_NAN: set_str(&fr, "nan"); break;
  case K_RANGE:
    fr.n = fmt_rating(fr.s, (slot / G->nkinds) % 2 ? o->scale_min - 1 : o->scale_max + 1,
                      o->step > 0 ? o->step : 1);
    break;
  case K_EMPTY_USER: fu.n = 0; break;
  case K_BAD_TIME: ft.s[ft.n++] = '.'; ft.s[ft.n++] = '5'; break;
  case K_LONG_ID:
    memset(fu.s, '9', LONG_ID_LEN);
    fu.n = LONG_ID_LEN;
    break;
  case K_NUL: { /* a NUL byte in front of the item id */
    memmove(fi.s + 1, fi.s, fi.n);
    fi.s[0] = '\0';
    fi.n++;
  } break;
  default: break;
  }
  size_t n = 0;
  for (int k = 0; k < nf; k++) {
    if (k) {
      memcpy(out + n, G->sep, G->seplen);
      n += G->seplen;
    }
    memcpy(out + n, fs[k]->s, fs[k]->n);
    n += fs[k]->n;
  }
  out[n++] = '\n';
  return n;
}

/* ---------------------------------------------------------------- chunks */

typedef struct {
  char *b;
  size_t n, cap;
} buf;

static imf_status buf_reserve(buf *B, size_t extra) {
  if (B->n + extra <= B->cap) return IMF_OK;
  size_t cap = B->cap ? B->cap : 1 << 20;
  while (cap < B->n + extra) cap *= 2;
  IMF_CHECK(imf_realloc(&B->b, cap, 1));
  B->cap = cap;
  return IMF_OK;
}

static imf_status header_text(const gen *G, buf *B) {
  IMF_CHECK(buf_reserve(B, 512));
  const imf_synth_opts *o = &G->o;
  int n = 0;
  if (o->format == IMF_FMT_CSV)
    n = snprintf(B->b + B->n, 512, "user,item,%stimestamp\n", G->has_rating ? "rating," : "");
  else if (o->format == IMF_FMT_MTX)
    n = snprintf(B->b + B->n, 512,
                 "%%%%MatrixMarket matrix coordinate %s general\n"
                 "%% synthetic ratings from incremf synth (seed %llu, rank %d)\n%lld %lld %lld\n",
                 G->has_rating ? "real" : "pattern", (unsigned long long)o->seed, o->rank,
                 (long long)o->users, (long long)o->items, (long long)o->ratings);
  B->n += (size_t)n;
  return IMF_OK;
}

/* Chunk c: lines [c*L, min((c+1)*L, N)), preceded by the header in chunk 0. The picker is
 * walked over the lines before it (other ranks' chunks) and then through it. */
static imf_status gen_chunk(const gen *G, picker *P, int64_t c, int64_t L, buf *B) {
  B->n = 0;
  if (c == 0) IMF_CHECK(header_text(G, B));
  int64_t j0 = c * L, j1 = j0 + L < G->o.ratings ? j0 + L : G->o.ratings;
  while (P->next < j0) IMF_CHECK(pick_line(G, P, P->next));
  for (int64_t j = j0; j < j1; j++) {
    IMF_CHECK(buf_reserve(B, LINE_MAX_BYTES));
    IMF_CHECK(pick_line(G, P, j));
    B->n += gen_line(G, j, P->u, P->i, B->b + B->n);
  }
  return IMF_OK;
}

/* ---------------------------------------------------------------- compressed sink (rank 0) */

typedef struct {
  zkind kind;
  FILE *f;
  z_stream z;
  lzma_stream x;
  ZSTD_CStream *zs;
  unsigned char *out;
  size_t outcap;
  int64_t written;
  int inited;
  const char *path;
} sink;

#define SINK_OUT (1 << 20)

static imf_status sink_put(sink *S, size_t n) {
  if (n && fwrite(S->out, 1, n, S->f) != n)
    return imf_output_write_error(S->path, errno); /* a full disk says so (fsio.h) */
  S->written += (int64_t)n;
  return IMF_OK;
}

static imf_status sink_open(sink *S, zkind kind, const char *path) {
  memset(S, 0, sizeof *S);
  S->kind = kind;
  S->path = path;
  S->outcap = SINK_OUT;
  IMF_CHECK(imf_alloc(&S->out, S->outcap, 1));
  S->f = fopen(path, "wb");
  if (!S->f) return imf_output_write_error(path, errno);
  if (kind == Z_GZIP) {
    if (deflateInit2(&S->z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
      IMF_FAIL(IMF_ERR_RUNTIME, "zlib: deflateInit2 failed");
  } else if (kind == Z_XZ) {
    lzma_stream init = LZMA_STREAM_INIT;
    S->x = init;
    /* preset 1: higher presets shrink this digit-heavy text little and run many times slower,
     * which would make xz the bottleneck of every large synth (docs/DESIGN.md, "Compressed
     * output of synth") */
    if (lzma_easy_encoder(&S->x, 1, LZMA_CHECK_CRC64) != LZMA_OK)
      IMF_FAIL(IMF_ERR_RUNTIME, "liblzma: encoder setup failed");
  } else {
    S->zs = ZSTD_createCStream();
    if (!S->zs || ZSTD_isError(ZSTD_initCStream(S->zs, 3)))
      IMF_FAIL(IMF_ERR_RUNTIME, "libzstd: stream setup failed");
  }
  S->inited = 1;
  return IMF_OK;
}

/* Feed n bytes (finish: end the stream after them). */
static imf_status sink_write(sink *S, const char *data, size_t n, int finish) {
  if (S->kind == Z_GZIP) {
    S->z.next_in = (Bytef *)data;
    S->z.avail_in = (uInt)n;
    for (;;) {
      S->z.next_out = S->out;
      S->z.avail_out = (uInt)S->outcap;
      int rc = deflate(&S->z, finish ? Z_FINISH : Z_NO_FLUSH);
      if (rc == Z_STREAM_ERROR) IMF_FAIL(IMF_ERR_RUNTIME, "zlib: deflate failed");
      IMF_CHECK(sink_put(S, S->outcap - S->z.avail_out));
      if (finish ? rc == Z_STREAM_END : (S->z.avail_in == 0 && S->z.avail_out != 0)) break;
    }
  } else if (S->kind == Z_XZ) {
    S->x.next_in = (const uint8_t *)data;
    S->x.avail_in = n;
    for (;;) {
      S->x.next_out = S->out;
      S->x.avail_out = S->outcap;
      lzma_ret rc = lzma_code(&S->x, finish ? LZMA_FINISH : LZMA_RUN);
      if (rc != LZMA_OK && rc != LZMA_STREAM_END) IMF_FAIL(IMF_ERR_RUNTIME, "liblzma: error %d", (int)rc);
      IMF_CHECK(sink_put(S, S->outcap - S->x.avail_out));
      if (finish ? rc == LZMA_STREAM_END : (S->x.avail_in == 0 && S->x.avail_out != 0)) break;
    }
  } else {
    ZSTD_inBuffer in = {data, n, 0};
    for (;;) {
      ZSTD_outBuffer ob = {S->out, S->outcap, 0};
      size_t rc = ZSTD_compressStream2(S->zs, &ob, &in, finish ? ZSTD_e_end : ZSTD_e_continue);
      if (ZSTD_isError(rc)) IMF_FAIL(IMF_ERR_RUNTIME, "libzstd: %s", ZSTD_getErrorName(rc));
      IMF_CHECK(sink_put(S, ob.pos));
      if (finish ? rc == 0 : (in.pos == in.size && ob.pos < ob.size)) break;
    }
  }
  return IMF_OK;
}

static imf_status sink_close(sink *S) {
  imf_status st = IMF_OK;
  if (S->inited) {
    if (S->kind == Z_GZIP) deflateEnd(&S->z);
    else if (S->kind == Z_XZ) lzma_end(&S->x);
    else ZSTD_freeCStream(S->zs);
  }
  if (S->f && fclose(S->f) != 0 && st == IMF_OK)
    st = imf_output_write_error(S->path, errno);
  S->f = NULL;
  S->inited = 0;
  imf_free(&S->out);
  return st;
}

/* ---------------------------------------------------------------- driver */

static imf_status write_plain(MPI_Comm comm, const gen *G, picker *Pk, const char *tmp, int64_t nchunks,
                              int64_t L, buf *B, int64_t *total) {
  int rank, P;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &P);
  MPI_File fh;
  int rc = MPI_File_open(comm, tmp, MPI_MODE_CREATE | MPI_MODE_WRONLY, MPI_INFO_NULL, &fh);
  imf_status st = rc == MPI_SUCCESS ? IMF_OK : imf_output_mpi_error(tmp, rc);
  st = imf_agree(comm, st);
  if (st != IMF_OK) {
    if (rc == MPI_SUCCESS) MPI_File_close(&fh);
    return st;
  }
  int64_t *sizes = NULL;
  st = imf_alloc(&sizes, (size_t)P, sizeof(int64_t));
  MPI_Offset base = 0;
  int64_t rounds = (nchunks + P - 1) / P;
  for (int64_t k = 0; k < rounds; k++) {
    int64_t c = k * P + rank;
    B->n = 0;
    if (st == IMF_OK && c < nchunks) st = gen_chunk(G, Pk, c, L, B);
    if ((st = imf_agree(comm, st)) != IMF_OK) break;
    int64_t mine = (int64_t)B->n;
    rc = MPI_Allgather(&mine, 1, MPI_INT64_T, sizes, 1, MPI_INT64_T, comm);
    if (rc != MPI_SUCCESS) st = IMF_MPI_RAISE(rc, "MPI_Allgather");
    if ((st = imf_agree(comm, st)) != IMF_OK) break;
    MPI_Offset off = base, sum = 0;
    for (int r = 0; r < P; r++) {
      if (r < rank) off += sizes[r];
      sum += sizes[r];
    }
    MPI_Status ms;
    rc = MPI_File_write_at_all(fh, off, B->b, (int)B->n, MPI_BYTE, &ms);
    if (rc != MPI_SUCCESS) st = imf_output_mpi_error(tmp, rc);
    if ((st = imf_agree(comm, st)) != IMF_OK) break;
    base += sum;
  }
  imf_free(&sizes);
  rc = MPI_File_close(&fh);
  if (st == IMF_OK && rc != MPI_SUCCESS) st = imf_output_mpi_error(tmp, rc);
  *total = (int64_t)base;
  return imf_agree(comm, st);
}

static imf_status write_compressed(MPI_Comm comm, const gen *G, picker *Pk, zkind z, const char *tmp,
                                   int64_t nchunks, int64_t L, buf *B, int64_t *raw, int64_t *packed) {
  int rank, P;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &P);
  sink S;
  memset(&S, 0, sizeof S);
  buf in = {0};
  imf_status st = rank == 0 ? sink_open(&S, z, tmp) : IMF_OK;
  st = imf_agree(comm, st);
  int64_t nraw = 0, rounds = (nchunks + P - 1) / P;
  for (int64_t k = 0; k < rounds && st == IMF_OK; k++) {
    int64_t c = k * P + rank;
    B->n = 0;
    if (c < nchunks) st = gen_chunk(G, Pk, c, L, B);
    if ((st = imf_agree(comm, st)) != IMF_OK) break;
    /* Rank 0 takes the round's chunks in chunk order; on a local failure it keeps receiving
     * (and drops the data) so that no sender is left blocked. */
    if (rank == 0) {
      for (int r = 0; r < P && k * P + r < nchunks; r++) {
        const buf *src = B;
        if (r > 0) {
          MPI_Status ms;
          int cnt = 0;
          MPI_Probe(r, MSG_TAG, comm, &ms);
          MPI_Get_count(&ms, MPI_BYTE, &cnt);
          in.n = 0;
          imf_status s2 = buf_reserve(&in, (size_t)cnt);
          if (s2 != IMF_OK) { /* receive into nothing we keep: still must match the send */
            st = s2;
            char *tmpb = malloc((size_t)cnt ? (size_t)cnt : 1);
            MPI_Recv(tmpb, cnt, MPI_BYTE, r, MSG_TAG, comm, MPI_STATUS_IGNORE);
            free(tmpb);
            continue;
          }
          int rc = MPI_Recv(in.b, cnt, MPI_BYTE, r, MSG_TAG, comm, MPI_STATUS_IGNORE);
          if (rc != MPI_SUCCESS && st == IMF_OK) st = IMF_MPI_RAISE(rc, "MPI_Recv");
          in.n = (size_t)cnt;
          src = &in;
        }
        if (st == IMF_OK) st = sink_write(&S, src->b, src->n, 0);
        nraw += (int64_t)src->n;
      }
    } else if (c < nchunks) {
      int rc = MPI_Send(B->b, (int)B->n, MPI_BYTE, 0, MSG_TAG, comm);
      if (rc != MPI_SUCCESS) st = IMF_MPI_RAISE(rc, "MPI_Send");
    }
    st = imf_agree(comm, st);
  }
  if (rank == 0) {
    if (st == IMF_OK) st = sink_write(&S, "", 0, 1);
    imf_status s2 = sink_close(&S);
    if (st == IMF_OK) st = s2;
  }
  imf_free(&in.b);
  st = imf_agree(comm, st);
  int64_t v[2] = {nraw, S.written};
  MPI_Bcast(v, 2, MPI_INT64_T, 0, comm);
  *raw = v[0];
  *packed = v[1];
  return st;
}

imf_status imf_synth_write_ex(MPI_Comm comm, const imf_synth_opts *o, const char *path,
                              imf_synth_result *res) {
  double t0 = imf_wtime();
  int rank;
  MPI_Comm_rank(comm, &rank);
  imf_status st = imf_synth_validate(o);
  if (st == IMF_OK && (!path || !*path)) st = IMF_RAISE(IMF_ERR_USAGE, "synth: no output file");
  if (st != IMF_OK) return st; /* same options on every rank: all fail alike */
  gen G;
  picker Pk;
  memset(&Pk, 0, sizeof Pk);
  st = gen_init(&G, o);
  if (st == IMF_OK) st = picker_init(&G, &Pk);
  st = imf_agree(comm, st);
  if (st != IMF_OK) {
    picker_free(&Pk, o->users);
    gen_free(&G); /* ranks that succeeded hold tables; a failed gen_init left NULLs */
    return st;
  }
  /* Temporary name next to the target, so the final rename is atomic and a killed run leaves
   * only a dot-file behind. */
  char tmp[4096];
  if (rank == 0) {
    const char *slash = strrchr(path, '/');
    int dl = slash ? (int)(slash - path + 1) : 0;
    snprintf(tmp, sizeof tmp, "%.*s.%s.synth-%ld.tmp", dl, path, slash ? slash + 1 : path, (long)getpid());
    unlink(tmp);
  }
  MPI_Bcast(tmp, sizeof tmp, MPI_CHAR, 0, comm);

  int64_t L = o->chunk_lines > 0 ? o->chunk_lines : DEFAULT_CHUNK_LINES;
  int64_t nchunks = o->ratings > 0 ? (o->ratings + L - 1) / L : 1; /* chunk 0 holds the header */
  buf B = {0};
  int64_t raw = 0, packed = 0;
  zkind z = compression_of(path);
  if (z == Z_NONE) {
    st = write_plain(comm, &G, &Pk, tmp, nchunks, L, &B, &raw);
    packed = raw;
  } else {
    st = write_compressed(comm, &G, &Pk, z, tmp, nchunks, L, &B, &raw, &packed);
  }
  imf_free(&B.b);
  picker_free(&Pk, o->users);
  gen_free(&G);
  if (rank == 0) {
    if (st == IMF_OK && rename(tmp, path) != 0)
      st = IMF_RAISE(IMF_ERR_RUNTIME, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    if (st != IMF_OK) unlink(tmp);
  }
  st = imf_agree(comm, st);
  if (st == IMF_OK && res) {
    res->ratings = o->ratings;
    res->lines = o->ratings + (o->format == IMF_FMT_CSV ? 1 : o->format == IMF_FMT_MTX ? 3 : 0);
    res->raw_bytes = raw;
    res->bytes = packed;
    res->seconds = imf_wtime() - t0;
  }
  return st;
}

imf_status imf_synth_write(MPI_Comm comm, const imf_synth_opts *o, const char *path) {
  return imf_synth_write_ex(comm, o, path, NULL);
}
