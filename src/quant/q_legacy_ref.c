/* q_legacy_ref.c - reference Q4_0, Q4_1, Q5_0, Q5_1 (weights) and Q8_1 (activations): quantize, dequantize, dot.
**
** The 32-element "legacy" formats: one fp16 scale (and a min for the _1 types) per block, rounding by truncation
** of x/d + offset as ggml's quantize_row_q{4,5}_{0,1}_ref do (llama-quantize uses exactly these without imatrix).
** Float expressions are written in ggml's evaluation order so the bytes match; see quants.h for the layouts.
*/
#include "quants.h"

#include <float.h>
#include <math.h>

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF /* a fused multiply-add would change roundings; gcc -std=c11 never contracts */
#endif

/* (int8_t)v as x86 evaluates it (truncate to int32, keep the low byte), without C's undefined behaviour for NaN or
** values beyond int32 (x86 gives 0x80000000 there, whose low byte is 0): only broken input (inf/NaN weights) gets
** there, and it must not be undefined behaviour in the library. */
static int trunc_i8(float v) { return v > -2147483648.f && v < 2147483648.f ? (int8_t)(int32_t)v : 0; }

/* The signed value of largest magnitude (the first one on ties), as the symmetric formats scale by it. */
static float signed_absmax(const float *x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++) {
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    return max;
}

static void min_max(const float *x, int n, float *mn, float *mx) {
    float lo = FLT_MAX, hi = -FLT_MAX;
    for (int j = 0; j < n; j++) {
        if (x[j] < lo) lo = x[j];
        if (x[j] > hi) hi = x[j];
    }
    *mn = lo;
    *mx = hi;
}

/* Five-bit quants q[32] -> low nibbles (element j and j+16 share qs[j]) and the high bits as a little-endian u32. */
static void pack_q5(const uint8_t *q, uint8_t *qs, uint8_t *qh) {
    uint32_t h = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((q[j] & 0xF) | ((q[j + 16] & 0xF) << 4));
        h |= (uint32_t)((q[j] >> 4) & 1) << j;
        h |= (uint32_t)((q[j + 16] >> 4) & 1) << (j + 16);
    }
    for (int k = 0; k < 4; k++) qh[k] = (uint8_t)(h >> (8 * k));
}

static uint32_t load_u32le(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- quantize ---- */

void lc__quantize_row_q4_0_ref(const float *x, void *vy, int64_t n) {
    block_q4_0 *y = vy;
    for (int64_t b = 0; b < n / QK4_0; b++, x += QK4_0) {
        /* d maps the extreme value to -8 exactly, so the other side gets the extra level +7 */
        const float d = signed_absmax(x, QK4_0) / -8;
        const float id = d ? 1.0f / d : 0.0f;
        y[b].d = lc_fp32_to_fp16(d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            int q0 = trunc_i8(x[j] * id + 8.5f), q1 = trunc_i8(x[j + 16] * id + 8.5f);
            y[b].qs[j] = (uint8_t)(LC_MIN(15, q0) | (LC_MIN(15, q1) << 4));
        }
    }
}

void lc__quantize_row_q4_1_ref(const float *x, void *vy, int64_t n) {
    block_q4_1 *y = vy;
    for (int64_t b = 0; b < n / QK4_1; b++, x += QK4_1) {
        float mn, mx;
        min_max(x, QK4_1, &mn, &mx);
        const float d = (mx - mn) / 15;
        const float id = d ? 1.0f / d : 0.0f;
        y[b].d = lc_fp32_to_fp16(d);
        y[b].m = lc_fp32_to_fp16(mn);
        for (int j = 0; j < QK4_1 / 2; j++) {
            int q0 = trunc_i8((x[j] - mn) * id + 0.5f), q1 = trunc_i8((x[j + 16] - mn) * id + 0.5f);
            y[b].qs[j] = (uint8_t)(LC_MIN(15, q0) | (LC_MIN(15, q1) << 4));
        }
    }
}

void lc__quantize_row_q5_0_ref(const float *x, void *vy, int64_t n) {
    block_q5_0 *y = vy;
    for (int64_t b = 0; b < n / QK5_0; b++, x += QK5_0) {
        const float d = signed_absmax(x, QK5_0) / -16;
        const float id = d ? 1.0f / d : 0.0f;
        uint8_t q[QK5_0];
        for (int j = 0; j < QK5_0; j++) q[j] = (uint8_t)LC_MIN(31, trunc_i8(x[j] * id + 16.5f));
        y[b].d = lc_fp32_to_fp16(d);
        pack_q5(q, y[b].qs, y[b].qh);
    }
}

void lc__quantize_row_q5_1_ref(const float *x, void *vy, int64_t n) {
    block_q5_1 *y = vy;
    for (int64_t b = 0; b < n / QK5_1; b++, x += QK5_1) {
        float mn, mx;
        min_max(x, QK5_1, &mn, &mx);
        const float d = (mx - mn) / 31;
        const float id = d ? 1.0f / d : 0.0f;
        uint8_t q[QK5_1];
        /* (x - min) * id + 0.5 lies in [0.5, 31.5] up to rounding, so no clamp is needed (ggml has none) */
        for (int j = 0; j < QK5_1; j++) q[j] = (uint8_t)trunc_i8((x[j] - mn) * id + 0.5f);
        y[b].d = lc_fp32_to_fp16(d);
        y[b].m = lc_fp32_to_fp16(mn);
        pack_q5(q, y[b].qs, y[b].qh);
    }
}

void lc__quantize_row_q8_1_ref(const float *x, void *vy, int64_t n) {
    block_q8_1 *y = vy;
    for (int64_t b = 0; b < n / QK8_1; b++, x += QK8_1) {
        float amax = 0.0f;
        for (int j = 0; j < QK8_1; j++) amax = LC_MAX(amax, fabsf(x[j]));
        const float d = amax / 127.f;
        const float id = amax != 0.0f ? 127.f / amax : 0.0f;
        int sum = 0;
        for (int j = 0; j < QK8_1; j++) {
            int q = lc__nearest_int(x[j] * id); /* |x*id| <= 127 (+1 ulp), so no clamp */
            y[b].qs[j] = (int8_t)q;
            sum += q;
        }
        y[b].d = lc_fp32_to_fp16(d);
        y[b].s = lc_fp32_to_fp16(d * (float)sum);
    }
}

/* ---- dequantize ---- */

void lc__dequantize_row_q4_0(const void *vx, float *y, int64_t n) {
    const block_q4_0 *x = vx;
    for (int64_t b = 0; b < n / QK4_0; b++, y += QK4_0) {
        const float d = lc_fp16_to_fp32(x[b].d);
        for (int j = 0; j < 16; j++) {
            y[j] = ((x[b].qs[j] & 0xF) - 8) * d;
            y[j + 16] = ((x[b].qs[j] >> 4) - 8) * d;
        }
    }
}

void lc__dequantize_row_q4_1(const void *vx, float *y, int64_t n) {
    const block_q4_1 *x = vx;
    for (int64_t b = 0; b < n / QK4_1; b++, y += QK4_1) {
        const float d = lc_fp16_to_fp32(x[b].d), m = lc_fp16_to_fp32(x[b].m);
        for (int j = 0; j < 16; j++) {
            y[j] = (x[b].qs[j] & 0xF) * d + m;
            y[j + 16] = (x[b].qs[j] >> 4) * d + m;
        }
    }
}

/* The 5-bit quant of element j (0..31) of a Q5_0/Q5_1 block. */
static int q5_at(const uint8_t *qs, uint32_t qh, int j) {
    int lo = j < 16 ? qs[j] & 0xF : qs[j - 16] >> 4;
    return lo | (int)((qh >> j) & 1) << 4;
}

void lc__dequantize_row_q5_0(const void *vx, float *y, int64_t n) {
    const block_q5_0 *x = vx;
    for (int64_t b = 0; b < n / QK5_0; b++, y += QK5_0) {
        const float d = lc_fp16_to_fp32(x[b].d);
        const uint32_t qh = load_u32le(x[b].qh);
        for (int j = 0; j < QK5_0; j++) y[j] = (q5_at(x[b].qs, qh, j) - 16) * d;
    }
}

void lc__dequantize_row_q5_1(const void *vx, float *y, int64_t n) {
    const block_q5_1 *x = vx;
    for (int64_t b = 0; b < n / QK5_1; b++, y += QK5_1) {
        const float d = lc_fp16_to_fp32(x[b].d), m = lc_fp16_to_fp32(x[b].m);
        const uint32_t qh = load_u32le(x[b].qh);
        for (int j = 0; j < QK5_1; j++) y[j] = q5_at(x[b].qs, qh, j) * d + m;
    }
}

void lc__dequantize_row_q8_1(const void *vx, float *y, int64_t n) {
    const block_q8_1 *x = vx;
    for (int64_t b = 0; b < n / QK8_1; b++, y += QK8_1) {
        const float d = lc_fp16_to_fp32(x[b].d);
        for (int j = 0; j < QK8_1; j++) y[j] = x[b].qs[j] * d;
    }
}

/* ---- dot products: w (weights) . x (activations) ---- */

/* sum over the block of q_w[j] * q_x[j] for nibble weights with an offset (Q4_0: 8, Q4_1: 0). */
static int dot_q4_block(const uint8_t *qs, int offset, const int8_t *qx) {
    int sum = 0;
    for (int j = 0; j < 16; j++) {
        sum += ((qs[j] & 0xF) - offset) * qx[j];
        sum += ((qs[j] >> 4) - offset) * qx[j + 16];
    }
    return sum;
}

static int dot_q5_block(const uint8_t *qs, const uint8_t *qh8, int offset, const int8_t *qx) {
    const uint32_t qh = load_u32le(qh8);
    int sum = 0;
    for (int j = 0; j < 32; j++) sum += (q5_at(qs, qh, j) - offset) * qx[j];
    return sum;
}

/* Q4_0 . Q8_0: sum_b d_w d_x sum_j (q_w - 8) q_x */
void lc__vec_dot_q4_0_ref(int n, float *s, const void *vw, const void *vx) {
    const block_q4_0 *w = vw;
    const block_q8_0 *x = vx;
    float sum = 0.0f;
    for (int b = 0; b < n / QK4_0; b++) {
        const int isum = dot_q4_block(w[b].qs, 8, x[b].qs);
        /* d_w * d_x is exact (two fp16 values), so this is one rounding of the exact block product - the form of
        ** Q8_0, which lets the SIMD GEMM run Q4_0 rows through the Q8_0 kernels (GGML's scalar code rounds twice,
        ** (isum * d_w) * d_x; its AVX2 code uses this product). */
        sum += (float)isum * (lc_fp16_to_fp32(w[b].d) * lc_fp16_to_fp32(x[b].d));
    }
    *s = sum;
}

/* Q4_1 . Q8_1: sum_b d_w d_x sum_j q_w q_x + m_w s_x, where s_x = d_x sum_j q_x carries the min term. */
void lc__vec_dot_q4_1_ref(int n, float *s, const void *vw, const void *vx) {
    const block_q4_1 *w = vw;
    const block_q8_1 *x = vx;
    float sum = 0.0f;
    for (int b = 0; b < n / QK4_1; b++) {
        const int isum = dot_q4_block(w[b].qs, 0, x[b].qs);
        sum += lc_fp16_to_fp32(w[b].d) * lc_fp16_to_fp32(x[b].d) * (float)isum +
               lc_fp16_to_fp32(w[b].m) * lc_fp16_to_fp32(x[b].s);
    }
    *s = sum;
}

/* Q5_0 . Q8_0 */
void lc__vec_dot_q5_0_ref(int n, float *s, const void *vw, const void *vx) {
    const block_q5_0 *w = vw;
    const block_q8_0 *x = vx;
    float sum = 0.0f;
    for (int b = 0; b < n / QK5_0; b++) {
        const int isum = dot_q5_block(w[b].qs, w[b].qh, 16, x[b].qs);
        sum += lc_fp16_to_fp32(w[b].d) * lc_fp16_to_fp32(x[b].d) * (float)isum;
    }
    *s = sum;
}

/* Q5_1 . Q8_1 */
void lc__vec_dot_q5_1_ref(int n, float *s, const void *vw, const void *vx) {
    const block_q5_1 *w = vw;
    const block_q8_1 *x = vx;
    float sum = 0.0f;
    for (int b = 0; b < n / QK5_1; b++) {
        const int isum = dot_q5_block(w[b].qs, w[b].qh, 0, x[b].qs);
        sum += lc_fp16_to_fp32(w[b].d) * lc_fp16_to_fp32(x[b].d) * (float)isum +
               lc_fp16_to_fp32(w[b].m) * lc_fp16_to_fp32(x[b].s);
    }
    *s = sum;
}
