/* avx512.c - x86-64 kernels for AVX-512 F/BW/VL/DQ (built with those -m flags; dispatch.c calls in only when
** lc__cpu() reports them). VNNI (VPDPBUSD, for Q8_0) and AVX512_BF16 (VDPBF16PS, for BF16) are optional: their
** functions carry target attributes and are installed only when the CPU has them; without them the AVX2 Q8_0
** kernels (already in the table) and an FMA BF16 path run.
** Float types: 16-lane FMA with masked tails; GEMM tiles of 4 weight rows x 4 tokens (16 zmm accumulators), GEMV
** over 8 rows at a time. VDPBF16PS flushes bf16 subnormals to zero and rounds once per pair: results stay within
** the float bound of kernels.h for normal data, but are not bit-equal to the FMA path.
** Q8_0 with VNNI: weights biased to unsigned (w + 128) so one VPDPBUSD per block pair suffices; the bias is removed
** exactly by starting the accumulator at -128 * sum(x) (a VPDPBUSD of x with 128s). Per-block sums are reduced
** exactly, then scaled and added in block order: bit-identical to ref.c.
*/
#include "kernels.h"

#include <immintrin.h>

#define INLINE static inline __attribute__((always_inline))
#define VNNI __attribute__((target("avx512vnni")))
#define BF16 __attribute__((target("avx512bf16")))
#ifndef PREFETCH_BLOCKS
#define PREFETCH_BLOCKS 16
#endif

/* ---------------------------------------------------------------------------------------------------------------
** float types with FMA */

/* 16 elements from p + i (the first `m` bits of the mask when masked), as f32. */
INLINE __m512 load16(const int T, const void *p, int i, __mmask16 m, const bool masked) {
    if (T == LC_TYPE_F32)
        return masked ? _mm512_maskz_loadu_ps(m, (const float *)p + i) : _mm512_loadu_ps((const float *)p + i);
    const uint16_t *q = (const uint16_t *)p + i;
    const __m256i h = masked ? _mm256_maskz_loadu_epi16(m, q) : _mm256_loadu_si256((const __m256i *)q);
    if (T == LC_TYPE_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

INLINE float dot_float(const int T, int n, const void *w, const void *x) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
    int i = 0;
    for (; i + 64 <= n; i += 64) {
        a0 = _mm512_fmadd_ps(load16(T, w, i, 0, false), load16(T, x, i, 0, false), a0);
        a1 = _mm512_fmadd_ps(load16(T, w, i + 16, 0, false), load16(T, x, i + 16, 0, false), a1);
        a2 = _mm512_fmadd_ps(load16(T, w, i + 32, 0, false), load16(T, x, i + 32, 0, false), a2);
        a3 = _mm512_fmadd_ps(load16(T, w, i + 48, 0, false), load16(T, x, i + 48, 0, false), a3);
    }
    for (; i + 16 <= n; i += 16) a0 = _mm512_fmadd_ps(load16(T, w, i, 0, false), load16(T, x, i, 0, false), a0);
    if (i < n) {
        const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        a1 = _mm512_fmadd_ps(load16(T, w, i, m, true), load16(T, x, i, m, true), a1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

static void vec_dot_f32(int n, float *s, const void *w, const void *x) { *s = dot_float(LC_TYPE_F32, n, w, x); }
static void vec_dot_f16(int n, float *s, const void *w, const void *x) { *s = dot_float(LC_TYPE_F16, n, w, x); }
static void vec_dot_bf16(int n, float *s, const void *w, const void *x) { *s = dot_float(LC_TYPE_BF16, n, w, x); }

/* y[j*ldy + r] = dot(w row r, x row j) for an RM x RN tile (RM <= 8, RN <= 4; RM*RN + RN + 1 <= 32 zmm). */
INLINE void tile_float(const int T, const int RM, const int RN, int n, const uint8_t *w, size_t ws, const uint8_t *x,
                       size_t xs, float *y, size_t ldy) {
    __m512 acc[8][4];
#pragma GCC unroll 8
    for (int r = 0; r < RM; r++)
#pragma GCC unroll 4
        for (int j = 0; j < RN; j++) acc[r][j] = _mm512_setzero_ps();
    int i = 0;
    for (;; i += 16) {
        const bool tail = i + 16 > n;
        if (tail && i >= n) break;
        const __mmask16 m = tail ? (__mmask16)((1u << (n - i)) - 1) : (__mmask16)0xffff;
        __m512 b[4];
#pragma GCC unroll 4
        for (int j = 0; j < RN; j++) b[j] = tail ? load16(T, x + j * xs, i, m, true) : load16(T, x + j * xs, i, m, false);
#pragma GCC unroll 8
        for (int r = 0; r < RM; r++) {
            const __m512 a = tail ? load16(T, w + r * ws, i, m, true) : load16(T, w + r * ws, i, m, false);
#pragma GCC unroll 4
            for (int j = 0; j < RN; j++) acc[r][j] = _mm512_fmadd_ps(a, b[j], acc[r][j]);
        }
        if (tail) break;
    }
#pragma GCC unroll 8
    for (int r = 0; r < RM; r++)
#pragma GCC unroll 4
        for (int j = 0; j < RN; j++) y[j * ldy + r] = _mm512_reduce_add_ps(acc[r][j]);
}

INLINE void gemm_float(const int T, int n, int nr, int nt, const void *vw, size_t ws, const void *vx, size_t xs,
                       float *y, size_t ldy) {
    const uint8_t *w = vw, *x = vx;
    if (nt == 1) {
        int r = 0;
        for (; r + 8 <= nr; r += 8) tile_float(T, 8, 1, n, w + r * ws, ws, x, xs, y + r, ldy);
        for (; r < nr; r++) tile_float(T, 1, 1, n, w + r * ws, ws, x, xs, y + r, ldy);
        return;
    }
    for (int t = 0; t < nt; t += 4) {
        const int rn = LC_MIN(4, nt - t);
        const uint8_t *xt = x + (size_t)t * xs;
        float *yt = y + (size_t)t * ldy;
        int r = 0;
        for (; r + 4 <= nr; r += 4) {
            switch (rn) {
            case 4: tile_float(T, 4, 4, n, w + r * ws, ws, xt, xs, yt + r, ldy); break;
            case 3: tile_float(T, 4, 3, n, w + r * ws, ws, xt, xs, yt + r, ldy); break;
            case 2: tile_float(T, 4, 2, n, w + r * ws, ws, xt, xs, yt + r, ldy); break;
            default: tile_float(T, 4, 1, n, w + r * ws, ws, xt, xs, yt + r, ldy); break;
            }
        }
        for (; r < nr; r++) {
            switch (rn) {
            case 4: tile_float(T, 1, 4, n, w + r * ws, ws, xt, xs, yt + r, ldy); break;
            case 3: tile_float(T, 1, 3, n, w + r * ws, ws, xt, xs, yt + r, ldy); break;
            case 2: tile_float(T, 1, 2, n, w + r * ws, ws, xt, xs, yt + r, ldy); break;
            default: tile_float(T, 1, 1, n, w + r * ws, ws, xt, xs, yt + r, ldy); break;
            }
        }
    }
}

static void gemm_f32(int n, int nr, int nt, const void *w, size_t ws, const void *x, size_t xs, float *y, size_t ldy) {
    gemm_float(LC_TYPE_F32, n, nr, nt, w, ws, x, xs, y, ldy);
}
static void gemm_f16(int n, int nr, int nt, const void *w, size_t ws, const void *x, size_t xs, float *y, size_t ldy) {
    gemm_float(LC_TYPE_F16, n, nr, nt, w, ws, x, xs, y, ldy);
}
static void gemm_bf16(int n, int nr, int nt, const void *w, size_t ws, const void *x, size_t xs, float *y,
                      size_t ldy) {
    gemm_float(LC_TYPE_BF16, n, nr, nt, w, ws, x, xs, y, ldy);
}

/* ---------------------------------------------------------------------------------------------------------------
** BF16 with VDPBF16PS: 32 elements (16 pairs) per instruction, f32 accumulators */

BF16 INLINE __m512bh load32bh(const void *p, int i, __mmask32 m, const bool masked) {
    const uint16_t *q = (const uint16_t *)p + i;
    return (__m512bh)(masked ? _mm512_maskz_loadu_epi16(m, q) : _mm512_loadu_si512(q));
}

BF16 static void vec_dot_bf16_dp(int n, float *s, const void *w, const void *x) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int i = 0;
    for (; i + 64 <= n; i += 64) {
        a0 = _mm512_dpbf16_ps(a0, load32bh(w, i, 0, false), load32bh(x, i, 0, false));
        a1 = _mm512_dpbf16_ps(a1, load32bh(w, i + 32, 0, false), load32bh(x, i + 32, 0, false));
    }
    for (; i < n; i += 32) {
        const __mmask32 m = n - i >= 32 ? (__mmask32)0xffffffffu : (__mmask32)((1u << (n - i)) - 1);
        a0 = _mm512_dpbf16_ps(a0, load32bh(w, i, m, true), load32bh(x, i, m, true));
    }
    *s = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

BF16 INLINE void tile_bf16_dp(const int RM, const int RN, int n, const uint8_t *w, size_t ws, const uint8_t *x,
                              size_t xs, float *y, size_t ldy) {
    __m512 acc[8][4];
#pragma GCC unroll 8
    for (int r = 0; r < RM; r++)
#pragma GCC unroll 4
        for (int j = 0; j < RN; j++) acc[r][j] = _mm512_setzero_ps();
    for (int i = 0; i < n; i += 32) {
        const bool tail = i + 32 > n;
        const __mmask32 m = tail ? (__mmask32)((1u << (n - i)) - 1) : (__mmask32)0xffffffffu;
        __m512bh b[4];
#pragma GCC unroll 4
        for (int j = 0; j < RN; j++) b[j] = tail ? load32bh(x + j * xs, i, m, true) : load32bh(x + j * xs, i, m, false);
#pragma GCC unroll 8
        for (int r = 0; r < RM; r++) {
            const __m512bh a = tail ? load32bh(w + r * ws, i, m, true) : load32bh(w + r * ws, i, m, false);
#pragma GCC unroll 4
            for (int j = 0; j < RN; j++) acc[r][j] = _mm512_dpbf16_ps(acc[r][j], a, b[j]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < RM; r++)
#pragma GCC unroll 4
        for (int j = 0; j < RN; j++) y[j * ldy + r] = _mm512_reduce_add_ps(acc[r][j]);
}

BF16 static void gemm_bf16_dp(int n, int nr, int nt, const void *vw, size_t ws, const void *vx, size_t xs, float *y,
                              size_t ldy) {
    const uint8_t *w = vw, *x = vx;
    if (nt == 1) {
        int r = 0;
        for (; r + 8 <= nr; r += 8) tile_bf16_dp(8, 1, n, w + r * ws, ws, x, xs, y + r, ldy);
        for (; r < nr; r++) tile_bf16_dp(1, 1, n, w + r * ws, ws, x, xs, y + r, ldy);
        return;
    }
    for (int t = 0; t < nt; t += 4) {
        const int rn = LC_MIN(4, nt - t);
        const uint8_t *xt = x + (size_t)t * xs;
        float *yt = y + (size_t)t * ldy;
        int r = 0;
        for (; r + 4 <= nr; r += 4) {
            switch (rn) {
            case 4: tile_bf16_dp(4, 4, n, w + r * ws, ws, xt, xs, yt + r, ldy); break;
            case 3: tile_bf16_dp(4, 3, n, w + r * ws, ws, xt, xs, yt + r, ldy); break;
            case 2: tile_bf16_dp(4, 2, n, w + r * ws, ws, xt, xs, yt + r, ldy); break;
            default: tile_bf16_dp(4, 1, n, w + r * ws, ws, xt, xs, yt + r, ldy); break;
            }
        }
        for (; r < nr; r++) {
            switch (rn) {
            case 4: tile_bf16_dp(1, 4, n, w + r * ws, ws, xt, xs, yt + r, ldy); break;
            case 3: tile_bf16_dp(1, 3, n, w + r * ws, ws, xt, xs, yt + r, ldy); break;
            case 2: tile_bf16_dp(1, 2, n, w + r * ws, ws, xt, xs, yt + r, ldy); break;
            default: tile_bf16_dp(1, 1, n, w + r * ws, ws, xt, xs, yt + r, ldy); break;
            }
        }
    }
}

/* ---------------------------------------------------------------------------------------------------------------
** Q8_0 with VNNI */

INLINE __m256i load_qs(const block_q8_0 *b) { return _mm256_loadu_si256((const __m256i *)b->qs); }

INLINE __m256 load_d8(const block_q8_0 *const B[8], int ib) {
    return _mm256_cvtph_ps(_mm_setr_epi16((short)B[0][ib].d, (short)B[1][ib].d, (short)B[2][ib].d,
                                          (short)B[3][ib].d, (short)B[4][ib].d, (short)B[5][ib].d,
                                          (short)B[6][ib].d, (short)B[7][ib].d));
}

/* Lane j of the result is the sum of the 8 lanes of v[j]. */
INLINE __m256i hsum_8x8(const __m256i v[8]) {
    const __m256i h01 = _mm256_hadd_epi32(v[0], v[1]), h23 = _mm256_hadd_epi32(v[2], v[3]);
    const __m256i h45 = _mm256_hadd_epi32(v[4], v[5]), h67 = _mm256_hadd_epi32(v[6], v[7]);
    const __m256i q0 = _mm256_hadd_epi32(h01, h23), q1 = _mm256_hadd_epi32(h45, h67);
    return _mm256_add_epi32(_mm256_permute2x128_si256(q0, q1, 0x20), _mm256_permute2x128_si256(q0, q1, 0x31));
}

/* -128 * (partial sums of x), the start value that cancels the +128 bias of the weights in VPDPBUSD. */
VNNI INLINE __m256i neg_bias(__m256i x) {
    return _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(-128), x));
}

/* acc[a] lane j = dot(A[a], B[j]) for a < RA, j < 8 (ref.c's rounding). Weights are A when a_is_w, else B. */
VNNI INLINE void tile_q8_0_vnni(const int RA, const bool a_is_w, int nb, const block_q8_0 *const *A,
                                const block_q8_0 *const B[8], __m256 *acc) {
    const __m256i bias = _mm256_set1_epi8(-128);
#pragma GCC unroll 4
    for (int a = 0; a < RA; a++) acc[a] = _mm256_setzero_ps();
    for (int ib = 0; ib < nb; ib++) {
        const __m256 dB = load_d8(B, ib);
        __m256i p[8];
        if (a_is_w) { /* GEMM: B are 8 tokens, kept in registers with their bias corrections across RA rows */
            __m256i xq[8], c[8];
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++) {
                xq[j] = load_qs(&B[j][ib]);
                c[j] = neg_bias(xq[j]);
            }
#pragma GCC unroll 4
            for (int a = 0; a < RA; a++) {
                const __m256i wu = _mm256_xor_si256(load_qs(&A[a][ib]), bias);
#pragma GCC unroll 8
                for (int j = 0; j < 8; j++) p[j] = _mm256_dpbusd_epi32(c[j], wu, xq[j]);
                const __m256 s = _mm256_cvtepi32_ps(hsum_8x8(p));
                const __m256 d = _mm256_mul_ps(_mm256_set1_ps(lc_fp16_lut(A[a][ib].d)), dB);
                acc[a] = _mm256_add_ps(acc[a], _mm256_mul_ps(s, d));
            }
        } else { /* GEMV: A is the one activation row, B are 8 weight rows */
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++) _mm_prefetch((const char *)&B[j][ib + PREFETCH_BLOCKS], _MM_HINT_T0);
            const __m256i xq = load_qs(&A[0][ib]), c = neg_bias(xq);
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++) p[j] = _mm256_dpbusd_epi32(c, _mm256_xor_si256(load_qs(&B[j][ib]), bias), xq);
            const __m256 s = _mm256_cvtepi32_ps(hsum_8x8(p));
            const __m256 d = _mm256_mul_ps(_mm256_set1_ps(lc_fp16_lut(A[0][ib].d)), dB);
            acc[0] = _mm256_add_ps(acc[0], _mm256_mul_ps(s, d));
        }
    }
}

VNNI static void vec_dot_q8_0_vnni(int n, float *s, const void *vw, const void *vx);
VNNI static void gemm_q8_0_vnni(int n, int nr, int nt, const void *vw, size_t ws, const void *vx, size_t xs, float *y,
                                size_t ldy) {
    const uint8_t *w = vw, *x = vx;
    const int nb = n / QK8_0;
    float tmp[8];
#ifdef EXP_ROWWISE
    if (nt == 1) {
        for (int r = 0; r < nr; r++) vec_dot_q8_0_vnni(n, y + r, w + (size_t)r * ws, x);
        return;
    }
#endif
    if (nt == 1) {
        const block_q8_0 *A[1] = {(const block_q8_0 *)x};
        for (int r = 0; r < nr; r += 8) {
            const block_q8_0 *B[8];
            for (int j = 0; j < 8; j++) B[j] = (const block_q8_0 *)(w + (size_t)LC_MIN(r + j, nr - 1) * ws);
            __m256 acc;
            tile_q8_0_vnni(1, false, nb, A, B, &acc);
            if (r + 8 <= nr) {
                _mm256_storeu_ps(y + r, acc);
            } else {
                _mm256_storeu_ps(tmp, acc);
                for (int j = 0; j < nr - r; j++) y[r + j] = tmp[j];
            }
        }
        return;
    }
    for (int t = 0; t < nt; t += 8) {
        const block_q8_0 *B[8];
        for (int j = 0; j < 8; j++) B[j] = (const block_q8_0 *)(x + (size_t)LC_MIN(t + j, nt - 1) * xs);
        const int ntj = LC_MIN(8, nt - t);
        for (int r = 0; r < nr; r += 4) {
            const block_q8_0 *A[4];
            for (int a = 0; a < 4; a++) A[a] = (const block_q8_0 *)(w + (size_t)LC_MIN(r + a, nr - 1) * ws);
            __m256 acc[4];
            tile_q8_0_vnni(4, true, nb, A, B, acc);
            for (int a = 0; a < LC_MIN(4, nr - r); a++) {
                _mm256_storeu_ps(tmp, acc[a]);
                for (int j = 0; j < ntj; j++) y[(size_t)(t + j) * ldy + r + a] = tmp[j];
            }
        }
    }
}

VNNI static void vec_dot_q8_0_vnni(int n, float *s, const void *vw, const void *vx) {
    const block_q8_0 *w = vw, *x = vx;
    const __m256i bias = _mm256_set1_epi8(-128);
    float sum = 0.0f;
    for (int ib = 0; ib < n / QK8_0; ib++) {
        const __m256i xq = load_qs(&x[ib]);
        const __m256i p = _mm256_dpbusd_epi32(neg_bias(xq), _mm256_xor_si256(load_qs(&w[ib]), bias), xq);
        __m128i q = _mm_add_epi32(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
        q = _mm_add_epi32(q, _mm_shuffle_epi32(q, 0x4e));
        q = _mm_add_epi32(q, _mm_shuffle_epi32(q, 0xb1));
        const float d = lc_fp16_lut(w[ib].d) * lc_fp16_lut(x[ib].d);
        const float prod = (float)_mm_cvtsi128_si32(q) * d;
        sum += prod;
    }
    *s = sum;
}

/* ---------------------------------------------------------------------------------------------------------------
** from_float: fp16 with the 16-lane conversion (the AVX2 table entries serve BF16 and Q8_0) */

static void from_float_f16(const float *x, void *vy, int64_t n) {
    lc_fp16 *y = vy;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(y + i), _mm512_cvtps_ph(_mm512_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) y[i] = lc_fp32_to_fp16(x[i]);
}

void lc__kernels_fill_avx512(lc_kernels *k, const lc_cpu_features *cpu) {
    k->vec_dot[LC_TYPE_F32] = vec_dot_f32;
    k->vec_dot[LC_TYPE_F16] = vec_dot_f16;
    k->vec_dot[LC_TYPE_BF16] = vec_dot_bf16;
    k->gemm[LC_TYPE_F32] = gemm_f32;
    k->gemm[LC_TYPE_F16] = gemm_f16;
    k->gemm[LC_TYPE_BF16] = gemm_bf16;
    k->from_float[LC_TYPE_F16] = from_float_f16;
    if (cpu->avx512bf16) {
        k->vec_dot[LC_TYPE_BF16] = vec_dot_bf16_dp;
        k->gemm[LC_TYPE_BF16] = gemm_bf16_dp;
    }
    if (cpu->avx512vnni) {
        k->vec_dot[LC_TYPE_Q8_0] = vec_dot_q8_0_vnni;
        k->gemm[LC_TYPE_Q8_0] = gemm_q8_0_vnni;
    }
}
