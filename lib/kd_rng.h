/* kd_rng: explicit, seedable random streams; never rand() or time().
 *
 * Two ways to draw:
 *  - kd_rng: a sequential SplitMix64 stream for code that runs on one thread;
 *  - kd_rng_at(key, counter): a counter-based draw, so the n-th sample of a block gets
 *    the same number whichever thread computes it (what makes training bit-identical
 *    across thread counts).  kd_key(seed, a, b) derives independent keys.
 */
#ifndef KD_RNG_H
#define KD_RNG_H

#include <math.h>
#include <stdint.h>

static inline uint64_t kd_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A key for stream (a, b) of a seed: e.g. kd_key(seed, epoch, block). */
static inline uint64_t kd_key(uint64_t seed, uint64_t a, uint64_t b)
{
    return kd_mix64(kd_mix64(kd_mix64(seed + 0x9e3779b97f4a7c15ULL) ^ a) + b * 0x9e3779b97f4a7c15ULL);
}

/* Stream tags, in one place: their values are part of every result (a changed tag is a
 * changed model), and no two streams of a seed may share one.
 *
 * A training run's streams: kd_key(seed, KD_STREAM_x, 0) (tools/kd-train.c, kd-distill.c;
 * kd-distill uses the same INIT and BPR streams as kd-train, so at zero weight it trains
 * kd-train's model).  The data modules tag theirs with ASCII words in kd_key's first
 * argument ("SYNTH", "USER", "SPLIT", "LOO", "LAT"), far from these small numbers. */
enum kd_stream {
    KD_STREAM_INIT = 0,       /* the model's N(0, std^2) initialisation */
    KD_STREAM_BPR = 1,        /* BPR's sampling (kd_bpr mixes epoch and unit in itself) */
    KD_STREAM_DISTILL = 2,    /* the seed of kd_distill's streams below */
    KD_STREAM_VALID_USERS = 3,/* kd_train's sample of validation users (--valid-users) */
};
/* kd_distill's per-user units: kd_key(distill seed, epoch, (uint64_t)tag << 40 | user)
 * (item-side units: | item; rce's per-epoch draw of each user's sampled list: | user). */
enum kd_unit_stream {
    KD_UNIT_RD = 2, KD_UNIT_RRD = 3, KD_UNIT_CE = 4, KD_UNIT_DCD = 5, KD_UNIT_DCD_ITEM = 7, KD_UNIT_RCE = 8,
};
/* Draws inside such a unit: kd_key(unit key, index, tag).  KD_DRAW_PICK is dcd's two
 * Gumbel selections (index 1: under-estimated, 2: over-estimated), and also the retry
 * counter inside one negative draw (kd_key(draw key, try, KD_DRAW_PICK)). */
enum kd_draw {
    KD_DRAW_PICK = 0, KD_DRAW_RD_NEG = 1, KD_DRAW_RRD_NEG = 2, KD_DRAW_DCD_NEG = 3, KD_DRAW_CE_SAMPLE = 4,
};
/* rd --dynamic's rank estimate: counters KD_RD_RANK_DRAWS + s of the unit's own stream. */
#define KD_RD_RANK_DRAWS 1000u

/* The counter-th 64-bit draw of stream `key`. */
static inline uint64_t kd_rng_at(uint64_t key, uint64_t counter)
{
    return kd_mix64(key + (counter + 1) * 0x9e3779b97f4a7c15ULL);
}

/* An unbiased integer in [0, n) from 64 random bits and a retry source (Lemire). */
static inline uint32_t kd_below(uint64_t r, uint32_t n)
{
    return (uint32_t)(((r >> 32) * (uint64_t)n) >> 32);
}

typedef struct kd_rng {
    uint64_t s;
} kd_rng;

static inline kd_rng kd_rng_seed(uint64_t seed) { kd_rng r = { kd_mix64(seed ^ 0x6a09e667f3bcc909ULL) }; return r; }

static inline uint64_t kd_rng_next(kd_rng *r)
{
    r->s += 0x9e3779b97f4a7c15ULL;
    return kd_mix64(r->s);
}

/* Uniform double in [0, 1) with 53 random bits. */
static inline double kd_rng_unif(kd_rng *r) { return (double)(kd_rng_next(r) >> 11) * 0x1.0p-53; }

/* Uniform integer in [0, n), n >= 1 (32-bit multiply-shift; bias below 2^-32 * n). */
static inline uint32_t kd_rng_below(kd_rng *r, uint32_t n) { return kd_below(kd_rng_next(r), n); }

/* Standard normal (Box-Muller, one value per call: simple and deterministic). */
static inline double kd_rng_normal(kd_rng *r)
{
    double u = 1.0 - kd_rng_unif(r), v = kd_rng_unif(r);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* Gumbel(0,1) noise, for sampling without replacement by perturbed top-k. */
static inline double kd_rng_gumbel(kd_rng *r)
{
    double u = ((double)(kd_rng_next(r) >> 11) + 0.5) * 0x1.0p-53; /* in (0, 1) */
    return -log(-log(u));
}

#endif
