/* base.h - the bottom layer: error reporting, allocation, fp16/bf16, clocks, the thread pool, CPU features.
**
** Everything in src/ may include this; it includes nothing of the project but llamac.h. Errors are set through
** LC_ERR(status, fmt, ...), which records the message in thread-local storage (with __FILE__:__LINE__ in debug
** builds) and evaluates to the status, so `return LC_ERR(LC_E_FORMAT, "%s: offset %llu: ...", ...)` is the idiom.
*/
#ifndef LC_BASE_H
#define LC_BASE_H

#include "llamac.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__)
#define LC_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define LC_UNUSED __attribute__((unused))
#define LC_LIKELY(x) __builtin_expect(!!(x), 1)
#define LC_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define LC_PRINTF(a, b)
#define LC_UNUSED
#define LC_LIKELY(x) (x)
#define LC_UNLIKELY(x) (x)
#endif

#define LC_MIN(a, b) ((a) < (b) ? (a) : (b))
#define LC_MAX(a, b) ((a) > (b) ? (a) : (b))

/* ---- errors ---- */
/* Sets the thread's error message and returns status. Use through LC_ERR. */
int lc__set_error(int status, const char *file, int line, const char *fmt, ...) LC_PRINTF(4, 5);
#define LC_ERR(status, ...) lc__set_error((status), __FILE__, __LINE__, __VA_ARGS__)
/* Prefixes the current message with more context ("loading x.gguf: " + old message). Returns status. */
int lc__error_prefix(int status, const char *fmt, ...) LC_PRINTF(2, 3);

/* ---- logging (stderr, for the library only when verbosity allows; off by default) ---- */
extern int lc__log_level; /* 0 quiet, 1 warnings, 2 info; set by the front end through LLAMAC_LOG or lc_set_log */
void lc__log(int level, const char *fmt, ...) LC_PRINTF(2, 3);
#define LC_WARN(...) lc__log(1, __VA_ARGS__)
#define LC_INFO(...) lc__log(2, __VA_ARGS__)

/* ---- allocation: every allocation of the library goes through these (failure can be injected in tests) ---- */
void *lc__malloc(size_t n);
void *lc__calloc(size_t n, size_t size);
void *lc__realloc(void *p, size_t n);
void lc__free(void *p);
char *lc__strdup(const char *s);
char *lc__strndup(const char *s, size_t n);
/* 64-byte aligned; free with lc__aligned_free. */
void *lc__aligned_alloc(size_t n);
void lc__aligned_free(void *p);
/* Test hook: the n-th allocation from now fails (0: off). */
void lc__alloc_fail_after(long n);

/* Overflow-checked arithmetic: return false on overflow. */
static inline bool lc__mul_ok(uint64_t a, uint64_t b, uint64_t *out) { return !__builtin_mul_overflow(a, b, out); }
static inline bool lc__add_ok(uint64_t a, uint64_t b, uint64_t *out) { return !__builtin_add_overflow(a, b, out); }

/* ---- half precision ---- */
typedef uint16_t lc_fp16;
typedef uint16_t lc_bf16;

/* IEEE binary16 <-> binary32, round to nearest even; exact on every platform (no FPU dependence). */
float lc_fp16_to_fp32(lc_fp16 h);
lc_fp16 lc_fp32_to_fp16(float f);

static inline float lc_bf16_to_fp32(lc_bf16 h) {
    union { uint32_t u; float f; } v;
    v.u = (uint32_t)h << 16;
    return v.f;
}
/* Round to nearest even, NaN kept quiet (as GGML does). */
static inline lc_bf16 lc_fp32_to_bf16(float f) {
    union { float f; uint32_t u; } v;
    v.f = f;
    if ((v.u & 0x7fffffff) > 0x7f800000) return (lc_bf16)((v.u >> 16) | 64);
    return (lc_bf16)((v.u + (0x7fff + ((v.u >> 16) & 1))) >> 16);
}

/* Table lookup fp16 -> fp32 (65536 entries, filled by lc__base_init). */
extern float lc__fp16_table[65536];
static inline float lc_fp16_lut(lc_fp16 h) { return lc__fp16_table[h]; }

/* One-time initialisation of global tables (fp16 table, CPU features). Thread-safe, idempotent. */
void lc__base_init(void);

/* ---- CPU features (the only global state; set once) ---- */
typedef struct lc_cpu_features {
    bool avx2, fma, f16c, avx512f, avx512bw, avx512vl, avx512vnni, avx512bf16, avxvnni, neon, dotprod;
    bool avx512dq;  /* the avx512 kernels are compiled with -mavx512dq */
    bool neon_fp16; /* FEAT_FP16 (fphp + asimdhp): the neon kernels are compiled with +fp16 */
    bool amx_tile, amx_int8; /* the CPU has them and the OS saves the tile state (the process still has to ask
                             ** Linux for it: lc__amx_enable) */
} lc_cpu_features;
const lc_cpu_features *lc__cpu(void);

/* ---- clocks ---- */
double lc_time_s(void);

/* ---- thread pool: n threads including the caller; work split by (ith, nth) ---- */
typedef struct lc_pool lc_pool;
typedef void (*lc_pool_fn)(void *arg, int ith, int nth);

int lc_pool_new(int n_threads, lc_pool **out);
void lc_pool_free(lc_pool *p);
int lc_pool_n_threads(const lc_pool *p);
/* Runs fn(arg, ith, nth) on every thread (the caller is ith 0) and returns when all are done. Not reentrant. */
void lc_pool_run(lc_pool *p, lc_pool_fn fn, void *arg);
/* Inside fn only: waits until all nth threads of the current run reach it (spinning briefly, then yielding). */
void lc_pool_barrier(lc_pool *p);

/* ---- progress bar on a terminal (stderr); silent when stderr is not a TTY ---- */
typedef struct lc_progress {
    const char *label;
    double t0, last;
    int last_pct;
    bool tty;
} lc_progress;
void lc_progress_start(lc_progress *p, const char *label);
void lc_progress_update(lc_progress *p, double fraction);
void lc_progress_end(lc_progress *p);

#endif /* LC_BASE_H */
