/* Seeded random numbers: a sequential generator (xoshiro256**) for shuffles and initialisation,
 * and a counter-based hash for streams that must not depend on thread scheduling (dropout). */
#ifndef FNN_UTIL_RNG_H
#define FNN_UTIL_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} fnn_rng;

void fnn_rng_seed(fnn_rng *r, uint64_t seed);
uint64_t fnn_rng_next(fnn_rng *r);
/* Uniform in [0, 1) with 24 random bits. */
float fnn_rng_uniform(fnn_rng *r);
/* Uniform integer in [0, n), without modulo bias; n > 0. */
uint32_t fnn_rng_below(fnn_rng *r, uint32_t n);

/* splitmix64's finaliser: a bijective mix of a 64-bit counter. */
static inline uint64_t fnn_hash64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

#endif
