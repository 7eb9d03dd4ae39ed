/* pool.c - a persistent thread pool: n threads including the caller, one job at a time, a spinning barrier.
**
** Workers spin briefly waiting for the next job (decode calls arrive microseconds apart) and then sleep on a
** condition variable, so an idle pool costs nothing. The barrier counts arrivals and flips a generation number;
** waiters spin with a pause and yield after a while, which keeps an oversubscribed machine usable.
*/
#include "base.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define CPU_RELAX() __asm__ __volatile__("yield")
#else
#define CPU_RELAX() ((void)0)
#endif

#define SPIN_BEFORE_YIELD 2000
#define SPIN_BEFORE_SLEEP 200000

typedef struct worker {
    lc_pool *pool;
    int ith;
} worker;

struct lc_pool {
    int n;
    pthread_t *threads;
    worker *workers;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_int gen;    /* incremented per job */
    atomic_int n_done; /* workers (not the caller) finished with the current job */
    atomic_int stop;
    lc_pool_fn fn;
    void *arg;
    atomic_int bar_count;
    atomic_int bar_gen;
};

static void *worker_main(void *p) {
    worker *w = p;
    lc_pool *pool = w->pool;
    int last = 0;
    for (;;) {
        int spins = 0;
        while (atomic_load_explicit(&pool->gen, memory_order_acquire) == last && !atomic_load(&pool->stop)) {
            if (++spins < SPIN_BEFORE_SLEEP) {
                CPU_RELAX();
                if (spins % SPIN_BEFORE_YIELD == 0) sched_yield();
                continue;
            }
            pthread_mutex_lock(&pool->mu);
            while (atomic_load(&pool->gen) == last && !atomic_load(&pool->stop)) pthread_cond_wait(&pool->cv, &pool->mu);
            pthread_mutex_unlock(&pool->mu);
        }
        if (atomic_load(&pool->stop)) break;
        last = atomic_load_explicit(&pool->gen, memory_order_acquire);
        pool->fn(pool->arg, w->ith, pool->n);
        atomic_fetch_add_explicit(&pool->n_done, 1, memory_order_release);
    }
    return NULL;
}

int lc_pool_new(int n_threads, lc_pool **out) {
    *out = NULL;
    if (n_threads <= 0) n_threads = lc_n_cores();
    if (n_threads > 512) return LC_ERR(LC_E_INVALID, "thread pool: %d threads requested; at most 512", n_threads);
    lc_pool *p = lc__calloc(1, sizeof *p);
    if (!p) return LC_ERR(LC_E_NOMEM, "thread pool: out of memory");
    p->n = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->threads = lc__calloc((size_t)n_threads, sizeof *p->threads);
    p->workers = lc__calloc((size_t)n_threads, sizeof *p->workers);
    if (!p->threads || !p->workers) {
        lc_pool_free(p);
        return LC_ERR(LC_E_NOMEM, "thread pool: out of memory");
    }
    pthread_attr_t attr; /* kernels keep up to ~72 KiB of tiles on the stack; musl's default stack is 128 KiB */
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, (size_t)1 << 20);
    for (int i = 1; i < n_threads; i++) {
        p->workers[i].pool = p;
        p->workers[i].ith = i;
        if (pthread_create(&p->threads[i], &attr, worker_main, &p->workers[i])) {
            pthread_attr_destroy(&attr);
            p->n = i; /* join what started */
            lc_pool_free(p);
            return LC_ERR(LC_E_NOMEM, "thread pool: could not start thread %d of %d", i, n_threads);
        }
    }
    pthread_attr_destroy(&attr);
    *out = p;
    return LC_OK;
}

void lc_pool_free(lc_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    if (p->threads)
        for (int i = 1; i < p->n; i++) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    lc__free(p->threads);
    lc__free(p->workers);
    lc__free(p);
}

int lc_pool_n_threads(const lc_pool *p) { return p->n; }

void lc_pool_run(lc_pool *p, lc_pool_fn fn, void *arg) {
    if (p->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    atomic_store(&p->n_done, 0);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    fn(arg, 0, p->n);
    int spins = 0;
    while (atomic_load_explicit(&p->n_done, memory_order_acquire) != p->n - 1) {
        CPU_RELAX();
        if (++spins % SPIN_BEFORE_YIELD == 0) sched_yield();
    }
}

void lc_pool_barrier(lc_pool *p) {
    if (p->n == 1) return;
    int g = atomic_load_explicit(&p->bar_gen, memory_order_acquire);
    if (atomic_fetch_add_explicit(&p->bar_count, 1, memory_order_acq_rel) == p->n - 1) {
        atomic_store_explicit(&p->bar_count, 0, memory_order_relaxed);
        atomic_fetch_add_explicit(&p->bar_gen, 1, memory_order_release);
        return;
    }
    int spins = 0;
    while (atomic_load_explicit(&p->bar_gen, memory_order_acquire) == g) {
        CPU_RELAX();
        if (++spins % SPIN_BEFORE_YIELD == 0) sched_yield();
    }
}

int lc_n_cores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}
