/* sched_getaffinity and pthread_setaffinity_np (Linux) */
#define _GNU_SOURCE
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

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

struct kd_pool {
    int T;
    int cpu[64];          /* worker t's CPU, or -1: the t-th CPU this process may use */
    pthread_t *th;
    job *jobs;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    atomic_uint gen;      /* bumped for each run; workers run when it moves */
    atomic_uint done;     /* workers finished with the current run */
    atomic_int stop;
    void (*fn)(void *, int, int);
    void *ctx;
};

enum { POOL_SPINS = 20000 }; /* pauses before an idle worker sleeps: ~0.2-0.5 ms */

static void *pool_worker(void *arg)
{
    job *j = arg;
    kd_pool *p = j->ctx;
    unsigned seen = 0;
#ifdef __linux__
    if (j->t < 64 && p->cpu[j->t] >= 0) {
        cpu_set_t s;
        CPU_ZERO(&s);
        CPU_SET(p->cpu[j->t], &s);
        pthread_setaffinity_np(pthread_self(), sizeof s, &s); /* a hint: failure is harmless */
    }
#endif
    for (;;) {
        unsigned g;
        for (unsigned spin = 0; (g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen; spin++) {
            if (spin < POOL_SPINS) {
                cpu_relax();
                continue;
            }
            pthread_mutex_lock(&p->mu);
            while (atomic_load_explicit(&p->gen, memory_order_acquire) == seen)
                pthread_cond_wait(&p->wake, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        seen = g;
        if (atomic_load_explicit(&p->stop, memory_order_acquire))
            return NULL;
        p->fn(p->ctx, j->t, j->T);
        atomic_fetch_add_explicit(&p->done, 1, memory_order_acq_rel);
    }
}

kd_pool *kd_pool_new(int T, kd_err *e)
{
    kd_pool *p = calloc(1, sizeof *p);
    if (!p) {
        kd_fail(e, "out of memory");
        return NULL;
    }
    p->T = T < 1 ? 1 : T;
    if (p->T == 1)
        return p;
    p->th = calloc((size_t)p->T, sizeof *p->th);
    p->jobs = calloc((size_t)p->T, sizeof *p->jobs);
    if (!p->th || !p->jobs) {
        free(p->th); free(p->jobs); free(p);
        kd_fail(e, "out of memory");
        return NULL;
    }
    /* Worker t stays on the t-th CPU the process may use, leaving the first to the caller
     * (who stays free).  Measured on the 2-core VM, 8 runs each: unpinned, 3 ran at ~8 M
     * samples/s for the whole run instead of 17 and first epochs ran at 3-6; pinned, none
     * did and first epochs ran at 12-15.  (The VM also has slow spells that pinning does not
     * cure.)  Only when there are no more threads than CPUs: never stack workers on one CPU. */
    for (int t = 0; t < 64; t++) p->cpu[t] = -1;
#ifdef __linux__
    cpu_set_t allowed;
    if (p->T <= 64 && !sched_getaffinity(0, sizeof allowed, &allowed) && CPU_COUNT(&allowed) >= p->T)
        for (int c = 0, t = 0; c < CPU_SETSIZE && t < p->T; c++)
            if (CPU_ISSET(c, &allowed)) p->cpu[t++] = c;
#endif
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    for (int t = 1; t < p->T; t++) {
        p->jobs[t] = (job){ NULL, p, t, p->T };
        if (pthread_create(&p->th[t], NULL, pool_worker, &p->jobs[t])) {
            p->T = t; /* stop the ones started */
            kd_pool_free(p);
            kd_fail(e, "cannot start thread %d of %d", t, T);
            return NULL;
        }
    }
    return p;
}

void kd_pool_run(kd_pool *p, void (*fn)(void *ctx, int t, int T), void *ctx)
{
    if (p->T == 1) {
        fn(ctx, 0, 1);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    fn(ctx, 0, p->T);
    for (unsigned spin = 0; atomic_load_explicit(&p->done, memory_order_acquire) != (unsigned)p->T - 1; spin++)
        if (spin > 100000)
            sched_yield();
        else
            cpu_relax();
}

void kd_pool_free(kd_pool *p)
{
    if (!p)
        return;
    if (p->T > 1) {
        pthread_mutex_lock(&p->mu);
        atomic_store_explicit(&p->stop, 1, memory_order_release);
        atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
        for (int t = 1; t < p->T; t++)
            pthread_join(p->th[t], NULL);
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->wake);
    }
    free(p->th);
    free(p->jobs);
    free(p);
}

double kd_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
