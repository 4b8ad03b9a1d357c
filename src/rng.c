/* rng.c - Philox-4x32-10 counter-based generator and the derived distributions.
 *
 * Why counter-based: a row's random numbers depend only on (seed, purpose, sweep, side, row),
 * so a sweep gives the same factors whichever rank owns the row and however many ranks run. */
#include "rng.h"
#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

static void philox(const uint32_t ctr_in[4], const uint32_t key_in[2], uint32_t out[4]) {
  uint32_t c0 = ctr_in[0], c1 = ctr_in[1], c2 = ctr_in[2], c3 = ctr_in[3];
  uint32_t k0 = key_in[0], k1 = key_in[1];
  for (int r = 0; r < 10; r++) {
    uint64_t p0 = (uint64_t)PHILOX_M0 * c0, p1 = (uint64_t)PHILOX_M1 * c2;
    uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
    uint32_t n1 = (uint32_t)p1;
    uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
    uint32_t n3 = (uint32_t)p0;
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += PHILOX_W0;
    k1 += PHILOX_W1;
  }
  out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

static uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

uint64_t imf_rng_stream(uint32_t purpose, uint32_t sweep, uint32_t side, uint64_t row) {
  /* row gets the low 40 bits folded with the rest; collisions are avoided by mixing. */
  uint64_t h = mix64(((uint64_t)purpose << 48) ^ ((uint64_t)side << 40) ^ (uint64_t)sweep);
  return mix64(h ^ mix64(row + 0x9E3779B97F4A7C15ULL));
}

void imf_rng_init(imf_rng *g, uint64_t seed, uint64_t stream) {
  g->key = mix64(seed ^ 0x243F6A8885A308D3ULL);
  g->stream = stream;
  g->counter = 0;
  g->have = 0;
  g->have_gauss = 0;
  g->gauss = 0;
}

static void refill(imf_rng *g) {
  uint32_t ctr[4] = {(uint32_t)g->counter, (uint32_t)(g->counter >> 32), (uint32_t)g->stream,
                     (uint32_t)(g->stream >> 32)};
  uint32_t key[2] = {(uint32_t)g->key, (uint32_t)(g->key >> 32)};
  philox(ctr, key, g->buf);
  g->counter++;
  g->have = 4;
}

uint32_t imf_rng_u32(imf_rng *g) {
  if (g->have == 0) refill(g);
  return g->buf[--g->have];
}

uint64_t imf_rng_u64(imf_rng *g) {
  uint64_t hi = imf_rng_u32(g);
  return (hi << 32) | imf_rng_u32(g);
}

double imf_rng_uniform(imf_rng *g) {
  /* 53 random bits, shifted off zero: (0, 1) exclusive. */
  return ((double)(imf_rng_u64(g) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

double imf_rng_normal(imf_rng *g) {
  if (g->have_gauss) {
    g->have_gauss = 0;
    return g->gauss;
  }
  double u1 = imf_rng_uniform(g), u2 = imf_rng_uniform(g);
  double r = sqrt(-2.0 * log(u1)), t = 6.283185307179586 * u2;
  g->gauss = r * sin(t);
  g->have_gauss = 1;
  return r * cos(t);
}

double imf_rng_gamma(imf_rng *g, double shape) {
  if (shape < 1.0) {
    double u = imf_rng_uniform(g);
    return imf_rng_gamma(g, shape + 1.0) * pow(u, 1.0 / shape);
  }
  double d = shape - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
  for (;;) {
    double x, v;
    do {
      x = imf_rng_normal(g);
      v = 1.0 + c * x;
    } while (v <= 0.0);
    v = v * v * v;
    double u = imf_rng_uniform(g);
    if (u < 1.0 - 0.0331 * x * x * x * x) return d * v;
    if (log(u) < 0.5 * x * x + d * (1.0 - v + log(v))) return d * v;
  }
}

uint64_t imf_hash3(uint64_t seed, uint64_t a, uint64_t b) {
  return mix64(mix64(mix64(seed ^ 0x6A09E667F3BCC908ULL) ^ a) ^ (b + 0x3C6EF372FE94F82BULL));
}
