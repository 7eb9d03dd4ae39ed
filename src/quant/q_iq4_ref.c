/* q_iq4_ref.c - reference IQ4_NL and IQ4_XS: 4-bit indices into a fixed non-linear table of 16 levels.
**
** IQ4_NL: blocks of 32 with an fp16 scale. IQ4_XS: super-blocks of 256 in 8 groups of 32, each group scale a 6-bit
** signed multiple of one fp16 super-scale. The quantizer is ggml's quantize_row_iq4_nl_impl as llama-quantize runs it
** without imatrix (weights x^2, 15 trial scales); for each trial, indices are the nearest table level of x/d. Float
** expressions keep ggml's evaluation order so the bytes match llama.cpp's files.
*/
#include "quants.h"

#include <math.h>

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF /* a fused multiply-add would change roundings; gcc -std=c11 never contracts */
#endif

#define GROUP_EPS 1e-15f
#define N_TRY 7 /* trial inverse scales (values[0] + k)/max for k = -7..7 */

const int8_t lc__iq4nl_values[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

static int clampi_6bit(int v) { return v < -32 ? -32 : v > 31 ? 31 : v; }

/* Index of the table level nearest to v (the upper one on a tie), by bisection over the sorted table. */
static int nearest_level(float v) {
    const int8_t *t = lc__iq4nl_values;
    if (v <= t[0]) return 0;
    if (v >= t[15]) return 15;
    int lo = 0, hi = 15; /* t[lo] <= v < t[hi] */
    while (hi - lo > 1) {
        const int mid = (lo + hi) / 2;
        if (v < t[mid]) hi = mid;
        else lo = mid;
    }
    return v - t[lo] < t[hi] - v ? lo : hi;
}

/* Weighted (w = x^2) least-squares fit x ~ d * level[index(id * x)]: *sumqx, *sumq2 give d = sumqx/sumq2. */
static void level_sums(const float *x, int n, float id, float *sumqx, float *sumq2) {
    float sqx = 0, sq2 = 0;
    for (int j = 0; j < n; j++) {
        const float q = lc__iq4nl_values[nearest_level(id * x[j])];
        const float w = x[j] * x[j];
        sqx += w * q * x[j];
        sq2 += w * q * q;
    }
    *sumqx = sqx;
    *sumq2 = sq2;
}

/* The scale of one group of 32: start with the extreme value on the extreme level (-127, so d has the sign of
** -max), refit by least squares, then try the 15 inverse scales (k - 127)/max and keep the best fit. 0 for an
** all-zero group. */
static float group_scale(const float *x) {
    float amax = 0, max = 0;
    for (int j = 0; j < 32; j++) {
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    if (amax < GROUP_EPS) return 0;
    float sumqx, sumq2;
    float d = -max / lc__iq4nl_values[0];
    level_sums(x, 32, 1 / d, &sumqx, &sumq2);
    d = sumq2 > 0 ? sumqx / sumq2 : 0.f;
    float best = d * sumqx;
    for (int k = -N_TRY; k <= N_TRY; k++) {
        level_sums(x, 32, (k + lc__iq4nl_values[0]) / max, &sumqx, &sumq2);
        if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
            d = sumqx / sumq2;
            best = d * sumqx;
        }
    }
    return d;
}

/* Nibble packing of 32 indices: element j and j+16 share byte j (low, high). */
static void pack_nibbles(const uint8_t *L, uint8_t *qs) {
    for (int j = 0; j < 16; j++) qs[j] = (uint8_t)(L[j] | (L[j + 16] << 4));
}

void lc__quantize_row_iq4_nl_ref(const float *x, void *vy, int64_t n) {
    block_iq4_nl *y = vy;
    for (int64_t b = 0; b < n / QK4_NL; b++, x += QK4_NL) {
        const float d = group_scale(x);
        const float id = d ? 1 / d : 0;
        uint8_t L[QK4_NL];
        for (int j = 0; j < QK4_NL; j++) L[j] = (uint8_t)nearest_level(id * x[j]);
        y[b].d = lc_fp32_to_fp16(d);
        pack_nibbles(L, y[b].qs);
    }
}

void lc__quantize_row_iq4_xs_ref(const float *x, void *vy, int64_t n) {
    block_iq4_xs *y = vy;
    for (int64_t b = 0; b < n / QK_K; b++, x += QK_K) {
        float scales[QK_K / 32];
        float max_scale = 0, amax_scale = 0;
        for (int g = 0; g < QK_K / 32; g++) {
            scales[g] = group_scale(x + 32 * g);
            if (fabsf(scales[g]) > amax_scale) {
                amax_scale = fabsf(scales[g]);
                max_scale = scales[g];
            }
        }
        /* group scales as 6-bit signed multiples of d = max_scale/-32; indices against the unrounded d * l */
        const float d = -max_scale / 32;
        const float id = d ? 1 / d : 0.f;
        uint16_t scales_h = 0;
        memset(y[b].scales_l, 0, sizeof y[b].scales_l);
        for (int g = 0; g < QK_K / 32; g++) {
            const int l = clampi_6bit(lc__nearest_int(id * scales[g]));
            const float dl = d * l;
            const float idl = dl ? 1 / dl : 0.f;
            uint8_t L[32];
            for (int j = 0; j < 32; j++) L[j] = (uint8_t)nearest_level(idl * x[32 * g + j]);
            pack_nibbles(L, y[b].qs + 16 * g);
            const int u = l + 32;
            y[b].scales_l[g / 2] |= (uint8_t)((u & 0xF) << (4 * (g % 2)));
            scales_h |= (uint16_t)((u >> 4) << (2 * g));
        }
        y[b].d = lc_fp32_to_fp16(d);
        y[b].scales_h = scales_h;
    }
}

void lc__dequantize_row_iq4_nl(const void *vx, float *y, int64_t n) {
    const block_iq4_nl *x = vx;
    for (int64_t b = 0; b < n / QK4_NL; b++, y += QK4_NL) {
        const float d = lc_fp16_to_fp32(x[b].d);
        for (int j = 0; j < 16; j++) {
            y[j] = d * lc__iq4nl_values[x[b].qs[j] & 0xF];
            y[j + 16] = d * lc__iq4nl_values[x[b].qs[j] >> 4];
        }
    }
}

/* Signed 6-bit scale (-32..31) of group g of an IQ4_XS block. */
static int iq4xs_scale(const block_iq4_xs *x, int g) {
    return (((x->scales_l[g / 2] >> (4 * (g % 2))) & 0xF) | (((x->scales_h >> (2 * g)) & 3) << 4)) - 32;
}

void lc__dequantize_row_iq4_xs(const void *vx, float *y, int64_t n) {
    const block_iq4_xs *x = vx;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float d = lc_fp16_to_fp32(x[b].d);
        for (int g = 0; g < QK_K / 32; g++, y += 32) {
            const float dl = d * iq4xs_scale(&x[b], g);
            const uint8_t *qs = x[b].qs + 16 * g;
            for (int j = 0; j < 16; j++) {
                y[j] = dl * lc__iq4nl_values[qs[j] & 0xF];
                y[j + 16] = dl * lc__iq4nl_values[qs[j] >> 4];
            }
        }
    }
}

/* sum_j level[q_j] * qx_j over one group of 32 nibble-packed indices. */
static int dot_levels(const uint8_t *qs, const int8_t *qx) {
    int sum = 0;
    for (int j = 0; j < 16; j++) {
        sum += lc__iq4nl_values[qs[j] & 0xF] * qx[j];
        sum += lc__iq4nl_values[qs[j] >> 4] * qx[j + 16];
    }
    return sum;
}

/* IQ4_NL . Q8_0: sum_b d_x d_w sum_j level[q_w] q_x */
void lc__vec_dot_iq4_nl_ref(int n, float *s, const void *vw, const void *vx) {
    const block_iq4_nl *w = vw;
    const block_q8_0 *x = vx;
    float sum = 0;
    for (int b = 0; b < n / QK4_NL; b++)
        sum += lc_fp16_to_fp32(x[b].d) * lc_fp16_to_fp32(w[b].d) * (float)dot_levels(w[b].qs, x[b].qs);
    *s = sum;
}

/* IQ4_XS . Q8_K: sum_b d_w d_x sum_g s_g sum_j level[q_w] q_x */
void lc__vec_dot_iq4_xs_ref(int n, float *s, const void *vw, const void *vx) {
    const block_iq4_xs *w = vw;
    const block_q8_K *x = vx;
    float sum = 0;
    for (int b = 0; b < n / QK_K; b++) {
        int isum = 0;
        for (int g = 0; g < QK_K / 32; g++) isum += iq4xs_scale(&w[b], g) * dot_levels(w[b].qs + 16 * g, x[b].qs + 32 * g);
        sum += lc_fp16_to_fp32(w[b].d) * x[b].d * (float)isum;
    }
    *s = sum;
}
