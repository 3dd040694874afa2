/* rng.h - the small deterministic RNG every seeded draw in malfam goes through (weight init,
 * pattern sampling, fold shuffles). The state is a uint64_t the caller owns and passes by
 * pointer: no global state, so one seed gives one sequence in any thread or process.
 */
#ifndef MF_RNG_H
#define MF_RNG_H

#include <stdint.h>

/* The next 64 random bits of splitmix64; advances *state. Any state value, 0 included, is
 * fine. */
static inline uint64_t mf_rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A double uniform in [0, 1) from the top 53 bits of mf_rng_next; advances *state. */
static inline double mf_rng_uniform(uint64_t *state)
{
    return (double)(mf_rng_next(state) >> 11) * (1.0 / 9007199254740992.0);
}

#endif
