/* neon.c - aarch64 kernels: Advanced SIMD with FEAT_FP16 and FEAT_DotProd (built with
** -march=armv8.2-a+fp16+dotprod; dispatch.c calls in only when getauxval reports asimdhp, fphp and asimddp).
** Float types: 4-lane f32 FMA (fp16 widened with FCVTL, so products are summed in f32 as on x86, not in fp16 as
** llama.cpp's NEON path does) in one canonical order shared by vec_dot, GEMV (one row at a time) and GEMM (4 rows x
** 4 tokens tiles), so results do not depend on the batch.
** Q8_0: SDOT (signed x signed, no bias trick), each block's integer sum reduced exactly, scaled by d_w * d_x and
** added in block order: bit-identical to ref.c (kernels.h states the contract).
*/
#include "kernels.h"

#include <arm_neon.h>

/* Float results must not depend on the compiler: clang fuses a * b + c into an FMA by default (GCC in -std=c11 mode
** does not), which would change the bits the variants agree on. */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

#define INLINE static inline __attribute__((always_inline))

/* ---------------------------------------------------------------------------------------------------------------
** float types */

INLINE float32x4_t load4(const int T, const void *p, int i) {
    if (T == LC_TYPE_F32) return vld1q_f32((const float *)p + i);
    const uint16x4_t h = vld1_u16((const uint16_t *)p + i);
    if (T == LC_TYPE_F16) return vcvt_f32_f16(vreinterpret_f16_u16(h));
    return vreinterpretq_f32_u32(vshll_n_u16(h, 16)); /* bf16: the high half of f32 */
}

INLINE float elem(const int T, const void *p, int i) {
    if (T == LC_TYPE_F32) return ((const float *)p)[i];
    if (T == LC_TYPE_F16) return lc_fp16_lut(((const lc_fp16 *)p)[i]);
    return lc_bf16_to_fp32(((const lc_bf16 *)p)[i]);
}

/* Every dot product, in vec_dot, GEMV and GEMM alike, sums in one canonical order, so a token's outputs do not
** depend on how many tokens share the batch: chunks of KCHUNK elements, each summed with four accumulators over
** 16-element steps, then 4-element steps into accumulator 0, reduced as (a0 + a1) + (a2 + a3), then the tail
** elements added one by one; the chunk sums are added in order. */
enum { KCHUNK = 4096 };

/* y[j*ldy + r] (+)= dot(w row r, x row j) over one chunk of n elements, r < RM <= 2, j < RN <= 3 (24 accumulators
** of 32 registers). W rows of type T are ws bytes apart; x rows of type TX (F32 after widening, or T) xs elements
** apart. `add`: add to y (a later chunk) instead of storing. */
INLINE void tile_float(const int T, const int TX, const int RM, const int RN, int n, const uint8_t *w, size_t ws,
                       const void *x, size_t xs, float *y, size_t ldy, bool add) {
    const size_t xbytes = TX == LC_TYPE_F32 ? 4 : 2;
    const uint8_t *xb = x;
    float32x4_t acc[2][3][4];
#pragma GCC unroll 2
    for (int r = 0; r < RM; r++)
#pragma GCC unroll 3
        for (int j = 0; j < RN; j++)
#pragma GCC unroll 4
            for (int u = 0; u < 4; u++) acc[r][j][u] = vdupq_n_f32(0);
    int i = 0;
    for (; i + 16 <= n; i += 16) {
#pragma GCC unroll 4
        for (int u = 0; u < 4; u++) {
            float32x4_t a[2];
#pragma GCC unroll 2
            for (int r = 0; r < RM; r++) a[r] = load4(T, w + r * ws, i + 4 * u);
#pragma GCC unroll 3
            for (int j = 0; j < RN; j++) {
                const float32x4_t b = load4(TX, xb + j * xs * xbytes, i + 4 * u);
#pragma GCC unroll 2
                for (int r = 0; r < RM; r++) acc[r][j][u] = vfmaq_f32(acc[r][j][u], a[r], b);
            }
        }
    }
    for (; i + 4 <= n; i += 4) {
        float32x4_t a[2];
#pragma GCC unroll 2
        for (int r = 0; r < RM; r++) a[r] = load4(T, w + r * ws, i);
#pragma GCC unroll 3
        for (int j = 0; j < RN; j++) {
            const float32x4_t b = load4(TX, xb + j * xs * xbytes, i);
#pragma GCC unroll 2
            for (int r = 0; r < RM; r++) acc[r][j][0] = vfmaq_f32(acc[r][j][0], a[r], b);
        }
    }
#pragma GCC unroll 2
    for (int r = 0; r < RM; r++)
#pragma GCC unroll 3
        for (int j = 0; j < RN; j++) {
            const float32x4_t *a = acc[r][j];
            float s = vaddvq_f32(vaddq_f32(vaddq_f32(a[0], a[1]), vaddq_f32(a[2], a[3])));
            for (int k = i; k < n; k++) s += elem(T, w + r * ws, k) * elem(TX, xb + j * xs * xbytes, k);
            y[j * ldy + r] = add ? y[j * ldy + r] + s : s;
        }
}

INLINE void dot_float(const int T, int n, float *s, const void *w, const void *x) {
    const size_t esz = T == LC_TYPE_F32 ? 4 : 2;
    for (int c0 = 0; c0 < n || c0 == 0; c0 += KCHUNK)
        tile_float(T, T, 1, 1, LC_MIN(KCHUNK, n - c0), (const uint8_t *)w + (size_t)c0 * esz, 0,
                   (const uint8_t *)x + (size_t)c0 * esz, 0, s, 0, c0 > 0);
}

/* The same sums for an RM x RN GEMM tile (RM, RN <= 4: 16 accumulators) in four phases: phase u accumulates what
** accumulator u of tile_float does (the u-th 4-element piece of every 16-element step; phase 0 also the 4-element
** steps after them), in the same order; partial sums wait on the stack between phases; then tile_float's reduction
** and tail. Bit-identical to tile_float with 4x fewer registers per output. x: f32 rows, xs elements apart. */
INLINE void phase_step(const int T, const int RM, const int RN, const uint8_t *w, size_t ws, const float *x,
                       size_t xs, int i, float32x4_t acc[4][4]) {
    float32x4_t b[4];
#pragma GCC unroll 4
    for (int j = 0; j < RN; j++) b[j] = vld1q_f32(x + j * xs + i);
#pragma GCC unroll 4
    for (int r = 0; r < RM; r++) {
        const float32x4_t a = load4(T, w + r * ws, i);
#pragma GCC unroll 4
        for (int j = 0; j < RN; j++) acc[r][j] = vfmaq_f32(acc[r][j], a, b[j]);
    }
}

INLINE void tile_phased(const int T, const int RM, const int RN, int n, const uint8_t *w, size_t ws, const float *x,
                        size_t xs, float *y, size_t ldy, bool add) {
    float32x4_t part[4][4][4]; /* [u][r][j] */
    const int n16 = n / 16 * 16, n4 = n / 4 * 4;
    for (int u = 0; u < 4; u++) {
        float32x4_t acc[4][4];
#pragma GCC unroll 4
        for (int r = 0; r < RM; r++)
#pragma GCC unroll 4
            for (int j = 0; j < RN; j++) acc[r][j] = vdupq_n_f32(0);
        for (int i = 4 * u; i < n16; i += 16) phase_step(T, RM, RN, w, ws, x, xs, i, acc);
        if (u == 0)
            for (int i = n16; i < n4; i += 4) phase_step(T, RM, RN, w, ws, x, xs, i, acc);
#pragma GCC unroll 4
        for (int r = 0; r < RM; r++)
#pragma GCC unroll 4
            for (int j = 0; j < RN; j++) part[u][r][j] = acc[r][j];
    }
#pragma GCC unroll 4
    for (int r = 0; r < RM; r++)
#pragma GCC unroll 4
        for (int j = 0; j < RN; j++) {
            float s =
                vaddvq_f32(vaddq_f32(vaddq_f32(part[0][r][j], part[1][r][j]), vaddq_f32(part[2][r][j], part[3][r][j])));
            for (int k = n4; k < n; k++) s += elem(T, w + r * ws, k) * x[j * xs + k];
            y[j * ldy + r] = add ? y[j * ldy + r] + s : s;
        }
}

static void vec_dot_f32(int n, float *s, const void *w, const void *x) { dot_float(LC_TYPE_F32, n, s, w, x); }
static void vec_dot_f16(int n, float *s, const void *w, const void *x) { dot_float(LC_TYPE_F16, n, s, w, x); }
static void vec_dot_bf16(int n, float *s, const void *w, const void *x) { dot_float(LC_TYPE_BF16, n, s, w, x); }

/* GEMV (nt == 1): vec_dot row after row, each row one DRAM stream from start to end. GEMM: 4 rows x 4 tokens
** phased tiles over a panel of W that stays in cache; F16/BF16 activations are widened to f32 once per chunk
** (64 KiB of stack). */
INLINE void gemm_float(const int T, int n, int nr, int nt, const void *vw, size_t ws, const void *vx, size_t xs,
                       float *y, size_t ldy) {
    enum { RN = 4 };
    const size_t esz = T == LC_TYPE_F32 ? 4 : 2;
    const uint8_t *w = vw, *x = vx;
    float xf[RN][KCHUNK];
    if (nt == 1) { /* GEMV: vec_dot row after row, each row one DRAM stream from start to end */
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
                for (int j = 0; j < rn; j++) {
                    const uint8_t *xr = x + (size_t)(t + j) * xs + (size_t)c0 * esz;
                    int i = 0;
                    for (; i + 4 <= nc; i += 4) vst1q_f32(xf[j] + i, load4(T, xr, i));
                    for (; i < nc; i++) xf[j][i] = elem(T, xr, i);
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

/* y += a * x with a separate multiply and add (the bits of the scalar loop) */
INLINE void mad_float(const int T, int n, float *y, const void *x, float a) {
    const float32x4_t va = vdupq_n_f32(a);
    int i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vaddq_f32(vld1q_f32(y + i), vmulq_f32(va, load4(T, x, i))));
    for (; i < n; i++) y[i] += a * elem(T, x, i);
}
static void vec_mad_f32(int n, float *y, const void *x, float a) { mad_float(LC_TYPE_F32, n, y, x, a); }
static void vec_mad_f16(int n, float *y, const void *x, float a) { mad_float(LC_TYPE_F16, n, y, x, a); }
static void vec_mad_bf16(int n, float *y, const void *x, float a) { mad_float(LC_TYPE_BF16, n, y, x, a); }

/* ---------------------------------------------------------------------------------------------------------------
** Q8_0 */

/* Per-lane int32 partial sums of one block pair (two SDOTs of 16 bytes). */
INLINE int32x4_t dot_block(const block_q8_0 *w, const block_q8_0 *x) {
    const int32x4_t p = vdotq_s32(vdupq_n_s32(0), vld1q_s8(w->qs), vld1q_s8(x->qs));
    return vdotq_s32(p, vld1q_s8(w->qs + 16), vld1q_s8(x->qs + 16));
}

/* Lane j of the result is the sum of the 4 lanes of v[j]. */
INLINE int32x4_t hsum_4x4(const int32x4_t v[4]) {
    return vpaddq_s32(vpaddq_s32(v[0], v[1]), vpaddq_s32(v[2], v[3]));
}

INLINE float32x4_t load_d4(lc_fp16 d0, lc_fp16 d1, lc_fp16 d2, lc_fp16 d3) {
    const uint16_t h[4] = {d0, d1, d2, d3};
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(h)));
}

/* GEMV row: lanes over 4 consecutive blocks, each block's exact sum times d_w * d_x added in block order. */
INLINE float gemv_row_q8_0(float sum, int nb, const block_q8_0 *w, const block_q8_0 *x, const float *dx) {
    float prod[4];
    int ib = 0;
    for (; ib + 4 <= nb; ib += 4) {
        int32x4_t p[4];
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) p[j] = dot_block(&w[ib + j], &x[ib + j]);
        const float32x4_t s = vcvtq_f32_s32(hsum_4x4(p));
        const float32x4_t d = vmulq_f32(load_d4(w[ib].d, w[ib + 1].d, w[ib + 2].d, w[ib + 3].d), vld1q_f32(dx + ib));
        vst1q_f32(prod, vmulq_f32(s, d));
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) sum += prod[j];
    }
    for (; ib < nb; ib++) {
        const float d = lc_fp16_lut(w[ib].d) * dx[ib];
        const float pr = (float)vaddvq_s32(dot_block(&w[ib], &x[ib])) * d;
        sum += pr;
    }
    return sum;
}

static void gemv_q8_0(int n, int nr, const uint8_t *w, size_t ws, const block_q8_0 *x, float *y) {
    enum { CHUNK = 1024 }; /* blocks whose scales are expanded at a time: rows up to 32768 stream in one pass */
    float dx[CHUNK];
    const int nb = n / QK8_0;
    for (int b0 = 0; b0 < nb; b0 += CHUNK) {
        const int nbc = LC_MIN(CHUNK, nb - b0);
        for (int j = 0; j < nbc; j++) dx[j] = lc_fp16_lut(x[b0 + j].d);
        for (int r = 0; r < nr; r++) /* a row's sum continues from chunk to chunk, in block order */
            y[r] = gemv_row_q8_0(b0 ? y[r] : 0.0f, nbc, (const block_q8_0 *)(w + (size_t)r * ws) + b0, x + b0, dx);
    }
}

/* GEMM tile: acc[a] lane j = dot(weight row A[a], token B[j]) for a < 4, j < 4, with ref.c's rounding. */
INLINE void tile_q8_0(int nb, const block_q8_0 *const A[4], const block_q8_0 *const B[4], float32x4_t acc[4]) {
    for (int a = 0; a < 4; a++) acc[a] = vdupq_n_f32(0);
    for (int ib = 0; ib < nb; ib++) {
        const float32x4_t dB = load_d4(B[0][ib].d, B[1][ib].d, B[2][ib].d, B[3][ib].d);
        int8x16_t xl[4], xh[4];
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            xl[j] = vld1q_s8(B[j][ib].qs);
            xh[j] = vld1q_s8(B[j][ib].qs + 16);
        }
#pragma GCC unroll 4
        for (int a = 0; a < 4; a++) {
            const int8x16_t wl = vld1q_s8(A[a][ib].qs), wh = vld1q_s8(A[a][ib].qs + 16);
            int32x4_t p[4];
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) p[j] = vdotq_s32(vdotq_s32(vdupq_n_s32(0), wl, xl[j]), wh, xh[j]);
            const float32x4_t s = vcvtq_f32_s32(hsum_4x4(p));
            const float32x4_t d = vmulq_f32(vdupq_n_f32(lc_fp16_lut(A[a][ib].d)), dB);
            acc[a] = vaddq_f32(acc[a], vmulq_f32(s, d));
        }
    }
}

static void gemm_q8_0(int n, int nr, int nt, const void *vw, size_t ws, const void *vx, size_t xs, float *y,
                      size_t ldy) {
    const uint8_t *w = vw, *x = vx;
    const int nb = n / QK8_0;
    if (nt == 1) {
        gemv_q8_0(n, nr, w, ws, (const block_q8_0 *)x, y);
        return;
    }
    float tmp[4];
    for (int t = 0; t < nt; t += 4) {
        const block_q8_0 *B[4];
        for (int j = 0; j < 4; j++) B[j] = (const block_q8_0 *)(x + (size_t)LC_MIN(t + j, nt - 1) * xs);
        const int ntj = LC_MIN(4, nt - t);
        for (int r = 0; r < nr; r += 4) {
            const block_q8_0 *A[4];
            for (int a = 0; a < 4; a++) A[a] = (const block_q8_0 *)(w + (size_t)LC_MIN(r + a, nr - 1) * ws);
            float32x4_t acc[4];
            tile_q8_0(nb, A, B, acc);
            for (int a = 0; a < LC_MIN(4, nr - r); a++) {
                vst1q_f32(tmp, acc[a]);
                for (int j = 0; j < ntj; j++) y[(size_t)(t + j) * ldy + r + a] = tmp[j];
            }
        }
    }
}

static void vec_dot_q8_0(int n, float *s, const void *vw, const void *vx) {
    const block_q8_0 *w = vw, *x = vx;
    float sum = 0.0f;
    for (int ib = 0; ib < n / QK8_0; ib++) {
        const float d = lc_fp16_lut(w[ib].d) * lc_fp16_lut(x[ib].d);
        const float prod = (float)vaddvq_s32(dot_block(&w[ib], &x[ib])) * d;
        sum += prod;
    }
    *s = sum;
}

/* ---------------------------------------------------------------------------------------------------------------
** from_float */

static void from_float_f16(const float *x, void *vy, int64_t n) {
    lc_fp16 *y = vy;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1_u16(y + i, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(x + i)))); /* FPCR: RNE */
    for (; i < n; i++) y[i] = lc_fp32_to_fp16(x[i]);
}

/* bf16 = round-to-nearest-even of the high half; NaN made quiet (GGML_FP32_TO_BF16), in integer arithmetic. */
static void from_float_bf16(const float *x, void *vy, int64_t n) {
    lc_bf16 *y = vy;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const uint32x4_t u = vreinterpretq_u32_f32(vld1q_f32(x + i));
        const uint32x4_t nan = vcgtq_u32(vandq_u32(u, vdupq_n_u32(0x7fffffff)), vdupq_n_u32(0x7f800000));
        const uint32x4_t lsb = vandq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(1));
        const uint32x4_t rounded = vshrq_n_u32(vaddq_u32(u, vaddq_u32(vdupq_n_u32(0x7fff), lsb)), 16);
        const uint32x4_t qnan = vorrq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(64));
        vst1_u16(y + i, vmovn_u32(vbslq_u32(nan, qnan, rounded)));
    }
    for (; i < n; i++) y[i] = lc_fp32_to_bf16(x[i]);
}

/* GGML's x86 activation quantizer (lc__quantize_row_q8_0_act): FCVTNS rounds to nearest even like VROUNDPS. */
static void from_float_q8_0(const float *x, void *vy, int64_t n) {
    block_q8_0 *y = vy;
    for (int64_t ib = 0; ib < n / QK8_0; ib++, x += QK8_0) {
        float32x4_t v[8];
        float32x4_t amax = vdupq_n_f32(0);
        for (int k = 0; k < 8; k++) {
            v[k] = vld1q_f32(x + 4 * k);
            amax = vmaxq_f32(amax, vabsq_f32(v[k]));
        }
        const float mx = vmaxvq_f32(amax);
        y[ib].d = lc_fp32_to_fp16(mx / 127.0f);
        const float32x4_t id = vdupq_n_f32(mx != 0.0f ? 127.0f / mx : 0.0f);
        for (int k = 0; k < 8; k += 2) {
            const int16x4_t lo = vqmovn_s32(vcvtnq_s32_f32(vmulq_f32(v[k], id)));
            const int16x4_t hi = vqmovn_s32(vcvtnq_s32_f32(vmulq_f32(v[k + 1], id)));
            vst1_s8(y[ib].qs + 4 * k, vqmovn_s16(vcombine_s16(lo, hi)));
        }
    }
}

void lc__kernels_fill_neon(lc_kernels *k) {
    k->vec_dot[LC_TYPE_F32] = vec_dot_f32;
    k->vec_dot[LC_TYPE_F16] = vec_dot_f16;
    k->vec_dot[LC_TYPE_BF16] = vec_dot_bf16;
    k->vec_dot[LC_TYPE_Q8_0] = vec_dot_q8_0;
    k->vec_mad[LC_TYPE_F32] = vec_mad_f32;
    k->vec_mad[LC_TYPE_F16] = vec_mad_f16;
    k->vec_mad[LC_TYPE_BF16] = vec_mad_bf16;
    k->gemm[LC_TYPE_F32] = gemm_f32;
    k->gemm[LC_TYPE_F16] = gemm_f16;
    k->gemm[LC_TYPE_BF16] = gemm_bf16;
    k->gemm[LC_TYPE_Q8_0] = gemm_q8_0;
    k->from_float[LC_TYPE_F16] = from_float_f16;
    k->from_float[LC_TYPE_BF16] = from_float_bf16;
    k->from_float[LC_TYPE_Q8_0] = from_float_q8_0;
    lc__kernels_fill_neon_quants(k);
}
