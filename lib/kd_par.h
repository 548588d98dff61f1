/* kd_par: run a function on T threads (the caller is thread 0) and a spinning barrier.
 *
 * Work is always split so that the result does not depend on T: callers partition by
 * fixed blocks or by row ownership, never by "whoever is free".
 */
#ifndef KD_PAR_H
#define KD_PAR_H

#include <stdatomic.h>

#include "kd_err.h"

typedef struct kd_barrier {
    atomic_uint arrived;
    atomic_uint generation;
    unsigned    n;
} kd_barrier;

void kd_barrier_init(kd_barrier *b, unsigned n);
/* Waits until n threads arrived.  Spins briefly, then yields (so oversubscription, e.g.
 * 8 threads on 2 cores, stays correct, just slower). */
void kd_barrier_wait(kd_barrier *b);

/* Calls fn(ctx, t, T) for t = 0..T-1, t = 0 on the calling thread, and joins. */
int kd_par_run(int T, void (*fn)(void *ctx, int t, int T), void *ctx, kd_err *e);

/* A pool of T - 1 threads kept for many runs (the caller is thread 0).  Short parallel
 * runs (an epoch on small data takes ~2 ms) need it: a thread created per run often
 * started on its parent's CPU and shared it for the whole run (measured: 1.0 CPUs used
 * of 2 in a third of epochs).  Idle workers spin briefly, then sleep. */
typedef struct kd_pool kd_pool;

kd_pool *kd_pool_new(int T, kd_err *e);   /* NULL on error; T <= 1 gives a pool of none */
/* Calls fn(ctx, t, T) for t = 0..T-1 on the pool, t = 0 on the caller; returns when all did. */
void     kd_pool_run(kd_pool *p, void (*fn)(void *ctx, int t, int T), void *ctx);
void     kd_pool_free(kd_pool *p);

/* [lo, hi) of n items for thread t of T: contiguous, balanced. */
static inline void kd_par_range(unsigned long long n, int t, int T, unsigned long long *lo, unsigned long long *hi)
{
    *lo = n * (unsigned long long)t / (unsigned long long)T;
    *hi = n * (unsigned long long)(t + 1) / (unsigned long long)T;
}

/* Monotonic clock in seconds. */
double kd_now(void);

#endif
