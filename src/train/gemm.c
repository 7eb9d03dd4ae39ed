/* gemm.c - the f32 matrix product behind training: C = (acc ? C : 0) + op(A) @ op(B), with either operand
** transposed, so a linear layer's forward (X @ W^T), input gradient (dY @ W) and weight gradient (dY^T @ X) are all
** one routine without explicit transposes.
**
** Goto/BLIS blocking: a KC x NC block of op(B) is packed into contiguous NR-wide micro-panels (zero padded); op(A) is
** read in place through its two strides (rows of 6, so 6 streams; a partial group of rows is copied and padded);
** a register-blocked micro-kernel computes MR x NR tiles of C by broadcast-FMA (AVX-512: 6 x 32, AVX2: 6 x 16,
** portable C: 6 x 8). K is cut into equal blocks of at most KC. Determinism: every element of C is the sum over
** those k blocks, in increasing order, of an FMA chain started from zero, whatever its tile, the thread split or the
** thread count, so training is bit-reproducible on a machine for any -t. The micro-kernel follows lc_cpu_variant()
** (LLAMAC_CPU=ref forces the portable one).
*/
#include "train.h"

#include <math.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define TR_X86 1
#endif

enum { MR = 6, KC = 192, MC = 96, NC = 2048 };
#define NR_MAX 32

/* c[MR x nr] (+)= sum_k a(i, k) b[k][nr]: a(i, k) = a[i*rsa + k*csa], b packed */
typedef void (*ukr_fn)(int kc, const float *restrict a, size_t rsa, size_t csa, const float *restrict b,
                       float *restrict c, size_t ldc, bool acc);

/* ---- micro-kernels ---- */

#define NR_REF 8
static void ukr_ref(int kc, const float *restrict a, size_t rsa, size_t csa, const float *restrict b,
                    float *restrict c, size_t ldc, bool acc) {
    float t[MR][NR_REF];
    memset(t, 0, sizeof t);
    for (int k = 0; k < kc; k++, a += csa, b += NR_REF)
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR_REF; j++) t[i][j] += a[i * rsa] * b[j];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR_REF; j++) c[i * ldc + j] = acc ? c[i * ldc + j] + t[i][j] : t[i][j];
}

#ifdef TR_X86
#define AVX2_ATTR __attribute__((target("avx2,fma")))
#define AVX512_ATTR __attribute__((target("avx512f,fma")))

/* One kernel body per vector width: V vector type, W floats per vector, the intrinsics by macro. */
#define UKR_BODY(V, W, ZERO, LOAD, BCAST, FMA, ADD, STORE)                                                       \
    const float *a0 = a, *a1 = a + rsa, *a2 = a + 2 * rsa, *a3 = a + 3 * rsa, *a4 = a + 4 * rsa, *a5 = a + 5 * rsa; \
    V c00 = ZERO(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00, c40 = c00,      \
      c41 = c00, c50 = c00, c51 = c00;                                                                           \
    for (size_t o = 0, k = 0; k < (size_t)kc; k++, o += csa, b += 2 * W) {                                       \
        const V b0 = LOAD(b), b1 = LOAD(b + W);                                                                  \
        V x = BCAST(a0 + o);                                                                                     \
        c00 = FMA(x, b0, c00), c01 = FMA(x, b1, c01);                                                            \
        x = BCAST(a1 + o);                                                                                       \
        c10 = FMA(x, b0, c10), c11 = FMA(x, b1, c11);                                                            \
        x = BCAST(a2 + o);                                                                                       \
        c20 = FMA(x, b0, c20), c21 = FMA(x, b1, c21);                                                            \
        x = BCAST(a3 + o);                                                                                       \
        c30 = FMA(x, b0, c30), c31 = FMA(x, b1, c31);                                                            \
        x = BCAST(a4 + o);                                                                                       \
        c40 = FMA(x, b0, c40), c41 = FMA(x, b1, c41);                                                            \
        x = BCAST(a5 + o);                                                                                       \
        c50 = FMA(x, b0, c50), c51 = FMA(x, b1, c51);                                                            \
    }                                                                                                            \
    V r[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};                       \
    for (int i = 0; i < MR; i++)                                                                                 \
        for (int j = 0; j < 2; j++) {                                                                            \
            float *p = c + i * ldc + W * j;                                                                      \
            STORE(p, acc ? ADD(LOAD(p), r[i][j]) : r[i][j]);                                                     \
        }

static inline AVX2_ATTR __m256 bcast8(const float *p) { return _mm256_broadcast_ss(p); }
static inline AVX512_ATTR __m512 bcast16(const float *p) { return _mm512_set1_ps(*p); }

AVX2_ATTR static void ukr_avx2(int kc, const float *restrict a, size_t rsa, size_t csa, const float *restrict b,
                               float *restrict c, size_t ldc, bool acc) {
    UKR_BODY(__m256, 8, _mm256_setzero_ps, _mm256_loadu_ps, bcast8, _mm256_fmadd_ps, _mm256_add_ps, _mm256_storeu_ps)
}

AVX512_ATTR static void ukr_avx512(int kc, const float *restrict a, size_t rsa, size_t csa, const float *restrict b,
                                   float *restrict c, size_t ldc, bool acc) {
    UKR_BODY(__m512, 16, _mm512_setzero_ps, _mm512_loadu_ps, bcast16, _mm512_fmadd_ps, _mm512_add_ps,
             _mm512_storeu_ps)
}
#endif

/* ---- y[i] = exp(a x[i] - b) ---- */

static void vexp_ref(float *y, const float *x, float a, float b, int n) {
    for (int i = 0; i < n; i++) y[i] = expf(a * x[i] - b);
}

#ifdef TR_X86
/* exp(t) = 2^k e^r, k = round(t log2 e), r = t - k ln 2 (two-part ln 2), e^r by its degree-6 Taylor polynomial
** (|r| <= ln2/2: relative error below 2e-7), 2^k applied by scalef (no overflow in the exponent arithmetic). */
AVX512_ATTR static inline __m512 exp16(__m512 t) {
    t = _mm512_max_ps(_mm512_set1_ps(-104.0f), _mm512_min_ps(_mm512_set1_ps(88.7f), t));
    const __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(t, _mm512_set1_ps(1.44269504f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693145752f), t);
    r = _mm512_fnmadd_ps(k, _mm512_set1_ps(1.42860677e-6f), r);
    __m512 p = _mm512_set1_ps(1.0f / 720.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, k);
}

AVX512_ATTR static void vexp_avx512(float *y, const float *x, float a, float b, int n) {
    const __m512 va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b);
    for (int i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        const __m512 t = _mm512_fmsub_ps(va, _mm512_maskz_loadu_ps(m, x + i), vb);
        _mm512_mask_storeu_ps(y + i, m, exp16(t));
    }
}
#endif

bool tr_gemm_select(tr_gemm_impl *g, const char *variant) {
    const char *v = variant ? variant : lc_cpu_variant();
    g->mr = MR;
    g->nr = NR_REF;
    g->kernel = (void *)ukr_ref;
    g->name = "ref";
    g->vexp = vexp_ref;
    if (!strcmp(v, "ref")) return true;
#ifdef TR_X86
    const lc_cpu_features *cpu = lc__cpu();
    if ((!strcmp(v, "avx512") || !strcmp(v, "amx")) && cpu->avx512f && cpu->fma) { /* amx: avx512 + Q8_0 tiles */
        g->nr = 32;
        g->kernel = (void *)ukr_avx512;
        g->vexp = vexp_avx512;
        g->name = "avx512";
        return true;
    }
    if (!strcmp(v, "avx2") && cpu->avx2 && cpu->fma) {
        g->nr = 16;
        g->kernel = (void *)ukr_avx2;
        g->name = "avx2";
        return true;
    }
#endif
    return variant == NULL; /* the kernels' variant has no micro-kernel here (neon): the portable one */
}

size_t tr_gemm_scratch_floats(void) {
    return (size_t)KC * (NC + NR_MAX) + (size_t)KC * MR + (size_t)MR * NR_MAX + 64;
}

/* ---- packing op(B) ---- */

/* Bp[panel][k][nr] for columns [j0, j0+nc) and k in [p0, p0+kc) of op(B); columns past nc are zero. */
static void pack_b(float *restrict bp, const float *B, size_t ldb, bool tb, int nr, int j0, int nc, int p0, int kc) {
    for (int jr = 0; jr < nc; jr += nr) {
        const int n = LC_MIN(nr, nc - jr);
        if (!tb) { /* op(B)[k][j] = B[k*ldb + j]: rows of n consecutive floats */
            for (int k = 0; k < kc; k++) {
                const float *src = B + (size_t)(p0 + k) * ldb + j0 + jr;
                memcpy(bp, src, (size_t)n * sizeof(float));
                for (int j = n; j < nr; j++) bp[j] = 0.0f;
                bp += nr;
            }
        } else { /* op(B)[k][j] = B[j*ldb + k]: a transpose; 4 source rows at a time */
            int j = 0;
            for (; j + 4 <= n; j += 4) {
                const float *s0 = B + (size_t)(j0 + jr + j) * ldb + p0, *s1 = s0 + ldb, *s2 = s1 + ldb, *s3 = s2 + ldb;
                float *d = bp + j;
                for (int k = 0; k < kc; k++, d += nr) d[0] = s0[k], d[1] = s1[k], d[2] = s2[k], d[3] = s3[k];
            }
            for (; j < n; j++) {
                const float *s = B + (size_t)(j0 + jr + j) * ldb + p0;
                for (int k = 0; k < kc; k++) bp[(size_t)k * nr + j] = s[k];
            }
            for (j = n; j < nr; j++)
                for (int k = 0; k < kc; k++) bp[(size_t)k * nr + j] = 0.0f;
            bp += (size_t)kc * nr;
        }
    }
}

/* ---- the blocked product over C rows [m0, m1) x columns [n0, n1) ---- */
static void gemm_block(const tr_gemm_impl *g, bool ta, bool tb, int m0, int m1, int n0, int n1, int K, const float *A,
                       int lda, const float *B, int ldb, float *C, int ldc, bool acc, float *scratch) {
    const int nr = g->nr;
    const ukr_fn ukr = (ukr_fn)g->kernel;
    float *bp = scratch, *apad = bp + (size_t)KC * (NC + NR_MAX), *tmp = apad + (size_t)KC * MR;
    /* op(A)(i, k) = A[i*rsa + k*csa] */
    const size_t rsa = ta ? 1 : (size_t)lda, csa = ta ? (size_t)lda : 1;
    if (K == 0) {
        if (!acc)
            for (int i = m0; i < m1; i++) memset(C + (size_t)i * ldc + n0, 0, (size_t)(n1 - n0) * sizeof(float));
        return;
    }
    const int n_kb = (K + KC - 1) / KC, kb = (K + n_kb - 1) / n_kb; /* equal k blocks: a function of K only */
    for (int jc = n0; jc < n1; jc += NC) {
        const int nc = LC_MIN(NC, n1 - jc);
        for (int pc = 0; pc < K; pc += kb) {
            const int kc = LC_MIN(kb, K - pc);
            const bool add = acc || pc > 0;
            pack_b(bp, B, (size_t)ldb, tb, nr, jc, nc, pc, kc);
            for (int ic = m0; ic < m1; ic += MC) {
                const int mc = LC_MIN(MC, m1 - ic);
                for (int jr = 0; jr < nc; jr += nr) {
                    const int n = LC_MIN(nr, nc - jr);
                    const float *b = bp + (size_t)jr * kc;
                    for (int ir = 0; ir < mc; ir += MR) {
                        const int m = LC_MIN(MR, mc - ir);
                        const float *a = A + (size_t)(ic + ir) * rsa + (size_t)pc * csa;
                        size_t ra = rsa, ca = csa;
                        if (m < MR) { /* a partial group of rows: copied with zero rows below */
                            for (int k = 0; k < kc; k++)
                                for (int i = 0; i < MR; i++) apad[k * MR + i] = i < m ? a[i * rsa + (size_t)k * csa] : 0.0f;
                            a = apad, ra = 1, ca = MR;
                        }
                        float *c = C + (size_t)(ic + ir) * ldc + jc + jr;
                        if (m == MR && n == nr) {
                            ukr(kc, a, ra, ca, b, c, (size_t)ldc, add);
                        } else { /* edge tile: the same kernel through a full-size buffer */
                            if (add)
                                for (int i = 0; i < m; i++) memcpy(tmp + i * nr, c + (size_t)i * ldc, (size_t)n * 4);
                            ukr(kc, a, ra, ca, b, tmp, (size_t)nr, add);
                            for (int i = 0; i < m; i++) memcpy(c + (size_t)i * ldc, tmp + i * nr, (size_t)n * 4);
                        }
                    }
                }
            }
        }
    }
}

/* Blocks of size bs over n split among nth threads: the share of the busiest thread, relative to a perfect split. */
static double imbalance(int n, int bs, int nth) {
    const int nb = (n + bs - 1) / bs;
    const int most = (nb + nth - 1) / nth;
    return (double)most * bs / ((double)n / nth);
}

void tr_gemm(const tr_gemm_impl *g, bool ta, bool tb, int M, int N, int K, const float *A, int lda, const float *B,
             int ldb, float *C, int ldc, bool acc, float *scratch, int ith, int nth) {
    if (M <= 0 || N <= 0) return;
    /* split the dimension of C that divides more evenly into tiles (ties: the larger one) */
    const double im = imbalance(M, MR, nth), in = imbalance(N, g->nr, nth);
    if (nth == 1 || in < im || (in == im && N >= M)) {
        const int nb = (N + g->nr - 1) / g->nr;
        const int b0 = (int)((int64_t)nb * ith / nth), b1 = (int)((int64_t)nb * (ith + 1) / nth);
        const int n0 = b0 * g->nr, n1 = LC_MIN(N, b1 * g->nr);
        if (n0 < n1) gemm_block(g, ta, tb, 0, M, n0, n1, K, A, lda, B, ldb, C, ldc, acc, scratch);
    } else {
        const int mb = (M + MR - 1) / MR;
        const int b0 = (int)((int64_t)mb * ith / nth), b1 = (int)((int64_t)mb * (ith + 1) / nth);
        const int m0 = b0 * MR, m1 = LC_MIN(M, b1 * MR);
        if (m0 < m1) gemm_block(g, ta, tb, m0, m1, 0, N, K, A, lda, B, ldb, C, ldc, acc, scratch);
    }
}
