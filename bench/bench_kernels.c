/* bench_kernels.c - short timing of the matmul kernels per variant and weight type, on the thread pool (best run).
**
** GEMV (decode, n_tok = 1): a stack of Llama-3.2-1B-shaped matrices (n_embd 2048, n_ff 8192), larger than the
** last-level cache, multiplied in turn, so W streams from DRAM as in generation; reported in GB/s of weights read,
** next to a plain multi-threaded read of the same bytes (the ceiling). GEMM (prefill): n_tok tokens against one
** matrix of 8192 rows, in GFLOP/s. Runs are short (the machine is shared): `bench_kernels [-t N] [-v VARIANT]
** [-T TYPE|peak] [-p N_TOK] [-s SECONDS] [-c] [-k N_IN]`; -T peak: only the FP32 FMA peak; -c keeps one small matrix in cache to show the kernels'
** compute speed, -k sets the row length (2048 as Q/K/V/O and FFN up, 8192 as FFN down). Types the r8 layout covers
** (kernels.h) are timed twice: rows as stored, then repacked ("avx2-r8"), as a model read into memory runs them.
*/
#include "../src/kernels/kernels.h"
#include "../src/quant/quants.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct job {
    const lc_kernels *k;
    int type, n_in, n_out, n_tok, n_mats;
    bool r8; /* W repacked into the r8 layout (kernels.h): multiplied with lc_matmul_r8_using */
    uint8_t **W;
    size_t wrb;
    float *X, *Y;
    void *xq;
    lc_pool *pool;
    double sink[64];
} job;

static void run_gemv_stack(void *arg, int ith, int nth) {
    job *j = arg;
    lc_matmul_prepare_using(j->k, j->type, j->X, j->n_in, j->n_in, 1, j->xq, ith, nth);
    lc_pool_barrier(j->pool);
    const void *xq = j->type == LC_TYPE_F32 ? (const void *)j->X : j->xq;
    for (int m = 0; m < j->n_mats; m++)
        (j->r8 ? lc_matmul_r8_using : lc_matmul_using)(j->k, j->type, j->W[m], j->wrb, j->n_out, j->n_in, xq, 1, j->Y,
                                                       j->n_out, ith, nth);
}

static void run_gemm(void *arg, int ith, int nth) {
    job *j = arg;
    lc_matmul_prepare_using(j->k, j->type, j->X, j->n_in, j->n_in, j->n_tok, j->xq, ith, nth);
    lc_pool_barrier(j->pool);
    const void *xq = j->type == LC_TYPE_F32 ? (const void *)j->X : j->xq;
    (j->r8 ? lc_matmul_r8_using : lc_matmul_using)(j->k, j->type, j->W[0], j->wrb, j->n_out, j->n_in, xq, j->n_tok,
                                                   j->Y, j->n_out, ith, nth);
}

typedef uint64_t u64x2 __attribute__((vector_size(16)));
static void run_read(void *arg, int ith, int nth) { /* the bandwidth ceiling: sum all 16-byte words of the stack */
    job *j = arg;
    const size_t bytes = j->wrb * (size_t)j->n_out, n = bytes / 16;
    u64x2 s = {0, 0};
    for (int m = 0; m < j->n_mats; m++) {
        const u64x2 *p = (const u64x2 *)j->W[m]; /* 64-byte aligned */
        const size_t i0 = n * (size_t)ith / (size_t)nth, i1 = n * (size_t)(ith + 1) / (size_t)nth;
        u64x2 a = s, b = {0, 0}, c = {0, 0}, d = {0, 0};
        size_t i = i0;
        for (; i + 4 <= i1; i += 4) a += p[i], b += p[i + 1], c += p[i + 2], d += p[i + 3];
        s = a + b + c + d;
    }
    j->sink[ith % 64] += (double)(s[0] + s[1]);
}

/* The FP32 peak the training figures are compared with: 12 independent chains of fused multiply-adds on the widest
** vectors the CPU has (AVX-512 or AVX2+FMA; x86-64 only), per thread. */
enum { PEAK_ITERS = 1 << 22, PEAK_CHAINS = 12 };
static int peak_width; /* floats per FMA: 16, 8, or 0 (not measured) */
#if defined(__x86_64__)
#include <immintrin.h>
__attribute__((target("avx512f"))) static float peak_avx512(float m) {
    __m512 a[PEAK_CHAINS];
    const __m512 vm = _mm512_set1_ps(m), vc = _mm512_set1_ps(1e-7f);
    for (int c = 0; c < PEAK_CHAINS; c++) a[c] = _mm512_set1_ps((float)c);
    for (int i = 0; i < PEAK_ITERS; i++)
#pragma GCC unroll 12
        for (int c = 0; c < PEAK_CHAINS; c++) a[c] = _mm512_fmadd_ps(a[c], vm, vc);
    __m512 s = a[0];
    for (int c = 1; c < PEAK_CHAINS; c++) s = _mm512_add_ps(s, a[c]);
    return _mm512_reduce_add_ps(s);
}
__attribute__((target("avx2,fma"))) static float peak_avx2(float m) {
    __m256 a[PEAK_CHAINS];
    const __m256 vm = _mm256_set1_ps(m), vc = _mm256_set1_ps(1e-7f);
    for (int c = 0; c < PEAK_CHAINS; c++) a[c] = _mm256_set1_ps((float)c);
    for (int i = 0; i < PEAK_ITERS; i++)
#pragma GCC unroll 12
        for (int c = 0; c < PEAK_CHAINS; c++) a[c] = _mm256_fmadd_ps(a[c], vm, vc);
    __m256 s = a[0];
    for (int c = 1; c < PEAK_CHAINS; c++) s = _mm256_add_ps(s, a[c]);
    float f[8];
    _mm256_storeu_ps(f, s);
    return f[0] + f[1] + f[2] + f[3] + f[4] + f[5] + f[6] + f[7];
}
#endif
static void run_peak(void *arg, int ith, int nth) {
    (void)nth;
    job *j = arg;
    float r = 0.0f;
#if defined(__x86_64__)
    if (peak_width == 16) r = peak_avx512(0.9999999f);
    else if (peak_width == 8) r = peak_avx2(0.9999999f);
#endif
    j->sink[ith % 64] += (double)r;
}

/* With one thread, the thread's CPU time: on a shared machine it leaves out the time other jobs held the core. */
static bool use_cpu_time;
static double now(void) {
    if (!use_cpu_time) return lc_time_s();
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The fastest of the runs that fit in `seconds` (at least 3): on a shared machine the minimum is the stable
** statistic, the mean drifts with the neighbours. */
static double time_runs(job *j, lc_pool_fn fn, double seconds, int *reps) {
    lc_pool_run(j->pool, fn, j); /* warm-up */
    const double t_start = now();
    double best = 1e30, t = t_start;
    int n = 0;
    do {
        const double t0 = now();
        lc_pool_run(j->pool, fn, j);
        t = now();
        best = LC_MIN(best, t - t0);
        n++;
    } while (t - t_start < seconds || n < 3);
    *reps = n;
    return best;
}

int main(int argc, char **argv) {
    int n_threads = 2, n_tok = 512;
    bool cached = false;
    int n_in_opt = 2048;
    double seconds = 0.5;
    const char *only_variant = NULL, *only_type = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc) n_threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-v") && i + 1 < argc) only_variant = argv[++i];
        else if (!strcmp(argv[i], "-T") && i + 1 < argc) only_type = argv[++i];
        else if (!strcmp(argv[i], "-p") && i + 1 < argc) n_tok = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-s") && i + 1 < argc) seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "-c")) cached = true;
        else if (!strcmp(argv[i], "-k") && i + 1 < argc) n_in_opt = atoi(argv[++i]);
        else {
            fprintf(stderr,
                    "usage: %s [-t N] [-v ref|avx2|avx512|amx|neon] [-T TYPE] [-p N_TOK] [-s SEC] [-c]"
                    " [-k N_IN]\n",
                    argv[0]);
            return 2;
        }
    }
    use_cpu_time = n_threads == 1;
    lc_pool *pool;
    if (lc_pool_new(n_threads, &pool)) {
        fprintf(stderr, "cannot start %d threads\n", n_threads);
        return 1;
    }
    const char *variants[] = {"ref", "avx2", "avx512", "amx", "neon"};
    const int types[] = {LC_TYPE_F32,  LC_TYPE_F16,  LC_TYPE_BF16,   LC_TYPE_Q8_0, LC_TYPE_Q4_0, LC_TYPE_Q4_1,
                         LC_TYPE_Q5_0, LC_TYPE_Q5_1, LC_TYPE_IQ4_NL, LC_TYPE_Q2_K, LC_TYPE_Q3_K, LC_TYPE_Q4_K,
                         LC_TYPE_Q5_K, LC_TYPE_Q6_K, LC_TYPE_IQ4_XS};
    const int n_types = (int)(sizeof types / sizeof *types);
    /* -c: one small matrix that stays in L2 (compute bound); -k: row length (2048: attention/FFN-up shape; 8192:
    ** FFN-down) */
    const int n_in = n_in_opt, n_out = cached ? 128 : 8192;
    const size_t stack_bytes = cached ? 0 : (size_t)384 << 20; /* well past any L3 here */
    printf("threads %d (%s time), default variant %s; GEMV: %d x %d matrices, %zu MiB stack; GEMM: %d tokens\n",
           n_threads, use_cpu_time ? "cpu" : "wall", lc_cpu_variant(), n_out, n_in, stack_bytes >> 20, n_tok);
#if defined(__x86_64__)
    __builtin_cpu_init();
    peak_width = __builtin_cpu_supports("avx512f") ? 16 : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 8 : 0;
#endif
    if (peak_width && (!only_type || !strcmp(only_type, "peak"))) {
        job j = {0};
        j.pool = pool;
        int reps;
        const double t = time_runs(&j, run_peak, seconds, &reps);
        const double flops = 2.0 * PEAK_CHAINS * peak_width * (double)PEAK_ITERS * n_threads;
        printf("FP32 FMA peak (%d-wide)  %7.1f GFLOP/s  (%d threads)\n", peak_width, flops / t * 1e-9, n_threads);
    }
    for (int ti = 0; ti < n_types; ti++) {
        const int t = types[ti];
        if (only_type && strcmp(only_type, lc_type_name(t))) continue;
        job j = {0};
        j.type = t, j.n_in = n_in, j.n_out = n_out, j.pool = pool;
        uint64_t rb;
        lc_type_row_bytes(t, (uint64_t)n_in, &rb);
        j.wrb = (size_t)rb;
        const size_t mat_bytes = j.wrb * (size_t)n_out;
        j.n_mats = LC_MAX(1, (int)(stack_bytes / mat_bytes));
        j.W = calloc((size_t)j.n_mats, sizeof *j.W);
        float *tmp = malloc(sizeof(float) * n_in);
        for (int m = 0; m < j.n_mats; m++) {
            j.W[m] = lc__aligned_alloc(mat_bytes);
            for (int r = 0; r < n_out; r++) {
                for (int i = 0; i < n_in; i++) tmp[i] = (float)((r * 31 + i * 17 + m) % 97) * 0.01f - 0.48f;
                uint8_t *row = j.W[m] + (size_t)r * j.wrb;
                if (t == LC_TYPE_F32) memcpy(row, tmp, sizeof(float) * n_in);
                else if (t == LC_TYPE_F16) lc_fp32_to_fp16_row(tmp, (lc_fp16 *)row, n_in);
                else if (t == LC_TYPE_BF16) lc_fp32_to_bf16_row(tmp, (lc_bf16 *)row, n_in);
                else if (t == LC_TYPE_Q8_0) lc_quantize_row_q8_0_ref(tmp, (block_q8_0 *)row, n_in);
                else lc__quant_ref(t)->quantize(tmp, row, n_in);
            }
        }
        j.X = malloc(sizeof(float) * (size_t)n_in * (size_t)n_tok);
        for (size_t i = 0; i < (size_t)n_in * (size_t)n_tok; i++) j.X[i] = (float)(i % 89) * 0.02f - 0.9f;
        j.Y = malloc(sizeof(float) * (size_t)n_out * (size_t)n_tok);
        j.xq = lc__aligned_alloc(lc_matmul_xq_bytes(t, n_in, n_tok) + 64);
        int reps;
        const double t_read = time_runs(&j, run_read, seconds, &reps);
        printf("%-4s read ceiling          %7.1f GB/s\n", lc_type_name(t),
               (double)mat_bytes * j.n_mats / t_read * 1e-9);
        /* the rows as stored, then (pass 1) repacked into the r8 layout, for the variants that read it: what a model
        ** read into memory runs (--mmap keeps the rows) */
        for (int pass = 0; pass < 2; pass++) {
            if (pass == 1) {
                if (!lc__r8_packs(t, n_in) || n_out % lc__r8_rows(t)) break;
                for (int m = 0; m < j.n_mats; m++) lc__r8_pack(t, j.W[m], j.wrb, n_out);
                j.r8 = true;
            }
            for (int v = 0; v < 4; v++) {
                if (only_variant && strcmp(only_variant, variants[v])) continue;
                j.k = lc_kernels_by_name(variants[v]);
                if (!j.k || (j.r8 && !j.k->gemm_r8[t])) continue;
                char name[16];
                snprintf(name, sizeof name, "%s%s", j.k->name, j.r8 ? "-r8" : "");
                const double tg = time_runs(&j, run_gemv_stack, seconds, &reps);
                printf("%-4s %-9s GEMV        %7.1f GB/s  (%.2f ms per 1B-model-sized pass)\n", lc_type_name(t),
                       name, (double)mat_bytes * j.n_mats / tg * 1e-9,
                       tg / ((double)mat_bytes * j.n_mats) * 1.24e9 * (double)j.wrb / n_in * 1e3);
                if (v == 0 && !only_variant) continue; /* ref GEMM takes too long to be worth the machine time */
                j.n_tok = n_tok;
                const double tm = time_runs(&j, run_gemm, seconds, &reps);
                printf("%-4s %-9s GEMM %4d tok %7.1f GFLOP/s\n", lc_type_name(t), name, n_tok,
                       2.0 * n_in * n_out * (double)n_tok / tm * 1e-9);
                j.n_tok = 0;
            }
        }
        for (int m = 0; m < j.n_mats; m++) lc__aligned_free(j.W[m]);
        free(j.W), free(tmp), free(j.X), free(j.Y);
        lc__aligned_free(j.xq);
    }
    lc_pool_free(pool);
    return 0;
}
