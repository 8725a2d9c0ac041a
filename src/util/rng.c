/* xoshiro256** seeded through splitmix64, as its authors recommend. */
#include "util/rng.h"

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void fnn_rng_seed(fnn_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) {
        seed += 0x9E3779B97F4A7C15ull;
        r->s[i] = fnn_hash64(seed);
    }
}

uint64_t fnn_rng_next(fnn_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float fnn_rng_uniform(fnn_rng *r) { return (float)(fnn_rng_next(r) >> 40) * 0x1.0p-24f; }

uint32_t fnn_rng_below(fnn_rng *r, uint32_t n)
{
    /* Lemire's multiply-shift with rejection of the biased low band. */
    uint64_t m = (uint64_t)(uint32_t)fnn_rng_next(r) * n;
    uint32_t low = (uint32_t)m;
    if (low < n) {
        uint32_t threshold = (uint32_t)(-n) % n;
        while (low < threshold) {
            m = (uint64_t)(uint32_t)fnn_rng_next(r) * n;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}
