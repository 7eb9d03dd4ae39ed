/* convert.c - scalar reference conversions between f32 and the storage types F16, BF16, Q8_0 (the specification of
** those formats; the kernels must agree with them). Other quantized types live in quants_ref files. */
#include "types.h"

#include "quants.h"

#include <math.h>

/* Float results must not depend on the compiler: clang fuses a * b + c into an FMA by default (GCC in -std=c11 mode
** does not), which would change the bits the variants agree on. */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

void lc_fp32_to_fp16_row(const float *x, lc_fp16 *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = lc_fp32_to_fp16(x[i]);
}

void lc_fp32_to_bf16_row(const float *x, lc_bf16 *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = lc_fp32_to_bf16(x[i]);
}

/* GGML's reference: d = max|x| / 127, q = roundf(x / d) (ties away from zero). Used for weights (model files). */
void lc_quantize_row_q8_0_ref(const float *x, block_q8_0 *y, int64_t n) {
    for (int64_t b = 0; b < n / QK8_0; b++) {
        const float *xb = x + b * QK8_0;
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; j++) amax = fmaxf(amax, fabsf(xb[j]));
        const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = lc_fp32_to_fp16(d);
        for (int j = 0; j < QK8_0; j++) y[b].qs[j] = (int8_t)roundf(xb[j] * id);
    }
}

void lc_dequantize_row(int type, const void *src, float *dst, int64_t n) {
    switch (type) {
    case LC_TYPE_F32: memcpy(dst, src, (size_t)n * sizeof(float)); return;
    case LC_TYPE_F16: {
        const lc_fp16 *h = src;
        for (int64_t i = 0; i < n; i++) dst[i] = lc_fp16_to_fp32(h[i]);
        return;
    }
    case LC_TYPE_BF16: {
        const lc_bf16 *h = src;
        for (int64_t i = 0; i < n; i++) dst[i] = lc_bf16_to_fp32(h[i]);
        return;
    }
    case LC_TYPE_Q8_0: {
        const block_q8_0 *b = src;
        for (int64_t i = 0; i < n / QK8_0; i++) {
            const float d = lc_fp16_to_fp32(b[i].d);
            for (int j = 0; j < QK8_0; j++) dst[i * QK8_0 + j] = d * (float)b[i].qs[j];
        }
        return;
    }
    default: /* the other quantized formats; callers check lc_type_traits_of(type)->supported first */
        if (!lc__quant_dequantize_row(type, src, dst, n)) memset(dst, 0, (size_t)n * sizeof(float));
        return;
    }
}

/* Activations, as llama.cpp's x86 CPU backend quantizes them: id = 127/amax, round half to even. */
void lc__quantize_row_q8_0_act(const float *x, block_q8_0 *y, int64_t n) {
    for (int64_t b = 0; b < n / QK8_0; b++) {
        const float *xb = x + b * QK8_0;
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; j++) amax = fmaxf(amax, fabsf(xb[j]));
        const float d = amax / 127.0f, id = amax != 0.0f ? 127.0f / amax : 0.0f;
        y[b].d = lc_fp32_to_fp16(d);
        for (int j = 0; j < QK8_0; j++) y[b].qs[j] = (int8_t)nearbyintf(xb[j] * id);
    }
}
