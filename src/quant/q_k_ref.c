/* q_k_ref.c - reference K-quants Q2_K, Q3_K, Q4_K, Q5_K, Q6_K (weights) and Q8_K (activations).
**
** A super-block of 256 weights is split into groups of 16 or 32; each group gets a scale (and, for Q2/Q4/Q5_K, a
** min) found by a small search, and the group scales are themselves quantized against one fp16 super-scale. The
** searches are those of ggml-quants.c used by llama-quantize without imatrix: symmetric least squares with weights
** x^2 over 19 trial scales (Q6_K), an iterative per-element refinement (Q3_K), and an asymmetric scale+min least
** squares over trial scales with weights |x| or rms+|x| (Q2/Q4/Q5_K). After the group scales are rounded, every
** weight is re-quantized against the scale actually stored. Float expressions keep ggml's evaluation order.
*/
#include "quants.h"

#include <math.h>

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF /* a fused multiply-add would change roundings; gcc -std=c11 never contracts */
#endif

#define GROUP_EPS 1e-15f /* a group whose largest |x| is below this is treated as all zero */

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* The signed value of largest magnitude (the first one on ties). */
static float signed_absmax(const float *x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    }
    return max;
}

/* ---- scale searches ---- */

/* Sums of the weighted least-squares fit x ~ scale*l with weights x^2, l = clamp(round(iscale*x), -nmax, nmax-1):
** the best scale is sumlx/suml2 and its error falls as sumlx^2/suml2 rises. */
static void symmetric_sums(int n, int nmax, const float *x, float iscale, float *sumlx, float *suml2) {
    float slx = 0, sl2 = 0;
    for (int i = 0; i < n; i++) {
        const int l = clampi(lc__nearest_int(iscale * x[i]), -nmax, nmax - 1);
        const float w = x[i] * x[i];
        slx += w * x[i] * l;
        sl2 += w * l * l;
    }
    *sumlx = slx;
    *suml2 = sl2;
}

static void symmetric_levels(int n, int nmax, const float *x, float iscale, int8_t *L) {
    for (int i = 0; i < n; i++) L[i] = (int8_t)(nmax + clampi(lc__nearest_int(iscale * x[i]), -nmax, nmax - 1));
}

/* Symmetric quants for Q6_K groups: L[i] = l + nmax with l in [-nmax, nmax-1], and the returned scale (negative
** when the extreme value is positive: the extreme maps to -nmax, the level with one more step). Tries the inverse
** scales -(nmax + k/10)/max for k = 0, +-1..+-9 and keeps the one with the least x^2-weighted squared error. */
static float make_symmetric_quants(int n, int nmax, const float *x, int8_t *L) {
    const float max = signed_absmax(x, n);
    if (fabsf(max) < GROUP_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float iscale = -nmax / max, sumlx, suml2;
    symmetric_levels(n, nmax, x, iscale, L);
    symmetric_sums(n, nmax, x, iscale, &sumlx, &suml2);
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int k = -9; k <= 9; k++) {
        if (k == 0) continue;
        iscale = -(nmax + 0.1f * k) / max;
        symmetric_sums(n, nmax, x, iscale, &sumlx, &suml2);
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            symmetric_levels(n, nmax, x, iscale, L);
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* Q3_K groups: start from l = round(-nmax x / max), then up to 5 sweeps in which each l is moved to the value that is
** optimal given all the others (x * suml2 / sumlx, without its own term) when that improves the x^2-weighted fit.
** L[i] = l + nmax (L = 0 for an all-zero group); returns the least-squares scale of the final levels. */
static float make_q3_quants(int n, int nmax, const float *x, int8_t *L) {
    const float max = signed_absmax(x, n);
    if (fabsf(max) < GROUP_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    const float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        const int l = clampi(lc__nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)l;
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int sweep = 0; sweep < 5; sweep++) {
        int n_changed = 0;
        for (int i = 0; i < n; i++) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i]; /* the sums without element i */
            if (!(slx > 0)) continue;
            float sl2 = suml2 - w * L[i] * L[i];
            const int l = clampi(lc__nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
            if (l == L[i]) continue;
            slx += w * x[i] * l;
            sl2 += w * l * l;
            if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                L[i] = (int8_t)l;
                sumlx = slx;
                suml2 = sl2;
                n_changed++;
            }
        }
        if (!n_changed) break;
    }
    for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* Asymmetric quants x ~ scale*l + min, l in [0, nmax], min <= 0, for Q2_K/Q4_K/Q5_K groups with weights w.
** Starts from the range fit (min = min(x, 0), scale = range/nmax), then for inverse scales (rmin + rdelta*k +
** nmax)/range, k = 0..nstep, rounds and solves the 2x2 weighted least squares for (scale, min), keeping the candidate
** of least weighted error (|diff| if use_mad, else diff^2). Returns scale; *neg_min = -min >= 0. Laux: n bytes. */
static float make_asymmetric_quants(int n, int nmax, const float *x, const float *w, uint8_t *L, float *neg_min,
                                    uint8_t *Laux, float rmin, float rdelta, int nstep, bool use_mad) {
    float min = x[0], max = x[0];
    float sum_w = w[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *neg_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)clampi(lc__nearest_int(iscale * (x[i] - min)), 0, nmax);
        float diff = scale * L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        best_error += w[i] * diff;
    }
    if (nstep < 1) {
        *neg_min = -min;
        return scale;
    }
    for (int k = 0; k <= nstep; k++) {
        iscale = (rmin + rdelta * k + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            const int l = clampi(lc__nearest_int(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = (uint8_t)l;
            sum_l += w[i] * l;
            sum_l2 += w[i] * l * l;
            sum_xl += w[i] * l * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (!(D > 0)) continue;
        float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
        float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
        if (this_min > 0) { /* the fit wants a positive min: pin it to 0 and refit the scale alone */
            this_min = 0;
            this_scale = sum_xl / sum_l2;
        }
        float err = 0;
        for (int i = 0; i < n; i++) {
            float diff = this_scale * Laux[i] + this_min - x[i];
            diff = use_mad ? fabsf(diff) : diff * diff;
            err += w[i] * diff;
        }
        if (err < best_error) {
            memcpy(L, Laux, (size_t)n);
            best_error = err;
            scale = this_scale;
            min = this_min;
        }
    }
    *neg_min = -min;
    return scale;
}

/* Packs 2-bit values L[256] as Q2_K/Q3_K qs: element 128h + 32k + l into bits 2k of qs[32h + l]. */
static void pack_2bit(const uint8_t *L, uint8_t *qs) {
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            const uint8_t *p = L + 128 * h + l;
            qs[32 * h + l] = (uint8_t)(p[0] | (p[32] << 2) | (p[64] << 4) | (p[96] << 6));
        }
}

/* Stores 6-bit scale and min of group j into a Q4_K/Q5_K scales[12] array (inverse of lc__k4_scale_min); groups
** must be stored in order 0..7. */
static void k4_store_scale_min(uint8_t *q, int j, uint8_t sc, uint8_t m) {
    if (j < 4) {
        q[j] = sc;
        q[j + 4] = m;
    } else {
        q[j + 4] = (uint8_t)((sc & 0xF) | ((m & 0xF) << 4));
        q[j - 4] |= (uint8_t)((sc >> 4) << 6);
        q[j] |= (uint8_t)((m >> 4) << 6);
    }
}

/* ---- Q2_K ---- */

void lc__quantize_row_q2_K_ref(const float *x, void *vy, int64_t n) {
    block_q2_K *y = vy;
    for (int64_t b = 0; b < n / QK_K; b++, x += QK_K) {
        uint8_t L[QK_K], Laux[16];
        float w[16], scales[QK_K / 16], mins[QK_K / 16];
        float max_scale = 0, max_min = 0; /* scales and mins are >= 0 */
        for (int g = 0; g < QK_K / 16; g++) {
            for (int l = 0; l < 16; l++) w[l] = fabsf(x[16 * g + l]);
            scales[g] = make_asymmetric_quants(16, 3, x + 16 * g, w, L + 16 * g, &mins[g], Laux, -0.5f, 0.1f, 15, true);
            if (scales[g] > max_scale) max_scale = scales[g];
            if (mins[g] > max_min) max_min = mins[g];
        }
        /* group scales and mins as 4-bit multiples of d = max_scale/15, dmin = max_min/15 */
        memset(y[b].scales, 0, sizeof y[b].scales);
        if (max_scale > 0) {
            const float iscale = 15.f / max_scale;
            for (int g = 0; g < QK_K / 16; g++) y[b].scales[g] = (uint8_t)lc__nearest_int(iscale * scales[g]);
            y[b].d = lc_fp32_to_fp16(max_scale / 15.f);
        } else {
            y[b].d = lc_fp32_to_fp16(0.f);
        }
        if (max_min > 0) {
            const float iscale = 15.f / max_min;
            for (int g = 0; g < QK_K / 16; g++) y[b].scales[g] |= (uint8_t)(lc__nearest_int(iscale * mins[g]) << 4);
            y[b].dmin = lc_fp32_to_fp16(max_min / 15.f);
        } else {
            y[b].dmin = lc_fp32_to_fp16(0.f);
        }
        /* re-quantize against the stored scales (a group whose scale rounded to 0 keeps its search levels) */
        for (int g = 0; g < QK_K / 16; g++) {
            const float d = lc_fp16_to_fp32(y[b].d) * (y[b].scales[g] & 0xF);
            if (!d) continue;
            const float dm = lc_fp16_to_fp32(y[b].dmin) * (y[b].scales[g] >> 4);
            for (int l = 0; l < 16; l++)
                L[16 * g + l] = (uint8_t)clampi(lc__nearest_int((x[16 * g + l] + dm) / d), 0, 3);
        }
        pack_2bit(L, y[b].qs);
    }
}

void lc__dequantize_row_q2_K(const void *vx, float *y, int64_t n) {
    const block_q2_K *x = vx;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float d = lc_fp16_to_fp32(x[b].d), dmin = lc_fp16_to_fp32(x[b].dmin);
        for (int i = 0; i < QK_K; i++) {
            const int g = i / 16, h = i / 128, k = (i / 32) % 4, l = i % 32;
            const float dl = d * (x[b].scales[g] & 0xF), ml = dmin * (x[b].scales[g] >> 4);
            *y++ = dl * ((x[b].qs[32 * h + l] >> (2 * k)) & 3) - ml;
        }
    }
}

/* Q2_K . Q8_K: sum_b [ d_w d_x sum_g sc_g sum_j q_w q_x  -  dmin_w d_x sum_g m_g bsum_g ] */
void lc__vec_dot_q2_K_ref(int n, float *s, const void *vw, const void *vx) {
    const block_q2_K *w = vw;
    const block_q8_K *x = vx;
    float sum = 0;
    for (int b = 0; b < n / QK_K; b++) {
        int isum = 0, msum = 0;
        for (int g = 0; g < QK_K / 16; g++) {
            int gsum = 0;
            for (int i = 16 * g; i < 16 * g + 16; i++) {
                const int h = i / 128, k = (i / 32) % 4, l = i % 32;
                gsum += x[b].qs[i] * ((w[b].qs[32 * h + l] >> (2 * k)) & 3);
            }
            isum += (w[b].scales[g] & 0xF) * gsum;
            msum += (w[b].scales[g] >> 4) * x[b].bsums[g];
        }
        const float dall = x[b].d * lc_fp16_to_fp32(w[b].d), dmin = x[b].d * lc_fp16_to_fp32(w[b].dmin);
        sum += dall * isum - dmin * msum;
    }
    *s = sum;
}

/* ---- Q3_K ---- */

void lc__quantize_row_q3_K_ref(const float *x, void *vy, int64_t n) {
    block_q3_K *y = vy;
    for (int64_t b = 0; b < n / QK_K; b++, x += QK_K) {
        int8_t L[QK_K];
        float scales[QK_K / 16];
        float max_scale = 0, amax = 0;
        for (int g = 0; g < QK_K / 16; g++) {
            scales[g] = make_q3_quants(16, 4, x + 16 * g, L + 16 * g);
            if (fabsf(scales[g]) > amax) {
                amax = fabsf(scales[g]);
                max_scale = scales[g];
            }
        }
        /* group scales as 6-bit signed multiples of d = max_scale/-32 */
        memset(y[b].scales, 0, sizeof y[b].scales);
        if (max_scale) {
            const float iscale = -32.f / max_scale;
            for (int g = 0; g < QK_K / 16; g++) {
                const int l = clampi((int8_t)lc__nearest_int(iscale * scales[g]), -32, 31) + 32;
                if (g < 8) y[b].scales[g] = (uint8_t)(l & 0xF);
                else y[b].scales[g - 8] |= (uint8_t)((l & 0xF) << 4);
                y[b].scales[8 + g % 4] |= (uint8_t)((l >> 4) << (2 * (g / 4)));
            }
            y[b].d = lc_fp32_to_fp16(1 / iscale);
        } else {
            y[b].d = lc_fp32_to_fp16(0.f);
        }
        for (int g = 0; g < QK_K / 16; g++) {
            const float d = lc_fp16_to_fp32(y[b].d) * lc__q3k_scale(g, y[b].scales);
            if (!d) continue;
            for (int l = 0; l < 16; l++)
                L[16 * g + l] = (int8_t)(clampi(lc__nearest_int(x[16 * g + l] / d), -4, 3) + 4);
        }
        /* bit 2 of element i to hmask[i % 32] bit i / 32; the low two bits as Q2_K */
        uint8_t low[QK_K];
        memset(y[b].hmask, 0, sizeof y[b].hmask);
        for (int i = 0; i < QK_K; i++) {
            if (L[i] > 3) y[b].hmask[i % 32] |= (uint8_t)(1u << (i / 32));
            low[i] = (uint8_t)(L[i] > 3 ? L[i] - 4 : L[i]);
        }
        pack_2bit(low, y[b].qs);
    }
}

/* Signed 3-bit quant (-4..3) of element i of a Q3_K block. */
static int q3k_at(const block_q3_K *x, int i) {
    const int h = i / 128, k = (i / 32) % 4, l = i % 32;
    const int lo = (x->qs[32 * h + l] >> (2 * k)) & 3;
    return lo - ((x->hmask[l] >> (i / 32)) & 1 ? 0 : 4);
}

void lc__dequantize_row_q3_K(const void *vx, float *y, int64_t n) {
    const block_q3_K *x = vx;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float d = lc_fp16_to_fp32(x[b].d);
        for (int i = 0; i < QK_K; i++) {
            const float dl = d * lc__q3k_scale(i / 16, x[b].scales);
            *y++ = dl * q3k_at(&x[b], i);
        }
    }
}

/* Q3_K . Q8_K: sum_b d_w d_x sum_g s_g sum_j q_w q_x */
void lc__vec_dot_q3_K_ref(int n, float *s, const void *vw, const void *vx) {
    const block_q3_K *w = vw;
    const block_q8_K *x = vx;
    float sum = 0;
    for (int b = 0; b < n / QK_K; b++) {
        int isum = 0;
        for (int g = 0; g < QK_K / 16; g++) {
            int gsum = 0;
            for (int i = 16 * g; i < 16 * g + 16; i++) gsum += x[b].qs[i] * q3k_at(&w[b], i);
            isum += lc__q3k_scale(g, w[b].scales) * gsum;
        }
        sum += lc_fp16_to_fp32(w[b].d) * x[b].d * isum;
    }
    *s = sum;
}

/* ---- Q4_K and Q5_K: 8 groups of 32, asymmetric ---- */

/* Group search shared by Q4_K (nmax 15) and Q5_K (nmax 31), then 6-bit scales/mins, d, dmin and the re-quantized
** levels L[256] (0..nmax). */
static void quantize_k4_superblock(const float *x, int nmax, float rmin, int nstep, uint8_t *scales12, lc_fp16 *dd,
                                   lc_fp16 *ddmin, uint8_t *L) {
    uint8_t Laux[32];
    float w[32], scales[QK_K / 32], mins[QK_K / 32];
    float max_scale = 0, max_min = 0;
    for (int g = 0; g < QK_K / 32; g++) {
        const float *xg = x + 32 * g;
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) sum_x2 += xg[l] * xg[l];
        const float av_x = sqrtf(sum_x2 / 32); /* weights favour large values but never ignore small ones */
        for (int l = 0; l < 32; l++) w[l] = av_x + fabsf(xg[l]);
        scales[g] = make_asymmetric_quants(32, nmax, xg, w, L + 32 * g, &mins[g], Laux, rmin, 0.1f, nstep, false);
        if (scales[g] > max_scale) max_scale = scales[g];
        if (mins[g] > max_min) max_min = mins[g];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int g = 0; g < QK_K / 32; g++) {
        const uint8_t ls = (uint8_t)lc__nearest_int(inv_scale * scales[g]);
        const uint8_t lm = (uint8_t)lc__nearest_int(inv_min * mins[g]);
        k4_store_scale_min(scales12, g, LC_MIN(63, ls), LC_MIN(63, lm));
    }
    *dd = lc_fp32_to_fp16(max_scale / 63.f);
    *ddmin = lc_fp32_to_fp16(max_min / 63.f);
    for (int g = 0; g < QK_K / 32; g++) {
        uint8_t sc, m;
        lc__k4_scale_min(g, scales12, &sc, &m);
        const float d = lc_fp16_to_fp32(*dd) * sc;
        if (!d) continue;
        const float dm = lc_fp16_to_fp32(*ddmin) * m;
        for (int l = 0; l < 32; l++)
            L[32 * g + l] = (uint8_t)clampi(lc__nearest_int((x[32 * g + l] + dm) / d), 0, nmax);
    }
}

void lc__quantize_row_q4_K_ref(const float *x, void *vy, int64_t n) {
    block_q4_K *y = vy;
    for (int64_t b = 0; b < n / QK_K; b++, x += QK_K) {
        uint8_t L[QK_K];
        quantize_k4_superblock(x, 15, -1.f, 20, y[b].scales, &y[b].d, &y[b].dmin, L);
        for (int p = 0; p < 4; p++)
            for (int l = 0; l < 32; l++) y[b].qs[32 * p + l] = (uint8_t)(L[64 * p + l] | (L[64 * p + 32 + l] << 4));
    }
}

void lc__quantize_row_q5_K_ref(const float *x, void *vy, int64_t n) {
    block_q5_K *y = vy;
    for (int64_t b = 0; b < n / QK_K; b++, x += QK_K) {
        uint8_t L[QK_K];
        quantize_k4_superblock(x, 31, -0.5f, 15, y[b].scales, &y[b].d, &y[b].dmin, L);
        memset(y[b].qh, 0, sizeof y[b].qh);
        for (int p = 0; p < 4; p++)
            for (int l = 0; l < 32; l++) {
                const int a = L[64 * p + l], c = L[64 * p + 32 + l];
                y[b].qs[32 * p + l] = (uint8_t)((a & 0xF) | ((c & 0xF) << 4));
                y[b].qh[l] |= (uint8_t)(((a >> 4) << (2 * p)) | ((c >> 4) << (2 * p + 1)));
            }
    }
}

/* 4-bit quant of element i of Q4_K/Q5_K qs. */
static int k4_lo(const uint8_t *qs, int i) {
    const int p = i / 64, l = i % 32;
    return (i % 64) < 32 ? qs[32 * p + l] & 0xF : qs[32 * p + l] >> 4;
}
/* Bit 4 of element i of a Q5_K block. */
static int k5_hi(const uint8_t *qh, int i) { return (qh[i % 32] >> (i / 32)) & 1; }

void lc__dequantize_row_q4_K(const void *vx, float *y, int64_t n) {
    const block_q4_K *x = vx;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float d = lc_fp16_to_fp32(x[b].d), dmin = lc_fp16_to_fp32(x[b].dmin);
        for (int i = 0; i < QK_K; i++) {
            uint8_t sc, m;
            lc__k4_scale_min(i / 32, x[b].scales, &sc, &m);
            const float d1 = d * sc, m1 = dmin * m;
            *y++ = d1 * k4_lo(x[b].qs, i) - m1;
        }
    }
}

void lc__dequantize_row_q5_K(const void *vx, float *y, int64_t n) {
    const block_q5_K *x = vx;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float d = lc_fp16_to_fp32(x[b].d), dmin = lc_fp16_to_fp32(x[b].dmin);
        for (int i = 0; i < QK_K; i++) {
            uint8_t sc, m;
            lc__k4_scale_min(i / 32, x[b].scales, &sc, &m);
            const float d1 = d * sc, m1 = dmin * m;
            *y++ = d1 * (k4_lo(x[b].qs, i) + 16 * k5_hi(x[b].qh, i)) - m1;
        }
    }
}

/* Q4_K/Q5_K . Q8_K: sum_b [ d_w d_x sum_g sc_g sum_j q_w q_x  -  dmin_w d_x sum_g m_g (bsum_2g + bsum_2g+1) ] */
static float dot_k4_block(const uint8_t *scales12, const uint8_t *qs, const uint8_t *qh, float d, float dmin,
                          const block_q8_K *x) {
    int isum = 0, msum = 0;
    for (int g = 0; g < QK_K / 32; g++) {
        uint8_t sc, m;
        lc__k4_scale_min(g, scales12, &sc, &m);
        int gsum = 0;
        for (int i = 32 * g; i < 32 * g + 32; i++) gsum += x->qs[i] * (k4_lo(qs, i) + (qh ? 16 * k5_hi(qh, i) : 0));
        isum += sc * gsum;
        msum += m * (x->bsums[2 * g] + x->bsums[2 * g + 1]);
    }
    return d * x->d * isum - dmin * x->d * msum;
}

void lc__vec_dot_q4_K_ref(int n, float *s, const void *vw, const void *vx) {
    const block_q4_K *w = vw;
    const block_q8_K *x = vx;
    float sum = 0;
    for (int b = 0; b < n / QK_K; b++)
        sum += dot_k4_block(w[b].scales, w[b].qs, NULL, lc_fp16_to_fp32(w[b].d), lc_fp16_to_fp32(w[b].dmin), &x[b]);
    *s = sum;
}

void lc__vec_dot_q5_K_ref(int n, float *s, const void *vw, const void *vx) {
    const block_q5_K *w = vw;
    const block_q8_K *x = vx;
    float sum = 0;
    for (int b = 0; b < n / QK_K; b++)
        sum += dot_k4_block(w[b].scales, w[b].qs, w[b].qh, lc_fp16_to_fp32(w[b].d), lc_fp16_to_fp32(w[b].dmin), &x[b]);
    *s = sum;
}

/* ---- Q6_K ---- */

void lc__quantize_row_q6_K_ref(const float *x, void *vy, int64_t n) {
    block_q6_K *y = vy;
    for (int64_t b = 0; b < n / QK_K; b++, x += QK_K) {
        int8_t L[QK_K];
        float scales[QK_K / 16];
        float max_scale = 0, amax = 0;
        for (int g = 0; g < QK_K / 16; g++) {
            scales[g] = make_symmetric_quants(16, 32, x + 16 * g, L + 16 * g);
            if (fabsf(scales[g]) > amax) {
                amax = fabsf(scales[g]);
                max_scale = scales[g];
            }
        }
        if (amax < GROUP_EPS) {
            memset(&y[b], 0, sizeof y[b]);
            continue;
        }
        /* group scales as int8 multiples of d = max_scale/-128 */
        const float iscale = -128.f / max_scale;
        y[b].d = lc_fp32_to_fp16(1 / iscale);
        for (int g = 0; g < QK_K / 16; g++) y[b].scales[g] = (int8_t)LC_MIN(127, lc__nearest_int(iscale * scales[g]));
        for (int g = 0; g < QK_K / 16; g++) {
            const float d = lc_fp16_to_fp32(y[b].d) * y[b].scales[g];
            if (!d) continue;
            for (int l = 0; l < 16; l++)
                L[16 * g + l] = (int8_t)(clampi(lc__nearest_int(x[16 * g + l] / d), -32, 31) + 32);
        }
        for (int h = 0; h < 2; h++)
            for (int l = 0; l < 32; l++) {
                const int8_t *p = L + 128 * h + l; /* elements +0, +32, +64, +96 */
                y[b].ql[64 * h + l] = (uint8_t)((p[0] & 0xF) | ((p[64] & 0xF) << 4));
                y[b].ql[64 * h + 32 + l] = (uint8_t)((p[32] & 0xF) | ((p[96] & 0xF) << 4));
                y[b].qh[32 * h + l] = (uint8_t)((p[0] >> 4) | ((p[32] >> 4) << 2) | ((p[64] >> 4) << 4) | ((p[96] >> 4) << 6));
            }
    }
}

/* Signed 6-bit quant (-32..31) of element i of a Q6_K block. */
static int q6k_at(const block_q6_K *x, int i) {
    const int h = i / 128, k = (i / 32) % 4, l = i % 32;
    const uint8_t lq = x->ql[64 * h + 32 * (k & 1) + l];
    const int lo = k < 2 ? lq & 0xF : lq >> 4;
    return (lo | (((x->qh[32 * h + l] >> (2 * k)) & 3) << 4)) - 32;
}

void lc__dequantize_row_q6_K(const void *vx, float *y, int64_t n) {
    const block_q6_K *x = vx;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float d = lc_fp16_to_fp32(x[b].d);
        for (int i = 0; i < QK_K; i++) *y++ = d * x[b].scales[i / 16] * q6k_at(&x[b], i);
    }
}

/* Q6_K . Q8_K: sum_b d_w d_x sum_g sc_g sum_j q_w q_x */
void lc__vec_dot_q6_K_ref(int n, float *s, const void *vw, const void *vx) {
    const block_q6_K *w = vw;
    const block_q8_K *x = vx;
    float sum = 0;
    for (int b = 0; b < n / QK_K; b++) {
        int isum = 0;
        for (int g = 0; g < QK_K / 16; g++) {
            int gsum = 0;
            for (int i = 16 * g; i < 16 * g + 16; i++) gsum += x[b].qs[i] * q6k_at(&w[b], i);
            isum += w[b].scales[g] * gsum;
        }
        sum += lc_fp16_to_fp32(w[b].d) * x[b].d * isum;
    }
    *s = sum;
}

/* ---- Q8_K ---- */

void lc__quantize_row_q8_K_ref(const float *x, void *vy, int64_t n) {
    block_q8_K *y = vy;
    for (int64_t b = 0; b < n / QK_K; b++, x += QK_K) {
        const float max = signed_absmax(x, QK_K);
        if (!max) {
            memset(&y[b], 0, sizeof y[b]);
            continue;
        }
        /* the extreme maps to -127 (not -128) so that negated quants still fit int8 in the SIMD kernels */
        const float iscale = -127.f / max;
        for (int i = 0; i < QK_K; i++) y[b].qs[i] = (int8_t)LC_MIN(127, lc__nearest_int(iscale * x[i]));
        for (int g = 0; g < QK_K / 16; g++) {
            int sum = 0;
            for (int i = 0; i < 16; i++) sum += y[b].qs[16 * g + i];
            y[b].bsums[g] = (int16_t)sum;
        }
        y[b].d = 1 / iscale;
    }
}

void lc__dequantize_row_q8_K(const void *vx, float *y, int64_t n) {
    const block_q8_K *x = vx;
    for (int64_t b = 0; b < n / QK_K; b++)
        for (int i = 0; i < QK_K; i++) *y++ = x[b].d * x[b].qs[i];
}
