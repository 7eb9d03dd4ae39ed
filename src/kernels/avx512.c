/* avx512.c - x86-64 kernels for AVX-512 F/BW/VL/DQ (built with those -m flags; dispatch.c calls in only when
** lc__cpu() reports them). VNNI (VPDPBUSD, for Q8_0) and AVX512_BF16 (VDPBF16PS, for BF16) are optional: their
** functions carry target attributes and are installed only when the CPU has them; without them the AVX2 Q8_0
** kernels (already in the table) and the FMA BF16 path run.
** Float types: 16-lane FMA with masked tails, in one canonical summation order shared by vec_dot, GEMV (one row at
** a time) and GEMM (4 rows x 4 tokens phased tiles), so results do not depend on the batch. VDPBF16PS treats bf16
** subnormals as zero and rounds once per pair: within the float bound of kernels.h for normal data, not bit-equal
** to the FMA path (one order too: single accumulator, 32-element steps).
** Q8_0 with VNNI: weights biased to unsigned (w + 128) so VPDPBUSD (u8 x s8) applies; the bias is removed exactly
** (-128 * sum(x)). GEMV: one row at a time, lanes over blocks; GEMM: 16 packed tokens in the lanes, no horizontal
** reductions. Each block's sum is exact, then scaled and added in block order: bit-identical to ref.c.
*/
#include "kernels.h"

#include <immintrin.h>

/* Float results must not depend on the compiler: clang fuses a * b + c into an FMA by default (GCC in -std=c11 mode
** does not), which would change the bits the variants agree on. */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

#define INLINE static inline __attribute__((always_inline))
#define VNNI __attribute__((target("avx512vnni")))
#define BF16 __attribute__((target("avx512bf16")))

/* ---------------------------------------------------------------------------------------------------------------
** float types with FMA
**
** Every dot product, in vec_dot, GEMV and GEMM alike, sums in one canonical order, so a token's outputs do not
** depend on how many tokens share the batch: chunks of KCHUNK elements, each summed with four accumulators over
** 64-element steps, then 16-element steps into accumulator 0, then a masked tail into accumulator 1, reduced as
** (a0 + a1) + (a2 + a3); the chunk sums are added in order. */

enum { KCHUNK = 4096 };

/* 16 elements from p + i (only the lanes set in m when masked), as f32. */
INLINE __m512 load16(const int T, const void *p, int i, __mmask16 m, const bool masked) {
    if (T == LC_TYPE_F32)
        return masked ? _mm512_maskz_loadu_ps(m, (const float *)p + i) : _mm512_loadu_ps((const float *)p + i);
    const uint16_t *q = (const uint16_t *)p + i;
    const __m256i h = masked ? _mm256_maskz_loadu_epi16(m, q) : _mm256_loadu_si256((const __m256i *)q);
    if (T == LC_TYPE_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* Horizontal sums with one fixed tree (the compiler's _mm512_reduce_add_ps may associate differently): halves of
** 16 lanes, of 8, of 4, then the last pair. reduce16 of v equals reduce8 of (low 8 lanes + high 8 lanes) of v. */
INLINE float reduce8(__m256 t) {
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    return _mm_cvtss_f32(_mm_add_ss(q, _mm_movehdup_ps(q)));
}
INLINE float reduce16(__m512 v) {
    return reduce8(_mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1)));
}

/* y[j*ldy + r] (+)= dot(w row r, x row j) over one chunk of n elements, in the canonical order, for an RM x RN
** tile (RM <= 2, RN <= 3: 24 accumulators; used as 1 x 1 by vec_dot and the GEMV). W rows of type T are ws bytes
** apart; x rows of type TX (F32 after widening, or T) xs elements apart. `add`: add to y (a later chunk). */
INLINE void tile_float(const int T, const int TX, const int RM, const int RN, int n, const uint8_t *w, size_t ws,
                       const void *x, size_t xs, float *y, size_t ldy, bool add) {
    const size_t xbytes = TX == LC_TYPE_F32 ? 4 : 2;
    const uint8_t *xb = x;
    __m512 acc[2][3][4];
#pragma GCC unroll 2
    for (int r = 0; r < RM; r++)
#pragma GCC unroll 3
        for (int j = 0; j < RN; j++)
#pragma GCC unroll 4
            for (int u = 0; u < 4; u++) acc[r][j][u] = _mm512_setzero_ps();
    int i = 0;
    for (; i + 64 <= n; i += 64) {
#pragma GCC unroll 4
        for (int u = 0; u < 4; u++) {
            __m512 a[2];
#pragma GCC unroll 2
            for (int r = 0; r < RM; r++) a[r] = load16(T, w + r * ws, i + 16 * u, 0, false);
#pragma GCC unroll 3
            for (int j = 0; j < RN; j++) {
                const __m512 b = load16(TX, xb + j * xs * xbytes, i + 16 * u, 0, false);
#pragma GCC unroll 2
                for (int r = 0; r < RM; r++) acc[r][j][u] = _mm512_fmadd_ps(a[r], b, acc[r][j][u]);
            }
        }
    }
    for (; i + 16 <= n; i += 16) {
        __m512 a[2];
#pragma GCC unroll 2
        for (int r = 0; r < RM; r++) a[r] = load16(T, w + r * ws, i, 0, false);
#pragma GCC unroll 3
        for (int j = 0; j < RN; j++) {
            const __m512 b = load16(TX, xb + j * xs * xbytes, i, 0, false);
#pragma GCC unroll 2
            for (int r = 0; r < RM; r++) acc[r][j][0] = _mm512_fmadd_ps(a[r], b, acc[r][j][0]);
        }
    }
    if (i < n) {
        const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        __m512 a[2];
#pragma GCC unroll 2
        for (int r = 0; r < RM; r++) a[r] = load16(T, w + r * ws, i, m, true);
#pragma GCC unroll 3
        for (int j = 0; j < RN; j++) {
            const __m512 b = load16(TX, xb + j * xs * xbytes, i, m, true);
#pragma GCC unroll 2
            for (int r = 0; r < RM; r++) acc[r][j][1] = _mm512_fmadd_ps(a[r], b, acc[r][j][1]);
        }
    }
#pragma GCC unroll 2
    for (int r = 0; r < RM; r++)
#pragma GCC unroll 3
        for (int j = 0; j < RN; j++) {
            const float s = reduce16(
                _mm512_add_ps(_mm512_add_ps(acc[r][j][0], acc[r][j][1]), _mm512_add_ps(acc[r][j][2], acc[r][j][3])));
            y[j * ldy + r] = add ? y[j * ldy + r] + s : s;
        }
}

/* tile_float(F16, F16, 1, 1) lane for lane, each 16-lane accumulator held as two 8-lane halves: 256-bit VCVTPH2PS
** streams F16 weights faster than the 512-bit one on Zen 4 (~20% more GB/s in the GEMV). The masked tail still
** adds its zero lanes, as the 512-bit code does, so -0 sums come out the same. */
INLINE __m256 cvt8(const lc_fp16 *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
INLINE float dot_row_f16(int n, const lc_fp16 *w, const lc_fp16 *x) {
    __m256 lo[4], hi[4];
    for (int u = 0; u < 4; u++) lo[u] = hi[u] = _mm256_setzero_ps();
    int i = 0;
    for (; i + 64 <= n; i += 64) {
#pragma GCC unroll 4
        for (int u = 0; u < 4; u++) {
            const int p = i + 16 * u;
            lo[u] = _mm256_fmadd_ps(cvt8(w + p), cvt8(x + p), lo[u]);
            hi[u] = _mm256_fmadd_ps(cvt8(w + p + 8), cvt8(x + p + 8), hi[u]);
        }
    }
    for (; i + 16 <= n; i += 16) {
        lo[0] = _mm256_fmadd_ps(cvt8(w + i), cvt8(x + i), lo[0]);
        hi[0] = _mm256_fmadd_ps(cvt8(w + i + 8), cvt8(x + i + 8), hi[0]);
    }
    if (i < n) {
        const int k = n - i; /* 1..15 */
        const __mmask8 ml = (__mmask8)(k >= 8 ? 0xff : (1u << k) - 1), mh = (__mmask8)(k > 8 ? (1u << (k - 8)) - 1 : 0);
        lo[1] = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_maskz_loadu_epi16(ml, w + i)),
                                _mm256_cvtph_ps(_mm_maskz_loadu_epi16(ml, x + i)), lo[1]);
        hi[1] = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_maskz_loadu_epi16(mh, w + i + 8)),
                                _mm256_cvtph_ps(_mm_maskz_loadu_epi16(mh, x + i + 8)), hi[1]);
    }
    const __m256 vl = _mm256_add_ps(_mm256_add_ps(lo[0], lo[1]), _mm256_add_ps(lo[2], lo[3]));
    const __m256 vh = _mm256_add_ps(_mm256_add_ps(hi[0], hi[1]), _mm256_add_ps(hi[2], hi[3]));
    return reduce8(_mm256_add_ps(vl, vh));
}

/* vec_dot, and the GEMV row by row: each row read start to end as one stream, x converted on the fly (exactly) */
INLINE void dot_float(const int T, int n, float *s, const void *w, const void *x) {
    const size_t esz = T == LC_TYPE_F32 ? 4 : 2;
    for (int c0 = 0; c0 < n || c0 == 0; c0 += KCHUNK) {
        const int nc = LC_MIN(KCHUNK, n - c0);
        const uint8_t *wc = (const uint8_t *)w + (size_t)c0 * esz, *xc = (const uint8_t *)x + (size_t)c0 * esz;
        if (T == LC_TYPE_F16) {
            const float sc = dot_row_f16(nc, (const lc_fp16 *)wc, (const lc_fp16 *)xc);
            *s = c0 > 0 ? *s + sc : sc;
        } else {
            tile_float(T, T, 1, 1, nc, wc, 0, xc, 0, s, 0, c0 > 0);
        }
    }
}

/* The same sums for an RM x RN GEMM tile (RM, RN <= 4: 16 accumulators) in four phases: phase u accumulates what
** accumulator u of tile_float does (the u-th 16-element piece of every 64-element step; phase 0 also the 16-element
** steps after them, phase 1 the masked tail), in the same order. Between phases the partial sums wait on the
** stack; the final reduction is tile_float's. Bit-identical to tile_float, with 4x fewer registers per output. */
INLINE void phase_step(const int T, const int RM, const int RN, const uint8_t *w, size_t ws, const float *x,
                       size_t xs, int i, __mmask16 m, const bool masked, __m512 acc[4][4]) {
    __m512 a[4];
#pragma GCC unroll 4
    for (int r = 0; r < RM; r++) a[r] = load16(T, w + r * ws, i, m, masked);
#pragma GCC unroll 4
    for (int j = 0; j < RN; j++) {
        const __m512 b = masked ? _mm512_maskz_loadu_ps(m, x + j * xs + i) : _mm512_loadu_ps(x + j * xs + i);
#pragma GCC unroll 4
        for (int r = 0; r < RM; r++) acc[r][j] = _mm512_fmadd_ps(a[r], b, acc[r][j]);
    }
}

INLINE void tile_phased(const int T, const int RM, const int RN, int n, const uint8_t *w, size_t ws, const float *x,
                        size_t xs, float *y, size_t ldy, bool add) {
    __m512 part[4][4][4]; /* [u][r][j] */
    const int n64 = n / 64 * 64, n16 = n / 16 * 16;
    for (int u = 0; u < 4; u++) {
        __m512 acc[4][4];
#pragma GCC unroll 4
        for (int r = 0; r < RM; r++)
#pragma GCC unroll 4
            for (int j = 0; j < RN; j++) acc[r][j] = _mm512_setzero_ps();
        for (int i = 16 * u; i < n64; i += 64) phase_step(T, RM, RN, w, ws, x, xs, i, 0, false, acc);
        if (u == 0)
            for (int i = n64; i < n16; i += 16) phase_step(T, RM, RN, w, ws, x, xs, i, 0, false, acc);
        if (u == 1 && n16 < n)
            phase_step(T, RM, RN, w, ws, x, xs, n16, (__mmask16)((1u << (n - n16)) - 1), true, acc);
#pragma GCC unroll 4
        for (int r = 0; r < RM; r++)
#pragma GCC unroll 4
            for (int j = 0; j < RN; j++) part[u][r][j] = acc[r][j];
    }
#pragma GCC unroll 4
    for (int r = 0; r < RM; r++)
#pragma GCC unroll 4
        for (int j = 0; j < RN; j++) {
            const float s = reduce16(_mm512_add_ps(_mm512_add_ps(part[0][r][j], part[1][r][j]),
                                                               _mm512_add_ps(part[2][r][j], part[3][r][j])));
            y[j * ldy + r] = add ? y[j * ldy + r] + s : s;
        }
}

static void vec_dot_f32(int n, float *s, const void *w, const void *x) { dot_float(LC_TYPE_F32, n, s, w, x); }
static void vec_dot_f16(int n, float *s, const void *w, const void *x) { dot_float(LC_TYPE_F16, n, s, w, x); }
static void vec_dot_bf16(int n, float *s, const void *w, const void *x) { dot_float(LC_TYPE_BF16, n, s, w, x); }

/* GEMV (nt == 1): vec_dot row after row, each row one DRAM stream from start to end (interleaving rows, or reading
** a row at several places or in several passes, measured up to 2x slower here). GEMM: 4 rows x 4 tokens phased
** tiles over a panel of W that stays in cache; F16/BF16 activations are widened to f32 once per chunk (64 KiB of
** stack), so the tiles convert only W. */
INLINE void gemm_float(const int T, int n, int nr, int nt, const void *vw, size_t ws, const void *vx, size_t xs,
                       float *y, size_t ldy) {
    enum { RN = 4 };
    const size_t esz = T == LC_TYPE_F32 ? 4 : 2;
    const uint8_t *w = vw, *x = vx;
    float xf[RN][KCHUNK] __attribute__((aligned(64)));
    if (nt == 1) {
        for (int r = 0; r < nr; r++) dot_float(T, n, y + r, w + (size_t)r * ws, x);
        return;
    }
    for (int t = 0; t < nt; t += RN) {
        const int rn = LC_MIN(RN, nt - t);
        for (int c0 = 0; c0 < n; c0 += KCHUNK) {
            const int nc = LC_MIN(KCHUNK, n - c0);
            const float *xc = (const float *)(x + (size_t)t * xs) + c0;
            size_t xstride = xs / 4; /* in elements */
            if (T != LC_TYPE_F32) {
                for (int j = 0; j < rn; j++)
                    for (int i = 0; i < nc; i += 16) {
                        const bool tail = i + 16 > nc;
                        const __mmask16 m = tail ? (__mmask16)((1u << (nc - i)) - 1) : (__mmask16)0xffff;
                        const uint8_t *xr = x + (size_t)(t + j) * xs + (size_t)c0 * esz;
                        _mm512_storeu_ps(xf[j] + i, tail ? load16(T, xr, i, m, true) : load16(T, xr, i, m, false));
                    }
                xc = xf[0];
                xstride = KCHUNK;
            }
            const uint8_t *wc = w + (size_t)c0 * esz;
            float *yt = y + (size_t)t * ldy;
            const bool add = c0 > 0;
            int r = 0;
            for (; r + 4 <= nr; r += 4) {
                switch (rn) {
                case 4: tile_phased(T, 4, 4, nc, wc + r * ws, ws, xc, xstride, yt + r, ldy, add); break;
                case 3: tile_phased(T, 4, 3, nc, wc + r * ws, ws, xc, xstride, yt + r, ldy, add); break;
                case 2: tile_phased(T, 4, 2, nc, wc + r * ws, ws, xc, xstride, yt + r, ldy, add); break;
                default: tile_phased(T, 4, 1, nc, wc + r * ws, ws, xc, xstride, yt + r, ldy, add); break;
                }
            }
            for (; r < nr; r++) {
                switch (rn) {
                case 4: tile_phased(T, 1, 4, nc, wc + r * ws, ws, xc, xstride, yt + r, ldy, add); break;
                case 3: tile_phased(T, 1, 3, nc, wc + r * ws, ws, xc, xstride, yt + r, ldy, add); break;
                case 2: tile_phased(T, 1, 2, nc, wc + r * ws, ws, xc, xstride, yt + r, ldy, add); break;
                default: tile_phased(T, 1, 1, nc, wc + r * ws, ws, xc, xstride, yt + r, ldy, add); break;
                }
            }
        }
    }
}

/* y += a * x with a separate multiply and add (the bits of the scalar loop), masked tail */
INLINE void mad_float(const int T, int n, float *y, const void *x, float a) {
    const __m512 va = _mm512_set1_ps(a);
    for (int i = 0; i < n; i += 16) {
        if (i + 16 <= n) {
            _mm512_storeu_ps(y + i,
                             _mm512_add_ps(_mm512_loadu_ps(y + i), _mm512_mul_ps(va, load16(T, x, i, 0, false))));
        } else {
            const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
            const __m512 p = _mm512_mul_ps(va, load16(T, x, i, m, true));
            _mm512_mask_storeu_ps(y + i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, y + i), p));
        }
    }
}
static void vec_mad_f32(int n, float *y, const void *x, float a) { mad_float(LC_TYPE_F32, n, y, x, a); }
static void vec_mad_f16(int n, float *y, const void *x, float a) { mad_float(LC_TYPE_F16, n, y, x, a); }
static void vec_mad_bf16(int n, float *y, const void *x, float a) { mad_float(LC_TYPE_BF16, n, y, x, a); }

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
        for (int j = 0; j < RN; j++) y[j * ldy + r] = reduce16(acc[r][j]);
}

BF16 static void vec_dot_bf16_dp(int n, float *s, const void *w, const void *x) {
    tile_bf16_dp(1, 1, n, w, 0, x, 0, s, 0); /* the GEMV/GEMM order: results independent of the batch */
}

BF16 static void gemm_bf16_dp(int n, int nr, int nt, const void *vw, size_t ws, const void *vx, size_t xs, float *y,
                              size_t ldy) {
    const uint8_t *w = vw, *x = vx;
    if (nt == 1) {
        for (int r = 0; r < nr; r++) tile_bf16_dp(1, 1, n, w + r * ws, ws, x, xs, y + r, ldy); /* one DRAM stream */
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

/* Lane j of the result is the sum of the 8 lanes of v[j]. */
INLINE __m256i hsum_8x8(const __m256i v[8]) {
    const __m256i h01 = _mm256_hadd_epi32(v[0], v[1]), h23 = _mm256_hadd_epi32(v[2], v[3]);
    const __m256i h45 = _mm256_hadd_epi32(v[4], v[5]), h67 = _mm256_hadd_epi32(v[6], v[7]);
    const __m256i q0 = _mm256_hadd_epi32(h01, h23), q1 = _mm256_hadd_epi32(h45, h67);
    return _mm256_add_epi32(_mm256_permute2x128_si256(q0, q1, 0x20), _mm256_permute2x128_si256(q0, q1, 0x31));
}

/* -128 * (partial sums of x), the start value that cancels the +128 bias of the weights in VPDPBUSD. */
VNNI INLINE __m256i neg_bias(__m256i x) {
    return _mm256_sub_epi32(_mm256_setzero_si256(),
                            _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(-128), x));
}

/* GEMM with tokens in lanes. A group of L tokens (L = 16, 8 or 4) is packed per block as xp[g][k*L + j] = bytes
** 4g..4g+3 of token j's quants (g < 8), repeated for k < R = 16/L, so one zmm serves R weight rows at once: lane
** k*L + j receives dword g of row k (VPERMD; VPERMT2D for R = 4) and VPDPBUSD adds four products to it. After 8 of
** them every lane holds its (row, token) exact block sum, without horizontal reductions, and fewer tokens than 16 do
** not leave lanes empty. The weight bytes are biased to unsigned (w + 128); the accumulator starts at
** -128 * sum(x_j) to cancel it. Then (float)sum * (d_w * d_x) is added per block in order: bit-identical to ref.c. */
enum { QTOK = 16, QCHUNK = 64 }; /* lanes; blocks packed at a time (40 KiB of stack) */

typedef struct {
    int32_t q[8][QTOK]; /* [dword g of the block][lane k*L + j]: token j's 4 int8 quants */
    int32_t negc[QTOK]; /* -128 * sum of the token's quants in the block */
    float d[QTOK];      /* the token's block scale */
} packed_q8_0;

/* Packs blocks [b0, b0 + nbc) of tokens x[0..ntj) (rows xs bytes apart), ntj <= L, into lanes k*L + j; other
** lanes are zero. */
VNNI static void pack_q8_0(packed_q8_0 *xp, const uint8_t *x, size_t xs, int L, int ntj, int b0, int nbc) {
    memset(xp, 0, sizeof *xp * (size_t)nbc);
    for (int j = 0; j < ntj; j++) {
        const block_q8_0 *row = (const block_q8_0 *)(x + (size_t)j * xs) + b0;
        for (int b = 0; b < nbc; b++) {
            int32_t q[8];
            memcpy(q, row[b].qs, sizeof q);
            const float d = lc_fp16_lut(row[b].d);
            for (int l = j; l < QTOK; l += L) {
                for (int g = 0; g < 8; g++) xp[b].q[g][l] = q[g];
                xp[b].d[l] = d;
            }
        }
    }
    const __m512i bias = _mm512_set1_epi8(-128); /* 128 as u8 */
    for (int b = 0; b < nbc; b++) {
        __m512i c = _mm512_setzero_si512();
        for (int g = 0; g < 8; g++) c = _mm512_dpbusd_epi32(c, bias, _mm512_load_si512(xp[b].q[g]));
        _mm512_store_si512(xp[b].negc, _mm512_sub_epi32(_mm512_setzero_si512(), c));
    }
}

/* acc[a] lane k*L + j += the products of blocks [0, nbc) of weight row W[a*R + k] (block pointers) with packed
** token j, for RA groups of R = 16/L rows. */
VNNI INLINE void tile_q8_0_lanes(const int L, const int RA, int nbc, const block_q8_0 *const *W,
                                 const packed_q8_0 *xp, __m512 *acc) {
    const int R = QTOK / L, shift = L == 16 ? 4 : L == 8 ? 3 : 2;
    const __m512i bias = _mm512_set1_epi8(-128);
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i krow = _mm512_srli_epi32(lane, (unsigned)shift); /* k = lane / L */
    const __m512i base = _mm512_slli_epi32(krow, 3);                /* dword 0 of row k in the R rows' qs */
    for (int b = 0; b < nbc; b++) {
        __m512i xv[8];
#pragma GCC unroll 8
        for (int g = 0; g < 8; g++) xv[g] = _mm512_load_si512(xp[b].q[g]);
        const __m512i negc = _mm512_load_si512(xp[b].negc);
        const __m512 dx = _mm512_load_ps(xp[b].d);
#pragma GCC unroll 4
        for (int a = 0; a < RA; a++) {
            const block_q8_0 *const *Wa = W + a * R;
            __m512i wlo, whi = _mm512_setzero_si512();
            __m512 dw;
            if (R == 1) {
                wlo = _mm512_castsi256_si512(load_qs(&Wa[0][b]));
                dw = _mm512_set1_ps(lc_fp16_lut(Wa[0][b].d));
            } else {
                wlo = _mm512_inserti64x4(_mm512_castsi256_si512(load_qs(&Wa[0][b])), load_qs(&Wa[1][b]), 1);
                __m128i dh = _mm_cvtsi32_si128((int)(Wa[0][b].d | (uint32_t)Wa[1][b].d << 16));
                if (R == 4) {
                    whi = _mm512_inserti64x4(_mm512_castsi256_si512(load_qs(&Wa[2][b])), load_qs(&Wa[3][b]), 1);
                    whi = _mm512_xor_si512(whi, bias);
                    dh = _mm_insert_epi32(dh, (int)(Wa[2][b].d | (uint32_t)Wa[3][b].d << 16), 1);
                }
                /* the rows' scales (VCVTPH2PS is exact, as the table is) to lanes k*L + j */
                dw = _mm512_permutexvar_ps(krow, _mm512_castps128_ps512(_mm_cvtph_ps(dh)));
            }
            wlo = _mm512_xor_si512(wlo, bias);
            /* two chains of four: integer sums are exact in any order, and shorter chains hide VPDPBUSD latency */
            __m512i p0 = negc, p1 = _mm512_setzero_si512();
#pragma GCC unroll 4
            for (int g = 0; g < 8; g += 2) {
                const __m512i i0 = _mm512_add_epi32(base, _mm512_set1_epi32(g));
                const __m512i i1 = _mm512_add_epi32(base, _mm512_set1_epi32(g + 1));
                __m512i w0, w1;
                if (R == 4) {
                    w0 = _mm512_permutex2var_epi32(wlo, i0, whi);
                    w1 = _mm512_permutex2var_epi32(wlo, i1, whi);
                } else {
                    w0 = _mm512_permutexvar_epi32(i0, wlo);
                    w1 = _mm512_permutexvar_epi32(i1, wlo);
                }
                p0 = _mm512_dpbusd_epi32(p0, w0, xv[g]);
                p1 = _mm512_dpbusd_epi32(p1, w1, xv[g + 1]);
            }
            const __m512i p = _mm512_add_epi32(p0, p1);
            const __m512 d = _mm512_mul_ps(dw, dx);
            acc[a] = _mm512_add_ps(acc[a], _mm512_mul_ps(_mm512_cvtepi32_ps(p), d));
        }
    }
}

/* One row tile: ra (<= 4) groups of 16/L rows against the packed tokens. */
VNNI static void tile_q8_0_group(int L, int ra, int nbc, const block_q8_0 *const *W, const packed_q8_0 *xp,
                                 __m512 *acc) {
    const int R = QTOK / L;
    switch (L) {
    case 16:
        if (ra == 4) return tile_q8_0_lanes(16, 4, nbc, W, xp, acc);
        for (int a = 0; a < ra; a++) tile_q8_0_lanes(16, 1, nbc, W + a * R, xp, acc + a);
        return;
    case 8:
        if (ra == 4) return tile_q8_0_lanes(8, 4, nbc, W, xp, acc);
        for (int a = 0; a < ra; a++) tile_q8_0_lanes(8, 1, nbc, W + a * R, xp, acc + a);
        return;
    default:
        if (ra == 4) return tile_q8_0_lanes(4, 4, nbc, W, xp, acc);
        for (int a = 0; a < ra; a++) tile_q8_0_lanes(4, 1, nbc, W + a * R, xp, acc + a);
        return;
    }
}

/* The lanes of a group of L tokens (L = 4, 8 or 16): lane k*L + j is token j and row k of a group. */
VNNI static void gemm_q8_0_lanes(int n, int nr, int nt, const uint8_t *w, size_t ws, const uint8_t *x, size_t xs,
                                 float *y, size_t ldy) {
    packed_q8_0 xp[QCHUNK] __attribute__((aligned(64)));
    const int nb = n / QK8_0;
    float tmp[QTOK];
    for (int t = 0; t < nt; t += QTOK) {
        const int ntj = LC_MIN(QTOK, nt - t);
        const int L = ntj <= 4 ? 4 : ntj <= 8 ? 8 : 16, R = QTOK / L, rows = 4 * R; /* rows per tile */
        for (int b0 = 0; b0 < nb; b0 += QCHUNK) {
            const int nbc = LC_MIN(QCHUNK, nb - b0);
            pack_q8_0(xp, x + (size_t)t * xs, xs, L, ntj, b0, nbc);
            for (int r = 0; r < nr; r += rows) {
                const int rr = LC_MIN(rows, nr - r), ra = (rr + R - 1) / R;
                const block_q8_0 *W[QTOK];
                __m512 acc[4];
                for (int i = 0; i < rows; i++) W[i] = (const block_q8_0 *)(w + (size_t)LC_MIN(r + i, nr - 1) * ws) + b0;
                for (int a = 0; a < ra; a++) {
                    acc[a] = _mm512_setzero_ps();
                    if (b0 > 0) { /* a later chunk: the running sums continue from y, in block order */
                        for (int l = 0; l < QTOK; l++) {
                            const int j = l % L, i = a * R + l / L;
                            tmp[l] = j < ntj && i < rr ? y[(size_t)(t + j) * ldy + r + i] : 0.0f;
                        }
                        acc[a] = _mm512_loadu_ps(tmp);
                    }
                }
                tile_q8_0_group(L, ra, nbc, W, xp, acc);
                for (int a = 0; a < ra; a++) {
                    _mm512_storeu_ps(tmp, acc[a]);
                    for (int l = 0; l < QTOK; l++) {
                        const int j = l % L, i = a * R + l / L;
                        if (j < ntj && i < rr) y[(size_t)(t + j) * ldy + r + i] = tmp[l];
                    }
                }
            }
        }
    }
}

/* GEMV: one weight row at a time (a single stream per thread keeps DRAM prefetching effective; interleaving rows
** measured up to 2x slower here), lanes over 8 consecutive blocks: each block's exact sum times d_w * d_x, added
** to the row's sum in block order. For blocks [0, nb) of x: xs = 128 * sum(q), the bias to remove, and dx = d. */
VNNI INLINE float gemv_row_q8_0_vnni(float sum, int nb, const block_q8_0 *w, const block_q8_0 *x, const int32_t *xs,
                                     const float *dx) {
    const __m256i bias = _mm256_set1_epi8(-128);
    float prod[8];
    int ib = 0;
    for (; ib + 8 <= nb; ib += 8) {
        __m256i p[8];
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++)
            p[j] = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_xor_si256(load_qs(&w[ib + j]), bias),
                                       load_qs(&x[ib + j]));
        const __m256i si = _mm256_sub_epi32(hsum_8x8(p), _mm256_loadu_si256((const __m256i *)(xs + ib)));
        /* eight 16-bit loads beat VPGATHERDD here (Zen 4) */
        const __m128i dh =
            _mm_setr_epi16((short)w[ib].d, (short)w[ib + 1].d, (short)w[ib + 2].d, (short)w[ib + 3].d,
                           (short)w[ib + 4].d, (short)w[ib + 5].d, (short)w[ib + 6].d, (short)w[ib + 7].d);
        const __m256 d = _mm256_mul_ps(_mm256_cvtph_ps(dh), _mm256_loadu_ps(dx + ib));
        _mm256_storeu_ps(prod, _mm256_mul_ps(_mm256_cvtepi32_ps(si), d));
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) sum += prod[j];
    }
    for (; ib < nb; ib++) {
        const __m256i p =
            _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_xor_si256(load_qs(&w[ib]), bias), load_qs(&x[ib]));
        __m128i q = _mm_add_epi32(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
        q = _mm_add_epi32(q, _mm_shuffle_epi32(q, 0x4e));
        q = _mm_add_epi32(q, _mm_shuffle_epi32(q, 0xb1));
        const float d = lc_fp16_lut(w[ib].d) * dx[ib];
        const float pr = (float)(_mm_cvtsi128_si32(q) - xs[ib]) * d;
        sum += pr;
    }
    return sum;
}

VNNI static void gemv_q8_0_vnni(int n, int nr, const uint8_t *w, size_t ws, const block_q8_0 *x, float *y) {
    enum { CHUNK = 1024 }; /* blocks of x prepared at a time (8 KiB of stack): rows up to 32768 stream in one pass */
    int32_t xs[CHUNK];
    float dx[CHUNK];
    const int nb = n / QK8_0;
    for (int b0 = 0; b0 < nb; b0 += CHUNK) {
        const int nbc = LC_MIN(CHUNK, nb - b0);
        for (int j = 0; j < nbc; j++) {
            int32_t sq = 0;
            for (int k = 0; k < QK8_0; k++) sq += x[b0 + j].qs[k];
            xs[j] = 128 * sq;
            dx[j] = lc_fp16_lut(x[b0 + j].d);
        }
        for (int r = 0; r < nr; r++) /* a row's sum continues from chunk to chunk, in block order */
            y[r] = gemv_row_q8_0_vnni(b0 ? y[r] : 0.0f, nbc, (const block_q8_0 *)(w + (size_t)r * ws) + b0, x + b0, xs,
                                      dx);
    }
}

/* A few tokens (up to QFEW): the GEMV with each weight row read once for all of them. Per row and 8-block step the
** biased weights stay in registers and every token gets gemv_row_q8_0_vnni's exact block sums and in-order adds, so
** each (row, token) is bit-identical to the GEMV. From 3 tokens on, the 4-token lanes (4 rows per zmm) are faster
** (bench_kernels, Zen 4: 3 tokens 170 vs 140 GFLOP/s, 6 tokens 237 vs 120); for 2, this is (155 vs 125). */
enum { QFEW = 2, FCHUNK = 512 }; /* tokens at most; blocks of x prepared at a time (4 KiB per token) */

/* Rows [0, nr) against NT tokens (a constant, so the NT running sums stay in registers and their chains of
** in-order adds overlap). */
VNNI INLINE void few_rows_q8_0(const int NT, int nbc, int nr, int first, const uint8_t *w, size_t ws,
                                const block_q8_0 *const *xb, const int32_t (*xsum)[FCHUNK], const float (*dx)[FCHUNK],
                                float *y, size_t ldy) {
    const __m256i bias = _mm256_set1_epi8(-128);
    for (int r = 0; r < nr; r++) {
        const block_q8_0 *wr = (const block_q8_0 *)(w + (size_t)r * ws);
        float sum[QFEW];
#pragma GCC unroll 8
        for (int j = 0; j < NT; j++) sum[j] = first ? 0.0f : y[(size_t)j * ldy + r];
        int ib = 0;
        for (; ib + 8 <= nbc; ib += 8) {
            __m256i wu[8];
#pragma GCC unroll 8
            for (int k = 0; k < 8; k++) wu[k] = _mm256_xor_si256(load_qs(&wr[ib + k]), bias);
            const __m128i dh = _mm_setr_epi16((short)wr[ib].d, (short)wr[ib + 1].d, (short)wr[ib + 2].d,
                                              (short)wr[ib + 3].d, (short)wr[ib + 4].d, (short)wr[ib + 5].d,
                                              (short)wr[ib + 6].d, (short)wr[ib + 7].d);
            const __m256 dw = _mm256_cvtph_ps(dh);
#pragma GCC unroll 8
            for (int j = 0; j < NT; j++) {
                __m256i p[8];
#pragma GCC unroll 8
                for (int k = 0; k < 8; k++) p[k] = _mm256_dpbusd_epi32(_mm256_setzero_si256(), wu[k], load_qs(&xb[j][ib + k]));
                const __m256i si = _mm256_sub_epi32(hsum_8x8(p), _mm256_loadu_si256((const __m256i *)(xsum[j] + ib)));
                const __m256 pr = _mm256_mul_ps(_mm256_cvtepi32_ps(si), _mm256_mul_ps(dw, _mm256_loadu_ps(dx[j] + ib)));
                const __m128 lo = _mm256_castps256_ps128(pr), hi = _mm256_extractf128_ps(pr, 1);
                float sj = sum[j];
                sj += _mm_cvtss_f32(lo);
                sj += _mm_cvtss_f32(_mm_movehdup_ps(lo));
                sj += _mm_cvtss_f32(_mm_unpackhi_ps(lo, lo));
                sj += _mm_cvtss_f32(_mm_shuffle_ps(lo, lo, 3));
                sj += _mm_cvtss_f32(hi);
                sj += _mm_cvtss_f32(_mm_movehdup_ps(hi));
                sj += _mm_cvtss_f32(_mm_unpackhi_ps(hi, hi));
                sj += _mm_cvtss_f32(_mm_shuffle_ps(hi, hi, 3));
                sum[j] = sj;
            }
        }
        for (; ib < nbc; ib++) {
            const __m256i wu = _mm256_xor_si256(load_qs(&wr[ib]), bias);
#pragma GCC unroll 8
            for (int j = 0; j < NT; j++) {
                const __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), wu, load_qs(&xb[j][ib]));
                __m128i q = _mm_add_epi32(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
                q = _mm_add_epi32(q, _mm_shuffle_epi32(q, 0x4e));
                q = _mm_add_epi32(q, _mm_shuffle_epi32(q, 0xb1));
                const float d = lc_fp16_lut(wr[ib].d) * dx[j][ib];
                const float pr = (float)(_mm_cvtsi128_si32(q) - xsum[j][ib]) * d;
                sum[j] += pr;
            }
        }
#pragma GCC unroll 8
        for (int j = 0; j < NT; j++) y[(size_t)j * ldy + r] = sum[j];
    }
}

VNNI static void gemm_q8_0_few(int n, int nr, int nt, const uint8_t *w, size_t ws, const uint8_t *x, size_t xs,
                               float *y, size_t ldy) {
    int32_t xsum[QFEW][FCHUNK];
    float dx[QFEW][FCHUNK];
    const block_q8_0 *xb[QFEW];
    const int nb = n / QK8_0;
    for (int b0 = 0; b0 < nb; b0 += FCHUNK) {
        const int nbc = LC_MIN(FCHUNK, nb - b0);
        for (int j = 0; j < nt; j++) {
            xb[j] = (const block_q8_0 *)(x + (size_t)j * xs) + b0;
            for (int b = 0; b < nbc; b++) {
                int32_t sq = 0;
                for (int k = 0; k < QK8_0; k++) sq += xb[j][b].qs[k];
                xsum[j][b] = 128 * sq;
                dx[j][b] = lc_fp16_lut(xb[j][b].d);
            }
        }
        const uint8_t *wc = w + (size_t)b0 * sizeof(block_q8_0);
        const int32_t(*xsc)[FCHUNK] = (const int32_t(*)[FCHUNK])xsum;
        const float(*dxc)[FCHUNK] = (const float(*)[FCHUNK])dx;
        switch (nt) {
        case 1: few_rows_q8_0(1, nbc, nr, b0 == 0, wc, ws, xb, xsc, dxc, y, ldy); break;
        default: few_rows_q8_0(QFEW, nbc, nr, b0 == 0, wc, ws, xb, xsc, dxc, y, ldy); break; /* nt == QFEW */
        }
    }
}

VNNI static void gemm_q8_0_vnni(int n, int nr, int nt, const void *vw, size_t ws, const void *vx, size_t xs, float *y,
                                size_t ldy) {
    if (nt == 1) return gemv_q8_0_vnni(n, nr, vw, ws, (const block_q8_0 *)vx, y);
    /* groups of up to 16 tokens in lanes (4, 8 or 16 tokens per group); a last 1 or 2 tokens row by row */
    const int nfull = nt % QTOK && nt % QTOK <= QFEW ? nt / QTOK * QTOK : nt;
    if (nfull) gemm_q8_0_lanes(n, nr, nfull, vw, ws, vx, xs, y, ldy);
    if (nfull < nt)
        gemm_q8_0_few(n, nr, nt - nfull, (const uint8_t *)vw, ws, (const uint8_t *)vx + (size_t)nfull * xs, xs,
                      y + (size_t)nfull * ldy, ldy);
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
    k->vec_mad[LC_TYPE_F32] = vec_mad_f32;
    k->vec_mad[LC_TYPE_F16] = vec_mad_f16;
    k->vec_mad[LC_TYPE_BF16] = vec_mad_bf16;
    k->gemm[LC_TYPE_F32] = gemm_f32;
    k->gemm[LC_TYPE_F16] = gemm_f16;
    k->gemm[LC_TYPE_BF16] = gemm_bf16;
    k->gemm_r8[LC_TYPE_F16] = NULL; /* its float tiles read rows, in 16 lanes: F16 and BF16 stay as stored */
    k->gemm_r8[LC_TYPE_BF16] = NULL;
    k->from_float[LC_TYPE_F16] = from_float_f16;
    if (cpu->avx512bf16) {
        k->vec_dot[LC_TYPE_BF16] = vec_dot_bf16_dp;
        k->gemm[LC_TYPE_BF16] = gemm_bf16_dp;
    }
    if (cpu->avx512vnni) {
        k->vec_dot[LC_TYPE_Q8_0] = vec_dot_q8_0_vnni;
        k->gemm[LC_TYPE_Q8_0] = gemm_q8_0_vnni;
        k->gemm_r8[LC_TYPE_Q8_0] = NULL; /* it reads rows: Q8_0 stays as stored */
    }
    lc__kernels_fill_avx512_quants(k, cpu);
}
