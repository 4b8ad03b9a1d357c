/* rng.h - counter-based random streams keyed on (seed, stream, counter): any row's draw in any
 * sweep can be recomputed anywhere, on any rank count, without carrying generator state.
 * (Philox-4x32-10, Salmon et al. 2011.) */
#ifndef IMF_RNG_H
#define IMF_RNG_H
#include <stdint.h>

/* Keys: seed (64 bit) and a stream id built from (purpose, sweep, side, row). */
typedef struct {
  uint64_t key;      /* from the seed */
  uint64_t stream;   /* e.g. imf_rng_stream(purpose, sweep, side, row) */
  uint64_t counter;  /* advanced by each draw */
  uint32_t buf[4];
  int have;          /* unused outputs left in buf */
  int have_gauss;
  double gauss;
} imf_rng;

uint64_t imf_rng_stream(uint32_t purpose, uint32_t sweep, uint32_t side, uint64_t row);
void imf_rng_init(imf_rng *g, uint64_t seed, uint64_t stream);
uint32_t imf_rng_u32(imf_rng *g);
uint64_t imf_rng_u64(imf_rng *g);
double imf_rng_uniform(imf_rng *g);  /* in (0, 1) */
double imf_rng_normal(imf_rng *g);   /* standard normal */
double imf_rng_gamma(imf_rng *g, double shape); /* Gamma(shape, 1), Marsaglia-Tsang */
/* Stateless 64-bit hash of (seed, a, b), e.g. for the standing holdout of (user, item). */
uint64_t imf_hash3(uint64_t seed, uint64_t a, uint64_t b);
#endif
