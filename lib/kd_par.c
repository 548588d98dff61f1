/* kd_par: threads and a barrier for the deterministic parallel kernels. */
#include "kd_par.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void kd_barrier_init(kd_barrier *b, unsigned n)
{
    atomic_init(&b->arrived, 0);
    atomic_init(&b->generation, 0);
    b->n = n;
}

void kd_barrier_wait(kd_barrier *b)
{
    if (b->n <= 1)
        return;
    unsigned gen = atomic_load_explicit(&b->generation, memory_order_acquire);
    if (atomic_fetch_add_explicit(&b->arrived, 1, memory_order_acq_rel) + 1 == b->n) {
        atomic_store_explicit(&b->arrived, 0, memory_order_relaxed);
        atomic_fetch_add_explicit(&b->generation, 1, memory_order_release);
        return;
    }
    for (unsigned spin = 0; atomic_load_explicit(&b->generation, memory_order_acquire) == gen; spin++)
        if (spin > 100000) /* ~0.5 ms: only an oversubscribed machine gets here */
            sched_yield();
}

typedef struct job {
    void (*fn)(void *, int, int);
    void *ctx;
    int t, T;
} job;

static void *trampoline(void *arg)
{
    job *j = arg;
    j->fn(j->ctx, j->t, j->T);
    return NULL;
}

int kd_par_run(int T, void (*fn)(void *ctx, int t, int T), void *ctx, kd_err *e)
{
    if (T <= 1) {
        fn(ctx, 0, 1);
        return 0;
    }
    pthread_t *th = calloc((size_t)T, sizeof *th);
    job *jobs = calloc((size_t)T, sizeof *jobs);
    if (!th || !jobs) {
        free(th); free(jobs);
        return kd_fail(e, "out of memory");
    }
    int started = 1;
    for (int t = 1; t < T; t++) {
        jobs[t] = (job){ fn, ctx, t, T };
        if (pthread_create(&th[t], NULL, trampoline, &jobs[t])) {
            /* the barrier counts T threads: without all of them we cannot go on */
            for (int k = 1; k < started; k++) pthread_cancel(th[k]);
            free(th); free(jobs);
            return kd_fail(e, "cannot start thread %d of %d", t, T);
        }
        started++;
    }
    fn(ctx, 0, T);
    for (int t = 1; t < T; t++)
        pthread_join(th[t], NULL);
    free(th);
    free(jobs);
    return 0;
}

double kd_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
